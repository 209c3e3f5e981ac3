//! What every call of one WebDAV request carries ([`Call`]), and an
//! entry as dav-server sees it ([`Meta`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dav_server::davpath::DavPath;
use dav_server::fs::{DavMetaData, FsError, FsResult};

use crate::access::{Action, Who};
use crate::files::entry::{Entry, EntryKind, Mtime};
use crate::files::{FilesError, RelPath};
use crate::server::Ctx;

/// What each call of one request carries: the server, who asks, and the
/// last refusal, so that the answer can say in ferry's words what
/// dav-server only has a status for.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub(super) ctx: Arc<Ctx>,
    pub(super) who: Who,
    /// The mtime a PUT asked for (`X-OC-Mtime`).
    pub(super) mtime: Option<Mtime>,
    pub(super) failed: Arc<Mutex<Option<Failure>>>,
    /// Uploads that ended without their body whole: the answer waits for
    /// them to let go of what they held, so that nothing of them is left
    /// once it is sent.
    pub(super) abandoned: Arc<Mutex<Vec<UploadTask>>>,
    /// A file opened to write and let go of with nothing written is made,
    /// empty (a LOCK of an unmapped URL), rather than left unmade (a PUT
    /// cut off before its body).
    pub(super) empty_creates: bool,
    /// A listing failed part-way (dav-server leaves out what it cannot
    /// list, and would end the answer as if whole).
    pub(super) listing_broke: Arc<std::sync::atomic::AtomicBool>,
    /// The existing file a COPY or MOVE with `Overwrite: T` replaces, and
    /// the right that takes: dav-server removes a destination before it
    /// copies or moves onto it; the removal is left to the copy or move
    /// itself instead, which replaces the file at once (nothing is lost
    /// when it fails), and which needs no more right than replacing.
    pub(super) in_place: Option<(RelPath, Action)>,
    /// The shared dead properties as this request read them.
    pub(super) props_seen: Arc<super::props::Seen>,
    /// A COPY's source and destination.
    pub(super) copying: Option<(RelPath, RelPath)>,
}

/// What the two ends of a COPY or MOVE need, asked before dav-server
/// starts, so that a refusal is one plain answer rather than a 207 after
/// half the work: reading the source (moving it, for a MOVE), and at the
/// destination making a new entry, replacing a file, or (a folder in the
/// way goes first) deleting. Returns the file a file replaces in place,
/// if any.
pub(super) async fn ends(
    web: &super::super::Web,
    who: &super::super::auth::Who,
    method: &str,
    h: &axum::http::HeaderMap,
    from: &RelPath,
) -> Result<Option<(RelPath, Action)>, axum::response::Response> {
    use super::super::auth::allow;
    let copy = match method {
        "COPY" => true,
        "MOVE" => false,
        _ => return Ok(None),
    };
    let to = super::super::files::destination(&web.ctx, h)?;
    let (f, t) = (from.clone(), to.clone());
    let (source, there) = web
        .ctx
        .files
        .blocking(move |s| Ok((s.stat(&f).ok(), s.stat(&t).ok())))
        .await
        .unwrap_or((None, None));
    let file_from = source.is_some_and(|e| e.kind != EntryKind::Dir);
    let file_there = there.as_ref().is_some_and(|e| e.kind != EntryKind::Dir);
    let at_dest = match (copy, &there) {
        (false, _) => Action::Move,
        (true, None) => Action::Create,
        (true, Some(_)) if file_there => Action::Replace,
        (true, Some(_)) => Action::Delete,
    };
    allow(
        who,
        web,
        h,
        if copy { Action::Read } else { Action::Move },
        from,
    )?;
    // A folder moved takes what it holds from under the rights there.
    if !copy {
        if let Err(d) = web.ctx.files.check_whole(who.id, Action::Move, from) {
            return Err(super::super::auth::denied(h, d));
        }
    }
    allow(who, web, h, at_dest, &to)?;
    let overwrite = !h
        .get("overwrite")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"F"));
    // A folder in the way goes first, an entry at a time: asked whole.
    if overwrite && there.is_some() && !file_there {
        if let Err(e) = web.ctx.files.check_remove(who.id, &to).await {
            return Err(super::early::refusal(h, e));
        }
    }
    // A file onto a file; a folder onto a file still removes the file first.
    Ok((file_from && file_there && overwrite).then_some((to, at_dest)))
}

/// An upload letting go of what a cut-off PUT left, or making the empty
/// file a LOCK asked for.
pub(super) type UploadTask = tokio::task::JoinHandle<()>;

/// Why a call failed, as the answer is to say it.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The files service refused (the status is dav-server's, or the
    /// access decision's own).
    Files(FilesError),
    /// An upload's body stopped short: its own status and words.
    Answer(axum::http::StatusCode, String),
}

impl Call {
    /// Keeps the refusal (the last one: what the answer is about), and
    /// gives dav-server its kind.
    pub(super) fn fail(&self, e: FilesError) -> FsError {
        let kind = fs_error(&e);
        self.note(Failure::Files(e));
        kind
    }

    /// Keeps why the call failed, for the answer.
    pub(super) fn note(&self, why: Failure) {
        if let Ok(mut f) = self.failed.lock() {
            *f = Some(why);
        }
    }

    pub(super) fn rel(&self, path: &DavPath) -> FsResult<RelPath> {
        let text = std::str::from_utf8(path.as_bytes())
            .map_err(|_| self.fail(FilesError::Forbidden("the path is not valid UTF-8".into())))?;
        RelPath::parse(text).map_err(|e| self.fail(e.into()))
    }

    /// The path, once the access decision lets `action` be done to it.
    pub(super) fn allowed(&self, action: Action, path: &DavPath) -> FsResult<RelPath> {
        let rel = self.rel(path)?;
        self.check(action, &rel)?;
        Ok(rel)
    }

    /// [`Call::allowed`] for the entry itself, a link as a link.
    pub(super) fn allowed_entry(&self, action: Action, path: &DavPath) -> FsResult<RelPath> {
        let rel = self.rel(path)?;
        self.ctx
            .files
            .check_entry(self.who, action, &rel)
            .map_err(|d| self.fail(d.into()))?;
        Ok(rel)
    }

    pub(super) fn check(&self, action: Action, rel: &RelPath) -> FsResult<()> {
        self.ctx
            .files
            .check(self.who, action, rel)
            .map_err(|d| self.fail(d.into()))
    }

    pub(super) async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn crate::files::Storage) -> Result<T, FilesError> + Send + 'static,
    ) -> FsResult<T> {
        self.ctx.files.blocking(f).await.map_err(|e| self.fail(e))
    }

    /// `body` (a multistatus answer, written as dav-server goes), cut
    /// short when a listing failed while it was written: dav-server
    /// leaves out what it could not list, and a listing that looks whole
    /// but is not must not reach the client.
    pub(super) fn cut_short_on_failure(&self, body: axum::body::Body) -> axum::body::Body {
        use futures_util::StreamExt;
        let broke = self.listing_broke.clone();
        let end = futures_util::stream::once(async move {
            if broke.load(std::sync::atomic::Ordering::Relaxed) {
                Err(axum::Error::new(std::io::Error::other(
                    "the listing failed part-way",
                )))
            } else {
                Ok(bytes::Bytes::new())
            }
        });
        axum::body::Body::from_stream(body.into_data_stream().chain(end).fuse())
    }

    /// Notes that a listing failed part-way, and gives dav-server its
    /// kind of error.
    pub(super) fn listing_failed(&self, e: FilesError) -> FsError {
        self.listing_broke
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.fail(e)
    }

    /// Where a folder `rel` that a COPY makes was copied from.
    pub(super) fn copied_from(&self, rel: &RelPath) -> Option<RelPath> {
        let (from, to) = self.copying.as_ref()?;
        let below = rel.parts().strip_prefix(to.parts())?;
        Some(from.join(&RelPath::parse(&below.join("/")).ok()?))
    }

    pub(super) fn props(&self) -> super::props::View<'_> {
        self.ctx.dav.props.view(&self.props_seen)
    }
}

/// The kind of error dav-server answers for a files error.
fn fs_error(e: &FilesError) -> FsError {
    match e {
        FilesError::NotFound(_) => FsError::NotFound,
        FilesError::Exists(_) | FilesError::NotEmpty(_) => FsError::Exists,
        FilesError::TooLarge(_) => FsError::TooLarge,
        FilesError::Io(m) if m.contains("no space left") => FsError::InsufficientStorage,
        FilesError::Io(_)
        | FilesError::Unavailable(_)
        | FilesError::Internal
        | FilesError::Busy(_) => FsError::GeneralFailure,
        _ => FsError::Forbidden,
    }
}

/// An entry as dav-server sees it.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) kind: EntryKind,
    pub(super) size: u64,
    pub(super) mtime: Option<Mtime>,
}

impl From<&Entry> for Meta {
    fn from(e: &Entry) -> Meta {
        Meta {
            kind: e.kind,
            size: e.size,
            mtime: e.mtime,
        }
    }
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.size
    }

    fn modified(&self) -> FsResult<SystemTime> {
        let m = self.mtime.ok_or(FsError::NotImplemented)?;
        if m.secs < 0 {
            // HTTP dates start in 1970 (a file dated before is shown then).
            return Ok(UNIX_EPOCH);
        }
        let t = if m.secs >= 0 {
            UNIX_EPOCH + Duration::new(m.secs as u64, m.nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(m.secs.unsigned_abs())
                + Duration::from_nanos(m.nanos.into())
        };
        Ok(t)
    }

    fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }

    fn is_symlink(&self) -> bool {
        self.kind == EntryKind::Symlink
    }

    /// The entity tag GET gives, so a tag from either fits the other.
    fn etag(&self) -> Option<String> {
        let v = crate::server::http::cond::Validators::new(
            self.size,
            self.mtime.map(|m| (m.secs, m.nanos)),
        );
        Some(v.etag.trim_matches('"').to_string())
    }
}
