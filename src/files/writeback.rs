//! Received bytes sent on to the disk as they come.

use std::fs::File;
use std::sync::mpsc;

/// Starts the disk writes of received bytes a batch at a time, instead of
/// leaving gigabytes of dirty pages for the kernel to flush later: a
/// transfer then ends about when its bytes are on the disk, and they are
/// not all dirty in memory at once (a later `sync`, or any other writer,
/// would otherwise wait for the whole file). Only starts the writes
/// (`SYNC_FILE_RANGE_WRITE`, no waiting for them): nothing more is promised
/// durable than before.
#[derive(Debug)]
pub(super) struct Writeback {
    /// Where the bytes not yet sent to the disk start.
    from: u64,
}

/// Bytes received before their writes are started.
const WRITEBACK_BATCH: u64 = 8 << 20;

impl Writeback {
    pub(super) fn new(at: u64) -> Self {
        Writeback { from: at }
    }

    /// The bytes of `file` up to `at` are written (and hashed): starts
    /// their writes once a batch has gathered.
    #[allow(unsafe_code)]
    pub(super) fn written_up_to(&mut self, file: &File, at: u64) {
        use std::os::fd::AsRawFd;
        if at < self.from.saturating_add(WRITEBACK_BATCH) {
            return;
        }
        let (Ok(from), Ok(len)) = (
            libc::off64_t::try_from(self.from),
            libc::off64_t::try_from(at - self.from),
        ) else {
            return;
        };
        // SAFETY: a plain system call on an open file descriptor. A failure
        // (a file system without it) leaves the flushing to the kernel, as
        // without this call.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), from, len, libc::SYNC_FILE_RANGE_WRITE);
        }
        self.from = at;
    }
}

/// A [`Writeback`] on a thread of its own, for bytes received as fast as the
/// network brings them: starting the writes blocks while the disk's queue
/// is full, which on the thread that hashes (or receives) the bytes would
/// hold up the transfer behind the disk. The thread ends when this is
/// dropped, after starting the writes it was told of (the transfer does
/// not wait for it).
#[derive(Debug)]
pub(crate) struct Flusher {
    tell: mpsc::Sender<u64>,
}

impl Flusher {
    /// For the bytes of `file` from `at` on. `None` when no thread can be
    /// had (the kernel then writes the pages out on its own).
    pub(crate) fn new(file: &File, at: u64) -> Option<Self> {
        let file = file.try_clone().ok()?;
        let (tell, told) = mpsc::channel::<u64>();
        std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                let mut writeback = Writeback::new(at);
                while let Ok(mut upto) = told.recv() {
                    while let Ok(later) = told.try_recv() {
                        upto = later;
                    }
                    writeback.written_up_to(&file, upto);
                }
            })
            .ok()?;
        Some(Flusher { tell })
    }

    /// The bytes of the file up to `at` are written (and hashed).
    pub(crate) fn written_up_to(&self, at: u64) {
        let _ = self.tell.send(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// How many of this process's descriptors are open on `path`.
    fn opened(path: &std::path::Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target == path)
            .count()
    }

    #[test]
    fn the_writeback_thread_lets_go_of_the_file_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        std::fs::write(&path, vec![7u8; 20 << 20]).unwrap();
        let file = File::open(&path).unwrap();
        let flusher = Flusher::new(&file, 0).unwrap();
        assert_eq!(opened(&path), 2);
        for at in [1 << 20, 9 << 20, 20 << 20] {
            flusher.written_up_to(at);
        }
        drop(flusher);
        let since = Instant::now();
        while opened(&path) > 1 {
            assert!(since.elapsed() < Duration::from_secs(10), "still held");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(opened(&path), 1);
    }
}
