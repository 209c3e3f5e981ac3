//! The server's side of TLS: its certificate and the handshake.
//!
//! Without `--tls-cert`, the key and a self-signed certificate for the
//! host's names and addresses are made on first start and kept in
//! `STATE_DIR/tls/` (the folder 0700, the key 0600), so that the
//! fingerprint clients pin stays the same across restarts. Two servers
//! starting at once cannot end up with different pairs: the pair is
//! written to a private temporary folder that is renamed into place, and
//! whoever loses the rename uses the winner's.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::warn;

use super::{Fingerprint, fingerprint, provider};
use crate::config::TlsConfig;
use crate::wire::Guarded;
use crate::wire::stream::ServerTls as TlsStream;

/// What ALPN offers: HTTP/1.1 for browsers and HTTP clients. Clients that
/// offer no ALPN (the ferry client, `openssl s_client`) are classified by
/// their first bytes, as on a plain connection.
const ALPN: &[&[u8]] = &[b"http/1.1"];

/// The server's TLS: its certificate and the settings of the handshake.
pub struct ServerTls {
    acceptor: TlsAcceptor,
    leaf: CertificateDer<'static>,
    fingerprint: Fingerprint,
    cert_path: PathBuf,
    origin: Origin,
    required: bool,
    handshake_timeout: Duration,
}

/// Where a server's key and certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Generated in the state folder on this start.
    Made,
    /// Generated on an earlier start and kept in the state folder.
    Kept,
    /// Given with --tls-cert and --tls-key.
    Given,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("fingerprint", &super::show(&self.fingerprint))
            .field("cert_path", &self.cert_path)
            .field("required", &self.required)
            .finish()
    }
}

impl ServerTls {
    /// Loads the given pair, or the generated one in `state_dir` (making
    /// it first if there is none yet, for `names`: host names and
    /// addresses the certificate names).
    pub fn load(cfg: &TlsConfig, state_dir: &Path, names: &[String]) -> anyhow::Result<ServerTls> {
        let (cert_path, key_path, origin) = match &cfg.files {
            Some((c, k)) => (c.clone(), k.clone(), Origin::Given),
            None => {
                let origin = if ensure_generated(state_dir, names)? {
                    Origin::Made
                } else {
                    Origin::Kept
                };
                let dir = state_dir.join("tls");
                (dir.join("cert.pem"), dir.join("key.pem"), origin)
            }
        };
        let certs = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                anyhow::anyhow!("cannot read the certificate {}: {e}", cert_path.display())
            })?;
        let Some(leaf) = certs.first() else {
            bail!("no certificate in {}", cert_path.display());
        };
        let fp = fingerprint(leaf);
        let leaf = leaf.clone().into_owned();
        check_private(&key_path);
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| anyhow::anyhow!("cannot read the key {}: {e}", key_path.display()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS settings")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .with_context(|| {
                format!(
                    "the key {} does not go with the certificate {}",
                    key_path.display(),
                    cert_path.display()
                )
            })?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            leaf,
            fingerprint: fp,
            cert_path,
            origin,
            required: cfg.required,
            handshake_timeout: cfg.handshake_timeout,
        })
    }

    /// Whether the certificate is valid for the DNS name `name`.
    pub fn valid_for(&self, name: &str) -> bool {
        let Ok(server) = rustls::pki_types::ServerName::try_from(name) else {
            return false;
        };
        webpki::EndEntityCert::try_from(&self.leaf)
            .is_ok_and(|c| c.verify_is_valid_for_subject_name(&server).is_ok())
    }

    /// The certificate's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// Where the certificate is (for `curl --cacert` and the like).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Where the pair came from.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Whether plain connections are refused (except from loopback).
    pub fn required(&self) -> bool {
        self.required
    }

    /// The handshake of an accepted connection whose first bytes (the
    /// start of the ClientHello) the sniffer already read; it fails after
    /// the handshake timeout, so that a slow or silent peer holds its slot
    /// no longer than that.
    pub async fn accept(
        &self,
        stream: TcpStream,
        initial: BytesMut,
        write_limit: Duration,
    ) -> io::Result<TlsStream> {
        let io = Guarded::new(initial.freeze(), stream, write_limit);
        match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(io)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the TLS handshake took too long",
            )),
        }
    }
}

/// Makes the key and certificate in `state_dir/tls` unless they are there.
/// Returns whether they were made now.
fn ensure_generated(state_dir: &Path, names: &[String]) -> anyhow::Result<bool> {
    let dir = state_dir.join("tls");
    if dir.join("cert.pem").exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create the state folder {}", state_dir.display()))?;
    let _ = std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700));
    let tmp = state_dir.join(format!(".tls-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = generate(names).and_then(|(cert, key)| {
        write_new(&tmp.join("key.pem"), key.as_bytes(), 0o600)?;
        write_new(&tmp.join("cert.pem"), cert.as_bytes(), 0o644)?;
        Ok(())
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(true),
        Err(_) if dir.join("cert.pem").exists() => {
            // Another server made its pair first: use that one.
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(false)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e).with_context(|| format!("cannot create {}", dir.display()))
        }
    }
}

/// A fresh ECDSA P-256 key and a self-signed certificate for `names`, as
/// PEM (certificate, key).
fn generate(names: &[String]) -> anyhow::Result<(String, String)> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
    let mut params = CertificateParams::new(names.to_vec()).context("certificate names")?;
    let mut dn = DistinguishedName::new();
    let host = names.first().map_or("ferry", String::as_str);
    dn.push(DnType::CommonName, format!("ferry on {host}"));
    params.distinguished_name = dn;
    // From yesterday (clocks differ a little) for twenty years: the pin,
    // not the dates, is what clients check.
    let now = {
        use chrono::Datelike;
        let d = chrono::Utc::now().date_naive();
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = now - Duration::from_secs(86_400);
    params.not_after = now + Duration::from_secs(20 * 365 * 86_400);
    let key = KeyPair::generate().context("generating a key")?;
    let cert = params
        .self_signed(&key)
        .context("signing the certificate")?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a file that must not exist yet, with `mode` from the start.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Warns when a key file can be read by others than its owner.
fn check_private(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            warn!(
                "the TLS key {} can be read by other users: chmod 600 it",
                path.display()
            );
        }
    }
}

/// The names a generated certificate carries: the host name, `localhost`,
/// and every address of the machine's interfaces.
pub fn host_names(hostname: &str) -> Vec<String> {
    let mut names = Vec::new();
    let valid = |n: &str| {
        !n.is_empty()
            && n.len() <= 253
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if valid(hostname) {
        names.push(hostname.to_string());
    }
    names.push("localhost".to_string());
    let mut ips: Vec<std::net::IpAddr> = vec![
        std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::Ipv6Addr::LOCALHOST.into(),
    ];
    for i in if_addrs::get_if_addrs().unwrap_or_default() {
        ips.push(i.ip());
    }
    for ip in ips {
        let s = ip.to_string();
        if !names.contains(&s) {
            names.push(s);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TlsConfig {
        TlsConfig {
            files: None,
            required: false,
            handshake_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_pair_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let names = host_names("test-host");
        let first = ServerTls::load(&config(), &state, &names).unwrap();
        assert_eq!(first.origin(), Origin::Made);
        let key = state.join("tls/key.pem");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(state.join("tls"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let again = ServerTls::load(&config(), &state, &names).unwrap();
        assert_eq!(again.origin(), Origin::Kept);
        assert_eq!(first.fingerprint(), again.fingerprint());
        // No temporary folder left behind.
        let left: Vec<_> = std::fs::read_dir(&state).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn given_files_are_used_and_a_mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, k1) = generate(&["a.example".into()]).unwrap();
        let (_, k2) = generate(&["b.example".into()]).unwrap();
        for (name, text) in [("c1", &c1), ("k1", &k1), ("k2", &k2)] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut cfg = config();
        cfg.files = Some((dir.path().join("c1"), dir.path().join("k1")));
        let tls = ServerTls::load(&cfg, dir.path(), &[]).unwrap();
        let der = CertificateDer::from_pem_slice(c1.as_bytes()).unwrap();
        assert_eq!(tls.fingerprint(), &fingerprint(&der));
        cfg.files = Some((dir.path().join("c1"), dir.path().join("k2")));
        let e = ServerTls::load(&cfg, dir.path(), &[]).unwrap_err();
        assert!(format!("{e:#}").contains("does not go with"), "{e:#}");
        cfg.files = Some((dir.path().join("k1"), dir.path().join("k1")));
        let e = ServerTls::load(&cfg, dir.path(), &[]).unwrap_err();
        assert!(format!("{e:#}").contains("no certificate"), "{e:#}");
    }

    #[test]
    fn names_skip_what_a_certificate_cannot_carry() {
        let names = host_names("bad_name!");
        assert_eq!(names[0], "localhost");
        assert!(names.contains(&"127.0.0.1".to_string()));
        assert!(names.contains(&"::1".to_string()));
        assert_eq!(host_names("box")[0], "box");
    }
}
