//! PartFile: what is kept, what is refused, what is replaced.

use super::*;
use std::os::unix::fs::FileTypeExt;

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

/// A file being written is the server's user's alone (other local users
/// do not read an upload in progress); a finished one is 0644 less the
/// umask, as a file written in one go.
#[test]
fn a_partial_file_is_read_by_its_owner_alone_until_finished() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m.bin");
    let mut p = PartFile::open(&target, false).unwrap();
    p.start(0, 2).unwrap();
    p.write(b"ab").unwrap();
    let mode = |path: &std::path::Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&part_path(&target)), 0o600);
    p.finish(None, None, false).unwrap();
    assert_eq!(mode(&target), finished_mode().bits());
    assert_eq!(finished_mode().bits() & 0o600, 0o600);
}

/// A write after another program cut the partial file shorter is refused:
/// it would leave zeros in place of bytes hashed, under their digest.
#[test]
fn a_write_after_the_partial_file_was_cut_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("c.bin");
    let mut p = PartFile::open(&target, false).unwrap();
    p.start(0, 6).unwrap();
    p.write(b"abc").unwrap();
    let other = fs::File::options()
        .write(true)
        .open(part_path(&target))
        .unwrap();
    other.set_len(1).unwrap();
    let e = p.write(b"def").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    assert_eq!(fs::metadata(part_path(&target)).unwrap().len(), 1);
    assert_eq!(p.written(), 3);
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

/// Cuts the partial file of `target` to `len` bytes, as another program.
fn cut_part(target: &Path, len: u64) {
    let f = fs::File::options().write(true).open(part_path(target));
    f.unwrap().set_len(len).unwrap();
}

/// Held bytes cut by another program after they were hashed: going on at
/// the old end is refused, where stretching the file back to it would put
/// zeros in their place under their digest.
#[test]
fn held_bytes_cut_after_they_were_hashed_are_not_stretched_back() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("h");
    fs::write(part_path(&target), b"hello ").unwrap();
    let mut p = PartFile::open(&target, true).unwrap();
    assert!(p.hash_existing(Algo::Blake3).unwrap().is_some());
    cut_part(&target, 2);
    let e = p.start(6, 11).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    assert_eq!(fs::metadata(part_path(&target)).unwrap().len(), 2);
}

/// Held bytes found cut shorter as they are hashed are given up: the
/// upload starts over from 0 and ends whole.
#[test]
fn held_bytes_cut_before_they_are_hashed_are_given_up_for_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("g");
    fs::write(part_path(&target), b"hello ").unwrap();
    let mut p = PartFile::open(&target, true).unwrap();
    assert_eq!(p.existing(), 6);
    cut_part(&target, 2);
    assert_eq!(p.hash_existing(Algo::Blake3).unwrap(), None);
    assert_eq!(p.existing(), 0);
    p.start(0, 5).unwrap();
    p.write(b"world").unwrap();
    p.finish(Some(&Algo::Blake3.hex_of(b"world")), None, false)
        .unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"world");
}

#[test]
fn resume_continues_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("r");
    fs::write(part_path(&target), b"hello ").unwrap();
    let mut p = PartFile::open(&target, true).unwrap();
    assert_eq!(p.existing(), 6);
    assert_eq!(
        p.hash_existing(crate::files::digest::Algo::Sha256)
            .unwrap()
            .unwrap(),
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

#[test]
fn a_fifo_or_device_at_the_target_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("fifo");
    nix::unistd::mkfifo(&target, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
    let e = PartFile::open(&target, false).unwrap_err();
    assert!(e.to_string().contains("a FIFO is there"), "{e}");
    assert!(!part_path(&target).exists());

    // One that appears while the file is received stops the final move,
    // overwrite or not, and stays what it was.
    let late = dir.path().join("late");
    let mut p = PartFile::open(&late, false).unwrap();
    p.start(0, 2).unwrap();
    p.write(b"ab").unwrap();
    nix::unistd::mkfifo(&late, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
    let e = p.finish(None, None, true).unwrap_err();
    assert!(e.to_string().contains("a FIFO is there"), "{e}");
    assert!(fs::symlink_metadata(&late).unwrap().file_type().is_fifo());

    // A device: /dev/null, looked at as the target's folder entry.
    let e = PartFile::open(Path::new("/dev/null"), false).unwrap_err();
    assert!(e.to_string().contains("a device is there"), "{e}");
}

#[test]
fn a_link_at_the_target_is_replaced_not_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::write(&outside, b"keep").unwrap();
    let target = dir.path().join("link");
    std::os::unix::fs::symlink(&outside, &target).unwrap();
    let mut p = PartFile::open(&target, false).unwrap();
    p.start(0, 3).unwrap();
    p.write(b"new").unwrap();
    p.finish(None, None, true).unwrap();
    assert_eq!(fs::read(&outside).unwrap(), b"keep");
    assert!(fs::symlink_metadata(&target).unwrap().is_file());
    assert_eq!(fs::read(&target).unwrap(), b"new");
}

#[test]
fn a_partial_file_swapped_mid_way_is_not_put_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::write(&outside, b"secret").unwrap();
    // For a link, and for another file, planted at the partial name once
    // the bytes are written, and for a second name given to the partial
    // file: none reaches the target's name, and what they point at is
    // untouched.
    for planted in ["link", "file", "hard link"] {
        let target = dir.path().join(format!("t-{planted}"));
        let mut p = PartFile::open(&target, false).unwrap();
        p.start(0, 3).unwrap();
        p.write(b"new").unwrap();
        let part = part_path(&target);
        match planted {
            "link" => {
                fs::remove_file(&part).unwrap();
                std::os::unix::fs::symlink(&outside, &part).unwrap();
            }
            "file" => {
                fs::remove_file(&part).unwrap();
                fs::write(&part, b"other").unwrap();
            }
            _ => fs::hard_link(&part, dir.path().join("second-name")).unwrap(),
        }
        let e = p.finish_or_discard(None, None, true).unwrap_err();
        assert!(e.to_string().contains("replaced"), "{e}");
        assert!(fs::symlink_metadata(&target).is_err(), "{planted}");
        assert_eq!(fs::read(&outside).unwrap(), b"secret");
    }
    // Removed: nothing to put in place either.
    let target = dir.path().join("t-gone");
    let mut p = PartFile::open(&target, false).unwrap();
    p.start(0, 1).unwrap();
    p.write(b"x").unwrap();
    fs::remove_file(part_path(&target)).unwrap();
    assert!(p.finish(None, None, false).is_err());
    assert!(!target.exists());
}

#[test]
fn starting_over_is_a_new_partial_file_and_going_on_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("g.bin");
    let mut p = PartFile::open(&target, true).unwrap();
    p.start(0, 10).unwrap();
    p.write(b"abc").unwrap();
    let first = p.generation().expect("this disk tells files apart");
    drop(p);
    let folder = open_dir(dir.path()).unwrap();
    let name = OsStr::new("g.bin");
    assert_eq!(
        PartFile::generation_at(&folder, name).unwrap(),
        Some(first.clone())
    );
    // Going on from what is held: the same upload.
    let mut p = PartFile::open(&target, true).unwrap();
    p.start(3, 10).unwrap();
    assert_eq!(p.generation(), Some(first.clone()));
    drop(p);
    // Starting over, at the open or at byte 0 of a resume: another one.
    let mut p = PartFile::open(&target, true).unwrap();
    p.start(0, 10).unwrap();
    let second = p.generation().unwrap();
    assert_ne!(second, first);
    p.write(b"0123456789").unwrap();
    drop(p);
    let third = PartFile::open(&target, false)
        .unwrap()
        .generation()
        .unwrap();
    assert_ne!(third, second);
    assert_ne!(third, first);
}

#[test]
fn space_claimed_ahead_is_not_taken_for_bytes_received() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("big.bin");
    let mut p = PartFile::open(&target, true).unwrap();
    // A large file announced, a little of it received, then the sender gone.
    p.start(0, 1 << 30).unwrap();
    p.write(&[5u8; 100_000]).unwrap();
    drop(p);
    let part = fs::metadata(part_path(&target)).unwrap();
    assert_eq!(part.len(), 100_000);
    // What was claimed ahead (see `reserve`) is given back when the
    // transfer stops short: only the bytes' blocks stay.
    let held = |p: &Path| fs::metadata(p).unwrap().blocks() * 512;
    let part = part_path(&target);
    assert!(held(&part) < 1 << 20, "{} bytes held", held(&part));
    // A process killed mid-transfer cannot give them back: the next
    // attempt does, as it goes on.
    {
        use std::os::fd::AsRawFd;
        let f = fs::OpenOptions::new().write(true).open(&part).unwrap();
        // SAFETY: a plain system call on an open file.
        #[allow(unsafe_code)]
        let r = unsafe {
            libc::fallocate64(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 100_000, 8 << 20)
        };
        assert!(r != 0 || held(&part) > 8 << 20);
    }
    let mut p = PartFile::open(&target, true).unwrap();
    // Given back as the resume opens it, before any byte comes (one
    // stopped then would keep it).
    assert!(held(&part) < 1 << 20, "{} bytes held", held(&part));
    assert_eq!(
        p.existing(),
        100_000,
        "a resume goes on from the bytes received"
    );
    assert!(
        p.hash_existing(crate::files::digest::Algo::Sha256)
            .unwrap()
            .is_some()
    );
    p.start(100_000, 100_001).unwrap();
    assert!(held(&part) < 1 << 20, "{} bytes held", held(&part));
    p.write(b"!").unwrap();
    let mut want = vec![5u8; 100_000];
    want.push(b'!');
    p.finish(Some(&hex(&Sha256::digest(&want))), None, false)
        .unwrap();
    assert_eq!(fs::read(&target).unwrap(), want);
}

/// A partial file cut shorter by another program after its bytes were
/// hashed is not put in place under the digest of the bytes received.
#[test]
fn a_partial_file_cut_after_it_was_hashed_is_not_put_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("cut.bin");
    let mut p = PartFile::open(&target, false).unwrap();
    p.start(0, 6).unwrap();
    p.write(b"abcdef").unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(part_path(&target))
        .unwrap()
        .set_len(2)
        .unwrap();
    let want = hex(&Sha256::digest(b"abcdef"));
    let e = p.finish(Some(&want), None, false).unwrap_err();
    assert!(e.to_string().contains("cut or grown"), "{e}");
    assert!(!target.exists());
}
