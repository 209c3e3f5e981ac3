//! What a client reached when the answer to its hello is not ferry.

use std::net::SocketAddr;
use std::time::Duration;

use crate::wire::connection::ConnError;
use crate::wire::frame::FrameError;

/// Whether `e` is the peer closing or resetting the connection.
pub(super) fn closed(e: &ConnError) -> bool {
    match e {
        ConnError::Closed | ConnError::Frame(FrameError::UnexpectedEof) => true,
        ConnError::Frame(FrameError::Io(io)) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::BrokenPipe
        ),
        _ => false,
    }
}

/// Says that the port accepted and then said nothing for `waited`.
pub(super) fn silent(waited: Duration) -> String {
    format!(
        "it accepted the connection but did not answer ferry's hello within {} s: not a ferry server (check the port), or one too busy",
        waited.as_secs()
    )
}

/// Says what closed the connection on ferry's hello with no word. TLS
/// servers do that to bytes that are not TLS, so it is asked once in TLS.
pub(super) async fn what_closed(peer: Option<SocketAddr>, e: &ConnError) -> String {
    let tls = match peer {
        Some(p) => crate::tls::client::speaks_tls(p, Duration::from_secs(3)).await,
        None => false,
    };
    if tls {
        return what_answered(&[0x15, 0x03]);
    }
    format!(
        "it closed the connection without answering ferry's hello ({e}): not a ferry server (check the port)"
    )
}

/// Says what answered the hello with something that is not a ferry frame.
pub(super) fn what_answered(first: &[u8]) -> String {
    // An HTTP/0.9-style answer (what some servers send to a request line
    // they cannot read) is the page alone.
    let lower = first[..first.len().min(16)].to_ascii_lowercase();
    if first.starts_with(b"HTTP/")
        || lower.starts_with(b"<!doctype html")
        || lower.starts_with(b"<html")
    {
        return "an HTTP server answered, not ferry (check the port; a browser may open it)".into();
    }
    if matches!(first, [0x15 | 0x16, 0x03, ..]) {
        return "a TLS server answered in TLS: for ferry with --tls, connect with --tls; otherwise check the port".into();
    }
    if first.starts_with(b"SSH-") {
        return "an SSH server answered, not ferry (check the port)".into();
    }
    let shown: String = String::from_utf8_lossy(&first[..first.len().min(40)]).into();
    format!(
        "something that is not ferry answered ({:?}): check the port",
        crate::text::escape(shown.trim_end())
    )
}

#[cfg(test)]
mod tests {
    use super::what_answered;

    #[test]
    fn each_kind_of_answer_is_named() {
        assert!(what_answered(b"HTTP/1.0 400 Bad request").contains("HTTP server"));
        assert!(what_answered(b"<!DOCTYPE HTML>\n<html").contains("HTTP server"));
        assert!(what_answered(&[0x15, 0x03, 0x03, 0x00, 0x02]).contains("TLS"));
        assert!(what_answered(&[0x16, 0x03, 0x01]).contains("--tls"));
        assert!(what_answered(b"SSH-2.0-OpenSSH_9.2").contains("SSH server"));
        let other = what_answered(b"220 mail ESMTP\r\n\x1b[31m");
        assert!(
            other.contains("220 mail ESMTP") && !other.contains('\x1b'),
            "{other}"
        );
    }
}
