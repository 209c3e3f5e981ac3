//! Removing or moving a folder, decided whole: a folder removed or moved
//! takes what it holds along, whatever the rights there, so the right is
//! asked wherever rights change below it, and of the storage (nothing of
//! the server's own inside), before anything is done. Every door asks
//! here.

use super::service::Files;
use super::{FilesError, RelPath};
use crate::access::{Action, Denied, Who};

impl Files {
    /// Whether `who` may remove `rel` with all it holds, asked whole before
    /// anything goes: the right to delete there, wherever rights below it
    /// differ, and where it really is; and nothing of the server's own
    /// inside (the storage's say). A door that removes a folder an entry
    /// at a time (WebDAV) asks this first, or a refusal met half-way
    /// would leave the rest removed.
    pub async fn check_remove(&self, who: Who, rel: &RelPath) -> Result<(), FilesError> {
        self.check_whole(who, Action::Delete, rel)?;
        let r = rel.clone();
        self.quick(move |s| s.removable(&r)).await
    }

    /// Whether `who` may do `action` to `rel` and to all it holds, where
    /// it really is: asked wherever rights change below it. Removing or
    /// moving a folder takes what it holds along, whatever the rights
    /// there.
    pub fn check_whole(&self, who: Who, action: Action, rel: &RelPath) -> Result<(), Denied> {
        self.check(who, action, rel)?;
        self.policy().check_all(who, action, rel)?;
        if self.policy().paths_matter(who) {
            if let Some(real) = self.store().real(rel, true).filter(|r| r != rel) {
                self.policy().check_all(who, action, &real)?;
            }
        }
        Ok(())
    }

    /// Moves `from` to `to` for `who` (see [`Files::rename`]): the right
    /// to move at both ends, and below `from` wherever rights change.
    pub async fn rename_for(
        &self,
        who: Who,
        from: RelPath,
        to: RelPath,
        force: bool,
    ) -> Result<(), FilesError> {
        self.check_whole(who, Action::Move, &from)?;
        self.check(who, Action::Move, &to)?;
        self.rename(from, to, force).await
    }

    /// Removes `rel` for `who` (a folder with what is in it only with
    /// `recursive`, and then only as [`Files::check_remove`] allows).
    pub async fn remove_for(
        &self,
        who: Who,
        rel: RelPath,
        recursive: bool,
    ) -> Result<(), FilesError> {
        if recursive {
            self.check_remove(who, &rel).await?;
        } else {
            self.check(who, Action::Delete, &rel)?;
        }
        self.remove(rel, recursive).await
    }
}
