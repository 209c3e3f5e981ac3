//! WebDAV dead properties (RFC 4918 §4): what clients set with PROPPATCH
//! and read back with PROPFIND, moved, copied and removed with the files
//! they belong to, and bounded per resource, in count and in size.
//!
//! One server keeps them in SQLite in its state folder ([`local`]).
//! Servers that serve one bucket together keep them in one record of the
//! bucket's shared records ([`shared`]), so that what is set through one
//! is read through every other; a request reads that record at most once
//! (a listing of 10,000 files asks 10,000 times), so what it shows is the
//! table as it was when the request first needed it; a change is made on
//! the table as it is when it is written. The files service tells them of
//! every move, removal and copy, through whichever door.

mod local;
mod shared;

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use dav_server::fs::DavProp;

use crate::files::FilesError;
use crate::files::RelPath;
use crate::files::storage::{Shared, Storage};

/// Most dead properties one resource keeps.
pub(crate) const MAX_PER_RESOURCE: usize = 256;
/// Longest value (its XML) one property keeps.
pub(crate) const MAX_VALUE: usize = 16 * 1024;

/// A resource's key: its path without the leading slash; the root is "".
fn key(rel: &RelPath) -> String {
    rel.parts().join("/")
}

/// How a PROPPATCH went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Patched {
    Done,
    /// The one at this index was over a limit; nothing was kept.
    Over(usize),
    /// Nothing was kept, through no fault of the request.
    Failed,
}

/// The dead properties of every resource.
#[derive(Debug)]
pub(crate) struct DeadProps(Keep);

/// Where they are kept.
#[derive(Debug)]
enum Keep {
    Local(local::Local),
    Shared(Arc<dyn Storage>),
    /// Shared records of their own, for the tests.
    #[cfg(test)]
    Records(Box<dyn Shared>),
}

/// The table of shared properties one request has read, if it has.
pub(crate) type Seen = Mutex<Option<Arc<shared::Table>>>;

impl DeadProps {
    /// Shared records when `store` has them (servers serving one bucket
    /// together), else SQLite at `path`, made when first needed.
    pub(crate) fn new(store: Arc<dyn Storage>, path: &std::path::Path) -> DeadProps {
        DeadProps(if store.shared().is_some() {
            Keep::Shared(store)
        } else {
            Keep::Local(local::Local::at(path))
        })
    }

    /// The shared records they are kept in, if they are.
    fn records(&self) -> Option<&dyn Shared> {
        match &self.0 {
            Keep::Local(_) => None,
            Keep::Shared(s) => s.shared(),
            #[cfg(test)]
            Keep::Records(r) => Some(&**r),
        }
    }

    /// The properties as one request sees them, reading shared ones into
    /// `seen` at most once.
    pub(crate) fn view<'a>(&'a self, seen: &'a Seen) -> View<'a> {
        View { keep: self, seen }
    }
}

/// Files moved, removed and copied through any door take their
/// properties with them; each change is made on the table as it is then.
impl crate::files::service::Follow for DeadProps {
    fn moved(&self, from: &RelPath, to: &RelPath) {
        self.view(&Seen::default()).rename(from, to);
    }

    fn removed(&self, rel: &RelPath) {
        self.view(&Seen::default()).remove(rel);
    }

    fn copied(&self, from: &RelPath, to: &RelPath) {
        self.view(&Seen::default()).copy(from, to);
    }
}

/// The dead properties as one request sees them.
pub(crate) struct View<'a> {
    keep: &'a DeadProps,
    seen: &'a Seen,
}

impl View<'_> {
    /// The shared table as this request read it (read now if it has not
    /// yet); empty when it cannot be read.
    fn table(&self) -> Arc<shared::Table> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = &*seen {
            return t.clone();
        }
        let read = self
            .keep
            .records()
            .ok_or_else(|| FilesError::Unavailable("no shared records".into()))
            .and_then(shared::read);
        let t = Arc::new(read.unwrap_or_else(|e| {
            tracing::warn!("webdav properties: {e}");
            shared::Table::default()
        }));
        *seen = Some(t.clone());
        t
    }

    /// Changes the shared table as `f` says; what the request sees after
    /// is the table as written. `None` when it could not be.
    fn change<T>(
        &self,
        bounded: bool,
        f: impl FnMut(&mut shared::Table) -> T,
    ) -> Option<(T, bool)> {
        match shared::change(self.keep.records()?, bounded, f) {
            Ok((out, kept, now)) => {
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(now));
                if !kept {
                    tracing::warn!(
                        "webdav properties: the table would pass {} bytes; change not kept",
                        shared::MAX_TABLE
                    );
                }
                Some((out, kept))
            }
            Err(e) => {
                tracing::warn!("webdav properties: {e}");
                None
            }
        }
    }

    /// Every property of `rel`, with its value when `content`.
    pub(crate) fn all(&self, rel: &RelPath, content: bool) -> Vec<DavProp> {
        match &self.keep.0 {
            Keep::Local(l) => l.all(rel, content),
            _ => self.table().all(&key(rel), content),
        }
    }

    /// The value of one property of `rel`.
    pub(crate) fn one(&self, rel: &RelPath, prop: &DavProp) -> Option<Vec<u8>> {
        match &self.keep.0 {
            Keep::Local(l) => l.one(rel, prop),
            _ => self.table().one(&key(rel), prop),
        }
    }

    /// Sets (`true`) and removes (`false`) properties of `rel`, all or
    /// none (RFC 4918 §9.2): one over the limits fails with 507 and the
    /// rest with 424.
    pub(crate) fn patch(
        &self,
        rel: &RelPath,
        patch: Vec<(bool, DavProp)>,
    ) -> Vec<(StatusCode, DavProp)> {
        let done = match &self.keep.0 {
            Keep::Local(l) => l.patch(rel, &patch),
            _ => {
                let k = key(rel);
                match self.change(true, |t| t.patch(&k, &patch)) {
                    Some((None, true)) => Patched::Done,
                    Some((Some(bad), _)) => Patched::Over(bad),
                    Some((None, false)) => patch
                        .iter()
                        .position(|(set, _)| *set)
                        .map_or(Patched::Failed, Patched::Over),
                    None => Patched::Failed,
                }
            }
        };
        let status = |i: usize| match done {
            Patched::Done => StatusCode::OK,
            Patched::Over(bad) if bad == i => StatusCode::INSUFFICIENT_STORAGE,
            Patched::Over(_) => StatusCode::FAILED_DEPENDENCY,
            Patched::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        };
        patch
            .into_iter()
            .enumerate()
            .map(|(i, (_, mut p))| {
                p.xml = None;
                (status(i), p)
            })
            .collect()
    }

    /// Moves the properties of `from` and all below it to `to`.
    pub(crate) fn rename(&self, from: &RelPath, to: &RelPath) {
        let (f, t) = (key(from), key(to));
        match &self.keep.0 {
            Keep::Local(l) => l.rename(from, to),
            _ => {
                self.change(false, |table| table.rename(&f, &t));
            }
        }
    }

    /// Copies the properties of `from` (only: a folder's copy copies its
    /// files one by one) to `to`.
    pub(crate) fn copy(&self, from: &RelPath, to: &RelPath) {
        let (f, t) = (key(from), key(to));
        match &self.keep.0 {
            Keep::Local(l) => l.copy(from, to),
            _ => {
                self.change(true, |table| table.copy(&f, &t));
            }
        }
    }

    /// Forgets the properties of `rel` and of all below it.
    pub(crate) fn remove(&self, rel: &RelPath) {
        let k = key(rel);
        match &self.keep.0 {
            Keep::Local(l) => l.remove(rel),
            _ => {
                self.change(false, |table| table.remove(&k));
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn prop(name: &str, value: &str) -> DavProp {
        DavProp {
            name: name.into(),
            prefix: Some("x".into()),
            namespace: Some("http://example.com/ns".into()),
            xml: Some(
                format!("<x:{name} xmlns:x=\"http://example.com/ns\">{value}</x:{name}>")
                    .into_bytes(),
            ),
        }
    }

    /// Shared records in memory, each with a version that every write
    /// changes.
    /// Each record's value and version.
    type Held = std::collections::HashMap<String, (Vec<u8>, u64)>;

    #[derive(Debug, Default, Clone)]
    struct Records(Arc<Mutex<Held>>);

    impl Shared for Records {
        fn get(&self, name: &str) -> Result<Option<Vec<u8>>, FilesError> {
            Ok(self.0.lock().unwrap().get(name).map(|(v, _)| v.clone()))
        }
        fn put(&self, name: &str, value: &[u8], only_new: bool) -> Result<bool, FilesError> {
            let mut m = self.0.lock().unwrap();
            if only_new && m.contains_key(name) {
                return Ok(false);
            }
            let n = m.get(name).map_or(0, |(_, n)| n + 1);
            m.insert(name.into(), (value.to_vec(), n));
            Ok(true)
        }
        fn remove(&self, name: &str) -> Result<(), FilesError> {
            self.0.lock().unwrap().remove(name);
            Ok(())
        }
        fn get_versioned(&self, name: &str) -> Result<Option<(Vec<u8>, String)>, FilesError> {
            let m = self.0.lock().unwrap();
            Ok(m.get(name).map(|(v, n)| (v.clone(), n.to_string())))
        }
        fn replace(&self, name: &str, value: &[u8], version: &str) -> Result<bool, FilesError> {
            let mut m = self.0.lock().unwrap();
            match m.get_mut(name) {
                Some((v, n)) if n.to_string() == version => {
                    *v = value.to_vec();
                    *n += 1;
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
    }

    #[test]
    fn properties_follow_their_files_and_stay_bounded_in_sqlite() {
        follow_and_bound(&DeadProps(Keep::Local(local::Local::in_memory())));
    }

    #[test]
    fn properties_follow_their_files_and_stay_bounded_in_shared_records() {
        follow_and_bound(&DeadProps(Keep::Records(Box::new(Records::default()))));
    }

    fn follow_and_bound(dead: &DeadProps) {
        // One request's view: what it changes, it sees at once.
        let seen = Seen::default();
        let p = dead.view(&seen);
        let a = RelPath::parse("/a").unwrap();
        let ab = RelPath::parse("/a/b").unwrap();
        let ab2 = RelPath::parse("/ab").unwrap();
        let ok = p.patch(
            &ab,
            vec![(true, prop("colour", "blue")), (true, prop("size", "9"))],
        );
        assert!(ok.iter().all(|(s, _)| *s == StatusCode::OK));
        p.patch(&ab2, vec![(true, prop("other", "1"))]);
        assert_eq!(p.all(&ab, false).len(), 2);
        assert!(p.all(&ab, false).iter().all(|d| d.xml.is_none()));
        let v = p.one(&ab, &prop("colour", "")).unwrap();
        assert!(String::from_utf8(v).unwrap().contains("blue"));

        // Moving the folder takes its files' properties; "/ab" is not below "/a".
        let c = RelPath::parse("/c").unwrap();
        p.rename(&a, &c);
        assert!(p.all(&ab, false).is_empty());
        assert_eq!(p.all(&RelPath::parse("/c/b").unwrap(), false).len(), 2);
        assert_eq!(p.all(&ab2, false).len(), 1);

        p.copy(
            &RelPath::parse("/c/b").unwrap(),
            &RelPath::parse("/d").unwrap(),
        );
        assert_eq!(p.all(&RelPath::parse("/d").unwrap(), true).len(), 2);
        p.remove(&c);
        assert!(p.all(&RelPath::parse("/c/b").unwrap(), false).is_empty());
        assert_eq!(p.all(&ab2, false).len(), 1);

        // Removing one that is not there is fine; a value too long fails
        // the whole patch, and nothing of it is kept.
        let big = "v".repeat(MAX_VALUE + 1);
        let r = p.patch(
            &ab2,
            vec![
                (false, prop("none", "")),
                (true, prop("new", "1")),
                (true, prop("big", &big)),
            ],
        );
        assert_eq!(r[2].0, StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(r[1].0, StatusCode::FAILED_DEPENDENCY);
        assert_eq!(p.all(&ab2, false).len(), 1);

        // No more than so many per resource.
        let many: Vec<_> = (0..=MAX_PER_RESOURCE)
            .map(|i| (true, prop(&format!("p{i}"), "1")))
            .collect();
        let r = p.patch(&a, many);
        assert!(
            r.iter()
                .any(|(s, _)| *s == StatusCode::INSUFFICIENT_STORAGE)
        );
        assert!(p.all(&a, false).is_empty());
    }

    #[test]
    fn servers_sharing_records_see_each_others_properties_and_keep_every_change() {
        let records = Records::default();
        let a = DeadProps(Keep::Records(Box::new(records.clone())));
        let b = DeadProps(Keep::Records(Box::new(records.clone())));
        let x = RelPath::parse("/x").unwrap();
        let y = RelPath::parse("/y").unwrap();
        let (seen_a, seen_b) = (Seen::default(), Seen::default());
        let (va, vb) = (a.view(&seen_a), b.view(&seen_b));
        // A's request has read the table (nothing yet) when B sets one.
        assert!(va.all(&x, false).is_empty());
        assert_eq!(
            vb.patch(&y, vec![(true, prop("by", "b"))])[0].0,
            StatusCode::OK
        );
        // A's request goes on with the table it read; its change is made on
        // what is there now, so B's is kept too.
        assert!(va.all(&y, false).is_empty());
        assert_eq!(
            va.patch(&x, vec![(true, prop("by", "a"))])[0].0,
            StatusCode::OK
        );
        let seen = Seen::default();
        let fresh = b.view(&seen);
        assert_eq!(fresh.all(&x, false).len(), 1);
        assert_eq!(fresh.all(&y, false).len(), 1);
        // A move through B carries them for every server.
        fresh.rename(&y, &RelPath::parse("/z").unwrap());
        let seen = Seen::default();
        let again = a.view(&seen);
        assert!(again.all(&y, false).is_empty());
        assert!(
            String::from_utf8(
                again
                    .one(&RelPath::parse("/z").unwrap(), &prop("by", ""))
                    .unwrap()
            )
            .unwrap()
            .contains('b')
        );

        // A table that does not parse is left alone: nothing set, nothing lost.
        records.put("webdav/props", b"{not json", false).unwrap();
        let seen = Seen::default();
        let broken = a.view(&seen);
        assert!(broken.all(&x, false).is_empty());
        assert_eq!(
            broken.patch(&x, vec![(true, prop("by", "c"))])[0].0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(records.get("webdav/props").unwrap().unwrap(), b"{not json");
    }

    #[test]
    fn the_shared_table_stays_within_its_size() {
        let dead = DeadProps(Keep::Records(Box::new(Records::default())));
        let value = "v".repeat(MAX_VALUE - 100);
        // A resource's most, each as long as may be: a few fill the table.
        let full: Vec<_> = (0..MAX_PER_RESOURCE)
            .map(|i| (true, prop(&format!("p{i}"), &value)))
            .collect();
        let mut refused = 0;
        for i in 0..(shared::MAX_TABLE / (MAX_PER_RESOURCE * MAX_VALUE) + 2) {
            let seen = Seen::default();
            let r = dead
                .view(&seen)
                .patch(&RelPath::parse(&format!("/f{i}")).unwrap(), full.clone());
            if r[0].0 == StatusCode::INSUFFICIENT_STORAGE {
                refused += 1;
                assert!(
                    r[1..]
                        .iter()
                        .all(|(s, _)| *s == StatusCode::FAILED_DEPENDENCY)
                );
            } else {
                assert!(r.iter().all(|(s, _)| *s == StatusCode::OK));
            }
        }
        assert!(refused >= 1, "the table grew past its size");
        // Full, it still lets properties move and go with their files,
        // even to a longer name: else they would wait at the old one.
        let seen = Seen::default();
        let v = dead.view(&seen);
        let (old, new) = (
            RelPath::parse("/f0").unwrap(),
            RelPath::parse(&format!("/{}", "n".repeat(200))).unwrap(),
        );
        v.rename(&old, &new);
        assert!(v.all(&old, false).is_empty());
        assert_eq!(v.all(&new, false).len(), MAX_PER_RESOURCE);
        v.remove(&new);
        assert!(v.all(&new, false).is_empty());
        let Keep::Records(r) = &dead.0 else {
            unreachable!()
        };
        assert!(r.get("webdav/props").unwrap().unwrap().len() <= shared::MAX_TABLE);
    }
}
