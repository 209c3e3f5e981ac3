//! An HTTP request body as the files service's upload reads it, and an
//! upload's outcome as an answer (PUT and tus share both).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;

use super::auth;
use super::error;
use super::paths::failure;
use crate::files::FilesError;

/// A request body, as an upload reads it.
pub struct HttpBody(pub axum::body::BodyDataStream);

impl crate::files::BodySource for HttpBody {
    type Error = axum::Error;

    async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, axum::Error> {
        loop {
            match self.0.next().await {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    buf.extend_from_slice(&chunk);
                    return Ok(chunk.len());
                }
            }
        }
    }
}

/// The answer for an upload whose body stopped short.
pub fn broke(b: crate::files::Broke<axum::Error>) -> Response {
    error(broke_status(&b), b.to_string())
}

/// The status for an upload whose body stopped short.
pub fn broke_status<E>(b: &crate::files::Broke<E>) -> StatusCode {
    use crate::files::Broke;
    match b {
        Broke::Lost(_) => StatusCode::BAD_REQUEST,
        Broke::Stalled => StatusCode::REQUEST_TIMEOUT,
        Broke::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        Broke::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Broke::Storage { full: true, .. } => StatusCode::INSUFFICIENT_STORAGE,
        Broke::Storage { full: false, .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The answer for an upload that could not begin or finish.
pub fn upload_failed(headers: &HeaderMap, e: FilesError) -> Response {
    match e {
        FilesError::Denied(d) => auth::denied(headers, d),
        FilesError::Exists(_) => error(
            StatusCode::CONFLICT,
            "the file appeared while it was uploaded",
        ),
        FilesError::NotFound(m) | FilesError::NotADirectory(m) => {
            error(StatusCode::CONFLICT, format!("no such folder: {m}"))
        }
        e => failure(e),
    }
}
