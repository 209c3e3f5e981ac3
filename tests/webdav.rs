//! The WebDAV door, against clients nobody here wrote: litmus (every
//! suite), rclone's webdav backend (a tree up and back, bytes and
//! mtimes), and a mount through rclone where the machine allows FUSE.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{BinServer, spawn_bin_server};

const TOKEN: &str = "webdav-test-token-0123456789abcdef";

fn url(s: &BinServer) -> String {
    format!("http://127.0.0.1:{}/", s.port)
}

fn litmus(s: &BinServer) -> String {
    common::dav::litmus(&url(s))
}

#[test]
fn litmus_passes_every_suite() {
    let root = tempfile::tempdir().unwrap();
    let s = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    common::dav::assert_every_suite_passed(&litmus(&s));
    // litmus cleans up after itself, and no upload left a partial file
    // (one litmus cut off is gone once the server has seen it go).
    let mut left = common::partial_files(root.path());
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = common::partial_files(root.path());
    }
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn dead_properties_follow_files_the_native_door_moves_and_removes() {
    let root = tempfile::tempdir().unwrap();
    let s = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    common::dav::properties_follow_the_native_door(
        &format!("http://127.0.0.1:{}", s.port),
        &format!("127.0.0.1:{}", s.port),
    );
    common::dav::folder_copies_take_their_properties(&format!("http://127.0.0.1:{}", s.port));
}

#[test]
fn litmus_on_a_read_only_server_fails_only_at_the_refused_writes() {
    let root = tempfile::tempdir().unwrap();
    let s = spawn_bin_server(root.path(), &[], &[]);
    let out = litmus(&s);
    let fails: Vec<&str> = out.lines().filter(|l| l.contains("FAIL")).collect();
    assert!(
        !fails.is_empty(),
        "a read-only server let litmus write:\n{out}"
    );
    for f in &fails {
        assert!(
            f.contains("403"),
            "a failure that is not a refused write: {f}\n{out}"
        );
    }
    // Nothing was written.
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

/// A tree with odd names, folders, an empty file and one of some size,
/// with mtimes in the past.
fn make_tree(top: &Path) -> Vec<String> {
    let files = [
        ("a.txt", 6usize),
        ("empty", 0),
        ("deep/er/still/x.bin", 3_000_000),
        ("sp ace/naïve #1%.txt", 1000),
        ("deep/y.json", 70_000),
    ];
    let mut names = Vec::new();
    for (i, (name, size)) in files.iter().enumerate() {
        let p = top.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, common::noise(*size, i as u64)).unwrap();
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + 86_400 * i as u64);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(when)
            .unwrap();
        names.push(name.to_string());
    }
    names
}

fn rclone(s: &BinServer, args: &[&str]) {
    let out = Command::new("rclone")
        .arg("--config")
        .arg("/dev/null")
        .args(args)
        .env("RCLONE_CONFIG_FERRY_TYPE", "webdav")
        .env("RCLONE_CONFIG_FERRY_URL", url(s))
        // ownCloud's dialect carries mtimes (X-OC-Mtime).
        .env("RCLONE_CONFIG_FERRY_VENDOR", "owncloud")
        .env("RCLONE_CONFIG_FERRY_USER", "anyone")
        .env("RCLONE_CONFIG_FERRY_PASS", obscure(TOKEN))
        .output()
        .expect("rclone is installed by scripts/test (Debian's rclone)");
    assert!(
        out.status.success(),
        "rclone {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// rclone's configuration keeps passwords obscured.
fn obscure(pass: &str) -> String {
    let out = Command::new("rclone")
        .args(["obscure", pass])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn mtime_secs(p: &Path) -> u64 {
    std::fs::metadata(p)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn rclone_copies_a_tree_up_and_back_with_its_bytes_and_mtimes() {
    let root = tempfile::tempdir().unwrap();
    let s = spawn_bin_server(root.path(), &["--allow-all"], &[("FERRY_TOKEN", TOKEN)]);
    let here = tempfile::tempdir().unwrap();
    let src = here.path().join("src");
    let names = make_tree(&src);
    rclone(&s, &["copy", src.to_str().unwrap(), "ferry:up"]);
    let back = here.path().join("back");
    rclone(&s, &["copy", "ferry:up", back.to_str().unwrap()]);
    for name in &names {
        let (a, b, c) = (
            src.join(name),
            root.path().join("up").join(name),
            back.join(name),
        );
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{name} on the server"
        );
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&c).unwrap(),
            "{name} back"
        );
        assert_eq!(
            mtime_secs(&a),
            mtime_secs(&b),
            "{name}: mtime on the server"
        );
        assert_eq!(mtime_secs(&a), mtime_secs(&c), "{name}: mtime back");
    }
    // Run again, nothing differs: rclone finds every file the same.
    rclone(&s, &["check", src.to_str().unwrap(), "ferry:up"]);
    assert!(common::partial_files(root.path()).is_empty());
}

#[test]
fn a_mount_through_rclone_reads_and_writes() {
    if let Some(why) = cannot_mount() {
        eprintln!("not run: {why}");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("there.txt"), "from the server").unwrap();
    let s = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let at = tempfile::tempdir().unwrap();
    let mnt = at.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // In a mount namespace of the test's own, so nothing stays mounted.
    let script = r#"
        rclone --config /dev/null mount ferry: "$1" --vfs-cache-mode off 2>"$2" &
        pid=$!
        for i in $(seq 100); do mountpoint -q "$1" && break; sleep 0.1; done
        mountpoint -q "$1" || { echo MOUNTFAIL; kill $pid; exit 0; }
        set -e
        cat "$1/there.txt"; echo
        echo "from the mount" > "$1/here.txt"
        mkdir "$1/made"
        ls "$1"
        fusermount3 -u "$1" || umount "$1"
        wait $pid
    "#;
    let log = at.path().join("rclone.log");
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&mnt)
        .arg(&log)
        .env("RCLONE_CONFIG_FERRY_TYPE", "webdav")
        .env("RCLONE_CONFIG_FERRY_URL", url(&s))
        .env("RCLONE_CONFIG_FERRY_VENDOR", "owncloud")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if text.contains("MOUNTFAIL") {
        let why = std::fs::read_to_string(&log).unwrap_or_default();
        eprintln!("not run: rclone could not mount here: {why}");
        return;
    }
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("from the server") && text.contains("made"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("here.txt")).unwrap(),
        "from the mount\n"
    );
    assert!(root.path().join("made").is_dir());
}

/// Why this machine cannot mount a WebDAV share, if it cannot.
fn cannot_mount() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("no /dev/fuse: this machine does not allow FUSE".into());
    }
    if Command::new("fusermount3").arg("-V").output().is_err() {
        return Some("fusermount3 is not installed (Debian's fuse3)".into());
    }
    if !common::can_unshare_mount() {
        return Some("mount namespaces cannot be made here (not root?)".into());
    }
    None
}
