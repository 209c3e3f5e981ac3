//! Chat history in SQLite, in the server's state folder.
//!
//! WAL mode with `synchronous=NORMAL`: a message is in the database file's
//! log before the hub fans it out, so a crash of the server (even
//! `kill -9`) loses nothing it acknowledged; only a power cut may lose the
//! last moments, as for uploads (no fsync per message).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

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
    db: Mutex<Connection>,
    retention: Retention,
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

/// Prune once per this many appends.
const PRUNE_EVERY: i64 = 256;

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
            db: Mutex::new(db),
            retention,
        };
        h.prune()?;
        Ok(h)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores messages, in one transaction; returns once they are in the
    /// database.
    pub fn append(&self, msgs: &[Stored]) -> rusqlite::Result<()> {
        let last = {
            let mut db = self.db();
            let tx = db.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO messages (room, nick, text, action, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for m in msgs {
                    stmt.execute(params![m.room, m.nick, m.text, m.action, m.ts_ms])?;
                }
            }
            let last = tx.last_insert_rowid();
            tx.commit()?;
            last
        };
        // Prune when the ids cross a multiple of PRUNE_EVERY.
        if last / PRUNE_EVERY != (last - msgs.len() as i64) / PRUNE_EVERY {
            self.prune()?;
        }
        Ok(())
    }

    /// The last `n` messages of `room`, oldest first.
    pub fn recent(&self, room: &str, n: usize) -> rusqlite::Result<Vec<Stored>> {
        let db = self.db();
        let mut stmt = db.prepare_cached(
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

    /// Applies the retention limits.
    pub fn prune(&self) -> rusqlite::Result<()> {
        let cutoff = chrono::Utc::now().timestamp_millis()
            - self.retention.max_age.as_millis().min(i64::MAX as u128) as i64;
        let db = self.db();
        db.execute("DELETE FROM messages WHERE ts_ms < ?1", params![cutoff])?;
        db.execute(
            "DELETE FROM messages WHERE id IN (
                SELECT id FROM (
                    SELECT id, ROW_NUMBER() OVER (PARTITION BY room ORDER BY id DESC) AS n
                    FROM messages)
                WHERE n > ?1)",
            params![self.retention.per_room as i64],
        )?;
        Ok(())
    }
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
