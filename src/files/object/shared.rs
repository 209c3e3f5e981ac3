//! The records every server of the bucket shares (signing keys, login
//! sessions), kept below `PREFIX/.ferry/`.

use object_store::{GetOptions, ObjectStore, PutMode, PutPayload, UpdateVersion};

use super::ObjectStorage;
use super::bucket::short;
use crate::files::FilesError;
use crate::files::storage::Shared;

/// Records below `PREFIX/.ferry/`, kept in the bucket.
impl Shared for ObjectStorage {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, FilesError> {
        let store = self.bucket.store.clone();
        let key = self.bucket.state_key(name);
        match self
            .bucket
            .wait(async move { store.get(&key).await?.bytes().await })
        {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(FilesError::Unavailable(short(&e))),
        }
    }

    fn put(&self, name: &str, value: &[u8], only_new: bool) -> Result<bool, FilesError> {
        let mode = if only_new {
            PutMode::Create
        } else {
            PutMode::Overwrite
        };
        self.put_mode(name, value, mode)
    }

    fn remove(&self, name: &str) -> Result<(), FilesError> {
        let store = self.bucket.store.clone();
        let key = self.bucket.state_key(name);
        match self.bucket.wait(async move { store.delete(&key).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(FilesError::Unavailable(short(&e))),
        }
    }

    fn get_versioned(&self, name: &str) -> Result<Option<(Vec<u8>, String)>, FilesError> {
        let store = self.bucket.store.clone();
        let key = self.bucket.state_key(name);
        let cached = self.records.lock().ok().and_then(|c| c.get(name).cloned());
        let opts = GetOptions {
            if_none_match: cached.as_ref().map(|(tag, _)| tag.clone()),
            ..GetOptions::default()
        };
        let got = self.bucket.wait(async move {
            let r = store.get_opts(&key, opts).await?;
            let tag = r.meta.e_tag.clone();
            Ok::<_, object_store::Error>((r.bytes().await?, tag))
        });
        let got = match (got, cached) {
            // Unchanged since last read: what was read then.
            (Err(object_store::Error::NotModified { .. }), Some((tag, b))) => Ok((b, Some(tag))),
            (got, _) => got,
        };
        if let (Ok((b, Some(tag))), Ok(mut c)) = (&got, self.records.lock()) {
            c.insert(name.to_owned(), (tag.clone(), b.clone()));
        }
        match got {
            Ok((b, Some(tag))) => Ok(Some((b.to_vec(), tag))),
            Ok((_, None)) => Err(FilesError::Unavailable(
                "the store gives no version of a record".into(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(FilesError::Unavailable(short(&e))),
        }
    }

    fn replace(&self, name: &str, value: &[u8], version: &str) -> Result<bool, FilesError> {
        let version = UpdateVersion {
            e_tag: Some(version.to_owned()),
            version: None,
        };
        self.put_mode(name, value, PutMode::Update(version))
    }
}

impl ObjectStorage {
    /// Writes the record `name` as `mode` says; `false` when its
    /// condition did not hold.
    fn put_mode(&self, name: &str, value: &[u8], mode: PutMode) -> Result<bool, FilesError> {
        let store = self.bucket.store.clone();
        let key = self.bucket.state_key(name);
        let opts = object_store::PutOptions {
            mode,
            ..Default::default()
        };
        let body = PutPayload::from(value.to_vec());
        match self
            .bucket
            .wait(async move { store.put_opts(&key, body, opts).await })
        {
            Ok(_) => Ok(true),
            // A replaced record that is gone since is not "still at" it.
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. },
            ) => Ok(false),
            Err(e) => Err(FilesError::Unavailable(short(&e))),
        }
    }
}
