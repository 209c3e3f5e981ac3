//! Files whose size, as `stat` reports it, says nothing of their bytes.
//!
//! The kernel's own filesystems (`/proc`, `/sys`, debugfs, tracefs,
//! securityfs, cgroups) make a file's contents as it is read and report
//! 0 or 4096 bytes for it. A transfer announces its size before the first
//! byte, so such a file would go out empty (`/proc/cpuinfo`) or fail half
//! way as "shrank" (`/sys/…`). The client reads such a file whole before
//! sending it; the server does not serve it.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::FileExt;

use nix::sys::statfs::{
    CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, DEBUGFS_MAGIC, PROC_SUPER_MAGIC, SECURITYFS_MAGIC,
    SYSFS_MAGIC, TRACEFS_MAGIC, fstatfs,
};

/// Whether `file` (a regular file, whose metadata is `meta`) is on one of
/// the kernel's filesystems, or reports 0 bytes where reading finds some.
pub fn size_unknown(file: &File, meta: &Metadata) -> io::Result<bool> {
    let fs = fstatfs(file)?.filesystem_type();
    let kernel = [
        PROC_SUPER_MAGIC,
        SYSFS_MAGIC,
        DEBUGFS_MAGIC,
        TRACEFS_MAGIC,
        SECURITYFS_MAGIC,
        CGROUP_SUPER_MAGIC,
        CGROUP2_SUPER_MAGIC,
    ];
    if kernel.contains(&fs) {
        return Ok(true);
    }
    if meta.len() > 0 {
        return Ok(false);
    }
    // Elsewhere (a FUSE filesystem, say), a file of 0 bytes that reads
    // as more.
    let mut probe = [0u8; 1];
    loop {
        match file.read_at(&mut probe, 0) {
            Ok(n) => return Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_files_are_told_from_files_on_a_disk() {
        for path in ["/proc/self/status", "/proc/cpuinfo"] {
            let f = File::open(path).unwrap();
            let m = f.metadata().unwrap();
            assert_eq!(m.len(), 0, "{path}");
            assert!(size_unknown(&f, &m).unwrap(), "{path}");
        }
        let dir = tempfile::tempdir().unwrap();
        for bytes in [&b""[..], b"data"] {
            let p = dir.path().join("f");
            std::fs::write(&p, bytes).unwrap();
            let f = File::open(&p).unwrap();
            assert!(!size_unknown(&f, &f.metadata().unwrap()).unwrap());
        }
    }
}
