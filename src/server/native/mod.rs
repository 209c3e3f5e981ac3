//! The native door: one [`Session`] per connection, reading typed requests
//! and answering each with exactly one terminal frame (`Ok` or `Error`),
//! after any `Partial` frames the request calls for.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use serde::Serialize;
use tracing::{debug, info};

use super::Ctx;
use super::fail::Fail;
use crate::access::{Action, Who};
use crate::files::Storage;
use crate::files::digest::Algo;
use crate::files::{Broke, FilesError, OnBreak, RelPath, UploadOptions};
use crate::text::escape;
use crate::wire::messages::{
    Count, Digest, Done, EntryBatch, ErrorCode, HelloReply, Mtime, PutReady, Request,
    SUPPORTED_VERSIONS, Tree, TreeEntry,
};
use crate::wire::{ConnError, Connection, Kind, Stream};

/// Entries per `Partial` frame of a listing or walk, at most.
const BATCH: usize = 64;

/// JSON per `Partial` frame, at most, before the next entry: a walk's paths
/// are up to 4 KiB each, so a count alone could pass the header cap.
const BATCH_BYTES: usize = 48 * 1024;
/// Largest `plan` body (a folder upload's manifest), and the budget that
/// all manifests being checked at once share (see `Ctx::plan_budget`).
pub(crate) const MAX_PLAN_BODY: u64 = 32 * 1024 * 1024;
/// Wrong tokens tolerated on one connection before it is closed.
const MAX_AUTH_FAILURES: u32 = 3;

mod body;
mod get;
mod login;
mod summary;

use body::FrameBody;
use summary::describe;

/// Whether a request header that did not parse was an `auth`, or does not
/// say what it was.
fn unreadable_auth(header: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(header) {
        Ok(v) => v
            .get("op")
            .and_then(|op| op.as_str())
            .is_none_or(|op| op == "auth"),
        Err(_) => true,
    }
}

/// Serves one native connection to its end.
pub(crate) async fn serve(stream: Stream, initial: BytesMut, peer: SocketAddr, ctx: Arc<Ctx>) {
    let conn = Connection::from_stream(stream, initial, ctx.config.deadlines);
    let mut session = Session {
        conn,
        ctx,
        peer,
        who: None,
        auth_failures: 0,
        refused: false,
        by_password: false,
    };
    match session.run().await {
        Ok(()) | Err(ConnError::Closed) => debug!("connection closed"),
        Err(e) => info!("connection ended: {e}"),
    }
    session.conn.shutdown().await;
}

struct Session {
    conn: Connection,
    ctx: Arc<Ctx>,
    peer: SocketAddr,
    /// `None` until `hello`.
    who: Option<Who>,
    auth_failures: u32,
    /// Whether the last `auth` failed: until one succeeds nothing else is
    /// done, so that a request sent right behind a wrong token (without
    /// waiting for its reply) is refused rather than run anonymously.
    refused: bool,
    /// Whether `who` logged in with a password here (not a login token):
    /// only that makes new login tokens.
    by_password: bool,
}

/// What a client is told of a frame of another kind than a request.
const NOT_A_REQUEST: &str = "clients send request frames only";

/// The error code for a next frame that could not be read.
fn unreadable(e: &ConnError) -> ErrorCode {
    match e {
        ConnError::Timeout(_) => ErrorCode::Timeout,
        ConnError::Frame(crate::wire::frame::FrameError::HeaderLength(_)) => ErrorCode::TooLarge,
        ConnError::Frame(crate::wire::frame::FrameError::UnsupportedVersion(_)) => {
            ErrorCode::UnsupportedVersion
        }
        _ => ErrorCode::BadRequest,
    }
}

impl Session {
    async fn run(&mut self) -> Result<(), ConnError> {
        loop {
            let head = tokio::select! {
                h = self.conn.next_head() => h,
                _ = self.ctx.stop.cancelled() => return Ok(()),
            };
            let head = match head {
                Ok(h) => h,
                Err(ConnError::Closed) => return Ok(()),
                Err(e) => {
                    let _ = self.conn.send_error(unreadable(&e), e.to_string()).await;
                    return Err(e);
                }
            };
            if head.kind != Kind::Request {
                self.conn
                    .send_error(ErrorCode::BadRequest, NOT_A_REQUEST)
                    .await?;
                return Ok(());
            }
            let req: Request = match serde_json::from_slice(&head.header) {
                Ok(r) => r,
                Err(e) => {
                    // An `auth` that cannot be read failed like a wrong
                    // token: the request sent behind it must not run.
                    if unreadable_auth(&head.header) {
                        self.refused = true;
                    }
                    let msg = format!("malformed request: {}", escape(&e.to_string()));
                    self.conn.send_error(ErrorCode::BadRequest, msg).await?;
                    if head.body_len > 0 {
                        return Ok(());
                    }
                    continue;
                }
            };
            let op = req.op();
            let takes_body = matches!(req, Request::Plan { .. });
            if head.body_len > 0 && !takes_body {
                self.conn
                    .send_error(ErrorCode::BadRequest, format!("{op} takes no body"))
                    .await?;
                return Ok(());
            }
            let started = std::time::Instant::now();
            let summary = describe(&req);
            let who = self.who();
            let result = self.handle(req, head.body_len).await;
            let ms = started.elapsed().as_millis() as u64;
            if matches!(
                op,
                "put" | "commit" | "rm" | "mkdir" | "mv" | "exec" | "share" | "login"
            ) {
                let outcome = match &result {
                    Ok(()) => "ok".to_string(),
                    Err(Fail::Reply(code, msg) | Fail::Fatal(code, msg)) => {
                        format!("{code}: {msg}")
                    }
                    Err(Fail::Conn(e)) => format!("connection lost: {e}"),
                };
                self.ctx.audit.record(&super::audit::Change {
                    who: self.ctx.files.policy().name_of(self.who.unwrap_or(who)),
                    from: self.peer.ip(),
                    door: "native",
                    what: op,
                    path: &summary,
                    result: &outcome,
                });
            }
            match result {
                Ok(()) if matches!(op, "hello" | "auth") => debug!(op, ms, "ok"),
                Ok(()) => info!(op, target = %summary, ms, "ok"),
                Err(Fail::Reply(code, msg)) => {
                    info!(op, target = %summary, ms, %code, "refused: {}", escape(&msg));
                    self.conn.send_error(code, msg).await?;
                }
                Err(Fail::Fatal(code, msg)) => {
                    info!(op, target = %summary, ms, %code, "refused, closing: {}", escape(&msg));
                    self.conn.send_error(code, msg).await?;
                    return Ok(());
                }
                Err(Fail::Conn(e)) => {
                    info!(op, target = %summary, ms, "connection lost: {e}");
                    return Err(e);
                }
            }
        }
    }

    fn who(&self) -> Who {
        self.who.unwrap_or(Who::Anonymous)
    }

    /// Asks the access decision; a refusal says whether a token or a
    /// server flag would help.
    fn require(&self, action: Action, path: &RelPath) -> Result<(), Fail> {
        Ok(self.ctx.files.check(self.who(), action, path)?)
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, Fail>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Storage) -> Result<T, FilesError> + Send + 'static,
    {
        let ctx = self.ctx.clone();
        Ok(ctx.files.blocking(f).await?)
    }

    async fn ok<T: Serialize>(&mut self, reply: &T) -> Result<(), Fail> {
        self.conn.send(Kind::Ok, reply, 0).await.map_err(Fail::from)
    }

    async fn handle(&mut self, req: Request, body_len: u64) -> Result<(), Fail> {
        if self.who.is_none() && !matches!(req, Request::Hello { .. }) {
            return Err(Fail::Fatal(
                ErrorCode::HelloRequired,
                "send hello first".into(),
            ));
        }
        if self.refused && !matches!(req, Request::Hello { .. } | Request::Auth { .. }) {
            let msg = "not done: the login before it failed".to_string();
            // A body left unread would be taken for the next request.
            return Err(if body_len > 0 {
                Fail::Fatal(ErrorCode::AuthFailed, msg)
            } else {
                Fail::Reply(ErrorCode::AuthFailed, msg)
            });
        }
        match req {
            Request::Hello { versions, .. } => self.hello(&versions).await,
            Request::Share {
                path,
                upload,
                expires,
                revoke,
            } => {
                let who = self.who();
                let reply = super::share::answer(&self.ctx, who, path, upload, expires, revoke)?;
                self.ok(&reply).await
            }
            Request::Auth { user: None, token } => self.auth(&token).await,
            Request::Login { expires } => self.mint(expires).await,
            Request::Auth {
                user: Some(name),
                token,
            } => self.login(&name, &token).await,
            Request::Ls { path } => {
                let rel = RelPath::parse(&path)?;
                self.require(Action::Read, &rel)?;
                self.list_paged(rel).await
            }
            Request::Walk { path } => {
                let rel = RelPath::parse(&path)?;
                let tree = self.ctx.files.walk(self.who(), rel).await?;
                self.send_tree(tree).await
            }
            Request::Stat { path } => {
                let rel = RelPath::parse(&path)?;
                self.require(Action::Read, &rel)?;
                let entry = self.blocking(move |s| s.stat(&rel)).await?;
                self.ok(&entry).await
            }
            Request::Get {
                path,
                offset,
                prefix_sha256,
                digest,
                fresh,
            } => {
                let algo = algo_of(digest)?;
                self.get(&path, offset, prefix_sha256, algo, fresh).await
            }
            Request::Put {
                path,
                size,
                mtime,
                force,
                resume,
                digest,
            } => {
                let algo = algo_of(digest)?;
                self.put(&path, size, mtime, force, resume, algo).await
            }
            Request::Plan { path, force } => self.plan(&path, force, body_len).await,
            Request::Rm { path, recursive } => {
                let rel = RelPath::parse(&path)?;
                let who = self.who();
                self.ctx.files.remove_for(who, rel, recursive).await?;
                self.ok(&Done {}).await
            }
            Request::Mkdir { path, parents } => {
                let rel = RelPath::parse(&path)?;
                let who = self.who();
                self.ctx.files.mkdir_for(who, rel, parents).await?;
                self.ok(&Done {}).await
            }
            Request::Mv { from, to, force } => {
                let (from, to) = (RelPath::parse(&from)?, RelPath::parse(&to)?);
                let who = self.who();
                self.ctx.files.rename_for(who, from, to, force).await?;
                self.ok(&Done {}).await
            }
            Request::Exec(params) => {
                self.require(Action::Exec, &RelPath::root())?;
                super::exec::exec(&mut self.conn, &self.ctx, self.peer, params).await
            }
            Request::Data { .. } | Request::Commit { .. } => Err(Fail::Fatal(
                ErrorCode::BadRequest,
                "data and commit belong to a put".into(),
            )),
            Request::Chat {
                nick,
                rooms,
                since_ms,
            } => {
                self.require(Action::Chat, &RelPath::root())?;
                let who = self.who();
                super::chat::native(&mut self.conn, &self.ctx, who, nick, rooms, since_ms).await
            }
            Request::Stdin
            | Request::Cancel
            | Request::End
            | Request::Resize { .. }
            | Request::Say { .. } => Err(Fail::Fatal(
                ErrorCode::BadRequest,
                "stdin, cancel, resize and end belong to an exec, say to a chat".into(),
            )),
        }
    }

    async fn hello(&mut self, versions: &[u8]) -> Result<(), Fail> {
        let Some(version) = SUPPORTED_VERSIONS
            .iter()
            .copied()
            .find(|v| versions.contains(v))
        else {
            return Err(Fail::Fatal(
                ErrorCode::UnsupportedVersion,
                format!("this server speaks protocol versions {SUPPORTED_VERSIONS:?}"),
            ));
        };
        let cfg = &self.ctx.config;
        let policy = self.ctx.files.policy();
        // A repeated hello (ferry ping measures round trips with them)
        // keeps what the connection already has, authentication included;
        // after a failed login, that is nothing until one succeeds.
        let who = self.who.unwrap_or(policy.newcomer());
        self.who = Some(who);
        let perms = match self.refused {
            true => crate::access::Rights::default().into(),
            false => policy.rights(who).into(),
        };
        let reply = HelloReply {
            version,
            server: cfg.name.clone(),
            software: crate::SOFTWARE.to_string(),
            // With `tls` there, a client without a pin for this server
            // moves to TLS before it sends anything that matters.
            features: self.ctx.features(),
            auth_required: cfg.auth_required(),
            auth_available: self.ctx.gate.enabled(),
            permissions: perms,
        };
        self.ok(&reply).await
    }

    /// A listing sent as the storage pages it: a few pages in memory at
    /// most, however large the folder.
    async fn list_paged(&mut self, rel: RelPath) -> Result<(), Fail> {
        let who = self.who();
        let mut pages = self.ctx.files.list_pages(who, rel).await?;
        let mut count = 0u64;
        while let Some(page) = pages.next().await {
            count += page.len() as u64;
            self.send_partials(page).await?;
        }
        pages.end().await?;
        self.ok(&Count {
            count,
            ..Count::default()
        })
        .await
    }

    /// A walk's entries, then what it left out.
    async fn send_tree(&mut self, tree: Tree) -> Result<(), Fail> {
        let count = tree.entries.len() as u64;
        self.send_partials(tree.entries).await?;
        self.ok(&Count::walked(count, tree.skipped)).await
    }

    /// Entries as `partial` frames of up to [`BATCH`] entries and about
    /// [`BATCH_BYTES`] of JSON.
    async fn send_partials<T: Serialize>(&mut self, entries: Vec<T>) -> Result<(), Fail> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for e in entries {
            let len = serde_json::to_vec(&e).map_or(0, |j| j.len()) + 1;
            if !batch.is_empty() && (batch.len() == BATCH || bytes + len > BATCH_BYTES) {
                self.send_batch(std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += len;
            batch.push(e);
        }
        if !batch.is_empty() {
            self.send_batch(batch).await?;
        }
        Ok(())
    }

    async fn send_batch<T: Serialize>(&mut self, entries: Vec<T>) -> Result<(), Fail> {
        self.conn
            .send(Kind::Partial, &EntryBatch { entries }, 0)
            .await?;
        Ok(())
    }

    async fn put(
        &mut self,
        path: &str,
        size: u64,
        mtime: Option<Mtime>,
        force: bool,
        resume: bool,
        algo: Algo,
    ) -> Result<(), Fail> {
        let rel = RelPath::parse(path)?;
        let opts = UploadOptions {
            overwrite: force,
            resume,
            on_break: OnBreak::Keep,
            ..UploadOptions::new(Some(size))
        };
        let mut upload = self.ctx.files.begin_upload(self.who(), &rel, opts).await?;
        let prefix = upload.held_digest(algo).await?;
        let (offered, prefix) = match prefix {
            Some(p) if upload.held() <= size => (upload.held(), Some(p)),
            _ => (0, None),
        };
        self.conn
            .send(
                Kind::Partial,
                &PutReady {
                    offset: offered,
                    prefix_sha256: prefix,
                },
                0,
            )
            .await?;
        let (head, mut upload) = self.upload_frame(upload).await?;
        let offset = match serde_json::from_slice::<Request>(&head.header) {
            Ok(Request::Data { offset })
                if (offset == 0 || offset == offered)
                    && head.body_len == size - offset.min(size) =>
            {
                offset
            }
            _ => {
                return Err(Fail::Fatal(
                    ErrorCode::BadRequest,
                    format!(
                        "expected data from byte 0 or {offered} with {} bytes of body",
                        size - offered
                    ),
                ));
            }
        };
        upload
            .start(offset)
            .await
            .map_err(|e| Fail::from(e).fatal())?;
        if offset > 0 {
            debug!(offset, "resuming upload");
        }
        match upload.receive(&mut FrameBody(&mut self.conn)).await {
            Ok(_) => {}
            Err(Broke::Lost(e)) => return Err(Fail::Conn(e)),
            Err(Broke::Stalled) => return Err(Fail::Conn(ConnError::Timeout("the frame body"))),
            Err(Broke::ShuttingDown) => {
                return Err(Fail::Fatal(
                    ErrorCode::ShuttingDown,
                    Broke::<ConnError>::ShuttingDown.to_string(),
                ));
            }
            Err(e @ Broke::TooLarge(_)) => {
                return Err(Fail::Fatal(ErrorCode::TooLarge, e.to_string()));
            }
            Err(e @ Broke::Storage { .. }) => {
                return Err(Fail::Fatal(ErrorCode::Io, e.to_string()));
            }
        }
        let (head, upload) = self.upload_frame(upload).await?;
        let sha = match serde_json::from_slice::<Request>(&head.header) {
            Ok(Request::Commit { sha256 }) if head.body_len == 0 => sha256,
            _ => return Err(Fail::Fatal(ErrorCode::BadRequest, "expected commit".into())),
        };
        let sha256 = upload.finish(Some(sha), mtime).await?;
        self.ok(&Digest { size, sha256 }).await
    }

    async fn plan(&mut self, path: &str, force: bool, body_len: u64) -> Result<(), Fail> {
        if body_len > MAX_PLAN_BODY {
            return Err(Fail::Fatal(
                ErrorCode::TooLarge,
                format!("a folder manifest may be at most {MAX_PLAN_BODY} bytes"),
            ));
        }
        // Refused before its body is read: the connection closes, since
        // the body is left unread.
        let base = RelPath::parse(path).map_err(|e| Fail::from(e).fatal())?;
        self.require(Action::Create, &base).map_err(Fail::fatal)?;
        // Checking a manifest costs several times its size in memory:
        // manifests being checked share one budget, so that many at once
        // cost what the largest one does.
        let kib = u32::try_from(body_len.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        let _budget = tokio::time::timeout(
            self.ctx.config.deadlines.body,
            self.ctx.plan_budget.clone().acquire_many_owned(kib),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            Fail::Fatal(
                ErrorCode::Busy,
                "the server is busy checking other folder uploads; try again".into(),
            )
        })?;
        let mut body = Vec::with_capacity(body_len as usize);
        while self.conn.body_remaining() > 0 {
            body.extend_from_slice(&self.conn.next_chunk().await?);
        }
        let entries: Vec<TreeEntry> = serde_json::from_slice(&body)
            .map_err(|e| Fail::Reply(ErrorCode::BadRequest, format!("malformed manifest: {e}")))?;
        drop(body);
        let n = entries.len();
        self.ctx
            .files
            .check_plan(self.who(), base, entries, force)
            .await?;
        debug!(entries = n, "folder upload planned");
        self.ok(&Done {}).await
    }
}

/// The digest a request names (absent: SHA-256).
fn algo_of(name: Option<String>) -> Result<Algo, Fail> {
    match name {
        None => Ok(Algo::Sha256),
        Some(n) => Algo::parse(&n).ok_or_else(|| {
            Fail::Reply(
                ErrorCode::BadRequest,
                format!("unknown digest {n:?}; this server knows sha256 and blake3"),
            )
        }),
    }
}
