//! Hashing a file's bytes on several cores at once.
//!
//! BLAKE3 is a tree: a run of whole parts, each starting at a multiple of
//! its length, can be hashed apart ([`part_hasher`]) and the parts'
//! chaining values merged in order afterwards, giving the digest the
//! bytes hashed one after the other give. So the whole parts of a range
//! are shared out between threads, each reading its own parts from the
//! file and hashing them; the bytes before the first whole part and after
//! the last go through the running hasher as ever. SHA-256 is a chain and
//! is hashed on the calling thread alone.
//!
//! The threads are scoped to the call: `blake3`'s own way to hash on
//! several threads (`update_rayon`) takes its input whole, in memory, and
//! brings a thread pool crate along, where here each thread reads its
//! parts itself, so the reads are shared out as well as the hashing.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use blake3::hazmat::{ChainingValue, HasherExt};

use super::tree::part_hasher;
use super::{Hasher, cut_while_read};
use crate::files::readbuf::ReadBuf;

/// The length of a part of a BLAKE3 [`Hasher`]: 256 KiB, small enough for
/// the parts of one 4 MiB run to be shared out evenly, large enough for
/// each to be hashed at full width (the crate hashes 8 to 16 chunks of
/// 1 KiB at once).
pub(super) const PART: u64 = 256 << 10;

/// The most threads one range is hashed on: the machine's cores, at most 4
/// (past that, reading the bytes is the limit).
fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4)
    })
}

/// Helper threads taken, across the process: at most one fewer than
/// [`threads`], however many files are hashed at once (a server checking
/// many resumes at a time uses no more threads for it than the cores).
static HELPERS: AtomicUsize = AtomicUsize::new(0);

/// Helper threads taken from [`HELPERS`] (perhaps none: the caller then
/// hashes alone); given back when dropped.
struct Helpers(usize);

impl Helpers {
    fn take(want: usize) -> Helpers {
        let most = threads() - 1;
        let mut got = 0;
        let _ = HELPERS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            got = want.min(most.saturating_sub(used));
            Some(used + got)
        });
        Helpers(got)
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        HELPERS.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// See [`Hasher::update_from_file`].
pub(super) fn update_from_file(
    hasher: &mut Hasher,
    file: &File,
    mut at: u64,
    upto: u64,
    buf: &mut [u8],
) -> io::Result<()> {
    // Where the bytes hashed so far end in the digest's input, and how far
    // past `at` the first whole part after them starts.
    let parts = match hasher {
        Hasher::Blake3(run) => Some((run.part_len(), run.bytes())),
        Hasher::Sha256(_) => None,
    };
    if let Some((part, done)) = parts {
        let head = done.next_multiple_of(part) - done;
        let whole = upto.saturating_sub(at + head) / part;
        if whole >= 2 && threads() > 1 {
            serial(hasher, file, at, at + head, buf)?;
            let first = (done + head) / part;
            let cvs = parts_on_threads(file, at + head, first, whole, part, buf)?;
            if let Hasher::Blake3(run) = hasher {
                run.add_parts(&cvs);
            }
            at += head + whole * part;
        }
    }
    serial(hasher, file, at, upto, buf)
}

/// Reads the bytes from `at` to `upto` into `buf`, a bufferful at a time,
/// and adds them.
pub(super) fn serial(
    hasher: &mut Hasher,
    file: &File,
    at: u64,
    upto: u64,
    buf: &mut [u8],
) -> io::Result<()> {
    read_pieces(file, at, upto, buf, |piece| hasher.update(piece))
}

/// Reads the bytes from `at` to `upto` into `buf`, a bufferful at a time,
/// handing each bufferful to `take`; a file shorter is [`cut_while_read`].
fn read_pieces(
    file: &File,
    mut at: u64,
    upto: u64,
    buf: &mut [u8],
    mut take: impl FnMut(&[u8]),
) -> io::Result<()> {
    while at < upto {
        let n = (upto - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], at).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                cut_while_read()
            } else {
                e
            }
        })?;
        take(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}

/// The chaining values of `count` whole parts of `len` bytes, the first at
/// `from` in the file and numbered `first` in the digest's input, hashed
/// on [`threads`] threads (this one with `buf`), each taking the next part
/// not yet taken.
fn parts_on_threads(
    file: &File,
    from: u64,
    first: u64,
    count: u64,
    len: u64,
    buf: &mut [u8],
) -> io::Result<Vec<ChainingValue>> {
    let next = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let work = |buf: &mut [u8]| -> io::Result<Vec<(u64, ChainingValue)>> {
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                break;
            }
            let mut h = part_hasher((first + i) * len);
            let (at, end) = (from + i * len, from + (i + 1) * len);
            if let Err(e) = read_pieces(file, at, end, buf, |piece| {
                h.update(piece);
            }) {
                failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
            done.push((i, h.finalize_non_root()));
        }
        Ok(done)
    };
    let helpers = Helpers::take((threads() - 1).min(count as usize - 1));
    let mut all = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..helpers.0)
            .map(|_| scope.spawn(|| work(&mut ReadBuf::new(super::HASH_READ))))
            .collect();
        let mut all = work(buf);
        for handle in handles {
            let theirs = handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a hashing thread failed")));
            all = match (all, theirs) {
                (Ok(mut a), Ok(b)) => {
                    a.extend(b);
                    Ok(a)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        all
    })?;
    all.sort_unstable_by_key(|(i, _)| *i);
    debug_assert_eq!(all.len() as u64, count);
    Ok(all.into_iter().map(|(_, cv)| cv).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::digest::Algo;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 1021) as u8).collect()
    }

    /// Ranges of a file hashed on threads, after a running start of any
    /// length, give the digest of the same bytes hashed one after another,
    /// and the hasher goes on from there as ever.
    #[test]
    fn hashing_on_threads_gives_the_digest_of_the_bytes_in_order() {
        let p = PART as usize;
        let body = bytes(7 * p + 3 * 1024 + 5);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &body).unwrap();
        let file = File::open(&path).unwrap();
        let mut buf = ReadBuf::new(100 << 10);
        // (bytes added before, from where in the file, to where)
        for (before, at, upto) in [
            (0, 0, body.len()),
            (0, 0, 2 * p),
            (0, 0, 2 * p + 1),
            (0, 5, 3 * p + 5),
            (1, 0, body.len()),
            (p - 1, 3, 4 * p),
            (p, 0, 3 * p),
            (p + 1, 10, 6 * p),
            (3 * p, 17, body.len() - 1),
            (2 * p + 100, 0, 2 * p),
        ] {
            let mut got = Algo::Blake3.hasher();
            got.update(&body[..before]);
            got.update_from_file(&file, (at as u64, upto as u64), &mut buf, true)
                .unwrap();
            let mut whole = body[..before].to_vec();
            whole.extend_from_slice(&body[at..upto]);
            let want = blake3::hash(&whole).to_hex().to_string();
            assert_eq!(got.hex(), want, "{before} {at}..{upto}");
            // And on past it.
            got.update(b"tail");
            whole.extend_from_slice(b"tail");
            assert_eq!(got.hex(), blake3::hash(&whole).to_hex().to_string());
        }
        // The one answer a whole input of exactly two and of one part has.
        for n in [p, 2 * p, 4 * p] {
            let mut got = Algo::Blake3.hasher();
            got.update_from_file(&file, (0, n as u64), &mut buf, true)
                .unwrap();
            assert_eq!(got.hex(), blake3::hash(&body[..n]).to_hex().to_string());
        }
    }

    /// While every helper thread is taken (other files being hashed), a
    /// file is hashed by its caller alone, to the same digest; helpers are
    /// given back after use.
    #[test]
    fn with_every_helper_taken_the_caller_hashes_alone() {
        let body = bytes(5 * PART as usize + 77);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &body).unwrap();
        let file = File::open(&path).unwrap();
        let mut buf = ReadBuf::new(64 << 10);
        let want = blake3::hash(&body).to_hex().to_string();
        let all = Helpers::take(usize::MAX);
        assert_eq!(all.0, threads() - 1);
        assert_eq!(Helpers::take(1).0, 0, "none left");
        let mut h = Algo::Blake3.hasher();
        h.update_from_file(&file, (0, body.len() as u64), &mut buf, true)
            .unwrap();
        assert_eq!(h.hex(), want);
        drop(all);
        assert_eq!(HELPERS.load(Ordering::Acquire), 0);
        // Several files at once: never more helpers than the cores allow.
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    let mut buf = ReadBuf::new(64 << 10);
                    let mut h = Algo::Blake3.hasher();
                    h.update_from_file(&file, (0, body.len() as u64), &mut buf, true)
                        .unwrap();
                    assert_eq!(h.hex(), want);
                    assert!(HELPERS.load(Ordering::Acquire) < threads());
                });
            }
        });
        assert_eq!(HELPERS.load(Ordering::Acquire), 0);
    }

    /// A file shorter than the range is an error, wherever it ends, on
    /// whichever thread finds it.
    #[test]
    fn a_file_shorter_than_the_range_is_a_cut() {
        let p = PART as usize;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut buf = ReadBuf::new(64 << 10);
        for len in [0, p / 2, p, 2 * p + 7, 5 * p] {
            std::fs::write(&path, bytes(len)).unwrap();
            let file = File::open(&path).unwrap();
            let mut h = Algo::Blake3.hasher();
            let e = h
                .update_from_file(&file, (0, 6 * PART), &mut buf, true)
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{len}: {e}");
            assert!(e.to_string().contains("cut shorter"), "{e}");
        }
    }
}
