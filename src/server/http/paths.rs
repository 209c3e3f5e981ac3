//! What every HTTP route shares: a request's path decoded once into a
//! served path, URLs written back, and a files error as an answer.

use axum::http::StatusCode;
use axum::response::Response;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use super::{Web, error};
use crate::files::FilesError;
use crate::files::name::RelPath;

/// Characters escaped in a path segment of a URL ferry writes.
pub const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']')
    .add(b'\'');

/// What RFC 8187 lets stand in an extended parameter value (`attr-char`):
/// letters, digits and `!#$&+-.^_`|~`; everything else is escaped.
const ATTR_CHAR: &AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The HTTP status for a files error.
pub fn status_of(e: &FilesError) -> StatusCode {
    match e {
        FilesError::Name(_) => StatusCode::BAD_REQUEST,
        FilesError::Denied(d) if d.asks_login() => StatusCode::UNAUTHORIZED,
        FilesError::Denied(_) => StatusCode::FORBIDDEN,
        FilesError::NotFound(_) => StatusCode::NOT_FOUND,
        FilesError::Forbidden(_) => StatusCode::FORBIDDEN,
        FilesError::Exists(_)
        | FilesError::NotADirectory(_)
        | FilesError::IsADirectory(_)
        | FilesError::NotEmpty(_)
        | FilesError::Busy(_) => StatusCode::CONFLICT,
        FilesError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        FilesError::Checksum(_) | FilesError::Incomplete(_) => StatusCode::BAD_REQUEST,
        FilesError::Io(_) | FilesError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        FilesError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A files error as a response.
pub fn failure(e: FilesError) -> Response {
    error(status_of(&e), e.to_string())
}

/// Runs a store call on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    web: &Web,
    f: impl FnOnce(&dyn crate::files::Storage) -> Result<T, FilesError> + Send + 'static,
) -> Result<T, FilesError> {
    web.ctx.files.blocking(f).await
}

/// The served path a request URL names, and whether it ends in `/`.
/// Percent-decoding happens once; what it yields goes through the one name
/// validator, so `%2e%2e`, `..%2f`, backslashes and empty segments are
/// refused, and a doubly encoded `%252e` is just a name with a `%` in it.
pub fn target(path: &str) -> Result<(RelPath, bool), Response> {
    if path == "*" {
        // The asterisk form names the server, not a path (RFC 9110 §7.1).
        return Err(error(
            StatusCode::BAD_REQUEST,
            "`*` names no path; only OPTIONS may ask about the server itself",
        ));
    }
    // A name never holds a slash: an encoded one is a path written to
    // be read two ways (a proxy or a rule before this server may have
    // taken it for a name).
    if path
        .as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f'))
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "an encoded slash (%2F) in a path: names hold no slash",
        ));
    }
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| error(StatusCode::BAD_REQUEST, "the path is not valid UTF-8"))?;
    let trailing = decoded.len() > 1 && decoded.ends_with('/');
    let rel =
        RelPath::parse(&decoded).map_err(|e| error(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok((rel, trailing))
}

/// The URL path of `rel` (a folder's ends in `/`). Always starts with one
/// `/` and never two, so it cannot be read as another host.
pub fn url_of(rel: &RelPath, folder: bool) -> String {
    let mut out = String::from("/");
    for (i, p) in rel.parts().iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.extend(utf8_percent_encode(p, SEGMENT));
    }
    if folder && !rel.is_root() {
        out.push('/');
    }
    out
}

/// `Content-Disposition: attachment` with the name in both forms.
pub fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, ATTR_CHAR)
    )
}
