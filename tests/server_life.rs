//! Server life: auth, connection limits, many clients at once, graceful
//! shutdown.

mod common;

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use common::{TestServer, noise, partial_files, upload_left_waiting};
use ferry::client::{Client, ClientError, TransferOpts};
use ferry::secret::Secret;
use ferry::wire::messages::ErrorCode;
use indicatif::ProgressBar;

const TOKEN: &str = "s3cret-token-for-tests";

#[tokio::test]
async fn a_token_unlocks_what_the_server_grants() {
    let s = TestServer::start(|c| {
        c.token = Some(Secret::new(TOKEN));
        c.anonymous = ferry::access::Rights {
            read: true,
            ..Default::default()
        };
    })
    .await;
    fs::write(s.path("r.txt"), b"r").unwrap();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("f");
    fs::write(&src, b"f").unwrap();

    // Anonymous: read only, and uploads say a token would help.
    let mut anon = s.client().await;
    assert!(
        anon.hello().await.unwrap().auth_available && !anon.hello().await.unwrap().auth_required
    );
    assert_eq!(anon.ls("").await.unwrap().len(), 1);
    let e = anon
        .put_file(&src, "f", TransferOpts::default(), &ProgressBar::hidden())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::AuthRequired));

    // With the token: everything granted.
    let mut authed = s.client_with(TOKEN).await.unwrap();
    assert!(authed.hello().await.unwrap().permissions.upload);
    authed
        .put_file(&src, "f", TransferOpts::default(), &ProgressBar::hidden())
        .await
        .unwrap();

    // Wrong token: refused, and the next attempt from the address is slowed.
    let started = std::time::Instant::now();
    let e = s.client_with("wrong-token-000").await.err().unwrap();
    assert_eq!(e.code(), Some(ErrorCode::AuthFailed));
    let e = s.client_with("wrong-token-001").await.err().unwrap();
    assert_eq!(e.code(), Some(ErrorCode::AuthFailed));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "no throttling"
    );
    s.stop().await;
}

/// The client sends its first request right behind its token, without
/// waiting for the reply to `auth`; a wrong token stops that request
/// (which anonymous clients could do here) and every later one until a
/// right token is given on the same connection.
#[tokio::test]
async fn a_request_sent_behind_a_wrong_token_is_not_done() {
    let s = TestServer::start(|c| {
        c.token = Some(Secret::new(TOKEN));
        c.anonymous = ferry::access::Rights {
            read: true,
            upload: true,
            ..Default::default()
        };
    })
    .await;
    let wrong = Secret::new("wrong-token-000");
    let mut c = Client::connect(&s.addr.to_string(), Some(&wrong))
        .await
        .unwrap();
    let e = c.mkdir("made", false).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::AuthFailed), "{e}");
    assert!(!s.path("made").exists());

    // By hand on the same connection: the mkdir's own reply says it was
    // not done; so is the next request; a right token then lets it go.
    use ferry::wire::Kind;
    use ferry::wire::messages::{ErrorReply, Request};
    let conn = c.connection().await.unwrap();
    let error = |header: &[u8]| serde_json::from_slice::<ErrorReply>(header).unwrap();
    let head = conn.next_head().await.unwrap();
    assert_eq!(head.kind, Kind::Error);
    assert_eq!(error(&head.header).code, ErrorCode::AuthFailed);
    let mkdir = Request::Mkdir {
        path: "made".into(),
        parents: false,
    };
    conn.send(Kind::Request, &mkdir, 0).await.unwrap();
    let head = conn.next_head().await.unwrap();
    assert_eq!(error(&head.header).code, ErrorCode::AuthFailed);
    assert!(!s.path("made").exists());
    // A hello now says so: nothing may be done (not what anonymous
    // clients may do, which the refusals above are not).
    conn.send(Kind::Request, &Request::hello(), 0)
        .await
        .unwrap();
    let head = conn.next_head().await.unwrap();
    assert_eq!(head.kind, Kind::Ok);
    let hello: ferry::wire::messages::HelloReply = serde_json::from_slice(&head.header).unwrap();
    assert_eq!(hello.permissions, Default::default());
    // The throttle spaces this address's next attempt; it waits its turn.
    conn.send(Kind::Request, &Request::auth(&Secret::new(TOKEN)), 0)
        .await
        .unwrap();
    assert_eq!(conn.next_head().await.unwrap().kind, Kind::Ok);
    conn.send(Kind::Request, &mkdir, 0).await.unwrap();
    assert_eq!(conn.next_head().await.unwrap().kind, Kind::Ok);
    assert!(s.path("made").is_dir());

    // An `auth` the server cannot read fails too; a refused request's body
    // is not taken for the next request: one reply, then the end.
    let mut c = s.client().await;
    let conn = c.connection().await.unwrap();
    let other = Request::Mkdir {
        path: "other".into(),
        parents: false,
    };
    for auth in [r#"{"op":"auth","token":null}"#, r#"{"op":"auth","user":7}"#] {
        conn.send_encoded(Kind::Request, auth.as_bytes(), 0)
            .await
            .unwrap();
        conn.send(Kind::Request, &other, 0).await.unwrap();
        let head = conn.next_head().await.unwrap();
        assert_eq!(error(&head.header).code, ErrorCode::BadRequest);
        let head = conn.next_head().await.unwrap();
        assert_eq!(error(&head.header).code, ErrorCode::AuthFailed, "{auth}");
    }
    assert!(!s.path("other").exists());
    let plan = Request::Plan {
        path: "other".into(),
        force: false,
    };
    conn.send(Kind::Request, &plan, 2).await.unwrap();
    conn.send_body(b"[]").await.unwrap();
    let head = conn.next_head().await.unwrap();
    assert_eq!(error(&head.header).code, ErrorCode::AuthFailed);
    assert!(conn.next_head().await.is_err(), "a second reply");
    s.stop().await;
}

/// The request after `auth` reaches the server before the reply to `auth`
/// reaches the client, in the same segment: for a listing, a download and
/// an upload, through a relay that watches (see [`relay_watching`]).
#[tokio::test]
async fn the_first_request_goes_right_behind_the_token() {
    let s = TestServer::start(|c| c.token = Some(Secret::new(TOKEN))).await;
    fs::write(s.path("r.txt"), b"r").unwrap();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("up.txt");
    fs::write(&src, b"up").unwrap();
    for op in ["ls", "get", "put"] {
        let (relay, watch) = relay_watching(s.addr, op).await;
        let mut c = Client::connect(&relay.to_string(), Some(&Secret::new(TOKEN)))
            .await
            .unwrap();
        let bar = ProgressBar::hidden();
        match op {
            "ls" => {
                let names: Vec<String> = c
                    .ls("")
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.name)
                    .collect();
                assert_eq!(names, ["r.txt"]);
            }
            "get" => {
                let to = local.path().join("r.txt");
                c.get_file("r.txt", &to, TransferOpts::default(), &bar)
                    .await
                    .unwrap();
                assert_eq!(fs::read(&to).unwrap(), b"r");
            }
            _ => {
                c.put_file(&src, "up.txt", TransferOpts::default(), &bar)
                    .await
                    .unwrap();
                assert_eq!(fs::read(s.path("up.txt")).unwrap(), b"up");
            }
        }
        assert!(c.hello().await.unwrap().permissions.upload, "{op}");
        drop(c);
        let (before, segments) = watch.await.unwrap();
        assert!(before, "{op}: the client waited for the reply to auth");
        assert_eq!(
            segments,
            Some(2),
            "{op}: the hello, then auth and {op} in one segment"
        );
    }
    s.stop().await;
}

/// A relay to `server` that holds the server's bytes after its hello's
/// reply until it has seen `auth` and a request of `op` from the client
/// (or for 2 s). It gives whether it saw both before the reply to `auth`,
/// and how many data segments it had from the client when it first held
/// both: the hello's, then theirs.
async fn relay_watching(
    server: std::net::SocketAddr,
    op: &'static str,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<(bool, Option<u32>)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = listener.local_addr().unwrap();
    let sent = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let seen = sent.clone();
    let request = format!(r#""op":"{op}""#);
    let both = move |up: &[u8]| {
        let up = String::from_utf8_lossy(up);
        up.contains(r#""op":"auth""#) && up.contains(&request)
    };
    let both_up = both.clone();
    let segments = Arc::new(std::sync::Mutex::new(None::<u32>));
    let counted = segments.clone();
    let watch = tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let upstream = tokio::net::TcpStream::connect(server).await.unwrap();
        let ((mut cr, mut cw), (mut sr, mut sw)) = (client.into_split(), upstream.into_split());
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = cr.read(&mut buf).await {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
                if both_up(&seen.lock().unwrap()) {
                    let n = data_segments_in(cr.as_ref());
                    counted.lock().unwrap().get_or_insert(n);
                }
                if sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = [0u8; 4096];
        let mut replies = 0;
        let mut before_auth_reply = false;
        while let Ok(n @ 1..) = sr.read(&mut buf).await {
            replies += 1;
            if replies == 2 {
                // Past the hello's reply: the next bytes answer `auth`.
                let until = std::time::Instant::now() + Duration::from_secs(2);
                while std::time::Instant::now() < until && !before_auth_reply {
                    before_auth_reply = both(&sent.lock().unwrap());
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let n = *segments.lock().unwrap();
        (before_auth_reply, n)
    });
    (relay, watch)
}

/// How many segments carrying data `socket` has received (`TCP_INFO`).
#[allow(unsafe_code)] // getsockopt(TCP_INFO): no safe wrapper offers it
fn data_segments_in(socket: &tokio::net::TcpStream) -> u32 {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain old data; the kernel fills at most `len`
    // bytes of it and says how many.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    info.tcpi_data_segs_in
}

#[tokio::test]
async fn a_private_server_requires_the_token_and_refuses_the_classic_door() {
    let s = TestServer::start(|c| {
        c.token = Some(Secret::new(TOKEN));
        c.anonymous = Default::default();
    })
    .await;
    fs::write(s.path("r.txt"), b"r").unwrap();
    let e = Client::connect(&s.addr.to_string(), None)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), Some(ErrorCode::AuthRequired));
    // A raw client that skips auth gets refused per request.
    let mut c = s.client_with(TOKEN).await.unwrap();
    assert_eq!(c.ls("").await.unwrap().len(), 1);

    let header = br#"{"cmd":"get","filename":"r.txt"}"#;
    let mut msg = (header.len() as i32).to_le_bytes().to_vec();
    msg.extend_from_slice(header);
    let out = s.exchange(&msg, Duration::from_secs(10)).await;
    let reply: serde_json::Value = serde_json::from_slice(&out[4..]).unwrap();
    assert!(
        reply["error"].as_str().unwrap().contains("authentication"),
        "{reply}"
    );
    s.stop().await;
}

#[tokio::test]
async fn connection_limits_answer_busy_in_the_peers_framing() {
    let s = TestServer::start(|c| {
        c.limits.max_per_ip = 2;
        c.limits.limit_loopback = true;
    })
    .await;
    let _a = s.client().await;
    let _b = s.client().await;
    let e = Client::connect(&s.addr.to_string(), None)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), Some(ErrorCode::Busy), "{e}");
    // nc-style peers get a text line.
    let line = String::from_utf8(s.exchange(b"hi\n", Duration::from_secs(10)).await).unwrap();
    assert!(line.contains("busy"), "{line:?}");
    drop(_a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.client().await.ls("").await.unwrap();
    s.stop().await;

    let s = TestServer::start(|c| c.limits.max_connections = 1).await;
    let _a = s.client().await;
    let e = Client::connect(&s.addr.to_string(), None)
        .await
        .err()
        .unwrap();
    assert_eq!(e.code(), Some(ErrorCode::Busy));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_clients_put_and_get_at_once() {
    let s = Arc::new(TestServer::start(|_| {}).await);
    let local = Arc::new(tempfile::tempdir().unwrap());
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let s = s.clone();
        let local = local.clone();
        tasks.push(tokio::spawn(async move {
            let data = noise(64 * 1024 + i as usize * 997, i + 1);
            let src = local.path().join(format!("src-{i}"));
            fs::write(&src, &data).unwrap();
            let mut c = Client::connect(&s.addr.to_string(), None).await?;
            let name = format!("file-{i}");
            let up = c
                .put_file(&src, &name, TransferOpts::default(), &ProgressBar::hidden())
                .await?;
            let dst = local.path().join(format!("dst-{i}"));
            let down = c
                .get_file(&name, &dst, TransferOpts::default(), &ProgressBar::hidden())
                .await?;
            assert_eq!(up.digest, down.digest);
            assert_eq!(fs::read(&dst).unwrap(), data);
            Ok::<_, ClientError>(up.digest)
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let sha = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(common::blake3_file(&s.path(&format!("file-{i}"))), sha);
    }
    assert!(partial_files(s.root.path()).is_empty());
}

#[tokio::test]
async fn shutdown_aborts_a_stalled_upload_and_keeps_what_came_for_a_resume() {
    let s = TestServer::start(|c| c.shutdown_grace = Duration::from_millis(500)).await;
    let mut c = s.client().await;
    let conn = c.connection().await.unwrap();
    upload_left_waiting(conn, "stalled", 1 << 20, Some(&[1u8; 4096])).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(partial_files(s.root.path()).len(), 1);
    // An idle second client is simply closed.
    let mut idle = s.client().await;
    let started = std::time::Instant::now();
    let root = s.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    // What came is kept, for the client to go on with once the server is
    // back.
    let kept = partial_files(root.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(fs::read(&kept[0]).unwrap(), [1u8; 4096]);
    assert!(!root.path().join("stalled").exists());
    let head = c.connection().await.unwrap().next_head().await.unwrap();
    let e: ferry::wire::messages::ErrorReply = serde_json::from_slice(&head.header).unwrap();
    assert_eq!(e.code, ErrorCode::ShuttingDown);
    assert!(idle.ls("").await.is_err());
}

#[tokio::test]
async fn shutdown_lets_a_running_transfer_finish_within_the_grace_period() {
    let s = TestServer::start(|c| c.shutdown_grace = Duration::from_secs(20)).await;
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("f");
    fs::write(&src, noise(16 << 20, 5)).unwrap();
    let via = common::proxy(
        s.addr,
        common::ProxyPlan {
            cut_up_after: None,
            cut_down_after: None,
            up_rate: Some(16 << 20),
            down_rate: None,
        },
    )
    .await;
    let src2 = src.clone();
    let upload = tokio::spawn(async move {
        let mut c = Client::connect(&via.to_string(), None).await.unwrap();
        c.put_file(&src2, "f", TransferOpts::default(), &ProgressBar::hidden())
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let root = s.stop().await;
    let done = upload.await.unwrap().unwrap();
    assert_eq!(common::blake3_file(&root.path().join("f")), done.digest);
    assert!(partial_files(root.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_times_hellos_and_a_repeated_hello_keeps_authentication() {
    let s = TestServer::start(|c| {
        c.token = Some(Secret::new(TOKEN));
        c.anonymous = Default::default();
    })
    .await;
    let mut c = s.client_with(TOKEN).await.unwrap();
    for _ in 0..3 {
        let rtt = c.ping().await.unwrap();
        assert!(rtt < Duration::from_secs(2));
    }
    assert_eq!(
        c.ls("").await.unwrap().len(),
        0,
        "still authenticated after repeated hellos"
    );
    let (local, peer) = c.addresses();
    assert_eq!(peer.unwrap(), s.addr);
    assert!(local.unwrap().ip().is_loopback());

    let addr = s.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        common::run_cli(
            &["ping", &addr, "-c", "3", "--json"],
            &[("FERRY_TOKEN", TOKEN)],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.0, 0, "{}", out.2);
    let v: serde_json::Value = serde_json::from_str(&out.1).unwrap();
    assert_eq!(v["rtt_ms"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["features"],
        serde_json::json!([
            "files",
            "time",
            "chat",
            "chat-since",
            "web",
            "blake3",
            "fresh",
            "auth-pipelining"
        ])
    );
    let dead = tokio::task::spawn_blocking(|| common::run_cli(&["ping", "127.0.0.1:1"], &[]))
        .await
        .unwrap();
    assert_eq!(dead.0, 255);
    s.stop().await;
}

#[test]
fn ctrl_c_as_soon_as_the_server_says_it_is_up_is_a_clean_shutdown() {
    // The handlers are in place before the first line is printed: a
    // Ctrl-C right after it never meets the default (kill at once).
    for _ in 0..5 {
        let root = tempfile::tempdir().unwrap();
        let mut s = common::spawn_bin_server(root.path(), &[], &[]);
        let pid = s.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status();
        let status = s.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}

#[tokio::test]
async fn shutdown_ends_an_upload_waiting_for_its_next_frame_and_keeps_what_came() {
    let s = TestServer::start(|c| c.shutdown_grace = Duration::from_millis(500)).await;
    // One waits for its data, one (its body whole) for its commit.
    let mut before = s.client().await;
    upload_left_waiting(before.connection().await.unwrap(), "no-data", 1 << 20, None).await;
    let mut after = s.client().await;
    let body = noise(300_000, 3);
    let size = body.len() as u64;
    upload_left_waiting(
        after.connection().await.unwrap(),
        "no-commit",
        size,
        Some(&body),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(partial_files(s.root.path()).len(), 2, "both under way");
    let started = std::time::Instant::now();
    let root = s.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The one that had its body keeps it for a resume; the other had
    // nothing to keep.
    let kept = partial_files(root.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(fs::read(&kept[0]).unwrap(), body);
    assert!(!root.path().join("no-commit").exists());
    assert!(!root.path().join("no-data").exists());
    for c in [&mut before, &mut after] {
        let head = c.connection().await.unwrap().next_head().await.unwrap();
        let e: ferry::wire::messages::ErrorReply = serde_json::from_slice(&head.header).unwrap();
        assert_eq!(e.code, ErrorCode::ShuttingDown);
    }
}

#[tokio::test]
async fn an_upload_waits_for_its_commit_only_as_long_as_a_body_may_stall() {
    let s = TestServer::start(|c| c.deadlines.body = Duration::from_millis(800)).await;
    let mut c = s.client().await;
    let body = noise(100_000, 4);
    let size = body.len() as u64;
    upload_left_waiting(c.connection().await.unwrap(), "held", size, Some(&body)).await;
    // The connection is given up on, and the name let go of, well before
    // the idle deadline between requests.
    let started = std::time::Instant::now();
    let conn = c.connection().await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), conn.next_head())
        .await
        .unwrap()
        .unwrap();
    let e: ferry::wire::messages::ErrorReply = serde_json::from_slice(&end.header).unwrap();
    assert_eq!(e.code, ErrorCode::Timeout, "{}", e.message);
    assert!(conn.next_head().await.is_err(), "closed after saying why");
    assert!(started.elapsed() < Duration::from_secs(5));
    // What came is kept for a resume, and the name is free for it.
    assert_eq!(partial_files(s.root.path()).len(), 1);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("held");
    fs::write(&src, &body).unwrap();
    let mut again = s.client().await;
    let done = again
        .put_file(
            &src,
            "held",
            TransferOpts::default(),
            &ProgressBar::hidden(),
        )
        .await
        .unwrap();
    assert_eq!(done.resumed_from, body.len() as u64);
    assert_eq!(fs::read(s.path("held")).unwrap(), body);
}
