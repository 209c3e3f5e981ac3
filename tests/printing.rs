//! What the commands print, and how they end when they cannot: the exit
//! statuses the README lists for output that cannot be written, usage
//! errors for values that are not what they claim, the server's banner.

mod common;

use std::fs;
use std::process::Command;

use common::run_cli;

/// Standard output opened on `/dev/full` (every write fails with ENOSPC),
/// or `None` where the system has no such device.
fn full_device() -> Option<std::process::Stdio> {
    fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .ok()
        .map(std::process::Stdio::from)
}

/// Runs ferry with `args`, its standard output the write end of a pipe
/// whose read end is already closed: `(status, stderr)`.
fn to_a_reader_that_left(args: &[&str]) -> (Option<i32>, String) {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = Command::new(common::ferry_bin())
        .args(args)
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Output that cannot be written ends every command as the README's exit
/// statuses say, the version answered before the runtime starts
/// (`src/early.rs`), the completions and the manual included: 141 without
/// a word when the reader left, the error and 1 on a full disk; never a
/// panic.
#[test]
fn output_that_cannot_be_written_ends_every_command_the_same_way() {
    let commands: [&[&str]; 5] = [
        &["--version"],
        &["-V"],
        &["subnet", "10.0.0.0/8"],
        &["completions", "bash"],
        &["man"],
    ];
    for args in commands {
        assert_eq!(
            to_a_reader_that_left(args),
            (Some(141), String::new()),
            "{args:?}"
        );
        let Some(full) = full_device() else {
            common::checked_nothing("the system has no /dev/full");
            continue;
        };
        let out = Command::new(common::ferry_bin())
            .args(args)
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("ferry: writing the "), "{args:?}: {err}");
        assert!(err.contains("No space left"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// A number of seconds that is not one (`nan`, `inf`, negative) is a
/// usage error, where it reached a conversion that panics.
#[test]
fn seconds_that_are_not_a_number_of_seconds_are_a_usage_error() {
    let commands: [&[&str]; 5] = [
        &["time", "127.0.0.1:9", "--timeout", "nan"],
        &["time", "127.0.0.1:9", "--timeout", "inf"],
        &["discover", "--to", "127.0.0.1", "--timeout", "NaN"],
        &["discover", "--to", "127.0.0.1", "--timeout=-1"],
        &["discover", "--to", "127.0.0.1", "--watch", "--for", "nan"],
    ];
    for args in commands {
        let (code, _, err) = run_cli(args, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("a number of seconds"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// The start-up banner's example commands are offered "from another
/// machine" only when one could reach the server: on loopback alone it
/// says so.
#[test]
fn the_banner_does_not_offer_loopback_to_other_machines() {
    use std::io::{BufRead, BufReader};
    let root = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::ferry_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--no-discovery"])
        .arg(root.path())
        .env("FERRY_STATE_DIR", root.path().join(".state"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let offer = lines
        .map(|l| l.unwrap_or_default())
        .find(|l| l.ends_with("try:"))
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(offer, "listening on loopback only; from this machine, try:");
}
