//! The chat doors: plain text lines (nc, telnet, socat) and the native
//! `chat` request. Both hold a hub [`Member`], read lines under a rate
//! limit, and write the member's events as they come, reading and writing
//! at once so that a client that does not read never stalls its own input
//! handling or anyone else.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info};

use super::Ctx;
use super::fail::Fail;
use crate::chat::Pace;
use crate::chat::{Chunk, Delivery, Event, Inline, Member, Outcome};
use crate::text::escape;
use crate::wire::messages::{Done, ErrorCode, Request};
use crate::wire::{ConnError, Connection, FrameReader, FrameWriter, Kind, Stream};

/// Most lines handled as one batch, and most bytes of text: lines that
/// came in one read are stored and fanned out together (one transaction,
/// one write per reader), so a batch costs about what one line costs.
const MAX_BATCH: usize = 1024;
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Reads of a plain-text client start at this size, double while they
/// fill all that was offered (a sender in full flow), up to the largest,
/// and halve again once they come back small (see [`Lines::next`]).
const READ_MIN: usize = 4 * 1024;
const READ_MAX: usize = 64 * 1024;

/// Socket send buffer of a plain-text chat connection.
const TEXT_SNDBUF: usize = 64 * 1024;

/// Chunks handed to one vectored write at most.
const MAX_IOV: usize = 64;

/// How long a write to a chat client may take before it counts as not
/// reading.
const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// How long after a text client connects its lines are looked at as a
/// program's opening lines (a login, a request) as well as chat.
const EARLY: Duration = Duration::from_secs(3);

/// Splits a byte stream into lines of at most `max` bytes. A longer line is
/// skipped up to its end and reported once, so one oversized paste costs
/// one error rather than a stream of fragments. Hand-written because
/// tokio-util's line codecs stop the stream at the first error, and here
/// errors (too long, not UTF-8) are answered and the session goes on.
struct Lines {
    buf: BytesMut,
    max: usize,
    skipping: bool,
    /// What the next read offers to take.
    read_size: usize,
}

/// One item from [`Lines`].
enum LineItem {
    Line(String),
    TooLong,
    NotUtf8,
}

impl Lines {
    fn new(initial: BytesMut, max: usize) -> Lines {
        Lines {
            buf: initial,
            max,
            skipping: false,
            read_size: READ_MIN,
        }
    }

    /// A line already buffered, if any.
    fn take(&mut self) -> Option<LineItem> {
        loop {
            match self.buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let mut raw = self.buf.split_to(i + 1);
                    raw.truncate(i);
                    if raw.last() == Some(&b'\r') {
                        raw.truncate(i - 1);
                    }
                    if std::mem::take(&mut self.skipping) {
                        continue;
                    }
                    if raw.len() > self.max {
                        return Some(LineItem::TooLong);
                    }
                    return Some(match String::from_utf8(raw.to_vec()) {
                        Ok(s) => LineItem::Line(s),
                        Err(_) => LineItem::NotUtf8,
                    });
                }
                None if self.buf.len() > self.max => {
                    self.buf.clear();
                    if !self.skipping {
                        self.skipping = true;
                        return Some(LineItem::TooLong);
                    }
                    return None;
                }
                None => return None,
            }
        }
    }

    /// The next line; `None` at the end of the stream.
    async fn next<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> std::io::Result<Option<LineItem>> {
        loop {
            if let Some(item) = self.take() {
                return Ok(Some(item));
            }
            // Adaptive, as hyper sizes its reads: a read that takes all
            // it was offered means more is waiting, and every read ends a
            // batch (each batch is a store transaction and a write to each
            // reader), so a sender in full flow is read in big pieces,
            // while an idle client holds a small buffer.
            if self.buf.is_empty() && self.buf.capacity() > 2 * self.read_size {
                // Back to a trickle: give the big buffer back.
                self.buf = BytesMut::new();
            }
            self.buf.reserve(self.read_size);
            let offered = self.buf.capacity() - self.buf.len();
            let n = r.read_buf(&mut self.buf).await?;
            if n == 0 {
                // A last line without its newline still counts.
                if !self.buf.is_empty() && !self.skipping {
                    self.buf.extend_from_slice(b"\n");
                    continue;
                }
                return Ok(None);
            }
            if n >= offered {
                self.read_size = (self.read_size * 2).min(READ_MAX);
            } else if n < self.read_size / 2 {
                self.read_size = (self.read_size / 2).max(READ_MIN);
            }
        }
    }
}

/// How a plain-text session ended.
enum Ending {
    /// The client hung up.
    Gone,
    /// The client said /quit.
    Quit,
    /// The server ends it, for this reason.
    Kicked(String),
}

/// Serves a plain-text chat connection (nc, telnet, socat).
pub(super) async fn serve_text(stream: Stream, initial: BytesMut, peer: SocketAddr, ctx: Arc<Ctx>) {
    let Some(hub) = ctx.chat.clone() else {
        return super::refuse::text_line(
            stream,
            "ferry: unrecognised protocol on this port; use the ferry client (see `ferry --help`)",
        )
        .await;
    };
    // A plain-text client cannot present a token: it has the newcomer's
    // rights.
    let policy = ctx.files.policy();
    let root = crate::files::RelPath::root();
    if let Err(d) = policy.check(policy.newcomer(), crate::access::Action::Chat, &root) {
        let line = match d {
            crate::access::Denied::NeedsToken(_) => {
                "ferry: chat on this server needs the token: use `ferry chat` with FERRY_TOKEN set"
                    .to_string()
            }
            crate::access::Denied::NeedsLogin(_) => {
                "ferry: chat on this server needs logging in: use `ferry chat` as a user"
                    .to_string()
            }
            _ => format!("ferry: {d}"),
        };
        return super::refuse::text_line(stream, &line).await;
    }
    let sock = socket2::SockRef::from(stream.tcp());
    let _ = sock.set_keepalive(true);
    // Keep what the kernel holds for a client small: the hub's queue is the
    // buffer, and a client that stops reading must fill it to be noticed.
    let _ = sock.set_send_buffer_size(TEXT_SNDBUF);
    let (mut member, mut events) = match hub.enter(None, &[], None, None).await {
        Ok(m) => m,
        Err(e) => return super::refuse::text_line(stream, &format!("ferry: {e}")).await,
    };
    member.no_echo();
    info!(nick = %escape(&member.nick()), "chat (text) joined");
    let (mut rd, mut wr) = match stream {
        Stream::Plain(tcp) => {
            let (r, w) = tcp.into_split();
            let inline = Inline::new(w);
            member.share_socket(inline.clone());
            let rd: crate::wire::connection::BoxRead = Box::new(r);
            (rd, TextOut::Shared(inline))
        }
        tls => {
            let (r, w) = tls.into_split();
            (r, TextOut::Own(w))
        }
    };
    let mut lines = Lines::new(initial, hub.limits().max_message + 256);
    let mut pace = Pace::new(ctx.config.chat.rate, ctx.config.chat.flood);
    let done = tokio_util::sync::CancellationToken::new();
    let kicked = member.dropped.clone();
    let reading = async {
        let too_long = format!(
            "line too long: at most {} bytes; not sent",
            hub.limits().max_message
        );
        let not_utf8 = "line is not valid UTF-8; not sent";
        let mut pending: Option<String> = None;
        let mut first_line = true;
        let opened = std::time::Instant::now();
        let why = loop {
            let first = match pending.take() {
                Some(l) => l,
                None => {
                    let item = tokio::select! {
                        i = lines.next(&mut rd) => i,
                        _ = member.dropped.cancelled() => {
                            break Ending::Kicked(member.drop_reason())
                        }
                        _ = ctx.stop.cancelled() => {
                            break Ending::Kicked("the server is shutting down".to_string())
                        }
                    };
                    match item {
                        Ok(Some(LineItem::Line(l))) => l,
                        Ok(Some(LineItem::TooLong)) => {
                            member.tell(too_long.clone());
                            continue;
                        }
                        Ok(Some(LineItem::NotUtf8)) => {
                            member.tell(not_utf8.to_string());
                            continue;
                        }
                        Ok(None) | Err(_) => break Ending::Gone,
                    }
                }
            };
            if let Err(e) = pace.admit().await {
                break Ending::Kicked(e);
            }
            // Lines that came in the same read go in one batch (one store
            // transaction, one fan-out pass) while the rate allows them.
            let mut bytes = first.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match lines.take() {
                    Some(LineItem::Line(l)) if pace.try_admit() => {
                        bytes += l.len();
                        batch.push(l);
                    }
                    Some(LineItem::Line(l)) => {
                        pending = Some(l);
                        break;
                    }
                    Some(LineItem::TooLong) => member.tell(too_long.clone()),
                    Some(LineItem::NotUtf8) => member.tell(not_utf8.to_string()),
                    None => break,
                }
            }
            // A client of another protocol that reached the chat after
            // all: its login is never posted.
            let early = first_line || opened.elapsed() < EARLY;
            if batch.iter().any(|l| foreign::foreign_line(l, early)) {
                info!("chat (text): another protocol's lines; closed, nothing posted");
                break Ending::Kicked(
                    "that looks like another protocol, not chat; nothing was sent".into(),
                );
            }
            first_line = false;
            let batch = batch
                .iter()
                .map(String::as_str)
                .filter(|l| !l.trim().is_empty());
            if member.lines(batch) == Outcome::Quit {
                break Ending::Quit;
            }
            member.keep_pace().await;
        };
        done.cancel();
        why
    };
    let writing = async {
        // Queued chunks are written straight from the batches the hub
        // shares between recipients (one vectored write), not copied into
        // a buffer of this client's own first.
        let mut chunks: Vec<Chunk> = Vec::new();
        loop {
            // What is queued goes out before a quit ends the session: a
            // client that typed /quit at once still gets its welcome.
            let first = tokio::select! {
                biased;
                c = events.recv_text() => c,
                _ = done.cancelled() => None,
            };
            let Some(first) = first else { break };
            chunks.push(first);
            loop {
                // Whatever else is queued goes out in the same write.
                let mut size: usize = chunks.iter().map(|c| c.bytes().len()).sum();
                while size < 64 * 1024 && chunks.len() < MAX_IOV {
                    match events.try_recv_text() {
                        Some(c) => {
                            size += c.bytes().len();
                            chunks.push(c);
                        }
                        None => break,
                    }
                }
                // A client that stopped reading is dropped by the hub: stop
                // waiting on its socket then, not only after the deadline.
                tokio::select! {
                    r = tokio::time::timeout(WRITE_DEADLINE, wr.write_chunks(&chunks)) => match r {
                        Ok(Ok(())) => {}
                        _ => return false,
                    },
                    _ = kicked.cancelled() => return false,
                }
                chunks.clear();
                // Written up: the hub writes again, unless more came.
                let next = match &wr {
                    TextOut::Shared(inline) => events.settle(inline),
                    TextOut::Own(_) => events.try_recv_text(),
                };
                match next {
                    Some(c) => chunks.push(c),
                    None => break,
                }
            }
        }
        true
    };
    let (why, _) = tokio::join!(reading, writing);
    let bye = match why {
        Ending::Gone => None,
        Ending::Quit => Some("bye".to_string()),
        Ending::Kicked(reason) => {
            member.set_quit_reason(&reason);
            Some(reason)
        }
    };
    // Out of the hub first: the others hear of it now, not after the
    // farewell below has waited on a client that may not read.
    drop(member);
    if let Some(reason) = bye {
        let mut out = Vec::new();
        push_line(&mut out, &Delivery::new(Event::Bye { reason }));
        let _ = tokio::time::timeout(Duration::from_secs(1), wr.write_all(&out)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
    debug!(peer = %peer, "chat (text) left");
}

/// The writing side of a plain-text chat connection.
enum TextOut {
    /// A plain socket, shared with the hub.
    Shared(Arc<Inline>),
    /// Anything else (TLS), written by the door alone.
    Own(crate::wire::connection::BoxWrite),
}

impl TextOut {
    /// Writes every chunk, in order, with vectored writes.
    async fn write_chunks(&mut self, chunks: &[Chunk]) -> std::io::Result<()> {
        let (mut i, mut off) = (0, 0);
        while i < chunks.len() {
            let slices: Vec<IoSlice<'_>> = chunks[i..]
                .iter()
                .enumerate()
                .map(|(k, c)| IoSlice::new(if k == 0 { &c.bytes()[off..] } else { c.bytes() }))
                .collect();
            let mut n = match self {
                TextOut::Shared(inline) => {
                    let sock = inline.socket();
                    sock.writable().await?;
                    match sock.try_write_vectored(&slices) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    }
                }
                TextOut::Own(w) => w.write_vectored(&slices).await?,
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            while i < chunks.len() && n > 0 {
                let left = chunks[i].bytes().len() - off;
                if n >= left {
                    n -= left;
                    i += 1;
                    off = 0;
                } else {
                    off += n;
                    n = 0;
                }
            }
        }
        // TLS keeps what the socket had no room for until flushed (see
        // `connection::write_flushed`).
        if let TextOut::Own(w) = self {
            w.flush().await?;
        }
        Ok(())
    }

    async fn write_all(&mut self, mut buf: &[u8]) -> std::io::Result<()> {
        match self {
            TextOut::Shared(inline) => {
                let sock = inline.socket();
                while !buf.is_empty() {
                    sock.writable().await?;
                    match sock.try_write(buf) {
                        Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                        Ok(n) => buf = &buf[n..],
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            TextOut::Own(w) => {
                w.write_all(buf).await?;
                w.flush().await
            }
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            TextOut::Shared(inline) => {
                socket2::SockRef::from(inline.socket().as_ref()).shutdown(std::net::Shutdown::Write)
            }
            TextOut::Own(w) => w.shutdown().await,
        }
    }
}

fn push_line(out: &mut Vec<u8>, ev: &Delivery) {
    out.extend_from_slice(ev.line().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Runs the native `chat` request: the connection carries the chat until
/// the client says `end` (or /quit), disconnects, or is dropped.
pub(super) async fn native(
    conn: &mut Connection,
    ctx: &Arc<Ctx>,
    who: crate::access::Who,
    nick: Option<String>,
    rooms: Vec<String>,
    since_ms: Option<i64>,
) -> Result<(), Fail> {
    let Some(hub) = ctx.chat.clone() else {
        return Err(Fail::Reply(
            ErrorCode::Forbidden,
            "this server does not run the chat".into(),
        ));
    };
    let owner = ctx.files.policy().account_name(who);
    let (mut member, mut events) = hub
        .enter(nick.as_deref(), &rooms, since_ms, owner)
        .await
        .map_err(|e| {
            let code = if e.contains("taken") {
                ErrorCode::Exists
            } else {
                ErrorCode::InvalidName
            };
            Fail::Reply(code, e)
        })?;
    info!(nick = %escape(&member.nick()), "chat joined");
    // A chat may sit idle for hours: no idle deadline, while TCP
    // keepalives (see `wire::stream::tune`) find a peer that is gone.
    conn.set_idle(Duration::MAX);
    let mut pace = Pace::new(ctx.config.chat.rate, ctx.config.chat.flood);
    let done = tokio_util::sync::CancellationToken::new();
    let (rd, wr) = conn.halves();
    let stop = ctx.stop.clone();
    let dropped = member.dropped.clone();
    let reading = async {
        let r = read_lines(rd, &mut member, &mut pace, &stop).await;
        done.cancel();
        r
    };
    let writing = write_events(wr, &mut events, &done, &dropped);
    let (why, written) = tokio::join!(reading, writing);
    // Says why, when it is not the client's own doing.
    let result = match why {
        Ok(NativeEnding::Left) => conn.send(Kind::Ok, &Done {}, 0).await.map_err(Fail::from),
        Ok(NativeEnding::Dropped) => Err(Fail::Fatal(ErrorCode::Busy, member.drop_reason())),
        Ok(NativeEnding::Shutdown) => Err(Fail::Fatal(
            ErrorCode::ShuttingDown,
            "the server is shutting down".into(),
        )),
        Ok(NativeEnding::Flood(e)) => Err(Fail::Fatal(ErrorCode::Busy, e)),
        Err(e) => Err(e),
    };
    if let Err(Fail::Fatal(_, reason) | Fail::Reply(_, reason)) = &result {
        member.set_quit_reason(reason);
    }
    written?;
    // The chat took the connection over: it ends with it.
    result?;
    Err(Fail::Conn(ConnError::Closed))
}

enum NativeEnding {
    Left,
    Dropped,
    Shutdown,
    Flood(String),
}

async fn read_lines(
    rd: &mut FrameReader,
    member: &mut Member,
    pace: &mut Pace,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<NativeEnding, Fail> {
    let dropped = member.dropped.clone();
    loop {
        let head = tokio::select! {
            h = rd.next_head() => h?,
            _ = dropped.cancelled() => return Ok(NativeEnding::Dropped),
            _ = stop.cancelled() => return Ok(NativeEnding::Shutdown),
        };
        match serde_json::from_slice::<Request>(&head.header) {
            Ok(Request::Say { line }) if head.body_len == 0 => {
                // Length is the hub's to judge (the header cap bounds it).
                if line.contains(['\n', '\r']) {
                    member.tell("a line may not contain line breaks; not sent".into());
                    continue;
                }
                if let Err(e) = pace.admit().await {
                    return Ok(NativeEnding::Flood(e));
                }
                if member.line(&line) == Outcome::Quit {
                    return Ok(NativeEnding::Left);
                }
                member.keep_pace().await;
            }
            Ok(Request::End) if head.body_len == 0 => return Ok(NativeEnding::Left),
            _ => {
                return Err(Fail::Fatal(
                    ErrorCode::BadRequest,
                    "in a chat, only say and end may be sent".into(),
                ));
            }
        }
    }
}

async fn write_events(
    wr: &mut FrameWriter,
    events: &mut crate::chat::Events,
    done: &tokio_util::sync::CancellationToken,
    dropped: &tokio_util::sync::CancellationToken,
) -> Result<(), Fail> {
    loop {
        let ev = tokio::select! {
            biased;
            e = events.recv() => e,
            _ = done.cancelled() => None,
            _ = dropped.cancelled() => None,
        };
        let Some(ev) = ev else { return Ok(()) };
        tokio::select! {
            r = wr.send_encoded(Kind::Partial, ev.json(), 0) => r?,
            // Mid-frame: the connection cannot carry anything more.
            _ = dropped.cancelled() => return Err(Fail::Conn(ConnError::Closed)),
        }
    }
}

mod foreign;
#[cfg(test)]
mod tests;
