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
    #[arg(long, default_value_t = 2.0, value_parser = super::parse_seconds)]
    pub timeout: f64,
    /// UDP port the servers listen on.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Probe only these addresses (a host, or a subnet's broadcast address)
    /// instead of every local network; repeatable.
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub to: Vec<String>,
    /// Keep watching: list servers as they come and go (probing every
    /// --timeout seconds, and hearing servers started with --announce).
    #[arg(long)]
    pub watch: bool,
    /// With --watch: stop after this many seconds.
    #[arg(long = "for", value_name = "SECS", requires = "watch", value_parser = super::parse_seconds)]
    pub for_secs: Option<f64>,
    /// Print JSON (with --watch, one JSON object per line and change).
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
                    crate::say!(
                        "ferry: --to takes an IP address, with or without :PORT, not {t:?}"
                    );
                    return ExitCode::from(2);
                }
            }
        }
        Targets::Only(list)
    };
    // With FERRY_TOKEN set, only servers that prove they hold it are listed.
    let token = std::env::var("FERRY_TOKEN").ok().filter(|t| !t.is_empty());
    let wait = Duration::from_secs_f64(a.timeout.clamp(0.1, 60.0));
    if a.watch {
        let limit = a
            .for_secs
            .map(|s| Duration::from_secs_f64(s.clamp(0.1, 86_400.0)));
        let json = a.json;
        let r = crate::discovery::client::watch(
            &targets,
            a.port,
            wait,
            limit,
            token.as_ref().map(|t| t.as_bytes()),
            |c| print_change(&c, json),
        )
        .await;
        return match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                crate::say!("ferry: discovery failed: {e}");
                ExitCode::from(255)
            }
        };
    }
    let mut found =
        match discover(&targets, a.port, wait, token.as_ref().map(|t| t.as_bytes())).await {
            Ok(f) => f,
            Err(e) => {
                crate::say!("ferry: discovery failed: {e}");
                return ExitCode::from(255);
            }
        };
    // The nodes of one cluster are one service, at several addresses.
    found.servers = crate::discovery::client::group_clusters(std::mem::take(&mut found.servers));
    if a.json {
        return super::output::print_json_exit(&found);
    }
    for f in &found.servers {
        let lock = if f.server.auth_required {
            "  (token required)"
        } else {
            ""
        };
        if f.nodes.len() > 1 {
            let addrs: Vec<String> = f
                .nodes
                .iter()
                .flat_map(|n| {
                    n.addresses
                        .iter()
                        .map(|a| SocketAddr::new(*a, n.tcp_port).to_string())
                })
                .collect();
            println!(
                "{:<20} {}  cluster of {} nodes  {}{lock}",
                escape(&f.server.name),
                addrs.join(", "),
                f.nodes.len(),
                escape(&f.server.software)
            );
            continue;
        }
        let addrs: Vec<String> = f.addresses.iter().map(ToString::to_string).collect();
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
        crate::say!(
            "ferry: no server answered within {:.1} s",
            wait.as_secs_f64()
        );
    }
    if found.rejected > 0 {
        crate::say!(
            "ferry: ignored {} answer(s) not signed with FERRY_TOKEN",
            found.rejected
        );
    }
    ExitCode::SUCCESS
}

fn print_change(c: &crate::discovery::client::Change, json: bool) {
    use crate::discovery::client::Change;
    if json {
        if let Ok(s) = serde_json::to_string(c) {
            println!("{s}");
        }
        return;
    }
    match c {
        Change::Up(f) => {
            let addrs: Vec<String> = f.addresses.iter().map(ToString::to_string).collect();
            println!(
                "+ {:<20} {}  tcp {}  {}",
                escape(&f.server.name),
                addrs.join(", "),
                f.server.tcp_port,
                escape(&f.server.software)
            );
        }
        Change::Down { name, .. } => println!("- {}", escape(name)),
    }
}
