//! Listing a folder and walking a tree below it, and how an entry is
//! described.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::super::FilesError;
use super::super::entry::{Entry, EntryKind, SkipReason, Skipped, Tree, TreeEntry};
use super::super::name::{
    MAX_DEPTH, MAX_PATH, PART_SUFFIX, RelPath, is_part_file_name, shown_name,
};
use super::super::part::mtime_of;
use super::{LocalDisk, MAX_WALK};
use crate::files::storage::Storage;

impl LocalDisk {
    /// Lists a folder, sorted by name. The folder is opened with no link
    /// followed (see [`LocalDisk::open_real`]) and read through that
    /// descriptor, so a folder swapped for a link meanwhile is never
    /// listed in its place.
    pub(super) fn list_folder(&self, rel: &RelPath) -> Result<Vec<Entry>, FilesError> {
        let dir_real = self.local_folder(rel)?;
        let dir = self
            .open_folder(&dir_real)
            .map_err(|e| FilesError::from_io(rel, e))?;
        let mut out = Vec::new();
        for os in names_in(&dir).map_err(|e| FilesError::from_io(rel, e))? {
            let Some(name) = listable_name(&os) else {
                continue;
            };
            let Ok(lmeta) = meta_at(&dir, &os) else {
                continue;
            };
            if let Some(e) = self.describe(&dir_real.join(&os), name, &lmeta) {
                out.push(e);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Describes a folder's entry at `path` from `lmeta`, what it is itself,
    /// following a symlink only inside the root (and to what was checked:
    /// the target is opened with no link followed).
    fn describe(&self, path: &Path, name: String, lmeta: &fs::Metadata) -> Option<Entry> {
        if self.is_fenced(path) {
            return None;
        }
        if !lmeta.file_type().is_symlink() {
            return Some(entry(name, lmeta, kind_of(lmeta)));
        }
        match fs::canonicalize(path) {
            Ok(real) if self.is_fenced(&real) => None,
            Ok(real) if real.starts_with(&self.root) => {
                let meta = self
                    .open_real(&real, OFlag::O_PATH)
                    .and_then(|f| f.metadata())
                    .ok()?;
                Some(entry(name, &meta, kind_of(&meta)))
            }
            _ => Some(Entry {
                name,
                kind: EntryKind::Symlink,
                size: 0,
                mtime: mtime_of(lmeta),
            }),
        }
    }

    /// Every folder and file below `rel`, parents before children, paths
    /// relative to `rel`. Symlinks to files inside the root count as files;
    /// symlinked folders are not descended (no loops), nor are links out.
    /// What is left out is named in [`Tree::skipped`], except partial files
    /// and what the server keeps for itself.
    pub(super) fn walk_tree(&self, rel: &RelPath) -> Result<Tree, FilesError> {
        let top = self.resolve(rel)?;
        if !top.is_dir() {
            return Err(FilesError::NotADirectory(format!("{rel} is not a folder")));
        }
        let mut tree = Tree::default();
        let depth = rel.parts().len();
        // The bytes of `rel/` that every path below starts with.
        let above = rel.parts().iter().map(|p| p.len() + 1).sum::<usize>();
        let mut stack = vec![(top, String::new())];
        while let Some((dir_real, prefix)) = stack.pop() {
            // Opened with no link followed and read through the descriptor,
            // as a listing is.
            let opened = self.open_folder(&dir_real);
            let names = match opened.and_then(|dir| Ok((names_in(&dir)?, dir))) {
                Ok(names) => names,
                // The top is the request's; a folder below that cannot be
                // read is named, and the rest still walked.
                Err(e) if prefix.is_empty() => return Err(FilesError::from_io(rel, e)),
                Err(_) => {
                    skip(&mut tree, prefix, SkipReason::Unreadable);
                    continue;
                }
            };
            let (mut names, dir) = names;
            names.sort();
            for os in names {
                if tree.entries.len() + tree.skipped.len() > MAX_WALK {
                    return Err(FilesError::TooLarge(format!(
                        "{rel} holds more than {MAX_WALK} entries"
                    )));
                }
                let under = |name: &str| match prefix.is_empty() {
                    true => name.to_string(),
                    false => format!("{prefix}/{name}"),
                };
                let item = dir_real.join(&os);
                let Some(name) = listable_name(&os) else {
                    // Partial files are the server's own, as is what it fences.
                    if !is_part_file_name(&os) && !self.is_fenced(&item) {
                        skip(&mut tree, under(&shown_name(&os)), SkipReason::Name);
                    }
                    continue;
                };
                let path = under(&name);
                let lmeta = match meta_at(&dir, &os) {
                    Ok(m) => m,
                    // Gone since it was listed: not a word.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(_) => {
                        if !self.is_fenced(&item) {
                            skip(&mut tree, path, SkipReason::Unreadable);
                        }
                        continue;
                    }
                };
                let is_link = lmeta.file_type().is_symlink();
                let Some(e) = self.describe(&item, name, &lmeta) else {
                    // The server's own (or a link to it), or a link's
                    // target gone meanwhile: not a word.
                    continue;
                };
                // Looked at first: what the server keeps for itself is
                // not named, however deep.
                if depth + path.split('/').count() > MAX_DEPTH {
                    skip(&mut tree, path, SkipReason::TooDeep);
                    continue;
                }
                // A path as a client sends it starts with `/`.
                if above + path.len() + 1 > MAX_PATH {
                    skip(&mut tree, path, SkipReason::TooLong);
                    continue;
                }
                match e.kind {
                    EntryKind::Dir if !is_link => {
                        stack.push((item, path.clone()));
                    }
                    EntryKind::File => {}
                    EntryKind::Dir => {
                        skip(&mut tree, path, SkipReason::LinkToFolder);
                        continue;
                    }
                    EntryKind::Symlink => {
                        skip(&mut tree, path, SkipReason::LinkOut);
                        continue;
                    }
                    EntryKind::Other => {
                        skip(&mut tree, path, SkipReason::Special);
                        continue;
                    }
                }
                tree.entries.push(TreeEntry {
                    path,
                    kind: e.kind,
                    size: e.size,
                    mtime: e.mtime,
                });
            }
        }
        // Parents before children, whatever order the stack produced.
        tree.entries
            .sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
        Ok(tree)
    }
}

/// The names in the open folder `dir`, read through its descriptor (never
/// by path again), without `.` and `..`.
pub(super) fn names_in(dir: &File) -> io::Result<Vec<OsString>> {
    let mut d = nix::dir::Dir::from_fd(OwnedFd::from(dir.try_clone()?))?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let name = OsStr::from_bytes(e.file_name().to_bytes());
        if name != "." && name != ".." {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// What `name` in the open folder `dir` is itself: a link is described,
/// not followed.
pub(super) fn meta_at(dir: &File, name: &OsStr) -> io::Result<fs::Metadata> {
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    File::from(openat(dir, name, flags, Mode::empty())?).metadata()
}

/// Notes `path` as left out of `tree` (counted with the entries against
/// [`MAX_WALK`]).
fn skip(tree: &mut Tree, path: String, why: SkipReason) {
    tree.skipped.push(Skipped { path, why });
}

pub(super) fn listable_name(os: &std::ffi::OsStr) -> Option<String> {
    let name = RelPath::component_from_os(os).ok()?;
    (!name.ends_with(PART_SUFFIX)).then_some(name)
}

pub(super) fn kind_of(meta: &fs::Metadata) -> EntryKind {
    if meta.is_dir() {
        EntryKind::Dir
    } else if meta.is_file() {
        EntryKind::File
    } else if meta.file_type().is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    }
}

pub(super) fn entry(name: String, meta: &fs::Metadata, kind: EntryKind) -> Entry {
    Entry {
        name,
        kind,
        size: if kind == EntryKind::File {
            meta.len()
        } else {
            0
        },
        mtime: mtime_of(meta),
    }
}
