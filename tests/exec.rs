//! Remote commands: real processes, real exit codes, nothing left running.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestServer, ferry_bin, noise, run_cli, spawn_bin_server};
use ferry::access::Rights;
use ferry::client::{Client, ClientError};
use ferry::secret::Secret;
use ferry::wire::messages::{ErrorCode, ExecEvent, ExecRequest, ExitReport, Request};
use ferry::wire::{Connection, Kind};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "exec-token-for-tests";

/// A server that grants exec to clients with [`TOKEN`].
async fn exec_server(tweak: impl FnOnce(&mut ferry::config::ServeConfig)) -> TestServer {
    TestServer::start(|c| {
        c.token = Some(Secret::new(TOKEN));
        c.granted.exec = true;
        c.anonymous = Rights {
            read: true,
            ..Rights::default()
        };
        c.exec.grace = Duration::from_secs(1);
        tweak(c);
    })
    .await
}

async fn authed(s: &TestServer) -> Client {
    s.client_with(TOKEN).await.unwrap()
}

fn spec(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|a| a.to_string()).collect(),
        ..ExecRequest::default()
    }
}

fn sh(script: &str) -> ExecRequest {
    spec(&["sh", "-c", script])
}

struct Ran {
    report: ExitReport,
    out: Vec<u8>,
    err: Vec<u8>,
}

async fn run_with(c: &mut Client, spec: &ExecRequest, stdin: Option<&[u8]>) -> Ran {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let report = c
        .exec(spec, stdin, &mut out, &mut err, &CancellationToken::new())
        .await
        .unwrap();
    Ran { report, out, err }
}

async fn run(c: &mut Client, spec: &ExecRequest) -> Ran {
    run_with(c, spec, None).await
}

/// Processes of group `pgid` that are still running (zombies excluded).
fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f[0] != "Z" && f[2].parse::<i32>() == Ok(pgid) {
            out.push(pid);
        }
    }
    out
}

async fn assert_group_gone(pgid: i32, secs: u64) {
    let left = group_gone_within(pgid, Duration::from_secs(secs)).await;
    assert!(left.is_empty(), "still running in group {pgid}: {left:?}");
}

/// Waits up to `limit` for the group to be gone; returns what is left.
async fn group_gone_within(pgid: i32, limit: Duration) -> Vec<i32> {
    let deadline = Instant::now() + limit;
    loop {
        let left = group_members(pgid);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn first_line_pid(out: &[u8]) -> i32 {
    String::from_utf8_lossy(out)
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

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

/// Opens an authenticated raw connection for protocol-level tests.
async fn raw(s: &TestServer) -> Connection {
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut conn = Connection::from_stream(
        ferry::wire::Stream::Plain(stream),
        Default::default(),
        Default::default(),
    );
    conn.send(Kind::Request, &Request::hello(), 0)
        .await
        .unwrap();
    assert_eq!(conn.next_head().await.unwrap().kind, Kind::Ok);
    conn.send(
        Kind::Request,
        &Request::Auth {
            token: Secret::new(TOKEN),
        },
        0,
    )
    .await
    .unwrap();
    assert_eq!(conn.next_head().await.unwrap().kind, Kind::Ok);
    conn
}

fn exec_req(script: &str, stdin: bool) -> Request {
    Request::Exec(ExecRequest {
        stdin,
        ..sh(script)
    })
}

/// Sends an exec and reads up to the first stdout line (the group id).
async fn start_raw(conn: &mut Connection, script: &str, stdin: bool) -> i32 {
    conn.send(Kind::Request, &exec_req(script, stdin), 0)
        .await
        .unwrap();
    let head = conn.next_head().await.unwrap();
    assert_eq!(head.kind, Kind::Partial);
    assert_eq!(
        serde_json::from_slice::<ExecEvent>(&head.header).unwrap(),
        ExecEvent::Started
    );
    let head = conn.next_head().await.unwrap();
    assert_eq!(
        serde_json::from_slice::<ExecEvent>(&head.header).unwrap(),
        ExecEvent::Stdout
    );
    let mut line = Vec::new();
    while conn.body_remaining() > 0 {
        line.extend_from_slice(&conn.next_chunk().await.unwrap());
    }
    first_line_pid(&line)
}

#[tokio::test]
async fn a_client_disconnect_stops_the_job() {
    let s = exec_server(|_| {}).await;
    let mut conn = raw(&s).await;
    let pgid = start_raw(&mut conn, "echo $$; sleep 300 & sleep 300", false).await;
    assert!(!group_members(pgid).is_empty());
    drop(conn);
    assert_group_gone(pgid, 10).await;
}

#[tokio::test]
async fn server_shutdown_stops_the_job_and_says_so() {
    let s = exec_server(|_| {}).await;
    let mut conn = raw(&s).await;
    let pgid = start_raw(&mut conn, "echo $$; sleep 300", false).await;
    let stopping = tokio::spawn(s.stop());
    let head = conn.next_head().await.unwrap();
    assert_eq!(head.kind, Kind::Error);
    let e: ferry::wire::messages::ErrorReply = serde_json::from_slice(&head.header).unwrap();
    assert_eq!(e.code, ErrorCode::ShuttingDown);
    stopping.await.unwrap();
    assert_group_gone(pgid, 5).await;
}

#[tokio::test]
async fn cancel_gets_through_even_behind_unread_stdin() {
    let s = exec_server(|_| {}).await;
    let mut c = authed(&s).await;
    // The command never reads its stdin, and the client has endless input:
    // the window keeps the server's buffer bounded and the cancel moving.
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = c
        .exec(
            &sh("sleep 300"),
            Some(tokio::io::repeat(b'x')),
            &mut out,
            &mut err,
            &cancel,
        )
        .await
        .unwrap();
    assert!(r.cancelled);
    assert_eq!(r.status(), 130);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection is still in step.
    assert_eq!(run(&mut c, &sh("echo again")).await.out, b"again\n");
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

#[tokio::test]
async fn exec_needs_the_token_and_the_flag() {
    let s = exec_server(|_| {}).await;
    let mut anon = s.client().await;
    let e = exec_err(&mut anon, &spec(&["true"])).await;
    assert_eq!(e.code(), Some(ErrorCode::AuthRequired));
    // The connection goes on after a refusal.
    anon.ls("").await.unwrap();

    let s = TestServer::start(|c| {
        c.token = Some(Secret::new(TOKEN));
        c.anonymous = Rights {
            read: true,
            ..Rights::default()
        };
    })
    .await;
    let mut c = s.client_with(TOKEN).await.unwrap();
    let e = exec_err(&mut c, &spec(&["true"])).await;
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    assert!(e.to_string().contains("--allow-exec"));
}

async fn exec_err(c: &mut Client, spec: &ExecRequest) -> ClientError {
    c.exec(
        spec,
        None::<&[u8]>,
        &mut Vec::new(),
        &mut Vec::new(),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn job_limits_answer_busy() {
    let s = exec_server(|c| {
        c.exec.jobs_per_client = 1;
    })
    .await;
    let mut a = authed(&s).await;
    let mut b = authed(&s).await;
    let long = tokio::spawn(async move {
        let r = run(&mut a, &sh("sleep 2")).await;
        r.report.code
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = exec_err(&mut b, &spec(&["true"])).await;
    assert_eq!(e.code(), Some(ErrorCode::Busy));
    assert_eq!(long.await.unwrap(), Some(0));
    // The slot is given back.
    assert_eq!(run(&mut b, &spec(&["true"])).await.report.code, Some(0));
}

#[tokio::test]
async fn protocol_abuse_during_exec_is_refused_and_stops_the_job() {
    let s = exec_server(|_| {}).await;
    // stdin outside an exec.
    let mut conn = raw(&s).await;
    conn.send(Kind::Request, &Request::Stdin, 0).await.unwrap();
    assert_eq!(conn.next_head().await.unwrap().kind, Kind::Error);

    // Another request in the middle of a running command.
    let mut conn = raw(&s).await;
    let pgid = start_raw(&mut conn, "echo $$; sleep 300", true).await;
    conn.send(
        Kind::Request,
        &Request::Ls {
            path: String::new(),
        },
        0,
    )
    .await
    .unwrap();
    let mut saw_error = false;
    while let Ok(head) = conn.next_head().await {
        if head.kind == Kind::Error {
            saw_error = true;
        }
        conn.discard_body().await.unwrap();
    }
    assert!(saw_error);
    assert_group_gone(pgid, 5).await;

    // More stdin in flight than the window allows.
    let mut conn = raw(&s).await;
    let pgid = start_raw(&mut conn, "echo $$; sleep 300", true).await;
    let too_much = vec![0u8; 2 * 1024 * 1024];
    let _ = conn
        .send(Kind::Request, &Request::Stdin, too_much.len() as u64)
        .await;
    let _ = conn.send_body(&too_much).await;
    let mut code = None;
    while let Ok(head) = conn.next_head().await {
        if head.kind == Kind::Error {
            let e: ferry::wire::messages::ErrorReply =
                serde_json::from_slice(&head.header).unwrap();
            code = Some(e.code);
        }
        let _ = conn.discard_body().await;
    }
    assert_eq!(code, Some(ErrorCode::TooLarge));
    assert_group_gone(pgid, 5).await;
}

#[tokio::test]
async fn one_connection_runs_many_commands_and_file_requests_between() {
    let s = exec_server(|_| {}).await;
    let mut c = authed(&s).await;
    for i in 0..20 {
        let r = run_with(&mut c, &spec(&["cat"]), Some(format!("{i}").as_bytes())).await;
        assert_eq!(r.out, format!("{i}").as_bytes());
        c.ls("").await.unwrap();
    }
}

// ---- through the binary ----

fn bin_server(root: &std::path::Path) -> common::BinServer {
    spawn_bin_server(
        root,
        &["--allow-exec", "--exec-grace", "1", "--no-discovery"],
        &[("FERRY_TOKEN", TOKEN)],
    )
}

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

fn nix_kill(pid: i32) {
    let ok = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test]
async fn a_client_that_stops_reading_throttles_the_command() {
    let s = exec_server(|_| {}).await;
    let mut conn = raw(&s).await;
    // Counts the 64 KiB blocks it has managed to write.
    let pgid = start_raw(
        &mut conn,
        "echo $$; i=0; while :; do head -c 65536 /dev/zero; i=$((i+1)); echo $i > count; done",
        false,
    )
    .await;
    let count = || -> u64 {
        std::fs::read_to_string(s.path("count"))
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0)
    };
    // We read nothing more: pipes, the server's queue and the socket
    // buffers fill, then the command blocks.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let early = count();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = count();
    assert_eq!(early, late, "the command kept writing: {early} then {late}");
    assert!(late < 1024, "{late} blocks (64 MiB) buffered somewhere");
    drop(conn);
    assert_group_gone(pgid, 10).await;
}
