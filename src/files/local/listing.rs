//! Listing a folder and walking a tree below it, and how an entry is
//! described.

use std::fs;
use std::path::Path;

use super::super::FilesError;
use super::super::entry::{Entry, EntryKind, SkipReason, Skipped, Tree, TreeEntry};
use super::super::name::{MAX_DEPTH, PART_SUFFIX, RelPath, is_part_file_name, shown_name};
use super::super::part::mtime_of;
use super::{LocalDisk, MAX_WALK};
use crate::files::storage::Storage;

impl LocalDisk {
    /// Lists a folder, sorted by name.
    pub(super) fn list_folder(&self, rel: &RelPath) -> Result<Vec<Entry>, FilesError> {
        let dir = self.local_folder(rel)?;
        let mut out = Vec::new();
        for item in fs::read_dir(&dir).map_err(|e| FilesError::from_io(rel, e))? {
            let item = item.map_err(|e| FilesError::from_io(rel, e))?;
            let Some(name) = listable_name(&item.file_name()) else {
                continue;
            };
            if let Some(e) = self.describe(&item.path(), name) {
                out.push(e);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Describes a directory entry, following a symlink only inside the root.
    fn describe(&self, path: &Path, name: String) -> Option<Entry> {
        if self.is_fenced(path) {
            return None;
        }
        let lmeta = fs::symlink_metadata(path).ok()?;
        if !lmeta.file_type().is_symlink() {
            return Some(entry(name, &lmeta, kind_of(&lmeta)));
        }
        match fs::canonicalize(path) {
            Ok(real) if self.is_fenced(&real) => None,
            Ok(real) if real.starts_with(&self.root) => {
                let meta = fs::metadata(&real).ok()?;
                Some(entry(name, &meta, kind_of(&meta)))
            }
            _ => Some(Entry {
                name,
                kind: EntryKind::Symlink,
                size: 0,
                mtime: mtime_of(&lmeta),
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
        let mut stack = vec![(top, String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let mut names: Vec<_> = match fs::read_dir(&dir) {
                Ok(names) => names.filter_map(Result::ok).collect(),
                // The top is the request's; a folder below that cannot be
                // read is named, and the rest still walked.
                Err(e) if prefix.is_empty() => return Err(FilesError::from_io(rel, e)),
                Err(_) => {
                    skip(&mut tree, prefix, SkipReason::Unreadable);
                    continue;
                }
            };
            names.sort_by_key(|e| e.file_name());
            for item in names {
                if tree.entries.len() + tree.skipped.len() > MAX_WALK {
                    return Err(FilesError::TooLarge(format!(
                        "{rel} holds more than {MAX_WALK} entries"
                    )));
                }
                let under = |name: &str| match prefix.is_empty() {
                    true => name.to_string(),
                    false => format!("{prefix}/{name}"),
                };
                let os = item.file_name();
                let Some(name) = listable_name(&os) else {
                    // Partial files are the server's own, as is what it fences.
                    if !is_part_file_name(&os) && !self.is_fenced(&item.path()) {
                        skip(&mut tree, under(&shown_name(&os)), SkipReason::Name);
                    }
                    continue;
                };
                let path = under(&name);
                let is_link = item.file_type().map(|t| t.is_symlink()).unwrap_or(true);
                let Some(e) = self.describe(&item.path(), name) else {
                    // Gone since it was listed, or the server's own: not a
                    // word. Anything else kept it from being looked at.
                    let unseen = fs::symlink_metadata(item.path())
                        .is_err_and(|e| e.kind() != std::io::ErrorKind::NotFound);
                    if unseen && !self.is_fenced(&item.path()) {
                        skip(&mut tree, path, SkipReason::Unreadable);
                    }
                    continue;
                };
                // Looked at first: what the server keeps for itself is
                // not named, however deep.
                if depth + path.split('/').count() > MAX_DEPTH {
                    skip(&mut tree, path, SkipReason::TooDeep);
                    continue;
                }
                match e.kind {
                    EntryKind::Dir if !is_link => {
                        stack.push((item.path(), path.clone()));
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
