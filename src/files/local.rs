//! [`LocalDisk`]: the served folder on this machine's disk, the first
//! [`Storage`], with the root jail applied in one place.
//!
//! Paths arrive as validated [`RelPath`]s. Existing paths are canonicalised
//! and must stay below the canonical root, so a symlink is followed only
//! while it stays inside. Entries that name-checking would refuse (and the
//! hidden partial files) are left out of listings: they could never be
//! asked for anyway.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::FilesError;
use super::entry::{Entry, EntryKind, Tree};
use super::name::{PART_SUFFIX, RelPath};
use super::part::{Found, PartFile, look_at, part_name, special, special_there};
use super::storage::{Begun, Reader, Storage};
use listing::{entry, kind_of, meta_at};

mod beneath;
mod listing;
mod part;
mod planned;
use part::LocalPart;
use planned::canonical_or_planned;

/// Most entries one walk may return, to bound memory.
pub const MAX_WALK: usize = 1_000_000;

/// The served folder on this machine's disk.
#[derive(Debug)]
pub struct LocalDisk {
    root: PathBuf,
    /// The root, open, for `openat2` beneath it.
    root_dir: Option<File>,
    uploads: Arc<Mutex<HashSet<PathBuf>>>,
    /// The server's own files inside the root (its state folder, config,
    /// token, TLS key), canonical: never served, by any name.
    fenced: Vec<PathBuf>,
}

/// Marks a target as being uploaded; dropping it frees the target.
#[derive(Debug)]
struct UploadGuard {
    target: PathBuf,
    uploads: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = self.uploads.lock() {
            set.remove(&self.target);
        }
    }
}

impl LocalDisk {
    /// Opens `root`, which must be an existing folder.
    pub fn open(root: &Path) -> io::Result<LocalDisk> {
        let root = fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a folder"));
        }
        Ok(LocalDisk {
            root_dir: File::open(&root).ok(),
            root,
            uploads: Arc::default(),
            fenced: Vec::new(),
        })
    }

    /// Keeps `private` (the server's own files and folders) out of
    /// everything served, wherever they are and by whatever name or link
    /// they are reached. Those outside the root are out of reach already.
    pub fn fence(&mut self, private: &[PathBuf]) {
        for p in private {
            let real = canonical_or_planned(p);
            if real.starts_with(&self.root) && real != self.root {
                self.fenced.push(real);
            }
        }
    }

    /// Whether `real`, a canonical path, is or is inside a fenced one.
    fn is_fenced(&self, real: &Path) -> bool {
        self.fenced.iter().any(|f| real.starts_with(f))
    }

    /// Refuses to move or remove `path` (a folder's canonical path joined
    /// with a name) when it is, or holds, any of the server's own files: a
    /// folder above the state folder moved or deleted would take it along.
    fn untouchable(&self, rel: &RelPath, path: &Path) -> Result<(), FilesError> {
        if self.fenced.iter().any(|f| f.starts_with(path)) {
            return Err(FilesError::Forbidden(format!(
                "{rel} holds the server's own files; it cannot be moved or removed"
            )));
        }
        Ok(())
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Follows `rel` (symlinks included) to a path that must exist and stay
    /// inside the root.
    fn resolve(&self, rel: &RelPath) -> Result<PathBuf, FilesError> {
        let joined = rel.to_path(&self.root);
        let real = fs::canonicalize(&joined).map_err(|e| FilesError::from_io(rel, e))?;
        if !real.starts_with(&self.root) {
            return Err(FilesError::Forbidden(format!(
                "{rel} leads outside the served folder"
            )));
        }
        if self.is_fenced(&real) {
            return Err(FilesError::NotFound(format!("{rel} does not exist")));
        }
        Ok(real)
    }

    /// The real folder that holds `rel`'s last component, and that name;
    /// the last component itself is not followed.
    fn resolve_parent(&self, rel: &RelPath) -> Result<(PathBuf, String), FilesError> {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(FilesError::Forbidden(
                "the served folder itself cannot be changed".into(),
            ));
        };
        let dir = self.resolve(&parent)?;
        if !dir.is_dir() {
            return Err(FilesError::NotADirectory(format!(
                "{parent} is not a folder"
            )));
        }
        if self.is_fenced(&dir.join(name)) {
            return Err(FilesError::NotFound(format!("{rel} does not exist")));
        }
        Ok((dir, name.to_string()))
    }

    /// The folder that holds `rel`'s last component, opened beneath the
    /// root with no link followed (see [`LocalDisk::open_folder`]), its
    /// canonical path, and that name. Every change (mkdir, rm, mv, an
    /// upload's partial file) is made relative to such a folder, so a
    /// folder swapped for a symlink after the path was resolved is refused
    /// instead of followed.
    fn parent_folder(&self, rel: &RelPath) -> Result<(File, PathBuf, String), FilesError> {
        let (dir, name) = self.resolve_parent(rel)?;
        let folder = self
            .open_folder(&dir)
            .map_err(|e| FilesError::from_io(rel, e))?;
        Ok((folder, dir, name))
    }

    /// The folder that holds `rel`'s last component, opened only to look
    /// in (`O_PATH`: a folder one may search but not list will do), as
    /// [`LocalDisk::parent_folder`] opens it, and that name.
    fn parent_to_look_in(&self, rel: &RelPath) -> Result<(File, String), FilesError> {
        let (dir, name) = self.resolve_parent(rel)?;
        let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY;
        let folder = self
            .open_real(&dir, flags)
            .map_err(|e| FilesError::from_io(rel, e))?;
        Ok((folder, name))
    }

    /// What is at the partial file's name of an upload of `rel`: only a
    /// plain file (see [`Found`]) is ever reported as progress.
    fn partial(&self, rel: &RelPath) -> Result<(PathBuf, String, Found), FilesError> {
        let (dir, name) = self.resolve_parent(rel)?;
        let folder = self
            .open_folder(&dir)
            .map_err(|e| FilesError::from_io(rel, e))?;
        let found =
            look_at(&folder, &part_name(name.as_ref())).map_err(|e| FilesError::from_io(rel, e))?;
        Ok((dir, name, found))
    }
}

impl Storage for LocalDisk {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    /// Local reads come from the page cache.
    fn quick(&self) -> bool {
        true
    }

    fn list(&self, rel: &RelPath) -> Result<Vec<Entry>, FilesError> {
        self.list_folder(rel)
    }

    fn walk(&self, rel: &RelPath) -> Result<Tree, FilesError> {
        self.walk_tree(rel)
    }

    fn ignores_case(&self, rel: &RelPath) -> bool {
        super::case::ignores_case(&rel.to_path(&self.root))
    }

    /// Describes one entry.
    fn stat(&self, rel: &RelPath) -> Result<Entry, FilesError> {
        let real = self.resolve(rel)?;
        // What was resolved and checked, with no link followed on the way.
        let meta = self
            .open_real(&real, nix::fcntl::OFlag::O_PATH)
            .and_then(|f| f.metadata())
            .map_err(|e| FilesError::from_io(rel, e))?;
        let name = rel.file_name().unwrap_or("").to_string();
        Ok(entry(name, &meta, kind_of(&meta)))
    }

    /// Describes the entry `rel` names without following it when it is a
    /// symlink (the link is described, wherever it leads).
    fn stat_name(&self, rel: &RelPath) -> Result<Entry, FilesError> {
        let (folder, name) = self.parent_to_look_in(rel)?;
        let meta = meta_at(&folder, name.as_ref()).map_err(|e| FilesError::from_io(rel, e))?;
        Ok(entry(name, &meta, kind_of(&meta)))
    }

    /// Whether `rel` exists (without following a final symlink).
    fn exists(&self, rel: &RelPath) -> bool {
        self.parent_to_look_in(rel)
            .is_ok_and(|(folder, name)| meta_at(&folder, name.as_ref()).is_ok())
    }

    /// Opens a file for reading, beneath the root.
    fn open_read(&self, rel: &RelPath) -> Result<(Reader, Entry), FilesError> {
        let file = self.open_for_reading(rel)?;
        let meta = file.metadata().map_err(|e| FilesError::from_io(rel, e))?;
        if meta.is_dir() {
            return Err(FilesError::IsADirectory(format!("{rel} is a folder")));
        }
        if !meta.is_file() {
            return Err(FilesError::Forbidden(format!(
                "{rel} is not a regular file"
            )));
        }
        if super::pseudo::size_unknown(&file, &meta).map_err(|e| FilesError::from_io(rel, e))? {
            return Err(FilesError::Forbidden(format!(
                "{rel} is a kernel file (its size is known only by reading it); not served"
            )));
        }
        let name = rel.file_name().unwrap_or("").to_string();
        Ok((Box::new(file), entry(name, &meta, EntryKind::File)))
    }

    /// Starts receiving `rel` into its hidden partial file (see
    /// [`super::part`]).
    fn begin_write(&self, rel: &RelPath, replace: bool, resume: bool) -> Result<Begun, FilesError> {
        let (dir, name) = self.resolve_parent(rel)?;
        let target = dir.join(&name);
        let replaces = match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => {
                return Err(FilesError::IsADirectory(format!("{rel} is a folder")));
            }
            Ok(m) if special(m.mode()).is_some() => {
                let e = special_there(special(m.mode()).unwrap_or_default());
                return Err(FilesError::from_io(rel, e));
            }
            Ok(_) if !replace => {
                return Err(FilesError::Exists(format!(
                    "{rel} exists (ask to overwrite with --force)"
                )));
            }
            Ok(_) => true,
            Err(_) => false,
        };
        {
            let mut set = self.uploads.lock().map_err(|_| FilesError::Internal)?;
            if !set.insert(target.clone()) {
                return Err(FilesError::Busy(format!(
                    "{rel} is being uploaded by another client"
                )));
            }
        }
        let guard = UploadGuard {
            target: target.clone(),
            uploads: self.uploads.clone(),
        };
        let folder = self
            .open_folder(&dir)
            .map_err(|e| FilesError::from_io(rel, e))?;
        let part = PartFile::open_in(folder, name.as_ref(), target, resume)
            .map_err(|e| FilesError::from_io(rel, e))?;
        Ok(Begun {
            part: Box::new(LocalPart {
                part: Some(part),
                _guard: guard,
                keep_on_drop: resume,
            }),
            replaces,
        })
    }

    fn removable(&self, rel: &RelPath) -> Result<(), FilesError> {
        let (dir, name) = self.resolve_parent(rel)?;
        self.untouchable(rel, &dir.join(name))
    }

    /// Removes a file, a symlink (not its target) or a folder (non-empty
    /// only with `recursive`).
    fn remove(&self, rel: &RelPath, recursive: bool) -> Result<(), FilesError> {
        use nix::unistd::{UnlinkatFlags, unlinkat};
        let (folder, dir, name) = self.parent_folder(rel)?;
        self.untouchable(rel, &dir.join(&name))?;
        let io = |e: nix::errno::Errno| FilesError::from_io(rel, e.into());
        match look_at(&folder, name.as_ref()).map_err(|e| FilesError::from_io(rel, e))? {
            Found::Nothing => Err(FilesError::NotFound(format!("{rel} does not exist"))),
            Found::Folder if recursive => {
                // std's remove_dir_all walks with openat and O_NOFOLLOW; it
                // is given the folder through its open descriptor, so no
                // component above it is looked up by name again.
                use std::os::fd::AsRawFd;
                let through = format!("/proc/self/fd/{}/{name}", folder.as_raw_fd());
                fs::remove_dir_all(through).map_err(|e| FilesError::from_io(rel, e))
            }
            Found::Folder => unlinkat(&folder, name.as_str(), UnlinkatFlags::RemoveDir).map_err(io),
            _ => unlinkat(&folder, name.as_str(), UnlinkatFlags::NoRemoveDir).map_err(io),
        }
    }

    /// Creates one folder, relative to its open parent.
    fn mkdir(&self, rel: &RelPath) -> Result<(), FilesError> {
        let (folder, _, name) = self.parent_folder(rel)?;
        nix::sys::stat::mkdirat(
            &folder,
            name.as_str(),
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .map_err(|e| FilesError::from_io(rel, e.into()))
    }

    /// Renames within the root; replaces an existing file only with `force`
    /// and never replaces a folder.
    fn rename(&self, from: &RelPath, to: &RelPath, force: bool) -> Result<(), FilesError> {
        let (ffolder, fdir, fname) = self.parent_folder(from)?;
        if look_at(&ffolder, fname.as_ref()).map_err(|e| FilesError::from_io(from, e))?
            == Found::Nothing
        {
            return Err(FilesError::NotFound(format!("{from} does not exist")));
        }
        let (tfolder, tdir, tname) = self.parent_folder(to)?;
        let (src, dst) = (fdir.join(&fname), tdir.join(&tname));
        self.untouchable(from, &src)?;
        self.untouchable(to, &dst)?;
        if dst.starts_with(&src) && dst != src {
            return Err(FilesError::Forbidden(format!(
                "cannot move {from} into itself"
            )));
        }
        match look_at(&tfolder, tname.as_ref()).map_err(|e| FilesError::from_io(to, e))? {
            Found::Folder => {
                return Err(FilesError::Exists(format!("{to} is an existing folder")));
            }
            Found::Nothing => {}
            _ if !force => {
                return Err(FilesError::Exists(format!(
                    "{to} exists (ask to overwrite with --force)"
                )));
            }
            _ => {}
        }
        if force {
            super::part::refuse_special(&tfolder, tname.as_ref())
                .map_err(|e| FilesError::from_io(to, e))?;
            nix::fcntl::renameat(&ffolder, fname.as_str(), &tfolder, tname.as_str())
                .map_err(|e| FilesError::from_io(to, e.into()))
        } else {
            // No-clobber to the end: a file that appears at the target
            // meanwhile is not replaced.
            super::part::rename_noreplace_between(
                &ffolder,
                fname.as_ref(),
                &tfolder,
                tname.as_ref(),
            )
            .map_err(|e| FilesError::from_io(to, e))
        }
    }

    /// Whether an unfinished upload of `rel` has left a partial file.
    fn partial_exists(&self, rel: &RelPath) -> bool {
        matches!(self.partial(rel), Ok((_, _, Found::Plain(_))))
    }

    /// How far an upload of `rel` (`length` bytes in all) has come: the
    /// partial file's size, or `length` once a file of that size is in
    /// place; `None` when there is neither.
    fn upload_progress(&self, rel: &RelPath, length: u64) -> Result<Option<u64>, FilesError> {
        let (dir, name, found) = self.partial(rel)?;
        if let Found::Plain(n) = found {
            return Ok(Some(n));
        }
        Ok(fs::symlink_metadata(dir.join(name))
            .ok()
            .filter(|m| m.is_file() && m.len() == length)
            .map(|_| length))
    }

    fn partial_generation(&self, rel: &RelPath) -> Result<Option<String>, FilesError> {
        let (dir, name) = self.resolve_parent(rel)?;
        let folder = self
            .open_folder(&dir)
            .map_err(|e| FilesError::from_io(rel, e))?;
        let held = PartFile::generation_at(&folder, name.as_ref());
        let there = match held {
            Ok(None) => PartFile::generation_of(&folder, name.as_ref()),
            held => held,
        };
        there.map_err(|e| FilesError::from_io(rel, e))
    }

    /// Removes the partial file of an unfinished upload of `rel` (unless an
    /// upload of it is running); whether there was one.
    fn remove_partial(&self, rel: &RelPath) -> Result<bool, FilesError> {
        let (dir, name) = self.resolve_parent(rel)?;
        let target = dir.join(name);
        if self
            .uploads
            .lock()
            .map_err(|_| FilesError::Internal)?
            .contains(&target)
        {
            return Err(FilesError::Busy(format!("{rel} is being uploaded")));
        }
        // Unlinks whatever is at the name (a link's target is never
        // touched), but only a plain file counts as a partial upload.
        let (dir, name, found) = self.partial(rel)?;
        let folder = self
            .open_folder(&dir)
            .map_err(|e| FilesError::from_io(rel, e))?;
        match nix::unistd::unlinkat(
            &folder,
            &*part_name(name.as_ref()),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) => Ok(matches!(found, Found::Plain(_))),
            Err(nix::errno::Errno::ENOENT) => Ok(false),
            Err(e) => Err(FilesError::from_io(rel, e.into())),
        }
    }

    /// Removes partial files (of uploads that never came back) untouched
    /// for longer than `max_age`, anywhere below the root; never one whose
    /// upload is running. Returns how many were removed.
    fn sweep_partials(&self, max_age: std::time::Duration) -> usize {
        let mut removed = 0;
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            // Each folder opened with no link followed, read and swept
            // through that descriptor: one swapped for a link meanwhile is
            // never swept in its place.
            let Ok(folder) = self.open_folder(&dir) else {
                continue;
            };
            let Ok(names) = listing::names_in(&folder) else {
                continue;
            };
            for name in names {
                let Ok(meta) = meta_at(&folder, &name) else {
                    continue;
                };
                let path = dir.join(&name);
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                if !meta.is_file() || !name.to_string_lossy().ends_with(PART_SUFFIX) {
                    continue;
                }
                let old = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > max_age);
                let busy = self
                    .uploads
                    .lock()
                    .map(|set| set.iter().any(|t| super::part::part_path(t) == path))
                    .unwrap_or(true);
                use nix::unistd::{UnlinkatFlags, unlinkat};
                let gone = || unlinkat(&folder, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
                if old && !busy && gone().is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// The real path of the folder `rel`, which must exist inside the root.
    fn real(&self, rel: &RelPath, keep_last: bool) -> Option<RelPath> {
        let (folder, last) = match (keep_last, rel.parent(), rel.file_name()) {
            (true, Some(parent), Some(name)) => (parent, Some(name)),
            _ => (rel.clone(), None),
        };
        let real = planned::canonical_or_planned(&folder.to_path(&self.root));
        let below = real.strip_prefix(&self.root).ok()?;
        let mut text: String = below
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<Vec<_>>>()?
            .join("/");
        if let Some(name) = last {
            text.push('/');
            text.push_str(name);
        }
        RelPath::parse(&text).ok()
    }

    fn local_folder(&self, rel: &RelPath) -> Result<PathBuf, FilesError> {
        let dir = self.resolve(rel)?;
        if !dir.is_dir() {
            return Err(FilesError::NotADirectory(format!("{rel} is not a folder")));
        }
        Ok(dir)
    }

    fn space(&self) -> Option<super::storage::Space> {
        let v = nix::sys::statvfs::statvfs(&self.root).ok()?;
        let unit = v.fragment_size() as u64;
        let total = (v.blocks() as u64).saturating_mul(unit);
        let free = (v.blocks_free() as u64).saturating_mul(unit);
        Some(super::storage::Space {
            used: total.saturating_sub(free),
            available: (v.blocks_available() as u64).saturating_mul(unit),
        })
    }
}
