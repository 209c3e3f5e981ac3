//! `ferry time`: measure a server's clock against ours.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::client::parse_remote;
use crate::time::client::{TimeError, measure};

/// Arguments of `ferry time`.
#[derive(Debug, Args)]
pub struct TimeArgs {
    /// HOST[:PORT] of any NTP server: ferry's (port 7070 by default), or
    /// chrony's, ntpd's or a public one at HOST:123.
    pub server: String,
    /// Requests to send; the one with the smallest round trip is reported.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub samples: u16,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 1.0, value_parser = super::parse_seconds)]
    pub timeout: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Work out how to correct this machine's clock from the measurement:
    /// slew offsets up to 0.5 s, step larger ones. A dry run unless --apply.
    #[arg(long)]
    pub sync: bool,
    /// With --sync: really change the clock (needs CAP_SYS_TIME).
    #[arg(long, requires = "sync")]
    pub apply: bool,
    /// With --sync: allow steps backwards and steps over 1000 s.
    #[arg(long, requires = "sync")]
    pub force: bool,
}

pub(crate) async fn run(a: TimeArgs) -> ExitCode {
    let remote = match parse_remote(&a.server) {
        Ok(r) if r.path.is_empty() => r,
        Ok(_) => {
            crate::say!("ferry: time takes HOST[:PORT], without a path");
            return ExitCode::from(2);
        }
        Err(e) => {
            crate::say!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    let timeout = Duration::from_secs_f64(a.timeout.clamp(0.05, 30.0));
    match measure(
        &remote.authority(),
        usize::from(a.samples),
        Duration::from_millis(250),
        timeout,
    )
    .await
    {
        Ok(m) if a.json && a.sync => {
            crate::say!("ferry: --sync prints for people; use it without --json");
            let _ = m;
            ExitCode::from(2)
        }
        Ok(m) if a.json => super::output::print_json_exit(&m),
        Ok(m) => {
            let behind = if m.offset >= 0.0 {
                "behind"
            } else {
                "ahead of"
            };
            println!(
                "{}  stratum {}  reference {}",
                m.server, m.stratum, m.reference_id
            );
            println!(
                "offset {:+.6} s (this clock is {:.3} ms {behind} the server's)  delay {:.6} s",
                m.offset,
                m.offset.abs() * 1e3,
                m.delay
            );
            println!("best of {} replies, {} lost", m.samples.len(), m.lost);
            if a.sync {
                return sync(&a, m.offset, m.delay);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::say!("ferry: {e}");
            match e {
                TimeError::Kiss(_) | TimeError::Unsynchronised(_) => ExitCode::from(1),
                _ => ExitCode::from(255),
            }
        }
    }
}

fn sync(a: &TimeArgs, offset: f64, delay: f64) -> ExitCode {
    use crate::time::sync::{Decision, apply, decide};
    let decision = decide(offset, delay, a.force);
    let plan = match &decision {
        Decision::Nothing => {
            println!("nothing to do: the offset is within the measurement's uncertainty");
            return ExitCode::SUCCESS;
        }
        Decision::Slew(s) => format!(
            "slew the clock by {s:+.6} s (it runs slightly {} until caught up)",
            if *s > 0.0 { "fast" } else { "slow" }
        ),
        Decision::Step(s) => format!("step the clock by {s:+.6} s"),
        Decision::Refuse(why) => {
            crate::say!("ferry: refusing to sync: {why}");
            return ExitCode::from(1);
        }
    };
    if !a.apply {
        println!("dry run: would {plan}; add --apply to do it");
        return ExitCode::SUCCESS;
    }
    match apply(&decision, &mut crate::time::sysclock::SystemClock) {
        Ok(()) => {
            println!("done: {plan}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::say!("ferry: {e}");
            ExitCode::from(1)
        }
    }
}
