//! Binding the shared port (TCP and UDP per address), the accept loop, and
//! a connection's way to its door: sniffed, handshaken when it is TLS,
//! refused when TLS is required and it came in clear.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use super::door::entrance;
use super::refuse::{send_and_close, text_line};
use super::sniff::{Door, sniff};
use super::{ConnPermit, Ctx};
use crate::wire::Stream;
use crate::wire::messages::ErrorCode;

/// Binds TCP and UDP on one address; IPv6 sockets are v6-only so that the
/// IPv4 wildcard can share the port.
pub(super) fn bind_pair(addr: SocketAddr) -> anyhow::Result<(TcpListener, UdpSocket)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = Domain::for_address(addr);
    let t = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        t.set_only_v6(true)?;
    }
    t.set_reuse_address(true)?;
    t.set_nonblocking(true)?;
    t.bind(&addr.into())?;
    crate::wire::stream::listen_here_fast(&t);
    t.listen(1024)?;
    let tcp = TcpListener::from_std(t.into())?;
    // Port 0 means "any": the UDP socket takes the port TCP got.
    let udp = bind_udp(SocketAddr::new(addr.ip(), tcp.local_addr()?.port()))?;
    Ok((tcp, udp))
}

/// Binds one UDP socket (v6-only for IPv6, as for TCP).
pub(super) fn bind_udp(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let u = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        u.set_only_v6(true)?;
    }
    u.bind(&addr.into())?;
    // Announcements go to broadcast addresses.
    let _ = u.set_broadcast(true);
    if addr.ip().is_unspecified() && addr.is_ipv4() {
        // Discovery probes also come to a multicast group.
        crate::discovery::client::join_group_everywhere(&u);
    }
    // Served by a thread of its own with blocking reads (see udp.rs); the
    // timeout is how often it looks at the stop signal.
    u.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(u.into())
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    tracker: TaskTracker,
    refusing: Arc<Semaphore>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        crate::wire::stream::tune_accepted(&stream, &listener);
        match ctx.limits.try_acquire(peer.ip()) {
            Ok(permit) => {
                // crate::log::conn_span writes this span the same way.
                let span = info_span!("conn", peer = %peer);
                tracker.spawn(handle(stream, peer, ctx.clone(), permit).instrument(span));
            }
            Err(refusal) => {
                info!(peer = %peer, "refused: {refusal}");
                if let Ok(slot) = refusing.clone().try_acquire_owned() {
                    let timeout = ctx.config.sniff_timeout.min(Duration::from_secs(2));
                    tokio::spawn(async move {
                        busy(stream, timeout, &refusal.to_string()).await;
                        drop(slot);
                    });
                }
            }
        }
    }
}

/// Which door a connection (plain or decrypted) is for, from its first
/// bytes; `None` when it closed first.
async fn choose_door<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    ctx: &Ctx,
) -> Option<(Door, BytesMut)> {
    match sniff(stream, ctx.silence_wait(peer.ip())).await {
        Ok((door, initial)) => {
            debug!(?door, "door chosen");
            Some((door, initial))
        }
        Err(e) => {
            debug!("closed before a door was chosen: {e}");
            None
        }
    }
}

pub(super) async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    _permit: ConnPermit,
) {
    let Some((door, initial)) = choose_door(&mut stream, peer, &ctx).await else {
        return;
    };
    let stream = match (door, &ctx.tls) {
        (Door::Tls, Some(tls)) => {
            return Box::pin(serve_tls(tls, stream, initial, peer, ctx.clone())).await;
        }
        (Door::Tls, None) => {
            return text_line(
                Stream::Plain(stream),
                "ferry: TLS is not enabled on this server; connect without TLS",
            )
            .await;
        }
        (_, Some(tls)) if tls.required() && !peer.ip().is_loopback() => {
            info!(?door, "refused: plain connection, TLS required");
            return entrance(door).refuse_plain(stream, initial, ctx).await;
        }
        _ => Stream::Plain(stream),
    };
    entrance(door).serve(stream, initial, peer, ctx).await
}

/// The handshake, then the doors inside TLS, told apart as on a plain
/// connection.
async fn serve_tls(
    tls: &crate::tls::server::ServerTls,
    stream: TcpStream,
    initial: BytesMut,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
) {
    let write_limit = ctx.config.deadlines.body;
    let mut s = match tls.accept(stream, initial, write_limit).await {
        Ok(s) => s,
        Err(e) => {
            info!("TLS handshake failed: {e}");
            return;
        }
    };
    let Some((door, initial)) = choose_door(&mut s, peer, &ctx).await else {
        return;
    };
    entrance(door)
        .serve(Stream::Server(Box::new(s)), initial, peer, ctx)
        .await
}

/// Answers a refused connection in its own framing where it can be told.
pub(super) async fn busy(mut stream: TcpStream, timeout: Duration, message: &str) {
    let door = sniff(&mut stream, timeout)
        .await
        .map(|(d, _)| d)
        .unwrap_or(Door::Unknown);
    send_and_close(stream, &entrance(door).refusal(ErrorCode::Busy, message)).await;
}
