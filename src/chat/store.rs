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
mod tests {
    use super::*;

    /// Retention by count, with an hour's age limit.
    fn keep(per_room: usize) -> Retention {
        Retention {
            per_room,
            max_age: Duration::from_secs(3600),
            max_bytes: MAX_HISTORY_BYTES,
        }
    }

    #[test]
    fn a_steady_flood_does_not_grow_the_log_without_end() {
        let (_dir, path) = db_path();
        let now = chrono::Utc::now().timestamp_millis();
        let h = History::open(&path, keep(100)).unwrap();
        let line = "y".repeat(30_000);
        let mut wal = std::path::PathBuf::from(&path);
        wal.as_mut_os_string().push("-wal");
        let mut largest = 0;
        // About 60 MB of messages, one commit after another.
        for i in 0..2000 {
            h.append("lobby", "n", now, &[(format!("{i}{line}"), false)])
                .unwrap();
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        // A look can find the checkpoint thread busy and wait for the next:
        // some slack above the mark.
        let bound = 2 * WAL_LIMIT as u64 + 8 * 1024 * 1024;
        assert!(largest <= bound, "the log reached {largest} bytes");
    }

    #[test]
    fn many_rooms_together_stay_within_the_byte_limit() {
        let (_dir, path) = db_path();
        let now = chrono::Utc::now().timestamp_millis();
        let ret = Retention {
            max_bytes: 64 * 1024,
            ..keep(1000)
        };
        let line = "x".repeat(200);
        {
            let h = History::open(&path, ret).unwrap();
            // 2,000 rooms of one line each: about 0.5 MB if nothing bounded
            // the whole.
            for i in 0..2000 {
                h.append(&format!("r{i}"), "n", now, &[(line.clone(), false)])
                    .unwrap();
            }
            let held = shrink(&h.db().conn, u64::MAX).unwrap();
            assert!(held <= 64 * 1024, "{held} bytes held");
            assert!(held >= 64 * 1024 / 2, "too much removed: {held}");
            // The newest are kept, the oldest gone.
            assert_eq!(h.recent("r1999", 5).unwrap().len(), 1);
            assert!(h.recent("r0", 5).unwrap().is_empty());
        }
        // And the files on disk are the owner's alone.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "history file mode {mode:o}");
    }

    /// Messages `m{i}` for `i` in `range`, said together.
    fn said(range: std::ops::Range<i64>) -> Vec<(String, bool)> {
        range.map(|i| (format!("m{i}"), false)).collect()
    }

    /// A database path in a folder of its own, removed with the guard.
    fn db_path() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.sqlite3");
        (dir, path)
    }

    fn texts(stored: &[Stored]) -> Vec<&str> {
        stored.iter().map(|m| m.text.as_str()).collect()
    }

    #[test]
    fn keeps_order_and_retention() {
        let (_dir, path) = db_path();
        let now = chrono::Utc::now().timestamp_millis();
        let ret = keep(5);
        {
            let h = History::open(&path, ret).unwrap();
            h.append("old", "n", now - 7_200_000, &said(0..1)).unwrap();
            for i in 0..8 {
                h.append("a", "n", now, &said(i..i + 1)).unwrap();
            }
            h.append("b", "n", now, &said(100..101)).unwrap();
            let r = h.recent("a", 3).unwrap();
            assert_eq!(texts(&r), ["m5", "m6", "m7"]);
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
        let (_dir, path) = db_path();
        let now = chrono::Utc::now().timestamp_millis();
        let ret = keep(5);
        let h = History::open(&path, ret).unwrap();
        for i in 0..3 {
            h.append("quiet", "n", now, &said(i..i + 1)).unwrap();
        }
        // One short of a trim, then the batch that triggers it.
        let last = TRIM_EVERY as i64;
        for i in 0..last - 2 {
            h.append("busy", "n", now, &said(i..i + 1)).unwrap();
        }
        assert_eq!(h.recent("busy", 10_000).unwrap().len(), TRIM_EVERY - 2);
        h.append("busy", "n", now, &said(last - 2..last)).unwrap();
        let busy = h.recent("busy", 10_000).unwrap();
        let want: Vec<String> = (last - 5..last).map(|i| format!("m{i}")).collect();
        assert_eq!(texts(&busy), want);
        assert_eq!(
            h.recent("quiet", 10).unwrap().len(),
            3,
            "other rooms untouched"
        );
    }

    #[test]
    fn a_room_with_a_large_limit_is_trimmed_once_per_its_limit() {
        let (_dir, path) = db_path();
        let now = chrono::Utc::now().timestamp_millis();
        let limit = TRIM_EVERY + 44;
        let h = History::open(&path, keep(limit)).unwrap();
        let stored = |h: &History| h.recent("a", 10_000).unwrap().len();
        // Up to twice the limit before a trim, not the limit plus 256.
        for i in 0..2 * limit as i64 - 1 {
            h.append("a", "n", now, &said(i..i + 1)).unwrap();
        }
        assert_eq!(stored(&h), 2 * limit - 1);
        let end = 2 * limit as i64;
        h.append("a", "n", now, &said(end - 1..end)).unwrap();
        let kept = h.recent("a", 10_000).unwrap();
        let want: Vec<String> = (end - limit as i64..end).map(|i| format!("m{i}")).collect();
        assert_eq!(texts(&kept), want);
    }

    #[test]
    fn the_log_is_checkpointed_into_the_database_file_off_the_append_path() {
        let (_dir, path) = db_path();
        let ret = keep(10_000);
        let h = History::open(&path, ret).unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        // Opened with the log folded in: the schema is in the file.
        let empty = std::fs::metadata(&path).unwrap().len();
        for i in 0..CHECKPOINT_EVERY as i64 * 2 {
            h.append("a", "n", now, &said(i..i + 1)).unwrap();
        }
        // SQLite checkpoints nothing itself (wal_autocheckpoint=0): the
        // messages reach the database file only through the thread.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() <= empty {
            assert!(Instant::now() < deadline, "never checkpointed");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(h);
        // Closed cleanly: the log is folded in and removed.
        assert!(!path.with_extension("sqlite3-wal").exists());
        let h = History::open(&path, ret).unwrap();
        assert_eq!(h.recent("a", 100_000).unwrap().len(), CHECKPOINT_EVERY * 2);
    }

    #[test]
    fn lines_said_together_are_one_row_and_come_back_in_order() {
        let (_dir, path) = db_path();
        let h = History::open(&path, keep(1000)).unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        h.append("a", "ann", now, &said(0..3)).unwrap();
        h.append("a", "bob", now + 1, &[("waves".into(), true)])
            .unwrap();
        h.append("a", "ann", now + 2, &said(3..6)).unwrap();
        h.append("a", "ann", now + 3, &[]).unwrap();
        let rows: i64 = h
            .db()
            .conn
            .query_row("SELECT COUNT(*) FROM batches", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 3, "one row per batch, none for an empty one");
        let all = h.recent("a", 100).unwrap();
        assert_eq!(texts(&all), ["m0", "m1", "m2", "waves", "m3", "m4", "m5"]);
        let bob = &all[3];
        assert!(bob.action && bob.nick == "bob" && bob.ts_ms == now + 1);
        assert!(all.iter().filter(|m| m.nick == "ann").all(|m| !m.action));
        // A replay shorter than a batch starts inside it.
        assert_eq!(texts(&h.recent("a", 2).unwrap()), ["m4", "m5"]);
        assert_eq!(
            texts(&h.recent("a", 5).unwrap()),
            ["m2", "waves", "m3", "m4", "m5"]
        );
        assert!(h.recent("b", 5).unwrap().is_empty());
    }

    #[test]
    fn trimming_keeps_whole_batches_and_zero_keeps_nothing() {
        let (_dir, path) = db_path();
        let h = History::open(&path, keep(5)).unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        h.append("a", "n", now, &said(0..4)).unwrap();
        h.append("a", "n", now, &said(4..8)).unwrap();
        h.append("a", "n", now, &said(8..10)).unwrap();
        trim(&h.db().conn, "a", 5).unwrap();
        // The newest 5 reach into the middle batch, which stays whole.
        let left = h.recent("a", 100).unwrap();
        assert_eq!(texts(&left), ["m4", "m5", "m6", "m7", "m8", "m9"]);
        trim(&h.db().conn, "a", 2).unwrap();
        assert_eq!(texts(&h.recent("a", 100).unwrap()), ["m8", "m9"]);
        trim(&h.db().conn, "a", 0).unwrap();
        assert!(h.recent("a", 100).unwrap().is_empty());
    }

    #[test]
    fn a_history_kept_one_row_per_message_is_carried_over() {
        let (_dir, path) = db_path();
        let now = chrono::Utc::now().timestamp_millis();
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE messages (id INTEGER PRIMARY KEY, room TEXT NOT NULL,
                     nick TEXT NOT NULL, text TEXT NOT NULL, action INTEGER NOT NULL,
                     ts_ms INTEGER NOT NULL);
                 CREATE INDEX messages_room ON messages (room, id);",
            )
            .unwrap();
            for (i, (room, text, action)) in [
                ("a", "hello \"there\"", 0),
                ("b", "elsewhere", 0),
                ("a", "waves", 1),
                ("a", "bye", 0),
            ]
            .into_iter()
            .enumerate()
            {
                old.execute(
                    "INSERT INTO messages (room, nick, text, action, ts_ms) VALUES (?1, 'n', ?2, ?3, ?4)",
                    params![room, text, action, now + i as i64],
                )
                .unwrap();
            }
        }
        let h = History::open(&path, keep(100)).unwrap();
        let a = h.recent("a", 10).unwrap();
        assert_eq!(texts(&a), ["hello \"there\"", "waves", "bye"]);
        assert_eq!(
            a.iter()
                .map(|m| (m.action, m.ts_ms - now))
                .collect::<Vec<_>>(),
            [(false, 0), (true, 2), (false, 3)]
        );
        assert_eq!(texts(&h.recent("b", 10).unwrap()), ["elsewhere"]);
        let old_left: bool = h
            .db()
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'messages')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!old_left);
    }

    #[test]
    fn a_second_server_is_refused_at_once() {
        let (_dir, path) = db_path();
        let ret = keep(5);
        let first = History::open(&path, ret).unwrap();
        let started = std::time::Instant::now();
        let second = History::open(&path, ret);
        assert!(matches!(second, Err(OpenError::InUse)), "{second:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(first);
        History::open(&path, ret).unwrap();
    }
}
