//! Files open for dav-server: a stored file read, and an upload written.
//! A WebDAV PUT feeds the same [`Upload`] every door uses, pushed a piece
//! at a time ([`Pushing`]): its partial file, size limit and atomic
//! rename, with the stall deadline kept on the body here ([`Stalling`]).
//! Only a body that reached its end is kept; one cut off leaves nothing.

use std::io::{self, SeekFrom};

use bytes::{Buf, Bytes};
use dav_server::fs::{DavFile, DavMetaData, FsError, FsFuture};
use futures_util::FutureExt;

use super::call::{Call, Failure, Meta};
use crate::files::storage::Reader;
use crate::files::{Broke, Pushing, RelPath, Upload};

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

/// An upload, fed by dav-server a chunk at a time, written from its own
/// task (no channel or task of its own in between).
#[derive(Debug)]
pub(super) struct Writing {
    pushing: Option<Pushing>,
    /// Whether any byte came.
    pushed: bool,
    rel: RelPath,
    meta: Option<Meta>,
    call: Call,
}

impl Writing {
    /// Starts taking in the body for `upload` (begun, started at 0).
    pub(super) fn start(upload: Upload, rel: RelPath, call: Call) -> Writing {
        Writing {
            pushing: Some(upload.pushing()),
            pushed: false,
            rel,
            meta: None,
            call,
        }
    }

    /// Why the upload stopped, for the answer.
    fn broke(&self, b: &Broke<io::Error>) -> FsError {
        let status = crate::server::http::upload::broke_status(b);
        self.call.note(Failure::Answer(status, b.to_string()));
        FsError::GeneralFailure
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), FsError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let Some(pushing) = self.pushing.as_mut() else {
            return Err(FsError::GeneralFailure);
        };
        self.pushed = true;
        match pushing.push(bytes).await {
            Ok(()) => Ok(()),
            Err(b) => {
                // The upload has ended (a limit, the disk) as its rules say.
                self.pushing = None;
                Err(self.broke(&b))
            }
        }
    }

    /// The body has come whole: the file is checked and put in place.
    async fn finish(&mut self) -> Result<(), FsError> {
        let pushing = self.pushing.take().ok_or(FsError::GeneralFailure)?;
        let upload = pushing.end().await.map_err(|b| self.broke(&b))?;
        upload
            .finish(None, self.call.mtime)
            .await
            .map_err(|e| self.call.fail(e))?;
        let rel = self.rel.clone();
        tracing::info!(path = %crate::text::escape(&rel.to_string()), "uploaded over webdav");
        let entry = self
            .call
            .ctx
            .files
            .blocking(move |s| s.stat(&rel))
            .await
            .map_err(|e| self.call.fail(e))?;
        self.meta = Some(Meta::from(&entry));
        Ok(())
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
        async move {
            while buf.has_remaining() {
                let n = buf.chunk().len();
                self.send(buf.chunk()).await?;
                buf.advance(n);
            }
            Ok(())
        }
        .boxed()
    }

    fn write_bytes(&'_ mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move { self.send(&buf).await }.boxed()
    }

    fn read_bytes(&'_ mut self, _count: usize) -> FsFuture<'_, Bytes> {
        std::future::ready(Err(FsError::NotImplemented)).boxed()
    }

    fn seek(&'_ mut self, _pos: SeekFrom) -> FsFuture<'_, u64> {
        // Partial PUTs are not served (the route says so first).
        std::future::ready(Err(FsError::NotImplemented)).boxed()
    }

    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        self.finish().boxed()
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        // Ended before its body came whole: the upload lets go of its
        // partial file on a task, and the answer waits for it.
        if let Some(pushing) = self.pushing.take() {
            let task = if self.call.empty_creates && !self.pushed {
                tokio::spawn(made_empty(pushing, self.rel.clone(), self.call.clone()))
            } else {
                tokio::spawn(pushing.broke())
            };
            if let Ok(mut a) = self.call.abandoned.lock() {
                a.push(task);
            }
        }
    }
}

/// Makes the empty file a LOCK of an unmapped URL asked for.
async fn made_empty(pushing: Pushing, rel: RelPath, call: Call) {
    let made = match pushing.end().await {
        Ok(upload) => upload.finish(None, None).await.map(|_| ()),
        Err(b) => Err(crate::files::FilesError::Io(b.to_string())),
    };
    match made {
        Ok(()) => {
            tracing::info!(path = %crate::text::escape(&rel.to_string()), "made empty by a webdav lock")
        }
        Err(e) => {
            call.fail(e);
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
