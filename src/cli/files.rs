//! `ferry ls | stat | rm | mkdir | mv`: the small file operations.

use clap::Args;

use super::output::{size, time};
use super::{connect, remote};
use crate::client::ClientError;
use crate::text::escape;
use crate::wire::messages::{Entry, EntryKind};

/// Arguments of `ferry ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// HOST[:PORT][:/PATH]
    pub remote: String,
    /// Print JSON (one array of entries) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// Arguments of `ferry stat`.
#[derive(Debug, Args)]
pub struct StatArgs {
    /// HOST[:PORT]:/PATH
    pub remote: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// Arguments of `ferry rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// HOST[:PORT]:/PATH
    pub remote: String,
    /// Remove a folder and everything in it.
    #[arg(short, long)]
    pub recursive: bool,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// Arguments of `ferry mkdir`.
#[derive(Debug, Args)]
pub struct MkdirArgs {
    /// HOST[:PORT]:/PATH
    pub remote: String,
    /// Create missing parents; no error if it exists.
    #[arg(short, long)]
    pub parents: bool,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// Arguments of `ferry mv`.
#[derive(Debug, Args)]
pub struct MvArgs {
    /// HOST[:PORT]:/FROM
    pub remote: String,
    /// New path on the same server.
    pub to: String,
    /// Replace an existing file at the destination.
    #[arg(short, long)]
    pub force: bool,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

fn kind_char(k: EntryKind) -> char {
    match k {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Other => '?',
    }
}

fn print_entry(e: &Entry) {
    let name = escape(&e.name);
    let suffix = if e.kind == EntryKind::Dir { "/" } else { "" };
    println!(
        "{} {:>10}  {}  {name}{suffix}",
        kind_char(e.kind),
        size(e.size),
        time(e.mtime)
    );
}

use super::output::print_json as json;
use crate::files::entry::Shown;

pub(crate) async fn ls(a: LsArgs) -> Result<(), ClientError> {
    let r = remote(&a.remote)?;
    let mut c = connect(&r).await?;
    let entries = c.ls(&r.path).await?;
    if a.json {
        let shown: Vec<Shown> = entries.iter().map(Shown::from).collect();
        return json(&shown);
    }
    for e in &entries {
        print_entry(e);
    }
    Ok(())
}

pub(crate) async fn stat(a: StatArgs) -> Result<(), ClientError> {
    let r = remote(&a.remote)?;
    let mut c = connect(&r).await?;
    let e = c.stat(&r.path).await?;
    if a.json {
        return json(&Shown::from(&e));
    }
    print_entry(&e);
    Ok(())
}

pub(crate) async fn rm(a: RmArgs) -> Result<(), ClientError> {
    let r = remote(&a.remote)?;
    connect(&r).await?.rm(&r.path, a.recursive).await
}

pub(crate) async fn mkdir(a: MkdirArgs) -> Result<(), ClientError> {
    let r = remote(&a.remote)?;
    connect(&r).await?.mkdir(&r.path, a.parents).await
}

pub(crate) async fn mv(a: MvArgs) -> Result<(), ClientError> {
    let r = remote(&a.remote)?;
    connect(&r).await?.mv(&r.path, &a.to, a.force).await
}
