//! The files service as dav-server's file system: each call asks the one
//! access decision ([`crate::access::Policy::check`]) and goes to the
//! service and its storage (the jail, hidden names, partial files, atomic
//! rename). Nothing here decides a rule of its own.

use axum::http::StatusCode;
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavMetaData, DavProp, FsError, FsFuture, FsResult, FsStream,
    GuardedFileSystem, OpenOptions, ReadDirMeta,
};
use futures_util::{FutureExt, StreamExt};

use super::call::{Call, Meta};
use super::file::{Reading, Writing};
use crate::access::Action;
use crate::files::entry::EntryKind;
use crate::files::{FilesError, RelPath, UploadOptions};

/// One entry of a listing.
struct Dirent {
    name: String,
    meta: Meta,
}

impl DavDirEntry for Dirent {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }

    fn metadata(&'_ self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        std::future::ready(Ok(m)).boxed()
    }
}

/// A listing's entry as dav-server takes it.
fn dirent(e: crate::files::entry::Entry) -> Box<dyn DavDirEntry> {
    Box::new(Dirent {
        meta: Meta::from(&e),
        name: e.name,
    })
}

/// What of a page of `rel`'s listing is offered. What cannot be read as a
/// file or a folder (a link that leads out, a socket) is not, nor is a
/// link to a folder: dav-server walks listings to delete and copy folders,
/// and must never walk through a link (into what it leads to, or round a
/// loop). Such a link is still reached by its own URL.
async fn servable(
    ctx: &crate::server::Ctx,
    rel: RelPath,
    mut page: Vec<crate::files::entry::Entry>,
) -> Result<Vec<crate::files::entry::Entry>, FilesError> {
    if !ctx.files.store().links() {
        page.retain(|e| matches!(e.kind, EntryKind::File | EntryKind::Dir));
        return Ok(page);
    }
    ctx.files
        .blocking(move |s| {
            page.retain(|e| match e.kind {
                EntryKind::File => true,
                EntryKind::Dir => rel.child(&e.name).is_ok_and(|child| {
                    s.stat_name(&child)
                        .is_ok_and(|named| named.kind == EntryKind::Dir)
                }),
                _ => false,
            });
            Ok(page)
        })
        .await
}

/// The files service, for dav-server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FerryFs;

impl FerryFs {
    async fn stat(
        &self,
        path: &DavPath,
        call: &Call,
        follow: bool,
    ) -> FsResult<Box<dyn DavMetaData>> {
        // A link's own description is read where it is; what it leads to,
        // where that is.
        let rel = if follow {
            call.allowed(Action::Read, path)?
        } else {
            call.allowed_entry(Action::Read, path)?
        };
        // Not finding it is an answer, often the one hoped for (before a
        // PUT or MKCOL), not a refusal to report.
        let found = call
            .ctx
            .files
            .blocking(move |s| {
                if follow {
                    s.stat(&rel)
                } else {
                    s.stat_name(&rel)
                }
            })
            .await;
        let e = match found {
            Ok(e) => e,
            Err(FilesError::NotFound(_)) => return Err(FsError::NotFound),
            Err(e) => return Err(call.fail(e)),
        };
        if follow && !matches!(e.kind, EntryKind::File | EntryKind::Dir) {
            return Err(FsError::NotFound);
        }
        Ok(Box::new(Meta::from(&e)))
    }
}

impl GuardedFileSystem<Call> for FerryFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        call: &'a Call,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let rel = call.rel(path)?;
            if !options.write {
                call.check(Action::Read, &rel)?;
                let r = rel.clone();
                let (reader, entry) = call.store(move |s| s.open_read(&r)).await?;
                return Ok(Box::new(Reading::new(reader, Meta::from(&entry))) as Box<dyn DavFile>);
            }
            if !options.create {
                // `If-Match: *`: only over a file that is there.
                let r = rel.clone();
                call.store(move |s| s.stat(&r)).await?;
            }
            if call.empty_creates {
                // dav-server takes a link leading out of the served folder
                // (or nowhere) for an unmapped URL, as it cannot follow it:
                // a LOCK locks what is there, it never puts a file in
                // place of a link.
                let r = rel.clone();
                if call.store(move |s| Ok(s.exists(&r))).await? {
                    return Err(call.fail(FilesError::Forbidden(format!(
                        "{rel} is there, and is not a file or folder served here (a link out of the served folder or to nowhere, or a special file): nothing to lock"
                    ))));
                }
            }
            let opts = UploadOptions {
                overwrite: !options.create_new,
                ..UploadOptions::new(options.size)
            };
            let mut upload = call
                .ctx
                .files
                .begin_upload(call.who, &rel, opts)
                .await
                .map_err(|e| call.fail(e))?;
            upload.start(0).await.map_err(|e| call.fail(e))?;
            Ok(Box::new(Writing::start(upload, rel, call.clone())) as Box<dyn DavFile>)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
        call: &'a Call,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let rel = call.allowed(Action::Read, path)?;
            // A page of the storage at a time: a folder of any size is
            // answered without the server holding it whole.
            // The first page (or the refusal) before the answer starts.
            let listing = call
                .ctx
                .files
                .listing(call.who, rel.clone())
                .await
                .map_err(|e| call.listing_failed(e))?;
            let first = servable(&call.ctx, rel.clone(), listing.first)
                .await
                .map_err(|e| call.listing_failed(e))?;
            let first = futures_util::stream::iter(first.into_iter().map(|e| Ok(dirent(e))));
            let (ctx, call) = (call.ctx.clone(), call.clone());
            let rest = listing.rest.then(move |page| {
                let (ctx, rel, call) = (ctx.clone(), rel.clone(), call.clone());
                async move {
                    // A storage that failed part-way ends the listing with
                    // an error (the answer is cut short).
                    match page {
                        Ok(page) => match servable(&ctx, rel, page).await {
                            Ok(p) => p.into_iter().map(|e| Ok(dirent(e))).collect(),
                            Err(e) => vec![Err(call.listing_failed(e))],
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "a WebDAV listing failed part-way");
                            vec![Err(call.listing_failed(e))]
                        }
                    }
                }
            });
            let entries = first
                .chain(rest.flat_map(futures_util::stream::iter))
                .fuse();
            Ok(Box::pin(entries) as FsStream<Box<dyn DavDirEntry>>)
        }
        .boxed()
    }

    fn metadata<'a>(
        &'a self,
        path: &'a DavPath,
        call: &'a Call,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        self.stat(path, call, true).boxed()
    }

    fn symlink_metadata<'a>(
        &'a self,
        path: &'a DavPath,
        call: &'a Call,
    ) -> FsFuture<'a, Box<dyn DavMetaData>> {
        self.stat(path, call, false).boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath, call: &'a Call) -> FsFuture<'a, ()> {
        async move {
            let rel = call.rel(path)?;
            let made = call.ctx.files.mkdir_for(call.who, rel.clone(), false);
            made.await.map_err(|e| call.fail(e))?;
            if let Some(from) = call.copied_from(&rel) {
                call.props().copy(&from, &rel);
            }
            Ok(())
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath, call: &'a Call) -> FsFuture<'a, ()> {
        self.remove(path, call).boxed()
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, call: &'a Call) -> FsFuture<'a, ()> {
        async move {
            // The file a COPY or MOVE is about to replace stays until it
            // is replaced (see `Call::in_place`).
            if let Some((to, right)) = &call.in_place {
                let rel = call.rel(path)?;
                if &rel == to {
                    call.check(*right, &rel)?;
                    call.props().remove(&rel);
                    return Ok(());
                }
            }
            self.remove(path, call).await
        }
        .boxed()
    }

    fn rename<'a>(
        &'a self,
        from: &'a DavPath,
        to: &'a DavPath,
        call: &'a Call,
    ) -> FsFuture<'a, ()> {
        async move {
            let (f, t) = (call.rel(from)?, call.rel(to)?);
            call.check(Action::Move, &f)?;
            call.check(Action::Move, &t)?;
            let replace = call.in_place.as_ref().is_some_and(|(to, _)| to == &t);
            // The files service moves the dead properties with the files.
            call.ctx
                .files
                .rename(f, t, replace)
                .await
                .map_err(|e| call.fail(e))?;
            Ok(())
        }
        .boxed()
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath, call: &'a Call) -> FsFuture<'a, ()> {
        async move {
            let (f, t) = (call.rel(from)?, call.rel(to)?);
            call.ctx
                .files
                .copy(call.who, &f, &t, true)
                .await
                .map_err(|e| call.fail(e))?;
            Ok(())
        }
        .boxed()
    }

    fn have_props<'a>(
        &'a self,
        _path: &'a DavPath,
        _call: &'a Call,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        std::future::ready(true).boxed()
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
        call: &'a Call,
    ) -> FsFuture<'a, Vec<(StatusCode, DavProp)>> {
        async move {
            let rel = call.allowed(Action::Replace, path)?;
            let done = call.props().patch(&rel, patch);
            // Removed or moved away (through another server) while the
            // properties were written: they would wait there for the next
            // file of that name.
            let r = rel.clone();
            if let Err(FilesError::NotFound(_)) = call.ctx.files.blocking(move |s| s.stat(&r)).await
            {
                call.props().remove(&rel);
                return Err(FsError::NotFound);
            }
            Ok(done)
        }
        .boxed()
    }

    fn get_props<'a>(
        &'a self,
        path: &'a DavPath,
        do_content: bool,
        call: &'a Call,
    ) -> FsFuture<'a, Vec<DavProp>> {
        with_props(call, path, Action::Read, move |p, rel| {
            Ok(p.all(rel, do_content))
        })
    }

    fn get_prop<'a>(
        &'a self,
        path: &'a DavPath,
        prop: DavProp,
        call: &'a Call,
    ) -> FsFuture<'a, Vec<u8>> {
        with_props(call, path, Action::Read, move |p, rel| {
            p.one(rel, &prop).ok_or(FsError::NotFound)
        })
    }

    fn get_quota<'a>(&'a self, call: &'a Call) -> FsFuture<'a, (u64, Option<u64>)> {
        async move {
            call.check(Action::Read, &RelPath::root())?;
            let space = call
                .store(|s| Ok(s.space()))
                .await?
                .ok_or(FsError::NotImplemented)?;
            Ok((space.used, Some(space.used.saturating_add(space.available))))
        }
        .boxed()
    }
}

impl FerryFs {
    async fn remove(&self, path: &DavPath, call: &Call) -> FsResult<()> {
        let rel = call.allowed(Action::Delete, path)?;
        // A folder goes with what it holds that no listing shows (hidden
        // names), as a DELETE over HTTP does; dav-server has removed what
        // it saw one by one, checking locks, before it asks for the folder.
        call.ctx
            .files
            .remove(rel, true)
            .await
            .map_err(|e| call.fail(e))
    }
}

/// Runs `f` on the dead properties of `path`, once `action` is allowed.
fn with_props<'a, T: Send + 'a>(
    call: &'a Call,
    path: &'a DavPath,
    action: Action,
    f: impl FnOnce(&super::props::View<'_>, &RelPath) -> FsResult<T> + Send + 'a,
) -> FsFuture<'a, T> {
    async move {
        let rel = call.allowed(action, path)?;
        f(&call.props(), &rel)
    }
    .boxed()
}
