//! Opening what lies beneath the root: in one system call where the kernel
//! can promise the result stays inside, else by a canonical path opened
//! with no link followed, so that what was checked is what is opened.

use std::fs::File;
use std::io;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

use super::super::FilesError;
use super::super::name::RelPath;
use super::LocalDisk;

impl LocalDisk {
    /// Opens `real`, a canonical path inside the root (one [`Self::resolve`]
    /// gave, and checked), beneath the root without following any link on
    /// the way (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`).
    /// A folder on the way swapped for a link since it was resolved is
    /// refused (`ELOOP`) instead of followed, wherever the link leads.
    /// Kernels without `openat2` get `real` opened by its path.
    pub(super) fn open_real(&self, real: &Path, flags: OFlag) -> io::Result<File> {
        let rel = real
            .strip_prefix(&self.root)
            .map_err(|_| io::Error::new(io::ErrorKind::PermissionDenied, "outside the root"))?;
        let flags = flags | OFlag::O_CLOEXEC;
        if let Some(root) = &self.root_dir {
            let path = if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            };
            let how = OpenHow::new()
                .flags(flags)
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            match openat2(root, path, how) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(Errno::ENOSYS | Errno::EPERM) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(File::from(nix::fcntl::open(real, flags, Mode::empty())?))
    }

    /// Opens `dir`, a canonical folder inside the root (see
    /// [`Self::open_real`]).
    pub(super) fn open_folder(&self, dir: &Path) -> io::Result<File> {
        self.open_real(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
    }

    /// Opens `rel` for reading in one system call when the kernel can
    /// promise it stays inside the root (`openat2` with `RESOLVE_BENEATH`:
    /// symlinks followed only while they stay below). `None` when that
    /// cannot decide (an absolute symlink, an old kernel): the caller then
    /// resolves the path the long way.
    pub(super) fn open_beneath(&self, rel: &RelPath) -> Option<Result<File, FilesError>> {
        if !self.fenced.is_empty() {
            // A link inside may lead into a fenced folder: resolve it.
            return None;
        }
        let dir = self.root_dir.as_ref()?;
        let path = if rel.is_root() {
            ".".to_string()
        } else {
            rel.parts().join("/")
        };
        let how = OpenHow::new()
            .flags(READ_FLAGS | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        match openat2(dir, path.as_str(), how) {
            Ok(fd) => Some(Ok(File::from(fd))),
            Err(Errno::ENOENT | Errno::ENOTDIR) => {
                Some(Err(FilesError::NotFound(format!("{rel} does not exist"))))
            }
            Err(_) => None,
        }
    }

    /// Opens `rel` for reading: beneath the root in one call, else by its
    /// resolved, checked path with no link followed. Between the two a
    /// local user may swap a folder for a link; then the open fails
    /// rather than read what the link leads to.
    pub(super) fn open_for_reading(&self, rel: &RelPath) -> Result<File, FilesError> {
        if let Some(f) = self.open_beneath(rel) {
            return f;
        }
        let real = self.resolve(rel)?;
        self.open_real(&real, READ_FLAGS).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => FilesError::Io(format!(
                "{rel} changed while it was being opened (a folder on its way became a link); try again"
            )),
            _ => FilesError::from_io(rel, e),
        })
    }
}

/// Non-blocking, so that a FIFO cannot hold the thread; regular files read
/// the same either way.
const READ_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_NONBLOCK);

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Read;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::files::storage::Storage;

    const INSIDE: &[u8] = b"inside the root\n";
    const SECRET: &[u8] = b"outside the root\n";

    /// `root/a/f` and, outside, `out/f`; the disk fenced (as when the
    /// server's state folder is inside the root), so every read takes
    /// the long way.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, LocalDisk) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let out = t.path().join("out");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::create_dir_all(root.join("state")).unwrap();
        fs::create_dir_all(&out).unwrap();
        fs::write(root.join("a/f"), INSIDE).unwrap();
        fs::write(out.join("f"), SECRET).unwrap();
        fs::write(out.join("only-outside"), SECRET).unwrap();
        let mut disk = LocalDisk::open(&root).unwrap();
        disk.fence(&[root.join("state")]);
        let root = disk.root().to_path_buf();
        (t, root, fs::canonicalize(out).unwrap(), disk)
    }

    fn swap_for_link(root: &Path, out: &Path) {
        fs::rename(root.join("a"), root.join("a.kept")).unwrap();
        symlink(out, root.join("a")).unwrap();
    }

    fn read(disk: &LocalDisk, rel: &str) -> Result<Vec<u8>, FilesError> {
        let (mut r, _) = disk.open_read(&RelPath::parse(rel).unwrap())?;
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).unwrap();
        Ok(buf)
    }

    #[test]
    fn a_folder_swapped_for_a_link_after_it_was_resolved_is_not_followed() {
        let (_t, root, out, disk) = setup();
        let real = disk.resolve(&RelPath::parse("a/f").unwrap()).unwrap();
        assert_eq!(real, root.join("a/f"));
        swap_for_link(&root, &out);
        // Opened by its path, the checked name now reads the file outside.
        assert_eq!(fs::read(&real).unwrap(), SECRET);
        let e = disk.open_real(&real, READ_FLAGS).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        let e = disk.open_real(&real, OFlag::O_PATH).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        // Asked afresh, the path is refused as leading out.
        assert!(matches!(read(&disk, "a/f"), Err(FilesError::Forbidden(_))));
        let stat = disk.stat(&RelPath::parse("a/f").unwrap());
        assert!(matches!(stat, Err(FilesError::Forbidden(_))), "{stat:?}");
    }

    #[test]
    fn an_absolute_link_inside_the_root_is_read_and_described() {
        let (_t, root, _out, disk) = setup();
        symlink(root.join("a/f"), root.join("l")).unwrap();
        assert_eq!(read(&disk, "l").unwrap(), INSIDE);
        let e = disk.stat(&RelPath::parse("l").unwrap()).unwrap();
        assert_eq!(e.size, INSIDE.len() as u64);
    }

    /// A link to the server's own files is not named by a walk (not even
    /// as unreadable): nothing of them is told.
    #[test]
    fn a_link_to_the_servers_own_files_is_not_named() {
        let (_t, root, _out, disk) = setup();
        symlink(root.join("state"), root.join("l")).unwrap();
        symlink("state", root.join("m")).unwrap();
        let tree = disk.walk(&RelPath::root()).unwrap();
        let named = |p: &str| {
            tree.entries.iter().any(|e| e.path == p) || tree.skipped.iter().any(|e| e.path == p)
        };
        assert!(!named("l") && !named("m") && !named("state"), "{tree:?}");
        assert!(named("a/f"));
    }

    /// A local user swaps `a` for a link out and back as fast as they can
    /// while reads go through an absolute link to `a/f`: no read, in a
    /// bounded run, ever returns the file outside.
    #[test]
    fn a_racing_swap_never_reads_outside() {
        let (_t, root, out, disk) = setup();
        symlink(root.join("a/f"), root.join("l")).unwrap();
        let (mut inside, mut refused) = (0, 0);
        while_swapping(&root, &out, || match read(&disk, "l") {
            Ok(bytes) => {
                assert_ne!(bytes, SECRET, "a read left the root");
                assert_eq!(bytes, INSIDE);
                inside += 1;
            }
            Err(_) => refused += 1,
        });
        assert!(inside > 0, "no read got through ({refused} refused)");
    }

    /// The same race against listing `a` and walking the root: no name
    /// from outside is ever listed.
    #[test]
    fn a_racing_swap_never_lists_outside() {
        let (_t, root, out, disk) = setup();
        let (mut listed, mut walked) = (0, 0);
        while_swapping(&root, &out, || {
            if let Ok(names) = disk.list(&RelPath::parse("a").unwrap()) {
                assert!(names.iter().all(|e| e.name == "f"), "{names:?}");
                listed += 1;
            }
            if let Ok(tree) = disk.walk(&RelPath::root()) {
                let outside = tree
                    .entries
                    .iter()
                    .find(|e| e.path.ends_with("only-outside"));
                assert!(outside.is_none(), "{outside:?}");
                walked += 1;
            }
        });
        assert!(
            listed > 0 && walked > 0,
            "{listed} listings, {walked} walks"
        );
    }

    /// The same race against the sweep of old partial files: the one
    /// outside is never removed.
    #[test]
    fn a_racing_swap_never_sweeps_outside() {
        let (_t, root, out, disk) = setup();
        fs::write(out.join(".f.ferry-part"), SECRET).unwrap();
        let mut swept = 0;
        while_swapping(&root, &out, || {
            // An old partial file inside, swept each time.
            let inside = root.join("a/.g.ferry-part");
            if fs::write(&inside, INSIDE).is_ok() {
                swept += disk.sweep_partials(Duration::ZERO);
            }
            assert!(
                out.join(".f.ferry-part").exists(),
                "the sweep left the root"
            );
        });
        assert!(swept > 0, "nothing was swept");
    }

    /// Runs `f` over and over (for 1.5 s at most, 20,000 times at most)
    /// while another thread swaps `root/a` for a link to `out` and back
    /// as fast as it can.
    fn while_swapping(root: &Path, out: &Path, mut f: impl FnMut()) {
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (root, out, stop) = (root.to_path_buf(), out.to_path_buf(), stop.clone());
            std::thread::spawn(move || {
                let (a, kept, link) = (root.join("a"), root.join("a.kept"), root.join("a.link"));
                symlink(&out, &link).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    fs::rename(&a, &kept).unwrap();
                    fs::rename(&link, &a).unwrap();
                    fs::rename(&a, &link).unwrap();
                    fs::rename(&kept, &a).unwrap();
                }
            })
        };
        let start = Instant::now();
        for _ in 0..20_000 {
            if start.elapsed() > Duration::from_millis(1500) {
                break;
            }
            f();
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
    }
}
