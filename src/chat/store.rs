//! Chat history in SQLite, in the server's state folder.
//!
//! WAL mode with `synchronous=NORMAL`: a message is in the database file's
//! log before the hub fans it out, so a crash of the server (even
//! `kill -9`) loses nothing it acknowledged; only a power cut may lose the
//! last moments, as for uploads (no fsync per message).
//!
//! Checkpoints (copying the log into the database file, with its fsyncs)
//! run on a thread of their own with a connection of their own: a
//! checkpoint inside [`History::append`] would hold up the hub, and every
//! message behind it, for the length of two fsyncs.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, params};
use tracing::warn;

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
    /// Bytes the history may hold in all rooms together; past it the
    /// oldest batches go, whatever their room, down to three quarters of
    /// it. Without it, clients that each say a line in many rooms fill the
    /// disk one room's limit at a time.
    pub max_bytes: u64,
}

/// The default of [`Retention::max_bytes`].
pub const MAX_HISTORY_BYTES: u64 = 64 << 20;

/// Longest the write-ahead log is left after a checkpoint has emptied it.
const WAL_LIMIT: i64 = 16 << 20;

/// How often (in commits) the writer looks at the log's size.
const WAL_LOOK_EVERY: usize = 16;

/// When the log has grown past twice [`WAL_LIMIT`], the writer asks the
/// checkpoint thread, which folds it into the database and empties it (a
/// TRUNCATE checkpoint, waiting for the writer between commits). The
/// checkpoint thread's PASSIVE checkpoints never finish while commits keep
/// coming, and a log is only started over after one that finished: under a
/// steady flood it grew without end (300 MB in a minute).
fn log_is_large(wal: &Path) -> bool {
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 2 * WAL_LIMIT as u64)
}

/// What a stored batch costs, counted the same way when stored and when
/// counted again from the table: its texts, names and a row's overhead.
const ROW_COST_SQL: &str = "length(messages) + length(nick) + length(room) + 32";
fn row_cost(room: &str, nick: &str, body: &str) -> u64 {
    (body.len() + nick.len() + room.len() + 32) as u64
}

/// The history database.
#[derive(Debug)]
pub struct History {
    db: Mutex<Db>,
    /// The write-ahead log's file, whose size is watched.
    wal: std::path::PathBuf,
    retention: Retention,
    checkpoints: Option<Checkpoints>,
    /// Held while the server runs: one server per history.
    _owner: Flock<File>,
}

/// The checkpoint thread and how to reach it.
#[derive(Debug)]
struct Checkpoints {
    /// Something was committed since the last checkpoint.
    dirty: Arc<AtomicBool>,
    /// Asks for a checkpoint now; dropped to stop the thread.
    poke: SyncSender<()>,
    thread: JoinHandle<()>,
}

#[derive(Debug)]
struct Db {
    conn: Connection,
    /// Messages stored per room since that room was last trimmed.
    since_trim: HashMap<String, usize>,
    /// Commits since the checkpoint thread was last asked for one.
    since_poke: usize,
    /// When messages past the age limit were last removed.
    aged: Instant,
    /// Bytes held (see [`Retention::max_bytes`]); an upper bound, counted
    /// again from the table when it passes the limit.
    bytes: u64,
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
    /// The lock file beside it could not be made or locked, or the
    /// checkpoint thread not started.
    #[error(transparent)]
    Lock(std::io::Error),
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

/// A room is trimmed to its count limit once it has had as many new
/// messages as the limit, and at least this many: it holds at most about
/// twice its limit, and a busy room is not trimmed batch after batch
/// (each trim frees pages that the next inserts take back, which
/// doubled the pages a commit writes).
const TRIM_EVERY: usize = 256;

/// The log is checkpointed after this many commits (SQLite's own default
/// is 1000 pages, about 450 of these commits), or once nothing was
/// committed for a while. Not sooner: the first commit after a completed
/// checkpoint starts the log over, and SQLite syncs the log's new header
/// then, on the hub's path. With a checkpoint one second after the last
/// commit, a chat at a human pace paid that fsync on nearly every line.
const CHECKPOINT_EVERY: usize = 256;
const CHECKPOINT_AFTER: Duration = Duration::from_secs(10);

/// How often messages past the age limit are looked for while the server
/// runs (and once at start). The limit is in days; a scan of the whole
/// table per message would be waste.
const AGE_EVERY: Duration = Duration::from_secs(60);

impl History {
    /// Opens (creating) `path`.
    pub fn open(path: &Path, retention: Retention) -> Result<History, OpenError> {
        // One server owns its history: a second one on the same file is
        // refused at once, by a lock on a file beside it (SQLite's own
        // exclusive mode would also shut out the checkpoint connection).
        let mut lock_name = path.as_os_str().to_owned();
        lock_name.push(".lock");
        let owner = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_name)
            .map_err(OpenError::Lock)?;
        let owner = match Flock::lock(owner, FlockArg::LockExclusiveNonblock) {
            Ok(held) => held,
            Err((_, Errno::EWOULDBLOCK)) => return Err(OpenError::InUse),
            Err((_, e)) => return Err(OpenError::Lock(e.into())),
        };
        make_private(path).map_err(OpenError::Lock)?;
        let db = Connection::open(path)?;
        db.busy_timeout(Duration::from_secs(5))?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "wal_autocheckpoint", 0)?;
        db.pragma_update(None, "journal_size_limit", WAL_LIMIT)?;
        create_or_upgrade(&db)?;
        let checkpointer = Connection::open(path)?;
        checkpointer.pragma_update(None, "synchronous", "NORMAL")?;
        checkpointer.pragma_update(None, "journal_size_limit", WAL_LIMIT)?;
        let dirty = Arc::new(AtomicBool::new(false));
        let (poke, pokes) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("ferry-chat-log".into())
            .spawn({
                let dirty = dirty.clone();
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                move || checkpoint_loop(&checkpointer, Path::new(&wal), &dirty, &pokes)
            })
            .map_err(OpenError::Lock)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let h = History {
            wal: wal.into(),
            db: Mutex::new(Db {
                conn: db,
                since_trim: HashMap::new(),
                since_poke: 0,
                aged: Instant::now(),
                bytes: 0,
            }),
            retention,
            checkpoints: Some(Checkpoints {
                dirty,
                poke,
                thread,
            }),
            _owner: owner,
        };
        h.prune()?;
        // Start from a folded-in log; the thread takes it from here.
        h.db()
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(h)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores messages that `nick` said together in `room` (text, and
    /// whether it is a `/me` action), as one row; returns once they are in
    /// the database.
    pub fn append(
        &self,
        room: &str,
        nick: &str,
        ts_ms: i64,
        said: &[(String, bool)],
    ) -> rusqlite::Result<()> {
        if said.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_string(said)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        let mut db = self.db();
        db.conn
            .prepare_cached(
                "INSERT INTO batches (room, nick, ts_ms, count, messages) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![room, nick, ts_ms, said.len() as i64, body])?;
        db.bytes += row_cost(room, nick, &body);
        if db.bytes > self.retention.max_bytes {
            db.bytes = shrink(&db.conn, self.retention.max_bytes)?;
        }
        if let Some(c) = &self.checkpoints {
            c.dirty.store(true, Ordering::Relaxed);
            db.since_poke += 1;
            if db.since_poke % WAL_LOOK_EVERY == 0 && log_is_large(&self.wal) {
                // The checkpoint thread empties it (see checkpoint_loop).
                let _ = c.poke.try_send(());
            }
            if db.since_poke >= CHECKPOINT_EVERY {
                db.since_poke = 0;
                // Full means one is already asked for.
                let _ = c.poke.try_send(());
            }
        }
        let n = match db.since_trim.get_mut(room) {
            Some(n) => n,
            None => db.since_trim.entry(room.to_string()).or_default(),
        };
        *n += said.len();
        if *n >= TRIM_EVERY.max(self.retention.per_room) {
            db.since_trim.remove(room);
            trim(&db.conn, room, self.retention.per_room)?;
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
            "SELECT nick, ts_ms, messages FROM batches WHERE room = ?1 ORDER BY id DESC",
        )?;
        let mut rows = stmt.query(params![room])?;
        // Newest batch first, each batch's messages newest first.
        let mut newest_first = Vec::new();
        while newest_first.len() < n {
            let Some(row) = rows.next()? else { break };
            let nick: String = row.get(0)?;
            let ts_ms: i64 = row.get(1)?;
            let body: String = row.get(2)?;
            let said: Vec<(String, bool)> = serde_json::from_str(&body).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
            })?;
            for (text, action) in said.into_iter().rev() {
                newest_first.push(Stored {
                    room: room.to_string(),
                    nick: nick.clone(),
                    text,
                    action,
                    ts_ms,
                });
            }
        }
        newest_first.truncate(n);
        newest_first.reverse();
        Ok(newest_first)
    }

    /// Applies the retention limits to every room.
    pub fn prune(&self) -> rusqlite::Result<()> {
        let mut db = self.db();
        db.aged = Instant::now();
        db.since_trim.clear();
        remove_aged(&db.conn, self.retention.max_age)?;
        let rooms: Vec<String> = db
            .conn
            .prepare("SELECT DISTINCT room FROM batches")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for room in rooms {
            trim(&db.conn, &room, self.retention.per_room)?;
        }
        db.bytes = shrink(&db.conn, self.retention.max_bytes)?;
        Ok(())
    }
}

impl Drop for History {
    fn drop(&mut self) {
        if let Some(c) = self.checkpoints.take() {
            drop(c.poke);
            let _ = c.thread.join();
        }
    }
}

/// Creates the history file readable by its owner alone (SQLite gives its
/// `-wal` and `-shm` files the same mode), and takes read access away from
/// an existing one and its companions: other people's messages, and once
/// whatever a client sent, are in it.
fn make_private(path: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The checkpoint thread: a PASSIVE checkpoint when asked, or when a
/// second has passed with something new in the log. A PASSIVE checkpoint
/// never waits for the writer, and the writer never waits for it.
fn checkpoint_loop(conn: &Connection, wal: &Path, dirty: &AtomicBool, pokes: &Receiver<()>) {
    loop {
        let last = match pokes.recv_timeout(CHECKPOINT_AFTER) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if dirty.swap(false, Ordering::Relaxed) {
            let mode = if log_is_large(wal) {
                "PRAGMA wal_checkpoint(TRUNCATE)"
            } else {
                "PRAGMA wal_checkpoint(PASSIVE)"
            };
            let done = conn.query_row(mode, [], |_| Ok(()));
            if let Err(e) = done {
                dirty.store(true, Ordering::Relaxed);
                warn!("chat history checkpoint: {e}");
            }
        }
        if last {
            return;
        }
    }
}

/// Creates the table, or moves a history kept one row per message (as
/// ferry kept it before) into it.
fn create_or_upgrade(db: &Connection) -> rusqlite::Result<()> {
    db.execute_batch(
        "BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS batches (
             id INTEGER PRIMARY KEY,
             room TEXT NOT NULL,
             nick TEXT NOT NULL,
             ts_ms INTEGER NOT NULL,
             count INTEGER NOT NULL,
             messages TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS batches_room ON batches (room, id);
         COMMIT;",
    )?;
    let old: bool = db.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'messages')",
        [],
        |r| r.get(0),
    )?;
    if old {
        db.execute_batch(
            "BEGIN IMMEDIATE;
             INSERT INTO batches (room, nick, ts_ms, count, messages)
                 SELECT room, nick, ts_ms, 1,
                        json_array(json_array(text, json(CASE WHEN action THEN 'true' ELSE 'false' END)))
                 FROM messages ORDER BY id;
             DROP TABLE messages;
             COMMIT;",
        )?;
    }
    Ok(())
}

/// Keeps the newest `keep` messages of `room`, in whole batches (so up to
/// a batch's length more); the index on (room, id) finds the cut without
/// reading other rooms.
fn trim(db: &Connection, room: &str, keep: usize) -> rusqlite::Result<()> {
    if keep == 0 {
        db.prepare_cached("DELETE FROM batches WHERE room = ?1")?
            .execute(params![room])?;
        return Ok(());
    }
    db.prepare_cached(
        "DELETE FROM batches WHERE room = ?1 AND id < (
            SELECT id FROM (
                SELECT id, SUM(count) OVER (ORDER BY id DESC) AS newer
                FROM batches WHERE room = ?1)
            WHERE newer >= ?2 ORDER BY id DESC LIMIT 1)",
    )?
    .execute(params![room, keep as i64])?;
    Ok(())
}

/// Counts the bytes held and, past `max`, removes the oldest batches of
/// any room down to three quarters of it; returns the bytes then held.
fn shrink(db: &Connection, max: u64) -> rusqlite::Result<u64> {
    let count = |db: &Connection| -> rusqlite::Result<u64> {
        let total: f64 = db.query_row(
            &format!("SELECT total({ROW_COST_SQL}) FROM batches"),
            [],
            |r| r.get(0),
        )?;
        Ok(total as u64)
    };
    let mut held = count(db)?;
    if held <= max {
        return Ok(held);
    }
    let goal = max / 4 * 3;
    // Oldest first, in steps, each step's cost read from the rows it takes.
    let mut step = db.prepare_cached(&format!(
        "SELECT id, {ROW_COST_SQL} FROM batches ORDER BY id LIMIT 512"
    ))?;
    while held > goal {
        let rows: Vec<(i64, i64)> = step
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            break;
        }
        let mut last = rows[0].0;
        for (id, cost) in rows {
            if held <= goal {
                break;
            }
            held = held.saturating_sub(cost as u64);
            last = id;
        }
        db.prepare_cached("DELETE FROM batches WHERE id <= ?1")?
            .execute(params![last])?;
    }
    warn!(
        kept = held,
        limit = max,
        "chat history: over its size limit; removed the oldest messages"
    );
    count(db)
}

/// Removes the messages older than `max_age`.
fn remove_aged(db: &Connection, max_age: Duration) -> rusqlite::Result<()> {
    let cutoff =
        chrono::Utc::now().timestamp_millis() - max_age.as_millis().min(i64::MAX as u128) as i64;
    db.prepare_cached("DELETE FROM batches WHERE ts_ms < ?1")?
        .execute(params![cutoff])?;
    Ok(())
}

#[cfg(test)]
mod tests;
