//! Moves in a bucket: every copy first, then every delete, so that a move
//! cut off half-way leaves both, never neither.
//!
//! A file stored in one PUT is copied by the store itself (CopyObject),
//! which keeps its metadata (its time and digests). A file stored in parts
//! keeps those in a record beside it that a copy does not carry, and S3
//! copies at most 5 GiB in one request: such a file is copied through
//! the server instead, as a new upload verified against the digest kept
//! of the original.

use std::io::Read;

use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};

use super::bucket::{self, error};
use super::state::{FileRecord, forget_records};
use super::{EntryKind, FilesError, ObjectStorage, RelPath};
use crate::files::digest::Algo;
use crate::files::storage::Storage;

/// Largest object S3 copies in one request.
const COPY_MAX: u64 = 5 << 30;
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

/// Whether the store cannot copy `m` whole, time and digests with it.
fn needs_copy_through(m: &ObjectMeta) -> bool {
    m.size > COPY_MAX || m.e_tag.as_deref().is_some_and(|t| t.contains('-'))
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
            etag: meta.e_tag.clone(),
            from: meta.location.clone(),
            to: s.bucket.key(to),
            through: needs_copy_through(&meta).then(|| (from.clone(), to.clone())),
        }]
    } else {
        folder_copies(s, from, to)?
    };
    let mut made = Vec::new();
    let moved = copy_all(s, &copies, replace, &mut made).and_then(|()| unchanged(s, from, &copies));
    if let Err(e) = moved {
        // Undone: what was copied goes, the source stays as it is.
        undo(s, &made);
        return Err(e);
    }
    let store = s.bucket.store.clone();
    let gone: Vec<Path> = copies.iter().map(|c| c.from.clone()).collect();
    s.bucket
        .wait(async move {
            for a in &gone {
                store.delete(a).await?;
            }
            Ok::<_, object_store::Error>(())
        })
        .map_err(|e| error(from, e))?;
    // The records kept beside the files copied through go with them.
    forget_records(
        &s.bucket,
        copies
            .iter()
            .filter(|c| c.through.is_some())
            .map(|c| (c.from.as_ref(), c.etag.as_deref())),
    );
    Ok(())
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
        // slash: the name alone then finds nothing.
        if m.size == 0 && s.head_key(&m.location)?.is_none() {
            return Err(foreign());
        }
        let dest = Path::parse(format!("{to_key}/{name}")).unwrap_or_else(|_| bucket::nowhere());
        // A key that is no name ferry serves is copied by the store.
        let names = || {
            let below = RelPath::parse(&name).ok()?;
            Some((from.join(&below), to.join(&below)))
        };
        copies.push(Copy {
            through: needs_copy_through(&m).then(names).flatten(),
            etag: m.e_tag.clone(),
            from: m.location,
            to: dest,
        });
    }
    Ok(copies)
}

/// Makes every copy, the store's own first (they make the folders the
/// others go in), noting in `made` each destination written. Without
/// `replace`, a name that appeared meanwhile stops it.
fn copy_all(
    s: &ObjectStorage,
    copies: &[Copy],
    replace: bool,
    made: &mut Vec<(Path, bool)>,
) -> Result<(), FilesError> {
    for c in copies.iter().filter(|c| c.through.is_none()) {
        if !replace && s.head_key(&c.to)?.is_some() {
            return Err(appeared(&c.to));
        }
        let store = s.bucket.store.clone();
        let (a, b) = (c.from.clone(), c.to.clone());
        s.bucket
            .wait(async move { store.copy(&a, &b).await })
            .map_err(|e| FilesError::Io(format!("copying {}: {}", c.from, bucket::short(&e))))?;
        made.push((c.to.clone(), false));
    }
    for c in copies {
        if let Some((f, t)) = &c.through {
            copy_through(s, f, t, replace)?;
            made.push((c.to.clone(), true));
        }
    }
    Ok(())
}

fn appeared(key: &Path) -> FilesError {
    FilesError::Exists(format!(
        "{key} appeared while it was being moved there; nothing was moved"
    ))
}

/// Checks that every source is still the version copied: one replaced or
/// removed meanwhile (through another server) must not be deleted.
fn unchanged(s: &ObjectStorage, from: &RelPath, copies: &[Copy]) -> Result<(), FilesError> {
    for c in copies {
        let now = s.head_key(&c.from)?;
        if now.as_ref().map(|m| &m.e_tag) != Some(&c.etag) {
            return Err(FilesError::Busy(format!(
                "{from} changed while it was being moved; nothing was moved"
            )));
        }
    }
    Ok(())
}

/// Removes what a move that did not finish copied (and the records of
/// files it copied through).
fn undo(s: &ObjectStorage, made: &[(Path, bool)]) {
    let store = s.bucket.store.clone();
    let mut keys: Vec<Path> = made.iter().map(|(k, _)| k.clone()).collect();
    keys.extend(
        made.iter()
            .filter(|(_, through)| *through)
            .map(|(k, _)| FileRecord::path(&s.bucket, k.as_ref())),
    );
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
            "a move that did not finish left copies: {}",
            bucket::short(&e)
        );
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
) -> Result<(), FilesError> {
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
        .map(|_| ())
        .map_err(FilesError::from)
}
