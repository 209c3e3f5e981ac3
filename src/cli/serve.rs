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
            eprintln!("ferry: {e:#}");
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
    let token = config.token.is_some();
    let server = match Server::bind(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            return ExitCode::from(1);
        }
    };
    println!("ferry serving {}", server.root().display());
    for addr in server.tcp_addrs() {
        println!("listening on {addr} (tcp, udp)");
    }
    let describe = |p: crate::wire::messages::Permissions| {
        let mut v = Vec::new();
        for (on, name) in [(p.read, "read"), (p.upload, "upload"), (p.delete, "delete")] {
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
    if token {
        println!(
            "with the token: {}; without: {}",
            describe(perms),
            describe(anonymous)
        );
    } else {
        println!("everyone may: {}", describe(perms));
    }
    for addr in server.udp_addrs() {
        if !server.tcp_addrs().contains(&addr) {
            println!("answering NTP on {addr} (udp)");
        }
    }
    if let Some(a) = server.tcp_addrs().first() {
        println!("try: ferry ls HOST:{0}  ·  ferry time HOST:{0}", a.port());
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    match server.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit at once.
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    info!("signal received: shutting down (again to exit at once)");
    shutdown.cancel();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    std::process::exit(130);
}
