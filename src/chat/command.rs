//! One line from a chat client, as every door reads it: IRC-like `/`
//! commands, or text for the current room. Pure.

/// What a line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Text for the current room.
    Say(String),
    /// `/me waves`: an action in the current room.
    Me(String),
    /// `/nick NAME`.
    Nick(String),
    /// `/join ROOM`: join (creating it) and make it current.
    Join(String),
    /// `/part [ROOM]`: leave ROOM or the current room.
    Part(Option<String>),
    /// `/msg NICK text`: a private message.
    Msg(String, String),
    /// `/who [ROOM]`: who is in ROOM or the current room.
    Who(Option<String>),
    /// `/rooms`: every room with its size and topic.
    Rooms,
    /// `/topic [ROOM] [text]`: show or set a topic (ROOM only when it starts
    /// with `#`).
    Topic(Option<String>, Option<String>),
    /// `/quit [reason]`.
    Quit(Option<String>),
    /// `/help`.
    Help,
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `/something` unknown.
    #[error("unknown command /{0}; /help lists them")]
    Unknown(String),
    /// A command without what it needs.
    #[error("usage: {0}")]
    Usage(&'static str),
}

/// The help text, one command per line.
pub const HELP: &[&str] = &[
    "/nick NAME          change your nickname",
    "/join ROOM          join a room (created if new) and talk there",
    "/part [ROOM]        leave a room",
    "/msg NICK TEXT      a private message",
    "/me TEXT            an action",
    "/who [ROOM]         who is in a room",
    "/rooms              every room",
    "/topic [#ROOM] TEXT set a topic (/topic alone shows it)",
    "/quit [REASON]      leave the chat",
    "//text              a line that starts with /",
];

impl Command {
    /// Parses one line (without its line ending).
    pub fn parse(line: &str) -> Result<Command, CommandError> {
        let Some(rest) = line.strip_prefix('/') else {
            return Ok(Command::Say(line.to_string()));
        };
        if rest.starts_with('/') {
            return Ok(Command::Say(rest.to_string()));
        }
        let (name, arg) = match rest.split_once(char::is_whitespace) {
            Some((n, a)) => (n, a.trim()),
            None => (rest, ""),
        };
        let arg_opt = (!arg.is_empty()).then(|| arg.to_string());
        let word = |usage| {
            let w = arg
                .split_whitespace()
                .next()
                .ok_or(CommandError::Usage(usage))?;
            Ok::<String, CommandError>(w.to_string())
        };
        Ok(match name.to_ascii_lowercase().as_str() {
            "me" => Command::Me(arg_opt.ok_or(CommandError::Usage("/me TEXT"))?),
            "nick" => Command::Nick(word("/nick NAME")?),
            "join" | "j" => Command::Join(word("/join ROOM")?),
            "part" | "leave" => Command::Part(arg_opt.map(|a| first_word(&a))),
            "msg" | "query" | "tell" => {
                let (to, text) = arg
                    .split_once(char::is_whitespace)
                    .ok_or(CommandError::Usage("/msg NICK TEXT"))?;
                let text = text.trim();
                if text.is_empty() {
                    return Err(CommandError::Usage("/msg NICK TEXT"));
                }
                Command::Msg(to.to_string(), text.to_string())
            }
            "who" | "names" => Command::Who(arg_opt.map(|a| first_word(&a))),
            "rooms" | "list" => Command::Rooms,
            "topic" => {
                if arg.starts_with('#') {
                    let (room, text) = match arg.split_once(char::is_whitespace) {
                        Some((r, t)) => (r, Some(t.trim().to_string())),
                        None => (arg, None),
                    };
                    Command::Topic(Some(room.to_string()), text.filter(|t| !t.is_empty()))
                } else {
                    Command::Topic(None, arg_opt)
                }
            }
            "quit" | "exit" | "bye" => Command::Quit(arg_opt),
            "help" | "?" => Command::Help,
            other => return Err(CommandError::Unknown(other.to_string())),
        })
    }
}

fn first_word(s: &str) -> String {
    s.split_whitespace().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse() {
        use Command::*;
        let ok = |l: &str| Command::parse(l).unwrap();
        assert_eq!(ok("hello there"), Say("hello there".into()));
        assert_eq!(
            ok("//etc/passwd is a path"),
            Say("/etc/passwd is a path".into())
        );
        assert_eq!(ok("/me waves"), Me("waves".into()));
        assert_eq!(ok("/NICK  bob "), Nick("bob".into()));
        assert_eq!(ok("/join ops"), Join("ops".into()));
        assert_eq!(ok("/part"), Part(None));
        assert_eq!(ok("/part ops"), Part(Some("ops".into())));
        assert_eq!(
            ok("/msg bob hi  there"),
            Msg("bob".into(), "hi  there".into())
        );
        assert_eq!(ok("/who"), Who(None));
        assert_eq!(ok("/rooms"), Rooms);
        assert_eq!(
            ok("/topic deploys today"),
            Topic(None, Some("deploys today".into()))
        );
        assert_eq!(
            ok("/topic #ops deploys"),
            Topic(Some("#ops".into()), Some("deploys".into()))
        );
        assert_eq!(ok("/topic"), Topic(None, None));
        assert_eq!(ok("/quit bye all"), Quit(Some("bye all".into())));
        assert_eq!(ok("/help"), Help);
        assert!(matches!(
            Command::parse("/frob"),
            Err(CommandError::Unknown(_))
        ));
        assert!(matches!(
            Command::parse("/msg bob"),
            Err(CommandError::Usage(_))
        ));
        assert!(matches!(
            Command::parse("/nick"),
            Err(CommandError::Usage(_))
        ));
        assert!(matches!(
            Command::parse("/join"),
            Err(CommandError::Usage(_))
        ));
    }
}
