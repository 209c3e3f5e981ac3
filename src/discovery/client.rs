//! `ferry discover`: probe the local networks and gather answers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use tokio::net::UdpSocket;

use super::wire::{Announcement, AnswerError, parse_answer, probe, random_hex};

/// The IPv4 multicast group servers join (administratively scoped).
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 255, 70, 70);

/// Joins the discovery group on every IPv4 interface (best effort: an
/// interface without multicast is still reached by broadcast).
pub fn join_group_everywhere(socket: &socket2::Socket) {
    for i in if_addrs::get_if_addrs().unwrap_or_default() {
        if let if_addrs::IfAddr::V4(v4) = &i.addr {
            let _ = socket.join_multicast_v4(&GROUP_V4, &v4.ip);
        }
    }
}

/// A server that answered, once, with every address it answered from.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// What it said about itself.
    #[serde(flatten)]
    pub server: Announcement,
    /// The source addresses of its answers.
    pub addresses: Vec<IpAddr>,
    /// How it was found: `probe` (signed when a token was given), `mdns`.
    pub via: Vec<&'static str>,
    /// For the nodes of one cluster, listed as one service: each node
    /// (`addresses` above is all of theirs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Node>,
}

/// One node of a cluster.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// Its instance.
    pub instance: String,
    /// Where it answered from.
    pub addresses: Vec<IpAddr>,
    /// Its TCP port.
    pub tcp_port: u16,
}

/// Servers of one cluster (the same `cluster` in their answers) as one
/// entry, with the addresses of all and each node; others as they are.
pub fn group_clusters(servers: Vec<Found>) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for f in servers {
        let Some(c) = f.server.cluster.clone() else {
            out.push(f);
            continue;
        };
        let node = Node {
            name: f.server.name.clone(),
            instance: f.server.instance.clone(),
            addresses: f.addresses.clone(),
            tcp_port: f.server.tcp_port,
        };
        match at.get(&c) {
            Some(&i) => {
                let g = &mut out[i];
                for a in f.addresses {
                    if !g.addresses.contains(&a) {
                        g.addresses.push(a);
                    }
                }
                for v in f.via {
                    if !g.via.contains(&v) {
                        g.via.push(v);
                    }
                }
                g.nodes.push(node);
            }
            None => {
                at.insert(c, out.len());
                out.push(Found {
                    nodes: vec![node],
                    ..f
                });
            }
        }
    }
    out
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
    let targets_kind = match targets {
        Targets::Lan => TargetsKind::Lan,
        Targets::Only(_) => TargetsKind::Only,
    };
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
    // Desktops' way too, on the LAN: mDNS, for as long as the probe waits.
    let heard = matches!(targets_kind, TargetsKind::Lan)
        .then(|| tokio::task::spawn_blocking(move || super::mdns::browse(wait)));
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
                    via: vec!["probe"],
                    nodes: Vec::new(),
                });
                if !entry.addresses.contains(&from.ip()) {
                    entry.addresses.push(from.ip());
                }
            }
            Err(AnswerError::BadSignature) => rejected += 1,
            Err(_) => {}
        }
    }
    if let Some(Ok(Ok(heard))) = match heard {
        Some(h) => Some(h.await),
        None => None,
    } {
        merge_heard(&mut found, heard, token.is_some());
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

enum TargetsKind {
    Lan,
    Only,
}

/// Adds what an mDNS browse heard: addresses of servers the probe found,
/// and, unless only signed answers count (`signed_only`: DNS-SD carries
/// no signature), servers it did not.
fn merge_heard(
    found: &mut HashMap<String, Found>,
    heard: Vec<super::mdns::Heard>,
    signed_only: bool,
) {
    for h in heard {
        match found.get_mut(&h.instance) {
            Some(f) => {
                for a in h.addresses {
                    if !f.addresses.contains(&a) {
                        f.addresses.push(a);
                    }
                }
                if !f.via.contains(&"mdns") {
                    f.via.push("mdns");
                }
            }
            None if !signed_only => {
                found.insert(
                    h.instance.clone(),
                    Found {
                        server: h.me,
                        addresses: h.addresses,
                        via: vec!["mdns"],
                        nodes: Vec::new(),
                    },
                );
            }
            None => {}
        }
    }
}

/// A change `ferry discover --watch` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Change {
    /// A server was seen for the first time (or again after going away).
    Up(Found),
    /// A server has not been heard from for three of its intervals.
    Down {
        /// Its name.
        name: String,
        /// Its instance.
        instance: String,
    },
}

/// Binds the announcement port (shared with other watchers) and, on the
/// LAN, joins the group; `None` when it cannot be had.
fn announcement_listener(port: u16, join_group: bool) -> Option<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).ok()?;
    s.set_reuse_address(true).ok()?;
    s.set_nonblocking(true).ok()?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())
        .ok()?;
    if join_group {
        join_group_everywhere(&s);
    }
    UdpSocket::from_std(s.into()).ok()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Watches: a probe round every `round`, announcements in between, and a
/// [`Change`] to `report` whenever a server comes or goes. Stops after
/// `limit` if given. With a `token`, only signed answers and
/// announcements count.
pub async fn watch(
    targets: &Targets,
    port: u16,
    round: Duration,
    limit: Option<Duration>,
    token: Option<&[u8]>,
    mut report: impl FnMut(Change),
) -> std::io::Result<()> {
    let listener = announcement_listener(
        port.wrapping_add(super::wire::ANNOUNCE_PORT_OFFSET),
        matches!(targets, Targets::Lan),
    );
    let end = limit.map(|l| tokio::time::Instant::now() + l);
    // instance -> (what it said, when last heard, how long until it counts as gone)
    let mut alive: HashMap<String, (Found, tokio::time::Instant, Duration)> = HashMap::new();
    let mut buf = [0u8; 2048];
    loop {
        let round_end = tokio::time::Instant::now() + round;
        let probing = discover(targets, port, round, token);
        tokio::pin!(probing);
        let mut heard: Vec<(Announcement, IpAddr)> = Vec::new();
        let round_result = loop {
            tokio::select! {
                r = &mut probing => break r?,
                got = async {
                    match &listener {
                        Some(l) => l.recv_from(&mut buf).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Ok((n, from)) = got {
                        if let Ok(a) = super::wire::parse_announcement(&buf[..n], unix_now(), token) {
                            heard.push((a, from.ip()));
                        }
                    }
                }
            }
        };
        let now = tokio::time::Instant::now();
        let mut seen: Vec<Found> = round_result.servers;
        for (a, ip) in heard {
            match seen.iter_mut().find(|f| f.server.instance == a.instance) {
                Some(f) if !f.addresses.contains(&ip) => f.addresses.push(ip),
                Some(_) => {}
                None => seen.push(Found {
                    server: a,
                    addresses: vec![ip],
                    via: vec!["announcement"],
                    nodes: Vec::new(),
                }),
            }
        }
        for f in seen {
            let every = f
                .server
                .announce_every
                .map_or(round, |s| Duration::from_secs(u64::from(s)).max(round));
            let key = f.server.instance.clone();
            if !alive.contains_key(&key) {
                report(Change::Up(f.clone()));
            }
            alive.insert(key, (f, now, every * 3));
        }
        let gone: Vec<String> = alive
            .iter()
            .filter(|(_, (_, last, grace))| now.duration_since(*last) > *grace)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some((f, _, _)) = alive.remove(&k) {
                report(Change::Down {
                    name: f.server.name,
                    instance: k,
                });
            }
        }
        if end.is_some_and(|e| tokio::time::Instant::now() >= e) {
            return Ok(());
        }
        tokio::time::sleep_until(round_end).await;
    }
}
