//! The digests a client remembers: kept between runs, for a settled file
//! version only, forgotten when asked, and bounded.

use super::*;
use crate::files::digests::identity_of;
use std::os::unix::fs::PermissionsExt;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn id_of(dir: &Path, name: &str, bytes: &[u8]) -> Identity {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    identity_of(&std::fs::File::open(&p).unwrap()).unwrap()
}

#[test]
fn a_settled_files_digest_is_kept_for_the_next_run_and_a_fresh_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache").join("digests");
    let now = id_of(dir.path(), "f", b"one");
    let old = now.backdated(60);
    let mut k = KnownDigests::at(path.clone());
    k.remember(&now, Algo::Blake3, A);
    assert_eq!(
        k.known(&now, Algo::Blake3),
        None,
        "just changed: not remembered"
    );
    k.remember(&old, Algo::Blake3, A);
    k.remember(&old, Algo::Sha256, B);
    k.remember(&old, Algo::Sha256, "not hex");
    // Another run reads them back, each for its algorithm.
    let mut again = KnownDigests::at(path.clone());
    assert_eq!(again.known(&old, Algo::Blake3).as_deref(), Some(A));
    assert_eq!(again.known(&old, Algo::Sha256).as_deref(), Some(B));
    assert_eq!(again.known(&now, Algo::Blake3), None);
    // Another version of the file (written again) is another key.
    let other = id_of(dir.path(), "f", b"two").backdated(60);
    assert_eq!(again.known(&other, Algo::Blake3), None);
    // Forgotten here and in the next run.
    again.forget(&old, Algo::Blake3);
    assert_eq!(again.known(&old, Algo::Blake3), None);
    let mut third = KnownDigests::at(path.clone());
    assert_eq!(third.known(&old, Algo::Blake3), None);
    assert_eq!(third.known(&old, Algo::Sha256).as_deref(), Some(B));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the owner's alone");
}

#[test]
fn lines_that_are_not_digests_are_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digests");
    let old = id_of(dir.path(), "f", b"one").backdated(60);
    let tag = old.tag();
    let text = format!(
        "garbage\n{tag} md5 {A}\n{tag} blake3 {A} extra\n{tag} blake3 {}\n../x blake3 {A}\n{tag} sha256 {B}\n",
        &A[..63]
    );
    std::fs::write(&path, text).unwrap();
    let mut k = KnownDigests::at(path);
    assert_eq!(k.known(&old, Algo::Blake3), None);
    assert_eq!(k.known(&old, Algo::Sha256).as_deref(), Some(B));
}

#[test]
fn the_file_is_written_anew_with_the_newest_digests_once_it_grows_too_long() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digests");
    let old = id_of(dir.path(), "f", b"one").backdated(60);
    let mut text = String::new();
    // Many versions of other files, then the one asked for, last.
    for i in 0..MAX_LINES {
        text.push_str(&format!("1.{i}.3.4.5 blake3 {B}\n"));
    }
    text.push_str(&format!("{} blake3 {A}\n", old.tag()));
    std::fs::write(&path, text).unwrap();
    let mut k = KnownDigests::at(path.clone());
    assert_eq!(k.known(&old, Algo::Blake3).as_deref(), Some(A));
    let lines = std::fs::read_to_string(&path).unwrap().lines().count();
    assert_eq!(lines, KEPT);
    // The oldest went, the newest stayed.
    let mut again = KnownDigests::at(path);
    assert_eq!(again.known(&old, Algo::Blake3).as_deref(), Some(A));
    assert_eq!(again.loaded().len(), KEPT);
    assert!(
        !again
            .loaded()
            .contains_key(&("1.0.3.4.5".to_string(), "blake3".to_string()))
    );
}

#[test]
fn only_a_regular_file_is_read_or_written_and_only_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let old = id_of(dir.path(), "f", b"one").backdated(60);
    // A link at the path is not followed, for reading or for writing.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, format!("{} blake3 {A}\n", old.tag())).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let mut k = KnownDigests::at(link);
    assert_eq!(k.known(&old, Algo::Blake3), None);
    k.remember(&old, Algo::Sha256, B);
    assert_eq!(std::fs::read_to_string(&victim).unwrap().lines().count(), 1);
    // A FIFO is not waited on.
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut k = KnownDigests::at(fifo);
    assert_eq!(k.known(&old, Algo::Blake3), None);
    k.remember(&old, Algo::Blake3, A);
    // A huge file: its end is read, and it is written anew.
    let big = dir.path().join("big");
    let mut text = "x".repeat(6 << 20);
    text.push_str(&format!("\n{} blake3 {A}\n", old.tag()));
    std::fs::write(&big, text).unwrap();
    let mut k = KnownDigests::at(big.clone());
    assert_eq!(k.known(&old, Algo::Blake3).as_deref(), Some(A));
    assert_eq!(std::fs::read_to_string(&big).unwrap().lines().count(), 1);
}

#[test]
fn a_digest_written_while_another_client_rewrites_the_file_lands_in_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digests");
    let old = id_of(dir.path(), "f", b"one").backdated(60);
    std::fs::write(&path, format!("1.2.3.4.5 blake3 {B}\n")).unwrap();
    // Another client holds the file's lock, as it does while rewriting it.
    let held = std::fs::File::open(&path).unwrap();
    let held = Flock::lock(held, FlockArg::LockExclusive).unwrap();
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || KnownDigests::at(path).remember(&old, Algo::Blake3, A))
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !writer.is_finished(),
        "the line was written under another's lock"
    );
    // Its new file put in place, then the lock let go.
    let tmp = dir.path().join("digests.new");
    std::fs::write(&tmp, format!("1.2.3.4.6 blake3 {B}\n")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    drop(held);
    writer.join().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        format!("1.2.3.4.6 blake3 {B}\n{} blake3 {A}\n", old.tag())
    );
}
