//! Making folders: one rule for every door. Each folder made is a
//! creation where it is made, so a folder made on the way to another (a
//! `mkdir -p`, an upload that makes its parents) needs the right to create
//! there too, not only at the end of the path.

use super::service::allowed;
use super::storage::make_parents;
use super::{Files, FilesError, RelPath};
use crate::access::{Action, Who};

impl Files {
    /// Makes the folder `rel` for `who`; with `parents`, the folders on
    /// the way that are missing too (and `rel` there already is no error).
    pub async fn mkdir_for(&self, who: Who, rel: RelPath, parents: bool) -> Result<(), FilesError> {
        self.check(who, Action::Create, &rel)?;
        let policy = self.policy().clone();
        self.blocking(move |s| match parents {
            true => {
                let may = |at: &RelPath| Ok(allowed(&policy, s, who, Action::Create, at)?);
                make_parents(s, &rel, &may)
            }
            false => s.mkdir(&rel),
        })
        .await
    }
}
