//! What the files service says about what it holds: entries of a
//! listing or a stat, entries of a tree, modification times. The native
//! wire carries them as they serialise.

use serde::{Deserialize, Serialize};

/// A modification time: seconds since the Unix epoch and nanoseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mtime {
    /// Whole seconds since 1970-01-01T00:00:00Z (negative before).
    pub secs: i64,
    /// Nanoseconds, 0..1_000_000_000.
    pub nanos: u32,
}

/// What kind of thing an entry is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file (or a symlink to one inside the root).
    File,
    /// A folder.
    Dir,
    /// A symlink that cannot be followed (it leaves the root or is broken).
    Symlink,
    /// Anything else (socket, device, fifo).
    Other,
}

/// One entry of a listing or a stat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name (one component).
    pub name: String,
    /// File, folder, …
    pub kind: EntryKind,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Last modification, when known.
    pub mtime: Option<Mtime>,
}

/// One entry of a tree (walk or plan): a `/`-separated path relative to the
/// tree's top.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeEntry {
    /// Relative path, `/`-separated, never empty.
    pub path: String,
    /// `File` or `Dir`.
    pub kind: EntryKind,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Last modification, when known.
    pub mtime: Option<Mtime>,
}

/// What a walk found and left out: the entries it gives, and those it does
/// not serve (links out, special files, names no peer may be sent), so a
/// folder download can say what it did not bring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Folders and files, parents first.
    pub entries: Vec<TreeEntry>,
    /// What was left out, in the order found.
    pub skipped: Vec<Skipped>,
}

/// An entry a walk left out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Skipped {
    /// Its path relative to the top, as text (bytes that are not UTF-8
    /// replaced). It may hold any character: escape it to print it.
    pub path: String,
    /// Why it was left out.
    pub why: SkipReason,
}

/// Why a walk left an entry out.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A name the name rules refuse (a control character, not UTF-8, ...).
    Name,
    /// A symlink leading out of the served folder, or nowhere.
    LinkOut,
    /// A symlink to a folder: not followed, so that no walk loops.
    LinkToFolder,
    /// A FIFO, socket or device.
    Special,
    /// Its folder or its details could not be read (permissions, a path
    /// too long): not left out by choice, so the transfer fails at its end.
    Unreadable,
    /// A partial file of a transfer that did not finish (uploads only: a
    /// server never names its own).
    Partial,
    /// Deeper below the served folder than a path may go
    /// ([`crate::files::name::MAX_DEPTH`] folders).
    TooDeep,
    /// Its path below the served folder is longer than a path may be
    /// ([`crate::files::name::MAX_PATH`] bytes).
    TooLong,
    /// A reason this build does not know (from a newer peer).
    #[serde(other)]
    Other,
}

impl SkipReason {
    /// The reason in words, as the client prints it.
    pub fn words(self) -> &'static str {
        match self {
            SkipReason::Name => "name not allowed",
            SkipReason::LinkOut => "link leads outside",
            SkipReason::LinkToFolder => "link to a folder",
            SkipReason::Special => "not a regular file",
            SkipReason::Unreadable => "cannot be read",
            SkipReason::Partial => "partial file of an unfinished transfer",
            SkipReason::TooDeep => "more than 128 folders deep",
            SkipReason::TooLong => "its path is longer than 4096 bytes",
            SkipReason::Other => "not served",
        }
    }
}

impl Mtime {
    /// The time as RFC 3339 text in UTC, to the nanosecond it has
    /// (`2026-12-02T03:52:13.345745726Z`).
    pub fn rfc3339(self) -> Option<String> {
        chrono::DateTime::from_timestamp(self.secs, self.nanos)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

/// An entry as the JSON people's tools read shows it (`ferry ls --json`,
/// `ferry stat --json`, a folder's `?json`): the time as RFC 3339 text,
/// and as whole seconds since the epoch for arithmetic. The native wire
/// keeps [`Entry`] as it is.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Shown<'a> {
    /// The entry's name.
    pub name: &'a str,
    /// File, folder, …
    pub kind: EntryKind,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Last modification, RFC 3339, UTC.
    pub mtime: Option<String>,
    /// Last modification, whole seconds since 1970-01-01T00:00:00Z.
    pub mtime_unix: Option<i64>,
}

impl<'a> From<&'a Entry> for Shown<'a> {
    fn from(e: &'a Entry) -> Shown<'a> {
        Shown {
            name: &e.name,
            kind: e.kind,
            size: e.size,
            mtime: e.mtime.and_then(Mtime::rfc3339),
            mtime_unix: e.mtime.map(|m| m.secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_as_rfc3339_and_epoch_seconds() {
        let e = Entry {
            name: "a".into(),
            kind: EntryKind::File,
            size: 3,
            mtime: Some(Mtime {
                secs: 1_796_183_533,
                nanos: 345_000_000,
            }),
        };
        let v = serde_json::to_value(Shown::from(&e)).unwrap();
        assert_eq!(v["mtime"], "2026-12-02T03:52:13.345Z");
        assert_eq!(v["mtime_unix"], 1_796_183_533);
        let whole = Mtime { secs: 0, nanos: 0 };
        assert_eq!(whole.rfc3339().unwrap(), "1970-01-01T00:00:00Z");
    }
}
