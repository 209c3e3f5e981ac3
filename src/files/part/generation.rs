//! Which partial file an upload is. One name holds, one after another, the
//! partial files of uploads of the same target that started over: a client
//! going on with an upload (tus names one by its target) must meet its own
//! bytes, not those of one that started over since.

use std::ffi::OsStr;
use std::fs::File;
use std::io;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{Found, classify_stat};

/// The identity of `file`: its inode with the number the file system gives
/// an inode as it is made (`FS_IOC_GETVERSION`: ext4, XFS, Btrfs, tmpfs),
/// or else its birth time, so that a partial file made anew at a name
/// never has the identity of the one before, even in a reused inode.
/// `None` where the file system keeps neither.
#[allow(unsafe_code)]
pub(super) fn of(file: &File) -> Option<String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let mut made: libc::c_long = 0;
    // SAFETY: FS_IOC_GETVERSION writes one long through the pointer, which
    // points at one; the descriptor is open for as long as `file` lives.
    let r = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETVERSION, &mut made) };
    if r == 0 {
        return Some(format!("{:x}.{:x}.g{:x}", meta.dev(), meta.ino(), made));
    }
    let born = meta.created().ok()?;
    let since = born.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!(
        "{:x}.{:x}.b{:x}",
        meta.dev(),
        meta.ino(),
        since.as_nanos()
    ))
}

/// The identity (see [`of`]) of the partial file `name` in `dir`, if a
/// plain one is there. Opens nothing that is not a plain file: no link is
/// followed, no FIFO waited on.
pub(super) fn at(dir: &File, name: &OsStr) -> io::Result<Option<String>> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NOCTTY
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC;
    let fd = match nix::fcntl::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ELOOP) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let st = nix::sys::stat::fstat(&fd)?;
    if !matches!(classify_stat(&st), Found::Plain(_)) {
        return Ok(None);
    }
    Ok(of(&File::from(fd)))
}
