//! The files service: the store, the access decision, and the limits an
//! upload is held to. Every door reaches the files through it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::store::FileStore;
use super::upload::{Limits, Upload, UploadOptions};
use super::{FilesError, RelPath};
use crate::access::{Action, Policy, Who};

/// The files service: the store, the access decision, and the limits an
/// upload is held to.
#[derive(Debug)]
pub struct Files {
    store: Arc<FileStore>,
    policy: Policy,
    max_upload: Option<u64>,
    stall: Duration,
    abort: CancellationToken,
}

impl Files {
    /// The service over `store`.
    pub fn new(
        store: FileStore,
        policy: Policy,
        max_upload: Option<u64>,
        stall: Duration,
        abort: CancellationToken,
    ) -> Files {
        Files {
            store: Arc::new(store),
            policy,
            max_upload,
            stall,
            abort,
        }
    }

    /// The store under the service.
    pub fn store(&self) -> &FileStore {
        &self.store
    }

    /// The access decision.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Refuses `size` when it passes the upload limit.
    pub fn check_size(&self, size: u64) -> Result<(), FilesError> {
        match self.max_upload {
            Some(max) if size > max => Err(FilesError::TooLarge(format!(
                "uploads are limited to {max} bytes; this one has {size}"
            ))),
            _ => Ok(()),
        }
    }

    /// Runs `f` on the store, on a blocking thread.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, FilesError>
    where
        T: Send + 'static,
        F: FnOnce(&FileStore) -> Result<T, FilesError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| FilesError::Internal)?
    }

    /// Checks a folder upload whole for `who` (see
    /// [`FileStore::check_plan`]). Replacing needs its own right, as for
    /// one upload: without it, `force` does not count, and a file in the
    /// way is refused as such.
    pub async fn check_plan(
        &self,
        who: Who,
        base: RelPath,
        entries: Vec<super::entry::TreeEntry>,
        force: bool,
    ) -> Result<(), FilesError> {
        self.policy.check(who, Action::Create, &base)?;
        let replace = if force {
            self.policy.check(who, Action::Replace, &base)
        } else {
            Ok(())
        };
        let may = force && replace.is_ok();
        let checked = self
            .blocking(move |s| s.check_plan(&base, &entries, may))
            .await;
        match (checked, replace) {
            (Err(FilesError::Exists(_)), Err(denied)) => Err(denied.into()),
            (checked, _) => checked,
        }
    }

    /// Begins receiving `rel` for `who`: the access decision (creating; and
    /// replacing, when a file is there to replace), the size limit, the
    /// overwrite rule, then the partial file.
    pub async fn begin_upload(
        &self,
        who: Who,
        rel: &RelPath,
        opts: UploadOptions,
    ) -> Result<Upload, FilesError> {
        if rel.is_root() {
            return Err(FilesError::IsADirectory("/ is a folder".into()));
        }
        self.policy.check(who, Action::Create, rel)?;
        if let Some(size) = opts.size {
            self.check_size(size)?;
        }
        let policy = self.policy;
        let r = rel.clone();
        let begun = self
            .blocking(move |s| {
                if opts.continuing && !s.partial_exists(&r) {
                    return Err(FilesError::NotFound(format!("no upload for {r}")));
                }
                let exists = s.exists(&r);
                if opts.overwrite && (exists || opts.continuing) {
                    policy.check(who, Action::Replace, &r)?;
                }
                if opts.make_parents {
                    if let Some(parent) = r.parent().filter(|p| !p.is_root()) {
                        s.mkdir(&parent, true)?;
                    }
                }
                s.begin_upload(&r, opts.overwrite || opts.continuing, opts.resume)
            })
            .await?;
        Ok(Upload::begun(
            begun,
            &opts,
            Limits {
                max_upload: self.max_upload,
                stall: self.stall,
                abort: self.abort.clone(),
            },
        ))
    }
}
