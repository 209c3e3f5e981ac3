//! Where a finished file goes: its mode, and whether its folder is still
//! where the upload began.

use std::fs::File;
use std::io;

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
}

/// Cuts `file` from `held` bytes to `to`. An empty file is left alone (ext4
/// writes a file cut to nothing out in full when it is closed, a second per
/// 2 GiB); one already `to` long gives back what a killed attempt claimed
/// past its end (see `reserve`).
pub(super) fn cut(file: &File, held: u64, to: u64) -> io::Result<()> {
    if held != to {
        file.set_len(to)?;
    } else if to > 0 {
        crate::files::reserve::trim(file)?;
    }
    Ok(())
}
