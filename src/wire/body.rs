//! File bodies over a native connection: a frame body into a disk
//! thread's [`FileSink`], and a [`FileSource`] out as a frame body.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use super::{ConnError, Connection};
use crate::files::digest::Hasher;
use crate::files::part::PartFile;
use crate::files::pipe::{FileSink, FileSource};
use crate::files::splice::hash_behind;
use crate::files::splice::{SpliceError, splice_in_turns};
use crate::files::turns::{self, Pause, Waited};

/// How receiving a body ended.
#[derive(Debug)]
pub enum Received {
    /// Every byte was queued for the disk thread.
    Complete,
    /// The connection failed mid-body.
    Lost(ConnError),
    /// The disk thread stopped (its error comes from [`FileSink::finish`]).
    WriterStopped,
    /// `cancel` fired.
    Cancelled,
}

/// Moves the rest of the current frame body from `conn` into `sink`,
/// calling `progress` with each chunk's size.
pub async fn receive_body<P>(
    conn: &mut Connection,
    sink: &mut FileSink<P>,
    cancel: &tokio_util::sync::CancellationToken,
    mut progress: impl FnMut(u64),
) -> Received {
    while conn.body_remaining() > 0 {
        let mut buf = sink.buffer();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Received::Cancelled,
            r = conn.read_body_into(&mut buf) => match r {
                Ok(n) => {
                    progress(n as u64);
                    if !sink.send(buf).await {
                        return Received::WriterStopped;
                    }
                }
                Err(e) => return Received::Lost(e),
            },
        }
    }
    Received::Complete
}

/// Why [`receive_file`] stopped short.
#[derive(Debug)]
pub enum Spliced {
    /// The connection failed or the peer stalled: what arrived is kept.
    Lost(ConnError),
    /// Writing the file failed.
    Write(io::Error),
}

/// Moves the rest of the current frame body from `conn` into `part` with
/// `splice(2)` (see [`crate::files::splice`]), on a blocking thread, when
/// the connection is plain TCP; gives `part` back as `Err` otherwise, for
/// the caller to receive the body another way. It stops short when `stop`
/// fires (`Spliced::Lost`, what arrived kept). `progress` is called with
/// each round's byte count.
pub async fn receive_file(
    conn: &mut Connection,
    part: PartFile,
    stop: &tokio_util::sync::CancellationToken,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<(PartFile, Result<(), Spliced>), PartFile> {
    let Some(socket) = conn.plain_socket() else {
        return Err(part);
    };
    let stall = conn.body_deadline();
    let early = conn.reader().take_buffered_body();
    let len = conn.body_remaining();
    let limits = (stall, stop.clone());
    let (part, moved, r) =
        splice_in_turns(part, socket, early, len, limits, Arc::new(progress)).await;
    conn.reader().consumed_elsewhere(moved);
    let r = r.map_err(|e| match e {
        SpliceError::Socket(e) => Spliced::Lost(e.into()),
        SpliceError::Closed => Spliced::Lost(super::frame::FrameError::UnexpectedEof.into()),
        SpliceError::Stalled => Spliced::Lost(ConnError::Timeout("the frame body")),
        SpliceError::File(e) => Spliced::Write(e),
        // `stop` fired: the caller knows.
        SpliceError::Stopped => Spliced::Lost(io::Error::from(io::ErrorKind::Interrupted).into()),
    });
    Ok((part, r))
}

/// Why sending a file body stopped early. Either way the body is incomplete
/// and the connection must be closed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Reading the file failed (or it shrank).
    #[error("reading the file failed mid-transfer: {0}")]
    Read(io::Error),
    /// The connection failed.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// `cancel` fired.
    #[error("cancelled")]
    Cancelled,
}

/// Sends everything `source` yields as body bytes on `conn`; returns the
/// hex SHA-256 the reader computed.
pub async fn send_body(
    conn: &mut Connection,
    mut source: FileSource,
    cancel: &tokio_util::sync::CancellationToken,
    mut progress: impl FnMut(u64),
) -> Result<String, SendError> {
    loop {
        let chunk = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(SendError::Cancelled),
            c = source.next() => c,
        };
        match chunk {
            Some(Ok(buf)) => {
                conn.send_body(&buf).await?;
                progress(buf.len() as u64);
                source.recycle(buf);
            }
            Some(Err(e)) => return Err(SendError::Read(e)),
            None => break,
        }
    }
    source.finish().await.map_err(SendError::Read)
}

/// Sends `len` bytes of `file` from `offset` as body bytes with
/// `sendfile(2)`, from the page cache to the socket without a copy through
/// this process, on a blocking thread, for a plain TCP connection
/// ([`Connection::plain_socket`]). With `hasher`, a second thread reads the
/// bytes sent back from the page cache, a little behind, and hashes them
/// (going on from where `hasher` is); the digest is given as `Some(hex)`.
///
/// Sent this way, rather than copied into the socket by a `write`, the
/// bytes reach the peer in the file's own pages: a peer that splices them
/// into its own file copies each page once, where pages a `write` made
/// took it over twice as long (measured on a 1 GiB loopback get).
/// The digest is of the file as the second thread read it: a file
/// changed while it is sent is then likely to fail the peer's check.
///
/// Gives the file and hasher back as `Err` when the connection is not
/// plain TCP or the file cannot be sent with `sendfile` (nothing sent),
/// for the caller to send it another way.
pub async fn send_file(
    conn: &mut Connection,
    file: std::fs::File,
    (offset, len): (u64, u64),
    hasher: Option<Hasher>,
    cancel: &tokio_util::sync::CancellationToken,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<Result<Option<String>, SendError>, (std::fs::File, Option<Hasher>)> {
    let Some(socket) = conn.plain_socket() else {
        return Err((file, hasher));
    };
    let Ok(watch) = turns::watch(socket.as_fd()) else {
        return Err((file, hasher));
    };
    let stall = conn.body_deadline();
    let progress: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(progress);
    let mut sending = Sending {
        socket,
        file,
        from: offset,
        at: offset,
        end: offset + len,
        hasher,
        cancel: cancel.clone(),
    };
    // When a byte last went: the stall deadline counts from there, however
    // often the socket says it has room and takes nothing.
    let mut moved = (offset, std::time::Instant::now());
    loop {
        let Some(turn) = turns::turn_unless(cancel).await else {
            return Ok(Err(SendError::Cancelled));
        };
        let progress = progress.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let r = sending.round(&turn.started(), &*progress);
            (sending, r)
        })
        .await;
        let (back, r) = match joined {
            Ok(done) => done,
            Err(e) => return Ok(Err(SendError::Read(io::Error::other(e)))),
        };
        sending = back;
        if sending.at > moved.0 {
            moved = (sending.at, std::time::Instant::now());
        }
        match r {
            Ok(None) => return Ok(Ok(sending.hasher.map(|h| h.hex()))),
            Ok(Some(Pause::TurnUp)) => {}
            Ok(Some(Pause::Idle)) => {
                let writable = tokio::io::Interest::WRITABLE;
                let e = match turns::wait_for_peer(&watch, writable, (stall, moved.1), cancel).await
                {
                    Waited::Ready => continue,
                    Waited::Stalled => SendError::Conn(ConnError::Timeout("the peer to read")),
                    Waited::Cancelled => SendError::Cancelled,
                    Waited::Failed(e) => SendError::Conn(e.into()),
                };
                return Ok(Err(e));
            }
            Err(Unsent::Unsupported) => return Err((sending.file, sending.hasher)),
            Err(Unsent::Failed(e)) => return Ok(Err(e)),
        }
    }
}

/// A file being sent by [`send_file`], handed to a blocking thread for each
/// round (see [`crate::files::turns`]) and back.
struct Sending {
    socket: std::os::fd::OwnedFd,
    file: std::fs::File,
    /// Where the body started.
    from: u64,
    /// The next byte to send (all before it sent, and hashed).
    at: u64,
    end: u64,
    hasher: Option<Hasher>,
    cancel: tokio_util::sync::CancellationToken,
}

impl Sending {
    /// Sends while the socket takes the bytes within the turn's idle time
    /// ([`turns::Turn::idle`]) and the turn lasts, a second thread hashing what was
    /// sent a little behind. `None` when every byte is sent.
    fn round(
        &mut self,
        turn: &turns::Turn,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Option<Pause>, Unsent> {
        let start = self.at;
        let (file, socket) = (&self.file, &self.socket);
        // Stopped by the caller, or by either thread when it fails.
        let stop = self.cancel.child_token();
        let hasher = self.hasher.take();
        let (r, hashed) = std::thread::scope(|scope| {
            // The hashing thread reads only what was sent: a peer that
            // stops reading stops it too (ahead, it would read and hash the
            // whole file for a client that took a few bytes).
            let (ends, news) = std::sync::mpsc::channel::<u64>();
            let hashing = hasher.map(|h| {
                let stop = &stop;
                scope.spawn(move || {
                    let (h, r) = hash_behind(file, start, news, h, false);
                    if r.is_err() {
                        stop.cancel();
                    }
                    (h, r)
                })
            });
            let mut at = start;
            let r = {
                let tell = |n: u64| {
                    at += n;
                    let _ = ends.send(at);
                    progress(n);
                };
                sendfile_round(
                    socket,
                    file,
                    (self.from, start, self.end),
                    turn,
                    &stop,
                    tell,
                )
            };
            // The hashing thread finishes what was sent, then ends.
            drop(ends);
            if r.is_err() {
                stop.cancel();
            }
            let hashed = hashing.map(|t| {
                t.join().unwrap_or_else(|_| {
                    (
                        Hasher::default(),
                        Err(io::Error::other("the hashing thread failed")),
                    )
                })
            });
            (r.map(|pause| (pause, at)), hashed)
        });
        let read = match hashed {
            Some((h, r)) => {
                self.hasher = Some(h);
                r.map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => {
                        io::Error::new(e.kind(), "the file shrank while it was sent")
                    }
                    _ => e,
                })
            }
            None => Ok(()),
        };
        match (r, read) {
            (Err(Unsent::Unsupported), _) => Err(Unsent::Unsupported),
            // A failed read stopped the send: it is the cause.
            (_, Err(e)) => Err(Unsent::Failed(SendError::Read(e))),
            (Err(e), Ok(())) => Err(e),
            (Ok((pause, at)), Ok(())) => {
                self.at = at;
                Ok(pause)
            }
        }
    }
}

/// Why [`sendfile_round`] stopped.
enum Unsent {
    /// The file cannot be sent with `sendfile` (nothing was sent).
    Unsupported,
    /// The body is incomplete.
    Failed(SendError),
}

impl From<SendError> for Unsent {
    fn from(e: SendError) -> Self {
        Unsent::Failed(e)
    }
}

/// Sends `file` from `at` to `end` on `socket` with `sendfile` (the body
/// began at `from`), until done (`None`), the socket takes nothing for the
/// turn's idle time or the turn is up.
fn sendfile_round(
    socket: &std::os::fd::OwnedFd,
    file: &std::fs::File,
    (from, at, end): (u64, u64, u64),
    turn: &turns::Turn,
    cancel: &tokio_util::sync::CancellationToken,
    mut progress: impl FnMut(u64),
) -> Result<Option<Pause>, Unsent> {
    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut at =
        i64::try_from(at).map_err(|_| SendError::Read(io::ErrorKind::InvalidInput.into()))?;
    let mut moved = std::time::Instant::now();
    while (at as u64) < end {
        if cancel.is_cancelled() {
            return Err(SendError::Cancelled.into());
        }
        if turn.is_up() {
            return Ok(Some(Pause::TurnUp));
        }
        let want = (end - at as u64).min(1 << 30) as usize;
        match nix::sys::sendfile::sendfile64(socket, file, Some(&mut at), want) {
            Ok(0) => {
                return Err(SendError::Read(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was sent",
                ))
                .into());
            }
            Ok(n) => {
                progress(n as u64);
                moved = std::time::Instant::now();
            }
            Err(Errno::EAGAIN) => {
                let Some(left) = turn.idle().checked_sub(moved.elapsed()) else {
                    return Ok(Some(Pause::Idle));
                };
                let wait = PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO);
                let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLOUT)];
                match poll(&mut fds, wait) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(SendError::Conn(io::Error::from(e).into()).into()),
                }
            }
            Err(Errno::EINTR) => {}
            // Something that cannot feed sendfile (a pipe, a file system
            // without it): the caller sends it another way.
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::ESPIPE) if at as u64 == from => {
                return Err(Unsent::Unsupported);
            }
            Err(e) => return Err(SendError::Conn(io::Error::from(e).into()).into()),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::digest::Algo;
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connection over plain TCP, and the peer's end of it.
    async fn plain() -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        let stream = crate::wire::Stream::Plain(near.unwrap());
        let conn = Connection::from_stream(stream, Default::default(), Default::default());
        (conn, far.unwrap().0)
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 7919) as u8).collect()
    }

    #[tokio::test]
    async fn a_file_is_sent_from_its_offset_and_hashed_from_where_the_hasher_was() {
        let data = bytes(5 << 20);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let (mut conn, mut far) = plain().await;
        let offset = 1_234_567u64;
        let mut prefix = Algo::Blake3.hasher();
        prefix.update(&data[..offset as usize]);
        let counted = Arc::new(AtomicU64::new(0));
        let seen = counted.clone();
        let span = (offset, data.len() as u64 - offset);
        let never = tokio_util::sync::CancellationToken::new();
        let reading = tokio::spawn(async move {
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.unwrap();
            got
        });
        let sent = send_file(&mut conn, f, span, Some(prefix), &never, move |n| {
            seen.fetch_add(n, Ordering::Relaxed);
        })
        .await;
        let digest = sent.ok().unwrap().unwrap();
        drop(conn);
        let got = reading.await.unwrap();
        assert_eq!(got, &data[offset as usize..]);
        assert_eq!(digest, Some(Algo::Blake3.hex_of(&data)));
        assert_eq!(counted.load(Ordering::Relaxed), span.1);
    }

    /// Bytes this process has read so far, `sendfile` included.
    fn read_so_far() -> u64 {
        let io = std::fs::read_to_string("/proc/self/io").unwrap();
        let line = io.lines().find(|l| l.starts_with("rchar:")).unwrap();
        line[6..].trim().parse().unwrap()
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_stops_the_hashing_too() {
        // 96 MiB (sparse) to a peer that reads nothing: about what the
        // socket buffers hold is sent, and no more may be read to hash.
        let f = tempfile::tempfile().unwrap();
        f.set_len(96 << 20).unwrap();
        let (mut conn, _far) = plain().await;
        let cancel = tokio_util::sync::CancellationToken::new();
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            stopper.cancel();
        });
        let before = read_so_far();
        let hasher = Some(Algo::Blake3.hasher());
        let sent = send_file(&mut conn, f, (0, 96 << 20), hasher, &cancel, |_| {}).await;
        let read = read_so_far() - before;
        assert!(matches!(sent, Ok(Err(SendError::Cancelled))), "{sent:?}");
        assert!(
            read < 48 << 20,
            "{read} bytes read for a peer that took none"
        );
    }

    #[tokio::test]
    async fn without_a_hasher_nothing_is_hashed() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&bytes(4096)).unwrap();
        let (mut conn, _far) = plain().await;
        let never = tokio_util::sync::CancellationToken::new();
        let sent = send_file(&mut conn, f, (0, 4096), None, &never, |_| {}).await;
        assert_eq!(sent.ok().unwrap().unwrap(), None);
    }

    #[tokio::test]
    async fn a_file_shorter_than_announced_is_a_read_error_not_a_digest() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&bytes(100_000)).unwrap();
        let (mut conn, _far) = plain().await;
        let never = tokio_util::sync::CancellationToken::new();
        let hasher = Some(Algo::Blake3.hasher());
        let sent = send_file(&mut conn, f, (0, 200_000), hasher, &never, |_| {}).await;
        match sent.ok().unwrap() {
            Err(SendError::Read(e)) => assert!(e.to_string().contains("shrank"), "{e}"),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn what_sendfile_cannot_read_is_handed_back_untouched_with_its_hasher() {
        // A pipe cannot feed sendfile (EINVAL): nothing may have been sent
        // and nothing hashed, for the caller to send it another way.
        let (rd, mut wr) = std::io::pipe().unwrap();
        wr.write_all(b"abc").unwrap();
        let file = std::fs::File::from(std::os::fd::OwnedFd::from(rd));
        let (mut conn, mut far) = plain().await;
        let never = tokio_util::sync::CancellationToken::new();
        let mut hasher = Algo::Blake3.hasher();
        hasher.update(b"before");
        let want = hasher.hex();
        let sent = send_file(&mut conn, file, (0, 3), Some(hasher), &never, |_| {}).await;
        let Err((file, back)) = sent else {
            panic!("a pipe was sent with sendfile");
        };
        assert_eq!(back.map(|h| h.hex()), Some(want));
        drop(wr);
        let mut left = String::new();
        std::io::Read::read_to_string(&mut &file, &mut left).unwrap();
        assert_eq!(left, "abc");
        drop(conn);
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty(), "{got:?}");
    }

    #[tokio::test]
    async fn over_anything_but_plain_tcp_the_file_is_handed_back() {
        let (a, _b) = tokio::io::duplex(64);
        let (r, w) = tokio::io::split(a);
        let mut conn = Connection::new(
            Box::new(r),
            Box::new(w),
            Default::default(),
            Default::default(),
        );
        let f = tempfile::tempfile().unwrap();
        let never = tokio_util::sync::CancellationToken::new();
        let sent = send_file(
            &mut conn,
            f,
            (0, 0),
            Some(Algo::Blake3.hasher()),
            &never,
            |_| {},
        )
        .await;
        assert!(matches!(sent, Err((_, Some(_)))));
    }
}
