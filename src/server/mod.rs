//! The server, and every door in one wing: the native, classic, text-chat,
//! web ([`http`]) and datagram doors. Each door translates its framing into
//! calls on the services (files, exec, chat, time); services never learn
//! which door a request came through. Beside the doors: binding and the
//! accept loop (`listen`), what the doors share (`ctx`), the sniffer
//! ([`sniff`]) and what each door offers the listener (`door`), refusals
//! in every framing (`refuse`), connection limits and the token gate.
//!
//! Shutdown has two stages. `stop` ends the accept loops and closes idle
//! connections, while requests in progress go on; after the grace period,
//! `abort` makes in-flight transfers give up cleanly (partial uploads
//! removed, an error frame sent). Then every connection task has ended.

mod audit;
mod auth;
pub(crate) mod chat;
mod classic;
mod ctx;
mod door;
mod exec;
mod fail;
pub mod hosts;
#[allow(
    clippy::result_large_err,
    reason = "handlers return Result<_, Response> as axum intends; the error is the reply"
)]
pub mod http;
mod limits;
mod listen;
mod native;
mod refuse;
mod share;
pub mod sniff;
mod udp;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use auth::{Gate, Verdict};
pub(crate) use ctx::Ctx;
pub use limits::{ConnLimits, ConnPermit, Refusal};
use listen::{accept_loop, bind_pair, bind_udp};

use crate::config::ServeConfig;

/// Connections that may be told "busy" at once; past this they are dropped.
const MAX_REFUSING: usize = 64;

/// A bound, not yet running server.
pub struct Server {
    ctx: Arc<Ctx>,
    tcp: Vec<TcpListener>,
    /// Each UDP socket, and whether it is a shared-port one (announcements
    /// go out from those; the extra NTP port only answers NTP).
    udp: Vec<(UdpSocket, bool)>,
}

impl Server {
    /// Opens the served folder and binds every listen address, TCP and UDP.
    /// With the default pair, a failure to bind IPv6 only warns.
    pub async fn bind(config: ServeConfig) -> anyhow::Result<Server> {
        // Made before the storage opens, so that the fence takes its real
        // path (through any link on the way) from the start.
        {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&config.state_dir);
        }
        let mut showing = config.showing.clone();
        showing.private.push(config.state_dir.clone());
        let store = crate::files::open_storage(&config.root, config.store.as_ref(), &showing)
            .with_context(|| match &config.store {
                Some(url) => format!("cannot serve {url}"),
                None => format!("cannot serve {}", config.root.display()),
            })?;
        if config.token.as_ref().is_some_and(|t| t.expose().len() < 20) && config.discovery {
            // A signed discovery answer is an HMAC anyone on the LAN can
            // ask for, and test guesses against offline, unthrottled.
            warn!(
                "the token is short: discovery answers are signed with it, so anyone on the network can test guesses offline; use 20 or more random characters (openssl rand -base64 24), or --no-discovery"
            );
        }
        let mut tcp = Vec::new();
        let mut udp = Vec::new();
        for addr in &config.listen {
            match bind_pair(*addr) {
                Ok((t, u)) => {
                    tcp.push(t);
                    udp.push((u, true));
                }
                Err(e) if config.default_listen && addr.is_ipv6() => {
                    warn!("not listening on {addr}: {e:#}");
                }
                Err(e) => return Err(e.context(format!("cannot listen on {addr}"))),
            }
            if let Some(port) = config.ntp_port {
                let ntp_addr = SocketAddr::new(addr.ip(), port);
                match bind_udp(ntp_addr) {
                    Ok(u) => udp.push((u, false)),
                    Err(e) if config.default_listen && addr.is_ipv6() => {
                        warn!("not answering NTP on {ntp_addr}: {e:#}");
                    }
                    Err(e) => return Err(e.context(format!("cannot listen on {ntp_addr}"))),
                }
            }
        }
        let tls = match &config.tls {
            Some(t) => Some(crate::tls::server::ServerTls::load(
                t,
                &config.state_dir,
                &crate::tls::server::host_names(&crate::config::host_name()),
            )?),
            None => None,
        };
        let chat = if config.chat.enabled {
            let hub = ctx::open_chat(&config)?;
            // Account names are theirs alone in the chat.
            hub.reserve(config.accounts.iter().map(|a| a.name.clone()));
            if let Some(bus) = &config.chat.bus {
                let bus = crate::chat::bus::Bus::start(&hub, bus.clone())
                    .await
                    .context("cannot start the chat bus")?;
                hub.attach_bus(bus);
            }
            Some(hub)
        } else {
            None
        };
        let abort = CancellationToken::new();
        let names = hosts::KnownNames::new(&crate::config::host_name(), &config.allow_host);
        // Servers of one shared storage sign logins and share links with
        // one key, so that what one signs the others take.
        let shared_key = |name: &str| {
            let shared = store.shared()?;
            match crate::files::storage::shared_key(shared, name) {
                Ok(k) => Some(k),
                Err(e) => {
                    warn!(
                        "the {name} key of the store cannot be read ({e}); this server signs with its own until it restarts"
                    );
                    None
                }
            }
        };
        let login_key = if config.accounts.is_empty() {
            None
        } else {
            shared_key("login")
        };
        let policy = config.policy();
        if let Some(k) = shared_key("share") {
            policy.links.use_key(k);
        }
        policy.links.use_shared(store.clone());
        let dav = http::dav::Dav::new(&config.state_dir, store.clone());
        let ctx = Arc::new(Ctx {
            upload_key: std::sync::OnceLock::new(),
            names,
            chat,
            gate: gate(&config, login_key),
            audit: audit::Audit::new(&config.state_dir),
            limits: ConnLimits::new(config.limits.clone()),
            exec_slots: ConnLimits::new(crate::config::Limits {
                max_connections: config.exec.jobs,
                max_per_ip: config.exec.jobs_per_client,
                limit_loopback: true,
            }),
            time: crate::time::TimeService::new(config.time.clone()),
            instance: crate::ids::random_hex().context("cannot read /dev/urandom")?,
            // Whichever door moves or removes a file, its WebDAV dead
            // properties go with it.
            files: crate::files::Files::new(
                store,
                policy,
                config.max_upload,
                config.deadlines.body,
                abort.clone(),
            )
            .followed_by(vec![dav.props.clone()]),
            dav,
            config,
            stop: CancellationToken::new(),
            abort,
            sessions: Default::default(),
            tls,
            plan_budget: Arc::new(Semaphore::new((native::MAX_PLAN_BODY / 1024) as usize)),
            http_peers: std::sync::Mutex::default(),
        });
        Ok(Server { ctx, tcp, udp })
    }

    /// The TCP addresses actually bound (with real ports when 0 was asked).
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The UDP addresses actually bound.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|(s, _)| s.local_addr().ok())
            .collect()
    }

    /// TLS, when on: the certificate's fingerprint and file.
    pub fn tls(&self) -> Option<&crate::tls::server::ServerTls> {
        self.ctx.tls.as_ref()
    }

    /// Where the served files are (the canonical folder).
    pub fn serving(&self) -> String {
        self.ctx.files.store().describe()
    }

    /// Serves until `shutdown` is cancelled, then shuts down gracefully.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tcp_port_first = self
            .tcp
            .first()
            .and_then(|l| l.local_addr().ok())
            .map_or(0, |a| a.port());
        let tracker = TaskTracker::new();
        let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
        let mut loops = tokio::task::JoinSet::new();
        for listener in self.tcp {
            loops.spawn(accept_loop(
                listener,
                self.ctx.clone(),
                tracker.clone(),
                refusing.clone(),
            ));
        }
        // Abandoned partial uploads: swept at start, then hourly.
        let sweeper = self.ctx.clone();
        loops.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                let ctx = sweeper.clone();
                let max_age = ctx.config.partial_max_age;
                if let Ok(n) =
                    tokio::task::spawn_blocking(move || ctx.files.store().sweep_partials(max_age))
                        .await
                {
                    if n > 0 {
                        info!(removed = n, "removed abandoned partial uploads");
                    }
                }
            }
        });
        let mut datagram_threads = Vec::new();
        let tcp_port = tcp_port_first;
        for (socket, shared) in self.udp {
            let ctx = self.ctx.clone();
            let thread = std::thread::Builder::new()
                .name("ferry-udp".into())
                .spawn(move || udp::serve(&socket, &ctx, tcp_port, shared))
                .context("cannot start the datagram thread")?;
            datagram_threads.push(thread);
        }
        let announcer = announce(&self.ctx, tcp_port);
        shutdown.cancelled().await;
        drop(announcer);

        let open = self.ctx.limits.open();
        info!(connections = open, "shutting down: no new connections");
        loops.abort_all();
        self.ctx.stop.cancel();
        for t in datagram_threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        tracker.close();
        let grace = self.ctx.config.shutdown_grace;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            info!("grace period over: aborting transfers still running");
            self.ctx.abort.cancel();
            if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
                .await
                .is_err()
            {
                warn!("some connections did not end in time");
            }
        }
        info!("stopped");
        Ok(())
    }
}

/// Starts announcing the server by mDNS/DNS-SD, unless discovery is
/// off or it listens on loopback only.
fn announce(ctx: &Ctx, tcp_port: u16) -> Option<crate::discovery::mdns::Announcer> {
    let cfg = &ctx.config;
    if !cfg.discovery || cfg.listen.iter().all(|a| a.ip().is_loopback()) {
        return None;
    }
    let addrs = if cfg.listen.iter().any(|a| a.ip().is_unspecified()) {
        Vec::new()
    } else {
        cfg.listen
            .iter()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_loopback())
            .collect()
    };
    let udp_port = cfg.listen.first().map_or(tcp_port, |a| a.port());
    let offer = crate::discovery::mdns::Offer {
        me: udp::announcement(ctx, tcp_port, udp_port, String::new(), None),
        tls: cfg.tls.is_some(),
        addrs,
    };
    match crate::discovery::mdns::Announcer::start(&offer) {
        Ok(a) => Some(a),
        Err(e) => {
            warn!("not announced by mDNS: {e}");
            None
        }
    }
}

/// The gate of `config`'s token and accounts (with their login tokens'
/// key, when there are accounts: `shared`, else in the state folder).
fn gate(config: &ServeConfig, shared: Option<Vec<u8>>) -> Gate {
    let g = Gate::new(config.token.clone(), config.accounts.clone());
    if config.accounts.is_empty() {
        return g;
    }
    let key = shared.unwrap_or_else(|| {
        crate::secret::state_key(&config.state_dir, "login.key", "login tokens")
    });
    g.with_logins(crate::access::logins::Logins::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn of four (or five) arguments
    /// returns: what a spawned connection task holds for its whole life.
    fn task4<A, B, C, D, F: std::future::Future>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_connection_costs_little_until_its_door_is_chosen() {
        use listen::handle;
        // Every connection's task starts as `handle`; a door's state is
        // boxed when it is entered. A 16 KiB buffer on an async stack once
        // made each of 4,000 idle connections cost 19 KiB, kept after they
        // closed.
        let handle = task4(handle as fn(_, _, _, _) -> _);
        assert!(handle <= 1024, "a connection task is {handle} bytes");
        for (door, size) in [
            ("native", task4(native::serve as fn(_, _, _, _) -> _)),
            ("classic", task4(classic::serve as fn(_, _, _, _) -> _)),
            ("chat", task4(chat::serve_text as fn(_, _, _, _) -> _)),
            ("http", task4(http::serve as fn(_, _, _, _) -> _)),
        ] {
            assert!(size <= 4096, "the {door} door's state is {size} bytes");
        }
    }
}
