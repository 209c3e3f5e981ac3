//! The hostile suite: the attacks of an anonymous LAN peer, each run with
//! counts, against a server on loopback. What each door trusts is written
//! down in docs/THREAT_MODEL.md; these tests hold the server to it.
//!
//! - requests of other protocols never reach the chat (nor its history);
//! - a name the server does not have gets 421 (DNS rebinding);
//! - rooms are bounded per client and per server;
//! - wrong-token guesses are throttled per address, however many
//!   connections they come over;
//! - folder-upload manifests are refused before their body when the
//!   client may not upload, and share one memory budget when it may;
//! - one rule for a symlink on every door: removing it removes the link;
//! - a file is not a folder (`/file.txt/` is 404);
//! - a client without a pin moves to TLS when the server offers it.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::TestServer;
use ferry::secret::Secret;
use ferry::wire::frame::{Kind, encode_head};
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn frame(kind: Kind, json: &serde_json::Value, body_len: u64) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_head(kind, &serde_json::to_vec(json).unwrap(), body_len, &mut b);
    b.to_vec()
}

/// A plain-text chat client that records every line it is sent.
struct Listener {
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Listener {
    async fn join(s: &TestServer) -> Listener {
        let (r, writer) = TcpStream::connect(s.addr).await.unwrap().into_split();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(r);
            let mut line = String::new();
            while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                let _ = tx.send(std::mem::take(&mut line));
            }
        });
        let mut l = Listener { lines, writer };
        l.until(|x| x.starts_with("* welcome")).await;
        l
    }

    async fn say(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).await.unwrap();
        self.writer.write_all(b"\n").await.unwrap();
    }

    /// Lines until one matches (10 s at most).
    async fn until(&mut self, want: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let l = tokio::time::timeout(Duration::from_secs(10), self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no matching line; saw {seen:?}"))
                .unwrap_or_else(|| panic!("closed; saw {seen:?}"));
            let done = want(&l);
            seen.push(l);
            if done {
                return seen;
            }
        }
    }
}

/// Sends `bytes` as a connection's first bytes, in one write or a byte at
/// a time; returns the first answer (up to a blank line or the close, 5 s
/// at most).
async fn first_bytes(s: &TestServer, bytes: &[u8], bytewise: bool) -> String {
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    if bytewise {
        for b in bytes {
            t.write_all(&[*b]).await.unwrap();
        }
    } else {
        t.write_all(bytes).await.unwrap();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !out.windows(4).any(|w| w == b"\r\n\r\n") && !out.ends_with(b"\n") || out.is_empty() {
        match tokio::time::timeout_at(deadline, t.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_protocols_never_reach_the_chat_or_its_history() {
    let s = TestServer::start(|c| c.sniff_timeout = Duration::from_millis(300)).await;
    let mut watcher = Listener::join(&s).await;
    let secret = "Basic c2VjcmV0OnRva2Vu";
    let requests: Vec<Vec<u8>> = vec![
        format!("LOCK /x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {secret}\r\n\r\n").into(),
        format!("UNLOCK /x HTTP/1.1\r\nAuthorization: {secret}\r\n\r\n").into(),
        format!("PROPPATCH /x HTTP/1.1\r\nCookie: ferry_session={secret}\r\n\r\n").into(),
        format!("BREW /pot HTTP/1.1\r\nAuthorization: {secret}\r\n\r\n").into(),
        format!("SEARCH / HTTP/1.0\r\nAuthorization: {secret}\r\n\r\n").into(),
        format!("CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: {secret}\r\n\r\n").into(),
        format!("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n{secret}").into(),
        format!("SSH-2.0-OpenSSH_9.6\r\n{secret}\r\n").into(),
        format!("\r\nGET / HTTP/1.1\r\nAuthorization: {secret}\r\n\r\n").into(),
        format!("GET\t/\tHTTP/1.1\r\nAuthorization: {secret}\r\n\r\n").into(),
        format!(
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\nAuthorization: {secret}\r\n\r\n"
        )
        .into(),
        format!("DESCRIBE rtsp://x/a RTSP/1.0\r\nAuthorization: {secret}\r\n\r\n").into(),
        format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{secret}\r\n", secret.len()).into(),
        [
            &b"\x04\x01\x00\x50\x7f\x00\x00\x01"[..],
            secret.as_bytes(),
            b"\x00",
        ]
        .concat(),
        format!("USER alice\r\nPASS {secret}\r\n").into(),
        format!("EHLO x\r\nAUTH PLAIN {secret}\r\n").into(),
        // What IRC, POP3 and IMAP clients send at once, and logins in the
        // lower case their servers take too.
        format!("CAP LS 302\r\nPASS {secret}\r\nNICK bob\r\nUSER bob 0 * :bob\r\n").into(),
        format!("CAPA\r\nUSER bob\r\nPASS {secret}\r\n").into(),
        format!("a001 login bob {secret}\r\n").into(),
        format!("user bob\r\npass {secret}\r\n").into(),
        format!("hello\r\npass {}\r\n", &secret[6..]).into(),
        // Requests a lenient parser would not take, and their headers.
        format!("GET\0/ HTTP/1.1\r\nX-Api-Key: {secret}\r\n\r\n").into(),
        format!("GET\u{a0}/ HTTP/1.1\r\nX-Api-Key: {secret}\r\n\r\n").into(),
        format!("G\rET / HTTP/1.1\r\nX: {secret}\r\n\r\n").into(),
        // Arriving a byte at a time is the same request.
        format!("M-SEARCH * HTTP/1.1\r\nAuthorization: {secret}\r\n\r\n").into(),
    ];
    // And one that pauses after its method for longer than the sniffer
    // waits.
    {
        let mut t = TcpStream::connect(s.addr).await.unwrap();
        t.write_all(b"GET").await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let rest = format!(" / HTTP/1.1\r\nAuthorization: {secret}\r\n\r\n");
        let _ = t.write_all(rest.as_bytes()).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), t.read_to_end(&mut out)).await;
        assert!(!String::from_utf8_lossy(&out).contains("welcome"));
    }
    // A classic client's length, then (after the sniffer has given up)
    // its header: binary framing, never chat.
    {
        let mut t = TcpStream::connect(s.addr).await.unwrap();
        t.write_all(b"\x2e\0\0\0").await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let _ = t
            .write_all(format!("{{\"cmd\":\"get\",\"x\":\"{secret}\"}}\n").as_bytes())
            .await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), t.read_to_end(&mut out)).await;
        assert!(String::from_utf8_lossy(&out).contains("another protocol"));
    }
    let mut answered = 0;
    for (i, req) in requests.iter().enumerate() {
        let reply = first_bytes(&s, req, i == requests.len() - 1).await;
        // Text-protocol logins (FTP, SMTP) look like chat until their first
        // line: the chat door closes them before anything is posted.
        let text_login = [
            &b"USER"[..],
            b"EHLO",
            b"CAP",
            b"a001",
            b"user",
            b"hello",
            b"G",
        ]
        .iter()
        .any(|p| req.starts_with(p));
        if text_login {
            let mut t = TcpStream::connect(s.addr).await.unwrap();
            t.write_all(req).await.unwrap();
            let mut out = String::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), t.read_to_string(&mut out)).await;
            // (A mangled request line may be the web door's instead.)
            let web = req.starts_with(b"G") && out.starts_with("HTTP/1.1 400");
            assert!(out.contains("another protocol") || web, "{out}");
        } else {
            assert!(
                !reply.contains("welcome to ferry chat"),
                "request {i} was taken for chat: {reply}"
            );
        }
        let status = reply.split(' ').nth(1).unwrap_or("");
        if reply.starts_with("HTTP/1.") && (status.starts_with('4') || status.starts_with('5')) {
            answered += 1;
        }
    }
    // Every HTTP-shaped request got an HTTP error (the HTTP/2 preface and
    // the SSH banner may just be closed).
    assert!(
        answered >= 7,
        "{answered} of {} answered in HTTP",
        requests.len()
    );
    // A line said after them all: the watcher sees nothing before it but
    // the speaker joining.
    let mut speaker = Listener::join(&s).await;
    speaker.say("marker line").await;
    let seen = watcher.until(|l| l.contains("marker line")).await;
    for l in &seen {
        assert!(!l.contains(secret), "posted to the chat: {l}");
    }
    // Nothing was said in the chat but the marker: no request's lines were
    // posted.
    let said: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains("] <") && !l.contains("] <- "))
        .collect();
    assert_eq!(said.len(), 1, "{seen:?}");
    let state = s.state.path().to_path_buf();
    let mut marker_found = false;
    for entry in std::fs::read_dir(&state).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("chat-") {
            continue;
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = entry.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{name} is readable by others: {mode:o}");
        let bytes = std::fs::read(entry.path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(secret), "{name} holds the credentials");
        marker_found |= text.contains("marker line");
    }
    assert!(
        marker_found,
        "the history files were not where they were looked for"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_the_server_does_not_have_gets_421() {
    let s = TestServer::start(|c| c.allow_host = vec!["files.lan".into()]).await;
    std::fs::write(s.path("a.txt"), b"hello").unwrap();
    let c = reqwest::Client::new();
    let port = s.addr.port();
    let req = |method: reqwest::Method, path: &str, host: &str| {
        c.request(method, format!("http://{}{path}", s.addr))
            .header("Host", host.to_string())
            .header("X-Ferry", "1")
    };
    let mut refused = 0;
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_string(),
        format!("127.0.0.1.attacker.example:{port}"),
    ] {
        for (m, path) in [
            (reqwest::Method::GET, "/a.txt"),
            (reqwest::Method::GET, "/"),
            (reqwest::Method::PUT, "/b.txt"),
            (reqwest::Method::DELETE, "/a.txt"),
            (reqwest::Method::GET, "/.ferry/chat"),
            (reqwest::Method::POST, "/.ferry/tus/"),
        ] {
            let r = req(m.clone(), path, &host).send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::MISDIRECTED_REQUEST,
                "{m} {path} as {host}"
            );
            let text = r.text().await.unwrap();
            assert!(text.contains("--allow-host"), "{text}");
            refused += 1;
        }
    }
    assert_eq!(refused, 18);
    assert!(s.path("a.txt").exists() && !s.path("b.txt").exists());
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "files.lan".into(),
        format!("[::1]:{port}"),
    ] {
        let r = req(reqwest::Method::GET, "/a.txt", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_bounded_per_client_and_per_server() {
    let s = TestServer::start(|c| {
        c.chat.rate = 100_000.0;
        c.sniff_timeout = Duration::from_millis(200);
        c.chat.limits.rooms = 40;
        c.chat.limits.rooms_per_client = 8;
    })
    .await;
    let mut joined = 0;
    let mut refused_client = 0;
    let mut refused_server = 0;
    for client in 0..10 {
        let mut l = Listener::join(&s).await;
        for room in 0..12 {
            let name = format!("c{client}r{room}");
            l.say(&format!("/join {name}")).await;
            let joined_line = format!("[{name}] -> ");
            let seen = l
                .until(|x| x.starts_with(&joined_line) || x.starts_with("! "))
                .await;
            let last = seen.last().unwrap();
            if last.starts_with(&joined_line) {
                joined += 1;
            } else if last.contains("one client may be in") {
                refused_client += 1;
            } else if last.contains("the most it keeps") {
                refused_server += 1;
            } else {
                panic!("unexpected: {last}");
            }
        }
        // Kept open: its rooms stay.
        std::mem::forget(l);
    }
    // The lobby plus 39 more rooms exist at most.
    assert_eq!(joined, 39, "{joined} joined");
    assert!(refused_client >= 20, "{refused_client}");
    assert!(refused_server >= 40, "{refused_server}");
    s.stop().await;
}

/// Wrong tokens over 64 connections at once from one address for three
/// seconds: they are checked one turn at a time, not 64 at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_guesses_take_turns_per_address() {
    let s = TestServer::start(|c| {
        c.token = Some(Secret::new("the-right-token"));
        c.limits.max_per_ip = 100;
    })
    .await;
    let started = Instant::now();
    let checked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let checked = checked.clone();
        let refused = refused.clone();
        let addr = s.addr;
        tasks.spawn(async move {
            let Ok(mut t) = TcpStream::connect(addr).await else {
                return;
            };
            let hello = frame(
                Kind::Request,
                &serde_json::json!({"op": "hello", "versions": [1]}),
                0,
            );
            let auth = frame(
                Kind::Request,
                &serde_json::json!({"op": "auth", "token": format!("guess-{i}")}),
                0,
            );
            let _ = t.write_all(&hello).await;
            let _ = t.write_all(&auth).await;
            // Two replies: hello, then the verdict on the guess.
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            loop {
                match tokio::time::timeout_at(deadline, t.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => return,
                }
                if count_frames(&got) >= 2 {
                    // Checked and wrong, or refused unchecked (busy) for
                    // having failed too often: only the first is a guess.
                    if String::from_utf8_lossy(&got).contains("auth_failed") {
                        checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else {
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    return;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let n = checked.load(std::sync::atomic::Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    let r = refused.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{n} guesses checked and {r} refused unchecked in {secs:.1} s over 64 connections");
    // Turns at 0, 0.25, 0.75 and 1.75 s fit in three seconds.
    assert!(n <= 5, "{n} guesses answered in {secs:.1} s");
    assert!(n >= 1);
    s.stop().await;
}

fn count_frames(buf: &[u8]) -> usize {
    let mut i = 0;
    let mut n = 0;
    while i + 18 <= buf.len() {
        let hl = u32::from_be_bytes(buf[i + 6..i + 10].try_into().unwrap()) as usize;
        let bl = u64::from_be_bytes(buf[i + 10..i + 18].try_into().unwrap()) as usize;
        if buf.len() < i + 18 + hl + bl {
            break;
        }
        i += 18 + hl + bl;
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_is_refused_before_its_body_without_upload_rights() {
    let s = TestServer::start(|c| {
        c.token = Some(Secret::new("the-right-token"));
        c.anonymous.upload = false;
    })
    .await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    let hello = frame(
        Kind::Request,
        &serde_json::json!({"op": "hello", "versions": [1]}),
        0,
    );
    // 32 MiB announced, none of it sent: the refusal must not wait for it.
    let plan = frame(
        Kind::Request,
        &serde_json::json!({"op": "plan", "path": "dir", "force": false}),
        32 << 20,
    );
    t.write_all(&hello).await.unwrap();
    t.write_all(&plan).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    while count_frames(&got) < 2 {
        let n = tokio::time::timeout(Duration::from_secs(5), t.read(&mut buf))
            .await
            .expect("refused without waiting for the body")
            .unwrap();
        assert!(n > 0, "closed without a word");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("auth_required") || text.contains("forbidden"),
        "{text}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_large_manifests_at_once_all_get_checked() {
    let s = TestServer::start(|_| {}).await;
    // Eight manifests of ~3 MiB each, at once: they take turns on the
    // budget, and each gets its answer.
    let entries: Vec<serde_json::Value> = (0..40_000)
        .map(|i| serde_json::json!({"path": format!("d{}/f{i}.bin", i % 50), "kind": "file", "size": 1}))
        .collect();
    let body = serde_json::to_vec(&entries).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let body = body.clone();
        let addr = s.addr;
        tasks.spawn(async move {
            let mut t = TcpStream::connect(addr).await.unwrap();
            let hello = frame(
                Kind::Request,
                &serde_json::json!({"op": "hello", "versions": [1]}),
                0,
            );
            let plan = frame(
                Kind::Request,
                &serde_json::json!({"op": "plan", "path": format!("up{i}"), "force": false}),
                body.len() as u64,
            );
            t.write_all(&hello).await.unwrap();
            t.write_all(&plan).await.unwrap();
            t.write_all(&body).await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while count_frames(&got) < 2 {
                let n = tokio::time::timeout(Duration::from_secs(60), t.read(&mut buf))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            // The second frame is an ok.
            let hl = u32::from_be_bytes(got[6..10].try_into().unwrap()) as usize;
            got[18 + hl + 5]
        });
    }
    while let Some(kind) = tasks.join_next().await {
        assert_eq!(kind.unwrap(), Kind::Ok as u8);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_symlink_that_leads_outside_removes_the_link_on_every_door() {
    let s = TestServer::start(|_| {}).await;
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("keep.txt");
    std::fs::write(&target, b"keep").unwrap();
    for name in ["by-http", "by-native"] {
        std::os::unix::fs::symlink(&target, s.path(name)).unwrap();
    }
    let r = reqwest::Client::new()
        .delete(format!("http://{}/by-http", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let mut c = s.client().await;
    c.rm("by-native", false).await.unwrap();
    for name in ["by-http", "by-native"] {
        assert!(
            s.path(name).symlink_metadata().is_err(),
            "{name} is still there"
        );
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_not_a_folder() {
    let s = TestServer::start(|_| {}).await;
    std::fs::write(s.path("file.txt"), b"hello").unwrap();
    let c = reqwest::Client::new();
    for path in ["/file.txt/"] {
        let r = c
            .get(format!("http://{}{path}", s.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r = c
        .get(format!("http://{}/file.txt", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

/// A classic header trickled a byte at a time is cut at the header
/// deadline from its first byte, not kept alive by each byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_classic_header_is_cut_at_its_deadline() {
    let s = TestServer::start(|c| c.deadlines.header = Duration::from_secs(2)).await;
    let head = br#"{"cmd":"get","filename":"nothing-here.txt","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let mut bytes = (head.len() as i32).to_le_bytes().to_vec();
    bytes.extend_from_slice(head);
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    // The length and the brace at once, so the classic door is chosen.
    t.write_all(&bytes[..5]).await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    for b in &bytes[5..] {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if t.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        let mut probe = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), t.read(&mut probe)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "still open after {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    s.stop().await;
}
