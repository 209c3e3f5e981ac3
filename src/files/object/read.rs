//! A stored object open for reading: `Read + Seek` over ranged GETs, each
//! pinned to the object's ETag, so a file replaced while it is being read
//! fails the read instead of mixing two versions.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore};

use super::Bucket;
use crate::files::storage::StoredFile;

type Body = BoxStream<'static, object_store::Result<Bytes>>;

/// An object being read.
pub(super) struct ObjectReader {
    pub(super) bucket: Arc<Bucket>,
    pub(super) path: Path,
    pub(super) etag: Option<String>,
    pub(super) size: u64,
    pub(super) pos: u64,
    /// The body of the GET in progress, from `pos` on (in a mutex only
    /// so that the reader is `Sync`; it is reached through `get_mut`).
    body: std::sync::Mutex<Option<Body>>,
    /// Bytes of the body not handed out yet.
    left: Bytes,
    /// The digests ferry kept of this version of the object.
    pub(super) digests: Vec<(crate::files::digest::Algo, String)>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectReader({}, {}/{})", self.path, self.pos, self.size)
    }
}

impl ObjectReader {
    pub(super) fn new(bucket: Arc<Bucket>, path: Path, etag: Option<String>, size: u64) -> Self {
        ObjectReader {
            bucket,
            path,
            etag,
            size,
            pos: 0,
            body: std::sync::Mutex::new(None),
            left: Bytes::new(),
            digests: Vec::new(),
        }
    }

    /// Starts a GET of the rest of the object.
    fn open_body(&mut self) -> io::Result<()> {
        let opts = GetOptions {
            if_match: self.etag.clone(),
            range: Some(GetRange::Offset(self.pos)),
            ..GetOptions::default()
        };
        let store = self.bucket.store.clone();
        let path = self.path.clone();
        let got = self
            .bucket
            .wait(async move { store.get_opts(&path, opts).await })
            .map_err(|e| io_error(&self.path, e))?;
        let GetResultPayload::Stream(s) = got.payload;
        *self.body() = Some(s);
        Ok(())
    }

    fn body(&mut self) -> &mut Option<Body> {
        self.body.get_mut().unwrap_or_else(|e| e.into_inner())
    }
}

/// A store's error while reading, in words for the peer.
fn io_error(path: &Path, e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. } => {
            io::Error::other(format!("{path} changed while it was being read"))
        }
        e => io::Error::other(super::bucket::short(&e)),
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        while self.left.is_empty() {
            if self.body().is_none() {
                self.open_body()?;
            }
            let bucket = self.bucket.clone();
            let body = self.body().as_mut().expect("opened above");
            let next = bucket.wait(body.next());
            match next {
                Some(Ok(b)) => self.left = b,
                Some(Err(e)) => {
                    *self.body() = None;
                    return Err(io_error(&self.path, e));
                }
                None => {
                    *self.body() = None;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{}: the store ended the object early", self.path),
                    ));
                }
            }
        }
        let n = buf.len().min(self.left.len());
        buf[..n].copy_from_slice(&self.left[..n]);
        self.left = self.left.slice(n..);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        if target != self.pos {
            *self.body() = None;
            self.left = Bytes::new();
            self.pos = target;
        }
        Ok(target)
    }
}

impl StoredFile for ObjectReader {
    fn kept_digest(&self, algo: crate::files::digest::Algo) -> Option<String> {
        self.digests
            .iter()
            .find(|(a, _)| *a == algo)
            .map(|(_, hex)| hex.clone())
    }
}
