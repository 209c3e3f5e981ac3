//! How an upload's body gets into its partial file when it comes as
//! pieces: gathered into chunks, checked against the limits, and written
//! on a disk thread ([`Intake`]), for [`Upload::receive`] and for a door
//! that reads the body itself ([`Pushing`]).

use std::io;

use super::{Broke, Stop, Upload, ended};
use crate::files::pipe::{CHUNK, FileSink, spawn_writer};
use crate::files::storage::Part;

/// Bytes gathered before a write: a body's pieces are often 16 KiB (an
/// HTTP frame), and one trip to the disk thread per half MiB costs less.
const GATHER: usize = CHUNK / 2;

/// A body on its way into the partial file: its pieces are gathered into
/// chunks, checked against the limits, and written on the disk thread.
pub(super) struct Intake {
    sink: FileSink<Box<dyn Part>>,
    pub(super) buf: Vec<u8>,
    /// Bytes from the start of the file, gathered ones included.
    pub(super) total: u64,
    size: Option<u64>,
    max_upload: Option<u64>,
}

impl Intake {
    /// Takes the partial file from `upload` to the disk thread.
    pub(super) fn open(upload: &mut Upload) -> Option<Intake> {
        let part = upload.part.take()?;
        let total = part.written();
        let mut sink = spawn_writer(part);
        Some(Intake {
            buf: sink.buffer(),
            sink,
            total,
            size: upload.size,
            max_upload: upload.max_upload,
        })
    }

    /// Where the next piece goes: after the gathered ones.
    pub(super) fn room(&mut self) -> &mut Vec<u8> {
        if self.buf.capacity() == 0 {
            self.buf = self.sink.buffer();
        }
        &mut self.buf
    }

    /// Counts the piece added to the buffer past `from`, and writes the
    /// buffer once enough is gathered. False when the writer has stopped
    /// (it failed).
    pub(super) async fn took<E>(&mut self, from: usize) -> Result<bool, Stop<E>> {
        let total = self.total + (self.buf.len() - from) as u64;
        if let Some(max) = self.max_upload.filter(|max| total > *max) {
            return Err(Broke::TooLarge(format!("uploads are limited to {max} bytes")).into());
        }
        if self.size.is_some_and(|size| total > size) {
            self.buf.truncate(from);
            return Err(Stop::PastAnnounced("more bytes than announced".into()));
        }
        self.total = total;
        if self.buf.len() < GATHER {
            return Ok(true);
        }
        let full = std::mem::take(&mut self.buf);
        Ok(self.sink.send(full).await)
    }

    /// Writes what is gathered and waits for every write; gives the part
    /// file back with the first write error, if any.
    pub(super) async fn close(mut self) -> io::Result<(Box<dyn Part>, io::Result<()>)> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.sink.send(rest).await;
        }
        self.sink.finish().await
    }
}

/// An upload whose door reads the body itself and hands it over a piece at
/// a time (WebDAV: dav-server reads the body). The size limits and shutdown
/// are checked here as pieces come, as [`Upload::receive`] does; the stall
/// deadline is the door's to keep, on the body it reads.
#[derive(Debug)]
pub struct Pushing {
    pub(super) upload: Upload,
    pub(super) intake: Option<Intake>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("total", &self.total)
            .finish()
    }
}

impl Pushing {
    /// Takes the next piece of the body. On an error the upload has ended
    /// as the module's rules say, and only [`Pushing::broke`] or a drop is
    /// left to do.
    pub async fn push(&mut self, piece: &[u8]) -> Result<(), Broke<io::Error>> {
        let Some(intake) = self.intake.as_mut() else {
            return Err(ended());
        };
        let stop = if self.upload.abort.is_cancelled() {
            Err(Stop::Broke(Broke::ShuttingDown))
        } else {
            let from = intake.buf.len();
            intake.room().extend_from_slice(piece);
            match intake.took(from).await {
                Ok(true) => return Ok(()),
                Ok(false) => Ok(()), // the writer failed: settle says how
                Err(stop) => Err(stop),
            }
        };
        let intake = self.intake.take().ok_or_else(ended)?;
        match self.upload.settle(intake, stop).await {
            Ok(_) => Err(Broke::Storage {
                message: "storing the upload failed; nothing of it was kept".into(),
                full: false,
            }),
            Err(broke) => Err(broke),
        }
    }

    /// The body came whole: gives the upload back, ready to finish.
    pub async fn end(mut self) -> Result<Upload, Broke<io::Error>> {
        let intake = self.intake.take().ok_or_else(ended)?;
        self.upload.settle(intake, Ok(())).await?;
        let hollow = self.upload.hollow();
        Ok(std::mem::replace(&mut self.upload, hollow))
    }

    /// The body broke off: leaves what [`OnBreak`] says.
    pub async fn broke(mut self) {
        if let Some(intake) = self.intake.take() {
            let lost = io::Error::new(io::ErrorKind::UnexpectedEof, "the body broke off");
            let _ = self
                .upload
                .settle(intake, Err(Stop::Broke(Broke::Lost(lost))))
                .await;
        }
    }
}

impl Drop for Pushing {
    /// Dropped before its end, the body broke off: what is kept is settled
    /// on a task, as [`Pushing::broke`] would.
    fn drop(&mut self) {
        let Some(intake) = self.intake.take() else {
            return;
        };
        let mut upload = self.upload.hollow();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let lost = io::Error::new(io::ErrorKind::UnexpectedEof, "the body broke off");
                let _ = upload
                    .settle(intake, Err(Stop::Broke(Broke::Lost(lost))))
                    .await;
            });
        }
    }
}
