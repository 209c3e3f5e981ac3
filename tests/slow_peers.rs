//! Peers that stop reading or sending in the middle of a transfer hold no
//! thread of the server's: with its blocking threads cut to a few, many
//! more stalled transfers than that, through the native and HTTP doors and
//! both ways, leave the server answering everyone else at once.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, noise, upload_left_waiting};
use ferry::wire::Kind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Stalled transfers of each kind.
const EACH: usize = 6;

/// Waits until no round holds a thread: every transfer has gone as far as
/// its peer let it and waits for it.
async fn all_rounds_end() {
    let calm = Instant::now();
    // The transfers get going first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while ferry::files::turns::running() > 0 {
        assert!(
            calm.elapsed() < Duration::from_secs(10),
            "{} transfers still hold a thread with their peers gone quiet",
            ferry::files::turns::running()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A runtime for the server with two blocking threads: one stalled
/// transfer that kept its thread, as each did before, would take half of
/// them.
fn few_blocking_threads() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn stalled_transfers_through_every_door_leave_the_server_answering() {
    few_blocking_threads().block_on(async {
        let s = TestServer::start(|_| {}).await;
        // Larger than every buffer on the way (both sockets', and a few
        // chunks read ahead), so a peer that stops reading stalls it.
        std::fs::write(s.path("big.bin"), noise(24 << 20, 1)).unwrap();
        std::fs::write(s.path("small.txt"), b"still here").unwrap();
        let host = s.addr.to_string();
        let mut held = Vec::new();
        let mut clients = Vec::new();
        for i in 0..EACH {
            // A native download, never read: sent with sendfile.
            let mut c = s.client().await;
            let conn = c.connection().await.unwrap();
            let get = serde_json::json!({"op": "get", "path": "big.bin"});
            conn.send(Kind::Request, &get, 0).await.unwrap();
            clients.push(c);
            // A native upload that stops sending: spliced into the file.
            let mut c = s.client().await;
            let conn = c.connection().await.unwrap();
            let some = noise(300_000, 2);
            upload_left_waiting(conn, &format!("up-{i}.bin"), 10 << 20, Some(&some)).await;
            clients.push(c);
            // An HTTP download, never read.
            let get = format!("GET /big.bin HTTP/1.1\r\nHost: {host}\r\n\r\n");
            held.push(s.raw(get.as_bytes()).await);
            // An HTTP upload that stops sending.
            let head = format!(
                "PUT /web-{i}.bin HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
                10 << 20
            );
            let mut t = s.raw(head.as_bytes()).await;
            t.write_all(&noise(300_000, 3)).await.unwrap();
            held.push(t);
        }
        // Every transfer has gone as far as its peer let it and waits.
        all_rounds_end().await;
        // The uploads' bytes so far are on the disk, on their way.
        assert!(common::partial_files(s.root.path()).len() >= EACH);

        // Everyone else is answered at once: a listing, which reads the
        // folder on a blocking thread, and a file over HTTP.
        let began = Instant::now();
        let mut c = s.client().await;
        let names = tokio::time::timeout(Duration::from_secs(5), c.ls(""))
            .await
            .expect("a listing answered while transfers stall")
            .unwrap();
        assert!(names.iter().any(|e| e.name == "small.txt"));
        let get = format!("GET /small.txt HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let mut t = s.raw(get.as_bytes()).await;
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), t.read_to_end(&mut got))
            .await
            .expect("a download answered while transfers stall")
            .unwrap();
        assert!(String::from_utf8_lossy(&got).ends_with("still here"));
        let downloaded = ferry::client::TransferOpts::default();
        let out = tempfile::tempdir().unwrap();
        let bar = indicatif::ProgressBar::hidden();
        let mut c = s.client().await;
        tokio::time::timeout(
            Duration::from_secs(10),
            c.get_file("big.bin", &out.path().join("big.bin"), downloaded, &bar),
        )
        .await
        .expect("a whole download while others stall")
        .unwrap();
        assert_eq!(
            std::fs::read(out.path().join("big.bin")).unwrap(),
            noise(24 << 20, 1)
        );
        assert!(began.elapsed() < Duration::from_secs(15));

        // The stalled peers, still there, are then let go.
        drop(held);
        drop(clients);
        tokio::time::timeout(Duration::from_secs(30), s.stop())
            .await
            .expect("the server stops with stalled transfers gone");
    });
}

/// The peer of a stalled transfer reads the rest after a while: it is
/// waited for, not dropped, and what it gets is whole.
#[test]
fn a_transfer_whose_peer_comes_back_finishes_whole() {
    few_blocking_threads().block_on(async {
        let s = TestServer::start(|_| {}).await;
        let body = noise(24 << 20, 4);
        std::fs::write(s.path("big.bin"), &body).unwrap();
        let get = format!(
            "GET /big.bin HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            s.addr
        );
        let mut t: TcpStream = s.raw(get.as_bytes()).await;
        all_rounds_end().await;
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), t.read_to_end(&mut got))
            .await
            .expect("the rest came")
            .unwrap();
        assert!(got.ends_with(&body), "the body whole after the wait");
        s.stop().await;
    });
}

/// Peers quiet for longer than the body deadline are given up as before,
/// while their transfers wait in the runtime: each is closed short.
#[tokio::test]
async fn peers_quiet_past_the_body_deadline_are_given_up() {
    let s = TestServer::start(|c| c.deadlines.body = Duration::from_millis(800)).await;
    std::fs::write(s.path("big.bin"), noise(24 << 20, 5)).unwrap();
    let began = Instant::now();
    let mut u = s.client().await;
    let conn = u.connection().await.unwrap();
    upload_left_waiting(conn, "up.bin", 10 << 20, Some(&noise(300_000, 6))).await;
    let get = format!(
        "GET /big.bin HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        s.addr
    );
    let mut t = s.raw(get.as_bytes()).await;
    let mut d = s.client().await;
    let conn = d.connection().await.unwrap();
    let get = serde_json::json!({"op": "get", "path": "big.bin"});
    conn.send(Kind::Request, &get, 0).await.unwrap();

    // The upload: closed (a body cut short leaves no room for a frame
    // the client would read), what came kept for a resume.
    let conn = u.connection().await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), conn.next_head())
        .await
        .expect("the upload given up");
    assert!(end.is_err(), "closed, not answered");
    assert_eq!(common::partial_files(s.root.path()).len(), 1);
    // The downloads: what was sent, then the end, short of the file.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), t.read_to_end(&mut got))
        .await
        .expect("the HTTP download closed")
        .unwrap();
    assert!(got.len() < 24 << 20, "{} bytes", got.len());
    let conn = d.connection().await.unwrap();
    let head = conn.next_head().await.unwrap();
    assert_ne!(head.kind, Kind::Error, "the download began");
    let mut body = 0;
    let cut = tokio::time::timeout(Duration::from_secs(10), async {
        while conn.body_remaining() > 0 {
            match conn.next_chunk().await {
                Ok(chunk) => body += chunk.len(),
                Err(_) => return true,
            }
        }
        false
    })
    .await
    .expect("the native download closed");
    assert!(cut && body < 24 << 20, "{body} bytes");
    assert!(began.elapsed() < Duration::from_secs(15));
    s.stop().await;
}
