//! A buffer for the kernel to copy a file's bytes into,
//! starting on a page boundary.
//!
//! The kernel copies into a buffer with `rep movsb`, which on some
//! processors runs at half speed when the buffer does not start on a cache
//! line: reading 2 GiB from the page cache and hashing it took 0.67-0.77 s
//! into a buffer on a 64-byte or page boundary and 1.31-1.37 s into the
//! same buffer 16 bytes past one (a 2-core AMD EPYC; the copy alone,
//! `_copy_to_iter`, went from a fifth of the time to over half). The C
//! library's allocator puts large blocks exactly there: 16 bytes past a
//! page, after its own header.

use std::ops::{Deref, DerefMut};

/// The boundary a [`ReadBuf`] starts on.
const PAGE: usize = 4096;

/// `len` bytes starting on a page boundary (or, were the address not to be
/// had, wherever the allocation starts: slower, never wrong).
pub struct ReadBuf {
    mem: Vec<u8>,
    at: usize,
    len: usize,
}

impl ReadBuf {
    /// A zeroed buffer of `len` bytes.
    pub fn new(len: usize) -> Self {
        let mem = vec![0u8; len + PAGE];
        let at = mem.as_ptr().align_offset(PAGE);
        let at = if at < PAGE { at } else { 0 };
        ReadBuf { mem, at, len }
    }
}

impl Deref for ReadBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.mem[self.at..self.at + self.len]
    }
}

impl DerefMut for ReadBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.at..self.at + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_buffer_starts_on_a_page_and_holds_what_was_asked() {
        for len in [1, 4095, 128 << 10, 1 << 20] {
            let mut b = ReadBuf::new(len);
            assert_eq!(b.as_ptr() as usize % PAGE, 0, "{len}");
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0));
            b[len - 1] = 7;
            assert_eq!(b[len - 1], 7);
        }
    }
}
