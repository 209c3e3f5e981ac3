//! What every door offers the listener: serving a connection, a last word
//! in its own framing for one that is refused, and what to say to one that
//! came in clear where TLS is required. [`entrance`] is the one place a
//! [`Door`] is matched; to add a door, add its variant to the sniffer and
//! its `Entrance` here.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tracing::info;

use super::refuse::{http_status, refuse_http, send_and_close, text_line};
use super::sniff::Door;
use super::{Ctx, chat, classic, http, native};
use crate::wire::Stream;
use crate::wire::classic::{ClassicReply, encode_reply};
use crate::wire::frame::{Kind, encode_head};
use crate::wire::messages::{ErrorCode, ErrorReply};

/// A connection being served, boxed: its state is allocated when the door
/// is entered, so a connection still being sniffed, or many idle ones,
/// cost only what they hold.
pub(super) type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One door, as the listener sees it.
pub(super) trait Entrance: Sync {
    /// Serves a connection (plain or decrypted) to its end.
    fn serve(&self, stream: Stream, initial: BytesMut, peer: SocketAddr, ctx: Arc<Ctx>) -> Serving;

    /// A refusal (busy, TLS required) in this door's framing. A line of
    /// text unless the door has its own.
    fn refusal(&self, code: ErrorCode, message: &str) -> BytesMut {
        let _ = code;
        BytesMut::from(format!("ferry: {message}\n").as_bytes())
    }

    /// What a client of this door should do when the server requires TLS.
    fn use_tls(&self) -> &'static str {
        "this server requires TLS: use `ferry chat --tls HOST`, or `openssl s_client -quiet -connect HOST:PORT`"
    }

    /// A plain connection where TLS is required, from elsewhere than
    /// loopback: told so in its own framing, and closed. Nothing it sent
    /// is acted on.
    fn refuse_plain(&self, stream: TcpStream, initial: BytesMut, ctx: Arc<Ctx>) -> Serving {
        let _ = (initial, ctx);
        let out = self.refusal(ErrorCode::TlsRequired, self.use_tls());
        Box::pin(async move { send_and_close(stream, &out).await })
    }
}

/// The door a sniffed connection goes through.
pub(super) fn entrance(door: Door) -> &'static dyn Entrance {
    match door {
        Door::Native => &Native,
        Door::Classic => &Classic,
        Door::Http => &Web,
        Door::Tls => &TlsInTls,
        Door::Foreign => &Foreign,
        // Anything else, or nothing at all for a moment: a person with nc
        // or telnet, who gets the chat in plain text lines.
        Door::Unknown | Door::Silent => &TextChat,
    }
}

struct Native;

impl Entrance for Native {
    fn serve(&self, s: Stream, initial: BytesMut, peer: SocketAddr, ctx: Arc<Ctx>) -> Serving {
        Box::pin(native::serve(s, initial, peer, ctx))
    }

    fn refusal(&self, code: ErrorCode, message: &str) -> BytesMut {
        let reply = ErrorReply {
            code,
            message: message.to_string(),
        };
        let json = serde_json::to_vec(&reply).unwrap_or_default();
        let mut out = BytesMut::new();
        encode_head(Kind::Error, &json, 0, &mut out);
        out
    }

    fn use_tls(&self) -> &'static str {
        "this server requires TLS: connect with --tls"
    }
}

struct Classic;

impl Entrance for Classic {
    fn serve(&self, s: Stream, initial: BytesMut, peer: SocketAddr, ctx: Arc<Ctx>) -> Serving {
        Box::pin(classic::serve(s, initial, peer, ctx))
    }

    fn refusal(&self, _: ErrorCode, message: &str) -> BytesMut {
        let mut out = BytesMut::new();
        let reply = ClassicReply {
            error: Some(message.to_string()),
            ..Default::default()
        };
        encode_reply(&reply, &mut out);
        out
    }

    fn use_tls(&self) -> &'static str {
        "this server requires TLS: wrap the socket in TLS (in Python, ssl.SSLContext.wrap_socket)"
    }
}

struct Web;

impl Entrance for Web {
    fn serve(&self, s: Stream, initial: BytesMut, peer: SocketAddr, ctx: Arc<Ctx>) -> Serving {
        if !ctx.config.web {
            return Box::pin(refuse_http(
                s,
                "501 Not Implemented",
                "this server does not serve HTTP (--no-web)",
            ));
        }
        Box::pin(http::serve(s, initial, peer, ctx))
    }

    fn refusal(&self, _: ErrorCode, message: &str) -> BytesMut {
        BytesMut::from(&http_status("503 Service Unavailable", message)[..])
    }

    /// HTTP in clear is redirected to https.
    fn refuse_plain(&self, stream: TcpStream, initial: BytesMut, ctx: Arc<Ctx>) -> Serving {
        Box::pin(http::redirect_to_tls(Stream::Plain(stream), initial, ctx))
    }
}

/// TLS inside TLS: nobody does that on purpose. (A TLS ClientHello on a
/// plain connection is handshaken by the listener before any door.)
struct TlsInTls;

impl Entrance for TlsInTls {
    fn serve(&self, s: Stream, _: BytesMut, _: SocketAddr, _: Arc<Ctx>) -> Serving {
        Box::pin(text_line(s, "ferry: unexpected TLS inside TLS"))
    }
}

/// Another protocol's greeting (SSH, a proxy header, …): closed with one
/// line.
struct Foreign;

impl Entrance for Foreign {
    fn serve(&self, s: Stream, _: BytesMut, _: SocketAddr, _: Arc<Ctx>) -> Serving {
        info!("closed: another protocol's greeting");
        Box::pin(text_line(
            s,
            "ferry: this port speaks ferry, HTTP and plain-text chat, not this protocol",
        ))
    }
}

struct TextChat;

impl Entrance for TextChat {
    fn serve(&self, s: Stream, initial: BytesMut, peer: SocketAddr, ctx: Arc<Ctx>) -> Serving {
        Box::pin(chat::serve_text(s, initial, peer, ctx))
    }
}
