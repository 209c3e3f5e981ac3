//! `get`: a file, or the rest of one, as a frame body with its digest.
//! A file whose digest is remembered goes out unhashed, with `sendfile`
//! where the connection is plain TCP.

use super::Session;
use crate::access::Action;
use crate::files::RelPath;
use crate::files::digest::Algo;
use crate::files::digests::{Identity, identity_of};
use crate::files::pipe::{spawn_plain_reader, spawn_reader};
use crate::server::fail::Fail;
use crate::wire::body::{SendError, send_body, send_file};
use crate::wire::messages::{Digest, ErrorCode, GetStart};
use crate::wire::{ConnError, Kind};

impl Session {
    pub(super) async fn get(
        &mut self,
        path: &str,
        offset: u64,
        prefix: Option<String>,
        algo: Algo,
        fresh: bool,
    ) -> Result<(), Fail> {
        let rel = RelPath::parse(path)?;
        self.require(Action::Read, &rel)?;
        let (mut file, entry) = self.blocking(move |s| s.open_read(&rel)).await?;
        if offset > entry.size {
            return Err(Fail::Reply(
                ErrorCode::ResumeMismatch,
                format!("you hold {offset} bytes but the file has {}", entry.size),
            ));
        }
        let hasher = if offset > 0 {
            let Some(want) = prefix else {
                return Err(Fail::Reply(
                    ErrorCode::BadRequest,
                    "offset needs prefix_sha256".into(),
                ));
            };
            let (f, h) = tokio::task::spawn_blocking(move || {
                let h = file.hash_prefix(offset, algo);
                (file, h)
            })
            .await
            .map_err(|_| Fail::Reply(ErrorCode::Internal, "internal error".into()))?;
            file = f;
            // Cut below what the client holds while its start was read:
            // what it holds is no longer this file's start.
            let h = h.map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Fail::Reply(
                    ErrorCode::ResumeMismatch,
                    format!("{path}: {e}; start again from 0"),
                ),
                _ => Fail::Reply(ErrorCode::Io, format!("{path}: {e}")),
            })?;
            if !h.hex().eq_ignore_ascii_case(&want) {
                return Err(Fail::Reply(
                    ErrorCode::ResumeMismatch,
                    "the bytes you hold differ from this file; start again from 0".into(),
                ));
            }
            Some(h)
        } else {
            None
        };
        let size = entry.size;
        // A whole file whose digest is known (and which has not changed
        // since) is sent without hashing it again, unless the client asks
        // for it hashed (its last copy failed the check); the digest of
        // what is then sent replaces the remembered one.
        let known = match &hasher {
            None => self.ctx.files.digests().known(&*file, algo, fresh),
            Some(_) => None,
        };
        let identity = crate::files::digests::identity(&*file);
        // The same open file, looked at again once the body is out.
        let watch = file.as_file().and_then(|f| f.try_clone().ok());
        self.conn
            .send(Kind::Partial, &GetStart { entry, offset }, size - offset)
            .await?;
        // Mid-body, the only clean way out of any failure is to close.
        let broke = |e: SendError| Fail::Conn(ConnError::Protocol(e.to_string()));
        // From the page cache to the socket, where it is plain TCP and a
        // local file; hashed on the side unless the digest is known.
        let mut hasher = match &known {
            Some(_) => None,
            None => Some(hasher.unwrap_or(algo.hasher())),
        };
        if let Some(local) = file.as_file().and_then(|f| f.try_clone().ok()) {
            let span = (offset, size - offset);
            match send_file(&mut self.conn, local, span, hasher, &self.ctx.abort, |_| {}).await {
                Ok(sent) => {
                    let hashed = sent.map_err(broke)?;
                    return self
                        .end_get(known, hashed, (identity, watch), algo, size)
                        .await;
                }
                Err((_, h)) => hasher = h,
            }
        }
        let source = match hasher {
            None => spawn_plain_reader(file, offset, size - offset),
            Some(h) => spawn_reader(file, offset, size - offset, h),
        };
        let sent = send_body(&mut self.conn, source, &self.ctx.abort, |_| {})
            .await
            .map_err(broke)?;
        self.end_get(known, Some(sent), (identity, watch), algo, size)
            .await
    }

    /// Ends a get whose body went out: its digest, unless the file was
    /// written in place while it was sent (see
    /// [`Identity::changed_under`]), when what went out is no version of
    /// it and the client is told so (its partial file is of no use).
    async fn end_get(
        &mut self,
        known: Option<String>,
        hashed: Option<String>,
        (identity, watch): (Option<Identity>, Option<std::fs::File>),
        algo: Algo,
        size: u64,
    ) -> Result<(), Fail> {
        let now = watch.as_ref().and_then(identity_of);
        if let (Some(then), Some(now)) = (&identity, &now) {
            if then.changed_under(now, size) {
                return Err(Fail::Reply(
                    ErrorCode::ChecksumMismatch,
                    "the file changed while it was sent (written in place): what arrived mixes old and new bytes; run again".into(),
                ));
            }
        }
        let sha256 = self.digest_sent(known, hashed, identity, algo);
        self.ok(&Digest { size, sha256 }).await
    }

    /// The digest to send after a body: the one known, else the one just
    /// computed, which is then remembered for the file as it is.
    fn digest_sent(
        &self,
        known: Option<String>,
        hashed: Option<String>,
        identity: Option<Identity>,
        algo: Algo,
    ) -> String {
        match known {
            Some(d) => d,
            None => {
                let sent = hashed.unwrap_or_default();
                if let Some(id) = identity {
                    self.ctx.files.digests().remember(id, algo, &sent);
                }
                sent
            }
        }
    }
}
