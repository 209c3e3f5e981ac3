//! [`Storage`]: where the files service keeps files. The service, and
//! through it every door, reaches the files only through this trait, so a
//! second place to keep them (object storage) is one more implementation
//! and no door changes. The local folder ([`super::LocalDisk`]: the jail,
//! partial files beside their target, atomic rename) is the first.
//!
//! Calls are blocking: the service runs them on a blocking thread (see
//! [`super::Files::blocking`]), or inline when the storage says its calls
//! are quick ([`Storage::quick`]).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::PathBuf;

use super::entry::{Entry, EntryKind, Mtime, Tree};
use super::{FilesError, FinishError, RelPath};

/// A place to keep files, with every rule about what is stored there.
///
/// Every path is a validated [`RelPath`]; an implementation keeps every
/// operation below its root whatever is already stored there.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Where the files are, for the log (a folder, a bucket).
    fn describe(&self) -> String;

    /// Whether a call costs no more than a read from the page cache, so
    /// that a small read may be made on the runtime's own thread.
    fn quick(&self) -> bool {
        false
    }

    /// Whether a name may be a symbolic link (a folder a listing names
    /// may then lead elsewhere).
    fn links(&self) -> bool {
        true
    }

    /// Describes one entry, following a link that stays inside.
    fn stat(&self, rel: &RelPath) -> Result<Entry, FilesError>;

    /// Describes the entry `rel` names without following it when it is a
    /// link (the link is described, wherever it leads).
    fn stat_name(&self, rel: &RelPath) -> Result<Entry, FilesError>;

    /// Whether `rel` exists (a final link counts, wherever it leads).
    fn exists(&self, rel: &RelPath) -> bool {
        self.stat_name(rel).is_ok()
    }

    /// Lists a folder, sorted by name, leaving out what no name check
    /// would let a client ask for (and partial files).
    fn list(&self, rel: &RelPath) -> Result<Vec<Entry>, FilesError>;

    /// Lists a folder a page at a time, in the order of [`Storage::list`],
    /// so that a folder of any size is listed without holding it whole
    /// (each page goes to `page`, which may stop the listing with an
    /// error). Storage that lists whole gives one page.
    fn list_paged(
        &self,
        rel: &RelPath,
        page: &mut dyn FnMut(Vec<Entry>) -> Result<(), FilesError>,
    ) -> Result<(), FilesError> {
        page(self.list(rel)?)
    }

    /// Every folder and file below `rel`, parents before children, paths
    /// relative to `rel`, and what was left out.
    fn walk(&self, rel: &RelPath) -> Result<Tree, FilesError>;

    /// Whether names below `rel` that differ only in case would be one
    /// file (see [`crate::files::case`]): then a folder upload may not
    /// hold such a pair. Yes unless the storage knows better.
    fn ignores_case(&self, _rel: &RelPath) -> bool {
        true
    }

    /// Opens a regular file for reading; a folder is `IsADirectory`, and
    /// anything else but a file is refused.
    fn open_read(&self, rel: &RelPath) -> Result<(Reader, Entry), FilesError>;

    /// Starts writing `rel`: a partial copy that only [`Part::finish`]
    /// makes visible. Refuses a folder at the name always, a file unless
    /// `replace`, and a name another upload holds (`Busy`) until that
    /// part is finished or dropped. With `resume`, what an earlier attempt
    /// left is kept ([`Part::existing`]).
    fn begin_write(&self, rel: &RelPath, replace: bool, resume: bool) -> Result<Begun, FilesError>;

    /// Removes a file, a link (never its target) or a folder (one with
    /// something in it only with `recursive`).
    fn remove(&self, rel: &RelPath, recursive: bool) -> Result<(), FilesError>;

    /// Whether `rel` may be removed as far as the storage goes (it holds
    /// nothing the server keeps for itself), asked before a removal that
    /// goes an entry at a time. [`Storage::remove`] asks it again.
    fn removable(&self, _rel: &RelPath) -> Result<(), FilesError> {
        Ok(())
    }

    /// Creates one folder; its parent must exist.
    fn mkdir(&self, rel: &RelPath) -> Result<(), FilesError>;

    /// Creates `rel` and every missing folder on the way to it; no error
    /// when it is a folder already.
    fn mkdir_all(&self, rel: &RelPath) -> Result<(), FilesError> {
        make_parents(self, rel, &|_| Ok(()))
    }

    /// Renames within the storage; replaces a file only with `force` and
    /// never a folder, and never moves a folder into itself.
    fn rename(&self, from: &RelPath, to: &RelPath, force: bool) -> Result<(), FilesError>;

    /// Whether an unfinished upload of `rel` left bytes to go on from.
    fn partial_exists(&self, rel: &RelPath) -> bool;

    /// How far an upload of `rel` (`length` bytes in all) has come: the
    /// bytes left by an unfinished one, or `length` once a file of that
    /// size is in place; `None` when there is neither.
    fn upload_progress(&self, rel: &RelPath, length: u64) -> Result<Option<u64>, FilesError>;

    /// Removes what an unfinished upload of `rel` left (`Busy` while one
    /// is running); whether there was anything.
    fn remove_partial(&self, rel: &RelPath) -> Result<bool, FilesError>;

    /// Which upload of `rel` is there now (see [`Part::generation`]): the
    /// unfinished one's, or, once finished, the one the file in place came
    /// from where the storage can tell; `None` when there is none, or
    /// where the storage cannot tell one from the next.
    fn partial_generation(&self, rel: &RelPath) -> Result<Option<String>, FilesError> {
        let _ = rel;
        Ok(None)
    }

    /// Removes what uploads that never came back left, untouched for
    /// longer than `max_age`; never a running one's. Gives how many.
    fn sweep_partials(&self, max_age: std::time::Duration) -> usize;

    /// The space where the files are kept: bytes used and bytes still
    /// free for new files; `None` when the storage cannot tell.
    fn space(&self) -> Option<Space> {
        None
    }

    /// Where `rel` really is below the root, links followed (all of them,
    /// or with `keep_last` those on the way only); `None` when it is not
    /// below the root. Rights per path are checked there too, so a link
    /// in one folder does not lead into another's rights. Without links,
    /// the path itself.
    fn real(&self, rel: &RelPath, keep_last: bool) -> Option<RelPath> {
        let _ = keep_last;
        Some(rel.clone())
    }

    /// The largest file the storage keeps, when it has a limit.
    fn max_size(&self) -> Option<u64> {
        None
    }

    /// Records every server of this storage sees (signing keys, login
    /// sessions), where several servers serve one storage; `None` for a
    /// storage that is one server's own (its state folder keeps those).
    fn shared(&self) -> Option<&dyn Shared> {
        None
    }

    /// The folder `rel` on this machine's disk, for a command to run in;
    /// storage that is not a local folder has none.
    fn local_folder(&self, rel: &RelPath) -> Result<PathBuf, FilesError> {
        Err(FilesError::Forbidden(format!(
            "{rel}: the files are not kept on this machine's disk ({})",
            self.describe()
        )))
    }
}

/// Small records kept beside the files, that every server of a shared
/// storage sees. Names are `/`-separated words (`keys/upload`).
pub trait Shared: Send + Sync + fmt::Debug {
    /// The record `name`, when there is one.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, FilesError>;

    /// Writes `name`; with `only_new`, only when there is none yet
    /// (`false` then, and nothing is written).
    fn put(&self, name: &str, value: &[u8], only_new: bool) -> Result<bool, FilesError>;

    /// Removes `name` (nothing when there is none).
    fn remove(&self, name: &str) -> Result<(), FilesError>;

    /// The record `name` with its version, which [`Shared::replace`]
    /// names to write it only if no one else has since.
    fn get_versioned(&self, name: &str) -> Result<Option<(Vec<u8>, String)>, FilesError>;

    /// Writes `name` only while it is still at `version`; `false` (and
    /// nothing written) when another server wrote it in between.
    fn replace(&self, name: &str, value: &[u8], version: &str) -> Result<bool, FilesError>;
}

/// Changes the record `name` of `shared` as `f` says, so that two
/// servers changing it at once both have their change: `f` gets what the
/// record holds (`None` when there is none) and gives what to write
/// (`None`: nothing) and its answer; what it gives is written only if no
/// other server wrote the record since it was read, else `f` runs again
/// on what is there then.
pub fn change_shared<T>(
    shared: &dyn Shared,
    name: &str,
    mut f: impl FnMut(Option<&[u8]>) -> (Option<Vec<u8>>, T),
) -> Result<T, FilesError> {
    const ATTEMPTS: usize = 16;
    for _ in 0..ATTEMPTS {
        let read = shared.get_versioned(name)?;
        let (write, out) = f(read.as_ref().map(|(b, _)| b.as_slice()));
        let Some(after) = write else {
            return Ok(out);
        };
        let written = match &read {
            Some((before, _)) if *before == after => true,
            Some((_, version)) => shared.replace(name, &after, version)?,
            None => shared.put(name, &after, true)?,
        };
        if written {
            return Ok(out);
        }
    }
    Err(FilesError::Unavailable(format!(
        "{name} kept changing through other servers; try again"
    )))
}

/// The signing key `name` every server of `shared` uses: the first to ask
/// makes it, the others read that one.
pub fn shared_key(shared: &dyn Shared, name: &str) -> Result<Vec<u8>, FilesError> {
    let record = format!("keys/{name}");
    for _ in 0..3 {
        if let Some(key) = shared.get(&record)?.filter(|k| k.len() >= 32) {
            return Ok(key);
        }
        let fresh = crate::ids::random_bytes::<32>()
            .map_err(|e| FilesError::Io(format!("no randomness for a key: {e}")))?;
        if shared.put(&record, &fresh, true)? {
            return Ok(fresh.to_vec());
        }
    }
    Err(FilesError::Io(format!("the key {name} cannot be read")))
}

/// The space of a storage (RFC 4331's quota properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes in use.
    pub used: u64,
    /// Bytes free for new files (what an unprivileged writer gets).
    pub available: u64,
}

/// A stored file open for reading.
pub trait StoredFile: Read + Seek + Send + Sync + fmt::Debug {
    /// The file on local disk, when it is one (for the calls that need a
    /// descriptor).
    fn as_file(&self) -> Option<&File> {
        None
    }

    /// The digest by `algo` the storage keeps beside this version of the
    /// file (computed when it was stored), if it keeps one.
    fn kept_digest(&self, _algo: super::digest::Algo) -> Option<String> {
        None
    }

    /// Hashes the next `len` bytes, leaving the position after them (see
    /// [`super::digest::hash_prefix`]).
    fn hash_prefix(
        &mut self,
        len: u64,
        algo: super::digest::Algo,
    ) -> io::Result<super::digest::Hasher> {
        super::digest::hash_read(self, len, algo)
    }
}

impl StoredFile for File {
    fn as_file(&self) -> Option<&File> {
        Some(self)
    }

    fn hash_prefix(
        &mut self,
        len: u64,
        algo: super::digest::Algo,
    ) -> io::Result<super::digest::Hasher> {
        super::digest::hash_prefix(self, len, algo)
    }
}

/// What [`Storage::open_read`] gives.
pub type Reader = Box<dyn StoredFile>;

/// A file being written, invisible until [`Part::finish`]. Dropped
/// unfinished, it leaves what it holds for a later attempt to go on from;
/// [`Part::discard`] removes that.
pub trait Part: Send + Sync + fmt::Debug {
    /// Bytes an earlier attempt left.
    fn existing(&self) -> u64;

    /// Bytes held so far, from the start of the file.
    fn written(&self) -> u64;

    /// Which upload this is, among those that began at its name: an upload
    /// of the same target that starts over has another. `None` where the
    /// storage cannot tell them apart.
    fn generation(&self) -> Option<String> {
        None
    }

    /// The digest (by `algo`, which verifies the whole file from here on)
    /// of the bytes an earlier attempt left; `None` when there are none.
    /// Going on from there does not read them again.
    fn hash_existing(&mut self, algo: super::digest::Algo) -> io::Result<Option<String>>;

    /// Fixes where the incoming bytes start (0, or [`Part::existing`]) and
    /// how large the file will be.
    fn start(&mut self, offset: u64, size: u64) -> io::Result<()>;

    /// Appends bytes; past the size fixed by [`Part::start`] it is an
    /// `InvalidData` error and nothing of them is written.
    fn write(&mut self, buf: &[u8]) -> io::Result<()>;

    /// Makes the bytes written so far the whole file (a body whose length
    /// was not announced).
    fn end_here(&mut self);

    /// Whether [`Part::splice_from`] can take bytes straight from a
    /// socket (a file on this machine's disk can; an object store's part
    /// cannot).
    fn can_splice(&self) -> bool {
        false
    }

    /// Appends the next `len` bytes of `socket` as [`Part::write`] would,
    /// moved into the file by the kernel (see [`super::splice`]); only
    /// when [`Part::can_splice`]. Gives the bytes taken from the socket.
    fn splice_from(
        &mut self,
        socket: std::os::fd::BorrowedFd<'_>,
        len: u64,
        stall: std::time::Duration,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> (u64, Result<(), SpliceError>) {
        let _ = (socket, len, stall, stop);
        let e = io::Error::from(io::ErrorKind::Unsupported);
        (0, Err(SpliceError::File(e)))
    }

    /// Checks the size and, when given, the SHA-256, sets the mtime and
    /// makes the file visible whole, replacing a file at the name only
    /// with `overwrite`. Gives its SHA-256. Refused, it keeps nothing.
    fn finish(
        self: Box<Self>,
        sha256: Option<&str>,
        mtime: Option<Mtime>,
        overwrite: bool,
    ) -> Result<String, FinishError>;

    /// Removes what is held.
    fn discard(self: Box<Self>);

    /// Leaves what is held for a later attempt, even nothing.
    fn keep(self: Box<Self>);

    /// What dropping it without `finish`, `discard` or `keep` leaves (an
    /// upload cut off, or its request given up half-way): the partial
    /// file when `keep` and it holds bytes, else nothing. A partial file
    /// nobody holds is never left behind by accident.
    fn keep_on_drop(&mut self, keep: bool);
}

/// A write [`Storage::begin_write`] began.
#[derive(Debug)]
pub struct Begun {
    /// Where the bytes go.
    pub part: Box<dyn Part>,
    /// Whether a file of that name existed when it began.
    pub replaces: bool,
}

/// Why splicing (see `files::splice` and [`Part::splice_from`]) stopped
/// short of the length asked for.
#[derive(Debug)]
pub enum SpliceError {
    /// The socket failed.
    Socket(io::Error),
    /// The peer closed before the end.
    Closed,
    /// Nothing arrived for longer than the stall limit.
    Stalled,
    /// Writing or reading back the file failed (a full disk).
    File(io::Error),
    /// `stop` said to stop (the server is shutting down).
    Stopped,
}

/// Makes `rel` and the folders above it that are missing, each once
/// `may_create` lets it be made where it is (a folder made on the way is
/// a creation there too), asked right before it is made; no error when
/// `rel` is a folder already.
pub fn make_parents<S: Storage + ?Sized>(
    s: &S,
    rel: &RelPath,
    may_create: &dyn Fn(&RelPath) -> Result<(), FilesError>,
) -> Result<(), FilesError> {
    let mut cur = RelPath::root();
    for part in rel.parts() {
        cur = cur.child(part)?;
        match s.stat(&cur) {
            Ok(e) if e.kind == EntryKind::Dir => {}
            Ok(_) => return Err(FilesError::NotADirectory(format!("{cur} is not a folder"))),
            // Another upload may make the same folder at the same moment
            // (a folder of files sent in parallel): then it is there, as
            // wanted.
            Err(FilesError::NotFound(_)) => {
                may_create(&cur)?;
                match s.mkdir(&cur) {
                    Err(FilesError::Exists(_))
                        if s.stat(&cur).is_ok_and(|e| e.kind == EntryKind::Dir) => {}
                    other => other?,
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
