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
    ];
    for (args, want) in cases {
        let mut all = vec!["exec", host.as_str()];
        all.extend_from_slice(args);
        let (code, _, err) = run_cli(&all, &env);
        assert_eq!(code, *want, "{args:?}: {err}");
    }
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

#[test]
fn the_shell_runs_lines_shows_failures_and_survives_ctrl_c() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    let mut srv = bin_server(root.path());
    let host = format!("127.0.0.1:{}", srv.port);
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(ferry_bin())
        .args(["shell", &host])
        .env("FERRY_TOKEN", TOKEN)
        .env("XDG_STATE_HOME", state.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let write = |stdin: &mut std::process::ChildStdin, s: &str| {
        std::io::Write::write_all(stdin, s.as_bytes()).unwrap();
        std::io::Write::flush(stdin).unwrap();
    };
    write(&mut stdin, "echo hi | tr a-z A-Z\nfalse\ncd sub\npwd\n");
    write(&mut stdin, "sleep 30; echo not-reached\n");
    // Ctrl-C while sleep runs: the command stops, the shell goes on.
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    nix_kill(child.id() as i32);
    write(&mut stdin, "echo next\nexit 3\n");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(3), "stdout: {o}\nstderr: {e}");
    assert!(o.contains("HI\n"), "{o}");
    assert!(e.contains("[exit 1]"), "{e}");
    assert!(o.contains("/sub\n"), "{o}");
    assert!(!o.contains("not-reached"), "{o}");
    assert!(e.contains("[interrupted]"), "{e}");
    assert!(o.contains("next\n"), "{o}");
    assert!(state.path().join("ferry/shell_history").exists());
    let _ = srv.child.kill();
    let _ = srv.child.wait();
}
