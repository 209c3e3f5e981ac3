//! `ferry chat`: the terminal chat client, and one-shot `--send`.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::sync::mpsc;

use super::{connect, remote};
use crate::chat::Event;
use crate::chat::command::HELP;
use crate::client::{ClientError, Remote};
use crate::text::escape;

/// Arguments of `ferry chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// HOST[:PORT] of the server.
    pub remote: String,
    /// Nickname. [default: the account logged in to (FERRY_USER), else
    /// $USER, else a guest name from the server]
    #[arg(long)]
    pub nick: Option<String>,
    /// Room to join (repeatable; the first is where your lines go).
    /// [default: lobby]
    #[arg(long = "room", value_name = "ROOM")]
    pub rooms: Vec<String>,
    /// Send this one line and exit (0 once the server has it).
    #[arg(long, value_name = "TEXT")]
    pub send: Option<String>,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// `ferry chat`.
pub(super) async fn run(args: ChatArgs) -> ExitCode {
    let r = match remote(&args.remote) {
        Ok(r) => r,
        Err(e) => {
            crate::say!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    // Logged in to an account, the account's name (the server gives it
    // when none is asked for).
    let nick = args.nick.clone().or_else(|| {
        if crate::access::accounts::login_user().is_some() {
            return None;
        }
        std::env::var("USER")
            .ok()
            .filter(|u| crate::chat::hub::check_nick(u).is_ok())
    });
    if let Some(text) = &args.send {
        return match send_one(&r, nick.as_deref(), &args.rooms, text).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                crate::say!("ferry: {e}");
                ExitCode::from(if e.is_transport() { 255 } else { 1 })
            }
        };
    }
    interactive(r, nick, args.rooms).await
}

/// Joins, says one line (a message or a command), waits until the server
/// has acted on it, leaves. The hub handles a client's lines in order, so
/// `/help` sent after the line is the barrier: its answer comes once the
/// line has been delivered, or refused with an error before it.
async fn send_one(
    r: &Remote,
    nick: Option<&str>,
    rooms: &[String],
    text: &str,
) -> Result<(), ClientError> {
    let mut client = connect(r).await?;
    let (mut chat, welcome) = client.chat(nick, rooms).await?;
    let Event::Welcome { .. } = welcome else {
        return Err(ClientError::Local("the server did not welcome us".into()));
    };
    chat.say(text).await?;
    let quits = matches!(
        crate::chat::command::Command::parse(text),
        Ok(crate::chat::command::Command::Quit(_))
    );
    if quits {
        // Nothing follows a /quit: the server ends the chat.
        while chat.next_event().await?.is_some() {}
        return Ok(());
    }
    chat.say("/help").await?;
    loop {
        match chat.next_event().await? {
            Some(Event::Info { lines }) if lines.iter().eq(HELP.iter()) => break,
            Some(Event::Error { text }) => {
                return Err(ClientError::Local(format!("refused: {}", escape(&text))));
            }
            Some(_) => continue,
            None => return Err(ClientError::Local("the chat ended".into())),
        }
    }
    chat.end().await
}

/// Where the client stands, kept across reconnections.
struct Standing {
    nick: Option<String>,
    rooms: Vec<String>,
    current: Option<String>,
    /// Set once a connection got as far as the welcome.
    welcomed: bool,
    /// When the last message we were shown was said: a rejoin asks for
    /// history after it, so that only what was missed is shown.
    last_ms: Option<i64>,
    /// The room messages seen with that very time: a rejoin's history
    /// starts at it (messages said in one millisecond share it), and these
    /// are not shown twice.
    at_last: Vec<(String, String, String)>,
}

impl Standing {
    /// Follows the events that change who and where we are.
    fn track(&mut self, ev: &Event) {
        match ev {
            Event::Welcome { nick, room, .. } => {
                self.welcomed = true;
                self.nick = Some(nick.clone());
                self.current = Some(room.clone());
            }
            Event::Nick { old, new } if self.nick.as_deref() == Some(old) => {
                self.nick = Some(new.clone())
            }
            Event::Joined { room, nick } if self.nick.as_deref() == Some(nick) => {
                if !self.rooms.iter().any(|r| r.eq_ignore_ascii_case(room)) {
                    self.rooms.push(room.clone());
                }
                self.current = Some(room.clone());
            }
            Event::Left { room, nick, .. } if self.nick.as_deref() == Some(nick) => {
                self.rooms.retain(|r| !r.eq_ignore_ascii_case(room));
            }
            Event::Current { room } => self.current = Some(room.clone()),
            Event::Message {
                ts_ms,
                room,
                nick,
                text,
                ..
            } => {
                if Some(*ts_ms) > self.last_ms {
                    self.at_last.clear();
                }
                self.last_ms = self.last_ms.max(Some(*ts_ms));
                if Some(*ts_ms) == self.last_ms {
                    self.at_last
                        .push((room.clone(), nick.clone(), text.clone()));
                }
            }
            Event::Private { ts_ms, .. } => {
                if Some(*ts_ms) > self.last_ms {
                    self.at_last.clear();
                }
                self.last_ms = self.last_ms.max(Some(*ts_ms));
            }
            _ => {}
        }
    }

    /// Whether `ev` is a replayed message this client was shown already
    /// (one of those said in the millisecond its rejoin asked from).
    fn shown_before(&mut self, ev: &Event) -> bool {
        let Event::Message {
            ts_ms,
            room,
            nick,
            text,
            history: true,
            ..
        } = ev
        else {
            return false;
        };
        if Some(*ts_ms) != self.last_ms {
            return false;
        }
        let key = (room.clone(), nick.clone(), text.clone());
        match self.at_last.iter().position(|k| *k == key) {
            Some(i) => {
                self.at_last.remove(i);
                true
            }
            None => false,
        }
    }

    /// Rooms to rejoin, the current one first.
    fn rejoin(&self) -> Vec<String> {
        let mut out: Vec<String> = self.current.iter().cloned().collect();
        let seen: BTreeSet<String> = out.iter().map(|r| r.to_lowercase()).collect();
        out.extend(
            self.rooms
                .iter()
                .filter(|r| !seen.contains(&r.to_lowercase()))
                .cloned(),
        );
        out
    }
}

/// How one connection's session ended.
enum End {
    /// The user left (/quit, EOF, Ctrl-D).
    Quit,
    /// The server refused us outright (not worth retrying).
    Refused(ClientError),
    /// The connection was lost (worth reconnecting).
    Lost(String),
}

/// The line editor's thread sends lines here; `None` means the user left.
type Lines = mpsc::UnboundedReceiver<Option<String>>;

/// A way to show a line without tearing the one being typed.
type Show = Box<dyn FnMut(String) + Send>;

async fn interactive(r: Remote, nick: Option<String>, rooms: Vec<String>) -> ExitCode {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let colour = tty && std::env::var_os("NO_COLOR").is_none();
    let (tx, mut lines) = mpsc::unbounded_channel();
    let mut show: Show = if tty {
        match start_editor(tx) {
            Ok(show) => show,
            Err(e) => {
                crate::say!("ferry: cannot start the line editor: {e}");
                return ExitCode::from(255);
            }
        }
    } else {
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::stdin().lock().lines() {
                match line {
                    Ok(l) => {
                        if tx.send(Some(l)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send(None);
        });
        Box::new(|l: String| println!("{l}"))
    };
    let mut standing = Standing {
        nick,
        rooms,
        current: None,
        welcomed: false,
        last_ms: None,
        at_last: Vec::new(),
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        match session(&r, &mut standing, &mut lines, &mut show, colour).await {
            End::Quit => return ExitCode::SUCCESS,
            End::Refused(e) => {
                show(format!("ferry: {e}"));
                return ExitCode::from(if e.is_transport() { 255 } else { 1 });
            }
            End::Lost(why) => {
                if std::mem::take(&mut standing.welcomed) {
                    backoff = Duration::from_millis(500);
                }
                show(format!(
                    "* connection lost ({}); reconnecting in {:.1} s",
                    escape(&why),
                    backoff.as_secs_f64()
                ));
                // Lines typed meanwhile wait in the channel; a quit ends it.
                let wait = tokio::time::sleep(backoff);
                tokio::pin!(wait);
                tokio::select! {
                    _ = &mut wait => {}
                    l = lines.recv() => if matches!(l, None | Some(None)) {
                        return ExitCode::SUCCESS;
                    },
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// One connection: join (or rejoin), then pass lines up and events down.
async fn session(
    r: &Remote,
    standing: &mut Standing,
    lines: &mut Lines,
    show: &mut Show,
    colour: bool,
) -> End {
    let mut client = match connect(r).await {
        Ok(c) => c,
        Err(e) if e.is_transport() => return End::Lost(e.to_string()),
        Err(e) => return End::Refused(e),
    };
    let rooms = standing.rejoin();
    let since = standing.last_ms;
    let joined = match client
        .rejoin_chat(standing.nick.as_deref(), &rooms, since)
        .await
    {
        // Our old self may still hold the nickname for a moment.
        Err(ClientError::Remote {
            code: crate::wire::messages::ErrorCode::Exists,
            ..
        }) => {
            let other = standing.nick.as_ref().map(|n| format!("{n}_"));
            client.rejoin_chat(other.as_deref(), &rooms, since).await
        }
        other => other,
    };
    let (mut chat, welcome) = match joined {
        Ok(x) => x,
        Err(e) if e.is_transport() => return End::Lost(e.to_string()),
        Err(e) => return End::Refused(e),
    };
    standing.track(&welcome);
    show(render(&welcome, colour));
    let (mut events, mut out) = chat.halves();
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Ok(Some(ev)) => {
                    if standing.shown_before(&ev) {
                        continue;
                    }
                    standing.track(&ev);
                    show(render(&ev, colour));
                }
                Ok(None) => return End::Quit,
                Err(e) if e.is_transport() => return End::Lost(e.to_string()),
                Err(e) => return End::Lost(e.to_string()),
            },
            line = lines.recv() => match line {
                Some(Some(l)) => {
                    if l.trim().is_empty() {
                        continue;
                    }
                    if let Err(e) = out.say(&l).await {
                        return End::Lost(e.to_string());
                    }
                }
                Some(None) | None => {
                    let _ = out.end().await;
                    // Read up to the server's goodbye, briefly.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Ok(Some(_)) = events.next().await {}
                    })
                    .await;
                    return End::Quit;
                }
            },
        }
    }
}

/// Runs the line editor on its own thread; returns how to print above it.
fn start_editor(tx: mpsc::UnboundedSender<Option<String>>) -> Result<Show, String> {
    use rustyline::ExternalPrinter;
    let mut editor = rustyline::DefaultEditor::new().map_err(|e| e.to_string())?;
    let mut printer = editor
        .create_external_printer()
        .map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        loop {
            match editor.readline("> ") {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    if tx.send(Some(line)).is_err() {
                        return;
                    }
                }
                Err(rustyline::error::ReadlineError::Interrupted)
                | Err(rustyline::error::ReadlineError::Eof)
                | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
            }
        }
    });
    Ok(Box::new(move |l: String| {
        let _ = printer.print(l);
    }))
}

/// An event as a terminal line, nicknames coloured when asked.
fn render(ev: &Event, colour: bool) -> String {
    if !colour {
        return ev.to_line();
    }
    let paint = |nick: &str| {
        // A stable colour per nickname, from six that read on dark and light.
        let hue = 31
            + nick
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32))
                % 6;
        format!("\x1b[{hue}m{}\x1b[0m", escape(nick))
    };
    match ev {
        Event::Message {
            room,
            nick,
            text,
            action,
            history: false,
            ..
        } => {
            if *action {
                format!("[{}] * {} {}", escape(room), paint(nick), escape(text))
            } else {
                format!("[{}] <{}> {}", escape(room), paint(nick), escape(text))
            }
        }
        Event::Private { from, to, text, .. } => format!(
            "\x1b[1m[private {} -> {}]\x1b[0m {}",
            paint(from),
            paint(to),
            escape(text)
        ),
        Event::Error { .. } => format!("\x1b[31m{}\x1b[0m", ev.to_line()),
        _ => format!("\x1b[2m{}\x1b[0m", ev.to_line()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standing_follows_our_own_events_only() {
        let mut s = Standing {
            nick: None,
            rooms: vec![],
            current: None,
            welcomed: false,
            last_ms: None,
            at_last: Vec::new(),
        };
        s.track(&Event::Welcome {
            nick: "me".into(),
            server: "x".into(),
            room: "lobby".into(),
        });
        s.track(&Event::Joined {
            room: "lobby".into(),
            nick: "me".into(),
        });
        s.track(&Event::Joined {
            room: "ops".into(),
            nick: "me".into(),
        });
        s.track(&Event::Joined {
            room: "dev".into(),
            nick: "someone".into(),
        });
        s.track(&Event::Nick {
            old: "me".into(),
            new: "me2".into(),
        });
        assert_eq!(s.nick.as_deref(), Some("me2"));
        assert_eq!(s.rejoin(), ["ops", "lobby"]);
        s.track(&Event::Left {
            room: "ops".into(),
            nick: "me2".into(),
            reason: None,
        });
        s.track(&Event::Current {
            room: "lobby".into(),
        });
        assert_eq!(s.rejoin(), ["lobby"]);
    }

    #[test]
    fn colours_never_let_peer_escapes_through() {
        let ev = Event::Message {
            room: "r".into(),
            nick: "n\u{1b}[31m".into(),
            text: "t\u{1b}]0;x\u{7}".into(),
            ts_ms: 0,
            action: false,
            history: false,
        };
        let line = render(&ev, true);
        // Only our own colour codes: ESC followed by '[' and digits.
        let escs = line.matches('\u{1b}').count();
        assert_eq!(escs, 2, "{line:?}");
        assert!(line.contains("\\u{1b}[31m"));
        assert!(line.contains("\\u{1b}]0;x\\u{7}"));
    }
}
