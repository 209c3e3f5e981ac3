//! [`PartFile`]: how every byte ferry receives reaches a disk, on the server
//! (uploads) and in the client (downloads) alike.
//!
//! Bytes go to a hidden partial file beside the target. Only when the size
//! and the SHA-256 check out is it moved into place, so a reader never sees
//! a partial file. An interrupted transfer leaves the partial file behind;
//! the next attempt hashes it and, if the sender's bytes agree, continues
//! from its end.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::name::PART_SUFFIX;
use crate::wire::messages::Mtime;

/// Why a received file could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// Fewer or more bytes than announced.
    #[error("received {got} bytes, expected {want}")]
    Size {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        want: u64,
    },
    /// The bytes do not hash to what the sender computed.
    #[error("SHA-256 mismatch: sender has {expected}, received bytes hash to {actual}")]
    Checksum {
        /// The sender's digest.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// The target appeared meanwhile and overwriting was not asked for.
    #[error("target exists")]
    Exists,
    /// Storage failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A file being received.
#[derive(Debug)]
pub struct PartFile {
    target: PathBuf,
    part: PathBuf,
    file: File,
    existing: u64,
    size: u64,
    written: u64,
    hasher: Sha256,
}

/// The hidden partial file that stands for `target` while it is received.
pub fn part_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part_name = if name.len() + 1 + PART_SUFFIX.len() <= 255 {
        format!(".{name}{PART_SUFFIX}")
    } else {
        // Too long to decorate: a stable digest of the name instead.
        let digest = hex(&Sha256::digest(name.as_bytes()));
        format!(".{}{PART_SUFFIX}", &digest[..32])
    };
    target.with_file_name(part_name)
}

impl PartFile {
    /// Opens the partial file for `target`. With `resume`, bytes left by an
    /// earlier attempt are kept (see [`existing`]); otherwise it starts empty.
    ///
    /// [`existing`]: PartFile::existing
    pub fn open(target: &Path, resume: bool) -> io::Result<PartFile> {
        let part = part_path(target);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(!resume)
            .open(&part)?;
        let existing = file.metadata()?.len();
        Ok(PartFile {
            target: target.to_path_buf(),
            part,
            file,
            existing,
            size: 0,
            written: 0,
            hasher: Sha256::new(),
        })
    }

    /// Bytes an earlier attempt left.
    pub fn existing(&self) -> u64 {
        self.existing
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Hashes the bytes an earlier attempt left; `None` when there are none.
    /// The hash state is kept, so those bytes are not read twice.
    pub fn hash_existing(&mut self) -> io::Result<Option<String>> {
        if self.existing == 0 {
            return Ok(None);
        }
        self.file.seek(SeekFrom::Start(0))?;
        self.hasher = hash_prefix(&mut self.file, self.existing)?;
        Ok(Some(hex(&self.hasher.clone().finalize())))
    }

    /// Fixes where the incoming bytes start (0, or [`existing`] after
    /// [`hash_existing`]) and how large the file will be.
    ///
    /// [`existing`]: PartFile::existing
    /// [`hash_existing`]: PartFile::hash_existing
    pub fn start(&mut self, offset: u64, size: u64) -> io::Result<()> {
        if offset > size || (offset != 0 && offset != self.existing) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot start at byte {offset}"),
            ));
        }
        if offset == 0 {
            self.hasher = Sha256::new();
        }
        self.file.set_len(offset)?;
        self.file.seek(SeekFrom::Start(offset))?;
        self.size = size;
        self.written = offset;
        Ok(())
    }

    /// Appends received bytes; more than announced is an error.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.written + buf.len() as u64 > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more bytes than announced",
            ));
        }
        self.hasher.update(buf);
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }

    /// Makes the bytes written so far the whole file (for a body whose
    /// length was not announced).
    pub fn end_here(&mut self) {
        self.size = self.written;
    }

    /// Bytes held so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks size and digest, sets the mtime and moves the file into place
    /// (replacing an existing target only with `overwrite`). On a digest
    /// mismatch the partial file is removed: its bytes are known bad.
    pub fn finish(
        mut self,
        expected_sha256: Option<&str>,
        mtime: Option<Mtime>,
        overwrite: bool,
    ) -> Result<String, FinishError> {
        if self.written != self.size {
            return Err(FinishError::Size {
                got: self.written,
                want: self.size,
            });
        }
        let actual = hex(&self.hasher.clone().finalize());
        if let Some(expected) = expected_sha256 {
            if !expected.eq_ignore_ascii_case(&actual) {
                self.discard();
                return Err(FinishError::Checksum {
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        self.file.flush()?;
        if let Some(m) = mtime {
            self.file.set_modified(mtime_to_system(m))?;
        }
        if overwrite {
            fs::rename(&self.part, &self.target)?;
        } else {
            // A hard link fails if the target exists: a no-clobber rename
            // that needs no unsafe renameat2.
            match fs::hard_link(&self.part, &self.target) {
                Ok(()) => fs::remove_file(&self.part)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(FinishError::Exists);
                }
                Err(_) if fs::symlink_metadata(&self.target).is_ok() => {
                    return Err(FinishError::Exists);
                }
                Err(_) => fs::rename(&self.part, &self.target)?,
            }
        }
        Ok(actual)
    }

    /// Removes the partial file.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.part);
    }
}

/// Reads exactly `len` bytes from the current position into a new hasher.
pub fn hash_prefix(file: &mut File, len: u64) -> io::Result<Sha256> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A file's mtime in wire form.
pub fn mtime_of(meta: &fs::Metadata) -> Option<Mtime> {
    let t = meta.modified().ok()?;
    Some(match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Mtime {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        },
        Err(e) => {
            let d = e.duration();
            let (secs, nanos) = if d.subsec_nanos() == 0 {
                (-(d.as_secs() as i64), 0)
            } else {
                (-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
            };
            Mtime { secs, nanos }
        }
    })
}

/// Wire mtime back to a `SystemTime`.
pub fn mtime_to_system(m: Mtime) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(m.nanos.min(999_999_999)));
    if m.secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(m.secs as u64) + nanos
    } else {
        UNIX_EPOCH - Duration::from_secs(m.secs.unsigned_abs()) + nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_visible_until_finished_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let mut p = PartFile::open(&target, true).unwrap();
        p.start(0, 5).unwrap();
        p.write(b"hel").unwrap();
        assert!(!target.exists());
        p.write(b"lo").unwrap();
        assert!(p.write(b"!").is_err());
        let want = hex(&Sha256::digest(b"hello"));
        let got = p
            .finish(
                Some(&want),
                Some(Mtime {
                    secs: 1_000_000,
                    nanos: 5,
                }),
                false,
            )
            .unwrap();
        assert_eq!(got, want);
        assert_eq!(fs::read(&target).unwrap(), b"hello");
        assert!(!part_path(&target).exists());
        let m = mtime_of(&fs::metadata(&target).unwrap()).unwrap();
        assert_eq!(m.secs, 1_000_000);
    }

    #[test]
    fn bad_digest_discards_and_existing_target_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        let mut p = PartFile::open(&target, false).unwrap();
        p.start(0, 2).unwrap();
        p.write(b"ab").unwrap();
        assert!(matches!(
            p.finish(Some("00"), None, false),
            Err(FinishError::Checksum { .. })
        ));
        assert!(!part_path(&target).exists() && !target.exists());

        fs::write(&target, b"old").unwrap();
        let mut p = PartFile::open(&target, false).unwrap();
        p.start(0, 3).unwrap();
        p.write(b"new").unwrap();
        assert!(matches!(
            p.finish(None, None, false),
            Err(FinishError::Exists)
        ));
        assert_eq!(fs::read(&target).unwrap(), b"old");
    }

    #[test]
    fn resume_continues_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("r");
        fs::write(part_path(&target), b"hello ").unwrap();
        let mut p = PartFile::open(&target, true).unwrap();
        assert_eq!(p.existing(), 6);
        assert_eq!(
            p.hash_existing().unwrap().unwrap(),
            hex(&Sha256::digest(b"hello "))
        );
        p.start(6, 11).unwrap();
        p.write(b"world").unwrap();
        let want = hex(&Sha256::digest(b"hello world"));
        assert_eq!(p.finish(Some(&want), None, false).unwrap(), want);
        assert_eq!(fs::read(&target).unwrap(), b"hello world");
    }

    #[test]
    fn long_names_get_a_short_part_name() {
        let long = "x".repeat(250);
        let p = part_path(Path::new("/d").join(&long).as_path());
        assert!(p.file_name().unwrap().len() <= 255);
        assert!(p.to_string_lossy().ends_with(PART_SUFFIX));
    }

    #[test]
    fn mtimes_round_trip_before_and_after_1970() {
        for m in [
            Mtime {
                secs: -5,
                nanos: 250,
            },
            Mtime {
                secs: 1_700_000_000,
                nanos: 999,
            },
        ] {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("m");
            fs::write(&f, b"").unwrap();
            File::options()
                .write(true)
                .open(&f)
                .unwrap()
                .set_modified(mtime_to_system(m))
                .unwrap();
            assert_eq!(mtime_of(&fs::metadata(&f).unwrap()).unwrap(), m);
        }
    }
}
