//! Whether a disk tells names apart by case, asked without writing: a
//! folder transfer refuses two names that differ only in case where the
//! disk would make them one file (the second would replace the first),
//! and copies both where it keeps them apart.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Entries of a folder looked at, at most, for a name with a case to turn.
const LOOK_AT: usize = 64;

/// Whether the disk holding the folder `dir` (or, when it is not there yet,
/// the nearest folder above it that is; links followed) would take two
/// names that differ only in case for one. Told first by the folder's own
/// case-folding flag (ext4, f2fs, tmpfs `+F`) and the kind of disk (FAT,
/// exFAT, NTFS, SMB, HFS, ISO 9660 do; ext4, XFS, btrfs, tmpfs, ZFS do
/// not), else by looking up a name there with its case turned: the same
/// file answers only on such a disk. When nothing can tell, the answer is
/// yes: refusing a pair costs less than losing a file.
pub fn ignores_case(dir: &Path) -> bool {
    let near = dir
        .ancestors()
        .map(|d| match d.as_os_str().is_empty() {
            true => Path::new("."),
            false => d,
        })
        .find(|d| d.is_dir())
        .and_then(|d| fs::canonicalize(d).ok());
    let Some(dir) = near else {
        return true;
    };
    if let Some(answer) = by_disk(&dir) {
        return answer;
    }
    let Ok(here) = fs::metadata(&dir) else {
        return true;
    };
    // A name inside the folder is on its disk, whatever is mounted where.
    if let Ok(names) = fs::read_dir(&dir) {
        for item in names.take(LOOK_AT).flatten() {
            if let Some(answer) = turned_answers(&dir.join(item.file_name())) {
                return answer;
            }
        }
    }
    // The folder's own name is looked up on its parent's disk: only
    // telling when that is the same disk.
    let same_disk = dir
        .parent()
        .and_then(|p| fs::metadata(p).ok())
        .is_some_and(|p| p.dev() == here.dev());
    match same_disk {
        true => turned_answers(&dir).unwrap_or(true),
        false => true,
    }
}

/// Folders with case pairs asked about, at most, for one batch: past
/// this many, the batch is refused rather than each asked of the disk.
pub const MAX_PAIR_FOLDERS: usize = 10_000;

/// Refuses a batch (`paths`, `/`-separated) that holds two names differing
/// only in case in a folder whose disk ignores case, as `ignores(folder)`
/// tells for each such folder.
pub fn refuse_merging_pairs<'a>(
    paths: impl IntoIterator<Item = &'a str>,
    mut ignores: impl FnMut(&str) -> bool,
) -> Result<(), crate::files::NameError> {
    let folders = crate::files::name::case_pair_folders(paths);
    let refused = |folder: &str, reason| crate::files::NameError {
        name: match folder {
            "" => "the folder's top".into(),
            f => format!("\"{}\"", crate::text::escape(f)),
        },
        reason,
    };
    if folders.len() > MAX_PAIR_FOLDERS {
        return Err(refused(
            &folders[0],
            "and over 10,000 other folders hold names that differ only in case",
        ));
    }
    for folder in &folders {
        if ignores(folder) {
            return Err(refused(
                folder,
                "holds names that differ only in case, and the disk they go to ignores case: they would be one file",
            ));
        }
    }
    Ok(())
}

/// What the folder's flag or its disk's kind says, when either says.
fn by_disk(dir: &Path) -> Option<bool> {
    if casefolded(dir) {
        return Some(true);
    }
    let kind = nix::sys::statfs::statfs(dir).ok()?.filesystem_type().0 as u64;
    const FOLDS: [u64; 10] = [
        0x4d44,      // FAT (msdos, vfat)
        0x2011_bab0, // exFAT
        0x5346_544e, // NTFS (ntfs)
        0x7366_746e, // NTFS (ntfs3)
        0xff53_4d42, // CIFS
        0xfe53_4d42, // SMB2
        0x517b,      // SMB
        0x4244,      // HFS
        0x482b,      // HFS+
        0x9660,      // ISO 9660
    ];
    // Only by a folder's flag, read above, do these fold.
    const KEEPS: [u64; 6] = [
        0xef53,      // ext2, ext3, ext4
        0x5846_5342, // XFS
        0x9123_683e, // btrfs
        0x0102_1994, // tmpfs
        0xf2f5_2010, // f2fs
        0x2fc1_2fc1, // ZFS
    ];
    if FOLDS.contains(&kind) {
        Some(true)
    } else if KEEPS.contains(&kind) {
        Some(false)
    } else {
        None
    }
}

/// Whether the folder has the case-folding flag (`chattr +F`).
#[allow(unsafe_code)]
fn casefolded(dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    /// `FS_CASEFOLD_FL` in the kernel's `linux/fs.h`.
    const CASEFOLD: libc::c_long = 0x4000_0000;
    let Ok(folder) = fs::File::open(dir) else {
        return false;
    };
    let mut flags: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS writes the flags (an int) into `flags`, a
    // long the call owns; a disk without flags fails, which reads as none.
    let r = unsafe { libc::ioctl(folder.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
    r == 0 && flags & CASEFOLD != 0
}

/// Looks up `path` with its last name's case turned: `Some(true)` when the
/// same file answers, `Some(false)` when none or another does, `None` when
/// the name has no ASCII letter to turn or cannot be looked at.
fn turned_answers(path: &Path) -> Option<bool> {
    // ASCII letters only: every disk that ignores case folds them, while
    // beyond them the rules differ (`ß` has no one-letter capital).
    let name = path.file_name()?.to_str()?;
    if !name.bytes().any(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let turned: String = name
        .chars()
        .map(|c| match c.is_ascii_lowercase() {
            true => c.to_ascii_uppercase(),
            false => c.to_ascii_lowercase(),
        })
        .collect();
    let real = fs::symlink_metadata(path).ok()?;
    match fs::symlink_metadata(path.with_file_name(&turned)) {
        Ok(other) => Some(other.dev() == real.dev() && other.ino() == real.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linux_disk_tells_case_apart() {
        // The test's own temporary folder is on a disk that does (ext4,
        // tmpfs and every disk the tests run on here).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Some.txt"), b"x").unwrap();
        assert!(!ignores_case(dir.path()));
        // Below, not yet made: asked of the nearest folder there.
        assert!(!ignores_case(&dir.path().join("not/yet")));
        // Both cases there, two files: still apart.
        std::fs::write(dir.path().join("SOME.TXT"), b"y").unwrap();
        assert!(!ignores_case(dir.path()));
    }

    /// A disk that ignores case answers a turned name with the same file;
    /// a hard link stands in for one here.
    #[test]
    fn the_same_file_under_a_turned_name_means_case_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Photo.JPG"), b"x").unwrap();
        std::fs::hard_link(dir.path().join("Photo.JPG"), dir.path().join("pHOTO.jpg")).unwrap();
        assert_eq!(turned_answers(&dir.path().join("Photo.JPG")), Some(true));
    }

    /// A folder named by a link is asked of where the link leads, and a
    /// folder not made yet, named relative to here, of the nearest one
    /// there.
    #[test]
    fn links_and_relative_names_are_followed_to_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("lnk")).unwrap();
        assert!(!ignores_case(&dir.path().join("lnk")));
        assert!(!ignores_case(Path::new("not-made-yet/below")));
        assert!(!ignores_case(Path::new("")));
    }

    /// Each folder holding a pair is asked of its own disk: a disk that
    /// ignores case mounted below the top refuses the pair in it.
    #[test]
    fn pairs_are_refused_only_in_folders_whose_disk_ignores_case() {
        let paths = ["Makefile", "makefile", "usb", "usb/Foo", "usb/foo", "x/y"];
        let mut asked = Vec::new();
        let r = refuse_merging_pairs(paths, |f| {
            asked.push(f.to_string());
            f == "usb"
        });
        let e = r.unwrap_err().to_string();
        assert!(e.contains("\"usb\"") && e.contains("ignores case"), "{e}");
        assert_eq!(asked, ["", "usb"]);
        assert!(refuse_merging_pairs(paths, |_| false).is_ok());
        let e = refuse_merging_pairs(paths, |f| f.is_empty()).unwrap_err();
        assert!(e.to_string().contains("the folder's top"), "{e}");
    }

    /// A batch with pairs in more folders than are asked about is refused
    /// before any disk is asked.
    #[test]
    fn too_many_folders_with_pairs_are_refused_unasked() {
        let paths: Vec<String> = (0..=MAX_PAIR_FOLDERS)
            .flat_map(|i| [format!("d{i}/x"), format!("d{i}/X")])
            .collect();
        let mut asked = 0;
        let e = refuse_merging_pairs(paths.iter().map(String::as_str), |_| {
            asked += 1;
            false
        })
        .unwrap_err();
        assert!(e.to_string().contains("over 10,000 other folders"), "{e}");
        assert_eq!(asked, 0);
    }

    #[test]
    fn names_with_no_case_tell_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("123"), b"x").unwrap();
        assert_eq!(turned_answers(&dir.path().join("123")), None);
        std::fs::write(dir.path().join("ßä"), b"x").unwrap();
        assert_eq!(turned_answers(&dir.path().join("ßä")), None);
        assert_eq!(turned_answers(&dir.path().join("gone")), None);
    }
}
