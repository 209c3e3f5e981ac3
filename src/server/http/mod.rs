//! The web door: HTTP/1.1 on the shared port, served by hyper with an axum
//! router. Files (with ranges, conditional requests and compression),
//! resumable uploads (tus 1.0), the page, and the chat over WebSocket, all
//! on the same services and rules as the native door.
//!
//! - [`cond`]: validators, preconditions and ranges (pure).
//! - [`files`]: GET and HEAD on paths (files, listings, archives).
//! - [`dav`]: WebDAV, and with it every change to a path (PUT, DELETE,
//!   MKCOL, COPY, MOVE, PROPPATCH, LOCK, UNLOCK) and PROPFIND.
//! - [`tus`]: resumable uploads.
//! - [`auth`]: who a request is (token, Basic, session cookie) and the
//!   cross-site checks.
//! - [`page`]: the embedded page and its assets.
//! - [`ws`]: the chat over WebSocket.
//! - [`routes`]: where each request goes.
//! - [`media`]: the media type a file is served with.

mod access;
pub mod archive;
pub mod auth;
pub mod cond;
pub(crate) mod dav;
pub mod files;
pub mod media;
pub mod page;
pub mod paths;
pub mod preview;
pub mod routes;
pub mod search;
pub mod sessions;
mod sharing;
pub mod tus;
pub mod upload;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use std::convert::Infallible;

use crate::wire::Stream;
use axum::http::{HeaderValue, Request, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tracing::debug;

use crate::server::Ctx;
use crate::text::escape;

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Reserved path prefix for the page's assets and APIs.
pub const PREFIX: &str = "/.ferry/";

/// What every handler gets.
#[derive(Clone)]
pub struct Web {
    /// The server.
    pub(crate) ctx: Arc<Ctx>,
    /// The peer.
    pub peer: SocketAddr,
    /// Whether the connection is encrypted (cookies are then `Secure`).
    pub tls: bool,
}

/// Serves one HTTP connection (keep-alive: many requests) whose first bytes
/// the sniffer already read.
pub(crate) async fn serve(stream: Stream, initial: BytesMut, peer: SocketAddr, ctx: Arc<Ctx>) {
    let tls = stream.is_tls();
    let io = crate::wire::Guarded::new(initial.freeze(), stream, ctx.config.deadlines.body);
    let web = Web {
        ctx: ctx.clone(),
        peer,
        tls,
    };
    // Formatted once per connection for the request log: its span and the
    // peer's address.
    let tag = Arc::new((crate::log::conn_span(peer), peer.ip().to_string()));
    let unread_tag = tag.clone();
    let plain = routes::router(web.clone());
    // Compression only for clients that ask: the layer costs about a tenth
    // of a small request even when it has nothing to do.
    let zipped = plain.clone().layer(compression());
    let browser_seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let misdirected = malformed(&req).or_else(|| misdirected(&web.ctx, &req));
        // Only a request this server answers counts (not one for another
        // name, which any page can make).
        if misdirected.is_none()
            && !browser_seen.load(std::sync::atomic::Ordering::Relaxed)
            && from_a_browser(&req)
        {
            browser_seen.store(true, std::sync::atomic::Ordering::Relaxed);
            web.ctx.saw_browser(peer.ip());
        }
        let compress = req.headers().contains_key(header::ACCEPT_ENCODING);
        let direct = !compress && routes::direct(&req);
        let app = if compress {
            zipped.clone()
        } else {
            plain.clone()
        };
        let web = web.clone();
        let tag = tag.clone();
        let started = Instant::now();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let version = req.version();
        // A change is audited with who it claims to be (a refusal says
        // whether the claim held).
        let claimed = (misdirected.is_none() && changes(&method, &uri))
            .then(|| auth::claimed(&web, req.headers()));
        async move {
            let audit_web = claimed.as_ref().map(|_| web.clone());
            let mut res = if let Some(res) = misdirected {
                res
            } else if direct {
                routes::paths(axum::extract::State(web), req.map(axum::body::Body::new)).await
            } else {
                let Ok(res) = app.oneshot(req).await;
                res
            };
            if let (Some(who), Some(web)) = (claimed, audit_web) {
                let status = res.status();
                let result = if status.is_success() || status.is_redirection() {
                    "ok".to_string()
                } else {
                    status.to_string()
                };
                web.ctx.audit.record(&crate::server::audit::Change {
                    who: &who,
                    from: web.peer.ip(),
                    door: "http",
                    what: method.as_str(),
                    path: &escape(uri.path()),
                    result: &result,
                });
            }
            secure(&mut res);
            weak_when_encoded(&mut res);
            // Logged once the body is sent (or given up on), with the
            // bytes that really went: none for HEAD, part of one cut off.
            let line = access::Line {
                tag,
                method,
                uri,
                version,
                status: res.status(),
                started,
            };
            Ok::<_, Infallible>(res.map(|body| access::counted(body, line)))
        }
    });
    let conn = builder(&ctx)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = ctx.stop.cancelled() => {
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // hyper answered a request it could not read (400, or 431 for a
        // head too large) itself: it gets its log line all the same.
        if e.is_parse_too_large() {
            access::unread(&unread_tag, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        } else if e.is_parse() {
            access::unread(&unread_tag, StatusCode::BAD_REQUEST);
        }
        debug!("http connection ended: {e}");
    }
}

/// Whether a request comes from a browser, which opens connections ahead
/// of need (see [`Ctx::silence_wait`]).
fn from_a_browser<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::USER_AGENT)
        .is_some_and(|ua| ua.as_bytes().starts_with(b"Mozilla/"))
}

/// A 421 for a request whose `Host` (or absolute URI) names something
/// other than this server: what a page on another site gets when it has
/// pointed its own name at this server (DNS rebinding). A request with no
/// name at all comes from no browser, and is served.
fn misdirected<B>(ctx: &Ctx, req: &Request<B>) -> Option<Response> {
    let host = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => match req.headers().get(header::HOST) {
            Some(h) => h.to_str().unwrap_or(""),
            None => return None,
        },
    };
    if ctx.answers_to(host) {
        return None;
    }
    let shown = escape(host);
    Some(error(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "this server does not answer to the name {shown}; if that is one of its names, start it with --allow-host {shown}"
        ),
    ))
}

/// Whether a request asks for a change to be audited: any method but the
/// reads, on a path of the share or a tus upload.
fn changes(method: &axum::http::Method, uri: &axum::http::Uri) -> bool {
    let read = matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS" | "PROPFIND");
    // The server's own routes change nothing in the folder, but for tus
    // uploads and share links (a grant of access).
    let own = uri.path().starts_with(PREFIX)
        && !uri.path().starts_with("/.ferry/tus")
        && uri.path() != "/.ferry/share";
    !read && !own
}

/// A request RFC 9112 (section 3.2) says to refuse: an HTTP/1.1 one
/// without Host, and any with two. The connection is closed after the
/// answer. (A request with both Content-Length and Transfer-Encoding is
/// framed by Transfer-Encoding alone: hyper drops the other, as the RFC
/// allows.)
fn malformed<B>(req: &Request<B>) -> Option<Response> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    let why = if hosts > 1 {
        "a request carries one Host header, not several"
    } else if hosts == 0 && req.version() == Version::HTTP_11 && req.uri().authority().is_none() {
        "an HTTP/1.1 request needs a Host header"
    } else {
        return None;
    };
    let mut r = error(StatusCode::BAD_REQUEST, why);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(r)
}

/// The HTTP/1.1 settings of every connection.
fn builder(ctx: &Ctx) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Covers the wait for the next request on a kept-alive connection
        // too: no slowloris, no idle connection held past it.
        .header_read_timeout(ctx.config.deadlines.header)
        .max_header_size(MAX_HEAD)
        .max_buf_size(MAX_HEAD.max(8192) * 4)
        .keep_alive(true);
    builder
}

/// Answers a plain HTTP request to a server that requires TLS with a
/// permanent redirect to the same URL over https (same host and port: TLS
/// shares it), then closes. A request without a usable Host gets a 400 that
/// says to use https.
pub(crate) async fn redirect_to_tls(stream: Stream, initial: BytesMut, ctx: Arc<Ctx>) {
    let io = crate::wire::Guarded::new(initial.freeze(), stream, ctx.config.deadlines.body);
    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| valid_authority(h));
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = host.and_then(|h| HeaderValue::try_from(format!("https://{h}{path}")).ok());
        let mut res = match location {
            Some(loc) => {
                let mut r = (
                    StatusCode::PERMANENT_REDIRECT,
                    "this server requires https\n",
                )
                    .into_response();
                r.headers_mut().insert(header::LOCATION, loc);
                r
            }
            None => (StatusCode::BAD_REQUEST, "this server requires https\n").into_response(),
        };
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        Ok::<_, Infallible>(res)
    });
    let mut b = builder(&ctx);
    b.keep_alive(false);
    if let Err(e) = b.serve_connection(TokioIo::new(io), service).await {
        debug!("http connection ended: {e}");
    }
}

/// Whether a Host header is a plain `host[:port]` (no path, user info or
/// spaces that would turn the redirect into something else).
fn valid_authority(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

/// Compress text-like responses above 1 KiB when the client asks; never
/// ranges, and never what is compressed already.
fn compression() -> CompressionLayer<impl Predicate> {
    let when = SizeAbove::new(1024)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::const_new("application/zip"))
        .and(NotForContentType::const_new("application/gzip"))
        .and(NotForContentType::const_new("application/x-tar"))
        // Streamed line by line (search results as found): compressed,
        // they would wait in the encoder.
        .and(NotForContentType::const_new("application/x-ndjson"))
        .and(NotForContentType::const_new("video/"))
        .and(NotForContentType::const_new("audio/"))
        .and(NotForContentType::const_new("application/octet-stream"))
        .and(NotForContentType::const_new(
            "application/offset+octet-stream",
        ))
        .and(
            |status: StatusCode,
             _: axum::http::Version,
             _: &axum::http::HeaderMap,
             _: &axum::http::Extensions| { status == StatusCode::OK },
        );
    CompressionLayer::new()
        .gzip(true)
        .br(true)
        // On a LAN the wire is rarely what waits: the fastest level keeps
        // most of the saving (a 10,000-entry page: 1.3 MB to about 0.1 MB)
        // at a fraction of the time brotli's default level takes.
        .quality(tower_http::CompressionLevel::Fastest)
        .compress_when(when)
}

/// A compressed response's tag made weak (`W/"…"`), as nginx does: the
/// bytes differ from the file's, which its strong tag names. Kept strong,
/// a client holding half of a compressed body could resume it with a
/// range of the file's own bytes (`If-Range` takes only strong tags);
/// weak, it gets the whole response again. `If-None-Match` compares
/// weakly, so a cached copy is still confirmed with a 304.
fn weak_when_encoded<B>(res: &mut axum::http::Response<B>) {
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_ENCODING) {
        return;
    }
    let Some(tag) = h.get(header::ETAG).and_then(|t| t.to_str().ok()) else {
        return;
    };
    if tag.starts_with("W/") {
        return;
    }
    if let Ok(weak) = HeaderValue::from_str(&format!("W/{tag}")) {
        h.insert(header::ETAG, weak);
    }
}

/// The headers every response carries.
fn secure<B>(res: &mut axum::http::Response<B>) {
    let h = res.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    h.entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
}

/// A plain-text error response.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let mut text = message.into();
    text.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}
