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
