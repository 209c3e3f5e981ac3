//! The bucket: where it is (`s3://BUCKET/PREFIX`), the client that
//! reaches it, its keys, and its errors in the files service's words.

use object_store::aws::AmazonS3;
use object_store::path::Path;

use object_store::ObjectMeta;

use super::{FOLDER_MARKER, STATE_FOLDER};
use crate::files::FilesError;
use crate::files::entry::Mtime;
use crate::files::name::RelPath;

/// Where the files are: `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without slashes at either end (may be empty).
    pub prefix: String,
}

impl std::str::FromStr for StoreUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<StoreUrl, String> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s}: a store is named s3://BUCKET or s3://BUCKET/PREFIX"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{s}: the bucket is missing"));
        }
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() && Path::parse(&prefix).is_err() {
            return Err(format!("{s}: the prefix is not a valid key"));
        }
        Ok(StoreUrl {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// The bucket, the runtime its calls run on, and the key prefix.
#[derive(Debug)]
pub(super) struct Bucket {
    pub(super) store: std::sync::Arc<AmazonS3>,
    pub(super) handle: tokio::runtime::Handle,
    pub(super) url: StoreUrl,
}

impl Bucket {
    /// Runs a call of the store to its end from blocking code.
    pub(super) fn wait<F: std::future::Future>(&self, f: F) -> F::Output {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.handle.block_on(f))
            }
            _ => self.handle.block_on(f),
        }
    }

    /// The key of `rel`.
    pub(super) fn key(&self, rel: &RelPath) -> Path {
        let mut parts: Vec<&str> = Vec::new();
        if !self.url.prefix.is_empty() {
            parts.push(&self.url.prefix);
        }
        parts.extend(rel.parts().iter().map(String::as_str));
        // Both halves are valid keys: the prefix was parsed, and a
        // `RelPath` has no empty, dot or control-character components.
        Path::parse(parts.join("/")).unwrap_or_else(|_| nowhere())
    }

    /// The key of ferry's own object `name` below the state folder.
    pub(super) fn state_key(&self, name: &str) -> Path {
        let own = if self.url.prefix.is_empty() {
            format!("{STATE_FOLDER}/{name}")
        } else {
            format!("{}/{STATE_FOLDER}/{name}", self.url.prefix)
        };
        Path::parse(own).unwrap_or_else(|_| nowhere())
    }
}

/// The store's error in a line (the crate's own messages nest the cause).
///
/// The whole chain goes to the log, without any body the store sent
/// back (an S3 error body may name the credentials it was given); the
/// peer gets only what kind of failure it was.
pub(super) fn short(e: &object_store::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    let detail = text.split('<').next().unwrap_or("").trim_end();
    tracing::warn!("the store failed: {detail}");
    let lower = text.to_ascii_lowercase();
    let status = |code: &str| lower.contains(&format!("status {code}"));
    if lower.contains("timed out") || lower.contains("timeout") {
        "the store did not answer in time".into()
    } else if lower.contains("connect") || lower.contains("error sending request") {
        "the store cannot be reached".into()
    } else if status("403") || status("401") {
        "the store refused the server's credentials".into()
    } else if lower.contains("status 5") {
        "the store had an internal error".into()
    } else {
        "the store refused the request".into()
    }
}

/// A store's error on `rel` as the files service says it.
pub(super) fn error(rel: &RelPath, e: object_store::Error) -> FilesError {
    match e {
        object_store::Error::NotFound { .. } => {
            FilesError::NotFound(format!("{rel} does not exist"))
        }
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            FilesError::Exists(format!("{rel} exists"))
        }
        e => FilesError::Unavailable(format!("{rel}: {}", short(&e))),
    }
}

/// A key no file has, for a name that cannot be made a key (never the
/// empty key: that would be the whole bucket).
pub(super) fn nowhere() -> Path {
    Path::from_iter([STATE_FOLDER, "no-such-key"])
}

/// The store's own time of an object.
pub(super) fn mtime_of(meta: &ObjectMeta) -> Mtime {
    Mtime {
        secs: meta.last_modified.timestamp(),
        nanos: meta.last_modified.timestamp_subsec_nanos(),
    }
}

/// `SECS.NANOS`, as [`write`] stores a file's own time.
pub(super) fn parse_mtime(v: &str) -> Option<Mtime> {
    let (secs, nanos) = v.split_once('.').unwrap_or((v, "0"));
    let nanos: u32 = nanos.parse().ok()?;
    (nanos < 1_000_000_000).then_some(Mtime {
        secs: secs.parse().ok()?,
        nanos,
    })
}

/// Whether a name found in the bucket could be asked for by a client.
pub(super) fn servable(name: &str) -> bool {
    name != FOLDER_MARKER && RelPath::parse(name).is_ok_and(|r| r.parts().len() == 1)
}
