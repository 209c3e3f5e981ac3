//! Remote commands: real processes, real exit codes, nothing left running.

#[path = "../common/mod.rs"]
mod common;

use common::{TestServer, ferry_bin, noise, run_cli, spawn_bin_server};
use ferry::access::Rights;
use ferry::client::{Client, ClientError};
use ferry::secret::Secret;
use ferry::wire::messages::{ErrorCode, ExecEvent, ExecRequest, ExitReport, Request};
use ferry::wire::{Connection, Kind};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
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
            user: None,
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

fn bin_server(root: &std::path::Path) -> common::BinServer {
    spawn_bin_server(
        root,
        &["--allow-exec", "--exec-grace", "1", "--no-discovery"],
        &[("FERRY_TOKEN", TOKEN)],
    )
}

mod binary;
mod processes;
mod protocol;
