//! The classic door: the old exercise's client, unmodified.
//!
//! It frames with `struct.pack('i', len)` + JSON and sends a `put`'s bytes
//! right behind the header without waiting, so a refused `put` can only be
//! answered and closed. The same store, name rules and permissions as the
//! native door apply; since the classic client has no way to authenticate,
//! a server with a token refuses this door outright.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info};

use super::Ctx;
use crate::files::pipe::{CHUNK, spawn_reader, spawn_writer};
use crate::files::{FilesError, RelPath};
use crate::text::escape;
use crate::wire::Stream;
use crate::wire::classic::{ClassicReply, ClassicRequest, decode_request, encode_reply};

/// Serves one classic connection: any number of requests until EOF.
pub(crate) async fn serve(stream: Stream, initial: BytesMut, peer: SocketAddr, ctx: Arc<Ctx>) {
    let mut c = Classic {
        stream,
        buf: initial,
        ctx,
    };
    match c.run().await {
        Ok(()) => debug!("classic connection closed"),
        Err(e) => info!(%peer, "classic connection ended: {e}"),
    }
    let _ = c.stream.shutdown().await;
    crate::wire::connection::linger(&mut c.stream).await;
}

struct Classic {
    stream: Stream,
    buf: BytesMut,
    ctx: Arc<Ctx>,
}

/// What to do after a request.
enum Next {
    Continue,
    Close,
}

impl Classic {
    async fn run(&mut self) -> std::io::Result<()> {
        let stop = self.ctx.stop.clone();
        loop {
            let req = tokio::select! {
                r = self.read_request() => r?,
                _ = stop.cancelled() => return Ok(()),
            };
            let Some(req) = req else { return Ok(()) };
            let next = self.handle(req).await?;
            if matches!(next, Next::Close) {
                return Ok(());
            }
        }
    }

    /// The next header, or `None` at a clean end of stream.
    async fn read_request(&mut self) -> std::io::Result<Option<ClassicRequest>> {
        let d = self.ctx.config.deadlines;
        // A header must arrive whole within the header deadline from its
        // first byte, however it trickles in (not per read).
        let mut header_due = (!self.buf.is_empty()).then(|| tokio::time::Instant::now() + d.header);
        loop {
            match decode_request(&mut self.buf) {
                Ok(Some(r)) => return Ok(Some(r)),
                Ok(None) => {}
                Err(e) => {
                    self.reply_error(&e.to_string()).await?;
                    return Ok(None);
                }
            }
            let due = if self.buf.is_empty() {
                tokio::time::Instant::now() + d.idle
            } else {
                *header_due.get_or_insert_with(|| tokio::time::Instant::now() + d.header)
            };
            self.buf.reserve(4096);
            let n = tokio::time::timeout_at(due, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "peer too slow")
                })??;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn handle(&mut self, req: ClassicRequest) -> std::io::Result<Next> {
        let name = escape(&req.filename).into_owned();
        // A put's bytes are already on their way: any refusal must close.
        let refuse_then = if req.cmd == "put" {
            Next::Close
        } else {
            Next::Continue
        };
        if self.ctx.gate.enabled() {
            self.reply_error(
                "this server requires authentication; use the ferry client with FERRY_TOKEN",
            )
            .await?;
            return Ok(Next::Close);
        }
        let perms = self.ctx.config.granted;
        let rel = match RelPath::parse(&req.filename) {
            Ok(r) if !r.is_root() => r,
            Ok(_) => {
                self.reply_error("a file name is required").await?;
                return Ok(refuse_then);
            }
            Err(e) => {
                info!(cmd = %escape(&req.cmd), "classic: {e}");
                self.reply_error(&e.to_string()).await?;
                return Ok(refuse_then);
            }
        };
        match req.cmd.as_str() {
            "put" => {
                let Some(size) = req.filesize else {
                    self.reply_error("put needs filesize").await?;
                    return Ok(Next::Close);
                };
                if !perms.upload {
                    self.reply_error(
                        "this server does not allow uploads (start it with --allow-upload)",
                    )
                    .await?;
                    return Ok(Next::Close);
                }
                match self.put(rel, size).await? {
                    Ok(sha256) => {
                        info!(file = %name, size, "classic put stored");
                        self.reply(&ClassicReply {
                            cmd: Some("put".into()),
                            filename: Some(req.filename.clone()),
                            filesize: Some(size),
                            sha256: Some(sha256),
                            ok: Some(true),
                            error: None,
                        })
                        .await?;
                        Ok(Next::Continue)
                    }
                    Err(msg) => {
                        info!(file = %name, "classic put refused: {}", escape(&msg));
                        self.reply_error(&msg).await?;
                        Ok(Next::Close)
                    }
                }
            }
            "get" => {
                if !perms.read {
                    self.reply_error("reading is not allowed").await?;
                    return Ok(Next::Continue);
                }
                self.get(rel, &req.filename).await?;
                Ok(Next::Continue)
            }
            other => {
                self.reply_error(&format!("unknown cmd {:?}; use put or get", escape(other)))
                    .await?;
                Ok(if req.filesize.is_some() {
                    Next::Close
                } else {
                    Next::Continue
                })
            }
        }
    }

    /// Receives `size` bytes into the store. The outer error is the
    /// connection's; the inner one is a refusal to report.
    async fn put(&mut self, rel: RelPath, size: u64) -> std::io::Result<Result<String, String>> {
        let ctx = self.ctx.clone();
        let begun = tokio::task::spawn_blocking(move || {
            ctx.config.check_upload(size)?;
            let mut up = ctx.store.begin_upload(&rel, false, false)?;
            up.part
                .start(0, size)
                .map_err(|e| FilesError::Io(e.to_string()))?;
            Ok::<_, FilesError>(up)
        })
        .await
        .map_err(std::io::Error::other)?;
        let up = match begun {
            Ok(up) => up,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let mut sink = spawn_writer(up.part);
        let mut left = size;
        let body = self.ctx.config.deadlines.body;
        let abort = self.ctx.abort.clone();
        let mut failure = None;
        while left > 0 {
            let mut chunk = sink.buffer();
            let want = left.min(CHUNK as u64) as usize;
            if !self.buf.is_empty() {
                let n = want.min(self.buf.len());
                chunk.extend_from_slice(&self.buf.split_to(n));
            } else {
                chunk.resize(want, 0);
                let read = tokio::select! {
                    r = tokio::time::timeout(body, self.stream.read(&mut chunk)) => r,
                    _ = abort.cancelled() => { failure = Some("server shutting down".to_string()); break; }
                };
                match read {
                    Ok(Ok(0)) => {
                        failure =
                            Some(format!("connection closed with {left} bytes still to come"));
                        break;
                    }
                    Ok(Ok(n)) => chunk.truncate(n),
                    Ok(Err(e)) => {
                        failure = Some(e.to_string());
                        break;
                    }
                    Err(_) => {
                        failure = Some("peer too slow".to_string());
                        break;
                    }
                }
            }
            left -= chunk.len() as u64;
            if !sink.send(chunk).await {
                break;
            }
        }
        let (part, written) = sink.finish().await?;
        // The guard is held until the file is in place, so that no other
        // upload of the same name can reuse the partial file meanwhile.
        let guard = up.guard;
        if let Some(why) = failure {
            // The classic client cannot resume: nothing of it is kept.
            part.discard();
            return Err(std::io::Error::other(why));
        }
        if let Err(e) = written {
            part.discard();
            return Ok(Err(format!("storing failed: {e}")));
        }
        let done = tokio::task::spawn_blocking(move || part.finish(None, None, false))
            .await
            .map_err(std::io::Error::other)?;
        drop(guard);
        Ok(done.map_err(|e| FilesError::from(e).to_string()))
    }

    async fn get(&mut self, rel: RelPath, filename: &str) -> std::io::Result<()> {
        let ctx = self.ctx.clone();
        let opened = tokio::task::spawn_blocking(move || ctx.store.open_read(&rel))
            .await
            .map_err(std::io::Error::other)?;
        let (file, entry) = match opened {
            Ok(pair) => pair,
            Err(e) => return self.reply_error(&e.to_string()).await,
        };
        self.reply(&ClassicReply {
            cmd: Some("get".into()),
            filename: Some(filename.to_string()),
            filesize: Some(entry.size),
            ..Default::default()
        })
        .await?;
        let mut source = spawn_reader(file, 0, entry.size, Sha256::new());
        let body = self.ctx.config.deadlines.body;
        while let Some(chunk) = source.next().await {
            let chunk = chunk?;
            tokio::time::timeout(body, self.stream.write_all(&chunk))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "peer too slow")
                })??;
            source.recycle(chunk);
        }
        source.finish().await?;
        info!(file = %escape(filename), size = entry.size, "classic get sent");
        Ok(())
    }

    async fn reply(&mut self, reply: &ClassicReply) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        encode_reply(reply, &mut out);
        tokio::time::timeout(self.ctx.config.deadlines.body, self.stream.write_all(&out))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "peer too slow"))?
    }

    async fn reply_error(&mut self, message: &str) -> std::io::Result<()> {
        self.reply(&ClassicReply {
            error: Some(message.to_string()),
            ..Default::default()
        })
        .await
    }
}
