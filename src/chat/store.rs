//! Chat history in SQLite, in the server's state folder.
//!
//! WAL mode with `synchronous=NORMAL`: a message is in the database file's
//! log before the hub fans it out, so a crash of the server (even
//! `kill -9`) loses nothing it acknowledged; only a power cut may lose the
//! last moments, as for uploads (no fsync per message).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Room key (lower case).
    pub room: String,
    /// Sender.
    pub nick: String,
    /// Text.
    pub text: String,
    /// A `/me` action.
    pub action: bool,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
}

/// How much history to keep.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Messages kept per room.
    pub per_room: usize,
    /// Messages older than this are removed.
    pub max_age: Duration,
}

/// The history database.
#[derive(Debug)]
pub struct History {
    db: Mutex<Db>,
    retention: Retention,
}

#[derive(Debug)]
struct Db {
    conn: Connection,
    /// Messages stored per room since that room was last trimmed.
    since_trim: HashMap<String, usize>,
    /// When messages past the age limit were last removed.
    aged: Instant,
}

/// Why the history cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another server holds it.
    #[error("another ferry server is using it")]
    InUse,
    /// SQLite refused.
    #[error(transparent)]
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                OpenError::InUse
            }
            _ => OpenError::Db(e),
        }
    }
}

/// A room is trimmed to its count limit once per this many messages, so
/// it holds at most this many more than the limit.
const TRIM_EVERY: usize = 256;

/// How often messages past the age limit are looked for while the server
/// runs (and once at start). The limit is in days; a scan of the whole
/// table per message would be waste.
const AGE_EVERY: Duration = Duration::from_secs(60);

impl History {
    /// Opens (creating) `path`.
    pub fn open(path: &Path, retention: Retention) -> Result<History, OpenError> {
        let db = Connection::open(path)?;
        // One server owns its history: hold the lock for good rather than
        // taking it per message, and refuse a second server on the same file
        // at once instead of after a wait.
        db.busy_timeout(Duration::ZERO)?;
        db.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch("BEGIN EXCLUSIVE; COMMIT;")?;
        db.busy_timeout(Duration::from_secs(5))?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS messages (
                id INTEGER PRIMARY KEY,
                room TEXT NOT NULL,
                nick TEXT NOT NULL,
                text TEXT NOT NULL,
                action INTEGER NOT NULL,
                ts_ms INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS messages_room ON messages (room, id);",
        )?;
        let h = History {
            db: Mutex::new(Db {
                conn: db,
                since_trim: HashMap::new(),
                aged: Instant::now(),
            }),
            retention,
        };
        h.prune()?;
        Ok(h)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores messages, in one transaction; returns once they are in the
    /// database.
    pub fn append(&self, msgs: &[Stored]) -> rusqlite::Result<()> {
        let mut db = self.db();
        let tx = db.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO messages (room, nick, text, action, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for m in msgs {
                stmt.execute(params![m.room, m.nick, m.text, m.action, m.ts_ms])?;
            }
        }
        tx.commit()?;
        let mut full = Vec::new();
        for m in msgs {
            let n = db.since_trim.entry(m.room.clone()).or_default();
            *n += 1;
            if *n == TRIM_EVERY {
                full.push(m.room.clone());
            }
        }
        for room in full {
            db.since_trim.remove(&room);
            trim(&db.conn, &room, self.retention.per_room)?;
        }
        if db.aged.elapsed() >= AGE_EVERY {
            db.aged = Instant::now();
            remove_aged(&db.conn, self.retention.max_age)?;
        }
        Ok(())
    }

    /// The last `n` messages of `room`, oldest first.
    pub fn recent(&self, room: &str, n: usize) -> rusqlite::Result<Vec<Stored>> {
        let db = self.db();
        let mut stmt = db.conn.prepare_cached(
            "SELECT room, nick, text, action, ts_ms FROM messages WHERE room = ?1
             ORDER BY id DESC LIMIT ?2",
        )?;
        let mut rows: Vec<Stored> = stmt
            .query_map(params![room, n as i64], |r| {
                Ok(Stored {
                    room: r.get(0)?,
                    nick: r.get(1)?,
                    text: r.get(2)?,
                    action: r.get(3)?,
                    ts_ms: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// Applies the retention limits to every room.
    pub fn prune(&self) -> rusqlite::Result<()> {
        let mut db = self.db();
        db.aged = Instant::now();
        db.since_trim.clear();
        remove_aged(&db.conn, self.retention.max_age)?;
        let rooms: Vec<String> = db
            .conn
            .prepare("SELECT DISTINCT room FROM messages")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for room in rooms {
            trim(&db.conn, &room, self.retention.per_room)?;
        }
        Ok(())
    }
}

/// Keeps the newest `keep` messages of `room`; the index on (room, id)
/// finds the cut without reading the rest of the table.
fn trim(db: &Connection, room: &str, keep: usize) -> rusqlite::Result<()> {
    db.prepare_cached(
        "DELETE FROM messages WHERE room = ?1 AND id <= (
            SELECT id FROM messages WHERE room = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![room, keep as i64])?;
    Ok(())
}

/// Removes the messages older than `max_age`.
fn remove_aged(db: &Connection, max_age: Duration) -> rusqlite::Result<()> {
    let cutoff =
        chrono::Utc::now().timestamp_millis() - max_age.as_millis().min(i64::MAX as u128) as i64;
    db.prepare_cached("DELETE FROM messages WHERE ts_ms < ?1")?
        .execute(params![cutoff])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(room: &str, i: i64, ts_ms: i64) -> Stored {
        Stored {
            room: room.into(),
            nick: "n".into(),
            text: format!("m{i}"),
            action: false,
            ts_ms,
        }
    }

    #[test]
    fn keeps_order_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.sqlite3");
        let now = chrono::Utc::now().timestamp_millis();
        let ret = Retention {
            per_room: 5,
            max_age: Duration::from_secs(3600),
        };
        {
            let h = History::open(&path, ret).unwrap();
            h.append(&[msg("old", 0, now - 7_200_000)]).unwrap();
            for i in 0..8 {
                h.append(&[msg("a", i, now)]).unwrap();
            }
            h.append(&[msg("b", 100, now)]).unwrap();
            let r = h.recent("a", 3).unwrap();
            assert_eq!(
                r.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
                ["m5", "m6", "m7"]
            );
        }
        // Reopened: retention applied, order kept.
        let h = History::open(&path, ret).unwrap();
        let a = h.recent("a", 100).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a[0].text, "m3");
        assert!(h.recent("old", 10).unwrap().is_empty());
        assert_eq!(h.recent("b", 10).unwrap().len(), 1);
    }

    #[test]
    fn a_busy_room_is_trimmed_while_the_server_runs() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let ret = Retention {
            per_room: 5,
            max_age: Duration::from_secs(3600),
        };
        let h = History::open(&dir.path().join("chat.sqlite3"), ret).unwrap();
        for i in 0..3 {
            h.append(&[msg("quiet", i as i64, now)]).unwrap();
        }
        // One short of a trim, then the one that triggers it, in a batch.
        for i in 0..TRIM_EVERY - 2 {
            h.append(&[msg("busy", i as i64, now)]).unwrap();
        }
        assert_eq!(h.recent("busy", 10_000).unwrap().len(), TRIM_EVERY - 2);
        let last = TRIM_EVERY as i64;
        h.append(&[msg("busy", last - 2, now), msg("busy", last - 1, now)])
            .unwrap();
        let busy = h.recent("busy", 10_000).unwrap();
        let texts: Vec<String> = busy.into_iter().map(|m| m.text).collect();
        let want: Vec<String> = (last - 5..last).map(|i| format!("m{i}")).collect();
        assert_eq!(texts, want);
        assert_eq!(
            h.recent("quiet", 10).unwrap().len(),
            3,
            "other rooms untouched"
        );
    }

    #[test]
    fn a_second_server_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.sqlite3");
        let ret = Retention {
            per_room: 5,
            max_age: Duration::from_secs(3600),
        };
        let first = History::open(&path, ret).unwrap();
        let started = std::time::Instant::now();
        let second = History::open(&path, ret);
        assert!(matches!(second, Err(OpenError::InUse)), "{second:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(first);
        History::open(&path, ret).unwrap();
    }
}
