//! The exec request on the native door: starts a [`Job`], then moves its
//! streams over the connection in both directions at once until the exit
//! report, and keeps the connection in step for the next request.
//!
//! Reading and writing run as two futures over the connection's two halves,
//! so neither direction ever waits for the other: output flows while stdin
//! is stuck, and a `cancel` is read at once whatever else is in flight
//! (stdin is bounded by [`STDIN_WINDOW`], so reading on costs at most that).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::Ctx;
use super::fail::Fail;
use super::limits::Refusal;
use crate::exec::job::Input;
use crate::exec::{Ending, Finish, Job, JobSpec};
use crate::files::RelPath;
use crate::text::escape;
use crate::wire::messages::{
    ErrorCode, ExecEvent, ExecRequest, ExitReport, Request, STDIN_WINDOW, Stream,
};
use crate::wire::{ConnError, Connection, FrameReader, FrameWriter, Kind};

/// Longest argv (all arguments together) and environment accepted.
const MAX_ARGV_BYTES: usize = 32 * 1024;

/// Runs one exec request to its end. The caller has checked the permission.
pub(super) async fn exec(
    conn: &mut Connection,
    ctx: &Arc<Ctx>,
    peer: SocketAddr,
    p: ExecRequest,
) -> Result<(), Fail> {
    let mut p = p;
    if p.argv.is_empty() && p.pty.is_some() {
        // A terminal and nothing named: the server's interactive shell.
        p.argv = interactive_shell();
    }
    if p.argv.first().is_none_or(|a| a.is_empty()) {
        return Err(Fail::Reply(ErrorCode::BadRequest, "argv is empty".into()));
    }
    if p.argv.iter().any(|a| a.contains('\0')) {
        return Err(Fail::Reply(
            ErrorCode::BadRequest,
            "an argument contains a NUL byte".into(),
        ));
    }
    if p.argv.iter().map(String::len).sum::<usize>() > MAX_ARGV_BYTES {
        return Err(Fail::Reply(
            ErrorCode::TooLarge,
            format!("arguments may total at most {MAX_ARGV_BYTES} bytes"),
        ));
    }
    let limits = ctx.config.exec;
    let _slot = ctx.exec_slots.try_acquire(peer.ip()).map_err(|r| {
        let msg = match r {
            Refusal::Total => format!(
                "busy: {} commands are running on this server; try again later",
                limits.jobs
            ),
            Refusal::PerIp => format!(
                "busy: you have {} commands running on this server already",
                limits.jobs_per_client
            ),
        };
        Fail::Reply(ErrorCode::Busy, msg)
    })?;
    let rel = RelPath::parse(&p.cwd)?;
    let cwd = ctx.files.blocking(move |s| s.local_folder(&rel)).await?;
    let mut env = crate::exec::environment(&cwd, peer, &ctx.config.name, &p.env)
        .map_err(|m| Fail::Reply(ErrorCode::BadRequest, m))?;
    if let Some(pty) = &p.pty {
        env.retain(|(k, _)| k != "TERM");
        env.push(("TERM".into(), terminal_kind(pty.term.as_deref())));
    }
    let timeout = p
        .timeout_secs
        .map(|s| Duration::from_secs(s.max(1)))
        .unwrap_or(limits.timeout)
        .min(limits.timeout);
    let spec = JobSpec {
        argv: p.argv,
        cwd,
        env,
        stdin: p.stdin,
        timeout,
        grace: limits.grace,
        max_output: p
            .max_output
            .unwrap_or(limits.max_output)
            .min(limits.max_output),
        pty: p.pty.as_ref().map(|t| (t.rows, t.cols)),
    };
    let shown = shown_argv(&spec.argv);
    // Cancelled by a client's cancel, its disconnect, or server shutdown.
    let cancel = ctx.stop.child_token();
    // Whatever way this returns, the job is stopped.
    let _stop_job = cancel.clone().drop_guard();
    let job = match Job::spawn(&spec, cancel.clone()) {
        Ok(job) => job,
        Err(e) => {
            info!(argv = %shown, status = e.status(), "exec failed: {}", escape(&e.to_string()));
            let report = ExitReport {
                code: Some(e.status()),
                error: Some(e.to_string()),
                ..ExitReport::default()
            };
            return conn.send(Kind::Ok, &report, 0).await.map_err(Fail::from);
        }
    };
    conn.send(Kind::Partial, &ExecEvent::Started, 0).await?;

    // A running command may be silent for as long as it may run.
    let idle = conn.deadlines().idle;
    conn.set_idle(timeout + limits.grace * 2 + Duration::from_secs(60));
    let Job {
        stdin,
        output,
        pgid,
        supervisor,
    } = job;
    let gone = CancellationToken::new();
    let flow = StdinFlow::default();
    let (rd, wr) = conn.halves();
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    let (sizes_tx, sizes_rx) = tokio::sync::watch::channel((0, 0));
    let feeder = tokio::spawn(feed_stdin(stdin, stdin_rx, flow.clone(), sizes_rx));
    let reading = read_input(rd, stdin_tx, sizes_tx, &flow, &cancel, &gone);
    let stop = &ctx.stop;
    let writing = async {
        let streamed = write_output(wr, output, &flow, &gone).await;
        let finish = supervisor.finish().await;
        let report = report(&finish);
        let sent = match streamed {
            Err(e) => Err(e),
            Ok(()) if stop.is_cancelled() && finish.ending == Ending::Cancelled => {
                // The connection closes right after: nothing more to read.
                gone.cancel();
                wr.send_error(
                    ErrorCode::ShuttingDown,
                    "the server is shutting down; the command was stopped",
                )
                .await
                .map_err(Fail::from)
            }
            Ok(()) => wr.send(Kind::Ok, &report, 0).await.map_err(Fail::from),
        };
        (sent, finish, report)
    };
    let (read_result, (write_result, finish, report)) = tokio::join!(reading, writing);
    feeder.abort();
    conn.set_idle(idle);
    info!(
        argv = %shown,
        pgid,
        ms = report.duration_ms,
        status = report.status(),
        truncated = report.truncated,
        "exec {}",
        match finish.ending {
            Ending::Exited => "ended",
            Ending::TimedOut => "timed out",
            Ending::Cancelled => "cancelled",
        }
    );
    // A client that broke the protocol hears why (the connection closes).
    if let Err(fatal @ Fail::Fatal(..)) = read_result {
        return Err(fatal);
    }
    write_result?;
    if stop.is_cancelled() {
        return Err(Fail::Conn(ConnError::Closed));
    }
    read_result
}

/// Client input in flight: queued for the command's stdin, and taken but
/// not yet reported to the client.
#[derive(Debug, Clone, Default)]
struct StdinFlow(Arc<FlowInner>);

#[derive(Debug, Default)]
struct FlowInner {
    queued: AtomicU64,
    unreported: AtomicU64,
    notify: Notify,
}

impl StdinFlow {
    fn taken(&self, n: u64) {
        self.0.queued.fetch_sub(n, Ordering::Relaxed);
        self.0.unreported.fetch_add(n, Ordering::Relaxed);
        self.0.notify.notify_one();
    }

    fn take_unreported(&self) -> u64 {
        self.0.unreported.swap(0, Ordering::Relaxed)
    }
}

/// The server's interactive shell, for a terminal session with nothing
/// named (`ferry shell`): bash when there is one, else sh.
fn interactive_shell() -> Vec<String> {
    let shell = ["/bin/bash", "/usr/bin/bash"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or("/bin/sh");
    vec![shell.to_string(), "-i".to_string()]
}

/// The `TERM` of a terminal session: the client's, when it is a plain
/// terminal name, else `xterm-256color`.
fn terminal_kind(term: Option<&str>) -> String {
    match term {
        Some(t)
            if !t.is_empty()
                && t.len() <= 64
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b)) =>
        {
            t.to_string()
        }
        _ => "xterm-256color".to_string(),
    }
}

/// Writes queued client input to the command's stdin. Input the command
/// will not take (it closed stdin, or exited) is dropped, and reported
/// taken all the same so the client is never left waiting.
/// Size changes of the client's terminal come through `sizes`, which keeps
/// only the latest: however many are sent, they cost one slot.
async fn feed_stdin(
    mut stdin: Option<Input>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    flow: StdinFlow,
    mut sizes: tokio::sync::watch::Receiver<(u16, u16)>,
) {
    loop {
        let chunk = tokio::select! {
            c = rx.recv() => match c {
                Some(c) => c,
                None => break,
            },
            Ok(()) = sizes.changed() => {
                let (rows, cols) = *sizes.borrow_and_update();
                if let Some(w) = &stdin {
                    w.resize(rows, cols);
                }
                continue;
            }
        };
        if let Some(w) = &mut stdin {
            if w.write_all(&chunk).await.is_err() {
                stdin = None;
            }
        }
        flow.taken(chunk.len() as u64);
    }
    // The sender is gone: the client closed stdin or the exec is over.
}

/// Reads the client's frames until `end`: stdin bytes go to the feeder,
/// `cancel` stops the job. Returns early, cancelling the job, when the
/// client disconnects or breaks the protocol.
async fn read_input(
    rd: &mut FrameReader,
    stdin_tx: mpsc::UnboundedSender<Bytes>,
    sizes: tokio::sync::watch::Sender<(u16, u16)>,
    flow: &StdinFlow,
    cancel: &CancellationToken,
    gone: &CancellationToken,
) -> Result<(), Fail> {
    let mut stdin_tx = Some(stdin_tx);
    let result = async {
        loop {
            let head = tokio::select! {
                h = rd.next_head() => h?,
                _ = gone.cancelled() => return Err(Fail::Conn(ConnError::Closed)),
            };
            let req = serde_json::from_slice::<Request>(&head.header);
            match req {
                Ok(Request::Stdin) if head.body_len == 0 => stdin_tx = None,
                Ok(Request::Stdin) => {
                    // The window is the client's to respect, and what bounds
                    // the memory a client can make the server hold.
                    let queued = flow.0.queued.fetch_add(head.body_len, Ordering::Relaxed);
                    if queued + head.body_len > STDIN_WINDOW {
                        return Err(Fail::Fatal(
                            ErrorCode::TooLarge,
                            format!("more than {STDIN_WINDOW} bytes of stdin in flight"),
                        ));
                    }
                    while rd.body_remaining() > 0 {
                        let chunk = rd.next_chunk().await?;
                        let n = chunk.len() as u64;
                        match &stdin_tx {
                            Some(tx) if tx.send(chunk).is_ok() => {}
                            _ => flow.taken(n),
                        }
                    }
                }
                Ok(Request::Cancel) if head.body_len == 0 => cancel.cancel(),
                Ok(Request::Resize { rows, cols }) if head.body_len == 0 => {
                    sizes.send_replace((rows.max(1), cols.max(1)));
                }
                Ok(Request::End) if head.body_len == 0 => return Ok(()),
                _ => {
                    return Err(Fail::Fatal(
                        ErrorCode::BadRequest,
                        "while a command runs, only stdin, resize, cancel and end may be sent"
                            .into(),
                    ));
                }
            }
        }
    }
    .await;
    if result.is_err() {
        cancel.cancel();
        gone.cancel();
    }
    result
}

/// Sends output and stdin progress as they come, then the exit report.
async fn write_output(
    wr: &mut FrameWriter,
    mut output: mpsc::Receiver<(Stream, Bytes)>,
    flow: &StdinFlow,
    gone: &CancellationToken,
) -> Result<(), Fail> {
    let result = async {
        loop {
            tokio::select! {
                chunk = output.recv() => match chunk {
                    Some((stream, data)) => {
                        let event = match stream {
                            Stream::Stdout => ExecEvent::Stdout,
                            Stream::Stderr => ExecEvent::Stderr,
                        };
                        wr.send_frame(Kind::Partial, &event, &data).await?;
                    }
                    None => break,
                },
                _ = flow.0.notify.notified() => {
                    let bytes = flow.take_unreported();
                    if bytes > 0 {
                        wr.send(Kind::Partial, &ExecEvent::StdinConsumed { bytes }, 0).await?;
                    }
                }
                _ = gone.cancelled() => return Err(ConnError::Closed),
            }
        }
        Ok::<(), ConnError>(())
    }
    .await;
    if let Err(e) = result {
        gone.cancel();
        return Err(Fail::Conn(e));
    }
    Ok(())
}

/// The wire report of a finished job.
fn report(f: &Finish) -> ExitReport {
    ExitReport {
        code: f.code,
        signal: f.signal,
        timed_out: f.ending == Ending::TimedOut,
        cancelled: f.ending == Ending::Cancelled,
        truncated: f.truncated,
        error: None,
        stdout_bytes: f.produced[0],
        stderr_bytes: f.produced[1],
        duration_ms: f.duration.as_millis() as u64,
    }
}

/// argv for the log: escaped, quoted where it has spaces, shortened.
fn shown_argv(argv: &[String]) -> String {
    let mut s = String::new();
    for a in argv {
        if !s.is_empty() {
            s.push(' ');
        }
        let e = escape(a);
        if e.is_empty() || e.contains(' ') {
            s.push('\'');
            s.push_str(&e);
            s.push('\'');
        } else {
            s.push_str(&e);
        }
        if s.len() > 200 {
            s.truncate(200);
            s.push('…');
            break;
        }
    }
    s
}
