//! What is asked of a WebDAV request before dav-server sees it: what it
//! would take too far or get wrong, and the removal of a folder, done
//! whole here.

use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::super::{Web, auth, error, paths};
use crate::files::FilesError;

/// A DELETE, asked whole of the files service before anything goes (a
/// refusal is the answer). Then a folder that no lock touches (on it,
/// above it or below it) is removed in one go, as the native `rm -r`
/// removes it: dav-server would go an entry at a time, and an entry it
/// cannot name (deeper than a path may go) would stop it half-way. With a
/// lock there, dav-server's own DELETE asks for the lock tokens, as it
/// weighs any condition the request sets. `None`: dav-server's to do.
pub(super) async fn remove_whole(
    web: &Web,
    who: &auth::Who,
    h: &HeaderMap,
    rel: &crate::files::RelPath,
    uri_path: &str,
) -> Option<Response> {
    if let Err(e) = web.ctx.files.check_remove(who.id, rel).await {
        return Some(refusal(h, e));
    }
    // Conditions (`If`, `If-Match`, ...) are dav-server's to weigh.
    let conditional = ["if", "if-match", "if-none-match", "if-unmodified-since"];
    if conditional.iter().any(|c| h.contains_key(*c)) {
        return None;
    }
    // So is a depth other than the whole tree's (dav-server refuses it).
    let depth = h.get("depth").map(|v| v.as_bytes().trim_ascii());
    if depth.is_some_and(|d| !d.eq_ignore_ascii_case(b"infinity")) {
        return None;
    }
    let r = rel.clone();
    let entry = web.ctx.files.quick(move |s| s.stat_name(&r)).await.ok()?;
    if entry.kind != crate::files::entry::EntryKind::Dir {
        return None;
    }
    let at = dav_server::davpath::DavPath::new(uri_path).ok()?;
    if web.ctx.dav.locks.touching(&at) {
        return None;
    }
    // Asked whole above.
    Some(match web.ctx.files.remove(rel.clone(), true).await {
        Ok(()) => {
            // A lock taken meanwhile on what is gone goes with it, as
            // dav-server's DELETE clears them.
            use dav_server::ls::DavLockSystem;
            let _ = web.ctx.dav.locks.delete(&at).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => refusal(h, e),
    })
}

/// A files error as the web door answers it: a refusal of the access
/// decision in its words (401 where logging in could help), the rest by
/// their own status.
pub(super) fn refusal(h: &HeaderMap, e: FilesError) -> Response {
    match e {
        FilesError::Denied(d) => auth::denied(h, d),
        e => paths::failure(e),
    }
}

/// What is refused before dav-server sees a request: what it would take
/// too far, or get wrong.
pub(super) fn refuse_early(m: &Method, h: &HeaderMap) -> Result<(), Response> {
    let bad = |why: &str| Err(error(StatusCode::BAD_REQUEST, why));
    match h.get("depth").map(|v| v.to_str().unwrap_or("").trim()) {
        None | Some("0" | "1") => {}
        Some(d) if d.eq_ignore_ascii_case("infinity") => {
            if m.as_str() == "PROPFIND" {
                return Err(finite_depth());
            }
        }
        Some(_) => return bad("Depth must be 0, 1 or infinity"),
    }
    if let Some(v) = h.get("if") {
        if !if_header_parses(v.as_bytes()) {
            return bad("the If header does not parse (RFC 4918 section 10.4)");
        }
    }
    // RFC 4918 section 10.6: `T` or `F`. Anything else is no answer to
    // "may it replace what is there?", so it is not taken for yes.
    let overwrite: Vec<_> = h.get_all("overwrite").iter().collect();
    match overwrite[..] {
        [] => {}
        [v] if v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"T")
            || v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"F") => {}
        _ => return bad("Overwrite must be T or F, once"),
    }
    Ok(())
}

/// Whether an `If` header follows RFC 4918's grammar: lists of
/// conditions in parentheses, each `[Not] <state-token>` or `[Not]
/// [entity-tag]`, optionally tagged with a `<resource>` before them.
pub(super) fn if_header_parses(v: &[u8]) -> bool {
    let mut i = 0;
    let skip = |i: &mut usize| {
        while *i < v.len() && (v[*i] == b' ' || v[*i] == b'\t') {
            *i += 1;
        }
    };
    // Up to the byte `end`, non-empty, with nothing of `bad` before it.
    let until = |i: &mut usize, end: u8, bad: &[u8]| -> bool {
        let start = *i;
        while *i < v.len() && v[*i] != end {
            if bad.contains(&v[*i]) {
                return false;
            }
            *i += 1;
        }
        let ok = *i < v.len() && *i > start;
        *i += 1;
        ok
    };
    let mut lists = 0;
    loop {
        skip(&mut i);
        if i == v.len() {
            return lists > 0;
        }
        match v[i] {
            b'<' => {
                i += 1;
                if !until(&mut i, b'>', b"<>() ") {
                    return false;
                }
            }
            b'(' => {
                i += 1;
                let mut conditions = 0;
                loop {
                    skip(&mut i);
                    if v[i..].starts_with(b"Not") {
                        i += 3;
                        skip(&mut i);
                    }
                    match v.get(i) {
                        Some(b'<') => {
                            i += 1;
                            if !until(&mut i, b'>', b"<>() ") {
                                return false;
                            }
                        }
                        Some(b'[') => {
                            i += 1;
                            if !until(&mut i, b']', b"[]()<>") {
                                return false;
                            }
                        }
                        Some(b')') if conditions > 0 => {
                            i += 1;
                            break;
                        }
                        _ => return false,
                    }
                    conditions += 1;
                }
                lists += 1;
            }
            _ => return false,
        }
    }
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
