//! File bodies over a native connection: a frame body into a disk
//! thread's [`FileSink`], and a [`FileSource`] out as a frame body.

use std::io;

use super::{ConnError, Connection};
use crate::files::part::PartFile;
use crate::files::pipe::{FileSink, FileSource};
use crate::files::splice::SpliceError;

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
/// the caller to receive the body another way. `progress` is called with
/// each round's byte count.
pub async fn receive_file(
    conn: &mut Connection,
    part: PartFile,
    progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<(PartFile, Result<(), Spliced>), PartFile> {
    let Some(socket) = conn.plain_socket() else {
        return Err(part);
    };
    let stall = conn.body_deadline();
    let early = conn.reader().take_buffered_body();
    let len = conn.body_remaining();
    let done = tokio::task::spawn_blocking(move || {
        use std::os::fd::AsFd;
        let mut part = part;
        if !early.is_empty() {
            if let Err(e) = part.write(&early) {
                return (part, 0, Err(Spliced::Write(e)));
            }
            progress(early.len() as u64);
        }
        let (moved, r) = part.splice_from(socket.as_fd(), len, stall, &progress);
        let r = r.map_err(|e| match e {
            SpliceError::Socket(e) => Spliced::Lost(e.into()),
            SpliceError::Closed => Spliced::Lost(super::frame::FrameError::UnexpectedEof.into()),
            SpliceError::Stalled => Spliced::Lost(ConnError::Timeout("the frame body")),
            SpliceError::File(e) => Spliced::Write(e),
        });
        (part, moved, r)
    })
    .await;
    match done {
        Ok((part, moved, r)) => {
            conn.reader().consumed_elsewhere(moved);
            Ok((part, r))
        }
        // The blocking thread panicked (or the runtime is shutting down):
        // the part file went with it.
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the receiving thread was stopped: {e}"),
        },
    }
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
/// this process, on a blocking thread: for a plain TCP connection
/// ([`Connection::plain_socket`]), when nothing needs hashing on the way.
/// Gives the file back as `Err` when the connection is not plain TCP, for
/// the caller to send it another way.
pub async fn send_file(
    conn: &mut Connection,
    file: std::fs::File,
    offset: u64,
    len: u64,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Result<(), SendError>, std::fs::File> {
    let Some(socket) = conn.plain_socket() else {
        return Err(file);
    };
    let stall = conn.body_deadline();
    let cancel = cancel.clone();
    let sent = tokio::task::spawn_blocking(move || {
        sendfile_all(&socket, &file, offset, len, stall, &cancel)
    })
    .await
    .map_err(|e| SendError::Read(io::Error::other(e)));
    Ok(sent.and_then(|r| r))
}

fn sendfile_all(
    socket: &std::os::fd::OwnedFd,
    file: &std::fs::File,
    offset: u64,
    len: u64,
    stall: std::time::Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<(), SendError> {
    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let end = offset + len;
    let mut at =
        i64::try_from(offset).map_err(|_| SendError::Read(io::ErrorKind::InvalidInput.into()))?;
    let mut moved = std::time::Instant::now();
    while (at as u64) < end {
        if cancel.is_cancelled() {
            return Err(SendError::Cancelled);
        }
        let want = (end - at as u64).min(1 << 30) as usize;
        match nix::sys::sendfile::sendfile64(socket, file, Some(&mut at), want) {
            Ok(0) => {
                return Err(SendError::Read(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was sent",
                )));
            }
            Ok(_) => moved = std::time::Instant::now(),
            Err(Errno::EAGAIN) => {
                if moved.elapsed() > stall {
                    return Err(SendError::Conn(ConnError::Timeout("the peer to read")));
                }
                // A tenth of a second at most, to see `cancel` in time.
                let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::from(100u16)) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(SendError::Conn(io::Error::from(e).into())),
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(SendError::Conn(io::Error::from(e).into())),
        }
    }
    Ok(())
}
