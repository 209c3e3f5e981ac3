//! What the page shows of a file before it is downloaded: a thumbnail of
//! an image (`FILE?thumb`) and Markdown as a page fragment
//! (`FILE?render`). Both read files visitors uploaded, so both are held
//! to budgets: a thumbnail is made from at most [`THUMB_MAX_FILE`] bytes,
//! never decodes past [`THUMB_MEMORY`] or [`THUMB_MAX_SIDE`] pixels a
//! side, gives up after [`THUMB_TIME`], and at most [`THUMB_AT_ONCE`] are
//! made at once. Thumbnails (and the files that have none) are kept in the
//! state folder under a key of the path, size and modification time, so a
//! changed file misses.

use std::io::{BufReader, Cursor};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;
use tokio::sync::Semaphore;

use super::paths::failure;
use super::{Web, error};
use crate::files::FilesError;
use crate::files::name::RelPath;

/// Largest file a thumbnail is made from.
pub const THUMB_MAX_FILE: u64 = 64 * 1024 * 1024;
/// Most memory one thumbnail's decoding may take.
pub const THUMB_MEMORY: u64 = 192 * 1024 * 1024;
/// Widest and tallest image decoded.
pub const THUMB_MAX_SIDE: u32 = 12_000;
/// Longest a thumbnail is waited for.
pub const THUMB_TIME: Duration = Duration::from_secs(10);
/// Thumbnails made at once (each within [`THUMB_MEMORY`]).
pub const THUMB_AT_ONCE: usize = 2;
/// A thumbnail's longest side.
pub const THUMB_SIDE: u32 = 256;
/// Largest Markdown file rendered.
pub const RENDER_MAX: u64 = 2 * 1024 * 1024;
/// Markdown files rendered at once.
pub const RENDER_AT_ONCE: usize = 2;

/// Kinds of image a thumbnail is made of, by name.
fn thumbnailable(name: &str) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    matches!(
        ext.as_deref(),
        Some("png" | "jpg" | "jpeg" | "gif" | "webp")
    )
}

fn thumbs_dir(web: &Web) -> PathBuf {
    web.ctx.config.state_dir.join("thumbs")
}

fn limiter() -> Arc<Semaphore> {
    static AT_ONCE: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    AT_ONCE
        .get_or_init(|| Arc::new(Semaphore::new(THUMB_AT_ONCE)))
        .clone()
}

/// A lock per thumbnail being made.
fn in_flight(key: &str) -> Arc<tokio::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static MAKING: std::sync::OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        std::sync::OnceLock::new();
    let mut map = MAKING
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Locks nobody holds any more are let go as others come.
    map.retain(|_, l| Arc::strong_count(l) > 1);
    map.entry(key.to_string()).or_default().clone()
}

fn image_answer(bytes: Vec<u8>, etag: &str) -> Response {
    let mut res = (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        bytes,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

fn no_thumbnail(why: &str) -> Response {
    error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("no thumbnail: {why}"),
    )
}

/// `GET FILE?thumb`: a JPEG at most [`THUMB_SIDE`] pixels a side, or 415
/// saying why there is none. The caller has checked the right to read.
pub async fn thumbnail(web: &Web, rel: RelPath) -> Response {
    let name = rel.file_name().unwrap_or("").to_string();
    if !thumbnailable(&name) {
        return no_thumbnail("not an image ferry makes thumbnails of");
    }
    let r = rel.clone();
    let described = web
        .ctx
        .files
        .quick(move |s| {
            let (file, entry) = s.open_read(&r)?;
            Ok((entry, crate::files::digests::identity(&*file)))
        })
        .await;
    let (entry, identity) = match described {
        Ok(x) => x,
        Err(FilesError::Forbidden(_) | FilesError::IsADirectory(_)) => {
            return no_thumbnail("not a file");
        }
        Err(e) => return failure(e),
    };
    if entry.size > THUMB_MAX_FILE {
        return no_thumbnail("the file is too large");
    }
    // Any change misses: the status-change time and inode are in the key
    // where the storage has them.
    let mtime = entry.mtime.map_or((0, 0), |m| (m.secs, m.nanos));
    let key = hex(&sha2::Sha256::digest(format!(
        "{}\0{}\0{}.{}\0{}",
        rel,
        entry.size,
        mtime.0,
        mtime.1,
        identity.map(|i| i.tag()).unwrap_or_default()
    )));
    let dir = thumbs_dir(web).join(&key[..2]);
    let done = dir.join(format!("{key}.jpg"));
    let failed = dir.join(format!("{key}.none"));
    let cached = || async {
        if let Ok(bytes) = tokio::fs::read(&done).await {
            return Some(image_answer(bytes, &key));
        }
        if let Ok(why) = tokio::fs::read_to_string(&failed).await {
            return Some(no_thumbnail(why.trim()));
        }
        None
    };
    if let Some(r) = cached().await {
        return r;
    }
    // One decode per image, however many ask at once: the others wait
    // for it and take what it kept.
    let one = in_flight(&key);
    let _mine = one.lock().await;
    if let Some(r) = cached().await {
        return r;
    }
    let Ok(permit) = limiter().acquire_owned().await else {
        return no_thumbnail("the server is stopping");
    };
    let ctx = web.ctx.clone();
    let job = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let made = ctx
            .files
            .store()
            .open_read(&rel)
            .map_err(|e| e.to_string())
            .and_then(|(file, _)| make_thumbnail(BufReader::new(file)));
        // Kept for next time, either way: a file that fails fails again.
        let _ = std::fs::create_dir_all(&dir);
        let (path, bytes) = match &made {
            Ok(jpeg) => (&done, jpeg.clone()),
            Err(why) => (&failed, why.clone().into_bytes()),
        };
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
        made
    });
    match tokio::time::timeout(THUMB_TIME, job).await {
        Ok(Ok(Ok(jpeg))) => image_answer(jpeg, &key),
        Ok(Ok(Err(why))) => no_thumbnail(&why),
        Ok(Err(_)) => no_thumbnail("the decoder failed"),
        Err(_) => no_thumbnail("the image took too long to decode"),
    }
}

/// Decodes an image within the budgets and scales it down to a JPEG.
pub fn make_thumbnail<R: std::io::BufRead + std::io::Seek>(file: R) -> Result<Vec<u8>, String> {
    let mut reader = image::ImageReader::new(file)
        .with_guessed_format()
        .map_err(|e| format!("unreadable: {e}"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(THUMB_MAX_SIDE);
    limits.max_image_height = Some(THUMB_MAX_SIDE);
    limits.max_alloc = Some(THUMB_MEMORY);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => "the image is larger than the server decodes".to_string(),
        image::ImageError::Unsupported(_) => "not an image format ferry reads".to_string(),
        e => format!("the image is damaged: {e}"),
    })?;
    let small = img.thumbnail(THUMB_SIDE, THUMB_SIDE).into_rgb8();
    let mut out = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82)
        .encode_image(&small)
        .map_err(|e| format!("cannot encode: {e}"))?;
    Ok(out.into_inner())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET FILE?render`: Markdown as an HTML fragment, with any raw HTML in
/// it shown as text and links only to the web (or this server). The
/// caller has checked the right to read.
pub async fn render(web: &Web, rel: RelPath) -> Response {
    // Rendering a hostile file takes memory (deep nesting): a few at once.
    static AT_ONCE: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    let turns = AT_ONCE.get_or_init(|| Arc::new(Semaphore::new(RENDER_AT_ONCE)));
    let Ok(Ok(_turn)) = tokio::time::timeout(THUMB_TIME, turns.clone().acquire_owned()).await
    else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many previews being made; try again shortly",
        );
    };
    let r = rel.clone();
    let text = web
        .ctx
        .files
        .blocking(move |s| {
            let (file, entry) = s.open_read(&r)?;
            if entry.size > RENDER_MAX {
                return Err(FilesError::TooLarge(format!(
                    "{r} is larger than the {RENDER_MAX} bytes rendered"
                )));
            }
            let mut buf = Vec::with_capacity(entry.size as usize);
            std::io::Read::read_to_end(&mut std::io::Read::take(file, RENDER_MAX), &mut buf)
                .map_err(|e| FilesError::from_io(&r, e))?;
            Ok(String::from_utf8_lossy(&buf).into_owned())
        })
        .await;
    match text {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                // Opened on its own, it is inert.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "sandbox; default-src 'none'",
                ),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            markdown(&text),
        )
            .into_response(),
        Err(e) => failure(e),
    }
}

/// Markdown to HTML: raw HTML becomes text, and a link or image leads
/// only to http(s), mail, a fragment or a path.
pub fn markdown(text: &str) -> String {
    use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
    let safe = |url: CowStr<'_>| -> CowStr<'static> {
        let u = url.trim_start().to_ascii_lowercase();
        let scheme = u.split_once(':').map(|(s, _)| s);
        let ok = match scheme {
            Some(s) if !s.contains(['/', '?', '#']) => matches!(s, "http" | "https" | "mailto"),
            _ => true,
        };
        if ok {
            CowStr::from(url.into_string())
        } else {
            CowStr::from("#")
        }
    };
    // No footnotes: their ids would stand beside the page's own.
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(text, opts).map(|ev| match ev {
        Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            // An image loads by itself when shown: never one that asks
            // this server for work (an archive, a search).
            dest_url: if dest_url.contains('?') {
                CowStr::from("#")
            } else {
                safe(dest_url)
            },
            title,
            id,
        }),
        e => e,
    });
    let mut out = String::with_capacity(text.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_keeps_no_raw_html_and_no_script_links() {
        let out = markdown(
            "# Title\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n\
             [a](javascript:alert(1)) [b](JaVaScRiPt:x) [c](https://example.org/) \
             [d](data:text/html,x) [e](sub/page.md) ![i](vbscript:x)\n\n*em* `code`",
        );
        assert!(out.contains("<h1>Title</h1>"), "{out}");
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("<img src=x"), "{out}");
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert!(!out.to_ascii_lowercase().contains("javascript:"), "{out}");
        assert!(!out.contains("data:text"), "{out}");
        assert!(!out.contains("vbscript"), "{out}");
        assert!(out.contains("href=\"https://example.org/\""), "{out}");
        assert!(out.contains("href=\"sub/page.md\""), "{out}");
        assert!(out.contains("<em>em</em>") && out.contains("<code>code</code>"));
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 30]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn thumbnails_are_small_jpegs_and_bad_images_are_refused() {
        let jpeg = make_thumbnail(Cursor::new(png(1000, 500))).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (THUMB_SIDE, THUMB_SIDE / 2));
        assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
        let mut cut = png(300, 300);
        cut.truncate(cut.len() / 2);
        assert!(make_thumbnail(Cursor::new(cut)).is_err());
        assert!(make_thumbnail(Cursor::new(b"not an image".to_vec())).is_err());
        assert!(thumbnailable("a.JPG") && !thumbnailable("a.svg") && !thumbnailable("png"));
    }
}
