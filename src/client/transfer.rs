//! Single-file transfers with resume and an end-to-end digest: BLAKE3
//! when the server offers it, SHA-256 otherwise (or when asked for).
//!
//! Resume is automatic. A download writes to a hidden partial file beside
//! the target; if one is there from an interrupted attempt, its digest goes
//! with the request and the server continues after it when its own first
//! bytes hash the same (otherwise the download starts over). An upload is
//! the mirror image: the server offers the bytes it holds with their hash,
//! and the client continues only when its file starts with the same bytes.

use std::path::Path;

use indicatif::ProgressBar;

use super::connect::Owed;
use super::digests::Hashing;
use super::{ClientError, Result, remote_error, terminal};
use crate::files::RelPath;
use crate::files::digest::Algo;
use crate::files::digest::hash_prefix;
use crate::files::part::{FinishError, PartFile, special, special_there};
use crate::files::pipe::spawn_writer;
use crate::wire::body::{Received, Spliced, receive_body, receive_file};
use crate::wire::messages::{Digest, ErrorCode, GetStart, Request};
use crate::wire::{ConnError, Connection, Kind};

/// How a transfer may treat existing files.
#[derive(Debug, Clone, Copy)]
pub struct TransferOpts {
    /// Replace an existing target.
    pub force: bool,
    /// Continue an interrupted transfer (default).
    pub resume: bool,
}

impl Default for TransferOpts {
    fn default() -> Self {
        TransferOpts {
            force: false,
            resume: true,
        }
    }
}

/// What a finished transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferred {
    /// Size of the whole file.
    pub size: u64,
    /// Its digest (hex), agreed by both ends.
    pub digest: String,
    /// Which digest that is.
    pub algo: Algo,
    /// Bytes that were already there and not sent again.
    pub resumed_from: u64,
}

impl super::Client {
    /// The digest transfers on this connection are verified with: BLAKE3
    /// when the server offers it, unless [`Client::verify_with_sha256`].
    pub fn digest(&self) -> Algo {
        if !self.sha256_only && self.offers("blake3") {
            Algo::Blake3
        } else {
            Algo::Sha256
        }
    }

    /// Verifies this connection's transfers with SHA-256 (to report a
    /// digest that `sha256sum` can check), even where BLAKE3 is offered.
    pub fn verify_with_sha256(&mut self) {
        self.sha256_only = true;
    }

    /// Stops a download or an upload where it is when `stop` fires, what
    /// arrived kept to resume from ([`ClientError::Interrupted`]).
    pub fn stop_on(&mut self, stop: tokio_util::sync::CancellationToken) {
        self.stop = stop;
    }

    /// Uses and keeps up `known`, the digests of local files this client
    /// hashed before (see [`super::digests`]).
    pub fn keep_digests(&mut self, known: super::digests::KnownDigests) {
        self.known = Some(known);
    }

    /// Downloads one file to `local` (see the module's notes).
    pub async fn get_file(
        &mut self,
        remote: &str,
        local: &Path,
        opts: TransferOpts,
        bar: &ProgressBar,
    ) -> Result<Transferred> {
        let algo = self.digest();
        let mut owed = self.owed();
        let how = Getting {
            algo,
            fresh: false,
            stop: &self.stop,
        };
        let conn = &mut self.conn;
        let mut r = get_file(conn, &mut owed, remote, local, opts, bar, how).await;
        // The server may have sent the digest it remembers of a file
        // since changed in a way its times do not show (written through a
        // mapping), or seen the file written in place while it was sent:
        // once more, hashed as it is sent.
        if r.as_ref().is_err_and(|e| e.is_mismatch()) && self.offers("fresh") {
            bar.set_position(0);
            let how = Getting {
                algo,
                fresh: true,
                stop: &self.stop,
            };
            let conn = &mut self.conn;
            r = get_file(conn, &mut owed, remote, local, opts, bar, how).await;
        }
        self.settled(owed);
        r
    }

    /// Whether `remote` holds the same bytes as `local` (`size` bytes),
    /// asked without sending either (see the module's notes): their digest
    /// when they are.
    pub async fn same_file(
        &mut self,
        remote: &str,
        local: &Path,
        size: u64,
    ) -> Result<Option<String>> {
        let algo = self.digest();
        let mut owed = self.owed();
        let hashing = Hashing {
            algo,
            known: self.known.as_mut(),
            offered: false,
        };
        let r = same_file(&mut self.conn, &mut owed, remote, local, size, hashing).await;
        self.settled(owed);
        r
    }

    /// Downloads one file into `out` as it comes, from its start (see
    /// the module's notes); the digest is checked at the end.
    pub async fn get_to<W>(&mut self, remote: &str, out: &mut W) -> Result<Transferred>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        let algo = self.digest();
        let fresh = self.offers("fresh");
        let mut owed = self.owed();
        let r = get_stream(&mut self.conn, &mut owed, remote, out, algo, fresh).await;
        self.settled(owed);
        r
    }
}

/// Shows a transfer of `size` bytes going on from `offset`: the bytes
/// already there count towards the bar, not towards its speed and the time
/// left (a jump the estimate would take for bytes that came at once).
pub(super) fn from_offset(bar: &ProgressBar, size: u64, offset: u64) {
    bar.set_length(size);
    bar.set_position(offset);
    bar.tick();
    bar.reset_eta();
}

/// Refuses to begin a transfer of `local` once `stop` has fired (Ctrl-C
/// between the files of a folder): nothing of it is begun.
pub(super) fn not_stopped(stop: &tokio_util::sync::CancellationToken, local: &Path) -> Result<()> {
    if stop.is_cancelled() {
        return Err(ClientError::Interrupted(format!(
            "interrupted before {} began",
            crate::text::escape(&local.display().to_string())
        )));
    }
    Ok(())
}

pub(super) fn join_err(_: tokio::task::JoinError) -> ClientError {
    ClientError::Local("internal error: a worker thread failed".into())
}

/// How [`get_file`] fetches: verified with `algo`, the server asked to
/// hash afresh (`fresh`), stopped where it is when `stop` fires.
pub(super) struct Getting<'a> {
    pub algo: Algo,
    pub fresh: bool,
    pub stop: &'a tokio_util::sync::CancellationToken,
}

pub(super) async fn get_file(
    conn: &mut Connection,
    owed: &mut Owed,
    remote: &str,
    local: &Path,
    opts: TransferOpts,
    bar: &ProgressBar,
    how: Getting<'_>,
) -> Result<Transferred> {
    let Getting { algo, fresh, stop } = how;
    RelPath::parse(remote)?;
    not_stopped(stop, local)?;
    if let Ok(there) = std::fs::symlink_metadata(local) {
        use std::os::unix::fs::MetadataExt;
        // A FIFO or a device there, or a link to one (`/dev/stdout`), is
        // refused with or without --force: it is not to be replaced, and
        // written into it would be a stream that cannot resume.
        let led_to = std::fs::metadata(local).ok();
        if let Some(what) = special(there.mode()).or(led_to.and_then(|m| special(m.mode()))) {
            let e = special_there(what);
            return Err(ClientError::Local(format!(
                "{}: {e} (to write into it, get to `-` and redirect)",
                crate::text::escape(&local.display().to_string())
            )));
        }
        if !opts.force {
            return Err(ClientError::Exists(format!(
                "{} exists",
                crate::text::escape(&local.display().to_string())
            )));
        }
    }
    let target = local.to_path_buf();
    let resume = opts.resume;
    let (mut part, prefix) = tokio::task::spawn_blocking(move || {
        let mut part = PartFile::open(&target, resume)?;
        let prefix = part.hash_existing(algo)?;
        Ok::<_, std::io::Error>((part, prefix))
    })
    .await
    .map_err(join_err)?
    .map_err(|e| ClientError::local(local, e))?;

    let mut offset = if prefix.is_some() { part.existing() } else { 0 };
    let mut prefix = prefix;
    let (start, body_len) = loop {
        conn.send(
            Kind::Request,
            &Request::Get {
                path: remote.into(),
                offset,
                prefix_sha256: prefix.clone(),
                digest: wire_name(algo),
                fresh,
            },
            0,
        )
        .await?;
        owed.settle(conn).await?;
        let head = conn.next_head().await?;
        match head.kind {
            Kind::Partial => {
                let start: GetStart =
                    serde_json::from_slice(&head.header).map_err(ConnError::from)?;
                break (start, head.body_len);
            }
            kind => {
                let err = remote_error(&head.header, kind);
                if offset > 0 && err.code() == Some(ErrorCode::ResumeMismatch) {
                    // What we hold is not the start of this file: start over.
                    offset = 0;
                    prefix = None;
                    continue;
                }
                if part.existing() == 0 {
                    part.discard();
                }
                return Err(err);
            }
        }
    };
    let size = start.entry.size;
    if start.offset != offset || body_len != size.saturating_sub(offset) {
        return Err(ConnError::Protocol("get reply does not match the request".into()).into());
    }
    let (part, started) = tokio::task::spawn_blocking(move || {
        let r = part.start(offset, size);
        (part, r)
    })
    .await
    .map_err(join_err)?;
    started.map_err(|e| ClientError::local(local, e))?;

    from_offset(bar, size, offset);
    let (part, lost, written) = receive(conn, part, bar, stop)
        .await
        .map_err(|e| ClientError::local(local, e))?;
    if stop.is_cancelled() && part.written() < size {
        // Dropped, the partial file gives back the disk claimed ahead of
        // its bytes; the connection is left mid-body, to be closed. (A
        // body that came whole is finished: a moment's work.)
        return Err(ClientError::Interrupted(format!(
            "{}: interrupted after {} of {size} bytes; the partial file is kept: the same command resumes",
            crate::text::escape(&local.display().to_string()),
            part.written(),
        )));
    }
    if let Some(e) = lost {
        // The partial file stays: the next attempt resumes from it.
        return Err(ClientError::Cut(format!(
            "{}: the transfer stopped after {} of {size} bytes ({e}); if the server broke it off, its log says why (a file that shrinks while it is sent, for one). The partial file is kept: the same command resumes",
            crate::text::escape(&local.display().to_string()),
            part.written(),
        )));
    }
    if let Err(e) = written {
        // Out of step with the server now: drain what is left of the body.
        part.discard();
        let _ = conn.discard_body().await;
        let _ = terminal::<Digest>(conn).await;
        return Err(ClientError::local(local, e));
    }
    let digest: Digest = match terminal(conn).await {
        Ok(d) => d,
        Err(e) => {
            // The file was written in place while it was sent: what
            // arrived is no version of it, and nothing to resume from.
            if e.code() == Some(ErrorCode::ChecksumMismatch) {
                part.discard();
            }
            return Err(e);
        }
    };
    let mtime = start.entry.mtime;
    let force = opts.force;
    let finished =
        tokio::task::spawn_blocking(move || part.finish(Some(&digest.sha256), mtime, force))
            .await
            .map_err(join_err)?;
    match finished {
        Ok(digest) => Ok(Transferred {
            size,
            digest,
            algo,
            resumed_from: offset,
        }),
        Err(FinishError::Checksum { expected, actual }) => Err(ClientError::Checksum(format!(
            "{}: server says {expected}, received bytes hash to {actual}",
            algo.name()
        ))),
        Err(FinishError::Exists) => Err(ClientError::Exists(format!(
            "{} appeared meanwhile",
            crate::text::escape(&local.display().to_string())
        ))),
        Err(e) => Err(ClientError::Local(e.to_string())),
    }
}

/// The rest of the body into `part`: straight from the socket into the
/// file over plain TCP, through a disk thread otherwise. Gives the part
/// file, why the connection broke (what arrived is kept), and the first
/// write error.
async fn receive(
    conn: &mut Connection,
    part: PartFile,
    bar: &ProgressBar,
    stop: &tokio_util::sync::CancellationToken,
) -> std::io::Result<(PartFile, Option<ConnError>, std::io::Result<()>)> {
    let shown = bar.clone();
    let part = match receive_file(conn, part, stop, move |n| shown.inc(n)).await {
        Ok((part, Ok(()))) => return Ok((part, None, Ok(()))),
        Ok((part, Err(Spliced::Lost(e)))) => return Ok((part, Some(e), Ok(()))),
        Ok((part, Err(Spliced::Write(e)))) => return Ok((part, None, Err(e))),
        Err(part) => part,
    };
    let mut sink = spawn_writer(part);
    let received = receive_body(conn, &mut sink, stop, |n| bar.inc(n)).await;
    let (part, written) = sink.finish().await?;
    let lost = match received {
        Received::Lost(e) => Some(e),
        _ => None,
    };
    Ok((part, lost, written))
}

/// Downloads `remote` into `out` as it comes (standard output, a pipe):
/// there is nothing to resume into, so it starts at byte 0. The SHA-256
/// is checked at the end, once the bytes are out; a mismatch is an error
/// the caller reports, as a pipe cannot take them back.
pub(super) async fn get_stream<W>(
    conn: &mut Connection,
    owed: &mut Owed,
    remote: &str,
    out: &mut W,
    algo: Algo,
    fresh: bool,
) -> Result<Transferred>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    RelPath::parse(remote)?;
    let get = Request::Get {
        path: remote.into(),
        offset: 0,
        prefix_sha256: None,
        digest: wire_name(algo),
        // Bytes sent on cannot be fetched again, so the server hashes
        // them as they go rather than trust a digest it remembers.
        fresh,
    };
    conn.send(Kind::Request, &get, 0).await?;
    owed.settle(conn).await?;
    let head = conn.next_head().await?;
    if head.kind != Kind::Partial {
        return Err(remote_error(&head.header, head.kind));
    }
    let start: GetStart = serde_json::from_slice(&head.header).map_err(ConnError::from)?;
    let size = start.entry.size;
    if start.offset != 0 || head.body_len != size {
        return Err(ConnError::Protocol("get reply does not match the request".into()).into());
    }
    let mut hasher = algo.hasher();
    let mut buf = Vec::with_capacity(crate::files::pipe::CHUNK);
    let mut got = 0u64;
    while conn.body_remaining() > 0 {
        buf.clear();
        got += match conn.read_body_into(&mut buf).await {
            Ok(n) => n as u64,
            Err(e) => {
                return Err(ClientError::Cut(format!(
                    "the transfer stopped after {got} of {size} bytes ({e}), already written out: what was written is not the whole file, and a stream cannot resume; run again"
                )));
            }
        };
        hasher.update(&buf);
        out.write_all(&buf).await.map_err(ClientError::output)?;
    }
    out.flush().await.map_err(ClientError::output)?;
    let digest: Digest = terminal(conn).await?;
    let ours = hasher.hex();
    if !digest.sha256.eq_ignore_ascii_case(&ours) {
        return Err(ClientError::Checksum(format!(
            "{}: server says {}, the bytes written hash to {ours}",
            algo.name(),
            digest.sha256
        )));
    }
    Ok(Transferred {
        size,
        digest: ours,
        algo,
        resumed_from: 0,
    })
}

/// Whether `remote` holds exactly the bytes of the local file `local`,
/// `size` bytes long (then their SHA-256), found without sending a byte of either: a download
/// asked to resume at the very end, with the local file's SHA-256 as the
/// prefix the server must match (see `get`). The server hashes its copy
/// and answers "nothing left to send", or that the bytes differ.
pub(super) async fn same_file(
    conn: &mut Connection,
    owed: &mut Owed,
    remote: &str,
    local: &Path,
    size: u64,
    mut hashing: Hashing<'_>,
) -> Result<Option<String>> {
    RelPath::parse(remote)?;
    let algo = hashing.algo;
    let path = local.to_path_buf();
    // Always hashed: a digest remembered here is only ever offered to the
    // server as a claim it checks (an upload), never taken for the file's
    // bytes where nothing else checks it (a file written through a memory
    // mapping can change without its times moving). What is hashed is
    // remembered for the next upload.
    let (id, hashed) = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let id = crate::files::digests::identity_of(&file);
        let h = hash_prefix(&mut file, size, algo)?;
        Ok::<_, std::io::Error>((id, h.hex()))
    })
    .await
    .map_err(join_err)?
    .map_err(|e| ClientError::local(local, e))?;
    if id.is_some_and(|id| id.size() == size) {
        hashing.remember(id.as_ref(), &hashed);
    }
    let get = Request::Get {
        path: remote.into(),
        offset: size,
        prefix_sha256: (size > 0).then(|| hashed.clone()),
        digest: wire_name(algo),
        fresh: false,
    };
    conn.send(Kind::Request, &get, 0).await?;
    owed.settle(conn).await?;
    let head = conn.next_head().await?;
    if head.kind != Kind::Partial {
        let err = remote_error(&head.header, head.kind);
        return match err.code() {
            Some(ErrorCode::ResumeMismatch) => Ok(None),
            _ => Err(err),
        };
    }
    let start: GetStart = serde_json::from_slice(&head.header).map_err(ConnError::from)?;
    // Longer there (it grew since it was listed): ours is only its start.
    let more = head.body_len > 0;
    if more {
        conn.discard_body().await?;
    }
    let _: Digest = terminal(conn).await?;
    Ok((!more && start.entry.size == size).then_some(hashed))
}

/// How a request names `algo`: SHA-256 by leaving it out, which every
/// server understands.
pub(super) fn wire_name(algo: Algo) -> Option<String> {
    (algo != Algo::Sha256).then(|| algo.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_transfers_speed_counts_only_the_bytes_it_moves() {
        let bar = ProgressBar::hidden();
        from_offset(&bar, 1 << 30, 900 << 20);
        std::thread::sleep(std::time::Duration::from_millis(100));
        bar.inc(1 << 20);
        bar.tick();
        // A MiB in a tenth of a second: some 10 MiB/s, not the 900 MiB
        // already there.
        let rate = bar.per_sec();
        assert!(
            rate < (100 << 20) as f64,
            "{} MiB/s",
            rate / (1 << 20) as f64
        );
        assert_eq!(bar.position(), (900 << 20) + (1 << 20));
    }
}
