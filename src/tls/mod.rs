//! TLS on the shared port, with rustls (ring for the cryptography).
//!
//! - [`server`]: the server's key and certificate (generated on first
//!   start and kept in the state folder, or given as PEM files) and the
//!   handshake of an accepted connection.
//! - [`client`]: the client's handshake and its trust on first use: the
//!   certificate's SHA-256 fingerprint is pinned per `host:port` in a
//!   known-hosts file, as ssh does with host keys.
//!
//! Certificates are not checked against any authority: a LAN server rarely
//! has one. What a client checks is that the certificate is the one it
//! pinned (or was told to expect), and, as always in TLS, that the server
//! holds its key.

pub mod client;
pub mod server;

use std::sync::Arc;

use sha2::{Digest, Sha256};

/// A certificate's SHA-256 fingerprint.
pub type Fingerprint = [u8; 32];

/// The SHA-256 of a certificate (its DER bytes).
pub fn fingerprint(der: &[u8]) -> Fingerprint {
    Sha256::digest(der).into()
}

/// A fingerprint as people compare them: uppercase hex pairs joined by
/// colons, the form `openssl x509 -noout -fingerprint -sha256` prints.
pub fn show(fp: &Fingerprint) -> String {
    let mut out = String::with_capacity(95);
    for (i, b) in fp.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// Reads a fingerprint the way people paste them: with or without colons
/// (or spaces), any case, with or without a `sha256:` / `SHA256=` label.
pub fn parse(text: &str) -> Option<Fingerprint> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let t = ["sha256:", "sha256=", "sha-256:", "sha-256="]
        .iter()
        .find_map(|p| lower.strip_prefix(p))
        .unwrap_or(&lower);
    let hex: String = t.chars().filter(|c| *c != ':' && *c != ' ').collect();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The cryptography both ends use.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_back_in_every_pasted_form() {
        let fp = fingerprint(b"certificate");
        let shown = show(&fp);
        assert_eq!(shown.len(), 95);
        assert_eq!(shown.matches(':').count(), 31);
        assert_eq!(parse(&shown), Some(fp));
        assert_eq!(parse(&shown.to_lowercase().replace(':', "")), Some(fp));
        assert_eq!(parse(&format!("SHA256:{shown}")), Some(fp));
        assert_eq!(
            parse(&format!(" sha256={} ", shown.replace(':', " "))),
            Some(fp)
        );
        assert_eq!(parse(&shown[3..]), None, "too short");
        assert_eq!(parse(&format!("{shown}:00")), None, "too long");
        assert_eq!(parse(&format!("G{}", &shown[1..])), None, "not hex");
        assert_eq!(parse(""), None);
    }
}
