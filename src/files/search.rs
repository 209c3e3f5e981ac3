//! Finding entries by name below a folder, for every door: breadth first
//! (nearer results come first), streamed as they are found, bounded in
//! count, in entries looked at and in time, and held to the same hidden
//! names (the storage's) and access rule as a listing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::entry::{EntryKind, SkipReason, Skipped, TreeEntry};
use super::name::MAX_DEPTH;
use super::service::{Files, allowed};
use super::{FilesError, RelPath};
use crate::access::{Action, Who};

/// Most results one search gives.
pub const MAX_RESULTS: usize = 10_000;
/// Most entries one search looks at.
pub const MAX_SCANNED: u64 = 2_000_000;
/// Longest a search runs.
pub const MAX_TIME: Duration = Duration::from_secs(10);

/// What to look for.
#[derive(Debug, Clone)]
pub struct Query {
    /// Words that must all be in a name, compared without case.
    pub words: Vec<String>,
    /// Most results wanted (at most [`MAX_RESULTS`]).
    pub limit: usize,
}

impl Query {
    /// A query from what a person typed: words split at spaces. Empty
    /// text is refused.
    pub fn parse(text: &str, limit: Option<usize>) -> Result<Query, String> {
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        if words.is_empty() || text.len() > 256 {
            return Err("a search needs 1 to 256 characters of text".into());
        }
        Ok(Query {
            words,
            limit: limit.unwrap_or(1000).clamp(1, MAX_RESULTS),
        })
    }

    fn matches(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.words.iter().all(|w| name.contains(w.as_str()))
    }
}

/// One message of a search's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// An entry whose name matches (its path relative to the folder).
    Hit(TreeEntry),
    /// The end: `cut` says which bound stopped it early, if one did.
    End {
        /// `"results"`, `"entries"` or `"time"` when stopped early.
        cut: Option<&'static str>,
    },
}

impl Files {
    /// Searches below the folder `rel` for what `who` may read. Results
    /// arrive on the receiver as they are found; dropping it stops the
    /// search.
    pub fn search(
        &self,
        who: Who,
        rel: RelPath,
        query: Query,
    ) -> Result<mpsc::Receiver<Found>, FilesError> {
        self.check(who, Action::Read, &rel)?;
        if self.store().stat(&rel)?.kind != EntryKind::Dir {
            return Err(FilesError::NotADirectory(format!("{rel} is not a folder")));
        }
        let (tx, rx) = mpsc::channel(256);
        let store = self.store_arc();
        let policy = self.policy_arc();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut queue = VecDeque::from([(rel.clone(), String::new())]);
            let (mut scanned, mut hits) = (0u64, 0usize);
            let mut cut = None;
            'walk: while let Some((dir, prefix)) = queue.pop_front() {
                // A folder that cannot be listed (gone, or a file now) is
                // passed over.
                let Ok(entries) = store.list(&dir) else {
                    continue;
                };
                for e in entries {
                    scanned += 1;
                    if scanned > MAX_SCANNED {
                        cut = Some("entries");
                        break 'walk;
                    }
                    if started.elapsed() > MAX_TIME {
                        cut = Some("time");
                        break 'walk;
                    }
                    let Ok(child) = dir.child(&e.name) else {
                        continue;
                    };
                    let path = format!("{prefix}{}", e.name);
                    // Linked folders are not descended: no loops.
                    if e.kind == EntryKind::Dir
                        && store
                            .stat_name(&child)
                            .is_ok_and(|n| n.kind == EntryKind::Dir)
                    {
                        queue.push_back((child.clone(), format!("{path}/")));
                    }
                    if !matches!(e.kind, EntryKind::File | EntryKind::Dir)
                        || !query.matches(&e.name)
                        || allowed(&policy, &*store, who, Action::Read, &child).is_err()
                    {
                        continue;
                    }
                    let hit = TreeEntry {
                        path,
                        kind: e.kind,
                        size: e.size,
                        mtime: e.mtime,
                    };
                    if tx.blocking_send(Found::Hit(hit)).is_err() {
                        return;
                    }
                    hits += 1;
                    if hits >= query.limit {
                        cut = Some("results");
                        break 'walk;
                    }
                }
            }
            let _ = tx.blocking_send(Found::End { cut });
        });
        Ok(rx)
    }
}

/// What [`Files::walk_each`] comes to: an entry it gives, or one it
/// leaves out and why (never one under a right the walker lacks).
#[derive(Debug)]
pub enum Walked {
    /// A folder or file.
    Entry(TreeEntry),
    /// What is left out (a link out, a special file, a link to a folder,
    /// a folder or file that cannot be read).
    Skipped(Skipped),
}

impl Files {
    /// Visits everything below the folder `rel` that `who` may read,
    /// parents before children (each folder's entries by name), as it is
    /// found: nothing is gathered, so a tree of any size costs one folder
    /// listing at a time. Links to folders are not entered, and with links
    /// out, special files and folders that cannot be listed are given as
    /// [`Walked::Skipped`], as [`Files::walk`] names them; what `who` may
    /// not read is not mentioned. `visit` returns false to stop. For a
    /// blocking thread.
    pub fn walk_each(
        &self,
        who: Who,
        rel: &RelPath,
        visit: &mut dyn FnMut(Walked) -> bool,
    ) -> Result<(), FilesError> {
        self.check(who, Action::Read, rel)?;
        let store = self.store();
        let policy = self.policy();
        let mut stack = vec![(rel.clone(), String::new(), store.list(rel)?.into_iter())];
        while let Some((dir, prefix, entries)) = stack.last_mut() {
            let Some(e) = entries.next() else {
                stack.pop();
                continue;
            };
            let path = format!("{prefix}{}", e.name);
            let skipped = |why| {
                Walked::Skipped(Skipped {
                    path: path.clone(),
                    why,
                })
            };
            let Ok(child) = dir.child(&e.name) else {
                let why = match dir.parts().len() >= MAX_DEPTH {
                    true => SkipReason::TooDeep,
                    false => SkipReason::Name,
                };
                let seen = allowed(policy, store, who, Action::Read, dir).is_ok();
                if seen && !visit(skipped(why)) {
                    return Ok(());
                }
                continue;
            };
            // A folder `who` may not read is still gone through for what a
            // right below it gives (as a walk keeps it), itself unnamed.
            let hidden = allowed(policy, store, who, Action::Read, &child).is_err();
            if hidden && !(e.kind == EntryKind::Dir && policy.may_below(who, Action::Read, &child))
            {
                continue;
            }
            let why = match e.kind {
                EntryKind::File => None,
                EntryKind::Symlink => Some(SkipReason::LinkOut),
                EntryKind::Other => Some(SkipReason::Special),
                EntryKind::Dir => match store.stat_name(&child) {
                    Ok(n) if n.kind == EntryKind::Dir => None,
                    Ok(_) => Some(SkipReason::LinkToFolder),
                    // Gone since it was listed.
                    Err(FilesError::NotFound(_)) => continue,
                    Err(_) => Some(SkipReason::Unreadable),
                },
            };
            if let Some(why) = why {
                if hidden {
                    continue;
                }
                if !visit(skipped(why)) {
                    return Ok(());
                }
                continue;
            }
            let inside = match e.kind {
                EntryKind::Dir => match store.list(&child) {
                    Ok(inside) => Some(inside),
                    Err(FilesError::NotFound(_)) => continue,
                    Err(_) => {
                        if !hidden && !visit(skipped(SkipReason::Unreadable)) {
                            return Ok(());
                        }
                        continue;
                    }
                },
                _ => None,
            };
            let entry = TreeEntry {
                path: path.clone(),
                kind: e.kind,
                size: e.size,
                mtime: e.mtime,
            };
            if !hidden && !visit(Walked::Entry(entry)) {
                return Ok(());
            }
            if let Some(inside) = inside {
                stack.push((child, format!("{path}/"), inside.into_iter()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_all_match_without_case() {
        let q = Query::parse("  Report 2024 ", None).unwrap();
        assert!(q.matches("annual-REPORT-2024.pdf"));
        assert!(!q.matches("report-2023.pdf"));
        assert!(Query::parse("   ", None).is_err());
        assert!(Query::parse(&"x".repeat(300), None).is_err());
        assert_eq!(
            Query::parse("a", Some(10_000_000)).unwrap().limit,
            MAX_RESULTS
        );
        assert_eq!(Query::parse("a", Some(0)).unwrap().limit, 1);
    }
}
