//! The client half of the chat: join, then read events and send lines.

use super::{Result, remote_error};
use crate::chat::Event;
use crate::wire::messages::Request;
use crate::wire::{ConnError, Connection, FrameReader, FrameWriter, Kind};

/// A joined chat over one connection (which it takes over until the end).
pub struct ChatSession<'a> {
    conn: &'a mut Connection,
}

/// The reading side of a [`ChatSession`], for use beside a [`ChatLines`].
pub struct ChatEvents<'a>(&'a mut FrameReader);

/// The writing side of a [`ChatSession`].
pub struct ChatLines<'a>(&'a mut FrameWriter);

/// Sends `chat` and waits for the server to accept it (its first event).
/// With `since_ms`, history is replayed only after that time (a server
/// that does not list `chat-since` must not be asked).
pub(super) async fn join<'a>(
    conn: &'a mut Connection,
    nick: Option<&str>,
    rooms: &[String],
    since_ms: Option<i64>,
) -> Result<(ChatSession<'a>, Event)> {
    let req = Request::Chat {
        nick: nick.map(str::to_string),
        rooms: rooms.to_vec(),
        since_ms,
    };
    conn.send(Kind::Request, &req, 0).await?;
    // A chat may sit idle for hours: no idle deadline, while TCP
    // keepalives find a server that is gone.
    conn.set_idle(std::time::Duration::MAX);
    let mut session = ChatSession { conn };
    match session.next_event().await? {
        Some(first) => Ok((session, first)),
        None => Err(ConnError::Protocol("the chat ended at once".into()).into()),
    }
}

impl ChatSession<'_> {
    /// The next event; `None` once the server has ended the chat cleanly.
    pub async fn next_event(&mut self) -> Result<Option<Event>> {
        next_event(self.conn.halves().0).await
    }

    /// Sends one line (text, or a `/` command).
    pub async fn say(&mut self, line: &str) -> Result<()> {
        say(self.conn.halves().1, line).await
    }

    /// Leaves: says `end` and reads what is left up to the server's `ok`.
    pub async fn end(mut self) -> Result<()> {
        self.conn.send(Kind::Request, &Request::End, 0).await?;
        while self.next_event().await?.is_some() {}
        Ok(())
    }

    /// Both sides at once, to read events while lines are being sent.
    pub fn halves(&mut self) -> (ChatEvents<'_>, ChatLines<'_>) {
        let (r, w) = self.conn.halves();
        (ChatEvents(r), ChatLines(w))
    }
}

impl ChatEvents<'_> {
    /// See [`ChatSession::next_event`].
    pub async fn next(&mut self) -> Result<Option<Event>> {
        next_event(self.0).await
    }
}

impl ChatLines<'_> {
    /// See [`ChatSession::say`].
    pub async fn say(&mut self, line: &str) -> Result<()> {
        say(self.0, line).await
    }

    /// Says `end`; the events side then sees the chat end.
    pub async fn end(&mut self) -> Result<()> {
        self.0.send(Kind::Request, &Request::End, 0).await?;
        Ok(())
    }
}

async fn next_event(rd: &mut FrameReader) -> Result<Option<Event>> {
    let head = match rd.next_head().await {
        Ok(h) => h,
        Err(e) => return Err(e.into()),
    };
    match head.kind {
        Kind::Partial => Ok(Some(
            serde_json::from_slice(&head.header).map_err(ConnError::from)?,
        )),
        Kind::Ok => Ok(None),
        kind => Err(remote_error(&head.header, kind)),
    }
}

async fn say(wr: &mut FrameWriter, line: &str) -> Result<()> {
    wr.send(
        Kind::Request,
        &Request::Say {
            line: line.to_string(),
        },
        0,
    )
    .await?;
    Ok(())
}
