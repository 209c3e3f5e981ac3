//! Files over HTTP: every method on a path below the served folder, on the
//! same [`Files`](crate::files::Files) (jail, name rules,
//! hidden partial files, no-clobber moves) and permissions as the native
//! door.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::auth::{self, Who};
use super::cond::{self, Conditions, Span, Validators, Verdict};
use super::media::content_type;
use super::paths::{blocking, disposition, failure, target, url_of};
use super::upload::{HttpBody, broke, upload_failed};
use super::{Web, error};
use crate::access::Action;
use crate::files::name::RelPath;
use crate::files::pipe::spawn_plain_reader;
use crate::files::{FilesError, UploadOptions};
use crate::text::escape;
use crate::wire::messages::{Entry, EntryKind};

/// Files up to this size are read whole with their description.
const SMALL_FILE: u64 = 64 * 1024;

/// Methods every path answers.
pub const ALLOW: &str = "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, MOVE";

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

/// OPTIONS: what every path answers.
pub(super) fn options() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::ALLOW, ALLOW), (header::ACCEPT_RANGES, "bytes")],
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
    // a sandbox: an uploaded HTML file cannot act as the visitor.
    if matches!(
        essence,
        "text/html" | "image/svg+xml" | "application/xhtml+xml" | "text/xml" | "application/xml"
    ) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
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
    if has_query(uri, "tar") {
        return super::page::archive(web, rel).await;
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
    let r = rel.clone();
    let mut entries = match blocking(web, move |s| s.list(&r)).await {
        Ok(e) => e,
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
            "permissions": who.perms,
            "authenticated": who.authed,
        }))
        .into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return res;
    }
    super::page::folder_page(web, who, &rel, &entries)
}

/// The size a request declares.
fn declared_size(headers: &HeaderMap) -> Result<Option<u64>, Response> {
    let declared = match header_str(headers, header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| error(StatusCode::BAD_REQUEST, "bad Content-Length"))?,
        ),
    };
    Ok(declared)
}

/// PUT: a whole file.
pub(super) async fn put(
    web: &Web,
    who: &Who,
    headers: &HeaderMap,
    rel: RelPath,
    trailing: bool,
    body: Body,
) -> Response {
    // A name that ends in `/` is a folder's, which PUT cannot make; a
    // partial PUT (RFC 9110 §14.5)
    // is not served, and would otherwise replace the whole file with its
    // part.
    if trailing {
        return error(
            StatusCode::BAD_REQUEST,
            "PUT needs a file's path (use MKCOL for a folder)",
        );
    }
    if headers.contains_key(header::CONTENT_RANGE) {
        return error(
            StatusCode::BAD_REQUEST,
            "partial PUT (Content-Range) is not supported; send the whole file",
        );
    }
    if let Err(r) = auth::allow(who, web, headers, Action::Create, &rel) {
        return r;
    }
    let declared = match declared_size(headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let r = rel.clone();
    let current = match blocking(web, move |s| s.stat(&r)).await {
        Ok(e) if e.kind == EntryKind::Dir => {
            return error(StatusCode::CONFLICT, format!("{rel} is a folder"));
        }
        Ok(e) => Some(e),
        Err(FilesError::NotFound(_)) => None,
        Err(e) => return failure(e),
    };
    let v = current.as_ref().map(validators);
    if cond::evaluate(&conditions(headers), v.as_ref(), false) == Verdict::Failed {
        return error(StatusCode::PRECONDITION_FAILED, "precondition failed");
    }
    // PUT replaces what is there; anything short of the whole body
    // leaves nothing behind.
    let opts = UploadOptions {
        overwrite: current.is_some(),
        ..UploadOptions::new(declared)
    };
    let mut upload = match web.ctx.files.begin_upload(who.id, &rel, opts).await {
        Ok(u) => u,
        Err(e) => return upload_failed(headers, e),
    };
    let replaces = upload.replaces();
    if let Err(e) = upload.start(0).await {
        return failure(e);
    }
    if let Err(b) = upload.receive(&mut HttpBody(body.into_data_stream())).await {
        return broke(b);
    }
    if let Err(e) = upload.finish(None, None).await {
        return upload_failed(headers, e);
    }
    tracing::info!(path = %escape(&rel.to_string()), "uploaded over http");
    let r = rel.clone();
    let etag = blocking(web, move |s| s.stat(&r))
        .await
        .map(|e| validators(&e).etag)
        .unwrap_or_default();
    let status = if replaces {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    };
    let mut res = Response::builder().status(status);
    if !etag.is_empty() {
        res = res.header(header::ETAG, etag);
    }
    if !replaces {
        res = res.header(header::LOCATION, url_of(&rel, false));
    }
    res.body(Body::empty()).unwrap_or_default()
}

/// DELETE: a file or a folder and all it holds.
pub(super) async fn delete(web: &Web, who: &Who, headers: &HeaderMap, rel: RelPath) -> Response {
    if let Err(r) = auth::allow(who, web, headers, Action::Delete, &rel) {
        return r;
    }
    // The name itself is what goes: a symlink is removed, never followed,
    // as on every door (Storage::remove).
    let r = rel.clone();
    let current = match blocking(web, move |s| s.stat_name(&r)).await {
        Ok(e) => e,
        Err(e) => return failure(e),
    };
    if current.kind != EntryKind::Dir
        && cond::evaluate(&conditions(headers), Some(&validators(&current)), false)
            == Verdict::Failed
    {
        return error(StatusCode::PRECONDITION_FAILED, "precondition failed");
    }
    let r = rel.clone();
    match blocking(web, move |s| s.remove(&r, true)).await {
        Ok(()) => {
            tracing::info!(path = %escape(&rel.to_string()), "deleted over http");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => failure(e),
    }
}

/// MKCOL: a folder.
pub(super) async fn mkcol(
    web: &Web,
    who: &Who,
    headers: &HeaderMap,
    rel: RelPath,
    body: Body,
) -> Response {
    if let Err(r) = auth::allow(who, web, headers, Action::Create, &rel) {
        return r;
    }
    match axum::body::to_bytes(body, 1).await {
        Ok(b) if b.is_empty() => {}
        _ => {
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "MKCOL takes no body");
        }
    }
    let r = rel.clone();
    match blocking(web, move |s| s.mkdir(&r)).await {
        Ok(()) => (
            StatusCode::CREATED,
            [(header::LOCATION, url_of(&rel, true))],
        )
            .into_response(),
        Err(FilesError::Exists(m)) => error(StatusCode::METHOD_NOT_ALLOWED, m),
        Err(FilesError::NotFound(m) | FilesError::NotADirectory(m)) => {
            error(StatusCode::CONFLICT, format!("no such folder: {m}"))
        }
        Err(e) => failure(e),
    }
}

/// The served path a `Destination` header names (a URL of this server, or
/// an absolute path).
fn destination(headers: &HeaderMap) -> Result<RelPath, Response> {
    let raw = header_str(headers, header::HeaderName::from_static("destination"))
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "MOVE needs a Destination header"))?;
    let path = if raw.starts_with('/') && !raw.starts_with("//") {
        raw.to_string()
    } else {
        let uri: Uri = raw
            .parse()
            .map_err(|_| error(StatusCode::BAD_REQUEST, "bad Destination"))?;
        let host = header_str(headers, header::HOST);
        match (uri.authority(), host) {
            (Some(a), Some(h)) if a.as_str().eq_ignore_ascii_case(h) => {}
            _ => {
                return Err(error(
                    StatusCode::BAD_GATEWAY,
                    "Destination is on another server",
                ));
            }
        }
        uri.path().to_string()
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    target(path).map(|(r, _)| r)
}

/// MOVE: a rename within the served folder.
pub(super) async fn mv(web: &Web, who: &Who, headers: &HeaderMap, rel: RelPath) -> Response {
    if let Err(r) = auth::allow(who, web, headers, Action::Move, &rel) {
        return r;
    }
    let to = match destination(headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = auth::allow(who, web, headers, Action::Move, &to) {
        return r;
    }
    // RFC 4918: Overwrite defaults to T.
    let overwrite = !header_str(headers, header::HeaderName::from_static("overwrite"))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("f"));
    let t = to.clone();
    let existed = blocking(web, move |s| Ok(s.exists(&t)))
        .await
        .unwrap_or(false);
    if existed && !overwrite {
        return error(
            StatusCode::PRECONDITION_FAILED,
            format!("{to} exists (send Overwrite: T to replace it)"),
        );
    }
    let (from, dest) = (rel.clone(), to.clone());
    match blocking(web, move |s| s.rename(&from, &dest, overwrite)).await {
        Ok(()) => {
            tracing::info!(from = %escape(&rel.to_string()), to = %escape(&to.to_string()), "moved over http");
            if existed {
                StatusCode::NO_CONTENT.into_response()
            } else {
                (
                    StatusCode::CREATED,
                    [(header::LOCATION, url_of(&to, false))],
                )
                    .into_response()
            }
        }
        Err(FilesError::NotFound(m)) => error(StatusCode::NOT_FOUND, m),
        Err(e) => failure(e),
    }
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
