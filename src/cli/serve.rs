//! `ferry serve`: runs the server until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::config::{ServeConfig, ServeOptions};
use crate::server::Server;

/// Arguments of `ferry serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Folder to serve. [default: the current folder]
    pub dir: Option<PathBuf>,
    /// Server options.
    #[command(flatten)]
    pub options: ServeOptions,
}

pub(crate) async fn run(args: ServeArgs) -> ExitCode {
    let config = match ServeConfig::load(args.dir, &args.options) {
        Ok(c) => c,
        Err(e) => {
            crate::say!("ferry: {e:#}");
            return ExitCode::from(2);
        }
    };
    // Every connection is a file descriptor; the usual soft limit of 1024
    // would cap the server well below its connection limit.
    let wanted = config.limits.max_connections as u64 + 256;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => tracing::warn!(
            "open-file limit is {got}: fewer than {wanted} connections may be possible"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
    let perms = config.granted;
    let anonymous = config.anonymous;
    let anonymous_paths = config.anonymous_paths.clone();
    let token = config.token.is_some();
    let accounts: Vec<String> = config.accounts.iter().map(|a| a.name.clone()).collect();
    let (web, chat) = (config.web, config.chat.enabled);
    let server = match Server::bind(config).await {
        Ok(s) => s,
        Err(e) => {
            crate::say!("ferry: {e:#}");
            return ExitCode::from(1);
        }
    };
    // Before the first line that says it is up: Ctrl-C from then on is a
    // graceful shutdown, never the default kill.
    let signals = Signals::install();
    println!("ferry serving {}", server.serving());
    for addr in server.tcp_addrs() {
        println!("listening on {addr} (tcp, udp)");
    }
    let reachable = reachable_addresses(&server.tcp_addrs());
    if !reachable.is_empty() {
        println!("reachable at:");
        for (iface, addr) in &reachable {
            println!("  {iface:<10} {addr}");
        }
    }
    let describe = |p: crate::access::Rights| {
        let mut v = Vec::new();
        let rights = [
            (p.read, "read"),
            (p.upload, "upload"),
            (p.delete, "delete"),
            (p.exec, "run commands"),
        ];
        for (on, name) in rights {
            if on {
                v.push(name);
            }
        }
        if v.is_empty() {
            "nothing".to_string()
        } else {
            v.join(", ")
        }
    };
    // Rights given per folder in the config file's [anonymous] are said
    // as given there.
    let anonymous = match &anonymous_paths {
        Some(g) if g.list().is_empty() => "nothing".to_string(),
        Some(g) => {
            let each: Vec<String> = g.list().iter().map(|r| r.to_string()).collect();
            format!("per folder, {}", each.join(", "))
        }
        None => describe(anonymous),
    };
    if !accounts.is_empty() {
        println!(
            "accounts: {} (rights per folder, within: {}); without logging in: {}",
            accounts.join(", "),
            describe(perms),
            anonymous
        );
    } else if token {
        println!(
            "with the token: {}; without: {}",
            describe(perms),
            anonymous
        );
    } else {
        println!("everyone may: {}", describe(perms));
    }
    let tls = server.tls().map(|t| {
        println!(
            "TLS on every door{}: certificate {} ({})",
            if t.required() {
                ", required except from loopback"
            } else {
                ""
            },
            t.cert_path().display(),
            match t.origin() {
                crate::tls::server::Origin::Made => "self-signed, made now",
                crate::tls::server::Origin::Kept => "self-signed, kept in the state folder",
                crate::tls::server::Origin::Given => "given",
            }
        );
        println!("  SHA-256 {}", crate::tls::show(t.fingerprint()));
        println!("  clients check it on first use: ferry ping --tls HOST shows the same");
        crate::tls::show(t.fingerprint())
    });
    for addr in server.udp_addrs() {
        if !server.tcp_addrs().contains(&addr) {
            println!("answering NTP on {addr} (udp)");
        }
    }
    // The example uses an address another machine can reach when there is one.
    let example = reachable
        .iter()
        .map(|(_, a)| *a)
        .find(|a| !a.ip().is_loopback())
        .or_else(|| server.tcp_addrs().first().copied());
    if let Some(a) = example {
        let host = crate::client::Remote {
            host: a.ip().to_string(),
            port: a.port(),
            path: String::new(),
        }
        .authority();
        let flag = match &tls {
            Some(fp) => format!(" --fingerprint {fp}"),
            None => String::new(),
        };
        if a.ip().is_loopback() {
            // Nothing another machine could reach: say so, not "another".
            println!("listening on loopback only; from this machine, try:");
        } else {
            println!("from another machine, try:");
        }
        if tls.is_some() {
            println!("  ferry ping{flag} {host}");
            println!("  (then, once pinned)  ferry ls {host}    ferry get {host}:/FILE .");
        } else {
            println!(
                "  ferry ls {host}    ferry get {host}:/FILE .    ferry time {host}    ferry ping {host}"
            );
        }
        if web {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let url = format!("{scheme}://{a}/");
            println!("  in a browser: {url}");
            // For a phone's camera; only for a person at a terminal.
            use std::io::IsTerminal;
            if std::io::stderr().is_terminal() {
                if let Some(code) = crate::qr::render(&url) {
                    crate::say!("{code}");
                }
            }
        }
        if chat {
            if tls.is_some() {
                println!("  chat: ferry chat {host}    or    openssl s_client -quiet -connect {a}",);
            } else {
                println!(
                    "  chat: ferry chat {host}    or    nc {} {}",
                    a.ip(),
                    a.port()
                );
            }
        }
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(signals, shutdown.clone()));
    match server.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

/// SIGTERM and SIGINT, caught from when they are installed.
struct Signals {
    term: std::io::Result<tokio::signal::unix::Signal>,
    int: std::io::Result<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            term: signal(SignalKind::terminate()),
            int: signal(SignalKind::interrupt()),
        }
    }
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit at once.
async fn watch_signals(signals: Signals, shutdown: CancellationToken) {
    let (Ok(mut term), Ok(mut int)) = (signals.term, signals.int) else {
        error!("cannot install signal handlers");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    info!("signal received: shutting down (again to exit at once)");
    shutdown.cancel();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    std::process::exit(130);
}

/// Every (interface, address) a client could connect to: the listen
/// addresses themselves, or, for a wildcard, each up interface's address of
/// that family.
fn reachable_addresses(listening: &[std::net::SocketAddr]) -> Vec<(String, std::net::SocketAddr)> {
    let interfaces = if_addrs::get_if_addrs().unwrap_or_default();
    let mut out = Vec::new();
    for l in listening {
        if !l.ip().is_unspecified() {
            out.push(("".to_string(), *l));
            continue;
        }
        for i in &interfaces {
            let ip = i.ip();
            if ip.is_ipv4() != l.is_ipv4() {
                continue;
            }
            if let std::net::IpAddr::V6(v6) = ip {
                // Link-local addresses need a scope; leave them out of the list.
                if v6.segments()[0] & 0xffc0 == 0xfe80 {
                    continue;
                }
            }
            out.push((i.name.clone(), std::net::SocketAddr::new(ip, l.port())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_expand_to_interfaces_and_specific_addresses_stay() {
        let any: std::net::SocketAddr = "0.0.0.0:7070".parse().unwrap();
        let listed = reachable_addresses(&[any]);
        assert!(
            listed
                .iter()
                .any(|(_, a)| a.to_string() == "127.0.0.1:7070"),
            "{listed:?}"
        );
        assert!(listed.iter().all(|(_, a)| a.is_ipv4() && a.port() == 7070));
        let one: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(reachable_addresses(&[one]), vec![(String::new(), one)]);
    }
}
