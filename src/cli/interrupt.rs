//! Ctrl-C (SIGINT), SIGTERM and SIGHUP for a command that has something
//! to put in order before it goes: a download's partial file, whose disk
//! claimed ahead of its bytes (see `files::reserve`) is given back when
//! the transfer stops, and is not when the process dies by the signal;
//! and for an upload, a word on how far it got.
//!
//! The first signal fires a token the transfer watches (it stops within a
//! tenth of a second, keeping what arrived); the command then dies by that
//! signal, as the shell expects of an interrupted program. A second signal,
//! or a command still going five seconds after the first, ends the process
//! at once.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::sys::signal::{SigHandler, Signal, raise, signal};
use tokio::signal::unix::{SignalKind, signal as watch};
use tokio_util::sync::CancellationToken;

use crate::client::ClientError;

/// The signal caught, 0 while none has been.
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// How long a command may take to stop after the first signal.
const GRACE: Duration = Duration::from_secs(5);

/// How long [`stoppable`] lets its work go on after the signal.
const MOMENT: Duration = Duration::from_millis(500);

/// From here on, SIGINT, SIGTERM and SIGHUP (the terminal closed) fire the
/// token given back instead of ending the process. One this process was
/// started with ignored (a script's `trap '' INT`, a background job of a
/// script, `nohup`) stays ignored; where one cannot be caught, it keeps
/// its default action.
pub(super) fn catch() -> CancellationToken {
    let token = CancellationToken::new();
    let watched = |sig, kind| heeded(sig).then(|| watch(kind).ok()).flatten();
    let mut int = watched(Signal::SIGINT, SignalKind::interrupt());
    let mut term = watched(Signal::SIGTERM, SignalKind::terminate());
    let mut hup = watched(Signal::SIGHUP, SignalKind::hangup());
    if int.is_none() && term.is_none() && hup.is_none() {
        return token;
    }
    let fire = token.clone();
    tokio::spawn(async move {
        let caught = tokio::select! {
            _ = next(&mut int) => Signal::SIGINT,
            _ = next(&mut term) => Signal::SIGTERM,
            _ = next(&mut hup) => Signal::SIGHUP,
        };
        CAUGHT.store(caught as i32, Ordering::SeqCst);
        fire.cancel();
        tokio::select! {
            _ = next(&mut int) => {}
            _ = next(&mut term) => {}
            _ = next(&mut hup) => {}
            _ = tokio::time::sleep(GRACE) => {}
        }
        die(caught);
    });
    token
}

/// The next delivery of a signal watched, never for one not watched.
async fn next(watched: &mut Option<tokio::signal::unix::Signal>) {
    match watched {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Whether `sig` is not ignored: its action asked of the system, left as
/// it is.
fn heeded(sig: Signal) -> bool {
    // SAFETY: with no new action given, `sigaction` only fills in `old`,
    // a plain C struct this function owns.
    #[allow(unsafe_code)]
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig as i32, std::ptr::null(), &mut old) != 0
            || old.sa_sigaction != libc::SIG_IGN
    }
}

/// Runs `work` (which watches `stop` where it moves bytes) to its end; once
/// `stop` fires, for a moment more only (enough for a transfer to stop
/// where it is and say how far it got): what still waits then (for the
/// server's answer, for a local file to be hashed) is dropped, a partial
/// file with it.
pub(super) async fn stoppable<T>(
    stop: &CancellationToken,
    work: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        done = &mut work => return done,
        _ = stop.cancelled() => {}
    }
    match tokio::time::timeout(MOMENT, work).await {
        Ok(done) => done,
        Err(_) => Err(ClientError::Interrupted(
            "interrupted while waiting (for the server, or for a local file to be hashed); a partial file begun is kept: the same command resumes".into(),
        )),
    }
}

/// Ends the process by the signal caught, if one was: called once the
/// command has stopped and said why.
pub(super) fn die_if_caught() {
    if let Ok(caught) = Signal::try_from(CAUGHT.load(Ordering::SeqCst)) {
        die(caught);
    }
}

/// Dies by `sig`, its default action restored: the parent sees a process
/// killed by it (a shell stops a script on an interrupted command).
fn die(sig: Signal) -> ! {
    // SAFETY: installing the default action holds no Rust state; nothing
    // of this process is to run once the signal is delivered.
    #[allow(unsafe_code)]
    unsafe {
        let _ = signal(sig, SigHandler::SigDfl);
    }
    let _ = raise(sig);
    // Only reached if the signal is blocked on this thread.
    std::process::exit(128 + sig as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn work_that_goes_on_waiting_after_the_signal_is_given_up_a_moment_later() {
        let stop = CancellationToken::new();
        let fire = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            fire.cancel();
        });
        let t = Instant::now();
        let r: Result<(), _> = stoppable(&stop, std::future::pending()).await;
        assert!(matches!(r, Err(ClientError::Interrupted(_))), "{r:?}");
        let took = t.elapsed();
        assert!(took >= MOMENT && took < GRACE, "{took:?}");
    }

    #[tokio::test]
    async fn work_that_stops_on_the_signal_says_so_itself() {
        let stop = CancellationToken::new();
        let watched = stop.clone();
        let work = async move {
            watched.cancelled().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err::<(), _>(ClientError::Interrupted("after 5 of 9 bytes".into()))
        };
        stop.cancel();
        let r = stoppable(&stop, work).await;
        assert!(
            matches!(&r, Err(ClientError::Interrupted(m)) if m == "after 5 of 9 bytes"),
            "{r:?}"
        );
        // And work done before any signal is simply done.
        let quiet = CancellationToken::new();
        assert!(
            stoppable(&quiet, async { Ok(7) })
                .await
                .is_ok_and(|n| n == 7)
        );
    }
}
