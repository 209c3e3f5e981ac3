//! Limits: upload sizes, slow and oversized requests, a busy server, the
//! request log, and the web door turned off.

use super::*;

#[tokio::test]
async fn upload_limits_and_cut_uploads_leave_nothing() {
    let s = TestServer::start(|cfg| cfg.max_upload = Some(1000)).await;
    let c = http();
    let r = c
        .put(url(&s, "/big"))
        .body(vec![1u8; 1001])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Chunked, no length: stopped as soon as it passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..5).map(|_| Ok(vec![2u8; 400])).collect();
    let r = c
        .put(url(&s, "/big"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Chunked within the limit: stored whole.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..2).map(|_| Ok(vec![3u8; 400])).collect();
    let r = c
        .put(url(&s, "/ok"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(std::fs::read(s.path("ok")).unwrap(), vec![3u8; 800]);
    // A body cut off halfway: nothing appears, no partial file stays.
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(b"PUT /cut HTTP/1.1\r\nHost: localhost\r\nContent-Length: 900\r\n\r\n")
        .await
        .unwrap();
    sock.write_all(&[4u8; 300]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(sock);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!s.path("cut").exists());
    assert!(common::partial_files(s.root.path()).is_empty());
    assert!(!s.path("big").exists());
    s.stop().await;
}

#[tokio::test]
async fn slow_and_oversized_requests_are_cut_off() {
    let s = TestServer::start(|cfg| {
        cfg.deadlines.header = Duration::from_secs(1);
        cfg.deadlines.body = Duration::from_secs(1);
    })
    .await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    // Slowloris: a head that never ends is closed.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if c.write_all(b"X-Slow: 1\r\n").await.is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "held for {:?}",
        started.elapsed()
    );
    // Kept alive but idle: closed after the same time.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "an idle kept-alive connection stayed open");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(4));
    // A body that stalls: the upload fails, nothing is left.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"PUT /slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nabc")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    assert!(!s.path("slow").exists());
    assert!(common::partial_files(s.root.path()).is_empty());
    // Headers past the bound: 431; too many of them: refused too.
    let big = format!(
        "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "y".repeat(20_000)
    );
    assert_eq!(status_of(&raw(&s, big.as_bytes()).await), 431);
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n{many}Connection: close\r\n\r\n");
    let st = status_of(&raw(&s, many.as_bytes()).await);
    assert!(st == 431 || st == 400, "{st}");
    // Garbage after a valid start: 400, and the server goes on.
    let ans = raw(&s, b"GET /a.txt HTTP/1.1\r\nHost x\r\n\r\n").await;
    assert_eq!(status_of(&ans), 400, "{ans}");
    let r = http().get(url(&s, "/a.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn busy_servers_answer_503() {
    let s = TestServer::start(|cfg| {
        cfg.limits.max_connections = 1;
        cfg.limits.limit_loopback = true;
    })
    .await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    let _hold = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ans = raw(
        &s,
        b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ans), 503, "{ans}");
    s.stop().await;
}

#[tokio::test]
async fn requests_are_logged_with_peer_text_escaped() {
    let root = tempfile::tempdir().unwrap();
    let mut srv = common::spawn_bin_server(root.path(), &["--no-discovery"], &[]);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    std::io::Write::write_all(
        &mut c,
        b"GET /evil%1b[31mred%0aforged HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut c, &mut out);
    assert!(
        out.starts_with("HTTP/1.1 400") || out.starts_with("HTTP/1.1 404"),
        "{out}"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(srv.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = srv.child.wait();
    let log = srv.stderr.join().unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("GET /evil"))
        .expect("a log line");
    assert!(
        line.contains("\"GET /evil%1b[31mred%0aforged HTTP/1.1\" 4"),
        "{line}"
    );
    assert!(!line.contains('\u{1b}'));
}

#[tokio::test]
async fn without_the_web_door_http_gets_a_clear_refusal() {
    let s = TestServer::start(|cfg| cfg.web = false).await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    let ans = raw(&s, b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status_of(&ans), 501, "{ans}");
    assert!(ans.contains("--no-web"), "{ans}");
    // The native door is unaffected.
    let mut c = s.client().await;
    assert_eq!(c.ls("").await.unwrap().len(), 1);
    s.stop().await;
}
