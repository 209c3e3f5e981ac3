//! Turns on a blocking thread for moving a transfer's bytes.
//!
//! Disk reads and writes, `sendfile` and `splice` block, so a transfer's
//! bytes move on the runtime's blocking threads, which are few (512) and
//! shared with everything else that touches the disk: listings, opens,
//! password checks. A transfer that held its thread for as long as it
//! lasted would let peers that stop reading, or send a byte now and then,
//! take every one of them with a few hundred connections, and the server
//! would stop answering anyone.
//!
//! So a transfer moves its bytes in rounds. A round holds a blocking thread
//! only while the peer keeps up: when the peer has given or taken nothing
//! for [`IDLE`], the round ends and the transfer waits for its socket (or
//! channel) in the runtime, holding no thread. At most [`AT_ONCE`] rounds
//! run at a time, across every door ([`turn`]); while every turn is taken,
//! a round ends as soon as it must wait on its peer at all
//! ([`Turn::idle`]), and one that has run for [`SLICE`] ends and queues
//! again, so the turns go round, to the transfers with bytes to move.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest a round waits on its peer before it gives its thread back.
/// Long enough that a transfer at full speed never waits that long (a
/// socket buffer drains or fills in well under a millisecond), short
/// enough that a stalled peer holds a thread only briefly.
pub const IDLE: Duration = Duration::from_millis(20);

/// The longest a round runs while other transfers wait for a turn.
pub const SLICE: Duration = Duration::from_millis(250);

/// Rounds running at once: far more transfers than two cores, or
/// sixty-four, can move at full speed, and far fewer than the runtime's
/// blocking threads, which the rest of the server needs too.
pub const AT_ONCE: usize = 128;

fn turns() -> &'static Arc<Semaphore> {
    static TURNS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    TURNS.get_or_init(|| Arc::new(Semaphore::new(AT_ONCE)))
}

/// A turn: a round may run while it is held.
#[derive(Debug)]
pub struct Turn {
    _permit: OwnedSemaphorePermit,
    began: Instant,
}

/// Waits for a turn (in the runtime, holding no thread).
pub async fn turn() -> Turn {
    let permit = turns()
        .clone()
        .acquire_owned()
        .await
        .expect("the turns are never closed");
    Turn {
        _permit: permit,
        began: Instant::now(),
    }
}

impl Turn {
    /// The turn as its round starts on its thread: its slice counts from
    /// here, not from when it was given (a busy pool may start it later).
    pub fn started(mut self) -> Turn {
        self.began = Instant::now();
        self
    }

    /// The longest the round may wait on its peer before it gives its
    /// thread back: [`IDLE`], or nothing while every turn is taken. Others
    /// may then be waiting for a turn, and a peer that trickles (a byte
    /// every few milliseconds, never quiet for [`IDLE`]) would otherwise
    /// keep its turn for a whole [`SLICE`] while moving next to nothing:
    /// the turns go to the transfers that have bytes to move.
    pub fn idle(&self) -> Duration {
        if turns().available_permits() == 0 {
            Duration::ZERO
        } else {
            IDLE
        }
    }

    /// Whether the round should end here and queue again: it has run for
    /// [`SLICE`] and every turn is taken, so others may be waiting.
    pub fn is_up(&self) -> bool {
        self.began.elapsed() >= SLICE && turns().available_permits() == 0
    }
}

/// Rounds running now (for tests).
pub fn running() -> usize {
    AT_ONCE - turns().available_permits()
}

/// How a round ended before its work was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// The peer gave or took nothing for [`IDLE`]: wait for it.
    Idle,
    /// The turn is up ([`Turn::is_up`]): queue for another.
    TurnUp,
}

/// Waits for a turn, or for `cancel` (`None`).
pub async fn turn_unless(cancel: &tokio_util::sync::CancellationToken) -> Option<Turn> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        turn = turn() => Some(turn),
    }
}

/// Runs a round's `work` on a blocking thread; its panic goes on here. An
/// error only when the runtime is shutting down.
pub async fn on_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(t) => Ok(t),
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Err(std::io::Error::other(e)),
        },
    }
}

/// How waiting on a quiet peer ended.
#[derive(Debug)]
pub enum Waited {
    /// The socket is ready: the next round goes on.
    Ready,
    /// Nothing moved for the stall deadline.
    Stalled,
    /// `cancel` fired.
    Cancelled,
    /// The socket failed.
    Failed(std::io::Error),
}

/// Waits, holding no thread, until `fd` (from [`watch`]) is ready for
/// `interest`: for what is left of `stall` since a byte last moved
/// (`moved`; a round that paused waited [`IDLE`] of it already), or until
/// `cancel`. One rule for every transfer: the deadline counts from the
/// last byte, however often the socket says it is ready and moves nothing.
pub async fn wait_for_peer(
    fd: &tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    interest: tokio::io::Interest,
    (stall, moved): (Duration, Instant),
    cancel: &tokio_util::sync::CancellationToken,
) -> Waited {
    let left = stall.saturating_sub(moved.elapsed().max(IDLE));
    if left.is_zero() {
        return Waited::Stalled;
    }
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Waited::Cancelled,
        r = ready(fd, interest, left) => match r {
            Some(Ok(())) => Waited::Ready,
            Some(Err(e)) => Waited::Failed(e),
            None => Waited::Stalled,
        },
    }
}

/// Waits until `fd` is ready for `interest`, at most `left`; `None` when it
/// is not by then. `fd` is a duplicate of the transfer's socket registered
/// with the runtime for these waits (the socket itself stays where it is).
async fn ready(
    fd: &tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    interest: tokio::io::Interest,
    left: Duration,
) -> Option<std::io::Result<()>> {
    let wait = async {
        loop {
            let mut guard = fd.ready(interest).await?;
            // The readiness the runtime remembers may be from before the
            // round that just gave up waiting: the socket itself says.
            if polled(fd.get_ref(), interest)? {
                return Ok(());
            }
            // Kept if the socket became ready since the guard was given.
            guard.clear_ready();
        }
    };
    tokio::time::timeout(left, wait).await.ok()
}

/// Whether `fd` is ready for `interest` now (a closed or failed socket is:
/// the next round finds out why).
fn polled(fd: &std::os::fd::OwnedFd, interest: tokio::io::Interest) -> std::io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let events = if interest.is_readable() {
        PollFlags::POLLIN | PollFlags::POLLPRI
    } else {
        PollFlags::POLLOUT
    };
    let mut fds = [PollFd::new(fd.as_fd(), events)];
    loop {
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// A duplicate of `socket` registered with the runtime, for [`ready`].
pub fn watch(
    socket: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    let owned = socket.try_clone_to_owned()?;
    // SAFETY: an `OwnedFd` is a valid open descriptor that stays open,
    // the same one, until it is dropped with the `AsyncFd` holding it.
    #[allow(unsafe_code)]
    let registered = unsafe { tokio::io::unix::AsyncFd::register(owned) };
    registered.map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn while_every_turn_is_taken_a_round_does_not_wait_on_its_peer() {
        let mut all = Vec::new();
        for _ in 0..AT_ONCE - 1 {
            all.push(turn().await);
        }
        assert_eq!(all[0].idle(), IDLE, "a turn is left");
        assert!(!all[0].is_up());
        let last = turn().await;
        assert_eq!(running(), AT_ONCE);
        assert_eq!(last.idle(), Duration::ZERO);
        assert_eq!(all[0].idle(), Duration::ZERO);
        // Given back, the turns wait again.
        drop(last);
        assert_eq!(all[0].idle(), IDLE);
        // A slice counts from the round's start on its thread.
        let old = Turn {
            began: Instant::now() - SLICE,
            ..turn().await
        };
        assert!(old.is_up(), "every turn taken and the slice used");
        assert!(!old.started().is_up());
    }
}
