//! A folder's listing, a page at a time, as the visitor may see it.

use super::name::MAX_DEPTH;
use super::service::{Files, allowed};
use super::storage::Storage;
use super::{FilesError, RelPath};
use crate::access::{Action, Who};

/// A folder's listing a page at a time (see [`Files::list_pages`]).
#[derive(Debug)]
pub struct Pages {
    /// The whole listing, from storage that lists in place.
    whole: Option<Vec<super::entry::Entry>>,
    /// Pages as the storage gives them, from a disk thread.
    pages: Option<tokio::sync::mpsc::Receiver<Vec<super::entry::Entry>>>,
    lister: Option<tokio::task::JoinHandle<Result<(), FilesError>>>,
}

impl Pages {
    /// The next page; `None` at the end (then see [`Pages::end`]).
    pub async fn next(&mut self) -> Option<Vec<super::entry::Entry>> {
        if let Some(whole) = self.whole.take() {
            return Some(whole);
        }
        self.pages.as_mut()?.recv().await
    }

    /// How the listing ended: an error the storage met part-way.
    pub async fn end(self) -> Result<(), FilesError> {
        match self.lister {
            Some(l) => l.await.map_err(|_| FilesError::Internal)?,
            None => Ok(()),
        }
    }
}

/// A listing begun (see [`Files::listing`]): its first page, and the
/// pages after it as they come.
pub struct Listing {
    /// The first page: what an answer needs before it sends its status.
    pub first: Vec<super::entry::Entry>,
    /// The pages after it; the last item is the error the storage met
    /// part-way, if it met one. Fused: it may be polled past its end.
    pub rest:
        futures_util::stream::BoxStream<'static, Result<Vec<super::entry::Entry>, FilesError>>,
}

impl std::fmt::Debug for Listing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Listing({} first)", self.first.len())
    }
}

impl Files {
    /// Lists `rel` as the storage pages it: a few pages in memory at most,
    /// however large the folder (storage whose calls are quick lists it
    /// whole, in place). The caller has asked the access decision for the
    /// folder; an entry `who` may not read is left out, as in a walk (a
    /// right of `none` is not even listed).
    pub async fn list_pages(&self, who: Who, rel: RelPath) -> Result<Pages, FilesError> {
        // What a folder as deep as a path may go holds, no path can name:
        // it is listed empty (a walk names it, `too_deep`).
        if rel.parts().len() >= MAX_DEPTH {
            self.quick({
                let r = rel.clone();
                move |s| s.list(&r).map(drop)
            })
            .await?;
            return Ok(Pages {
                whole: Some(Vec::new()),
                pages: None,
                lister: None,
            });
        }
        let policy = self.policy.clone();
        let keep =
            move |store: &dyn Storage, rel: &RelPath, page: &mut Vec<super::entry::Entry>| {
                if policy.paths_matter(who) {
                    page.retain(|e| {
                        rel.child(&e.name).is_ok_and(|child| {
                            allowed(&policy, store, who, Action::Read, &child).is_ok()
                        })
                    });
                }
            };
        if self.store.quick() {
            // Asking each entry's right costs a look at where it leads: on
            // a disk thread then, not in place.
            let whole = match self.policy.paths_matter(who) {
                false => self.store.list(&rel)?,
                true => {
                    let rel = rel.clone();
                    let keep = keep.clone();
                    self.blocking(move |s| {
                        let mut whole = s.list(&rel)?;
                        keep(s, &rel, &mut whole);
                        Ok(whole)
                    })
                    .await?
                }
            };
            return Ok(Pages {
                whole: Some(whole),
                pages: None,
                lister: None,
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let store = self.store.clone();
        let lister = tokio::task::spawn_blocking(move || {
            store.list_paged(&rel, &mut |mut page| {
                keep(&*store, &rel, &mut page);
                tx.blocking_send(page)
                    .map_err(|_| FilesError::Io("the listing's reader went away".into()))
            })
        });
        Ok(Pages {
            whole: None,
            pages: Some(rx),
            lister: Some(lister),
        })
    }

    /// Lists `rel` as [`Files::list_pages`] does, with the first page (or
    /// the refusal) at once and the rest as a stream: what a door that
    /// streams its answer needs. The caller has asked the access decision.
    pub async fn listing(&self, who: Who, rel: RelPath) -> Result<Listing, FilesError> {
        use futures_util::StreamExt;
        let mut pages = self.list_pages(who, rel).await?;
        let (first, pages) = match pages.next().await {
            Some(page) => (page, Some(pages)),
            None => {
                pages.end().await?;
                (Vec::new(), None)
            }
        };
        let rest = futures_util::stream::unfold(pages, |pages| async move {
            let mut pages = pages?;
            match pages.next().await {
                Some(page) => Some((Ok(page), Some(pages))),
                None => pages.end().await.err().map(|e| (Err(e), None)),
            }
        })
        .fuse()
        .boxed();
        Ok(Listing { first, rest })
    }
}
