//! Folder transfers run again, as rsync and croc users expect: the copy
//! lands in the same place, files with the same bytes are skipped,
//! interrupted ones resume, and nothing that differs is replaced without
//! `--force`. Through the real binary, both directions.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ferry_bin, run_cli, spawn_bin_server};

/// Runs the client in `cwd`; (exit code, stdout, stderr).
fn run_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    run_in_with(cwd, args, &[])
}

/// [`run_in`] with `env` set.
fn run_in_with(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(ferry_bin())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .env_remove("FERRY_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    common::outcome(out)
}

/// The `--json` report's lines as (path, resumed_from, unchanged).
fn reports(json: &str) -> Vec<(String, u64, bool)> {
    let v: serde_json::Value = serde_json::from_str(json).expect(json);
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["resumed_from"].as_u64().unwrap(),
                r["unchanged"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn tree(top: &Path) {
    fs::create_dir_all(top.join("sub")).unwrap();
    fs::write(top.join("a.txt"), b"first\n").unwrap();
    fs::write(top.join("sub/b.bin"), pattern(300_000, 1)).unwrap();
}

#[test]
fn get_r_run_again_lands_in_the_same_place_and_skips_what_is_there() {
    let root = tempfile::tempdir().unwrap();
    tree(&root.path().join("bigdir"));
    let srv = spawn_bin_server(root.path(), &[], &[]);
    let here = tempfile::tempdir().unwrap();
    let from = format!("127.0.0.1:{}:/bigdir", srv.port);

    // The destination names the copy, whether or not it is there yet.
    for round in 0..2 {
        let (code, out, err) = run_in(here.path(), &["get", "-r", &from, "bigcopy", "--json"]);
        assert_eq!(code, 0, "round {round}: {err}");
        let r = reports(&out);
        assert_eq!(r.len(), 2, "{out}");
        assert!(r.iter().all(|(_, _, same)| *same == (round == 1)), "{out}");
    }
    let copy = here.path().join("bigcopy");
    assert_eq!(fs::read(copy.join("a.txt")).unwrap(), b"first\n");
    assert!(!copy.join("bigdir").exists(), "a re-run nested the copy");

    // `.` means into the current folder, under the remote name.
    for _ in 0..2 {
        let (code, _, err) = run_in(here.path(), &["get", "-r", &from, "."]);
        assert_eq!(code, 0, "{err}");
    }
    assert_eq!(
        fs::read(here.path().join("bigdir/sub/b.bin")).unwrap(),
        pattern(300_000, 1)
    );
    // As does a trailing slash.
    let (code, _, err) = run_in(here.path(), &["get", "-r", &from, "inside/"]);
    assert_eq!(code, 0, "{err}");
    assert!(here.path().join("inside/bigdir/a.txt").is_file());
    // A link left at the name the copy takes there is not written
    // through, --force or not; a destination that is a link is followed.
    let elsewhere = tempfile::tempdir().unwrap();
    fs::create_dir(here.path().join("linked")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), here.path().join("linked/bigdir")).unwrap();
    let (code, _, err) = run_in(here.path(), &["get", "-r", "--force", &from, "linked/"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    let (code, _, err) = run_in(here.path(), &["get", "-r", &from, "linked/bigdir"]);
    assert_eq!(code, 0, "{err}");
    assert!(elsewhere.path().join("a.txt").is_file());

    // A download cut off leaves its partial file; the re-run resumes it.
    fs::remove_file(copy.join("sub/b.bin")).unwrap();
    fs::write(
        copy.join("sub/.b.bin.ferry-part"),
        &pattern(300_000, 1)[..100_000],
    )
    .unwrap();
    let (code, out, err) = run_in(here.path(), &["get", "-r", &from, "bigcopy", "--json"]);
    assert_eq!(code, 0, "{err}");
    let r = reports(&out);
    let b = r.iter().find(|(p, _, _)| p.ends_with("b.bin")).unwrap();
    assert_eq!((b.1, b.2), (100_000, false), "{out}");
    assert_eq!(
        fs::read(copy.join("sub/b.bin")).unwrap(),
        pattern(300_000, 1)
    );
    assert!(!copy.join("sub/.b.bin.ferry-part").exists());

    // A file that differs is not replaced without --force, and nothing
    // else is written either.
    fs::write(root.path().join("bigdir/a.txt"), b"second\n").unwrap();
    fs::write(root.path().join("bigdir/new.txt"), b"new\n").unwrap();
    let (code, _, err) = run_in(here.path(), &["get", "-r", &from, "bigcopy"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a.txt") && err.contains("--force"), "{err}");
    assert_eq!(fs::read(copy.join("a.txt")).unwrap(), b"first\n");
    assert!(!copy.join("new.txt").exists());
    let (code, _, err) = run_in(here.path(), &["get", "-r", &from, "bigcopy", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::read(copy.join("a.txt")).unwrap(), b"second\n");
    assert_eq!(fs::read(copy.join("new.txt")).unwrap(), b"new\n");
}

#[test]
fn put_r_run_again_lands_in_the_same_place_and_skips_what_is_there() {
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let here = tempfile::tempdir().unwrap();
    tree(&here.path().join("project"));
    let to = |p: &str| format!("127.0.0.1:{}:{p}", srv.port);

    // The README's line, as written, twice; /backup is made on the way.
    for round in 0..2 {
        let (code, out, err) = run_in(
            here.path(),
            &["put", "-r", "./project", &to("/backup/project"), "--json"],
        );
        assert_eq!(code, 0, "round {round}: {err}");
        let r = reports(&out);
        assert_eq!(r.len(), 2, "{out}");
        assert!(r.iter().all(|(_, _, same)| *same == (round == 1)), "{out}");
    }
    let copy = root.path().join("backup/project");
    assert_eq!(fs::read(copy.join("a.txt")).unwrap(), b"first\n");
    assert!(!copy.join("project").exists(), "a re-run nested the copy");

    // A trailing slash puts it inside, under its own name.
    let (code, _, err) = run_in(here.path(), &["put", "-r", "project", &to("/drop/")]);
    assert_eq!(code, 0, "{err}");
    assert!(root.path().join("drop/project/sub/b.bin").is_file());

    // A changed file is refused without --force, and replaced with it.
    fs::write(here.path().join("project/a.txt"), b"changed\n").unwrap();
    let (code, _, err) = run_in(
        here.path(),
        &["put", "-r", "project", &to("/backup/project")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a.txt"), "{err}");
    assert_eq!(fs::read(copy.join("a.txt")).unwrap(), b"first\n");
    let (code, _, err) = run_in(
        here.path(),
        &["put", "-r", "project", &to("/backup/project"), "--force"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::read(copy.join("a.txt")).unwrap(), b"changed\n");
}

/// Polls until `f` holds, for at most `secs`.
fn until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Ctrl-C in the middle of a folder upload (the client killed outright),
/// then the same command at once: not refused as busy, and the file cut
/// off resumes from what the server kept.
#[test]
fn put_r_killed_then_run_again_resumes_at_once() {
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let here = tempfile::tempdir().unwrap();
    let big = pattern(96 << 20, 7);
    fs::create_dir(here.path().join("proj")).unwrap();
    fs::write(here.path().join("proj/big.bin"), &big).unwrap();
    let dest = format!("127.0.0.1:{}:/proj", srv.port);
    let part = root.path().join("proj/.big.bin.ferry-part");

    let mut child = Command::new(ferry_bin())
        .args(["put", "-r", "proj", &dest])
        .current_dir(here.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let cut = until(60, || {
        fs::metadata(&part).is_ok_and(|m| m.len() > (1 << 20))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(cut, "the upload never got going");
    assert!(
        !root.path().join("proj/big.bin").exists(),
        "the upload finished before it could be cut off"
    );

    let (code, out, err) = run_in(here.path(), &["put", "-r", "proj", &dest, "--json"]);
    assert_eq!(code, 0, "{err}");
    let r = reports(&out);
    assert!(r[0].1 > 0, "did not resume: {out}");
    assert!(fs::read(root.path().join("proj/big.bin")).unwrap() == big);
    assert!(!part.exists());
    // One more time: nothing to send.
    let (code, _, err) = run_cli(
        &[
            "put",
            "-r",
            here.path().join("proj").to_str().unwrap(),
            &dest,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 unchanged"), "{err}");
}

/// A local file where the server has a folder stops `get -r` before
/// anything is written.
#[test]
fn get_r_checks_for_files_in_the_way_of_folders_first() {
    let root = tempfile::tempdir().unwrap();
    tree(&root.path().join("t"));
    let srv = spawn_bin_server(root.path(), &[], &[]);
    let here = tempfile::tempdir().unwrap();
    fs::create_dir(here.path().join("copy")).unwrap();
    fs::write(here.path().join("copy/sub"), "a file, not a folder").unwrap();
    let from = format!("127.0.0.1:{}:/t", srv.port);
    let (code, _, err) = run_in(here.path(), &["get", "-r", &from, "copy"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in the way"), "{err}");
    assert!(
        !here.path().join("copy/a.txt").exists(),
        "written before failing"
    );
}

/// A FIFO given as the file to send, where the server holds an empty file
/// of that name: refused as not a regular file, without waiting on it.
#[test]
fn put_of_a_fifo_is_refused_at_once() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("f"), "").unwrap();
    let srv = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let here = tempfile::tempdir().unwrap();
    nix::unistd::mkfifo(
        &here.path().join("f"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let started = Instant::now();
    let (code, _, err) = run_in(
        here.path(),
        &["put", "--force", "f", &format!("127.0.0.1:{}:/f", srv.port)],
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a regular file"), "{err}");
}

/// A file uploaded once is not read again to be uploaded again: its digest
/// is remembered on this machine (`FERRY_DIGESTS`), and is only a claim the
/// server checks. One that does not match the bytes (a file written
/// through a memory mapping keeps its times) is refused, nothing of it is
/// kept, and it is forgotten: the upload goes once more, hashed. Whether a
/// file is the same as the server's copy is never taken from it.
#[test]
fn a_remembered_digest_spares_hashing_and_the_server_still_checks_it() {
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let here = tempfile::tempdir().unwrap();
    let src = here.path().join("big.bin");
    let bytes = pattern(3_000_000, 7);
    fs::write(&src, &bytes).unwrap();
    let cache = here.path().join("cache/digests");
    let env = [("FERRY_DIGESTS", cache.to_str().unwrap())];
    let to = format!("127.0.0.1:{}:/big.bin", srv.port);
    let hex = blake3::hash(&bytes).to_hex().to_string();
    // Settled: a file changed in the last two seconds is not remembered.
    std::thread::sleep(Duration::from_millis(2200));
    let (code, _, err) = run_cli(&["put", src.to_str().unwrap(), &to], &env);
    assert_eq!(code, 0, "{err}");
    let kept = fs::read_to_string(&cache).unwrap();
    assert_eq!(kept.lines().count(), 1, "{kept}");
    assert!(kept.ends_with(&format!(" blake3 {hex}\n")), "{kept}");

    // The remembered digest made wrong: the server takes the bytes, finds
    // they do not match it and keeps nothing; the client forgets it and
    // sends the file once more, hashed, and that lands.
    fs::write(&cache, kept.replace(&hex, &"0".repeat(64))).unwrap();
    fs::write(root.path().join("big.bin"), b"older").unwrap();
    let (code, _, err) = run_cli(&["put", "--force", src.to_str().unwrap(), &to], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(fs::read(root.path().join("big.bin")).unwrap(), bytes);
    assert!(!root.path().join(".big.bin.ferry-part").exists());
    let kept = fs::read_to_string(&cache).unwrap();
    assert!(kept.contains(" blake3 -\n"), "offered and refused: {kept}");
    assert!(kept.ends_with(&format!(" blake3 {hex}\n")), "{kept}");

    // The same as the server's copy: the file itself is hashed for that,
    // whatever is remembered.
    fs::write(&cache, kept.replace(&hex, &"1".repeat(64))).unwrap();
    let (code, out, err) = run_cli(&["put", "--json", src.to_str().unwrap(), &to], &env);
    assert_eq!(code, 0, "{err}");
    assert!(reports(&out)[0].2, "{out}");

    // Kept by default in the home's cache folder; a relative
    // XDG_CACHE_HOME is passed over, as the XDG rules say.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(ferry_bin())
        .args(["put", src.to_str().unwrap(), &to])
        .current_dir(here.path())
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_DIGESTS")
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", "relative")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let kept = fs::read_to_string(home.path().join(".cache/ferry/digests")).unwrap();
    assert!(kept.ends_with(&format!(" blake3 {hex}\n")), "{kept}");
    assert!(!here.path().join("relative").exists());
}

/// Ctrl-C (or SIGTERM, or SIGHUP as the terminal closes) in the middle of
/// a download: the command stops where it is, says so, and dies by the
/// signal, as the shell expects; the partial file keeps what arrived and
/// holds no disk past it (what was claimed ahead of the bytes is given
/// back); the same command resumes.
/// Over plain TCP (bytes spliced into the file) and TLS (through the disk
/// thread).
#[test]
fn ctrl_c_stops_a_download_and_leaves_its_partial_file_in_order() {
    use nix::sys::signal::Signal;
    let root = tempfile::tempdir().unwrap();
    let big = common::noise(64 << 20, 11);
    fs::write(root.path().join("big.bin"), &big).unwrap();
    let plain = spawn_bin_server(root.path(), &[], &[]);
    let tls = spawn_bin_server(root.path(), &["--tls"], &[]);
    let fp = common::tls::openssl_fingerprint(&common::tls::cert_of(&tls));
    let here = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let known = home.path().join("known_hosts");
    let env = [("FERRY_KNOWN_HOSTS", known.to_str().unwrap())];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let with_fp = ["--fingerprint", fp.as_str()];
    for (srv, extra, sig) in [
        (&plain, &[][..], Signal::SIGINT),
        (&plain, &[][..], Signal::SIGTERM),
        (&plain, &[][..], Signal::SIGHUP),
        (&tls, &with_fp[..], Signal::SIGINT),
    ] {
        let via = slow_proxy(&rt, srv.port);
        let from = format!("{via}:/big.bin");
        let args = [&["get", &from, "big.bin"][..], extra].concat();
        interrupt_download(here.path(), &args, &env, sig, big.len() as u64);
    }
    let from = format!("127.0.0.1:{}:/big.bin", tls.port);
    let args = [&["get", &from, "big.bin", "--json"][..], &with_fp[..]].concat();
    let (code, out, err) = run_in_with(here.path(), &args, &env);
    assert_eq!(code, 0, "{err}");
    assert!(reports(&out)[0].1 > 10 << 20, "did not resume: {out}");
    assert!(fs::read(here.path().join("big.bin")).unwrap() == big);
    assert!(!here.path().join(".big.bin.ferry-part").exists());
}

/// Runs `ferry ARGS` in `cwd` (a download of `size` bytes to `big.bin`),
/// sends it `sig` once 10 MiB arrived, and checks how it stopped.
fn interrupt_download(
    cwd: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    sig: nix::sys::signal::Signal,
    size: u64,
) {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::ExitStatusExt;
    let part = cwd.join(".big.bin.ferry-part");
    let _ = fs::remove_file(&part);
    let mut cmd = Command::new(ferry_bin());
    cmd.args(args).envs(env.iter().copied());
    let (going, out) = signalled_at(cmd, (cwd, &part), 10 << 20, sig);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(going, "the download never got going: {err}");
    assert_eq!(out.status.signal(), Some(sig as i32), "{sig}: {err}");
    assert!(err.contains("interrupted after"), "{sig}: {err}");
    let m = fs::metadata(&part).expect("the partial file is kept");
    assert!(m.len() < size, "finished before {sig}");
    assert!(
        m.blocks() * 512 < m.len() + (1 << 20),
        "{sig}: {} bytes held for {} received",
        m.blocks() * 512,
        m.len()
    );
    assert!(!cwd.join("big.bin").exists());
}

/// A `get` started with SIGINT ignored (a script's `trap '' INT`, a
/// background job of a script) leaves it ignored: Ctrl-C at the terminal
/// is not for it, and the download goes on to the end.
#[test]
fn a_sigint_its_parent_ignored_does_not_stop_a_download() {
    use nix::sys::signal::Signal;
    use std::os::unix::process::ExitStatusExt;
    let root = tempfile::tempdir().unwrap();
    let big = common::noise(32 << 20, 12);
    fs::write(root.path().join("big.bin"), &big).unwrap();
    let srv = spawn_bin_server(root.path(), &[], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let via = slow_proxy(&rt, srv.port);
    let here = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "trap '' INT; exec \"$0\" get \"$1\" big.bin"])
        .args([ferry_bin(), &format!("{via}:/big.bin")]);
    let part = here.path().join(".big.bin.ferry-part");
    let (going, out) = signalled_at(cmd, (here.path(), &part), 4 << 20, Signal::SIGINT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(going, "the download never got going: {err}");
    assert_eq!(out.status.signal(), None, "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(fs::read(here.path().join("big.bin")).unwrap() == big);
}

/// A proxy in front of the server on `port` that passes 8 MiB a second
/// each way: slow enough for a transfer to be caught in the middle.
fn slow_proxy(rt: &tokio::runtime::Runtime, port: u16) -> std::net::SocketAddr {
    rt.block_on(common::proxy(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        common::ProxyPlan {
            cut_up_after: None,
            cut_down_after: None,
            up_rate: Some(8 << 20),
            down_rate: Some(8 << 20),
        },
    ))
}

/// Ctrl-C in the middle of an upload: the command stops where it is,
/// says how far it got and dies by the signal; the server keeps what
/// arrived, and the same command resumes from it.
#[test]
fn ctrl_c_stops_an_upload_and_the_same_command_resumes() {
    use nix::sys::signal::Signal;
    use std::os::unix::process::ExitStatusExt;
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(root.path(), &["--allow-upload"], &[]);
    let here = tempfile::tempdir().unwrap();
    let big = common::noise(48 << 20, 13);
    fs::write(here.path().join("big.bin"), &big).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let via = slow_proxy(&rt, srv.port);
    let mut cmd = Command::new(ferry_bin());
    cmd.args(["put", "big.bin", &format!("{via}:/big.bin")]);
    let part = root.path().join(".big.bin.ferry-part");
    let (going, out) = signalled_at(cmd, (here.path(), &part), 8 << 20, Signal::SIGINT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(going, "the upload never got going: {err}");
    assert_eq!(out.status.signal(), Some(Signal::SIGINT as i32), "{err}");
    assert!(err.contains("interrupted after"), "{err}");
    assert!(!root.path().join("big.bin").exists());
    let to = format!("127.0.0.1:{}:/big.bin", srv.port);
    let (code, out, err) = run_in(here.path(), &["put", "big.bin", &to, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(reports(&out)[0].1 > 8 << 20, "did not resume: {out}");
    assert!(fs::read(root.path().join("big.bin")).unwrap() == big);
}

/// Runs `cmd` in `cwd` and sends it `sig` once the partial file `part`
/// holds more than `after` bytes: whether it got that far, and how the
/// command ended.
fn signalled_at(
    mut cmd: Command,
    (cwd, part): (&Path, &Path),
    after: u64,
    sig: nix::sys::signal::Signal,
) -> (bool, std::process::Output) {
    let child = cmd
        .current_dir(cwd)
        .env_remove("FERRY_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let going = until(60, || fs::metadata(part).is_ok_and(|m| m.len() > after));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, sig).unwrap();
    (going, child.wait_with_output().unwrap())
}
