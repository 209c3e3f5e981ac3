//! The native protocol's exec messages: the request, terminal sizes, the
//! events of a running command, and its exit report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

// Which output stream a chunk belongs to: the exec service's own type.
pub use crate::exec::Stream;

/// The fields of an `exec` request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// Program and arguments; no shell is involved unless argv names one.
    pub argv: Vec<String>,
    /// Working folder relative to the served root ("" for the root).
    #[serde(default)]
    pub cwd: String,
    /// Variables added to the clean base environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Seconds before the command is stopped (capped by the server).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Whether the client will feed stdin (else the command reads
    /// `/dev/null`).
    #[serde(default)]
    pub stdin: bool,
    /// Most output bytes wanted (capped by the server).
    #[serde(default)]
    pub max_output: Option<u64>,
    /// Run on a pseudo-terminal of this size (ssh's `-t`): stdin, stdout
    /// and stderr are the terminal, whose output comes as `stdout`. Only
    /// for servers whose hello lists `pty`. With an empty `argv`, the
    /// server's interactive shell runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pty: Option<PtySize>,
}

/// A terminal's size and kind, for [`ExecRequest::pty`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PtySize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
    /// The client's `TERM` (`xterm-256color` when absent or odd).
    #[serde(default)]
    pub term: Option<String>,
}

/// What a `Partial` frame of a running command carries.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExecEvent {
    /// The command runs: from now on the client may send `stdin` and
    /// `cancel`, and it must end with `end`.
    Started,
    /// Output for standard output; the body holds the bytes.
    Stdout,
    /// Output for standard error; the body holds the bytes.
    Stderr,
    /// The command's stdin took this many more bytes: the client may have
    /// at most [`STDIN_WINDOW`] bytes sent and not yet taken.
    StdinConsumed {
        /// Bytes taken since the last such event.
        bytes: u64,
    },
}

/// Most stdin bytes a client may have in flight during `exec` (sent, not
/// yet reported taken by [`ExecEvent::StdinConsumed`]). Keeps the server's
/// buffer bounded while it always reads on, so `cancel` is never stuck
/// behind input the command does not read.
pub const STDIN_WINDOW: u64 = 1024 * 1024;

/// How a command ended (`Ok` reply to `exec`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitReport {
    /// Exit code, when it exited (127 and 126 when it could not start).
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
    /// Stopped because its timeout passed.
    #[serde(default)]
    pub timed_out: bool,
    /// Stopped because the client cancelled it.
    #[serde(default)]
    pub cancelled: bool,
    /// Output beyond the cap was dropped.
    #[serde(default)]
    pub truncated: bool,
    /// Why it could not start, when it could not.
    #[serde(default)]
    pub error: Option<String>,
    /// Bytes written to stdout (including any dropped).
    #[serde(default)]
    pub stdout_bytes: u64,
    /// Bytes written to stderr (including any dropped).
    #[serde(default)]
    pub stderr_bytes: u64,
    /// Milliseconds from start to end.
    #[serde(default)]
    pub duration_ms: u64,
}

impl ExitReport {
    /// The status a client exits with: 124 on timeout, 130 when cancelled,
    /// 128+N for signal N, else the exit code.
    pub fn status(&self) -> u8 {
        if self.timed_out {
            124
        } else if self.cancelled {
            130
        } else if let Some(sig) = self.signal {
            (128 + sig.clamp(1, 127)) as u8
        } else {
            self.code.map(|c| (c & 0xff) as u8).unwrap_or(255)
        }
    }
}
