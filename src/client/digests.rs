//! Digests of local files this client has hashed, kept between runs, so an
//! unchanged file is not read and hashed again to be uploaded or to be
//! found the same as the server's copy (a second `put -r` or `get -r` of a
//! tree that did not change reads no file). The key is the server's (see
//! [`crate::files::digests`]): device, inode, size, modification and
//! status-change times, which any change of the file moves; a file
//! changed less than two seconds before it was hashed is not remembered.
//!
//! A remembered digest is only ever a claim the server checks: an upload
//! whose bytes do not hash to it is refused by the server and nothing is
//! kept, and the digest is forgotten here.
//!
//! The file (`$XDG_CACHE_HOME/ferry/digests`, else `~/.cache/ferry/digests`;
//! `FERRY_DIGESTS` names another, `off` keeps none) holds one line per
//! digest, `IDENTITY ALGORITHM HEX` (`-` for one forgotten), the last line
//! for a file and algorithm counting. Lines are appended, each by one
//! write, so clients running at once lose nothing but each other's
//! newest lines; past [`MAX_LINES`] the newest [`KEPT`] are written
//! anew. Hand-written: a few lines of text need no database.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::files::digest::Algo;
use crate::files::digests::{Identity, identity_of, settled};

/// Lines the file may grow to before it is written anew.
pub const MAX_LINES: usize = 20_000;
/// Digests kept when it is.
pub const KEPT: usize = 10_000;

/// The digests this client remembers (loaded when first asked).
#[derive(Debug)]
pub struct KnownDigests {
    path: PathBuf,
    kept: Option<HashMap<(String, String), String>>,
}

impl KnownDigests {
    /// The file at `path`.
    pub fn at(path: PathBuf) -> Self {
        KnownDigests { path, kept: None }
    }

    /// Where the digests are kept: `FERRY_DIGESTS`, else the user's cache
    /// folder; `None` with `FERRY_DIGESTS=off` or no home.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("FERRY_DIGESTS").filter(|v| !v.is_empty()) {
            return (p != "off").then(|| PathBuf::from(p));
        }
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("ferry").join("digests"))
    }

    /// The digest by `algo` of the file version `id`, if remembered.
    pub fn known(&mut self, id: &Identity, algo: Algo) -> Option<String> {
        let key = (id.tag(), algo_name(algo).to_string());
        self.loaded().get(&key).cloned()
    }

    /// Remembers the digest of the file version `id`, unless it is too
    /// recent to be told from a change in the same instant.
    pub fn remember(&mut self, id: &Identity, algo: Algo, hex: &str) {
        if !settled(id) || !is_hex(hex) {
            return;
        }
        self.put(id, algo, hex);
    }

    /// Forgets the digest of `id` (one the server found wrong).
    pub fn forget(&mut self, id: &Identity, algo: Algo) {
        if self.known(id, algo).is_some() {
            self.put(id, algo, "-");
        }
    }

    fn put(&mut self, id: &Identity, algo: Algo, hex: &str) {
        let (tag, name) = (id.tag(), algo_name(algo));
        let line = format!("{tag} {name} {hex}\n");
        let kept = self.loaded();
        let key = (tag, name.to_string());
        match hex {
            "-" => kept.remove(&key),
            _ => kept.insert(key, hex.to_string()),
        };
        // A cache: a file that cannot be written only means hashing again.
        let _ = append(&self.path, &line);
    }

    fn loaded(&mut self) -> &mut HashMap<(String, String), String> {
        let path = &self.path;
        self.kept.get_or_insert_with(|| load(path))
    }
}

fn algo_name(algo: Algo) -> &'static str {
    match algo {
        Algo::Blake3 => "blake3",
        Algo::Sha256 => "sha256",
    }
}

fn is_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One line as (identity, algorithm, digest or `-`), if well formed.
fn parse(line: &str) -> Option<(&str, &str, &str)> {
    let mut words = line.split(' ');
    let (tag, algo, hex) = (words.next()?, words.next()?, words.next()?);
    let tag_ok = !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    let algo_ok = algo == "blake3" || algo == "sha256";
    (words.next().is_none() && tag_ok && algo_ok && (hex == "-" || is_hex(hex)))
        .then_some((tag, algo, hex))
}

/// The digests in the file at `path` (none when it is missing or
/// unreadable), writing it anew when it has grown past [`MAX_LINES`].
fn load(path: &Path) -> HashMap<(String, String), String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    let mut lines: Vec<(&str, &str, &str)> = text.lines().filter_map(parse).collect();
    if text.lines().count() > MAX_LINES {
        // The newest KEPT digests, in the order the lines had them.
        let mut seen = std::collections::HashSet::new();
        let mut newest = Vec::new();
        for &(tag, algo, hex) in lines.iter().rev() {
            if seen.insert((tag, algo)) && hex != "-" && newest.len() < KEPT {
                newest.push((tag, algo, hex));
            }
        }
        newest.reverse();
        let text: String = newest
            .iter()
            .map(|(t, a, h)| format!("{t} {a} {h}\n"))
            .collect();
        let _ = rewrite(path, &text);
        lines = newest;
    }
    let mut kept = HashMap::new();
    for (tag, algo, hex) in lines {
        let key = (tag.to_string(), algo.to_string());
        match hex {
            "-" => kept.remove(&key),
            _ => kept.insert(key, hex.to_string()),
        };
    }
    kept
}

/// Appends `line` in one write, making the file (owner only) and its
/// folder when missing.
fn append(path: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .ok();
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(line.as_bytes())
}

/// Replaces the file with `text`, by a rename: a reader sees the old file
/// or the new one.
fn rewrite(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("new{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let r = f
        .write_all(text.as_bytes())
        .and_then(|()| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// What a transfer hashes with: the algorithm, and the digests this client
/// remembers, when it keeps them.
pub(super) struct Hashing<'a> {
    pub(super) algo: Algo,
    pub(super) known: Option<&'a mut KnownDigests>,
}

impl Hashing<'_> {
    /// The remembered digest of the file version `id`.
    pub(super) fn known(&mut self, id: Option<&Identity>) -> Option<String> {
        self.known.as_mut()?.known(id?, self.algo)
    }

    /// The identity of `file` and its remembered digest, if any.
    pub(super) fn of(&mut self, file: &std::fs::File) -> (Option<Identity>, Option<String>) {
        let id = identity_of(file);
        let hex = self.known(id.as_ref());
        (id, hex)
    }

    /// Remembers `hex` for the file version `id`.
    pub(super) fn remember(&mut self, id: Option<&Identity>, hex: &str) {
        if let (Some(id), Some(k)) = (id, self.known.as_mut()) {
            k.remember(id, self.algo, hex);
        }
    }

    /// Forgets what was remembered for `id`.
    pub(super) fn forget(&mut self, id: &Identity) {
        if let Some(k) = self.known.as_mut() {
            k.forget(id, self.algo);
        }
    }
}

#[cfg(test)]
mod tests;
