//! The datagram door: every UDP socket of the server (the shared port, and
//! the extra NTP port if one is set). Datagrams are told apart by content:
//! a discovery probe starts with `FERRY-DISCOVER/1`; 48 bytes or more with
//! an NTP version is NTP; `time` is the classic text query; anything else
//! is dropped in silence. Every answer passes the
//! per-source rate limiter first, and no answer is sent to a port below
//! 1024 other than 123, so the door cannot be aimed at other services.
//!
//! Each socket is served by a thread of its own doing blocking reads, not
//! by the async runtime: the receive timestamp is taken right after the
//! system call returns, with no scheduler in between, and a busy time
//! server costs no wake-ups of other threads.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use std::net::UdpSocket;
use tracing::debug;

use super::Ctx;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::discovery::client::GROUP_V4;
use crate::discovery::wire::{
    ANNOUNCE_PORT_OFFSET, Announcement, PROBE_MAGIC, announce_nonce, answer, parse_probe,
};
use crate::time::limit::{RateLimiter, Verdict};
use crate::time::server::{is_text_query, local_time_text};
use crate::time::sysclock::kernel_leap;

/// Largest datagram read; anything longer is truncated and dropped.
const MAX_DATAGRAM: usize = 2048;

/// Reads and answers datagrams until the server stops (the socket's read
/// timeout bounds how long that takes to notice).
pub(crate) fn serve(socket: &UdpSocket, ctx: &Arc<Ctx>, tcp_port: u16, shared: bool) {
    let udp_port = socket.local_addr().map_or(0, |a| a.port());
    let announce_every = cfg_announce(ctx, shared);
    let mut next_announce = Instant::now();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let cfg = &ctx.config;
    let mut limiter = RateLimiter::new(cfg.udp_rate, cfg.udp_burst, cfg.limits.limit_loopback);
    // The kernel's leap-second state changes at most daily: read it once a second.
    let mut leap = kernel_leap();
    let mut leap_read = Instant::now();
    loop {
        if ctx.stop.is_cancelled() {
            return;
        }
        if let Some(every) = announce_every {
            if Instant::now() >= next_announce {
                announce(socket, ctx, tcp_port, udp_port, every);
                next_announce = Instant::now() + Duration::from_secs(u64::from(every));
            }
        }
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(pair) => pair,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                debug!("udp receive failed: {e}");
                continue;
            }
        };
        // Taken before anything else, as close to the socket as we can.
        let received = SystemTime::now();
        if n == MAX_DATAGRAM || (peer.port() < 1024 && peer.port() != 123) || peer.port() == 0 {
            continue;
        }
        let datagram = &buf[..n];
        if datagram.starts_with(PROBE_MAGIC) {
            if !cfg.discovery {
                continue;
            }
            let Some(nonce) = parse_probe(datagram) else {
                continue;
            };
            if limiter.check(peer.ip(), Instant::now()) != Verdict::Allow {
                continue;
            }
            let reply = signed_announcement(ctx, tcp_port, udp_port, nonce, announce_every);
            // Never more than the probe: discovery cannot amplify.
            if reply.len() <= n {
                let _ = socket.send_to(&reply, peer);
            }
            continue;
        }
        let is_ntp = n >= crate::time::ntp::PACKET_LEN;
        let is_text = !is_ntp && is_text_query(datagram);
        if !is_ntp && !is_text {
            debug!(%peer, bytes = n, "datagram dropped: not for any service");
            continue;
        }
        let reply = match limiter.check(peer.ip(), Instant::now()) {
            Verdict::Allow if is_ntp => {
                if leap_read.elapsed().as_secs() >= 1 {
                    leap = kernel_leap();
                    leap_read = Instant::now();
                }
                ctx.time
                    .answer_ntp(datagram, received, leap, SystemTime::now)
                    .map(|r| r.to_vec())
            }
            Verdict::Allow => Some(local_time_text().into_bytes()),
            Verdict::Kiss if is_ntp => ctx.time.kiss_of_death(datagram).map(|r| r.to_vec()),
            Verdict::Kiss | Verdict::Drop => {
                debug!(%peer, "rate limited");
                None
            }
        };
        if let Some(reply) = reply {
            if let Err(e) = socket.send_to(&reply, peer) {
                debug!(%peer, "udp send failed: {e}");
            }
        }
    }
}

fn cfg_announce(ctx: &Ctx, shared: bool) -> Option<u32> {
    ctx.config.announce.filter(|_| shared)
}

/// This server's announcement for `nonce`, signed with the token if any.
fn signed_announcement(
    ctx: &Ctx,
    tcp_port: u16,
    udp_port: u16,
    nonce: String,
    every: Option<u32>,
) -> Vec<u8> {
    let me = announcement(ctx, tcp_port, udp_port, nonce, every);
    answer(me, ctx.config.token.as_ref().map(|t| t.expose().as_bytes()))
}

/// What this server says of itself, answering `nonce`.
pub(crate) fn announcement(
    ctx: &Ctx,
    tcp_port: u16,
    udp_port: u16,
    nonce: String,
    every: Option<u32>,
) -> Announcement {
    let cfg = &ctx.config;
    Announcement {
        name: cfg.name.clone(),
        instance: ctx.instance.clone(),
        software: crate::SOFTWARE.to_string(),
        tcp_port,
        udp_port,
        features: ctx.features(),
        auth_required: cfg.auth_required(),
        nonce,
        announce_every: every,
    }
}

/// Sends one unsolicited announcement to the announce port of every local
/// network this socket serves: the multicast group and each interface's
/// broadcast address (or just the bound interface's).
fn announce(socket: &UdpSocket, ctx: &Ctx, tcp_port: u16, udp_port: u16, every: u32) {
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let datagram = signed_announcement(ctx, tcp_port, udp_port, announce_nonce(now), Some(every));
    let port = udp_port.wrapping_add(ANNOUNCE_PORT_OFFSET);
    let mut targets: Vec<SocketAddr> = Vec::new();
    match local.ip() {
        IpAddr::V4(ip) => {
            if ip.is_unspecified() {
                targets.push(SocketAddr::from((GROUP_V4, port)));
            }
            for i in if_addrs::get_if_addrs().unwrap_or_default() {
                if let if_addrs::IfAddr::V4(v4) = &i.addr {
                    if ip.is_unspecified() || v4.ip == ip {
                        match v4.broadcast {
                            Some(b) => targets.push(SocketAddr::from((b, port))),
                            // Loopback has no broadcast: announce to itself.
                            None if i.is_loopback() && v4.ip == ip => {
                                targets.push(SocketAddr::from((ip, port)))
                            }
                            None => {}
                        }
                    }
                }
            }
        }
        IpAddr::V6(ip) if ip.is_loopback() => targets.push(SocketAddr::from((ip, port))),
        IpAddr::V6(_) => {}
    }
    for t in targets {
        if let Err(e) = socket.send_to(&datagram, t) {
            debug!(target = %t, "announcement not sent: {e}");
        }
    }
}
