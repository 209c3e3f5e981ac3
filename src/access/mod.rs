//! The one access decision: may this client do this to this path?
//!
//! Every door asks [`Policy::check`] and renders a [`Denied`] in its own
//! terms (a native error code, an HTTP 401 or 403, a classic error reply,
//! a line of text). No door decides for itself. Today a client is
//! anonymous or holds the server's token; the path is passed on every
//! check so that per-path rights can be added here without a door changing.

use crate::files::name::RelPath;

/// What a client may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rights {
    /// List, stat, download.
    pub read: bool,
    /// Create files and folders; with `delete`, replace and move.
    pub upload: bool,
    /// Remove; with `upload`, replace and move.
    pub delete: bool,
    /// Run commands.
    pub exec: bool,
    /// Use the chat.
    pub chat: bool,
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Proved nothing.
    Anonymous,
    /// Presented the server's token (or the server has none).
    TokenHolder,
}

/// What a client wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// List, stat or download.
    Read,
    /// Store a new file or make a folder.
    Create,
    /// Store a file over an existing one.
    Replace,
    /// Remove a file or folder.
    Delete,
    /// Move or rename.
    Move,
    /// Run a command.
    Exec,
    /// Use the chat.
    Chat,
}

impl Action {
    /// The action in a sentence: "this server does not allow {words}".
    pub fn words(self) -> &'static str {
        match self {
            Action::Read => "reading",
            Action::Create => "uploading",
            Action::Replace => "overwriting",
            Action::Delete => "deleting",
            Action::Move => "moving",
            Action::Exec => "running commands",
            Action::Chat => "chat",
        }
    }

    /// How the server's operator grants it.
    pub fn flag(self) -> &'static str {
        match self {
            Action::Read => "(read is on unless --private)",
            Action::Create => "--allow-upload",
            Action::Replace | Action::Move => "--allow-upload and --allow-delete",
            Action::Delete => "--allow-delete",
            Action::Exec => "--allow-exec",
            Action::Chat => "(chat is on unless --no-chat)",
        }
    }

    fn allowed_by(self, r: &Rights) -> bool {
        match self {
            Action::Read => r.read,
            Action::Create => r.upload,
            Action::Replace | Action::Move => r.upload && r.delete,
            Action::Delete => r.delete,
            Action::Exec => r.exec,
            Action::Chat => r.chat,
        }
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The token would allow it.
    #[error("{} needs the token", .0.words())]
    NeedsToken(Action),
    /// Nobody may, on this server.
    #[error("this server does not allow {} (the server can grant it with {})", .0.words(), .0.flag())]
    Forbidden(Action),
}

impl Denied {
    /// What was refused.
    pub fn action(self) -> Action {
        match self {
            Denied::NeedsToken(a) | Denied::Forbidden(a) => a,
        }
    }
}

/// The server's rules: what anonymous clients and token holders may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// What a client that proved nothing may do.
    pub anonymous: Rights,
    /// What a token holder may do.
    pub holder: Rights,
    /// Whether there is a token to present at all.
    pub token: bool,
}

impl Policy {
    /// Who a client is before it proves anything: without a token on the
    /// server, everyone holds it.
    pub fn newcomer(&self) -> Who {
        if self.token {
            Who::Anonymous
        } else {
            Who::TokenHolder
        }
    }

    /// What `who` may do anywhere (what hellos and the page announce).
    pub fn rights(&self, who: Who) -> Rights {
        match who {
            Who::Anonymous if self.token => self.anonymous,
            _ => self.holder,
        }
    }

    /// May `who` do `action` to `path`?
    pub fn check(&self, who: Who, action: Action, path: &RelPath) -> Result<(), Denied> {
        let _ = path; // every path is alike until per-path rights exist
        if action.allowed_by(&self.rights(who)) {
            return Ok(());
        }
        if who == Who::Anonymous && self.token && action.allowed_by(&self.holder) {
            return Err(Denied::NeedsToken(action));
        }
        Err(Denied::Forbidden(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(token: bool) -> Policy {
        Policy {
            anonymous: Rights {
                read: true,
                ..Rights::default()
            },
            holder: Rights {
                read: true,
                upload: true,
                delete: false,
                exec: true,
                chat: true,
            },
            token,
        }
    }

    #[test]
    fn each_action_needs_its_rights() {
        let p = policy(true);
        let root = RelPath::root();
        let f = RelPath::parse("a/b.txt").unwrap();
        assert_eq!(p.check(Who::Anonymous, Action::Read, &f), Ok(()));
        assert_eq!(
            p.check(Who::Anonymous, Action::Create, &f),
            Err(Denied::NeedsToken(Action::Create))
        );
        assert_eq!(p.check(Who::TokenHolder, Action::Create, &f), Ok(()));
        // Replacing and moving need delete as well, which nobody has here.
        for a in [Action::Replace, Action::Move, Action::Delete] {
            assert_eq!(p.check(Who::TokenHolder, a, &f), Err(Denied::Forbidden(a)));
            assert_eq!(p.check(Who::Anonymous, a, &f), Err(Denied::Forbidden(a)));
        }
        assert_eq!(p.check(Who::TokenHolder, Action::Exec, &root), Ok(()));
        assert_eq!(
            p.check(Who::Anonymous, Action::Chat, &root),
            Err(Denied::NeedsToken(Action::Chat))
        );
    }

    #[test]
    fn without_a_token_everyone_holds_it() {
        let p = policy(false);
        let f = RelPath::parse("x").unwrap();
        assert_eq!(p.newcomer(), Who::TokenHolder);
        assert_eq!(p.rights(Who::Anonymous), p.holder);
        assert_eq!(p.check(Who::Anonymous, Action::Create, &f), Ok(()));
        assert_eq!(
            p.check(Who::Anonymous, Action::Delete, &f),
            Err(Denied::Forbidden(Action::Delete))
        );
        assert!(policy(true).newcomer() == Who::Anonymous);
    }

    #[test]
    fn refusals_say_what_would_help() {
        let t = Denied::NeedsToken(Action::Create).to_string();
        assert_eq!(t, "uploading needs the token");
        let f = Denied::Forbidden(Action::Delete).to_string();
        assert!(
            f.contains("does not allow deleting") && f.contains("--allow-delete"),
            "{f}"
        );
    }
}
