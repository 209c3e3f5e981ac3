//! The client library the CLI (and the tests) use: one [`Client`] per
//! connection, a method per request, and the transfers with resume and
//! verification.
//!
//! Everything a server sends that becomes a local name passes the same
//! validator the server uses, before anything is written.

pub mod addr;
mod answer;
mod chat;
mod exec;
pub use exec::Resizes;
pub mod local;
mod put;
mod transfer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

pub use addr::{Remote, parse_remote};
pub use chat::{ChatEvents, ChatLines, ChatSession};
pub use transfer::{TransferOpts, Transferred};

use crate::files::{NameError, RelPath};
use crate::secret::Secret;
use crate::tls::Fingerprint;
use crate::tls::client::{KnownHosts, TlsError, TlsOptions};
use crate::wire::frame::FrameError;
use crate::wire::messages::{
    AuthReply, Count, Done, Entry, EntryBatch, ErrorCode, ErrorReply, HelloReply, Request, Skipped,
    TreeEntry,
};
use crate::wire::{ConnError, Connection, Deadlines, Kind, Stream};

/// Longest wait for a server's answer to the hello: a ferry server
/// answers at once, so a longer silence is something else on the port.
const HELLO_DEADLINE: Duration = Duration::from_secs(10);

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// What was dialled.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// The server refused, with its code and message.
    #[error("{message} ({code})")]
    Remote {
        /// Stable code.
        code: ErrorCode,
        /// The server's words, escaped.
        message: String,
    },
    /// The connection broke or the server broke the protocol.
    #[error("connection: {0}")]
    Conn(#[from] ConnError),
    /// A name (ours or the server's) broke the naming rules.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A local file operation failed.
    #[error("{0}")]
    Local(String),
    /// The command line asked for something impossible (an address that
    /// is none, a port out of range): exit status 2, as for clap's errors.
    #[error("{0}")]
    Usage(String),
    /// The server's TLS certificate is not trusted (unknown and not
    /// accepted, or changed since it was pinned).
    #[error("{0}")]
    Untrusted(String),
    /// A local file is in the way (the message says which and why).
    #[error("{0} (use --force to overwrite)")]
    Exists(String),
    /// The connection broke in the middle of a download, whose partial
    /// file is kept to resume (the message says how far it got).
    #[error("{0}")]
    Cut(String),
    /// The bytes received do not match the server's digest.
    #[error("digest mismatch: {0}")]
    Checksum(String),
    /// Reached in clear, the server said it has TLS: connect again with
    /// it (see [`Client::connect_with`]).
    #[error("the server offers TLS")]
    OfferedTls,
}

impl ClientError {
    /// A local I/O error on `path`.
    pub fn local(path: &Path, e: std::io::Error) -> ClientError {
        ClientError::Local(format!(
            "{}: {e}",
            crate::text::escape(&path.display().to_string())
        ))
    }

    /// True when the transport (not the request) failed.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Conn(_)
                | ClientError::Cut(_)
                | ClientError::Untrusted(_)
        )
    }

    /// True when a copy came out wrong: the bytes received do not hash to
    /// the sender's digest, or the server saw its file change while it
    /// sent it.
    pub fn is_mismatch(&self) -> bool {
        matches!(self, ClientError::Checksum(_)) || self.code() == Some(ErrorCode::ChecksumMismatch)
    }

    /// The server's code, for remote refusals.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Result type of the client.
pub type Result<T> = std::result::Result<T, ClientError>;

/// Whether and how a client uses TLS.
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    /// Use TLS even with no pin for the server (`--tls`).
    pub force: bool,
    /// Trust and the known-hosts file.
    pub options: TlsOptions,
}

/// One connection to a ferry server, past hello (and auth).
pub struct Client {
    conn: Connection,
    hello: HelloReply,
    local: Option<std::net::SocketAddr>,
    peer: Option<std::net::SocketAddr>,
    tls: Option<Fingerprint>,
    sha256_only: bool,
}

/// Whether the warning about a token sent in clear was given.
static CLEAR_TOKEN_SAID: AtomicBool = AtomicBool::new(false);

/// A folder as a walk found it.
#[derive(Debug)]
pub struct Walked {
    /// Folders and files, parents first, every path checked.
    pub entries: Vec<TreeEntry>,
    /// What the server left out and said so, first few; print escaped.
    pub skipped: Vec<Skipped>,
    /// How many more it left out.
    pub skipped_more: u64,
}

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
        };
        match token {
            Some(t) if client.hello.auth_available => {
                let remote = peer.is_some_and(|p| !p.ip().is_loopback());
                if in_clear && remote && !CLEAR_TOKEN_SAID.swap(true, Ordering::Relaxed) {
                    crate::say!(
                        "ferry: warning: sending the token to {} without TLS: anyone on the network can read it (use --tls)",
                        peer.map(|p| p.to_string()).unwrap_or_default()
                    );
                }
                let reply: AuthReply = client.request(&Request::auth(t)).await?;
                client.hello.permissions = reply.permissions;
                client.hello.auth_required = false;
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

    /// The server certificate's fingerprint, when the connection is TLS.
    pub fn tls(&self) -> Option<&Fingerprint> {
        self.tls.as_ref()
    }

    /// This end's and the server's socket addresses.
    pub fn addresses(&self) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>) {
        (self.local, self.peer)
    }

    /// One more hello on this connection; returns its round-trip time.
    pub async fn ping(&mut self) -> Result<Duration> {
        let started = std::time::Instant::now();
        let _: HelloReply = self.request(&Request::hello()).await?;
        Ok(started.elapsed())
    }

    /// What the server said in its hello (permissions updated after auth).
    pub fn hello(&self) -> &HelloReply {
        &self.hello
    }

    /// Whether the server lists `feature` in its hello.
    pub fn offers(&self, feature: &str) -> bool {
        self.hello.features.iter().any(|f| f == feature)
    }

    pub(crate) async fn request<T: DeserializeOwned>(&mut self, req: &Request) -> Result<T> {
        self.conn.send(Kind::Request, req, 0).await?;
        terminal(&mut self.conn).await
    }

    /// Reads `Partial` batches until the terminal count, which it gives too.
    async fn batches<T: DeserializeOwned>(&mut self, req: &Request) -> Result<(Vec<T>, Count)> {
        self.conn.send(Kind::Request, req, 0).await?;
        let mut out = Vec::new();
        loop {
            let head = self.conn.next_head().await?;
            match head.kind {
                Kind::Partial => {
                    let b: EntryBatch<T> =
                        serde_json::from_slice(&head.header).map_err(ConnError::from)?;
                    out.extend(b.entries);
                }
                Kind::Ok => {
                    let c: Count = serde_json::from_slice(&head.header).map_err(ConnError::from)?;
                    if c.count != out.len() as u64 {
                        return Err(ConnError::Protocol("entry count does not match".into()).into());
                    }
                    return Ok((out, c));
                }
                _ => return Err(remote_error(&head.header, head.kind)),
            }
        }
    }

    /// Lists a folder. Entry names are checked like any name from a peer.
    pub async fn ls(&mut self, path: &str) -> Result<Vec<Entry>> {
        let (entries, _): (Vec<Entry>, _) =
            self.batches(&Request::Ls { path: path.into() }).await?;
        for e in &entries {
            RelPath::root().child(&e.name)?;
        }
        Ok(entries)
    }

    /// Describes one entry.
    pub async fn stat(&mut self, path: &str) -> Result<Entry> {
        self.request(&Request::Stat { path: path.into() }).await
    }

    /// Lists a whole tree, checked as one batch before it is returned,
    /// with what the server left out (none from older servers).
    pub async fn walk(&mut self, path: &str) -> Result<Walked> {
        let (entries, end): (Vec<TreeEntry>, Count) =
            self.batches(&Request::Walk { path: path.into() }).await?;
        // Case pairs are for the destination to judge (see get -r).
        crate::files::name::check_batch(entries.iter().map(|e| {
            (
                e.path.as_str(),
                e.kind == crate::wire::messages::EntryKind::Dir,
            )
        }))?;
        Ok(Walked {
            entries,
            skipped: end.skipped,
            skipped_more: end.skipped_more,
        })
    }

    /// Removes a file or folder.
    pub async fn rm(&mut self, path: &str, recursive: bool) -> Result<()> {
        let _: Done = self
            .request(&Request::Rm {
                path: path.into(),
                recursive,
            })
            .await?;
        Ok(())
    }

    /// Creates a folder.
    pub async fn mkdir(&mut self, path: &str, parents: bool) -> Result<()> {
        let _: Done = self
            .request(&Request::Mkdir {
                path: path.into(),
                parents,
            })
            .await?;
        Ok(())
    }

    /// Renames within the server.
    pub async fn mv(&mut self, from: &str, to: &str, force: bool) -> Result<()> {
        let _: Done = self
            .request(&Request::Mv {
                from: from.into(),
                to: to.into(),
                force,
            })
            .await?;
        Ok(())
    }

    /// Announces a folder upload; the server checks it whole.
    pub async fn plan(&mut self, path: &str, entries: &[TreeEntry], force: bool) -> Result<()> {
        let body = serde_json::to_vec(entries).map_err(ConnError::from)?;
        self.conn
            .send(
                Kind::Request,
                &Request::Plan {
                    path: path.into(),
                    force,
                },
                body.len() as u64,
            )
            .await?;
        self.conn.send_body(&body).await?;
        let _: Done = terminal(&mut self.conn).await?;
        Ok(())
    }

    /// Runs a command on the server (`spec.stdin` is set from `stdin`) and streams its output to `stdout` and
    /// `stderr` as it comes. With `stdin`, its bytes are forwarded and its
    /// end closes the command's stdin; without, the command reads
    /// `/dev/null`. Cancelling `cancel` asks the server to stop the command
    /// (its whole process group). Returns the exit report; a command that
    /// could not start is a report too (code 127 or 126).
    pub async fn exec<I, O, E>(
        &mut self,
        spec: &crate::wire::messages::ExecRequest,
        stdin: Option<I>,
        stdout: &mut O,
        stderr: &mut E,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<crate::wire::messages::ExitReport>
    where
        I: tokio::io::AsyncRead + Unpin,
        O: tokio::io::AsyncWrite + Unpin + ?Sized,
        E: tokio::io::AsyncWrite + Unpin + ?Sized,
    {
        exec::exec(&mut self.conn, spec, stdin, stdout, stderr, cancel, None).await
    }

    /// Runs a command on a pseudo-terminal of the server (`spec.pty`; the
    /// server's interactive shell when `spec.argv` is empty), as `ssh -t`
    /// does: `stdin` is what is typed, `out` gets the terminal's output,
    /// and each size from `resizes` is passed on. Refused locally when the
    /// server cannot do it (its hello does not list `pty`).
    pub async fn exec_terminal<I, O>(
        &mut self,
        spec: &crate::wire::messages::ExecRequest,
        stdin: I,
        out: &mut O,
        cancel: &tokio_util::sync::CancellationToken,
        resizes: &mut exec::Resizes,
    ) -> Result<crate::wire::messages::ExitReport>
    where
        I: tokio::io::AsyncRead + Unpin,
        O: tokio::io::AsyncWrite + Unpin + ?Sized,
    {
        if !self.offers("pty") {
            return Err(ClientError::Local(
                "this server cannot run commands on a terminal (it does not allow exec, or is an older ferry)".into(),
            ));
        }
        let mut sink = tokio::io::sink();
        exec::exec(
            &mut self.conn,
            spec,
            Some(stdin),
            out,
            &mut sink,
            cancel,
            Some(resizes),
        )
        .await
    }

    /// Joins the chat as `nick` (a free `guestN` when `None`) in `rooms`
    /// (the lobby when empty). Returns the session, which takes this
    /// connection over, and the server's first event (the welcome).
    pub async fn chat(
        &mut self,
        nick: Option<&str>,
        rooms: &[String],
    ) -> Result<(ChatSession<'_>, crate::chat::Event)> {
        chat::join(&mut self.conn, nick, rooms, None).await
    }

    /// Joins the chat again after a lost connection: history is replayed
    /// only after `since_ms` when the server can do that (its hello lists
    /// `chat-since`), all of it otherwise.
    pub async fn rejoin_chat(
        &mut self,
        nick: Option<&str>,
        rooms: &[String],
        since_ms: Option<i64>,
    ) -> Result<(ChatSession<'_>, crate::chat::Event)> {
        let can = self.offers("chat-since");
        chat::join(&mut self.conn, nick, rooms, since_ms.filter(|_| can)).await
    }

    /// The raw connection, for tests that speak the protocol by hand.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
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
        match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(a)).await {
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

/// Reads one terminal reply; `Partial` here is a protocol error.
async fn terminal<T: DeserializeOwned>(conn: &mut Connection) -> Result<T> {
    let head = conn.next_head().await?;
    match head.kind {
        Kind::Ok => Ok(serde_json::from_slice(&head.header).map_err(ConnError::from)?),
        kind => Err(remote_error(&head.header, kind)),
    }
}

/// Turns an `Error` frame (or an unexpected frame) into a [`ClientError`].
fn remote_error(header: &[u8], kind: Kind) -> ClientError {
    if kind != Kind::Error {
        return ConnError::Protocol(format!("unexpected {kind:?} frame")).into();
    }
    match serde_json::from_slice::<ErrorReply>(header) {
        Ok(e) => ClientError::Remote {
            code: e.code,
            message: crate::text::escape(&e.message).into_owned(),
        },
        Err(e) => ConnError::Json(e).into(),
    }
}
