//! An upload into the bucket, as the storage seam's [`Part`].
//!
//! A file of at most one part is held in memory and stored with one PUT
//! at the end, with its time and digest as object metadata. A larger one
//! is a multipart upload: whole parts are sent as they fill (two at a
//! time, so that receiving and sending overlap), and it is completed only
//! once its size and digest check out. Until then the object does not
//! exist, whatever happens to the node.
//!
//! What an unfinished upload holds is written down in the bucket
//! ([`UploadState`]: the multipart id, the parts sent, the digest at the
//! end of the last one, and the bytes received past it as a small object
//! of their own), so another node can take it up. A node killed outright
//! loses only the bytes past the last whole part it sent.

use std::collections::{HashSet, VecDeque};
use std::io;

mod whole;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use tokio::task::JoinHandle;

use super::Bucket;
use super::state::{
    FileRecord, HEARTBEAT, MAX_PART, MAX_PARTS, MAX_SIZE, MIN_PART, UploadState, store_error,
};
use crate::files::FilesError;
use crate::files::FinishError;
use crate::files::digest::Algo;
use crate::files::entry::Mtime;
use crate::files::name::RelPath;
use crate::files::resumable::{Checkpoint, Resumable};
use crate::files::storage::Part;

/// Part size for a body whose length was not announced (up to 140 GiB).
const UNKNOWN_PART: u64 = 16 << 20;
/// Parts sent at once by one upload.
const IN_FLIGHT: usize = 2;

/// The part size for a file of `size` bytes.
fn part_len_for(size: u64) -> u64 {
    if size == u64::MAX {
        return UNKNOWN_PART;
    }
    size.div_ceil(MAX_PARTS)
        .next_power_of_two()
        .clamp(MIN_PART, MAX_PART)
}

/// Marks a key as being written by this node; dropping it frees the key.
#[derive(Debug)]
pub(super) struct Hold {
    pub(super) key: String,
    pub(super) uploads: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Ok(mut set) = self.uploads.lock() {
            set.remove(&self.key);
        }
    }
}

/// A part being sent, and the digest at its end.
/// A part being sent, with the digest (and the SHA-256, when another
/// digest verifies the upload) at its end.
type Sending = (
    JoinHandle<object_store::Result<PartId>>,
    Option<Checkpoint>,
    Option<Checkpoint>,
);

/// A file being written to the bucket.
pub(super) struct ObjectPart {
    bucket: Arc<Bucket>,
    key: Path,
    hold: Option<Hold>,
    /// What an earlier attempt left, until this one starts.
    earlier: Option<UploadState>,
    /// Which upload of the key this is: the earlier attempt's, or one
    /// drawn for an upload that starts over.
    generation: Option<String>,
    /// This attempt's state.
    state: Option<UploadState>,
    algo: Algo,
    hasher: Option<Resumable>,
    /// The SHA-256 beside a digest of another algorithm (`None` when the
    /// upload is verified with SHA-256, or one taken up could not say it).
    sha256: Option<Resumable>,
    /// Bytes past the last part sent.
    buf: Vec<u8>,
    size: u64,
    written: u64,
    sending: VecDeque<Sending>,
    /// The last, short part, once sent: it completes the upload but is
    /// never gone on from.
    last: Option<String>,
    /// When this upload last said it runs (see [`HEARTBEAT`]).
    beat: std::time::Instant,
    keep_on_drop: bool,
    /// Finished, discarded or kept.
    done: bool,
}

impl std::fmt::Debug for ObjectPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ObjectPart({}, {}/{})",
            self.key, self.written, self.size
        )
    }
}

impl ObjectPart {
    pub(super) fn begin(
        bucket: Arc<Bucket>,
        rel: &RelPath,
        hold: Hold,
        resume: bool,
    ) -> Result<ObjectPart, FilesError> {
        let earlier = match UploadState::load(&bucket, rel)? {
            // Another server's upload of the name, running now: going on
            // with it would mix two uploads' parts, and ending it would cut
            // it off. A new upload leaves it alone (the later finished
            // wins); a resume waits for it.
            Some(s) if s.running_elsewhere() => {
                if resume {
                    return Err(FilesError::Busy(format!(
                        "{rel} is being uploaded through another server"
                    )));
                }
                None
            }
            Some(s) if !resume => {
                s.abandon(&bucket);
                None
            }
            other => other,
        };
        let generation = match &earlier {
            Some(s) => s.generation.clone(),
            None => crate::ids::random_hex().ok(),
        };
        Ok(ObjectPart {
            key: bucket.key(rel),
            bucket,
            hold: Some(hold),
            earlier,
            generation,
            state: None,
            algo: Algo::Sha256,
            hasher: None,
            sha256: None,
            buf: Vec::new(),
            size: 0,
            written: 0,
            sending: VecDeque::new(),
            last: None,
            beat: std::time::Instant::now(),
            keep_on_drop: false,
            done: false,
        })
    }

    /// Takes up what the earlier attempt left with `algo` (or with the
    /// algorithm it was verified with): the digest of its parts and the
    /// bytes past them. `None` when it was verified with another.
    fn take_up(&mut self, algo: Option<Algo>) -> io::Result<Option<Resumable>> {
        let Some(s) = &self.earlier else {
            return Ok(None);
        };
        let state_algo = Algo::parse(&s.algo).unwrap_or_default();
        let algo = algo.unwrap_or(state_algo);
        let mut hasher = match &s.point {
            Some(p) => match Resumable::resume(algo, s.part_len, p) {
                Some(h) => h,
                None => return Ok(None),
            },
            None if s.parts.is_empty() && algo == state_algo => Resumable::new(algo, s.part_len),
            None => return Ok(None),
        };
        if s.tail > 0 {
            let (_, tail) = UploadState::paths(&self.bucket, &s.key);
            let store = self.bucket.store.clone();
            let bytes = self
                .bucket
                .wait(async move { store.get(&tail).await?.bytes().await })
                .map_err(store_error)?;
            if bytes.len() as u64 != s.tail {
                return Ok(None);
            }
            hasher.update(&bytes);
            self.buf = bytes.to_vec();
        }
        self.algo = algo;
        Ok(Some(hasher))
    }

    /// Sends the first `part_len` bytes of the buffer as the next part.
    fn send_part(
        &mut self,
        point: Option<Checkpoint>,
        sha256_point: Option<Checkpoint>,
    ) -> io::Result<()> {
        let state = self.state.as_mut().expect("a started upload has a state");
        let take = (state.part_len as usize).min(self.buf.len());
        let bytes = Bytes::from(self.buf.drain(..take).collect::<Vec<u8>>());
        if state.id.is_none() {
            let store = self.bucket.store.clone();
            let key = self.key.clone();
            let id = self
                .bucket
                .wait(async move { store.create_multipart(&key).await })
                .map_err(store_error)?;
            state.id = Some(id);
            state.save(&self.bucket, true)?;
        }
        let index = state.parts.len() + self.sending.len();
        let store = self.bucket.store.clone();
        let key = self.key.clone();
        let id = state.id.clone().unwrap_or_default();
        let task = self.bucket.handle.spawn(async move {
            store
                .put_part(&key, &id, index, PutPayload::from(bytes))
                .await
        });
        self.sending.push_back((task, point, sha256_point));
        while self.sending.len() > IN_FLIGHT {
            self.collect_one()?;
        }
        Ok(())
    }

    /// Waits for the oldest part sent and writes down that it is held.
    fn collect_one(&mut self) -> io::Result<()> {
        let Some((task, point, sha256_point)) = self.sending.pop_front() else {
            return Ok(());
        };
        let sent = self
            .bucket
            .wait(task)
            .map_err(|_| io::Error::other("sending a part failed"))?
            .map_err(store_error)?;
        let state = self.state.as_mut().expect("a started upload has a state");
        if point.is_none() {
            // The short last part: kept for completing, not written down.
            self.last = Some(sent.content_id);
            return Ok(());
        }
        state.parts.push(sent.content_id);
        state.point = point;
        state.sha256_point = sha256_point;
        state.tail = 0;
        state.save(&self.bucket, true)
    }

    fn collect_all(&mut self) -> io::Result<()> {
        while !self.sending.is_empty() {
            self.collect_one()?;
        }
        Ok(())
    }

    /// Writes down what is held for a later attempt.
    fn keep_now(&mut self) -> io::Result<()> {
        self.collect_all()?;
        if self.state.is_none() {
            if self.earlier.is_some() {
                // Not taken up: it stays as it was.
                return Ok(());
            }
            // Kept before any byte (a tus upload made without a body): a
            // state that says the upload exists and holds nothing.
            self.state = Some(UploadState {
                generation: self.generation.clone(),
                ..UploadState::new(self.key.as_ref(), MIN_PART, self.algo)
            });
        }
        let Some(state) = self.state.as_mut() else {
            return Ok(());
        };
        let (_, tail) = UploadState::paths(&self.bucket, &state.key);
        if !self.buf.is_empty() {
            let store = self.bucket.store.clone();
            let body = PutPayload::from(self.buf.clone());
            self.bucket
                .wait(async move { store.put(&tail, body).await })
                .map_err(store_error)?;
        }
        state.tail = self.buf.len() as u64;
        state.save(&self.bucket, false)
    }

    fn drop_everything(&mut self) {
        // Parts still being sent are abandoned with their upload.
        self.sending.clear();
        if let Some(s) = self.state.take() {
            s.abandon(&self.bucket);
        }
        if let Some(s) = self.earlier.take() {
            s.abandon(&self.bucket);
        }
    }

    /// Completes the multipart upload; gives the object's ETag.
    fn complete(&mut self, overwrite: bool) -> Result<Option<String>, FinishError> {
        if !self.buf.is_empty() {
            self.send_part(None, None)?;
        }
        self.collect_all()?;
        let state = self.state.clone().expect("a started upload has a state");
        let store = self.bucket.store.clone();
        let key = self.key.clone();
        if !overwrite && self.object_there()? {
            return Err(FinishError::Exists);
        }
        let parts: Vec<PartId> = state
            .parts
            .iter()
            .chain(self.last.as_ref())
            .map(|c| PartId {
                content_id: c.clone(),
            })
            .collect();
        let id = state.id.unwrap_or_default();
        let done = self
            .bucket
            .wait(async move { store.complete_multipart(&key, &id, parts).await })
            .map_err(|e| FinishError::Io(store_error(e)))?;
        Ok(done.e_tag)
    }
}

impl Part for ObjectPart {
    fn existing(&self) -> u64 {
        self.earlier.as_ref().map_or(0, UploadState::held)
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn generation(&self) -> Option<String> {
        self.generation.clone()
    }

    fn hash_existing(&mut self, algo: Algo) -> io::Result<Option<String>> {
        self.algo = algo;
        if self.existing() == 0 {
            return Ok(None);
        }
        let hasher = self.take_up(Some(algo))?;
        let digest = hasher.as_ref().map(Resumable::hex);
        self.hasher = hasher;
        Ok(digest)
    }

    fn start(&mut self, offset: u64, size: u64) -> io::Result<()> {
        if size > MAX_SIZE && size != u64::MAX {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("the store takes files of up to {MAX_SIZE} bytes"),
            ));
        }
        if offset > size || (offset != 0 && offset != self.existing()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot start at byte {offset}"),
            ));
        }
        let key = self.key.to_string();
        if offset == 0 {
            if let Some(s) = self.earlier.take() {
                s.abandon(&self.bucket);
            }
            let part_len = part_len_for(size);
            self.hasher = Some(Resumable::new(self.algo, part_len));
            self.sha256 =
                (self.algo != Algo::Sha256).then(|| Resumable::new(Algo::Sha256, part_len));
            self.state = Some(UploadState {
                generation: self.generation.clone(),
                ..UploadState::new(&key, part_len, self.algo)
            });
            self.buf.clear();
        } else {
            if self.hasher.is_none() {
                self.hasher = self.take_up(None)?;
            }
            let Some(earlier) = self.earlier.take().filter(|_| self.hasher.is_some()) else {
                return Err(io::Error::other(
                    "what the earlier attempt left cannot be taken up",
                ));
            };
            if size.div_ceil(earlier.part_len) > 10_000 {
                return Err(io::Error::other(
                    "too large to go on with in parts this size",
                ));
            }
            // The SHA-256 goes on too, from the end of the last part and
            // through the bytes past it (already in the buffer).
            self.sha256 = if self.algo == Algo::Sha256 {
                None
            } else {
                match &earlier.sha256_point {
                    Some(p) => Resumable::resume(Algo::Sha256, earlier.part_len, p),
                    None if earlier.parts.is_empty() => {
                        Some(Resumable::new(Algo::Sha256, earlier.part_len))
                    }
                    None => None,
                }
                .map(|mut h| {
                    h.update(&self.buf);
                    h
                })
            };
            self.state = Some(earlier);
        }
        self.size = size;
        self.written = offset;
        Ok(())
    }

    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        if self.written + data.len() as u64 > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "more bytes than announced",
            ));
        }
        let part_len = self.state.as_ref().map_or(MIN_PART, |s| s.part_len);
        while !data.is_empty() {
            let room = part_len as usize - self.buf.len();
            let take = room.min(data.len());
            let Some(hasher) = self.hasher.as_mut() else {
                return Err(io::Error::other("bytes before the upload started"));
            };
            hasher.update(&data[..take]);
            if let Some(sha) = self.sha256.as_mut() {
                sha.update(&data[..take]);
            }
            self.buf.extend_from_slice(&data[..take]);
            self.written += take as u64;
            data = &data[take..];
            // A file of one part waits for its end (one PUT).
            if self.buf.len() as u64 == part_len && self.size > part_len {
                let point = hasher.checkpoint();
                let sha256_point = self.sha256.as_ref().and_then(Resumable::checkpoint);
                self.send_part(point, sha256_point)?;
                self.beat = std::time::Instant::now();
            }
        }
        // A slow upload still says it runs, so that no other server takes
        // it over, and one whose server died is taken over soon.
        if self.beat.elapsed() > HEARTBEAT {
            if let Some(state) = self.state.as_mut().filter(|s| s.id.is_some()) {
                state.save(&self.bucket, true)?;
            }
            self.beat = std::time::Instant::now();
        }
        Ok(())
    }

    fn end_here(&mut self) {
        self.size = self.written;
    }

    fn finish(
        mut self: Box<Self>,
        digest: Option<&str>,
        mtime: Option<Mtime>,
        overwrite: bool,
    ) -> Result<String, FinishError> {
        let result = (|| {
            if self.written != self.size {
                return Err(FinishError::Size {
                    got: self.written,
                    want: self.size,
                });
            }
            let actual = self
                .hasher
                .as_ref()
                .map(Resumable::hex)
                .unwrap_or_else(|| self.algo.hex_of(b""));
            if let Some(expected) = digest {
                if !expected.eq_ignore_ascii_case(&actual) {
                    return Err(FinishError::Checksum {
                        expected: expected.to_string(),
                        actual,
                    });
                }
            }
            let multipart = self.state.as_ref().is_some_and(|s| s.id.is_some());
            if multipart {
                let etag = self.complete(overwrite)?;
                if let Some(etag) = etag {
                    let record = FileRecord {
                        etag,
                        mtime: mtime.map(|m| format!("{}.{:09}", m.secs, m.nanos)),
                        digest: format!("{}:{actual}", self.algo.name()),
                        sha256: self.sha256_hex(&actual),
                    };
                    // The file is in place: a record that cannot be
                    // written only leaves the store's time showing.
                    if let Err(e) = record.save(&self.bucket, self.key.as_ref()) {
                        tracing::warn!("the time of {} is not kept: {e}", self.key);
                    }
                }
            } else {
                self.put_whole(&actual, mtime, overwrite)?;
            }
            Ok(actual)
        })();
        // Whatever happened, nothing of this upload is left to go on with.
        self.done = true;
        match &result {
            Ok(_) => {
                if let Some(mut s) = self.state.take() {
                    // Completed: only the state goes.
                    s.id = None;
                    s.abandon(&self.bucket);
                }
            }
            Err(_) => self.drop_everything(),
        }
        result
    }

    fn discard(mut self: Box<Self>) {
        self.done = true;
        self.drop_everything();
    }

    fn keep(mut self: Box<Self>) {
        self.done = true;
        if let Err(e) = self.keep_now() {
            tracing::warn!("could not keep what the upload of {} holds: {e}", self.key);
        }
    }

    fn keep_on_drop(&mut self, keep: bool) {
        self.keep_on_drop = keep;
    }
}

impl Drop for ObjectPart {
    fn drop(&mut self) {
        if !self.done {
            if self.keep_on_drop && self.written.max(self.existing()) > 0 {
                if let Err(e) = self.keep_now() {
                    tracing::warn!("could not keep what the upload of {} holds: {e}", self.key);
                }
            } else {
                self.drop_everything();
            }
        }
        self.hold.take();
    }
}
