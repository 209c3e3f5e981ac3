//! Logging: the subscriber every subcommand shares, and a fast path for the
//! request log.
//!
//! Lines go to standard error through a thread of their own. The request
//! log is the one that runs per request; going through the general
//! formatter (a field visitor, a character-by-character escaping writer, a
//! calendar date per line) cost about a third of the CPU a small GET took.
//! [`request`] writes the same line, in the same layout, straight to that
//! thread: its text is built from parts that are already escaped, with the
//! date formatted once a second. A server's worker threads gather the
//! request lines in one buffer, in the order they are written, handed over
//! when a worker parks (or every 16 KiB), and at exit: a hand-over per line
//! woke the writing thread for every request, about a tenth of the CPU a
//! small GET took.

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// The writer behind the subscriber, when the fast path may use it (plain
/// text, no colours).
static PLAIN: OnceLock<NonBlocking> = OnceLock::new();

/// Installs the subscriber: `filter` unless `RUST_LOG` says otherwise.
/// A server (`background`) writes through a thread of its own, and the
/// guard it returns must be kept until exit: dropping it flushes what is
/// queued. A client writes its few lines straight to standard error: the
/// thread and its queue (128,000 lines, allocated and touched up front)
/// cost a short command more than everything else it does before
/// connecting.
pub fn init(filter: &str, background: bool) -> Option<Flush> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let ansi = std::io::stderr().is_terminal();
    if !background {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .init();
        return None;
    }
    // The thread buffers what is queued and flushes when the queue is
    // empty: many lines per write(2) under load, and no line waits for the
    // next. Not lossy: a full queue slows the loggers down instead.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("ferry-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    if !ansi {
        let _ = PLAIN.set(writer.clone());
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .init();
    Some(Flush { _queued: guard })
}

/// How the subscriber writes the span of the connection from `peer` (the
/// one the server opens for each connection) before a line's target.
pub(crate) fn conn_span(peer: std::net::SocketAddr) -> String {
    format!("conn{{peer={peer}}}: ")
}

/// One line of the request log (target `ferry::http`, level INFO), laid out
/// as the subscriber lays out its own lines, within the connection's span
/// (`span`, from [`conn_span`]); `build` writes the message,
/// and only when that target is enabled. What it writes must already be
/// safe to print: every part a peer controls escaped.
pub(crate) fn request(span: &str, build: impl FnOnce(&mut String)) {
    if !tracing::enabled!(target: "ferry::http", tracing::Level::INFO) {
        return;
    }
    let mut message = String::with_capacity(128);
    build(&mut message);
    if PLAIN.get().is_none() {
        tracing::info!(target: "ferry::http", "{message}");
        return;
    }
    if BATCHING.get() {
        let mut pending = pending();
        write_line(&mut pending, span, &message);
        if pending.len() >= BATCH {
            hand_over(&mut pending);
        }
        return;
    }
    let mut line = Vec::with_capacity(message.len() + span.len() + 48);
    write_line(&mut line, span, &message);
    hand_over(&mut line);
}

/// Request lines a worker gathers before handing them over at once.
const BATCH: usize = 16 * 1024;

thread_local! {
    /// Whether this thread gathers request lines: a runtime worker, which
    /// says so the first time it parks.
    static BATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Request lines not yet handed to the writing thread. One buffer for all
/// workers, so that lines keep their order (a connection's task moves
/// between workers); handed over under its lock for the same reason.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<u8>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends `pending` to the writing thread as one message, and empties it.
fn hand_over(pending: &mut Vec<u8>) {
    if let (false, Some(writer)) = (pending.is_empty(), PLAIN.get()) {
        // An error there (stderr closed) has nowhere to be reported.
        let _ = writer.clone().write_all(pending);
    }
    pending.clear();
}

/// Called by a runtime worker as it parks (and as it stops): hands over
/// the request lines gathered, and has this thread gather from now on. A
/// thread that never parks (a blocking one) writes each line at once.
pub fn parked() {
    if PLAIN.get().is_none() {
        return;
    }
    BATCHING.set(true);
    hand_over(&mut pending());
}

/// Kept until exit by a server: hands over the request lines still
/// gathered, then waits for the writing thread to write what is queued.
pub struct Flush {
    _queued: WorkerGuard,
}

impl Drop for Flush {
    fn drop(&mut self) {
        hand_over(&mut pending());
    }
}

/// One request line, as the subscriber lays out its own.
fn write_line(line: &mut Vec<u8>, span: &str, message: &str) {
    stamp(|now, micros| {
        line.extend_from_slice(now.rfc3339.as_bytes());
        let mut digits = itoa::Buffer::new();
        let d = digits.format(micros);
        line.push(b'.');
        line.extend(std::iter::repeat_n(b'0', 6 - d.len()));
        line.extend_from_slice(d.as_bytes());
    });
    line.extend_from_slice(b"Z  INFO ");
    line.extend_from_slice(span.as_bytes());
    line.extend_from_slice(b"ferry::http: ");
    line.extend_from_slice(message.as_bytes());
    line.push(b'\n');
}

/// The current second in the two layouts the logs use.
pub(crate) struct Second {
    secs: i64,
    /// `2026-11-23T02:42:21`, UTC, as the subscriber writes it.
    pub(crate) rfc3339: String,
    /// `23/Nov/2026:02:42:21 +0000`, as the common log format writes it.
    pub(crate) clf: String,
}

/// Calls `f` with the current second, formatted at most once a second per
/// thread, and the microseconds within it.
pub(crate) fn stamp<T>(f: impl FnOnce(&Second, u32) -> T) -> T {
    use std::cell::RefCell;
    thread_local! {
        static NOW: RefCell<Second> = const {
            RefCell::new(Second { secs: i64::MIN, rfc3339: String::new(), clf: String::new() })
        };
    }
    let now = chrono::Utc::now();
    NOW.with(|s| {
        let mut s = s.borrow_mut();
        if s.secs != now.timestamp() {
            *s = Second {
                secs: now.timestamp(),
                rfc3339: now.format("%Y-%m-%dT%H:%M:%S").to_string(),
                clf: now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            };
        }
        f(&s, now.timestamp_subsec_micros().min(999_999))
    })
}
