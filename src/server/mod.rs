//! The server: listeners on the shared port, the door sniffer, connection
//! limits, auth and shutdown. Each door translates its framing into calls on
//! the services (the [`FileStore`], the exec runner); services never learn which door a
//! request came through.
//!
//! Shutdown has two stages. `stop` ends the accept loops and closes idle
//! connections, while requests in progress go on; after the grace period,
//! `abort` makes in-flight transfers give up cleanly (partial uploads
//! removed, an error frame sent). Then every connection task has ended.

mod auth;
pub(crate) mod chat;
mod classic;
mod exec;
mod fail;
pub mod hosts;
#[allow(
    clippy::result_large_err,
    reason = "handlers return Result<_, Response> as axum intends; the error is the reply"
)]
pub mod http;
mod limits;
mod native;
pub mod sniff;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::BytesMut;
use std::net::UdpSocket;
use tokio::io::AsyncWriteExt;

use tokio::net::{TcpListener, TcpStream};

use crate::wire::Stream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

pub use auth::{Gate, Verdict};
pub use limits::{ConnLimits, ConnPermit, Refusal};
use sniff::{Door, sniff};

use crate::config::ServeConfig;
use crate::files::FileStore;
use crate::wire::classic::{ClassicReply, encode_reply};
use crate::wire::frame::{Kind, encode_head};
use crate::wire::messages::{ErrorCode, ErrorReply};

/// Connections that may be told "busy" at once; past this they are dropped.
const MAX_REFUSING: usize = 64;

/// What every door shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) config: ServeConfig,
    /// The files service: store, access decision, upload limits.
    pub(crate) files: crate::files::Files,
    pub(crate) gate: Gate,
    pub(crate) limits: Arc<ConnLimits>,
    /// Running commands, in all and per client address.
    pub(crate) exec_slots: Arc<ConnLimits>,
    /// The chat hub, unless chat is off.
    pub(crate) chat: Option<Arc<crate::chat::Hub>>,
    pub(crate) time: crate::time::TimeService,
    /// Random per start: lets `ferry discover` list a server once however
    /// many of its addresses answer.
    pub(crate) instance: String,
    /// Stop taking requests; idle connections close.
    pub(crate) stop: CancellationToken,
    /// Abandon in-flight transfers.
    pub(crate) abort: CancellationToken,
    /// Browsers logged in through the page.
    pub(crate) sessions: http::auth::Sessions,
    /// TLS, when on.
    pub(crate) tls: Option<crate::tls::server::ServerTls>,
    /// The names HTTP requests may carry in `Host`.
    pub(crate) names: hosts::KnownNames,
    /// KiB of folder-upload manifests being checked at once, in all.
    pub(crate) plan_budget: Arc<Semaphore>,
    /// The key resumable-upload URLs are signed with, loaded or made on
    /// first use (see [`Ctx::upload_key`]).
    upload_key: std::sync::OnceLock<Vec<u8>>,
}

impl Ctx {
    /// The key resumable-upload URLs are signed with: read from the state
    /// folder, or made there, the first time an upload needs it (a server
    /// that never sees one writes no file for it).
    pub(crate) fn upload_key(&self) -> &[u8] {
        self.upload_key
            .get_or_init(|| upload_key(&self.config.state_dir))
    }

    /// Whether an HTTP request's `Host` names this server (see
    /// [`hosts::KnownNames`]).
    pub(crate) fn answers_to(&self, host: &str) -> bool {
        self.names
            .allows(host, |n| self.tls.as_ref().is_some_and(|t| t.valid_for(n)))
    }
}

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
        let store = FileStore::open(&config.root)
            .with_context(|| format!("cannot serve {}", config.root.display()))?;
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
            Some(open_chat(&config)?)
        } else {
            None
        };
        let abort = CancellationToken::new();
        let names = hosts::KnownNames::new(&crate::config::host_name(), &config.allow_host);
        let ctx = Arc::new(Ctx {
            upload_key: std::sync::OnceLock::new(),
            names,
            chat,
            gate: Gate::new(config.token.clone()),
            limits: ConnLimits::new(config.limits.clone()),
            exec_slots: ConnLimits::new(crate::config::Limits {
                max_connections: config.exec.jobs,
                max_per_ip: config.exec.jobs_per_client,
                limit_loopback: true,
            }),
            time: crate::time::TimeService::new(config.time.clone()),
            instance: crate::discovery::wire::random_hex().context("cannot read /dev/urandom")?,
            files: crate::files::Files::new(
                store,
                config.policy(),
                config.max_upload,
                config.deadlines.body,
                abort.clone(),
            ),
            config,
            stop: CancellationToken::new(),
            abort,
            sessions: Default::default(),
            tls,
            plan_budget: Arc::new(Semaphore::new((native::MAX_PLAN_BODY / 1024) as usize)),
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

    /// The served folder, canonical.
    pub fn root(&self) -> &std::path::Path {
        self.ctx.files.store().root()
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
        shutdown.cancelled().await;

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

/// Binds TCP and UDP on one address; IPv6 sockets are v6-only so that the
/// IPv4 wildcard can share the port.
fn bind_pair(addr: SocketAddr) -> anyhow::Result<(TcpListener, UdpSocket)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = Domain::for_address(addr);
    let t = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        t.set_only_v6(true)?;
    }
    t.set_reuse_address(true)?;
    t.set_nonblocking(true)?;
    t.bind(&addr.into())?;
    t.listen(1024)?;
    let tcp = TcpListener::from_std(t.into())?;
    // Port 0 means "any": the UDP socket takes the port TCP got.
    let udp = bind_udp(SocketAddr::new(addr.ip(), tcp.local_addr()?.port()))?;
    Ok((tcp, udp))
}

/// Binds one UDP socket (v6-only for IPv6, as for TCP).
fn bind_udp(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let u = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        u.set_only_v6(true)?;
    }
    u.bind(&addr.into())?;
    // Announcements go to broadcast addresses.
    let _ = u.set_broadcast(true);
    if addr.ip().is_unspecified() && addr.is_ipv4() {
        // Discovery probes also come to a multicast group.
        crate::discovery::client::join_group_everywhere(&u);
    }
    // Served by a thread of its own with blocking reads (see udp.rs); the
    // timeout is how often it looks at the stop signal.
    u.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(u.into())
}

async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    tracker: TaskTracker,
    refusing: Arc<Semaphore>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match ctx.limits.try_acquire(peer.ip()) {
            Ok(permit) => {
                // crate::log::conn_span writes this span the same way.
                let span = info_span!("conn", peer = %peer);
                tracker.spawn(handle(stream, peer, ctx.clone(), permit).instrument(span));
            }
            Err(refusal) => {
                info!(peer = %peer, "refused: {refusal}");
                if let Ok(slot) = refusing.clone().try_acquire_owned() {
                    let timeout = ctx.config.sniff_timeout.min(Duration::from_secs(2));
                    tokio::spawn(async move {
                        refuse(stream, timeout, &refusal.to_string()).await;
                        drop(slot);
                    });
                }
            }
        }
    }
}

/// Which door a connection (plain or decrypted) is for, from its first
/// bytes; `None` when it closed first.
async fn choose_door<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    ctx: &Ctx,
) -> Option<(Door, BytesMut)> {
    match sniff(stream, ctx.config.sniff_timeout).await {
        Ok((door, initial)) => {
            debug!(?door, "door chosen");
            Some((door, initial))
        }
        Err(e) => {
            debug!("closed before a door was chosen: {e}");
            None
        }
    }
}

async fn handle(mut stream: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>, _permit: ConnPermit) {
    let Some((door, initial)) = choose_door(&mut stream, &ctx).await else {
        return;
    };
    let stream = match (door, &ctx.tls) {
        (Door::Tls, Some(tls)) => {
            return Box::pin(serve_tls(tls, stream, initial, peer, ctx.clone())).await;
        }
        (Door::Tls, None) => {
            return text_line(
                Stream::Plain(stream),
                "ferry: TLS is not enabled on this server; connect without TLS",
            )
            .await;
        }
        (_, Some(tls)) if tls.required() && !peer.ip().is_loopback() => {
            return Box::pin(refuse_plain(stream, door, initial, ctx)).await;
        }
        _ => Stream::Plain(stream),
    };
    serve_door(stream, door, initial, peer, ctx).await
}

/// The handshake, then the doors inside TLS, told apart as on a plain
/// connection.
async fn serve_tls(
    tls: &crate::tls::server::ServerTls,
    stream: TcpStream,
    initial: BytesMut,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
) {
    let write_limit = ctx.config.deadlines.body;
    let mut s = match tls.accept(stream, initial, write_limit).await {
        Ok(s) => s,
        Err(e) => {
            info!("TLS handshake failed: {e}");
            return;
        }
    };
    let Some((door, initial)) = choose_door(&mut s, &ctx).await else {
        return;
    };
    serve_door(Stream::Server(Box::new(s)), door, initial, peer, ctx).await
}

/// Hands a connection, plain or decrypted, to its door. Each door's state
/// is allocated when the door is entered (boxed), so a connection still
/// being sniffed, or many idle ones, cost only what they hold.
async fn serve_door(
    stream: Stream,
    door: Door,
    initial: BytesMut,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
) {
    match door {
        Door::Native => Box::pin(native::serve(stream, initial, peer, ctx)).await,
        Door::Classic => Box::pin(classic::serve(stream, initial, peer, ctx)).await,
        // TLS inside TLS: nobody does that on purpose.
        Door::Tls => text_line(stream, "ferry: unexpected TLS inside TLS").await,
        Door::Http if ctx.config.web => Box::pin(http::serve(stream, initial, peer, ctx)).await,
        Door::Http => {
            refuse_http(
                stream,
                "501 Not Implemented",
                "this server does not serve HTTP (--no-web)",
            )
            .await
        }
        Door::Foreign => {
            info!("closed: another protocol's greeting");
            text_line(
                stream,
                "ferry: this port speaks ferry, HTTP and plain-text chat, not this protocol",
            )
            .await
        }
        // Anything else, or nothing at all for a moment: a person with nc
        // or telnet, who gets the chat in plain text lines.
        Door::Unknown | Door::Silent => {
            Box::pin(chat::serve_text(stream, initial, peer, ctx)).await
        }
    }
}

/// The key resumable-upload URLs are signed with: `upload.key` in the
/// state folder (made once, 0600), so uploads resume across restarts; a
/// key of this run alone when the folder cannot be written.
fn upload_key(state_dir: &std::path::Path) -> Vec<u8> {
    use std::io::Read;
    let path = state_dir.join("upload.key");
    if let Ok(key) = std::fs::read(&path) {
        if key.len() >= 32 {
            return key;
        }
    }
    let mut key = vec![0u8; 32];
    if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key)) {
        warn!("no randomness for the upload key: {e}");
    }
    let written =
        std::fs::create_dir_all(state_dir).and_then(|()| crate::secret::write_private(&path, &key));
    if let Err(e) = written {
        warn!(
            "cannot keep the upload key in {}: {e}; resumable uploads will not resume after a restart",
            state_dir.display()
        );
    }
    key
}

/// The chat hub, with its history in the state folder (created private).
fn open_chat(config: &ServeConfig) -> anyhow::Result<Arc<crate::chat::Hub>> {
    if config.chat.retention.per_room == 0 {
        // No history kept: nothing to write, and no file to open.
        return Ok(crate::chat::Hub::new(
            &config.name,
            config.chat.limits,
            None,
        ));
    }
    let dir = &config.state_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the state folder {}", dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    // One file per port, so that two servers of one user (on two ports)
    // each keep their own history.
    let port = config
        .listen
        .first()
        .map_or(crate::config::DEFAULT_PORT, |a| a.port());
    let path = dir.join(format!("chat-{port}.sqlite3"));
    let history =
        crate::chat::store::History::open(&path, config.chat.retention).with_context(|| {
            format!(
                "cannot open the chat history {} (give this server its own --state-dir, or --no-chat)",
                path.display()
            )
        })?;
    Ok(crate::chat::Hub::new(
        &config.name,
        config.chat.limits,
        Some(history),
    ))
}

/// Answers a refused connection in its own framing where it can be told.
async fn refuse(mut stream: TcpStream, timeout: Duration, message: &str) {
    let door = sniff(&mut stream, timeout)
        .await
        .map(|(d, _)| d)
        .unwrap_or(Door::Unknown);
    send_and_close(stream, &refusal(door, ErrorCode::Busy, message)).await;
}

/// Writes a last word (two seconds at most), then closes without losing it.
async fn send_and_close(mut stream: TcpStream, out: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(out)).await;
    let _ = stream.shutdown().await;
    crate::wire::connection::linger(&mut stream).await;
}

/// A plain connection to a server that requires TLS, from elsewhere than
/// loopback: told so in its own framing (HTTP is redirected to https), and
/// closed. Nothing it sent is acted on.
async fn refuse_plain(stream: TcpStream, door: Door, initial: BytesMut, ctx: Arc<Ctx>) {
    info!(?door, "refused: plain connection, TLS required");
    if door == Door::Http {
        return http::redirect_to_tls(Stream::Plain(stream), initial, ctx).await;
    }
    let message = match door {
        Door::Native => "this server requires TLS: connect with --tls",
        Door::Classic => {
            "this server requires TLS: wrap the socket in TLS (in Python, ssl.SSLContext.wrap_socket)"
        }
        _ => {
            "this server requires TLS: use `ferry chat --tls HOST`, or `openssl s_client -quiet -connect HOST:PORT`"
        }
    };
    send_and_close(stream, &refusal(door, ErrorCode::TlsRequired, message)).await;
}

/// A refusal in the framing of `door`: an error frame, a classic error
/// reply, an HTTP 503, or a text line.
fn refusal(door: Door, code: ErrorCode, message: &str) -> BytesMut {
    let mut out = BytesMut::new();
    match door {
        Door::Native => {
            let reply = ErrorReply {
                code,
                message: message.to_string(),
            };
            let json = serde_json::to_vec(&reply).unwrap_or_default();
            encode_head(Kind::Error, &json, 0, &mut out);
        }
        Door::Classic => encode_reply(
            &ClassicReply {
                error: Some(message.to_string()),
                ..Default::default()
            },
            &mut out,
        ),
        Door::Http => out.extend_from_slice(&http_status("503 Service Unavailable", message)),
        _ => out.extend_from_slice(format!("ferry: {message}\n").as_bytes()),
    }
    out
}

/// A whole HTTP/1.1 response with a text body, for connections that do not
/// reach the web door.
fn http_status(status: &str, message: &str) -> Vec<u8> {
    let body = format!("{message}\n");
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers an HTTP request that will not be served, and closes.
async fn refuse_http(mut stream: Stream, status: &str, message: &str) {
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        stream.write_all(&http_status(status, message)),
    )
    .await;
    let _ = stream.shutdown().await;
    crate::wire::connection::linger(&mut stream).await;
}

/// Sends one line of text and closes.
async fn text_line(mut stream: Stream, line: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(line.as_bytes()).await?;
        stream.write_all(b"\n").await?;
        stream.shutdown().await
    })
    .await;
    crate::wire::connection::linger(&mut stream).await;
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
