//! Deciding whether and how to correct the local clock from a measured
//! offset, and applying the decision through a [`Clock`], so the logic is
//! tested against a fake clock and the real one is touched only on request.
//!
//! The rules, in order:
//! - an offset within the measurement's own uncertainty (half the round
//!   trip, and at least 0.5 ms) is left alone;
//! - up to [`SLEW_LIMIT`] the clock is slewed: the kernel runs it slightly
//!   fast or slow until the offset is gone, so time never jumps;
//! - beyond that it is stepped, but a step larger than [`MAX_STEP`] or any
//!   step backwards is refused unless forced.

use std::io;

/// Largest offset corrected by slewing, seconds.
pub const SLEW_LIMIT: f64 = 0.5;
/// Largest step made without `--force`, seconds.
pub const MAX_STEP: f64 = 1000.0;
/// Offsets below this are never worth correcting, seconds.
const NOISE_FLOOR: f64 = 0.0005;

/// What to do about an offset.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Within the measurement's uncertainty.
    Nothing,
    /// Slew by this many seconds.
    Slew(f64),
    /// Step by this many seconds.
    Step(f64),
    /// Would need `--force`; says why.
    Refuse(String),
}

/// Decides for a measured `offset` (server minus local, seconds) with
/// round-trip `delay`.
pub fn decide(offset: f64, delay: f64, force: bool) -> Decision {
    if !offset.is_finite() || !delay.is_finite() {
        return Decision::Refuse("the measurement is not a number".into());
    }
    if offset.abs() <= (delay / 2.0).max(NOISE_FLOOR) {
        return Decision::Nothing;
    }
    if offset.abs() <= SLEW_LIMIT {
        return Decision::Slew(offset);
    }
    if !force && offset.abs() > MAX_STEP {
        return Decision::Refuse(format!(
            "a step of {offset:+.3} s is larger than {MAX_STEP} s; check the server, then use --force"
        ));
    }
    if !force && offset < 0.0 {
        return Decision::Refuse(format!(
            "this would step the clock back by {:.3} s, which can confuse programs that expect time to move forward; use --force",
            -offset
        ));
    }
    Decision::Step(offset)
}

/// Something whose time can be corrected.
pub trait Clock {
    /// Runs the clock fast (positive) or slow until `secs` are made up.
    fn slew(&mut self, secs: f64) -> io::Result<()>;
    /// Jumps the clock by `secs`.
    fn step(&mut self, secs: f64) -> io::Result<()>;
}

/// Why a correction failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The process may not set the clock.
    #[error(
        "setting the clock needs the CAP_SYS_TIME capability (run as root, or grant it to ferry)"
    )]
    NoPrivilege,
    /// Refused by the rules above.
    #[error("{0}")]
    Refused(String),
    /// The kernel said no for another reason.
    #[error("setting the clock failed: {0}")]
    Io(io::Error),
}

/// Carries out `decision` on `clock`.
pub fn apply(decision: &Decision, clock: &mut dyn Clock) -> Result<(), SyncError> {
    let r = match decision {
        Decision::Nothing => Ok(()),
        Decision::Slew(s) => clock.slew(*s),
        Decision::Step(s) => clock.step(*s),
        Decision::Refuse(why) => return Err(SyncError::Refused(why.clone())),
    };
    r.map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => SyncError::NoPrivilege,
        _ if e.raw_os_error() == Some(1) => SyncError::NoPrivilege,
        _ => SyncError::Io(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that records what it was asked, and can refuse like a
    /// process without CAP_SYS_TIME.
    #[derive(Default)]
    struct FakeClock {
        now: f64,
        slewed: f64,
        privileged: bool,
    }

    impl Clock for FakeClock {
        fn slew(&mut self, secs: f64) -> io::Result<()> {
            if !self.privileged {
                return Err(io::Error::from_raw_os_error(1));
            }
            self.slewed += secs;
            Ok(())
        }
        fn step(&mut self, secs: f64) -> io::Result<()> {
            if !self.privileged {
                return Err(io::ErrorKind::PermissionDenied.into());
            }
            self.now += secs;
            Ok(())
        }
    }

    #[test]
    fn the_decision_table() {
        assert_eq!(decide(0.0002, 0.0001, false), Decision::Nothing);
        assert_eq!(
            decide(0.004, 0.010, false),
            Decision::Nothing,
            "inside half the round trip"
        );
        assert_eq!(decide(0.2, 0.001, false), Decision::Slew(0.2));
        assert_eq!(
            decide(-0.3, 0.001, false),
            Decision::Slew(-0.3),
            "slewing back is fine"
        );
        assert_eq!(decide(5.0, 0.001, false), Decision::Step(5.0));
        assert!(
            matches!(decide(-5.0, 0.001, false), Decision::Refuse(_)),
            "no backward step"
        );
        assert_eq!(decide(-5.0, 0.001, true), Decision::Step(-5.0));
        assert!(
            matches!(decide(86_400.0, 0.001, false), Decision::Refuse(_)),
            "no huge jump"
        );
        assert_eq!(decide(86_400.0, 0.001, true), Decision::Step(86_400.0));
        assert!(matches!(decide(f64::NAN, 0.0, true), Decision::Refuse(_)));
    }

    #[test]
    fn applying_against_a_fake_clock() {
        let mut clock = FakeClock {
            now: 1000.0,
            privileged: true,
            ..FakeClock::default()
        };
        apply(&decide(0.25, 0.001, false), &mut clock).unwrap();
        assert_eq!((clock.now, clock.slewed), (1000.0, 0.25));
        apply(&decide(30.0, 0.001, false), &mut clock).unwrap();
        assert_eq!(clock.now, 1030.0);
        let refused = apply(&decide(-30.0, 0.001, false), &mut clock);
        assert!(matches!(refused, Err(SyncError::Refused(_))));
        assert_eq!(clock.now, 1030.0, "a refusal touches nothing");
        apply(&Decision::Nothing, &mut clock).unwrap();

        let mut unprivileged = FakeClock::default();
        let e = apply(&Decision::Step(2.0), &mut unprivileged).unwrap_err();
        assert!(matches!(e, SyncError::NoPrivilege));
        assert!(e.to_string().contains("CAP_SYS_TIME"));
        let e = apply(&Decision::Slew(0.1), &mut unprivileged).unwrap_err();
        assert!(matches!(e, SyncError::NoPrivilege));
    }
}
