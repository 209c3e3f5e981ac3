//! [`Stream`]: the byte stream under every door and under the client,
//! plain TCP or TLS over it. The doors read and write it without knowing
//! which; what differs (socket options, the `Secure` cookie flag) asks
//! [`Stream::tcp`] or [`Stream::is_tls`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::Guarded;
use super::connection::{BoxRead, BoxWrite};

/// A server-side TLS stream: the handshake began with bytes the sniffer
/// had already read, hence the [`Guarded`] underneath.
pub type ServerTls = tokio_rustls::server::TlsStream<Guarded<TcpStream>>;
/// A client-side TLS stream.
pub type ClientTls = tokio_rustls::client::TlsStream<TcpStream>;

/// A connection, in clear or encrypted.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS accepted by the server.
    Server(Box<ServerTls>),
    /// TLS opened by the client.
    Client(Box<ClientTls>),
}

impl Stream {
    /// Whether the bytes travel encrypted.
    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Server(s) => s.get_ref().0.get_ref(),
            Stream::Client(s) => s.get_ref().0,
        }
    }

    /// Splits into halves that can be used from two tasks. Plain TCP splits
    /// without a lock; TLS, one state for both directions, through tokio's
    /// `split`.
    pub fn into_split(self) -> (BoxRead, BoxWrite) {
        match self {
            Stream::Plain(s) => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            tls => {
                let (r, w) = tokio::io::split(tls);
                (Box::new(r), Box::new(w))
            }
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_tls() { "tls" } else { "plain" };
        f.debug_struct("Stream")
            .field("kind", &kind)
            .field("peer", &self.tcp().peer_addr().ok())
            .finish()
    }
}

/// Forwards a poll method to whichever stream is inside.
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Server($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
            Stream::Client($s) => {
                let $s = Pin::new($s.as_mut());
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Server(s) => s.is_write_vectored(),
            Stream::Client(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_shutdown(cx))
    }
}

/// Sets the options every ferry TCP connection has, at both ends: Nagle
/// off (requests are small and latency matters), and TCP keepalives, so
/// that a connection that may sit idle for hours (a chat) stays open
/// through NAT and firewalls, and one whose peer vanished without a word
/// (a cable pulled, a machine off) is found out within about two and a
/// half minutes (the system's 9 probes, 10 s apart, after 60 s of quiet).
///
/// A connection between two programs on this machine is moved to
/// [`local_congestion_control`] here when it was not given it from the
/// start (by [`connect`], or by its listener: see [`tune_accepted`]): the
/// pacing the first one set up stays, so only part of the gain is had.
pub fn tune(stream: &TcpStream) {
    if keep_alive_no_delay(stream) == Some(true) {
        local_congestion_control(stream);
    }
}

/// [`tune`] for a connection `listener` took. A listener is given
/// [`local_congestion_control`] (see [`listen_here_fast`]) so that the
/// connections it takes from this machine have it from their first
/// packet; one from another machine is put back to the system's choice
/// here, before a byte of it is sent, as if the listener had not been
/// given it.
pub fn tune_accepted(stream: &TcpStream, listener: &impl std::os::fd::AsFd) {
    match keep_alive_no_delay(stream) {
        Some(true) => local_congestion_control(stream),
        Some(false) => {
            let Some(system) = system_congestion() else {
                return;
            };
            let given = congestion(listener);
            // A route's own choice (`ip route ... congctl`) comes before
            // the listener's: a connection that has another than the
            // listener's has it from its route, and keeps it.
            if given.as_deref() != Some(system) && congestion(stream) == given {
                use nix::sys::socket::{setsockopt, sockopt::TcpCongestion};
                let _ = setsockopt(stream, TcpCongestion, &std::ffi::OsString::from(system));
            }
        }
        None => {}
    }
}

/// Nagle off and keepalives on (see [`tune`]); gives whether the peer is
/// on this machine (`None` when the addresses cannot be read).
fn keep_alive_no_delay(stream: &TcpStream) -> Option<bool> {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(60))
        .with_interval(std::time::Duration::from_secs(10));
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
    let (here, there) = (stream.local_addr().ok()?, stream.peer_addr().ok()?);
    Some(same_machine(here.ip(), there.ip()))
}

/// Gives a listener [`local_congestion_control`], for its connections to
/// inherit, when the system's default can be read (to put the ones from
/// other machines back to it: see [`tune_accepted`]).
pub fn listen_here_fast(listener: &impl std::os::fd::AsFd) {
    if system_congestion().is_some() {
        local_congestion_control(listener);
    }
}

/// The congestion control the system gives new connections.
fn system_congestion() -> Option<&'static str> {
    static SYSTEM: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            let name = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").ok()?;
            Some(name.trim().to_string()).filter(|n| !n.is_empty())
        })
        .as_deref()
}

/// The congestion control `socket` has.
fn congestion(socket: &impl std::os::fd::AsFd) -> Option<String> {
    use nix::sys::socket::{getsockopt, sockopt::TcpCongestion};
    let name = getsockopt(socket, TcpCongestion).ok()?;
    Some(name.to_string_lossy().trim_end_matches('\0').to_string())
}

/// Whether a connection from `here` to `there` stays on this machine: a
/// loopback peer, or one at this end's own address (a machine connecting
/// to its own LAN address goes through the loopback device too).
fn same_machine(here: std::net::IpAddr, there: std::net::IpAddr) -> bool {
    let there = there.to_canonical();
    there.is_loopback() || there == here.to_canonical()
}

/// Gives `socket` (a connection between two programs on this machine, or
/// a listener, whose connections take it from it) CUBIC as its congestion
/// control whatever the system's default is, or Reno where CUBIC may not
/// be chosen: no network lies between the two
/// ends for it to control, and BBR (a common default) paces its sends by
/// round-trip times that, on the loopback device, are nothing but how the
/// two ends happen to be scheduled; the sender then sleeps on its pacing
/// timer while the receiver waits for data. Measured on a 1 GiB `ferry
/// get` over loopback: 0.96-1.01 s with BBR, 0.55-0.70 s with CUBIC. The
/// system's default stays when neither may be chosen, which changes
/// nothing but speed. Connections to other machines keep the system's
/// choice.
pub fn local_congestion_control(socket: &impl std::os::fd::AsFd) {
    use nix::sys::socket::{setsockopt, sockopt::TcpCongestion};
    for name in ["cubic", "reno"] {
        if setsockopt(socket, TcpCongestion, &std::ffi::OsString::from(name)).is_ok() {
            return;
        }
    }
}

/// Connects to `addr`; a connection to a loopback address is given
/// [`local_congestion_control`] before its first packet.
pub async fn connect(addr: std::net::SocketAddr) -> io::Result<TcpStream> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if addr.ip().to_canonical().is_loopback() {
        local_congestion_control(&socket);
    }
    socket.connect(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_peer_on_this_machine_is_told_from_one_elsewhere() {
        assert!(same_machine(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(same_machine(ip("127.0.0.1"), ip("127.0.0.53")));
        assert!(same_machine(ip("::1"), ip("::1")));
        assert!(same_machine(ip("::ffff:127.0.0.1"), ip("::ffff:127.0.0.1")));
        // This machine's own LAN address, reached from itself.
        assert!(same_machine(ip("192.168.1.5"), ip("192.168.1.5")));
        assert!(same_machine(ip("::ffff:192.168.1.5"), ip("192.168.1.5")));
        assert!(!same_machine(ip("192.168.1.5"), ip("192.168.1.6")));
        assert!(!same_machine(ip("10.0.0.2"), ip("10.0.0.1")));
        assert!(!same_machine(ip("fe80::1"), ip("fe80::2")));
    }

    #[tokio::test]
    async fn both_ends_of_a_loopback_connection_leave_pacing_out() {
        // Unprivileged, a program may pick the allowed ones; with
        // CAP_NET_ADMIN (root), any the kernel has.
        let list = if nix::unistd::geteuid().is_root() {
            "tcp_available_congestion_control"
        } else {
            "tcp_allowed_congestion_control"
        };
        let allowed =
            std::fs::read_to_string(format!("/proc/sys/net/ipv4/{list}")).unwrap_or_default();
        let want = if allowed.split_whitespace().any(|n| n == "cubic") {
            "cubic"
        } else {
            "reno"
        };
        // Given from the start: by connect, and by the listener.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listen_here_fast(&listener);
        let near = connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        let (near, (far, _)) = (near.unwrap(), far.unwrap());
        tune_accepted(&far, &listener);
        assert_eq!(congestion(&near).unwrap(), want);
        assert_eq!(congestion(&far).unwrap(), want);
        // Moved to it afterwards, by tune, when it was not.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        let (near, (far, _)) = (near.unwrap(), far.unwrap());
        tune(&near);
        tune(&far);
        assert_eq!(congestion(&near).unwrap(), want);
        assert_eq!(congestion(&far).unwrap(), want);
        assert!(near.nodelay().unwrap() && far.nodelay().unwrap());
    }
}
