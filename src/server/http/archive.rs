//! Folder downloads: `FOLDER/?zip` and `FOLDER/?tar`, the whole folder or
//! the entries picked in it (`&pick=NAME`, repeated). Streamed as written,
//! never built in memory or on disk: zip with data descriptors and zip64
//! past 4 GiB or 65,535 entries (what Windows opens without a tool), tar
//! with the GNU extensions for long names and sizes past 8 GiB. Only what
//! the visitor may read goes in (the files service's walk). What the walk
//! leaves out that the visitor could see (links out, special files, links
//! to folders, what cannot be read) is named, with why, in a last entry
//! beside the rest, `NAME.left-out.txt`: a download that lacks something
//! says so where it is unpacked.

use std::io::{self, Read, Write};

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::Web;
use super::auth::Who;
use super::paths::{disposition, failure};
use crate::access::Action;
use crate::files::FilesError;
use crate::files::entry::{EntryKind, SkipReason, Skipped};
use crate::files::name::RelPath;
use crate::files::search::Walked;

/// The two archive formats.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    /// zip (stored, data descriptors, zip64 where needed).
    Zip,
    /// tar (GNU).
    Tar,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Zip => "zip",
            Format::Tar => "tar",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Zip => "application/zip",
            Format::Tar => "application/x-tar",
        }
    }
}

/// At most this many left-out entries are named in the note, in at most
/// [`MAX_LEFT_OUT_BYTES`] of paths; past them the note gives their count.
pub const MAX_NAMED_LEFT_OUT: usize = 10_000;
/// Most bytes of paths the note holds.
pub const MAX_LEFT_OUT_BYTES: usize = 1 << 20;

/// At most this many entries may be picked in one request.
pub const MAX_PICKS: usize = 10_000;
/// Archives made at once; more wait up to [`ARCHIVE_WAIT`], then 503.
pub const ARCHIVES_AT_ONCE: usize = 4;
/// How long an archive waits for its turn.
pub const ARCHIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

fn turns() -> std::sync::Arc<tokio::sync::Semaphore> {
    static TURNS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    TURNS
        .get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(ARCHIVES_AT_ONCE)))
        .clone()
}

/// One entry of an archive: its name inside the archive and where it
/// comes from.
struct Item {
    name: String,
    source: RelPath,
    kind: EntryKind,
    mtime: i64,
}

/// What the archive starts from: the folder itself (named `top` inside),
/// or the entries picked in it, checked up front so that a bad pick is a
/// plain error rather than a broken download.
async fn roots(
    web: &Web,
    who: &Who,
    rel: &RelPath,
    top: &str,
    picks: &[String],
) -> Result<Vec<Item>, FilesError> {
    let files = &web.ctx.files;
    if picks.is_empty() {
        files.check(who.id, Action::Read, rel)?;
        return Ok(vec![Item {
            name: top.to_string(),
            source: rel.clone(),
            kind: EntryKind::Dir,
            mtime: chrono::Utc::now().timestamp(),
        }]);
    }
    if picks.len() > MAX_PICKS {
        return Err(FilesError::TooLarge(format!(
            "at most {MAX_PICKS} entries can be picked at once"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for name in picks {
        if !seen.insert(name.as_str()) {
            continue;
        }
        let one = rel.child(name)?;
        files.check(who.id, Action::Read, &one)?;
        let r = one.clone();
        let entry = files.blocking(move |s| s.stat(&r)).await?;
        if !matches!(entry.kind, EntryKind::File | EntryKind::Dir) {
            return Err(FilesError::Forbidden(format!(
                "{one} is not a regular file or a folder"
            )));
        }
        out.push(Item {
            name: name.clone(),
            source: one,
            kind: entry.kind,
            mtime: entry.mtime.map_or(0, |m| m.secs),
        });
    }
    Ok(out)
}

/// `GET FOLDER/?zip` or `?tar`, optionally with `pick=NAME` (repeated).
/// The tree is walked as the archive is written, so the first bytes leave
/// at once and a client that goes away stops the walk.
pub async fn archive(
    web: &Web,
    who: &Who,
    rel: RelPath,
    format: Format,
    picks: &[String],
) -> Response {
    let top = rel
        .file_name()
        .map(str::to_string)
        .unwrap_or_else(|| web.ctx.config.name.clone());
    let list = match roots(web, who, &rel, &top, picks).await {
        Ok(l) => l,
        Err(e) => return failure(e),
    };
    let Ok(Ok(turn)) = tokio::time::timeout(ARCHIVE_WAIT, turns().acquire_owned()).await else {
        return super::error(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many folder downloads at once; try again shortly",
        );
    };
    let note_name = note_name(&top, &list);
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let ctx = web.ctx.clone();
    let id = who.id;
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let writer = ChanWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let files = &ctx.files;
        let left_out = std::cell::RefCell::new(LeftOut::default());
        // A file gone since it was listed is left out unsaid; one that
        // cannot be read is named.
        let open = |item: &Item| match files.store().open_read(&item.source) {
            Ok(opened) => Some(opened),
            Err(FilesError::NotFound(_)) => None,
            Err(e) => {
                tracing::warn!("folder archive leaves out {}: {e}", item.source);
                left_out
                    .borrow_mut()
                    .add(&item.name, SkipReason::Unreadable);
                None
            }
        };
        // Each root, then (for a folder) what is below it, as found.
        let walk = |visit: &mut dyn FnMut(Item) -> io::Result<()>| -> io::Result<()> {
            for root in list {
                let (base, name, kind) = (root.source.clone(), root.name.clone(), root.kind);
                visit(root)?;
                if kind != EntryKind::Dir {
                    continue;
                }
                let mut failed = None;
                let walked = files.walk_each(id, &base, &mut |walked| {
                    if tx.is_closed() {
                        failed = Some(io::Error::new(io::ErrorKind::BrokenPipe, "client gone"));
                        return false;
                    }
                    let e = match walked {
                        Walked::Entry(e) => e,
                        Walked::Skipped(s) => {
                            left_out
                                .borrow_mut()
                                .add(&format!("{name}/{}", s.path), s.why);
                            return true;
                        }
                    };
                    let Ok(sub) = RelPath::parse(&e.path) else {
                        left_out
                            .borrow_mut()
                            .add(&format!("{name}/{}", e.path), SkipReason::Name);
                        return true;
                    };
                    let item = Item {
                        name: format!("{name}/{}", e.path),
                        source: base.join(&sub),
                        kind: e.kind,
                        mtime: e.mtime.map_or(0, |m| m.secs),
                    };
                    match visit(item) {
                        Ok(()) => true,
                        Err(err) => {
                            failed = Some(err);
                            false
                        }
                    }
                });
                if let Some(e) = failed {
                    return Err(e);
                }
                walked.map_err(|e| io::Error::other(e.to_string()))?;
            }
            Ok(())
        };
        let note = || {
            let left = left_out.take();
            (!left.is_empty()).then(|| (note_name.clone(), left.text()))
        };
        let result = match format {
            Format::Tar => write_tar(writer, walk, open, note),
            Format::Zip => write_zip(writer, walk, open, note),
        };
        if let Err(e) = result {
            tracing::warn!("folder archive cut short: {e}");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let body = Body::from_stream(
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .fuse(),
    );
    Response::builder()
        .header(header::CONTENT_TYPE, format.content_type())
        .header(
            header::CONTENT_DISPOSITION,
            disposition(&format!("{top}.{}", format.extension())),
        )
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_default()
}

type Opened = Option<(crate::files::storage::Reader, crate::files::entry::Entry)>;

/// What goes at the end of an archive: the note's name and text, when
/// something was left out.
type Note = Option<(String, Vec<u8>)>;

fn write_tar(
    writer: ChanWriter,
    walk: impl FnOnce(&mut dyn FnMut(Item) -> io::Result<()>) -> io::Result<()>,
    open: impl Fn(&Item) -> Opened,
    note: impl FnOnce() -> Note,
) -> io::Result<()> {
    let mut b = tar::Builder::new(writer);
    walk(&mut |item| {
        let mtime = item.mtime.max(0) as u64;
        let mut h = tar::Header::new_gnu();
        h.set_mtime(mtime);
        match item.kind {
            EntryKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, format!("{}/", item.name), io::empty())
            }
            EntryKind::File => {
                let Some((file, entry)) = open(&item) else {
                    return Ok(());
                };
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(entry.size);
                let data = Exactly {
                    inner: file,
                    left: entry.size,
                };
                b.append_data(&mut h, &item.name, data)
            }
            _ => Ok(()),
        }
    })?;
    if let Some((name, text)) = note() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        h.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
        b.append_data(&mut h, name, text.as_slice())?;
    }
    b.finish()?;
    b.get_mut().flush()
}

/// A name as a zip holds it. The zip format has no drive letters, and
/// readers (rawzip's writer among them) drop whatever comes before a
/// colon as one: a colon becomes `_`, as Windows, where zips are opened,
/// allows none. Anything a reader would still read otherwise than written
/// is refused rather than put somewhere else.
fn zip_name(name: &str) -> io::Result<String> {
    let name = name.replace(':', "_");
    let read_as = rawzip::path::ZipFilePath::from_str(&name);
    if read_as.as_str() != name.trim_end_matches('/') && read_as.as_str() != name {
        return Err(io::Error::other(format!(
            "{name:?} cannot be named as it is in a zip"
        )));
    }
    Ok(name)
}

fn write_zip(
    writer: ChanWriter,
    walk: impl FnOnce(&mut dyn FnMut(Item) -> io::Result<()>) -> io::Result<()>,
    open: impl Fn(&Item) -> Opened,
    note: impl FnOnce() -> Note,
) -> io::Result<()> {
    let mut z = rawzip::ZipArchiveWriter::new(writer);
    walk(&mut |item| {
        let when = rawzip::time::UtcDateTime::from_unix(item.mtime);
        let name = zip_name(&item.name)?;
        match item.kind {
            EntryKind::Dir => {
                z.new_dir(format!("{name}/").as_str())
                    .last_modified(when)
                    .unix_permissions(0o40755)
                    .create()
                    .map_err(io::Error::other)?;
            }
            EntryKind::File => {
                let Some((file, entry)) = open(&item) else {
                    return Ok(());
                };
                let data = Exactly {
                    inner: file,
                    left: entry.size,
                };
                zip_file(&mut z, &name, when, data)?;
            }
            _ => {}
        }
        Ok(())
    })?;
    if let Some((name, text)) = note() {
        let when = rawzip::time::UtcDateTime::from_unix(chrono::Utc::now().timestamp());
        zip_file(&mut z, &zip_name(&name)?, when, text.as_slice())?;
    }
    let mut writer = z.finish().map_err(io::Error::other)?;
    writer.flush()
}

/// One file into a zip, stored.
fn zip_file(
    z: &mut rawzip::ZipArchiveWriter<ChanWriter>,
    name: &str,
    when: rawzip::time::UtcDateTime,
    mut data: impl Read,
) -> io::Result<()> {
    let (mut out, config) = z
        .new_file(name)
        .last_modified(when)
        .unix_permissions(0o100644)
        .start()
        .map_err(io::Error::other)?;
    let mut w = config.wrap(&mut out);
    io::copy(&mut data, &mut w)?;
    let (_, described) = w.finish().map_err(io::Error::other)?;
    out.finish(described).map_err(io::Error::other)?;
    Ok(())
}

/// The note's name: beside the archive's top entries, where nothing of
/// theirs can be; beside picked entries, one none of them has.
fn note_name(top: &str, roots: &[Item]) -> String {
    // Compared as a zip writes names and a disk that ignores case reads
    // them.
    let alike =
        |a: &str, b: &str| a.replace(':', "_").to_lowercase() == b.replace(':', "_").to_lowercase();
    let mut name = format!("{top}.left-out.txt");
    let mut n = 1;
    while roots.iter().any(|r| alike(&r.name, &name)) {
        n += 1;
        name = format!("{top}.left-out ({n}).txt");
    }
    name
}

/// What an archive left out, for its note.
#[derive(Default)]
struct LeftOut {
    named: Vec<Skipped>,
    bytes: usize,
    more: u64,
}

impl LeftOut {
    fn add(&mut self, path: &str, why: SkipReason) {
        if self.named.len() < MAX_NAMED_LEFT_OUT && self.bytes + path.len() <= MAX_LEFT_OUT_BYTES {
            self.bytes += path.len();
            self.named.push(Skipped {
                path: path.to_string(),
                why,
            });
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.named.is_empty()
    }

    /// One line for each: the path as the archive would name it (control
    /// characters escaped), a tab, why.
    fn text(&self) -> Vec<u8> {
        let mut out = String::from("Left out of this archive by the server (path, then why):\n");
        for s in &self.named {
            out.push_str(&crate::text::escape(&s.path));
            out.push('\t');
            out.push_str(s.why.words());
            out.push('\n');
        }
        if self.more > 0 {
            out.push_str(&format!("... and {} more\n", self.more));
        }
        out.into_bytes()
    }
}

/// Bytes for the response body, from the archive thread.
struct ChanWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl ChanWriter {
    fn push(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.push()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

/// A file's bytes, exactly as many as its header announced: a file that
/// shrank while archived fails the download instead of corrupting it, and
/// one that grew is cut at the size described.
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a file shrank while it was archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
