//! Discovery on loopback: every server found once, a silent server stays
//! silent, forged answers are refused when a token is set, and nothing
//! sent is larger than one unfragmented datagram (or than the probe).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::TestServer;
use ferry::discovery::client::{Targets, discover};
use ferry::discovery::wire::{self, Announcement, PROBE_LEN};
use ferry::secret::Secret;

const WAIT: Duration = Duration::from_millis(600);

#[tokio::test]
async fn every_server_once_and_the_silent_one_not_at_all() {
    let a = TestServer::start(|c| c.name = "alpha".into()).await;
    let b = TestServer::start(|c| {
        c.name = "beta".into();
        c.listen = vec!["127.0.0.1:0".parse().unwrap()];
    })
    .await;
    let quiet = TestServer::start(|c| {
        c.name = "quiet".into();
        c.discovery = false;
    })
    .await;
    // alpha is probed twice (two targets reach it): still listed once.
    let targets = Targets::Only(vec![a.addr, a.addr, b.addr, quiet.addr]);
    // Each server has its own port here, so probe each at its own address.
    let found = discover(&targets, 0, WAIT, None).await.unwrap();
    let names: Vec<_> = found
        .servers
        .iter()
        .map(|f| f.server.name.as_str())
        .collect();
    assert_eq!(names, vec!["alpha", "beta"]);
    assert_eq!(found.servers[0].server.tcp_port, a.addr.port());
    assert!(found.servers.iter().all(|f| f.addresses.len() == 1));
    assert_eq!(found.rejected, 0);
}

#[tokio::test]
async fn with_a_token_only_signed_answers_count() {
    let token = "shared-token-123";
    let real = TestServer::start(|c| {
        c.name = "real".into();
        c.token = Some(Secret::new(token));
    })
    .await;
    // A forger on another loopback address answers every probe, unsigned
    // and with a made-up signature.
    let forger = UdpSocket::bind("127.0.0.9:0").unwrap();
    let forger_addr = forger.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for i in 0..4 {
            let Ok((n, peer)) = forger.recv_from(&mut buf) else {
                return;
            };
            let Some(nonce) = wire::parse_probe(&buf[..n]) else {
                continue;
            };
            let fake = Announcement {
                name: "evil".into(),
                instance: "f".repeat(32),
                software: "ferry/0.1.0".into(),
                tcp_port: 1,
                udp_port: 1,
                features: vec![],
                auth_required: false,
                nonce,
                announce_every: None,
                cluster: None,
            };
            let key: &[u8] = if i % 2 == 0 { b"guessed-token" } else { b"" };
            let mut bytes = wire::answer(fake, (i % 2 == 0).then_some(key));
            if i % 2 == 1 {
                bytes.extend_from_slice(b"\nhmac=00");
            }
            let _ = forger.send_to(&bytes, peer);
        }
    });
    let targets = Targets::Only(vec![real.addr, forger_addr]);
    let found = discover(&targets, 0, WAIT, Some(token.as_bytes()))
        .await
        .unwrap();
    let names: Vec<_> = found
        .servers
        .iter()
        .map(|f| f.server.name.as_str())
        .collect();
    assert_eq!(names, vec!["real"]);
    assert!(
        !found.servers[0].server.auth_required,
        "anonymous reading is on"
    );
    assert_eq!(
        found.rejected, 1,
        "the forged answer was counted as refused"
    );
    // Without the token the client cannot tell; the forger shows up.
    let found = discover(&Targets::Only(vec![forger_addr]), 0, WAIT, None)
        .await
        .unwrap();
    assert_eq!(found.servers.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_bounded_and_bad_probes_get_nothing() {
    let s = TestServer::start(|c| c.name = "x".repeat(300)).await;
    let port = s.addr.port();
    tokio::task::spawn_blocking(move || {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        let target: SocketAddr = ([127, 0, 0, 1], port).into();
        let nonce = wire::random_hex().unwrap();
        u.send_to(&wire::probe(&nonce), target).unwrap();
        let mut buf = [0u8; 4096];
        let n = u.recv(&mut buf).unwrap();
        assert!(
            n <= PROBE_LEN,
            "answer of {n} bytes is larger than the probe"
        );
        const { assert!(PROBE_LEN < 1472) };
        let a = wire::parse_answer(&buf[..n], &nonce, None).unwrap();
        assert!(a.name.len() <= 64);
        // Short (unpadded) probes could amplify: no answer. Nor to garbage.
        let short = &wire::probe(&nonce)[..100];
        for bad in [
            short,
            b"FERRY-DISCOVER/1\n{}".as_slice(),
            &[b'F'; PROBE_LEN],
        ] {
            u.send_to(bad, target).unwrap();
            assert!(
                u.recv(&mut buf).is_err(),
                "answered {} bytes of junk",
                bad.len()
            );
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_servers_come_and_go_by_probe_and_by_announcement() {
    // beta answers probes; alpha only announces, on the same port number.
    let beta = TestServer::start(|c| {
        c.name = "beta".into();
        c.listen = vec!["127.0.0.2:0".parse().unwrap()];
    })
    .await;
    let port = beta.addr.port();
    let alpha = TestServer::start(|c| {
        c.name = "alpha".into();
        c.listen = vec![SocketAddr::from(([127, 0, 0, 1], port))];
        c.discovery = false;
        c.announce = Some(1);
    })
    .await;
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        beta.stop().await;
    });
    let mut events = Vec::new();
    ferry::discovery::client::watch(
        &Targets::Only(vec![SocketAddr::from(([127, 0, 0, 2], port))]),
        port,
        Duration::from_millis(400),
        Some(Duration::from_secs(5)),
        None,
        |c| {
            events.push(match c {
                ferry::discovery::client::Change::Up(f) => format!("+{}", f.server.name),
                ferry::discovery::client::Change::Down { name, .. } => format!("-{name}"),
            })
        },
    )
    .await
    .unwrap();
    stopper.await.unwrap();
    assert!(events.contains(&"+beta".to_string()), "{events:?}");
    assert!(
        events.contains(&"+alpha".to_string()),
        "heard by announcement: {events:?}"
    );
    assert!(events.contains(&"-beta".to_string()), "{events:?}");
    assert!(
        !events.contains(&"-alpha".to_string()),
        "alpha kept announcing: {events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| *e == "+alpha").count(),
        1,
        "{events:?}"
    );
    alpha.stop().await;
}
