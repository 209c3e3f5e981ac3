//! Body bytes from a plain TCP socket straight into a file with
//! `splice(2)`: socket → pipe → page cache, never through this process's
//! memory. The bytes are hashed by a second thread a little behind the
//! writes, where they lie in the page cache (see [`back`]), so the copy and
//! the digest run on two cores at once.
//!
//! A received file is still verified end to end: what is hashed is what the
//! file holds, read back after it was written.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, SpliceFFlags};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::digest::Hasher;
use super::part::{PartFile, cut_shorter, not_cut};
use super::pipe::CHUNK;
use super::reserve::Reserve;
use super::writeback::Writeback;

pub use super::storage::SpliceError;
pub use rounds::{Splices, splice_in_turns};

mod back;
mod rounds;

pub(crate) use back::hash_behind;

/// The most one round moves: the pipe's size (1 MiB when the system lets a
/// pipe be that large, 64 KiB otherwise).
const ROUND: usize = CHUNK;

impl PartFile {
    /// Appends the next `len` bytes read from `socket` (a plain TCP socket,
    /// non-blocking), hashing them as [`PartFile::write`] does. Gives how
    /// many bytes were taken from the socket, also when it stopped short
    /// (after a write error, more than were appended: see
    /// [`PartFile::written`]). `stop` is asked between rounds, at least
    /// every 100 ms.
    pub fn splice_from(
        &mut self,
        socket: BorrowedFd<'_>,
        len: u64,
        stall: Duration,
        stop: &(dyn Fn() -> bool + Sync),
        progress: &(dyn Fn(u64) + Sync),
    ) -> (u64, Result<(), SpliceError>) {
        if self.written + len > self.size {
            let e = io::Error::new(io::ErrorKind::InvalidData, "more bytes than announced");
            return (0, Err(SpliceError::File(e)));
        }
        let at = self.written;
        let hasher = std::mem::take(&mut self.hasher);
        let to = Into {
            file: &self.file,
            at,
            reserve: &mut self.reserve,
        };
        let (taken, moved, hasher, r) =
            splice_into(socket, to, len, hasher, (stall, stop), progress);
        self.hasher = hasher;
        self.written += moved;
        self.writeback = Writeback::new(self.written);
        // Later plain writes go on from here.
        let r = match io::Seek::seek(&mut self.file, io::SeekFrom::Start(self.written)) {
            Ok(_) => r,
            Err(e) => r.and(Err(SpliceError::File(e))),
        };
        (taken, r)
    }
}

/// Where [`splice_into`] puts the bytes: into `file` from `at`, its blocks
/// claimed ahead by `reserve`.
struct Into<'a> {
    file: &'a File,
    at: u64,
    reserve: &'a mut Reserve,
}

/// Moves `len` bytes from `socket` into the file at `to.at`, `hasher`
/// following them. Gives the bytes taken from the socket, the bytes written
/// (all of them hashed), the hasher, and why it stopped short, if it did.
fn splice_into(
    socket: BorrowedFd<'_>,
    to: Into<'_>,
    len: u64,
    hasher: Hasher,
    (stall, stop): (Duration, &(dyn Fn() -> bool + Sync)),
    progress: &(dyn Fn(u64) + Sync),
) -> (u64, u64, Hasher, Result<(), SpliceError>) {
    let (from_pipe, to_pipe) = match nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK) {
        Ok(pair) => pair,
        Err(e) => return (0, 0, hasher, Err(SpliceError::File(e.into()))),
    };
    // Refused past /proc/sys/fs/pipe-max-size: the default size then serves.
    let _ = nix::fcntl::fcntl(&to_pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(ROUND as i32));
    let Into { file, at, reserve } = to;
    let (ends, news) = mpsc::channel::<u64>();
    std::thread::scope(|scope| {
        let behind = scope.spawn(move || hash_behind(file, at, news, hasher, true));
        let mut pos = at;
        let mut taken = 0;
        let mut lowat = LowWater::new(socket);
        let r = (|| {
            let mut moved_at = Instant::now();
            // Rounds the socket said it was readable and gave nothing.
            let mut idle = 0;
            while taken < len {
                if stop() {
                    return Err(SpliceError::Stopped);
                }
                let want = (len - taken).min(ROUND as u64) as usize;
                lowat.at_most(want);
                let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
                match nix::fcntl::splice(socket, None, to_pipe.as_fd(), None, want, flags) {
                    Ok(0) => return Err(SpliceError::Closed),
                    Ok(n) => {
                        taken += n as u64;
                        idle = 0;
                        reserve.before_writing(file, pos + n as u64);
                        drain(&from_pipe, file, &mut pos, n)?;
                        let _ = ends.send(pos);
                        progress(n as u64);
                        moved_at = Instant::now();
                    }
                    Err(Errno::EAGAIN) => {
                        if moved_at.elapsed() > stall {
                            return Err(SpliceError::Stalled);
                        }
                        let wait = PollFlags::POLLIN | PollFlags::POLLPRI;
                        let mut fds = [PollFd::new(socket, wait)];
                        // A tenth of a second at most, to ask `stop`.
                        let left = stall.saturating_sub(moved_at.elapsed());
                        let most = left.min(Duration::from_millis(100));
                        let most = PollTimeout::try_from(most).unwrap_or(PollTimeout::ZERO);
                        match poll(&mut fds, most) {
                            Ok(0) | Err(Errno::EINTR) => {}
                            Ok(_) => {
                                let seen = fds[0].revents().unwrap_or(PollFlags::empty());
                                // TCP urgent data stops a splice at its mark
                                // while the socket stays readable. A read
                                // steps over the urgent byte, leaving it out
                                // of the stream (as a read of the body
                                // anywhere else, and TLS, do): one round by
                                // read, then splicing goes on. A socket
                                // readable that gives nothing, round after
                                // round, would only spin.
                                idle += 1;
                                if seen.contains(PollFlags::POLLPRI) {
                                    let most = (len - taken).min(ROUND as u64) as usize;
                                    let n = read_round(socket, file, &mut pos, most)?;
                                    if n > 0 {
                                        taken += n as u64;
                                        idle = 0;
                                        let _ = ends.send(pos);
                                        progress(n as u64);
                                        moved_at = Instant::now();
                                    }
                                }
                                if idle > 64 {
                                    return Err(SpliceError::Socket(io::Error::new(
                                        io::ErrorKind::InvalidData,
                                        "the socket is readable but gives nothing",
                                    )));
                                }
                            }
                            Err(e) => return Err(SpliceError::Socket(e.into())),
                        }
                    }
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(SpliceError::Socket(e.into())),
                }
            }
            Ok(())
        })();
        drop(lowat);
        drop(ends);
        let hashed = behind.join();
        match hashed {
            Ok((hasher, Ok(()))) => (taken, pos - at, hasher, r),
            // Read back short: the partial file was cut by another program.
            Ok((hasher, Err(e))) if e.kind() == io::ErrorKind::UnexpectedEof => {
                (taken, 0, hasher, Err(SpliceError::File(cut_shorter())))
            }
            Ok((hasher, Err(e))) => (taken, 0, hasher, Err(SpliceError::File(e))),
            Err(_) => (
                taken,
                0,
                Hasher::default(),
                Err(SpliceError::File(io::Error::other(
                    "the hashing thread failed",
                ))),
            ),
        }
    })
}

/// One round by plain read: up to `most` bytes of `socket` (none when it
/// has none yet) written into `file` at `pos`, advancing it.
fn read_round(
    socket: BorrowedFd<'_>,
    file: &File,
    pos: &mut u64,
    most: usize,
) -> Result<usize, SpliceError> {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; most];
    let flags = nix::sys::socket::MsgFlags::MSG_DONTWAIT;
    match nix::sys::socket::recv(socket.as_raw_fd(), &mut buf, flags) {
        Ok(0) => Err(SpliceError::Closed),
        Ok(n) => {
            not_cut(file, *pos).map_err(SpliceError::File)?;
            file.write_all_at(&buf[..n], *pos)
                .map_err(SpliceError::File)?;
            *pos += n as u64;
            Ok(n)
        }
        Err(Errno::EAGAIN | Errno::EINTR) => Ok(0),
        Err(e) => Err(SpliceError::Socket(e.into())),
    }
}

/// Moves the `n` bytes in the pipe into `file` at `pos`, advancing it,
/// once the file is known to still hold every byte before `pos`.
fn drain(pipe: &impl AsFd, file: &File, pos: &mut u64, n: usize) -> Result<(), SpliceError> {
    not_cut(file, *pos).map_err(SpliceError::File)?;
    let mut left = n;
    while left > 0 {
        let mut off = i64::try_from(*pos)
            .map_err(|_| SpliceError::File(io::ErrorKind::InvalidInput.into()))?;
        match nix::fcntl::splice(
            pipe.as_fd(),
            None,
            file.as_fd(),
            Some(&mut off),
            left,
            SpliceFFlags::SPLICE_F_MOVE,
        ) {
            Ok(0) => return Err(SpliceError::File(io::ErrorKind::WriteZero.into())),
            Ok(k) => {
                left -= k;
                *pos += k as u64;
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(SpliceError::File(e.into())),
        }
    }
    Ok(())
}

/// How many bytes the socket holds before it says it is readable, raised
/// while splicing: the sender's every segment would otherwise wake this
/// thread and the runtime's poller. Set back to one byte when dropped, for
/// the frames that follow.
struct LowWater<'a> {
    socket: BorrowedFd<'a>,
    now: usize,
}

/// The raised mark: a quarter of a round.
const LOW_WATER: usize = ROUND / 4;

impl<'a> LowWater<'a> {
    fn new(socket: BorrowedFd<'a>) -> Self {
        LowWater { socket, now: 1 }
    }

    /// Raises the mark, but never past `left` (the bytes still to come:
    /// a mark above them would never be reached).
    fn at_most(&mut self, left: usize) {
        self.set(left.clamp(1, LOW_WATER));
    }

    #[allow(unsafe_code)]
    fn set(&mut self, bytes: usize) {
        use std::os::fd::AsRawFd;
        if bytes == self.now {
            return;
        }
        let value = bytes as libc::c_int;
        // SAFETY: a plain setsockopt on an open socket, with a pointer to
        // an int and its size.
        let r = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            self.now = bytes;
        }
    }
}

impl Drop for LowWater<'_> {
    fn drop(&mut self) {
        self.set(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::digest::Algo;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    /// A connected pair: the receiving end non-blocking, as a runtime's is.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sender = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (receiver, _) = listener.accept().unwrap();
        receiver.set_nonblocking(true).unwrap();
        (sender, receiver)
    }

    fn part(dir: &std::path::Path, size: u64) -> PartFile {
        let mut part = PartFile::open(&dir.join("got.bin"), false).unwrap();
        part.hash_existing(Algo::Blake3).unwrap();
        part.start(0, size).unwrap();
        part
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4099) as u8).collect()
    }

    #[test]
    fn bytes_sent_in_pieces_arrive_whole_and_hashed_and_the_socket_reads_on_after() {
        let dir = tempfile::tempdir().unwrap();
        let body = bytes(5 * ROUND + 12_345);
        let (mut tx, rx) = pair();
        let sent = body.clone();
        let sender = std::thread::spawn(move || {
            for piece in sent.chunks(700_001) {
                tx.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            // What follows the body: read by plain reads afterwards.
            tx.write_all(b"next").unwrap();
            tx
        });
        let mut p = part(dir.path(), body.len() as u64);
        let counted = std::sync::atomic::AtomicU64::new(0);
        let count = |n| {
            counted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let (moved, r) = p.splice_from(
            rx.as_fd(),
            body.len() as u64,
            Duration::from_secs(5),
            &|| false,
            &count,
        );
        r.unwrap();
        assert_eq!(moved, body.len() as u64);
        assert_eq!(counted.into_inner(), body.len() as u64);
        let _tx = sender.join().unwrap();
        // The low-water mark is back at one byte: four bytes are readable.
        let mut fds = [PollFd::new(rx.as_fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::from(2000u16)).unwrap(), 1);
        let mut tail = [0u8; 16];
        assert_eq!((&rx).read(&mut tail).unwrap(), 4);
        assert_eq!(&tail[..4], b"next");
        let digest = p
            .finish(Some(&Algo::Blake3.hex_of(&body)), None, false)
            .unwrap();
        assert_eq!(digest, Algo::Blake3.hex_of(&body));
        assert_eq!(std::fs::read(dir.path().join("got.bin")).unwrap(), body);
    }

    #[test]
    fn a_peer_that_closes_early_leaves_what_came_hashed_for_a_resume() {
        let dir = tempfile::tempdir().unwrap();
        let body = bytes(3 * ROUND);
        let (mut tx, rx) = pair();
        let half = body[..ROUND + 999].to_vec();
        let sender = std::thread::spawn(move || tx.write_all(&half).unwrap());
        let mut p = part(dir.path(), body.len() as u64);
        let (moved, r) = p.splice_from(
            rx.as_fd(),
            body.len() as u64,
            Duration::from_secs(5),
            &|| false,
            &|_| {},
        );
        sender.join().unwrap();
        assert!(matches!(r, Err(SpliceError::Closed)), "{r:?}");
        assert_eq!(moved, (ROUND + 999) as u64);
        assert_eq!(p.written(), moved);
        // The hash holds exactly the bytes written: the rest, sent another
        // way, completes the file and its digest.
        p.write(&body[ROUND + 999..]).unwrap();
        p.finish(Some(&Algo::Blake3.hex_of(&body)), None, false)
            .unwrap();
        assert_eq!(std::fs::read(dir.path().join("got.bin")).unwrap(), body);
    }

    #[test]
    fn a_stalled_peer_is_given_up_after_the_stall_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tx, rx) = pair();
        tx.write_all(&bytes(1000)).unwrap();
        let mut p = part(dir.path(), 10_000);
        let began = Instant::now();
        let (moved, r) = p.splice_from(
            rx.as_fd(),
            10_000,
            Duration::from_millis(300),
            &|| false,
            &|_| {},
        );
        assert!(matches!(r, Err(SpliceError::Stalled)), "{r:?}");
        assert_eq!(moved, 1000);
        let took = began.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(5),
            "{took:?}"
        );
        drop(tx);
    }

    #[test]
    fn urgent_data_in_the_body_is_left_out_as_a_read_leaves_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tx, rx) = pair();
        let body = bytes(10_000);
        tx.write_all(&body[..5000]).unwrap();
        nix::sys::socket::send(
            std::os::fd::AsRawFd::as_raw_fd(&tx),
            b"!",
            nix::sys::socket::MsgFlags::MSG_OOB,
        )
        .unwrap();
        tx.write_all(&body[5000..]).unwrap();
        let mut p = part(dir.path(), 10_000);
        let began = Instant::now();
        let (moved, r) = p.splice_from(
            rx.as_fd(),
            10_000,
            Duration::from_secs(30),
            &|| false,
            &|_| {},
        );
        r.unwrap();
        assert_eq!(moved, 10_000);
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
        let mut got = vec![0u8; 10_000];
        p.file.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(got, body, "the urgent byte left out");
        drop(tx);
    }

    #[test]
    fn a_write_error_counts_every_byte_taken_from_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let body = bytes(3 * ROUND);
        let (mut tx, rx) = pair();
        let sent = body.clone();
        let sender = std::thread::spawn(move || {
            tx.write_all(&sent).unwrap();
            tx
        });
        let mut p = part(dir.path(), body.len() as u64);
        // The partial file, open for reading only: every write fails.
        p.file = File::open(
            dir.path()
                .join(crate::files::part::part_name("got.bin".as_ref())),
        )
        .unwrap();
        let (taken, r) = p.splice_from(
            rx.as_fd(),
            body.len() as u64,
            Duration::from_secs(5),
            &|| false,
            &|_| {},
        );
        assert!(matches!(r, Err(SpliceError::File(_))), "{r:?}");
        assert_eq!(p.written(), 0);
        assert!(taken > 0);
        // What was not taken is still in the socket, byte for byte.
        let _tx = sender.join().unwrap();
        rx.set_nonblocking(false).unwrap();
        let mut rest = vec![0u8; body.len() - taken as usize];
        (&rx).read_exact(&mut rest).unwrap();
        assert_eq!(rest, body[taken as usize..]);
    }

    /// A partial file cut by another program between two rounds: the next
    /// round is refused, where writing it past the new end would leave a
    /// run of zeros in place of bytes already hashed.
    #[test]
    fn a_partial_file_cut_between_rounds_is_an_error_not_a_run_of_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let body = bytes(3 * ROUND);
        let (mut tx, rx) = pair();
        let at = dir
            .path()
            .join(crate::files::part::part_name("got.bin".as_ref()));
        let sent = body.clone();
        let cutter = at.clone();
        let sender = std::thread::spawn(move || {
            tx.write_all(&sent[..ROUND]).unwrap();
            let began = Instant::now();
            // The partial file may not be made yet when this starts.
            while std::fs::metadata(&cutter).map_or(0, |m| m.len()) < ROUND as u64 {
                assert!(began.elapsed() < Duration::from_secs(20));
                std::thread::sleep(Duration::from_millis(5));
            }
            let f = File::options().write(true).open(&cutter).unwrap();
            f.set_len(ROUND as u64 / 2).unwrap();
            // The rest may find the receiver gone.
            let _ = tx.write_all(&sent[ROUND..]);
        });
        let mut p = part(dir.path(), body.len() as u64);
        let (_, r) = p.splice_from(
            rx.as_fd(),
            body.len() as u64,
            Duration::from_secs(20),
            &|| false,
            &|_| {},
        );
        drop(rx);
        sender.join().unwrap();
        let Err(SpliceError::File(e)) = r else {
            panic!("a cut partial file taken: {r:?}")
        };
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(e.to_string().contains("cut shorter"), "{e}");
        assert_eq!(std::fs::metadata(&at).unwrap().len(), ROUND as u64 / 2);
    }

    #[test]
    fn more_than_announced_is_refused_before_a_byte_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tx, rx) = pair();
        tx.write_all(&bytes(2000)).unwrap();
        let mut p = part(dir.path(), 1000);
        let (moved, r) =
            p.splice_from(rx.as_fd(), 2000, Duration::from_secs(1), &|| false, &|_| {});
        assert!(matches!(r, Err(SpliceError::File(_))), "{r:?}");
        assert_eq!(moved, 0);
        let mut fds = [PollFd::new(rx.as_fd(), PollFlags::POLLIN)];
        assert_eq!(
            poll(&mut fds, PollTimeout::from(2000u16)).unwrap(),
            1,
            "bytes still unread"
        );
    }
}
