//! A running digest that can be written down at a part boundary and
//! taken up again elsewhere: an upload to object storage cut off on one
//! node goes on from another, which cannot read back the parts already
//! sent (a multipart upload's parts are not readable until completed), so
//! the digest of what they held travels with the upload's state.
//!
//! Neither hashing crate exports its running state (`sha2` 0.10 keeps it
//! private; `blake3`'s `Hasher` is not serialisable), so both are built
//! here from the pieces the crates do export for this: SHA-256 from
//! `sha2::compress256` (the same accelerated block function `Sha256`
//! uses) with the standard padding written out below, and BLAKE3 from
//! `blake3::hazmat`, each part hashed as one subtree at its offset and
//! the parts' chaining values merged as `blake3::Hasher` merges chunks.
//! Both are checked against the crates' own digests in the tests.

use blake3::hazmat::{ChainingValue, HasherExt};
use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;

use super::digest::Algo;
use super::digest::tree::{Blake3Run, part_hasher, push};

/// A digest's state at a part boundary, as it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The algorithm's wire name.
    pub algo: String,
    /// Bytes hashed.
    pub bytes: u64,
    /// SHA-256: the eight state words; BLAKE3: the chaining values of the
    /// subtrees not merged yet. Lower-case hex.
    pub words: Vec<String>,
    /// BLAKE3 after exactly one part: the digest of that part as a whole
    /// input (its root), which its chaining value cannot give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// A digest over parts of `part_len` bytes (a power of two, at least
/// 1 KiB) that can be checkpointed at every part boundary.
#[derive(Debug, Clone)]
pub enum Resumable {
    /// SHA-256.
    Sha256(Box<Sha256Run>),
    /// BLAKE3.
    Blake3(Box<Blake3Run>),
}

impl Resumable {
    /// A fresh digest.
    pub fn new(algo: Algo, part_len: u64) -> Resumable {
        assert!(part_len.is_power_of_two() && part_len >= 1024);
        match algo {
            Algo::Sha256 => Resumable::Sha256(Box::new(Sha256Run::new())),
            Algo::Blake3 => Resumable::Blake3(Box::new(Blake3Run::new(part_len))),
        }
    }

    /// Takes up a digest where `point` left it; `None` when the point is
    /// not one this could have written (another algorithm, not at a part
    /// boundary, malformed).
    pub fn resume(algo: Algo, part_len: u64, point: &Checkpoint) -> Option<Resumable> {
        if point.algo != algo.name() || point.bytes % part_len != 0 || !part_len.is_power_of_two() {
            return None;
        }
        match algo {
            Algo::Sha256 => {
                let words: Vec<[u8; 4]> = point
                    .words
                    .iter()
                    .map(|w| crate::ids::unhex::<4>(w))
                    .collect::<Option<_>>()?;
                if words.len() != 8 {
                    return None;
                }
                let state: [u32; 8] = std::array::from_fn(|i| u32::from_be_bytes(words[i]));
                Some(Resumable::Sha256(Box::new(Sha256Run {
                    state,
                    buf: [0; 64],
                    held: 0,
                    bytes: point.bytes,
                })))
            }
            Algo::Blake3 => {
                let stack = point
                    .words
                    .iter()
                    .map(|w| crate::ids::unhex::<32>(w))
                    .collect::<Option<Vec<ChainingValue>>>()?;
                let parts = point.bytes / part_len;
                // The stack holds one value per set bit of the parts done
                // (merged lazily: the last part's value is on top).
                if parts == 0 || stack.is_empty() || stack.len() > 64 {
                    return None;
                }
                let mut run = Blake3Run::new(part_len);
                if parts == 1 {
                    run.first_root = Some(crate::ids::unhex::<32>(point.root.as_deref()?)?);
                }
                run.stack = stack;
                run.parts = parts;
                run.current = part_hasher(parts * part_len);
                Some(Resumable::Blake3(Box::new(run)))
            }
        }
    }

    /// Bytes hashed.
    pub fn bytes(&self) -> u64 {
        match self {
            Resumable::Sha256(s) => s.bytes,
            Resumable::Blake3(b) => b.bytes(),
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Resumable::Sha256(s) => s.update(data),
            Resumable::Blake3(b) => b.update(data),
        }
    }

    /// The state, when at a part boundary with at least one part hashed
    /// (after exactly one BLAKE3 part, with that part's root digest too:
    /// the input may end there).
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        match self {
            Resumable::Sha256(s) => (s.held == 0 && s.bytes > 0).then(|| Checkpoint {
                algo: Algo::Sha256.name().into(),
                bytes: s.bytes,
                words: s
                    .state
                    .iter()
                    .map(|w| crate::ids::hex(&w.to_be_bytes()))
                    .collect(),
                root: None,
            }),
            Resumable::Blake3(b) => (b.len == b.part_len).then(|| {
                let mut stack = b.stack.clone();
                push(&mut stack, b.current.finalize_non_root(), b.parts);
                Checkpoint {
                    algo: Algo::Blake3.name().into(),
                    bytes: (b.parts + 1) * b.part_len,
                    words: stack.iter().map(|cv| crate::ids::hex(cv)).collect(),
                    root: (b.parts == 0).then(|| b.current.finalize().to_hex().to_string()),
                }
            }),
        }
    }

    /// The hex digest of everything added so far.
    pub fn hex(&self) -> String {
        match self {
            Resumable::Sha256(s) => crate::ids::hex(&s.finish()),
            Resumable::Blake3(b) => b.finish().to_hex().to_string(),
        }
    }
}

/// SHA-256 over `sha2::compress256`.
#[derive(Debug, Clone)]
pub struct Sha256Run {
    state: [u32; 8],
    buf: [u8; 64],
    held: usize,
    bytes: u64,
}

const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

impl Sha256Run {
    fn new() -> Sha256Run {
        Sha256Run {
            state: SHA256_IV,
            buf: [0; 64],
            held: 0,
            bytes: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.bytes += data.len() as u64;
        if self.held > 0 {
            let take = (64 - self.held).min(data.len());
            self.buf[self.held..self.held + take].copy_from_slice(&data[..take]);
            self.held += take;
            data = &data[take..];
            if self.held < 64 {
                return;
            }
            sha2::compress256(&mut self.state, &[*GenericArray::from_slice(&self.buf)]);
            self.held = 0;
        }
        let whole = data.len() / 64 * 64;
        for block in data[..whole].chunks_exact(64) {
            sha2::compress256(
                &mut self.state,
                std::slice::from_ref(GenericArray::from_slice(block)),
            );
        }
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.held = rest.len();
    }

    /// FIPS 180-4 padding: 0x80, zeros, the length in bits (big-endian).
    fn finish(&self) -> [u8; 32] {
        let mut state = self.state;
        let mut tail = [0u8; 128];
        tail[..self.held].copy_from_slice(&self.buf[..self.held]);
        tail[self.held] = 0x80;
        let blocks = if self.held < 56 { 1 } else { 2 };
        let end = blocks * 64;
        tail[end - 8..end].copy_from_slice(&(self.bytes.wrapping_mul(8)).to_be_bytes());
        for block in tail[..end].chunks_exact(64) {
            sha2::compress256(
                &mut state,
                std::slice::from_ref(GenericArray::from_slice(block)),
            );
        }
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn both_give_the_crates_digests_whole_and_taken_up_at_every_boundary() {
        let part = 2048u64;
        for len in [
            0usize, 1, 63, 64, 65, 1000, 2047, 2048, 2049, 4096, 6144, 7000, 16384, 20000,
        ] {
            let d = data(len);
            for algo in [Algo::Sha256, Algo::Blake3] {
                let want = algo.hex_of(&d);
                // In one go, and in odd pieces.
                let mut r = Resumable::new(algo, part);
                r.update(&d);
                assert_eq!(r.hex(), want, "{algo} {len}");
                let mut r = Resumable::new(algo, part);
                for piece in d.chunks(777) {
                    r.update(piece);
                }
                assert_eq!(r.hex(), want, "{algo} {len} in pieces");
                assert_eq!(r.bytes(), len as u64);
                // Checkpointed at each boundary that has more after it,
                // through JSON, and taken up by a fresh value.
                let mut at = part as usize;
                while at <= len {
                    let mut first = Resumable::new(algo, part);
                    first.update(&d[..at]);
                    let point = first.checkpoint().expect("a boundary");
                    let text = serde_json::to_string(&point).unwrap();
                    let point: Checkpoint = serde_json::from_str(&text).unwrap();
                    let mut second = Resumable::resume(algo, part, &point).unwrap();
                    assert_eq!(second.bytes(), at as u64);
                    second.update(&d[at..]);
                    assert_eq!(second.hex(), want, "{algo} {len} resumed at {at}");
                    at += part as usize;
                }
            }
        }
    }

    #[test]
    fn a_checkpoint_is_refused_elsewhere_than_it_fits() {
        let mut r = Resumable::new(Algo::Blake3, 1024);
        r.update(&data(1500));
        assert!(r.checkpoint().is_none(), "not at a boundary");
        let mut r = Resumable::new(Algo::Sha256, 1024);
        r.update(&data(1024));
        let point = r.checkpoint().unwrap();
        assert!(Resumable::resume(Algo::Blake3, 1024, &point).is_none());
        assert!(Resumable::resume(Algo::Sha256, 4096, &point).is_none());
        let mut bad = point.clone();
        bad.words[3] = "zz".into();
        assert!(Resumable::resume(Algo::Sha256, 1024, &bad).is_none());
        assert!(Resumable::resume(Algo::Sha256, 1024, &point).is_some());
        let mut short = point;
        short.words.pop();
        assert!(Resumable::resume(Algo::Sha256, 1024, &short).is_none());
    }
}
