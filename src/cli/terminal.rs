//! A command on the server's pseudo-terminal (`ferry exec -t`, `ferry
//! shell`), as ssh runs one: this terminal in raw mode while it lasts (so
//! every key, Ctrl-C included, goes to the remote terminal, which turns
//! it into a signal for whatever runs in its foreground), its size
//! followed as it changes, and restored however the session ends.

use std::io::IsTerminal;

use nix::sys::termios::{self, SetArg, Termios};
use tokio_util::sync::CancellationToken;

use super::output::DirectOut;
use crate::client::{Client, ClientError};
use crate::wire::messages::{ExecRequest, ExitReport, PtySize};

/// Puts this terminal back as it was when dropped.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin, when it is a terminal.
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSADRAIN, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// This terminal's size (rows, columns), or 24x80.
fn size() -> (u16, u16) {
    terminal_size::terminal_size_of(std::io::stdout())
        .or_else(|| terminal_size::terminal_size_of(std::io::stdin()))
        .map(|(w, h)| (h.0, w.0))
        .unwrap_or((24, 80))
}

/// Runs `spec` on a pseudo-terminal of the server, to its report.
pub(super) async fn session(
    client: &mut Client,
    spec: ExecRequest,
) -> Result<ExitReport, ClientError> {
    let (rows, cols) = size();
    let spec = ExecRequest {
        pty: Some(PtySize {
            rows,
            cols,
            term: std::env::var("TERM").ok(),
        }),
        ..spec
    };
    let (tx, mut resizes) = tokio::sync::mpsc::unbounded_channel();
    let following = tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut changes) = signal(SignalKind::window_change()) else {
            return;
        };
        while changes.recv().await.is_some() {
            if tx.send(size()).is_err() {
                return;
            }
        }
    });
    let raw = RawMode::enter();
    let cancel = CancellationToken::new();
    // Without a local terminal (input piped in), Ctrl-C still reaches this
    // process: then it stops the remote command.
    let interrupts = raw.is_none().then(|| {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        })
    });
    // Told to end (SIGTERM, or the terminal hung up): stop the remote
    // command, so that the session ends here and this terminal is put
    // back as it was.
    let ended = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
            cancel.cancel();
        })
    };
    let result = client
        .exec_terminal(
            &spec,
            tokio::io::stdin(),
            &mut DirectOut(std::io::stdout()),
            &cancel,
            &mut resizes,
        )
        .await;
    drop(raw);
    following.abort();
    ended.abort();
    if let Some(i) = interrupts {
        i.abort();
    }
    result
}
