//! Moves in a bucket: every copy first, then every delete, so that a move
//! cut off half-way leaves both, never neither.
//!
//! A file is copied through the server, as a new upload verified against
//! the digest kept of the original: its reading is pinned to the version
//! checked (`If-Match`) and its writing made only if its name is free
//! (`If-None-Match`, unless it replaces a file on purpose), which no
//! store-side copy can be; and it keeps the time and digests of a file
//! stored in parts (in a record a copy does not carry) and of one past
//! S3's 5 GiB copy limit. The store copies (CopyObject, keeping metadata)
//! only keys that are no names ferry serves (folder markers, other tools'
//! odd keys).

use std::io::Read;

use object_store::ObjectStore;
use object_store::path::Path;

use super::bucket::{self, error};
use super::state::{FileRecord, forget_records};
use super::{EntryKind, FilesError, Found, ObjectStorage, RelPath};
use crate::files::digest::Algo;
use crate::files::storage::Storage;

/// Bytes moved at a time when a file is copied through the server.
const CHUNK: usize = 8 << 20;

/// One object to copy: its key, where it goes, and, when it must be
/// copied through the server, the names to read and write it by.
struct Copy {
    from: Path,
    /// The ETag of `from` when listed.
    etag: Option<String>,
    to: Path,
    through: Option<(RelPath, RelPath)>,
}

/// Whether the object `name` (below a folder moved) is a folder marker.
fn marker(name: &str) -> bool {
    name.rsplit('/').next() == Some(super::FOLDER_MARKER)
}

pub(super) fn rename(
    s: &ObjectStorage,
    from: &RelPath,
    to: &RelPath,
    force: bool,
) -> Result<(), FilesError> {
    for rel in [from, to] {
        if ObjectStorage::reserved(rel) {
            return Err(FilesError::Forbidden(format!(
                "{rel} is a name the server keeps for itself"
            )));
        }
    }
    if from.is_root() || to.is_root() {
        return Err(FilesError::Forbidden(
            "the served folder itself cannot be moved".into(),
        ));
    }
    if to == from {
        // Copying it onto itself and deleting "the source" would lose it.
        s.describe_entry(from)?;
        return Ok(());
    }
    if to.parts().starts_with(from.parts()) {
        return Err(FilesError::Forbidden(format!(
            "cannot move {from} into itself"
        )));
    }
    let source = s.describe_entry(from)?;
    s.parent_is_folder(to)?;
    match s.describe_entry(to) {
        Ok(e) if e.kind == EntryKind::Dir => {
            return Err(FilesError::Exists(format!("{to} is a folder")));
        }
        Ok(_) if !force || source.kind == EntryKind::Dir => {
            return Err(FilesError::Exists(format!("{to} exists")));
        }
        Ok(_) | Err(FilesError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    // Only a file moved with `force` replaces what is at its new name.
    let replace = force && source.kind == EntryKind::File;
    let copies = if source.kind == EntryKind::File {
        let meta = s
            .head(from)?
            .ok_or_else(|| FilesError::NotFound(format!("{from} does not exist")))?
            .meta;
        vec![Copy {
            etag: meta.e_tag,
            from: meta.location,
            to: s.bucket.key(to),
            // Read pinned to the version checked (a store-side copy cannot
            // be): two moves swapping names never copy each other's copy.
            through: Some((from.clone(), to.clone())),
        }]
    } else {
        folder_copies(s, from, to)?
    };
    let mut made = Vec::new();
    let copied = copy_all(s, from, &copies, replace, &mut made)
        .and_then(|()| unchanged(s, from, &copies, &made));
    if let Err(e) = copied {
        // Undone: what was copied goes, the source stays as it is. A file
        // moved onto one it replaced keeps its copy there (what it replaced
        // is gone already), and says so.
        if !replace {
            undo(s, &made);
        } else if !made.is_empty() {
            return Err(FilesError::Busy(format!(
                "{from} changed while it was being moved: {to} holds the version copied \
                 (what it held is replaced), {from} the newer one"
            )));
        }
        return Err(e);
    }
    // Each source goes only while it is still the version copied: the
    // instant between that check and the delete is the window left.
    let mut kept = Vec::new();
    for c in &copies {
        if !still_copied(s, c)? {
            kept.push(c.from.to_string());
            continue;
        }
        let store = s.bucket.store.clone();
        let key = c.from.clone();
        match s.bucket.wait(async move { store.delete(&key).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(error(from, e)),
        }
        if c.through.is_some() {
            forget_records(&s.bucket, [(c.from.as_ref(), c.etag.as_deref())]);
        }
    }
    if !kept.is_empty() {
        return Err(FilesError::Busy(format!(
            "{from}: {} of what was moved changed meanwhile, and is kept both where it was \
             (the newer) and where it was moved (the version copied)",
            kept.len()
        )));
    }
    Ok(())
}

/// What a copy wrote: where, and the bytes' identity there.
struct Made {
    to: Path,
    what: Identity,
    through: bool,
}

/// What tells one file's bytes from another's: their size and SHA-256
/// where ferry kept it, else their ETag.
#[derive(Debug, Clone, PartialEq)]
struct Identity {
    size: u64,
    sha256: Option<String>,
    etag: Option<String>,
}

impl Identity {
    fn of(f: &Found) -> Identity {
        Identity {
            size: f.meta.size,
            sha256: f
                .digests
                .iter()
                .find(|(a, _)| *a == Algo::Sha256)
                .map(|(_, h)| h.to_ascii_lowercase()),
            etag: f.meta.e_tag.clone(),
        }
    }

    fn same(&self, other: &Identity) -> bool {
        self.size == other.size
            && match (&self.sha256, &other.sha256) {
                (Some(a), Some(b)) => a == b,
                _ => self.etag.is_some() && self.etag == other.etag,
            }
    }
}

/// What moving the folder `from` to `to` copies. Refused, before anything
/// is copied, when it holds a folder marker another tool wrote (a key
/// ending in `/`), which the store's client cannot address.
fn folder_copies(s: &ObjectStorage, from: &RelPath, to: &RelPath) -> Result<Vec<Copy>, FilesError> {
    let to_key = s.bucket.key(to);
    let below = s.objects_below(from)?;
    let foreign = || {
        FilesError::Forbidden(format!(
            "{from} holds a folder marker another tool wrote (a key ending in /), \
             which this server cannot move: move or remove it with that tool"
        ))
    };
    if below.is_empty() {
        // Found as a folder, yet nothing below it that can be copied.
        return Err(foreign());
    }
    let mut copies = Vec::with_capacity(below.len());
    for (name, m) in below {
        // An empty object might be such a marker, listed without its
        // slash (the folder's own, `""`): the name alone then finds nothing.
        if name.is_empty() || (m.size == 0 && s.head_key(&m.location)?.is_none()) {
            return Err(foreign());
        }
        let dest = Path::parse(format!("{to_key}/{name}")).unwrap_or_else(|_| bucket::nowhere());
        // A key that is no name ferry serves, or a folder's marker, is
        // copied by the store.
        let names = || {
            let below = RelPath::parse(&name).ok()?;
            Some((from.join(&below), to.join(&below)))
        };
        copies.push(Copy {
            through: (!marker(&name)).then(names).flatten(),
            etag: m.e_tag.clone(),
            from: m.location,
            to: dest,
        });
    }
    Ok(copies)
}

/// Makes every copy, the store's own first (they make the folders the
/// others go in), noting in `made` each destination written and what it
/// holds. Without `replace`, a name that appeared meanwhile stops it.
fn copy_all(
    s: &ObjectStorage,
    from: &RelPath,
    copies: &[Copy],
    replace: bool,
    made: &mut Vec<Made>,
) -> Result<(), FilesError> {
    for c in copies.iter().filter(|c| c.through.is_none()) {
        if !replace && s.head_key(&c.to)?.is_some() {
            return Err(FilesError::Exists(format!(
                "{from}: a name appeared where it was being moved; nothing was moved"
            )));
        }
        let source = s
            .found_at(&c.from)
            .map_err(|e| FilesError::Unavailable(bucket::short(&e)))?
            .filter(|f| f.meta.e_tag == c.etag)
            .ok_or_else(|| changed(from))?;
        let store = s.bucket.store.clone();
        let (a, b) = (c.from.clone(), c.to.clone());
        match s.bucket.wait(async move { store.copy(&a, &b).await }) {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => return Err(changed(from)),
            Err(e) => {
                return Err(FilesError::Unavailable(format!(
                    "copying {}: {}",
                    c.from,
                    bucket::short(&e)
                )));
            }
        }
        made.push(Made {
            to: c.to.clone(),
            what: Identity::of(&source),
            through: false,
        });
    }
    for c in copies {
        if let Some((f, t)) = &c.through {
            let (size, sha256) = copy_through(s, f, t, replace)?;
            made.push(Made {
                to: c.to.clone(),
                what: Identity {
                    size,
                    sha256: Some(sha256.to_ascii_lowercase()),
                    etag: None,
                },
                through: true,
            });
        }
    }
    Ok(())
}

fn changed(from: &RelPath) -> FilesError {
    FilesError::Busy(format!(
        "{from} changed while it was being moved; nothing was moved"
    ))
}

/// Whether the source of `c` is still the version copied.
fn still_copied(s: &ObjectStorage, c: &Copy) -> Result<bool, FilesError> {
    Ok(s.head_key(&c.from)?.map(|m| m.e_tag) == Some(c.etag.clone()))
}

/// Checks that every source is still the version copied, and every
/// destination still holds what was copied there: a source replaced or
/// removed meanwhile (through another server) must not be deleted, nor one
/// whose copy another move or upload replaced.
fn unchanged(
    s: &ObjectStorage,
    from: &RelPath,
    copies: &[Copy],
    made: &[Made],
) -> Result<(), FilesError> {
    for c in copies {
        if !still_copied(s, c)? {
            return Err(changed(from));
        }
    }
    for m in made {
        if !holds(s, m)? {
            return Err(FilesError::Exists(format!(
                "{from}: another move or upload wrote where it was being moved; nothing was moved"
            )));
        }
    }
    Ok(())
}

/// Whether the destination of `m` still holds what was copied there.
fn holds(s: &ObjectStorage, m: &Made) -> Result<bool, FilesError> {
    let now = s
        .found_at(&m.to)
        .map_err(|e| FilesError::Unavailable(bucket::short(&e)))?;
    Ok(now.is_some_and(|f| m.what.same(&Identity::of(&f))))
}

/// Removes what a move that did not finish copied (and the records of
/// files it copied through), each only while it still holds that copy.
fn undo(s: &ObjectStorage, made: &[Made]) {
    for m in made {
        match holds(s, m) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!("a move that did not finish may have left {}: {e}", m.to);
                continue;
            }
        }
        let store = s.bucket.store.clone();
        let mut keys = vec![m.to.clone()];
        if m.through {
            keys.push(FileRecord::path(&s.bucket, m.to.as_ref()));
        }
        let undone = s.bucket.wait(async move {
            for k in &keys {
                match store.delete(k).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        if let Err(e) = undone {
            tracing::warn!(
                "a move that did not finish left {}: {}",
                m.to,
                bucket::short(&e)
            );
        }
    }
}

/// Copies the file `from` to `to` through this server: read from the
/// store, written as an upload (in parts, completed last), verified
/// against the SHA-256 kept of `from`, with its time. A file that
/// appeared at `to` meanwhile is replaced only with `overwrite`.
fn copy_through(
    s: &ObjectStorage,
    from: &RelPath,
    to: &RelPath,
    overwrite: bool,
) -> Result<(u64, String), FilesError> {
    let (mut reader, entry) = s.open_read(from)?;
    let mut part = s.write_part(to, false)?;
    let lost = |e: std::io::Error| FilesError::from_io(from, e);
    part.start(0, entry.size).map_err(lost)?;
    let mut buf = vec![0; CHUNK];
    loop {
        let n = reader.read(&mut buf).map_err(lost)?;
        if n == 0 {
            break;
        }
        part.write(&buf[..n])
            .map_err(|e| FilesError::from_io(to, e))?;
    }
    let sha256 = reader.kept_digest(Algo::Sha256);
    part.finish(sha256.as_deref(), entry.mtime, overwrite)
        .map(|sha| (entry.size, sha))
        .map_err(FilesError::from)
}
