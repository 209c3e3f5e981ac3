//! The UDP side of the shared port. The port is bound with the TCP one so
//! that the datagram services (time, discovery) always find it free; until
//! they are built in, datagrams are read and dropped, and nothing is ever
//! sent back (so the port cannot be used to reflect traffic).

use std::sync::Arc;

use tokio::net::UdpSocket;
use tracing::debug;

use super::Ctx;

/// Largest datagram read; anything longer is truncated and dropped.
const MAX_DATAGRAM: usize = 2048;

/// Reads datagrams until the server stops.
pub(crate) async fn serve(socket: UdpSocket, ctx: Arc<Ctx>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, peer)) => debug!(%peer, bytes = n, "datagram dropped: no UDP service handles it"),
                Err(e) => debug!("udp receive failed: {e}"),
            }
        }
    }
}
