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
use super::state::forget_records;
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
    if ObjectStorage::reserved(to) || ObjectStorage::reserved(from) {
        return Err(FilesError::Forbidden(format!(
            "{to} is a name the server keeps for itself"
        )));
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
    let copies: Vec<Copy> = if source.kind == EntryKind::File {
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
        let to_key = s.bucket.key(to);
        s.objects_below(from)?
            .into_iter()
            .map(|(below, m)| {
                let dest =
                    Path::parse(format!("{to_key}/{below}")).unwrap_or_else(|_| bucket::nowhere());
                // A key that is no name ferry serves is copied by the store.
                let names = || {
                    let below = RelPath::parse(&below).ok()?;
                    Some((from.join(&below), to.join(&below)))
                };
                Copy {
                    through: needs_copy_through(&m).then(names).flatten(),
                    etag: m.e_tag.clone(),
                    from: m.location,
                    to: dest,
                }
            })
            .collect()
    };
    // The store's own copies first: they make the folders the others go in.
    let (through, direct): (Vec<Copy>, Vec<Copy>) =
        copies.into_iter().partition(|c| c.through.is_some());
    let store = s.bucket.store.clone();
    let pairs: Vec<(Path, Path)> = direct
        .iter()
        .map(|c| (c.from.clone(), c.to.clone()))
        .collect();
    s.bucket
        .wait(async move {
            for (a, b) in &pairs {
                store.copy(a, b).await?;
            }
            Ok::<_, object_store::Error>(())
        })
        .map_err(|e| error(from, e))?;
    for c in &through {
        let (f, t) = c.through.as_ref().expect("partitioned on it");
        copy_through(s, f, t, force)?;
    }
    let store = s.bucket.store.clone();
    let gone: Vec<Path> = direct
        .iter()
        .chain(&through)
        .map(|c| c.from.clone())
        .collect();
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
        through.iter().map(|c| (c.from.as_ref(), c.etag.as_deref())),
    );
    Ok(())
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
