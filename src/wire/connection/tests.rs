use std::time::Duration;

use bytes::BytesMut;
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::config::TlsConfig;
use crate::tls::client::{TlsOptions, Trust, connect};
use crate::tls::server::{ServerTls, host_names};
use crate::wire::stream::Stream;

/// Socket buffers a few KiB deep, so that a sender is ahead of its peer
/// after a few frames.
fn small_buffers(tcp: &TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(tcp, sockopt::SndBuf, &4096).unwrap();
    setsockopt(tcp, sockopt::RcvBuf, &4096).unwrap();
}

/// Both ends of a TLS connection over loopback with small buffers.
async fn tls_pair(dir: &std::path::Path) -> (Connection, Connection) {
    let config = TlsConfig {
        files: None,
        required: false,
        handshake_timeout: Duration::from_secs(5),
    };
    let tls = ServerTls::load(&config, &dir.join("state"), &host_names("test-host")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = TlsOptions {
        trust: Trust::Insecure,
        known_hosts: dir.join("known_hosts"),
    };
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        small_buffers(&tcp);
        connect(tcp, &addr.to_string(), &opts).await.unwrap().0
    });
    let (tcp, _) = listener.accept().await.unwrap();
    small_buffers(&tcp);
    let server = tls
        .accept(tcp, BytesMut::new(), Duration::from_secs(5))
        .await
        .unwrap();
    let client = client.await.unwrap();
    let d = Deadlines::default();
    (
        Connection::from_stream(Stream::Server(Box::new(server)), BytesMut::new(), d),
        Connection::from_stream(Stream::Client(Box::new(client)), BytesMut::new(), d),
    )
}

/// A TLS stream keeps the records of a write it could not hand the socket
/// (full, the peer reading slowly) until it is written to or flushed
/// again: a reply that ended a burst of frames sat there until the
/// connection closed, minutes later, while the peer waited for it.
#[tokio::test]
async fn the_last_frame_over_tls_reaches_a_peer_that_reads_slowly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sender, mut peer) = tls_pair(dir.path()).await;
    let body = vec![b'x'; 3000];
    const FRAMES: usize = 40;
    let send = tokio::spawn(async move {
        for i in 0..FRAMES {
            sender
                .send(
                    Kind::Partial,
                    &serde_json::json!({ "i": i }),
                    body.len() as u64,
                )
                .await?;
            sender.send_body(&body).await?;
        }
        sender
            .send(Kind::Ok, &serde_json::json!({ "last": true }), 0)
            .await?;
        Ok::<_, ConnError>(sender)
    });
    let read = async {
        let mut partials = 0;
        loop {
            // A peer that takes its time over each frame.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let head = peer.next_head().await.unwrap();
            peer.discard_body().await.unwrap();
            match head.kind {
                Kind::Partial => partials += 1,
                Kind::Ok => return partials,
                other => panic!("{other:?}"),
            }
        }
    };
    let partials = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the last frame arrives");
    assert_eq!(partials, FRAMES);
    send.await.unwrap().unwrap();
}
