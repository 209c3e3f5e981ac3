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
