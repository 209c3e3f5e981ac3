//! `ferry ping`: is a ferry server there, what is it, and how far away.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::{connect, remote};
use crate::client::ClientError;
use crate::text::escape;

/// Arguments of `ferry ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// HOST[:PORT]
    pub server: String,
    /// How many hellos to time after connecting.
    #[arg(short = 'c', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

#[derive(Debug, Serialize)]
struct PingReport {
    local: Option<String>,
    peer: Option<String>,
    server: String,
    software: String,
    version: u8,
    features: Vec<String>,
    auth_required: bool,
    /// The certificate's SHA-256 when the connection is TLS.
    tls: Option<String>,
    connect_ms: f64,
    rtt_ms: Vec<f64>,
    min_ms: f64,
    avg_ms: f64,
    max_ms: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) async fn run(a: PingArgs) -> Result<(), ClientError> {
    let r = remote(&a.server)?;
    let started = std::time::Instant::now();
    let mut c = connect(&r).await?;
    // Logged in too (its reply may come after the connection's set-up).
    let h = c.hello().await?;
    let connect_ms = ms(started.elapsed());
    let mut rtt = Vec::new();
    for _ in 0..a.count {
        rtt.push(ms(c.ping().await?));
    }
    let (local, peer) = c.addresses();
    let report = PingReport {
        local: local.map(|a| a.to_string()),
        peer: peer.map(|a| a.to_string()),
        server: escape(&h.server).into_owned(),
        software: escape(&h.software).into_owned(),
        version: h.version,
        features: h.features.iter().map(|f| escape(f).into_owned()).collect(),
        auth_required: h.auth_required,
        tls: c.tls().map(crate::tls::show),
        connect_ms,
        min_ms: rtt.iter().copied().fold(f64::INFINITY, f64::min),
        max_ms: rtt.iter().copied().fold(0.0, f64::max),
        avg_ms: rtt.iter().sum::<f64>() / rtt.len() as f64,
        rtt_ms: rtt,
    };
    if a.json {
        return super::output::print_json(&report);
    }
    println!(
        "{} ({}, protocol {}) at {} from {}",
        report.server,
        report.software,
        report.version,
        report.peer.as_deref().unwrap_or("?"),
        report.local.as_deref().unwrap_or("?")
    );
    println!("features: {}", report.features.join(", "));
    match &report.tls {
        Some(fp) => println!("TLS, certificate SHA-256 {fp}"),
        None => println!("in clear (no TLS)"),
    }
    println!(
        "connect + hello {:.3} ms; {} hellos: min {:.3} / avg {:.3} / max {:.3} ms",
        report.connect_ms,
        report.rtt_ms.len(),
        report.min_ms,
        report.avg_ms,
        report.max_ms
    );
    Ok(())
}
