//! Opening a connection: TCP (and TLS when asked, pinned or offered),
//! hello, and auth, whose reply is read behind the first request when the
//! server lists `auth-pipelining`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;

use super::{Client, ClientError, Result, TlsPolicy, answer, terminal};
use crate::secret::Secret;
use crate::tls::client::{KnownHosts, TlsError, TlsOptions};
use crate::wire::frame::FrameError;
use crate::wire::messages::{AuthReply, ErrorCode, HelloReply, Request};
use crate::wire::{ConnError, Connection, Deadlines, Kind, Stream};

/// Longest wait for a server's answer to the hello: a ferry server
/// answers at once, so a longer silence is something else on the port.
const HELLO_DEADLINE: Duration = Duration::from_secs(10);

/// Whether the warning about a token sent in clear was given.
static CLEAR_TOKEN_SAID: AtomicBool = AtomicBool::new(false);

impl Client {
    /// Connects in clear to `authority` (`host:port`), says hello and, when
    /// the server offers auth and a token is given, authenticates.
    pub async fn connect(authority: &str, token: Option<&Secret>) -> Result<Client> {
        let tcp = dial(authority).await?;
        Client::over(Stream::Plain(tcp), token).await
    }

    /// Connects as `policy` says: with TLS when asked to, or when the
    /// server's certificate is pinned (a pinned server is never spoken to
    /// in clear), else in clear; and with TLS after all when the server
    /// answers that it requires it (before any token was sent).
    pub async fn connect_with(
        authority: &str,
        token: Option<&Secret>,
        policy: &TlsPolicy,
    ) -> Result<Client> {
        let known = KnownHosts::new(policy.options.known_hosts.clone());
        // A pins file that cannot be read must not turn a pinned server
        // into one spoken to in clear.
        let pinned = known
            .lookup(authority)
            .map_err(|e| {
                ClientError::Local(format!("cannot read {}: {e}", known.path().display()))
            })?
            .is_some();
        if policy.force || pinned {
            return Client::connect_tls(authority, token, &policy.options).await;
        }
        let tcp = dial(authority).await?;
        match Client::over_offered(Stream::Plain(tcp), token, true).await {
            Err(e) if e.code() == Some(ErrorCode::TlsRequired) => {
                crate::say!("ferry: {authority} requires TLS; connecting again with TLS");
                Client::connect_tls(authority, token, &policy.options).await
            }
            Err(ClientError::OfferedTls) => {
                crate::say!("ferry: {authority} offers TLS; connecting again with TLS");
                Client::connect_tls(authority, token, &policy.options).await
            }
            r => r,
        }
    }

    /// Connects with TLS, decides whether to trust the certificate (see
    /// [`crate::tls::client`]), then speaks the protocol inside.
    pub async fn connect_tls(
        authority: &str,
        token: Option<&Secret>,
        options: &TlsOptions,
    ) -> Result<Client> {
        let tcp = dial(authority).await?;
        let (tls, fp) = crate::tls::client::connect(tcp, authority, options)
            .await
            .map_err(|e| match e {
                TlsError::Handshake(_) => ClientError::Connect {
                    addr: authority.to_string(),
                    reason: e.to_string(),
                },
                TlsError::Untrusted(m) => ClientError::Untrusted(m),
            })?;
        let mut c = Client::over(Stream::Client(Box::new(tls)), token).await?;
        c.tls = Some(fp);
        Ok(c)
    }

    /// Speaks the protocol over an already-connected stream.
    pub async fn over(stream: Stream, token: Option<&Secret>) -> Result<Client> {
        Client::over_offered(stream, token, false).await
    }

    /// [`Client::over`]; with `upgrade`, a server whose hello says it has
    /// TLS, reached in clear over the network (not loopback), is left before
    /// the token is sent, with
    /// [`ClientError::OfferedTls`], for the caller to connect again with TLS.
    async fn over_offered(stream: Stream, token: Option<&Secret>, upgrade: bool) -> Result<Client> {
        let deadlines = Deadlines {
            // Replies can take a while (hashing a large prefix, a big rm -r).
            idle: Duration::from_secs(600),
            ..Deadlines::default()
        };
        let tcp = stream.tcp();
        let (local, peer) = (tcp.local_addr().ok(), tcp.peer_addr().ok());
        let in_clear = !stream.is_tls();
        let mut conn = Connection::from_stream(stream, Default::default(), deadlines);
        let hello = tokio::time::timeout(HELLO_DEADLINE, async {
            // The header ends with an empty line (JSON whitespace): a
            // server of a line-based protocol (HTTP, SMTP, a chat) then
            // answers at once, and what it says tells what was reached.
            let mut json = serde_json::to_vec(&Request::hello()).map_err(ConnError::from)?;
            json.extend_from_slice(b"\r\n\r\n");
            conn.send_encoded(Kind::Request, &json, 0).await?;
            terminal::<HelloReply>(&mut conn).await
        })
        .await;
        let at = peer.map_or_else(|| "the server".to_string(), |p| p.to_string());
        let hello = match hello {
            Ok(Ok(hello)) => hello,
            Ok(Err(ClientError::Conn(ConnError::Frame(FrameError::BadMagic)))) => {
                return Err(ClientError::Connect {
                    addr: at,
                    reason: answer::what_answered(conn.unread()),
                });
            }
            Ok(Err(ClientError::Conn(e))) if conn.unread().is_empty() && answer::closed(&e) => {
                let reason = answer::what_closed(peer, &e).await;
                return Err(ClientError::Connect { addr: at, reason });
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                let reason = answer::silent(HELLO_DEADLINE);
                return Err(ClientError::Connect { addr: at, reason });
            }
        };
        // Loopback never leaves the machine: it stays in clear, as the
        // server's --tls-required allows.
        let remote = peer.is_some_and(|p| !p.ip().is_loopback());
        if upgrade && in_clear && remote && hello.features.iter().any(|f| f == "tls") {
            return Err(ClientError::OfferedTls);
        }
        let mut client = Client {
            conn,
            hello,
            local,
            peer,
            tls: None,
            sha256_only: false,
            known: None,
            owed: false,
            stop: tokio_util::sync::CancellationToken::new(),
        };
        match token {
            Some(t) if client.hello.auth_available => {
                if in_clear && remote && !CLEAR_TOKEN_SAID.swap(true, Ordering::Relaxed) {
                    crate::say!(
                        "ferry: warning: sending the token to {} without TLS: anyone on the network can read it (use --tls)",
                        peer.map(|p| p.to_string()).unwrap_or_default()
                    );
                }
                if client.offers("auth-pipelining") {
                    // The first request goes right behind it, one round
                    // trip sooner and in the same segment; a wrong token
                    // still stops it there.
                    client.conn.hold(Kind::Request, &Request::auth(t))?;
                    client.owed = true;
                } else {
                    let reply: AuthReply = client.request(&Request::auth(t)).await?;
                    client.authenticated(reply);
                }
            }
            None if client.hello.auth_required => {
                return Err(ClientError::Remote {
                    code: ErrorCode::AuthRequired,
                    message: "this server requires a token: set FERRY_TOKEN".into(),
                });
            }
            _ => {}
        }
        Ok(client)
    }

    fn authenticated(&mut self, reply: AuthReply) {
        self.hello.permissions = reply.permissions;
        self.hello.auth_required = false;
    }

    /// Reads the reply to an `auth` sent without waiting, if one is owed:
    /// after sending a request (which carried the `auth` in front of it),
    /// before reading its reply. A wrong token
    /// is the error here; the server did not do the request behind it,
    /// whose own refusal is left unread: connect again after it.
    pub(super) async fn settle(&mut self) -> Result<()> {
        let mut owed = self.owed();
        let r = owed.settle(&mut self.conn).await;
        self.settled(owed);
        r
    }

    /// The `auth` reply still owed, for a transfer that reads it itself,
    /// behind its own request, with [`Owed::settle`]; handed back with
    /// [`Client::settled`].
    pub(super) fn owed(&mut self) -> Owed {
        Owed {
            due: std::mem::take(&mut self.owed),
            reply: None,
        }
    }

    /// Takes back what [`Client::owed`] handed out: the reply read, or
    /// the debt when the transfer stopped before its request.
    pub(super) fn settled(&mut self, owed: Owed) {
        self.owed |= owed.due;
        if let Some(reply) = owed.reply {
            self.authenticated(reply);
        }
    }
}

/// The reply to an `auth` sent without waiting (see [`Client::owed`]).
#[derive(Debug)]
pub(super) struct Owed {
    due: bool,
    reply: Option<AuthReply>,
}

impl Owed {
    /// Reads the reply if it is owed: after the request that carried the
    /// `auth` in front of it (or on its own, held no longer, when none
    /// did), before that request's reply.
    pub(super) async fn settle(&mut self, conn: &mut Connection) -> Result<()> {
        if std::mem::take(&mut self.due) {
            conn.flush_held().await?;
            self.reply = Some(terminal(conn).await?);
        }
        Ok(())
    }
}

/// Resolves `authority` and connects to the first address that answers
/// (10 s each), with Nagle off: requests are small and latency matters.
async fn dial(authority: &str) -> Result<TcpStream> {
    let fail = |reason: String| ClientError::Connect {
        addr: authority.to_string(),
        reason,
    };
    let addrs: Vec<_> = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| fail(e.to_string()))?
        .collect();
    let mut last = String::from("no address found");
    let mut stream = None;
    for a in addrs {
        match tokio::time::timeout(Duration::from_secs(10), crate::wire::stream::connect(a)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out".into(),
        }
    }
    let stream = stream.ok_or_else(|| fail(last))?;
    crate::wire::stream::tune(&stream);
    Ok(stream)
}
