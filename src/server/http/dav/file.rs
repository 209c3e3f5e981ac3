//! Files open for dav-server: a stored file read, and an upload written.
//! A WebDAV PUT feeds the same [`Upload`] every door uses, through a
//! channel: its partial file, size limit, stall deadline and atomic
//! rename. Only a body that reached its end is kept; one cut off leaves
//! nothing.

use std::io::{self, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Buf, Bytes};
use dav_server::fs::{DavFile, DavMetaData, FsError, FsFuture};
use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::call::{Call, Failure, Meta, UploadTask};
use crate::files::storage::Reader;
use crate::files::{BodySource, RelPath, Upload};

/// Largest read handed back at once.
const MAX_READ: usize = 1 << 20;

/// A stored file, read.
#[derive(Debug)]
pub(super) struct Reading {
    reader: Option<Reader>,
    meta: Meta,
}

impl Reading {
    pub(super) fn new(reader: Reader, meta: Meta) -> Reading {
        Reading {
            reader: Some(reader),
            meta,
        }
    }

    /// Runs `f` on the file on a blocking thread.
    async fn on_file<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Reader) -> io::Result<T> + Send + 'static,
    ) -> Result<T, FsError> {
        let mut reader = self.reader.take().ok_or(FsError::GeneralFailure)?;
        let (reader, r) = tokio::task::spawn_blocking(move || {
            let r = f(&mut reader);
            (reader, r)
        })
        .await
        .map_err(|_| FsError::GeneralFailure)?;
        self.reader = Some(reader);
        r.map_err(|_| FsError::GeneralFailure)
    }
}

impl DavFile for Reading {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        std::future::ready(Ok(m)).boxed()
    }

    fn write_buf(&'_ mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        std::future::ready(Err(FsError::Forbidden)).boxed()
    }

    fn write_bytes(&'_ mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        std::future::ready(Err(FsError::Forbidden)).boxed()
    }

    fn read_bytes(&'_ mut self, count: usize) -> FsFuture<'_, Bytes> {
        let want = count.min(MAX_READ);
        async move {
            self.on_file(move |r| {
                use std::io::Read;
                let mut buf = vec![0; want];
                let n = r.read(&mut buf)?;
                buf.truncate(n);
                Ok(Bytes::from(buf))
            })
            .await
        }
        .boxed()
    }

    fn seek(&'_ mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        async move {
            self.on_file(move |r| {
                use std::io::Seek;
                r.seek(pos)
            })
            .await
        }
        .boxed()
    }

    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        std::future::ready(Ok(())).boxed()
    }
}

/// An upload, fed by dav-server a chunk at a time.
#[derive(Debug)]
pub(super) struct Writing {
    tx: Option<mpsc::Sender<Bytes>>,
    /// Set once the body has come whole: only then does the end of the
    /// chunks end the file.
    whole: Arc<AtomicBool>,
    task: Option<UploadTask>,
    meta: Option<Meta>,
    call: Call,
}

impl Writing {
    /// Starts taking in the body for `upload` (begun, started at 0).
    pub(super) fn start(mut upload: Upload, rel: RelPath, call: Call) -> Writing {
        let (tx, rx) = mpsc::channel(8);
        let whole = Arc::new(AtomicBool::new(false));
        let mut source = Fed {
            rx,
            whole: whole.clone(),
        };
        let ctx = call.ctx.clone();
        let mtime = call.mtime;
        let task = tokio::spawn(async move {
            upload.receive(&mut source).await.map_err(|b| {
                Failure::Answer(crate::server::http::upload::broke_status(&b), b.to_string())
            })?;
            upload.finish(None, mtime).await.map_err(Failure::Files)?;
            tracing::info!(path = %crate::text::escape(&rel.to_string()), "uploaded over webdav");
            ctx.files
                .blocking(move |s| s.stat(&rel))
                .await
                .map_err(Failure::Files)
        });
        Writing {
            tx: Some(tx),
            whole,
            task: Some(task),
            meta: None,
            call,
        }
    }

    /// The outcome of an upload that stopped.
    async fn outcome(&mut self) -> Result<(), FsError> {
        self.tx = None;
        let Some(task) = self.task.take() else {
            return Err(FsError::GeneralFailure);
        };
        match task.await {
            Ok(Ok(entry)) => {
                self.meta = Some(Meta::from(&entry));
                Ok(())
            }
            Ok(Err(Failure::Files(e))) => Err(self.call.fail(e)),
            Ok(Err(why)) => {
                self.call.note(why);
                Err(FsError::GeneralFailure)
            }
            Err(_) => Err(FsError::GeneralFailure),
        }
    }

    async fn send(&mut self, bytes: Bytes) -> Result<(), FsError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let sent = match &self.tx {
            Some(tx) => tx.send(bytes).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The upload stopped (a limit, the disk): its error is the answer.
        self.outcome().await?;
        Err(FsError::GeneralFailure)
    }
}

impl DavFile for Writing {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m = self
            .meta
            .clone()
            .map(|m| Box::new(m) as Box<dyn DavMetaData>)
            .ok_or(FsError::GeneralFailure);
        std::future::ready(m).boxed()
    }

    fn write_buf(&'_ mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        self.send(bytes).boxed()
    }

    fn write_bytes(&'_ mut self, buf: Bytes) -> FsFuture<'_, ()> {
        self.send(buf).boxed()
    }

    fn read_bytes(&'_ mut self, _count: usize) -> FsFuture<'_, Bytes> {
        std::future::ready(Err(FsError::NotImplemented)).boxed()
    }

    fn seek(&'_ mut self, _pos: SeekFrom) -> FsFuture<'_, u64> {
        // Partial PUTs are not served (the route says so first).
        std::future::ready(Err(FsError::NotImplemented)).boxed()
    }

    /// The body has come whole: the file is checked and put in place.
    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        self.whole.store(true, Ordering::Release);
        self.outcome().boxed()
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        // Ended before its body came whole: the upload lets go of its
        // partial file once it sees the chunks stop; the answer waits.
        self.tx = None;
        if let Some(task) = self.task.take() {
            if let Ok(mut a) = self.call.abandoned.lock() {
                a.push(task);
            }
        }
    }
}

/// The chunks of a PUT's body, as an upload's source.
struct Fed {
    rx: mpsc::Receiver<Bytes>,
    whole: Arc<AtomicBool>,
}

impl BodySource for Fed {
    type Error = io::Error;

    async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, io::Error> {
        match self.rx.recv().await {
            Some(b) => {
                buf.extend_from_slice(&b);
                Ok(b.len())
            }
            None if self.whole.load(Ordering::Acquire) => Ok(0),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the request body broke off",
            )),
        }
    }
}

/// A PUT's body with the stall deadline on it: dav-server reads the body
/// itself, so the deadline that an upload keeps on its source is kept here
/// too, and a body that stops coming ends the request (408).
pub(super) struct Stalling {
    inner: axum::body::Body,
    limit: std::time::Duration,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    call: Call,
}

impl Stalling {
    pub(super) fn new(inner: axum::body::Body, limit: std::time::Duration, call: Call) -> Stalling {
        Stalling {
            inner,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
            call,
        }
    }
}

impl axum::body::HttpBody for Stalling {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.limit;
                this.sleep.as_mut().reset(next);
                Poll::Ready(frame)
            }
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let why = format!(
                    "no bytes of the body came for {} s; nothing of it was kept",
                    this.limit.as_secs()
                );
                this.call.note(Failure::Answer(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    why.clone(),
                ));
                Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    why,
                )))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
