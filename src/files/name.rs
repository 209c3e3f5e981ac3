//! The one name validator. Every path a peer sends (and every name a server
//! sends to the client) passes through [`RelPath::parse`] before it touches a
//! file system.
//!
//! A path is `/`-separated components relative to the served root. One
//! leading `/` means "from the root" and one trailing `/` is ignored; any
//! other empty component is refused. Each component must be a normal name:
//! not `.` or `..`, no NUL or control characters (C0, DEL, C1), no
//! backslash (a separator elsewhere), no drive-letter prefix (`C:`), no
//! bidirectional control characters (they make a name read as another), at
//! most 255 bytes, and not ending in the reserved suffix of partial files,
//! in any case and with any trailing dots or spaces.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Suffix of in-progress transfer files; reserved, never a valid name.
pub const PART_SUFFIX: &str = ".ferry-part";

/// Whether `name` has the form of a partial file ferry makes
/// (`.NAME.ferry-part`), which transfers leave out without a word.
pub fn is_part_file_name(name: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let b = name.as_bytes();
    b.len() > PART_SUFFIX.len() + 1 && b[0] == b'.' && b.ends_with(PART_SUFFIX.as_bytes())
}

/// A name as text to show, whatever its bytes: those that are not UTF-8
/// become `\xNN` (escaped for printing like any backslash, so they can
/// never pass for a character a real name holds).
pub fn shown_name(name: &std::ffi::OsStr) -> String {
    use std::fmt::Write as _;
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in name.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Longest accepted component, in bytes.
pub const MAX_COMPONENT: usize = 255;
/// Longest accepted path, in bytes.
pub const MAX_PATH: usize = 4096;
/// Most folders a path may go down. Resolving a path below the root costs
/// about the square of its depth (every prefix looked at, each from the
/// top), and a deep folder made level by level, or walked, its cube: at
/// 2,000 levels (what 4096 bytes allow) one request kept a core busy for
/// 100 s. At 128 any one costs a few hundredths of a second.
pub const MAX_DEPTH: usize = 128;

/// What a path past [`MAX_DEPTH`] is told.
const TOO_DEEP: &str = "goes more than 128 folders deep";

/// Why a name was refused. The message quotes the name with control
/// characters escaped, so it is safe to print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {name}: {reason}")]
pub struct NameError {
    /// The offending name, escaped.
    pub name: String,
    /// What rule it breaks.
    pub reason: &'static str,
}

/// A validated path below the root: zero or more normal components.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath {
    parts: Vec<String>,
}

impl RelPath {
    /// The root itself.
    pub fn root() -> Self {
        RelPath { parts: Vec::new() }
    }

    /// Validates a peer-supplied path.
    pub fn parse(raw: &str) -> Result<RelPath, NameError> {
        let fail = |reason| NameError {
            name: quote(raw),
            reason,
        };
        if raw.len() > MAX_PATH {
            return Err(fail("path is longer than 4096 bytes"));
        }
        let mut s = raw.strip_prefix('/').unwrap_or(raw);
        s = s.strip_suffix('/').unwrap_or(s);
        if s.is_empty() {
            return Ok(RelPath::root());
        }
        let mut parts = Vec::new();
        for comp in s.split('/') {
            check_component(comp).map_err(fail)?;
            parts.push(comp.to_string());
        }
        if parts.len() > MAX_DEPTH {
            return Err(fail(TOO_DEEP));
        }
        Ok(RelPath { parts })
    }

    /// Validates one component given as an OS name (from a local directory
    /// listing), which must also be UTF-8.
    pub fn component_from_os(name: &std::ffi::OsStr) -> Result<String, NameError> {
        let Some(s) = name.to_str() else {
            return Err(NameError {
                name: quote(&name.to_string_lossy()),
                reason: "not valid UTF-8",
            });
        };
        check_component(s).map_err(|reason| NameError {
            name: quote(s),
            reason,
        })?;
        Ok(s.to_string())
    }

    /// True for the root.
    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The components.
    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// The last component, if any.
    pub fn file_name(&self) -> Option<&str> {
        self.parts.last().map(String::as_str)
    }

    /// Everything but the last component.
    pub fn parent(&self) -> Option<RelPath> {
        if self.parts.is_empty() {
            return None;
        }
        Some(RelPath {
            parts: self.parts[..self.parts.len() - 1].to_vec(),
        })
    }

    /// This path with more components appended (each already valid).
    pub fn join(&self, other: &RelPath) -> RelPath {
        let mut parts = self.parts.clone();
        parts.extend(other.parts.iter().cloned());
        RelPath { parts }
    }

    /// This path with `other` below it, within [`MAX_DEPTH`].
    pub fn joined(&self, other: &RelPath) -> Result<RelPath, NameError> {
        if self.parts.len() + other.parts.len() > MAX_DEPTH {
            return Err(NameError {
                name: quote(&other.as_wire()),
                reason: TOO_DEEP,
            });
        }
        Ok(self.join(other))
    }

    /// This path with one more, already-validated component.
    pub fn child(&self, name: &str) -> Result<RelPath, NameError> {
        check_component(name).map_err(|reason| NameError {
            name: quote(name),
            reason,
        })?;
        if self.parts.len() >= MAX_DEPTH {
            return Err(NameError {
                name: quote(name),
                reason: TOO_DEEP,
            });
        }
        let mut parts = self.parts.clone();
        parts.push(name.to_string());
        Ok(RelPath { parts })
    }

    /// The path below `base`.
    pub fn to_path(&self, base: &Path) -> PathBuf {
        let mut p = base.to_path_buf();
        p.extend(&self.parts);
        p
    }

    /// `/`-separated form, without a leading slash (empty for the root).
    pub fn as_wire(&self) -> String {
        self.parts.join("/")
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", crate::text::escape(&self.parts.join("/")))
    }
}

fn check_component(c: &str) -> Result<(), &'static str> {
    if c.is_empty() {
        return Err("empty path component");
    }
    if c == "." || c == ".." {
        return Err("'.' and '..' are not allowed");
    }
    if c.len() > MAX_COMPONENT {
        return Err("a component is longer than 255 bytes");
    }
    if c.chars().any(|ch| ch == '\0') {
        return Err("contains NUL");
    }
    if c.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if c.contains('\\') {
        return Err("contains a backslash");
    }
    if c.contains('/') {
        return Err("a single name cannot contain '/'");
    }
    let b = c.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err("starts with a drive letter");
    }
    if c.chars().any(is_bidi_control) {
        return Err(
            "contains a bidirectional control character, which makes a name read as another",
        );
    }
    // Also as a disk that ignores case, or trailing dots and spaces (as
    // Windows does), would see it: never a name a partial file could have.
    let plain = c.trim_end_matches(['.', ' ']);
    let tail = plain.len().saturating_sub(PART_SUFFIX.len());
    if plain
        .get(tail..)
        .is_some_and(|t| t.eq_ignore_ascii_case(PART_SUFFIX))
    {
        return Err("ends with the reserved suffix .ferry-part");
    }
    Ok(())
}

/// The invisible characters that reorder text around them (Unicode's
/// bidirectional marks, embeddings, overrides and isolates): with them a
/// name such as `invoice\u{202e}fdp.exe` shows as `invoiceexe.pdf`.
fn is_bidi_control(ch: char) -> bool {
    matches!(ch, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn quote(s: &str) -> String {
    format!("\"{}\"", crate::text::escape(s))
}

/// The folders of a batch (`/`-separated as the batch names them, `""`
/// for its top) that hold two names differing only in case: where the
/// disk ignores case, those would be one file (see
/// [`crate::files::case`]). Each folder is kept as a number, so deep
/// batches cost memory by their components, not their paths' lengths.
pub fn case_pair_folders<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    use std::collections::HashMap;
    // Folder number 0 is the top; each other is (parent, name).
    let mut folders: Vec<(usize, String)> = vec![(0, String::new())];
    let mut ids: HashMap<(usize, String), usize> = HashMap::new();
    let mut folded: HashMap<(usize, String), String> = HashMap::new();
    let mut pairs = std::collections::BTreeSet::new();
    for path in paths {
        let mut at = 0;
        for name in path.split('/').filter(|n| !n.is_empty()) {
            match folded.entry((at, name.to_lowercase())) {
                std::collections::hash_map::Entry::Occupied(o) => {
                    if o.get() != name {
                        pairs.insert(at);
                    }
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(name.to_string());
                }
            }
            let next = folders.len();
            at = *ids.entry((at, name.to_string())).or_insert_with(|| {
                folders.push((at, name.to_string()));
                next
            });
        }
    }
    pairs
        .into_iter()
        .map(|mut id| {
            let mut names = Vec::new();
            while id != 0 {
                names.push(folders[id].1.as_str());
                id = folders[id].0;
            }
            names.reverse();
            names.join("/")
        })
        .collect()
}

/// Most path components, all entries together, that one batch may hold.
pub const MAX_BATCH_PARTS: usize = 2_000_000;

/// Checks a whole batch of tree paths before anything is written: every
/// path valid, none twice, no file standing where another entry needs a
/// folder, and no more than [`MAX_BATCH_PARTS`] components. Names that
/// differ only in case are the destination disk's to judge (see
/// [`case_pair_folders`]).
pub fn check_batch<'a>(
    paths: impl IntoIterator<Item = (&'a str, bool)>,
) -> Result<Vec<RelPath>, NameError> {
    let mut seen = HashSet::new();
    let mut files = HashSet::new();
    let mut out = Vec::new();
    let mut parts = 0usize;
    for (raw, is_dir) in paths {
        let rel = RelPath::parse(raw)?;
        // Each component is held apart while the batch is checked: a cap on
        // them all bounds what a batch can cost (2,000 components in each
        // of a manifest's paths once made 32 MiB cost 600 MB).
        parts += rel.parts().len();
        if parts > MAX_BATCH_PARTS {
            return Err(NameError {
                name: quote(raw),
                reason: "is past the most path components a batch may hold (2,000,000)",
            });
        }
        if rel.is_root() || raw.starts_with('/') {
            return Err(NameError {
                name: quote(raw),
                reason: "a batch entry must be a relative path",
            });
        }
        if !seen.insert(rel.as_wire()) {
            return Err(NameError {
                name: quote(raw),
                reason: "appears twice in the batch",
            });
        }
        if !is_dir {
            files.insert(rel.as_wire());
        }
        out.push(rel);
    }
    // An entry below a file: in sorted order, what starts with `FILE/`
    // comes right where `FILE/` would go. One binary search per file, so
    // deep paths cost no more than shallow ones.
    let mut sorted: Vec<&String> = seen.iter().collect();
    sorted.sort_unstable();
    for file in &files {
        let below = format!("{file}/");
        let at = sorted.partition_point(|p| p.as_str() < below.as_str());
        if let Some(p) = sorted.get(at).filter(|p| p.starts_with(&below)) {
            return Err(NameError {
                name: quote(p),
                reason: "lies below an entry that is a file",
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_unusual_but_safe_names() {
        for ok in [
            "a.txt",
            "/docs/report.pdf",
            "docs/",
            "",
            "/",
            ".hidden",
            "emoji 😀 name",
            "quotes \"'`",
            "amp&lt<gt>",
            "colon:later",
            "日本語/ファイル",
            "..dots..",
        ] {
            assert!(RelPath::parse(ok).is_ok(), "{ok:?} should be accepted");
        }
        assert_eq!(RelPath::parse("/a/b/").unwrap().as_wire(), "a/b");
        assert!(RelPath::parse("/").unwrap().is_root());
    }

    #[test]
    fn a_path_goes_at_most_128_folders_deep_however_it_is_made() {
        let deep = |n: usize| vec!["d"; n].join("/");
        let at_most = RelPath::parse(&deep(MAX_DEPTH)).unwrap();
        assert_eq!(at_most.parts().len(), 128);
        let e = RelPath::parse(&deep(MAX_DEPTH + 1)).unwrap_err();
        assert!(e.to_string().contains("more than 128 folders deep"), "{e}");
        assert!(at_most.child("x").is_err());
        assert!(at_most.parent().unwrap().child("x").is_ok());
        let half = RelPath::parse(&deep(64)).unwrap();
        assert!(half.joined(&half).is_ok());
        assert!(half.joined(&at_most.parent().unwrap()).is_err());
    }

    #[test]
    fn refuses_every_hostile_form() {
        for bad in [
            "..",
            "../etc/passwd",
            "a/../../b",
            "a/./b",
            "//etc/passwd",
            "a//b",
            "a\\..\\b",
            "..\\x",
            "C:\\Windows",
            "c:foo",
            "nul\0byte",
            "line\nbreak",
            "tab\there",
            "esc\x1b[31m",
            "del\x7f",
            "c1\u{85}",
            "x.ferry-part",
            "x.FERRY-PART",
            "x.Ferry-Part.",
            "x.ferry-part. .",
            "invoice\u{202e}fdp.exe",
            "a\u{2066}b",
            "a\u{200f}b",
        ] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?} should be refused");
        }
        // Look-alikes that are plain names on this disk stay plain names.
        for fine in [
            "x.ferry-part.txt",
            "x.ferry-partial",
            "ferry-part",
            "שלום.txt",
            "ａ．ｂ",
        ] {
            assert!(RelPath::parse(fine).is_ok(), "{fine:?} should be accepted");
        }
        assert!(RelPath::parse(&"a".repeat(256)).is_err());
        assert!(RelPath::root().child("../x").is_err());
        assert!(RelPath::root().child("a/b").is_err());
        assert!(RelPath::parse(&"a/".repeat(2100)).is_err());
    }

    #[test]
    fn error_messages_are_escaped() {
        let e = RelPath::parse("evil\x1b]0;pwned\x07").unwrap_err();
        let msg = e.to_string();
        assert!(!msg.chars().any(|c| c.is_control()), "{msg:?}");
    }

    #[test]
    fn batches_are_checked_whole() {
        assert!(check_batch([("a", true), ("a/b.txt", false)]).is_ok());
        // Names that differ only in case are the disk's to judge.
        assert!(check_batch([("a.txt", false), ("A.TXT", false)]).is_ok());
        assert!(check_batch([("f", false), ("F/x", false)]).is_ok());
        let e = check_batch([("a.txt", false), ("a.txt", false)]).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        assert!(check_batch([("f", false), ("f/x", false)]).is_err());
        assert!(check_batch([("ok", false), ("../bad", false)]).is_err());
        assert!(check_batch([("/abs", false)]).is_err());
        assert!(check_batch([("", true)]).is_err());
    }

    #[test]
    fn case_pairs_are_found_in_the_folder_where_they_meet() {
        let paths = [
            "Makefile", "makefile", "a/B/x", "a/b/y", "c/d", "c/e", "f", "F/x",
        ];
        assert_eq!(case_pair_folders(paths), ["", "a"]);
        assert!(case_pair_folders(["x/A", "y/a", "x/B"]).is_empty());
    }

    #[test]
    fn a_batch_of_deep_paths_is_bounded_in_all() {
        // As deep as a path may go: 128 components each.
        let deep = vec!["a/"; MAX_DEPTH - 2].concat() + "f";
        let paths: Vec<String> = (0..16_000).map(|i| format!("d{i}/{deep}")).collect();
        let e = check_batch(paths.iter().map(|p| (p.as_str(), false))).unwrap_err();
        assert!(e.to_string().contains("path components"), "{e}");
        // The same paths, fewer of them, pass.
        assert!(check_batch(paths[..15_000].iter().map(|p| (p.as_str(), false))).is_ok());
    }
}
