//! Why a native request could not go on, shared by the native door's
//! handlers (files, exec, chat), and how a service's refusal becomes one.

use crate::access::Denied;
use crate::files::FilesError;
use crate::wire::ConnError;
use crate::wire::messages::ErrorCode;

/// Why a request could not go on: an answer for the peer, or the end of
/// the connection.
pub(super) enum Fail {
    /// Send this error frame and go on with the next request.
    Reply(ErrorCode, String),
    /// Send this error frame, then close (the stream is out of step).
    Fatal(ErrorCode, String),
    /// The connection is gone or broken.
    Conn(ConnError),
}

impl Fail {
    /// The same refusal, but closing: for a request whose body is left
    /// unread.
    pub(super) fn fatal(self) -> Fail {
        match self {
            Fail::Reply(code, msg) => Fail::Fatal(code, msg),
            other => other,
        }
    }
}

impl From<ConnError> for Fail {
    fn from(e: ConnError) -> Self {
        Fail::Conn(e)
    }
}

impl From<FilesError> for Fail {
    fn from(e: FilesError) -> Self {
        match e {
            FilesError::Denied(d) => d.into(),
            e => Fail::Reply(ErrorCode::from(&e), e.to_string()),
        }
    }
}

impl From<Denied> for Fail {
    fn from(d: Denied) -> Self {
        match d {
            Denied::NeedsToken(a) => Fail::Reply(
                ErrorCode::AuthRequired,
                format!(
                    "{} needs authentication: set FERRY_TOKEN on the client",
                    a.words()
                ),
            ),
            Denied::NeedsLogin(_) => Fail::Reply(ErrorCode::AuthRequired, d.to_string()),
            Denied::NotGranted(_) | Denied::Forbidden(_) => {
                Fail::Reply(ErrorCode::Forbidden, d.to_string())
            }
        }
    }
}

impl From<crate::files::NameError> for Fail {
    fn from(e: crate::files::NameError) -> Self {
        Fail::Reply(ErrorCode::InvalidName, e.to_string())
    }
}
