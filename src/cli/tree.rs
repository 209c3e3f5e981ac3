//! Folder transfers: a tree walked whole (on the server for `get -r`,
//! here for `put -r`), compared with what is there, then copied a file at
//! a time; what is left out is named, and what could not be copied makes
//! the transfer fail once the rest is done.

use std::collections::HashMap;
use std::path::Path;

use super::output::bar;
use super::report::{Report, join_remote, report, unchanged};
use crate::client::local::{LocalTree, walk_local};
use crate::client::{Client, ClientError, TransferOpts};
use crate::files::RelPath;
use crate::text::escape;
use crate::wire::messages::{EntryKind, ErrorCode, SkipReason, Skipped, TreeEntry};

/// Refuses when files in the way differ and `--force` was not given.
fn refuse_differing(differ: &[String]) -> Result<(), ClientError> {
    match differ {
        [] => Ok(()),
        [one] => Err(ClientError::Exists(format!("{one} exists and differs"))),
        [first, rest @ ..] => Err(ClientError::Exists(format!(
            "{first} and {} more exist and differ",
            rest.len()
        ))),
    }
}

pub(super) async fn get_tree(
    c: &mut Client,
    remote_dir: &str,
    top: &Path,
    opts: TransferOpts,
    reports: &mut Vec<Report>,
) -> Result<usize, ClientError> {
    // The whole tree is named and compared before anything is written:
    // a file that is there with the same bytes is skipped, a partial one
    // resumes, and one that differs stops it all unless --force.
    let walked = c.walk(remote_dir).await?;
    // Two names that differ only in case would be one file here, in a
    // folder on a disk that ignores case: refused before anything is
    // written. Each folder that holds such a pair is asked of its disk.
    crate::files::case::refuse_merging_pairs(
        walked.entries.iter().map(|e| e.path.as_str()),
        |folder| crate::files::case::ignores_case(&top.join(folder)),
    )?;
    let mut unread = say_skipped(&walked.skipped, walked.skipped_more);
    let mut todo = Vec::new();
    let mut differ = Vec::new();
    for e in walked.entries {
        let dest = RelPath::parse(&e.path)?.to_path(top);
        if e.kind != EntryKind::File {
            if std::fs::symlink_metadata(&dest).is_ok_and(|m| !m.is_dir()) {
                return Err(ClientError::Local(format!(
                    "{} is in the way of a folder",
                    escape(&dest.display().to_string())
                )));
            }
            todo.push((e, dest));
            continue;
        }
        let from = join_remote(remote_dir, &e.path);
        let shown = escape(&dest.display().to_string()).into_owned();
        match std::fs::symlink_metadata(&dest) {
            Err(_) => todo.push((e, dest)),
            Ok(m) if m.is_file() && m.len() == e.size => {
                match c.same_file(&from, &dest, e.size).await {
                    Ok(Some(sha)) => reports.push(unchanged(&shown, e.size, sha, c.digest())),
                    Ok(None) if opts.force => todo.push((e, dest)),
                    Ok(None) => differ.push(shown),
                    // Removed or replaced there since the walk.
                    Err(err) if changed_there(&err) => skip(&mut unread, &e.path, &err),
                    Err(err) => return Err(err),
                }
            }
            Ok(m) if m.is_dir() => {
                return Err(ClientError::Local(format!("{shown} is a folder")));
            }
            Ok(_) if opts.force => todo.push((e, dest)),
            Ok(_) => differ.push(shown),
        }
    }
    refuse_differing(&differ)?;
    std::fs::create_dir_all(top).map_err(|e| ClientError::local(top, e))?;
    for (e, dest) in todo {
        match e.kind {
            EntryKind::Dir => {
                std::fs::create_dir_all(&dest).map_err(|err| ClientError::local(&dest, err))?
            }
            _ => {
                let from = join_remote(remote_dir, &e.path);
                match c.get_file(&from, &dest, opts, &bar(&e.path)).await {
                    Ok(t) => reports.push(report(&dest.display().to_string(), &t)),
                    Err(err) if changed_there(&err) => skip(&mut unread, &e.path, &err),
                    Err(err) => return Err(err),
                }
            }
        }
    }
    Ok(unread)
}

/// Whether a file of a folder download failed because the server's folder
/// changed since it was walked (the file was removed, or something else
/// now stands at its name): said, and the rest goes on.
fn changed_there(err: &ClientError) -> bool {
    matches!(
        err.code(),
        Some(ErrorCode::NotFound | ErrorCode::IsADirectory | ErrorCode::Forbidden)
    )
}

/// A file of a folder transfer that could not be copied: named, counted,
/// and the rest goes on.
fn skip(unread: &mut usize, path: &str, err: &ClientError) {
    crate::say!("ferry: skipping {} ({err})", escape(path));
    *unread += 1;
}

/// Names what a folder transfer leaves out, one line each on standard
/// error, as rsync does, and the rest goes on. Gives how many of them
/// could not be read: those make the transfer fail once it is done.
fn say_skipped(skipped: &[Skipped], more: u64) -> usize {
    for s in skipped {
        crate::say!("ferry: skipping {} ({})", escape(&s.path), s.why.words());
    }
    if more > 0 {
        crate::say!("ferry: skipping {more} more that the server did not name");
    }
    skipped
        .iter()
        .filter(|s| s.why == SkipReason::Unreadable)
        .count()
}

/// After a folder transfer: an error when some of it could not be read
/// or copied.
pub(super) fn unread_fails(unread: usize) -> Result<(), ClientError> {
    match unread {
        0 => Ok(()),
        n => Err(ClientError::Local(format!(
            "{n} could not be copied (named above); everything else was transferred"
        ))),
    }
}

pub(super) async fn put_tree(
    c: &mut Client,
    local: &Path,
    remote_top: &str,
    opts: TransferOpts,
    reports: &mut Vec<Report>,
) -> Result<usize, ClientError> {
    let mut tree = walk_local(local)?;
    let mut unread = say_skipped(&tree.skipped, 0);
    if !c.offers("hidden") {
        leave_out_hidden(&mut tree);
    }
    // Checked whole, here and again on the server, before anything is
    // sent; whether two names may differ only in case is the server's
    // disk's to say.
    crate::files::name::check_batch(
        tree.entries
            .iter()
            .map(|e| (e.path.as_str(), e.kind == EntryKind::Dir)),
    )?;
    // What is there already: a file with the same bytes is skipped, a
    // partial one resumes (the server offers it), and one that differs is
    // refused by the plan unless --force.
    let there: HashMap<String, u64> = match c.walk(remote_top).await {
        Ok(v) => v
            .entries
            .into_iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| (e.path, e.size))
            .collect(),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => HashMap::new(),
        Err(e) if e.code() == Some(ErrorCode::NotADirectory) => HashMap::new(),
        Err(e) => return Err(e),
    };
    let mut todo = Vec::new();
    for (e, path) in tree.entries.into_iter().zip(tree.paths) {
        let target = join_remote(remote_top, &e.path);
        if e.kind == EntryKind::File && there.get(&e.path) == Some(&e.size) {
            match c.same_file(&target, &path, e.size).await {
                Ok(Some(sha)) => {
                    reports.push(unchanged(&target, e.size, sha, c.digest()));
                    continue;
                }
                Ok(None) => {}
                // Removed there since it was listed: sent as a new file.
                Err(err) if err.code() == Some(ErrorCode::NotFound) => {}
                // Removed or unreadable here since the walk.
                Err(err @ ClientError::Local(_)) => {
                    skip(&mut unread, &e.path, &err);
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
        todo.push((e, path, target));
    }
    let planned: Vec<TreeEntry> = todo.iter().map(|(e, _, _)| e.clone()).collect();
    c.plan(remote_top, &planned, opts.force).await?;
    c.mkdir(remote_top, true).await?;
    for (e, path, target) in todo {
        match e.kind {
            EntryKind::Dir => c.mkdir(&target, true).await?,
            _ => match c.put_file(&path, &target, opts, &bar(&e.path)).await {
                Ok(t) => reports.push(report(&target, &t)),
                // This file could not be read here (removed or replaced
                // since the folder was walked, or unreadable): said, and
                // the rest goes on. What the server refuses stops it all.
                Err(err @ ClientError::Local(_)) => skip(&mut unread, &e.path, &err),
                Err(err) => return Err(err),
            },
        }
    }
    Ok(unread)
}

/// Leaves out entries with a name starting with a dot (and what is below
/// them), for a server that does not take such names, and says so once.
fn leave_out_hidden(tree: &mut LocalTree) {
    let hidden = |p: &str| p.split('/').any(crate::files::shown::is_hidden_name);
    let mut kept = LocalTree::default();
    let mut left: Vec<String> = Vec::new();
    for (e, path) in tree.entries.drain(..).zip(tree.paths.drain(..)) {
        if hidden(&e.path) {
            if !left.iter().any(|l| e.path.starts_with(&format!("{l}/"))) {
                left.push(e.path);
            }
            continue;
        }
        kept.entries.push(e);
        kept.paths.push(path);
    }
    if !left.is_empty() {
        let names: Vec<_> = left
            .iter()
            .take(3)
            .map(|l| escape(l).into_owned())
            .collect();
        let more = left.len().saturating_sub(3);
        crate::say!(
            "ferry: leaving out {}{}: the server does not take names starting with a dot (it would with --hidden)",
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    tree.entries = kept.entries;
    tree.paths = kept.paths;
}
