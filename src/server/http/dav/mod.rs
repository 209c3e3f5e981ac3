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
mod early;

use early::{refuse_early, remove_whole};
mod file;
mod fs;
mod locks;
pub(crate) mod props;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use dav_server::DavHandler;
use futures_util::FutureExt;

use super::{Web, auth, error, files, paths};
use crate::access::Action;
use crate::files::FilesError;
use crate::files::entry::Mtime;

/// Largest XML body (PROPFIND, PROPPATCH, LOCK) read.
pub(crate) const MAX_XML: usize = 64 * 1024;
/// Most XML elements in one body.
pub(crate) const MAX_XML_ELEMENTS: usize = 512;
/// Deepest nesting of XML elements taken.
pub(crate) const MAX_XML_DEPTH: usize = 32;

/// The WebDAV door's state: the protocol handler with its lock table, and
/// the dead properties.
pub(crate) struct Dav {
    handler: DavHandler<call::Call>,
    pub(crate) props: std::sync::Arc<props::DeadProps>,
    /// The handler's lock table, to ask before a removal done here.
    locks: locks::Locks,
}

impl std::fmt::Debug for Dav {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dav").finish_non_exhaustive()
    }
}

impl Dav {
    /// The door over `store`, keeping dead properties in `state_dir`.
    pub(crate) fn new(
        state_dir: &std::path::Path,
        store: std::sync::Arc<dyn crate::files::storage::Storage>,
    ) -> Dav {
        let props = std::sync::Arc::new(props::DeadProps::new(
            store.clone(),
            &state_dir.join("webdav-props.sqlite"),
        ));
        let locks = locks::Locks::new(store);
        let handler = DavHandler::builder()
            .filesystem(Box::new(fs::FerryFs))
            .locksystem(Box::new(locks.clone()))
            .build_handler();
        Dav {
            handler,
            props,
            locks,
        }
    }
}

/// What a method needs the right to do, when it changes something.
fn change(m: &Method) -> Option<Action> {
    Some(match m.as_str() {
        "PUT" | "MKCOL" | "COPY" => Action::Create,
        // A lock holds off everyone else's changes, as a replace would:
        // a drop box's clients cannot take one (nor block the others).
        "LOCK" | "UNLOCK" => Action::Replace,
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
    // A COPY reads its source; its destination is asked about below.
    let at_source = match parts.method.as_str() {
        "COPY" => Action::Read,
        _ => action.unwrap_or(Action::Read),
    };
    if let Err(r) = auth::allow(who, web, h, at_source, &rel) {
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
    if let Err(r) = refuse_early(&parts.method, h) {
        return r;
    }
    // dav-server removes a folder an entry at a time, the folder last: the
    // removal is asked whole first, so a refusal leaves everything there.
    if parts.method == Method::DELETE {
        if let Some(done) = remove_whole(web, who, h, &rel, parts.uri.path()).await {
            return done;
        }
    }
    let mtime = match oc_mtime(h) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let in_place = match call::ends(web, who, parts.method.as_str(), h, &rel).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    // Before dav-server, which removes what is at the destination first;
    // after the rights at both ends, so that a client that may not write
    // there is not told where links lead.
    if let copy @ ("COPY" | "MOVE") = parts.method.as_str() {
        let into = match files::destination(&web.ctx, h) {
            Ok(to) => web.ctx.files.into_itself(&rel, &to, copy == "COPY").await,
            Err(r) => return r,
        };
        if let Err(e) = into {
            return early::refusal(h, e);
        }
    }
    let call = call::Call {
        ctx: web.ctx.clone(),
        who: who.id,
        mtime,
        failed: Arc::new(Mutex::new(None)),
        abandoned: Arc::default(),
        // RFC 4918 7.3: a LOCK of an unmapped URL makes an empty file.
        empty_creates: parts.method.as_str() == "LOCK",
        listing_broke: Arc::default(),
        in_place,
        props_seen: Arc::default(),
        // A folder's copy takes the folders' own properties too (the
        // files' go with each file's copy).
        copying: (parts.method.as_str() == "COPY")
            .then(|| super::files::destination(&web.ctx, h).ok())
            .flatten()
            .map(|to| (rel.clone(), to)),
    };
    // dav-server lets a litmus run ask for any depth; not here.
    parts.headers.remove("x-litmus");
    // `f` is `F` (RFC 5234: quoted strings ignore case; `refuse_early`
    // let only these through), but dav-server takes all but `F` for `T`.
    if let Some(v) = parts.headers.get("overwrite") {
        let no = v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"F");
        let v = HeaderValue::from_static(if no { "F" } else { "T" });
        parts.headers.insert("overwrite", v);
    }
    if parts.method.as_str() == "PROPFIND" && !parts.headers.contains_key("depth") {
        // RFC 4918 says infinity; clients that leave it out mean 1.
        parts.headers.insert("depth", HeaderValue::from_static("1"));
    }
    let body = if put {
        body
    } else {
        let propfind = parts.method.as_str() == "PROPFIND";
        match read_xml(web, body, propfind).await {
            Ok(b) => b,
            Err(r) => return r,
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
    // A request that makes dav-server panic is answered 500, and the
    // connection goes on.
    let handled = std::panic::AssertUnwindSafe(web.ctx.dav.handler.handle_guarded(
        req,
        // Locks are held per client address (and capped per address).
        web.peer.ip().to_string(),
        call.clone(),
    ))
    .catch_unwind()
    .await;
    let Ok(res) = handled else {
        tracing::warn!("a WebDAV request failed inside the protocol handler");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request could not be handled",
        );
    };
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
    // dav-server's own answers about the request (a lock, a condition, a
    // malformed request) are not about a refusal of the files service: one
    // a probe met on the way (which dav-server went past) does not replace
    // them.
    let own = matches!(status.as_u16(), 400 | 412 | 415 | 416 | 423 | 424);
    let failed = failed.filter(|f| !own || matches!(f, call::Failure::Answer(..)));
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
    if status.as_u16() >= 400
        && res
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|l| l == "0")
    {
        // dav-server's refusals say nothing; say what they mean.
        let (status, why) = match status.as_u16() {
            // The body of a PUT broke off or was malformed.
            502 if put => (
                StatusCode::BAD_REQUEST,
                "the request body broke off or was malformed",
            ),
            423 => (status, "locked: send the lock's token in an If header"),
            409 => (
                status,
                "conflict: the folder above does not exist, or the lock token is unknown",
            ),
            412 => (status, "a precondition (If, If-Match, Overwrite) failed"),
            403 => (
                status,
                "not allowed here (the source and destination are the same, or the resource cannot be changed)",
            ),
            400 => (
                status,
                "the request is malformed (its XML, or a header it needs)",
            ),
            _ => (status, status.canonical_reason().unwrap_or("failed")),
        };
        let mut r = error(status, why);
        if let Some(c) = res.headers().get(header::CONNECTION) {
            r.headers_mut().insert(header::CONNECTION, c.clone());
        }
        return r;
    }
    if status == StatusCode::CREATED && !res.headers().contains_key(header::LOCATION) {
        let made = match method.as_str() {
            "MOVE" | "COPY" => files::destination(&web.ctx, &headers).ok(),
            _ => Some(rel.clone()),
        };
        if let Some(made) = made {
            let folder = method.as_str() == "MKCOL";
            if let Ok(v) = HeaderValue::try_from(paths::url_of(&made, folder)) {
                res.headers_mut().insert(header::LOCATION, v);
            }
        }
    }
    if method.as_str() == "PROPFIND" && status == StatusCode::MULTI_STATUS {
        res = res.map(|b| call.cut_short_on_failure(b));
    }
    if put && mtime.is_some() && status.is_success() {
        res.headers_mut()
            .insert("x-oc-mtime", HeaderValue::from_static("accepted"));
    }
    res
}

/// The XML body of a request, read within the body deadline and bounded.
async fn read_xml(web: &Web, body: Body, propfind: bool) -> Result<Body, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a WebDAV request body is limited to {MAX_XML} bytes"),
        )
    };
    if axum::body::HttpBody::size_hint(&body).lower() > MAX_XML as u64 {
        return Err(too_large());
    }
    let wait = web.ctx.config.deadlines.body;
    let b = match tokio::time::timeout(wait, axum::body::to_bytes(body, MAX_XML)).await {
        Err(_) => {
            return Err(error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body did not come within {} s", wait.as_secs()),
            ));
        }
        Ok(Err(_)) => return Err(too_large()),
        Ok(Ok(b)) => b,
    };
    check_xml(&b, propfind).map_err(|why| error(StatusCode::BAD_REQUEST, why))?;
    Ok(Body::from(b))
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
        .filter(|s| s.is_finite() && (0.0..1e12).contains(s))
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
fn check_xml(body: &[u8], propfind: bool) -> Result<(), String> {
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
    let mut elements = 0usize;
    let mut asked = std::collections::HashSet::new();
    for ev in xml::reader::EventReader::new(body) {
        match ev {
            Ok(xml::reader::XmlEvent::StartElement { name, .. }) => {
                depth += 1;
                elements += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(format!("XML nested deeper than {MAX_XML_DEPTH} elements"));
                }
                if elements > MAX_XML_ELEMENTS {
                    return Err(format!("XML with more than {MAX_XML_ELEMENTS} elements"));
                }
                // A property asked for twice would be answered twice, for
                // every entry of a listing.
                if propfind && depth == 3 && !asked.insert((name.namespace, name.local_name)) {
                    return Err("a PROPFIND names a property twice".into());
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
    use super::early::if_header_parses;
    use super::*;

    #[test]
    fn hostile_xml_is_refused_before_parsing() {
        assert!(check_xml(b"", false).is_ok());
        assert!(
            check_xml(
                b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>",
                true
            )
            .is_ok()
        );
        let bomb = b"<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;\">]><D:propfind xmlns:D=\"DAV:\">&b;</D:propfind>";
        assert!(check_xml(bomb, false).unwrap_err().contains("DTD"));
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_XML_DEPTH + 1),
            "</a>".repeat(MAX_XML_DEPTH + 1)
        );
        assert!(
            check_xml(deep.as_bytes(), false)
                .unwrap_err()
                .contains("deeper")
        );
        let ok = format!(
            "{}{}",
            "<a>".repeat(MAX_XML_DEPTH),
            "</a>".repeat(MAX_XML_DEPTH)
        );
        assert!(check_xml(ok.as_bytes(), false).is_ok());
        // A property asked for twice, or too many elements.
        let twice = br#"<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/><D:getetag/><D:lockdiscovery/></D:prop></D:propfind>"#;
        assert!(check_xml(twice, true).unwrap_err().contains("twice"));
        assert!(check_xml(twice, false).is_ok());
        let many = format!("<a>{}</a>", "<b/>".repeat(MAX_XML_ELEMENTS));
        assert!(
            check_xml(many.as_bytes(), false)
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn if_headers_follow_the_grammar() {
        for good in [
            "(<urn:uuid:1>)",
            "(<opaquelocktoken:a-b>) (Not <DAV:no-lock>)",
            "</a/b> (<urn:x> [\"etag\"])",
            "(Not <urn:x> [W/\"e\"])",
            "  (<urn:x>)  <http://h/p> ([\"e\"])",
        ] {
            assert!(if_header_parses(good.as_bytes()), "{good}");
        }
        for bad in [
            "<",
            "(",
            "([\"x",
            "(<urn:x>",
            "()",
            "(Not Not <urn:x>)",
            "x",
            "</a>",
            "(<>)",
            "(<a b>)",
            "",
        ] {
            assert!(!if_header_parses(bad.as_bytes()), "{bad}");
        }
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
        for bad in ["", "x", "NaN", "1e300", "-1", "-0.5"] {
            h.insert("x-oc-mtime", HeaderValue::from_static(bad));
            assert!(oc_mtime(&h).is_err(), "{bad}");
        }
    }
}
