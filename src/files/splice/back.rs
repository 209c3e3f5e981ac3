//! Reading a file back to hash it, a little behind the bytes written into
//! it (or sent from it): see [`hash_behind`].

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;

use super::mapped::{WINDOW, hash_mapped};
use crate::files::digest::Hasher;
use crate::files::readbuf::ReadBuf;
use crate::files::writeback::Flusher;

/// Reads `file` back from `at` up to each end `news` brings, hashing it;
/// done when `news` closes. With `written`, the bytes are ones just
/// received into a partial file of this process's own, and their disk
/// writes are started as they are hashed. On a read error gives the hasher
/// as it was before `at` (nothing of what follows can be trusted).
pub(crate) fn hash_behind(
    file: &File,
    mut at: u64,
    news: mpsc::Receiver<u64>,
    mut hasher: Hasher,
    written: bool,
) -> (Hasher, io::Result<()>) {
    let start = hasher.clone();
    let mut reader = BackReader::Mapped(file);
    // Written bytes' disk writes are started on a thread of their own.
    let flusher = if written {
        Flusher::new(file, at)
    } else {
        None
    };
    let mut upto = at;
    loop {
        let open = match news.recv() {
            Ok(end) => {
                upto = end;
                true
            }
            Err(_) => false,
        };
        while let Ok(later) = news.try_recv() {
            upto = later;
        }
        // A few rounds at a time: each mapping costs a little, whatever
        // its length.
        if open && upto - at < GATHER {
            continue;
        }
        if let Err(e) = reader.hash(at, upto, &mut hasher) {
            return (start, Err(e));
        }
        at = upto;
        if let Some(flusher) = &flusher {
            flusher.written_up_to(at);
        }
        if !open {
            return (hasher, Ok(()));
        }
    }
}

/// How many bytes [`hash_behind`] lets gather before it hashes them, unless
/// they are the last: 4 MiB.
const GATHER: u64 = 4 << 20;

/// How [`hash_behind`] reads bytes back: through a read-only mapping of the
/// page cache where it may (no copy into this process: the bytes are hashed
/// where the file's pages lie), by plain reads otherwise.
enum BackReader<'a> {
    Mapped(&'a File),
    Read(&'a File, ReadBuf),
}

impl<'a> BackReader<'a> {
    fn read(file: &'a File) -> Self {
        BackReader::Read(file, ReadBuf::new(crate::files::digest::HASH_READ))
    }

    /// Hashes the file's bytes from `at` to `upto` into `hasher`.
    fn hash(&mut self, mut at: u64, upto: u64, hasher: &mut Hasher) -> io::Result<()> {
        while at < upto {
            let n = match self {
                BackReader::Mapped(file) => {
                    match hash_mapped(file, at, upto.min(at + WINDOW), hasher)? {
                        Some(n) => n,
                        // A file system that cannot map: plain reads then.
                        None => {
                            *self = BackReader::read(file);
                            continue;
                        }
                    }
                }
                BackReader::Read(file, buf) => {
                    let n = (upto - at).min(buf.len() as u64) as usize;
                    file.read_exact_at(&mut buf[..n], at).map_err(|e| {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            crate::files::digest::cut_while_read()
                        } else {
                            e
                        }
                    })?;
                    hasher.update(&buf[..n]);
                    n as u64
                }
            };
            at += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::digest::Algo;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 4093) as u8).collect()
    }

    /// A file holding `body`.
    fn file_of(dir: &std::path::Path, body: &[u8]) -> File {
        let path = dir.join("part");
        std::fs::write(&path, body).unwrap();
        File::open(&path).unwrap()
    }

    #[test]
    fn a_mapping_hashes_what_a_read_hashes_from_any_offset_and_across_windows() {
        let dir = tempfile::tempdir().unwrap();
        let body = bytes(2 * WINDOW as usize + 3 * 4096 + 17);
        let file = file_of(dir.path(), &body);
        let mut mapped = BackReader::Mapped(&file);
        assert!(matches!(mapped, BackReader::Mapped(_)));
        let mut read = BackReader::read(&file);
        for (at, upto) in [
            (0, body.len()),
            (1, 4097),
            (4095, 4096 * 3 + 1),
            (4096, WINDOW as usize + 1),
            (WINDOW as usize - 5, body.len()),
            (body.len() - 1, body.len()),
        ] {
            let (mut a, mut b, mut c) = (
                Algo::Blake3.hasher(),
                Algo::Blake3.hasher(),
                Algo::Blake3.hasher(),
            );
            mapped.hash(at as u64, upto as u64, &mut a).unwrap();
            read.hash(at as u64, upto as u64, &mut b).unwrap();
            c.update(&body[at..upto]);
            let want = c.hex();
            assert_eq!(a.hex(), want, "mapped {at}..{upto}");
            assert_eq!(b.hex(), want, "read {at}..{upto}");
        }
        // Still mapping: nothing failed.
        assert!(matches!(mapped, BackReader::Mapped(_)));
    }

    #[test]
    fn hashing_behind_follows_the_ends_it_is_told_and_hashes_the_rest_at_the_close() {
        let dir = tempfile::tempdir().unwrap();
        let body = bytes(GATHER as usize * 3 + 999);
        let file = file_of(dir.path(), &body);
        let (ends, news) = mpsc::channel();
        // Ends a little at a time, short of a gathering, then more.
        for end in [10u64, 4096, GATHER + 1, GATHER * 2, body.len() as u64 - 7] {
            ends.send(end).unwrap();
        }
        drop(ends);
        let (hasher, r) = hash_behind(&file, 3, news, Algo::Blake3.hasher(), true);
        r.unwrap();
        let mut want = Algo::Blake3.hasher();
        want.update(&body[3..body.len() - 7]);
        assert_eq!(hasher.hex(), want.hex());
    }
}
