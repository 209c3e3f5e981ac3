//! The page: one HTML shell per folder (its listing rendered on the server,
//! escaped, so it works without script), and the embedded script and style
//! that add sorting, filtering, uploads, the file actions and the chat.
//! No build step, nothing from a CDN. Also the folder archive download.

use std::io::{self, Read, Write};

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::auth::Who;
use super::paths::{disposition, failure, url_of};
use super::{Web, error};
use crate::files::name::RelPath;
use crate::wire::messages::{Entry, EntryKind};

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The one inline script of the page: it loads the page's script once the
/// listing is parsed. Only these two pieces are inline (their hashes are in
/// the policy), and the listing links to nothing but its entries, so a
/// mirror (`wget -r`, `lftp mirror`) takes the files and nothing of the
/// page's own.
const LOADER: &str = "document.addEventListener(\"DOMContentLoaded\",function(){var s=document.createElement(\"script\");s.src=\"/.ferry/assets/app.js\";document.head.appendChild(s);});";

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
             img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'",
            hash(LOADER),
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

/// The page for a folder.
pub fn folder_page(web: &Web, who: &Who, rel: &RelPath, entries: &[Entry]) -> Response {
    let here = url_of(rel, true);
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
    let mut rows = String::new();
    for e in entries {
        let child = rel.child(&e.name).unwrap_or_else(|_| rel.clone());
        let dir = e.kind == EntryKind::Dir;
        let size = if dir { String::new() } else { human(e.size) };
        let when = e
            .mtime
            .and_then(|m| chrono::DateTime::from_timestamp(m.secs, m.nanos))
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td><a href=\"{}\">{}{}</a></td><td>{}</td><td>{}</td></tr>\n",
            html(&url_of(&child, dir)),
            html(&e.name),
            if dir { "/" } else { "" },
            size,
            when
        ));
    }
    // The buttons this folder offers: the rights here, not anywhere.
    let perms = serde_json::to_string(&super::auth::rights_at(web, who, rel)).unwrap_or_default();
    let body = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — ferry</title>
<style>{css}</style>
<script>{loader}</script>
</head>
<body data-path="{here}" data-server="{server}" data-perms="{perms}" data-authed="{authed}" data-user="{user}" data-auth="{auth}" data-links="{links}">
<header>
  <nav id="crumbs" aria-label="Folder">{crumbs}</nav>
  <div id="account"></div>
</header>
<main>
  <section id="files" aria-label="Files">
    <div id="tools"></div>
    <table id="list">
      <thead><tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col">Modified</th></tr></thead>
      <tbody>
{rows}      </tbody>
    </table>
    <div id="uploads" aria-live="polite"></div>
  </section>
  <section id="chat" aria-label="Chat" hidden></section>
</main>
<footer>ferry on {server}</footer>
</body>
</html>
"#,
        title = html(&here),
        here = html(&here),
        css = APP_CSS,
        loader = LOADER,
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
        crumbs = crumbs,
        rows = rows,
    );
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, csp().clone()),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// Bytes for the response body, from the archive thread.
struct ChanWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const ARCHIVE_CHUNK: usize = 256 * 1024;

impl ChanWriter {
    fn push(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(ARCHIVE_CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= ARCHIVE_CHUNK {
            self.push()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

/// A file's bytes, exactly as many as its header announced: a file that
/// shrank while archived fails the download instead of corrupting it.
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

/// `GET FOLDER/?tar`: the folder as a tar archive, streamed as it is
/// written (never built in memory or on disk); sizes past 8 GiB and long
/// names use the GNU extensions every tar reads.
pub async fn archive(web: &Web, who: &super::auth::Who, rel: RelPath) -> Response {
    let tree = match web.ctx.files.walk(who.id, rel.clone()).await {
        Ok(t) => t,
        Err(e) => return failure(e),
    };
    let top = rel
        .file_name()
        .map(str::to_string)
        .unwrap_or_else(|| web.ctx.config.name.clone());
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let ctx = web.ctx.clone();
    let name = top.clone();
    tokio::task::spawn_blocking(move || {
        let writer = ChanWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(ARCHIVE_CHUNK),
        };
        let mut b = tar::Builder::new(writer);
        let result = (|| -> io::Result<()> {
            let mut dir = tar::Header::new_gnu();
            dir.set_entry_type(tar::EntryType::Directory);
            dir.set_mode(0o755);
            dir.set_size(0);
            dir.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
            b.append_data(&mut dir, format!("{name}/"), io::empty())?;
            for e in tree {
                let path = format!("{name}/{}", e.path);
                let mtime = e.mtime.map_or(0, |m| m.secs.max(0) as u64);
                match e.kind {
                    EntryKind::Dir => {
                        let mut h = tar::Header::new_gnu();
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_mode(0o755);
                        h.set_size(0);
                        h.set_mtime(mtime);
                        b.append_data(&mut h, format!("{path}/"), io::empty())?;
                    }
                    EntryKind::File => {
                        let Ok(sub) = RelPath::parse(&e.path) else {
                            continue;
                        };
                        let (file, entry) = match ctx.files.store().open_read(&rel.join(&sub)) {
                            Ok(x) => x,
                            // Gone since the walk: leave it out.
                            Err(_) => continue,
                        };
                        let mut h = tar::Header::new_gnu();
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_mode(0o644);
                        h.set_size(entry.size);
                        h.set_mtime(mtime);
                        let data = Exactly {
                            inner: file,
                            left: entry.size,
                        };
                        b.append_data(&mut h, &path, data)?;
                    }
                    _ => {}
                }
            }
            b.finish()?;
            b.get_mut().flush()
        })();
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
        .header(header::CONTENT_TYPE, "application/x-tar")
        .header(
            header::CONTENT_DISPOSITION,
            disposition(&format!("{top}.tar")),
        )
        .body(body)
        .unwrap_or_default()
}
