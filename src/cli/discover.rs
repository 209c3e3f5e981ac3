//! `ferry discover`: list the ferry servers on the local networks.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::config::DEFAULT_PORT;
use crate::discovery::client::{Targets, discover};
use crate::text::escape;

/// Arguments of `ferry discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Seconds to wait for answers.
    #[arg(long, default_value_t = 2.0)]
    pub timeout: f64,
    /// UDP port the servers listen on.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Probe only these addresses (a host, or a subnet's broadcast address)
    /// instead of every local network; repeatable.
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub to: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn target(text: &str, port: u16) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port))
    })
}

pub(crate) async fn run(a: DiscoverArgs) -> ExitCode {
    let targets = if a.to.is_empty() {
        Targets::Lan
    } else {
        let mut list = Vec::new();
        for t in &a.to {
            match target(t, a.port) {
                Some(addr) => list.push(addr),
                None => {
                    eprintln!("ferry: --to takes an IP address, with or without :PORT, not {t:?}");
                    return ExitCode::from(2);
                }
            }
        }
        Targets::Only(list)
    };
    // With FERRY_TOKEN set, only servers that prove they hold it are listed.
    let token = std::env::var("FERRY_TOKEN").ok().filter(|t| !t.is_empty());
    let wait = Duration::from_secs_f64(a.timeout.clamp(0.1, 60.0));
    let found = match discover(&targets, a.port, wait, token.as_ref().map(|t| t.as_bytes())).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ferry: discovery failed: {e}");
            return ExitCode::from(255);
        }
    };
    if a.json {
        match serde_json::to_string_pretty(&found) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("ferry: {e}");
                return ExitCode::from(1);
            }
        }
        return ExitCode::SUCCESS;
    }
    for f in &found.servers {
        let addrs: Vec<String> = f.addresses.iter().map(ToString::to_string).collect();
        let lock = if f.server.auth_required {
            "  (token required)"
        } else {
            ""
        };
        println!(
            "{:<20} {}  tcp {} udp {}  {}{lock}",
            escape(&f.server.name),
            addrs.join(", "),
            f.server.tcp_port,
            f.server.udp_port,
            escape(&f.server.software)
        );
    }
    if found.servers.is_empty() {
        eprintln!(
            "ferry: no server answered within {:.1} s",
            wait.as_secs_f64()
        );
    }
    if found.rejected > 0 {
        eprintln!(
            "ferry: ignored {} answer(s) not signed with FERRY_TOKEN",
            found.rejected
        );
    }
    ExitCode::SUCCESS
}
