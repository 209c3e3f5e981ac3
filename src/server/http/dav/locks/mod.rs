//! WebDAV locks (RFC 4918 §6). A lock lasts as long as its timeout (at
//! most [`MAX_TIMEOUT`], whatever is asked, and that when the client asks
//! for none or "Infinite"), and is gone once that passes unless
//! refreshed; the table holds at most [`MAX_LOCKS`], [`MAX_PER_PATH`] on
//! one resource and [`MAX_PER_CLIENT`] for one client.
//!
//! One table, kept where every server of the files sees it: in memory for
//! a folder on this machine's disk, or as one record of the storage's
//! shared records when several servers share a bucket. There it is read
//! for every check and written only with a condition on the version read
//! (compare and swap), so two servers locking at once never both win.
//! The rules are dav-server's lock table's (`MemLs`), over a list.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use xmltree::Element;

use record::{decode, encode};
use rules::{above, check_down, check_up, full, within};

mod record;
mod rules;

use crate::files::FilesError;
use crate::files::storage::Storage;

/// The longest a lock lasts without a refresh.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Most locks held at once.
pub(crate) const MAX_LOCKS: usize = 1000;
/// Most locks on one resource (shared locks stack).
pub(crate) const MAX_PER_PATH: usize = 8;
/// Most locks one client (one address; for IPv6, one /64) holds at once.
pub(crate) const MAX_PER_CLIENT: usize = 100;
/// Longest path (bytes) a lock is taken on: the table is read whole for
/// every check.
pub(crate) const MAX_PATH: usize = 1024;
/// The shared record that holds the table.
const RECORD: &str = "webdav/locks";
/// How old a table read for `lockdiscovery` may be (a listing asks once
/// per entry).
const DISCOVER_AGE: Duration = Duration::from_secs(1);

/// The lock table.
#[derive(Debug, Clone)]
pub(crate) struct Locks {
    keep: Arc<Keep>,
}

/// Where the table is kept.
#[derive(Debug)]
enum Keep {
    Memory(Mutex<Vec<DavLock>>),
    /// In the storage's shared records, with the last table read.
    Shared {
        store: Arc<dyn Storage>,
        seen: Mutex<Option<(Instant, Vec<DavLock>)>>,
    },
}

impl Locks {
    /// The table for the files in `store`: shared when the storage has
    /// shared records.
    pub(crate) fn new(store: Arc<dyn Storage>) -> Locks {
        let keep = if store.shared().is_some() {
            Keep::Shared {
                store,
                seen: Mutex::new(None),
            }
        } else {
            Keep::Memory(Mutex::default())
        };
        Locks {
            keep: Arc::new(keep),
        }
    }

    /// Runs `f` on the table, with what has run out taken away, and keeps
    /// what it changed. `f` may run more than once (when another server
    /// wrote the table in between), each time on what is there then.
    fn change<T>(&self, mut f: impl FnMut(&mut Vec<DavLock>) -> T) -> Result<T, FilesError> {
        match &*self.keep {
            Keep::Memory(table) => {
                let mut table = table
                    .lock()
                    .map_err(|_| FilesError::Io("the lock table is poisoned".into()))?;
                expire(&mut table);
                Ok(f(&mut table))
            }
            Keep::Shared { store, seen } => {
                let Some(shared) = store.shared() else {
                    return Err(FilesError::Unavailable("no shared records".into()));
                };
                let mut kept = None;
                let out = crate::files::storage::change_shared(shared, RECORD, |before| {
                    // A record that is no table is left for an administrator
                    // to see; until then every lock is refused (held off).
                    let mut table = match before.map(decode) {
                        None => Vec::new(),
                        Some(Some(t)) => t,
                        Some(None) => return (None, None),
                    };
                    expire(&mut table);
                    let out = f(&mut table);
                    let after = encode(&table);
                    let write = (before.is_some() || !table.is_empty()).then_some(after);
                    kept = Some(table);
                    (write, Some(out))
                })?;
                let out = out.ok_or_else(|| {
                    FilesError::Unavailable(format!(
                        "the lock table ({RECORD}) does not parse; remove it to start it over"
                    ))
                })?;
                // What was written (or found unchanged), for discovery.
                if let (Some(table), Ok(mut seen)) = (kept, seen.lock()) {
                    *seen = Some((Instant::now(), table));
                }
                Ok(out)
            }
        }
    }

    /// Whether any lock is on `path`, above it or below it (a table that
    /// cannot be read counts as one).
    pub(crate) fn touching(&self, path: &DavPath) -> bool {
        // Read now, not as last seen: another server's fresh lock counts.
        let touching = |table: &mut Vec<DavLock>| {
            table
                .iter()
                .any(|l| within(&l.path, path) || within(path, &l.path))
        };
        self.change(touching).unwrap_or(true)
    }

    /// The table as read at most [`DISCOVER_AGE`] ago.
    fn recent(&self) -> Result<Vec<DavLock>, FilesError> {
        if let Keep::Shared { seen, .. } = &*self.keep
            && let Ok(seen) = seen.lock()
            && let Some((at, table)) = &*seen
            && at.elapsed() < DISCOVER_AGE
        {
            let mut table = table.clone();
            expire(&mut table);
            return Ok(table);
        }
        self.change(|t| t.clone())
    }
}

/// Takes away the locks whose time has passed.
fn expire(table: &mut Vec<DavLock>) {
    let now = SystemTime::now();
    table.retain(|l| l.timeout_at.is_none_or(|at| at > now));
}

/// The timeout a lock gets: what was asked, at most [`MAX_TIMEOUT`].
fn bounded(asked: Option<Duration>) -> Duration {
    asked.map_or(MAX_TIMEOUT, |d| d.min(MAX_TIMEOUT))
}

/// The answer for a lock not given for want of room or of the table: a
/// lock with no token, which dav-server answers as 423 Locked.
fn refused(path: &DavPath, principal: Option<&str>, shared: bool, deep: bool) -> DavLock {
    DavLock {
        token: String::new(),
        path: Box::new(path.clone()),
        principal: principal.map(str::to_owned),
        owner: None,
        timeout_at: None,
        timeout: None,
        shared,
        deep,
    }
}

/// Logs a table that could not be reached; the request is then refused.
fn unreachable(e: &FilesError) {
    tracing::warn!(error = %e, "the WebDAV lock table cannot be reached");
}

impl DavLockSystem for Locks {
    fn lock(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let (path, principal, owner) = (path.clone(), principal.map(str::to_owned), owner.cloned());
        Box::pin(async move {
            let by = principal.as_deref();
            let made = self.change(|table| {
                check_up(table, &path, None, true, &[], shared)?;
                if deep {
                    check_down(table, &path, None, true, &[], shared)?;
                }
                if full(table, &path, by) {
                    return Err(refused(&path, by, shared, deep));
                }
                let timeout = bounded(timeout);
                let lock = DavLock {
                    token: uuid::Uuid::new_v4().urn().to_string(),
                    path: Box::new(path.clone()),
                    principal: principal.clone(),
                    owner: owner.clone().map(Box::new),
                    timeout_at: Some(SystemTime::now() + timeout),
                    timeout: Some(timeout),
                    shared,
                    deep,
                };
                table.push(lock.clone());
                Ok(lock)
            });
            made.unwrap_or_else(|e| {
                unreachable(&e);
                Err(refused(&path, by, shared, deep))
            })
        })
    }

    fn unlock(&'_ self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let (path, token) = (path.clone(), token.to_owned());
        Box::pin(async move {
            let done = self.change(|table| {
                let at = table
                    .iter()
                    .position(|l| l.token == token && within(&path, &l.path))
                    .ok_or(())?;
                table.remove(at);
                Ok(())
            });
            done.unwrap_or_else(|e| {
                unreachable(&e);
                Err(())
            })
        })
    }

    fn refresh(
        &'_ self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        let (path, token) = (path.clone(), token.to_owned());
        Box::pin(async move {
            let done = self.change(|table| {
                let l = table
                    .iter_mut()
                    .find(|l| l.token == token && within(&path, &l.path))
                    .ok_or(())?;
                let timeout = bounded(timeout);
                l.timeout = Some(timeout);
                l.timeout_at = Some(SystemTime::now() + timeout);
                Ok(l.clone())
            });
            done.unwrap_or_else(|e| {
                unreachable(&e);
                Err(())
            })
        })
    }

    fn check(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let (path, principal, tokens) = (
            path.clone(),
            principal.map(str::to_owned),
            submitted_tokens.to_vec(),
        );
        Box::pin(async move {
            let by = principal.as_deref();
            let done = self.change(|table| {
                check_up(table, &path, by, ignore_principal, &tokens, false)?;
                if deep {
                    check_down(table, &path, by, ignore_principal, &tokens, false)?;
                }
                Ok(())
            });
            // A table that cannot be read holds everything off.
            done.unwrap_or_else(|e| {
                unreachable(&e);
                Err(refused(&path, by, false, deep))
            })
        })
    }

    fn discover(&'_ self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let path = path.clone();
        Box::pin(async move {
            match self.recent() {
                Ok(table) => above(&table, &path).into_iter().cloned().collect(),
                Err(e) => {
                    unreachable(&e);
                    Vec::new()
                }
            }
        })
    }

    fn delete(&'_ self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let path = path.clone();
        Box::pin(async move {
            // The locks on it and below it go.
            let done = self.change(|table| table.retain(|l| !within(&l.path, &path)));
            done.map_err(|e| unreachable(&e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Locks {
        Locks {
            keep: Arc::new(Keep::Memory(Mutex::default())),
        }
    }

    fn at(p: &str) -> DavPath {
        DavPath::new(p).unwrap()
    }

    #[tokio::test]
    async fn locks_run_out_and_the_table_is_bounded() {
        let ls = memory();
        let p = at("/a.txt");
        let l = ls
            .lock(
                &p,
                Some("u"),
                None,
                Some(Duration::from_millis(200)),
                false,
                false,
            )
            .await
            .unwrap();
        assert!(ls.check(&p, Some("u"), false, false, &[]).await.is_err());
        assert!(
            ls.check(&p, Some("u"), false, false, std::slice::from_ref(&l.token))
                .await
                .is_ok()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            ls.check(&p, Some("u"), false, false, &[]).await.is_ok(),
            "an expired lock still held"
        );

        // Infinite becomes the longest there is.
        let l = ls
            .lock(&p, Some("u"), None, None, false, false)
            .await
            .unwrap();
        assert_eq!(l.timeout, Some(MAX_TIMEOUT));
        ls.unlock(&p, &l.token).await.unwrap();
        assert!(ls.change(|t| t.is_empty()).unwrap());
        // Shared locks stack, so many on one resource, no more.
        for _ in 0..MAX_PER_PATH {
            ls.lock(&p, Some("u"), None, None, true, false)
                .await
                .unwrap();
        }
        assert!(
            ls.lock(&p, Some("u"), None, None, true, false)
                .await
                .is_err()
        );
        // One client holds so many locks, no more; another still gets one.
        for i in 0..MAX_PER_CLIENT {
            ls.lock(
                &at(&format!("/many/{i}")),
                Some("10.0.0.1"),
                None,
                None,
                false,
                false,
            )
            .await
            .unwrap();
        }
        let next = at("/many/next");
        let r = ls.lock(&next, Some("10.0.0.1"), None, None, false, false);
        assert!(r.await.is_err());
        let r = ls.lock(&next, Some("10.0.0.2"), None, None, false, false);
        assert!(r.await.is_ok());
        // Addresses of one IPv6 /64 are one client.
        for i in 0..MAX_PER_CLIENT {
            let by = format!("2001:db8:1:2::{:x}", i + 1);
            let at = at(&format!("/six/{i}"));
            ls.lock(&at, Some(&by), None, None, false, false)
                .await
                .unwrap();
        }
        let next = at("/six/next");
        let r = ls.lock(
            &next,
            Some("2001:db8:1:2:ffff::1"),
            None,
            None,
            false,
            false,
        );
        assert!(r.await.is_err(), "another address of the /64 got one");
        let r = ls.lock(&next, Some("2001:db8:1:3::1"), None, None, false, false);
        assert!(r.await.is_ok());
        // A path longer than a lock keeps gets none.
        let long = at(&format!("/{}", "x".repeat(MAX_PATH)));
        assert!(
            ls.lock(&long, Some("10.0.0.3"), None, None, false, false)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn deep_locks_cover_what_is_below_and_shared_ones_stack() {
        let ls = memory();
        let folder = ls
            .lock(&at("/d/"), Some("u"), None, None, false, true)
            .await
            .unwrap();
        // A write below a deep lock needs its token; a sibling does not.
        assert!(
            ls.check(&at("/d/x"), Some("u"), false, false, &[])
                .await
                .is_err()
        );
        let tokens = std::slice::from_ref(&folder.token);
        assert!(
            ls.check(&at("/d/x"), Some("u"), false, false, tokens)
                .await
                .is_ok()
        );
        // The token is the lock holder's only.
        assert!(
            ls.check(&at("/d/x"), Some("v"), false, false, tokens)
                .await
                .is_err()
        );
        assert!(
            ls.check(&at("/dx"), Some("u"), false, false, &[])
                .await
                .is_ok()
        );
        // No lock inside a deep exclusive one, nor a deep one above a lock.
        assert!(
            ls.lock(&at("/d/x"), Some("v"), None, None, true, false)
                .await
                .is_err()
        );
        let file = ls
            .lock(&at("/e/f"), Some("u"), None, None, false, false)
            .await
            .unwrap();
        assert!(
            ls.lock(&at("/e/"), Some("v"), None, None, false, true)
                .await
                .is_err()
        );
        assert!(
            ls.lock(&at("/e/"), Some("v"), None, None, false, false)
                .await
                .is_ok()
        );
        // A deep check (a folder's DELETE) sees the lock below.
        assert!(
            ls.check(&at("/e/"), Some("u"), false, true, &[])
                .await
                .is_err()
        );
        // Discovery shows the locks on a path and above it.
        let seen = ls.discover(&at("/d/x")).await;
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].token, folder.token);
        // Unlocking through a path below it works, a wrong token does not.
        assert!(ls.unlock(&at("/d/x"), "urn:uuid:nothing").await.is_err());
        ls.unlock(&at("/d/x"), &folder.token).await.unwrap();
        // Shared locks stack, an exclusive one does not go beside them.
        ls.lock(&at("/s"), Some("u"), None, None, true, false)
            .await
            .unwrap();
        ls.lock(&at("/s"), Some("v"), None, None, true, false)
            .await
            .unwrap();
        assert!(
            ls.lock(&at("/s"), Some("w"), None, None, false, false)
                .await
                .is_err()
        );
        // Removing a folder takes the locks below it.
        ls.delete(&at("/e/")).await.unwrap();
        assert!(
            ls.check(&at("/e/f"), Some("v"), false, false, &[])
                .await
                .is_ok()
        );
        assert_eq!(file.path.as_bytes(), b"/e/f");
    }
}
