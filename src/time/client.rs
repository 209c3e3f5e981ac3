//! Measuring a server's clock: several NTP exchanges, each giving offset
//! and round-trip delay from its four timestamps (see
//! [`offset_delay`](super::ntp::offset_delay)); the sample with the
//! smallest delay is the most trustworthy and is the one reported.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::net::UdpSocket;

use super::ntp::{self, MODE_CLIENT, MODE_SERVER, PACKET_LEN, Packet, Timestamp};

/// Why no measurement could be made.
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    /// The name did not resolve, or the socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No address for the name.
    #[error("no address found for {0}")]
    NoAddress(String),
    /// Every request went unanswered.
    #[error("no reply from {0} ({1} requests sent); is it an NTP server, and is UDP open?")]
    NoReply(SocketAddr, usize),
    /// The server said to go away (a kiss-o'-death with this code).
    #[error("the server refused with kiss code {0:?}")]
    Kiss(String),
    /// The server says its own clock is not synchronised (how it says so).
    #[error("the server's clock is not synchronised ({0})")]
    Unsynchronised(&'static str),
}

/// One exchange.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Server clock minus ours, seconds (positive: ours is behind).
    pub offset: f64,
    /// Round trip minus the server's processing time, seconds.
    pub delay: f64,
}

/// The result of `ferry time`.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Who answered.
    pub server: SocketAddr,
    /// The server's stratum.
    pub stratum: u8,
    /// Its reference ID, as text when printable, else dotted.
    pub reference_id: String,
    /// Its leap indicator.
    pub leap: u8,
    /// Offset of the best sample, seconds.
    pub offset: f64,
    /// Delay of the best sample, seconds.
    pub delay: f64,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// Requests that got no valid reply in time.
    pub lost: usize,
}

/// Queries `authority` (`host:port`) `count` times, `spacing` apart, each
/// waiting up to `timeout`.
pub async fn measure(
    authority: &str,
    count: usize,
    spacing: Duration,
    timeout: Duration,
) -> Result<Measurement, TimeError> {
    let server = tokio::net::lookup_host(authority)
        .await?
        .next()
        .ok_or_else(|| TimeError::NoAddress(authority.to_string()))?;
    let bind: SocketAddr = if server.is_ipv6() {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(server).await?;
    let mut samples = Vec::new();
    let mut header = None;
    let mut lost = 0;
    for i in 0..count.max(1) {
        if i > 0 {
            tokio::time::sleep(spacing).await;
        }
        match exchange(&socket, timeout).await? {
            Some((p, s)) => {
                header = Some(p);
                samples.push(s);
            }
            None => lost += 1,
        }
    }
    let Some(p) = header else {
        return Err(TimeError::NoReply(server, count));
    };
    let best = samples
        .iter()
        .min_by(|a, b| a.delay.total_cmp(&b.delay))
        .cloned()
        .expect("at least one sample");
    Ok(Measurement {
        server,
        stratum: p.stratum,
        reference_id: reference_text(p.stratum, p.reference_id),
        leap: p.leap,
        offset: best.offset,
        delay: best.delay,
        samples,
        lost,
    })
}

/// One request and its reply; `None` when nothing valid came back in time.
async fn exchange(
    socket: &UdpSocket,
    timeout: Duration,
) -> Result<Option<(Packet, Sample)>, TimeError> {
    let t1 = Timestamp::from_system(SystemTime::now());
    let request = ntp::encode(&Packet {
        version: 4,
        mode: MODE_CLIENT,
        transmit: t1,
        ..Packet::default()
    });
    socket.send(&request).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 1024];
    loop {
        let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Err(_) => return Ok(None),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(None),
            Ok(r) => r?,
        };
        let t4 = Timestamp::from_system(SystemTime::now());
        // Only a reply to this very request counts (origin echoes our
        // transmit timestamp); anything else is stale or forged.
        let Ok(p) = ntp::parse(&buf[..n]) else {
            continue;
        };
        if n < PACKET_LEN || p.mode != MODE_SERVER || buf[24..32] != request[40..48] {
            continue;
        }
        if p.stratum == 0 {
            return Err(TimeError::Kiss(
                String::from_utf8_lossy(&p.reference_id).into_owned(),
            ));
        }
        // A reply with no transmit time, or one sent before it was
        // received, says nothing about the server's clock (RFC 5905,
        // RFC 4330 section 5): discarded like a stray packet.
        if p.transmit.0 == 0 || p.transmit.diff(p.receive) < 0.0 {
            continue;
        }
        if p.leap == 3 {
            return Err(TimeError::Unsynchronised("leap indicator 3"));
        }
        if p.stratum > 15 {
            return Err(TimeError::Unsynchronised("stratum 16 or more"));
        }
        let (offset, delay) = ntp::offset_delay(t1, p.receive, p.transmit, t4);
        return Ok(Some((p, Sample { offset, delay })));
    }
}

fn reference_text(stratum: u8, id: [u8; 4]) -> String {
    if stratum <= 1
        || id
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == 0)
    {
        let s: String = id
            .iter()
            .take_while(|b| **b != 0)
            .map(|&b| b as char)
            .collect();
        crate::text::escape(&s).into_owned()
    } else {
        format!("{}.{}.{}.{}", id[0], id[1], id[2], id[3])
    }
}
