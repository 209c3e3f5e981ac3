//! WebDAV dead properties (RFC 4918 §4): what clients set with PROPPATCH
//! and read back with PROPFIND, kept in SQLite in the state folder and
//! moved, copied and removed with the files they belong to. Bounded per
//! resource, in count and in size.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::StatusCode;
use dav_server::fs::DavProp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::files::RelPath;

/// Most dead properties one resource keeps.
pub(crate) const MAX_PER_RESOURCE: i64 = 256;
/// Longest value (its XML) one property keeps.
pub(crate) const MAX_VALUE: usize = 16 * 1024;

/// The dead properties of every resource. The database is made when the
/// first property is set, not before.
#[derive(Debug)]
pub(crate) struct DeadProps {
    db: Mutex<Option<Connection>>,
    /// Where it is kept; `None` in memory.
    path: Option<PathBuf>,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS props (
    path TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
    prefix TEXT, xml BLOB,
    PRIMARY KEY (path, ns, name)) WITHOUT ROWID";

/// A resource's key: its path without the leading slash; the root is "".
fn key(rel: &RelPath) -> String {
    rel.parts().join("/")
}

/// The SQL condition for `rel` and everything below it, with `?1` its
/// key and `?2` its key with a slash.
const AND_BELOW: &str = "(path = ?1 OR substr(path, 1, length(?2)) = ?2)";

impl DeadProps {
    /// The store kept at `path` (made when first needed).
    pub(crate) fn at(path: &Path) -> DeadProps {
        // Opened now when it is there: while it is not, a read costs
        // nothing (a listing of 10,000 files asks 10,000 times).
        let db = path.exists().then(|| DeadProps::open(path).ok()).flatten();
        DeadProps {
            db: Mutex::new(db),
            path: Some(path.to_path_buf()),
        }
    }

    /// A store that lives in memory only.
    #[cfg(test)]
    pub(crate) fn in_memory() -> DeadProps {
        let db = Connection::open_in_memory().expect("an in-memory database");
        db.execute_batch(SCHEMA).expect("a table in memory");
        DeadProps {
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
            match DeadProps::open(path) {
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
    pub(crate) fn all(&self, rel: &RelPath, content: bool) -> Vec<DavProp> {
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
    pub(crate) fn one(&self, rel: &RelPath, prop: &DavProp) -> Option<Vec<u8>> {
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
    /// none (RFC 4918 §9.2): one over the limits fails with 507 and the
    /// rest with 424.
    pub(crate) fn patch(
        &self,
        rel: &RelPath,
        patch: Vec<(bool, DavProp)>,
    ) -> Vec<(StatusCode, DavProp)> {
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
            if over.is_none() && count > MAX_PER_RESOURCE {
                over = patch.iter().position(|(set, _)| *set);
            }
            if over.is_none() {
                tx.commit()?;
            }
            Ok(over)
        });
        let status = |i: usize| match done {
            Some(None) => StatusCode::OK,
            Some(Some(bad)) if bad == i => StatusCode::INSUFFICIENT_STORAGE,
            Some(Some(_)) => StatusCode::FAILED_DEPENDENCY,
            None => StatusCode::INTERNAL_SERVER_ERROR,
        };
        patch
            .into_iter()
            .enumerate()
            .map(|(i, (_, mut p))| {
                p.xml = None;
                (status(i), p)
            })
            .collect()
    }

    /// Moves the properties of `from` and all below it to `to`.
    pub(crate) fn rename(&self, from: &RelPath, to: &RelPath) {
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
    pub(crate) fn copy(&self, from: &RelPath, to: &RelPath) {
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
    pub(crate) fn remove(&self, rel: &RelPath) {
        let k = key(rel);
        self.with(false, |db| {
            db.execute(
                &format!("DELETE FROM props WHERE {AND_BELOW}"),
                params![k, format!("{k}/")],
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(name: &str, value: &str) -> DavProp {
        DavProp {
            name: name.into(),
            prefix: Some("x".into()),
            namespace: Some("http://example.com/ns".into()),
            xml: Some(
                format!("<x:{name} xmlns:x=\"http://example.com/ns\">{value}</x:{name}>")
                    .into_bytes(),
            ),
        }
    }

    #[test]
    fn properties_follow_their_files_and_stay_bounded() {
        let p = DeadProps::in_memory();
        let a = RelPath::parse("/a").unwrap();
        let ab = RelPath::parse("/a/b").unwrap();
        let ab2 = RelPath::parse("/ab").unwrap();
        let ok = p.patch(
            &ab,
            vec![(true, prop("colour", "blue")), (true, prop("size", "9"))],
        );
        assert!(ok.iter().all(|(s, _)| *s == StatusCode::OK));
        p.patch(&ab2, vec![(true, prop("other", "1"))]);
        assert_eq!(p.all(&ab, false).len(), 2);
        assert!(p.all(&ab, false).iter().all(|d| d.xml.is_none()));
        let v = p.one(&ab, &prop("colour", "")).unwrap();
        assert!(String::from_utf8(v).unwrap().contains("blue"));

        // Moving the folder takes its files' properties; "/ab" is not below "/a".
        let c = RelPath::parse("/c").unwrap();
        p.rename(&a, &c);
        assert!(p.all(&ab, false).is_empty());
        assert_eq!(p.all(&RelPath::parse("/c/b").unwrap(), false).len(), 2);
        assert_eq!(p.all(&ab2, false).len(), 1);

        p.copy(
            &RelPath::parse("/c/b").unwrap(),
            &RelPath::parse("/d").unwrap(),
        );
        assert_eq!(p.all(&RelPath::parse("/d").unwrap(), true).len(), 2);
        p.remove(&c);
        assert!(p.all(&RelPath::parse("/c/b").unwrap(), false).is_empty());
        assert_eq!(p.all(&ab2, false).len(), 1);

        // Removing one that is not there is fine; a value too long fails
        // the whole patch, and nothing of it is kept.
        let big = "v".repeat(MAX_VALUE + 1);
        let r = p.patch(
            &ab2,
            vec![
                (false, prop("none", "")),
                (true, prop("new", "1")),
                (true, prop("big", &big)),
            ],
        );
        assert_eq!(r[2].0, StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(r[1].0, StatusCode::FAILED_DEPENDENCY);
        assert_eq!(p.all(&ab2, false).len(), 1);

        // No more than so many per resource.
        let many: Vec<_> = (0..=MAX_PER_RESOURCE)
            .map(|i| (true, prop(&format!("p{i}"), "1")))
            .collect();
        let r = p.patch(&a, many);
        assert!(
            r.iter()
                .any(|(s, _)| *s == StatusCode::INSUFFICIENT_STORAGE)
        );
        assert!(p.all(&a, false).is_empty());
    }
}
