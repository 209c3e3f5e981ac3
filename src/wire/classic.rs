//! The classic framing of the old Python exercise, as pure functions:
//! `struct.pack('i', len(header))` (4 bytes, little-endian, signed), then a
//! JSON header, then (for `put`, and in `get` replies) raw bytes whose count
//! the header's `filesize` gives.

use bytes::{Buf, BufMut, BytesMut};
use serde::{Deserialize, Serialize};

/// Largest classic header accepted.
pub const MAX_CLASSIC_HEADER: usize = 64 * 1024;

/// A classic request header. Unknown fields (an `md5`, say) are ignored, as
/// the old servers did.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ClassicRequest {
    /// `put` or `get`.
    pub cmd: String,
    /// The file's name, relative to the served root.
    pub filename: String,
    /// Body size for `put`.
    #[serde(default)]
    pub filesize: Option<u64>,
}

/// A classic reply header: `filesize` before the bytes of a `get`, or
/// `error` alone.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct ClassicReply {
    /// Echo of the command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Echo of the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Bytes that follow (get) or that were stored (put).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesize: Option<u64>,
    /// Hex SHA-256 of what was stored (put).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Present on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    /// Present on failure: what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a classic header is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ClassicError {
    /// Negative, zero or over [`MAX_CLASSIC_HEADER`].
    #[error("classic header length {0} is outside 1..={MAX_CLASSIC_HEADER}")]
    Length(i64),
    /// Not the JSON the classic client sends.
    #[error("classic header is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// True when `buf` (at least 5 bytes) looks like the start of a classic
/// frame: a plausible little-endian length, then `{`.
pub fn looks_classic(buf: &[u8]) -> bool {
    if buf.len() < 5 {
        return false;
    }
    let n = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    n >= 2 && (n as usize) <= MAX_CLASSIC_HEADER && buf[4] == b'{'
}

/// Takes one classic header off the front of `buf`; `Ok(None)` means more
/// bytes are needed. The length is checked before anything is reserved.
pub fn decode_request(buf: &mut BytesMut) -> Result<Option<ClassicRequest>, ClassicError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let n = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as i64;
    if n <= 0 || n as usize > MAX_CLASSIC_HEADER {
        return Err(ClassicError::Length(n));
    }
    let n = n as usize;
    if buf.len() < 4 + n {
        buf.reserve(4 + n - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    let header = buf.split_to(n);
    Ok(Some(serde_json::from_slice(&header)?))
}

/// Appends a classic reply header to `dst`.
pub fn encode_reply(reply: &ClassicReply, dst: &mut BytesMut) {
    let json = serde_json::to_vec(reply).expect("reply serialises");
    dst.put_i32_le(json.len() as i32);
    dst.put_slice(&json);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classic(json: &str) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i32_le(json.len() as i32);
        b.put_slice(json.as_bytes());
        b
    }

    #[test]
    fn decodes_the_exercise_put() {
        let mut b = classic(r#"{"cmd": "put", "filename": "a.txt", "filesize": 12, "md5": "x"}"#);
        assert!(looks_classic(&b));
        b.extend_from_slice(b"hello world!");
        let r = decode_request(&mut b).unwrap().unwrap();
        assert_eq!(r.cmd, "put");
        assert_eq!(r.filesize, Some(12));
        assert_eq!(&b[..], b"hello world!");
    }

    #[test]
    fn partial_and_bad_lengths() {
        let full = classic(r#"{"cmd":"get","filename":"a"}"#);
        let mut part = BytesMut::from(&full[..10]);
        assert!(decode_request(&mut part).unwrap().is_none());
        let mut neg = BytesMut::from(&(-5i32).to_le_bytes()[..]);
        assert!(matches!(
            decode_request(&mut neg),
            Err(ClassicError::Length(-5))
        ));
        let mut huge = BytesMut::from(&(1i32 << 30).to_le_bytes()[..]);
        assert!(decode_request(&mut huge).is_err());
        assert!(!looks_classic(b"\x00\x00\x00\x40{"));
        assert!(!looks_classic(b"GET / HTTP/1.1"));
        let mut junk = classic("{not json");
        assert!(matches!(
            decode_request(&mut junk),
            Err(ClassicError::Json(_))
        ));
    }
}
