//! A bounded NTP load generator for `bench/ntp.sh`: sends mode-3 requests
//! over loopback to one server for a fixed time, keeping at most WINDOW
//! requests outstanding, and prints requests, replies, replies per second
//! and loss. Never runs longer than the time given plus a one-second drain.
//!
//!     cargo run --release --example ntp_load -- 127.0.0.1:7070 5

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WINDOW: u64 = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).map(String::as_str).unwrap_or("127.0.0.1:7070");
    let secs: f64 = args
        .get(2)
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(5.0)
        .clamp(0.5, 60.0);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.connect(target).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let recv = socket.try_clone().expect("clone");
    let sent = Arc::new(AtomicU64::new(0));
    let got = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + Duration::from_secs_f64(secs);

    let got_r = got.clone();
    let receiver = std::thread::spawn(move || {
        let mut buf = [0u8; 128];
        let drain_until = stop_at + Duration::from_secs(1);
        while Instant::now() < drain_until {
            if let Ok(n) = recv.recv(&mut buf) {
                if n == 48 && buf[0] & 7 == 4 {
                    got_r.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });

    let mut request = [0u8; 48];
    request[0] = 4 << 3 | 3;
    let started = Instant::now();
    let mut waited_since: Option<Instant> = None;
    while Instant::now() < stop_at {
        let outstanding = sent.load(Ordering::Relaxed) - got.load(Ordering::Relaxed);
        if outstanding >= WINDOW {
            // A reply lost for good would stall the window: after 100 ms,
            // count it as lost and go on.
            let since = *waited_since.get_or_insert_with(Instant::now);
            if since.elapsed() < Duration::from_millis(100) {
                std::thread::yield_now();
                continue;
            }
        }
        waited_since = None;
        let n = sent.fetch_add(1, Ordering::Relaxed);
        request[40..48].copy_from_slice(&n.to_be_bytes());
        if socket.send(&request).is_err() {
            sent.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    receiver.join().expect("receiver");
    let (s, g) = (sent.load(Ordering::Relaxed), got.load(Ordering::Relaxed));
    let loss = if s == 0 {
        0.0
    } else {
        (s - g.min(s)) as f64 * 100.0 / s as f64
    };
    println!(
        "sent {s} replies {g} rate {:.0}/s loss {loss:.3}%",
        g as f64 / elapsed
    );
}
