//! Digests of local files this client has hashed, kept between runs, so an
//! unchanged file is not read and hashed again to be uploaded. The key is
//! the server's (see
//! [`crate::files::digests`]): device, inode, size, modification and
//! status-change times, which any change of the file moves; a file
//! changed less than two seconds before it was hashed is not remembered.
//!
//! A remembered digest is only ever a claim the server checks: an upload
//! whose bytes do not hash to it (a file written through a memory mapping
//! keeps its times) is refused by the server, nothing is kept, the digest
//! is forgotten here and the file sent once more, hashed. It is never taken
//! for the file's bytes where nothing checks it: whether a file is the same
//! as the server's copy is always found by hashing it.
//!
//! The file (`$XDG_CACHE_HOME/ferry/digests`, else `~/.cache/ferry/digests`;
//! `FERRY_DIGESTS` names another, `off` keeps none) holds one line per
//! digest, `IDENTITY ALGORITHM HEX` (`-` for one forgotten), the last line
//! for a file and algorithm counting. Lines are appended, each by one
//! write under the file's lock; past [`MAX_LINES`] lines (or 4 MiB)
//! the newest [`KEPT`] are written anew under that lock and put in place by
//! a rename, and an append finds the file a rewrite put in place, so
//! clients running at once lose none of each other's lines. Only a regular
//! file is read or written there (a link is not followed, a FIFO not waited
//! on). Hand-written: a few lines of text need no database.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::files::digest::Algo;
use crate::files::digests::{Identity, settled};

/// Lines the file may grow to before it is written anew.
pub const MAX_LINES: usize = 20_000;
/// Digests kept when it is.
pub const KEPT: usize = 10_000;
/// The most of the file read (its end): more than [`MAX_LINES`] lines.
const MAX_BYTES: u64 = 4 << 20;

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
            return (!p.eq_ignore_ascii_case("off")).then(|| PathBuf::from(p));
        }
        crate::config::xdg_dir("XDG_CACHE_HOME", ".cache").map(|d| d.join("digests"))
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
    let Ok(mut f) = open_plain(path, std::fs::OpenOptions::new().read(true)) else {
        return HashMap::new();
    };
    let Some((mut text, mut cut)) = read_tail(&mut f) else {
        return HashMap::new();
    };
    if cut || text.lines().count() > MAX_LINES {
        // Under the file's lock, read again: a line appended meanwhile (a
        // digest forgotten) is not written over by the older text. Another
        // client's rewrite done meanwhile leaves this one to use the text.
        if let Ok(locked) = Flock::lock(f, FlockArg::LockExclusive) {
            let mut f = locked;
            if still_at(&f, path) {
                if let Some((again, again_cut)) = read_tail(&mut f) {
                    (text, cut) = (again, again_cut);
                    if cut || text.lines().count() > MAX_LINES {
                        text = newest(&text);
                        let _ = rewrite(path, &text);
                    }
                }
            }
        }
    }
    let mut kept = HashMap::new();
    for (tag, algo, hex) in text.lines().filter_map(parse) {
        let key = (tag.to_string(), algo.to_string());
        match hex {
            "-" => kept.remove(&key),
            _ => kept.insert(key, hex.to_string()),
        };
    }
    kept
}

/// The newest [`KEPT`] digests of `text`, in the order its lines had them.
fn newest(text: &str) -> String {
    let lines: Vec<(&str, &str, &str)> = text.lines().filter_map(parse).collect();
    let mut seen = std::collections::HashSet::new();
    let mut newest = Vec::new();
    for &(tag, algo, hex) in lines.iter().rev() {
        if seen.insert((tag, algo)) && hex != "-" && newest.len() < KEPT {
            newest.push((tag, algo, hex));
        }
    }
    newest.reverse();
    newest
        .iter()
        .map(|(t, a, h)| format!("{t} {a} {h}\n"))
        .collect()
}

/// Whether `f` is still the file at `path` (not one a rewrite replaced).
fn still_at(f: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The file at `path`, opened without following a link and without
/// waiting (a FIFO), if it is a regular file.
fn open_plain(path: &Path, opts: &mut std::fs::OpenOptions) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = opts
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// The text of `f` from the start, its last [`MAX_BYTES`] at most (from
/// a line's start); and whether that is not all.
fn read_tail(f: &mut std::fs::File) -> Option<(String, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(MAX_BYTES);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    f.take(MAX_BYTES).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Some(match from {
        0 => (text, false),
        _ => (
            text.split_once('\n')
                .map(|(_, rest)| rest.to_string())
                .unwrap_or_default(),
            true,
        ),
    })
}

/// Appends `line` in one write under the file's lock, making the file
/// (owner only) and its folder when missing; to the file a rewrite put in
/// place, if one did meanwhile.
fn append(path: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .ok();
    }
    for _ in 0..3 {
        let f = open_plain(
            path,
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600),
        )?;
        let mut f =
            Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))?;
        if still_at(&f, path) {
            return f.write_all(line.as_bytes());
        }
    }
    Err(std::io::Error::other("the file keeps being replaced"))
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
    /// Whether a remembered digest was offered (and, if the server refused
    /// it, forgotten).
    pub(super) offered: bool,
}

impl Hashing<'_> {
    /// The remembered digest of the file version `id`.
    pub(super) fn known(&mut self, id: Option<&Identity>) -> Option<String> {
        let hex = self.known.as_mut()?.known(id?, self.algo);
        self.offered |= hex.is_some();
        hex
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
