//! The answers to the native `share` and `login` requests (see
//! `Request::Share` and `Request::Login`).

use serde::{Deserialize, Serialize};

/// Reply to `share`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShareReply {
    /// The link made: its token, for `/.ferry/share/TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The links listed (or the one made).
    #[serde(default)]
    pub links: Vec<ShareInfo>,
}

/// One share link, as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShareInfo {
    /// Its id, for `--revoke`.
    pub id: String,
    /// Who made it.
    pub by: String,
    /// What it shares.
    pub path: String,
    /// Upload-only.
    pub upload: bool,
    /// When it ends (seconds since the epoch).
    pub until: u64,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// Reply to `login`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoginReply {
    /// The login token (never logged).
    pub token: crate::secret::Secret,
    /// When it ends (seconds since the epoch).
    pub until: u64,
}
