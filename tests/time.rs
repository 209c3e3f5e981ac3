//! The time service on the shared UDP port: the NTP server against real
//! clients (chrony, ntpsec's ntpdig, Python's ntplib), `ferry time` against
//! ferry and against a real chronyd, the classic text query, bad datagrams
//! and the rate limiter.

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use common::{TestServer, run_cli, spawn_bin_server};
use ferry::time::ntp::{self, MODE_CLIENT, MODE_SERVER, Packet, Timestamp};

fn udp_to(port: u16) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    s.connect(("127.0.0.1", port)).unwrap();
    s
}

fn request(mode: u8, version: u8, xmit: u64) -> Vec<u8> {
    ntp::encode(&Packet {
        version,
        mode,
        transmit: Timestamp(xmit),
        ..Packet::default()
    })
    .to_vec()
}

fn reply_to(s: &UdpSocket, datagram: &[u8]) -> Option<Vec<u8>> {
    s.send(datagram).unwrap();
    let mut buf = [0u8; 2048];
    s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntp_replies_and_what_gets_none() {
    let s = TestServer::start(|_| {}).await;
    let port = s.addr.port();
    tokio::task::spawn_blocking(move || {
        let u = udp_to(port);
        for version in [3u8, 4] {
            let req = request(MODE_CLIENT, version, 0xdead_beef_0123_4567);
            let reply = reply_to(&u, &req).expect("a reply to mode 3");
            assert_eq!(reply.len(), 48);
            assert_eq!(
                &reply[24..32],
                &req[40..48],
                "origin is the request's transmit, byte for byte"
            );
            let p = ntp::parse(&reply).unwrap();
            assert_eq!(
                (p.mode, p.version, p.stratum, p.leap),
                (MODE_SERVER, version, 10, 0)
            );
            let now = Timestamp::from_system(std::time::SystemTime::now());
            assert!(now.diff(p.transmit).abs() < 5.0);
            assert!(p.transmit.diff(p.receive) >= 0.0);
        }
        // A request with extensions gets a reply no larger than 48 bytes.
        let mut long = request(MODE_CLIENT, 4, 7);
        long.extend_from_slice(&[0u8; 200]);
        assert_eq!(reply_to(&u, &long).unwrap().len(), 48);
        // Control (6), private (7), other modes, short and garbage: silence.
        for bad in [
            request(6, 2, 1),
            request(7, 2, 1),
            request(4, 4, 1),
            request(1, 4, 1),
            request(MODE_CLIENT, 0, 1),
            request(MODE_CLIENT, 4, 1)[..47].to_vec(),
            vec![0xff; 48],
            b"hello".to_vec(),
            Vec::new(),
        ] {
            assert!(reply_to(&u, &bad).is_none(), "answered {bad:?}");
        }
        // The classic text query, and the server still answers after all that.
        let text = String::from_utf8(reply_to(&u, b"time").unwrap()).unwrap();
        assert_eq!(text.len(), 19, "{text:?}");
        assert!(
            text.chars().enumerate().all(|(i, c)| match i {
                4 | 7 => c == '-',
                10 => c == ' ',
                13 | 16 => c == ':',
                _ => c.is_ascii_digit(),
            }),
            "{text:?}"
        );
        assert!(reply_to(&u, &request(MODE_CLIENT, 4, 9)).is_some());
    })
    .await
    .unwrap();
    s.stop().await;
}

/// Requests that arrive together are read several at a time: each gets
/// its own reply, to its own sender, its origin its own, stamped as
/// received no earlier than it was sent and no later than it was answered;
/// garbage and a text query among them change nothing for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_many_senders_gets_one_reply_each() {
    let s = TestServer::start(|_| {}).await;
    let port = s.addr.port();
    tokio::task::spawn_blocking(move || {
        let senders: Vec<UdpSocket> = (0..4).map(|_| udp_to(port)).collect();
        let before = Timestamp::from_system(std::time::SystemTime::now());
        for i in 0..64u64 {
            let u = &senders[(i % 4) as usize];
            u.send(&request(MODE_CLIENT, 4, 0x1000 + i)).unwrap();
            if i % 16 == 5 {
                u.send(b"garbage").unwrap();
            }
        }
        senders[0].send(b"time").unwrap();
        let mut text = 0;
        for (k, u) in senders.iter().enumerate() {
            let mut origins = Vec::new();
            let mut buf = [0u8; 2048];
            while let Ok(n) = u.recv(&mut buf) {
                if n != 48 {
                    text += 1;
                    continue;
                }
                let p = ntp::parse(&buf[..n]).unwrap();
                assert!(
                    p.receive.diff(before) >= -0.001,
                    "received before it was sent"
                );
                assert!(p.transmit.diff(p.receive) >= 0.0);
                origins.push(u64::from_be_bytes(buf[24..32].try_into().unwrap()));
            }
            origins.sort_unstable();
            let want: Vec<u64> = (0..64u64)
                .filter(|i| i % 4 == k as u64)
                .map(|i| 0x1000 + i)
                .collect();
            assert_eq!(origins, want, "sender {k}");
        }
        assert_eq!(text, 1, "one answer to the text query");
    })
    .await
    .unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abusers_get_one_kiss_then_silence() {
    let s = TestServer::start(|c| {
        c.limits.limit_loopback = true;
        c.udp_rate = 1.0;
        c.udp_burst = 3.0;
    })
    .await;
    let port = s.addr.port();
    tokio::task::spawn_blocking(move || {
        let u = udp_to(port);
        // All at once, faster than the bucket refills.
        for i in 0..8u64 {
            u.send(&request(MODE_CLIENT, 4, i + 1)).unwrap();
        }
        let mut answers = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = u.recv(&mut buf) {
            answers.push(Some(buf[..n].to_vec()));
        }
        let served = answers
            .iter()
            .flatten()
            .filter(|r| ntp::parse(r).unwrap().stratum != 0)
            .count();
        let kisses: Vec<_> = answers
            .iter()
            .flatten()
            .filter(|r| ntp::parse(r).unwrap().stratum == 0)
            .collect();
        assert_eq!(served, 3, "the burst");
        assert_eq!(kisses.len(), 1, "one kiss-o'-death, then silence");
        assert_eq!(&kisses[0][12..16], b"RATE");
        assert!(kisses[0].len() <= 48);
    })
    .await
    .unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_time_measures_a_ferry_server() {
    let s = TestServer::start(|_| {}).await;
    let m = ferry::time::client::measure(
        &s.addr.to_string(),
        3,
        Duration::from_millis(20),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(m.samples.len(), 3);
    assert_eq!(
        (m.stratum, m.reference_id.as_str(), m.lost),
        (10, "LOCL", 0)
    );
    // Same machine, same clock: the offset is within the round trip.
    assert!(
        m.offset.abs() <= m.delay + 0.005,
        "offset {} delay {}",
        m.offset,
        m.delay
    );
    assert!(m.delay >= 0.0 && m.delay < 0.5);
    let (rc, out, _) = run_cli(
        &["time", &s.addr.to_string(), "--json", "--samples", "2"],
        &[],
    );
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stratum"], 10);
    // Nothing listening: a clear error and exit 255.
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (rc, _, err) = run_cli(
        &[
            "time",
            &dead.to_string(),
            "--samples",
            "1",
            "--timeout",
            "0.2",
        ],
        &[],
    );
    assert_eq!(rc, 255);
    assert!(err.contains("no reply"), "{err}");
    s.stop().await;
}

#[test]
fn python_ntplib_accepts_the_server() {
    let root = tempfile::tempdir().unwrap();
    let mut server = spawn_bin_server(root.path(), &[], &[]);
    let script = format!(
        "import ntplib; r = ntplib.NTPClient().request('127.0.0.1', port={}, version=4, timeout=2); \
         print(r.stratum, r.offset, r.delay, r.leap)",
        server.port
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let f: Vec<f64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(f[0], 10.0);
    assert!(f[1].abs() < 0.05 && f[2] >= 0.0 && f[3] == 0.0, "{text}");
}

#[test]
fn chronyd_accepts_the_server_and_reports_the_offset() {
    let root = tempfile::tempdir().unwrap();
    let mut server = spawn_bin_server(root.path(), &[], &[]);
    let pid = root.path().join("chronyd.pid");
    let out = Command::new("chronyd")
        .args([
            "-Q",
            "-t",
            "10",
            &format!("server 127.0.0.1 port {} iburst maxsamples 1", server.port),
            &format!("pidfile {}", pid.display()),
        ])
        .output()
        .expect("chronyd is installed (scripts/test installs chrony)");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("System clock wrong by"),
        "chronyd did not accept a sample:\n{log}"
    );
}

#[test]
fn ntpsec_ntpdig_accepts_the_server_on_port_123() {
    let root = tempfile::tempdir().unwrap();
    let mut server = spawn_bin_server(root.path(), &["--ntp-port", "123"], &[]);
    let out = Command::new("ntpdig")
        .args(["-j", "-t", "2", "127.0.0.1"])
        .output()
        .expect("ntpdig is installed (scripts/test installs ntpsec-ntpdig)");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["stratum"], 10);
    assert!(v["offset"].as_f64().unwrap().abs() < 0.05, "{v}");
}

#[tokio::test]
async fn ferry_time_measures_a_real_chronyd() {
    let dir = tempfile::tempdir().unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("chrony.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbindaddress 127.0.0.1\ncmdport 0\nallow 127.0.0.1\nlocal stratum 8\npidfile {}\n",
            dir.path().join("pid").display()
        ),
    )
    .unwrap();
    let mut chronyd = Command::new("chronyd")
        .args(["-x", "-d", "-f", conf.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chronyd is installed");
    let mut result = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let r = ferry::time::client::measure(
            &format!("127.0.0.1:{port}"),
            2,
            Duration::from_millis(50),
            Duration::from_millis(500),
        )
        .await;
        if let Ok(m) = r {
            result = Some(m);
            break;
        }
    }
    chronyd.kill().unwrap();
    chronyd.wait().unwrap();
    let m = result.expect("chronyd answered");
    assert_eq!(m.stratum, 8);
    assert!(m.offset.abs() < 0.05 && m.delay < 0.5, "{m:?}");
}

/// A one-socket NTP server answering each request with `answer(request)`.
fn answering_server(answer: impl Fn(&Packet) -> Packet + Send + 'static) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let Ok(req) = ntp::parse(&buf[..n]) else {
                continue;
            };
            let _ = sock.send_to(&ntp::encode(&answer(&req)), peer);
        }
    });
    port
}

/// A server's reply to `req`, every time in it `ts`.
fn reply_at(req: &Packet, ts: Timestamp) -> Packet {
    Packet {
        version: req.version,
        mode: MODE_SERVER,
        stratum: 2,
        reference_id: [192, 0, 2, 1],
        reference: ts,
        origin: req.transmit,
        receive: ts,
        transmit: ts,
        ..Packet::default()
    }
}

/// A one-socket NTP server whose clock is `skew` seconds off ours.
fn skewed_server(skew: f64) -> u16 {
    answering_server(move |req| {
        let now = std::time::SystemTime::now();
        let shifted = if skew >= 0.0 {
            now + Duration::from_secs_f64(skew)
        } else {
            now - Duration::from_secs_f64(-skew)
        };
        reply_at(req, Timestamp::from_system(shifted))
    })
}

/// Replies a client must not take (RFC 5905, RFC 4330 section 5), each
/// from a server that sends nothing else: one with no transmit time, one
/// that says it sent before it received, one from a server that says its
/// clock is unsynchronised (stratum 16). None is reported as a time.
#[test]
fn ferry_time_refuses_replies_no_client_should_take() {
    type Spoil = fn(&mut Packet);
    let shapes: [(Spoil, i32, &str); 3] = [
        (|p| p.transmit = Timestamp(0), 255, "no reply"),
        (
            |p| p.transmit = Timestamp(p.receive.0 - (10 << 32)),
            255,
            "no reply",
        ),
        (
            |p| p.stratum = 16,
            1,
            "not synchronised (stratum 16 or more)",
        ),
    ];
    for (i, (spoil, want_rc, want_text)) in shapes.into_iter().enumerate() {
        let port = answering_server(move |req| {
            let mut p = reply_at(req, Timestamp::from_system(std::time::SystemTime::now()));
            spoil(&mut p);
            p
        });
        let addr = format!("127.0.0.1:{port}");
        let args = ["time", addr.as_str(), "--samples", "2", "--timeout", "0.3"];
        let (rc, out, err) = run_cli(&args, &[]);
        assert_eq!(rc, want_rc, "shape {i}: {out}{err}");
        assert!(err.contains(want_text), "shape {i}: {out}{err}");
        assert!(!out.contains("offset"), "shape {i}: {out}{err}");
    }
}

#[test]
fn sync_plans_slew_step_and_refusals_without_touching_the_clock() {
    let cases: [(f64, &[&str], i32, &str); 5] = [
        (0.2, &[], 0, "dry run: would slew the clock by +0."),
        (5.0, &[], 0, "dry run: would step the clock by +"),
        (-5.0, &[], 1, "step the clock back"),
        (-5.0, &["--force"], 0, "dry run: would step the clock by -"),
        (5000.0, &[], 1, "larger than 1000 s"),
    ];
    for (skew, extra, want_rc, want_text) in cases {
        let port = skewed_server(skew);
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec!["time", addr.as_str(), "--samples", "2", "--sync"];
        args.extend_from_slice(extra);
        let (rc, out, err) = run_cli(&args, &[]);
        assert_eq!(rc, want_rc, "skew {skew}: {out}{err}");
        assert!(
            out.contains(want_text) || err.contains(want_text),
            "skew {skew}: {out}{err}"
        );
    }
    let (rc, _, _) = run_cli(&["time", "127.0.0.1:1", "--apply"], &[]);
    assert_eq!(rc, 2, "--apply without --sync is a usage error");
}

#[test]
fn applying_without_cap_sys_time_fails_clearly() {
    const DROP_SYS_TIME: [&str; 5] = [
        "--bounding-set",
        "-sys_time",
        "--inh-caps",
        "-sys_time",
        "--",
    ];
    // Drop CAP_SYS_TIME (bit 25) for the child, and make sure it is gone
    // before asking anything to change the clock.
    let probe = Command::new("setpriv")
        .args(DROP_SYS_TIME)
        .args(["grep", "CapEff", "/proc/self/status"])
        .output()
        .expect("setpriv (util-linux)");
    let text = String::from_utf8_lossy(&probe.stdout);
    let caps =
        u64::from_str_radix(text.split_whitespace().nth(1).expect("CapEff line"), 16).unwrap();
    assert_eq!(
        caps & (1 << 25),
        0,
        "could not drop CAP_SYS_TIME; refusing to run a real --apply"
    );

    let port = skewed_server(0.3);
    let out = Command::new("setpriv")
        .args(DROP_SYS_TIME)
        .arg(common::ferry_bin())
        .args([
            "time",
            &format!("127.0.0.1:{port}"),
            "--samples",
            "2",
            "--sync",
            "--apply",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("CAP_SYS_TIME"), "{err}");
}
