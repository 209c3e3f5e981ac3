//! [`ObjectStorage`]: the served files in an S3-compatible bucket
//! (SeaweedFS, Garage, MinIO, Ceph RGW, AWS S3), the second [`Storage`],
//! through the `object_store` crate. Several ferry nodes may serve one
//! bucket: nothing about the files is kept on a node.
//!
//! - A file is the object `PREFIX/PATH`; a folder is every key below
//!   `PREFIX/PATH/`, and one made empty by `mkdir` holds the marker
//!   object [`FOLDER_MARKER`]. A folder marker written by another tool
//!   (a key ending in `/`) is a folder too.
//! - Uploads become visible only when complete and verified: a small one
//!   is one PUT at the end, a large one a multipart upload completed last
//!   ([`write`]). An unfinished upload's state (its multipart id, the
//!   parts sent, the digest so far, the bytes past the last whole part)
//!   is kept in the bucket below `PREFIX/.ferry/`, so any node can go on
//!   with it.
//! - Moves copy, then delete: a crash between the two leaves both
//!   ([`moves`]).
//! - Calls block, as the seam wants (`Bucket::wait`, on a disk thread).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    Attribute, ClientOptions, GetOptions, ObjectMeta, ObjectStore, PutPayload, RetryConfig,
};

use super::FilesError;
use super::digest::Algo;
use super::entry::{Entry, EntryKind, Mtime, Tree};
use super::local::MAX_WALK;
use super::name::RelPath;
use super::storage::{Begun, Part, Reader, Shared, Storage};

mod bucket;
mod listing;
mod moves;
mod read;
mod shared;
mod state;
mod walk;
mod write;

pub use bucket::StoreUrl;
use bucket::{Bucket, error, mtime_of, parse_mtime, short};

/// The object that keeps an empty folder, inside it. Never listed.
pub const FOLDER_MARKER: &str = ".ferry-folder";
/// The folder below the prefix where ferry keeps its own state. Never
/// served.
pub const STATE_FOLDER: &str = ".ferry";

/// The served files in a bucket.
#[derive(Debug)]
pub struct ObjectStorage {
    bucket: Arc<Bucket>,
    /// Keys this node is writing, so that two uploads of one name through
    /// the same node do not interleave (across nodes, the later complete
    /// upload wins whole).
    uploads: Arc<Mutex<HashSet<String>>>,
    /// The shared records last read, by name, with their ETags: read
    /// again only when changed (a `304` instead of the record).
    records: Mutex<std::collections::HashMap<String, (String, bytes::Bytes)>>,
}

/// An object as a HEAD finds it.
struct Found {
    meta: ObjectMeta,
    /// The file's own time, when ferry kept it.
    mtime: Option<Mtime>,
    /// The digests ferry kept of this version.
    digests: Vec<(Algo, String)>,
}

impl ObjectStorage {
    /// Opens `url` with the endpoint, region and credentials of the
    /// environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), run on the current
    /// runtime. Nothing is asked of the store yet: a node starts while its
    /// store is away, and serves what does not need it.
    pub fn open(url: &StoreUrl) -> std::io::Result<ObjectStorage> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .ok();
        Self::open_at(url, endpoint.as_deref(), None)
    }

    /// Opens `url` at `endpoint`, with `keys` (access key id and secret)
    /// when given, the rest from the environment.
    pub fn open_at(
        url: &StoreUrl,
        endpoint: Option<&str>,
        keys: Option<(&str, &crate::secret::Secret)>,
    ) -> std::io::Result<ObjectStorage> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| std::io::Error::other("object storage needs a running runtime"))?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&url.bucket);
        if let Some(e) = endpoint {
            builder = builder.with_endpoint(e);
        }
        if let Some((id, secret)) = keys {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret.expose());
        }
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            builder = builder.with_region("us-east-1");
        }
        // A store that is away is told quickly, not after minutes of
        // retries: the client gets a clear error and tries again.
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..RetryConfig::default()
        };
        // Plain HTTP only to an endpoint named so (a store on the LAN).
        let options = ClientOptions::new()
            .with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(60));
        let store = builder
            .with_retry(retry)
            .with_client_options(options)
            .build()
            .map_err(|e| std::io::Error::other(format!("{url}: {}", short(&e))))?;
        Ok(ObjectStorage {
            bucket: Arc::new(Bucket {
                store: Arc::new(store),
                handle,
                url: url.clone(),
            }),
            uploads: Arc::default(),
            records: Mutex::default(),
        })
    }

    /// Whether `rel` is one of ferry's own names, never served.
    fn reserved(rel: &RelPath) -> bool {
        rel.parts().first().map(String::as_str) == Some(STATE_FOLDER)
            || rel.file_name() == Some(FOLDER_MARKER)
    }

    /// The object at `rel`, with the time and the digests ferry keeps of
    /// it (metadata of one PUT, or the record of one stored in parts).
    fn head(&self, rel: &RelPath) -> Result<Option<Found>, FilesError> {
        self.found_at(&self.bucket.key(rel))
            .map_err(|e| error(rel, e))
    }

    /// [`ObjectStorage::head`] by key.
    fn found_at(&self, key: &Path) -> Result<Option<Found>, object_store::Error> {
        let store = self.bucket.store.clone();
        let key = key.clone();
        let opts = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self
            .bucket
            .wait(async move { store.get_opts(&key, opts).await })
        {
            Ok(got) => {
                let meta = |name: &str| {
                    got.attributes
                        .get(&Attribute::Metadata(name.to_owned().into()))
                        .map(|v| v.to_string())
                };
                let mut mtime = meta("ferry-mtime").and_then(|v| parse_mtime(&v));
                let mut digests: Vec<(Algo, String)> = [Algo::Sha256, Algo::Blake3]
                    .into_iter()
                    .filter_map(|a| Some((a, meta(&format!("ferry-{}", a.name()))?)))
                    .collect();
                // A file stored in parts (its ETag says how many) keeps
                // its time and digests in a record beside it.
                if let Some(etag) = got.meta.e_tag.as_deref().filter(|t| t.contains('-')) {
                    if let Some(r) =
                        state::FileRecord::load(&self.bucket, got.meta.location.as_ref(), etag)
                    {
                        mtime = r.mtime.as_deref().and_then(parse_mtime);
                        digests = r.digests();
                    }
                }
                Ok(Some(Found {
                    meta: got.meta,
                    mtime,
                    digests,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The object at `key` as the store lists it, if there is one.
    fn head_key(&self, key: &Path) -> Result<Option<ObjectMeta>, FilesError> {
        let store = self.bucket.store.clone();
        let k = key.clone();
        match self.bucket.wait(async move { store.head(&k).await }) {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(FilesError::Unavailable(format!("{key}: {}", short(&e)))),
        }
    }

    /// Whether any key lies below `rel` (a folder, marked or implied).
    pub(super) fn has_below(&self, rel: &RelPath) -> Result<bool, FilesError> {
        if rel.is_root() {
            return Ok(true);
        }
        let store = self.bucket.store.clone();
        let key = self.bucket.key(rel);
        let first = self.bucket.wait(async move {
            let mut list = store.list(Some(&key));
            list.next().await.transpose()
        });
        first.map(|f| f.is_some()).map_err(|e| error(rel, e))
    }

    pub(super) fn describe_entry(&self, rel: &RelPath) -> Result<Entry, FilesError> {
        let name = rel.file_name().unwrap_or("").to_string();
        if Self::reserved(rel) {
            return Err(FilesError::NotFound(format!("{rel} does not exist")));
        }
        if !rel.is_root() {
            if let Some(found) = self.head(rel)? {
                return Ok(Entry {
                    name,
                    kind: EntryKind::File,
                    size: found.meta.size,
                    mtime: found.mtime.or_else(|| Some(mtime_of(&found.meta))),
                });
            }
        }
        if self.has_below(rel)? {
            return Ok(Entry {
                name,
                kind: EntryKind::Dir,
                size: 0,
                mtime: None,
            });
        }
        Err(FilesError::NotFound(format!("{rel} does not exist")))
    }

    /// Checks that `rel`'s parent is a folder.
    fn parent_is_folder(&self, rel: &RelPath) -> Result<(), FilesError> {
        let parent = rel.parent().ok_or_else(|| {
            FilesError::Forbidden("the served folder itself cannot be changed".into())
        })?;
        match self.describe_entry(&parent)? {
            e if e.kind == EntryKind::Dir => Ok(()),
            _ => Err(FilesError::NotADirectory(format!(
                "{parent} is not a folder"
            ))),
        }
    }

    /// Where an upload of `rel` writes (going on with an earlier one's
    /// parts with `resume`); `busy` while this server writes it already.
    fn write_part(&self, rel: &RelPath, resume: bool) -> Result<Box<dyn Part>, FilesError> {
        let key = self.bucket.key(rel).to_string();
        {
            let mut set = self.uploads.lock().map_err(|_| FilesError::Internal)?;
            if !set.insert(key.clone()) {
                return Err(FilesError::Busy(format!(
                    "{rel} is being uploaded by another client"
                )));
            }
        }
        let guard = write::Hold {
            key,
            uploads: self.uploads.clone(),
        };
        let part = write::ObjectPart::begin(self.bucket.clone(), rel, guard, resume)?;
        Ok(Box::new(part))
    }

    /// Every object below `rel`, with the key's path below it; `""` for
    /// another tool's marker of `rel` itself (`rel/`, listed without its
    /// slash).
    fn objects_below(&self, rel: &RelPath) -> Result<Vec<(String, ObjectMeta)>, FilesError> {
        let store = self.bucket.store.clone();
        let base = self.bucket.key(rel);
        let prefix = if base.as_ref().is_empty() {
            None
        } else {
            Some(base.clone())
        };
        let all: Vec<ObjectMeta> = self
            .bucket
            .wait(async move {
                store
                    .list(prefix.as_ref())
                    .take(MAX_WALK + 1)
                    .try_collect()
                    .await
            })
            .map_err(|e| error(rel, e))?;
        if all.len() > MAX_WALK {
            return Err(FilesError::TooLarge(format!(
                "{rel} holds more than {MAX_WALK} entries"
            )));
        }
        Ok(all
            .into_iter()
            .filter_map(|m| {
                let below: Vec<String> = m
                    .location
                    .parts()
                    .skip(base.parts().count())
                    .map(|p| p.as_ref().to_string())
                    .collect();
                (!base.as_ref().is_empty() || !below.is_empty()).then(|| (below.join("/"), m))
            })
            .collect())
    }
}

impl Storage for ObjectStorage {
    fn describe(&self) -> String {
        self.bucket.url.to_string()
    }

    fn stat(&self, rel: &RelPath) -> Result<Entry, FilesError> {
        self.describe_entry(rel)
    }

    fn stat_name(&self, rel: &RelPath) -> Result<Entry, FilesError> {
        self.describe_entry(rel)
    }

    fn list(&self, rel: &RelPath) -> Result<Vec<Entry>, FilesError> {
        let mut all = Vec::new();
        listing::pages(self, rel, &mut |page| {
            all.extend(page);
            Ok(())
        })?;
        Ok(all)
    }

    fn list_paged(
        &self,
        rel: &RelPath,
        page: &mut dyn FnMut(Vec<Entry>) -> Result<(), FilesError>,
    ) -> Result<(), FilesError> {
        listing::pages(self, rel, page)
    }

    fn walk(&self, rel: &RelPath) -> Result<Tree, FilesError> {
        walk::tree(self, rel)
    }

    /// Keys are compared byte for byte.
    fn ignores_case(&self, _rel: &RelPath) -> bool {
        false
    }

    fn open_read(&self, rel: &RelPath) -> Result<(Reader, Entry), FilesError> {
        // One HEAD: the file's size, time and version (the reads are
        // pinned to it).
        let found = if Self::reserved(rel) || rel.is_root() {
            None
        } else {
            self.head(rel)?
        };
        let Some(Found {
            meta,
            mtime,
            digests,
        }) = found
        else {
            return Err(match self.describe_entry(rel)?.kind {
                EntryKind::Dir => FilesError::IsADirectory(format!("{rel} is a folder")),
                _ => FilesError::NotFound(format!("{rel} does not exist")),
            });
        };
        let entry = Entry {
            name: rel.file_name().unwrap_or("").to_string(),
            kind: EntryKind::File,
            size: meta.size,
            mtime: mtime.or_else(|| Some(mtime_of(&meta))),
        };
        let mut reader = read::ObjectReader::new(
            self.bucket.clone(),
            self.bucket.key(rel),
            meta.e_tag,
            meta.size,
        );
        reader.digests = digests;
        Ok((Box::new(reader), entry))
    }

    fn begin_write(&self, rel: &RelPath, replace: bool, resume: bool) -> Result<Begun, FilesError> {
        if Self::reserved(rel) {
            return Err(FilesError::Forbidden(format!(
                "{rel} is a name the server keeps for itself"
            )));
        }
        self.parent_is_folder(rel)?;
        let replaces = match self.describe_entry(rel) {
            Ok(e) if e.kind == EntryKind::Dir => {
                return Err(FilesError::IsADirectory(format!("{rel} is a folder")));
            }
            Ok(_) if !replace => {
                return Err(FilesError::Exists(format!(
                    "{rel} exists (ask to overwrite with --force)"
                )));
            }
            Ok(_) => true,
            Err(FilesError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        Ok(Begun {
            part: self.write_part(rel, resume)?,
            replaces,
        })
    }

    fn remove(&self, rel: &RelPath, recursive: bool) -> Result<(), FilesError> {
        if rel.is_root() {
            return Err(FilesError::Forbidden(
                "the served folder itself cannot be removed".into(),
            ));
        }
        if Self::reserved(rel) {
            return Err(FilesError::NotFound(format!("{rel} does not exist")));
        }
        let store = self.bucket.store.clone();
        if let Some(found) = self.head(rel)? {
            let key = found.meta.location;
            let k = key.clone();
            self.bucket
                .wait(async move { store.delete(&k).await })
                .map_err(|e| error(rel, e))?;
            state::forget_records(&self.bucket, [(key.as_ref(), found.meta.e_tag.as_deref())]);
            return Ok(());
        }
        if !self.has_below(rel)? {
            return Err(FilesError::NotFound(format!("{rel} does not exist")));
        }
        let below = self.objects_below(rel)?;
        let held = below
            .iter()
            .any(|(p, _)| p != FOLDER_MARKER && !p.is_empty());
        if held && !recursive {
            return Err(FilesError::NotEmpty(format!(
                "{rel} is not empty (use recursive removal)"
            )));
        }
        // Not another tool's marker of the folder itself: listed without
        // its slash, its key would name a file of the folder's name.
        let below: Vec<_> = below.into_iter().filter(|(p, _)| !p.is_empty()).collect();
        let keys: Vec<Path> = below.iter().map(|(_, m)| m.location.clone()).collect();
        self.bucket
            .wait(async move {
                let stream = futures_util::stream::iter(keys.into_iter().map(Ok)).boxed();
                store.delete_stream(stream).try_collect::<Vec<_>>().await
            })
            .map_err(|e| error(rel, e))?;
        state::forget_records(
            &self.bucket,
            below
                .iter()
                .map(|(_, m)| (m.location.as_ref(), m.e_tag.as_deref())),
        );
        Ok(())
    }

    fn mkdir(&self, rel: &RelPath) -> Result<(), FilesError> {
        if Self::reserved(rel) {
            return Err(FilesError::Forbidden(format!(
                "{rel} is a name the server keeps for itself"
            )));
        }
        self.parent_is_folder(rel)?;
        match self.describe_entry(rel) {
            Ok(_) => return Err(FilesError::Exists(format!("{rel} exists"))),
            Err(FilesError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        // The marker's key is the storage's own, not a path a peer names:
        // a folder as deep as a path may go has one too.
        let marker = rel.join(&RelPath::parse(FOLDER_MARKER)?);
        let key = self.bucket.key(&marker);
        let store = self.bucket.store.clone();
        self.bucket
            .wait(async move { store.put(&key, PutPayload::new()).await })
            .map(|_| ())
            .map_err(|e| error(rel, e))
    }

    fn rename(&self, from: &RelPath, to: &RelPath, force: bool) -> Result<(), FilesError> {
        moves::rename(self, from, to, force)
    }

    fn partial_exists(&self, rel: &RelPath) -> bool {
        state::UploadState::load(&self.bucket, rel)
            .ok()
            .flatten()
            .is_some()
    }

    fn partial_generation(&self, rel: &RelPath) -> Result<Option<String>, FilesError> {
        Ok(state::UploadState::load(&self.bucket, rel)?.and_then(|s| s.generation))
    }

    fn upload_progress(&self, rel: &RelPath, length: u64) -> Result<Option<u64>, FilesError> {
        if let Some(state) = state::UploadState::load(&self.bucket, rel)? {
            return Ok(Some(state.held()));
        }
        match self.describe_entry(rel) {
            Ok(e) if e.kind == EntryKind::File && e.size == length => Ok(Some(length)),
            Ok(_) | Err(FilesError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn remove_partial(&self, rel: &RelPath) -> Result<bool, FilesError> {
        let key = self.bucket.key(rel).to_string();
        if self
            .uploads
            .lock()
            .map_err(|_| FilesError::Internal)?
            .contains(&key)
        {
            return Err(FilesError::Busy(format!(
                "{rel} is being uploaded by another client"
            )));
        }
        match state::UploadState::load(&self.bucket, rel)? {
            Some(state) => {
                state.abandon(&self.bucket);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn shared(&self) -> Option<&dyn Shared> {
        Some(self)
    }

    fn links(&self) -> bool {
        false
    }

    fn max_size(&self) -> Option<u64> {
        Some(state::MAX_SIZE)
    }

    fn sweep_partials(&self, max_age: Duration) -> usize {
        let running: HashSet<String> = self.uploads.lock().map(|s| s.clone()).unwrap_or_default();
        state::sweep(&self.bucket, max_age, &running)
    }
}
