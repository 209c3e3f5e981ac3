//! Last words for connections that will not be served: bytes written in
//! their door's framing (see [`super::door::Entrance::refusal`]), an HTTP
//! status, a line of text.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::wire::Stream;

/// Writes a last word (two seconds at most), then closes without losing it.
pub(super) async fn send_and_close(mut stream: TcpStream, out: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(out)).await;
    let _ = stream.shutdown().await;
    crate::wire::connection::linger(&mut stream).await;
}

/// A whole HTTP/1.1 response with a text body, for connections that do not
/// reach the web door.
pub(super) fn http_status(status: &str, message: &str) -> Vec<u8> {
    let body = format!("{message}\n");
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers an HTTP request that will not be served, and closes.
pub(super) async fn refuse_http(mut stream: Stream, status: &str, message: &str) {
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        stream.write_all(&http_status(status, message)),
    )
    .await;
    let _ = stream.shutdown().await;
    crate::wire::connection::linger(&mut stream).await;
}

/// Sends one line of text and closes.
pub(super) async fn text_line(mut stream: Stream, line: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(line.as_bytes()).await?;
        stream.write_all(b"\n").await?;
        stream.shutdown().await
    })
    .await;
    crate::wire::connection::linger(&mut stream).await;
}
