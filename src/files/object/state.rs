//! What an unfinished upload holds, written down in the bucket so that
//! any node can go on with it, and the sweep of those never taken up.

use std::collections::HashSet;
use std::io;
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

use super::bucket::{Bucket, error, short};
use crate::files::FilesError;
use crate::files::digest::Algo;
use crate::files::name::RelPath;
use crate::files::resumable::Checkpoint;

/// The smallest part: a power of two (the digest's parts are), above S3's
/// 5 MiB minimum.
pub(super) const MIN_PART: u64 = 8 << 20;
/// The largest part: held in memory while it fills, so bounded.
pub(super) const MAX_PART: u64 = 64 << 20;
/// S3 allows 10,000 parts; sizes are chosen to stay well below.
pub(super) const MAX_PARTS: u64 = 9_000;
/// The largest file stored (about 562 GiB).
pub(super) const MAX_SIZE: u64 = MAX_PART * MAX_PARTS;

/// What an unfinished upload holds, as kept in the bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UploadState {
    /// The target's key.
    pub(super) key: String,
    /// The multipart upload, once one was begun.
    pub(super) id: Option<String>,
    /// Bytes per part.
    pub(super) part_len: u64,
    /// The parts sent, in order.
    pub(super) parts: Vec<String>,
    /// The digest at the end of the last part sent.
    pub(super) point: Option<Checkpoint>,
    /// The digest algorithm (for a state without parts).
    pub(super) algo: String,
    /// The SHA-256 at the end of the last part sent, when the upload is
    /// verified with another algorithm (every file keeps its SHA-256).
    #[serde(default)]
    pub(super) sha256_point: Option<Checkpoint>,
    /// Bytes past the last part, kept as the object `….tail`.
    pub(super) tail: u64,
    /// The server writing it now (its instance id), until it lets go.
    #[serde(default)]
    pub(super) owner: Option<String>,
    /// When it was last written, seconds since the epoch.
    #[serde(default)]
    pub(super) at: u64,
    /// Which upload of the key it is (`Part::generation`), drawn when
    /// one starts over; none in a state written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) generation: Option<String>,
}

/// How long an upload written down by another server counts as running
/// there: a running upload writes its state at least every
/// [`HEARTBEAT`], so one whose server died is taken over within this.
pub(super) const LEASE: Duration = Duration::from_secs(30);
/// How often a running upload says it still runs, at least.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(10);

/// This server, as the owner of the uploads it runs.
pub(super) fn me() -> &'static str {
    static ME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ME.get_or_init(|| crate::ids::random_hex().unwrap_or_else(|_| "ferry".into()))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The name of an upload's state objects (a digest of the key, so that
/// any name fits).
fn state_name(key: &str) -> String {
    format!("uploads/{}", &Algo::Sha256.hex_of(key.as_bytes())[..32])
}

/// What a file stored in parts could not carry as object metadata (S3
/// fixes that when the upload begins, before its digest is known): its
/// own time and digest, kept beside it for the version (ETag) it was
/// written as, so that any later change of the object leaves it unused.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FileRecord {
    /// The object's ETag when it was completed.
    pub(super) etag: String,
    /// The file's own time, `SECS.NANOS`.
    #[serde(default)]
    pub(super) mtime: Option<String>,
    /// The digest it was verified with: `ALGO:HEX`.
    pub(super) digest: String,
    /// Its SHA-256 (hex), whatever it was verified with.
    #[serde(default)]
    pub(super) sha256: Option<String>,
}

/// Removes the records of the files stored in parts among `gone` (keys
/// and the ETags they had), which were just deleted.
pub(super) fn forget_records<'a>(
    bucket: &Bucket,
    gone: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) {
    for (key, etag) in gone {
        if let Some(etag) = etag.filter(|t| t.contains('-')) {
            FileRecord::forget(bucket, key, etag);
        }
    }
}

impl FileRecord {
    /// The digests it holds, by algorithm.
    pub(super) fn digests(&self) -> Vec<(Algo, String)> {
        let verified = self
            .digest
            .split_once(':')
            .and_then(|(a, hex)| Some((Algo::parse(a)?, hex.to_owned())));
        let sha = self.sha256.clone().map(|h| (Algo::Sha256, h));
        let mut all: Vec<(Algo, String)> = verified.into_iter().chain(sha).collect();
        all.dedup_by_key(|(a, _)| *a);
        all
    }

    /// Where the record of `key` is kept.
    pub(super) fn path(bucket: &Bucket, key: &str) -> Path {
        bucket.state_key(&format!(
            "files/{}.json",
            &Algo::Sha256.hex_of(key.as_bytes())[..32]
        ))
    }

    /// The record of `key` as of version `etag`, if there is one.
    pub(super) fn load(bucket: &Bucket, key: &str, etag: &str) -> Option<FileRecord> {
        let at = Self::path(bucket, key);
        let store = bucket.store.clone();
        let got = bucket
            .wait(async move { store.get(&at).await?.bytes().await })
            .ok()?;
        serde_json::from_slice::<FileRecord>(&got)
            .ok()
            .filter(|r| r.etag == etag)
    }

    /// Removes the record of `key` when it is that of version `etag`
    /// (which is gone): a later version's record is left alone.
    pub(super) fn forget(bucket: &Bucket, key: &str, etag: &str) {
        if Self::load(bucket, key, etag).is_none() {
            return;
        }
        let at = Self::path(bucket, key);
        let store = bucket.store.clone();
        match bucket.wait(async move { store.delete(&at).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("the record of {key} stays: {}", short(&e)),
        }
    }

    /// Writes it down for `key`.
    pub(super) fn save(&self, bucket: &Bucket, key: &str) -> io::Result<()> {
        let at = Self::path(bucket, key);
        let body = serde_json::to_vec(self).map_err(io::Error::other)?;
        let store = bucket.store.clone();
        bucket
            .wait(async move { store.put(&at, PutPayload::from(body)).await })
            .map(|_| ())
            .map_err(store_error)
    }
}

impl UploadState {
    pub(super) fn new(key: &str, part_len: u64, algo: Algo) -> UploadState {
        UploadState {
            key: key.to_string(),
            id: None,
            part_len,
            parts: Vec::new(),
            point: None,
            sha256_point: None,
            algo: algo.name().to_string(),
            tail: 0,
            owner: None,
            at: 0,
            generation: None,
        }
    }

    /// Whether another server is running this upload now.
    pub(super) fn running_elsewhere(&self) -> bool {
        self.owner.as_deref().is_some_and(|o| o != me())
            && unix_now().saturating_sub(self.at) < LEASE.as_secs()
    }

    /// Whether it is one this server could have written: a record read
    /// back from the bucket is checked whole before anything is taken
    /// from it.
    fn sound(&self) -> bool {
        let parts = self.parts.len() as u64;
        (MIN_PART..=MAX_PART).contains(&self.part_len)
            && self.part_len.is_power_of_two()
            && parts <= MAX_PARTS
            && self.tail < self.part_len
            && Algo::parse(&self.algo).is_some()
            && match &self.point {
                Some(p) => p.bytes == parts * self.part_len && p.algo == self.algo,
                None => parts == 0,
            }
            && self
                .sha256_point
                .as_ref()
                .is_none_or(|p| p.bytes == parts * self.part_len && p.algo == "sha256")
            && (parts == 0 || self.id.is_some())
    }

    /// Bytes held.
    pub(super) fn held(&self) -> u64 {
        self.parts.len() as u64 * self.part_len + self.tail
    }

    pub(super) fn paths(bucket: &Bucket, key: &str) -> (Path, Path) {
        let name = state_name(key);
        (
            bucket.state_key(&format!("{name}.json")),
            bucket.state_key(&format!("{name}.tail")),
        )
    }

    /// The state of an unfinished upload of `rel`, if one was left.
    pub(super) fn load(bucket: &Bucket, rel: &RelPath) -> Result<Option<UploadState>, FilesError> {
        let key = bucket.key(rel).to_string();
        let (json, _) = Self::paths(bucket, &key);
        let store = bucket.store.clone();
        let got = bucket.wait(async move {
            let got = store.get(&json).await?;
            got.bytes().await
        });
        match got {
            Ok(bytes) => Ok(serde_json::from_slice::<UploadState>(&bytes)
                .ok()
                .filter(|s| s.key == key && s.sound())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(error(rel, e)),
        }
    }

    /// Writes it down, as running here (`running`) or let go of.
    pub(super) fn save(&mut self, bucket: &Bucket, running: bool) -> io::Result<()> {
        self.owner = running.then(|| me().to_string());
        self.at = unix_now();
        let (json, _) = Self::paths(bucket, &self.key);
        let body = serde_json::to_vec(self).map_err(io::Error::other)?;
        let store = bucket.store.clone();
        bucket
            .wait(async move { store.put(&json, PutPayload::from(body)).await })
            .map(|_| ())
            .map_err(store_error)
    }

    /// Removes what the upload left: its multipart upload, its state.
    /// Waits for the store, so that a later state of the same name is
    /// never removed by this (best effort: a store that is away keeps
    /// them for the sweep).
    pub(super) fn abandon(self, bucket: &Bucket) {
        let store = bucket.store.clone();
        let (json, tail) = Self::paths(bucket, &self.key);
        let key = Path::parse(&self.key).unwrap_or_else(|_| super::bucket::nowhere());
        bucket.wait(async move {
            if let Some(id) = &self.id {
                let _ = store.abort_multipart(&key, id).await;
            }
            let _ = store.delete(&tail).await;
            let _ = store.delete(&json).await;
        });
    }
}

pub(super) fn store_error(e: object_store::Error) -> io::Error {
    io::Error::other(short(&e))
}

/// Removes what uploads that never came back left, untouched for longer
/// than `max_age`, except those of `running` keys.
pub(super) fn sweep(bucket: &Bucket, max_age: Duration, running: &HashSet<String>) -> usize {
    let store = bucket.store.clone();
    let dir = bucket.state_key("uploads");
    let listed: object_store::Result<Vec<_>> =
        bucket.wait(async move { store.list(Some(&dir)).try_collect().await });
    let Ok(listed) = listed else {
        return 0;
    };
    let now = chrono::Utc::now();
    let mut swept = 0;
    for meta in listed {
        if !meta.location.as_ref().ends_with(".json") {
            continue;
        }
        let age = (now - meta.last_modified).to_std().unwrap_or_default();
        if age <= max_age {
            continue;
        }
        let store = bucket.store.clone();
        let at = meta.location.clone();
        let got = bucket.wait(async move { store.get(&at).await?.bytes().await });
        let Some(state) = got
            .ok()
            .and_then(|b| serde_json::from_slice::<UploadState>(&b).ok())
        else {
            continue;
        };
        if running.contains(&state.key) || state.running_elsewhere() {
            continue;
        }
        state.abandon(bucket);
        swept += 1;
    }
    swept
}
