//! `GET FOLDER/?search=TEXT[&limit=N]`: the files service's search,
//! streamed as newline-delimited JSON while it runs: one line per entry
//! found (`path` relative to the folder, `kind`, `size`, `mtime_unix`),
//! then `{"done":true,"cut":null|"results"|"entries"|"time"}`.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;

use super::auth::Who;
use super::paths::failure;
use super::{Web, error};
use crate::files::name::RelPath;
use crate::files::search::{Found, Query};

/// Answers a search of the folder `rel`.
pub fn search(web: &Web, who: &Who, rel: RelPath, text: &str, limit: Option<usize>) -> Response {
    let query = match Query::parse(text, limit) {
        Ok(q) => q,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let rx = match web.ctx.files.search(who.id, rel, query) {
        Ok(rx) => rx,
        Err(e) => return failure(e),
    };
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        let found = rx.recv().await?;
        let line = match &found {
            Found::Hit(e) => serde_json::json!({
                "path": e.path,
                "kind": e.kind,
                "size": e.size,
                "mtime_unix": e.mtime.map(|m| m.secs),
            }),
            // How many entries were looked at is not said: it would count
            // what the visitor may not read.
            Found::End { cut } => serde_json::json!({ "done": true, "cut": cut }),
        };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        Some((Ok::<_, std::io::Error>(Bytes::from(bytes)), rx))
    })
    .fuse();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(lines))
        .unwrap_or_default()
}
