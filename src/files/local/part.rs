//! A partial file on this machine's disk, as the storage seam's [`Part`]:
//! it lets go of its file on drop unless told to keep it, so a request
//! given up half-way never leaves one that nobody holds.

use std::io;

use super::UploadGuard;
use crate::files::digest::Algo;
use crate::files::entry::Mtime;
use crate::files::part::{FinishError, PartFile};
use crate::files::storage::Part;

/// A partial file, and the hold on its target that keeps other uploads of
/// the name away until it is finished or dropped.
#[derive(Debug)]
pub(super) struct LocalPart {
    /// `None` once finished, discarded or kept.
    pub(super) part: Option<PartFile>,
    /// Held for its drop: frees the name for other uploads.
    pub(super) _guard: UploadGuard,
    /// What a drop leaves (see [`Part::keep_on_drop`]).
    pub(super) keep_on_drop: bool,
}

impl LocalPart {
    fn file(&self) -> &PartFile {
        self.part.as_ref().expect("a part in use holds its file")
    }

    fn file_mut(&mut self) -> &mut PartFile {
        self.part.as_mut().expect("a part in use holds its file")
    }
}

impl Drop for LocalPart {
    fn drop(&mut self) {
        if let Some(part) = self.part.take() {
            if !(self.keep_on_drop && part.written().max(part.existing()) > 0) {
                part.discard();
            }
        }
    }
}

impl Part for LocalPart {
    fn existing(&self) -> u64 {
        self.file().existing()
    }

    fn written(&self) -> u64 {
        self.file().written()
    }

    fn generation(&self) -> Option<String> {
        self.file().generation()
    }

    fn hash_existing(&mut self, algo: Algo) -> io::Result<Option<String>> {
        self.file_mut().hash_existing(algo)
    }

    fn start(&mut self, offset: u64, size: u64) -> io::Result<()> {
        self.file_mut().start(offset, size)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file_mut().write(buf)
    }

    fn end_here(&mut self) {
        self.file_mut().end_here()
    }

    fn can_splice(&self) -> bool {
        true
    }

    fn splice_from(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        len: u64,
        stall: std::time::Duration,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> (u64, Result<(), crate::files::splice::SpliceError>) {
        self.file_mut()
            .splice_from(socket, len, stall, stop, &|_| {})
    }

    fn finish(
        mut self: Box<Self>,
        sha256: Option<&str>,
        mtime: Option<Mtime>,
        overwrite: bool,
    ) -> Result<String, FinishError> {
        let part = self.part.take().expect("a part in use holds its file");
        if let Err(e) = part.folder_in_place() {
            part.discard();
            return Err(e.into());
        }
        // The hold on the name is let go of (with `self`) once the file is
        // in place, so that no other upload of the name reuses the partial
        // file meanwhile.
        part.finish_or_discard(sha256, mtime, overwrite)
    }

    fn discard(mut self: Box<Self>) {
        if let Some(part) = self.part.take() {
            part.discard();
        }
    }

    fn keep(mut self: Box<Self>) {
        self.part = None;
    }

    fn keep_on_drop(&mut self, keep: bool) {
        self.keep_on_drop = keep;
    }
}

#[cfg(test)]
mod tests {
    use crate::files::local::LocalDisk;
    use crate::files::name::RelPath;
    use crate::files::storage::Storage;

    /// An upload whose folder another client moves on the way is not put
    /// in place where the folder went (a folder its uploader may have no
    /// right to), nor anywhere else.
    #[test]
    fn a_folder_moved_during_an_upload_takes_nothing_with_it() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("alice/rd")).unwrap();
        std::fs::create_dir_all(root.join("none")).unwrap();
        let disk = LocalDisk::open(&root).unwrap();
        let rel = RelPath::parse("alice/rd/f.bin").unwrap();
        let mut begun = disk.begin_write(&rel, false, false).unwrap();
        begun.part.start(0, 4).unwrap();
        begun.part.write(b"ab").unwrap();
        std::fs::rename(root.join("alice/rd"), root.join("none/rd")).unwrap();
        begun.part.write(b"cd").unwrap();
        let e = begun.part.finish(None, None, false).unwrap_err();
        assert!(e.to_string().contains("moved"), "{e}");
        assert!(!root.join("none/rd/f.bin").exists());
        assert!(!root.join("alice/rd").exists());
        assert_eq!(std::fs::read_dir(root.join("none/rd")).unwrap().count(), 0);
        // Where nothing moved, the same upload is put in place.
        std::fs::create_dir_all(root.join("alice/rd")).unwrap();
        let mut begun = disk.begin_write(&rel, false, false).unwrap();
        begun.part.start(0, 2).unwrap();
        begun.part.write(b"ok").unwrap();
        begun.part.finish(None, None, false).unwrap();
        assert_eq!(std::fs::read(root.join("alice/rd/f.bin")).unwrap(), b"ok");
    }
}
