//! [`Secret`]: a string that never prints and compares in constant time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A shared secret (the auth token). `Debug` and `Display` print
/// `[redacted]`, so a secret cannot reach a log line by accident.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for sending it; never for logging.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the two differ and of their
    /// lengths (both sides are hashed to 32 bytes first).
    pub fn matches(&self, candidate: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(candidate.as_bytes());
        a.ct_eq(&b).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Writes `bytes` to `path` readable by its owner alone (0600), whole or
/// not at all: into a file beside it, synced, then renamed over it. For
/// keys and pins.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A key kept in the state folder as `name` (made once, 0600), so that
/// what it signs outlives a restart; a key of this run alone, with a
/// warning naming `what` it serves, when the folder cannot be written.
pub fn state_key(state_dir: &std::path::Path, name: &str, what: &str) -> Vec<u8> {
    let path = state_dir.join(name);
    if let Ok(key) = std::fs::read(&path) {
        if key.len() >= 32 {
            return key;
        }
    }
    let key = match crate::ids::random_bytes::<32>() {
        Ok(k) => k.to_vec(),
        Err(e) => {
            tracing::warn!("no randomness for the key of {what}: {e}");
            vec![0u8; 32]
        }
    };
    let written = std::fs::create_dir_all(state_dir).and_then(|()| write_private(&path, &key));
    if let Err(e) = written {
        tracing::warn!(
            "cannot keep the key of {what} in {}: {e}; they will not outlive a restart",
            state_dir.display()
        );
    }
    key
}

/// Bytes of the MAC a sealed text carries.
const SEAL_MAC: usize = 16;

/// `body` (JSON) as text only the holder of `key` can have made: the
/// body in base64url, a `.`, and a 16-byte HMAC-SHA256 of it. For upload
/// URLs and share links.
pub fn seal(key: &[u8], body: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let body = b64.encode(body);
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return body;
    };
    mac.update(body.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("{body}.{}", b64.encode(&tag[..SEAL_MAC]))
}

/// The body of a text [`seal`] made under `key`, or `None` when it was
/// not (or is longer than `max` bytes).
pub fn unseal(key: &[u8], text: &str, max: usize) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (body, tag) = text.split_once('.')?;
    if body.len() > max {
        return None;
    }
    let tag = b64.decode(tag).ok()?;
    if tag.len() != SEAL_MAC {
        return None;
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
    mac.update(body.as_bytes());
    mac.verify_truncated_left(&tag).ok()?;
    b64.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_value() {
        let s = Secret::new("correct horse");
        assert!(s.matches("correct horse"));
        assert!(!s.matches("correct hors"));
        assert!(!s.matches(""));
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
