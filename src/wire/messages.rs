//! Typed JSON headers of the native protocol: every request a client can
//! send, every reply a server sends, and the stable error codes.
//!
//! These are the only types that cross the wire; services never see bytes.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// Protocol versions this build can speak, best first.
pub const SUPPORTED_VERSIONS: &[u8] = &[1];

/// A request header (a `Kind::Request` frame). The `op` field names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// First request of every connection.
    Hello {
        /// Versions the client speaks.
        versions: Vec<u8>,
        /// Free-form client software name, for logs.
        #[serde(default)]
        client: String,
    },
    /// Presents the shared token, or an account's name and password.
    Auth {
        /// The account logging in; absent for the server's token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// The token, or the account's password; never logged (see
        /// [`Secret`]).
        token: Secret,
    },
    /// Lists a folder.
    Ls {
        /// Path relative to the served root.
        path: String,
    },
    /// Describes one entry.
    Stat {
        /// Path relative to the served root.
        path: String,
    },
    /// Lists a whole tree below a folder, for recursive downloads.
    Walk {
        /// Folder relative to the served root.
        path: String,
    },
    /// Downloads a file, optionally resuming after `offset` bytes whose
    /// SHA-256 the client already holds.
    Get {
        /// File relative to the served root.
        path: String,
        /// Bytes the client already has.
        #[serde(default)]
        offset: u64,
        /// Hex digest of those bytes; required when `offset > 0`.
        #[serde(default)]
        prefix_sha256: Option<String>,
        /// The digest the transfer is verified with (see
        /// [`crate::files::digest::Algo`]): absent is SHA-256; `blake3`
        /// when the server's hello lists it. Every digest field of this
        /// exchange (named `sha256` for the first of them) then holds it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        /// Hash the bytes as they are sent, even where a digest of the file
        /// is remembered: a client whose copy failed its check asks again
        /// this way (a file changed through a mapping can keep its times).
        /// Only to servers that list `fresh` in their features.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fresh: bool,
    },
    /// Starts an upload; the server answers `Partial(PutReady)`.
    Put {
        /// Target file relative to the served root.
        path: String,
        /// Final size in bytes.
        size: u64,
        /// Modification time to set, if any.
        #[serde(default)]
        mtime: Option<Mtime>,
        /// Replace an existing file.
        #[serde(default)]
        force: bool,
        /// Offer to continue an interrupted upload of the same target.
        #[serde(default = "yes")]
        resume: bool,
        /// The digest the upload is verified with, as for `get`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
    },
    /// The bytes of an upload from `offset` to the end, as the frame body.
    Data {
        /// Where the body starts: the `offset` the server offered, or 0.
        offset: u64,
    },
    /// Ends an upload: the digest of the whole file as the client read it.
    Commit {
        /// Hex digest (SHA-256 unless the `put` named another).
        sha256: String,
    },
    /// Announces a folder upload; the body is a JSON array of [`TreeEntry`].
    /// Checked whole before anything of the batch is written.
    Plan {
        /// Destination folder relative to the served root.
        path: String,
        /// Whether existing files may be replaced.
        #[serde(default)]
        force: bool,
    },
    /// Removes a file or folder.
    Rm {
        /// Path relative to the served root.
        path: String,
        /// Remove a non-empty folder with everything in it.
        #[serde(default)]
        recursive: bool,
    },
    /// Creates a folder.
    Mkdir {
        /// Path relative to the served root.
        path: String,
        /// Create missing parents; succeed if it exists.
        #[serde(default)]
        parents: bool,
    },
    /// Renames or moves within the served root.
    Mv {
        /// Source path.
        from: String,
        /// Destination path.
        to: String,
        /// Replace an existing destination file.
        #[serde(default)]
        force: bool,
    },
    /// Runs a command (needs the exec permission, which needs auth). The
    /// server answers `Partial(ExecEvent)` frames (started, then output as
    /// it comes), then `Ok(ExitReport)`; once started, the client may send
    /// `stdin` and `cancel`, and it ends its side with `end` after the
    /// report.
    Exec(ExecRequest),
    /// Bytes for the running command's stdin, as the body; an empty body
    /// closes its stdin.
    Stdin,
    /// Stops the running command: `SIGTERM` to its group, then `SIGKILL`.
    Cancel,
    /// The client's terminal changed size: the running command's
    /// pseudo-terminal follows (only for an exec with `pty`).
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// The client's last frame for a command, sent after the exit report;
    /// in a chat, leaving it.
    End,
    /// Joins the chat: the connection then carries it. The server answers
    /// `Partial` frames, each a chat event, until the chat ends; the client
    /// sends `say` frames and finally `end`.
    Chat {
        /// Nickname wanted (a free `guestN` when absent).
        #[serde(default)]
        nick: Option<String>,
        /// Rooms to join (the lobby when empty); the first is where lines go.
        #[serde(default)]
        rooms: Vec<String>,
        /// Coming back: replay history only after this time (milliseconds
        /// since the epoch, the `ts_ms` of the last message seen). Only
        /// for servers whose hello lists `chat-since`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_ms: Option<i64>,
    },
    /// One chat line: text for the current room, or a `/` command.
    Say {
        /// The line, without its line ending.
        line: String,
    },
    /// Makes a share link to `path` (read, or upload-only into a folder),
    /// or, with `revoke`, revokes one; with neither, lists the links this
    /// client made (all of them, for the token holder).
    Share {
        /// Make a link to this path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// Upload-only into the folder, instead of read.
        #[serde(default)]
        upload: bool,
        /// Seconds the link lasts (default a week, at most a year).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<u64>,
        /// Revoke the link with this id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revoke: Option<String>,
    },
    /// Makes a login token for the account logged in with its password on
    /// this connection (`ferry login`): what `auth` takes in place of the
    /// password from then on.
    Login {
        /// Seconds the token lasts (default 90 days, at most a year).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires: Option<u64>,
    },
}

// The share and login requests' answers live beside them.
pub use super::share::{LoginReply, ShareInfo, ShareReply};

fn yes() -> bool {
    true
}

impl Request {
    /// The hello this build sends.
    pub fn hello() -> Request {
        Request::Hello {
            versions: SUPPORTED_VERSIONS.to_vec(),
            client: crate::SOFTWARE.to_string(),
        }
    }

    /// The `auth` request presenting `token`: a password goes with its
    /// account's name (`FERRY_USER`); the server's token and a login
    /// token, which stands for its account, go alone.
    pub fn auth(token: &Secret) -> Request {
        let login_token = crate::access::logins::Logins::looks_like(token.expose());
        Request::Auth {
            user: crate::access::accounts::login_user().filter(|_| !login_token),
            token: token.clone(),
        }
    }

    /// The `op` name, for logs and errors.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Auth { .. } => "auth",
            Request::Ls { .. } => "ls",
            Request::Stat { .. } => "stat",
            Request::Walk { .. } => "walk",
            Request::Get { .. } => "get",
            Request::Put { .. } => "put",
            Request::Data { .. } => "data",
            Request::Commit { .. } => "commit",
            Request::Plan { .. } => "plan",
            Request::Rm { .. } => "rm",
            Request::Mkdir { .. } => "mkdir",
            Request::Mv { .. } => "mv",
            Request::Exec { .. } => "exec",
            Request::Resize { .. } => "resize",
            Request::Stdin => "stdin",
            Request::Cancel => "cancel",
            Request::End => "end",
            Request::Chat { .. } => "chat",
            Request::Say { .. } => "say",
            Request::Share { .. } => "share",
            Request::Login { .. } => "login",
        }
    }
}

// What a listing, a stat and a walk describe are the files service's own
// types; the wire carries them as they serialise.
pub use crate::files::entry::{Entry, EntryKind, Mtime, SkipReason, Skipped, Tree, TreeEntry};

/// Reply to `hello`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HelloReply {
    /// The version chosen for this connection.
    pub version: u8,
    /// The server's display name.
    pub server: String,
    /// Server software and version, e.g. `ferry/0.1.0`.
    pub software: String,
    /// Services offered, e.g. `["files"]`.
    pub features: Vec<String>,
    /// Whether `auth` is needed before anything but `hello`.
    pub auth_required: bool,
    /// Whether a token is configured at all (auth can raise permissions).
    pub auth_available: bool,
    /// What this connection may do right now.
    pub permissions: Permissions,
}

/// Reply to `auth`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthReply {
    /// What this connection may do from now on.
    pub permissions: Permissions,
}

/// What a connection is allowed to do.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Permissions {
    /// ls, stat, walk, get.
    pub read: bool,
    /// put, mkdir, plan; with `delete`, overwrite and mv.
    pub upload: bool,
    /// rm; with `upload`, overwrite and mv.
    pub delete: bool,
    /// Remote commands (always needs auth).
    pub exec: bool,
    /// The chat hub.
    #[serde(default)]
    pub chat: bool,
}

impl From<crate::access::Rights> for Permissions {
    fn from(r: crate::access::Rights) -> Self {
        Permissions {
            read: r.read,
            upload: r.upload,
            delete: r.delete,
            exec: r.exec,
            chat: r.chat,
        }
    }
}

/// A batch of a listing or walk (`Partial`); the terminal `Ok` carries a
/// [`Count`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryBatch<T> {
    /// The entries of this batch.
    pub entries: Vec<T>,
}

/// Terminal reply of a listing or walk.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Count {
    /// How many entries were sent in all.
    pub count: u64,
    /// A walk's: the first [`MAX_SKIPPED`] entries it left out (absent
    /// when none, and from older servers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// A walk's: how many more it left out than `skipped` names.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_more: u64,
}

/// The most left-out entries a walk's reply names; past them, or past
/// [`SKIPPED_BYTES`] of them, only their count is sent.
pub const MAX_SKIPPED: usize = 100;

/// The most JSON the named left-out entries take, well inside a frame's
/// header cap (a path is up to 4 KiB, more once escaped in JSON).
const SKIPPED_BYTES: usize = 32 * 1024;

impl Count {
    /// The terminal reply of a walk that sent `count` entries and left
    /// out `skipped`.
    pub fn walked(count: u64, mut skipped: Vec<Skipped>) -> Count {
        let mut bytes = 0;
        let named = skipped
            .iter()
            .take(MAX_SKIPPED)
            .take_while(|s| {
                bytes += serde_json::to_vec(s).map_or(usize::MAX / 2, |j| j.len() + 1);
                bytes <= SKIPPED_BYTES
            })
            .count();
        let more = (skipped.len() - named) as u64;
        skipped.truncate(named);
        Count {
            count,
            skipped,
            skipped_more: more,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `Partial` reply to `get`; the frame body carries the bytes from `offset`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GetStart {
    /// The file.
    pub entry: Entry,
    /// Where the body starts.
    pub offset: u64,
}

/// `Partial` reply to `put`: where the client should start sending.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PutReady {
    /// Bytes of an earlier interrupted upload the server holds.
    pub offset: u64,
    /// Hex digest of those bytes (absent when `offset` is 0).
    pub prefix_sha256: Option<String>,
}

/// Terminal reply to a finished transfer (`get` or `commit`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Digest {
    /// Size of the whole file.
    pub size: u64,
    /// Hex digest of the whole file (SHA-256 unless the request named
    /// another).
    pub sha256: String,
}

/// Terminal reply with nothing to say but success.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Done {}

/// The header of an `Error` frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorReply {
    /// Stable, machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

// What exec requests and reports carry lives beside this file.
pub use super::exec::{ExecEvent, ExecRequest, ExitReport, PtySize, STDIN_WINDOW, Stream};

/// Stable error codes. New codes may be added; clients treat unknown ones
/// as `internal`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request could not be parsed or is out of order.
    BadRequest,
    /// No common protocol version.
    UnsupportedVersion,
    /// The first request was not `hello`.
    HelloRequired,
    /// This needs `auth` first.
    AuthRequired,
    /// Wrong token.
    AuthFailed,
    /// The server does not grant this.
    Forbidden,
    /// No such file or folder.
    NotFound,
    /// The target exists and `force` was not given.
    Exists,
    /// A path component is not a folder.
    NotADirectory,
    /// A folder where a file was expected.
    IsADirectory,
    /// A folder that is not empty (rm without recursive).
    NotEmpty,
    /// A name breaks the naming rules.
    InvalidName,
    /// The received bytes do not hash to what the sender said.
    ChecksumMismatch,
    /// The bytes the client holds differ from the server's prefix.
    ResumeMismatch,
    /// Too many connections or transfers; try again later.
    Busy,
    /// A header or body is larger than allowed.
    TooLarge,
    /// The peer was too slow.
    Timeout,
    /// The server is shutting down.
    ShuttingDown,
    /// This server takes only TLS connections (from elsewhere than
    /// loopback); connect again with TLS.
    TlsRequired,
    /// Reading or writing storage failed.
    Io,
    /// The storage cannot be reached now; try again later.
    Unavailable,
    /// Anything else.
    #[serde(other)]
    Internal,
}

impl ErrorCode {
    /// The wire spelling, e.g. `not_found`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::AuthRequired => "auth_required",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Exists => "exists",
            ErrorCode::NotADirectory => "not_a_directory",
            ErrorCode::IsADirectory => "is_a_directory",
            ErrorCode::NotEmpty => "not_empty",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::ChecksumMismatch => "checksum_mismatch",
            ErrorCode::ResumeMismatch => "resume_mismatch",
            ErrorCode::Busy => "busy",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::TlsRequired => "tls_required",
            ErrorCode::Io => "io",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&crate::files::FilesError> for ErrorCode {
    /// The stable code for a files error.
    fn from(e: &crate::files::FilesError) -> Self {
        use crate::files::FilesError;
        match e {
            FilesError::Name(_) => ErrorCode::InvalidName,
            FilesError::Denied(d) if d.asks_login() => ErrorCode::AuthRequired,
            FilesError::Denied(_) => ErrorCode::Forbidden,
            FilesError::NotFound(_) => ErrorCode::NotFound,
            FilesError::Forbidden(_) => ErrorCode::Forbidden,
            FilesError::Exists(_) => ErrorCode::Exists,
            FilesError::NotADirectory(_) => ErrorCode::NotADirectory,
            FilesError::IsADirectory(_) => ErrorCode::IsADirectory,
            FilesError::NotEmpty(_) => ErrorCode::NotEmpty,
            FilesError::Busy(_) => ErrorCode::Busy,
            FilesError::TooLarge(_) => ErrorCode::TooLarge,
            FilesError::Io(_) => ErrorCode::Io,
            FilesError::Unavailable(_) => ErrorCode::Unavailable,
            FilesError::Checksum(_) => ErrorCode::ChecksumMismatch,
            FilesError::Incomplete(_) => ErrorCode::BadRequest,
            FilesError::Internal => ErrorCode::Internal,
        }
    }
}

#[cfg(test)]
mod tests;
