//! Where every HTTP request goes: the one routing table.
//!
//! The server's own routes all live below [`PREFIX`]; everything else is a
//! path of the served folder, answered by method in [`paths`]. Since
//! nothing else lives outside `PREFIX`, [`direct`] lets a plain read skip
//! the router and reach the same handler.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};

use super::paths::target;
use super::{PREFIX, Web, auth, dav, files, page, sharing, tus, ws};

/// Every route: the server's own below [`PREFIX`] (this is the one place
/// to add one), and everything else a path of the served folder.
pub(super) fn router(web: Web) -> Router {
    let own = Router::new()
        .route("/assets/{name}", get(page::asset))
        .route("/qr", get(page::qr))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/whoami", get(auth::whoami))
        .route("/share/{link}", get(auth::share))
        .route("/share", post(sharing::make))
        .route("/chat", get(ws::upgrade))
        .route("/tus", any(tus::collection))
        .route("/tus/", any(tus::collection))
        .route("/tus/{id}", any(tus::upload));
    Router::new()
        .nest(PREFIX.trim_end_matches('/'), own)
        .fallback(paths)
        .with_state(web)
}

/// Whether a request goes straight to [`paths`], where the router would
/// send it too: a GET or HEAD outside [`PREFIX`] (the commonest request,
/// a file read, then costs no routing).
pub(super) fn direct<B>(req: &axum::http::Request<B>) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && !req.uri().path().starts_with(PREFIX)
}

/// Every request on a path of the served folder, by method: what a path
/// answers is decided here and nowhere else.
pub(super) async fn paths(State(web): State<Web>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let m = &parts.method;
    let who = match auth::who(&web, &parts.headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if *m == Method::OPTIONS {
        // `OPTIONS *` asks about the server; any other, about a path.
        return match target(parts.uri.path()) {
            Err(r) if parts.uri.path() != "*" => r,
            _ => files::options(),
        };
    }
    if *m == Method::GET || *m == Method::HEAD {
        let (rel, trailing) = match target(parts.uri.path()) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let head = *m == Method::HEAD;
        let h = &parts.headers;
        return files::get(&web, &who, &parts.uri, h, rel, trailing, head).await;
    }
    if !files::ALLOW.split(", ").any(|a| a == m.as_str()) {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, files::ALLOW)],
            format!("{m} is not served here\n"),
        )
            .into_response();
    }
    // Everything else is WebDAV's (PUT, DELETE and MOVE included): one
    // door, whose locks every change honours.
    dav::serve(&web, &who, Request::from_parts(parts, body)).await
}
