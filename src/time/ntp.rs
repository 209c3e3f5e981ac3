//! The NTPv4 packet (RFC 5905) and its arithmetic, as pure functions.
//!
//! Timestamps are the 64-bit on-wire form: 32 bits of seconds since
//! 1900-01-01 and 32 bits of fraction. The seconds wrap every 2^32 s (the
//! first wrap is in February 2036), so nothing here subtracts absolute
//! times: differences are taken modulo 2^64 and read as signed, which is
//! right whenever the two times are within 68 years of each other, and a
//! wire timestamp becomes a date only relative to a nearby pivot.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Size of an NTP header without extensions; ferry's replies are exactly this.
pub const PACKET_LEN: usize = 48;
/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
pub const UNIX_OFFSET: u64 = 2_208_988_800;

/// Mode 3: a client request.
pub const MODE_CLIENT: u8 = 3;
/// Mode 4: a server reply.
pub const MODE_SERVER: u8 = 4;

/// An on-wire NTP timestamp (32.32 fixed point, era unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The wire form of a Unix time (seconds may be negative).
    pub fn from_unix(secs: i64, nanos: u32) -> Timestamp {
        let ntp_secs = (secs as i128 + UNIX_OFFSET as i128).rem_euclid(1 << 32) as u64;
        let frac = ((u64::from(nanos) << 32) / 1_000_000_000) & 0xffff_ffff;
        Timestamp(ntp_secs << 32 | frac)
    }

    /// The wire form of a system time.
    pub fn from_system(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp::from_unix(d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                let t = -(d.as_nanos() as i128);
                Timestamp::from_unix(
                    t.div_euclid(1_000_000_000) as i64,
                    t.rem_euclid(1_000_000_000) as u32,
                )
            }
        }
    }

    /// The Unix time this stands for, choosing the era that puts it within
    /// 68 years of `pivot` (a Unix time in seconds, usually now).
    pub fn to_unix_near(self, pivot: i64) -> (i64, u32) {
        let pivot_ts = Timestamp::from_unix(pivot, 0);
        let delta = self.diff(pivot_ts);
        let nanos_total = (pivot as i128) * 1_000_000_000 + (delta * 1e9).round() as i128;
        (
            nanos_total.div_euclid(1_000_000_000) as i64,
            nanos_total.rem_euclid(1_000_000_000) as u32,
        )
    }

    /// `self - other` in seconds, modulo the era: correct whenever the two
    /// are less than 68 years apart, across the 2036 wrap included.
    pub fn diff(self, other: Timestamp) -> f64 {
        let d = self.0.wrapping_sub(other.0) as i64;
        d as f64 / 4_294_967_296.0
    }

    /// Big-endian bytes.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

/// Offset of the server's clock from ours and the round-trip delay, in
/// seconds, from the four timestamps of one exchange (RFC 5905 §8):
///
/// - t1: client transmit (our clock), t2: server receive (its clock),
/// - t3: server transmit (its clock), t4: client receive (our clock);
/// - offset θ = ((t2 − t1) + (t3 − t4)) / 2
/// - delay  δ = (t4 − t1) − (t3 − t2)
pub fn offset_delay(t1: Timestamp, t2: Timestamp, t3: Timestamp, t4: Timestamp) -> (f64, f64) {
    let offset = (t2.diff(t1) + t3.diff(t4)) / 2.0;
    let delay = t4.diff(t1) - t3.diff(t2);
    (offset, delay)
}

/// An NTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Packet {
    /// Leap indicator (0 none, 1 +1 s, 2 −1 s, 3 unsynchronised).
    pub leap: u8,
    /// Version (1..=4).
    pub version: u8,
    /// Association mode.
    pub mode: u8,
    /// 1 primary, 2..=15 secondary, 16 unsynchronised, 0 kiss-o'-death.
    pub stratum: u8,
    /// log2 of the poll interval.
    pub poll: i8,
    /// log2 of the clock precision in seconds.
    pub precision: i8,
    /// Round trip to the reference, NTP short format (16.16 s).
    pub root_delay: u32,
    /// Dispersion to the reference, NTP short format.
    pub root_dispersion: u32,
    /// Reference ID (ASCII for stratum 0/1, an address hash above).
    pub reference_id: [u8; 4],
    /// When the clock was last set.
    pub reference: Timestamp,
    /// The request's transmit timestamp, echoed.
    pub origin: Timestamp,
    /// When the request arrived.
    pub receive: Timestamp,
    /// When the reply left.
    pub transmit: Timestamp,
}

/// Why a datagram is not an NTP packet ferry answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtpError {
    /// Shorter than 48 bytes.
    #[error("{0} bytes is too short for NTP")]
    Short(usize),
    /// Version 0 or above 4.
    #[error("unsupported NTP version {0}")]
    Version(u8),
}

/// Parses the 48-byte header at the start of `buf` (extension fields and
/// MACs after it are ignored).
pub fn parse(buf: &[u8]) -> Result<Packet, NtpError> {
    if buf.len() < PACKET_LEN {
        return Err(NtpError::Short(buf.len()));
    }
    let version = (buf[0] >> 3) & 7;
    if !(1..=4).contains(&version) {
        return Err(NtpError::Version(version));
    }
    let u32_at = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let ts_at = |i: usize| Timestamp(u64::from(u32_at(i)) << 32 | u64::from(u32_at(i + 4)));
    Ok(Packet {
        leap: buf[0] >> 6,
        version,
        mode: buf[0] & 7,
        stratum: buf[1],
        poll: buf[2] as i8,
        precision: buf[3] as i8,
        root_delay: u32_at(4),
        root_dispersion: u32_at(8),
        reference_id: [buf[12], buf[13], buf[14], buf[15]],
        reference: ts_at(16),
        origin: ts_at(24),
        receive: ts_at(32),
        transmit: ts_at(40),
    })
}

/// Encodes a header into exactly [`PACKET_LEN`] bytes.
pub fn encode(p: &Packet) -> [u8; PACKET_LEN] {
    let mut b = [0u8; PACKET_LEN];
    b[0] = (p.leap & 3) << 6 | (p.version & 7) << 3 | (p.mode & 7);
    b[1] = p.stratum;
    b[2] = p.poll as u8;
    b[3] = p.precision as u8;
    b[4..8].copy_from_slice(&p.root_delay.to_be_bytes());
    b[8..12].copy_from_slice(&p.root_dispersion.to_be_bytes());
    b[12..16].copy_from_slice(&p.reference_id);
    b[16..24].copy_from_slice(&p.reference.to_bytes());
    b[24..32].copy_from_slice(&p.origin.to_bytes());
    b[32..40].copy_from_slice(&p.receive.to_bytes());
    b[40..48].copy_from_slice(&p.transmit.to_bytes());
    b
}

/// Seconds as NTP short format (16.16), saturating.
pub fn short_format(secs: f64) -> u32 {
    (secs.max(0.0) * 65_536.0).min(u32::MAX as f64) as u32
}

/// A duration as seconds.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_and_fractions() {
        let t = Timestamp::from_unix(0, 500_000_000);
        assert_eq!(t.0 >> 32, UNIX_OFFSET);
        assert_eq!(t.0 & 0xffff_ffff, 0x8000_0000);
        assert_eq!(t.to_unix_near(0), (0, 500_000_000));
    }

    #[test]
    fn the_2036_rollover() {
        // 2036-02-07T06:28:16Z is NTP second 2^32: era 1 starts at 0 again.
        let wrap = (1i64 << 32) - UNIX_OFFSET as i64;
        assert_eq!(wrap, 2_085_978_496);
        let before = Timestamp::from_unix(wrap - 1, 0);
        let after = Timestamp::from_unix(wrap + 1, 0);
        assert_eq!(before.0 >> 32, 0xffff_ffff);
        assert_eq!(after.0 >> 32, 1);
        assert_eq!(after.diff(before), 2.0);
        assert_eq!(before.diff(after), -2.0);
        // Read back near a pivot on either side of the wrap.
        assert_eq!(after.to_unix_near(wrap - 100).0, wrap + 1);
        assert_eq!(before.to_unix_near(wrap + 100).0, wrap - 1);
        assert_eq!(
            Timestamp::from_unix(1_700_000_000, 0)
                .to_unix_near(wrap + 10)
                .0,
            1_700_000_000
        );
    }

    #[test]
    fn offset_and_delay_by_hand() {
        // Client sends at 10.000, server receives at 10.600 (its clock is
        // 0.5 s ahead, the path 0.1 s each way), replies at 10.610,
        // client receives at 10.210.
        let ts = |s: f64| {
            Timestamp::from_unix(1_800_000_000 + s as i64, ((s.fract()) * 1e9).round() as u32)
        };
        let (offset, delay) = offset_delay(ts(10.0), ts(10.6), ts(10.61), ts(10.21));
        assert!((offset - 0.5).abs() < 1e-6, "{offset}");
        assert!((delay - 0.2).abs() < 1e-6, "{delay}");
        // And straddling the 2036 wrap.
        let wrap = (1i64 << 32) - UNIX_OFFSET as i64;
        let at =
            |s: f64| Timestamp::from_unix(wrap - 1 + s as i64, ((s.fract()) * 1e9).round() as u32);
        let (offset, delay) = offset_delay(at(0.5), at(1.25), at(1.5), at(0.75));
        assert!((offset - 0.75).abs() < 1e-6, "{offset}");
        assert!((delay - 0.0).abs() < 1e-6, "{delay}");
    }

    #[test]
    fn round_trip_and_short_packets() {
        let p = Packet {
            leap: 0,
            version: 4,
            mode: MODE_SERVER,
            stratum: 10,
            poll: 6,
            precision: -20,
            root_delay: 1,
            root_dispersion: 2,
            reference_id: *b"LOCL",
            reference: Timestamp(3),
            origin: Timestamp(4),
            receive: Timestamp(5),
            transmit: Timestamp(u64::MAX),
        };
        assert_eq!(parse(&encode(&p)).unwrap(), p);
        assert_eq!(parse(&[0x23; 47]), Err(NtpError::Short(47)));
        assert_eq!(parse(&[0u8; 48]), Err(NtpError::Version(0)));
        let mut long = encode(&p).to_vec();
        long.extend_from_slice(&[0u8; 20]);
        assert_eq!(parse(&long).unwrap(), p);
    }
}
