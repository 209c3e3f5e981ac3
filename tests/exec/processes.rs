//! What a command does: exit codes, output, stdin, timeouts, its group.

use super::*;

#[tokio::test]
async fn exit_codes_and_signals_propagate() {
    let s = exec_server(|_| {}).await;
    let mut c = authed(&s).await;
    for code in [0, 1, 42, 255] {
        let r = run(&mut c, &sh(&format!("exit {code}"))).await;
        assert_eq!(r.report.code, Some(code));
        assert_eq!(r.report.status(), code as u8);
    }
    let r = run(&mut c, &sh("kill -TERM $$")).await;
    assert_eq!(r.report.signal, Some(15));
    assert_eq!(r.report.code, None);
    assert_eq!(r.report.status(), 143);
}

#[tokio::test]
async fn stdout_and_stderr_stay_apart() {
    let s = exec_server(|_| {}).await;
    let mut c = authed(&s).await;
    let r = run(&mut c, &sh("echo out; echo err >&2; echo out2")).await;
    assert_eq!(r.out, b"out\nout2\n");
    assert_eq!(r.err, b"err\n");
    assert_eq!(r.report.stdout_bytes, 9);
    assert_eq!(r.report.stderr_bytes, 4);
}

#[tokio::test]
async fn output_arrives_live_not_at_the_end() {
    let s = exec_server(|_| {}).await;
    let mut c = authed(&s).await;
    // The first line must reach us while the command still runs.
    let (mut rd_side, mut wr_side) = tokio::io::duplex(1024);
    let started = Instant::now();
    let job = async {
        let mut err = Vec::new();
        let r = c
            .exec(
                &sh("echo first; sleep 2; echo second"),
                None::<&[u8]>,
                &mut wr_side,
                &mut err,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        drop(wr_side);
        r
    };
    let watch = async {
        let mut buf = [0u8; 6];
        tokio::io::AsyncReadExt::read_exact(&mut rd_side, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf, b"first\n");
        let first_at = started.elapsed();
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut rd_side, &mut rest)
            .await
            .unwrap();
        (first_at, rest)
    };
    let (report, (first_at, rest)) = tokio::join!(job, watch);
    assert_eq!(report.code, Some(0));
    assert!(
        first_at < Duration::from_millis(1500),
        "first line came after {first_at:?}"
    );
    assert_eq!(rest, b"second\n");
}

#[tokio::test]
async fn fifty_megabytes_on_both_streams_arrive_whole() {
    let s = exec_server(|_| {}).await;
    let data = noise(50 * 1024 * 1024, 7);
    std::fs::write(s.path("big"), &data).unwrap();
    let mut c = authed(&s).await;
    // Both pipes full at once: a reader that waited on one would deadlock.
    let r = run(&mut c, &sh("cat big & cat big >&2; wait")).await;
    assert_eq!(r.report.code, Some(0));
    assert!(r.out == data, "stdout differs ({} bytes)", r.out.len());
    assert!(r.err == data, "stderr differs ({} bytes)", r.err.len());
    assert!(!r.report.truncated);
}

#[tokio::test]
async fn output_beyond_the_cap_is_dropped_and_flagged_while_the_child_runs_on() {
    let s = exec_server(|c| c.exec.max_output = 1024 * 1024).await;
    std::fs::write(s.path("big"), noise(8 * 1024 * 1024, 3)).unwrap();
    let mut c = authed(&s).await;
    let r = run(&mut c, &sh("cat big; echo done >&2")).await;
    // cat was read to its end (no SIGPIPE, exit 0), the rest dropped.
    assert_eq!(r.report.code, Some(0));
    assert!(r.report.truncated);
    assert_eq!(r.out.len(), 1024 * 1024);
    assert_eq!(r.report.stdout_bytes, 8 * 1024 * 1024);
    assert!(r.err.is_empty(), "the cap covers stderr too");
    // A client may ask for less than the server's cap.
    let mut small = sh("echo 0123456789");
    small.max_output = Some(4);
    let r = run(&mut c, &small).await;
    assert_eq!(r.out, b"0123");
    assert!(r.report.truncated);
}

#[tokio::test]
async fn a_background_grandchild_does_not_hold_the_reply_or_outlive_the_job() {
    let s = exec_server(|_| {}).await;
    let mut c = authed(&s).await;
    let started = Instant::now();
    let r = run(&mut c, &sh("echo $$; sleep 300 & echo hi")).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(r.report.code, Some(0));
    assert!(String::from_utf8_lossy(&r.out).ends_with("hi\n"));
    let pgid = first_line_pid(&r.out);
    assert_eq!(group_members(pgid), Vec::<i32>::new());
}

#[tokio::test]
async fn early_closed_pipes_still_report_the_exit_code() {
    let s = exec_server(|_| {}).await;
    let mut c = authed(&s).await;
    let r = run(&mut c, &sh("exec >/dev/null 2>&1; sleep 1; exit 7")).await;
    assert_eq!(r.report.code, Some(7));
}

#[tokio::test]
async fn a_timeout_stops_the_whole_group_even_one_ignoring_term() {
    let s = exec_server(|_| {}).await;
    let mut c = authed(&s).await;
    // SIGTERM is ignored by the shell and, inherited, by its children.
    let mut job = sh("trap '' TERM; echo $$; sleep 300 & sleep 300");
    job.timeout_secs = Some(1);
    let started = Instant::now();
    let r = run(&mut c, &job).await;
    assert!(r.report.timed_out);
    assert_eq!(r.report.status(), 124);
    assert!(started.elapsed() < Duration::from_secs(8));
    let pgid = first_line_pid(&r.out);
    assert_eq!(group_members(pgid), Vec::<i32>::new());
}

#[tokio::test]
async fn the_server_caps_the_timeout() {
    let s = exec_server(|c| c.exec.timeout = Duration::from_secs(1)).await;
    let mut c = authed(&s).await;
    let mut job = sh("sleep 300");
    job.timeout_secs = Some(3600);
    let r = run(&mut c, &job).await;
    assert!(r.report.timed_out);
}

#[tokio::test]
async fn stdin_round_trips_byte_for_byte_and_eof_is_forwarded() {
    let s = exec_server(|_| {}).await;
    let mut c = authed(&s).await;
    // Larger than the window, every byte value.
    let data = noise(3 * 1024 * 1024 + 17, 11);
    let r = run_with(&mut c, &spec(&["cat"]), Some(&data)).await;
    assert_eq!(r.report.code, Some(0));
    assert!(
        r.out == data,
        "{} bytes back of {}",
        r.out.len(),
        data.len()
    );
    let r = run_with(&mut c, &spec(&["wc", "-c"]), Some(b"12345")).await;
    assert_eq!(String::from_utf8_lossy(&r.out).trim(), "5");
    // Without stdin the command reads /dev/null and ends at once.
    let r = run(&mut c, &spec(&["cat"])).await;
    assert_eq!(r.report.code, Some(0));
    assert!(r.out.is_empty());
}

#[tokio::test]
async fn not_found_and_not_executable_give_127_and_126() {
    let s = exec_server(|_| {}).await;
    std::fs::write(s.path("script"), "#!/bin/sh\necho hi\n").unwrap();
    let mut c = authed(&s).await;
    let r = run(&mut c, &spec(&["no-such-command-anywhere"])).await;
    assert_eq!(r.report.status(), 127);
    assert!(r.report.error.unwrap().contains("not found"));
    let r = run(&mut c, &spec(&["./script"])).await;
    assert_eq!(r.report.status(), 126);
    // Through a shell, the shell's own 127.
    assert_eq!(
        run(&mut c, &sh("no-such-command-anywhere"))
            .await
            .report
            .status(),
        127
    );
}

#[tokio::test]
async fn working_folder_and_environment() {
    let s = exec_server(|_| {}).await;
    std::fs::create_dir(s.path("sub")).unwrap();
    std::fs::write(s.path("file"), "x").unwrap();
    let mut c = authed(&s).await;
    let r = run(&mut c, &spec(&["pwd"])).await;
    let root = std::fs::canonicalize(s.root.path()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&r.out).trim(),
        root.to_str().unwrap()
    );
    let mut job = spec(&["pwd"]);
    job.cwd = "sub".into();
    let r = run(&mut c, &job).await;
    assert_eq!(
        String::from_utf8_lossy(&r.out).trim(),
        root.join("sub").to_str().unwrap()
    );
    for (cwd, code) in [
        ("..", ErrorCode::InvalidName),
        ("file", ErrorCode::NotADirectory),
        ("nope", ErrorCode::NotFound),
    ] {
        let mut job = spec(&["pwd"]);
        job.cwd = cwd.into();
        let e = exec_err(&mut c, &job).await;
        assert_eq!(e.code(), Some(code), "{cwd}");
    }
    let mut job = spec(&["env"]);
    job.env.insert("GREETING".into(), "hello world".into());
    let r = run(&mut c, &job).await;
    let env = String::from_utf8_lossy(&r.out);
    assert!(env.contains("GREETING=hello world\n"));
    assert!(env.contains("PATH=/usr/local/sbin:"));
    assert!(env.contains("FERRY_PEER=127.0.0.1 "));
    assert!(
        !env.contains("CARGO"),
        "the server's environment leaked: {env}"
    );
    let mut job = spec(&["env"]);
    job.env.insert("BAD NAME".into(), "x".into());
    let e = exec_err(&mut c, &job).await;
    assert_eq!(e.code(), Some(ErrorCode::BadRequest));
}

/// The program is looked up in the command's own `PATH` (a relative entry
/// from its working folder), the first executable file winning, and it
/// sees its name as given in `argv[0]`.
#[tokio::test]
async fn the_program_is_found_in_the_commands_own_path_and_keeps_its_name() {
    use std::os::unix::fs::PermissionsExt;
    let s = exec_server(|_| {}).await;
    for (dir, body, mode) in [
        ("first", "#!/bin/sh\necho first\n", 0o644),
        ("second", "#!/bin/sh\necho \"second as $0\"\n", 0o755),
    ] {
        std::fs::create_dir(s.path(dir)).unwrap();
        let tool = s.path(&format!("{dir}/mytool"));
        std::fs::write(&tool, body).unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let mut c = authed(&s).await;
    let mut job = spec(&["mytool"]);
    job.env
        .insert("PATH".into(), "first:second:/usr/bin:/bin".into());
    let r = run(&mut c, &job).await;
    // `first/mytool` cannot be run, so `second/mytool` is; a script's $0
    // is the path it was started by.
    let out = String::from_utf8_lossy(&r.out);
    assert!(out.trim().ends_with("second/mytool"), "{out}");
    assert!(out.starts_with("second as "), "{out}");
    let r = run(&mut c, &spec(&["sh", "-c", "echo $0"])).await;
    assert_eq!(String::from_utf8_lossy(&r.out).trim(), "sh");
    let mut job = spec(&["mytool"]);
    job.env.insert("PATH".into(), "first".into());
    let r = run(&mut c, &job).await;
    assert_eq!(r.report.status(), 126);
}
