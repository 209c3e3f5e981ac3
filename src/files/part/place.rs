//! Where a finished file goes: its mode, whether its folder is still
//! where the upload began, and whether the partial file is still the one
//! written.

use std::fs::File;
use std::io;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::Mode;

use super::PartFile;

/// The mode of a finished file: `0644` less the process's umask, as a
/// file created in one go would have (a partial file is `0600` until
/// then). Read from `/proc/self/status` where it can be; else learnt by
/// setting it and back, which `main` does first thing, while no other
/// thread runs to create a file meanwhile.
pub fn finished_mode() -> Mode {
    static MODE: std::sync::OnceLock<Mode> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| {
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("Umask:"))?;
                u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
            })
            .unwrap_or_else(|| {
                let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o077));
                nix::sys::stat::umask(old);
                old.bits()
            });
        Mode::from_bits_truncate(0o644 & !umask)
    })
}

impl PartFile {
    /// Gives the finished file its mode (see [`finished_mode`]) where the
    /// filesystem keeps modes: one that does not (FAT, exFAT: a mode set
    /// by the mount, and `EPERM` for another) keeps its own, and the
    /// upload goes on.
    pub(super) fn give_final_mode(&self) {
        let want = finished_mode();
        let has = nix::sys::stat::fstat(&self.file).map(|st| st.st_mode & 0o777);
        if has.is_ok_and(|m| m == want.bits()) {
            return;
        }
        if let Err(e) = nix::sys::stat::fchmod(&self.file, want) {
            tracing::debug!("the finished file keeps its mode: {e}");
        }
    }

    /// Whether the folder of the partial file is still where it was when
    /// the file was opened. A folder moved meanwhile (it, or one above
    /// it, renamed by someone else) would take the finished file to
    /// wherever it went, past the rights the upload was let in by.
    pub fn folder_in_place(&self) -> io::Result<()> {
        use nix::sys::stat::{fstat, lstat};
        let Some(want) = self.target.parent() else {
            return Ok(());
        };
        let held = fstat(&self.dir)?;
        // The path was canonical (no link on it) when the folder was
        // opened; its last component is looked at, not followed. Compared
        // by identity, not by name: a disk that ignores case may spell it
        // otherwise.
        let same = lstat(want).is_ok_and(|st| {
            (st.st_mode & libc::S_IFMT) == libc::S_IFDIR
                && (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)
        });
        if same {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the folder this upload was going to was moved or removed meanwhile; nothing was put in place",
            ))
        }
    }

    /// Whether the partial file still holds as many bytes as were written
    /// (not cut or grown by another program after they were hashed), and
    /// its name still holds the file written, and only that name does: one
    /// swapped for a link or another file, or
    /// linked to from elsewhere, by anyone who may write in the folder,
    /// would otherwise be what the rename puts in place (or a file others
    /// can change through their own name), while the digest answered is
    /// that of the bytes received. (Nothing renames a name only if it
    /// holds a given file: what is left is the moment between this look
    /// and the rename.)
    pub(super) fn still_ours(&self) -> io::Result<()> {
        let ours = nix::sys::stat::fstat(&self.file)?;
        if u64::try_from(ours.st_size).ok() != Some(self.size) {
            return Err(io::Error::other(
                "the partial file was cut or grown while written",
            ));
        }
        let there =
            nix::sys::stat::fstatat(&self.dir, &*self.part_name, AtFlags::AT_SYMLINK_NOFOLLOW);
        match there {
            Ok(st) if (st.st_dev, st.st_ino, ours.st_nlink) == (ours.st_dev, ours.st_ino, 1) => {
                Ok(())
            }
            Ok(_) | Err(Errno::ENOENT) => Err(io::Error::other(
                "the partial file was replaced, linked to or removed while it was written",
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether `file`, whose bytes written so far end at `pos` (each write goes
/// on from the last), still holds them all: cut shorter by another program
/// meanwhile, the next write past its new end would leave a run of zeros in
/// place of bytes received (and hashed), which no later look at its size
/// could tell. Asked before each write.
pub(crate) fn not_cut(file: &File, pos: u64) -> io::Result<()> {
    let st = nix::sys::stat::fstat(file)?;
    if u64::try_from(st.st_size).is_ok_and(|len| len >= pos) {
        Ok(())
    } else {
        Err(cut_shorter())
    }
}

/// The error of a partial file found shorter than the bytes written into it.
pub(crate) fn cut_shorter() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the partial file was cut shorter while it was written",
    )
}
