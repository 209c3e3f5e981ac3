//! A folder of the bucket listed a page of the store at a time
//! (ListObjectsV2 with a delimiter, 1,000 keys a page): a folder of any
//! size is listed without holding it whole.

use std::collections::BTreeMap;

use futures_util::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::list::{PaginatedListOptions, PaginatedListStore};

use super::bucket::{error, mtime_of, servable};
use super::{ObjectStorage, STATE_FOLDER};
use crate::files::FilesError;
use crate::files::entry::{Entry, EntryKind};
use crate::files::name::RelPath;

/// Keys asked for a page.
const PAGE: usize = 1000;

/// Lists `rel`, handing each page's entries (sorted: the store lists in
/// key order) to `page`.
pub(super) fn pages(
    storage: &ObjectStorage,
    rel: &RelPath,
    page: &mut dyn FnMut(Vec<Entry>) -> Result<(), FilesError>,
) -> Result<(), FilesError> {
    let here = storage.describe_entry(rel)?;
    // A folder wins over a file of its name (made at once through two
    // servers), as in the listing above it.
    if here.kind != EntryKind::Dir && !storage.has_below(rel)? {
        return Err(FilesError::NotADirectory(format!("{rel} is not a folder")));
    }
    let bucket = &storage.bucket;
    let base = bucket.key(rel);
    let prefix = if base.as_ref().is_empty() {
        String::new()
    } else {
        format!("{base}/")
    };
    let mut token: Option<String> = None;
    loop {
        let store = bucket.store.clone();
        let opts = PaginatedListOptions {
            delimiter: Some("/".into()),
            max_keys: Some(PAGE),
            page_token: token.take(),
            ..PaginatedListOptions::default()
        };
        let at = prefix.clone();
        let found = bucket
            .wait(async move {
                let mut found = store
                    .list_paginated((!at.is_empty()).then_some(at.as_str()), opts)
                    .await?;
                // Some stores (SeaweedFS) report a folder whose keys were
                // all deleted for a while after: a folder is shown only
                // while a key lies below it, as `stat` says.
                let held: Vec<bool> =
                    futures_util::stream::iter(found.result.common_prefixes.clone())
                        .map(|p| {
                            let store = store.clone();
                            async move { store.list(Some(&p)).next().await.transpose() }
                        })
                        .buffered(16)
                        .map_ok(|first| first.is_some())
                        .try_collect()
                        .await?;
                let mut kept = held.into_iter();
                found
                    .result
                    .common_prefixes
                    .retain(|_| kept.next().unwrap_or(false));
                Ok::<_, object_store::Error>(found)
            })
            .map_err(|e| error(rel, e))?;
        let mut entries = BTreeMap::new();
        for p in found.result.common_prefixes {
            let Some(name) = p.filename() else { continue };
            if servable(name) && !(rel.is_root() && name == STATE_FOLDER) {
                let e = Entry {
                    name: name.to_string(),
                    kind: EntryKind::Dir,
                    size: 0,
                    mtime: None,
                };
                entries.insert(name.to_string(), e);
            }
        }
        for m in found.result.objects {
            // A folder marker written as `PATH/` lists as the folder itself.
            if m.location == base {
                continue;
            }
            let Some(name) = m.location.filename() else {
                continue;
            };
            if servable(name) && !entries.contains_key(name) {
                let e = Entry {
                    name: name.to_string(),
                    kind: EntryKind::File,
                    size: m.size,
                    mtime: Some(mtime_of(&m)),
                };
                entries.insert(name.to_string(), e);
            }
        }
        if !entries.is_empty() {
            page(entries.into_values().collect())?;
        }
        match found.page_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(()),
        }
    }
}
