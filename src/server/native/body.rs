//! A native frame's body as the files service reads an upload: piece by
//! piece, or (over plain TCP) handed over as the socket itself for the
//! kernel to move into the partial file.

use crate::files::BodySource;
use crate::wire::{ConnError, Connection};

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
