//! The access log: one line per HTTP request in the common log format,
//! written once its response body is done, with the bytes that really
//! went out (none for HEAD; what was sent of a download cut off) and the
//! time the whole exchange took.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{Method, StatusCode, Uri, Version};

use crate::text::escape;

/// Where share links are opened (`/.ferry/share/TOKEN`).
const SHARE: &str = "/.ferry/share/";

/// What the line says of the request, kept until its body is done.
pub(super) struct Line {
    /// The connection's log span and the peer's address, formatted once.
    pub tag: Arc<(String, String)>,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub status: StatusCode,
    pub started: Instant,
}

/// `body`, counting what is taken of it, and logging `line` when dropped.
pub(super) fn counted(body: Body, line: Line) -> Body {
    Body::new(Counted {
        inner: body,
        sent: 0,
        line: Some(line),
    })
}

struct Counted {
    inner: Body,
    sent: u64,
    line: Option<Line>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.sent += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            write(&line, self.sent);
        }
    }
}

/// The line for a request that could not be read (hyper answered it):
/// the request field is `-`, as the common log format has it.
pub(super) fn unread(tag: &Arc<(String, String)>, status: StatusCode) {
    let (span, ip) = &**tag;
    crate::log::request(span, |m| {
        m.push_str(ip);
        m.push_str(" - - [");
        crate::log::stamp(|now, _| m.push_str(&now.clf));
        m.push_str("] \"-\" ");
        m.push_str(itoa::Buffer::new().format(status.as_u16()));
        m.push_str(" -");
    });
}

/// The request's target as the log shows it: its path and the names in
/// its query, never a value (a token, a password or a search someone
/// typed into a query string stays out of the log), nor a share link's
/// token, nor the user and password of an absolute URL; peer text
/// escaped, and a quote, which would end the field early for a log
/// parser, as `%22`.
fn target(uri: &Uri) -> String {
    let path = uri.path();
    let mut t = if share_link(path) {
        format!("{SHARE}…")
    } else {
        escape(path).into_owned()
    };
    if let Some(q) = uri.query() {
        t.push('?');
        for (i, pair) in q.split('&').enumerate() {
            if i > 0 {
                t.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) => {
                    t.push_str(&escape(name));
                    t.push_str("=…");
                }
                // A name of the server's own (`?tar`), or a value.
                None if pair.len() <= 12
                    && pair.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    }) =>
                {
                    t.push_str(pair)
                }
                None => t.push('…'),
            }
        }
    }
    t.replace('"', "%22")
}

/// Whether `path` opens a share link however it is spelled (`//.ferry/`,
/// `/.FERRY/`, `/%2eferry/`, `/x/../.ferry/`): the server refuses the odd
/// spellings, but the log line is written all the same.
fn share_link(path: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut parts: Vec<String> = Vec::new();
    for p in decoded.split(['/', '\\']) {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p.to_lowercase()),
        }
    }
    parts.len() > 2 && parts[0] == ".ferry" && parts[1] == "share"
}

/// One log line, peer text escaped.
fn write(l: &Line, sent: u64) {
    let (span, ip) = &*l.tag;
    crate::log::request(span, |m| {
        let mut n = itoa::Buffer::new();
        m.push_str(ip);
        m.push_str(" - - [");
        crate::log::stamp(|now, _| m.push_str(&now.clf));
        m.push_str("] \"");
        m.push_str(&escape(l.method.as_str()));
        m.push(' ');
        m.push_str(&target(&l.uri));
        m.push_str(match l.version {
            Version::HTTP_09 => " HTTP/0.9\" ",
            Version::HTTP_10 => " HTTP/1.0\" ",
            Version::HTTP_11 => " HTTP/1.1\" ",
            Version::HTTP_2 => " HTTP/2.0\" ",
            _ => " HTTP/?\" ",
        });
        m.push_str(n.format(l.status.as_u16()));
        m.push(' ');
        m.push_str(n.format(sent));
        // Milliseconds to one decimal.
        let tenths = (l.started.elapsed().as_micros() + 50) / 100;
        m.push(' ');
        m.push_str(n.format(tenths / 10));
        m.push('.');
        m.push_str(n.format(tenths % 10));
        m.push_str("ms");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_no_credential_of_a_target() {
        for (uri, want) in [
            ("/a/b.txt?tar", "/a/b.txt?tar"),
            (
                "/.ferry/login?token=SECRET&next=/x",
                "/.ferry/login?token=…&next=…",
            ),
            ("/.ferry/share/SECRET", "/.ferry/share/…"),
            ("http://user:SECRET@host:8/p?q=SECRET", "/p?q=…"),
            ("/say%22quote?x%22=1", "/say%22quote?x%22=…"),
            ("/?token%3DSECRET", "/?…"),
            ("/?SECRET", "/?…"),
            ("/d/?zip&json", "/d/?zip&json"),
            ("//.ferry/share/SECRET", "/.ferry/share/…"),
            ("/.FERRY/share/SECRET", "/.ferry/share/…"),
            ("/.ferry/./share/SECRET", "/.ferry/share/…"),
            ("/%2eferry/share/SECRET", "/.ferry/share/…"),
            ("/x/../.ferry//share/SECRET", "/.ferry/share/…"),
        ] {
            let got = target(&uri.parse().unwrap());
            assert_eq!(got, want, "{uri}");
            assert!(!got.contains("SECRET"), "{uri}: {got}");
        }
    }
}
