//! The client's side of TLS: the handshake, and trust on first use.
//!
//! The handshake accepts any certificate, checking only that the server
//! holds its key (rustls verifies the handshake's signatures). Then, before
//! a byte of the request (or a token) is sent, the certificate's
//! fingerprint is checked against the pin for `host:port` in the
//! known-hosts file: equal, go on; different, refuse loudly; none yet, ask
//! (or follow `--accept-new` / `--fingerprint`).

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Fingerprint, fingerprint, provider, show};
use crate::wire::stream::ClientTls;

/// How the client decides whether to trust a certificate it has no pin for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Ask on the terminal; without one, refuse and say how to go on.
    Ask,
    /// Pin it (for scripts that accept the first certificate seen).
    AcceptNew,
    /// Only this fingerprint; pinned once seen (replacing an old pin).
    Expect(Fingerprint),
    /// Anything, pinned or not, and nothing is pinned. For tests only.
    Insecure,
}

/// The client's TLS settings.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// What to do with an unpinned certificate.
    pub trust: Trust,
    /// The known-hosts file.
    pub known_hosts: PathBuf,
}

/// Why a TLS connection was not made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The handshake failed.
    #[error("TLS handshake failed: {0} (is the server running with --tls?)")]
    Handshake(io::Error),
    /// The certificate is not the pinned one, or not trusted.
    #[error("{0}")]
    Untrusted(String),
}

/// The pins, one `host:port FINGERPRINT` per line (`#` starts a comment).
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
}

impl KnownHosts {
    /// The file at `path` (which need not exist yet).
    pub fn new(path: PathBuf) -> KnownHosts {
        KnownHosts { path }
    }

    /// `$FERRY_KNOWN_HOSTS`, else `known_hosts` in `$XDG_CONFIG_HOME/ferry`
    /// or `~/.config/ferry`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("FERRY_KNOWN_HOSTS").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(p));
        }
        crate::config::xdg_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("known_hosts"))
    }

    /// Where the pins are.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pin for `host` (`host:port`) and its line number, if any.
    pub fn lookup(&self, host: &str) -> io::Result<Option<(Fingerprint, usize)>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let key = normalise(host);
        for (i, line) in text.lines().enumerate() {
            let mut words = line.split_whitespace();
            let (Some(h), Some(fp)) = (words.next(), words.next()) else {
                continue;
            };
            if h.starts_with('#') || normalise(h) != key {
                continue;
            }
            if let Some(fp) = super::parse(fp) {
                return Ok(Some((fp, i + 1)));
            }
        }
        Ok(None)
    }

    /// Pins `fp` for `host`, replacing any earlier pin for it. The file is
    /// rewritten whole and renamed into place, private to its owner.
    pub fn pin(&self, host: &str, fp: &Fingerprint) -> io::Result<()> {
        let key = normalise(host);
        let old = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut out = String::new();
        if old.is_empty() {
            out.push_str("# ferry: certificates pinned on first use (host:port SHA-256)\n");
        }
        for line in old.lines() {
            let h = line.split_whitespace().next().unwrap_or("");
            if !h.starts_with('#') && !h.is_empty() && normalise(h) == key {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!("{key} {}\n", show(fp)));
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        crate::secret::write_private(&self.path, out.as_bytes())
    }
}

/// Host names are compared without case.
fn normalise(host: &str) -> String {
    host.to_ascii_lowercase()
}

/// Checks the handshake's signatures with the certificate's key and
/// leaves the certificate itself to the pin.
#[derive(Debug)]
struct PinLater(Arc<CryptoProvider>);

impl ServerCertVerifier for PinLater {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens TLS over `tcp` to `authority` (`host:port`, as the user wrote it,
/// which is also the key of its pin) and decides whether to trust the
/// certificate. Nothing is sent over the stream before that is decided.
pub async fn connect(
    tcp: TcpStream,
    authority: &str,
    opts: &TlsOptions,
) -> Result<(ClientTls, Fingerprint), TlsError> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Handshake(io::Error::other(e)))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinLater(provider)))
        .with_no_client_auth();
    let name = server_name(authority, &tcp);
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(TlsError::Handshake)?;
    let fp = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| fingerprint(c))
        .ok_or_else(|| TlsError::Untrusted("the server presented no certificate".into()))?;
    let known = KnownHosts::new(opts.known_hosts.clone());
    let authority = authority.to_string();
    let trust = opts.trust.clone();
    tokio::task::spawn_blocking(move || decide(&known, &authority, &fp, &trust))
        .await
        .map_err(|e| TlsError::Untrusted(e.to_string()))??;
    Ok((tls, fp))
}

/// The name sent in the handshake: the host as given, or the address
/// dialled when the host is not a valid name.
fn server_name(authority: &str, tcp: &TcpStream) -> ServerName<'static> {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    ServerName::try_from(host.to_string()).unwrap_or_else(|_| {
        let ip = tcp
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        ServerName::IpAddress(ip.into())
    })
}

/// Whether `--insecure` has been announced in this process.
static INSECURE_SAID: AtomicBool = AtomicBool::new(false);

/// The trust decision for `fp` presented by `host`.
fn decide(known: &KnownHosts, host: &str, fp: &Fingerprint, trust: &Trust) -> Result<(), TlsError> {
    if *trust == Trust::Insecure {
        if !INSECURE_SAID.swap(true, Ordering::Relaxed) {
            crate::say!(
                "ferry: warning: --insecure: the certificate of {host} is not checked (for tests only; anyone on the path could be listening)"
            );
        }
        return Ok(());
    }
    let untrusted = |what: String| TlsError::Untrusted(what);
    let pinned = known
        .lookup(host)
        .map_err(|e| untrusted(format!("cannot read {}: {e}", known.path().display())))?;
    let store = |note: &str| {
        known.pin(host, fp).map_err(|e| {
            untrusted(format!(
                "cannot record the pin in {}: {e}",
                known.path().display()
            ))
        })?;
        crate::say!(
            "ferry: {note} the certificate of {host} (SHA-256 {}) in {}",
            show(fp),
            known.path().display()
        );
        Ok(())
    };
    match (pinned, trust) {
        (Some((p, _)), _) if p == *fp => Ok(()),
        (_, Trust::Expect(want)) if want == fp => store("pinned"),
        (Some((p, line)), _) => Err(untrusted(changed(host, &p, fp, known.path(), line))),
        (None, Trust::Expect(want)) => Err(untrusted(format!(
            "the certificate of {host} is not the one expected\n  expected:  SHA-256 {}\n  presented: SHA-256 {}\nNothing was sent.",
            show(want),
            show(fp)
        ))),
        (None, Trust::AcceptNew) => store("pinned"),
        (None, _) => match ask(host, fp) {
            Some(true) => store("pinned"),
            Some(false) => Err(untrusted(format!(
                "the certificate of {host} was not accepted; nothing was sent"
            ))),
            None => Err(untrusted(format!(
                "the certificate of {host} is not known yet.\n  SHA-256 {}\nCompare it with the fingerprint `ferry serve` printed on that machine; if they are equal, run again with --fingerprint {} (or --accept-new). Nothing was sent.",
                show(fp),
                show(fp)
            ))),
        },
    }
}

/// The loud refusal of a changed certificate, in the manner of ssh.
fn changed(
    host: &str,
    pinned: &Fingerprint,
    now: &Fingerprint,
    file: &Path,
    line: usize,
) -> String {
    let bar = "@".repeat(64);
    format!(
        "\n{bar}\n@    WARNING: THE CERTIFICATE OF THIS SERVER HAS CHANGED!      @\n{bar}\n\
         The certificate {host} presented is not the one pinned for it.\n\
         Someone may be intercepting the connection (a man-in-the-middle),\n\
         or the server's certificate was replaced (a new state folder,\n\
         --tls-cert, a reinstall).\n  \
         pinned:    SHA-256 {}\n  \
         presented: SHA-256 {}\n\
         The pin is line {line} of {}.\n\
         Nothing was sent. If the change is expected, compare the new\n\
         fingerprint with the one `ferry serve` prints on the server, then\n\
         run again with --fingerprint {} to replace the pin.",
        show(pinned),
        show(now),
        file.display(),
        show(now)
    )
}

/// Asks on the terminal (`/dev/tty`, so that piped input is not taken)
/// whether to trust `fp`. `None` when there is no terminal to ask on.
fn ask(host: &str, fp: &Fingerprint) -> Option<bool> {
    use std::io::IsTerminal;
    if !io::stderr().is_terminal() {
        return None;
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let mut out = &tty;
    write!(
        out,
        "The certificate of {host} is not known yet.\nSHA-256 fingerprint: {}\nCompare it with the one `ferry serve` printed on that machine.\nTrust it and remember it? [y/N] ",
        show(fp)
    )
    .ok()?;
    let mut answer = String::new();
    io::BufReader::new(&tty).read_line(&mut answer).ok()?;
    Some(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// Whether what listens at `addr` speaks TLS: a ClientHello is sent on a
/// connection of its own, and an answer in TLS records (a ServerHello or
/// an alert) within `wait` says yes. Used only to name what a client
/// reached when the answer to ferry's hello was a closed connection, which
/// is how TLS servers commonly meet bytes that are not TLS.
pub async fn speaks_tls(addr: std::net::SocketAddr, wait: std::time::Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let provider = provider();
    let Ok(config) = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(PinLater(provider)))
                .with_no_client_auth()
        })
    else {
        return false;
    };
    let name = ServerName::IpAddress(addr.ip().into());
    let Ok(mut hello) = rustls::ClientConnection::new(Arc::new(config), name) else {
        return false;
    };
    let mut bytes = Vec::new();
    if hello.write_tls(&mut bytes).is_err() {
        return false;
    }
    let probe = async {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(&bytes).await?;
        let mut first = [0u8; 2];
        tcp.read_exact(&mut first).await?;
        io::Result::Ok(matches!(first, [0x15 | 0x16, 0x03]))
    };
    matches!(tokio::time::timeout(wait, probe).await, Ok(Ok(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(b: u8) -> Fingerprint {
        [b; 32]
    }

    #[test]
    fn pins_are_kept_per_host_and_replaced_not_duplicated() {
        let dir = tempfile::tempdir().unwrap();
        let k = KnownHosts::new(dir.path().join("sub/known_hosts"));
        assert_eq!(k.lookup("a:1").unwrap(), None);
        k.pin("A:1", &fp(1)).unwrap();
        k.pin("b:2", &fp(2)).unwrap();
        assert_eq!(k.lookup("a:1").unwrap(), Some((fp(1), 2)));
        assert_eq!(k.lookup("b:2").unwrap(), Some((fp(2), 3)));
        assert_eq!(
            k.lookup("a:2").unwrap(),
            None,
            "the port is part of the key"
        );
        k.pin("a:1", &fp(3)).unwrap();
        assert_eq!(k.lookup("a:1").unwrap().map(|p| p.0), Some(fp(3)));
        let text = std::fs::read_to_string(k.path()).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("a:1 ")).count(), 1);
        assert!(text.starts_with('#'));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(k.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_garbled_file_line_is_skipped_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kh");
        std::fs::write(&path, "# c\nhost:1\nhost:1 nonsense\n\nhost:1 ").unwrap();
        let k = KnownHosts::new(path);
        assert_eq!(k.lookup("host:1").unwrap(), None);
    }

    #[test]
    fn decisions_follow_the_pin_then_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let k = KnownHosts::new(dir.path().join("kh"));
        // No terminal under the test runner's captured stderr... unless
        // there is one; Ask is exercised through the binary's tests.
        assert!(decide(&k, "h:1", &fp(1), &Trust::Expect(fp(2))).is_err());
        assert_eq!(
            k.lookup("h:1").unwrap(),
            None,
            "a wrong expectation pins nothing"
        );
        decide(&k, "h:1", &fp(1), &Trust::AcceptNew).unwrap();
        assert_eq!(k.lookup("h:1").unwrap().map(|p| p.0), Some(fp(1)));
        decide(&k, "h:1", &fp(1), &Trust::Ask).unwrap();
        let e = decide(&k, "h:1", &fp(9), &Trust::AcceptNew).unwrap_err();
        assert!(e.to_string().contains("HAS CHANGED"), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
        assert_eq!(k.lookup("h:1").unwrap().map(|p| p.0), Some(fp(1)));
        decide(&k, "h:1", &fp(9), &Trust::Expect(fp(9))).unwrap();
        assert_eq!(k.lookup("h:1").unwrap().map(|p| p.0), Some(fp(9)));
        decide(&k, "other:1", &fp(7), &Trust::Insecure).unwrap();
        assert_eq!(k.lookup("other:1").unwrap(), None, "insecure pins nothing");
    }
}
