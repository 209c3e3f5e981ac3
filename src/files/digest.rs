//! The digests a transfer is verified with: SHA-256, which every client
//! and the classic door know, and BLAKE3, several times faster, which a
//! client asks for when the server's hello lists it. One [`Hasher`] for
//! both, so the code that moves bytes does not care which.

use std::fmt;
use std::fs::File;
use std::io;

use sha2::Digest as _;

pub(crate) mod tree;
mod wide;

use tree::Blake3Run;

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Algo {
    /// SHA-256 (what a request without `digest` means).
    #[default]
    Sha256,
    /// BLAKE3, 256-bit output.
    Blake3,
}

impl Algo {
    /// The name on the wire and in the hello's features.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha256 => "sha256",
            Algo::Blake3 => "blake3",
        }
    }

    /// The algorithm a wire name stands for.
    pub fn parse(name: &str) -> Option<Algo> {
        match name {
            "sha256" => Some(Algo::Sha256),
            "blake3" => Some(Algo::Blake3),
            _ => None,
        }
    }

    /// A fresh hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Blake3 => Hasher::Blake3(Box::new(Blake3Run::new(wide::PART))),
        }
    }

    /// The hex digest of `data`.
    pub fn hex_of(self, data: &[u8]) -> String {
        let mut h = self.hasher();
        h.update(data);
        h.hex()
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A running digest of either kind.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// BLAKE3, kept as the chaining values of its whole parts, so that
    /// parts read from a file can be hashed on several cores at once (see
    /// [`Hasher::update_from_file`]).
    Blake3(Box<Blake3Run>),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({})", self.algo())
    }
}

impl Default for Hasher {
    fn default() -> Hasher {
        Algo::Sha256.hasher()
    }
}

impl Hasher {
    /// Which algorithm this is.
    pub fn algo(&self) -> Algo {
        match self {
            Hasher::Sha256(_) => Algo::Sha256,
            Hasher::Blake3(_) => Algo::Blake3,
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Blake3(h) => {
                h.update(data);
            }
        }
    }

    /// The hex digest of everything added so far (the hasher is kept).
    pub fn hex(&self) -> String {
        match self {
            Hasher::Sha256(h) => crate::ids::hex(&h.clone().finalize()),
            Hasher::Blake3(h) => h.finish().to_hex().to_string(),
        }
    }

    /// Adds the bytes of `file` from `at` to `upto`, read into `buf`. With
    /// `wide`, a BLAKE3 digest hashes its whole parts on as many threads
    /// as the machine has cores, four at most (this one among them): for a
    /// file hashed while nothing else of the task runs. A file shorter
    /// than `upto` is [`cut_while_read`]; on any error the hasher holds
    /// some of the bytes, and is to be dropped.
    pub fn update_from_file(
        &mut self,
        file: &File,
        (at, upto): (u64, u64),
        buf: &mut [u8],
        wide: bool,
    ) -> io::Result<()> {
        if wide {
            wide::update_from_file(self, file, at, upto, buf)
        } else {
            wide::serial(self, file, at, upto, buf)
        }
    }
}

/// The error of a file found shorter than it was a moment before, while it
/// was read to be hashed.
pub fn cut_while_read() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the file was cut shorter while it was read",
    )
}

/// How much of a file is read at a time to be hashed: 128 KiB, which stays
/// in the processor's cache between the copy into it and the hash.
pub const HASH_READ: usize = 128 << 10;

/// Reads exactly `len` bytes of `file` from its position into a new
/// hasher (with [`Hasher::update_from_file`]), leaving the position after
/// them; fewer there is [`cut_while_read`].
pub fn hash_prefix(file: &mut File, len: u64, algo: Algo) -> io::Result<Hasher> {
    use io::Seek;
    let mut hasher = algo.hasher();
    let mut buf = super::readbuf::ReadBuf::new(HASH_READ);
    let at = file.stream_position()?;
    hasher.update_from_file(file, (at, at + len), &mut buf, true)?;
    file.seek(io::SeekFrom::Start(at + len))?;
    Ok(hasher)
}

/// [`hash_prefix`] for any reader, a bufferful at a time.
pub fn hash_read(file: &mut (impl io::Read + ?Sized), len: u64, algo: Algo) -> io::Result<Hasher> {
    let mut hasher = algo.hasher();
    let mut buf = super::readbuf::ReadBuf::new(HASH_READ);
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(cut_while_read());
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_give_their_known_answers() {
        assert_eq!(
            Algo::Sha256.hex_of(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Algo::Blake3.hex_of(b"abc"),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        let mut h = Algo::Blake3.hasher();
        h.update(b"a");
        let part = h.hex();
        h.update(b"bc");
        assert_ne!(part, h.hex());
        assert_eq!(h.hex(), Algo::Blake3.hex_of(b"abc"));
        for a in [Algo::Sha256, Algo::Blake3] {
            assert_eq!(Algo::parse(a.name()), Some(a));
        }
        assert_eq!(Algo::parse("md5"), None);
    }
}
