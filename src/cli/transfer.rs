//! `ferry get` and `ferry put`: files and whole folders, with automatic,
//! verified resume and progress bars on a terminal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::output::bar;
use super::{connect, remote};
use crate::client::local::{LocalTree, spool, walk_local};
use crate::client::{Client, ClientError, TransferOpts, Transferred};
use crate::files::RelPath;
use crate::files::digest::Algo;
use crate::text::escape;
use crate::wire::messages::{EntryKind, ErrorCode, SkipReason, Skipped, TreeEntry};

/// Flags both transfer directions share.
#[derive(Debug, Args)]
pub struct TransferFlags {
    /// Overwrite files that exist at the destination (on a server, this
    /// needs its delete permission).
    #[arg(short, long)]
    pub force: bool,
    /// Start over instead of resuming an interrupted transfer.
    #[arg(long)]
    pub no_resume: bool,
    /// Print what was transferred as JSON.
    #[arg(long)]
    pub json: bool,
    /// Verify with SHA-256 (and report it, for `sha256sum`) even where
    /// the server offers the faster BLAKE3.
    #[arg(long)]
    pub sha256: bool,
}

impl TransferFlags {
    fn opts(&self) -> TransferOpts {
        TransferOpts {
            force: self.force,
            resume: !self.no_resume,
        }
    }
}

/// Arguments of `ferry get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// HOST[:PORT]:/PATH of a file, or of a folder with -r.
    pub remote: String,
    /// Where to put it: a folder to put it in, a new name, or `-` for
    /// standard output. [default: .]
    pub local: Option<PathBuf>,
    /// Download a folder and everything in it.
    #[arg(short, long)]
    pub recursive: bool,
    /// Shared transfer flags.
    #[command(flatten)]
    pub flags: TransferFlags,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// Arguments of `ferry put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// Local files, or folders with -r (`-`: standard input).
    #[arg(required = true, value_name = "LOCAL")]
    pub sources: Vec<String>,
    /// HOST[:PORT]:/PATH: a folder to put them in, or, for a single
    /// source, the new name.
    #[arg(value_name = "REMOTE")]
    pub dest: String,
    /// Upload folders and everything in them.
    #[arg(short, long)]
    pub recursive: bool,
    /// Shared transfer flags.
    #[command(flatten)]
    pub flags: TransferFlags,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// One line of the `--json` report: the digest under its algorithm's
/// name (`blake3` or `sha256`).
#[derive(Debug, Serialize)]
struct Report {
    path: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blake3: Option<String>,
    resumed_from: u64,
    /// Already there, the same bytes: nothing was sent.
    unchanged: bool,
}

fn report(path: &str, t: &Transferred) -> Report {
    let mut r = unchanged(path, t.size, t.digest.clone(), t.algo);
    r.resumed_from = t.resumed_from;
    r.unchanged = false;
    r
}

fn unchanged(path: &str, size: u64, digest: String, algo: Algo) -> Report {
    let (sha256, blake3) = match algo {
        Algo::Sha256 => (Some(digest), None),
        Algo::Blake3 => (None, Some(digest)),
    };
    Report {
        path: path.to_string(),
        size,
        sha256,
        blake3,
        resumed_from: size,
        unchanged: true,
    }
}

fn join_remote(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// Whether a destination names a folder to copy into, rather than the
/// copy itself: it ends with `/`, or is `.`, `..` or the server's root.
/// One rule for get and put (rclone's, with scp's trailing slash): a
/// folder copy goes to the destination as named, so the same command run
/// again lands in the same place.
fn names_a_folder(dest: &str) -> bool {
    dest.is_empty() || dest.ends_with('/') || matches!(dest.rsplit('/').next(), Some("." | ".."))
}

fn print_reports(json: bool, reports: &[Report]) -> Result<(), ClientError> {
    let same = reports.iter().filter(|r| r.unchanged).count();
    if same > 0 && !json {
        let sent = reports.len() - same;
        crate::say!("ferry: {same} unchanged (skipped), {sent} transferred");
    }
    if json {
        super::output::print_json(&reports)?;
    }
    Ok(())
}

/// The SHA-256 of a local file that is already there with the same bytes
/// as the remote one (`size` bytes): then there is nothing to download.
async fn same_here(
    c: &mut Client,
    remote: &str,
    local: &Path,
    size: u64,
) -> Result<Option<String>, ClientError> {
    match std::fs::symlink_metadata(local) {
        Ok(m) if m.is_file() && m.len() == size => c.same_file(remote, local, size).await,
        _ => Ok(None),
    }
}

/// The SHA-256 of a local file whose bytes the server holds already at
/// `remote` (`size` bytes): then there is nothing to upload.
async fn same_there(
    c: &mut Client,
    remote: &str,
    local: &Path,
    size: u64,
) -> Result<Option<String>, ClientError> {
    match c.stat(remote).await {
        Ok(e) if e.kind == EntryKind::File && e.size == size => {
            c.same_file(remote, local, size).await
        }
        Ok(_) => Ok(None),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

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

pub(crate) async fn get(a: GetArgs) -> Result<(), ClientError> {
    let r = remote(&a.remote)?;
    let rel = RelPath::parse(&r.path)?;
    let opts = a.flags.opts();
    let mut c = connect(&r).await?;
    if a.flags.sha256 {
        c.verify_with_sha256();
    }
    let entry = c.stat(&r.path).await?;
    if a.local.as_deref() == Some(Path::new("-")) {
        return get_to_stdout(&mut c, &a, &r.path, entry.kind).await;
    }
    let into = a
        .local
        .as_ref()
        .is_none_or(|l| names_a_folder(&l.to_string_lossy()));
    let local = a.local.unwrap_or_else(|| PathBuf::from("."));
    let mut reports = Vec::new();
    let mut unread = 0;
    match entry.kind {
        EntryKind::Dir if !a.recursive => {
            return Err(ClientError::Remote {
                code: ErrorCode::IsADirectory,
                message: format!("{rel} is a folder; use -r to download it"),
            });
        }
        EntryKind::Dir => {
            let top = match rel.file_name() {
                Some(n) if into => local.join(n),
                _ => local,
            };
            // A folder named after the source is made, or updated, there:
            // never through a link someone left at that name (one the
            // destination itself names is followed, as cp does).
            if into && std::fs::symlink_metadata(&top).is_ok_and(|m| m.is_symlink()) {
                return Err(ClientError::Local(format!(
                    "{} is a symbolic link, where the folder goes; ferry does not write through it",
                    escape(&top.display().to_string())
                )));
            }
            unread = get_tree(&mut c, &r.path, &top, opts, &mut reports).await?;
        }
        _ => {
            let Some(name) = rel.file_name() else {
                return Err(ClientError::Local("nothing to download".into()));
            };
            // A file goes inside a folder that is there, as with cp.
            let dest = if into || local.is_dir() {
                local.join(name)
            } else {
                local
            };
            let shown = dest.display().to_string();
            match same_here(&mut c, &r.path, &dest, entry.size).await? {
                Some(sha) => reports.push(unchanged(&shown, entry.size, sha, c.digest())),
                None => {
                    let t = c.get_file(&r.path, &dest, opts, &bar(name)).await?;
                    reports.push(report(&shown, &t));
                }
            }
        }
    }
    print_reports(a.flags.json, &reports)?;
    unread_fails(unread)
}

/// `ferry get HOST:/FILE -`: the file on standard output, as it comes.
async fn get_to_stdout(
    c: &mut Client,
    a: &GetArgs,
    path: &str,
    kind: EntryKind,
) -> Result<(), ClientError> {
    if a.recursive || kind == EntryKind::Dir {
        return Err(ClientError::Usage(
            "a folder cannot go to standard output (use ?tar over HTTP, or get -r into a folder)"
                .into(),
        ));
    }
    if a.flags.json {
        return Err(ClientError::Usage(
            "--json and `-` would both write to standard output".into(),
        ));
    }
    c.get_to(path, &mut tokio::io::stdout()).await?;
    Ok(())
}

async fn get_tree(
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
    // Two names that differ only in case would be one file here, on a
    // disk that ignores case: refused before anything is written.
    if crate::files::case::ignores_case(top) {
        crate::files::name::check_batch(
            walked
                .entries
                .iter()
                .map(|e| (e.path.as_str(), e.kind == EntryKind::Dir)),
            true,
        )?;
    }
    let unread = say_skipped(&walked.skipped, walked.skipped_more);
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
                match c.same_file(&from, &dest, e.size).await? {
                    Some(sha) => reports.push(unchanged(&shown, e.size, sha, c.digest())),
                    None if opts.force => todo.push((e, dest)),
                    None => differ.push(shown),
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
                let t = c.get_file(&from, &dest, opts, &bar(&e.path)).await?;
                reports.push(report(&dest.display().to_string(), &t));
            }
        }
    }
    Ok(unread)
}

pub(crate) async fn put(a: PutArgs) -> Result<(), ClientError> {
    let sources = &a.sources;
    let r = remote(&a.dest)?;
    RelPath::parse(&r.path)?;
    let opts = a.flags.opts();
    let mut c = connect(&r).await?;
    if a.flags.sha256 {
        c.verify_with_sha256();
    }
    let there = match c.stat(&r.path).await {
        Ok(e) => Some(e.kind),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => None,
        Err(e) => return Err(e),
    };
    let dest_is_dir = there == Some(EntryKind::Dir);
    if sources.iter().any(|s| s == "-") {
        if sources.len() > 1 || dest_is_dir || a.recursive {
            return Err(ClientError::Usage(
                "`-` (standard input) is the only source, and the destination names the file: ferry put - HOST:/PATH/NAME".into(),
            ));
        }
        let t = put_stdin(&mut c, &r.path, opts).await?;
        return print_reports(a.flags.json, &[report(&r.path, &t)]);
    }
    let into = sources.len() > 1 || names_a_folder(&r.path);
    if into && !dest_is_dir {
        if there.is_some() {
            return Err(ClientError::Local(format!(
                "{} is not a folder on the server",
                escape(&r.path)
            )));
        }
        c.mkdir(&r.path, true).await?;
    }
    let mut reports = Vec::new();
    let mut unread = 0;
    for src in sources {
        let path = Path::new(src);
        let meta = std::fs::metadata(path).map_err(|e| ClientError::local(path, e))?;
        let name = match path.file_name() {
            Some(n) => RelPath::component_from_os(n)?,
            None => {
                let real = std::fs::canonicalize(path).map_err(|e| ClientError::local(path, e))?;
                RelPath::component_from_os(real.file_name().unwrap_or_default())?
            }
        };
        if meta.is_dir() {
            if !a.recursive {
                return Err(ClientError::Local(format!(
                    "{} is a folder; use -r to upload it",
                    escape(src)
                )));
            }
            let target = if into {
                join_remote(&r.path, &name)
            } else {
                r.path.clone()
            };
            unread += put_tree(&mut c, path, &target, opts, &mut reports).await?;
        } else {
            // A file goes inside a folder that is there, as with cp.
            let target = if into || dest_is_dir {
                join_remote(&r.path, &name)
            } else {
                r.path.clone()
            };
            // Only a regular file is compared: opening a FIFO to hash it
            // would wait for a writer (put_file refuses it clearly).
            let same = match meta.is_file() {
                true => same_there(&mut c, &target, path, meta.len()).await?,
                false => None,
            };
            match same {
                Some(sha) => reports.push(unchanged(&target, meta.len(), sha, c.digest())),
                None => {
                    let t = c.put_file(path, &target, opts, &bar(&name)).await?;
                    reports.push(report(&target, &t));
                }
            }
        }
    }
    print_reports(a.flags.json, &reports)?;
    unread_fails(unread)
}

/// `ferry put - HOST:/FILE`: standard input, uploaded whole and verified.
/// A file redirected in (`< file`) from its start is sent as it is, and
/// resumes like any file; anything else (a pipe, a file read part way) is
/// first kept in the temporary folder, since an upload announces its size
/// and digest (as `rclone rcat` and `aws s3 cp -` do above their memory
/// limits).
async fn put_stdin(
    c: &mut Client,
    target: &str,
    opts: TransferOpts,
) -> Result<Transferred, ClientError> {
    use std::os::fd::AsRawFd;
    let stdin = std::io::stdin();
    let whole_file = std::fs::metadata("/dev/stdin").is_ok_and(|m| m.is_file())
        && nix::unistd::lseek(&stdin, 0, nix::unistd::Whence::SeekCur) == Ok(0);
    if whole_file {
        return c
            .put_file(Path::new("/dev/stdin"), target, opts, &bar(target))
            .await;
    }
    let spool = spool()?;
    let path = PathBuf::from(format!("/proc/self/fd/{}", spool.as_raw_fd()));
    let kept = |e: std::io::Error| ClientError::Local(format!("keeping standard input: {e}"));
    let mut file = tokio::fs::File::from_std(spool.try_clone().map_err(kept)?);
    tokio::io::copy(&mut tokio::io::stdin(), &mut file)
        .await
        .map_err(kept)?;
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(kept)?;
    let opts = TransferOpts {
        resume: false,
        ..opts
    };
    c.put_file(&path, target, opts, &bar(target)).await
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

/// After a folder transfer: an error when some of it could not be read.
fn unread_fails(unread: usize) -> Result<(), ClientError> {
    match unread {
        0 => Ok(()),
        n => Err(ClientError::Local(format!(
            "{n} could not be read (named above); everything else was transferred"
        ))),
    }
}

async fn put_tree(
    c: &mut Client,
    local: &Path,
    remote_top: &str,
    opts: TransferOpts,
    reports: &mut Vec<Report>,
) -> Result<usize, ClientError> {
    let mut tree = walk_local(local)?;
    let unread = say_skipped(&tree.skipped, 0);
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
        false,
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
            if let Some(sha) = c.same_file(&target, &path, e.size).await? {
                reports.push(unchanged(&target, e.size, sha, c.digest()));
                continue;
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
            _ => {
                let t = c.put_file(&path, &target, opts, &bar(&e.path)).await?;
                reports.push(report(&target, &t));
            }
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
