//! [`Gate`]: checks the shared token, in constant time, and slows down an
//! address that keeps guessing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::secret::Secret;

/// Failures are forgotten after this long without another.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Longest delay imposed on one attempt.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Addresses remembered at most (oldest forgotten first past this).
const MAX_TRACKED: usize = 10_000;

/// The token check with per-address throttling.
#[derive(Debug)]
pub struct Gate {
    token: Option<Secret>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Gate {
    /// A gate for `token` (none: nothing to check).
    pub fn new(token: Option<Secret>) -> Gate {
        Gate {
            token,
            failures: Mutex::default(),
        }
    }

    /// Whether a token is configured.
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Delay before the next attempt from `ip`: 0 at first, then doubling
    /// from 250 ms with each recent failure, up to 5 s.
    pub fn delay_for(&self, ip: IpAddr) -> Duration {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&ip) {
            Some((n, at)) if at.elapsed() < FORGET_AFTER && *n > 0 => {
                let ms = 250u64.saturating_mul(1 << (n - 1).min(10));
                Duration::from_millis(ms).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    /// Checks `candidate` after any delay the address has earned.
    pub async fn check(&self, ip: IpAddr, candidate: &Secret) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let delay = self.delay_for(ip);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let ok = token.matches(candidate.expose());
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            map.remove(&ip);
        } else {
            if map.len() >= MAX_TRACKED {
                map.retain(|_, (_, at)| at.elapsed() < FORGET_AFTER);
                if map.len() >= MAX_TRACKED {
                    map.clear();
                }
            }
            let e = map.entry(ip).or_insert((0, Instant::now()));
            if e.1.elapsed() >= FORGET_AFTER {
                e.0 = 0;
            }
            e.0 = e.0.saturating_add(1);
            e.1 = Instant::now();
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_slow_the_address_and_success_resets() {
        let g = Gate::new(Some(Secret::new("right-token")));
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        assert!(!g.check(ip, &Secret::new("wrong")).await);
        assert_eq!(g.delay_for(ip), Duration::from_millis(250));
        assert!(!g.check(ip, &Secret::new("wrong")).await);
        assert_eq!(g.delay_for(ip), Duration::from_millis(500));
        assert_eq!(g.delay_for(other), Duration::ZERO);
        let start = tokio::time::Instant::now();
        assert!(g.check(ip, &Secret::new("right-token")).await);
        assert!(start.elapsed() >= Duration::from_millis(500));
        assert_eq!(g.delay_for(ip), Duration::ZERO);
    }
}
