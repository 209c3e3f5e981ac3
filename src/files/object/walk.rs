//! A folder of the bucket walked whole (for folder downloads and
//! archives): every key below it, as the folders and files they make.

use std::collections::btree_map::Entry as Slot;
use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path;

use super::bucket::{mtime_of, servable};
use super::{FOLDER_MARKER, ObjectStorage, STATE_FOLDER};
use crate::files::FilesError;
use crate::files::entry::{EntryKind, SkipReason, Skipped, Tree, TreeEntry};
use crate::files::name::{MAX_DEPTH, RelPath};

/// Empty objects asked about in one walk, at most (each is a HEAD): past
/// this, an empty object is taken for an empty file.
const MAX_PROBES: usize = 1000;

/// Every folder and file below `rel`, sorted by path.
pub(super) fn tree(storage: &ObjectStorage, rel: &RelPath) -> Result<Tree, FilesError> {
    let here = storage.describe_entry(rel)?;
    // A folder wins over a file of its name, as in listings.
    if here.kind != EntryKind::Dir && !storage.has_below(rel)? {
        return Err(FilesError::NotADirectory(format!("{rel} is not a folder")));
    }
    let mut tree: BTreeMap<String, TreeEntry> = BTreeMap::new();
    let mut empty = Vec::new();
    // Keys whose names no peer may be sent, by the first such name on
    // their path (a folder of them is one).
    let mut refused: BTreeSet<String> = BTreeSet::new();
    // What lies deeper than a path may go, by its first such name.
    let mut too_deep: BTreeSet<String> = BTreeSet::new();
    let within = MAX_DEPTH.saturating_sub(rel.parts().len());
    'objects: for (path, meta) in storage.objects_below(rel)? {
        if path.is_empty() {
            continue; // another tool's marker of the folder itself
        }
        let parts: Vec<&str> = path.split('/').collect();
        if rel.is_root() && parts.first() == Some(&STATE_FOLDER) {
            continue;
        }
        for (i, name) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if last && *name == FOLDER_MARKER {
                break;
            }
            if !servable(name) {
                if *name != FOLDER_MARKER {
                    refused.insert(parts[..=i].join("/"));
                }
                continue 'objects;
            }
            if i >= within {
                too_deep.insert(parts[..=i].join("/"));
                continue 'objects;
            }
            let at = parts[..=i].join("/");
            let entry = if last {
                if meta.size == 0 && empty.len() < MAX_PROBES {
                    empty.push((at.clone(), meta.location.clone()));
                }
                TreeEntry {
                    path: at.clone(),
                    kind: EntryKind::File,
                    size: meta.size,
                    mtime: Some(mtime_of(&meta)),
                }
            } else {
                TreeEntry {
                    path: at.clone(),
                    kind: EntryKind::Dir,
                    size: 0,
                    mtime: None,
                }
            };
            // A folder wins over a file of its name: another tool's
            // `NAME/` marker is listed as `NAME`, before what it holds.
            match tree.entry(at) {
                Slot::Vacant(v) => {
                    v.insert(entry);
                }
                Slot::Occupied(mut o) => {
                    if entry.kind == EntryKind::Dir {
                        o.insert(entry);
                    }
                }
            }
        }
    }
    for at in markers(storage, empty) {
        if let Some(e) = tree.get_mut(&at) {
            e.kind = EntryKind::Dir;
            e.mtime = None;
        }
    }
    // Sorted by path, a folder comes before what it holds.
    Ok(Tree {
        entries: tree.into_values().collect(),
        skipped: refused
            .into_iter()
            .map(|path| Skipped {
                path,
                why: SkipReason::Name,
            })
            .chain(too_deep.into_iter().map(|path| Skipped {
                path,
                why: SkipReason::TooDeep,
            }))
            .collect(),
    })
}

/// Which of the empty objects listed (path, key) are another tool's
/// `NAME/` folder markers, which a listing gives as `NAME`: no object
/// answers to `NAME` itstorage. Asked a few at a time.
fn markers(storage: &ObjectStorage, empty: Vec<(String, Path)>) -> Vec<String> {
    if empty.is_empty() {
        return Vec::new();
    }
    let store = storage.bucket.store.clone();
    storage.bucket.wait(async move {
        futures_util::stream::iter(empty)
            .map(|(at, key)| {
                let store = store.clone();
                async move {
                    let gone = matches!(
                        store.head(&key).await,
                        Err(object_store::Error::NotFound { .. })
                    );
                    gone.then_some(at)
                }
            })
            .buffer_unordered(16)
            .filter_map(std::future::ready)
            .collect()
            .await
    })
}
