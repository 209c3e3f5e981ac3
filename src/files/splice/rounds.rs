//! Splicing a body in rounds (see [`crate::files::turns`]), so that a peer
//! that stops sending holds no blocking thread.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::SpliceError;
use crate::files::part::PartFile;
use crate::files::turns::{self, Waited};

/// A partial file a body can be spliced into (see [`splice_in_turns`]).
pub trait Splices: Send + 'static {
    /// Appends bytes (those of the body read before the splicing began).
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;

    /// [`PartFile::splice_from`].
    fn splice_round(
        &mut self,
        socket: BorrowedFd<'_>,
        len: u64,
        stall: Duration,
        stop: &(dyn Fn() -> bool + Sync),
        progress: &(dyn Fn(u64) + Sync),
    ) -> (u64, Result<(), SpliceError>);
}

impl Splices for PartFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf)
    }

    fn splice_round(
        &mut self,
        socket: BorrowedFd<'_>,
        len: u64,
        stall: Duration,
        stop: &(dyn Fn() -> bool + Sync),
        progress: &(dyn Fn(u64) + Sync),
    ) -> (u64, Result<(), SpliceError>) {
        self.splice_from(socket, len, stall, stop, progress)
    }
}

impl Splices for Box<dyn crate::files::storage::Part> {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf)
    }

    fn splice_round(
        &mut self,
        socket: BorrowedFd<'_>,
        len: u64,
        stall: Duration,
        stop: &(dyn Fn() -> bool + Sync),
        _progress: &(dyn Fn(u64) + Sync),
    ) -> (u64, Result<(), SpliceError>) {
        self.splice_from(socket, len, stall, stop)
    }
}

/// Moves `early` (body bytes already read), then the next `len` bytes of
/// `socket` (plain TCP, non-blocking) into `part`, in rounds on blocking
/// threads (see [`super::turns`]): a round ends when the socket gives
/// nothing for its turn's idle time ([`turns::Turn::idle`]), and the
/// transfer then waits for it in the runtime, holding no thread, until
/// `stall` has passed since a byte last came. Gives the part
/// back, with the bytes taken from the socket (`early` not counted) and
/// why it stopped short, if it did ([`SpliceError::Stopped`] once `abort`
/// fires).
pub async fn splice_in_turns<P: Splices>(
    mut part: P,
    socket: std::os::fd::OwnedFd,
    early: bytes::Bytes,
    len: u64,
    (stall, abort): (Duration, tokio_util::sync::CancellationToken),
    progress: std::sync::Arc<dyn Fn(u64) + Send + Sync>,
) -> (P, u64, Result<(), SpliceError>) {
    let watch = match turns::watch(socket.as_fd()) {
        Ok(watch) => watch,
        Err(e) => return (part, 0, Err(SpliceError::Socket(e))),
    };
    let mut early = Some(early).filter(|e| !e.is_empty());
    let mut socket = socket;
    let mut taken = 0;
    // When a byte last came: the stall deadline counts from there, however
    // often the socket says it is readable and gives nothing.
    let mut moved = std::time::Instant::now();
    loop {
        let Some(turn) = turns::turn_unless(&abort).await else {
            return (part, taken, Err(SpliceError::Stopped));
        };
        let (stop, progress) = (abort.clone(), progress.clone());
        let first = early.take();
        let joined = turns::on_thread(move || {
            let turn = turn.started();
            if let Some(early) = first {
                if let Err(e) = part.append(&early) {
                    return (part, socket, 0, Err(SpliceError::File(e)));
                }
                progress(early.len() as u64);
            }
            let over = || stop.is_cancelled() || turn.is_up();
            let r = part.splice_round(socket.as_fd(), len - taken, turn.idle(), &over, &*progress);
            (part, socket, r.0, r.1)
        });
        // Fails only when the runtime is shutting down: the part file
        // went with the thread.
        let (back, fd, n, r) = joined
            .await
            .unwrap_or_else(|e| panic!("the receiving thread was stopped: {e}"));
        (part, socket) = (back, fd);
        taken += n;
        if n > 0 {
            moved = std::time::Instant::now();
        }
        match r {
            Ok(()) => return (part, taken, Ok(())),
            Err(SpliceError::Stopped) if !abort.is_cancelled() => {} // the turn is up
            Err(SpliceError::Stalled) => {
                let readable = tokio::io::Interest::READABLE;
                let e = match turns::wait_for_peer(&watch, readable, (stall, moved), &abort).await {
                    Waited::Ready => continue,
                    Waited::Stalled => SpliceError::Stalled,
                    Waited::Cancelled => SpliceError::Stopped,
                    Waited::Failed(e) => SpliceError::Socket(e),
                };
                return (part, taken, Err(e));
            }
            Err(e) => return (part, taken, Err(e)),
        }
    }
}
