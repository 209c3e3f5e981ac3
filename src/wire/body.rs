//! File bodies over a native connection: a frame body into a disk
//! thread's [`FileSink`], and a [`FileSource`] out as a frame body.

use std::io;

use super::{ConnError, Connection};
use crate::files::pipe::{FileSink, FileSource};

/// How receiving a body ended.
#[derive(Debug)]
pub enum Received {
    /// Every byte was queued for the disk thread.
    Complete,
    /// The connection failed mid-body.
    Lost(ConnError),
    /// The disk thread stopped (its error comes from [`FileSink::finish`]).
    WriterStopped,
    /// `cancel` fired.
    Cancelled,
}

/// Moves the rest of the current frame body from `conn` into `sink`,
/// calling `progress` with each chunk's size.
pub async fn receive_body<P>(
    conn: &mut Connection,
    sink: &mut FileSink<P>,
    cancel: &tokio_util::sync::CancellationToken,
    mut progress: impl FnMut(u64),
) -> Received {
    while conn.body_remaining() > 0 {
        let mut buf = sink.buffer();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Received::Cancelled,
            r = conn.read_body_into(&mut buf) => match r {
                Ok(n) => {
                    progress(n as u64);
                    if !sink.send(buf).await {
                        return Received::WriterStopped;
                    }
                }
                Err(e) => return Received::Lost(e),
            },
        }
    }
    Received::Complete
}

/// Why sending a file body stopped early. Either way the body is incomplete
/// and the connection must be closed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Reading the file failed (or it shrank).
    #[error("reading the file failed mid-transfer: {0}")]
    Read(io::Error),
    /// The connection failed.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// `cancel` fired.
    #[error("cancelled")]
    Cancelled,
}

/// Sends everything `source` yields as body bytes on `conn`; returns the
/// hex SHA-256 the reader computed.
pub async fn send_body(
    conn: &mut Connection,
    mut source: FileSource,
    cancel: &tokio_util::sync::CancellationToken,
    mut progress: impl FnMut(u64),
) -> Result<String, SendError> {
    loop {
        let chunk = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(SendError::Cancelled),
            c = source.next() => c,
        };
        match chunk {
            Some(Ok(buf)) => {
                conn.send_body(&buf).await?;
                progress(buf.len() as u64);
                source.recycle(buf);
            }
            Some(Err(e)) => return Err(SendError::Read(e)),
            None => break,
        }
    }
    source.finish().await.map_err(SendError::Read)
}
