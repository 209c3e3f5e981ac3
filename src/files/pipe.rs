//! Moving file bytes between a blocking disk thread and an async socket.
//!
//! Disk reads, disk writes and SHA-256 run on a blocking thread while the
//! socket side stays async, with a small bounded channel between them: the
//! two halves overlap on different cores, and memory per transfer is capped
//! at a few chunks however fast either side is.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::part::{PartFile, hex};

/// Chunk size for reading files.
pub const READ_CHUNK: usize = 256 * 1024;
/// Chunks in flight between the disk thread and the socket.
const DEPTH: usize = 4;

/// Streams `len` bytes of `file` from `offset` as chunks, continuing
/// `hasher` (which already holds the bytes before `offset`). The handle
/// yields the hex SHA-256 of everything hashed once the last chunk is sent.
/// A file shorter than `len` ends the stream with an error.
pub fn spawn_reader(
    mut file: File,
    offset: u64,
    len: u64,
    mut hasher: Sha256,
) -> (
    mpsc::Receiver<io::Result<Bytes>>,
    JoinHandle<io::Result<String>>,
) {
    let (tx, rx) = mpsc::channel(DEPTH);
    let handle = tokio::task::spawn_blocking(move || {
        file.seek(SeekFrom::Start(offset))?;
        let mut left = len;
        while left > 0 {
            let want = left.min(READ_CHUNK as u64) as usize;
            let mut buf = BytesMut::zeroed(want);
            let n = match file.read(&mut buf) {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    );
                    let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            buf.truncate(n);
            hasher.update(&buf);
            left -= n as u64;
            if tx.blocking_send(Ok(buf.freeze())).is_err() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "receiver went away",
                ));
            }
        }
        Ok(hex(&hasher.finalize()))
    });
    (rx, handle)
}

/// Writes chunks into `part` on a blocking thread; the handle gives the part
/// file back once the sender is dropped (or the first write error).
pub fn spawn_writer(
    mut part: PartFile,
) -> (mpsc::Sender<Bytes>, JoinHandle<(PartFile, io::Result<()>)>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(DEPTH);
    let handle = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = part.write(&chunk) {
                return (part, Err(e));
            }
        }
        (part, Ok(()))
    });
    (tx, handle)
}
