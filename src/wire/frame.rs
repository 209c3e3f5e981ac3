//! The fixed prefix in front of every native frame, as pure functions.
//!
//! No sockets here: bytes in, a typed [`Prefix`] out, and "need more bytes"
//! is an ordinary `Ok(None)`. Caps are checked on the prefix alone, before a
//! single byte of header is buffered or reserved.

use bytes::{BufMut, BytesMut};

/// First four bytes of every native frame. `0xF0` followed by ASCII is never
/// valid UTF-8, an HTTP method, a TLS record or a plausible classic length,
/// so the sniffer cannot mistake it for anything else.
pub const MAGIC: [u8; 4] = [0xF0, b'F', b'R', b'Y'];
/// The only protocol version this build speaks.
pub const VERSION: u8 = 1;
/// magic (4) + version (1) + kind (1) + header length (4) + body length (8).
pub const PREFIX_LEN: usize = 18;
/// Largest JSON header accepted or sent.
pub const MAX_HEADER_LEN: u32 = 64 * 1024;

/// What a frame is, from the fourth byte after the magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Client to server: a request (`op` in the header).
    Request = 1,
    /// Server to client: more is coming for the current request.
    Partial = 2,
    /// Server to client: the request succeeded; nothing more follows for it.
    Ok = 3,
    /// Server to client: the request failed; nothing more follows for it.
    Error = 4,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Request),
            2 => Some(Kind::Partial),
            3 => Some(Kind::Ok),
            4 => Some(Kind::Error),
            _ => None,
        }
    }

    /// True for the two replies that end a request.
    pub fn is_terminal(self) -> bool {
        matches!(self, Kind::Ok | Kind::Error)
    }
}

/// A decoded prefix: what follows it and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The frame's kind.
    pub kind: Kind,
    /// Bytes of JSON header that follow the prefix.
    pub header_len: u32,
    /// Bytes of raw body that follow the header.
    pub body_len: u64,
}

/// Why a byte stream is not a valid native frame stream.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The first four bytes are not [`MAGIC`].
    #[error("not a ferry frame (bad magic)")]
    BadMagic,
    /// A version this build does not speak.
    #[error("unsupported protocol version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u8),
    /// A kind byte outside 1..=4.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Header length over [`MAX_HEADER_LEN`] (or zero).
    #[error("frame header of {0} bytes is outside 1..={MAX_HEADER_LEN}")]
    HeaderLength(u32),
    /// The peer closed the stream in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    UnexpectedEof,
    /// The underlying stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Parses a prefix from the start of `buf`; `Ok(None)` means more bytes are
/// needed. Errors are reported as soon as the offending byte is present.
pub fn parse_prefix(buf: &[u8]) -> Result<Option<Prefix>, FrameError> {
    let seen = buf.len().min(MAGIC.len());
    if buf[..seen] != MAGIC[..seen] {
        return Err(FrameError::BadMagic);
    }
    if buf.len() > 4 && buf[4] != VERSION {
        return Err(FrameError::UnsupportedVersion(buf[4]));
    }
    if buf.len() > 5 && Kind::from_byte(buf[5]).is_none() {
        return Err(FrameError::UnknownKind(buf[5]));
    }
    if buf.len() < 10 {
        return Ok(None);
    }
    let header_len = u32::from_be_bytes([buf[6], buf[7], buf[8], buf[9]]);
    if header_len == 0 || header_len > MAX_HEADER_LEN {
        return Err(FrameError::HeaderLength(header_len));
    }
    if buf.len() < PREFIX_LEN {
        return Ok(None);
    }
    let mut body = [0u8; 8];
    body.copy_from_slice(&buf[10..18]);
    Ok(Some(Prefix {
        kind: Kind::from_byte(buf[5]).ok_or(FrameError::UnknownKind(buf[5]))?,
        header_len,
        body_len: u64::from_be_bytes(body),
    }))
}

/// Appends a whole frame head (prefix and JSON header) to `dst`.
pub fn encode_head(kind: Kind, header: &[u8], body_len: u64, dst: &mut BytesMut) {
    debug_assert!(!header.is_empty() && header.len() <= MAX_HEADER_LEN as usize);
    dst.reserve(PREFIX_LEN + header.len());
    dst.put_slice(&MAGIC);
    dst.put_u8(VERSION);
    dst.put_u8(kind as u8);
    dst.put_u32(header.len() as u32);
    dst.put_u64(body_len);
    dst.put_slice(header);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: Kind, header: &[u8], body: u64) -> BytesMut {
        let mut b = BytesMut::new();
        encode_head(kind, header, body, &mut b);
        b
    }

    #[test]
    fn round_trip() {
        let b = head(Kind::Partial, b"{}", 5_000_000_000);
        let p = parse_prefix(&b).unwrap().unwrap();
        assert_eq!(p.kind, Kind::Partial);
        assert_eq!(p.header_len, 2);
        assert_eq!(p.body_len, 5_000_000_000);
    }

    #[test]
    fn short_input_needs_more() {
        let b = head(Kind::Request, b"{}", 0);
        for n in 0..PREFIX_LEN {
            assert!(parse_prefix(&b[..n]).unwrap().is_none(), "len {n}");
        }
    }

    #[test]
    fn bad_magic_is_seen_on_first_byte() {
        assert!(matches!(parse_prefix(b"G"), Err(FrameError::BadMagic)));
        assert!(matches!(
            parse_prefix(&[0xF0, b'X']),
            Err(FrameError::BadMagic)
        ));
    }

    #[test]
    fn version_kind_and_length_checked_early() {
        let mut b = head(Kind::Request, b"{}", 0);
        b[4] = 9;
        assert!(matches!(
            parse_prefix(&b[..5]),
            Err(FrameError::UnsupportedVersion(9))
        ));
        let mut b = head(Kind::Request, b"{}", 0);
        b[5] = 77;
        assert!(matches!(
            parse_prefix(&b[..6]),
            Err(FrameError::UnknownKind(77))
        ));
        let mut b = head(Kind::Request, b"{}", 0);
        b[6..10].copy_from_slice(&(MAX_HEADER_LEN + 1).to_be_bytes());
        // Refused with only the prefix present: nothing else was buffered.
        assert!(matches!(
            parse_prefix(&b[..10]),
            Err(FrameError::HeaderLength(_))
        ));
        b[6..10].copy_from_slice(&0u32.to_be_bytes());
        assert!(matches!(
            parse_prefix(&b[..10]),
            Err(FrameError::HeaderLength(0))
        ));
    }
}
