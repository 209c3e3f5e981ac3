//! Digests of whole files already computed, so that an unchanged file is
//! not hashed again on every download. The key is what any change moves:
//! device, inode, size, modification and status-change times (the status
//! change time cannot be set back by a writer, and a replaced file has
//! another inode). A file changed in the same instant it was described
//! could keep its times, so a file changed less than [`SETTLE`] before it
//! was described is not remembered (git's "racy" rule).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::digest::Algo;
use super::storage::StoredFile;

/// Files changed more recently than this are not remembered.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Most digests kept; past this the cache starts over.
pub const MAX_KEPT: usize = 65_536;

/// What identifies one version of a file on local disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Identity {
    /// Whether `now`, the same file seen after its first `sent` bytes
    /// were read, says those bytes may have changed under the reader: it
    /// was modified and did not grow past them. A file that only grew (a
    /// log being written) still held them; a file written in place gives
    /// a copy that mixes old and new bytes, which no check of the bytes
    /// received can tell.
    pub fn changed_under(&self, now: &Identity, sent: u64) -> bool {
        // Not the status-change time: a chmod moves it, and no byte.
        self.mtime_ns != now.mtime_ns && now.size <= self.size.max(sent)
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// This identity with its times `secs` earlier (a settled file's).
    #[cfg(test)]
    pub(crate) fn backdated(&self, secs: i128) -> Identity {
        let ns = secs * 1_000_000_000;
        Identity {
            mtime_ns: self.mtime_ns - ns,
            ctime_ns: self.ctime_ns - ns,
            ..*self
        }
    }

    /// The identity as text, for keys kept elsewhere (thumbnails).
    pub fn tag(&self) -> String {
        format!(
            "{}.{}.{}.{}.{}",
            self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns
        )
    }
}

/// The identity of an open file, when it is one on local disk.
pub fn identity(file: &dyn StoredFile) -> Option<Identity> {
    identity_of(file.as_file()?)
}

/// The identity of an open local file.
pub fn identity_of(file: &std::fs::File) -> Option<Identity> {
    let meta = file.metadata().ok()?;
    Some(Identity {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
    })
}

/// Whether the file version `id` was last changed at least [`SETTLE`] ago:
/// a change in the same instant as one before could keep its times, so
/// only such a version's digest may be remembered.
pub fn settled(id: &Identity) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    now - id.ctime_ns.max(id.mtime_ns) >= SETTLE.as_nanos() as i128
}

/// Digests by file version and algorithm.
#[derive(Debug, Default)]
pub struct DigestCache {
    kept: Mutex<HashMap<(Identity, Algo), String>>,
}

impl DigestCache {
    /// The digest of `file` as it is now, if known: kept by its storage
    /// beside it, or hashed here before (unless `fresh`: a client whose
    /// copy failed its check asks for the bytes hashed as they go, and a
    /// digest remembered here can be stale, where one its storage keeps
    /// is the record of what the file must hold).
    pub fn known(&self, file: &dyn StoredFile, algo: Algo, fresh: bool) -> Option<String> {
        if let Some(kept) = file.kept_digest(algo) {
            return Some(kept);
        }
        if fresh {
            return None;
        }
        let id = identity(file)?;
        self.kept.lock().ok()?.get(&(id, algo)).cloned()
    }

    /// Keeps the digest of the file version `id`, unless that version is
    /// too recent to be told from a change in the same instant.
    pub fn remember(&self, id: Identity, algo: Algo, hex: &str) {
        if hex.is_empty() || !settled(&id) {
            return;
        }
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() >= MAX_KEPT {
                kept.clear();
            }
            kept.insert((id, algo), hex.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::storage::Reader;
    use std::io::Write;

    fn open(p: &std::path::Path) -> Reader {
        Box::new(std::fs::File::open(p).unwrap())
    }

    #[test]
    fn a_digest_is_kept_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"one").unwrap();
        let cache = DigestCache::default();
        let id = identity(&*open(&p)).unwrap();
        // Just written: too recent to remember.
        cache.remember(id, Algo::Blake3, "aa");
        assert_eq!(cache.known(&*open(&p), Algo::Blake3, false), None);
        // Settled (times set back, as an old file's are).
        let old = SystemTime::now() - Duration::from_secs(60);
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(old).unwrap();
        drop(f);
        let mut id = identity(&*open(&p)).unwrap();
        id.ctime_ns -= 60_000_000_000;
        cache.remember(id, Algo::Blake3, "bb");
        let mut kept = cache.kept.lock().unwrap().clone();
        assert_eq!(kept.len(), 1);
        // The same version, asked again: known (for that algorithm only).
        let real = identity(&*open(&p)).unwrap();
        let d = kept.remove(&(id, Algo::Blake3)).unwrap();
        cache.kept.lock().unwrap().insert((real, Algo::Blake3), d);
        assert_eq!(
            cache.known(&*open(&p), Algo::Blake3, false).as_deref(),
            Some("bb")
        );
        assert_eq!(cache.known(&*open(&p), Algo::Sha256, false), None);
        // Not when the bytes are asked for hashed afresh.
        assert_eq!(cache.known(&*open(&p), Algo::Blake3, true), None);
        // Any write misses: in place, same size.
        let mut f = std::fs::File::options().write(true).open(&p).unwrap();
        f.write_all(b"two").unwrap();
        drop(f);
        assert_eq!(cache.known(&*open(&p), Algo::Blake3, false), None);
    }

    #[test]
    fn a_file_changed_under_a_reader_is_told_from_one_that_grew() {
        let then = Identity {
            dev: 1,
            ino: 2,
            size: 100,
            mtime_ns: 5,
            ctime_ns: 5,
        };
        let at = |size, mtime_ns, ctime_ns| Identity {
            size,
            mtime_ns,
            ctime_ns,
            ..then
        };
        assert!(!then.changed_under(&then, 100));
        // Written in place, or cut short: the bytes sent may be mixed.
        assert!(then.changed_under(&at(100, 6, 6), 100));
        assert!(then.changed_under(&at(50, 6, 6), 100));
        // Grown past what was sent: those bytes were there all along.
        assert!(!then.changed_under(&at(150, 6, 6), 100));
        // A chmod moves the status-change time only.
        assert!(!then.changed_under(&at(100, 5, 9), 100));
    }
}
