//! Resumable uploads with the tus 1.0 protocol (core, creation,
//! creation-with-upload, termination), so existing tus clients (tus-js-client,
//! tuspy, …) work, and the page's uploads survive a dropped connection or a
//! server restart.
//!
//! An upload's URL carries what it is for (target path, length, whether it
//! may replace a file), and its bytes live in the same hidden partial file
//! as a native upload of that target: the server keeps no other state, and
//! abandoned uploads are swept like any partial file.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::auth;
use super::paths::{blocking, failure};
use super::upload::{HttpBody, broke, upload_failed};
use super::{Web, error};
use crate::access::Action;
use crate::files::name::RelPath;
use crate::files::{FilesError, OnBreak, Upload, UploadOptions};
use crate::text::escape;

/// The protocol version spoken.
pub const VERSION: &str = "1.0.0";
/// Extensions supported.
pub const EXTENSIONS: &str = "creation,creation-with-upload,termination";
const BASE: &str = "/.ferry/tus/";

/// What an upload URL stands for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Ticket {
    /// Target path.
    p: String,
    /// Total length.
    n: u64,
    /// May replace an existing file.
    #[serde(default)]
    o: bool,
    /// Which partial file it is (`Part::generation`): a creation of the
    /// same target and length that started over since has another, and
    /// this id then names no upload, so that its client never goes on
    /// from (or removes) bytes it did not send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    g: Option<String>,
}

impl Ticket {
    /// The upload's id: the ticket, and a MAC of it under the server's
    /// upload key, so that only the server makes them. A forged id (a
    /// chosen target or length, to read another upload's progress or to
    /// finish it short) is not found.
    fn id(&self, key: &[u8]) -> String {
        crate::secret::seal(key, &serde_json::to_vec(self).unwrap_or_default())
    }

    fn parse(id: &str, key: &[u8]) -> Option<(Ticket, RelPath)> {
        let body = crate::secret::unseal(key, id, 8192)?;
        let t: Ticket = serde_json::from_slice(&body).ok()?;
        let rel = RelPath::parse(&t.p).ok()?;
        (!rel.is_root()).then_some((t, rel))
    }
}

fn tus_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert("tus-resumable", HeaderValue::from_static(VERSION));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn fail(status: StatusCode, msg: impl Into<String>) -> Response {
    tus_headers(error(status, msg))
}

/// A number header: digits alone (tus 1.0: a non-negative integer), given
/// once. Two values, or a sign, are not guessed at.
fn num(h: &HeaderMap, name: &str) -> Result<Option<u64>, Response> {
    let bad = || fail(StatusCode::BAD_REQUEST, format!("bad {name}"));
    let values: Vec<_> = h.get_all(name).iter().collect();
    let v = match values[..] {
        [] => return Ok(None),
        [v] => v,
        _ => return Err(bad()),
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse().map(Some).map_err(|_| bad())
}

/// Upload-Metadata: `key base64, key base64, key`, given once, each key
/// once (tus 1.0).
fn metadata(h: &HeaderMap) -> Result<Vec<(String, String)>, Response> {
    let values: Vec<_> = h.get_all("upload-metadata").iter().collect();
    let raw = match values[..] {
        [] => return Ok(vec![]),
        [raw] => raw,
        _ => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "Upload-Metadata more than once",
            ));
        }
    };
    let raw = raw
        .to_str()
        .map_err(|_| fail(StatusCode::BAD_REQUEST, "bad Upload-Metadata"))?;
    let mut out = vec![];
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once(' ').unwrap_or((pair, ""));
        let v = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                fail(
                    StatusCode::BAD_REQUEST,
                    format!("bad Upload-Metadata value for {k}"),
                )
            })?;
        if out.iter().any(|(seen, _)| seen == k) {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("Upload-Metadata names {k} more than once"),
            ));
        }
        out.push((k.to_string(), v));
    }
    Ok(out)
}

/// The target of a new upload: metadata `path`, or `folder` joined with
/// `relativePath`, `filename` or `name`.
fn target_of(meta: &[(String, String)]) -> Result<RelPath, Response> {
    let get = |k: &str| {
        meta.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let joined;
    let path = match get("path") {
        Some(p) => p,
        None => {
            let name = get("relativePath")
                .filter(|s| !s.is_empty())
                .or_else(|| get("filename"))
                .or_else(|| get("name"))
                .ok_or_else(|| {
                    fail(
                        StatusCode::BAD_REQUEST,
                        "Upload-Metadata needs path or filename",
                    )
                })?;
            joined = format!("{}/{}", get("folder").unwrap_or(""), name);
            &joined
        }
    };
    let rel = RelPath::parse(path).map_err(|e| fail(StatusCode::BAD_REQUEST, e.to_string()))?;
    if rel.is_root() {
        return Err(fail(StatusCode::BAD_REQUEST, "an upload needs a file name"));
    }
    Ok(rel)
}

fn version_ok(h: &HeaderMap, method: &Method) -> Result<(), Response> {
    if method == Method::OPTIONS {
        return Ok(());
    }
    match h.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(VERSION) => Ok(()),
        _ => {
            let mut r = fail(
                StatusCode::PRECONDITION_FAILED,
                format!("this server speaks tus {VERSION}"),
            );
            r.headers_mut()
                .insert("tus-version", HeaderValue::from_static(VERSION));
            Err(r)
        }
    }
}

fn options(web: &Web) -> Response {
    let mut res = tus_headers(StatusCode::NO_CONTENT.into_response());
    let h = res.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(VERSION));
    h.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    if let Some(max) = web.ctx.config.max_upload {
        if let Ok(v) = HeaderValue::from_str(&max.to_string()) {
            h.insert("tus-max-size", v);
        }
    }
    res
}

/// `/.ferry/tus/`: OPTIONS, and POST to create an upload.
pub async fn collection(State(web): State<Web>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(r) = version_ok(&parts.headers, &parts.method) {
        return r;
    }
    match parts.method {
        Method::OPTIONS => options(&web),
        Method::POST => create(&web, &parts.headers, body).await,
        _ => fail(StatusCode::METHOD_NOT_ALLOWED, "OPTIONS or POST here"),
    }
}

async fn create(web: &Web, h: &HeaderMap, body: Body) -> Response {
    if let Err(r) = auth::scripted(h) {
        return tus_headers(r);
    }
    let who = match auth::who(web, h).await {
        Ok(w) => w,
        Err(r) => return tus_headers(r),
    };
    if h.contains_key("upload-defer-length") {
        return fail(
            StatusCode::BAD_REQUEST,
            "Upload-Length is needed (no deferred lengths)",
        );
    }
    let length = match num(h, "upload-length") {
        Ok(Some(n)) => n,
        Ok(None) => return fail(StatusCode::BAD_REQUEST, "Upload-Length is needed"),
        Err(r) => return r,
    };
    // A body announced longer than the upload is refused before anything
    // is begun: a creation starts the target's upload over, and this one
    // could never be taken whole.
    let announced = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > length) {
        return fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is longer than Upload-Length ({length} bytes)"),
        );
    }
    let meta = match metadata(h) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let rel = match target_of(&meta) {
        Ok(r) => r,
        Err(r) => return r,
    };
    // `overwrite` is a yes or a no; anything else is not taken for either.
    let overwrite = match meta.iter().find(|(k, _)| k == "overwrite") {
        None => false,
        Some((_, v)) => match v.as_str() {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "overwrite in Upload-Metadata is 1, true, 0 or false",
                );
            }
        },
    };
    // Folders in the path are made as needed (a folder upload's files).
    let opts = UploadOptions {
        overwrite,
        on_break: OnBreak::Keep,
        make_parents: true,
        ..UploadOptions::new(Some(length))
    };
    let upload = match web.ctx.files.begin_upload(who.id, &rel, opts).await {
        Ok(u) => u,
        Err(FilesError::Exists(_)) => {
            return fail(
                StatusCode::CONFLICT,
                format!("{rel} exists (set overwrite in Upload-Metadata to replace it)"),
            );
        }
        Err(e) => return tus_headers(upload_failed(h, e)),
    };
    let ticket = Ticket {
        p: rel.to_string(),
        n: length,
        o: upload.replaces(),
        g: upload.generation(),
    };
    let key = match web.ctx.upload_key() {
        Ok(k) => k,
        Err(e) => return tus_headers(upload_failed(h, e)),
    };
    let location = format!("{BASE}{}", ticket.id(&key));
    tracing::info!(path = %escape(&rel.to_string()), length, "tus upload created");
    // creation-with-upload: the first bytes may come with the POST.
    let with_body = h
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/offset+octet-stream");
    let offset = if with_body || length == 0 {
        match append(h, upload, &ticket, 0, body).await {
            Ok(o) => o,
            // What was kept of a body refused on the way (one past the
            // length, one that stalled) is where the client goes on; an
            // upload that was let go (its finish refused: the target
            // appeared meanwhile) is named nowhere.
            Err(mut r) => {
                let (p, n) = (rel.clone(), length);
                let kept = blocking(web, move |s| s.upload_progress(&p, n)).await;
                if let (Ok(Some(_)), Ok(v)) = (kept, HeaderValue::from_str(&location)) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                return r;
            }
        }
    } else {
        upload.keep();
        0
    };
    let mut res = tus_headers(StatusCode::CREATED.into_response());
    let hs = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        hs.insert(header::LOCATION, v);
    }
    hs.insert("upload-offset", HeaderValue::from(offset));
    res
}

/// Writes a body at `offset` and moves the file into place once whole.
/// Gives the new offset.
async fn append(
    h: &HeaderMap,
    mut upload: Upload,
    ticket: &Ticket,
    offset: u64,
    body: Body,
) -> Result<u64, Response> {
    if upload.held() != offset {
        let held = upload.held();
        // Nothing of it changes: the client asks HEAD and goes on.
        upload.keep();
        return Err(fail(
            StatusCode::CONFLICT,
            format!("the upload is at byte {held}, not {offset}"),
        ));
    }
    if let Err(e) = upload.start(offset).await {
        return Err(fail(StatusCode::CONFLICT, e.to_string()));
    }
    // A body that breaks off is kept: the client resumes from what HEAD
    // then says.
    let now = upload
        .receive(&mut HttpBody(body.into_data_stream()))
        .await
        .map_err(|b| tus_headers(broke(b)))?;
    if now == ticket.n {
        upload
            .finish(None, None)
            .await
            .map_err(|e| tus_headers(upload_failed(h, e)))?;
        tracing::info!(path = %escape(&ticket.p), "tus upload complete");
    } else {
        upload.keep();
    }
    Ok(now)
}

/// `/.ferry/tus/ID`: HEAD (where is it), PATCH (more bytes), DELETE
/// (give up), OPTIONS.
pub async fn upload(State(web): State<Web>, Path(id): Path<String>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    if let Err(r) = version_ok(h, &parts.method) {
        return r;
    }
    if parts.method == Method::OPTIONS {
        return options(&web);
    }
    let key = match web.ctx.upload_key() {
        Ok(k) => k,
        Err(e) => return tus_headers(upload_failed(h, e)),
    };
    let Some((ticket, rel)) = Ticket::parse(&id, &key) else {
        return fail(StatusCode::NOT_FOUND, "no such upload");
    };
    if parts.method != Method::HEAD {
        if let Err(r) = auth::same_origin(h) {
            return tus_headers(r);
        }
    }
    let who = match auth::who(&web, h).await {
        Ok(w) => w,
        Err(r) => return tus_headers(r),
    };
    if let Err(r) = auth::allow(&who, &web, h, Action::Create, &rel) {
        return tus_headers(r);
    }
    if matches!(parts.method, Method::HEAD | Method::DELETE) {
        match web.ctx.files.superseded(&rel, ticket.g.as_deref()).await {
            Ok(false) => {}
            Ok(true) => return fail(StatusCode::NOT_FOUND, "no such upload"),
            Err(e) => return tus_headers(failure(e)),
        }
    }
    match parts.method {
        Method::HEAD => {
            let r = rel.clone();
            let n = ticket.n;
            let at = blocking(&web, move |s| s.upload_progress(&r, n)).await;
            match at {
                Ok(Some(offset)) => {
                    let mut res = tus_headers(StatusCode::OK.into_response());
                    let hs = res.headers_mut();
                    hs.insert("upload-offset", HeaderValue::from(offset));
                    hs.insert("upload-length", HeaderValue::from(ticket.n));
                    res
                }
                Ok(None) => fail(StatusCode::NOT_FOUND, "no such upload"),
                Err(e) => tus_headers(failure(e)),
            }
        }
        Method::PATCH => {
            if h.get(header::CONTENT_TYPE)
                .is_none_or(|v| v != "application/offset+octet-stream")
            {
                return fail(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "PATCH needs Content-Type: application/offset+octet-stream",
                );
            }
            let offset = match num(h, "upload-offset") {
                Ok(Some(o)) => o,
                Ok(None) => return fail(StatusCode::BAD_REQUEST, "Upload-Offset is needed"),
                Err(r) => return r,
            };
            let opts = UploadOptions {
                overwrite: ticket.o,
                on_break: OnBreak::Keep,
                ..UploadOptions::new(Some(ticket.n))
            };
            let files = &web.ctx.files;
            let upload = match files
                .continue_upload(who.id, &rel, opts, ticket.g.as_deref())
                .await
            {
                Ok(u) => u,
                Err(FilesError::Busy(m)) => return fail(StatusCode::CONFLICT, m),
                Err(FilesError::NotFound(_)) => {
                    return fail(StatusCode::NOT_FOUND, "no such upload");
                }
                Err(e) => return tus_headers(upload_failed(h, e)),
            };
            match append(h, upload, &ticket, offset, body).await {
                Ok(now) => {
                    let mut res = tus_headers(StatusCode::NO_CONTENT.into_response());
                    res.headers_mut()
                        .insert("upload-offset", HeaderValue::from(now));
                    res
                }
                Err(r) => r,
            }
        }
        Method::DELETE => {
            let r = rel.clone();
            match blocking(&web, move |s| s.remove_partial(&r)).await {
                Ok(true) => tus_headers(StatusCode::NO_CONTENT.into_response()),
                Ok(false) => fail(StatusCode::NOT_FOUND, "no such upload"),
                Err(e) => tus_headers(failure(e)),
            }
        }
        _ => fail(
            StatusCode::METHOD_NOT_ALLOWED,
            "HEAD, PATCH, DELETE or OPTIONS here",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_and_refuse_bad_paths() {
        let t = Ticket {
            p: "a/b c.txt".into(),
            n: 5,
            o: false,
            g: Some("803.1a2b.g5f".into()),
        };
        let key = b"the server's upload key";
        let (back, rel) = Ticket::parse(&t.id(key), key).unwrap();
        assert_eq!(back, t);
        assert_eq!(rel.parts(), ["a", "b c.txt"]);
        let evil = Ticket {
            p: "../x".into(),
            n: 1,
            o: false,
            g: None,
        };
        assert!(Ticket::parse(&evil.id(key), key).is_none());
        assert!(Ticket::parse("!!!", key).is_none());
        // Made under another key, or changed: not found.
        assert!(Ticket::parse(&t.id(b"another key"), key).is_none());
        let shorter = Ticket { n: 2, ..t.clone() };
        let (_, tag) = t
            .id(key)
            .split_once('.')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap();
        let (body, _) = shorter
            .id(key)
            .split_once('.')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap();
        assert!(Ticket::parse(&format!("{body}.{tag}"), key).is_none());
        let unsigned = t.id(key).split_once('.').unwrap().0.to_string();
        assert!(Ticket::parse(&unsigned, key).is_none());
    }

    #[test]
    fn metadata_names_the_target() {
        let mut h = HeaderMap::new();
        // filename "x.bin", folder "in"
        h.insert(
            "upload-metadata",
            HeaderValue::from_static("filename eC5iaW4=,folder aW4=,empty"),
        );
        let m = metadata(&h).unwrap();
        assert_eq!(target_of(&m).unwrap().parts(), ["in", "x.bin"]);
        h.insert("upload-metadata", HeaderValue::from_static("filename Li4="));
        let m = metadata(&h).unwrap();
        assert!(target_of(&m).is_err());
        h.insert("upload-metadata", HeaderValue::from_static("filename !!"));
        assert!(metadata(&h).is_err());
    }
}
