//! Dead properties kept as one record in the storage's shared records,
//! for servers that serve one bucket together: every server reads and
//! changes the same table, each change written only if no other server
//! wrote the table since it was read (else made again on what is there).

use std::collections::BTreeMap;

use dav_server::fs::DavProp;
use serde::{Deserialize, Serialize};

use super::{MAX_PER_RESOURCE, MAX_VALUE};
use crate::files::FilesError;
use crate::files::storage::{Shared, change_shared};

/// The record's name among the shared records.
const RECORD: &str = "webdav/props";
/// Largest the table may grow (its JSON): every change writes it whole.
pub(super) const MAX_TABLE: usize = 8 << 20;

/// Every resource's dead properties, by key (the path without its leading
/// slash), each list sorted by namespace and name.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Table(BTreeMap<String, Vec<Stored>>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    ns: String,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    xml: String,
}

/// Whether `path` is `k` or lies below it.
fn at_or_below(path: &str, k: &str) -> bool {
    path == k || path.strip_prefix(k).is_some_and(|r| r.starts_with('/'))
}

impl Table {
    pub(super) fn all(&self, k: &str, content: bool) -> Vec<DavProp> {
        self.0
            .get(k)
            .into_iter()
            .flatten()
            .map(|p| DavProp {
                namespace: (!p.ns.is_empty()).then(|| p.ns.clone()),
                name: p.name.clone(),
                prefix: p.prefix.clone(),
                xml: content.then(|| p.xml.clone().into_bytes()),
            })
            .collect()
    }

    pub(super) fn one(&self, k: &str, prop: &DavProp) -> Option<Vec<u8>> {
        let ns = prop.namespace.as_deref().unwrap_or("");
        self.0
            .get(k)?
            .iter()
            .find(|p| p.ns == ns && p.name == prop.name)
            .map(|p| p.xml.clone().into_bytes())
    }

    /// Applies `patch` to `k`, all or nothing: `Some(i)` (and nothing
    /// changed) when the `i`th is over a limit.
    pub(super) fn patch(&mut self, k: &str, patch: &[(bool, DavProp)]) -> Option<usize> {
        let mut props = self.0.get(k).cloned().unwrap_or_default();
        for (i, (set, p)) in patch.iter().enumerate() {
            let ns = p.namespace.as_deref().unwrap_or("");
            let at =
                props.binary_search_by(|s| (s.ns.as_str(), s.name.as_str()).cmp(&(ns, &p.name)));
            if !*set {
                if let Ok(at) = at {
                    props.remove(at);
                }
                continue;
            }
            let xml = p.xml.as_deref().unwrap_or_default();
            // The XML dav-server hands over is UTF-8; what is not cannot
            // be kept in the record's JSON as it is.
            let Some(xml) = (xml.len() <= MAX_VALUE)
                .then(|| String::from_utf8(xml.to_vec()).ok())
                .flatten()
            else {
                return Some(i);
            };
            let stored = Stored {
                ns: ns.to_owned(),
                name: p.name.clone(),
                prefix: p.prefix.clone(),
                xml,
            };
            match at {
                Ok(at) => props[at] = stored,
                Err(at) => props.insert(at, stored),
            }
        }
        if props.len() > MAX_PER_RESOURCE {
            return patch.iter().position(|(set, _)| *set);
        }
        if props.is_empty() {
            self.0.remove(k);
        } else {
            self.0.insert(k.to_owned(), props);
        }
        None
    }

    /// Moves what is at and below `f` to `t`, dropping what was at and
    /// below `t`.
    pub(super) fn rename(&mut self, f: &str, t: &str) {
        self.0.retain(|p, _| !at_or_below(p, t));
        let moved: Vec<String> = self
            .0
            .keys()
            .filter(|p| at_or_below(p, f))
            .cloned()
            .collect();
        for p in moved {
            if let Some(v) = self.0.remove(&p) {
                self.0.insert(format!("{t}{}", &p[f.len()..]), v);
            }
        }
    }

    /// Copies `f`'s own properties (not those below it) to `t`, over what
    /// `t` had of the same names.
    pub(super) fn copy(&mut self, f: &str, t: &str) {
        let Some(from) = self.0.get(f).cloned() else {
            return;
        };
        let patch: Vec<(bool, DavProp)> =
            self.all(f, true).into_iter().map(|p| (true, p)).collect();
        if self.patch(t, &patch).is_some() {
            // More than a resource keeps, together: the copy's own win.
            self.0.insert(t.to_owned(), from);
        }
    }

    pub(super) fn remove(&mut self, k: &str) {
        self.0.retain(|p, _| !at_or_below(p, k));
    }
}

/// The table as the store holds it now; empty when there is none.
pub(super) fn read(shared: &dyn Shared) -> Result<Table, FilesError> {
    match shared.get(RECORD)? {
        None => Ok(Table::default()),
        Some(b) => decode(&b),
    }
}

fn decode(b: &[u8]) -> Result<Table, FilesError> {
    serde_json::from_slice(b).map_err(|_| {
        FilesError::Unavailable(format!(
            "the WebDAV properties ({RECORD}) do not parse; remove the record to start over"
        ))
    })
}

/// Changes the table as `f` says and writes it (only when it changed,
/// and, when `bounded`, only if it stays within [`MAX_TABLE`]: a move or
/// removal is never refused, else a full table would leave properties
/// for the next file of a name); `f` may run more than once, on what
/// another server wrote in between. Gives `f`'s answer, whether the
/// change was kept, and the table as it is now.
pub(super) fn change<T>(
    shared: &dyn Shared,
    bounded: bool,
    mut f: impl FnMut(&mut Table) -> T,
) -> Result<(T, bool, Table), FilesError> {
    let mut now = Table::default();
    let (out, kept) = change_shared(shared, RECORD, |before| {
        let mut table = match before.map(decode) {
            None => Table::default(),
            Some(Ok(t)) => t,
            Some(Err(e)) => return (None, Err(e)),
        };
        let was = table.clone();
        let out = f(&mut table);
        if table == was {
            now = table;
            return (None, Ok((out, true)));
        }
        let bytes = serde_json::to_vec(&table).unwrap_or_default();
        if bytes.is_empty() || (bounded && bytes.len() > MAX_TABLE) {
            now = was;
            return (None, Ok((out, false)));
        }
        now = table;
        (Some(bytes), Ok((out, true)))
    })
    .and_then(|r| r)?;
    Ok((out, kept, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_below_a_folder_only_past_a_slash() {
        assert!(at_or_below("a", "a"));
        assert!(at_or_below("a/b", "a"));
        assert!(!at_or_below("ab", "a"));
        assert!(!at_or_below("a", "a/b"));
        // The root's own properties only: every other key has no slash first.
        assert!(at_or_below("", ""));
        assert!(!at_or_below("a", ""));
    }
}
