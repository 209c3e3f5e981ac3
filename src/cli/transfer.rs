//! `ferry get` and `ferry put`: files and whole folders, with automatic,
//! verified resume and progress bars on a terminal.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::output::bar;
use super::{connect, remote};
use crate::client::local::walk_local;
use crate::client::{Client, ClientError, TransferOpts, Transferred};
use crate::files::RelPath;
use crate::text::escape;
use crate::wire::messages::{EntryKind, ErrorCode};

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

/// One line of the `--json` report.
#[derive(Debug, Serialize)]
struct Report {
    path: String,
    size: u64,
    sha256: String,
    resumed_from: u64,
}

fn report(path: &str, t: &Transferred) -> Report {
    Report {
        path: path.to_string(),
        size: t.size,
        sha256: t.sha256.clone(),
        resumed_from: t.resumed_from,
    }
}

fn join_remote(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

fn print_reports(json: bool, reports: &[Report]) -> Result<(), ClientError> {
    if json {
        super::output::print_json(&reports)?;
    }
    Ok(())
}

pub(crate) async fn get(a: GetArgs) -> Result<(), ClientError> {
    let r = remote(&a.remote)?;
    let rel = RelPath::parse(&r.path)?;
    let opts = a.flags.opts();
    let mut c = connect(&r).await?;
    let entry = c.stat(&r.path).await?;
    if a.local.as_deref() == Some(Path::new("-")) {
        return get_to_stdout(&mut c, &a, &r.path, entry.kind).await;
    }
    let local = a.local.unwrap_or_else(|| PathBuf::from("."));
    // Into an existing folder under the remote name, or to the name given.
    let target = |name: Option<&str>| match name {
        Some(n) if local.is_dir() => local.join(n),
        _ => local.clone(),
    };
    let mut reports = Vec::new();
    match entry.kind {
        EntryKind::Dir if !a.recursive => {
            return Err(ClientError::Remote {
                code: ErrorCode::IsADirectory,
                message: format!("{rel} is a folder; use -r to download it"),
            });
        }
        EntryKind::Dir => {
            let top = target(rel.file_name());
            get_tree(&mut c, &r.path, &top, opts, &mut reports).await?;
        }
        _ => {
            let Some(name) = rel.file_name() else {
                return Err(ClientError::Local("nothing to download".into()));
            };
            let dest = target(Some(name));
            let t = c.get_file(&r.path, &dest, opts, &bar(name)).await?;
            reports.push(report(&dest.display().to_string(), &t));
        }
    }
    print_reports(a.flags.json, &reports)
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
) -> Result<(), ClientError> {
    // The whole tree is named and checked before anything is written.
    let entries = c.walk(remote_dir).await?;
    if !opts.force {
        for e in entries.iter().filter(|e| e.kind == EntryKind::File) {
            let p = RelPath::parse(&e.path)?.to_path(top);
            if std::fs::symlink_metadata(&p).is_ok() {
                return Err(ClientError::Exists(
                    escape(&p.display().to_string()).into_owned(),
                ));
            }
        }
    }
    std::fs::create_dir_all(top).map_err(|e| ClientError::local(top, e))?;
    for e in &entries {
        let dest = RelPath::parse(&e.path)?.to_path(top);
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
    Ok(())
}

pub(crate) async fn put(a: PutArgs) -> Result<(), ClientError> {
    let sources = &a.sources;
    let r = remote(&a.dest)?;
    RelPath::parse(&r.path)?;
    let opts = a.flags.opts();
    let mut c = connect(&r).await?;
    let dest_is_dir = match c.stat(&r.path).await {
        Ok(e) => e.kind == EntryKind::Dir,
        Err(e) if e.code() == Some(ErrorCode::NotFound) => false,
        Err(e) => return Err(e),
    };
    if sources.iter().any(|s| s == "-") {
        if sources.len() > 1 || dest_is_dir || a.recursive {
            return Err(ClientError::Usage(
                "`-` (standard input) is the only source, and the destination names the file: ferry put - HOST:/PATH/NAME".into(),
            ));
        }
        let t = put_stdin(&mut c, &r.path, opts).await?;
        return print_reports(a.flags.json, &[report(&r.path, &t)]);
    }
    if !dest_is_dir && sources.len() > 1 {
        return Err(ClientError::Local(format!(
            "{} is not a folder on the server; several sources need one",
            escape(&r.path)
        )));
    }
    let mut reports = Vec::new();
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
        let target = if dest_is_dir {
            join_remote(&r.path, &name)
        } else {
            r.path.clone()
        };
        if meta.is_dir() {
            if !a.recursive {
                return Err(ClientError::Local(format!(
                    "{} is a folder; use -r to upload it",
                    escape(src)
                )));
            }
            put_tree(&mut c, path, &target, opts, &mut reports).await?;
        } else {
            let t = c.put_file(path, &target, opts, &bar(&name)).await?;
            reports.push(report(&target, &t));
        }
    }
    print_reports(a.flags.json, &reports)
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

/// A file in the temporary folder that only this process can reach: made
/// new, readable by its owner alone, and unlinked at once, so that
/// nothing of standard input is left behind however the process ends.
fn spool() -> Result<std::fs::File, ClientError> {
    use std::os::unix::fs::OpenOptionsExt;
    let id = crate::ids::random_hex().map_err(|e| ClientError::Local(e.to_string()))?;
    let path = std::env::temp_dir().join(format!(".ferry-stdin-{id}"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ClientError::local(&path, e))?;
    std::fs::remove_file(&path).map_err(|e| ClientError::local(&path, e))?;
    Ok(file)
}

async fn put_tree(
    c: &mut Client,
    local: &Path,
    remote_top: &str,
    opts: TransferOpts,
    reports: &mut Vec<Report>,
) -> Result<(), ClientError> {
    let tree = walk_local(local)?;
    for s in &tree.skipped {
        eprintln!("ferry: skipping {s}");
    }
    // Checked whole, here and again on the server, before anything is sent.
    crate::files::name::check_batch(
        tree.entries
            .iter()
            .map(|e| (e.path.as_str(), e.kind == EntryKind::Dir)),
    )?;
    c.plan(remote_top, &tree.entries, opts.force).await?;
    c.mkdir(remote_top, true).await?;
    for (e, path) in tree.entries.iter().zip(&tree.paths) {
        let target = join_remote(remote_top, &e.path);
        match e.kind {
            EntryKind::Dir => c.mkdir(&target, true).await?,
            _ => {
                let t = c.put_file(path, &target, opts, &bar(&e.path)).await?;
                reports.push(report(&target, &t));
            }
        }
    }
    Ok(())
}
