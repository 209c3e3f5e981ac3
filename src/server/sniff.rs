//! Tells the doors apart from a connection's first bytes.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::wire::classic::looks_classic;
use crate::wire::frame::MAGIC;

/// Which door a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The native protocol (the ferry CLI and library).
    Native,
    /// `struct.pack('i', len)` + JSON.
    Classic,
    /// A TLS ClientHello.
    Tls,
    /// An HTTP/1.x request line.
    Http,
    /// Bytes that match nothing above.
    Unknown,
    /// Nothing arrived within the sniffing time.
    Silent,
}

/// Longest prefix ever needed to decide.
const DECIDE_BY: usize = 8;

const HTTP_METHODS: &[&[u8]] = &[
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
    b"MKCOL ",
    b"MOVE ",
    b"COPY ",
    b"PROPFIND ",
];

/// Classifies a prefix; `None` means more bytes are needed.
pub fn classify(buf: &[u8]) -> Option<Door> {
    if buf.is_empty() {
        return None;
    }
    if buf[0] == MAGIC[0] {
        let n = buf.len().min(MAGIC.len());
        if buf[..n] != MAGIC[..n] {
            return Some(Door::Unknown);
        }
        return (n == MAGIC.len()).then_some(Door::Native);
    }
    if buf[0] == 0x16 {
        // TLS handshake record: 0x16, major version 3.
        return match buf.get(1) {
            None => None,
            Some(3) => Some(Door::Tls),
            Some(_) => Some(Door::Unknown),
        };
    }
    if buf[0].is_ascii_uppercase() {
        let mut possible = false;
        for m in HTTP_METHODS {
            let n = buf.len().min(m.len());
            if buf[..n] == m[..n] {
                if n == m.len() {
                    return Some(Door::Http);
                }
                possible = true;
            }
        }
        if possible && buf.len() < DECIDE_BY + 2 {
            return None;
        }
    }
    if buf.len() < 5 {
        return if looks_classic_prefix(buf) {
            None
        } else {
            Some(Door::Unknown)
        };
    }
    if looks_classic(buf) {
        return Some(Door::Classic);
    }
    Some(Door::Unknown)
}

/// Whether a prefix shorter than 5 bytes could still become a classic frame
/// (a little-endian length of at most 64 KiB).
fn looks_classic_prefix(buf: &[u8]) -> bool {
    match buf.len() {
        1 | 2 => true,
        3 => buf[2] <= 1,
        4 => buf[3] == 0 && buf[2] <= 1,
        _ => false,
    }
}

/// Reads until the door is known, or `timeout` passes with nothing (or too
/// little) to go on. Returns the bytes read, for the door to continue with.
pub async fn sniff<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> std::io::Result<(Door, BytesMut)> {
    let mut buf = BytesMut::with_capacity(64);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(door) = classify(&buf) {
            return Ok((door, buf));
        }
        if buf.len() >= DECIDE_BY + 2 {
            return Ok((Door::Unknown, buf));
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) if buf.is_empty() => return Ok((Door::Silent, buf)),
            Err(_) => return Ok((Door::Unknown, buf)),
            Ok(Ok(0)) => return Ok((Door::Unknown, buf)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_door_is_recognised() {
        let mut native = MAGIC.to_vec();
        native.extend_from_slice(&[1, 1, 0, 0]);
        assert_eq!(classify(&native), Some(Door::Native));
        assert_eq!(classify(&MAGIC[..2]), None);
        let mut classic = 42i32.to_le_bytes().to_vec();
        classic.push(b'{');
        assert_eq!(classify(&classic), Some(Door::Classic));
        assert_eq!(classify(&classic[..4]), None);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Door::Http));
        assert_eq!(classify(b"DELETE /x HTTP/1.1"), Some(Door::Http));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(&[0x16, 0x03, 0x01]), Some(Door::Tls));
        assert_eq!(classify(b"hello there\n"), Some(Door::Unknown));
        assert_eq!(classify(b"GETTING a cup"), Some(Door::Unknown));
        assert_eq!(classify(&[0xF0, b'X']), Some(Door::Unknown));
        assert_eq!(
            classify(&[0xFF, 0xFF, 0xFF, 0xFF, b'{']),
            Some(Door::Unknown)
        );
        assert_eq!(classify(&[5, 0, 0, 0, b'x']), Some(Door::Unknown));
    }
}
