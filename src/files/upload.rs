//! One upload, for every door.
//!
//! [`Files::begin_upload`] asks the access decision, checks the size limit
//! and the overwrite rule, and opens the hidden partial file (see
//! [`super::part`]). [`Upload::receive`] moves a body into it from any
//! [`BodySource`], with the stall deadline, the size limit and shutdown
//! checked as bytes come; [`Upload::finish`] verifies and moves it into
//! place. A door only turns its framing into a `BodySource` and the
//! outcome into its own answers.
//!
//! What is kept when an upload does not finish is decided here, once (see
//! docs/PROTOCOL.md, "What is kept"): bytes the storage refused, an upload
//! cut by shutdown, one past the server's size limit, and one refused at
//! the end leave nothing; a body that broke off (or went past the size it
//! announced) is kept for a resume only when the door can resume
//! ([`OnBreak::Keep`]).

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::FilesError;
use super::entry::Mtime;
use super::pipe::{FileSink, spawn_writer};
use super::storage::{Begun, Part};

/// What to do with the bytes of a body that broke off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBreak {
    /// Keep them for a resume (native, tus).
    Keep,
    /// Remove them (a door whose clients cannot resume).
    Discard,
}

/// How an upload is to be made.
#[derive(Debug, Clone, Copy)]
pub struct UploadOptions {
    /// The file's size, when announced; otherwise the body's end ends it.
    pub size: Option<u64>,
    /// Replace a file already at the name (which needs the right to
    /// replace); without it, an existing file refuses the upload.
    pub overwrite: bool,
    /// Keep what an earlier attempt left, to go on from there.
    pub resume: bool,
    /// What a body that breaks off leaves.
    pub on_break: OnBreak,
    /// Make the folders on the way.
    pub make_parents: bool,
    /// Go on with an upload begun earlier: refused when nothing of it is
    /// held. The file is then not looked for now; `overwrite` decides at
    /// the end.
    pub continuing: bool,
}

impl UploadOptions {
    /// A new upload of `size` bytes that replaces nothing and is discarded
    /// when it breaks off.
    pub fn new(size: Option<u64>) -> UploadOptions {
        UploadOptions {
            size,
            overwrite: false,
            resume: false,
            on_break: OnBreak::Discard,
            make_parents: false,
            continuing: false,
        }
    }
}

/// Where a door's body bytes come from.
pub trait BodySource {
    /// How the source fails.
    type Error;

    /// Fills `buf` (empty, with room reserved) with the next bytes of the
    /// body; `Ok(0)` at its end.
    fn read_into(
        &mut self,
        buf: &mut Vec<u8>,
    ) -> impl Future<Output = Result<usize, Self::Error>> + Send;
}

/// Why receiving a body stopped short.
#[derive(Debug, thiserror::Error)]
pub enum Broke<E> {
    /// The source failed (the peer went away, or its framing broke).
    #[error("the body broke off: {0}")]
    Lost(E),
    /// No bytes came within the stall deadline.
    #[error("the body stalled")]
    Stalled,
    /// The server is shutting down. Nothing was kept.
    #[error("the server is shutting down; upload abandoned")]
    ShuttingDown,
    /// Past the size announced or the server's limit. Nothing was kept.
    #[error("{0}")]
    TooLarge(String),
    /// Storing failed (a full disk, an I/O error). Nothing was kept.
    #[error("{message}")]
    Storage {
        /// What failed, in words.
        message: String,
        /// Whether the disk (or a quota) was full.
        full: bool,
    },
}

/// What an upload is held to while its body comes.
#[derive(Debug)]
pub(super) struct Limits {
    pub(super) max_upload: Option<u64>,
    pub(super) stall: Duration,
    pub(super) abort: CancellationToken,
}

/// An upload under way. Dropped before [`Upload::finish`], it leaves what
/// [`OnBreak`] says (and never an empty partial file).
#[derive(Debug)]
pub struct Upload {
    part: Option<Box<dyn Part>>,
    size: Option<u64>,
    overwrite: bool,
    on_break: OnBreak,
    replaces: bool,
    max_upload: Option<u64>,
    stall: Duration,
    abort: CancellationToken,
}

impl Upload {
    /// The upload the store began, as `opts` asked for it.
    pub(super) fn begun(begun: Begun, opts: &UploadOptions, limits: Limits) -> Upload {
        Upload {
            part: Some(begun.part),
            size: opts.size,
            // Replaces only what the access decision saw: a file that
            // appears meanwhile is not overwritten.
            overwrite: opts.overwrite && (begun.replaces || opts.continuing),
            on_break: opts.on_break,
            replaces: begun.replaces,
            max_upload: limits.max_upload,
            stall: limits.stall,
            abort: limits.abort,
        }
    }

    /// Whether a file of that name existed when the upload began.
    pub fn replaces(&self) -> bool {
        self.replaces
    }

    /// Bytes an earlier attempt left.
    pub fn held(&self) -> u64 {
        self.part.as_ref().map_or(0, |p| p.existing())
    }

    /// Bytes written so far (from the start of the file).
    pub fn written(&self) -> u64 {
        self.part.as_ref().map_or(0, |p| p.written())
    }

    fn part(&mut self) -> Result<Box<dyn Part>, FilesError> {
        self.part.take().ok_or(FilesError::Internal)
    }

    /// Runs `f` on the partial file on a blocking thread, and keeps it.
    async fn with_part<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut dyn Part) -> io::Result<T> + Send + 'static,
    ) -> Result<T, FilesError> {
        let mut part = self.part()?;
        let (part, r) = tokio::task::spawn_blocking(move || {
            let r = f(&mut *part);
            (part, r)
        })
        .await
        .map_err(|_| FilesError::Internal)?;
        self.part = Some(part);
        r.map_err(|e| FilesError::Io(e.to_string()))
    }

    /// The SHA-256 of the bytes held (see [`Upload::held`]), `None` when
    /// there are none. Those bytes are not read again when going on.
    pub async fn held_digest(&mut self) -> Result<Option<String>, FilesError> {
        self.with_part(|p| p.hash_existing()).await
    }

    /// Fixes where the body starts: 0, or [`Upload::held`] to go on.
    pub async fn start(&mut self, offset: u64) -> Result<(), FilesError> {
        let size = self.size.unwrap_or(u64::MAX);
        if offset > size {
            return Err(FilesError::Incomplete(format!(
                "cannot start at byte {offset} of {size}"
            )));
        }
        self.with_part(move |p| p.start(offset, size)).await
    }

    /// Moves the body from `source` into the partial file. Gives the bytes
    /// written in all. When it stops short, what is kept follows the
    /// module's rules, and the upload can only be dropped.
    pub async fn receive<S: BodySource>(&mut self, source: &mut S) -> Result<u64, Broke<S::Error>> {
        let Some(part) = self.part.take() else {
            return Err(Broke::Storage {
                message: "the upload has ended".into(),
                full: false,
            });
        };
        let mut total = part.written();
        let mut sink = spawn_writer(part);
        let ended = self.pump(source, &mut sink, &mut total).await;
        let (mut part, written) = match sink.finish().await {
            Ok(pair) => pair,
            Err(e) => {
                return Err(Broke::Storage {
                    message: format!("storing the upload failed ({e}); nothing of it was kept"),
                    full: false,
                });
            }
        };
        if let Err(e) = written {
            if e.kind() == io::ErrorKind::InvalidData {
                // More bytes than the file was announced to have: the
                // chunk that went past was not written, and what came
                // before it is kept as for any body that broke off.
                self.part = Some(part);
                self.abandon();
                return Err(Broke::TooLarge(e.to_string()));
            }
            // Nothing is kept of an upload the disk refused: a full disk
            // must not stay full with it.
            let at = part.written();
            part.discard();
            return Err(match e.kind() {
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Broke::Storage {
                    message: "no space left on the server's disk; nothing of this upload was kept"
                        .into(),
                    full: true,
                },
                _ => Broke::Storage {
                    message: format!(
                        "storing failed at byte {at}: {e}; nothing of this upload was kept"
                    ),
                    full: false,
                },
            });
        }
        match ended {
            Ok(()) => {
                if self.size.is_none() {
                    part.end_here();
                }
                self.part = Some(part);
                Ok(total)
            }
            Err(broke @ (Broke::ShuttingDown | Broke::TooLarge(_) | Broke::Storage { .. })) => {
                part.discard();
                Err(broke)
            }
            Err(broke) => {
                self.part = Some(part);
                self.abandon();
                Err(broke)
            }
        }
    }

    /// The read loop: `source` into `sink` until the body ends or breaks.
    async fn pump<S: BodySource>(
        &self,
        source: &mut S,
        sink: &mut FileSink<Box<dyn Part>>,
        total: &mut u64,
    ) -> Result<(), Broke<S::Error>> {
        loop {
            let mut buf = sink.buffer();
            let read = tokio::select! {
                biased;
                _ = self.abort.cancelled() => return Err(Broke::ShuttingDown),
                r = tokio::time::timeout(self.stall, source.read_into(&mut buf)) => r,
            };
            let n = match read {
                Err(_) => return Err(Broke::Stalled),
                Ok(Err(e)) => return Err(Broke::Lost(e)),
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(n)) => n,
            };
            *total += n as u64;
            if let Some(max) = self.max_upload.filter(|max| *total > *max) {
                return Err(Broke::TooLarge(format!(
                    "uploads are limited to {max} bytes"
                )));
            }
            if !sink.send(buf).await {
                return Ok(()); // the writer failed: its error comes from finish
            }
        }
    }

    /// Checks the size and, when given, the SHA-256, sets the mtime and
    /// moves the file into place. Gives its SHA-256. Refused here (the
    /// name was taken meanwhile, a wrong size or digest), it keeps nothing.
    pub async fn finish(
        mut self,
        sha256: Option<String>,
        mtime: Option<Mtime>,
    ) -> Result<String, FilesError> {
        let part = self.part()?;
        let overwrite = self.overwrite;
        tokio::task::spawn_blocking(move || part.finish(sha256.as_deref(), mtime, overwrite))
            .await
            .map_err(|_| FilesError::Internal)?
            .map_err(FilesError::from)
    }

    /// Ends the upload here and keeps what it holds, even nothing, for the
    /// client to go on with later (a tus upload created without bytes).
    pub fn keep(mut self) {
        self.part = None;
    }

    /// Ends the upload here, leaving what [`OnBreak`] says.
    fn abandon(&mut self) {
        let Some(part) = self.part.take() else {
            return;
        };
        let held = part.written().max(part.existing());
        if self.on_break == OnBreak::Keep && held > 0 {
            tracing::info!(
                kept = held,
                "upload interrupted; partial file kept for resume"
            );
        } else {
            part.discard();
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.abandon();
    }
}

#[cfg(test)]
mod tests;
