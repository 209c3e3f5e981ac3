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
use super::pipe::{CHUNK, FileSink, spawn_writer};
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

    /// Appends the next bytes of the body to `buf`, giving how many;
    /// `Ok(0)` at its end. `buf` may already hold bytes gathered before.
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
    pub(super) fn begun(mut begun: Begun, opts: &UploadOptions, limits: Limits) -> Upload {
        begun.part.keep_on_drop(opts.on_break == OnBreak::Keep);
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

    /// The same upload without its partial file (to settle an intake
    /// that took it).
    fn hollow(&self) -> Upload {
        Upload {
            part: None,
            size: self.size,
            overwrite: self.overwrite,
            on_break: self.on_break,
            replaces: self.replaces,
            max_upload: self.max_upload,
            stall: self.stall,
            abort: self.abort.clone(),
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

    /// The digest by `algo` of the bytes held (see [`Upload::held`]),
    /// `None` when there are none; the upload is verified with `algo`
    /// from here on. Those bytes are not read again when going on.
    pub async fn held_digest(
        &mut self,
        algo: crate::files::digest::Algo,
    ) -> Result<Option<String>, FilesError> {
        self.with_part(move |p| p.hash_existing(algo)).await
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
        let Some(mut intake) = Intake::open(self) else {
            return Err(ended());
        };
        let stop = self.pump(source, &mut intake).await;
        self.settle(intake, stop).await
    }

    /// The read loop: `source` into `intake` until the body ends or breaks.
    async fn pump<S: BodySource>(
        &self,
        source: &mut S,
        intake: &mut Intake,
    ) -> Result<(), Stop<S::Error>> {
        loop {
            let from = intake.buf.len();
            let read = tokio::select! {
                biased;
                _ = self.abort.cancelled() => return Err(Stop::Broke(Broke::ShuttingDown)),
                r = tokio::time::timeout(self.stall, source.read_into(intake.room())) => r,
            };
            match read {
                Err(_) => return Err(Stop::Broke(Broke::Stalled)),
                Ok(Err(e)) => return Err(Stop::Broke(Broke::Lost(e))),
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => {}
            }
            if !intake.took(from).await? {
                return Ok(()); // the writer failed: its error comes from settle
            }
        }
    }

    /// Hands the body over a piece at a time instead, for a door that reads
    /// it itself (see [`Pushing`]); after [`Upload::start`], as for
    /// [`Upload::receive`].
    pub fn pushing(mut self) -> Pushing {
        let intake = Intake::open(&mut self);
        Pushing {
            upload: self,
            intake,
        }
    }

    /// Ends an intake: waits for its bytes to be written, then keeps or
    /// drops the partial file as the module's rules say for `stop`.
    async fn settle<E>(
        &mut self,
        intake: Intake,
        stop: Result<(), Stop<E>>,
    ) -> Result<u64, Broke<E>> {
        let total = intake.total;
        let (mut part, written) = match intake.close().await {
            Ok(pair) => pair,
            Err(e) => {
                return Err(Broke::Storage {
                    message: format!("storing the upload failed ({e}); nothing of it was kept"),
                    full: false,
                });
            }
        };
        if let Err(e) = written {
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
        match stop {
            Ok(()) => {
                if self.size.is_none() {
                    part.end_here();
                }
                self.part = Some(part);
                Ok(total)
            }
            Err(Stop::PastAnnounced(why)) => {
                // More bytes than the file was announced to have: the
                // piece that went past was not written, and what came
                // before it is kept as for any body that broke off.
                self.part = Some(part);
                self.abandon();
                Err(Broke::TooLarge(why))
            }
            Err(Stop::Broke(
                broke @ (Broke::ShuttingDown | Broke::TooLarge(_) | Broke::Storage { .. }),
            )) => {
                part.discard();
                Err(broke)
            }
            Err(Stop::Broke(broke)) => {
                self.part = Some(part);
                self.abandon();
                Err(broke)
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
        if let Some(part) = self.part.take() {
            part.keep();
        }
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
            part.keep();
        } else {
            part.discard();
        }
    }
}

/// The error for an upload whose partial file has already gone.
fn ended<E>() -> Broke<E> {
    Broke::Storage {
        message: "the upload has ended".into(),
        full: false,
    }
}

/// Why an intake stopped before the body's end.
enum Stop<E> {
    Broke(Broke<E>),
    /// Past the size the upload announced (what came before is kept for a
    /// door that resumes).
    PastAnnounced(String),
}

impl<E> From<Broke<E>> for Stop<E> {
    fn from(b: Broke<E>) -> Self {
        Stop::Broke(b)
    }
}

/// Bytes gathered before a write: a body's pieces are often 16 KiB (an
/// HTTP frame), and one trip to the disk thread per half MiB costs less.
const GATHER: usize = CHUNK / 2;

/// A body on its way into the partial file: its pieces are gathered into
/// chunks, checked against the limits, and written on the disk thread.
struct Intake {
    sink: FileSink<Box<dyn Part>>,
    buf: Vec<u8>,
    /// Bytes from the start of the file, gathered ones included.
    total: u64,
    size: Option<u64>,
    max_upload: Option<u64>,
}

impl Intake {
    /// Takes the partial file from `upload` to the disk thread.
    fn open(upload: &mut Upload) -> Option<Intake> {
        let part = upload.part.take()?;
        let total = part.written();
        let mut sink = spawn_writer(part);
        Some(Intake {
            buf: sink.buffer(),
            sink,
            total,
            size: upload.size,
            max_upload: upload.max_upload,
        })
    }

    /// Where the next piece goes: after the gathered ones.
    fn room(&mut self) -> &mut Vec<u8> {
        if self.buf.capacity() == 0 {
            self.buf = self.sink.buffer();
        }
        &mut self.buf
    }

    /// Counts the piece added to the buffer past `from`, and writes the
    /// buffer once enough is gathered. False when the writer has stopped
    /// (it failed).
    async fn took<E>(&mut self, from: usize) -> Result<bool, Stop<E>> {
        let total = self.total + (self.buf.len() - from) as u64;
        if let Some(max) = self.max_upload.filter(|max| total > *max) {
            return Err(Broke::TooLarge(format!("uploads are limited to {max} bytes")).into());
        }
        if self.size.is_some_and(|size| total > size) {
            self.buf.truncate(from);
            return Err(Stop::PastAnnounced("more bytes than announced".into()));
        }
        self.total = total;
        if self.buf.len() < GATHER {
            return Ok(true);
        }
        let full = std::mem::take(&mut self.buf);
        Ok(self.sink.send(full).await)
    }

    /// Writes what is gathered and waits for every write; gives the part
    /// file back with the first write error, if any.
    async fn close(mut self) -> io::Result<(Box<dyn Part>, io::Result<()>)> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.sink.send(rest).await;
        }
        self.sink.finish().await
    }
}

/// An upload whose door reads the body itself and hands it over a piece at
/// a time (WebDAV: dav-server reads the body). The size limits and shutdown
/// are checked here as pieces come, as [`Upload::receive`] does; the stall
/// deadline is the door's to keep, on the body it reads.
#[derive(Debug)]
pub struct Pushing {
    upload: Upload,
    intake: Option<Intake>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("total", &self.total)
            .finish()
    }
}

impl Pushing {
    /// Takes the next piece of the body. On an error the upload has ended
    /// as the module's rules say, and only [`Pushing::broke`] or a drop is
    /// left to do.
    pub async fn push(&mut self, piece: &[u8]) -> Result<(), Broke<io::Error>> {
        let Some(intake) = self.intake.as_mut() else {
            return Err(ended());
        };
        let stop = if self.upload.abort.is_cancelled() {
            Err(Stop::Broke(Broke::ShuttingDown))
        } else {
            let from = intake.buf.len();
            intake.room().extend_from_slice(piece);
            match intake.took(from).await {
                Ok(true) => return Ok(()),
                Ok(false) => Ok(()), // the writer failed: settle says how
                Err(stop) => Err(stop),
            }
        };
        let intake = self.intake.take().ok_or_else(ended)?;
        match self.upload.settle(intake, stop).await {
            Ok(_) => Err(Broke::Storage {
                message: "storing the upload failed; nothing of it was kept".into(),
                full: false,
            }),
            Err(broke) => Err(broke),
        }
    }

    /// The body came whole: gives the upload back, ready to finish.
    pub async fn end(mut self) -> Result<Upload, Broke<io::Error>> {
        let intake = self.intake.take().ok_or_else(ended)?;
        self.upload.settle(intake, Ok(())).await?;
        let hollow = self.upload.hollow();
        Ok(std::mem::replace(&mut self.upload, hollow))
    }

    /// The body broke off: leaves what [`OnBreak`] says.
    pub async fn broke(mut self) {
        if let Some(intake) = self.intake.take() {
            let lost = io::Error::new(io::ErrorKind::UnexpectedEof, "the body broke off");
            let _ = self
                .upload
                .settle(intake, Err(Stop::Broke(Broke::Lost(lost))))
                .await;
        }
    }
}

impl Drop for Pushing {
    /// Dropped before its end, the body broke off: what is kept is settled
    /// on a task, as [`Pushing::broke`] would.
    fn drop(&mut self) {
        let Some(intake) = self.intake.take() else {
            return;
        };
        let mut upload = self.upload.hollow();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let lost = io::Error::new(io::ErrorKind::UnexpectedEof, "the body broke off");
                let _ = upload
                    .settle(intake, Err(Stop::Broke(Broke::Lost(lost))))
                    .await;
            });
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
