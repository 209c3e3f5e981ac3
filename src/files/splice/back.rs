//! Reading a file back to hash it, a little behind the bytes written into
//! it (or sent from it): see [`hash_behind`].

use std::fs::File;
use std::io;
use std::sync::mpsc;

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
    let mut reader = BackReader::new(file);
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
        // A few rounds at a time: the thread wakes less often.
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

/// How [`hash_behind`] reads bytes back: with plain reads into a buffer
/// on a page boundary, where the copy runs at full speed. (A read-only
/// mapping of the page cache, hashed in place, cost the hashing thread more:
/// 871-987 ms against 812-890 ms per 2 GiB get, and a 2 GiB get 1.165 s
/// against 1.065 s in 8 alternating rounds; and a mapped page past the end
/// of a file cut meanwhile faults with SIGBUS, where a read comes back
/// short.)
struct BackReader<'a> {
    file: &'a File,
    buf: ReadBuf,
}

impl<'a> BackReader<'a> {
    fn new(file: &'a File) -> Self {
        BackReader {
            file,
            buf: ReadBuf::new(crate::files::digest::HASH_READ),
        }
    }

    /// Hashes the file's bytes from `at` to `upto` into `hasher`; a file
    /// cut shorter than `upto` meanwhile is an error.
    fn hash(&mut self, at: u64, upto: u64, hasher: &mut Hasher) -> io::Result<()> {
        // On this thread alone: a transfer's other threads (receiving,
        // sending) need the cores. Sharing the parts out gained nothing:
        // 512 MiB loopback gets took 0.345 s against 0.326 s hashed on one
        // thread, puts 0.297 s against 0.309 s (12 alternating rounds).
        hasher.update_from_file(self.file, (at, upto), &mut self.buf, false)
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
    fn reading_back_hashes_exactly_the_bytes_asked_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let big = crate::files::digest::HASH_READ;
        let body = bytes(3 * big + 3 * 4096 + 17);
        let file = file_of(dir.path(), &body);
        let mut read = BackReader::new(&file);
        for (at, upto) in [
            (0, body.len()),
            (1, 4097),
            (4095, 4096 * 3 + 1),
            (4096, big + 1),
            (big - 5, body.len()),
            (body.len() - 1, body.len()),
        ] {
            let (mut got, mut want) = (Algo::Blake3.hasher(), Algo::Blake3.hasher());
            read.hash(at as u64, upto as u64, &mut got).unwrap();
            want.update(&body[at..upto]);
            assert_eq!(got.hex(), want.hex(), "{at}..{upto}");
        }
    }

    /// A file cut shorter than the bytes it is told of: the hash is an
    /// error, and the hasher given back is the one from before.
    #[test]
    fn a_file_cut_shorter_than_it_was_written_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let body = bytes(GATHER as usize + 10);
        let file = file_of(dir.path(), &body);
        let (ends, news) = mpsc::channel();
        ends.send(body.len() as u64 + 4096).unwrap();
        drop(ends);
        let (hasher, r) = hash_behind(&file, 5, news, Algo::Blake3.hasher(), false);
        let e = r.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(e.to_string().contains("cut shorter"), "{e}");
        assert_eq!(hasher.hex(), Algo::Blake3.hasher().hex());
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
