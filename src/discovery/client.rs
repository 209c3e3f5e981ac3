//! `ferry discover`: probe the local networks and gather answers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use tokio::net::UdpSocket;

use super::wire::{Announcement, AnswerError, parse_answer, probe, random_hex};

/// The IPv4 multicast group servers join (administratively scoped).
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 255, 70, 70);

/// A server that answered, once, with every address it answered from.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// What it said about itself.
    #[serde(flatten)]
    pub server: Announcement,
    /// The source addresses of its answers.
    pub addresses: Vec<IpAddr>,
}

/// Everything one discovery round saw.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// Servers, each once, sorted by name.
    pub servers: Vec<Found>,
    /// Answers refused because they were not signed with our token.
    pub rejected: usize,
}

/// Where probes go: every local network, or only the addresses given.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Each up IPv4 interface's broadcast address, the IPv4 group, the IPv6
    /// all-nodes group on each interface, and loopback.
    Lan,
    /// Exactly these.
    Only(Vec<SocketAddr>),
}

fn lan_targets(port: u16) -> Vec<SocketAddr> {
    let mut out = vec![
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        SocketAddr::from((GROUP_V4, port)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    ];
    for i in if_addrs::get_if_addrs().unwrap_or_default() {
        if i.is_loopback() {
            continue;
        }
        match &i.addr {
            if_addrs::IfAddr::V4(v4) => {
                if let Some(b) = v4.broadcast {
                    out.push(SocketAddr::from((b, port)));
                }
            }
            if_addrs::IfAddr::V6(_) => {
                if let Some(index) = i.index {
                    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                    out.push(SocketAddr::V6(std::net::SocketAddrV6::new(
                        all_nodes, port, 0, index,
                    )));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Probes `targets` on `port` and gathers answers for `wait`. With a
/// `token`, only answers signed with it count.
pub async fn discover(
    targets: &Targets,
    port: u16,
    wait: Duration,
    token: Option<&[u8]>,
) -> std::io::Result<Discovery> {
    let nonce = random_hex()?;
    let datagram = probe(&nonce);
    let targets = match targets {
        Targets::Lan => lan_targets(port),
        Targets::Only(t) => t.clone(),
    };
    let v4 = UdpSocket::bind("0.0.0.0:0").await?;
    v4.set_broadcast(true)?;
    let v6 = UdpSocket::bind("[::]:0").await.ok();
    for t in &targets {
        // A network that cannot be reached is not an error for discovery.
        let _ = match (t, &v6) {
            (SocketAddr::V4(_), _) => v4.send_to(&datagram, t).await,
            (SocketAddr::V6(_), Some(s)) => s.send_to(&datagram, t).await,
            (SocketAddr::V6(_), None) => continue,
        };
    }
    let mut found: HashMap<String, Found> = HashMap::new();
    let mut rejected = 0;
    let deadline = tokio::time::Instant::now() + wait;
    let mut b4 = [0u8; 2048];
    let mut b6 = [0u8; 2048];
    loop {
        let got = tokio::time::timeout_at(deadline, async {
            match &v6 {
                Some(s6) => tokio::select! {
                    r = v4.recv_from(&mut b4) => r.map(|(n, a)| (b4[..n].to_vec(), a)),
                    r = s6.recv_from(&mut b6) => r.map(|(n, a)| (b6[..n].to_vec(), a)),
                },
                None => v4
                    .recv_from(&mut b4)
                    .await
                    .map(|(n, a)| (b4[..n].to_vec(), a)),
            }
        })
        .await;
        let Ok(Ok((bytes, from))) = got else { break };
        match parse_answer(&bytes, &nonce, token) {
            Ok(a) => {
                let entry = found.entry(a.instance.clone()).or_insert_with(|| Found {
                    server: a,
                    addresses: Vec::new(),
                });
                if !entry.addresses.contains(&from.ip()) {
                    entry.addresses.push(from.ip());
                }
            }
            Err(AnswerError::BadSignature) => rejected += 1,
            Err(_) => {}
        }
    }
    let mut servers: Vec<Found> = found.into_values().collect();
    servers.sort_by(|a, b| {
        a.server
            .name
            .cmp(&b.server.name)
            .then(a.addresses.cmp(&b.addresses))
    });
    Ok(Discovery { servers, rejected })
}
