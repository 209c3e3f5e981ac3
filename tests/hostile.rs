//! Bad input at the byte level, through every door: malformed and oversized
//! frames, slow and silent peers, traversal attempts, and a hostile server
//! feeding the client bad names.

mod common;

use std::fs;
use std::time::Duration;

use bytes::BytesMut;
use common::{TestServer, partial_files};
use ferry::client::Client;
use ferry::wire::frame::{Kind, MAGIC, MAX_HEADER_LEN, encode_head};
use ferry::wire::messages::{ErrorCode, ErrorReply, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn frame(kind: Kind, json: &[u8], body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_head(kind, json, body.len() as u64, &mut b);
    b.extend_from_slice(body);
    b.to_vec()
}

fn hello() -> Vec<u8> {
    frame(Kind::Request, br#"{"op":"hello","versions":[1]}"#, b"")
}

/// Reads frames until the first error frame, returning its code (or None at EOF).
async fn first_error(s: &mut TcpStream) -> Option<ErrorCode> {
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut i = 0;
        while i + 18 <= all.len() {
            let hl = u32::from_be_bytes(all[i + 6..i + 10].try_into().unwrap()) as usize;
            let bl = u64::from_be_bytes(all[i + 10..i + 18].try_into().unwrap()) as usize;
            if all.len() < i + 18 + hl {
                break;
            }
            if all[i + 5] == Kind::Error as u8 {
                let e: ErrorReply = serde_json::from_slice(&all[i + 18..i + 18 + hl]).unwrap();
                return Some(e.code);
            }
            i += 18 + hl + bl;
        }
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => all.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

async fn raw(s: &TestServer, bytes: &[u8]) -> TcpStream {
    s.raw(bytes).await
}

#[tokio::test]
async fn malformed_frames_get_a_clear_error() {
    let s = TestServer::start(|_| {}).await;
    // Header length over the cap: refused from the prefix alone.
    let mut over = hello();
    let mut prefix = Vec::from(MAGIC);
    prefix.extend_from_slice(&[1, 1]);
    prefix.extend_from_slice(&(MAX_HEADER_LEN + 1).to_be_bytes());
    prefix.extend_from_slice(&0u64.to_be_bytes());
    over.extend_from_slice(&prefix);
    let mut t = raw(&s, &over).await;
    assert_eq!(first_error(&mut t).await, Some(ErrorCode::TooLarge));

    let with_hello = |extra: Vec<u8>| {
        let mut v = hello();
        v.extend(extra);
        v
    };
    let mut future_version = hello();
    future_version[4] = 9;
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "a version from the future",
            future_version,
            ErrorCode::UnsupportedVersion,
        ),
        (
            "not JSON",
            with_hello(frame(Kind::Request, b"{not json", b"")),
            ErrorCode::BadRequest,
        ),
        (
            "unknown op",
            with_hello(frame(Kind::Request, br#"{"op":"format_disk"}"#, b"")),
            ErrorCode::BadRequest,
        ),
        (
            "a request before hello",
            frame(Kind::Request, br#"{"op":"ls","path":""}"#, b""),
            ErrorCode::HelloRequired,
        ),
        (
            "a reply kind from a client",
            with_hello(frame(Kind::Ok, b"{}", b"")),
            ErrorCode::BadRequest,
        ),
        (
            "no common version",
            frame(Kind::Request, br#"{"op":"hello","versions":[7]}"#, b""),
            ErrorCode::UnsupportedVersion,
        ),
    ];
    for (what, bytes, code) in cases {
        assert_eq!(
            first_error(&mut raw(&s, &bytes).await).await,
            Some(code),
            "{what}"
        );
    }
    // A body on a request that takes none.
    let mut body = hello();
    body.extend(frame(
        Kind::Request,
        br#"{"op":"ls","path":""}"#,
        b"surprise",
    ));
    assert_eq!(
        first_error(&mut raw(&s, &body).await).await,
        Some(ErrorCode::BadRequest)
    );

    // EOF in the middle of a frame, then the server still serves others.
    let cut = &hello()[..9];
    let mut t = raw(&s, cut).await;
    t.shutdown().await.unwrap();
    assert_eq!(first_error(&mut t).await, Some(ErrorCode::BadRequest));
    s.client().await.ls("").await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn slow_and_silent_peers_time_out() {
    let s = TestServer::start(|c| {
        c.deadlines.header = Duration::from_millis(600);
        c.deadlines.idle = Duration::from_millis(800);
        c.sniff_timeout = Duration::from_millis(300);
    })
    .await;
    // Slowloris: a frame head dribbled out a byte at a time.
    let h = hello();
    let mut t = raw(&s, &h[..5]).await;
    let started = std::time::Instant::now();
    for b in &h[5..12] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if t.write_all(&[*b]).await.is_err() {
            break;
        }
    }
    assert_eq!(first_error(&mut t).await, Some(ErrorCode::Timeout));
    assert!(started.elapsed() < Duration::from_secs(5));

    // Idle after hello: closed.
    let mut c = s.client().await;
    c.ls("").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(c.ls("").await.is_err());

    // Silence from the start: a person at nc, who gets the chat.
    let t = TcpStream::connect(s.addr).await.unwrap();
    let mut lines = tokio::io::BufReader::new(t);
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(line.starts_with("* welcome to ferry chat"), "{line:?}");
    s.stop().await;
}

#[tokio::test]
async fn unrecognised_first_bytes_get_one_line_and_close_without_chat() {
    let s = TestServer::start(|c| {
        c.chat.enabled = false;
        c.granted.chat = false;
        c.anonymous.chat = false;
    })
    .await;
    for (probe, answer) in [
        (&b"hello there\r\n"[..], "ferry: unrecognised protocol"),
        (b"\x00\x00\x00\x00\x00\x00", "ferry: unrecognised protocol"),
        (
            b"SSH-2.0-OpenSSH\r\n",
            "ferry: this port speaks ferry, HTTP and plain-text chat, not this protocol",
        ),
    ] {
        let mut t = raw(&s, probe).await;
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), t.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert!(out.starts_with(answer), "{out:?}");
        assert_eq!(out.lines().count(), 1);
    }
    s.stop().await;
}

#[tokio::test]
async fn traversal_attempts_through_the_native_door_touch_nothing_outside() {
    let parent = tempfile::tempdir().unwrap();
    let root = tempfile::Builder::new().tempdir_in(parent.path()).unwrap();
    let root_path = root.path().to_path_buf();
    fs::write(parent.path().join("secret.txt"), b"outside").unwrap();
    let s = TestServer::start_in(root, |_| {}).await;
    common::traversal::native_refuses_every_traversal(&s.addr.to_string()).await;
    let names: Vec<_> = fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "something was written beside the root: {names:?}"
    );
    assert_eq!(
        fs::read(parent.path().join("secret.txt")).unwrap(),
        b"outside"
    );
    assert_eq!(fs::read_dir(&root_path).unwrap().count(), 0);
    s.stop().await;
}

#[tokio::test]
async fn traversal_attempts_through_the_classic_door_touch_nothing_outside() {
    let parent = tempfile::tempdir().unwrap();
    let root = tempfile::Builder::new().tempdir_in(parent.path()).unwrap();
    let root_path = root.path().to_path_buf();
    fs::write(parent.path().join("secret.txt"), b"outside").unwrap();
    let s = TestServer::start_in(root, |_| {}).await;
    common::traversal::classic_refuses_every_traversal(&s.addr.to_string()).await;
    assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 2);
    assert_eq!(
        fs::read(parent.path().join("secret.txt")).unwrap(),
        b"outside"
    );
    assert_eq!(fs::read_dir(&root_path).unwrap().count(), 0);
    s.stop().await;
}

#[tokio::test]
async fn put_with_a_body_of_the_wrong_length_is_refused_and_nothing_appears() {
    let s = TestServer::start(|_| {}).await;
    let mut c = s.client().await;
    start_put(&mut c, "f", 10).await;
    let conn = c.connection().await.unwrap();
    conn.send(Kind::Request, &Request::Data { offset: 0 }, 11)
        .await
        .unwrap();
    conn.send_body(&[0u8; 11]).await.unwrap();
    let head = conn.next_head().await.unwrap();
    assert_eq!(head.kind, Kind::Error);
    // A lying checksum: the bytes never become visible.
    let mut c = s.client().await;
    start_put(&mut c, "f", 10).await;
    let conn = c.connection().await.unwrap();
    conn.send(Kind::Request, &Request::Data { offset: 0 }, 10)
        .await
        .unwrap();
    conn.send_body(b"0123456789").await.unwrap();
    conn.send(
        Kind::Request,
        &Request::Commit {
            sha256: "00".repeat(32),
        },
        0,
    )
    .await
    .unwrap();
    let head = conn.next_head().await.unwrap();
    let e: ErrorReply = serde_json::from_slice(&head.header).unwrap();
    assert_eq!(e.code, ErrorCode::ChecksumMismatch);
    assert!(!s.path("f").exists());
    assert!(partial_files(s.root.path()).is_empty());
    s.stop().await;
}

/// Inside an upload, as between requests: a frame of the server's kinds
/// is refused, not taken for `data` or `commit`, and bytes that are no
/// frame get an error frame before the close; what came of a body stays
/// for a resume, and nothing reaches the name.
#[tokio::test]
async fn inside_an_upload_only_requests_count_and_garbage_is_answered() {
    let s = TestServer::start(|_| {}).await;
    async fn told(c: &mut Client) -> ErrorReply {
        let conn = c.connection().await.unwrap();
        let head = tokio::time::timeout(Duration::from_secs(10), conn.next_head())
            .await
            .expect("an answer, not a wait")
            .unwrap();
        assert_eq!(head.kind, Kind::Error);
        let e: ErrorReply = serde_json::from_slice(&head.header).unwrap();
        assert!(conn.next_head().await.is_err(), "closed after saying why");
        e
    }
    // `data` sent as a reply.
    let mut c = s.client().await;
    start_put(&mut c, "kind", 4).await;
    let conn = c.connection().await.unwrap();
    conn.send(Kind::Ok, &Request::Data { offset: 0 }, 4)
        .await
        .unwrap();
    conn.send_body(b"abcd").await.unwrap();
    let e = told(&mut c).await;
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(e.message.contains("request frames"), "{}", e.message);
    assert!(partial_files(s.root.path()).is_empty());
    // `commit` sent as a partial reply, after the whole body.
    let commit = Request::Commit {
        sha256: "00".repeat(32),
    };
    let mut c = s.client().await;
    start_put(&mut c, "late", 4).await;
    let conn = c.connection().await.unwrap();
    conn.send(Kind::Request, &Request::Data { offset: 0 }, 4)
        .await
        .unwrap();
    conn.send_body(b"abcd").await.unwrap();
    conn.send(Kind::Partial, &commit, 0).await.unwrap();
    let e = told(&mut c).await;
    assert_eq!(e.code, ErrorCode::BadRequest);
    // Bytes that are no frame where the commit belongs.
    let mut c = s.client().await;
    start_put(&mut c, "junk", 4).await;
    let conn = c.connection().await.unwrap();
    conn.send(Kind::Request, &Request::Data { offset: 0 }, 4)
        .await
        .unwrap();
    conn.send_body(b"abcd").await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let e = told(&mut c).await;
    assert_eq!(e.code, ErrorCode::BadRequest);
    for name in ["kind", "late", "junk"] {
        assert!(fs::symlink_metadata(s.path(name)).is_err(), "{name}");
    }
    assert_eq!(partial_files(s.root.path()).len(), 2, "late's and junk's");
    s.stop().await;
}

/// Sends `put` by hand and checks the server is ready for the data.
async fn start_put(c: &mut Client, path: &str, size: u64) {
    let conn = c.connection().await.unwrap();
    let put = Request::Put {
        path: path.into(),
        size,
        mtime: None,
        force: false,
        resume: true,
        digest: None,
    };
    conn.send(Kind::Request, &put, 0).await.unwrap();
    assert_eq!(conn.next_head().await.unwrap().kind, Kind::Partial);
}

/// A fake server that says hello properly, then lists hostile names.
async fn fake_server(entries: serde_json::Value) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut t, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = t.read(&mut buf).await;
        let hello = serde_json::json!({"version":1,"server":"evil","software":"x","features":[],
            "auth_required":false,"auth_available":false,
            "permissions":{"read":true,"upload":false,"delete":false,"exec":false}});
        t.write_all(&frame(Kind::Ok, hello.to_string().as_bytes(), b""))
            .await
            .unwrap();
        let _ = t.read(&mut buf).await;
        let n = entries.as_array().unwrap().len();
        let batch = serde_json::json!({ "entries": entries });
        t.write_all(&frame(Kind::Partial, batch.to_string().as_bytes(), b""))
            .await
            .unwrap();
        t.write_all(&frame(
            Kind::Ok,
            format!("{{\"count\":{n}}}").as_bytes(),
            b"",
        ))
        .await
        .unwrap();
        let _ = t.read(&mut buf).await;
    });
    addr
}

#[tokio::test]
async fn the_client_refuses_hostile_names_from_a_server() {
    for bad in [
        "../../.bashrc",
        "/etc/cron.d/x",
        "ok/../../x",
        "a\u{1b}[2Jb",
        "C:\\x",
    ] {
        let walk = serde_json::json!([
            {"path":"fine.txt","kind":"file","size":1,"mtime":null},
            {"path": bad, "kind":"file","size":1,"mtime":null}
        ]);
        let addr = fake_server(walk).await;
        let mut c = Client::connect(&addr.to_string(), None).await.unwrap();
        let e = c.walk("").await.unwrap_err();
        assert!(
            matches!(e, ferry::client::ClientError::Name(_)),
            "{bad:?}: {e}"
        );
        assert!(!e.to_string().contains('\u{1b}'));

        let ls = serde_json::json!([{"name": bad, "kind":"file","size":1,"mtime":null}]);
        let addr = fake_server(ls).await;
        let mut c = Client::connect(&addr.to_string(), None).await.unwrap();
        assert!(c.ls("").await.is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn a_client_that_leaves_after_put_leaves_no_partial_file() {
    let s = TestServer::start(|_| {}).await;
    let mut c = s.client().await;
    start_put(&mut c, "ghost", 100).await;
    drop(c);
    for _ in 0..40 {
        if partial_files(s.root.path()).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(partial_files(s.root.path()).is_empty());
    assert!(!s.path("ghost").exists());
    s.stop().await;
}
