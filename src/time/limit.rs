//! Per-source rate limiting for datagram services: a token bucket per
//! address, loopback exempt unless asked, with a bounded table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Addresses tracked at most; past this, idle entries are forgotten.
const MAX_SOURCES: usize = 65_536;

/// What a limiter decided for one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it.
    Allow,
    /// Over the limit: answer with a kiss-o'-death this once.
    Kiss,
    /// Over the limit: stay silent.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    kissed: Option<Instant>,
}

/// Token buckets keyed by source address.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    limit_loopback: bool,
    buckets: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    /// `rate` datagrams per second on average, bursts of `burst`.
    pub fn new(rate: f64, burst: f64, limit_loopback: bool) -> RateLimiter {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            limit_loopback,
            buckets: HashMap::new(),
        }
    }

    /// Decides for a datagram from `ip` arriving at `now`. At most one
    /// kiss-o'-death per source per second; the rest are dropped.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if ip.is_loopback() && !self.limit_loopback {
            return Verdict::Allow;
        }
        if self.buckets.len() >= MAX_SOURCES && !self.buckets.contains_key(&ip) {
            let burst = self.burst;
            let rate = self.rate;
            self.buckets
                .retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
            if self.buckets.len() >= MAX_SOURCES {
                self.buckets.clear();
            }
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last: now,
            kissed: None,
        });
        let refill = now.saturating_duration_since(b.last).as_secs_f64() * self.rate;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Verdict::Allow;
        }
        match b.kissed {
            Some(at) if now.saturating_duration_since(at).as_secs_f64() < 1.0 => Verdict::Drop,
            _ => {
                b.kissed = Some(now);
                Verdict::Kiss
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_rate_then_one_kiss_per_second() {
        let mut l = RateLimiter::new(2.0, 3.0, false);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(ip, t0), Verdict::Allow);
        }
        assert_eq!(l.check(ip, t0), Verdict::Kiss);
        assert_eq!(l.check(ip, t0), Verdict::Drop);
        // Half a second refills one token at 2/s.
        assert_eq!(l.check(ip, t0 + Duration::from_millis(500)), Verdict::Allow);
        assert_eq!(l.check(ip, t0 + Duration::from_millis(500)), Verdict::Drop);
        assert_eq!(
            l.check(ip, t0 + Duration::from_millis(1600)),
            Verdict::Allow
        );
        // Other sources are not affected; loopback is exempt.
        assert_eq!(l.check("192.0.2.8".parse().unwrap(), t0), Verdict::Allow);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!((0..100).all(|_| l.check(lo, t0) == Verdict::Allow));
        let mut strict = RateLimiter::new(1.0, 1.0, true);
        assert_eq!(strict.check(lo, t0), Verdict::Allow);
        assert_ne!(strict.check(lo, t0), Verdict::Allow);
    }
}
