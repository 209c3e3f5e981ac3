//! Received bytes sent on to the disk as they come.

use std::fs::File;

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
