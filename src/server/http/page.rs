//! The page: one HTML shell per folder (its listing rendered on the server,
//! escaped, so it works without script), and the embedded script and style
//! that add sorting, filtering, uploads, the file actions and the chat.
//! No build step, nothing from a CDN.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::Who;
use super::paths::url_of;
use super::{Web, error};
use crate::files::name::RelPath;
use crate::wire::messages::{Entry, EntryKind};

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
/// Rows in the page's first window (the script's `PAGE`).
const WINDOW: usize = 200;

// The page's script and style are inline, allowed by their hashes in the
// policy: no request after the page's own before its rows show, and the
// listing links to nothing but its entries, so a mirror (`wget -r`, `lftp
// mirror`) takes the files and nothing of the page's own.

/// Nothing from elsewhere, and no inline script or style but the two the
/// page itself carries, by their hashes.
fn csp() -> &'static HeaderValue {
    static CSP: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash =
            |s: &str| base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s));
        let policy = format!(
            "default-src 'none'; script-src 'self' 'sha256-{}'; style-src 'self' 'sha256-{}'; \
             img-src 'self' data:; media-src 'self'; frame-src 'self'; connect-src 'self'; \
             base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'",
            hash(APP_JS),
            hash(APP_CSS)
        );
        HeaderValue::try_from(policy).expect("the policy is plain ASCII")
    })
}

/// `GET /.ferry/assets/NAME`.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, ctype) = match name.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return error(StatusCode::NOT_FOUND, "no such asset"),
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /.ferry/qr?text=URL`: a QR code of a URL as SVG (the page's QR
/// button shows the folder's address with it).
pub async fn qr(uri: axum::http::Uri) -> Response {
    let text = super::files::query_values(&uri, "text")
        .into_iter()
        .next()
        .unwrap_or_default();
    if text.is_empty() || text.len() > 1024 {
        return error(
            StatusCode::BAD_REQUEST,
            "qr needs text=URL (up to 1024 bytes)",
        );
    }
    match crate::qr::svg(&text) {
        Some(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "sandbox; default-src 'none'",
                ),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            svg,
        )
            .into_response(),
        None => error(StatusCode::BAD_REQUEST, "too long for a QR code"),
    }
}

/// Escapes text for HTML content and attribute values.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn human(size: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = size as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{size} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// One entry's row: as the script draws it, or `plain` (for clients
/// without script).
fn row(rel: &RelPath, e: &Entry, plain: bool) -> String {
    let child = rel.child(&e.name).unwrap_or_else(|_| rel.clone());
    let dir = e.kind == EntryKind::Dir;
    let size = if dir { String::new() } else { human(e.size) };
    let when = e
        .mtime
        .and_then(|m| chrono::DateTime::from_timestamp(m.secs, m.nanos))
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    let (href, name, slash) = (
        html(&url_of(&child, dir)),
        html(&e.name),
        if dir { "/" } else { "" },
    );
    if plain {
        format!(
            "<tr><td></td><td><a href=\"{href}\">{name}{slash}</a></td><td>{size}</td><td>{when}</td></tr>\n"
        )
    } else {
        format!(
            "<tr><td class=\"pick\"></td><td class=\"name\"><div class=\"entry\">\
             <span class=\"icon\" data-type=\"{}\" aria-hidden=\"true\"></span>\
             <a href=\"{href}\">{name}{slash}</a></div></td><td class=\"size\">{size}</td>\
             <td class=\"mtime\">{when}</td><td class=\"actions\"></td></tr>\n",
            if dir { "dir" } else { "file" },
        )
    }
}

/// The links to the folders above `rel`, and to it.
fn crumbs_of(rel: &RelPath) -> String {
    let mut crumbs = String::from("<a href=\"/\">/</a>");
    let mut acc = RelPath::root();
    for p in rel.parts() {
        acc = acc.child(p).unwrap_or_else(|_| acc.clone());
        crumbs.push_str(&format!(
            " <a href=\"{}\">{}</a> /",
            html(&url_of(&acc, true)),
            html(p)
        ));
    }
    crumbs
}

/// The opening and the end of a no-script table of the rest.
const PLAIN_OPEN: &str = "<noscript><table id=\"plain\"><tbody>\n";
const PLAIN_CLOSE: &str = "</tbody></table></noscript>";

/// The page for a folder.
pub fn folder_page(web: &Web, who: &Who, rel: &RelPath, entries: &[Entry]) -> Response {
    let crumbs = crumbs_of(rel);
    // The first window of rows comes as rows, so the browser paints the
    // listing before the script has run; the script then takes over the
    // table with the same entries as data, a window at a time (a folder
    // of 10,000 entries costs the browser a few hundred rows). Without
    // script the rest follow in a plain table in `<noscript>`, so every
    // entry is a link (a mirror such as `wget -r` follows these too).
    let mut order: Vec<&Entry> = entries.iter().collect();
    order.sort_by_cached_key(|e| (e.kind != EntryKind::Dir, e.name.to_lowercase()));
    let (mut rows, mut rest) = (String::new(), String::new());
    let mut data = Vec::with_capacity(entries.len());
    for (i, e) in order.into_iter().enumerate() {
        if i < WINDOW {
            rows.push_str(&row(rel, e, false));
        } else {
            rest.push_str(&row(rel, e, true));
        }
        data.push(serde_json::json!([
            e.name,
            e.kind,
            e.size,
            e.mtime.map(|m| m.secs)
        ]));
    }
    let rest = if rest.is_empty() {
        rest
    } else {
        format!("{PLAIN_OPEN}{rest}{PLAIN_CLOSE}")
    };
    // Data, not script: `<` is escaped so nothing in a name ends the
    // element.
    let data = serde_json::to_string(&data)
        .unwrap_or_else(|_| "[]".into())
        .replace('<', "\\u003c");
    html_page(shell(web, who, rel, &crumbs, &rows, &rest, &data))
}

/// The page around a folder's rows: `rows` (the first window, as the
/// script draws them), `rest` (the others, for clients without script)
/// and `data` (every entry, for the script; `null`: it asks `?json`).
fn shell(
    web: &Web,
    who: &Who,
    rel: &RelPath,
    crumbs: &str,
    rows: &str,
    rest: &str,
    data: &str,
) -> String {
    let here = url_of(rel, true);
    // The buttons this folder offers: the rights here, not anywhere.
    let perms = serde_json::to_string(&super::auth::rights_at(web, who, rel)).unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — ferry</title>
<style>{css}</style>
</head>
<body data-path="{here}" data-server="{server}" data-perms="{perms}" data-authed="{authed}" data-user="{user}" data-auth="{auth}" data-links="{links}" data-hidden="{hidden}">
<header>
  <nav id="crumbs" aria-label="Folder">{crumbs}</nav>
  <div id="account"></div>
</header>
<main>
  <section id="files" aria-label="Files">
    <div id="tools"></div>
    <table id="list">
      <thead><tr><th scope="col" class="pick"></th><th scope="col" class="name">Name</th><th scope="col" class="size">Size</th><th scope="col" class="mtime">Modified</th><th scope="col" class="actions"></th></tr></thead>
      <tbody>
{rows}      </tbody>
    </table>
    {rest}
    <div id="uploads" aria-live="polite"></div>
  </section>
  <section id="chat" aria-label="Chat" hidden></section>
</main>
<footer>ferry on {server}</footer>
<script type="application/json" id="entries">{data}</script>
<script>{app}</script>
</body>
</html>
"#,
        title = html(&here),
        here = html(&here),
        css = APP_CSS,
        app = APP_JS,
        server = html(&web.ctx.config.name),
        perms = html(&perms),
        authed = who.authed,
        user = html(web.ctx.files.policy().name_of(who.id)),
        auth = web.ctx.gate.enabled(),
        // Share links are made by an account or the token holder, where
        // anyone must log in for more than anonymous rights.
        links = web.ctx.gate.enabled()
            && matches!(
                who.id,
                crate::access::Who::User(_) | crate::access::Who::TokenHolder
            ),
        hidden = web.ctx.config.showing.hidden,
        crumbs = crumbs,
        rows = rows,
        rest = rest,
        data = data,
    )
}

/// An HTML answer of the page's kind.
fn html_page(body: impl Into<axum::body::Body>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, csp().clone()),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body.into(),
    )
        .into_response()
}

/// The page for a folder of a storage that lists a page at a time, sent
/// as the pages come: the rows in name order (the first window as the
/// script draws them, the rest for clients without script), and no data
/// (the script asks `?json`, which streams too). A storage that fails
/// part-way cuts the page short.
pub async fn folder_page_streamed(web: &Web, who: &Who, rel: RelPath) -> Response {
    use futures_util::StreamExt;
    let listing = match web.ctx.files.listing(who.id, rel.clone()).await {
        Ok(l) => l,
        Err(e) => return super::paths::failure(e),
    };
    // The page around its rows, cut where they go.
    const CUT: &str = "\u{0}ROWS\u{0}";
    let whole = shell(web, who, &rel, &crumbs_of(&rel), CUT, CUT, "null");
    let mut parts = whole.splitn(3, CUT).map(str::to_owned);
    let (top, middle, bottom) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut head = top;
    let mut plain = String::new();
    for (i, e) in listing.first.iter().enumerate() {
        if i < WINDOW {
            head.push_str(&row(&rel, e, false));
        } else {
            plain.push_str(&row(&rel, e, true));
        }
    }
    head.push_str(&middle);
    head.push_str(PLAIN_OPEN);
    head.push_str(&plain);
    let rest = listing.rest.map(move |page| {
        page.map(|p| bytes::Bytes::from(p.iter().map(|e| row(&rel, e, true)).collect::<String>()))
            .map_err(cut)
    });
    let end = bytes::Bytes::from(format!("{PLAIN_CLOSE}{bottom}"));
    let body = futures_util::stream::once(std::future::ready(Ok(bytes::Bytes::from(head))))
        .chain(rest)
        .chain(futures_util::stream::once(std::future::ready(Ok(end))));
    // Fused: a compressing layer reads on past the end.
    html_page(axum::body::Body::from_stream(body.fuse()))
}

/// A folder's listing as JSON (`?json`), sent a page of the storage at a
/// time: a folder of any size is listed without the server holding it
/// whole. Entries come in name order, folders not put first. A storage
/// that fails part-way cuts the answer short (a body that is not JSON).
pub async fn json_pages(web: &Web, who: &Who, rel: RelPath) -> Response {
    use futures_util::StreamExt;
    // The first page (or the refusal) before the status is sent.
    let listing = match web.ctx.files.listing(who.id, rel.clone()).await {
        Ok(l) => l,
        Err(e) => return super::paths::failure(e),
    };
    let head = serde_json::json!({
        "path": url_of(&rel, true),
        "permissions": super::auth::rights_at(web, who, &rel),
        "authenticated": who.authed,
    });
    let mut opening = head.to_string();
    opening.pop(); // the closing brace
    opening.push_str(",\"entries\":[");
    let mut first_row = true;
    let mut rows = move |page: Vec<Entry>| -> bytes::Bytes {
        let mut out = Vec::new();
        for e in &page {
            if !std::mem::take(&mut first_row) {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut out, &crate::files::entry::Shown::from(e));
        }
        out.into()
    };
    let start = [opening.into_bytes().into(), rows(listing.first)];
    let rest = listing
        .rest
        .map(move |page| page.map(&mut rows).map_err(cut));
    let end = futures_util::stream::once(std::future::ready(Ok(bytes::Bytes::from_static(b"]}"))));
    let body = futures_util::stream::iter(start.map(Ok))
        .chain(rest)
        .chain(end);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        // Fused: a compressing layer reads on past the end.
        axum::body::Body::from_stream(body.fuse()),
    )
        .into_response()
}

/// A listing that failed part-way, as the error that cuts its answer
/// short (the client sees the body end before its end).
fn cut(e: crate::files::FilesError) -> std::io::Error {
    tracing::warn!(error = %e, "a listing failed part-way");
    std::io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inline_script_cannot_end_its_element() {
        let lower = APP_JS.to_ascii_lowercase();
        assert!(!lower.contains("</script") && !lower.contains("<!--"));
    }
}
