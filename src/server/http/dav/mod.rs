//! The WebDAV door (RFC 4918 class 1 and 2, RFC 4331 quotas), on the web
//! door's port and paths: dav-server speaks the protocol (its XML, the
//! If headers, locks, multistatus answers), and [`fs::FerryFs`] puts it
//! on the files service, so every rule is the one every door has.
//!
//! Before dav-server sees a request, this module applies what the web
//! door applies to every change (the cross-site check, the access decision
//! answered 401 or 403 in ferry's words), refuses what dav-server would
//! take too far (an unbounded `Depth: infinity`, a body over 64 KiB,
//! XML nested deeper than [`MAX_XML_DEPTH`] or with a DTD, a `Destination`
//! on another host or with a hostile name, a partial PUT), and reads
//! `X-OC-Mtime` (the mtime rclone and ownCloud clients send).

mod call;
mod file;
mod fs;
mod locks;
pub(crate) mod props;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dav_server::DavHandler;

use super::{Web, auth, error, files, paths};
use crate::access::Action;
use crate::files::FilesError;
use crate::files::entry::Mtime;

/// Largest XML body (PROPFIND, PROPPATCH, LOCK) read.
pub(crate) const MAX_XML: usize = 64 * 1024;
/// Deepest nesting of XML elements taken.
pub(crate) const MAX_XML_DEPTH: usize = 32;

/// The WebDAV door's state: the protocol handler with its lock table, and
/// the dead properties.
pub(crate) struct Dav {
    handler: DavHandler<call::Call>,
    pub(crate) props: props::DeadProps,
}

impl std::fmt::Debug for Dav {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dav").finish_non_exhaustive()
    }
}

impl Dav {
    /// The door, keeping dead properties in `state_dir`.
    pub(crate) fn new(state_dir: &std::path::Path) -> Dav {
        let props = props::DeadProps::at(&state_dir.join("webdav-props.sqlite"));
        let handler = DavHandler::builder()
            .filesystem(Box::new(fs::FerryFs))
            .locksystem(Box::new(locks::Locks::new()))
            .build_handler();
        Dav { handler, props }
    }
}

/// What a method needs the right to do, when it changes something.
fn change(m: &Method) -> Option<Action> {
    Some(match m.as_str() {
        "PUT" | "MKCOL" | "COPY" | "LOCK" | "UNLOCK" => Action::Create,
        "DELETE" => Action::Delete,
        "MOVE" => Action::Move,
        "PROPPATCH" => Action::Replace,
        _ => return None,
    })
}

/// Answers a WebDAV request (or a PUT, DELETE or MOVE) on a path of the
/// served folder.
pub(super) async fn serve(web: &Web, who: &auth::Who, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let h = &parts.headers;
    let (rel, trailing) = match paths::target(parts.uri.path()) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let action = change(&parts.method);
    if action.is_some() {
        // Never on another site's behalf.
        if let Err(r) = auth::same_origin(h) {
            return r;
        }
    }
    // Asked here first so that a refusal says why, and a client without
    // the token is asked for it (401) on a write, not on the mount.
    if let Err(r) = auth::allow(who, web, h, action.unwrap_or(Action::Read), &rel) {
        return r;
    }
    let put = parts.method == Method::PUT;
    if put && trailing {
        return error(
            StatusCode::BAD_REQUEST,
            "PUT needs a file's path (use MKCOL for a folder)",
        );
    }
    if put && h.contains_key(header::CONTENT_RANGE) {
        return error(
            StatusCode::BAD_REQUEST,
            "partial PUT (Content-Range) is not supported; send the whole file",
        );
    }
    if parts.method.as_str() == "PROPFIND" && depth_infinity(h) {
        return finite_depth();
    }
    if matches!(parts.method.as_str(), "MOVE" | "COPY") {
        if let Err(r) = files::destination(h) {
            return r;
        }
    }
    let mtime = match oc_mtime(h) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let call = call::Call {
        ctx: web.ctx.clone(),
        who: who.id,
        mtime,
        failed: Arc::new(Mutex::new(None)),
        abandoned: Arc::default(),
    };
    // dav-server lets a litmus run ask for any depth; not here.
    parts.headers.remove("x-litmus");
    let body = if put {
        body
    } else {
        match axum::body::to_bytes(body, MAX_XML).await {
            Ok(b) => {
                if let Err(why) = check_xml(&b) {
                    return error(StatusCode::BAD_REQUEST, why);
                }
                Body::from(b)
            }
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("a WebDAV request body is limited to {MAX_XML} bytes"),
                );
            }
        }
    };
    let headers = parts.headers.clone();
    let method = parts.method.clone();
    let body = if put {
        Body::new(file::Stalling::new(
            body,
            web.ctx.config.deadlines.body,
            call.clone(),
        ))
    } else {
        body
    };
    let req = Request::from_parts(parts, body);
    let res = web
        .ctx
        .dav
        .handler
        .handle_guarded(req, "ferry".into(), call.clone())
        .await;
    let mut res = res.map(Body::new);
    let abandoned: Vec<_> = call
        .abandoned
        .lock()
        .map(|mut a| a.drain(..).collect())
        .unwrap_or_default();
    for task in abandoned {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    }
    let failed = call.failed.lock().ok().and_then(|mut f| f.take());
    let status = res.status();
    if let Some(why) = failed.filter(|_| status.as_u16() >= 400) {
        // The refusal in ferry's words, with dav-server's status (or
        // the access decision's, or the upload's own).
        let mut r = match why {
            call::Failure::Files(FilesError::Denied(d)) => return auth::denied(&headers, d),
            // Where dav-server could only say "forbidden" or "failed",
            // the error's own status, as on the rest of the web door.
            call::Failure::Files(e) if matches!(status.as_u16(), 403 | 500) => paths::failure(e),
            call::Failure::Files(e) => error(status, e.to_string()),
            call::Failure::Answer(status, words) => error(status, words),
        };
        if let Some(c) = res.headers().get(header::CONNECTION) {
            r.headers_mut().insert(header::CONNECTION, c.clone());
        }
        return r;
    }
    if status == StatusCode::CREATED && !res.headers().contains_key(header::LOCATION) {
        let made = match method.as_str() {
            "MOVE" | "COPY" => files::destination(&headers).ok(),
            _ => Some(rel.clone()),
        };
        if let Some(made) = made {
            let folder = method.as_str() == "MKCOL";
            if let Ok(v) = HeaderValue::try_from(paths::url_of(&made, folder)) {
                res.headers_mut().insert(header::LOCATION, v);
            }
        }
    }
    if put && mtime.is_some() && status.is_success() {
        res.headers_mut()
            .insert("x-oc-mtime", HeaderValue::from_static("accepted"));
    }
    res
}

/// Whether a request asks for `Depth: infinity`.
fn depth_infinity(h: &HeaderMap) -> bool {
    h.get("depth")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("infinity"))
}

/// RFC 4918 §9.1: a PROPFIND of unbounded depth is refused with the
/// `propfind-finite-depth` precondition.
fn finite_depth() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>\n",
    )
        .into_response()
}

/// The mtime an `X-OC-Mtime` header asks for (seconds since the epoch).
fn oc_mtime(h: &HeaderMap) -> Result<Option<Mtime>, Response> {
    let Some(v) = h.get("x-oc-mtime") else {
        return Ok(None);
    };
    let secs = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && s.abs() < 1e12)
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "bad X-OC-Mtime (seconds since 1970)",
            )
        })?;
    let whole = secs.floor();
    Ok(Some(Mtime {
        secs: whole as i64,
        nanos: (((secs - whole) * 1e9) as u32).min(999_999_999),
    }))
}

/// Refuses XML that would cost more to parse than it should: a DTD (no
/// entity is ever expanded) or elements nested deeper than
/// [`MAX_XML_DEPTH`]. Malformed XML is left to dav-server, which answers
/// it 400.
fn check_xml(body: &[u8]) -> Result<(), String> {
    if body.is_empty() {
        return Ok(());
    }
    let lower = body.to_ascii_lowercase();
    if lower
        .windows(9)
        .any(|w| w == b"<!doctype" || w.starts_with(b"<!entity"))
    {
        return Err("XML with a DTD or entities is not accepted".into());
    }
    let mut depth = 0usize;
    for ev in xml::reader::EventReader::new(body) {
        match ev {
            Ok(xml::reader::XmlEvent::StartElement { .. }) => {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(format!("XML nested deeper than {MAX_XML_DEPTH} elements"));
                }
            }
            Ok(xml::reader::XmlEvent::EndElement { .. }) => depth = depth.saturating_sub(1),
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_xml_is_refused_before_parsing() {
        assert!(check_xml(b"").is_ok());
        assert!(
            check_xml(
                b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>"
            )
            .is_ok()
        );
        let bomb = b"<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;\">]><D:propfind xmlns:D=\"DAV:\">&b;</D:propfind>";
        assert!(check_xml(bomb).unwrap_err().contains("DTD"));
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_XML_DEPTH + 1),
            "</a>".repeat(MAX_XML_DEPTH + 1)
        );
        assert!(check_xml(deep.as_bytes()).unwrap_err().contains("deeper"));
        let ok = format!(
            "{}{}",
            "<a>".repeat(MAX_XML_DEPTH),
            "</a>".repeat(MAX_XML_DEPTH)
        );
        assert!(check_xml(ok.as_bytes()).is_ok());
    }

    #[test]
    fn oc_mtime_is_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(oc_mtime(&h).unwrap(), None);
        h.insert("x-oc-mtime", HeaderValue::from_static("1700000000"));
        assert_eq!(
            oc_mtime(&h).unwrap(),
            Some(Mtime {
                secs: 1_700_000_000,
                nanos: 0
            })
        );
        h.insert("x-oc-mtime", HeaderValue::from_static("1700000000.5"));
        assert_eq!(oc_mtime(&h).unwrap().unwrap().nanos, 500_000_000);
        for bad in ["", "x", "NaN", "1e300"] {
            h.insert("x-oc-mtime", HeaderValue::from_static(bad));
            assert!(oc_mtime(&h).is_err(), "{bad}");
        }
    }
}
