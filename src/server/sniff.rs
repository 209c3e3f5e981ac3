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
    /// An HTTP request line, whatever its method (and the HTTP/2 preface,
    /// which has the same shape): the web door answers it, with 405 or 501
    /// when it does not serve that method.
    Http,
    /// Another protocol ferry does not speak (an SSH banner): closed.
    Foreign,
    /// Bytes that match nothing above: plain-text chat.
    Unknown,
    /// Nothing arrived within the sniffing time.
    Silent,
}

/// Longest first line waited for before deciding. A request line this long
/// that still looks like one goes to the web door (which refuses it); never
/// to the chat.
pub const MAX_FIRST_LINE: usize = 8 * 1024;

/// Methods sent to the web door as soon as they and a space arrive, without
/// waiting for the whole request line.
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
    b"PROPPATCH ",
    b"LOCK ",
    b"UNLOCK ",
];

/// How far a first line matches `METHOD SP TARGET SP PROTO/DIGIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestLine {
    /// It cannot be one.
    No,
    /// It could still become one; `far` says it has reached the second
    /// space (a method, a target, and the start of a version).
    Maybe { far: bool },
    /// `METHOD SP TARGET SP PROTO/DIGIT` is there.
    Yes,
}

/// Bytes a request may be preceded by: empty lines (which RFC 9112 asks a
/// server to skip), stray blanks and NULs, a UTF-8 byte order mark.
fn skip_leading(buf: &[u8]) -> &[u8] {
    let mut b = buf;
    loop {
        if let Some(rest) = b.strip_prefix(b"\xEF\xBB\xBF") {
            b = rest;
        } else if let Some((&c, rest)) = b.split_first() {
            if matches!(c, b'\r' | b'\n' | b' ' | b'\t' | 0) {
                b = rest;
            } else {
                return b;
            }
        } else {
            return b;
        }
    }
}

fn blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A byte of a method or a target, read leniently: anything visible,
/// UTF-8 included.
fn word(b: u8) -> bool {
    b > b' ' && b != 0x7f
}

/// Matches the first line leniently, as a lenient server would read it:
/// any visible method (HTTP's, WebDAV's, RTSP's, SIP's, or made up), blanks
/// or tabs between the parts, and any `PROTO/DIGIT` version.
fn request_line(buf: &[u8]) -> RequestLine {
    let buf = skip_leading(buf);
    let mut i = 0;
    // The method, then the target, each followed by blanks.
    for _ in 0..2 {
        let start = i;
        while i < buf.len() && word(buf[i]) {
            i += 1;
        }
        if i == buf.len() {
            return RequestLine::Maybe { far: false };
        }
        if i == start || !blank(buf[i]) {
            return RequestLine::No;
        }
        while i < buf.len() && blank(buf[i]) {
            i += 1;
        }
        if i == buf.len() {
            return RequestLine::Maybe { far: false };
        }
    }
    // The version: letters, a slash, a digit.
    let start = i;
    while i < buf.len() && buf[i].is_ascii_alphabetic() {
        i += 1;
    }
    let Some(&after) = buf.get(i) else {
        return RequestLine::Maybe { far: true };
    };
    if i == start || after != b'/' {
        return RequestLine::No;
    }
    match buf.get(i + 1) {
        None => RequestLine::Maybe { far: true },
        Some(d) if d.is_ascii_digit() => RequestLine::Yes,
        Some(_) => RequestLine::No,
    }
}

/// Another protocol's greeting that carries, or is followed by,
/// credentials a client meant for something else: the PROXY protocol
/// (v1 and v2), a Redis command array, SOCKS 4 and 5. `None`: not enough
/// bytes to tell.
fn foreign(buf: &[u8]) -> Option<bool> {
    const PROXY_V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
    const PREFIXES: &[&[u8]] = &[b"SSH-", b"PROXY ", PROXY_V2];
    let mut undecided = false;
    for p in PREFIXES {
        let n = buf.len().min(p.len());
        if buf[..n] == p[..n] {
            if n == p.len() {
                return Some(true);
            }
            undecided = true;
        }
    }
    match buf {
        // Redis: `*N\r\n$`.
        [b'*', rest @ ..] if rest.first().is_some_and(u8::is_ascii_digit) => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            match &rest[digits..] {
                [] | [b'\r'] | [b'\r', b'\n'] => return None,
                [b'\r', b'\n', b'$', ..] => return Some(true),
                _ => {}
            }
        }
        // SOCKS 4: version 4, connect or bind, then port and address.
        [4, 1 | 2, ..] if buf.len() >= 9 => return Some(true),
        [4, 1 | 2, ..] => return None,
        // SOCKS 5: version 5, N methods, the N methods.
        [5, n, rest @ ..] if *n > 0 && rest.len() == usize::from(*n) => return Some(true),
        _ => {}
    }
    if undecided { None } else { Some(false) }
}

/// Whether `buf` starts with one of the HTTP methods sent to the web door
/// at once, or (`partial`) with at least two letters of one.
fn known_method(buf: &[u8], partial: bool) -> bool {
    HTTP_METHODS.iter().any(|m| {
        let name = &m[..m.len() - 1];
        let n = buf.len().min(name.len());
        if partial {
            n >= 2 && buf[..n] == name[..n] && buf.len() <= name.len()
        } else {
            // The method alone on its line: `GET\r\n`.
            buf.starts_with(name) && matches!(buf.get(name.len()), Some(b'\r' | b'\n'))
        }
    })
}

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
    // A classic header's length has zero bytes where a request line has
    // text, so the two never overlap.
    if buf.len() >= 5 && looks_classic(buf) {
        return Some(Door::Classic);
    }
    match foreign(buf) {
        Some(true) => return Some(Door::Foreign),
        None => return None,
        Some(false) => {}
    }
    if buf.len() < 5 && looks_classic_prefix(buf) && !buf.contains(&b' ') {
        return None;
    }
    let line = skip_leading(buf);
    if HTTP_METHODS.iter().any(|m| line.starts_with(m)) || known_method(line, false) {
        return Some(Door::Http);
    }
    match request_line(buf) {
        RequestLine::Yes => Some(Door::Http),
        RequestLine::No => Some(Door::Unknown),
        RequestLine::Maybe { .. } if buf.len() >= MAX_FIRST_LINE => Some(Door::Http),
        RequestLine::Maybe { .. } => None,
    }
}

/// The door for what arrived before the peer paused or stopped sending:
/// bytes that still need more are a request once they hold at least two
/// letters of a known method (`GE`, `PROPF`) or have reached a version
/// (`METHOD TARGET H…`), and another protocol once they begin its greeting
/// (three bytes or more); a line typed without its end is chat.
pub fn classify_final(buf: &[u8]) -> Door {
    if buf.is_empty() {
        return Door::Silent;
    }
    if let Some(door) = classify(buf) {
        return door;
    }
    if foreign(buf).is_none() && buf.len() >= 3 {
        return Door::Foreign;
    }
    if known_method(skip_leading(buf), true) {
        return Door::Http;
    }
    match request_line(buf) {
        RequestLine::Yes | RequestLine::Maybe { far: true } => Door::Http,
        _ => Door::Unknown,
    }
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
    let mut buf = BytesMut::with_capacity(256);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(door) = classify(&buf) {
            return Ok((door, buf));
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) | Ok(Ok(0)) => return Ok((classify_final(&buf), buf)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// The door [`sniff`] would choose for `input` arriving in pieces of
/// `step` bytes and then nothing more: the pure core of the sniffer, for
/// tests and the fuzz target.
pub fn decide(input: &[u8], step: usize) -> Door {
    let step = step.max(1);
    let mut end = 0;
    while end < input.len() {
        end = (end + step).min(input.len());
        if let Some(door) = classify(&input[..end]) {
            return door;
        }
    }
    classify_final(input)
}

/// Whether an input starts like another protocol's request: a request
/// line up to its version (`METHOD SP TARGET SP PROTO/DIGIT`, whatever the
/// method and protocol, after any empty lines), the HTTP/2 preface, a
/// known method alone on its line, or another protocol's greeting (SSH,
/// PROXY, Redis, SOCKS). Such an input must never become chat; the fuzz
/// target and the tests hold [`classify`] and [`classify_final`] to it.
pub fn starts_like_a_request(buf: &[u8]) -> bool {
    !looks_classic(buf)
        && (foreign(buf) == Some(true)
            || request_line(buf) == RequestLine::Yes
            || known_method(skip_leading(buf), false))
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
        assert_eq!(classify(b"GETTING a"), None);
        assert_eq!(classify(b"GETTING a cup"), None);
        assert_eq!(classify(b"GETTING a cup\n"), Some(Door::Unknown));
        assert_eq!(classify(&[0xF0, b'X']), Some(Door::Unknown));
        // Not a classic length: text, for the chat once its line ends.
        assert_eq!(classify(&[0xFF, 0xFF, 0xFF, 0xFF, b'{']), None);
        assert_eq!(
            classify_final(&[0xFF, 0xFF, 0xFF, 0xFF, b'{']),
            Door::Unknown
        );
        assert_eq!(classify(&[5, 0, 0, 0, b'x']), Some(Door::Unknown));
    }

    #[test]
    fn any_request_line_goes_to_the_web_door_never_to_the_chat() {
        for line in [
            &b"LOCK /x HTTP/1.1\r\nAuthorization: Basic eDp5\r\n\r\n"[..],
            b"BREW /pot HTTP/1.1\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\n",
            b"x-custom /a http/1.0\n",
        ] {
            assert!(starts_like_a_request(line));
            assert_eq!(classify(line), Some(Door::Http), "{line:?}");
            // Cut anywhere after the version began, and then silence.
            let at = line
                .windows(2)
                .position(|w| w == b" H" || w == b" h")
                .unwrap()
                + 2;
            assert_eq!(classify_final(&line[..at]), Door::Http);
        }
        assert_eq!(classify(b"SSH-2.0-OpenSSH_9.6\r\n"), Some(Door::Foreign));
    }

    #[test]
    fn no_generated_request_ever_becomes_chat() {
        // A small deterministic generator of request-like and chat-like
        // inputs (the fuzz target door_classifier does the same with
        // arbitrary bytes).
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let pieces: &[&[u8]] = &[
            b"LOCK",
            b"lock",
            b"X",
            b"PRI",
            b"BREW",
            b"G",
            b"GET",
            b"M-SEARCH",
            b" ",
            b"  ",
            b"/",
            b"*",
            b"/a b",
            b"HTTP/1.1",
            b"HTTP/2.0",
            b"http/1.0",
            b"HTT",
            b"\r\n",
            b"\n",
            b"hello",
            b"Authorization: Basic eDp5",
            b"\x00",
            b"{",
            b"SSH-2.0-x",
        ];
        let mut requests = 0;
        for _ in 0..200_000 {
            let mut input = Vec::new();
            for _ in 0..(next() % 8 + 1) {
                input.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let step = (next() % 12 + 1) as usize;
            let door = decide(&input, step);
            if starts_like_a_request(&input) {
                requests += 1;
                assert!(
                    matches!(door, Door::Http | Door::Foreign),
                    "{:?} in steps of {step} went to {door:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
        assert!(
            requests > 1000,
            "the generator made only {requests} requests"
        );
    }

    #[test]
    fn other_protocols_and_lenient_request_lines_never_become_chat() {
        for input in [
            &b"\r\nGET / HTTP/1.1\r\nAuthorization: x\r\n"[..],
            b"\nPOST / HTTP/1.1\r\n",
            b" GET / HTTP/1.1\r\n",
            b"GET\t/\tHTTP/1.1\r\n",
            b"\x00GET / HTTP/1.1\r\n",
            b"\xEF\xBB\xBFGET / HTTP/1.1\r\n",
            "GÉT / HTTP/1.1\r\n".as_bytes(),
            b"GET\r\nAuthorization: x\r\n",
            b"DESCRIBE rtsp://x/a RTSP/1.0\r\nAuthorization: x\r\n",
            b"REGISTER sip:x SIP/2.0\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n",
            b"\r\n\r\n\x00\r\nQUIT\n\x21\x11",
            b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n",
            b"\x04\x01\x00\x50\x7f\x00\x00\x01alice\x00",
            b"\x05\x02\x00\x02",
        ] {
            assert!(starts_like_a_request(input), "{input:?}");
            for step in 1..=input.len() {
                let door = decide(input, step);
                assert!(
                    matches!(door, Door::Http | Door::Foreign),
                    "{:?} in steps of {step} went to {door:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
        // A method cut off by a pause is not chat either.
        assert_eq!(classify_final(b"GE"), Door::Http);
        assert_eq!(classify_final(b"PROPF"), Door::Http);
        // Links and plain words in a first line still are.
        assert_eq!(
            classify(b"look at http://example.com\n"),
            Some(Door::Unknown)
        );
        assert_eq!(classify(b"*waves*\n"), Some(Door::Unknown));
        assert_eq!(
            classify(b"\xE4\xBD\xA0\xE5\xA5\xBD \xE4\xB8\x96\n"),
            Some(Door::Unknown)
        );
    }

    #[test]
    fn plain_lines_are_still_chat() {
        assert_eq!(classify(b"hello there\n"), Some(Door::Unknown));
        assert_eq!(classify(b"Hi all, see /tmp now\n"), Some(Door::Unknown));
        assert_eq!(classify(b"/join dev\n"), Some(Door::Unknown));
        assert_eq!(classify(b"hello"), None);
        assert_eq!(classify_final(b"hello there"), Door::Unknown);
        assert_eq!(classify_final(b""), Door::Silent);
        // Past the longest first line, a line that still looks like a
        // request goes to the web door.
        let mut long = b"LOOK ".to_vec();
        long.resize(MAX_FIRST_LINE, b'a');
        assert_eq!(classify(&long), Some(Door::Http));
    }
}
