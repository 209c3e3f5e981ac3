//! One running command: its process group, its pipes, and the supervisor
//! that decides when it has ended and makes sure nothing of it is left.
//!
//! The command runs in a process group of its own. Whatever ends it (its own
//! exit, the timeout, a cancel from the client, the server shutting down),
//! the group gets `SIGTERM`, a grace period, then `SIGKILL`: grandchildren
//! do not outlive the job. Output is read as it comes, stdout and stderr
//! apart, through a bounded channel, so a slow reader throttles the command
//! (it blocks on a full pipe) instead of growing memory; beyond the output
//! cap the pipes are still read, and what is read is dropped.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Stream;

/// How long output may keep arriving after the command itself exited (a
/// background grandchild holding the pipes) before the group is stopped.
pub const DRAIN: Duration = Duration::from_millis(200);

/// Bytes read from a pipe at a time (and so the largest output frame).
const READ_CHUNK: usize = 1024 * 1024;

/// Pipe capacity asked for, so that a fast command fills big chunks.
const PIPE_SIZE: i32 = 1024 * 1024;

/// Output chunks queued between the pipes and the connection.
const QUEUE: usize = 4;

/// What to run and under which limits.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Program and arguments; the program is looked up in the `PATH` of
    /// `env`.
    pub argv: Vec<String>,
    /// Working directory (already checked to lie inside the served root).
    pub cwd: PathBuf,
    /// The whole environment; nothing of the server's is inherited.
    pub env: Vec<(String, String)>,
    /// Whether stdin is a pipe the caller feeds (else `/dev/null`).
    pub stdin: bool,
    /// Longest run before the group is stopped.
    pub timeout: Duration,
    /// Between `SIGTERM` and `SIGKILL`.
    pub grace: Duration,
    /// Most output bytes (stdout and stderr together) passed on.
    pub max_output: u64,
    /// Run on a pseudo-terminal of (rows, columns) instead of pipes: its
    /// output comes as stdout, its input is the terminal's.
    pub pty: Option<(u16, u16)>,
}

/// Where a job's input goes: its stdin pipe, or its terminal.
#[derive(Debug)]
pub enum Input {
    /// A pipe: dropping it closes the command's stdin.
    Pipe(ChildStdin),
    /// The terminal's writing side: typed bytes (Ctrl-C is one: the
    /// terminal turns it into SIGINT for the foreground process), and
    /// size changes.
    Pty(pty_process::OwnedWritePty),
}

impl Input {
    /// Writes all of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match self {
            Input::Pipe(p) => p.write_all(buf).await,
            Input::Pty(p) => p.write_all(buf).await,
        }
    }

    /// Follows the client's terminal size (nothing to do for a pipe).
    pub fn resize(&self, rows: u16, cols: u16) {
        if let Input::Pty(p) = self {
            let _ = p.resize(pty_process::Size::new(rows, cols));
        }
    }
}

/// Why a command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// No such program (exit status 127, as a shell reports it).
    #[error("command not found: {0}")]
    NotFound(String),
    /// The program exists but cannot be run (exit status 126).
    #[error("cannot execute {0}: {1}")]
    NotExecutable(String, io::Error),
    /// Anything else (out of processes, ...).
    #[error("cannot start {0}: {1}")]
    Other(String, io::Error),
}

impl SpawnError {
    /// The exit status a shell would give.
    pub fn status(&self) -> i32 {
        match self {
            SpawnError::NotFound(_) => 127,
            SpawnError::NotExecutable(..) => 126,
            SpawnError::Other(..) => 126,
        }
    }
}

/// What ended a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The command exited or was killed by someone else.
    Exited,
    /// The timeout passed.
    TimedOut,
    /// The caller cancelled it (client request, disconnect, shutdown).
    Cancelled,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub struct Finish {
    /// Exit code, when the command exited.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
    /// What ended it.
    pub ending: Ending,
    /// Some output was dropped at the cap.
    pub truncated: bool,
    /// Bytes the command wrote to stdout and to stderr (dropped ones too).
    pub produced: [u64; 2],
    /// From spawn to the end of the last output.
    pub duration: Duration,
}

/// A started job: feed `stdin`, drain `output`, then await `supervisor`.
#[derive(Debug)]
pub struct Job {
    /// The command's stdin (or terminal), when the spec asked for one.
    pub stdin: Option<Input>,
    /// Output chunks in order per stream; closed once both pipes are done.
    pub output: mpsc::Receiver<(Stream, Bytes)>,
    /// The process group (the leader's pid).
    pub pgid: i32,
    /// Reports the end once the command is gone, its group stopped and its
    /// output read.
    pub supervisor: Supervisor,
}

/// The task that watches a job to its end.
#[derive(Debug)]
pub struct Supervisor(JoinHandle<Finish>);

impl Supervisor {
    /// Waits for the job's end (drain [`Job::output`] meanwhile).
    pub async fn finish(self) -> Finish {
        match self.0.await {
            Ok(f) => f,
            // The supervisor does not panic; if it did, say so plainly.
            Err(_) => Finish {
                code: None,
                signal: None,
                ending: Ending::Cancelled,
                truncated: false,
                produced: [0, 0],
                duration: Duration::ZERO,
            },
        }
    }
}

impl Job {
    /// Starts `spec`. Cancelling `cancel` stops the whole group.
    pub fn spawn(spec: &JobSpec, cancel: CancellationToken) -> Result<Job, SpawnError> {
        let program = spec.argv.first().cloned().unwrap_or_default();
        let refused = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => SpawnError::NotFound(program.clone()),
            io::ErrorKind::PermissionDenied => SpawnError::NotExecutable(program.clone(), e),
            _ => SpawnError::Other(program.clone(), e),
        };
        let (mut child, terminal) = match spec.pty {
            Some(size) => {
                let (child, term) = spawn_on_pty(spec, size).map_err(refused)?;
                (child, Some(term))
            }
            None => {
                let mut cmd = Command::new(spawnable(spec));
                cmd.arg0(&program)
                    .args(&spec.argv[1..])
                    .env_clear()
                    .envs(spec.env.iter().map(|(k, v)| (k, v)))
                    .current_dir(&spec.cwd)
                    .process_group(0)
                    .stdin(if spec.stdin {
                        std::process::Stdio::piped()
                    } else {
                        std::process::Stdio::null()
                    })
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                (cmd.spawn().map_err(refused)?, None)
            }
        };
        let started = Instant::now();
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        let mut stdin = child.stdin.take().map(Input::Pipe);
        let (tx, output) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            budget: AtomicU64::new(spec.max_output),
            truncated: AtomicBool::new(false),
            drain_over: CancellationToken::new(),
        });
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            grow_pipe(&out);
            readers.push(tokio::spawn(pump(
                out,
                Stream::Stdout,
                tx.clone(),
                shared.clone(),
            )));
        }
        if let Some(err) = child.stderr.take() {
            grow_pipe(&err);
            readers.push(tokio::spawn(pump(
                err,
                Stream::Stderr,
                tx.clone(),
                shared.clone(),
            )));
        }
        if let Some((read, write)) = terminal {
            // Reading the terminal fails (EIO) once nothing holds it open:
            // that is its end.
            readers.push(tokio::spawn(pump(read, Stream::Stdout, tx, shared.clone())));
            stdin = Some(Input::Pty(write));
        }
        let scope = Scope {
            pgid,
            session: spec.pty.is_some(),
        };
        let supervisor = tokio::spawn(supervise(
            child,
            scope,
            readers,
            shared,
            Timing {
                timeout: spec.timeout,
                grace: spec.grace,
                started,
            },
            cancel,
        ));
        Ok(Job {
            stdin,
            output,
            pgid,
            supervisor: Supervisor(supervisor),
        })
    }
}

/// Starts `spec` on a new pseudo-terminal of `(rows, cols)`: the command
/// leads a session of its own (so its process group is its pid, as with
/// pipes) with the terminal as its controlling one.
fn spawn_on_pty(
    spec: &JobSpec,
    (rows, cols): (u16, u16),
) -> io::Result<(
    Child,
    (pty_process::OwnedReadPty, pty_process::OwnedWritePty),
)> {
    let failed = |e: pty_process::Error| match e {
        pty_process::Error::Io(e) => e,
        e => io::Error::other(e.to_string()),
    };
    let (pty, pts) = pty_process::open().map_err(failed)?;
    pty.resize(pty_process::Size::new(rows.max(1), cols.max(1)))
        .map_err(failed)?;
    let child = pty_process::Command::new(&spec.argv[0])
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .spawn(pts)
        .map_err(failed)?;
    Ok((child, pty.into_split()))
}

#[derive(Debug)]
struct Shared {
    /// Output bytes still allowed through.
    budget: AtomicU64,
    truncated: AtomicBool,
    /// Past this, a pipe with nothing ready is given up on.
    drain_over: CancellationToken,
}

struct Timing {
    timeout: Duration,
    grace: Duration,
    started: Instant,
}

/// Asks for a bigger pipe; the default 64 KiB is fine, just slower.
fn grow_pipe<F: std::os::fd::AsFd>(fd: &F) {
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
}

/// Reads one pipe to its end, passing chunks on while the budget lasts.
/// Returns the bytes read.
async fn pump<R: AsyncRead + Unpin>(
    mut pipe: R,
    stream: Stream,
    tx: mpsc::Sender<(Stream, Bytes)>,
    shared: Arc<Shared>,
) -> u64 {
    let mut total = 0u64;
    let mut tx = Some(tx);
    // One allocation, reused: once the chunks split off it have been sent
    // and dropped, `reserve` reclaims the space instead of allocating (and
    // page-faulting) a fresh buffer per read.
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        let n = tokio::select! {
            biased;
            r = pipe.read_buf(&mut buf) => r.unwrap_or(0),
            _ = shared.drain_over.cancelled() => 0,
        };
        if n == 0 {
            return total;
        }
        total += n as u64;
        let allowed = take_budget(&shared.budget, n as u64) as usize;
        if allowed < n {
            shared.truncated.store(true, Ordering::Relaxed);
        }
        if allowed == 0 {
            buf.clear();
            continue;
        }
        let chunk = buf.split_to(allowed);
        buf.clear();
        if let Some(t) = &tx {
            if t.send((stream, chunk.freeze())).await.is_err() {
                // Nobody listens any more: keep reading so that the command
                // never blocks on a full pipe, and drop everything.
                tx = None;
            }
        }
    }
}

/// Takes up to `want` from `budget`; returns what was granted.
fn take_budget(budget: &AtomicU64, want: u64) -> u64 {
    let mut left = budget.load(Ordering::Relaxed);
    loop {
        let grant = left.min(want);
        match budget.compare_exchange_weak(left, left - grant, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => return grant,
            Err(now) => left = now,
        }
    }
}

/// The processes a job owns: its process group; and, for a job on a
/// terminal, its whole session (an interactive shell puts each of its jobs
/// in a process group of its own, in the session it leads).
#[derive(Debug, Clone, Copy)]
struct Scope {
    pgid: i32,
    session: bool,
}

impl Scope {
    /// The live (not zombie) processes of the job, from `/proc`.
    fn members(self) -> Option<Vec<i32>> {
        let dir = std::fs::read_dir("/proc").ok()?;
        Some(
            dir.flatten()
                .filter_map(|e| {
                    let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                    let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                    let (pgrp, sid) = running_in(&stat)?;
                    (pgrp == self.pgid || (self.session && sid == self.pgid)).then_some(pid)
                })
                .collect(),
        )
    }

    /// Whether any process of the job is still running. Zombies do not
    /// count: they are dead, waiting for whoever inherited them to reap
    /// them.
    fn alive(self) -> bool {
        if self.pgid <= 0 {
            return false;
        }
        if !self.session && killpg(Pid::from_raw(self.pgid), None).is_err() {
            return false;
        }
        match self.members() {
            Some(m) => !m.is_empty(),
            // No /proc to look in: trust kill(2), zombies and all.
            None => killpg(Pid::from_raw(self.pgid), None).is_ok(),
        }
    }

    fn signal(self, sig: Signal) {
        if self.pgid <= 0 {
            return;
        }
        let _ = killpg(Pid::from_raw(self.pgid), sig);
        if self.session {
            for pid in self.members().unwrap_or_default() {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
            }
        }
    }
}

/// The process group and session of a live (not zombie) process, from its
/// `/proc/PID/stat` line: `pid (comm) state ppid pgrp session ...`, where
/// comm may hold anything, parentheses included.
fn running_in(stat: &str) -> Option<(i32, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    (state != "Z" && state != "X").then_some((pgrp, session))
}

/// TERM to the job's processes, up to `grace` for them to go, then KILL.
/// With the leader still ours, its exit is awaited (and reaped) in
/// between.
async fn stop_group(
    scope: Scope,
    grace: Duration,
    leader: Option<&mut Child>,
) -> Option<std::process::ExitStatus> {
    scope.signal(Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    let mut status = None;
    if let Some(child) = leader {
        status = tokio::time::timeout_at(deadline, child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        if status.is_none() {
            scope.signal(Signal::SIGKILL);
            status = child.wait().await.ok();
        }
    }
    // The rest is not ours to wait for: poll it.
    while scope.alive() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if scope.alive() {
        scope.signal(Signal::SIGKILL);
    }
    status
}

async fn supervise(
    mut child: Child,
    scope: Scope,
    readers: Vec<JoinHandle<u64>>,
    shared: Arc<Shared>,
    timing: Timing,
    cancel: CancellationToken,
) -> Finish {
    let (ending, status) = tokio::select! {
        s = child.wait() => (Ending::Exited, s.ok()),
        _ = tokio::time::sleep(timing.timeout) => {
            (Ending::TimedOut, stop_group(scope, timing.grace, Some(&mut child)).await)
        }
        _ = cancel.cancelled() => {
            (Ending::Cancelled, stop_group(scope, timing.grace, Some(&mut child)).await)
        }
    };
    let mut readers = Box::pin(join_readers(readers));
    // Output may still be in the pipes: give it a moment, stop whatever of
    // the group is left (a background grandchild holding the pipes), then
    // stop waiting for pipes that nothing is writing to.
    let drained = tokio::time::timeout(DRAIN, &mut readers).await;
    let produced = match drained {
        Ok(p) => p,
        Err(_) => {
            if scope.alive() {
                stop_group(scope, timing.grace, None).await;
            }
            shared.drain_over.cancel();
            readers.await
        }
    };
    if scope.alive() {
        stop_group(scope, timing.grace, None).await;
    }
    let (code, signal) = match status {
        Some(s) => {
            use std::os::unix::process::ExitStatusExt;
            (s.code(), s.signal())
        }
        None => (None, Some(Signal::SIGKILL as i32)),
    };
    Finish {
        code,
        signal,
        ending,
        truncated: shared.truncated.load(Ordering::Relaxed),
        produced,
        duration: timing.started.elapsed(),
    }
}

/// Awaits every reader; returns stdout's and stderr's byte counts.
async fn join_readers(readers: Vec<JoinHandle<u64>>) -> [u64; 2] {
    let mut out = [0u64; 2];
    for (i, r) in readers.into_iter().enumerate() {
        out[i.min(1)] = r.await.unwrap_or(0);
    }
    out
}

/// The program to start: `argv[0]` looked up in the command's own `PATH`
/// here, so that the standard library can start it with `posix_spawn`
/// (with a `PATH` of the child's own, it looks the name up in the child
/// after a `fork` of this whole process instead: page tables of a busy
/// server copied for every command). A name found nowhere is left as it
/// is, for the spawn to report as not found or not executable.
fn spawnable(spec: &JobSpec) -> std::ffi::OsString {
    let program = spec.argv.first().map(String::as_str).unwrap_or_default();
    if program.contains('/') {
        return program.into();
    }
    let path = spec.env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v);
    match path {
        Some(path) => which::which_in(program, Some(path), &spec.cwd)
            .map(|p| p.into_os_string())
            .unwrap_or_else(|_| program.into()),
        None => program.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_lines_parse_with_hostile_names() {
        assert_eq!(running_in("42 (sleep) S 1 40 39 0 -1"), Some((40, 39)));
        assert_eq!(running_in("42 (a) b) (c) R 1 77 76 0"), Some((77, 76)));
        assert_eq!(running_in("42 (zombie) Z 1 40 40 0"), None);
        assert_eq!(running_in("garbage"), None);
    }

    #[test]
    fn budget_is_shared_and_never_overdrawn() {
        let b = AtomicU64::new(10);
        assert_eq!(take_budget(&b, 4), 4);
        assert_eq!(take_budget(&b, 8), 6);
        assert_eq!(take_budget(&b, 1), 0);
    }
}
