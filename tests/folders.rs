//! Folder transfers through the real binary: what is left out is named,
//! what cannot be read or copied fails the transfer once the rest is done,
//! and names that differ only in case travel where the disk keeps them
//! apart.

mod common;

use std::fs;
use std::process::Command;

use common::{partial_files, run_cli, spawn_bin_server};

/// A folder download names what the server leaves out (links out, a link
/// to a folder, FIFOs and sockets, names no peer may be sent, what cannot
/// be read) on standard error, escaped, and brings the rest, as a folder
/// upload does; the server's partial files and state are not mentioned.
/// Something that could not be read fails the transfer once the rest is
/// done; a standard error that cannot be written changes nothing.
#[test]
fn a_folder_download_names_what_it_left_out() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;
    let root = tempfile::tempdir().unwrap();
    let top = root.path().join("t");
    fs::create_dir_all(top.join("sub")).unwrap();
    fs::write(top.join("sub/kept.txt"), b"kept").unwrap();
    fs::write(top.join(".upload.ferry-part"), b"half").unwrap();
    fs::write(top.join("x.ferry-part"), b"a user's").unwrap();
    symlink("/etc", top.join("out-dir")).unwrap();
    symlink("/etc/hostname", top.join("out-file")).unwrap();
    symlink("sub", top.join("loop")).unwrap();
    nix::unistd::mkfifo(&top.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(top.join("sock")).unwrap();
    let bell = std::ffi::OsStr::from_bytes(b"bell\x07\xff");
    fs::write(top.join(bell), b"x").unwrap();
    let server = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let from = format!("127.0.0.1:{}:/t", server.port);
    let local = tempfile::tempdir().unwrap();
    let down = local.path().join("down");

    let (rc, _, err) = run_cli(&["get", "-r", &from, down.to_str().unwrap()], &[]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(fs::read(down.join("sub/kept.txt")).unwrap(), b"kept");
    for line in [
        "skipping out-dir (link leads outside)",
        "skipping out-file (link leads outside)",
        "skipping loop (link to a folder)",
        "skipping fifo (not a regular file)",
        "skipping sock (not a regular file)",
        "skipping bell\\u{7}\\\\xff (name not allowed)",
        "skipping x.ferry-part (name not allowed)",
    ] {
        assert!(err.contains(line), "{line:?} in {err}");
    }
    assert!(!err.contains(".upload"), "{err}");
    assert!(!err.contains('\x07'), "{err}");
    let mut got: Vec<_> = fs::read_dir(&down)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["sub"]);

    // Standard error full: the same transfer, the same outcome.
    fs::remove_dir_all(&down).unwrap();
    let status = Command::new(common::ferry_bin())
        .args(["get", "-r", &from, down.to_str().unwrap()])
        .stderr(
            fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(fs::read(down.join("sub/kept.txt")).unwrap(), b"kept");

    // A folder whose path below the served folder is longer than any path
    // may be: named as such (no path could ask for it), the rest brought,
    // and the transfer whole in every other way.
    let deep = deep_folder(&top.join("sub"), "t/sub");
    fs::remove_dir_all(&down).unwrap();
    let (rc, _, err) = run_cli(&["get", "-r", &from, down.to_str().unwrap()], &[]);
    assert_eq!(rc, 0, "{err}");
    assert!(
        err.contains(&format!(
            "skipping sub/{deep} (its path is longer than 4096 bytes)"
        )),
        "{err}"
    );
    assert!(!err.contains("could not be copied"), "{err}");
    assert_eq!(fs::read(down.join("sub/kept.txt")).unwrap(), b"kept");
    drop(server);
}

/// Makes folders below `at`, one inside the other, until the last one's
/// absolute path is past PATH_MAX (made relative to each parent, as no
/// path that long can be named whole); gives the relative path of the
/// deepest folder whose details can still be read from the top.
fn deep_folder(at: &std::path::Path, served_as: &str) -> String {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::{Mode, mkdirat};
    let name = "d".repeat(200);
    let mut dir = open(at, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).unwrap();
    let mut len = at.as_os_str().len();
    let mut rel = Vec::new();
    while len <= 4096 + 200 {
        mkdirat(&dir, name.as_str(), Mode::S_IRWXU).unwrap();
        dir = openat(
            &dir,
            name.as_str(),
            OFlag::O_DIRECTORY | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .unwrap();
        len += 1 + name.len();
        rel.push(name.clone());
    }
    // The walk names the first folder whose path below the served folder
    // (`served_as` and on) is past the limit.
    let mut shown = Vec::new();
    let mut n = served_as.len();
    for part in &rel {
        n += 1 + part.len();
        shown.push(part.as_str());
        // A client's path starts with `/`: 4096 bytes in all.
        if n + 1 > 4096 {
            break;
        }
    }
    shown.join("/")
}

/// A local folder that an interrupted download left a partial file in
/// still uploads: the partial file is named and left out.
#[test]
fn a_folder_upload_leaves_partial_files_out() {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let tree = local.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("whole.txt"), b"whole").unwrap();
    fs::write(tree.join(".big.bin.ferry-part"), b"half").unwrap();
    let server = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let to = format!("127.0.0.1:{}:/up", server.port);
    let (rc, _, err) = run_cli(&["put", "-r", tree.to_str().unwrap(), &to], &[]);
    assert_eq!(rc, 0, "{err}");
    assert!(
        err.contains("skipping .big.bin.ferry-part (partial file of an unfinished transfer)"),
        "{err}"
    );
    assert_eq!(
        fs::read(root.path().join("up/whole.txt")).unwrap(),
        b"whole"
    );
    assert!(!root.path().join("up/.big.bin.ferry-part").exists());
    drop(server);
}

/// Two names that differ only in case are two files where the disk keeps
/// them apart (as here): both go up and come back down.
#[test]
fn names_differing_only_in_case_both_travel_where_the_disk_keeps_them_apart() {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let tree = local.path().join("src");
    fs::create_dir_all(tree.join("net")).unwrap();
    fs::write(tree.join("Makefile"), b"upper").unwrap();
    fs::write(tree.join("makefile"), b"lower").unwrap();
    fs::write(tree.join("net/xt_TCPMSS.c"), b"target").unwrap();
    fs::write(tree.join("net/xt_tcpmss.c"), b"match").unwrap();
    let server = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let at = format!("127.0.0.1:{}:/src", server.port);
    let (rc, _, err) = run_cli(&["put", "-r", tree.to_str().unwrap(), &at], &[]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        fs::read(root.path().join("src/Makefile")).unwrap(),
        b"upper"
    );
    assert_eq!(
        fs::read(root.path().join("src/makefile")).unwrap(),
        b"lower"
    );
    let down = local.path().join("down");
    let (rc, _, err) = run_cli(&["get", "-r", &at, down.to_str().unwrap()], &[]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(fs::read(down.join("net/xt_TCPMSS.c")).unwrap(), b"target");
    assert_eq!(fs::read(down.join("net/xt_tcpmss.c")).unwrap(), b"match");
    drop(server);
}

/// A file removed on the server while its folder is downloaded: named,
/// the rest still comes, and the exit status says the copy is not whole.
#[test]
fn a_file_removed_during_a_folder_download_is_named_and_the_rest_comes() {
    let root = tempfile::tempdir().unwrap();
    let top = root.path().join("t");
    fs::create_dir_all(&top).unwrap();
    // Walked in order: the large file first, the others while it comes.
    let big = vec![7u8; 192 << 20];
    fs::write(top.join("a-big.bin"), &big).unwrap();
    fs::write(top.join("b-goes.txt"), b"soon gone").unwrap();
    fs::write(top.join("c-stays.txt"), b"stays").unwrap();
    let server = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let from = format!("127.0.0.1:{}:/t", server.port);
    let local = tempfile::tempdir().unwrap();
    let down = local.path().join("down");
    let child = spawn_cli(&["get", "-r", &from, down.to_str().unwrap()]);
    // Once the large file has begun to arrive, the walk is over.
    begun(&down);
    fs::remove_file(top.join("b-goes.txt")).unwrap();
    fails_naming(child, "b-goes.txt");
    assert_eq!(fs::read(down.join("c-stays.txt")).unwrap(), b"stays");
    assert_eq!(fs::read(down.join("a-big.bin")).unwrap().len(), big.len());
    assert!(!down.join("b-goes.txt").exists());
    assert!(
        partial_files(&down).is_empty(),
        "{:?}",
        partial_files(&down)
    );
    drop(server);
}

/// The same for a folder upload: a file removed here while the folder
/// goes up is named, the rest goes, and the exit status is 1.
#[test]
fn a_file_removed_during_a_folder_upload_is_named_and_the_rest_goes() {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let top = local.path().join("t");
    fs::create_dir_all(&top).unwrap();
    let big = vec![7u8; 192 << 20];
    fs::write(top.join("a-big.bin"), &big).unwrap();
    fs::write(top.join("b-goes.txt"), b"soon gone").unwrap();
    fs::write(top.join("c-becomes-a-folder.txt"), b"soon a folder").unwrap();
    fs::write(top.join("d-stays.txt"), b"stays").unwrap();
    let server = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let to = format!("127.0.0.1:{}:/up", server.port);
    let child = spawn_cli(&["put", "-r", top.to_str().unwrap(), &to]);
    begun(&root.path().join("up"));
    fs::remove_file(top.join("b-goes.txt")).unwrap();
    fs::remove_file(top.join("c-becomes-a-folder.txt")).unwrap();
    fs::create_dir(top.join("c-becomes-a-folder.txt")).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("skipping b-goes.txt ("), "{err}");
    assert!(err.contains("skipping c-becomes-a-folder.txt ("), "{err}");
    assert!(err.contains("2 could not be copied"), "{err}");
    let up = root.path().join("up");
    assert_eq!(fs::read(up.join("d-stays.txt")).unwrap(), b"stays");
    assert!(!up.join("c-becomes-a-folder.txt").exists());
    assert_eq!(fs::read(up.join("a-big.bin")).unwrap().len(), big.len());
    assert!(!up.join("b-goes.txt").exists());
    drop(server);
}

/// Waits until `a-big.bin` has begun to arrive in `dir` (its partial
/// file, or the file itself, is there): the transfer's walk is over.
/// A file removed on the server while a folder download compares the
/// copies already here is named and the rest comes: the comparison of a
/// large file holds the window open (the client hashing its own copy).
#[test]
fn a_file_removed_while_a_folder_download_compares_is_named_and_the_rest_comes() {
    let root = tempfile::tempdir().unwrap();
    let top = root.path().join("t");
    fs::create_dir_all(&top).unwrap();
    let local = tempfile::tempdir().unwrap();
    let down = local.path().join("down");
    fs::create_dir_all(&down).unwrap();
    let big = vec![7u8; 256 << 20];
    for dir in [&top, &down] {
        fs::write(dir.join("a-big.bin"), &big).unwrap();
        fs::write(dir.join("b-goes.txt"), b"soon gone").unwrap();
    }
    fs::write(top.join("c-new.txt"), b"new").unwrap();
    let server = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let from = format!("127.0.0.1:{}:/t", server.port);
    let child = spawn_cli(&["get", "-r", &from, down.to_str().unwrap()]);
    reading(child.id(), 64 << 20);
    fs::remove_file(top.join("b-goes.txt")).unwrap();
    fails_naming(child, "b-goes.txt");
    assert_eq!(fs::read(down.join("c-new.txt")).unwrap(), b"new");
    drop(server);
}

/// The same for a folder upload: a file removed here while the copies on
/// the server are compared is named and the rest goes; one removed there
/// meanwhile is sent again.
#[test]
fn a_file_removed_while_a_folder_upload_compares_is_named_and_the_rest_goes() {
    let root = tempfile::tempdir().unwrap();
    let up = root.path().join("up");
    fs::create_dir_all(&up).unwrap();
    let local = tempfile::tempdir().unwrap();
    let top = local.path().join("t");
    fs::create_dir_all(&top).unwrap();
    let big = vec![7u8; 256 << 20];
    for dir in [&top, &up] {
        fs::write(dir.join("a-big.bin"), &big).unwrap();
        fs::write(dir.join("b-goes-here.txt"), b"soon gone").unwrap();
        fs::write(dir.join("c-goes-there.txt"), b"sent again").unwrap();
    }
    fs::write(top.join("d-new.txt"), b"new").unwrap();
    let server = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let to = format!("127.0.0.1:{}:/up", server.port);
    let child = spawn_cli(&["put", "-r", top.to_str().unwrap(), &to]);
    reading(child.id(), 64 << 20);
    fs::remove_file(top.join("b-goes-here.txt")).unwrap();
    fs::remove_file(up.join("c-goes-there.txt")).unwrap();
    fails_naming(child, "b-goes-here.txt");
    assert_eq!(
        fs::read(up.join("c-goes-there.txt")).unwrap(),
        b"sent again"
    );
    assert_eq!(fs::read(up.join("d-new.txt")).unwrap(), b"new");
    drop(server);
}

/// Waits until process `pid` has read `bytes` (its first large file is
/// being hashed).
fn reading(pid: u32, bytes: u64) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let io = fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        let read = io
            .lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if read >= bytes {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "the comparison never began"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A folder transfer through the binary, its standard error kept.
fn spawn_cli(args: &[&str]) -> std::process::Child {
    Command::new(common::ferry_bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child`, which must end with status 1 having named `name` as
/// skipped, the one thing it could not copy.
fn fails_naming(child: std::process::Child, name: &str) {
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("skipping {name} (")), "{err}");
    assert!(err.contains("1 could not be copied"), "{err}");
}

fn begun(dir: &std::path::Path) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !dir.join(".a-big.bin.ferry-part").exists() && !dir.join("a-big.bin").exists() {
        assert!(
            std::time::Instant::now() < until,
            "the transfer never began"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
