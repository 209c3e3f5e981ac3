//! The classic door: the old exercise's client, unmodified.
//!
//! It frames with `struct.pack('i', len)` + JSON and sends a `put`'s bytes
//! right behind the header without waiting, so a refused `put` can only be
//! answered and closed. The same store, name rules, upload and access
//! decision as the native door apply; the classic client has no way to
//! present a token, so it has the anonymous rights.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::files::digest::Algo;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info};

use super::Ctx;
use crate::access::{Action, Denied, Who};
use crate::files::pipe::{CHUNK, spawn_reader};
use crate::files::{BodySource, FilesError, RelPath, UploadOptions};
use crate::text::escape;
use crate::wire::Stream;
use crate::wire::classic::{ClassicReply, ClassicRequest, decode_request, encode_reply};

/// Serves one classic connection: any number of requests until EOF.
pub(crate) async fn serve(stream: Stream, initial: BytesMut, peer: SocketAddr, ctx: Arc<Ctx>) {
    let mut c = Classic {
        stream,
        buf: initial,
        ctx,
        peer,
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
    peer: SocketAddr,
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
                let done = self.put(rel.clone(), size).await?;
                let outcome = match &done {
                    Ok(_) => "ok",
                    Err(why) => why.as_str(),
                };
                self.ctx.audit.record(&super::audit::Change {
                    who: "-",
                    from: self.peer.ip(),
                    door: "classic",
                    what: "put",
                    path: &rel.to_string(),
                    result: outcome,
                });
                match done {
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
                if let Err(d) = self.ctx.files.check(self.who(), Action::Read, &rel) {
                    self.reply_error(&refusal(d)).await?;
                    // Nothing more can be had without the token, which
                    // this client cannot present.
                    return Ok(if d.asks_login() {
                        Next::Close
                    } else {
                        Next::Continue
                    });
                }
                self.get(rel, &req.filename).await?;
                Ok(Next::Continue)
            }
            other => {
                self.reply_error(&format!(
                    "unknown cmd \"{}\"; use put or get",
                    escape(other)
                ))
                .await?;
                Ok(if req.filesize.is_some() {
                    Next::Close
                } else {
                    Next::Continue
                })
            }
        }
    }

    /// Who a classic client is: it cannot present a token.
    fn who(&self) -> Who {
        self.ctx.files.policy().newcomer()
    }

    /// Receives `size` bytes into the store. The outer error is the
    /// connection's; the inner one is a refusal to report.
    async fn put(&mut self, rel: RelPath, size: u64) -> std::io::Result<Result<String, String>> {
        // The classic client cannot resume: nothing of a broken upload is
        // kept.
        let opts = UploadOptions::new(Some(size));
        let mut upload = match self.ctx.files.begin_upload(self.who(), &rel, opts).await {
            Ok(u) => u,
            Err(FilesError::Denied(d)) => return Ok(Err(refusal(d))),
            Err(FilesError::Exists(_)) => {
                return Ok(Err(format!(
                    "{rel} exists; the classic door never overwrites"
                )));
            }
            Err(e) => return Ok(Err(e.to_string())),
        };
        if let Err(e) = upload.start(0).await {
            return Ok(Err(e.to_string()));
        }
        let mut body = ClassicBody {
            buf: &mut self.buf,
            stream: &mut self.stream,
            left: size,
        };
        if let Err(b) = upload.receive(&mut body).await {
            return match b {
                crate::files::Broke::Lost(e) => Err(e),
                crate::files::Broke::Stalled => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "peer too slow",
                )),
                other => Ok(Err(other.to_string())),
            };
        }
        Ok(upload.finish(None, None).await.map_err(|e| e.to_string()))
    }

    async fn get(&mut self, rel: RelPath, filename: &str) -> std::io::Result<()> {
        let opened = self.ctx.files.blocking(move |s| s.open_read(&rel)).await;
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
        let mut source = spawn_reader(file, 0, entry.size, Algo::Sha256.hasher());
        let body = self.ctx.config.deadlines.body;
        while let Some(chunk) = source.next().await {
            let chunk = chunk?;
            // Flushed: TLS keeps what the socket had no room for until then
            // (see `connection::write_flushed`).
            let stream = &mut self.stream;
            let write = async move {
                stream.write_all(&chunk).await?;
                stream.flush().await?;
                Ok::<_, std::io::Error>(chunk)
            };
            let chunk = tokio::time::timeout(body, write).await.map_err(|_| {
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
        let stream = &mut self.stream;
        let write = async move {
            stream.write_all(&out).await?;
            stream.flush().await
        };
        tokio::time::timeout(self.ctx.config.deadlines.body, write)
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

/// A refusal of the access decision, for a client that cannot present
/// the token.
fn refusal(d: Denied) -> String {
    match d {
        Denied::NeedsToken(a) => format!(
            "{} needs authentication with the token, which the classic client cannot present; use the ferry client with FERRY_TOKEN",
            a.words()
        ),
        Denied::NeedsLogin(a) => format!(
            "{} needs logging in, which the classic client cannot do; use the ferry client",
            a.words()
        ),
        Denied::NotGranted(_) | Denied::Forbidden(_) => d.to_string(),
    }
}

/// A put's body: what is already buffered, then the stream, up to the
/// announced size.
struct ClassicBody<'a> {
    buf: &'a mut BytesMut,
    stream: &'a mut Stream,
    left: u64,
}

impl BodySource for ClassicBody<'_> {
    type Error = std::io::Error;

    async fn read_into(&mut self, chunk: &mut Vec<u8>) -> std::io::Result<usize> {
        let room = match chunk.capacity() - chunk.len() {
            0 => CHUNK,
            room => room.min(CHUNK),
        };
        let want = self.left.min(room as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = if !self.buf.is_empty() {
            let n = want.min(self.buf.len());
            chunk.extend_from_slice(&self.buf.split_to(n));
            n
        } else {
            let from = chunk.len();
            chunk.resize(from + want, 0);
            let read = self.stream.read(&mut chunk[from..]).await;
            chunk.truncate(from + *read.as_ref().unwrap_or(&0));
            let n = read?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("connection closed with {} bytes still to come", self.left),
                ));
            }
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}
