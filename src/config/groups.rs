//! The groups of settings a validated configuration is made of.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use super::ServeOptions;

/// Connection limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections per peer address.
    pub max_per_ip: usize,
    /// Whether loopback peers count against `max_per_ip`.
    pub limit_loopback: bool,
}

/// TLS settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// A given certificate chain and key; `None`: the generated pair in the
    /// state folder.
    pub files: Option<(PathBuf, PathBuf)>,
    /// Plain connections are refused, except from loopback.
    pub required: bool,
    /// Longest a handshake may take.
    pub handshake_timeout: Duration,
}

/// Chat settings.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Whether the hub runs.
    pub enabled: bool,
    /// Hub limits.
    pub limits: crate::chat::ChatLimits,
    /// History retention.
    pub retention: crate::chat::store::Retention,
    /// Lines per second per client, on average (bursts of twice that).
    pub rate: f64,
    /// How long a client may be held back by the rate without a break
    /// before it is disconnected as a flood.
    pub flood: Duration,
    /// The chat bus, when rooms span several servers.
    pub bus: Option<crate::chat::bus::BusConfig>,
}

/// The chat bus from `--chat-bus` and the environment's credentials.
pub(super) fn chat_bus(
    url: Option<&str>,
    retention: &crate::chat::store::Retention,
    max_message: usize,
) -> anyhow::Result<Option<crate::chat::bus::BusConfig>> {
    let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    for one in url.split(',') {
        let one = one.trim();
        let rest = one
            .strip_prefix("nats://")
            .or_else(|| one.strip_prefix("tls://"))
            .ok_or_else(|| {
                // Whatever stands before an @ may be a password.
                let shown = match one.rsplit_once('@') {
                    Some((_, host)) => format!("…@{host}"),
                    None => one.to_string(),
                };
                anyhow::anyhow!("--chat-bus takes nats://HOST:PORT, not {shown:?}")
            })?;
        if rest.contains('@') {
            anyhow::bail!(
                "--chat-bus: give the credentials in FERRY_CHAT_BUS_USER and FERRY_CHAT_BUS_PASSWORD or FERRY_CHAT_BUS_TOKEN, not in the URL"
            );
        }
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let user = match (env("FERRY_CHAT_BUS_USER"), env("FERRY_CHAT_BUS_PASSWORD")) {
        (Some(u), Some(p)) => Some((u, crate::secret::Secret::new(p))),
        (None, None) => None,
        _ => anyhow::bail!(
            "FERRY_CHAT_BUS_USER and FERRY_CHAT_BUS_PASSWORD go together: give both or neither"
        ),
    };
    Ok(Some(crate::chat::bus::BusConfig {
        url: url.to_string(),
        user,
        token: env("FERRY_CHAT_BUS_TOKEN").map(crate::secret::Secret::new),
        per_room: retention.per_room,
        max_age: retention.max_age,
        max_bytes: retention.max_bytes,
        max_message,
    }))
}

/// Limits of remote commands.
#[derive(Debug, Clone, Copy)]
pub struct ExecLimits {
    /// Longest run (and the default).
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Commands at once, in all.
    pub jobs: usize,
    /// Commands at once per client address.
    pub jobs_per_client: usize,
    /// Output bytes per command.
    pub max_output: u64,
}

/// TLS from the flags and the file: on when asked for, or when a
/// certificate is given or TLS is required.
pub(super) fn tls_config(o: &ServeOptions, io: Duration) -> anyhow::Result<Option<TlsConfig>> {
    let files = match (o.tls_cert.clone(), o.tls_key.clone()) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => bail!("tls_cert and tls_key go together: give both or neither"),
    };
    let required = o.tls_required.unwrap_or(false);
    let on = o.tls.unwrap_or(false) || files.is_some() || required;
    Ok(on.then(|| TlsConfig {
        files,
        required,
        // A handshake is a few round trips; a peer slower than this is
        // holding a connection slot, not negotiating.
        handshake_timeout: io.min(Duration::from_secs(10)),
    }))
}
