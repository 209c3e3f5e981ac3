//! Files over HTTP: every method on a path below the served folder, on the
//! same [`Files`](crate::files::Files) (jail, name rules,
//! hidden partial files, no-clobber moves) and permissions as the native
//! door.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::archive::Format;
use super::auth::{self, Who};
use super::cond::{self, Conditions, Span, Validators, Verdict};
use super::media::content_type;
use super::paths::{disposition, failure, target, url_of};
use super::{Web, error};
use crate::access::Action;
use crate::files::FilesError;
use crate::files::name::RelPath;
use crate::files::pipe::spawn_plain_reader;
use crate::wire::messages::{Entry, EntryKind};

/// Files up to this size are read whole with their description.
const SMALL_FILE: u64 = 64 * 1024;

/// Methods every path answers.
pub const ALLOW: &str =
    "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK";

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn conditions(h: &HeaderMap) -> Conditions<'_> {
    Conditions {
        if_match: header_str(h, header::IF_MATCH),
        if_none_match: header_str(h, header::IF_NONE_MATCH),
        if_modified_since: header_str(h, header::IF_MODIFIED_SINCE),
        if_unmodified_since: header_str(h, header::IF_UNMODIFIED_SINCE),
        if_range: header_str(h, header::IF_RANGE),
        range: header_str(h, header::RANGE),
    }
}

fn validators(e: &Entry) -> Validators {
    Validators::new(e.size, e.mtime.map(|m| (m.secs, m.nanos)))
}

fn has_query(uri: &Uri, key: &str) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some(key)))
}

/// Every value of `key` in the query, decoded (`+` is a space, as forms
/// send it); values that are not UTF-8 are left out.
pub(super) fn query_values(uri: &Uri, key: &str) -> Vec<String> {
    let Some(q) = uri.query() else {
        return Vec::new();
    };
    q.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then(|| v.replace('+', " "))
        })
        .filter_map(|v| {
            percent_encoding::percent_decode_str(&v)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
        .collect()
}

/// OPTIONS: what every path answers.
pub(super) fn options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ALLOW, ALLOW),
            (header::ACCEPT_RANGES, "bytes"),
            (header::HeaderName::from_static("dav"), "1, 2"),
            (header::HeaderName::from_static("ms-author-via"), "DAV"),
        ],
    )
        .into_response()
}

/// GET and HEAD: a file (ranges, conditions), or a folder's listing.
#[allow(clippy::too_many_arguments)]
pub(super) async fn get(
    web: &Web,
    who: &Who,
    uri: &Uri,
    headers: &HeaderMap,
    rel: RelPath,
    trailing: bool,
    head: bool,
) -> Response {
    if let Err(r) = auth::allow(who, web, headers, Action::Read, &rel) {
        return r;
    }
    if let Some(r) = preview(web, uri, &rel, trailing).await {
        return r;
    }
    // Open, describe, and for a small file read it whole, in one call to
    // the storage: on local disk right here on the runtime's thread, as
    // nginx does in its event loop (from the page cache these are a few
    // microseconds, while a hand-off to a blocking thread and back costs
    // more than the rest of a small request: 10.7k requests/s with three
    // hand-offs, 18.8k with one). Large bodies stream from a disk thread.
    let r = rel.clone();
    let found = web.ctx.files.quick(move |s| open_small(s, &r)).await;
    let (file, entry, small) = match found {
        // A file named as a folder (`/file.txt/`) is not there, as on
        // any web server.
        Ok(Some(_)) if trailing && !rel.is_root() => {
            return error(
                StatusCode::NOT_FOUND,
                format!("{rel} is a file, not a folder"),
            );
        }
        Ok(Some(x)) => x,
        Ok(None) => return folder(web, who, uri, headers, rel, trailing).await,
        Err(e) => return failure(e),
    };
    let v = validators(&entry);
    let c = conditions(headers);
    // Headers go straight into a map sized for them: a builder converts
    // and re-checks each one, and a map grown one header at a time
    // rehashes as it goes.
    let mut h = HeaderMap::with_capacity(16);
    if let Ok(etag) = HeaderValue::from_str(&v.etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(lm) = v
        .last_modified()
        .and_then(|d| HeaderValue::try_from(d).ok())
    {
        h.insert(header::LAST_MODIFIED, lm);
    }
    let respond = |status: StatusCode, h: HeaderMap, body: Body| {
        let mut res = Response::new(body);
        *res.status_mut() = status;
        *res.headers_mut() = h;
        res
    };
    match cond::evaluate(&c, Some(&v), true) {
        Verdict::Proceed => {}
        Verdict::NotModified => return respond(StatusCode::NOT_MODIFIED, h, Body::empty()),
        Verdict::Failed => return error(StatusCode::PRECONDITION_FAILED, "precondition failed"),
    }
    let name = rel.file_name().unwrap_or("file");
    let essence = content_type(name);
    // Files that a browser would run as a page of this origin are shown in
    // a sandbox: an uploaded HTML file cannot act as the visitor. That is
    // HTML and every XML type (`+xml` ones too: RSS, Atom, KML, SVG, ...),
    // which a browser parses as a document whose XHTML parts run script.
    if matches!(essence, "text/html" | "text/xml" | "application/xml") || essence.ends_with("+xml")
    {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        );
    }
    // The page shows a PDF in a frame of its own (the browser's viewer);
    // no other site may frame it.
    if essence == "application/pdf" {
        h.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
    }
    let ctype = if essence.starts_with("text/") {
        HeaderValue::try_from(format!("{essence}; charset=utf-8"))
    } else {
        Ok(HeaderValue::from_static(essence))
    };
    if let Ok(ctype) = ctype {
        h.insert(header::CONTENT_TYPE, ctype);
    }
    if has_query(uri, "download") {
        if let Ok(d) = HeaderValue::try_from(disposition(name)) {
            h.insert(header::CONTENT_DISPOSITION, d);
        }
    }
    let size = entry.size;
    let (status, start, len) = match cond::span(&c, &v, size) {
        Span::Whole => (StatusCode::OK, 0, size),
        Span::Part { start, end } => {
            if let Ok(r) = HeaderValue::try_from(format!("bytes {start}-{end}/{size}")) {
                h.insert(header::CONTENT_RANGE, r);
            }
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Span::Unsatisfiable => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Body::from(format!("no such range in {size} bytes\n")))
                .unwrap_or_default();
        }
    };
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if head || len == 0 {
        return respond(status, h, Body::empty());
    }
    if let Some(all) = small {
        // The file may have changed size since it was described.
        if all.len() as u64 == entry.size {
            let part = all.slice(start as usize..(start + len) as usize);
            return respond(status, h, Body::from(part));
        }
    }
    let source = spawn_plain_reader(file, start, len);
    let stream = futures_util::stream::unfold(source, |mut s| async move {
        let item = s.next_bytes().await?;
        Some((item, s))
    })
    .fuse();
    respond(status, h, Body::from_stream(stream))
}

/// The page's views of a file (`?thumb`, `?render`), when asked for.
async fn preview(web: &Web, uri: &Uri, rel: &RelPath, trailing: bool) -> Option<Response> {
    if trailing || uri.query().is_none() {
        return None;
    }
    if has_query(uri, "thumb") {
        return Some(super::preview::thumbnail(web, rel.clone()).await);
    }
    if has_query(uri, "render") {
        return Some(super::preview::render(web, rel.clone()).await);
    }
    None
}

/// A file opened for a GET, described, and read whole when small; `None`
/// for a folder.
type Opened = Option<(crate::files::storage::Reader, Entry, Option<bytes::Bytes>)>;

fn open_small(store: &dyn crate::files::Storage, rel: &RelPath) -> Result<Opened, FilesError> {
    match store.open_read(rel) {
        Err(FilesError::IsADirectory(_)) => Ok(None),
        Err(e) => Err(e),
        Ok((mut file, entry)) => {
            let small = if entry.size <= SMALL_FILE {
                // Exactly the size just described, into a buffer that is
                // not zeroed first: one read(2) (the limit ends the read
                // without a call at EOF). A file that changed size
                // meanwhile takes the streaming path.
                let mut buf = Vec::with_capacity(entry.size as usize);
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(&mut file, entry.size),
                    &mut buf,
                )
                .ok()
                .filter(|&n| n as u64 == entry.size)
                .map(|_| bytes::Bytes::from(buf))
            } else {
                None
            };
            Ok(Some((file, entry, small)))
        }
    }
}

/// Whether a request prefers JSON to HTML.
fn wants_json(uri: &Uri, headers: &HeaderMap) -> bool {
    if has_query(uri, "json") {
        return true;
    }
    let accept = header_str(headers, header::ACCEPT).unwrap_or("");
    let json = accept.find("application/json");
    let html = accept.find("text/html");
    match (json, html) {
        (Some(j), Some(h)) => j < h,
        (Some(_), None) => true,
        _ => false,
    }
}

async fn folder(
    web: &Web,
    who: &Who,
    uri: &Uri,
    headers: &HeaderMap,
    rel: RelPath,
    trailing: bool,
) -> Response {
    for (key, format) in [("zip", Format::Zip), ("tar", Format::Tar)] {
        if has_query(uri, key) {
            let picks = query_values(uri, "pick");
            let asked = uri
                .query()
                .unwrap_or("")
                .split('&')
                .filter(|kv| kv.split('=').next() == Some("pick"))
                .count();
            if picks.len() != asked {
                return error(StatusCode::BAD_REQUEST, "a picked name is not UTF-8");
            }
            return super::archive::archive(web, who, rel, format, &picks).await;
        }
    }
    if let Some(text) = query_values(uri, "search").into_iter().next() {
        let limit = query_values(uri, "limit")
            .first()
            .and_then(|l| l.parse().ok());
        return super::search::search(web, who, rel, &text, limit);
    }
    let json = wants_json(uri, headers);
    if !json && !trailing && !rel.is_root() {
        // Relative links on the page need the slash.
        let mut to = url_of(&rel, true);
        if let Some(q) = uri.query() {
            to.push('?');
            to.push_str(q);
        }
        return (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, to)], "").into_response();
    }
    if !web.ctx.files.store().quick() {
        return if json {
            super::page::json_pages(web, who, rel).await
        } else {
            super::page::folder_page_streamed(web, who, rel).await
        };
    }
    let mut entries = match web.ctx.files.list_pages(who.id, rel.clone()).await {
        Ok(mut pages) => pages.next().await.unwrap_or_default(),
        Err(e) => return failure(e),
    };
    entries.sort_by(|a, b| {
        (b.kind == EntryKind::Dir)
            .cmp(&(a.kind == EntryKind::Dir))
            .then_with(|| a.name.cmp(&b.name))
    });
    if json {
        let mut res = axum::Json(serde_json::json!({
            "path": url_of(&rel, true),
            "entries": entries.iter().map(crate::files::entry::Shown::from).collect::<Vec<_>>(),
            "permissions": super::auth::rights_at(web, who, &rel),
            "authenticated": who.authed,
        }))
        .into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return res;
    }
    super::page::folder_page(web, who, &rel, &entries)
}

/// The served path a `Destination` header names: an absolute path, or a
/// URL of this server (one of its names, on the port the request came to).
pub(super) fn destination(
    ctx: &crate::server::Ctx,
    headers: &HeaderMap,
) -> Result<RelPath, Response> {
    let raw =
        header_str(headers, header::HeaderName::from_static("destination")).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "COPY and MOVE need a Destination header (a URL or an absolute path)",
            )
        })?;
    let path = if raw.starts_with('/') && !raw.starts_with("//") {
        raw.to_string()
    } else {
        // This server speaks HTTP alone: a URL of another scheme (`ftp://`
        // to its address and port, `file:///x` with no address at all) is
        // another server's (RFC 4918 section 9.8.5).
        let scheme = raw.split_once(':').map(|(s, _)| s).filter(|s| {
            s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if scheme
            .is_some_and(|s| !s.eq_ignore_ascii_case("http") && !s.eq_ignore_ascii_case("https"))
        {
            return Err(error(
                StatusCode::BAD_GATEWAY,
                "Destination is on another server",
            ));
        }
        let uri: Uri = raw.parse().map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                "bad Destination (a URL or an absolute path)",
            )
        })?;
        let (Some(to), Some(_)) = (uri.authority(), uri.scheme_str()) else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "bad Destination (a URL or an absolute path)",
            ));
        };
        let here = header_str(headers, header::HOST)
            .and_then(|h| h.parse::<axum::http::uri::Authority>().ok());
        let same_port = here.as_ref().is_some_and(|h| h.port_u16() == to.port_u16());
        let ours = here
            .as_ref()
            .is_some_and(|h| h.as_str().eq_ignore_ascii_case(to.as_str()))
            || (same_port && ctx.answers_to(to.host()));
        if !ours {
            return Err(error(
                StatusCode::BAD_GATEWAY,
                "Destination is on another server",
            ));
        }
        uri.path().to_string()
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    target(path).map(|(r, _)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused_and_urls_stay_on_this_host() {
        for bad in [
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/a/%2E%2E/%2e%2e/x",
            "/..%2fetc",
            "/a%5c..%5cb",
            "/a\\b",
            "//evil.example/x",
            "/a//b",
            "/%00",
            "/%ff",
            "/.x.ferry-part",
        ] {
            assert!(target(bad).is_err(), "{bad} accepted");
        }
        let (r, trailing) = target("/%252e%252e/").unwrap();
        assert_eq!(r.parts(), ["%2e%2e"]);
        assert!(trailing);
        let (r, _) = target("/caf%C3%A9/a%20b.txt").unwrap();
        assert_eq!(r.parts(), ["café", "a b.txt"]);
        assert_eq!(url_of(&r, false), "/caf%C3%A9/a%20b.txt");
        let odd = RelPath::parse("#?%/\"<x>").unwrap();
        assert_eq!(url_of(&odd, true), "/%23%3F%25/%22%3Cx%3E/");
        assert_eq!(url_of(&RelPath::root(), true), "/");
    }

    #[test]
    fn download_names_in_both_forms() {
        assert_eq!(
            disposition("naïve \"q\".txt"),
            "attachment; filename=\"na_ve _q_.txt\"; filename*=UTF-8''na%C3%AFve%20%22q%22.txt"
        );
    }
}
