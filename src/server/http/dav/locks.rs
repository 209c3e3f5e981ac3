//! WebDAV locks (RFC 4918 §6): dav-server's lock table in memory, with
//! what it leaves out. A lock lasts as long as its timeout (at most
//! [`MAX_TIMEOUT`], whatever is asked, and that when the client asks for
//! none or "Infinite"), and is gone once that passes unless refreshed; the
//! table holds at most [`MAX_LOCKS`], and [`MAX_PER_PATH`] on one resource.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use dav_server::memls::MemLs;
use xmltree::Element;

/// The longest a lock lasts without a refresh.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Most locks held at once.
pub(crate) const MAX_LOCKS: usize = 1000;
/// Most locks on one resource (shared locks stack).
pub(crate) const MAX_PER_PATH: usize = 8;
/// Most locks one client (one address) holds at once.
pub(crate) const MAX_PER_CLIENT: usize = 100;

/// A lock's path, when it runs out, and who took it (the client's address).
type Held = (DavPath, SystemTime, Option<String>);

/// The lock table.
#[derive(Debug, Clone)]
pub(crate) struct Locks {
    table: Box<MemLs>,
    /// Each lock's token, with its path and when it runs out.
    expiry: Arc<Mutex<HashMap<String, Held>>>,
}

impl Locks {
    pub(crate) fn new() -> Locks {
        Locks {
            table: MemLs::new(),
            expiry: Arc::default(),
        }
    }

    /// Lets go of every lock whose time has passed.
    async fn expire(&self) {
        let now = SystemTime::now();
        let gone: Vec<(String, DavPath)> = {
            let Ok(mut expiry) = self.expiry.lock() else {
                return;
            };
            let gone: Vec<_> = expiry
                .iter()
                .filter(|(_, (_, at, _))| *at <= now)
                .map(|(t, (p, _, _))| (t.clone(), p.clone()))
                .collect();
            for (t, _) in &gone {
                expiry.remove(t);
            }
            gone
        };
        for (token, path) in gone {
            let _ = self.table.unlock(&path, &token).await;
        }
    }

    fn note(&self, lock: &DavLock) {
        if let Ok(mut expiry) = self.expiry.lock() {
            let at = lock
                .timeout_at
                .unwrap_or_else(|| SystemTime::now() + MAX_TIMEOUT);
            let by = lock.principal.clone();
            expiry.insert(lock.token.clone(), ((*lock.path).clone(), at, by));
        }
    }

    /// Whether a lock on `path` by `by` finds no room: in the table, on
    /// the path, or for that client (so one cannot fill the table).
    fn full(&self, path: &DavPath, by: Option<&str>) -> bool {
        self.expiry.lock().map_or(true, |e| {
            e.len() >= MAX_LOCKS
                || e.values().filter(|(p, _, _)| p == path).count() >= MAX_PER_PATH
                || e.values().filter(|(_, _, b)| b.as_deref() == by).count() >= MAX_PER_CLIENT
        })
    }
}

/// The timeout a lock gets: what was asked, at most [`MAX_TIMEOUT`].
fn bounded(asked: Option<Duration>) -> Option<Duration> {
    Some(asked.map_or(MAX_TIMEOUT, |d| d.min(MAX_TIMEOUT)))
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
            self.expire().await;
            if self.full(&path, principal.as_deref()) {
                // Answered as a conflict (423): the table has no room.
                return Err(DavLock {
                    token: String::new(),
                    path: Box::new(path),
                    principal,
                    owner: None,
                    timeout_at: None,
                    timeout: None,
                    shared,
                    deep,
                });
            }
            let lock = self
                .table
                .lock(
                    &path,
                    principal.as_deref(),
                    owner.as_ref(),
                    bounded(timeout),
                    shared,
                    deep,
                )
                .await?;
            self.note(&lock);
            Ok(lock)
        })
    }

    fn unlock(&'_ self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let (path, token) = (path.clone(), token.to_owned());
        Box::pin(async move {
            self.expire().await;
            let r = self.table.unlock(&path, &token).await;
            if r.is_ok() {
                if let Ok(mut expiry) = self.expiry.lock() {
                    expiry.remove(&token);
                }
            }
            r
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
            self.expire().await;
            let lock = self.table.refresh(&path, &token, bounded(timeout)).await?;
            self.note(&lock);
            Ok(lock)
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
            self.expire().await;
            self.table
                .check(&path, principal.as_deref(), ignore_principal, deep, &tokens)
                .await
        })
    }

    fn discover(&'_ self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let path = path.clone();
        Box::pin(async move {
            self.expire().await;
            self.table.discover(&path).await
        })
    }

    fn delete(&'_ self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let path = path.clone();
        Box::pin(async move {
            let gone = self.table.discover(&path).await;
            let r = self.table.delete(&path).await;
            if let Ok(mut expiry) = self.expiry.lock() {
                for l in gone {
                    expiry.remove(&l.token);
                }
                // Locks below the path went too.
                let below: Vec<String> = expiry
                    .iter()
                    .filter(|(_, (p, _, _))| p.as_bytes().starts_with(path.as_bytes()))
                    .map(|(t, _)| t.clone())
                    .collect();
                for t in below {
                    expiry.remove(&t);
                }
            }
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_run_out_and_the_table_is_bounded() {
        let ls = Locks::new();
        let p = DavPath::new("/a.txt").unwrap();
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
        assert!(ls.expiry.lock().unwrap().is_empty());
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
            let at = DavPath::new(&format!("/many/{i}")).unwrap();
            ls.lock(&at, Some("10.0.0.1"), None, None, false, false)
                .await
                .unwrap();
        }
        let next = DavPath::new("/many/next").unwrap();
        let r = ls.lock(&next, Some("10.0.0.1"), None, None, false, false);
        assert!(r.await.is_err());
        let r = ls.lock(&next, Some("10.0.0.2"), None, None, false, false);
        assert!(r.await.is_ok());
    }
}
