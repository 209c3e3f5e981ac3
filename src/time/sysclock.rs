//! The real system clock, through `adjtime(3)` (slew),
//! `clock_gettime`/`clock_settime(2)` (step) and a read-only `adjtimex(2)`
//! (the kernel's leap-second state).
//!
//! This is the one module of ferry that uses `unsafe`: these calls exist
//! only as C functions taking raw pointers, and no well-kept crate wraps
//! `adjtime`. Each call passes pointers to locals that live across it, and
//! checks the return value.
#![allow(unsafe_code)]

use std::io;

use super::sync::Clock;

/// The system's `CLOCK_REALTIME`.
#[derive(Debug, Default)]
pub struct SystemClock;

fn timeval(secs: f64) -> libc::timeval {
    let micros = (secs * 1e6).round() as i64;
    libc::timeval {
        tv_sec: micros.div_euclid(1_000_000) as libc::time_t,
        tv_usec: micros.rem_euclid(1_000_000) as libc::suseconds_t,
    }
}

impl Clock for SystemClock {
    fn slew(&mut self, secs: f64) -> io::Result<()> {
        let delta = timeval(secs);
        // SAFETY: `delta` is a valid timeval for the whole call; a null
        // old-delta pointer is allowed by adjtime(3).
        let rc = unsafe { libc::adjtime(&delta, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn step(&mut self, secs: f64) -> io::Result<()> {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec for the whole call.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let nanos =
            now.tv_sec as i128 * 1_000_000_000 + now.tv_nsec as i128 + (secs * 1e9).round() as i128;
        let target = libc::timespec {
            tv_sec: nanos.div_euclid(1_000_000_000) as libc::time_t,
            tv_nsec: nanos.rem_euclid(1_000_000_000) as libc::c_long,
        };
        // SAFETY: `target` is a valid timespec for the whole call.
        if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &target) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The leap indicator the kernel's state calls for: 1 when a leap second
/// will be inserted at the end of the day, 2 when one will be deleted, 0
/// otherwise (also when the state cannot be read). The kernel learns of
/// leap seconds from the host's own NTP daemon.
pub fn kernel_leap() -> u8 {
    // SAFETY: `timex` is plain data; all zero (modes 0) asks adjtimex to
    // read only, which needs no privilege; the pointer is valid for the call.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    let rc = unsafe { libc::adjtimex(&mut tx) };
    if rc < 0 {
        return 0;
    }
    if tx.status & libc::STA_INS != 0 {
        1
    } else if tx.status & libc::STA_DEL != 0 {
        2
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timevals_for_negative_and_fractional_seconds() {
        let t = timeval(-0.25);
        assert_eq!((t.tv_sec, t.tv_usec), (-1, 750_000));
        let t = timeval(1.5);
        assert_eq!((t.tv_sec, t.tv_usec), (1, 500_000));
    }

    #[test]
    fn the_kernel_leap_state_is_readable_without_privilege() {
        assert!(kernel_leap() <= 2);
    }
}
