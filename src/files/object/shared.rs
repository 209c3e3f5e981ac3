//! The records every server of the bucket shares (signing keys, login
//! sessions), kept below `PREFIX/.ferry/`.

use object_store::{ObjectStore, PutPayload};

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
        let store = self.bucket.store.clone();
        let key = self.bucket.state_key(name);
        let opts = object_store::PutOptions {
            mode: if only_new {
                object_store::PutMode::Create
            } else {
                object_store::PutMode::Overwrite
            },
            ..Default::default()
        };
        let body = PutPayload::from(value.to_vec());
        match self
            .bucket
            .wait(async move { store.put_opts(&key, body, opts).await })
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(FilesError::Unavailable(short(&e))),
        }
    }

    fn remove(&self, name: &str) -> Result<(), FilesError> {
        let store = self.bucket.store.clone();
        let key = self.bucket.state_key(name);
        match self.bucket.wait(async move { store.delete(&key).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(FilesError::Unavailable(short(&e))),
        }
    }
}
