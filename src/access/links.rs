//! Share links: read access to one path, or upload-only access to one
//! folder, until a time, for whoever holds the link.
//!
//! A link is its own proof: what it grants (the path, upload or read, the
//! expiry and who made it) signed with the server's share key (HMAC-SHA256,
//! `share.key` in the state folder, made on first use). The server keeps
//! nothing per link for it to work; it keeps the links it has revoked, and
//! a list of those it made for `ferry share --list`. A link grants no more
//! than its maker may do when it is used, so a maker who loses a right
//! takes it from their links too. Changing the key revokes every link.
//!
//! Servers of one shared storage (a bucket) sign with one key, and keep
//! the links made and revoked as two records of the storage's shared
//! records, so that a link made through one is listed, and one revoked
//! through any is refused, by all (within [`RECHECK`]).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::files::FilesError;
use crate::files::name::RelPath;
use crate::files::storage::{Storage, change_shared};

/// Links looked up and kept at once (the rest are checked again).
const MAX_ACTIVE: usize = 4096;
/// Longest a link may last.
pub const MAX_LIFE: u64 = 366 * 86_400;
/// How old the revocations read from a shared storage may be.
pub const RECHECK: Duration = Duration::from_secs(5);
/// Most links running at once on a shared storage (each is listed
/// there, so that any server can revoke it).
const MAX_MADE: usize = 10_000;
/// The shared records of links made, and of links revoked.
const MADE: &str = "share/made";
const REVOKED: &str = "share/revoked";

/// What a link grants, as signed into it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    /// The link's id (hex), for revoking it.
    pub id: String,
    /// Who made it: an account's name, or `admin` for the token holder.
    pub by: String,
    /// The path (a file or a folder and all below it).
    pub path: String,
    /// Upload-only into the folder, instead of read.
    pub upload: bool,
    /// When it ends, in seconds since the epoch.
    pub until: u64,
    /// The maker's password, fingerprinted, when an account made it: a
    /// new password ends the account's links, as it ends its logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pw: Option<String>,
}

/// A link in use: what it grants, and who made it.
#[derive(Debug, Clone)]
pub struct Active {
    /// The path it covers.
    pub prefix: RelPath,
    /// Upload-only.
    pub upload: bool,
    /// When it ends.
    pub until: u64,
    /// Its maker's name (resolved again on every use).
    pub by: String,
    /// Its maker's password fingerprint, when an account made it.
    pub pw: Option<String>,
    /// Its id.
    pub id: String,
}

/// Why a link is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not signed by this server, or malformed.
    #[error("this share link is not valid here")]
    Forged,
    /// Past its time.
    #[error("this share link has expired")]
    Expired,
    /// Revoked by its maker or an administrator.
    #[error("this share link was revoked")]
    Revoked,
    /// Whether it was revoked cannot be told now (the shared storage is
    /// unreachable).
    #[error("this share link cannot be checked now; try again")]
    Unchecked,
}

/// The share links of one server.
#[derive(Debug)]
pub struct Links {
    state_dir: Option<PathBuf>,
    key: OnceLock<Vec<u8>>,
    revoked: Mutex<Option<HashSet<String>>>,
    active: Mutex<HashMap<u64, Active>>,
    /// The storage whose shared records every server uses, if any.
    shared: OnceLock<Arc<dyn Storage>>,
    /// The revocations last read from there, and when.
    seen: Mutex<Option<(Instant, HashSet<String>)>>,
}

/// A revoked link in the shared record: its id, and when it would have
/// run out (after which it need not be kept).
type Gone = (String, u64);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Links {
    /// The links of a server whose state folder is `state_dir` (none: a
    /// key of this run alone, nothing kept).
    pub fn new(state_dir: Option<PathBuf>) -> Links {
        Links {
            state_dir,
            key: OnceLock::new(),
            revoked: Mutex::new(None),
            active: Mutex::new(HashMap::new()),
            shared: OnceLock::new(),
            seen: Mutex::new(None),
        }
    }

    /// Keeps the links made and revoked in `store`'s shared records, with
    /// every other server of it.
    pub fn use_shared(&self, store: Arc<dyn Storage>) {
        if store.shared().is_some() {
            let _ = self.shared.set(store);
        }
    }

    /// Runs `f` on the list in the shared record `name` (JSON), writing
    /// what it changed; `None` when no storage is shared.
    fn change_list<E, T>(
        &self,
        name: &str,
        mut f: impl FnMut(&mut Vec<E>) -> T,
    ) -> Option<Result<T, FilesError>>
    where
        E: Serialize + serde::de::DeserializeOwned,
    {
        let shared = self.shared.get()?.shared()?;
        let changed = change_shared(shared, name, |before| {
            // A record that does not parse is left for an administrator
            // to see, never overwritten with what a reader made of it.
            let mut list: Vec<E> = match before.map(serde_json::from_slice) {
                None => Vec::new(),
                Some(Ok(list)) => list,
                Some(Err(_)) => return (None, None),
            };
            let out = f(&mut list);
            // Nothing is written where there is nothing yet to keep.
            let write = (before.is_some() || !list.is_empty())
                .then(|| serde_json::to_vec(&list).ok())
                .flatten();
            (write, Some(out))
        });
        Some(changed.and_then(|out| {
            out.ok_or_else(|| {
                FilesError::Unavailable(format!(
                    "the shared record {name} does not parse; remove it to start it over"
                ))
            })
        }))
    }

    /// The revoked ids in the shared record, read at most [`RECHECK`] ago;
    /// `None` when no storage is shared.
    fn shared_revoked(&self) -> Option<Result<HashSet<String>, Refused>> {
        self.shared.get()?;
        if let Ok(seen) = self.seen.lock()
            && let Some((at, set)) = &*seen
            && at.elapsed() < RECHECK
        {
            return Some(Ok(set.clone()));
        }
        let read = self.change_list(REVOKED, |list: &mut Vec<Gone>| {
            list.iter()
                .map(|(id, _)| id.clone())
                .collect::<HashSet<_>>()
        })?;
        Some(match read {
            Ok(set) => {
                if let Ok(mut seen) = self.seen.lock() {
                    *seen = Some((Instant::now(), set.clone()));
                }
                Ok(set)
            }
            Err(e) => {
                tracing::warn!("the revoked share links cannot be read: {e}");
                Err(Refused::Unchecked)
            }
        })
    }

    /// Signs with `key` (the one every server of a shared storage uses)
    /// instead of one of this server's own; only before the first link.
    pub fn use_key(&self, key: Vec<u8>) {
        let _ = self.key.set(key);
    }

    fn key(&self) -> &[u8] {
        self.key.get_or_init(|| match &self.state_dir {
            Some(dir) => crate::secret::state_key(dir, "share.key", "share links"),
            None => crate::ids::random_bytes::<32>()
                .map(|k| k.to_vec())
                .unwrap_or_default(),
        })
    }

    fn file(&self, name: &str) -> Option<PathBuf> {
        self.state_dir.as_ref().map(|d| d.join(name))
    }

    /// Signs `grant` into a link's token.
    pub fn seal(&self, grant: &Grant) -> String {
        let body = serde_json::to_vec(grant).unwrap_or_default();
        crate::secret::seal(self.key(), &body)
    }

    /// What `token` grants, when this server signed it, it has not run
    /// out and it was not revoked.
    pub fn open(&self, token: &str) -> Result<Grant, Refused> {
        let grant: Grant = crate::secret::unseal(self.key(), token, 4096)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Refused::Forged)?;
        if grant.until <= now() {
            return Err(Refused::Expired);
        }
        if self.is_revoked(&grant.id)? {
            return Err(Refused::Revoked);
        }
        Ok(grant)
    }

    /// Makes a link to `path` by `by` (whose password has the fingerprint
    /// `pw`, for an account), for `life` seconds (at most a year).
    pub fn make(
        &self,
        by: &str,
        pw: Option<String>,
        path: &RelPath,
        upload: bool,
        life: u64,
    ) -> Result<(Grant, String), FilesError> {
        let id = crate::ids::random_bytes::<8>()
            .map(|b| crate::ids::hex(&b))
            .unwrap_or_default();
        let grant = Grant {
            id,
            by: by.to_string(),
            path: path.parts().join("/"),
            upload,
            until: now().saturating_add(life.clamp(1, MAX_LIFE)),
            pw,
        };
        // Listed where every server sees it before it is given out: a link
        // nobody can list could not be revoked.
        let t = now();
        let listed = self.change_list(MADE, |made: &mut Vec<Grant>| {
            made.retain(|g| g.until > t);
            if made.len() >= MAX_MADE {
                return false;
            }
            made.push(grant.clone());
            true
        });
        match listed {
            Some(Ok(true)) | None => {}
            Some(Ok(false)) => {
                return Err(FilesError::TooLarge(format!(
                    "{MAX_MADE} share links are running; revoke some first"
                )));
            }
            Some(Err(e)) => return Err(e),
        }
        let token = self.seal(&grant);
        self.append("share-links.jsonl", &grant);
        Ok((grant, token))
    }

    /// The links made here (from the list kept for `--list`), not yet run
    /// out, with whether each was revoked.
    pub fn made(&self) -> Vec<(Grant, bool)> {
        let t = now();
        // Made here (and, before the storage was shared, only here), and
        // through every server of a shared storage.
        let mut all: Vec<Grant> = self
            .file("share-links.jsonl")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| {
                text.lines()
                    .filter_map(|l| serde_json::from_str::<Grant>(l).ok())
                    .collect()
            })
            .unwrap_or_default();
        match self.change_list(MADE, |made: &mut Vec<Grant>| made.clone()) {
            Some(Ok(made)) => all.extend(made),
            Some(Err(e)) => {
                tracing::warn!("the share links of the other servers cannot be read: {e}");
            }
            None => {}
        }
        let mut ids = HashSet::new();
        all.retain(|g| ids.insert(g.id.clone()));
        all.into_iter()
            .filter(|g| g.until > t)
            .map(|g| {
                let gone = self.is_revoked(&g.id).unwrap_or(true);
                (g, gone)
            })
            .collect()
    }

    /// Revokes the link `grant` (kept in `share-revoked.jsonl`, and in
    /// the shared record every server reads).
    pub fn revoke(&self, grant: &Grant) -> Result<(), FilesError> {
        let id = grant.id.as_str();
        if let Ok(mut r) = self.revoked.lock() {
            r.get_or_insert_with(HashSet::new).insert(id.to_string());
        }
        if let Ok(mut a) = self.active.lock() {
            a.retain(|_, l| l.id != id);
        }
        self.append("share-revoked.jsonl", &id);
        let t = now();
        let shared = self.change_list(REVOKED, |gone: &mut Vec<Gone>| {
            gone.retain(|(_, until)| *until > t);
            if !gone.iter().any(|(g, _)| g == id) {
                gone.push((id.to_string(), grant.until));
            }
        });
        if let Ok(mut seen) = self.seen.lock() {
            *seen = None;
        }
        shared.unwrap_or(Ok(()))
    }

    /// Whether the link `id` was revoked, here or through any server of
    /// the shared storage.
    fn is_revoked(&self, id: &str) -> Result<bool, Refused> {
        if self.is_revoked_here(id) {
            return Ok(true);
        }
        match self.shared_revoked() {
            Some(set) => Ok(set?.contains(id)),
            None => Ok(false),
        }
    }

    fn is_revoked_here(&self, id: &str) -> bool {
        let Ok(mut r) = self.revoked.lock() else {
            return true;
        };
        let set = r.get_or_insert_with(|| {
            self.file("share-revoked.jsonl")
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|t| {
                    t.lines()
                        .filter_map(|l| serde_json::from_str::<String>(l).ok())
                        .collect()
                })
                .unwrap_or_default()
        });
        set.contains(id)
    }

    fn append<T: Serialize>(&self, name: &str, item: &T) {
        let Some(path) = self.file(name) else {
            return;
        };
        let line = serde_json::to_string(item).unwrap_or_default();
        let written = std::fs::create_dir_all(path.parent().unwrap_or(&path)).and_then(|()| {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)?;
            writeln!(f, "{line}")
        });
        if let Err(e) = written {
            tracing::warn!("cannot keep {}: {e}", path.display());
        }
    }

    /// Takes a link in: what it grants, under a number a request can
    /// carry as its [`super::Who`].
    pub fn admit(&self, token: &str) -> Result<u64, Refused> {
        let grant = self.open(token)?;
        let prefix = RelPath::parse(&grant.path).map_err(|_| Refused::Forged)?;
        let number = u64::from_str_radix(grant.id.get(..16).unwrap_or(""), 16)
            .map_err(|_| Refused::Forged)?;
        if let Ok(mut a) = self.active.lock() {
            if a.len() >= MAX_ACTIVE {
                let t = now();
                a.retain(|_, l| l.until > t);
                if a.len() >= MAX_ACTIVE {
                    a.clear();
                }
            }
            a.insert(
                number,
                Active {
                    prefix,
                    upload: grant.upload,
                    until: grant.until,
                    by: grant.by,
                    pw: grant.pw,
                    id: grant.id,
                },
            );
        }
        Ok(number)
    }

    /// The link admitted under `number`, while it lasts.
    pub fn active(&self, number: u64) -> Option<Active> {
        let a = self.active.lock().ok()?;
        a.get(&number).filter(|l| l.until > now()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn links_are_signed_run_out_and_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let links = Links::new(Some(dir.path().to_path_buf()));
        let path = RelPath::parse("photos/2026").unwrap();
        let (grant, token) = links.make("alice", None, &path, false, 60).unwrap();
        assert_eq!(links.open(&token), Ok(grant.clone()));
        // Tampering: another path, a longer life, another key.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (_, tag) = token.split_once('.').unwrap();
        for changed in [
            Grant {
                path: "".into(),
                ..grant.clone()
            },
            Grant {
                until: grant.until + 86_400,
                ..grant.clone()
            },
            Grant {
                upload: true,
                ..grant.clone()
            },
        ] {
            let body = b64.encode(serde_json::to_vec(&changed).unwrap());
            assert_eq!(links.open(&format!("{body}.{tag}")), Err(Refused::Forged));
        }
        let other = Links::new(None);
        assert_eq!(other.open(&token), Err(Refused::Forged));
        assert_eq!(links.open("garbage"), Err(Refused::Forged));
        assert_eq!(links.open("a.b"), Err(Refused::Forged));
        // Expired.
        let old = Grant {
            until: 1,
            ..grant.clone()
        };
        assert_eq!(links.open(&links.seal(&old)), Err(Refused::Expired));
        // Admitted, then revoked: gone at once, and after a restart.
        let n = links.admit(&token).unwrap();
        assert_eq!(links.active(n).unwrap().prefix, path);
        assert_eq!(links.made().len(), 1);
        links.revoke(&grant).unwrap();
        assert!(links.active(n).is_none());
        assert_eq!(links.open(&token), Err(Refused::Revoked));
        let again = Links::new(Some(dir.path().to_path_buf()));
        assert_eq!(again.open(&token), Err(Refused::Revoked));
        assert!(again.made()[0].1, "listed as revoked");
    }
}
