//! Accounts and per-path rights: who the server knows by name, and what
//! each of them (and anyone at all) may do below which folder.
//!
//! A right is a path prefix and a [`Level`]: `/:read`, `/drop:upload`,
//! `/alice:delete`. The longest prefix that holds a path decides for it,
//! so `/a:write` with `/a/frozen:read` leaves `/a/frozen` read-only. A path
//! no prefix holds gets nothing. The server's switches (`--allow-upload`,
//! `--allow-delete`, `--allow-exec`, chat) stay the ceiling: a right
//! grants nothing a switch keeps off.

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::files::name::RelPath;

/// How much a right allows, each level including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing: not even listed.
    None,
    /// List, stat, download.
    Read,
    /// Read, and create new files and folders (a drop box: nothing that is
    /// there can be replaced).
    Upload,
    /// Upload, and replace files that are there.
    Write,
    /// Write, and delete and move.
    Delete,
    /// Delete, and manage what others made there (share links).
    Admin,
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "none" => Level::None,
            "read" => Level::Read,
            "upload" => Level::Upload,
            "write" => Level::Write,
            "delete" => Level::Delete,
            "admin" => Level::Admin,
            other => {
                return Err(format!(
                    "unknown level {:?} (none, read, upload, write, delete or admin)",
                    crate::text::escape(other)
                ));
            }
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::None => "none",
            Level::Read => "read",
            Level::Upload => "upload",
            Level::Write => "write",
            Level::Delete => "delete",
            Level::Admin => "admin",
        })
    }
}

/// One right: a folder (and all below it) and a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The folder.
    pub prefix: RelPath,
    /// What may be done there.
    pub level: Level,
}

impl FromStr for Grant {
    type Err = String;

    /// `/path:level`, or a level alone for the whole share.
    fn from_str(s: &str) -> Result<Grant, String> {
        let (path, level) = match s.rsplit_once(':') {
            Some((p, l)) => (p, l),
            None => ("/", s),
        };
        let prefix = RelPath::parse(path).map_err(|e| e.to_string())?;
        Ok(Grant {
            prefix,
            level: level.parse()?,
        })
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.prefix, self.level)
    }
}

/// A set of rights, the most specific first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(Vec<Grant>);

impl Grants {
    /// The rights given, checked: one per folder.
    pub fn new(mut list: Vec<Grant>) -> Result<Grants, String> {
        list.sort_by(|a, b| {
            b.prefix
                .parts()
                .len()
                .cmp(&a.prefix.parts().len())
                .then_with(|| a.prefix.cmp(&b.prefix))
        });
        if let Some(w) = list.windows(2).find(|w| w[0].prefix == w[1].prefix) {
            return Err(format!("{} is given two rights", w[0].prefix));
        }
        Ok(Grants(list))
    }

    /// The whole share at `level`.
    pub fn everywhere(level: Level) -> Grants {
        Grants(vec![Grant {
            prefix: RelPath::root(),
            level,
        }])
    }

    /// The level at `path`: the longest prefix's that holds it.
    pub fn level(&self, path: &RelPath) -> Level {
        self.0
            .iter()
            .find(|g| path.parts().starts_with(g.prefix.parts()))
            .map_or(Level::None, |g| g.level)
    }

    /// The highest level anywhere (what a client's buttons may offer).
    pub fn highest(&self) -> Level {
        self.0.iter().map(|g| g.level).max().unwrap_or(Level::None)
    }

    /// Every right, the most specific first.
    pub fn list(&self) -> &[Grant] {
        &self.0
    }
}

/// An account the server knows by name.
#[derive(Debug, Clone)]
pub struct Account {
    /// The name it logs in with.
    pub name: String,
    /// Its password's argon2id hash, in the PHC string form.
    pub hash: String,
    /// Its rights over files.
    pub grants: Grants,
    /// Whether it may run commands.
    pub exec: bool,
    /// Whether it may chat (under its own name).
    pub chat: bool,
}

/// Names no account may have.
const RESERVED: [&str; 2] = ["admin", "link"];

/// The rule for account names: what a person types, nothing a log or a
/// terminal could misread, and none of the names the server gives others.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.starts_with(['.', '-']);
    // Names the server gives others: the token holder, a link's holder.
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(format!(
            "account name {name:?} is reserved (it names the token holder or a share link's holder)"
        ));
    }
    if ok {
        Ok(())
    } else {
        Err(format!(
            "account name {:?} must be 1 to 32 letters, digits, '.', '_' or '-', not starting with '.' or '-'",
            crate::text::escape(name)
        ))
    }
}

/// The argon2id hash of `password` (made by `ferry passwd`), with a fresh
/// salt, in the PHC string form the config file keeps.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = crate::ids::random_bytes::<16>().map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks that `hash` is an argon2id hash ferry can verify against.
pub fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("not a password hash ({e})"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "the hash is {}, not argon2id (make one with `ferry passwd`)",
            parsed.algorithm
        ));
    }
    Ok(())
}

/// Whether `password` matches `hash` (slow on purpose: call it from a
/// blocking thread).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The account a client logs in to: `FERRY_USER`, whose password it sends
/// where the token would go (from `FERRY_PASSWORD`); none for the token.
pub fn login_user() -> Option<String> {
    if let Some(u) = CHOSEN.get() {
        return Some(u.clone());
    }
    std::env::var("FERRY_USER").ok().filter(|u| !u.is_empty())
}

/// The account named on the command line (`ferry login --user`), over
/// `FERRY_USER`.
static CHOSEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the account this process logs in to.
pub fn set_login_user(name: &str) {
    let _ = CHOSEN.set(name.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(list: &[&str]) -> Grants {
        Grants::new(list.iter().map(|g| g.parse().unwrap()).collect()).unwrap()
    }

    #[test]
    fn the_longest_prefix_decides() {
        let g = grants(&[
            "/:read",
            "/a:write",
            "/a/frozen:read",
            "/drop:upload",
            "/hidden:none",
        ]);
        let at = |p: &str| g.level(&RelPath::parse(p).unwrap());
        assert_eq!(at("/"), Level::Read);
        assert_eq!(at("/x.txt"), Level::Read);
        assert_eq!(at("/a"), Level::Write);
        assert_eq!(at("/a/b/c.txt"), Level::Write);
        assert_eq!(at("/a/frozen/f"), Level::Read);
        assert_eq!(
            at("/ab"),
            Level::Read,
            "a prefix is whole names, not letters"
        );
        assert_eq!(at("/drop/in.txt"), Level::Upload);
        assert_eq!(at("/hidden/x"), Level::None);
        assert_eq!(g.highest(), Level::Write);
        let only = grants(&["/a:read"]);
        assert_eq!(only.level(&RelPath::root()), Level::None);
        assert_eq!(only.level(&RelPath::parse("b").unwrap()), Level::None);
    }

    #[test]
    fn rights_parse_strictly() {
        assert_eq!("read".parse::<Grant>().unwrap().to_string(), "/:read");
        assert!("/a:superuser".parse::<Grant>().is_err());
        assert!("/../x:read".parse::<Grant>().is_err());
        assert!("/a/../b:read".parse::<Grant>().is_err());
        let twice = vec!["/a:read".parse().unwrap(), "/a/:write".parse().unwrap()];
        assert!(Grants::new(twice).is_err());
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        check_hash(&h).unwrap();
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horse "));
        assert!(!verify_password("not a hash", "x"));
        assert!(check_hash("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA").is_err());
        assert_ne!(
            hash_password("same").unwrap(),
            hash_password("same").unwrap()
        );
    }

    #[test]
    fn account_names_are_plain() {
        for ok in ["alice", "bob.smith", "x_1", "A-b"] {
            check_name(ok).unwrap();
        }
        for bad in ["", ".x", "-x", "a b", "a/b", "é", "a:b", &"a".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
