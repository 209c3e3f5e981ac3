//! The real binary: `ferry serve` and every client command, their output,
//! their exit codes, and shutdown on SIGTERM.

mod common;

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::process::Command;

use common::{partial_files, run_cli, sha256_file, spawn_bin_server};

#[test]
fn every_command_through_the_binary() {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    let mut server = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let host = format!("127.0.0.1:{}", server.port);
    let at = |p: &str| format!("{host}:{p}");

    let (rc, out, _) = run_cli(&["ls", &host], &[]);
    assert_eq!(rc, 0);
    assert!(out.contains("hello.txt"), "{out}");
    let (rc, out, _) = run_cli(&["ls", &host, "--json"], &[]);
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "hello.txt");
    assert_eq!(v[0]["size"], 6);
    let (rc, out, _) = run_cli(&["stat", &at("/hello.txt"), "--json"], &[]);
    assert_eq!(rc, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["kind"],
        "file"
    );

    // get into a folder, then refuse to overwrite, then --force.
    let dir = local.path().to_str().unwrap();
    assert_eq!(run_cli(&["get", &at("/hello.txt"), dir], &[]).0, 0);
    assert_eq!(
        fs::read(local.path().join("hello.txt")).unwrap(),
        b"hello\n"
    );
    // Again: the same bytes are there already, so nothing is fetched.
    let (rc, _, err) = run_cli(&["get", &at("/hello.txt"), dir], &[]);
    assert_eq!(rc, 0, "{err}");
    assert!(err.contains("1 unchanged"), "{err}");
    // A different file there is not replaced without --force.
    fs::write(local.path().join("hello.txt"), b"mine\n").unwrap();
    let (rc, _, err) = run_cli(&["get", &at("/hello.txt"), dir], &[]);
    assert_eq!(rc, 1);
    assert!(err.contains("exists"), "{err}");
    assert_eq!(
        run_cli(&["get", "--force", &at("/hello.txt"), dir], &[]).0,
        0
    );
    // Not even --force replaces a FIFO (or a device) with a file.
    let fifo = local.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (rc, _, err) = run_cli(
        &["get", "--force", &at("/hello.txt"), fifo.to_str().unwrap()],
        &[],
    );
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("a FIFO is there"), "{err}");
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    // Without --force, no hint to use it; and a link to a device (as
    // /dev/stdout is) is not replaced either.
    let (rc, _, err) = run_cli(&["get", &at("/hello.txt"), fifo.to_str().unwrap()], &[]);
    assert_eq!(rc, 1, "{err}");
    assert!(
        err.contains("a FIFO is there") && !err.contains("--force"),
        "{err}"
    );
    let link = local.path().join("null");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    let (rc, _, err) = run_cli(
        &["get", "--force", &at("/hello.txt"), link.to_str().unwrap()],
        &[],
    );
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("a device is there"), "{err}");
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
    fs::remove_file(&fifo).unwrap();
    fs::remove_file(&link).unwrap();

    // put several files into a folder; mkdir, mv, rm.
    fs::write(local.path().join("a"), b"A").unwrap();
    fs::write(local.path().join("b"), b"B").unwrap();
    assert_eq!(run_cli(&["mkdir", "-p", &at("/in/box")], &[]).0, 0);
    let (a, b) = (local.path().join("a"), local.path().join("b"));
    let (rc, out, err) = run_cli(
        &[
            "put",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            &at("/in/box"),
            "--json",
        ],
        &[],
    );
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(fs::read(root.path().join("in/box/b")).unwrap(), b"B");
    assert_eq!(run_cli(&["mv", &at("/in/box/a"), "/in/a2"], &[]).0, 0);
    assert!(root.path().join("in/a2").exists());
    assert_eq!(run_cli(&["rm", &at("/in")], &[]).0, 1);
    assert_eq!(run_cli(&["rm", "-r", &at("/in")], &[]).0, 0);
    assert!(!root.path().join("in").exists());

    // Folders both ways.
    let tree = local.path().join("tree");
    fs::create_dir_all(tree.join("x/y")).unwrap();
    fs::write(tree.join("x/y/z.txt"), b"zzz").unwrap();
    fs::write(tree.join("top.txt"), b"top").unwrap();
    let (rc, _, err) = run_cli(&["put", tree.to_str().unwrap(), &host], &[]);
    assert_eq!(rc, 1);
    assert!(err.contains("-r"), "{err}");
    assert_eq!(
        run_cli(&["put", "-r", tree.to_str().unwrap(), &host], &[]).0,
        0
    );
    assert_eq!(
        fs::read(root.path().join("tree/x/y/z.txt")).unwrap(),
        b"zzz"
    );
    let back = local.path().join("back");
    assert_eq!(
        run_cli(&["get", "-r", &at("/tree"), back.to_str().unwrap()], &[]).0,
        0
    );
    assert_eq!(
        sha256_file(&back.join("x/y/z.txt")),
        sha256_file(&tree.join("x/y/z.txt"))
    );
    assert_eq!(fs::read(back.join("top.txt")).unwrap(), b"top");
    let (rc, _, err) = run_cli(&["get", &at("/tree"), back.to_str().unwrap()], &[]);
    assert_eq!(rc, 1);
    assert!(err.contains("use -r"), "{err}");

    // Exit codes: refused 1, unreachable 255, usage 2.
    assert_eq!(run_cli(&["stat", &at("/nope")], &[]).0, 1);
    let (rc, _, err) = run_cli(&["ls", "127.0.0.1:1"], &[]);
    assert_eq!(rc, 255, "{err}");
    assert_eq!(run_cli(&["ls"], &[]).0, 2);
    assert_eq!(
        run_cli(&["serve", "--token", "x"], &[]).0,
        2,
        "a token flag must not exist"
    );

    // SIGTERM: a clean, prompt exit with nothing left behind.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let log = server.stderr.join().unwrap();
    assert!(log.contains("stopped"), "{log}");
    assert!(partial_files(root.path()).is_empty());
}

#[test]
fn tokens_come_from_the_environment_and_never_reach_the_log() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("f"), b"f").unwrap();
    let token = "env-token-abcdef-123";
    let mut server = spawn_bin_server(
        root.path(),
        &["--private", "--allow-upload"],
        &[("FERRY_TOKEN", token), ("RUST_LOG", "debug")],
    );
    let host = format!("127.0.0.1:{}", server.port);
    let (rc, _, err) = run_cli(&["ls", &host], &[]);
    assert_eq!(rc, 1);
    assert!(err.contains("FERRY_TOKEN"), "{err}");
    let (rc, _, err) = run_cli(&["ls", &host], &[("FERRY_TOKEN", "wrong-token-0000")]);
    assert_eq!(rc, 1);
    assert!(err.contains("auth_failed"), "{err}");
    let (rc, out, _) = run_cli(&["ls", &host], &[("FERRY_TOKEN", token)]);
    assert_eq!(rc, 0);
    assert!(out.contains(" f"), "{out}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let log = server.stderr.join().unwrap();
    assert!(!log.contains(token), "the token reached the log");
    assert!(
        !log.contains("wrong-token-0000"),
        "a guessed token reached the log"
    );
    assert!(log.contains("wrong token"), "{log}");
}

#[test]
fn help_teaches_addresses_and_exit_codes() {
    let (rc, out, _) = run_cli(&["--help"], &[]);
    assert_eq!(rc, 0);
    for needle in ["HOST:PORT:/PATH", "EXIT STATUS", "255", "FERRY_TOKEN"] {
        assert!(out.contains(needle), "--help lacks {needle}");
    }
    let (rc, out, _) = run_cli(&["serve", "--help"], &[]);
    assert_eq!(rc, 0);
    for needle in [
        "--listen",
        "--allow-upload",
        "--allow-all",
        "FERRY_MAX_PER_IP",
    ] {
        assert!(out.contains(needle), "serve --help lacks {needle}");
    }
}

#[test]
fn a_config_file_sets_options_and_the_token_and_logs_stay_escaped() {
    let root = tempfile::tempdir().unwrap();
    let conf_dir = tempfile::tempdir().unwrap();
    let token_file = conf_dir.path().join("token");
    fs::write(&token_file, "file-token-xyz-789\n").unwrap();
    let conf = conf_dir.path().join("ferry.toml");
    fs::write(
        &conf,
        format!(
            "allow_upload = true\nprivate = true\ntoken_file = {:?}\n",
            token_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut server = spawn_bin_server(root.path(), &["--config", conf.to_str().unwrap()], &[]);
    let host = format!("127.0.0.1:{}", server.port);
    let env = [("FERRY_TOKEN", "file-token-xyz-789")];
    assert_eq!(
        run_cli(&["ls", &host], &[]).0,
        1,
        "private: no token, no listing"
    );
    assert_eq!(run_cli(&["mkdir", &format!("{host}:/made")], &env).0, 0);
    assert!(root.path().join("made").is_dir());
    // Peer-controlled text reaches the log escaped, never raw.
    let evil = format!("{host}:/\u{1b}[31mred\u{7}");
    assert_eq!(run_cli(&["stat", &evil], &env).0, 1);
    // SIGTERM, not KILL: the log is written by its own thread, and a
    // clean exit is what flushes it.
    assert!(
        Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    server.child.wait().unwrap();
    let log = server.stderr.join().unwrap();
    assert!(log.contains("\\u{1b}[31mred"), "{log}");
    assert!(
        !log.contains('\u{1b}') && !log.contains('\u{7}'),
        "raw control characters in the log"
    );
    assert!(!log.contains("file-token-xyz-789"));

    let bad = conf_dir.path().join("bad.toml");
    fs::write(&bad, "no_such_key = 1\n").unwrap();
    let (rc, _, err) = run_cli(&["serve", "--config", bad.to_str().unwrap()], &[]);
    assert_eq!(rc, 2);
    assert!(
        err.contains("no_such_key") || err.contains("unknown field"),
        "{err}"
    );
}

#[test]
fn switches_from_the_environment_take_the_usual_spellings() {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("f.txt");
    fs::write(&file, b"x").unwrap();
    // "1" and "yes" switch on, "0" and "off" switch off.
    for (value, allowed) in [("1", true), ("yes", true), ("0", false), ("off", false)] {
        let mut server = spawn_bin_server(root.path(), &[], &[("FERRY_ALLOW_UPLOAD", value)]);
        let dest = format!("127.0.0.1:{}:/{value}.txt", server.port);
        let (rc, _, err) = run_cli(&["put", file.to_str().unwrap(), &dest], &[]);
        assert_eq!(rc == 0, allowed, "FERRY_ALLOW_UPLOAD={value}: {err}");
        let _ = server.child.kill();
        let _ = server.child.wait();
    }
    // Anything else is a usage error, not silently off.
    let out = Command::new(common::ferry_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg(root.path())
        .env("FERRY_TLS", "maybe")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("maybe"));
    let (rc, _, err) = run_cli(&["ping", "127.0.0.1:9"], &[("FERRY_TLS", "maybe")]);
    assert_eq!(rc, 2, "{err}");
}

/// `ferry ls HOST | head -1` and `ferry get HOST:/FILE - | head -c 10`:
/// once the reader of its output has gone, the command ends quietly with
/// the status of a command stopped by SIGPIPE, not with a panic and a
/// backtrace, nor as a failure of its own.
#[test]
fn a_closed_pipe_on_stdout_ends_a_listing_quietly() {
    use std::io::{BufRead, BufReader};
    let root = tempfile::tempdir().unwrap();
    for i in 0..3000 {
        fs::write(root.path().join(format!("f{i:04}.txt")), b"x").unwrap();
    }
    let server = spawn_bin_server(root.path(), &[], &[]);
    let host = format!("127.0.0.1:{}", server.port);
    let spawn = |args: &[&str]| {
        std::process::Command::new(common::ferry_bin())
            .args(args)
            .env_remove("FERRY_TOKEN")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = spawn(&["ls", &host]);
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("f0000.txt"), "{first}");
    // The pipe's reading end is closed here.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");

    use std::io::Read;
    fs::write(root.path().join("big.bin"), common::noise(8 << 20, 5)).unwrap();
    let mut child = spawn(&["get", &format!("{host}:/big.bin"), "-"]);
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), err.as_ref()), (Some(141), ""));
}

#[test]
fn the_version_alone_is_answered_as_with_any_other_arguments() {
    let want = format!("ferry {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["--version"][..], &["-V"], &["-V", "--help"]] {
        let (code, out, err) = run_cli(args, &[]);
        assert_eq!((code, out.as_str()), (0, want.as_str()), "{args:?}: {err}");
    }
}

/// The four C maths functions the binary calls are linked in
/// (`src/mathlib.rs`): no command loads `libm.so.6`.
#[test]
fn the_maths_library_is_linked_in_not_loaded() {
    let root = tempfile::tempdir().unwrap();
    let server = spawn_bin_server(root.path(), &[], &[]);
    let maps = fs::read_to_string(format!("/proc/{}/maps", server.child.id())).unwrap();
    assert!(maps.contains("libc.so"), "{maps}");
    assert!(!maps.contains("libm.so"), "{maps}");
}

/// The unwinder is linked in, not loaded (`libgcc_s.so.1` costs every
/// start its mapping and a constructor that probes the processor), and
/// panics still unwind: this test's own catch, and the binary's.
#[test]
fn the_unwinder_is_linked_in_and_panics_still_unwind() {
    let archive = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !std::path::Path::new(&archive).is_absolute() {
        common::checked_nothing("the C compiler has no libgcc_eh.a");
        return;
    }
    let caught = std::panic::catch_unwind(|| panic!("unwound"));
    assert!(caught.is_err());
    let own = fs::read_to_string("/proc/self/maps").unwrap();
    assert!(!own.contains("libgcc_s"), "{own}");
    let root = tempfile::tempdir().unwrap();
    let server = spawn_bin_server(root.path(), &[], &[]);
    let maps = fs::read_to_string(format!("/proc/{}/maps", server.child.id())).unwrap();
    assert!(maps.contains("libc.so"), "{maps}");
    assert!(!maps.contains("libgcc_s"), "{maps}");
}

#[test]
fn kernel_files_are_sent_whole_and_never_served() {
    // /proc/self/cmdline reports 0 bytes and reads as the reader's own
    // arguments: the upload must carry those, not an empty file.
    let root = tempfile::tempdir().unwrap();
    let server = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let to = format!("127.0.0.1:{}:/cmdline", server.port);
    let (rc, _, err) = run_cli(&["put", "/proc/self/cmdline", &to], &[]);
    assert_eq!(rc, 0, "{err}");
    let got = fs::read(root.path().join("cmdline")).unwrap();
    let want = format!("\0put\0/proc/self/cmdline\0{to}\0");
    assert!(got.ends_with(want.as_bytes()), "{got:?}");
    // One that reads as the whole address space is refused, not spooled
    // until the disk is full.
    let (rc, _, err) = run_cli(&["put", "/proc/self/pagemap", &to], &[]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("more than 64 MiB"), "{err}");
    drop(server);

    // A server whose folder holds kernel files refuses to send them,
    // where it would announce 0 bytes and send an empty file.
    let server = spawn_bin_server(std::path::Path::new("/proc/self"), &[], &[]);
    let local = tempfile::tempdir().unwrap();
    let from = format!("127.0.0.1:{}:/status", server.port);
    let dest = local.path().join("status");
    let (rc, _, err) = run_cli(&["get", &from, dest.to_str().unwrap()], &[]);
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("kernel file"), "{err}");
    assert!(!dest.exists());
    assert!(partial_files(local.path()).is_empty());
}

/// mimalloc, the server's allocator, starts with `ferry serve` and not
/// as the program loads: a client command pays nothing for it. Its start
/// is where it reads its options, so asking it to print them shows
/// whether it ran.
#[test]
fn mimalloc_starts_for_the_server_alone() {
    use std::io::{BufRead, BufReader};
    // C flags of the builder's own take the place of the project's (see
    // .cargo/config.toml), and mimalloc then starts as the program loads.
    let ours = "-DMI_PRIM_HAS_PROCESS_ATTACH";
    let theirs = [
        "CFLAGS_x86_64_unknown_linux_gnu",
        "CFLAGS_x86_64-unknown-linux-gnu",
        "TARGET_CFLAGS",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
        || std::env::var("CFLAGS").is_ok_and(|v| v != ours);
    if theirs {
        common::checked_nothing("built with C flags of the builder's own");
        return;
    }
    for args in [&["--version"][..], &["subnet", "10.0.0.0/8"]] {
        let out = Command::new(common::ferry_bin())
            .args(args)
            .env("MIMALLOC_VERBOSE", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(!err.contains("mimalloc"), "{args:?}: {err}");
    }
    let root = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::ferry_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--no-discovery"])
        .arg(root.path())
        .env("MIMALLOC_VERBOSE", "1")
        .env("FERRY_STATE_DIR", root.path().join(".state"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .next()
        .map(|l| l.unwrap_or_default())
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.starts_with("mimalloc: "), "{first}");
}

/// The binary is linked at a fixed address (build.rs): its pointers are
/// final in the file, with none for the loader to write at each start.
/// `FERRY_PIE=1` at build time asks for a position-independent one.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_binary_is_linked_at_a_fixed_address() {
    let elf = std::fs::read(common::ferry_bin()).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    // e_type, little-endian at offset 16: 2 is an executable at a fixed
    // address, 3 a shared object (which a position-independent
    // executable is).
    let kind = u16::from_le_bytes([elf[16], elf[17]]);
    let expected = if option_env!("FERRY_PIE") == Some("1") {
        3
    } else {
        2
    };
    assert_eq!(kind, expected);
}
