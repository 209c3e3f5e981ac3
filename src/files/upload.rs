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
//! docs/PROTOCOL.md, "What is kept"): bytes the storage refused, one past
//! the server's size limit, and one refused at the end leave nothing; a
//! body that broke off, went past the size it announced or was cut by
//! shutdown is kept for a resume only when the door can resume
//! ([`OnBreak::Keep`]): a server restarted goes on with it.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::FilesError;
use super::entry::Mtime;
use super::splice::SpliceError;
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

    /// The body's bytes from here, buffered ones included, when the rest
    /// of it could be handed over as a socket ([`BodySource::socket`]).
    fn socket_len(&self) -> Option<u64> {
        None
    }

    /// Hands the rest of the body over as a plain TCP socket, for the
    /// kernel to move it into the file; only after `socket_len` said it
    /// could. [`BodySource::taken`] then says how much was taken.
    fn socket(&mut self) -> Option<SocketBody<Self::Error>> {
        None
    }

    /// Counts `n` body bytes taken from the socket [`BodySource::socket`]
    /// gave.
    fn taken(&mut self, n: u64) {
        let _ = n;
    }
}

/// The rest of a body in a plain TCP socket (see [`BodySource::socket`]).
pub struct SocketBody<E> {
    /// A handle of its own on the socket (non-blocking).
    pub socket: std::os::fd::OwnedFd,
    /// Body bytes the source had already read: they go first.
    pub early: bytes::Bytes,
    /// Body bytes in the socket after them.
    pub len: u64,
    /// The source's error for a socket that failed (`Some`) or closed
    /// (`None`) before the body's end.
    pub lost: fn(Option<io::Error>) -> E,
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

    /// Which upload this is among those begun at its name (see
    /// [`Part::generation`]).
    pub fn generation(&self) -> Option<String> {
        self.part.as_ref().and_then(|p| p.generation())
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
        if let Some(done) = self.receive_from_socket(source).await {
            return done;
        }
        let Some(mut intake) = Intake::open(self) else {
            return Err(ended());
        };
        let stop = self.pump(source, &mut intake).await;
        self.settle(intake, stop).await
    }

    /// [`Upload::receive`] for a body the source hands over as a socket and
    /// a partial file that can take it straight from there (see
    /// [`super::splice`]): the kernel moves the bytes into the file and a
    /// second thread hashes them behind, with no copy through this
    /// process. `None` when either cannot, or when the body would go past
    /// a limit (the usual way then says so at the byte where it does).
    async fn receive_from_socket<S: BodySource>(
        &mut self,
        source: &mut S,
    ) -> Option<Result<u64, Broke<S::Error>>> {
        let len = source.socket_len()?;
        let part = self.part.as_ref().filter(|p| p.can_splice())?;
        let end = part.written().saturating_add(len);
        if self.size.is_some_and(|size| end > size) || self.max_upload.is_some_and(|m| end > m) {
            return None;
        }
        let SocketBody {
            socket,
            early,
            len,
            lost,
        } = source.socket()?;
        let part = self.part.take()?;
        let limits = (self.stall, self.abort.clone());
        let (part, taken, r) = super::splice::splice_in_turns(
            part,
            socket,
            early,
            len,
            limits,
            std::sync::Arc::new(|_| {}),
        )
        .await;
        source.taken(taken);
        let total = part.written();
        let (written, stop) = match r {
            Ok(()) => (Ok(()), Ok(())),
            Err(SpliceError::File(e)) => (Err(e), Ok(())),
            Err(SpliceError::Stalled) => (Ok(()), Err(Broke::Stalled.into())),
            Err(SpliceError::Stopped) => (Ok(()), Err(Broke::ShuttingDown.into())),
            Err(SpliceError::Closed) => (Ok(()), Err(Broke::Lost(lost(None)).into())),
            Err(SpliceError::Socket(e)) => (Ok(()), Err(Broke::Lost(lost(Some(e))).into())),
        };
        Some(self.conclude(part, written, total, stop))
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
        let (part, written) = match intake.close().await {
            Ok(pair) => pair,
            Err(e) => {
                return Err(Broke::Storage {
                    message: format!("storing the upload failed ({e}); nothing of it was kept"),
                    full: false,
                });
            }
        };
        self.conclude(part, written, total, stop)
    }

    /// Keeps or drops the partial file, whose bytes are all written
    /// (`written` is the first write error), as the module's rules say for
    /// `stop`; `total` is the body's bytes from the start of the file.
    fn conclude<E>(
        &mut self,
        mut part: Box<dyn Part>,
        written: io::Result<()>,
        total: u64,
        stop: Result<(), Stop<E>>,
    ) -> Result<u64, Broke<E>> {
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
                // Cut by another program: where is not known (the bytes
                // after the last ones checked cannot be trusted).
                io::ErrorKind::UnexpectedEof => Broke::Storage {
                    message: format!("storing failed: {e}; nothing of this upload was kept"),
                    full: false,
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
            Err(Stop::Broke(broke @ (Broke::TooLarge(_) | Broke::Storage { .. }))) => {
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

impl super::Files {
    /// [`Files::begin_upload`] going on with the upload of `rel` whose
    /// generation (see [`Part::generation`]) is `generation`: one that
    /// another upload of the target started over since is not found, and
    /// what that one holds is left to it.
    ///
    /// [`Part::generation`]: super::storage::Part::generation
    pub async fn continue_upload(
        &self,
        who: crate::access::Who,
        rel: &super::name::RelPath,
        opts: UploadOptions,
        generation: Option<&str>,
    ) -> Result<Upload, FilesError> {
        let opts = UploadOptions {
            continuing: true,
            resume: true,
            ..opts
        };
        let upload = self.begin_upload(who, rel, opts).await?;
        if upload.generation().as_deref() != generation {
            upload.keep();
            return Err(FilesError::NotFound(format!("no upload for {rel}")));
        }
        Ok(upload)
    }

    /// Whether what is held at `rel` (an unfinished upload, or the file one
    /// put in place) is another upload than the one of `generation`: one
    /// that started it over since. `false` where the storage cannot tell.
    pub async fn superseded(
        &self,
        rel: &super::name::RelPath,
        generation: Option<&str>,
    ) -> Result<bool, FilesError> {
        let r = rel.clone();
        let now = self.blocking(move |s| s.partial_generation(&r)).await?;
        Ok(now.is_some() && now.as_deref() != generation)
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

impl Drop for Upload {
    fn drop(&mut self) {
        self.abandon();
    }
}

mod intake;
#[cfg(test)]
mod socket_tests;
#[cfg(test)]
mod tests;

use intake::Intake;
pub use intake::Pushing;
