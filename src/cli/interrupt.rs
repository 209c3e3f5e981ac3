//! Ctrl-C (SIGINT) and SIGTERM for a command that has something to put in
//! order before it goes: a download's partial file, whose disk claimed
//! ahead of its bytes (see `files::reserve`) is given back when the
//! transfer stops, and is not when the process dies by the signal.
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

/// The signal caught, 0 while none has been.
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// How long a command may take to stop after the first signal.
const GRACE: Duration = Duration::from_secs(5);

/// From here on, SIGINT and SIGTERM fire the token given back instead of
/// ending the process. Where they cannot be caught, the token never fires
/// and the signals keep their default action.
pub(super) fn catch() -> CancellationToken {
    let token = CancellationToken::new();
    let (Ok(mut int), Ok(mut term)) = (
        watch(SignalKind::interrupt()),
        watch(SignalKind::terminate()),
    ) else {
        return token;
    };
    let fire = token.clone();
    tokio::spawn(async move {
        let caught = tokio::select! {
            _ = int.recv() => Signal::SIGINT,
            _ = term.recv() => Signal::SIGTERM,
        };
        CAUGHT.store(caught as i32, Ordering::SeqCst);
        fire.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = tokio::time::sleep(GRACE) => {}
        }
        die(caught);
    });
    token
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
