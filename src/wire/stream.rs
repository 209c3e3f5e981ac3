//! [`Stream`]: the byte stream under every door and under the client,
//! plain TCP or TLS over it. The doors read and write it without knowing
//! which; what differs (socket options, the `Secure` cookie flag) asks
//! [`Stream::tcp`] or [`Stream::is_tls`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Guarded;
use super::connection::{BoxRead, BoxWrite};

/// A server-side TLS stream: the handshake began with bytes the sniffer
/// had already read, hence the [`Guarded`] underneath.
pub type ServerTls = tokio_rustls::server::TlsStream<Guarded<TcpStream>>;
/// A client-side TLS stream.
pub type ClientTls = tokio_rustls::client::TlsStream<TcpStream>;

/// A connection, in clear or encrypted.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS accepted by the server.
    Server(Box<ServerTls>),
    /// TLS opened by the client.
    Client(Box<ClientTls>),
}

impl Stream {
    /// Whether the bytes travel encrypted.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Server(s) => s.get_ref().0.get_ref(),
            Stream::Client(s) => s.get_ref().0,
        }
    }

    /// Splits into halves that can be used from two tasks. Plain TCP splits
    /// without a lock; TLS, one state for both directions, through tokio's
    /// `split`.
    pub fn into_split(self) -> (BoxRead, BoxWrite) {
        match self {
            Stream::Plain(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            tls => {
                let (r, w) = tokio::io::split(tls);
                (Box::new(r), Box::new(w))
            }
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_tls() { "tls" } else { "plain" };
        f.debug_struct("Stream")
            .field("kind", &kind)
            .field("peer", &self.tcp().peer_addr().ok())
            .finish()
    }
}

/// Forwards a poll method to whichever stream is inside.
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Server($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
            Stream::Client($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Server(s) => s.is_write_vectored(),
            Stream::Client(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_shutdown(cx))
    }
}

/// Sets the options every ferry TCP connection has, at both ends: Nagle
/// off (requests are small and latency matters), and TCP keepalives, so
/// that a connection that may sit idle for hours (a chat) stays open
/// through NAT and firewalls, and one whose peer vanished without a word
/// (a cable pulled, a machine off) is found out within about two and a
/// half minutes (the system's 9 probes, 10 s apart, after 60 s of quiet).
pub fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(60))
        .with_interval(std::time::Duration::from_secs(10));
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}
