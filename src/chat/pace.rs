//! The pace of one chat client: every door holds its clients to it.

use std::time::{Duration, Instant};

/// Token bucket for one client's lines: `rate` per second, bursts of
/// `2 * rate`. Over it, the door waits (the client is slowed down through
/// TCP); held back for longer than `flood` without a break, it is
/// disconnected.
pub struct Pace {
    rate: f64,
    flood: Duration,
    burst: f64,
    tokens: f64,
    last: Instant,
    held_since: Option<Instant>,
}

impl Pace {
    /// A client's allowance: `rate` lines a second, held back for at most
    /// `flood` without a break.
    pub fn new(rate: f64, flood: Duration) -> Pace {
        let burst = (rate * 2.0).max(1.0);
        Pace {
            rate,
            flood,
            burst,
            tokens: burst,
            last: Instant::now(),
            held_since: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
    }

    /// How long to wait before the next line may go through, or `Err` when
    /// the client has been held back for too long.
    fn next_wait(&mut self, now: Instant) -> Result<Duration, ()> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            // Caught up with its allowance: the flood clock stops.
            if self.tokens >= 1.0 {
                self.held_since = None;
            }
            return Ok(Duration::ZERO);
        }
        let since = *self.held_since.get_or_insert(now);
        if now.duration_since(since) > self.flood {
            return Err(());
        }
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
        self.tokens -= 1.0;
        Ok(wait)
    }

    /// Takes the allowance of one line if it is there now.
    pub fn try_admit(&mut self) -> bool {
        self.refill(Instant::now());
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Waits for the allowance of one line.
    pub async fn admit(&mut self) -> Result<(), String> {
        match self.next_wait(Instant::now()) {
            Ok(w) if w.is_zero() => Ok(()),
            Ok(w) => {
                tokio::time::sleep(w).await;
                Ok(())
            }
            Err(()) => Err("flooding: too many lines for too long; disconnected".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_through_then_lines_wait_then_a_flood_is_cut() {
        let mut p = Pace::new(10.0, Duration::from_secs(2));
        let t0 = p.last;
        // A burst of twice the rate passes at once.
        for _ in 0..20 {
            assert_eq!(p.next_wait(t0), Ok(Duration::ZERO));
        }
        // Then each line waits for its share of the second.
        let w = p.next_wait(t0).unwrap();
        assert!(
            w > Duration::ZERO && w <= Duration::from_millis(100),
            "{w:?}"
        );
        // A client that keeps sending faster than that is held back; held
        // for longer than the flood time without a break, it is cut.
        for _ in 0..30 {
            assert!(p.next_wait(t0).unwrap() > Duration::ZERO);
        }
        assert!(p.next_wait(t0 + Duration::from_millis(1900)).is_ok());
        assert!(p.next_wait(t0 + Duration::from_millis(2100)).is_err());
        // A client that paused long enough has its burst again.
        let mut q = Pace::new(10.0, Duration::from_secs(2));
        for _ in 0..21 {
            let _ = q.next_wait(t0);
        }
        assert_eq!(q.next_wait(t0 + Duration::from_secs(5)), Ok(Duration::ZERO));
    }
}
