//! A file of at most one part, stored with one PUT at its end, with its
//! time and digests as the object's metadata.

use object_store::{Attribute, Attributes, ObjectStore, PutMode, PutOptions, PutPayload};

use super::{ObjectPart, store_error};
use crate::files::FinishError;
use crate::files::digest::Algo;
use crate::files::entry::Mtime;
use crate::files::resumable::Resumable;

/// Why one PUT was not taken.
enum Refusal {
    /// The store answered that its condition (no object at the name) did
    /// not hold.
    Condition,
    /// Anything else, as the upload's finish says it.
    Failed(FinishError),
}

impl From<Refusal> for FinishError {
    fn from(r: Refusal) -> FinishError {
        match r {
            Refusal::Condition => FinishError::Exists,
            Refusal::Failed(e) => e,
        }
    }
}

impl ObjectPart {
    /// The file's SHA-256 (hex), given its `digest` by the upload's own
    /// algorithm.
    pub(super) fn sha256_hex(&self, digest: &str) -> Option<String> {
        if self.algo == Algo::Sha256 {
            Some(digest.to_owned())
        } else {
            self.sha256.as_ref().map(Resumable::hex)
        }
    }

    /// Stores a file of at most one part with one PUT.
    pub(super) fn put_whole(
        &mut self,
        digest: &str,
        mtime: Option<Mtime>,
        overwrite: bool,
    ) -> Result<(), FinishError> {
        let mut attributes = Attributes::new();
        if let Some(m) = mtime {
            attributes.insert(
                Attribute::Metadata("ferry-mtime".into()),
                format!("{}.{:09}", m.secs, m.nanos).into(),
            );
        }
        attributes.insert(
            Attribute::Metadata(format!("ferry-{}", self.algo.name()).into()),
            digest.to_string().into(),
        );
        if let Some(sha) = self.sha256_hex(digest) {
            attributes.insert(Attribute::Metadata("ferry-sha256".into()), sha.into());
        }
        let body = PutPayload::from(std::mem::take(&mut self.buf));
        match self.put_body(&body, &attributes, overwrite) {
            Ok(()) => Ok(()),
            // SeaweedFS keeps an emptied folder's directory entry for a
            // while, and a conditional create takes it for an object
            // (412). When no object is there, it is put without the
            // condition. Never on a 409: that is another create of the
            // name in flight, which must win or lose whole.
            Err(Refusal::Condition) if !self.object_there()? => self
                .put_body(&body, &attributes, true)
                .map_err(Refusal::into),
            Err(r) => Err(r.into()),
        }
    }

    /// One PUT of `body` with `attributes`; only when the name is free
    /// unless `overwrite`.
    fn put_body(
        &self,
        body: &PutPayload,
        attributes: &Attributes,
        overwrite: bool,
    ) -> Result<(), Refusal> {
        let opts = PutOptions {
            mode: if overwrite {
                PutMode::Overwrite
            } else {
                PutMode::Create
            },
            attributes: attributes.clone(),
            ..PutOptions::default()
        };
        let store = self.bucket.store.clone();
        let key = self.key.clone();
        let body = body.clone();
        match self
            .bucket
            .wait(async move { store.put_opts(&key, body, opts).await })
        {
            Ok(_) => Ok(()),
            // object_store says "already exists" for a 412 (the condition,
            // its source) and a 409 (a conflicting create) alike.
            Err(object_store::Error::AlreadyExists { source, .. })
                if matches!(
                    source.downcast_ref::<object_store::Error>(),
                    Some(
                        object_store::Error::Precondition { .. }
                            | object_store::Error::NotModified { .. }
                    )
                ) =>
            {
                Err(Refusal::Condition)
            }
            Err(object_store::Error::Precondition { .. }) => Err(Refusal::Condition),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(Refusal::Failed(FinishError::Exists))
            }
            Err(e) => Err(Refusal::Failed(FinishError::Io(store_error(e)))),
        }
    }

    /// Whether an object is at the upload's key now.
    pub(super) fn object_there(&self) -> Result<bool, FinishError> {
        let store = self.bucket.store.clone();
        let key = self.key.clone();
        match self.bucket.wait(async move { store.head(&key).await }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(FinishError::Io(store_error(e))),
        }
    }
}
