//! [`Shown`]: what of the storage is served. Names that start with a dot
//! (`.git`, `.env`, `.ssh`) are hidden by default, as in miniserve and
//! dufs: left out of listings and walks, reported as absent when asked
//! for, and refused as upload, folder or move targets. `--hidden` serves
//! them. It wraps whichever [`Storage`] was chosen, so that every door
//! (native, HTTP, tus, WebDAV, classic, exec's working folder) gets the
//! same rule from one place.

use std::path::PathBuf;
use std::sync::Arc;

use super::entry::{Entry, Tree};
use super::storage::{Begun, Reader, Storage};
use super::{FilesError, RelPath};

/// Whether a name is hidden: it starts with a dot.
pub fn is_hidden_name(name: &str) -> bool {
    name.starts_with('.')
}

/// Whether any component of `rel` is hidden.
pub fn is_hidden(rel: &RelPath) -> bool {
    rel.parts().iter().any(|p| is_hidden_name(p))
}

/// A storage with its hidden names taken out.
#[derive(Debug)]
pub struct Shown {
    inner: Arc<dyn Storage>,
}

impl Shown {
    /// `inner`, with dot-names hidden.
    pub fn new(inner: Arc<dyn Storage>) -> Shown {
        Shown { inner }
    }

    /// A read of a hidden path finds nothing, as if it were not there.
    fn seen(&self, rel: &RelPath) -> Result<(), FilesError> {
        if is_hidden(rel) {
            return Err(FilesError::NotFound(format!("{rel} does not exist")));
        }
        Ok(())
    }

    /// A change to a hidden path is refused, saying why.
    fn changeable(&self, rel: &RelPath) -> Result<(), FilesError> {
        if is_hidden(rel) {
            return Err(FilesError::Forbidden(format!(
                "{rel}: names starting with a dot are hidden on this server (it serves them only with --hidden)"
            )));
        }
        Ok(())
    }
}

impl Storage for Shown {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn quick(&self) -> bool {
        self.inner.quick()
    }

    fn links(&self) -> bool {
        self.inner.links()
    }

    fn stat(&self, rel: &RelPath) -> Result<Entry, FilesError> {
        self.seen(rel)?;
        self.inner.stat(rel)
    }

    fn stat_name(&self, rel: &RelPath) -> Result<Entry, FilesError> {
        self.seen(rel)?;
        self.inner.stat_name(rel)
    }

    fn exists(&self, rel: &RelPath) -> bool {
        !is_hidden(rel) && self.inner.exists(rel)
    }

    fn list(&self, rel: &RelPath) -> Result<Vec<Entry>, FilesError> {
        self.seen(rel)?;
        let mut entries = self.inner.list(rel)?;
        entries.retain(|e| !is_hidden_name(&e.name));
        Ok(entries)
    }

    fn list_paged(
        &self,
        rel: &RelPath,
        page: &mut dyn FnMut(Vec<Entry>) -> Result<(), FilesError>,
    ) -> Result<(), FilesError> {
        self.seen(rel)?;
        self.inner.list_paged(rel, &mut |mut entries| {
            entries.retain(|e| !is_hidden_name(&e.name));
            page(entries)
        })
    }

    fn ignores_case(&self, rel: &RelPath) -> bool {
        self.inner.ignores_case(rel)
    }

    fn walk(&self, rel: &RelPath) -> Result<Tree, FilesError> {
        self.seen(rel)?;
        let mut tree = self.inner.walk(rel)?;
        // Parents come first, so a hidden folder's children go with it.
        tree.entries
            .retain(|e| !e.path.split('/').any(is_hidden_name));
        tree.skipped
            .retain(|e| !e.path.split('/').any(is_hidden_name));
        Ok(tree)
    }

    fn open_read(&self, rel: &RelPath) -> Result<(Reader, Entry), FilesError> {
        self.seen(rel)?;
        self.inner.open_read(rel)
    }

    fn begin_write(&self, rel: &RelPath, replace: bool, resume: bool) -> Result<Begun, FilesError> {
        self.changeable(rel)?;
        self.inner.begin_write(rel, replace, resume)
    }

    fn remove(&self, rel: &RelPath, recursive: bool) -> Result<(), FilesError> {
        self.seen(rel)?;
        self.inner.remove(rel, recursive)
    }

    fn removable(&self, rel: &RelPath) -> Result<(), FilesError> {
        self.seen(rel)?;
        self.inner.removable(rel)
    }

    fn mkdir(&self, rel: &RelPath) -> Result<(), FilesError> {
        self.changeable(rel)?;
        self.inner.mkdir(rel)
    }

    fn mkdir_all(&self, rel: &RelPath) -> Result<(), FilesError> {
        self.changeable(rel)?;
        self.inner.mkdir_all(rel)
    }

    fn rename(&self, from: &RelPath, to: &RelPath, force: bool) -> Result<(), FilesError> {
        self.seen(from)?;
        self.changeable(to)?;
        self.inner.rename(from, to, force)
    }

    fn partial_exists(&self, rel: &RelPath) -> bool {
        !is_hidden(rel) && self.inner.partial_exists(rel)
    }

    fn partial_generation(&self, rel: &RelPath) -> Result<Option<String>, FilesError> {
        self.seen(rel)?;
        self.inner.partial_generation(rel)
    }

    fn upload_progress(&self, rel: &RelPath, length: u64) -> Result<Option<u64>, FilesError> {
        self.seen(rel)?;
        self.inner.upload_progress(rel, length)
    }

    fn remove_partial(&self, rel: &RelPath) -> Result<bool, FilesError> {
        self.seen(rel)?;
        self.inner.remove_partial(rel)
    }

    fn sweep_partials(&self, max_age: std::time::Duration) -> usize {
        self.inner.sweep_partials(max_age)
    }

    fn space(&self) -> Option<super::storage::Space> {
        self.inner.space()
    }

    fn max_size(&self) -> Option<u64> {
        self.inner.max_size()
    }

    fn shared(&self) -> Option<&dyn super::storage::Shared> {
        self.inner.shared()
    }

    fn real(&self, rel: &RelPath, keep_last: bool) -> Option<RelPath> {
        self.inner.real(rel, keep_last)
    }

    fn local_folder(&self, rel: &RelPath) -> Result<PathBuf, FilesError> {
        self.seen(rel)?;
        self.inner.local_folder(rel)
    }
}
