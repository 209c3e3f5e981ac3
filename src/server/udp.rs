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
    let cfg = &ctx.config;
    let mut door = Door {
        socket,
        ctx,
        tcp_port,
        udp_port,
        announce_every,
        limiter: RateLimiter::new(cfg.udp_rate, cfg.udp_burst, cfg.limits.limit_loopback),
        // The kernel's leap-second state changes at most daily: read it
        // once a second.
        leap: kernel_leap(),
        leap_read: Instant::now(),
        out: Vec::with_capacity(BATCH),
        send_headers: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
    };
    let mut batch = Batch::new(socket);
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
        let got = match batch.receive(socket) {
            Ok(got) => got,
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
        for i in 0..got {
            let (datagram, peer, received) = batch.get(i);
            door.answer(datagram, peer, received);
        }
        door.flush();
    }
}

/// One socket's answering side.
struct Door<'a> {
    socket: &'a UdpSocket,
    ctx: &'a Ctx,
    tcp_port: u16,
    udp_port: u16,
    announce_every: Option<u32>,
    limiter: RateLimiter,
    leap: u8,
    leap_read: Instant,
    /// Replies made for the batch being answered, and their addresses.
    out: Vec<(Vec<u8>, SocketAddr)>,
    send_headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl Door<'_> {
    /// Answers one datagram, if it asks for anything this door gives;
    /// `received` is when it arrived.
    fn answer(&mut self, datagram: &[u8], peer: SocketAddr, received: SystemTime) {
        let (ctx, socket) = (self.ctx, self.socket);
        let n = datagram.len();
        if n >= MAX_DATAGRAM || (peer.port() < 1024 && peer.port() != 123) || peer.port() == 0 {
            return;
        }
        if datagram.starts_with(PROBE_MAGIC) {
            if !ctx.config.discovery {
                return;
            }
            let Some(nonce) = parse_probe(datagram) else {
                return;
            };
            if self.limiter.check(peer.ip(), Instant::now()) != Verdict::Allow {
                return;
            }
            let reply = signed_announcement(
                ctx,
                self.tcp_port,
                self.udp_port,
                nonce,
                self.announce_every,
            );
            // Never more than the probe: discovery cannot amplify.
            if reply.len() <= n {
                let _ = socket.send_to(&reply, peer);
            }
            return;
        }
        let is_ntp = n >= crate::time::ntp::PACKET_LEN;
        let is_text = !is_ntp && is_text_query(datagram);
        if !is_ntp && !is_text {
            debug!(%peer, bytes = n, "datagram dropped: not for any service");
            return;
        }
        let reply = match self.limiter.check(peer.ip(), Instant::now()) {
            Verdict::Allow if is_ntp => {
                if self.leap_read.elapsed().as_secs() >= 1 {
                    self.leap = kernel_leap();
                    self.leap_read = Instant::now();
                }
                ctx.time
                    .answer_ntp(datagram, received, self.leap, SystemTime::now)
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
            self.out.push((reply, peer));
        }
    }

    /// Sends the replies made for one batch, several to a system call
    /// (`sendmmsg`). A reply the kernel refuses (its sender's address
    /// unreachable) is dropped and the rest still go.
    fn flush(&mut self) {
        use nix::sys::socket::{MsgFlags, SockaddrStorage, sendmmsg};
        use std::io::IoSlice;
        use std::os::fd::AsRawFd;
        let mut from = 0;
        while from < self.out.len() {
            let rest = &self.out[from..];
            let slices: Vec<[IoSlice<'_>; 1]> =
                rest.iter().map(|(r, _)| [IoSlice::new(r)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = rest
                .iter()
                .map(|(_, p)| Some(SockaddrStorage::from(*p)))
                .collect();
            let sent = sendmmsg(
                self.socket.as_raw_fd(),
                &mut self.send_headers,
                &slices,
                &addrs,
                [],
                MsgFlags::empty(),
            )
            .map(|r| r.count());
            match sent {
                Ok(n) if n > 0 => from += n,
                Ok(_) => from += 1,
                Err(e) => {
                    debug!(peer = %rest[0].1, "udp send failed: {e}");
                    from += 1;
                }
            }
        }
        self.out.clear();
    }
}

/// Datagrams read several to a system call (`recvmmsg`), each with the
/// time the kernel took it off the wire (`SO_TIMESTAMPNS`): a busy time
/// server makes one call per batch instead of one per request, and a
/// request that waited in the queue behind others is still stamped with
/// when it arrived, not when it was read.
struct Batch {
    bufs: Vec<Vec<u8>>,
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    got: Vec<(usize, Option<SocketAddr>, Option<SystemTime>)>,
}

/// Datagrams read per call at most.
const BATCH: usize = 32;

impl Batch {
    fn new(socket: &UdpSocket) -> Batch {
        use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
        if let Err(e) = setsockopt(socket, ReceiveTimestampns, &true) {
            debug!("no kernel receive timestamps ({e}): the time of reading stands in");
        }
        // Room for a burst to wait in the kernel rather than be dropped
        // there (the kernel caps it at net.core.rmem_max).
        let _ = setsockopt(socket, nix::sys::socket::sockopt::RcvBuf, &(4 << 20));
        Batch {
            bufs: vec![vec![0u8; MAX_DATAGRAM]; BATCH],
            headers: nix::sys::socket::MultiHeaders::preallocate(
                BATCH,
                Some(nix::cmsg_space!(nix::sys::time::TimeSpec)),
            ),
            got: Vec::with_capacity(BATCH),
        }
    }

    /// Waits (up to the socket's read timeout) for one datagram, then takes
    /// as many as are queued, up to [`BATCH`]; returns how many.
    fn receive(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmmsg};
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;
        self.got.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .iter_mut()
            .map(|b| [IoSliceMut::new(&mut b[..])])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(std::io::Error::from)?;
        let now = SystemTime::now();
        for msg in results {
            let stamp = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(
                        SystemTime::UNIX_EPOCH
                            + Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32),
                    ),
                    _ => None,
                })
            });
            let peer = msg.address.and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
                    .or_else(|| {
                        a.as_sockaddr_in6()
                            .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
                    })
            });
            // A datagram that filled the buffer was cut: dropped below.
            let len = if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                MAX_DATAGRAM
            } else {
                msg.bytes
            };
            self.got.push((len, peer, stamp.or(Some(now))));
        }
        Ok(self.got.len())
    }

    /// The `i`th datagram read: its bytes, sender and arrival time (one
    /// without a sender address is given as sent from port 0, which is
    /// never answered).
    fn get(&self, i: usize) -> (&[u8], SocketAddr, SystemTime) {
        let (len, peer, at) = self.got[i];
        let peer = peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        (
            &self.bufs[i][..len.min(MAX_DATAGRAM)],
            peer,
            at.unwrap_or_else(SystemTime::now),
        )
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
        cluster: ctx.cluster(),
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
