//! `ferry get` and `ferry put`: files and whole folders, with automatic,
//! verified resume and progress bars on a terminal.

use std::path::{Path, PathBuf};

use clap::Args;

use super::output::bar;
use super::report::{join_remote, print_reports, report, unchanged};
use super::tree::{get_tree, put_tree, unread_fails};
use super::{connect, remote};
use crate::client::addr::Remote;
use crate::client::digests::KnownDigests;
use crate::client::local::spool;
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
    /// Download a folder and everything in it. What the server leaves out
    /// (links out, special files, names that cannot be sent) is named on
    /// standard error; what could not be read or copied too, and then the
    /// exit status is 1.
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
    /// Upload folders and everything in them. What is left out (links
    /// out, special files, partial files) is named on standard error;
    /// what could not be read or copied too, and then the exit status
    /// is 1.
    #[arg(short, long)]
    pub recursive: bool,
    /// Shared transfer flags.
    #[command(flatten)]
    pub flags: TransferFlags,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// Whether a destination names a folder to copy into, rather than the
/// copy itself: it ends with `/`, or is `.`, `..` or the server's root.
/// One rule for get and put (rclone's, with scp's trailing slash): a
/// folder copy goes to the destination as named, so the same command run
/// again lands in the same place.
fn names_a_folder(dest: &str) -> bool {
    dest.is_empty() || dest.ends_with('/') || matches!(dest.rsplit('/').next(), Some("." | ".."))
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

/// Connects for a transfer: verified with SHA-256 when asked, and with the
/// digests of local files this machine remembers (see
/// [`crate::client::digests`]).
async fn connect_for(r: &Remote, sha256: bool) -> Result<Client, ClientError> {
    let mut c = connect(r).await?;
    if sha256 {
        c.verify_with_sha256();
    }
    if let Some(path) = KnownDigests::default_path() {
        c.keep_digests(KnownDigests::at(path));
    }
    Ok(c)
}

pub(crate) async fn get(a: GetArgs) -> Result<(), ClientError> {
    let r = remote(&a.remote)?;
    RelPath::parse(&r.path)?;
    let mut c = connect_for(&r, a.flags.sha256).await?;
    let entry = c.stat(&r.path).await?;
    if a.local.as_deref() == Some(Path::new("-")) {
        return get_to_stdout(&mut c, &a, &r.path, entry.kind).await;
    }
    // Ctrl-C stops a download where it is, its partial file put in order.
    let stop = super::interrupt::catch();
    c.stop_on(stop.clone());
    super::interrupt::stoppable(&stop, get_into(&mut c, a, &r, entry)).await
}

/// `ferry get` into a file or a folder, `entry` being what the server has
/// at `r`.
async fn get_into(
    c: &mut Client,
    a: GetArgs,
    r: &Remote,
    entry: crate::wire::messages::Entry,
) -> Result<(), ClientError> {
    let rel = RelPath::parse(&r.path)?;
    let opts = a.flags.opts();
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
            unread = get_tree(c, &r.path, &top, opts, &mut reports).await?;
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
            match same_here(c, &r.path, &dest, entry.size).await? {
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

pub(crate) async fn put(a: PutArgs) -> Result<(), ClientError> {
    let sources = &a.sources;
    let r = remote(&a.dest)?;
    RelPath::parse(&r.path)?;
    let opts = a.flags.opts();
    let mut c = connect_for(&r, a.flags.sha256).await?;
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
    // Ctrl-C stops an upload where it is, saying how far it got.
    let stop = super::interrupt::catch();
    c.stop_on(stop.clone());
    super::interrupt::stoppable(&stop, put_files(&mut c, &a, &r, there)).await
}

/// `ferry put` of files and folders to `r`, where the server has `there`.
async fn put_files(
    c: &mut Client,
    a: &PutArgs,
    r: &Remote,
    there: Option<EntryKind>,
) -> Result<(), ClientError> {
    let (sources, opts) = (&a.sources, a.flags.opts());
    let dest_is_dir = there == Some(EntryKind::Dir);
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
            unread += put_tree(c, path, &target, opts, &mut reports).await?;
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
                true => same_there(c, &target, path, meta.len()).await?,
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
