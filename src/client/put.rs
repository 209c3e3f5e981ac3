//! Uploads of single files (see [`super::transfer`] for resume and the
//! digest): a file sent from the page cache with `sendfile` where the
//! connection is plain TCP and hashed on the side, its bytes committed
//! only when the file did not change while they were sent. A kernel file
//! is read whole first, so that its size is known.

use std::path::Path;

use indicatif::ProgressBar;

use super::connect::Owed;
use super::digests::Hashing;
use super::transfer::{TransferOpts, Transferred, join_err, wire_name};
use super::{ClientError, Result, remote_error, terminal};
use crate::files::RelPath;
use crate::files::digest::hash_prefix;
use crate::files::digests::identity_of;
use crate::files::part::mtime_of;
use crate::files::pipe::spawn_reader;
use crate::files::pseudo::size_unknown;
use crate::wire::body::{SendError, send_body, send_file};
use crate::wire::messages::{Digest, PutReady, Request};
use crate::wire::{ConnError, Connection, Kind};

impl super::Client {
    /// Uploads one file from `local` (see [`super::transfer`]'s notes).
    pub async fn put_file(
        &mut self,
        local: &Path,
        remote: &str,
        opts: TransferOpts,
        bar: &ProgressBar,
    ) -> Result<Transferred> {
        let algo = self.digest();
        let mut owed = self.owed();
        let mut hashing = Hashing {
            algo,
            known: self.known.as_mut(),
            offered: false,
        };
        let (conn, hashing, stop) = (&mut self.conn, &mut hashing, &self.stop);
        let r = loop {
            let how = (&mut *hashing, stop);
            let r = put_file(conn, &mut owed, local, remote, opts, bar, how).await;
            if hashing.offered && r.as_ref().is_err_and(ClientError::is_mismatch) {
                // The digest remembered for the file was stale (a file
                // written through a memory mapping keeps its times), and is
                // forgotten: once more, hashed as it is sent.
                hashing.offered = false;
                continue;
            }
            break r;
        };
        self.settled(owed);
        r
    }
}

async fn put_file(
    conn: &mut Connection,
    owed: &mut Owed,
    local: &Path,
    remote: &str,
    opts: TransferOpts,
    bar: &ProgressBar,
    (hashing, stop): (&mut Hashing<'_>, &tokio_util::sync::CancellationToken),
) -> Result<Transferred> {
    RelPath::parse(remote)?;
    super::transfer::not_stopped(stop, local)?;
    let algo = hashing.algo;
    // Non-blocking, so that a FIFO given as the source is refused below
    // instead of waiting for a writer; a regular file reads the same.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(local)
            .map_err(|e| ClientError::local(local, e))?
    };
    let meta = file.metadata().map_err(|e| ClientError::local(local, e))?;
    if !meta.is_file() {
        return Err(ClientError::Local(format!(
            "{} is not a regular file",
            crate::text::escape(&local.display().to_string())
        )));
    }
    let mtime = mtime_of(&meta);
    let unknown = size_unknown(&file, &meta).map_err(|e| ClientError::local(local, e))?;
    let (file, size) = if unknown {
        read_whole(file)
            .await
            .map_err(|e| ClientError::local(local, e))?
    } else {
        (file, meta.len())
    };
    // The same open file, looked at again once its bytes are sent.
    let watch = file.try_clone().ok();
    let before = identity_of(&file);
    conn.send(
        Kind::Request,
        &Request::Put {
            path: remote.into(),
            size,
            mtime,
            force: opts.force,
            resume: opts.resume,
            digest: wire_name(algo),
        },
        0,
    )
    .await?;
    owed.settle(conn).await?;
    let head = conn.next_head().await?;
    if head.kind != Kind::Partial {
        return Err(remote_error(&head.header, head.kind));
    }
    let ready: PutReady = serde_json::from_slice(&head.header).map_err(ConnError::from)?;

    let (file, offset, hasher) = match (ready.offset, ready.prefix_sha256) {
        (off, Some(theirs)) if off > 0 && off <= size => {
            let (file, ours) = tokio::task::spawn_blocking(move || {
                let mut file = file;
                let h = hash_prefix(&mut file, off, algo);
                (file, h)
            })
            .await
            .map_err(join_err)?;
            let ours = ours.map_err(|e| ClientError::local(local, e))?;
            if ours.hex().eq_ignore_ascii_case(&theirs) {
                (file, off, ours)
            } else {
                (file, 0, algo.hasher())
            }
        }
        _ => (file, 0, algo.hasher()),
    };
    // The digest of the whole file, when this client remembers it for the
    // file as it is: then the bytes are only sent, not read back to hash.
    let known = if offset == 0 {
        hashing.known(before.as_ref())
    } else {
        None
    };
    let hasher = known.is_none().then_some(hasher);
    let len = size - offset;
    conn.send(Kind::Request, &Request::Data { offset }, len)
        .await?;
    super::transfer::from_offset(bar, size, offset);
    let shown = bar.clone();
    let sent = match send_file(conn, file, (offset, len), hasher, stop, move |n| {
        shown.inc(n)
    })
    .await
    {
        Ok(sent) => sent.map(Option::unwrap_or_default),
        // Not plain TCP: read, hashed and written here.
        Err((file, hasher)) => {
            let source = spawn_reader(file, offset, len, hasher.unwrap_or(algo.hasher()));
            send_body(conn, source, stop, |n| bar.inc(n)).await
        }
    };
    let sha256 = match sent {
        Ok(sha) if sha.is_empty() => known.clone().unwrap_or_default(),
        Ok(sha) => sha,
        Err(SendError::Conn(e)) => {
            if let Some(why) = stopped_because(conn).await {
                return Err(why);
            }
            return Err(ClientError::Cut(format!(
                "{}: the upload stopped after {} of {size} bytes ({e}); the server keeps what arrived: the same command resumes",
                crate::text::escape(&local.display().to_string()),
                bar.position(),
            )));
        }
        // Ctrl-C: the connection is dropped with the body cut short.
        Err(SendError::Cancelled) => {
            return Err(ClientError::Interrupted(format!(
                "{}: interrupted after {} of {size} bytes; the server keeps what arrived: the same command resumes",
                crate::text::escape(&local.display().to_string()),
                bar.position(),
            )));
        }
        // The body cannot be completed; the connection must be dropped.
        Err(e) => {
            let name = crate::text::escape(&local.display().to_string()).into_owned();
            return Err(ClientError::Local(format!("{name}: {e}")));
        }
    };
    let now = watch.as_ref().and_then(identity_of);
    if let (Some(then), Some(now)) = (&before, &now) {
        if then.changed_under(now, size) {
            // Not committed: the server keeps what arrived, and the next
            // attempt finds it differs from the file and starts over.
            return Err(ClientError::Local(format!(
                "{}: the file changed while it was sent (written in place), so the copy would mix old and new bytes; not kept. Run again",
                crate::text::escape(&local.display().to_string())
            )));
        }
    }
    let commit = Request::Commit {
        sha256: sha256.clone(),
    };
    if let Err(e) = conn.send(Kind::Request, &commit, 0).await {
        // The whole body fit in the sockets' buffers before the server
        // stopped taking it.
        return Err(stopped_because(conn).await.unwrap_or(e.into()));
    }
    let stored: Result<Digest> = terminal(conn).await;
    let stored = stored.and_then(|digest| {
        if !digest.sha256.eq_ignore_ascii_case(&sha256) || digest.size != size {
            return Err(ClientError::Checksum(format!(
                "sent {sha256}, server stored {}",
                digest.sha256
            )));
        }
        Ok(digest)
    });
    match (&stored, known.is_some(), &before) {
        // A remembered digest the server's bytes did not match (or that
        // met any other failure at the end) is not offered again.
        (Err(_), true, Some(id)) => hashing.forget(id),
        // Hashed here from a file that did not change while it was sent.
        (Ok(_), false, Some(id)) if now.as_ref() == Some(id) => hashing.remember(Some(id), &sha256),
        _ => {}
    }
    stored?;
    Ok(Transferred {
        size,
        digest: sha256,
        algo,
        resumed_from: offset,
    })
}

/// The reason the server gave for stopping an upload (a full disk) before
/// it closed, when it gave one: that, not the broken pipe it left, is
/// what to show.
async fn stopped_because(conn: &mut Connection) -> Option<ClientError> {
    let said = tokio::time::timeout(std::time::Duration::from_secs(2), conn.next_head());
    match said.await {
        Ok(Ok(head)) if head.kind == Kind::Error => Some(remote_error(&head.header, head.kind)),
        _ => None,
    }
}

/// Most bytes a kernel file may read as: the largest (kallsyms) are a few
/// MiB, and some (`/proc/self/pagemap`) read as the whole address space.
const MAX_KERNEL_FILE: u64 = 64 << 20;

/// A kernel file (see [`crate::files::pseudo`]) read whole into a
/// private temporary file, so that its size is known before it is sent:
/// that file and its size. One that reads as more than
/// [`MAX_KERNEL_FILE`] is refused.
async fn read_whole(file: std::fs::File) -> std::io::Result<(std::fs::File, u64)> {
    let mut kept = super::local::spool().map_err(|e| std::io::Error::other(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek, Write};
        // Plain reads of a whole buffer: some kernel files refuse the
        // in-kernel copies `io::copy` tries, or reads of odd sizes
        // (pagemap: EINVAL).
        let mut file = file;
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        while size <= MAX_KERNEL_FILE {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            kept.write_all(&buf[..n])?;
            size += n as u64;
        }
        if size > MAX_KERNEL_FILE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!(
                    "a kernel file (its size is known only by reading it) that reads as more than {} MiB is not sent",
                    MAX_KERNEL_FILE >> 20
                ),
            ));
        }
        kept.rewind()?;
        Ok((kept, size))
    })
    .await
    .map_err(|_| std::io::Error::other("internal error: a worker thread failed"))?
}
