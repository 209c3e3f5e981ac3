//! Moving file bytes between the disk and an async socket.
//!
//! Disk reads, disk writes and their hashing run on a blocking thread while
//! the socket side stays async, with a small bounded channel between them:
//! the two halves overlap on different cores, and memory per transfer is
//! capped at a few chunks however fast either side is. The disk side runs
//! in rounds (see [`super::turns`]): a peer that reads or sends slowly, or
//! not at all, leaves the channel full or empty, and the round gives its
//! thread back until it moves again. The chunk buffers travel back to
//! where they came from and are used again, so a transfer of any size
//! allocates a handful of buffers, not one per chunk (fresh memory costs a
//! page fault per 4 KiB, which dominated transfer time).

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::digest::Hasher;
use super::turns::{self, Pause};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::part::PartFile;
use super::storage::Part;

/// Chunk size for file bytes. 1 MiB halves the wake-ups of 256 KiB chunks;
/// measured on a 1 GiB loopback get: ~1.55 s against ~2.1 s.
pub const CHUNK: usize = 1024 * 1024;
/// Chunks in flight between the disk thread and the socket: with [`CHUNK`],
/// about 6 MiB per running transfer at most; idle connections hold none.
const DEPTH: usize = 4;

/// Bytes of chunk buffers every [`FileSource`] together may hold before new
/// ones are made [`SMALL_CHUNK`] long: a peer that stops reading leaves its
/// download's chunks read ahead for it, up to [`DEPTH`] of them and a few
/// spare, which at [`CHUNK`] each and a few thousand such peers would be
/// gigabytes. Past this, a download still moves, in smaller chunks (more
/// wake-ups per byte, at a time when many downloads run anyway).
const READ_AHEAD_BUDGET: usize = 256 << 20;

/// A chunk buffer's size past [`READ_AHEAD_BUDGET`].
const SMALL_CHUNK: usize = 64 << 10;

static READ_AHEAD: AtomicUsize = AtomicUsize::new(0);

/// Bytes of chunk buffers the running [`FileSource`]s hold now.
pub fn read_ahead() -> usize {
    READ_AHEAD.load(Ordering::Relaxed)
}

/// One [`FileSource`]'s share of [`read_ahead`], given back when its last
/// half is gone.
#[derive(Debug, Default)]
struct Held(AtomicUsize);

impl Held {
    /// A new chunk buffer, [`CHUNK`] long while all sources hold less than
    /// `budget`, else [`SMALL_CHUNK`].
    fn make(&self, budget: usize) -> Vec<u8> {
        // Counted first, so that sources making buffers at once do not
        // all see room for one more.
        let before = READ_AHEAD.fetch_add(CHUNK, Ordering::Relaxed);
        let size = if before + CHUNK <= budget {
            CHUNK
        } else {
            READ_AHEAD.fetch_sub(CHUNK - SMALL_CHUNK, Ordering::Relaxed);
            SMALL_CHUNK
        };
        self.0.fetch_add(size, Ordering::Relaxed);
        Vec::with_capacity(size)
    }

    /// Frees a buffer [`Held::make`] made.
    fn free(&self, buf: Vec<u8>) {
        let size = buf.capacity().min(self.0.load(Ordering::Relaxed));
        self.0.fetch_sub(size, Ordering::Relaxed);
        READ_AHEAD.fetch_sub(size, Ordering::Relaxed);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        READ_AHEAD.fetch_sub(*self.0.get_mut(), Ordering::Relaxed);
    }
}

fn take_buffer(spare: &mut mpsc::Receiver<Vec<u8>>) -> Vec<u8> {
    spare
        .try_recv()
        .unwrap_or_else(|_| Vec::with_capacity(CHUNK))
}

/// File bytes read on a disk thread, for sending.
pub struct FileSource {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    back: mpsc::Sender<Vec<u8>>,
    handle: JoinHandle<io::Result<String>>,
    _held: Arc<Held>,
}

impl FileSource {
    /// The next chunk; `None` after the last.
    pub async fn next(&mut self) -> Option<io::Result<Vec<u8>>> {
        self.rx.recv().await
    }

    /// The next chunk as `Bytes` for an HTTP body: when the HTTP stack is
    /// done with it, its buffer comes back here for reuse all the same.
    pub async fn next_bytes(&mut self) -> Option<io::Result<bytes::Bytes>> {
        let chunk = self.rx.recv().await?;
        Some(chunk.map(|buf| {
            bytes::Bytes::from_owner(Recycled {
                buf,
                back: self.back.clone(),
            })
        }))
    }

    /// Hands a sent chunk's buffer back for reuse.
    pub fn recycle(&self, buf: Vec<u8>) {
        let _ = self.back.try_send(buf);
    }

    /// The hex SHA-256 of everything hashed (prefix included).
    pub async fn finish(self) -> io::Result<String> {
        drop(self.rx);
        self.handle.await.map_err(io::Error::other)?
    }
}

/// A chunk lent out as `Bytes`; dropping it returns the buffer.
struct Recycled {
    buf: Vec<u8>,
    back: mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let _ = self.back.try_send(std::mem::take(&mut self.buf));
    }
}

/// Streams `len` bytes of `file` from `offset` as chunks, continuing
/// `hasher` (which already holds the bytes before `offset`). A file shorter
/// than `len` ends the stream with an error.
pub fn spawn_reader<R: Read + Seek + Send + 'static>(
    file: R,
    offset: u64,
    len: u64,
    hasher: Hasher,
) -> FileSource {
    spawn_reading(file, offset, len, Some(hasher))
}

/// Like [`spawn_reader`] without hashing (HTTP downloads have no digest to
/// send); [`FileSource::finish`] then gives an empty string.
pub fn spawn_plain_reader<R: Read + Seek + Send + 'static>(
    file: R,
    offset: u64,
    len: u64,
) -> FileSource {
    spawn_reading(file, offset, len, None)
}

fn spawn_reading<R: Read + Seek + Send + 'static>(
    file: R,
    offset: u64,
    len: u64,
    hasher: Option<Hasher>,
) -> FileSource {
    spawn_reading_within(file, (offset, len), hasher, READ_AHEAD_BUDGET)
}

fn spawn_reading_within<R: Read + Seek + Send + 'static>(
    file: R,
    (offset, len): (u64, u64),
    hasher: Option<Hasher>,
    budget: usize,
) -> FileSource {
    let (tx, rx) = mpsc::channel(DEPTH);
    let (back, spare) = mpsc::channel::<Vec<u8>>(DEPTH + 2);
    let held = Arc::new(Held::default());
    let reading = Reading {
        file,
        seek: Some(offset),
        left: len,
        hasher,
        held: held.clone(),
        tx,
        spare,
        budget,
    };
    let handle = tokio::spawn(read_in_turns(reading));
    FileSource {
        rx,
        back,
        handle,
        _held: held,
    }
}

/// A [`FileSource`]'s reading side, handed to a blocking thread for each
/// round (see [`super::turns`]) and back.
struct Reading<R> {
    file: R,
    /// Where to seek before the first read.
    seek: Option<u64>,
    left: u64,
    hasher: Option<Hasher>,
    /// Shared with the [`FileSource`]: the share is given back when both
    /// are gone.
    held: Arc<Held>,
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
    spare: mpsc::Receiver<Vec<u8>>,
    budget: usize,
}

/// Reads in rounds until the end, an error, or the receiver going away;
/// between rounds waits for room in the channel without a thread.
async fn read_in_turns<R: Read + Seek + Send + 'static>(
    mut reading: Reading<R>,
) -> io::Result<String> {
    loop {
        let turn = turns::turn().await;
        let rt = tokio::runtime::Handle::current();
        let (back, r) = turns::on_thread(move || {
            let r = reading.round(&turn.started(), &rt);
            (reading, r)
        })
        .await?;
        reading = back;
        match r {
            Ok(None) => return Ok(reading.hasher.map(|h| h.hex()).unwrap_or_default()),
            Ok(Some(Pause::TurnUp)) => {}
            Ok(Some(Pause::Idle)) => {
                // A peer this slow needs no spare buffers meanwhile.
                while let Ok(buf) = reading.spare.try_recv() {
                    reading.held.free(buf);
                }
                // The only sender: the room stays until the next round.
                if reading.tx.reserve().await.is_err() {
                    return Err(gone());
                }
            }
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                let _ = reading.tx.send(Err(copy)).await;
                return Err(e);
            }
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "receiver went away")
}

impl<R: Read + Seek> Reading<R> {
    /// Reads and queues chunks while the channel takes them within
    /// [`turns::IDLE`] and the turn lasts. `None` at the end.
    fn round(
        &mut self,
        turn: &turns::Turn,
        rt: &tokio::runtime::Handle,
    ) -> io::Result<Option<Pause>> {
        if let Some(at) = self.seek.take() {
            self.file.seek(SeekFrom::Start(at))?;
        }
        while self.left > 0 {
            if turn.is_up() {
                return Ok(Some(Pause::TurnUp));
            }
            let permit = match self.tx.try_reserve() {
                Ok(permit) => permit,
                Err(mpsc::error::TrySendError::Closed(())) => return Err(gone()),
                Err(mpsc::error::TrySendError::Full(())) => {
                    match rt.block_on(tokio::time::timeout(turn.idle(), self.tx.reserve())) {
                        Ok(Ok(permit)) => permit,
                        Ok(Err(_)) => return Err(gone()),
                        Err(_) => return Ok(Some(Pause::Idle)),
                    }
                }
            };
            let mut buf = match self.spare.try_recv() {
                Ok(buf) => buf,
                Err(_) => self.held.make(self.budget),
            };
            let want = self.left.min(buf.capacity() as u64) as usize;
            buf.resize(want, 0);
            let n = loop {
                match self.file.read(&mut buf) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "file shrank while being sent",
                        ));
                    }
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            buf.truncate(n);
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf);
            }
            self.left -= n as u64;
            permit.send(Ok(buf));
        }
        Ok(None)
    }
}

/// Where a [`FileSink`] writes: a partial file (which hashes what it is
/// given as it goes).
pub trait WriteChunk: Send + 'static {
    /// Appends one chunk.
    fn write_chunk(&mut self, buf: &[u8]) -> io::Result<()>;
}

impl WriteChunk for PartFile {
    fn write_chunk(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf)
    }
}

impl WriteChunk for Box<dyn Part> {
    fn write_chunk(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf)
    }
}

/// A disk thread writing received chunks into a partial file.
pub struct FileSink<P> {
    tx: mpsc::Sender<Vec<u8>>,
    spare: mpsc::Receiver<Vec<u8>>,
    handle: JoinHandle<(P, io::Result<()>)>,
}

impl<P> FileSink<P> {
    /// An empty buffer to receive into (a recycled one when available).
    pub fn buffer(&mut self) -> Vec<u8> {
        take_buffer(&mut self.spare)
    }

    /// Queues a filled buffer; false when the writer has stopped (it failed).
    pub async fn send(&self, buf: Vec<u8>) -> bool {
        self.tx.send(buf).await.is_ok()
    }

    /// Waits for every queued chunk to be written; gives the part file back
    /// with the first write error, if any.
    pub async fn finish(self) -> io::Result<(P, io::Result<()>)> {
        drop(self.tx);
        self.handle.await.map_err(io::Error::other)
    }
}

/// Starts the disk writes for `part`: in rounds on a blocking thread
/// while chunks come (see [`super::turns`]), waiting for them in the
/// runtime when they do not.
pub fn spawn_writer<P: WriteChunk>(part: P) -> FileSink<P> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(DEPTH);
    let (back, spare) = mpsc::channel::<Vec<u8>>(DEPTH + 2);
    let writing = Writing {
        part,
        rx,
        back,
        next: None,
    };
    let handle = tokio::spawn(write_in_turns(writing));
    FileSink { tx, spare, handle }
}

/// A [`FileSink`]'s writing side, handed to a blocking thread for each
/// round and back.
struct Writing<P> {
    part: P,
    rx: mpsc::Receiver<Vec<u8>>,
    back: mpsc::Sender<Vec<u8>>,
    /// A chunk received between rounds.
    next: Option<Vec<u8>>,
}

async fn write_in_turns<P: WriteChunk>(mut writing: Writing<P>) -> (P, io::Result<()>) {
    loop {
        let turn = turns::turn().await;
        let rt = tokio::runtime::Handle::current();
        let joined = turns::on_thread(move || {
            let r = writing.round(&turn.started(), &rt);
            (writing, r)
        });
        // Fails only when the runtime is shutting down: the part file went
        // with the thread.
        let (back, r) = joined
            .await
            .unwrap_or_else(|e| panic!("the disk thread was stopped: {e}"));
        writing = back;
        match r {
            Ok(None) => return (writing.part, Ok(())),
            Ok(Some(Pause::TurnUp)) => {}
            Ok(Some(Pause::Idle)) => match writing.rx.recv().await {
                Some(chunk) => writing.next = Some(chunk),
                None => return (writing.part, Ok(())),
            },
            Err(e) => return (writing.part, Err(e)),
        }
    }
}

impl<P: WriteChunk> Writing<P> {
    /// Writes the chunks that come within [`turns::IDLE`] while the turn
    /// lasts. `None` once the sender is done and every chunk written.
    fn round(
        &mut self,
        turn: &turns::Turn,
        rt: &tokio::runtime::Handle,
    ) -> io::Result<Option<Pause>> {
        loop {
            if turn.is_up() {
                return Ok(Some(Pause::TurnUp));
            }
            let mut chunk = match self.next.take() {
                Some(chunk) => chunk,
                None => match self.rx.try_recv() {
                    Ok(chunk) => chunk,
                    Err(mpsc::error::TryRecvError::Disconnected) => return Ok(None),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match rt.block_on(tokio::time::timeout(turn.idle(), self.rx.recv())) {
                            Ok(Some(chunk)) => chunk,
                            Ok(None) => return Ok(None),
                            Err(_) => return Ok(Some(Pause::Idle)),
                        }
                    }
                },
            };
            self.part.write_chunk(&chunk)?;
            chunk.clear();
            let _ = self.back.try_send(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Waits until the sources have read all they may ahead: the total
    /// stays put for a while.
    async fn settled() -> usize {
        let mut last = usize::MAX;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let now = read_ahead();
            if now == last {
                return now;
            }
            last = now;
        }
        panic!("the sources never stopped reading ahead");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_budget_sources_nobody_reads_hold_small_chunks_and_still_deliver() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..8 << 20)
            .map(|i: usize| (i * 13 + i / 999) as u8)
            .collect();
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        let budget = 6 << 20;
        let open = || std::fs::File::open(&path).unwrap();
        let mut sources: Vec<FileSource> = (0..6)
            .map(|_| spawn_reading_within(open(), (0, data.len() as u64), None, budget))
            .collect();
        // Read by nobody, each would hold DEPTH chunks of CHUNK: 24 MiB.
        let most = budget + sources.len() * (DEPTH + 1) * SMALL_CHUNK;
        let held = settled().await;
        assert!(held > budget / 2, "{held}");
        assert!(held <= most, "{held} bytes read ahead, more than {most}");
        // Each still gives its file whole, at whatever chunk size.
        for source in &mut sources {
            let mut got = Vec::with_capacity(data.len());
            while let Some(chunk) = source.next().await {
                let chunk = chunk.unwrap();
                got.extend_from_slice(&chunk);
                source.recycle(chunk);
            }
            assert!(got == data, "a source's bytes differ");
        }
        drop(sources);
        assert_eq!(read_ahead(), 0, "every buffer given back");
    }
}
