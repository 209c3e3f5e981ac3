//! Disk space claimed for received bytes a little ahead of them.

use std::fs::File;

/// Claims the blocks of a file being received a window ahead of its writes,
/// with `fallocate(FALLOC_FL_KEEP_SIZE)`: the file system then finds every
/// block a write lands in already placed, instead of reserving and placing
/// them one at a time (ext4's delayed allocation took about a seventh of
/// the receiving thread's time on a 2 GiB loopback get, and its disk
/// writes cost less too). The file's length stays what was written, so a
/// resume sees only received bytes. Only a window, never larger than what
/// this transfer has written (a sender that announces a large file and
/// trickles bytes holds no more disk ahead of them than it sent), at most
/// [`WINDOW`], and never past the size announced (a finished file has no
/// blocks past its end). A file system without `fallocate`, or one short of space,
/// is left to place the blocks as it writes (a write then reports a real
/// shortage itself). Dropped, it gives back what was claimed past the
/// file's end (a transfer that stopped short keeps only its bytes'
/// blocks); see [`trim`] for what a killed process left.
#[derive(Debug)]
pub(super) struct Reserve {
    /// Where this transfer's writes started.
    start: u64,
    /// Where the blocks not yet claimed start.
    ahead: u64,
    /// The size announced: nothing past it is claimed.
    end: u64,
    /// The file, to give back what is left claimed past its end.
    file: Option<File>,
}

/// How far ahead of the writes blocks are claimed.
const WINDOW: u64 = 16 << 20;

/// Gives back the blocks claimed past `file`'s end, as cutting it to its
/// own length does (ext4 frees them so; punching a hole past the end does
/// not).
pub(super) fn trim(file: &File) -> std::io::Result<()> {
    file.set_len(file.metadata()?.len())
}

impl Reserve {
    /// For bytes of `file` from `at` up to `end` (`u64::MAX`: not
    /// announced, and nothing is claimed).
    pub(super) fn new(file: &File, at: u64, end: u64) -> Self {
        let end = if end == u64::MAX { at } else { end };
        let file = (end > at).then(|| file.try_clone().ok()).flatten();
        let end = if file.is_some() { end } else { at };
        Reserve {
            start: at,
            ahead: at,
            end,
            file,
        }
    }

    /// Claims nothing.
    pub(super) fn none() -> Self {
        Reserve {
            start: 0,
            ahead: 0,
            end: 0,
            file: None,
        }
    }

    /// Bytes up to `upto` are about to be written: claims the next window
    /// (as large as what this transfer wrote, up to [`WINDOW`]) once the
    /// writes come within half a window of what is claimed.
    #[allow(unsafe_code)]
    pub(super) fn before_writing(&mut self, file: &File, upto: u64) {
        use std::os::fd::AsRawFd;
        let window = WINDOW.min(upto.saturating_sub(self.start));
        if self.ahead >= self.end || upto.saturating_add(window / 2) <= self.ahead {
            return;
        }
        let to = upto.saturating_add(window).min(self.end);
        let (Ok(from), Ok(len)) = (
            libc::off64_t::try_from(self.ahead),
            libc::off64_t::try_from(to - self.ahead),
        ) else {
            self.end = self.ahead;
            return;
        };
        // SAFETY: a plain system call on an open file descriptor; it changes
        // neither the file's length nor its bytes.
        let r =
            unsafe { libc::fallocate64(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, from, len) };
        if r == 0 {
            self.ahead = to;
        } else {
            // Not supported here, or short of space: claim nothing more.
            self.end = self.ahead;
        }
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            // Only when something was claimed past what was written.
            if file.metadata().is_ok_and(|m| m.len() < self.ahead) {
                let _ = trim(file);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileExt, MetadataExt};

    /// Whether this file system claims space ahead of a file's end.
    #[allow(unsafe_code)]
    fn claims(dir: &std::path::Path) -> bool {
        use std::os::fd::AsRawFd;
        let f = File::create(dir.join("probe")).unwrap();
        // SAFETY: as in `before_writing`.
        unsafe { libc::fallocate64(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, 1 << 20) == 0 }
    }

    #[test]
    fn blocks_are_claimed_a_window_ahead_and_the_length_stays_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let supported = claims(dir.path());
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("got"))
            .unwrap();
        let size = 3 * WINDOW;
        let mut r = Reserve::new(&f, 0, size);
        let piece = vec![7u8; 1 << 20];
        let mut at = 0;
        while at < WINDOW {
            r.before_writing(&f, at + piece.len() as u64);
            f.write_all_at(&piece, at).unwrap();
            at += piece.len() as u64;
        }
        let meta = f.metadata().unwrap();
        assert_eq!(meta.len(), WINDOW, "the length is only what was written");
        let claimed = meta.blocks() * 512;
        if supported {
            assert!(
                claimed > WINDOW,
                "{claimed} bytes claimed for {WINDOW} written"
            );
            assert!(
                claimed <= WINDOW + WINDOW + (1 << 20),
                "{claimed} claimed: past the window"
            );
        }
        // Stopped here: what was claimed past the end is given back.
        drop(r);
        let held = f.metadata().unwrap().blocks() * 512;
        assert!(
            held <= WINDOW + (1 << 20),
            "{held} bytes held for {WINDOW} written"
        );
        let mut r = Reserve::new(&f, at, size);
        // The rest, to the announced end and never past it.
        while at < size {
            r.before_writing(&f, at + piece.len() as u64);
            f.write_all_at(&piece, at).unwrap();
            at += piece.len() as u64;
        }
        let meta = f.metadata().unwrap();
        assert_eq!(meta.len(), size);
        assert!(
            meta.blocks() * 512 <= size + (1 << 20),
            "blocks past the end"
        );
    }

    #[test]
    fn a_sender_that_trickles_holds_no_more_ahead_than_it_sent() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("got")).unwrap();
        let mut r = Reserve::new(&f, 0, 1 << 30);
        let mut at = 0;
        for piece in [1u64, 1, 10, 1000, 5000, 100_000] {
            r.before_writing(&f, at + piece);
            f.write_all_at(&vec![1u8; piece as usize], at).unwrap();
            at += piece;
            let held = f.metadata().unwrap().blocks() * 512;
            assert!(held <= 2 * at + 8192, "{held} bytes held for {at} received");
        }
    }

    #[test]
    fn nothing_is_claimed_for_a_size_not_announced_or_past_the_announced_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("got")).unwrap();
        let mut r = Reserve::new(&f, 0, u64::MAX);
        r.before_writing(&f, 1);
        assert_eq!(f.metadata().unwrap().blocks(), 0);
        let mut r = Reserve::new(&f, 4096, 4096);
        r.before_writing(&f, 8192);
        assert_eq!(f.metadata().unwrap().blocks(), 0);
    }
}
