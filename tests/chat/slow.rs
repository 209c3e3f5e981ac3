//! Slow readers and fast senders.

use super::*;

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_and_the_others_get_everything() {
    // 3 MB: more than the stuck client's socket buffers and queue hold.
    const SENT: usize = 3000;
    let s = fast_server().await;
    // Connects, gets in, then never reads again.
    let stuck = Text::connect(s.addr).await;
    let mut readers = Vec::new();
    for i in 0..5 {
        let mut c = Client::connect(&s.addr.to_string(), None).await.unwrap();
        let nick = format!("reader{i}");
        readers.push(tokio::spawn(async move {
            let (mut chat, _) = c.chat(Some(&nick), &[]).await.unwrap();
            let mut n = 0;
            let mut saw_drop = false;
            while n < SENT {
                match chat.next_event().await.unwrap().unwrap() {
                    Event::Message { .. } => n += 1,
                    Event::Left { reason, .. } => {
                        saw_drop |= reason.unwrap_or_default().contains("stopped reading")
                    }
                    _ => {}
                }
            }
            (n, saw_drop)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sender = s.client().await;
    let (mut chat, _) = sender.chat(Some("sender"), &[]).await.unwrap();
    let started = Instant::now();
    let line = "z".repeat(1000);
    say_all(&mut chat, SENT, |i| format!("{i} {line}")).await;
    for r in readers {
        let (n, saw_drop) = tokio::time::timeout(Duration::from_secs(30), r)
            .await
            .expect("readers got everything in time")
            .unwrap();
        assert_eq!(n, SENT);
        assert!(saw_drop, "the stuck client was not dropped");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_readers_that_fall_behind_and_catch_up_get_every_line_whole_and_in_order() {
    // The hub writes a text client's socket itself while nothing is queued
    // for it; a reader that pauses fills its socket, the rest is queued and
    // its door writes, then the hub takes over again. Across many such
    // hand-overs, including writes the socket took only part of, each
    // reader must see every line once, whole, in order. The lines (3.4 MB)
    // are more than a reader's 2 MiB budget: readers that pause but keep
    // reading slow the sender down instead of being dropped.
    const SENT: usize = 4000;
    let s = fast_server().await;
    let mut readers = Vec::new();
    for pause_every in [50usize, 170, 400] {
        let mut t = Text::connect(s.addr).await;
        readers.push(tokio::spawn(async move {
            let mut next = 0;
            let mut n = 0;
            while next < SENT {
                let l = String::from_utf8(t.line().await.expect("a line")).unwrap();
                let Some(body) = l.strip_prefix("[lobby] <sender> ") else {
                    continue;
                };
                let (seq, pad) = body.split_once(' ').unwrap();
                assert_eq!(seq.parse::<usize>().unwrap(), next, "out of order");
                assert_eq!(pad, "y".repeat(700 + next % 300), "torn line {next}");
                next += 1;
                n += 1;
                if n % pause_every == 0 {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }
            next
        }));
    }
    let mut sender = s.client().await;
    let (mut chat, _) = sender.chat(Some("sender"), &[]).await.unwrap();
    say_all(&mut chat, SENT, |i| {
        format!("{i} {}", "y".repeat(700 + i % 300))
    })
    .await;
    for r in readers {
        let got = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .expect("readers got everything in time")
            .unwrap();
        assert_eq!(got, SENT);
    }
}

#[tokio::test]
async fn fast_senders_are_slowed_then_flooders_disconnected() {
    let s = TestServer::start(|c| {
        c.chat.rate = 10.0;
        c.chat.flood = Duration::from_secs(1);
        c.sniff_timeout = Duration::from_millis(200);
    })
    .await;
    let mut watcher = Text::connect(s.addr).await;
    let mut nc = Text::connect(s.addr).await;
    // 20 in a burst go through at once; the next 10 take about a second.
    let started = Instant::now();
    for i in 0..30 {
        nc.send(format!("line {i}").as_bytes()).await;
    }
    watcher.until(|l| l.ends_with("> line 29")).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(800), "not slowed: {took:?}");
    // Keep flooding: past a second of being held back, disconnected.
    let flood = async {
        for i in 0..500 {
            if nc
                .wr
                .write_all(format!("flood {i}\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), flood)
        .await
        .ok();
    let lines = nc.until(|l| l.starts_with("* disconnected")).await;
    assert!(lines.last().unwrap().contains("flooding"), "{lines:?}");
}

/// A WebSocket client that floods pings and never reads the pongs: the
/// pongs do not pile up in the server, and the flood is ended.
#[test]
fn pings_from_a_websocket_client_that_never_reads_do_not_pile_up() {
    use std::io::{Read, Write};
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(root.path(), &[], &[]);
    let pid = srv.child.id();
    let rss_kib = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let mut s = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    // A small window, so that the pongs wait in the server, not here.
    nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBuf, &4096).unwrap();
    let port = srv.port;
    write!(
        s,
        "GET /.ferry/chat?nick=pinger&rooms=lobby HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Origin: http://127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // Masked pings of 125 bytes (the largest control frame), 100 a write.
    let mut ping = vec![0x89, 0x80 | 125, 0, 0, 0, 0];
    ping.extend([b'p'; 125]);
    let burst = ping.repeat(100);
    let before = rss_kib();
    let start = Instant::now();
    let mut sent = 0usize;
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    // Up to 80 MB of pings, in 30 s at most, until the server ends it.
    let mut ended = false;
    while sent < 80 << 20 && start.elapsed() < Duration::from_secs(30) {
        if s.write_all(&burst).is_err() {
            ended = true;
            break;
        }
        sent += burst.len();
    }
    assert!(ended, "a flood of {sent} bytes of pings went on");
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 24 << 10,
        "the server grew {grown} KiB for {sent} bytes of pings"
    );
}

/// The largest reply there is, `/rooms` with every room's topic at the
/// longest, reaches a WebSocket client whole.
#[tokio::test]
async fn the_largest_reply_reaches_a_websocket_client() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let s = TestServer::start(|c| c.chat.limits.max_message = 64 << 10).await;
    let rooms: Vec<String> = (0..16).map(|i| format!("r{i}")).collect();
    let origin = format!("http://{}", s.addr);
    let query = format!("nick=big&rooms={}", rooms.join(","));
    let mut ws = websocket(s.addr, &query, &origin).await.unwrap();
    let topic = "t".repeat(60 << 10);
    for r in &rooms {
        let line = format!("/topic #{r} {topic}");
        ws.send(Message::Text(line.into())).await.unwrap();
    }
    ws.send(Message::Text("/rooms".into())).await.unwrap();
    let mut seen = 0;
    while let Some(e) = next_event(&mut ws).await {
        let text = e.to_string();
        if text.len() > 16 * (60 << 10) {
            seen = text.len();
            break;
        }
    }
    assert!(seen > 0, "the rooms' list never came");
}
