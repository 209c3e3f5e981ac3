//! [`Connection`]: one native-protocol stream with its buffers and deadlines.
//!
//! Owns buffering and end-of-stream, so the server's session and the client
//! library only ever see typed frames. Every read and write runs under a
//! deadline: how long a connection may sit idle between requests, how long a
//! frame head may take to arrive once it has started (no slowloris), and how
//! long a body may stall.

use std::io;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

use super::codec::{FrameCodec, Head, Inbound, MAX_CHUNK};
use super::frame::{FrameError, Kind, MAX_HEADER_LEN, encode_head};
use super::messages::{ErrorCode, ErrorReply};

/// Read half of a connection, whatever the transport.
pub type BoxRead = Box<dyn AsyncRead + Send + Sync + Unpin>;
/// Write half of a connection, whatever the transport.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Sync + Unpin>;

/// Read buffer to keep while idle: small, so that many idle connections
/// stay cheap.
const IDLE_READ_RESERVE: usize = 4 * 1024;

/// Most bytes read and dropped while closing.
pub const LINGER_BYTES: usize = 1 << 20;

/// Reads and drops input for up to half a second or [`LINGER_BYTES`].
pub async fn linger<R: AsyncRead + Unpin + ?Sized>(reader: &mut R) {
    // On the heap, and only while lingering: a buffer on the stack of an
    // async fn is part of every connection's task, for its whole life.
    let mut sink = vec![0u8; 16 * 1024];
    let mut left = LINGER_BYTES;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while left > 0 {
        match tokio::time::timeout_at(deadline, reader.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

/// How long each phase of a frame may take.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Between requests (nothing buffered).
    pub idle: Duration,
    /// From the first byte of a frame head to its last.
    pub header: Duration,
    /// Longest stall inside a body, and for any write.
    pub body: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            idle: Duration::from_secs(300),
            header: Duration::from_secs(30),
            body: Duration::from_secs(60),
        }
    }
}

/// Why a connection cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The byte stream broke the framing rules.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A deadline passed.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// A header that is not the JSON expected.
    #[error("malformed header: {0}")]
    Json(#[from] serde_json::Error),
    /// A frame in the wrong place (for example a body where a head belongs).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer closed the connection between frames.
    #[error("connection closed by peer")]
    Closed,
}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> Self {
        ConnError::Frame(FrameError::Io(e))
    }
}

/// The reading half of a native connection: buffer, decoder, deadlines.
pub struct FrameReader {
    reader: BoxRead,
    rbuf: BytesMut,
    codec: FrameCodec,
    deadlines: Deadlines,
    head_started: Option<Instant>,
}

/// The writing half of a native connection.
pub struct FrameWriter {
    writer: BoxWrite,
    wbuf: BytesMut,
    deadlines: Deadlines,
    /// The socket under `writer`, when it is plain TCP.
    plain: Option<std::os::fd::RawFd>,
    /// Frames encoded by [`FrameWriter::hold`], written in front of the
    /// next write.
    held: Vec<u8>,
}

/// One framed, deadline-guarded native connection: a [`FrameReader`] and a
/// [`FrameWriter`], usable together or, for full-duplex exchanges such as a
/// remote command's streams, each from its own future (see
/// [`Connection::halves`]).
pub struct Connection {
    rd: FrameReader,
    wr: FrameWriter,
}

impl Connection {
    /// Wraps two halves; `initial` holds bytes already read (by the sniffer).
    pub fn new(reader: BoxRead, writer: BoxWrite, initial: BytesMut, deadlines: Deadlines) -> Self {
        Connection {
            rd: FrameReader {
                reader,
                rbuf: initial,
                codec: FrameCodec::default(),
                deadlines,
                head_started: None,
            },
            wr: FrameWriter {
                writer,
                wbuf: BytesMut::new(),
                deadlines,
                plain: None,
                held: Vec::new(),
            },
        }
    }

    /// Wraps a stream, plain or TLS.
    pub fn from_stream(stream: super::Stream, initial: BytesMut, deadlines: Deadlines) -> Self {
        use std::os::fd::AsRawFd;
        let plain = match &stream {
            super::Stream::Plain(tcp) => Some(tcp.as_raw_fd()),
            _ => None,
        };
        let (r, w) = stream.into_split();
        let mut conn = Connection::new(r, w, initial, deadlines);
        conn.wr.plain = plain;
        conn
    }

    /// Whether the bytes travel in clear over plain TCP (see
    /// [`Connection::plain_socket`]).
    pub fn is_plain(&self) -> bool {
        self.wr.plain.is_some()
    }

    /// A handle of its own on the socket, when the bytes travel in clear
    /// over plain TCP (for `sendfile`); `None` over TLS or anything else,
    /// and while frames are held (see [`FrameWriter::hold`]).
    #[allow(unsafe_code)]
    pub fn plain_socket(&self) -> Option<std::os::fd::OwnedFd> {
        // Bytes written past the writer must not overtake held frames:
        // while some are, the caller goes the way it goes over TLS.
        if !self.wr.held.is_empty() {
            return None;
        }
        let fd = self.wr.plain?;
        // SAFETY: `fd` is the socket of the write half this connection
        // owns, open for as long as `self` lives; it is only borrowed here
        // to duplicate it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        borrowed.try_clone_to_owned().ok()
    }

    /// The reading half, for body bytes taken straight from the socket.
    pub fn reader(&mut self) -> &mut FrameReader {
        &mut self.rd
    }

    /// The longest a body may stall.
    pub fn body_deadline(&self) -> Duration {
        self.wr.deadlines.body
    }

    /// Both halves at once, to read and write from separate futures.
    pub fn halves(&mut self) -> (&mut FrameReader, &mut FrameWriter) {
        (&mut self.rd, &mut self.wr)
    }

    /// The deadlines in force.
    pub fn deadlines(&self) -> Deadlines {
        self.rd.deadlines
    }

    /// Changes how long the connection may sit idle between frames.
    pub fn set_idle(&mut self, idle: Duration) {
        self.rd.deadlines.idle = idle;
    }

    /// Body bytes of the current frame not yet read.
    pub fn body_remaining(&self) -> u64 {
        self.rd.body_remaining()
    }

    /// The next head or body chunk; `None` on a clean close between frames.
    pub async fn next(&mut self) -> Result<Option<Inbound>, ConnError> {
        self.rd.next().await
    }

    /// See [`FrameReader::next_head`].
    pub async fn next_head(&mut self) -> Result<Head, ConnError> {
        self.rd.next_head().await
    }

    /// See [`FrameReader::next_chunk`].
    pub async fn next_chunk(&mut self) -> Result<Bytes, ConnError> {
        self.rd.next_chunk().await
    }

    /// See [`FrameReader::read_body_into`].
    pub async fn read_body_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, ConnError> {
        self.rd.read_body_into(buf).await
    }

    /// See [`FrameReader::next_json`].
    pub async fn next_json<T: DeserializeOwned>(&mut self) -> Result<(Kind, T, u64), ConnError> {
        self.rd.next_json().await
    }

    /// Reads and discards the rest of the current body.
    pub async fn discard_body(&mut self) -> Result<(), ConnError> {
        self.rd.discard_body().await
    }

    /// See [`FrameWriter::send`].
    pub async fn send<T: Serialize>(
        &mut self,
        kind: Kind,
        header: &T,
        body_len: u64,
    ) -> Result<(), ConnError> {
        self.wr.send(kind, header, body_len).await
    }

    /// Sends body bytes of the frame whose head was just sent.
    pub async fn send_body(&mut self, data: &[u8]) -> Result<(), ConnError> {
        self.wr.send_body(data).await
    }

    /// See [`FrameWriter::hold`].
    pub fn hold<T: Serialize>(&mut self, kind: Kind, header: &T) -> Result<(), ConnError> {
        self.wr.hold(kind, header)
    }

    /// See [`FrameWriter::flush_held`].
    pub async fn flush_held(&mut self) -> Result<(), ConnError> {
        self.wr.flush_held().await
    }

    /// See [`Connection::send_encoded`].
    pub async fn send_encoded(
        &mut self,
        kind: Kind,
        json: &[u8],
        body_len: u64,
    ) -> Result<(), ConnError> {
        self.wr.send_encoded(kind, json, body_len).await
    }

    /// Bytes read but not yet decoded: after a framing error, what the
    /// peer sent that was not a frame.
    pub fn unread(&self) -> &[u8] {
        &self.rd.rbuf
    }

    /// Sends a terminal error frame.
    pub async fn send_error(
        &mut self,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Result<(), ConnError> {
        self.wr.send_error(code, message).await
    }

    /// Writes raw bytes (used by doors that answer outside the framing).
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), ConnError> {
        self.wr.write_all(data).await
    }

    /// Flushes, shuts the write side down, then reads and drops what the
    /// peer still sends for a moment (at most [`LINGER_BYTES`]), so that
    /// closing with unread input does not become a reset that destroys the
    /// last reply before the peer reads it.
    pub async fn shutdown(&mut self) {
        let _ = self.wr.flush_held().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.wr.writer.shutdown()).await;
        linger(&mut self.rd.reader).await;
    }

    /// Takes the raw halves back, with any bytes already buffered.
    pub fn into_parts(self) -> (BoxRead, BoxWrite, BytesMut) {
        debug_assert!(self.wr.held.is_empty(), "held frames not yet sent");
        (self.rd.reader, self.wr.writer, self.rd.rbuf)
    }
}

impl FrameReader {
    /// Body bytes of the current frame not yet read.
    pub fn body_remaining(&self) -> u64 {
        self.codec.body_remaining()
    }

    /// The next head or body chunk; `None` on a clean close between frames.
    /// Cancel-safe: dropping the future loses no bytes.
    pub async fn next(&mut self) -> Result<Option<Inbound>, ConnError> {
        loop {
            if let Some(item) = self.codec.decode(&mut self.rbuf)? {
                if matches!(item, Inbound::Head(_)) {
                    self.head_started = None;
                }
                return Ok(Some(item));
            }
            let (limit, what) = if self.codec.in_body() {
                (self.deadlines.body, "the frame body")
            } else if self.rbuf.is_empty() {
                (self.deadlines.idle, "the next request")
            } else {
                let started = *self.head_started.get_or_insert_with(Instant::now);
                let left = self.deadlines.header.saturating_sub(started.elapsed());
                (left, "the rest of a frame header")
            };
            let want = if self.codec.in_body() {
                MAX_CHUNK
            } else {
                IDLE_READ_RESERVE
            };
            if self.rbuf.capacity() - self.rbuf.len() < want / 4 {
                if self.rbuf.is_empty() && !self.codec.in_body() {
                    // Give a big transfer buffer back while idle.
                    self.rbuf = BytesMut::with_capacity(want);
                } else {
                    self.rbuf.reserve(want);
                }
            }
            let n = tokio::time::timeout(limit, self.reader.read_buf(&mut self.rbuf))
                .await
                .map_err(|_| ConnError::Timeout(what))??;
            if n == 0 {
                return match self.codec.decode_eof(&mut self.rbuf)? {
                    Some(item) => Ok(Some(item)),
                    None => Err(ConnError::Closed),
                };
            }
            if !self.codec.in_body() && self.head_started.is_none() {
                self.head_started = Some(Instant::now());
            }
        }
    }

    /// The next frame head; a body chunk here is a protocol error. `Closed`
    /// when the peer hung up between frames.
    pub async fn next_head(&mut self) -> Result<Head, ConnError> {
        match self.next().await? {
            Some(Inbound::Head(h)) => Ok(h),
            Some(Inbound::Chunk(_)) => Err(ConnError::Protocol("unexpected body bytes".into())),
            None => Err(ConnError::Closed),
        }
    }

    /// The next chunk of the current body (call only while some remains).
    pub async fn next_chunk(&mut self) -> Result<Bytes, ConnError> {
        if !self.codec.in_body() {
            return Err(ConnError::Protocol("no body is being read".into()));
        }
        match self.next().await? {
            Some(Inbound::Chunk(c)) => Ok(c),
            _ => Err(FrameError::UnexpectedEof.into()),
        }
    }

    /// Appends the next piece of the current body to `buf`: at most
    /// [`MAX_CHUNK`] bytes, and no more than the room `buf` has reserved
    /// when it has any. Bytes already buffered come first, then the socket
    /// is read straight into `buf`, with no copy in between. Returns how
    /// many bytes were added (0 when no body remains).
    pub async fn read_body_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, ConnError> {
        let room = match buf.capacity() - buf.len() {
            0 => MAX_CHUNK,
            room => room.min(MAX_CHUNK),
        };
        let want = self.codec.body_remaining().min(room as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        if !self.rbuf.is_empty() {
            let n = want.min(self.rbuf.len());
            buf.extend_from_slice(&self.rbuf[..n]);
            bytes::Buf::advance(&mut self.rbuf, n);
            self.codec.consume_body(n as u64);
            return Ok(n);
        }
        // Read into the room past the bytes held, not zeroed first: a
        // read often fills a fraction of it, and zeroing the whole room on
        // every read cost an upload's receiver 7% of its time.
        buf.reserve(want);
        let mut room = bytes::BufMut::limit(&mut *buf, want);
        let read = tokio::time::timeout(self.deadlines.body, self.reader.read_buf(&mut room)).await;
        let n = match read {
            Err(_) => return Err(ConnError::Timeout("the frame body")),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return Err(FrameError::UnexpectedEof.into());
        }
        self.codec.consume_body(n as u64);
        Ok(n)
    }

    /// Body bytes already read from the socket (at most what is left of
    /// the body), taken as read: the rest is still in the socket.
    pub fn take_buffered_body(&mut self) -> Bytes {
        let n = (self.codec.body_remaining().min(self.rbuf.len() as u64)) as usize;
        self.codec.consume_body(n as u64);
        self.rbuf.split_to(n).freeze()
    }

    /// Counts `n` body bytes read from the socket by other means (`splice`).
    pub fn consumed_elsewhere(&mut self, n: u64) {
        self.codec.consume_body(n);
    }

    /// Reads and parses the next head as `T`.
    pub async fn next_json<T: DeserializeOwned>(&mut self) -> Result<(Kind, T, u64), ConnError> {
        let head = self.next_head().await?;
        let value = serde_json::from_slice(&head.header)?;
        Ok((head.kind, value, head.body_len))
    }

    /// Reads the whole body of the current frame, refusing more than `max`
    /// bytes (the frame is then left unread).
    pub async fn read_body(&mut self, max: u64) -> Result<BytesMut, ConnError> {
        let len = self.body_remaining();
        if len > max {
            return Err(ConnError::Protocol(format!(
                "a body of {len} bytes is over the {max}-byte cap"
            )));
        }
        let mut out = BytesMut::with_capacity(len as usize);
        while self.codec.in_body() {
            out.extend_from_slice(&self.next_chunk().await?);
        }
        Ok(out)
    }

    /// Reads and discards the rest of the current body.
    pub async fn discard_body(&mut self) -> Result<(), ConnError> {
        while self.codec.in_body() {
            self.next_chunk().await?;
        }
        Ok(())
    }
}

impl FrameWriter {
    fn encode_raw(&mut self, kind: Kind, json: &[u8], body_len: u64) -> Result<(), ConnError> {
        if json.len() > MAX_HEADER_LEN as usize {
            return Err(ConnError::Protocol(format!(
                "header of {} bytes is over the {MAX_HEADER_LEN}-byte cap",
                json.len()
            )));
        }
        self.wbuf.clear();
        encode_head(kind, json, body_len, &mut self.wbuf);
        Ok(())
    }

    /// Sends a frame head; `body_len` bytes must follow via [`send_body`].
    ///
    /// [`send_body`]: FrameWriter::send_body
    pub async fn send<T: Serialize>(
        &mut self,
        kind: Kind,
        header: &T,
        body_len: u64,
    ) -> Result<(), ConnError> {
        let json = serde_json::to_vec(header)?;
        self.send_encoded(kind, &json, body_len).await
    }

    /// Sends a frame head whose JSON header is already encoded (an event
    /// sent to many connections is encoded once).
    pub async fn send_encoded(
        &mut self,
        kind: Kind,
        json: &[u8],
        body_len: u64,
    ) -> Result<(), ConnError> {
        self.encode_raw(kind, json, body_len)?;
        let buf = std::mem::take(&mut self.wbuf);
        let res = self.write_all(&buf).await;
        self.wbuf = buf;
        res
    }

    /// Sends a whole frame, head and body, in one vectored write where the
    /// transport allows: one segment on the wire for a small frame.
    pub async fn send_frame<T: Serialize>(
        &mut self,
        kind: Kind,
        header: &T,
        body: &[u8],
    ) -> Result<(), ConnError> {
        let json = serde_json::to_vec(header)?;
        self.encode_raw(kind, &json, body.len() as u64)?;
        let held = std::mem::take(&mut self.held);
        let data = bytes::Buf::chain(&held[..], bytes::Buf::chain(&self.wbuf[..], body));
        write_flushed(&mut self.writer, data, self.deadlines.body).await
    }

    /// Encodes a frame with no body to go out in front of the next write,
    /// in the same segment: a request sent behind it without waiting for
    /// its reply (`auth` and the first request) costs the peer one wake-up
    /// and one read instead of two. Whatever reads a reply to it first
    /// calls [`FrameWriter::flush_held`].
    pub fn hold<T: Serialize>(&mut self, kind: Kind, header: &T) -> Result<(), ConnError> {
        let json = serde_json::to_vec(header)?;
        self.encode_raw(kind, &json, 0)?;
        self.held.extend_from_slice(&self.wbuf);
        Ok(())
    }

    /// Writes the frames [`FrameWriter::hold`] kept, if any.
    pub async fn flush_held(&mut self) -> Result<(), ConnError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        write_flushed(&mut self.writer, &held[..], self.deadlines.body).await
    }

    /// Sends body bytes of the frame whose head was just sent.
    pub async fn send_body(&mut self, data: &[u8]) -> Result<(), ConnError> {
        self.write_all(data).await
    }

    /// Sends a terminal error frame.
    pub async fn send_error(
        &mut self,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Result<(), ConnError> {
        let reply = ErrorReply {
            code,
            message: message.into(),
        };
        self.send(Kind::Error, &reply, 0).await
    }

    /// Writes raw bytes (used by doors that answer outside the framing),
    /// behind any held frames.
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), ConnError> {
        if self.held.is_empty() {
            return write_flushed(&mut self.writer, data, self.deadlines.body).await;
        }
        let mut held = std::mem::take(&mut self.held);
        held.extend_from_slice(data);
        write_flushed(&mut self.writer, &held[..], self.deadlines.body).await
    }
}

/// Writes `data` whole, then flushes, within `limit`: TLS keeps records the
/// socket had no room for until written to or flushed again (a burst's last
/// reply waited there, its peer with it, until the connection closed).
async fn write_flushed(
    writer: &mut BoxWrite,
    mut data: impl bytes::Buf + Send,
    limit: Duration,
) -> Result<(), ConnError> {
    let write = async {
        writer.write_all_buf(&mut data).await?;
        writer.flush().await
    };
    tokio::time::timeout(limit, write)
        .await
        .map_err(|_| ConnError::Timeout("the peer to read"))??;
    Ok(())
}

#[cfg(test)]
mod tests;
