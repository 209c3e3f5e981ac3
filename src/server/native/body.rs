//! An upload's frames on a native connection: the wait for its `data` and
//! `commit`, and its body as the files service reads it, piece by piece,
//! or (over plain TCP) handed over as the socket itself for the kernel to
//! move into the partial file.

use super::{NOT_A_REQUEST, Session, unreadable};
use crate::files::{BodySource, Broke, Upload};
use crate::server::fail::Fail;
use crate::wire::frame::FrameError;
use crate::wire::messages::ErrorCode;
use crate::wire::{ConnError, Connection, Head, Kind};

impl Session {
    /// The next frame of an upload under way (its `data` or `commit`),
    /// waited for as long as a body may stall, not as long as a
    /// connection may sit idle (the upload holds its name meanwhile). A
    /// shutdown ends the wait and the upload with it, keeping what it
    /// holds for a resume.
    pub(super) async fn upload_frame(&mut self, upload: Upload) -> Result<(Head, Upload), Fail> {
        let abort = self.ctx.abort.clone();
        let limit = self.conn.body_deadline();
        tokio::select! {
            biased;
            _ = abort.cancelled() => {
                drop(upload);
                Err(Fail::Fatal(
                    ErrorCode::ShuttingDown,
                    Broke::<ConnError>::ShuttingDown.to_string(),
                ))
            }
            r = tokio::time::timeout(limit, self.conn.next_head()) => {
                // Told as between requests: a frame of another kind, or
                // one that cannot be read, ends the connection with an
                // error frame that says why; only a peer that is gone is
                // told nothing.
                let head = r.unwrap_or(Err(ConnError::Timeout("the upload's next frame")));
                match head {
                    Ok(head) if head.kind == Kind::Request => Ok((head, upload)),
                    Ok(_) => Err(Fail::Fatal(ErrorCode::BadRequest, NOT_A_REQUEST.into())),
                    Err(e @ (ConnError::Closed | ConnError::Frame(FrameError::Io(_)))) => {
                        Err(Fail::Conn(e))
                    }
                    Err(e) => Err(Fail::Fatal(unreadable(&e), e.to_string())),
                }
            }
        }
    }
}

/// The body of the current frame, as an upload reads it.
pub(super) struct FrameBody<'a>(pub(super) &'a mut Connection);

impl BodySource for FrameBody<'_> {
    type Error = ConnError;

    fn read_into(
        &mut self,
        buf: &mut Vec<u8>,
    ) -> impl std::future::Future<Output = Result<usize, ConnError>> + Send {
        self.0.read_body_into(buf)
    }

    fn socket_len(&self) -> Option<u64> {
        self.0.is_plain().then(|| self.0.body_remaining())
    }

    fn socket(&mut self) -> Option<crate::files::SocketBody<ConnError>> {
        let socket = self.0.plain_socket()?;
        let early = self.0.reader().take_buffered_body();
        Some(crate::files::SocketBody {
            socket,
            early,
            len: self.0.body_remaining(),
            lost: |e| match e {
                Some(e) => e.into(),
                None => crate::wire::frame::FrameError::UnexpectedEof.into(),
            },
        })
    }

    fn taken(&mut self, n: u64) {
        self.0.reader().consumed_elsewhere(n);
    }
}
