//! Shared test harness: an in-process server on a loopback port, the real
//! binary, and a proxy that throttles or cuts a connection.
#![allow(dead_code, unreachable_pub)]

pub mod dav;
pub mod nats;
pub mod s3;
pub mod tls;
pub mod traversal;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry::client::Client;
use ferry::config::ServeConfig;
use ferry::secret::Secret;
use ferry::server::Server;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct TestServer {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    /// The server's state folder (chat history).
    pub state: tempfile::TempDir,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// A server on 127.0.0.1 with every permission but exec, after `tweak`.
    pub async fn start(tweak: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let root = tempfile::tempdir().unwrap();
        Self::start_in(root, tweak).await
    }

    pub async fn start_in(
        root: tempfile::TempDir,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> TestServer {
        let state = tempfile::tempdir().unwrap();
        let mut cfg = ServeConfig::for_root(root.path());
        cfg.state_dir = state.path().to_path_buf();
        cfg.listen = vec!["127.0.0.1:0".parse().unwrap()];
        cfg.default_listen = false;
        cfg.granted.upload = true;
        cfg.granted.delete = true;
        cfg.anonymous = cfg.granted;
        tweak(&mut cfg);
        let server = Server::bind(cfg).await.unwrap();
        let addr = server.tcp_addrs()[0];
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(server.run(shutdown.clone()));
        TestServer {
            addr,
            root,
            state,
            shutdown,
            handle,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// A plain TCP connection that has sent `bytes`: for tests below the
    /// client library, in any door's framing.
    pub async fn raw(&self, bytes: &[u8]) -> TcpStream {
        let mut t = TcpStream::connect(self.addr).await.unwrap();
        t.write_all(bytes).await.unwrap();
        t
    }

    /// Sends `bytes` on a fresh connection and gives all the server
    /// answered until it closed, or until `wait` passed.
    pub async fn exchange(&self, bytes: &[u8], wait: Duration) -> Vec<u8> {
        let mut t = self.raw(bytes).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(wait, t.read_to_end(&mut out)).await;
        out
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.addr.to_string(), None).await.unwrap()
    }

    /// A client logged in with `token`: a wrong one is the error here
    /// (the client sends its first request behind the token without
    /// waiting, so the reply is read before this returns).
    pub async fn client_with(&self, token: &str) -> Result<Client, ferry::client::ClientError> {
        let mut c = Client::connect(&self.addr.to_string(), Some(&Secret::new(token))).await?;
        c.hello().await?;
        Ok(c)
    }

    /// Graceful shutdown; returns the root so the caller can inspect it.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("server stopped in time")
            .unwrap()
            .unwrap();
        self.root
    }
}

/// Files below `dir` whose names mark them as partial transfers.
pub fn partial_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".ferry-part") {
                out.push(p);
            }
        }
    }
    out
}

/// The BLAKE3 of a file, hex (what ferry-to-ferry transfers verify with).
#[allow(dead_code)]
pub fn blake3_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).unwrap();
    h.finalize().to_hex().to_string()
}

pub fn sha256_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    hex(&h.finalize())
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// How a [`proxy`] treats the bytes going up (client to server) and down.
#[derive(Clone, Copy)]
pub struct ProxyPlan {
    /// Close both sides after this many bytes upstream.
    pub cut_up_after: Option<u64>,
    /// Close both sides after this many bytes downstream.
    pub cut_down_after: Option<u64>,
    /// Upstream bytes per second at most.
    pub up_rate: Option<u64>,
    /// Downstream bytes per second at most.
    pub down_rate: Option<u64>,
}

/// `src` uploaded as `remote` to the server at `authority`, with every
/// default (a resume where one is offered).
pub async fn put_to(
    authority: &str,
    src: &Path,
    remote: &str,
) -> Result<ferry::client::Transferred, ferry::client::ClientError> {
    let mut c = Client::connect(authority, None).await?;
    c.put_file(
        src,
        remote,
        ferry::client::TransferOpts::default(),
        &indicatif::ProgressBar::hidden(),
    )
    .await
}

/// `src` uploaded as `remote` to the server at `target` through a proxy
/// that passes `rate` bytes a second up, in a task of its own: a test
/// makes something happen in the middle of it.
pub async fn slow_put(
    target: SocketAddr,
    rate: u64,
    src: &Path,
    remote: &str,
) -> tokio::task::JoinHandle<Result<ferry::client::Transferred, ferry::client::ClientError>> {
    let slow = ProxyPlan {
        cut_up_after: None,
        cut_down_after: None,
        up_rate: Some(rate),
        down_rate: None,
    };
    let via = proxy(target, slow).await;
    let (src, remote) = (src.to_path_buf(), remote.to_string());
    tokio::spawn(async move { put_to(&via.to_string(), &src, &remote).await })
}

/// A one-connection TCP proxy in front of `target`. Pumps say whether
/// they were cut (`true`) or their connection ended.
pub async fn proxy(target: SocketAddr, plan: ProxyPlan) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        let up = pump(cr, sw, plan.cut_up_after, plan.up_rate);
        let down = pump(sr, cw, plan.cut_down_after, plan.down_rate);
        tokio::pin!(down);
        // Whichever side ends first ends the connection, like a cut cable;
        // but a server that stopped taking bytes may have said why, and
        // that still reaches the client (as it would without a proxy).
        tokio::select! {
            cut = up => {
                if !cut {
                    let _ = tokio::time::timeout(Duration::from_secs(2), &mut down).await;
                }
            }
            _ = &mut down => {}
        }
    });
    addr
}

/// Copies one direction until EOF, `cut` bytes, or an error, at most
/// `rate` bytes per second.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Option<u64>,
    rate: Option<u64>,
) -> bool {
    let mut sent = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut want = buf.len();
        if let Some(cut) = cut {
            if sent >= cut {
                return true;
            }
            want = want.min((cut - sent) as usize);
        }
        let n = match from.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
        sent += n as u64;
        if let Some(rate) = rate {
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
    }
}

/// The real binary, serving `root` on a free loopback port.
pub struct BinServer {
    /// Declared first: kills the server when the test ends, even by a
    /// panic, so a failed test leaves no server holding a port.
    _reaper: Reaper,
    pub child: Child,
    /// The server's state folder.
    pub state: PathBuf,
    _own_state: Option<tempfile::TempDir>,
    pub port: u16,
    pub stderr: std::thread::JoinHandle<String>,
}

/// Kills the server process `0` on drop, if it is still a ferry server
/// (the test may have stopped it already, and its number been reused).
struct Reaper(u32);

impl Drop for Reaper {
    fn drop(&mut self) {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.0)).unwrap_or_default();
        if cmdline.starts_with(ferry_bin().as_bytes()) {
            let _ = Command::new("kill")
                .args(["-9", &self.0.to_string()])
                .status();
        }
    }
}

/// A helper program a test started (a store, a message bus): killed
/// outright when dropped.
#[derive(Default)]
pub struct Daemon(Option<Child>);

impl Daemon {
    pub fn set(&mut self, c: Child) {
        self.kill();
        self.0 = Some(c);
    }

    /// `kill -9`, and reaped.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn ferry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

pub fn spawn_bin_server(root: &Path, extra: &[&str], envs: &[(&str, &str)]) -> BinServer {
    let own = tempfile::tempdir().unwrap();
    let mut srv = start_bin_server(root, own.path(), extra, envs);
    srv._own_state = Some(own);
    srv
}

/// The real binary, keeping its state (chat history) in `state`.
pub fn spawn_bin_server_with_state(root: &Path, state: &Path, extra: &[&str]) -> BinServer {
    start_bin_server(root, state, extra, &[])
}

/// The real binary serving `root` after a tmpfs of `size` (as `mount -o
/// size=` takes it) is mounted there, in a mount namespace of the server's
/// own: the small disk goes away with the server. `None` where that
/// cannot be done (not root, no `unshare`): the caller says so.
pub fn spawn_bin_server_on_small_disk(
    root: &Path,
    size: &str,
    extra: &[&str],
) -> Option<BinServer> {
    if !can_unshare_mount() {
        return None;
    }
    let own = tempfile::tempdir().unwrap();
    let script = r#"mount -t tmpfs -o size="$1" tmpfs "$2" || exit 97; shift 2; exec "$@""#;
    let root_s = root.to_str().unwrap();
    let prefix = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        size,
        root_s,
    ];
    let mut srv = start_bin_server_via(&prefix, root, own.path(), extra, &[]);
    srv._own_state = Some(own);
    Some(srv)
}

/// Whether this test may make mount namespaces of its own (root, and
/// `unshare` there).
pub fn can_unshare_mount() -> bool {
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_bin_server(root: &Path, state: &Path, extra: &[&str], envs: &[(&str, &str)]) -> BinServer {
    start_bin_server_via(&[], root, state, extra, envs)
}

/// Starts the binary, behind the command `prefix` (which ends by running
/// what follows it) when there is one.
fn start_bin_server_via(
    prefix: &[&str],
    root: &Path,
    state: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> BinServer {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(ferry_bin());
            c
        }
        None => Command::new(ferry_bin()),
    };
    cmd.arg("serve")
        .arg(root)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(state)
        .args(extra)
        .env_remove("FERRY_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut port = 0;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("listening on ") {
            let addr: SocketAddr = rest.split(' ').next().unwrap().parse().unwrap();
            port = addr.port();
            break;
        }
    }
    assert!(port != 0, "server did not say where it listens");
    std::thread::spawn(move || for _ in lines {});
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    BinServer {
        _reaper: Reaper(child.id()),
        child,
        state: state.to_path_buf(),
        _own_state: None,
        port,
        stderr,
    }
}

/// Runs the client binary; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(ferry_bin());
    cmd.args(args)
        .env_remove("FERRY_TOKEN")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    outcome(cmd.output().unwrap())
}

/// A finished command's (exit code, stdout, stderr).
pub fn outcome(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Says that a test needing namespaces checked nothing here, or fails when
/// the tests run as root, where namespaces must work (CI runs as root): a
/// check that cannot run there must not pass unseen.
pub fn checked_nothing(why: &str) {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    assert!(!root, "{why}, though the tests run as root");
    eprintln!("{why}: nothing checked");
}

/// The hash `ferry passwd` prints for `password`, given on standard input.
#[allow(dead_code)]
pub fn passwd_hash(password: &str) -> String {
    let (code, out, err) = run_cli_with_input(&["passwd"], &[], &format!("{password}\n"));
    assert_eq!(code, 0, "{err}");
    let h = out.trim().to_string();
    assert!(h.starts_with("$argon2id$"), "{h}");
    h
}

/// `curl -s` with `args`: (status, body).
#[allow(dead_code)]
pub fn curl<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The binary with `args`, `input` on its standard input, and none of
/// the client's credentials from this process's environment but `envs`:
/// (exit code, stdout, stderr).
#[allow(dead_code)]
pub fn run_cli_with_input(
    args: &[&str],
    envs: &[(&str, &str)],
    input: &str,
) -> (i32, String, String) {
    use std::io::Write as _;
    let mut cmd = Command::new(ferry_bin());
    cmd.args(args)
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_USER")
        .env_remove("FERRY_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    outcome(child.wait_with_output().unwrap())
}

/// Builds a folder full of names that break naive tools.
pub fn hostile_tree(top: &Path) {
    for name in [
        "emoji 😀.txt",
        "quotes \"double\" 'single'.txt",
        "amp & <lt> >gt.txt",
        ".dotfile",
        "spaces   inside",
        "日本語.txt",
        "-starts-with-dash",
        "%2e%2e",
    ] {
        std::fs::write(top.join(name), name.as_bytes()).unwrap();
    }
    std::fs::create_dir_all(top.join("sub dir/deeper")).unwrap();
    std::fs::write(top.join("sub dir/deeper/file"), b"deep").unwrap();
}

/// Sends `put` of `size` bytes and, with `body`, its `data` frame and
/// `body` (all of it or its start), but no `commit`: an upload waiting for
/// its next frame, or stalled in its body.
#[allow(dead_code)]
pub async fn upload_left_waiting(
    conn: &mut ferry::wire::Connection,
    name: &str,
    size: u64,
    body: Option<&[u8]>,
) {
    let put = ferry::wire::messages::Request::Put {
        path: name.into(),
        size,
        mtime: None,
        force: false,
        resume: true,
        digest: None,
    };
    conn.send(ferry::wire::Kind::Request, &put, 0)
        .await
        .unwrap();
    conn.next_head().await.unwrap();
    if let Some(body) = body {
        let data = ferry::wire::messages::Request::Data { offset: 0 };
        conn.send(ferry::wire::Kind::Request, &data, size)
            .await
            .unwrap();
        conn.send_body(body).await.unwrap();
    }
}
