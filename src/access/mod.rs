//! The one access decision: may this client do this to this path?
//!
//! Every door asks [`Policy::check`] and renders a [`Denied`] in its own
//! terms (a native error code, an HTTP 401 or 403, a classic error reply,
//! a line of text). No door decides for itself. A client is anonymous,
//! holds the server's token (one administrator), or has logged in to an
//! account whose rights are per path (see [`accounts`]).

pub mod accounts;
pub mod links;
pub mod logins;

use std::sync::Arc;

use crate::files::name::RelPath;
pub use accounts::{Account, Grant, Grants, Level};

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
    /// Presented the server's token (or the server has neither a token nor
    /// accounts): the administrator.
    TokenHolder,
    /// Logged in to the account at this index of [`Policy::accounts`].
    User(u32),
    /// Holds the share link admitted under this number (see
    /// [`links::Links::admit`]).
    Link(u64),
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

    /// The level a path right needs for it (`None` for exec and chat,
    /// which are not rights over paths).
    fn level(self) -> Option<Level> {
        match self {
            Action::Read => Some(Level::Read),
            Action::Create => Some(Level::Upload),
            Action::Replace => Some(Level::Write),
            Action::Delete | Action::Move => Some(Level::Delete),
            Action::Exec | Action::Chat => None,
        }
    }

    /// Whether it is done to a path (not exec or chat).
    pub fn on_paths(self) -> bool {
        self.level().is_some()
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
    /// Logging in (to an account, or with the token) might allow it.
    #[error("{} here needs logging in", .0.words())]
    NeedsLogin(Action),
    /// The account logged in may not, here.
    #[error("{} here is not among your account's rights", .0.words())]
    NotGranted(Action),
    /// Nobody may, on this server.
    #[error("this server does not allow {} (the server can grant it with {})", .0.words(), .0.flag())]
    Forbidden(Action),
}

impl Denied {
    /// What was refused.
    pub fn action(self) -> Action {
        match self {
            Denied::NeedsToken(a)
            | Denied::NeedsLogin(a)
            | Denied::NotGranted(a)
            | Denied::Forbidden(a) => a,
        }
    }

    /// Whether proving who one is might help (a 401, not a 403).
    pub fn asks_login(self) -> bool {
        matches!(self, Denied::NeedsToken(_) | Denied::NeedsLogin(_))
    }
}

/// The server's rules: what anonymous clients, the token holder, each
/// account and each share link may do.
#[derive(Debug, Clone)]
pub struct Policy {
    /// What a client that proved nothing may do (everywhere, unless
    /// `anonymous_paths` says where).
    pub anonymous: Rights,
    /// What the token holder may do: the server's switches, the ceiling
    /// for everyone.
    pub holder: Rights,
    /// Whether there is a token to present at all.
    pub token: bool,
    /// Where anonymous clients may do what, when the config file says so
    /// (`[anonymous] rights`), in place of `anonymous`'s file rights;
    /// still within the switches.
    pub anonymous_paths: Option<Grants>,
    /// The accounts, in the order of the config file.
    pub accounts: Arc<[Account]>,
    /// The share links.
    pub links: Arc<links::Links>,
}

impl Policy {
    /// A server of no accounts.
    pub fn simple(anonymous: Rights, holder: Rights, token: bool) -> Policy {
        Policy {
            anonymous,
            holder,
            token,
            anonymous_paths: None,
            accounts: Arc::from(Vec::new()),
            links: Arc::new(links::Links::new(None)),
        }
    }

    /// Whether anyone must prove who they are to get more than anonymous
    /// rights (a token or accounts exist).
    pub fn gated(&self) -> bool {
        self.token || !self.accounts.is_empty()
    }

    /// Whether rights differ from folder to folder (a right below the
    /// root exists), so that where a link leads matters.
    pub fn per_path(&self) -> bool {
        let below = |g: &Grants| g.list().iter().any(|g| !g.prefix.is_root());
        self.accounts.iter().any(|a| below(&a.grants))
            || self.anonymous_paths.as_ref().is_some_and(below)
    }

    /// Whether where a path really leads matters to `who`'s rights: rights
    /// differ from folder to folder, or `who` holds a share link (a right
    /// on one path, whatever the others are). Never for the token holder,
    /// who may do anything anywhere.
    pub fn paths_matter(&self, who: Who) -> bool {
        who != Who::TokenHolder && (self.per_path() || matches!(who, Who::Link(_)))
    }

    /// Who a client is before it proves anything: on a server with neither
    /// token nor accounts, everyone holds the token.
    pub fn newcomer(&self) -> Who {
        if self.gated() {
            Who::Anonymous
        } else {
            Who::TokenHolder
        }
    }

    /// The account `name`, with its index.
    pub fn account(&self, name: &str) -> Option<(u32, &Account)> {
        self.accounts
            .iter()
            .enumerate()
            .find(|(_, a)| a.name == name)
            .map(|(i, a)| (i as u32, a))
    }

    /// The name `who` goes by, for logs: `-` for anonymous, `admin` for the
    /// token holder, else the account's.
    pub fn name_of(&self, who: Who) -> &str {
        match who {
            Who::Anonymous => "-",
            Who::TokenHolder => "admin",
            Who::User(i) => self
                .accounts
                .get(i as usize)
                .map_or("?", |a| a.name.as_str()),
            Who::Link(_) => "link",
        }
    }

    /// The account `who` is logged in as, if any.
    pub fn account_name(&self, who: Who) -> Option<&str> {
        match who {
            Who::User(i) => self.accounts.get(i as usize).map(|a| a.name.as_str()),
            _ => None,
        }
    }

    /// Who a link's maker is now: `admin` is the token holder; an account
    /// that is gone, or whose password changed since, makes nobody.
    fn maker(&self, by: &str, pw: Option<&str>) -> Option<Who> {
        if by == "admin" {
            return Some(Who::TokenHolder);
        }
        let (i, a) = self.account(by)?;
        let same = pw.is_none_or(|pw| logins::fingerprint(&a.hash) == pw);
        same.then_some(Who::User(i))
    }

    /// The password fingerprint a link made by `who` carries.
    pub fn maker_pw(&self, who: Who) -> Option<String> {
        match who {
            Who::User(i) => self
                .accounts
                .get(i as usize)
                .map(|a| logins::fingerprint(&a.hash)),
            _ => None,
        }
    }

    /// What `who` may do somewhere (what hellos and the page announce;
    /// each action is still checked against its path).
    pub fn rights(&self, who: Who) -> Rights {
        let within = |r: Rights| Rights {
            read: r.read && self.holder.read,
            upload: r.upload && self.holder.upload,
            delete: r.delete && self.holder.delete,
            exec: r.exec && self.holder.exec,
            chat: r.chat && self.holder.chat,
        };
        match who {
            Who::TokenHolder => self.holder,
            Who::Anonymous if !self.gated() => self.holder,
            Who::Anonymous => match &self.anonymous_paths {
                Some(g) => within(Rights {
                    exec: false,
                    chat: self.anonymous.chat,
                    ..level_rights(g.highest())
                }),
                None => within(self.anonymous),
            },
            Who::User(i) => match self.accounts.get(i as usize) {
                Some(a) => within(Rights {
                    exec: a.exec,
                    chat: a.chat,
                    ..level_rights(a.grants.highest())
                }),
                None => Rights::default(),
            },
            // A link adds to what anonymous clients may do; it takes
            // nothing away (a visitor with a drop link still reads what is
            // public, and chats).
            Who::Link(n) => {
                let anon = self.rights(Who::Anonymous);
                match self.links.active(n) {
                    Some(l) => Rights {
                        read: anon.read || (!l.upload && self.holder.read),
                        upload: anon.upload || (l.upload && self.holder.upload),
                        ..anon
                    },
                    None => anon,
                }
            }
        }
    }

    /// Whether `who` (not the token holder) may do `action` at `path`,
    /// the server's switches aside.
    fn granted(&self, who: Who, action: Action, path: &RelPath) -> bool {
        let by_grants = |g: &Grants, exec: bool, chat: bool| match action.level() {
            Some(need) => g.level(path) >= need,
            None if action == Action::Exec => exec,
            None => chat,
        };
        match who {
            Who::TokenHolder => true,
            Who::Anonymous if !self.gated() => true,
            // `[anonymous] rights` say where, in place of the flags'
            // read-everywhere.
            Who::Anonymous => match &self.anonymous_paths {
                Some(g) => by_grants(g, false, self.anonymous.chat),
                None => action.allowed_by(&self.anonymous),
            },
            Who::User(i) => self
                .accounts
                .get(i as usize)
                .is_some_and(|a| by_grants(&a.grants, a.exec, a.chat)),
            // A link: what anonymous clients may, and its one action below
            // its path, no more than its maker may do there now.
            Who::Link(n) => {
                self.granted(Who::Anonymous, action, path)
                    || self.links.active(n).is_some_and(|l| {
                        let action_ok = if l.upload {
                            action == Action::Create
                        } else {
                            action == Action::Read
                        };
                        action_ok
                            && path.parts().starts_with(l.prefix.parts())
                            && self
                                .maker(&l.by, l.pw.as_deref())
                                .is_some_and(|m| self.granted(m, action, path))
                    })
            }
        }
    }

    /// May `who` do `action` to all that `path` holds, as well as to it:
    /// asked at every folder below it where rights change (a folder
    /// removed whole takes what is below it, whatever its rights there).
    pub fn check_all(&self, who: Who, action: Action, path: &RelPath) -> Result<(), Denied> {
        self.check(who, action, path)?;
        if who == Who::TokenHolder {
            return Ok(());
        }
        let below = |g: &Grant| {
            g.prefix.parts().len() > path.parts().len()
                && g.prefix.parts().starts_with(path.parts())
        };
        let grants = self.accounts.iter().map(|a| &a.grants);
        for g in grants.chain(&self.anonymous_paths) {
            for g in g.list().iter().filter(|g| below(g)) {
                self.check(who, action, &g.prefix)?;
            }
        }
        Ok(())
    }

    /// May `who` do `action` somewhere below `path`, by a right given
    /// there (where what `path` itself allows does not reach)?
    pub fn may_below(&self, who: Who, action: Action, path: &RelPath) -> bool {
        let below = |g: &&Grant| {
            g.prefix.parts().len() > path.parts().len()
                && g.prefix.parts().starts_with(path.parts())
        };
        let grants = self.accounts.iter().map(|a| &a.grants);
        grants
            .chain(&self.anonymous_paths)
            .flat_map(|g| g.list().iter().filter(below))
            .any(|g| self.check(who, action, &g.prefix).is_ok())
    }

    /// May `who` do `action` to `path`?
    pub fn check(&self, who: Who, action: Action, path: &RelPath) -> Result<(), Denied> {
        if !action.allowed_by(&self.holder) {
            return Err(Denied::Forbidden(action));
        }
        if self.granted(who, action, path) {
            return Ok(());
        }
        match who {
            Who::Anonymous if self.token && self.accounts.is_empty() => {
                Err(Denied::NeedsToken(action))
            }
            Who::Anonymous | Who::Link(_) => Err(Denied::NeedsLogin(action)),
            _ => Err(Denied::NotGranted(action)),
        }
    }
}

/// The file rights a level gives.
fn level_rights(l: Level) -> Rights {
    Rights {
        read: l >= Level::Read,
        upload: l >= Level::Upload,
        delete: l >= Level::Delete,
        exec: false,
        chat: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(token: bool) -> Policy {
        Policy::simple(
            Rights {
                read: true,
                ..Rights::default()
            },
            Rights {
                read: true,
                upload: true,
                delete: false,
                exec: true,
                chat: true,
            },
            token,
        )
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
    fn accounts_get_their_rights_per_path_within_the_switches() {
        let mut p = policy(false);
        let grants =
            |l: &[&str]| Grants::new(l.iter().map(|g| g.parse().unwrap()).collect()).unwrap();
        p.accounts = Arc::from(vec![Account {
            name: "alice".into(),
            hash: String::new(),
            grants: grants(&["/:read", "/alice:delete"]),
            exec: false,
            chat: true,
        }]);
        let alice = Who::User(0);
        let mine = RelPath::parse("alice/x").unwrap();
        let other = RelPath::parse("bob/x").unwrap();
        assert!(p.gated() && p.per_path());
        assert_eq!(p.newcomer(), Who::Anonymous);
        assert_eq!(p.check(alice, Action::Create, &mine), Ok(()));
        assert_eq!(
            p.check(alice, Action::Create, &other),
            Err(Denied::NotGranted(Action::Create))
        );
        // The switches stay the ceiling: no delete on this server.
        assert_eq!(
            p.check(alice, Action::Delete, &mine),
            Err(Denied::Forbidden(Action::Delete))
        );
        assert_eq!(
            p.check(alice, Action::Exec, &RelPath::root()),
            Err(Denied::NotGranted(Action::Exec))
        );
        // Anonymous: read, and logging in would help with the rest.
        assert_eq!(p.check(Who::Anonymous, Action::Read, &other), Ok(()));
        assert_eq!(
            p.check(Who::Anonymous, Action::Create, &mine),
            Err(Denied::NeedsLogin(Action::Create))
        );
        assert!(p.rights(alice).upload && !p.rights(alice).delete && p.rights(alice).chat);
        assert_eq!(p.name_of(alice), "alice");
        // An index no account has gets nothing.
        assert!(p.check(Who::User(7), Action::Read, &mine).is_err());
    }

    #[test]
    fn a_link_adds_to_what_anonymous_clients_may() {
        let mut p = policy(true);
        p.links = Arc::new(links::Links::new(None));
        let drop = RelPath::parse("drop").unwrap();
        let (_, token) = p.links.make("admin", None, &drop, true, 3600).unwrap();
        let link = Who::Link(p.links.admit(&token).unwrap());
        let inside = RelPath::parse("drop/new.txt").unwrap();
        let outside = RelPath::parse("pub/new.txt").unwrap();
        assert_eq!(p.check(link, Action::Create, &inside), Ok(()));
        assert_eq!(
            p.check(link, Action::Create, &outside),
            Err(Denied::NeedsLogin(Action::Create))
        );
        // Still reads what anyone may, and chats if anyone may.
        assert_eq!(p.check(link, Action::Read, &outside), Ok(()));
        assert!(p.rights(link).read && p.rights(link).upload);
        assert_eq!(p.rights(link).chat, p.rights(Who::Anonymous).chat);
        assert!(!p.rights(link).delete);
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
