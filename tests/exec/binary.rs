//! Through the ferry binary: the remote status and the shell.

use super::*;

#[test]
fn the_cli_exits_with_the_remote_status() {
    let root = tempfile::tempdir().unwrap();
    let mut srv = bin_server(root.path());
    let host = format!("127.0.0.1:{}", srv.port);
    let env = [("FERRY_TOKEN", TOKEN)];
    let cases: &[(&[&str], i32)] = &[
        (&["--", "sh", "-c", "exit 42"], 42),
        (&["--", "sh", "-c", "kill -TERM $$"], 143),
        (&["--", "no-such-command-anywhere"], 127),
        (&["--timeout", "1", "--", "sleep", "30"], 124),
        (&["--shell", "exit 3"], 3),
        (&["--", "true"], 0),
        // As with ssh, no `--` is needed: the command's own flags are its.
        (&["sh", "-c", "exit 42"], 42),
        (&["--timeout", "1", "sleep", "30"], 124),
        (&["-n", "test", "-n", "x"], 0),
        (&["test", "-z", "x"], 1),
    ];
    for (args, want) in cases {
        let mut all = vec!["exec", host.as_str()];
        all.extend_from_slice(args);
        let (code, _, err) = run_cli(&all, &env);
        assert_eq!(code, *want, "{args:?}: {err}");
    }
    let (code, out, err) = run_cli(&["exec", &host, "echo", "-n", "--x", "-t"], &env);
    assert_eq!((code, out.as_str()), (0, "--x -t"), "{err}");
    // ferry's own failures: 255.
    let (code, _, err) = run_cli(&["exec", &host, "--", "true"], &[]);
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("FERRY_TOKEN"), "{err}");
    let (code, _, _) = run_cli(&["exec", "127.0.0.1:1", "--", "true"], &env);
    assert_eq!(code, 255);
    // stdout and stderr apart, stdin forwarded.
    let mut child = Command::new(ferry_bin())
        .args(["exec", &host, "--", "sh", "-c", "wc -c; echo oops >&2"])
        .env("FERRY_TOKEN", TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"hello").unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    let _ = srv.child.kill();
    let _ = srv.child.wait();
}

/// The remote command's output that cannot be written here ends the
/// command as every other ends then: 141 without a word when the reader
/// stopped reading, ferry's own failure (255) with the error on a full
/// disk; never a success with the output lost.
#[test]
fn output_that_cannot_be_written_here_is_not_a_success() {
    let root = tempfile::tempdir().unwrap();
    let mut srv = bin_server(root.path());
    let host = format!("127.0.0.1:{}", srv.port);
    let args = [
        "exec",
        host.as_str(),
        "--",
        "head",
        "-c",
        "300000",
        "/dev/zero",
    ];
    let run_into = |stdout: Stdio| {
        let out = Command::new(ferry_bin())
            .args(args)
            .env("FERRY_TOKEN", TOKEN)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    assert_eq!(run_into(Stdio::from(write)), (Some(141), String::new()));
    if let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
        let (code, err) = run_into(Stdio::from(full));
        assert_eq!(code, Some(255), "{err}");
        assert!(err.contains("writing the output: No space left"), "{err}");
    } else {
        common::checked_nothing("the system has no /dev/full");
    }
    // Output written in full is the command's status, as before.
    let (code, out, err) = run_cli(&args, &[("FERRY_TOKEN", TOKEN)]);
    assert_eq!((code, out.len()), (0, 300_000), "{err}");
    let _ = srv.child.kill();
    let _ = srv.child.wait();
}

#[test]
fn allow_exec_without_a_token_refuses_to_start() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(ferry_bin())
        .args(["serve", root.path().to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--allow-exec"])
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_TOKEN_FILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-exec needs a token"));
}

/// `ferry shell` with its stdin not a terminal is one `/bin/sh` session
/// reading its commands from it, as `ssh HOST < script` is: status,
/// variables and `cd` hold from line to line, and the exit status is the
/// shell's. (On a terminal, see tests/terminal.rs.)
#[test]
fn the_shell_with_piped_stdin_is_one_session() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    let mut srv = bin_server(root.path());
    let host = format!("127.0.0.1:{}", srv.port);
    let mut child = Command::new(ferry_bin())
        .args(["shell", &host])
        .env("FERRY_TOKEN", TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(
        &mut stdin,
        b"echo hi | tr a-z A-Z\nfalse; echo \"st=$?\"\nX=42\ncd sub\necho \"x=$X in ${PWD##*/}\"\nexit 3\n",
    )
    .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(3), "stdout: {o}\nstderr: {e}");
    assert_eq!(o, "HI\nst=1\nx=42 in sub\n");
    let _ = srv.child.kill();
    let _ = srv.child.wait();
}
