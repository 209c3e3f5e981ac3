//! [`PartFile`]: how every byte ferry receives reaches a disk, on the server
//! (uploads) and in the client (downloads) alike.
//!
//! Bytes go to a hidden partial file beside the target. Only when the size
//! and the SHA-256 check out is it moved into place, so a reader never sees
//! a partial file. An interrupted transfer leaves the partial file behind;
//! the next attempt hashes it and, if the sender's bytes agree, continues
//! from its end.
//!
//! Whatever already sits at a partial file's name is treated as hostile:
//! the folder is held open and every operation is relative to it, the name
//! is opened without following a link, and only a regular file with one
//! link (a file ferry itself could have made) is ever read, resumed,
//! reported on or written. A symlink, a hard link, a FIFO or a device there
//! is unlinked (its target, or its other names, are never touched) and a
//! fresh file made; a folder there is refused.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use sha2::{Digest, Sha256};

use super::digest::{Algo, Hasher, hash_prefix};

use super::entry::Mtime;
use super::name::PART_SUFFIX;
use super::reserve::Reserve;
use super::writeback::Writeback;
use crate::ids::hex;

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
    #[error("digest mismatch: sender has {expected}, received bytes hash to {actual}")]
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
    /// The folder that holds the target and the partial file, open: the
    /// partial file is opened, renamed and removed relative to it, so a
    /// folder swapped on the way afterwards changes nothing.
    dir: File,
    name: OsString,
    part_name: OsString,
    target: PathBuf,
    pub(super) file: File,
    existing: u64,
    pub(super) size: u64,
    pub(super) written: u64,
    pub(super) hasher: Hasher,
    pub(super) writeback: Writeback,
    pub(super) reserve: Reserve,
}

/// The hidden partial file's name for a target named `name`.
pub fn part_name(name: &OsStr) -> OsString {
    let name = name.to_string_lossy();
    if name.len() + 1 + PART_SUFFIX.len() <= 255 {
        format!(".{name}{PART_SUFFIX}").into()
    } else {
        // Too long to decorate: a stable digest of the name instead.
        let digest = hex(&Sha256::digest(name.as_bytes()));
        format!(".{}{PART_SUFFIX}", &digest[..32]).into()
    }
}

/// The hidden partial file that stands for `target` while it is received.
pub fn part_path(target: &Path) -> PathBuf {
    target.with_file_name(part_name(target.file_name().unwrap_or_default()))
}

/// What is at a name in a folder, without following a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing.
    Nothing,
    /// A regular file with one link, of this many bytes: a file ferry could
    /// have made.
    Plain(u64),
    /// A folder.
    Folder,
    /// Anything else: a symlink, a hard-linked file, a FIFO, a socket, a
    /// device.
    Foreign,
}

/// Looks at `name` in `dir` without following it.
pub fn look_at(dir: &File, name: &OsStr) -> io::Result<Found> {
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(classify_stat(&st)),
        Err(Errno::ENOENT) => Ok(Found::Nothing),
        Err(e) => Err(e.into()),
    }
}

fn classify_stat(st: &nix::sys::stat::FileStat) -> Found {
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFDIR {
        Found::Folder
    } else if kind == SFlag::S_IFREG && st.st_nlink == 1 {
        Found::Plain(st.st_size as u64)
    } else {
        Found::Foreign
    }
}

/// Refuses a device, a FIFO or a socket at `name` in `dir`: what ferry
/// puts at a name replaces a file or a link, never one of those, even
/// when told to overwrite. Run as root, a download "over" `/dev/null`
/// would otherwise replace the device with a regular file.
pub fn refuse_special(dir: &File, name: &OsStr) -> io::Result<()> {
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => match special(st.st_mode) {
            Some(what) => Err(special_there(what)),
            None => Ok(()),
        },
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What a file of `mode` is when it is a FIFO, a device or a socket,
/// which no transfer replaces or writes into.
pub fn special(mode: u32) -> Option<&'static str> {
    let kind = SFlag::from_bits_truncate(mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFIFO {
        Some("a FIFO")
    } else if kind == SFlag::S_IFCHR || kind == SFlag::S_IFBLK {
        Some("a device")
    } else if kind == SFlag::S_IFSOCK {
        Some("a socket")
    } else {
        None
    }
}

/// The refusal of [`special`] `what` at a target.
pub fn special_there(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{what} is there, not a file: only a file or a link is ever replaced"),
    )
}

/// Opens the folder `path` for use as a `PartFile`'s folder.
pub fn open_dir(path: &Path) -> io::Result<File> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Opens (creating it if need be) a plain file at `name` in `dir` for
/// reading and writing, never through a link and never anything but a
/// regular file with one link. Something else there is unlinked first; a
/// folder there is refused. The file is not truncated: that is for the
/// caller, once it knows the file is its own.
fn open_plain(dir: &File, name: &OsStr) -> io::Result<File> {
    for _ in 0..3 {
        match look_at(dir, name)? {
            Found::Folder => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!(
                        "a folder is in the way at {}, where the partial file goes; remove it",
                        crate::text::escape(&name.to_string_lossy())
                    ),
                ));
            }
            Found::Foreign => {
                tracing::warn!(
                    name = %crate::text::escape(&name.to_string_lossy()),
                    "a link or special file sat at a partial file's name; unlinked it, its target untouched"
                );
                match nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            Found::Nothing | Found::Plain(_) => {}
        }
        // No link followed, no terminal taken, no wait on a FIFO swapped in
        // since the look; what was opened is checked again below.
        let flags = OFlag::O_RDWR
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NOCTTY
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        // Only the server's user reads a file being written; it gets its
        // final mode as it is moved into place.
        let fd = match nix::fcntl::openat(dir, name, flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => fd,
            // A symlink appeared between the look and the open.
            Err(Errno::ELOOP) => continue,
            Err(e) => return Err(e.into()),
        };
        let st = nix::sys::stat::fstat(&fd)?;
        if matches!(classify_stat(&st), Found::Plain(_)) {
            // Back to blocking reads and writes (a regular file ignores the
            // flag, but say what is meant).
            nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))?;
            return Ok(File::from(fd));
        }
        drop(fd);
    }
    Err(io::Error::other(format!(
        "{} keeps changing; refusing to write there",
        crate::text::escape(&name.to_string_lossy())
    )))
}

/// A new, empty partial file at `name` in `dir`, in place of the one
/// there: starting over is a new file, not the old one cut, so that one
/// going on with the old upload never meets this one's bytes (see
/// `generation`).
fn fresh(dir: &File, name: &OsStr) -> io::Result<File> {
    if matches!(look_at(dir, name)?, Found::Plain(_)) {
        match nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    open_plain(dir, name)
}

/// Cuts `file` from `held` bytes to `to`. An empty file is left alone (ext4
/// writes a file cut to nothing out in full when it is closed, a second per
/// 2 GiB); one already `to` long gives back what a killed attempt claimed
/// past its end (see `reserve`).
fn cut(file: &File, held: u64, to: u64) -> io::Result<()> {
    if held != to {
        file.set_len(to)?;
    } else if to > 0 {
        super::reserve::trim(file)?;
    }
    Ok(())
}

impl PartFile {
    /// Opens the partial file for `target`, by path (the client's side).
    /// With `resume`, bytes left by an earlier attempt are kept (see
    /// [`PartFile::existing`]) and what it left claimed past them given
    /// back at once, bytes or none to come; otherwise it starts empty.
    pub fn open(target: &Path, resume: bool) -> io::Result<PartFile> {
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let part = PartFile::open_in(open_dir(parent)?, name, target.to_path_buf(), resume)?;
        cut(&part.file, part.existing, part.existing).map(|()| part)
    }

    /// Opens the partial file for the entry `name` of the open folder `dir`
    /// (`target` is that entry's path, for messages). See the module docs
    /// for what is done with something ferry did not make at that name.
    pub fn open_in(dir: File, name: &OsStr, target: PathBuf, resume: bool) -> io::Result<PartFile> {
        refuse_special(&dir, name)?;
        let part_name = part_name(name);
        let file = if resume {
            open_plain(&dir, &part_name)?
        } else {
            fresh(&dir, &part_name)?
        };
        let held = file.metadata()?.len();
        let existing = if resume {
            held
        } else {
            cut(&file, held, 0)?;
            0
        };
        Ok(PartFile {
            dir,
            name: name.to_os_string(),
            part_name,
            target,
            file,
            existing,
            size: 0,
            written: 0,
            hasher: Hasher::default(),
            writeback: Writeback::new(0),
            reserve: Reserve::none(),
        })
    }

    /// Bytes an earlier attempt left.
    pub fn existing(&self) -> u64 {
        self.existing
    }

    /// Which partial file this is, among those the name has held (see
    /// `generation::of`).
    pub fn generation(&self) -> Option<String> {
        generation::of(&self.file)
    }

    /// Which partial file (see [`PartFile::generation`]) the entry `name`
    /// of `dir` has now, if any.
    pub fn generation_at(dir: &File, name: &OsStr) -> io::Result<Option<String>> {
        generation::at(dir, &part_name(name))
    }

    /// Which partial file the file `name` of `dir` was, if it is a plain
    /// file: moved into place, a partial file keeps its identity.
    pub fn generation_of(dir: &File, name: &OsStr) -> io::Result<Option<String>> {
        generation::at(dir, name)
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Hashes the bytes an earlier attempt left; `None` when there are none
    /// (or no longer: cut shorter by another program while they were read,
    /// they are given up, and the upload starts over).
    /// The hash state is kept, so those bytes are not read twice.
    /// From here on the file is verified with `algo`.
    pub fn hash_existing(&mut self, algo: Algo) -> io::Result<Option<String>> {
        self.hasher = algo.hasher();
        if self.existing == 0 {
            return Ok(None);
        }
        self.file.seek(SeekFrom::Start(0))?;
        match hash_prefix(&mut self.file, self.existing, algo) {
            Ok(hasher) => self.hasher = hasher,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.existing = 0;
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        Ok(Some(self.hasher.hex()))
    }

    /// Fixes where the incoming bytes start (0, or [`PartFile::existing`]
    /// after [`PartFile::hash_existing`]) and how large the file will be.
    pub fn start(&mut self, offset: u64, size: u64) -> io::Result<()> {
        if offset > size || (offset != 0 && offset != self.existing) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot start at byte {offset}"),
            ));
        }
        if offset == 0 {
            self.hasher = self.hasher.algo().hasher();
        }
        let held = self.file.metadata()?.len();
        if offset == 0 && held > 0 {
            // Starting over is a new file (see `open_in`).
            self.file = fresh(&self.dir, &self.part_name)?;
        } else if held < offset {
            // Cut by another program since its bytes were hashed: going on
            // at `offset` would leave zeros in their place.
            return Err(place::cut_shorter());
        } else {
            cut(&self.file, held, offset)?;
        }
        self.file.seek(SeekFrom::Start(offset))?;
        self.size = size;
        self.written = offset;
        self.writeback = Writeback::new(offset);
        self.reserve = Reserve::new(&self.file, offset, size);
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
        let upto = self.written + buf.len() as u64;
        place::not_cut(&self.file, self.written)?;
        self.reserve.before_writing(&self.file, upto);
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        self.writeback.written_up_to(&self.file, self.written);
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
        let actual = self.hasher.hex();
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
        self.still_ours()?;
        self.give_final_mode();
        if overwrite {
            // Replaces a file, or a link, at the name: never writes
            // through it, and never replaces a device or a FIFO that
            // appeared since the partial file was opened.
            refuse_special(&self.dir, &self.name)?;
            nix::fcntl::renameat(&self.dir, &*self.part_name, &self.dir, &*self.name)
                .map_err(io::Error::from)?;
        } else {
            match rename_noreplace(&self.dir, &self.part_name, &self.name) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(FinishError::Exists);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(actual)
    }

    /// [`PartFile::finish`], and the partial file removed when it fails:
    /// what the server does with an upload it refuses at the end (the
    /// target appeared meanwhile, the size or digest is wrong), which no
    /// later attempt could finish either.
    pub fn finish_or_discard(
        self,
        expected_sha256: Option<&str>,
        mtime: Option<Mtime>,
        overwrite: bool,
    ) -> Result<String, FinishError> {
        let dir = self.dir.try_clone()?;
        let part_name = self.part_name.clone();
        let r = self.finish(expected_sha256, mtime, overwrite);
        if r.is_err() {
            let _ =
                nix::unistd::unlinkat(&dir, &*part_name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        r
    }

    /// Removes the partial file.
    pub fn discard(self) {
        let _ = nix::unistd::unlinkat(
            &self.dir,
            &*self.part_name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// Renames `from` to `to` in `dir`, failing with `AlreadyExists` when
/// anything is at `to`.
pub(crate) fn rename_noreplace(dir: &File, from: &OsStr, to: &OsStr) -> io::Result<()> {
    rename_noreplace_between(dir, from, dir, to)
}

/// [`rename_noreplace`] from one open folder to another.
pub(crate) fn rename_noreplace_between(
    from_dir: &File,
    from: &OsStr,
    to_dir: &File,
    to: &OsStr,
) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    match nix::fcntl::renameat2(
        from_dir,
        from,
        to_dir,
        to,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => return Ok(()),
        Err(Errno::EEXIST) => return Err(io::ErrorKind::AlreadyExists.into()),
        // Filesystems without the flag: a hard link fails when the target
        // exists, which makes the same promise.
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {}
        Err(e) => return Err(e.into()),
    }
    match nix::unistd::linkat(from_dir, from, to_dir, to, AtFlags::empty()) {
        Ok(()) => {
            nix::unistd::unlinkat(from_dir, from, nix::unistd::UnlinkatFlags::NoRemoveDir)?;
            Ok(())
        }
        Err(Errno::EEXIST) => Err(io::ErrorKind::AlreadyExists.into()),
        // A folder cannot be hard-linked: checked, then moved.
        Err(Errno::EPERM) if look_at(to_dir, to)? == Found::Nothing => {
            nix::fcntl::renameat(from_dir, from, to_dir, to)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
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

mod generation;
mod place;
pub use place::finished_mode;
pub(crate) use place::{cut_shorter, not_cut};
#[cfg(test)]
mod tests;
