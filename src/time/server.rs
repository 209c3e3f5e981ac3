//! Answers for the datagrams of the time service: NTP client requests
//! (mode 3) and the classic text query `time`.

use std::time::{Duration, Instant, SystemTime};

use super::ntp::{self, MODE_CLIENT, MODE_SERVER, PACKET_LEN, Packet, Timestamp};

/// How the server presents its clock.
#[derive(Debug, Clone)]
pub struct TimeConfig {
    /// Stratum announced (chrony's `local` directive defaults to 10).
    pub stratum: u8,
    /// Reference ID, up to four ASCII characters (`LOCL` by default).
    pub reference_id: [u8; 4],
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig {
            stratum: 10,
            reference_id: *b"LOCL",
        }
    }
}

/// The time service: stateless but for its measured precision.
#[derive(Debug, Clone)]
pub struct TimeService {
    config: TimeConfig,
    precision: i8,
}

impl TimeService {
    /// Measures the clock's precision once and keeps the configuration.
    pub fn new(config: TimeConfig) -> TimeService {
        TimeService {
            config,
            precision: measure_precision(),
        }
    }

    /// log2 of the clock's precision in seconds, as announced.
    pub fn precision(&self) -> i8 {
        self.precision
    }

    /// The reply to an NTP datagram received at `received`, or `None` for
    /// anything that is not a well-formed client request (modes 6 and 7
    /// included). The reply is exactly 48 bytes, never more than the
    /// request. `leap` is the leap indicator to announce (see
    /// [`kernel_leap`](super::sysclock::kernel_leap)). `now` is read again
    /// just before returning, for the transmit timestamp.
    pub fn answer_ntp(
        &self,
        request: &[u8],
        received: SystemTime,
        leap: u8,
        now: impl Fn() -> SystemTime,
    ) -> Option<[u8; PACKET_LEN]> {
        let req = ntp::parse(request).ok()?;
        if req.mode != MODE_CLIENT {
            return None;
        }
        let receive = Timestamp::from_system(received);
        let mut reply = Packet {
            leap: leap.min(2),
            version: req.version,
            mode: MODE_SERVER,
            stratum: self.config.stratum,
            poll: req.poll.clamp(4, 17),
            precision: self.precision,
            root_delay: 0,
            // A local clock: a small, fixed dispersion (1 ms), as chrony
            // announces for its local reference.
            root_dispersion: ntp::short_format(0.001),
            reference_id: self.config.reference_id,
            reference: receive,
            origin: Timestamp::default(),
            receive,
            transmit: Timestamp::default(),
        };
        reply.transmit = Timestamp::from_system(now());
        let mut bytes = ntp::encode(&reply);
        // Origin is the request's transmit timestamp, byte for byte.
        bytes[24..32].copy_from_slice(&request[40..48]);
        Some(bytes)
    }

    /// A RATE kiss-o'-death for a well-formed client request; `None`
    /// otherwise. 48 bytes, like the request.
    pub fn kiss_of_death(&self, request: &[u8]) -> Option<[u8; PACKET_LEN]> {
        let req = ntp::parse(request).ok()?;
        if req.mode != MODE_CLIENT {
            return None;
        }
        let kod = Packet {
            leap: 3,
            version: req.version,
            mode: MODE_SERVER,
            stratum: 0,
            poll: req.poll,
            precision: self.precision,
            reference_id: *b"RATE",
            ..Packet::default()
        };
        let mut bytes = ntp::encode(&kod);
        bytes[24..32].copy_from_slice(&request[40..48]);
        Some(bytes)
    }
}

/// True for the classic text query: `time`, any case, with optional
/// surrounding whitespace or a line end.
pub fn is_text_query(datagram: &[u8]) -> bool {
    datagram.len() <= 16 && datagram.trim_ascii().eq_ignore_ascii_case(b"time")
}

/// The server's local time as `YYYY-MM-DD HH:MM:SS`.
pub fn local_time_text() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The smallest step the system clock is seen to take, as log2 seconds.
fn measure_precision() -> i8 {
    let mut best = Duration::from_secs(1);
    let start = Instant::now();
    let mut prev = SystemTime::now();
    while start.elapsed() < Duration::from_millis(5) {
        let t = SystemTime::now();
        if let Ok(d) = t.duration_since(prev) {
            if !d.is_zero() && d < best {
                best = d;
            }
        }
        prev = t;
    }
    (best.as_secs_f64().log2().floor() as i32).clamp(-30, 0) as i8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ntp::{encode, parse};

    fn request(mode: u8, version: u8) -> Vec<u8> {
        let p = Packet {
            version,
            mode,
            poll: 6,
            transmit: Timestamp(0x0123_4567_89ab_cdef),
            ..Packet::default()
        };
        encode(&p).to_vec()
    }

    #[test]
    fn replies_to_mode_3_echoing_origin_and_version() {
        let svc = TimeService::new(TimeConfig::default());
        let t = SystemTime::now();
        for version in [3, 4] {
            let req = request(MODE_CLIENT, version);
            let reply = svc.answer_ntp(&req, t, 0, SystemTime::now).unwrap();
            assert!(reply.len() <= req.len());
            assert_eq!(&reply[24..32], &req[40..48]);
            let p = parse(&reply).unwrap();
            assert_eq!((p.mode, p.version, p.stratum), (MODE_SERVER, version, 10));
            assert_eq!(&p.reference_id, b"LOCL");
            assert_eq!(p.receive, Timestamp::from_system(t));
            assert!(p.transmit.diff(p.receive) >= 0.0);
            assert!(p.precision < 0);
        }
        // A pending leap second is announced; nonsense is not passed on.
        let req = request(MODE_CLIENT, 4);
        let leap = |l| {
            parse(&svc.answer_ntp(&req, t, l, SystemTime::now).unwrap())
                .unwrap()
                .leap
        };
        assert_eq!((leap(1), leap(2), leap(3)), (1, 2, 2));
    }

    #[test]
    fn other_modes_and_malformed_packets_get_nothing() {
        let svc = TimeService::new(TimeConfig::default());
        let t = SystemTime::now();
        for mode in [0, 1, 2, 4, 5, 6, 7] {
            assert!(
                svc.answer_ntp(&request(mode, 4), t, 0, SystemTime::now)
                    .is_none(),
                "mode {mode}"
            );
        }
        assert!(
            svc.answer_ntp(&request(MODE_CLIENT, 4)[..47], t, 0, SystemTime::now)
                .is_none()
        );
        assert!(
            svc.answer_ntp(&request(MODE_CLIENT, 0), t, 0, SystemTime::now)
                .is_none()
        );
        assert!(
            svc.answer_ntp(&request(MODE_CLIENT, 5), t, 0, SystemTime::now)
                .is_none()
        );
        assert!(svc.answer_ntp(b"time", t, 0, SystemTime::now).is_none());
    }

    #[test]
    fn kiss_of_death_is_rate_and_no_larger() {
        let svc = TimeService::new(TimeConfig::default());
        let req = request(MODE_CLIENT, 4);
        let kod = parse(&svc.kiss_of_death(&req).unwrap()).unwrap();
        assert_eq!((kod.stratum, &kod.reference_id), (0, b"RATE"));
        assert!(svc.kiss_of_death(&request(6, 2)).is_none());
    }

    #[test]
    fn text_query_forms() {
        assert!(is_text_query(b"time"));
        assert!(is_text_query(b"TIME\n"));
        assert!(is_text_query(b" time\r\n"));
        assert!(!is_text_query(b"times"));
        assert!(!is_text_query(&[b' '; 48]));
        let s = local_time_text();
        assert_eq!(s.len(), 19);
        assert_eq!(&s[4..5], "-");
        assert_eq!(&s[10..11], " ");
    }
}
