//! Bodies handed over as a socket (see `Upload::receive_from_socket`):
//! moved into the file by the kernel, and every way that can stop short.

use super::tests::{Chunks, begin, body, parts_in, service, stalling_after};
use super::*;
use crate::files::RelPath;

/// A body in a loopback TCP socket, as a door over plain TCP hands it
/// over: `early` bytes already read, then `len` in the socket. Reading it
/// piece by piece gives `pieces` (the way taken when the socket is not).
struct InSocket {
    socket: Option<std::net::TcpStream>,
    early: Vec<u8>,
    len: u64,
    taken: u64,
    pieces: Chunks,
}

impl BodySource for InSocket {
    type Error = io::Error;

    async fn read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        self.pieces.read_into(buf).await
    }

    fn socket_len(&self) -> Option<u64> {
        self.socket
            .as_ref()
            .map(|_| self.early.len() as u64 + self.len)
    }

    fn socket(&mut self) -> Option<SocketBody<io::Error>> {
        let socket = self.socket.take()?;
        socket.set_nonblocking(true).unwrap();
        Some(SocketBody {
            socket: socket.into(),
            early: std::mem::take(&mut self.early).into(),
            len: self.len,
            lost: |e| e.unwrap_or_else(|| io::ErrorKind::UnexpectedEof.into()),
        })
    }

    fn taken(&mut self, n: u64) {
        self.taken += n;
    }
}

/// A connected loopback pair: (the sending end, the receiving end).
fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tx = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (rx, _) = l.accept().unwrap();
    (tx, rx)
}

fn in_socket(rx: std::net::TcpStream, early: &[u8], len: u64) -> InSocket {
    InSocket {
        socket: Some(rx),
        early: early.to_vec(),
        len,
        taken: 0,
        pieces: body(&[], true),
    }
}

fn noise(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 131 % 251) as u8).collect()
}

#[tokio::test]
async fn a_body_in_a_socket_goes_straight_into_the_file_and_is_verified() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let files = service(d.path(), true, None, CancellationToken::new());
    let rel = RelPath::parse("s.bin").unwrap();
    let data = noise(3 << 20);
    let (mut tx, rx) = tcp_pair();
    let rest = data[5..].to_vec();
    let sender = std::thread::spawn(move || {
        tx.write_all(&rest).unwrap();
        // What follows the body stays in the socket.
        tx.write_all(b"NEXT").unwrap();
        tx
    });
    let mut up = begin(&files, &rel, UploadOptions::new(Some(data.len() as u64))).await;
    up.start(0).await.unwrap();
    // Reading it piece by piece would fail: the socket is what was used.
    let mut src = in_socket(rx.try_clone().unwrap(), &data[..5], data.len() as u64 - 5);
    assert_eq!(up.receive(&mut src).await.unwrap(), data.len() as u64);
    assert_eq!(src.taken, data.len() as u64 - 5);
    let mut want = crate::files::digest::Algo::Sha256.hasher();
    want.update(&data);
    assert_eq!(up.finish(None, None).await.unwrap(), want.hex());
    assert_eq!(std::fs::read(d.path().join("s.bin")).unwrap(), data);
    let _tx = sender.join().unwrap();
    let mut next = [0u8; 4];
    rx.set_nonblocking(false).unwrap();
    std::io::Read::read_exact(&mut &rx, &mut next).unwrap();
    assert_eq!(&next, b"NEXT");
}

#[tokio::test]
async fn a_socket_that_closes_early_leaves_what_came_for_a_resume() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let files = service(d.path(), true, None, CancellationToken::new());
    let rel = RelPath::parse("cut.bin").unwrap();
    let data = noise(2 << 20);
    let (mut tx, rx) = tcp_pair();
    let half = data[3..(1 << 20)].to_vec();
    let sender = std::thread::spawn(move || tx.write_all(&half).unwrap());
    let opts = UploadOptions {
        on_break: OnBreak::Keep,
        ..UploadOptions::new(Some(data.len() as u64))
    };
    let mut up = begin(&files, &rel, opts).await;
    up.start(0).await.unwrap();
    let mut src = in_socket(rx, &data[..3], data.len() as u64 - 3);
    let r = up.receive(&mut src).await;
    sender.join().unwrap();
    assert!(matches!(r, Err(Broke::Lost(_))), "{r:?}");
    drop(up);
    let held = std::fs::read(d.path().join(".cut.bin.ferry-part")).unwrap();
    assert_eq!(held, &data[..1 << 20]);
}

#[tokio::test]
async fn shutdown_and_a_silent_peer_stop_a_body_in_a_socket_and_keep_what_came() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let abort = CancellationToken::new();
    let files = service(d.path(), true, None, abort.clone());
    let rel = RelPath::parse("quiet.bin").unwrap();
    let keep = UploadOptions {
        on_break: OnBreak::Keep,
        ..UploadOptions::new(Some(1 << 20))
    };
    // Shutdown while the peer says nothing more.
    let (mut tx, rx) = tcp_pair();
    tx.write_all(b"abc").unwrap();
    let mut up = begin(&files, &rel, keep).await;
    up.start(0).await.unwrap();
    let stop = abort.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.cancel();
    });
    let started = std::time::Instant::now();
    let r = up.receive(&mut in_socket(rx, b"", 1 << 20)).await;
    assert!(matches!(r, Err(Broke::ShuttingDown)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(up);
    // What came is kept for the client to go on with once the server is
    // back.
    let part = d.path().join(".quiet.bin.ferry-part");
    assert_eq!(std::fs::read(&part).unwrap(), b"abc");
    std::fs::remove_file(part).unwrap();
    // A peer that stalls past the deadline (a service with 300 ms).
    let quick = stalling_after(
        d.path(),
        true,
        None,
        CancellationToken::new(),
        Duration::from_millis(300),
    );
    let (mut tx, rx) = tcp_pair();
    tx.write_all(b"abc").unwrap();
    let mut up = begin(&quick, &rel, keep).await;
    up.start(0).await.unwrap();
    let r = up.receive(&mut in_socket(rx, b"", 1 << 20)).await;
    assert!(matches!(r, Err(Broke::Stalled)), "{r:?}");
    drop(up);
    drop(tx);
    // What came is kept for a resume, as for a body read piece by piece.
    let held = std::fs::read(d.path().join(".quiet.bin.ferry-part")).unwrap();
    assert_eq!(held, b"abc");
}

#[tokio::test]
async fn a_body_in_a_socket_past_a_limit_is_read_the_usual_way_and_refused() {
    let d = tempfile::tempdir().unwrap();
    let files = service(d.path(), true, Some(6), CancellationToken::new());
    let rel = RelPath::parse("big.bin").unwrap();
    let (_tx, rx) = tcp_pair();
    let mut up = begin(&files, &rel, UploadOptions::new(None)).await;
    up.start(0).await.unwrap();
    let mut src = in_socket(rx, b"", 8);
    src.pieces = body(&[b"1234", b"5678"], false);
    let r = up.receive(&mut src).await;
    assert!(matches!(r, Err(Broke::TooLarge(_))), "{r:?}");
    // The socket was never taken.
    assert!(src.socket.is_some());
    drop(up);
    assert!(parts_in(d.path()).is_empty());
}
