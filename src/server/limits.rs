//! Connection limits, global and per peer address, in one place for every
//! door. A [`ConnPermit`] is held for the life of a connection and gives its
//! slot back when dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::Limits;

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds `max_connections` already.
    Total,
    /// This address holds `max_per_ip` already.
    PerIp,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Total => "busy: the server has too many connections; try again later",
            Refusal::PerIp => "busy: too many connections from your address; try again later",
        })
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts open connections against the configured limits.
#[derive(Debug)]
pub struct ConnLimits {
    cfg: Limits,
    counts: Mutex<Counts>,
}

/// One connection's slot.
#[derive(Debug)]
pub struct ConnPermit {
    limits: Arc<ConnLimits>,
    ip: Option<IpAddr>,
}

impl ConnLimits {
    /// Limits from the configuration.
    pub fn new(cfg: Limits) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            cfg,
            counts: Mutex::default(),
        })
    }

    /// Takes a slot for a connection from `ip`, or says which limit is full.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refusal> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.cfg.max_connections {
            return Err(Refusal::Total);
        }
        let counted = !ip.is_loopback() || self.cfg.limit_loopback;
        if counted {
            let n = c.per_ip.entry(ip).or_default();
            if *n >= self.cfg.max_per_ip {
                return Err(Refusal::PerIp);
            }
            *n += 1;
        }
        c.total += 1;
        Ok(ConnPermit {
            limits: self.clone(),
            ip: counted.then_some(ip),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().map(|c| c.total).unwrap_or(0)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut c = self.limits.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if let Some(ip) = self.ip {
            if let Some(n) = c.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    c.per_ip.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize, limit_loopback: bool) -> Arc<ConnLimits> {
        ConnLimits::new(Limits {
            max_connections: total,
            max_per_ip: per_ip,
            limit_loopback,
        })
    }

    #[test]
    fn per_ip_and_total_limits_hold_and_release() {
        let l = limits(3, 2, false);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = l.try_acquire(a).unwrap();
        let _p2 = l.try_acquire(a).unwrap();
        assert_eq!(l.try_acquire(a).unwrap_err(), Refusal::PerIp);
        let _p3 = l.try_acquire(b).unwrap();
        assert_eq!(l.try_acquire(b).unwrap_err(), Refusal::Total);
        drop(p1);
        assert!(l.try_acquire(a).is_ok());
    }

    #[test]
    fn loopback_is_exempt_unless_asked() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let l = limits(10, 1, false);
        let _k: Vec<_> = (0..5).map(|_| l.try_acquire(lo).unwrap()).collect();
        let l = limits(10, 1, true);
        let _k = l.try_acquire(lo).unwrap();
        assert_eq!(l.try_acquire(lo).unwrap_err(), Refusal::PerIp);
    }
}
