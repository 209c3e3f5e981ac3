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
/// the nearest folder above it that is) would take two names that differ
/// only in case for one. Found by looking up a name there with its case
/// turned: the same file answers only on such a disk. When nothing there
/// can tell (an empty folder that is a mount point, no name with a case),
/// the answer is yes: refusing a pair costs less than losing a file.
pub fn ignores_case(dir: &Path) -> bool {
    let Some(dir) = dir.ancestors().find(|d| d.is_dir()) else {
        return true;
    };
    let Ok(here) = fs::metadata(dir) else {
        return true;
    };
    // A name inside the folder is on its disk, whatever is mounted where.
    if let Ok(names) = fs::read_dir(dir) {
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
        true => turned_answers(dir).unwrap_or(true),
        false => true,
    }
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
        assert!(ignores_case(dir.path()));
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
