//! What the hub tells a client, as JSON for the native door and as one
//! line of text for the plain-text door. Every piece of peer text is
//! escaped on the way to a terminal.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::text::escape;

/// One thing that happened, for one client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// You are in: your nickname and the room you talk in.
    Welcome {
        /// Your nickname.
        nick: String,
        /// The server's name.
        server: String,
        /// The room lines go to.
        room: String,
    },
    /// A message in a room (`action` for `/me`; `history` when replayed on
    /// join).
    Message {
        /// Room.
        room: String,
        /// Sender.
        nick: String,
        /// The text.
        text: String,
        /// Milliseconds since the Unix epoch, as the server received it.
        ts_ms: i64,
        /// A `/me` action.
        #[serde(default)]
        action: bool,
        /// Replayed from history on join.
        #[serde(default)]
        history: bool,
    },
    /// A private message (also echoed to its sender).
    Private {
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
        /// The text.
        text: String,
        /// Milliseconds since the Unix epoch.
        ts_ms: i64,
    },
    /// Someone joined a room.
    Joined {
        /// Room.
        room: String,
        /// Who.
        nick: String,
    },
    /// Someone left a room (or the chat).
    Left {
        /// Room.
        room: String,
        /// Who.
        nick: String,
        /// Why, when they said.
        reason: Option<String>,
    },
    /// Someone changed nickname.
    Nick {
        /// Before.
        old: String,
        /// After.
        new: String,
    },
    /// A room's topic, set now or shown on request.
    Topic {
        /// Room.
        room: String,
        /// Who set it, when set now.
        nick: Option<String>,
        /// The topic ("" for none).
        topic: String,
    },
    /// The room you talk in now.
    Current {
        /// Room.
        room: String,
    },
    /// An answer to /who, /rooms, /help.
    Info {
        /// Lines to show.
        lines: Vec<String>,
    },
    /// Your last line was refused.
    Error {
        /// Why.
        text: String,
    },
    /// The server is disconnecting you.
    Bye {
        /// Why.
        reason: String,
    },
}

/// An event as the hub hands it out: one allocation shared by every
/// recipient, rendered (as a text line, as JSON) once however many receive
/// it.
#[derive(Debug)]
pub struct Delivery {
    event: Event,
    weight: usize,
    line: OnceLock<String>,
    json: OnceLock<Vec<u8>>,
}

impl Delivery {
    /// Wraps an event for delivery.
    pub fn new(event: Event) -> Arc<Delivery> {
        Arc::new(Delivery {
            weight: event.weight(),
            event,
            line: OnceLock::new(),
            json: OnceLock::new(),
        })
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// Roughly the memory it holds (see [`Event::weight`]).
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// [`Event::to_line`], computed once.
    pub fn line(&self) -> &str {
        self.line.get_or_init(|| self.event.to_line())
    }

    /// Appends the line to `out`: the one computed already, else rendered
    /// in place.
    pub fn write_line(&self, out: &mut String) {
        match self.line.get() {
            Some(line) => out.push_str(line),
            None => self.event.write_line(out),
        }
    }

    /// The event as JSON, encoded once.
    pub fn json(&self) -> &[u8] {
        self.json
            .get_or_init(|| serde_json::to_vec(&self.event).unwrap_or_default())
    }
}

/// A timestamp as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn stamp(ts_ms: i64) -> String {
    use chrono::{Datelike, Timelike};
    // Fields rather than a strftime pattern: every join replays a room's
    // history, and a pattern is parsed anew on each use.
    chrono::DateTime::from_timestamp_millis(ts_ms)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}

impl Event {
    /// Roughly the memory an event holds, for per-client queue budgets.
    pub fn weight(&self) -> usize {
        let text = match self {
            Event::Welcome { nick, server, room } => nick.len() + server.len() + room.len(),
            Event::Message {
                room, nick, text, ..
            } => room.len() + nick.len() + text.len(),
            Event::Private { from, to, text, .. } => from.len() + to.len() + text.len(),
            Event::Joined { room, nick } => room.len() + nick.len(),
            Event::Left { room, nick, reason } => {
                room.len() + nick.len() + reason.as_ref().map_or(0, String::len)
            }
            Event::Nick { old, new } => old.len() + new.len(),
            Event::Topic { room, nick, topic } => {
                room.len() + nick.as_ref().map_or(0, String::len) + topic.len()
            }
            Event::Current { room } => room.len(),
            Event::Info { lines } => lines.iter().map(String::len).sum(),
            Event::Error { text } => text.len(),
            Event::Bye { reason } => reason.len(),
        };
        text + 64
    }

    /// The line the plain-text door sends (without its line ending).
    pub fn to_line(&self) -> String {
        let mut line = String::new();
        self.write_line(&mut line);
        line
    }

    /// [`Event::to_line`], appended to `out`: a burst of messages renders
    /// into one buffer without a string of its own per line.
    pub fn write_line(&self, out: &mut String) {
        if let Event::Message {
            room,
            nick,
            text,
            ts_ms,
            action,
            history,
        } = self
        {
            out.push('[');
            out.push_str(&escape(room));
            out.push_str("] ");
            if *history {
                out.push_str("(history ");
                out.push_str(&stamp(*ts_ms));
                out.push_str(") ");
            }
            if *action {
                out.push_str("* ");
                out.push_str(&escape(nick));
                out.push(' ');
            } else {
                out.push('<');
                out.push_str(&escape(nick));
                out.push_str("> ");
            }
            out.push_str(&escape(text));
            return;
        }
        out.push_str(&self.other_line());
    }

    fn other_line(&self) -> String {
        let e = escape;
        match self {
            Event::Welcome { nick, server, room } => format!(
                "* welcome to ferry chat on {}: you are {} in [{}]; /help lists commands",
                e(server),
                e(nick),
                e(room)
            ),
            Event::Message { .. } => {
                let mut line = String::new();
                self.write_line(&mut line);
                line
            }
            Event::Private { from, to, text, .. } => {
                format!("[private {} -> {}] {}", e(from), e(to), e(text))
            }
            Event::Joined { room, nick } => format!("[{}] -> {} joined", e(room), e(nick)),
            Event::Left { room, nick, reason } => match reason {
                Some(r) => format!("[{}] <- {} left ({})", e(room), e(nick), e(r)),
                None => format!("[{}] <- {} left", e(room), e(nick)),
            },
            Event::Nick { old, new } => format!("* {} is now known as {}", e(old), e(new)),
            Event::Topic { room, nick, topic } => match (nick, topic.is_empty()) {
                (Some(n), _) => format!("[{}] {} set the topic: {}", e(room), e(n), e(topic)),
                (None, true) => format!("[{}] no topic", e(room)),
                (None, false) => format!("[{}] topic: {}", e(room), e(topic)),
            },
            Event::Current { room } => format!("* you now talk in [{}]", e(room)),
            Event::Info { lines } => lines
                .iter()
                .map(|l| format!("* {}", e(l)))
                .collect::<Vec<_>>()
                .join("\r\n"),
            Event::Error { text } => format!("! {}", e(text)),
            Event::Bye { reason } => format!("* disconnected: {}", e(reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_escape_what_peers_send() {
        let ev = Event::Message {
            room: "lobby".into(),
            nick: "eve".into(),
            text: "hi\u{1b}[2J\r\nforged".into(),
            ts_ms: 0,
            action: false,
            history: false,
        };
        let line = ev.to_line();
        assert_eq!(line, "[lobby] <eve> hi\\u{1b}[2J\\r\\nforged");
        assert!(!line.chars().any(|c| c.is_control()));
        let h = Event::Message {
            room: "ops".into(),
            nick: "al".into(),
            text: "up".into(),
            ts_ms: 1_700_000_000_000,
            action: true,
            history: true,
        };
        assert_eq!(h.to_line(), "[ops] (history 2023-11-14 22:13:20) * al up");
    }
}
