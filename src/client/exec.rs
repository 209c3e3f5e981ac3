//! Running a command on a server: the client half of `exec`.
//!
//! Output frames are read and written out in one future while stdin is
//! forwarded (within the server's [`STDIN_WINDOW`]) in another, over the
//! two halves of the connection, so neither direction waits for the other.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{ClientError, Result, remote_error};
use crate::wire::messages::{ExecEvent, ExecRequest, ExitReport, Request, STDIN_WINDOW};
use crate::wire::{ConnError, Connection, FrameReader, FrameWriter, Kind};

/// Stdin bytes read locally at a time.
const STDIN_CHUNK: usize = 64 * 1024;

/// Terminal sizes to pass on while a command runs on a pseudo-terminal.
pub type Resizes = tokio::sync::mpsc::UnboundedReceiver<(u16, u16)>;

/// Asks for `spec` to be run, with stdin forwarded or not.
pub(super) async fn send(conn: &mut Connection, spec: &ExecRequest, stdin: bool) -> Result<()> {
    let req = Request::Exec(ExecRequest {
        stdin,
        ..spec.clone()
    });
    Ok(conn.send(Kind::Request, &req, 0).await?)
}

/// Runs the command [`send`] asked for; see
/// [`Client::exec`](super::Client::exec). With `resizes`, each size that
/// arrives is sent on (a terminal session).
pub(super) async fn exec<I, O, E>(
    conn: &mut Connection,
    mut stdin: Option<I>,
    stdout: &mut O,
    stderr: &mut E,
    cancel: &CancellationToken,
    resizes: Option<&mut Resizes>,
) -> Result<ExitReport>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin + ?Sized,
    E: AsyncWrite + Unpin + ?Sized,
{
    let head = conn.next_head().await?;
    match head.kind {
        // It could not start: the report says why (127, 126).
        Kind::Ok => return Ok(serde_json::from_slice(&head.header).map_err(ConnError::from)?),
        Kind::Partial => match serde_json::from_slice(&head.header) {
            Ok(ExecEvent::Started) => {}
            _ => return Err(ConnError::Protocol("expected the command to start".into()).into()),
        },
        kind => return Err(remote_error(&head.header, kind)),
    }
    let done = CancellationToken::new();
    let in_flight = AtomicU64::new(0);
    let taken = Notify::new();
    let (rd, wr) = conn.halves();
    let receiving = async {
        let r = receive(rd, stdout, stderr, &in_flight, &taken).await;
        done.cancel();
        r
    };
    let sending = async {
        let r = send_input(
            wr,
            stdin.as_mut(),
            cancel,
            &done,
            (&in_flight, &taken),
            resizes,
        )
        .await;
        if r.is_err() {
            done.cancel();
        }
        r
    };
    let (received, sent) = tokio::join!(receiving, sending);
    let report = received?;
    sent?;
    Ok(report)
}

/// Writes output as it comes; returns the exit report.
async fn receive<O, E>(
    rd: &mut FrameReader,
    stdout: &mut O,
    stderr: &mut E,
    in_flight: &AtomicU64,
    taken: &Notify,
) -> Result<ExitReport>
where
    O: AsyncWrite + Unpin + ?Sized,
    E: AsyncWrite + Unpin + ?Sized,
{
    // A local write failure (a closed pipe, a full disk) stops passing
    // output on, but the frames are still read to keep the connection in
    // step; once the report is in, a failure to write the output is the
    // command's result, as for every command (README, exit status).
    let mut out_failed = None;
    let mut err_failed = None;
    loop {
        let head = rd.next_head().await?;
        match head.kind {
            Kind::Partial => {
                let event: ExecEvent =
                    serde_json::from_slice(&head.header).map_err(ConnError::from)?;
                match event {
                    ExecEvent::Stdout => copy_body(rd, stdout, &mut out_failed).await?,
                    ExecEvent::Stderr => copy_body(rd, stderr, &mut err_failed).await?,
                    ExecEvent::StdinConsumed { bytes } => {
                        let _ = in_flight.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                            Some(v.saturating_sub(bytes))
                        });
                        taken.notify_one();
                    }
                    ExecEvent::Started => {
                        return Err(ConnError::Protocol("started twice".into()).into());
                    }
                }
            }
            Kind::Ok => {
                let report = serde_json::from_slice(&head.header).map_err(ConnError::from)?;
                return match out_failed {
                    None => Ok(report),
                    Some(e) => Err(ClientError::output(e)),
                };
            }
            kind => return Err(remote_error(&head.header, kind)),
        }
    }
}

/// Forwards stdin and a cancel until the report is in, then says `end`.
async fn send_input<I: AsyncRead + Unpin>(
    wr: &mut FrameWriter,
    mut stdin: Option<&mut I>,
    cancel: &CancellationToken,
    done: &CancellationToken,
    (in_flight, taken): (&AtomicU64, &Notify),
    mut resizes: Option<&mut Resizes>,
) -> Result<()> {
    let mut buf = vec![0u8; STDIN_CHUNK];
    let mut cancel_sent = false;
    loop {
        tokio::select! {
            biased;
            _ = done.cancelled() => break,
            _ = cancel.cancelled(), if !cancel_sent => {
                wr.send(Kind::Request, &Request::Cancel, 0).await?;
                cancel_sent = true;
                stdin = None;
            }
            size = next_size(resizes.as_deref_mut()), if resizes.is_some() => match size {
                Some((rows, cols)) => wr.send(Kind::Request, &Request::Resize { rows, cols }, 0).await?,
                None => resizes = None,
            },
            n = read_within_window(stdin.as_deref_mut(), &mut buf, in_flight, taken), if stdin.is_some() => {
                match n {
                    Ok(n) if n > 0 => {
                        in_flight.fetch_add(n as u64, Ordering::Relaxed);
                        wr.send_frame(Kind::Request, &Request::Stdin, &buf[..n]).await?;
                    }
                    r => {
                        if let Err(e) = r {
                            crate::say!("ferry: reading stdin: {e}; closing the command's stdin");
                        }
                        wr.send(Kind::Request, &Request::Stdin, 0).await?;
                        stdin = None;
                    }
                }
            }
        }
    }
    wr.send(Kind::Request, &Request::End, 0).await?;
    Ok(())
}

async fn next_size(resizes: Option<&mut Resizes>) -> Option<(u16, u16)> {
    resizes?.recv().await
}

/// Waits for room in the window, then reads what fits.
async fn read_within_window<I: AsyncRead + Unpin>(
    stdin: Option<&mut I>,
    buf: &mut [u8],
    in_flight: &AtomicU64,
    taken: &Notify,
) -> std::io::Result<usize> {
    let Some(stdin) = stdin else {
        return Ok(0);
    };
    loop {
        let used = in_flight.load(Ordering::Relaxed);
        if used < STDIN_WINDOW {
            let room = (STDIN_WINDOW - used).min(buf.len() as u64) as usize;
            return stdin.read(&mut buf[..room]).await;
        }
        taken.notified().await;
    }
}

/// Passes the current frame's body to `sink` until a write to it fails,
/// which is kept in `failed`.
async fn copy_body<W: AsyncWrite + Unpin + ?Sized>(
    rd: &mut FrameReader,
    sink: &mut W,
    failed: &mut Option<std::io::Error>,
) -> Result<()> {
    while rd.body_remaining() > 0 {
        let chunk = rd.next_chunk().await?;
        if failed.is_none() {
            if let Err(e) = sink.write_all(&chunk).await {
                *failed = Some(e);
            }
        }
    }
    if failed.is_none() {
        if let Err(e) = sink.flush().await {
            *failed = Some(e);
        }
    }
    Ok(())
}
