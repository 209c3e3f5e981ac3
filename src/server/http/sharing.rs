//! `POST /.ferry/share`: the page's "Share" action. The same request as
//! the native door's `share` (see `server::share`), with the form fields
//! `path`, `upload` (`1`) and `expires` (seconds); answers the link's URL.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::auth::{field, scripted, who};

use super::{PREFIX, Web, error};
use crate::server::fail::Fail;
use crate::wire::messages::ErrorCode;

/// Makes a share link for the client's session (or Basic or Bearer login).
pub(super) async fn make(State(web): State<Web>, req: Request) -> Response {
    let headers = req.headers().clone();
    if let Err(r) = scripted(&headers) {
        return r;
    }
    let who = match who(&web, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let Ok(body) = axum::body::to_bytes(req.into_body(), 4096).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a share request is at most 4 KiB",
        );
    };
    let text = String::from_utf8_lossy(&body);
    let Some(path) = field(&text, "path") else {
        return error(StatusCode::BAD_REQUEST, "name what to share: path=/PATH");
    };
    let upload = field(&text, "upload").is_some_and(|v| v == "1" || v == "true");
    let expires = match field(&text, "expires").map(|v| v.parse::<u64>()) {
        None => None,
        Some(Ok(s)) if s > 0 => Some(s),
        Some(_) => return error(StatusCode::BAD_REQUEST, "expires: seconds, above 0"),
    };
    let made = crate::server::share::answer(&web.ctx, who.id, Some(path), upload, expires, None);
    match made {
        Ok(reply) => {
            let token = reply.token.unwrap_or_default();
            let until = reply.links.first().map_or(0, |l| l.until);
            let url = format!("{PREFIX}share/{token}");
            axum::Json(serde_json::json!({ "url": url, "until": until })).into_response()
        }
        Err(Fail::Reply(code, msg) | Fail::Fatal(code, msg)) => {
            let status = match code {
                ErrorCode::AuthRequired => StatusCode::UNAUTHORIZED,
                ErrorCode::Forbidden => StatusCode::FORBIDDEN,
                ErrorCode::NotFound => StatusCode::NOT_FOUND,
                ErrorCode::InvalidName | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
                // As many links as the server keeps are running; the shared
                // records are away or busy: try again later, not a fault.
                ErrorCode::TooLarge
                | ErrorCode::Busy
                | ErrorCode::Unavailable
                | ErrorCode::Timeout
                | ErrorCode::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, msg)
        }
        Err(Fail::Conn(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, "failed"),
    }
}
