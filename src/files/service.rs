//! The files service: the storage, the access decision, and the limits an
//! upload is held to. Every door reaches the files through it, and it
//! reaches them only through [`Storage`].

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::entry::{EntryKind, SkipReason, Tree, TreeEntry};
use super::name::{MAX_DEPTH, check_batch};
use super::storage::Storage;
use super::upload::{Limits, Upload, UploadOptions};
use super::{FilesError, RelPath};
use crate::access::{Action, Denied, Policy, Who};

/// How long an upload waits for another upload of the same name to let
/// go before it is refused as busy.
pub(crate) const BUSY_WAIT: Duration = Duration::from_secs(8);

/// The files service: the storage, the access decision, and the limits an
/// upload is held to.
#[derive(Debug)]
pub struct Files {
    pub(super) store: Arc<dyn Storage>,
    pub(super) policy: Arc<Policy>,
    max_upload: Option<u64>,
    stall: Duration,
    abort: CancellationToken,
    /// Uploads waiting for another upload of their name to let go.
    waiting: Arc<tokio::sync::Semaphore>,
    /// Digests of whole files already hashed.
    digests: super::digests::DigestCache,
    /// What keeps something of files by their names, told of every move,
    /// removal and copy.
    followers: Arc<[Arc<dyn Follow>]>,
}

/// Something kept of files by their names (a door's own records of them,
/// such as WebDAV's dead properties), which goes where they go whichever
/// door moves, removes or copies them. Called on a blocking thread, after
/// the storage did it.
pub trait Follow: Send + Sync + std::fmt::Debug {
    /// `from` (and all below it) is now at `to`.
    fn moved(&self, from: &RelPath, to: &RelPath);
    /// `rel` (and all below it) is gone.
    fn removed(&self, rel: &RelPath);
    /// The file `to` is a copy of the file `from`.
    fn copied(&self, from: &RelPath, to: &RelPath);
}

/// Most uploads waiting at once for a name to be let go; more are busy at
/// once, so that waiting costs little whoever asks.
const MAX_WAITING: usize = 16;

impl Files {
    /// The service over `store`.
    pub fn new(
        store: Arc<dyn Storage>,
        policy: Policy,
        max_upload: Option<u64>,
        stall: Duration,
        abort: CancellationToken,
    ) -> Files {
        Files {
            store,
            policy: Arc::new(policy),
            max_upload,
            stall,
            abort,
            waiting: Arc::new(tokio::sync::Semaphore::new(MAX_WAITING)),
            digests: Default::default(),
            followers: Arc::new([]),
        }
    }

    /// The service with `followers` told of every move, removal and copy.
    pub fn followed_by(mut self, followers: Vec<Arc<dyn Follow>>) -> Files {
        self.followers = followers.into();
        self
    }

    /// Removes `rel` (a folder with what is in it only with `recursive`),
    /// and tells the followers. The caller has asked the access decision.
    pub async fn remove(&self, rel: RelPath, recursive: bool) -> Result<(), FilesError> {
        let followers = self.followers.clone();
        self.blocking(move |s| {
            s.remove(&rel, recursive)?;
            followers.iter().for_each(|f| f.removed(&rel));
            Ok(())
        })
        .await
    }

    /// Moves `from` to `to` (replacing a file there only with `force`), and
    /// tells the followers. The caller has asked the access decision.
    pub async fn rename(&self, from: RelPath, to: RelPath, force: bool) -> Result<(), FilesError> {
        self.into_itself(&from, &to, false).await?;
        let followers = self.followers.clone();
        self.blocking(move |s| {
            s.rename(&from, &to, force)?;
            followers.iter().for_each(|f| f.moved(&from, &to));
            Ok(())
        })
        .await
    }

    /// The storage under the service.
    pub fn store(&self) -> &dyn Storage {
        &*self.store
    }

    /// The access decision.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Digests of whole files already hashed.
    pub fn digests(&self) -> &super::digests::DigestCache {
        &self.digests
    }

    pub(super) fn store_arc(&self) -> Arc<dyn Storage> {
        self.store.clone()
    }

    pub(super) fn policy_arc(&self) -> Arc<Policy> {
        self.policy.clone()
    }

    /// Refuses `size` when it passes the upload limit, or the largest file
    /// the storage keeps.
    pub fn check_size(&self, size: u64) -> Result<(), FilesError> {
        match (self.max_upload, self.store.max_size()) {
            (Some(max), _) if size > max => Err(FilesError::TooLarge(format!(
                "uploads are limited to {max} bytes; this one has {size}"
            ))),
            (_, Some(max)) if size > max => Err(FilesError::TooLarge(format!(
                "the storage keeps files of up to {max} bytes; this one has {size}"
            ))),
            _ => Ok(()),
        }
    }

    /// Runs `f` on the storage, on a blocking thread.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, FilesError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Storage) -> Result<T, FilesError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(|_| FilesError::Internal)?
    }

    /// Runs `f` on the storage right here when its calls are quick (see
    /// [`Storage::quick`]): a hand-off to a blocking thread and back costs
    /// more than a small read from the page cache. Otherwise as
    /// [`Files::blocking`].
    pub async fn quick<T, F>(&self, f: F) -> Result<T, FilesError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Storage) -> Result<T, FilesError> + Send + 'static,
    {
        if self.store.quick() {
            f(&*self.store)
        } else {
            self.blocking(f).await
        }
    }

    /// The access decision for `who` doing `action` at `rel`: the
    /// policy's, at the path and, where rights differ from folder to
    /// folder, where its links really lead (see [`Storage::real`]).
    pub fn check(&self, who: Who, action: Action, rel: &RelPath) -> Result<(), Denied> {
        allowed(&self.policy, &*self.store, who, action, rel)
    }

    /// [`Files::check`] for the entry at `rel` itself, a link as a link
    /// (its own description, as `lstat` gives it): judged where it is,
    /// never where it leads.
    pub fn check_entry(&self, who: Who, action: Action, rel: &RelPath) -> Result<(), Denied> {
        allowed_at(&self.policy, &*self.store, who, action, rel, false)
    }

    /// Everything below the folder `rel` that `who` may read: where
    /// rights differ from folder to folder, what lies under another
    /// right is left out, and so is its mention among the skipped.
    pub async fn walk(&self, who: Who, rel: RelPath) -> Result<Tree, FilesError> {
        self.check(who, Action::Read, &rel)?;
        let policy = self.policy.clone();
        self.blocking(move |s| {
            let mut tree = s.walk(&rel)?;
            if policy.paths_matter(who) {
                let readable = |path: &str| {
                    RelPath::parse(path).is_ok_and(|sub| {
                        allowed(&policy, s, who, Action::Read, &rel.join(&sub)).is_ok()
                    })
                };
                tree.entries.retain(|e| readable(&e.path));
                // A name that is not allowed is judged by its folder's right.
                // So is one too deep to name: by the deepest folder a path
                // may name above it.
                let within = MAX_DEPTH.saturating_sub(rel.parts().len());
                tree.skipped.retain(|e| match e.why {
                    // A path too long to name: by its folder, which a
                    // path names (the walk stops at the first too long).
                    SkipReason::Name | SkipReason::TooLong => {
                        readable(e.path.rsplit_once('/').map_or("", |(d, _)| d))
                    }
                    SkipReason::TooDeep => {
                        let above: Vec<&str> = e.path.split('/').take(within).collect();
                        readable(&above.join("/"))
                    }
                    _ => readable(&e.path),
                });
            }
            Ok(tree)
        })
        .await
    }

    /// Checks a folder upload whole for `who` (see [`plan_fits`]).
    /// Replacing needs its own right, as for one upload: without it,
    /// `force` does not count, and a file in the way is refused as such.
    pub async fn check_plan(
        &self,
        who: Who,
        base: RelPath,
        entries: Vec<TreeEntry>,
        force: bool,
    ) -> Result<(), FilesError> {
        self.check(who, Action::Create, &base)?;
        let replace = if force {
            self.check(who, Action::Replace, &base)
        } else {
            Ok(())
        };
        let may = force && replace.is_ok();
        let checked = self
            .blocking(move |s| plan_fits(s, &base, &entries, may))
            .await;
        match (checked, replace) {
            (Err(FilesError::Exists(_)), Err(denied)) => Err(denied.into()),
            (checked, _) => checked,
        }
    }

    /// Begins receiving `rel` for `who`: the access decision (creating; and
    /// replacing, when a file is there to replace), the size limit, the
    /// overwrite rule, then the partial file.
    pub async fn begin_upload(
        &self,
        who: Who,
        rel: &RelPath,
        opts: UploadOptions,
    ) -> Result<Upload, FilesError> {
        if rel.is_root() {
            return Err(FilesError::IsADirectory("/ is a folder".into()));
        }
        self.check(who, Action::Create, rel)?;
        if let Some(size) = opts.size {
            self.check_size(size)?;
        }
        let policy = self.policy.clone();
        let begin = |r: RelPath| {
            let policy = policy.clone();
            move |s: &dyn Storage| {
                if opts.continuing && !s.partial_exists(&r) {
                    return Err(FilesError::NotFound(format!("no upload for {r}")));
                }
                let exists = s.exists(&r);
                if opts.overwrite && (exists || opts.continuing) {
                    allowed(&policy, s, who, Action::Replace, &r)?;
                }
                let may = |at: &RelPath| Ok(allowed(&policy, s, who, Action::Create, at)?);
                if let Some(parent) = r.parent().filter(|p| opts.make_parents && !p.is_root()) {
                    super::storage::make_parents(s, &parent, &may)?;
                }
                s.begin_write(&r, opts.overwrite || opts.continuing, opts.resume)
            }
        };
        // An upload run again right after its client was killed finds the
        // old one still holding the name while it takes in what was on
        // its way; that ends on its own within moments, so wait a little
        // before saying busy (checking ten times a second, and only so
        // many uploads at once: the rest are busy straight away).
        let waited = tokio::time::Instant::now();
        let mut slot = None;
        let begun = loop {
            match self.blocking(begin(rel.clone())).await {
                Err(e @ FilesError::Busy(_)) => {
                    if slot.is_none() {
                        slot = self.waiting.clone().try_acquire_owned().ok();
                    }
                    if slot.is_none() || waited.elapsed() >= BUSY_WAIT {
                        return Err(e);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = self.abort.cancelled() => return Err(e),
                    }
                }
                other => break other?,
            }
        };
        Ok(Upload::begun(
            begun,
            &opts,
            Limits {
                max_upload: self.max_upload,
                stall: self.stall,
                abort: self.abort.clone(),
            },
        ))
    }
}

impl Files {
    /// Refuses to copy or move `from` into itself, onto a folder that
    /// holds it, or onto itself under another name, counting where links
    /// lead: with `latest -> rel/v1`, a copy of `/rel/v1` to
    /// `/latest/copy` is a folder copied into itself (entry by entry it
    /// would meet its own copy, down to the depth limit), and a move of
    /// `/latest` onto `/rel/v1` would replace the folder the link leads
    /// to with the link. A copy reads through the source's last link; a
    /// move moves the link itself. Refuses too to put anything where a
    /// FIFO, a socket or a device is: only a file or a link is replaced
    /// (WebDAV removes what a COPY or MOVE replaces before it begins).
    pub async fn into_itself(
        &self,
        from: &RelPath,
        to: &RelPath,
        copy: bool,
    ) -> Result<(), FilesError> {
        let (f, t) = (from.clone(), to.clone());
        let (real_from, real_to, lead, special, fold) = self
            .blocking(move |s| {
                let fold = s.ignores_case(&f) || s.ignores_case(&t);
                let special = s
                    .stat_name(&t)
                    .is_ok_and(|e| e.kind == super::entry::EntryKind::Other);
                Ok((
                    s.real(&f, !copy),
                    s.real(&t, true),
                    s.real(&f, false),
                    special,
                    fold,
                ))
            })
            .await?;
        let verb = if copy { "copy" } else { "move" };
        if special {
            return Err(FilesError::Forbidden(format!(
                "cannot {verb} {from} to {to}: a FIFO, socket or device is there, not a file: only a file or a link is ever replaced"
            )));
        }
        let (Some(real_from), Some(real_to)) = (real_from, real_to) else {
            return Err(FilesError::Forbidden(format!(
                "cannot {verb} {from} to {to}: where it leads is not a path in the share"
            )));
        };
        // On a disk that ignores case, `Photos` and `photos` are one
        // folder; a move from one to the other only renames it.
        let key = |r: &RelPath, fold: bool| -> Vec<String> {
            r.parts()
                .iter()
                .map(|p| if fold { p.to_lowercase() } else { p.clone() })
                .collect()
        };
        let into = format!(
            "cannot {verb} {from} to {to}: a folder cannot go into itself, nor onto a folder that holds it, nor a file onto itself"
        );
        for (a, b) in [(from, to), (&real_from, &real_to)] {
            let (fa, fb) = (key(a, fold), key(b, fold));
            let nested = fa.len() != fb.len() && (fb.starts_with(&fa) || fa.starts_with(&fb));
            let same = key(a, fold && copy) == key(b, fold && copy);
            if nested || (same && from != to) {
                return Err(FilesError::Forbidden(into));
            }
        }
        // What the source leads to, replaced by (or under) the destination.
        if let Some(lead) = lead.filter(|l| l != &real_from) {
            if key(&lead, fold).starts_with(&key(&real_to, fold)) {
                return Err(FilesError::Forbidden(format!(
                    "cannot {verb} {from} to {to}: it leads to what is there, which would be lost"
                )));
            }
        }
        Ok(())
    }

    /// Copies the file `from` to `to` for `who`: a read of one, and an
    /// upload of the other through [`Files::begin_upload`], so the copy
    /// meets every rule an upload does (rights, size limit, partial file,
    /// atomic rename) and keeps the source's mtime. Replaces a file at
    /// `to` only with `overwrite`.
    pub async fn copy(
        &self,
        who: Who,
        from: &RelPath,
        to: &RelPath,
        overwrite: bool,
    ) -> Result<(), FilesError> {
        self.check(who, Action::Read, from)?;
        let r = from.clone();
        let (reader, entry) = self.blocking(move |s| s.open_read(&r)).await?;
        let opts = UploadOptions {
            overwrite,
            ..UploadOptions::new(Some(entry.size))
        };
        let mut upload = self.begin_upload(who, to, opts).await?;
        upload.start(0).await?;
        let mut source = ReadFrom(Some(reader));
        upload.receive(&mut source).await.map_err(|b| match b {
            super::Broke::Lost(e) => FilesError::from_io(from, e),
            b => FilesError::Io(b.to_string()),
        })?;
        upload.finish(None, entry.mtime).await?;
        let (followers, from, to) = (self.followers.clone(), from.clone(), to.clone());
        self.blocking(move |_| {
            followers.iter().for_each(|f| f.copied(&from, &to));
            Ok(())
        })
        .await
    }
}

/// [`Files::check`], on `store`.
pub(super) fn allowed(
    policy: &Policy,
    store: &dyn Storage,
    who: Who,
    action: Action,
    rel: &RelPath,
) -> Result<(), Denied> {
    allowed_at(policy, store, who, action, rel, true)
}

/// [`allowed`]; with `through` false, a last link is judged as itself.
fn allowed_at(
    policy: &Policy,
    store: &dyn Storage,
    who: Who,
    action: Action,
    rel: &RelPath,
    through: bool,
) -> Result<(), Denied> {
    policy.check(who, action, rel)?;
    if !policy.paths_matter(who) || !action.on_paths() {
        return Ok(());
    }
    // Where the entry really is (its folders followed); and, for a read or
    // a creation (in a folder a last link leads to), where that leads. A
    // change to a link (removing, moving or replacing it) changes the link
    // alone, never what it leads to.
    let follows = through && matches!(action, Action::Read | Action::Create);
    for keep_last in [true, false].into_iter().filter(|k| *k || follows) {
        if let Some(real) = store.real(rel, keep_last).filter(|r| r != rel) {
            policy.check(who, action, &real)?;
        }
    }
    Ok(())
}

/// A stored file as the body of an upload (a copy), read on a blocking
/// thread a buffer at a time.
struct ReadFrom(Option<super::storage::Reader>);

impl super::BodySource for ReadFrom {
    type Error = std::io::Error;

    async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, std::io::Error> {
        let Some(mut reader) = self.0.take() else {
            return Ok(0);
        };
        let from = buf.len();
        let want = (buf.capacity() - from).max(64 * 1024);
        let mut chunk = std::mem::take(buf);
        let (reader, chunk, n) = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            chunk.resize(from + want, 0);
            let n = reader.read(&mut chunk[from..]);
            (reader, chunk, n)
        })
        .await
        .map_err(std::io::Error::other)?;
        *buf = chunk;
        buf.truncate(from + *n.as_ref().unwrap_or(&0));
        let n = n?;
        self.0 = Some(reader);
        Ok(n)
    }
}

/// Checks a folder upload whole: every name valid, nothing twice, the
/// destination a folder (or creatable, with its missing parents), and no existing file in the way
/// unless `force`. Writes nothing.
fn plan_fits(
    s: &dyn Storage,
    base: &RelPath,
    entries: &[TreeEntry],
    force: bool,
) -> Result<(), FilesError> {
    let rels = check_batch(
        entries
            .iter()
            .map(|e| (e.path.as_str(), e.kind == EntryKind::Dir)),
    )?;
    // Where they land, no deeper than a path may go.
    for rel in &rels {
        base.joined(rel)?;
    }
    super::case::refuse_merging_pairs(entries.iter().map(|e| e.path.as_str()), |folder| {
        RelPath::parse(folder).map_or(true, |f| s.ignores_case(&base.join(&f)))
    })?;
    match s.stat(base) {
        Ok(e) if e.kind != EntryKind::Dir => {
            return Err(FilesError::NotADirectory(format!("{base} is not a folder")));
        }
        Ok(_) => {}
        Err(FilesError::NotFound(_)) => {
            // Made on the way (with the folders above it that are missing,
            // as `mkdir -p` does), under the nearest one that is there,
            // which must be a folder.
            let mut up = base.parent();
            while let Some(dir) = up {
                match s.stat(&dir) {
                    Ok(e) if e.kind == EntryKind::Dir => return Ok(()),
                    Ok(_) => {
                        return Err(FilesError::NotADirectory(format!("{dir} is not a folder")));
                    }
                    Err(FilesError::NotFound(_)) => up = dir.parent(),
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    for (rel, e) in rels.iter().zip(entries) {
        let full = base.join(rel);
        let Ok(there) = s.stat_name(&full) else {
            continue;
        };
        match (e.kind, there.kind) {
            (EntryKind::Dir, EntryKind::Dir) => {}
            (EntryKind::Dir, _) => {
                return Err(FilesError::Exists(format!(
                    "{full} exists and is not a folder"
                )));
            }
            (EntryKind::File, EntryKind::Dir) => {
                return Err(FilesError::IsADirectory(format!("{full} is a folder")));
            }
            (EntryKind::File, _) if !force => {
                return Err(FilesError::Exists(format!(
                    "{full} exists (ask to overwrite with --force)"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}
