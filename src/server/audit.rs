//! The audit trail: one line for every change a client asks for (an
//! upload, a removal, a new folder, a move, a command, a share link), with
//! who, from where, what, and how it ended. Each line goes to the log
//! (target `audit`) and, as JSON, to `audit.jsonl` in the state folder
//! (0600, appended; rotate it as any log). A door calls [`Audit::record`]
//! once it has answered.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

/// Where audit lines go.
#[derive(Debug)]
pub(crate) struct Audit {
    path: PathBuf,
    /// Opened on the first change (a server that sees none writes no file).
    file: Mutex<Option<std::fs::File>>,
}

/// One change, as recorded.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Change<'a> {
    /// Who: an account's name, `admin` (the token), `link:ID`, or `-`.
    pub who: &'a str,
    /// The client's address.
    pub from: IpAddr,
    /// The door: `native`, `http`, `classic`.
    pub door: &'a str,
    /// What was asked: the request's name or HTTP method.
    pub what: &'a str,
    /// Its path (escaped).
    pub path: &'a str,
    /// `ok`, or the refusal or failure.
    pub result: &'a str,
}

impl Audit {
    /// The trail kept in `state_dir`.
    pub(crate) fn new(state_dir: &std::path::Path) -> Audit {
        Audit {
            path: state_dir.join("audit.jsonl"),
            file: Mutex::new(None),
        }
    }

    /// Records `change`, in the log and in the file.
    pub(crate) fn record(&self, change: &Change<'_>) {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        tracing::info!(
            target: "audit",
            who = %crate::text::escape(change.who),
            from = %change.from,
            door = change.door,
            what = %crate::text::escape(change.what),
            path = %change.path,
            result = %crate::text::escape(change.result),
            "change"
        );
        let mut line = serde_json::json!({ "at": at });
        if let (Some(obj), Ok(serde_json::Value::Object(fields))) =
            (line.as_object_mut(), serde_json::to_value(change))
        {
            obj.extend(fields);
        }
        let Ok(mut file) = self.file.lock() else {
            return;
        };
        if file.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            let opened = std::fs::create_dir_all(self.path.parent().unwrap_or(&self.path))
                .and_then(|()| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .open(&self.path)
                });
            match opened {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    tracing::warn!(
                        "cannot keep the audit trail in {}: {e}",
                        self.path.display()
                    );
                    return;
                }
            }
        }
        // One write for the whole line: written piece by piece it took
        // dozens of calls, and a line cut by a crash half-way.
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write_all(&bytes) {
                tracing::warn!("cannot write the audit trail: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_sharing_a_trail_never_tear_each_others_lines() {
        let dir = tempfile::tempdir().unwrap();
        // Two servers on one state folder: each appends on its own.
        let trails = [Audit::new(dir.path()), Audit::new(dir.path())];
        let long = "x".repeat(300);
        std::thread::scope(|s| {
            for (i, trail) in trails.iter().enumerate() {
                let long = &long;
                s.spawn(move || {
                    for n in 0..300 {
                        trail.record(&Change {
                            who: if i == 0 { "ann" } else { "bob" },
                            from: IpAddr::from([127, 0, 0, 1]),
                            door: "native",
                            what: "put",
                            path: &format!("/{n}/{long}"),
                            result: "ok",
                        });
                    }
                });
            }
        });
        let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 600);
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("a torn line ({e}): {l}");
            });
            assert_eq!(v["result"], "ok");
        }
    }
}
