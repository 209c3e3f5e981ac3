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
    #[arg(long, default_value_t = 1.0)]
    pub timeout: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) async fn run(a: TimeArgs) -> ExitCode {
    let remote = match parse_remote(&a.server) {
        Ok(r) if r.path.is_empty() => r,
        Ok(_) => {
            eprintln!("ferry: time takes HOST[:PORT], without a path");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("ferry: {e}");
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
        Ok(m) if a.json => match serde_json::to_string_pretty(&m) {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferry: {e}");
                ExitCode::from(1)
            }
        },
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
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferry: {e}");
            match e {
                TimeError::Kiss(_) | TimeError::Unsynchronised => ExitCode::from(1),
                _ => ExitCode::from(255),
            }
        }
    }
}
