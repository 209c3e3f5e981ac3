//! Walking a local folder for an upload, under the same rules the server
//! applies to its own tree: every name through the validator, symlinks
//! followed only to files inside the folder, no descent into linked folders.

use std::fs;
use std::path::{Path, PathBuf};

use super::ClientError;
use crate::files::RelPath;
use crate::files::name::{is_part_file_name, shown_name};
use crate::files::part::mtime_of;
use crate::wire::messages::{EntryKind, SkipReason, Skipped, TreeEntry};

/// A local tree ready to send: entries (parents first) and where each file
/// is on disk.
#[derive(Debug, Default)]
pub struct LocalTree {
    /// Folders and files, `/`-separated paths relative to the top.
    pub entries: Vec<TreeEntry>,
    /// For each entry, its path on disk.
    pub paths: Vec<PathBuf>,
    /// What was left out, and why.
    pub skipped: Vec<Skipped>,
}

/// Walks `top`. A name the validator refuses fails the whole walk: a folder
/// upload is all or nothing. Partial files of unfinished downloads are left
/// out, and so is what cannot be read below the top, each named in
/// [`LocalTree::skipped`].
pub fn walk_local(top: &Path) -> Result<LocalTree, ClientError> {
    let real_top = fs::canonicalize(top).map_err(|e| ClientError::local(top, e))?;
    let mut tree = LocalTree::default();
    let mut stack = vec![(real_top.clone(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let listed = fs::read_dir(&dir).and_then(|names| names.collect::<Result<Vec<_>, _>>());
        let mut items = match listed {
            Ok(items) => items,
            Err(e) if prefix.is_empty() => return Err(ClientError::local(&dir, e)),
            Err(_) => {
                tree.skipped.push(Skipped {
                    path: prefix,
                    why: SkipReason::Unreadable,
                });
                continue;
            }
        };
        items.sort_by_key(|e| e.file_name());
        for item in items {
            let under = |name: &str| match prefix.is_empty() {
                true => name.to_string(),
                false => format!("{prefix}/{name}"),
            };
            if is_part_file_name(&item.file_name()) {
                tree.skipped.push(Skipped {
                    path: under(&shown_name(&item.file_name())),
                    why: SkipReason::Partial,
                });
                continue;
            }
            let rel = under(&RelPath::component_from_os(&item.file_name())?);
            let path = item.path();
            let lmeta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => {
                    tree.skipped.push(Skipped {
                        path: rel,
                        why: SkipReason::Unreadable,
                    });
                    continue;
                }
            };
            let meta = if lmeta.file_type().is_symlink() {
                match fs::canonicalize(&path) {
                    Ok(real) if real.starts_with(&real_top) => match fs::metadata(&real) {
                        Ok(m) if m.is_file() => m,
                        _ => {
                            tree.skipped.push(Skipped {
                                path: rel,
                                why: SkipReason::LinkToFolder,
                            });
                            continue;
                        }
                    },
                    _ => {
                        tree.skipped.push(Skipped {
                            path: rel,
                            why: SkipReason::LinkOut,
                        });
                        continue;
                    }
                }
            } else {
                lmeta
            };
            let kind = if meta.is_dir() {
                stack.push((path.clone(), rel.clone()));
                EntryKind::Dir
            } else if meta.is_file() {
                EntryKind::File
            } else {
                tree.skipped.push(Skipped {
                    path: rel,
                    why: SkipReason::Special,
                });
                continue;
            };
            tree.entries.push(TreeEntry {
                path: rel,
                kind,
                size: if kind == EntryKind::File {
                    meta.len()
                } else {
                    0
                },
                mtime: mtime_of(&meta),
            });
            tree.paths.push(path);
        }
    }
    let mut order: Vec<usize> = (0..tree.entries.len()).collect();
    order.sort_by(|&a, &b| {
        tree.entries[a]
            .path
            .split('/')
            .cmp(tree.entries[b].path.split('/'))
    });
    tree.entries = order.iter().map(|&i| tree.entries[i].clone()).collect();
    tree.paths = order.iter().map(|&i| tree.paths[i].clone()).collect();
    Ok(tree)
}

/// A file in the temporary folder that only this process can reach: made
/// new, readable by its owner alone, and unlinked at once, so that
/// nothing of what it holds (standard input, a kernel file being
/// sent) is left behind however the process ends.
pub fn spool() -> Result<std::fs::File, ClientError> {
    use std::os::unix::fs::OpenOptionsExt;
    let id = crate::ids::random_hex().map_err(|e| ClientError::Local(e.to_string()))?;
    let path = std::env::temp_dir().join(format!(".ferry-spool-{id}"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ClientError::local(&path, e))?;
    std::fs::remove_file(&path).map_err(|e| ClientError::local(&path, e))?;
    Ok(file)
}
