//! Dead properties kept in SQLite in the state folder, for a server that
//! is the only one serving its files.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dav_server::fs::DavProp;
use rusqlite::{Connection, OptionalExtension, params};

use super::{MAX_PER_RESOURCE, MAX_VALUE, Patched, key};
use crate::files::RelPath;

/// The dead properties of every resource. The database is made when the
/// first property is set, not before.
#[derive(Debug)]
pub(super) struct Local {
    db: Mutex<Option<Connection>>,
    /// Where it is kept; `None` in memory.
    path: Option<PathBuf>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS props (
    path TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
    prefix TEXT, xml BLOB,
    PRIMARY KEY (path, ns, name)) WITHOUT ROWID";

/// The SQL condition for `rel` and everything below it, with `?1` its
/// key and `?2` its key with a slash.
const AND_BELOW: &str = "(path = ?1 OR substr(path, 1, length(?2)) = ?2)";

impl Local {
    /// The store kept at `path` (made when first needed).
    pub(super) fn at(path: &Path) -> Local {
        // Opened now when it is there: while it is not, a read costs
        // nothing (a listing of 10,000 files asks 10,000 times).
        let db = path.exists().then(|| Local::open(path).ok()).flatten();
        Local {
            db: Mutex::new(db),
            path: Some(path.to_path_buf()),
        }
    }

    /// A store that lives in memory only.
    #[cfg(test)]
    pub(super) fn in_memory() -> Local {
        let db = Connection::open_in_memory().expect("an in-memory database");
        db.execute_batch(SCHEMA).expect("a table in memory");
        Local {
            db: Mutex::new(Some(db)),
            path: None,
        }
    }

    fn open(path: &Path) -> rusqlite::Result<Connection> {
        let db = Connection::open(path)?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(SCHEMA)?;
        Ok(db)
    }

    /// Runs `f` on the database; `None` when there is none (nothing was
    /// ever set, and `make` is false) or it failed.
    fn with<T>(
        &self,
        make: bool,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        let mut db = self.db.lock().ok()?;
        if db.is_none() {
            if !make {
                return None;
            }
            let path = self.path.as_deref()?;
            match Local::open(path) {
                Ok(c) => *db = Some(c),
                Err(e) => {
                    tracing::warn!("webdav properties: cannot open {}: {e}", path.display());
                    return None;
                }
            }
        }
        match f(db.as_mut()?) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!("webdav properties: {e}");
                None
            }
        }
    }

    /// Every property of `rel`, with its value when `content`.
    pub(super) fn all(&self, rel: &RelPath, content: bool) -> Vec<DavProp> {
        self.with(false, |db| {
            let mut q = db.prepare_cached(
                "SELECT ns, name, prefix, xml FROM props WHERE path = ?1 ORDER BY ns, name",
            )?;
            let rows = q.query_map([key(rel)], |r| {
                let ns: String = r.get(0)?;
                Ok(DavProp {
                    namespace: (!ns.is_empty()).then_some(ns),
                    name: r.get(1)?,
                    prefix: r.get(2)?,
                    xml: if content { r.get(3)? } else { None },
                })
            })?;
            rows.collect()
        })
        .unwrap_or_default()
    }

    /// The value of one property of `rel`.
    pub(super) fn one(&self, rel: &RelPath, prop: &DavProp) -> Option<Vec<u8>> {
        self.with(false, |db| {
            db.query_row(
                "SELECT xml FROM props WHERE path = ?1 AND ns = ?2 AND name = ?3",
                params![key(rel), prop.namespace.as_deref().unwrap_or(""), prop.name],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()
        })
        .flatten()
        .flatten()
    }

    /// Sets (`true`) and removes (`false`) properties of `rel`, all or
    /// none.
    pub(super) fn patch(&self, rel: &RelPath, patch: &[(bool, DavProp)]) -> Patched {
        let path = key(rel);
        let done = self.with(true, |db| {
            let tx = db.transaction()?;
            let mut over = None;
            for (i, (set, p)) in patch.iter().enumerate() {
                let ns = p.namespace.as_deref().unwrap_or("");
                if *set {
                    let xml = p.xml.as_deref().unwrap_or_default();
                    if xml.len() > MAX_VALUE {
                        over = Some(i);
                        break;
                    }
                    tx.execute(
                        "INSERT OR REPLACE INTO props (path, ns, name, prefix, xml) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![path, ns, p.name, p.prefix, xml],
                    )?;
                } else {
                    tx.execute(
                        "DELETE FROM props WHERE path = ?1 AND ns = ?2 AND name = ?3",
                        params![path, ns, p.name],
                    )?;
                }
            }
            let count: i64 =
                tx.query_row("SELECT count(*) FROM props WHERE path = ?1", [&path], |r| r.get(0))?;
            if over.is_none() && usize::try_from(count).unwrap_or(usize::MAX) > MAX_PER_RESOURCE {
                over = patch.iter().position(|(set, _)| *set);
            }
            if over.is_none() {
                tx.commit()?;
            }
            Ok(over)
        });
        match done {
            Some(None) => Patched::Done,
            Some(Some(bad)) => Patched::Over(bad),
            None => Patched::Failed,
        }
    }

    /// Moves the properties of `from` and all below it to `to`.
    pub(super) fn rename(&self, from: &RelPath, to: &RelPath) {
        let (f, t) = (key(from), key(to));
        self.with(false, |db| {
            let tx = db.transaction()?;
            // What was at the destination went when it was replaced.
            tx.execute(
                &format!("DELETE FROM props WHERE {AND_BELOW}"),
                params![t, format!("{t}/")],
            )?;
            tx.execute(
                &format!(
                    "UPDATE props SET path = ?3 || substr(path, length(?1) + 1) WHERE {AND_BELOW}"
                ),
                params![f, format!("{f}/"), t],
            )?;
            tx.commit()
        });
    }

    /// Copies the properties of `from` (only: a folder's copy copies its
    /// files one by one) to `to`.
    pub(super) fn copy(&self, from: &RelPath, to: &RelPath) {
        let (f, t) = (key(from), key(to));
        self.with(false, |db| {
            db.execute(
                "INSERT OR REPLACE INTO props (path, ns, name, prefix, xml)
                 SELECT ?2, ns, name, prefix, xml FROM props WHERE path = ?1",
                params![f, t],
            )
        });
    }

    /// Forgets the properties of `rel` and of all below it.
    pub(super) fn remove(&self, rel: &RelPath) {
        let k = key(rel);
        self.with(false, |db| {
            db.execute(
                &format!("DELETE FROM props WHERE {AND_BELOW}"),
                params![k, format!("{k}/")],
            )
        });
    }
}
