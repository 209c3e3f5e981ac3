//! The client library the CLI (and the tests) use: one [`Client`] per
//! connection, a method per request, and the transfers with resume and
//! verification.
//!
//! Everything a server sends that becomes a local name passes the same
//! validator the server uses, before anything is written.

pub mod addr;
mod answer;
mod chat;
mod connect;
pub mod digests;
mod exec;
pub use exec::Resizes;
pub mod local;
mod put;
mod transfer;

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;

pub use addr::{Remote, parse_remote};
pub use chat::{ChatEvents, ChatLines, ChatSession};
pub use transfer::{TransferOpts, Transferred};

use crate::files::{NameError, RelPath};
use crate::tls::Fingerprint;
use crate::tls::client::TlsOptions;
use crate::wire::messages::{
    Count, Done, Entry, EntryBatch, ErrorCode, ErrorReply, HelloReply, Request, Skipped, TreeEntry,
};
use crate::wire::{ConnError, Connection, Kind};

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
    /// Whatever read the output (`get HOST:/FILE - | head`) stopped
    /// reading.
    #[error("the output was closed")]
    OutputClosed,
    /// The command was told to stop (Ctrl-C) in the middle of a transfer;
    /// what arrived is kept to resume.
    #[error("{0}")]
    Interrupted(String),
    /// The bytes received do not match the server's digest.
    #[error("digest mismatch: {0}")]
    Checksum(String),
    /// Reached in clear, the server said it has TLS: connect again with
    /// it (see [`Client::connect_with`]).
    #[error("the server offers TLS")]
    OfferedTls,
}

impl ClientError {
    /// A write to the command's own output that failed: the reader having
    /// left (`OutputClosed`, 141 without a word) or anything else (a full
    /// disk: the error, 1). Every command's output goes through this.
    pub fn output(e: std::io::Error) -> ClientError {
        match e.kind() {
            std::io::ErrorKind::BrokenPipe => ClientError::OutputClosed,
            _ => ClientError::Local(format!("writing the output: {e}")),
        }
    }

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
    /// The digests of local files remembered between runs, when kept.
    known: Option<digests::KnownDigests>,
    /// The reply to an `auth` sent without waiting for it (the server
    /// lists `auth-pipelining`) is still to be read: it comes before the
    /// reply to the request that followed it.
    owed: bool,
    /// Fired to stop a transfer where it is (Ctrl-C): what arrived is
    /// kept to resume from.
    stop: tokio_util::sync::CancellationToken,
}

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

    /// What the server said in its hello, with the permissions that auth
    /// gave (its reply read first if it is still owed).
    pub async fn hello(&mut self) -> Result<HelloReply> {
        self.settle().await?;
        Ok(self.hello.clone())
    }

    /// Whether the server lists `feature` in its hello.
    pub fn offers(&self, feature: &str) -> bool {
        self.hello.features.iter().any(|f| f == feature)
    }

    pub(crate) async fn request<T: DeserializeOwned>(&mut self, req: &Request) -> Result<T> {
        self.conn.send(Kind::Request, req, 0).await?;
        self.settle().await?;
        terminal(&mut self.conn).await
    }

    /// Reads `Partial` batches until the terminal count, which it gives too.
    async fn batches<T: DeserializeOwned>(&mut self, req: &Request) -> Result<(Vec<T>, Count)> {
        self.conn.send(Kind::Request, req, 0).await?;
        self.settle().await?;
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
        self.settle().await?;
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
        exec::send(&mut self.conn, spec, stdin.is_some()).await?;
        self.settle().await?;
        exec::exec(&mut self.conn, stdin, stdout, stderr, cancel, None).await
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
        exec::send(&mut self.conn, spec, true).await?;
        self.settle().await?;
        exec::exec(
            &mut self.conn,
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
        self.settle().await?;
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
        self.settle().await?;
        chat::join(&mut self.conn, nick, rooms, since_ms.filter(|_| can)).await
    }

    /// The raw connection, for tests that speak the protocol by hand.
    pub async fn connection(&mut self) -> Result<&mut Connection> {
        self.settle().await?;
        Ok(&mut self.conn)
    }
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
