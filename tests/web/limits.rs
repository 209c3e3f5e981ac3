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

/// Every request is logged once, in order per connection: 303 requests
/// over three keep-alive connections (the workers gather their lines and
/// hand them over in batches of 16 KiB; this is more than one), then a
/// graceful stop.
#[tokio::test]
async fn every_request_is_logged_once() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), "a").unwrap();
    let mut srv = common::spawn_bin_server(root.path(), &["--no-discovery"], &[]);
    for c in 0..3 {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
        let mut req = String::new();
        for i in 0..100 {
            // A query's names are logged (its values are not).
            req += &format!("GET /a.txt?n{c}-{i} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        }
        req += &format!(
            "GET /a.txt?n{c}-end HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
        std::io::Write::write_all(&mut conn, req.as_bytes()).unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut conn, &mut out).unwrap();
        assert_eq!(out.matches("HTTP/1.1 200").count(), 101);
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(srv.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = srv.child.wait();
    let log = srv.stderr.join().unwrap();
    for c in 0..3 {
        let seen: Vec<&str> = log
            .lines()
            .filter_map(|l| l.split(&format!("?n{c}-")).nth(1))
            .filter_map(|rest| rest.split(' ').next())
            .collect();
        let mut wanted: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        wanted.push("end".into());
        assert_eq!(seen, wanted, "connection {c}: {log}");
    }
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

/// HEAD gets GET's headers and no body; the log records the bytes that
/// really went: the whole file, none for HEAD, and only part of a
/// download the client cut off.
#[tokio::test]
async fn head_matches_get_and_the_log_counts_bytes_sent() {
    use std::io::{Read, Write};
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("small.txt"), "0123456789").unwrap();
    std::fs::write(root.path().join("big.bin"), vec![1u8; 64 << 20]).unwrap();
    let mut srv = common::spawn_bin_server(root.path(), &["--no-discovery"], &[]);
    let ask = |req: &str| {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let headers = |ans: &str| -> Vec<String> {
        let head = ans.split("\r\n\r\n").next().unwrap();
        head.lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("date:"))
            .map(str::to_string)
            .collect()
    };
    let get = ask("GET /small.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let head = ask("HEAD /small.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(headers(&get), headers(&head));
    assert!(
        get.ends_with("0123456789") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    // A request hyper cannot read (a control byte in a header) is
    // answered 400 by it, and logged all the same.
    let bad = ask("GET /x HTTP/1.1\r\nHost: localhost\r\nX-Bad: a\x1bb\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    // A download read a little of, then dropped.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut some = vec![0u8; 65536];
    c.read_exact(&mut some).unwrap();
    drop(c);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(srv.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = srv.child.wait();
    let log = srv.stderr.join().unwrap();
    let line = |what: &str| {
        log.lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line for {what}: {log}"))
            .to_string()
    };
    assert!(line("\"GET /small.txt").contains("\" 200 10 "), "{log}");
    assert!(line("\"HEAD /small.txt").contains("\" 200 0 "), "{log}");
    assert!(line("\"-\" 400 -").contains("127.0.0.1 - - ["), "{log}");
    let big = line("\"GET /big.bin");
    let sent: u64 = big
        .split("\" 200 ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect(&big);
    assert!((65536..64 << 20).contains(&sent), "{big}");
}

/// A browser opens a connection ahead of need and leaves it silent for
/// seconds; from an address that has just spoken HTTP, such a connection
/// is not taken for a text-chat client, and serves HTTP when the request
/// comes.
#[tokio::test]
async fn a_browsers_silent_spare_connection_stays_http() {
    let s = TestServer::start(|_| {}).await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    let ans = raw(
        &s,
        b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11)\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ans), 200, "{ans}");
    let mut spare = TcpStream::connect(s.addr).await.unwrap();
    let mut first = [0u8; 64];
    let greeted = tokio::time::timeout(Duration::from_secs(4), spare.read(&mut first)).await;
    assert!(greeted.is_err(), "greeted as chat: {greeted:?}");
    spare
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    spare.read_to_string(&mut out).await.unwrap();
    assert_eq!(status_of(&out), 200, "{out}");
}

/// What RFC 9112 says to refuse is refused, and the connection closed:
/// an HTTP/1.1 request without Host, and one with two. HTTP/1.0 without
/// Host is still answered, as `nc` one-liners send it.
#[tokio::test]
async fn requests_http_says_to_refuse_are_refused() {
    let s = TestServer::start(|_| {}).await;
    std::fs::write(s.path("f.txt"), "f").unwrap();
    let wait = std::time::Duration::from_secs(5);
    for (req, why) in [
        (&b"GET /f.txt HTTP/1.1\r\n\r\n"[..], "needs a Host"),
        (
            b"GET /f.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n",
            "one Host header",
        ),
    ] {
        let out = String::from_utf8_lossy(&s.exchange(req, wait).await).into_owned();
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
        assert!(out.contains(why), "{out}");
        let answers = out.lines().filter(|l| l.starts_with("HTTP/1.")).count();
        assert_eq!(answers, 1, "closed after: {out}");
    }
    let out = s.exchange(b"GET /f.txt HTTP/1.0\r\n\r\n", wait).await;
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.starts_with("HTTP/1.0 200") && out.ends_with("\r\n\r\nf"),
        "{out}"
    );
    s.stop().await;
}
