//! Logged-in browser sessions: the cookie's id, who it stands for, until
//! when. Kept in memory; where several servers share one storage, also as
//! records in it (`sessions/…`, named by a digest of the id, so that the
//! records cannot be used as cookies), so that a login made through one
//! server holds on the others, and a logout through any ends it on all
//! within [`RECHECK`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::access::{self, Policy};
use crate::files::digest::Algo;
use crate::files::storage::Shared;

/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept in memory (oldest dropped first).
const MAX_SESSIONS: usize = 10_000;
/// How long a session known here is taken without asking the shared
/// storage whether it still holds.
const RECHECK: Duration = Duration::from_secs(5);

/// A session as the shared storage keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// `admin`, or `user`.
    kind: String,
    /// The account's name, for `user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// Seconds since the epoch when it ends.
    until: u64,
}

#[derive(Debug, Clone, Copy)]
struct Known {
    who: access::Who,
    /// When it ends.
    until: u64,
    /// When the shared storage last said it holds (or it was made).
    checked: Instant,
}

/// The sessions this server knows.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Known>>,
    /// Ids the shared storage lately had no session for, so that a client
    /// sending made-up cookies does not send the storage a request each.
    misses: Mutex<HashMap<String, Instant>>,
}

/// Most misses remembered; past this they are forgotten together.
const MAX_MISSES: usize = 4096;
/// How long a miss is remembered.
const MISS_TTL: Duration = Duration::from_secs(5);

/// Whether `id` has the shape of an id this server makes (64 hex digits).
fn well_formed(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn record_name(id: &str) -> String {
    format!("sessions/{}", &Algo::Sha256.hex_of(id.as_bytes())[..40])
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Known>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, id: &str, known: Known) {
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            let t = now();
            map.retain(|_, k| k.until > t);
            if map.len() >= MAX_SESSIONS {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, k)| k.until)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(id.to_string(), known);
    }

    /// A new session id, for `who` (kept in `shared` too, when given).
    pub fn create(
        &self,
        who: access::Who,
        shared: Option<&dyn Shared>,
        policy: &Policy,
    ) -> std::io::Result<String> {
        let id = format!("{}{}", crate::ids::random_hex()?, crate::ids::random_hex()?);
        let until = now() + SESSION_TTL.as_secs();
        if let Some(shared) = shared {
            let record = match who {
                access::Who::User(_) => Record {
                    kind: "user".into(),
                    name: Some(policy.name_of(who).to_string()),
                    until,
                },
                _ => Record {
                    kind: "admin".into(),
                    name: None,
                    until,
                },
            };
            let body = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
            shared
                .put(&record_name(&id), &body, false)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        self.remember(
            &id,
            Known {
                who,
                until,
                checked: Instant::now(),
            },
        );
        Ok(id)
    }

    /// Who the live session `id` is.
    pub fn who(
        &self,
        id: &str,
        shared: Option<&dyn Shared>,
        policy: &Policy,
    ) -> Option<access::Who> {
        let t = now();
        let known = self
            .lock()
            .iter()
            .find(|(k, _)| bool::from(subtle::ConstantTimeEq::ct_eq(k.as_bytes(), id.as_bytes())))
            .map(|(_, v)| *v)
            .filter(|k| k.until > t);
        let Some(shared) = shared else {
            return known.map(|k| k.who);
        };
        if let Some(k) = known.filter(|k| k.checked.elapsed() < RECHECK) {
            return Some(k.who);
        }
        if !well_formed(id) {
            return None;
        }
        {
            let mut misses = self.misses.lock().unwrap_or_else(|p| p.into_inner());
            if misses.get(id).is_some_and(|at| at.elapsed() < MISS_TTL) {
                return None;
            }
            if misses.len() >= MAX_MISSES {
                misses.clear();
            }
        }
        let record = match shared.get(&record_name(id)) {
            Ok(Some(bytes)) => serde_json::from_slice::<Record>(&bytes).ok(),
            Ok(None) => None,
            // The storage away logs nobody out who was in.
            Err(_) => return known.map(|k| k.who),
        };
        let Some(record) = record.filter(|r| r.until > t) else {
            self.lock().remove(id);
            self.misses
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.to_string(), Instant::now());
            return None;
        };
        let who = match (record.kind.as_str(), &record.name) {
            ("admin", _) => access::Who::TokenHolder,
            ("user", Some(name)) => {
                let i = policy.accounts.iter().position(|a| &a.name == name)?;
                access::Who::User(u32::try_from(i).ok()?)
            }
            _ => return None,
        };
        self.remember(
            id,
            Known {
                who,
                until: record.until,
                checked: Instant::now(),
            },
        );
        Some(who)
    }

    /// Ends `id` (everywhere, with `shared`: an error when the shared
    /// storage could not be told, for the session would hold there).
    pub fn remove(
        &self,
        id: &str,
        shared: Option<&dyn Shared>,
    ) -> Result<(), crate::files::FilesError> {
        self.lock().remove(id);
        match shared {
            Some(shared) if well_formed(id) => shared.remove(&record_name(id)),
            _ => Ok(()),
        }
    }
}
