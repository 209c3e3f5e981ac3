//! What every door shares ([`Ctx`]), and the state it opens at start: the
//! chat history and the upload key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{ConnLimits, Gate, hosts, http};
use crate::config::ServeConfig;

/// What every door shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) config: ServeConfig,
    /// The files service: store, access decision, upload limits.
    pub(crate) files: crate::files::Files,
    /// The WebDAV door's locks and dead properties.
    pub(crate) dav: http::dav::Dav,
    pub(crate) gate: Gate,
    /// Where every change is recorded.
    pub(crate) audit: super::audit::Audit,
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
    /// Addresses a browser spoke from lately (see [`Ctx::silence_wait`]).
    pub(crate) http_peers: std::sync::Mutex<HashMap<IpAddr, Instant>>,
    /// The key resumable-upload URLs are signed with, loaded or made on
    /// first use (see [`Ctx::upload_key`]).
    pub(super) upload_key: std::sync::OnceLock<Vec<u8>>,
}

/// How long an address counts as a browser's after its last request.
const BROWSER_MEMORY: Duration = Duration::from_secs(60);
/// How long a silent connection from such an address is given before it is
/// taken for a text-chat client: longer than browsers keep a connection
/// they opened ahead of need (10 s in Chromium).
const BROWSER_SILENCE: Duration = Duration::from_secs(15);
/// Most addresses remembered.
const BROWSER_PEERS: usize = 4096;

impl Ctx {
    /// Notes that a browser made a request from `ip`.
    pub(crate) fn saw_browser(&self, ip: IpAddr) {
        let Ok(mut peers) = self.http_peers.lock() else {
            return;
        };
        let now = Instant::now();
        if peers.len() >= BROWSER_PEERS {
            peers.retain(|_, at| now.duration_since(*at) < BROWSER_MEMORY);
            if peers.len() >= BROWSER_PEERS {
                peers.clear();
            }
        }
        peers.insert(ip, now);
    }

    /// How long a connection from `ip` may stay silent before it is taken
    /// for a text-chat client (`nc HOST 7070` typing nothing). A browser
    /// opens connections ahead of need and leaves them silent for seconds;
    /// from an address a browser spoke from in the last minute, silence is
    /// given longer, so that such a connection is not greeted as chat
    /// (an `nc` there is greeted after 15 s, or at once when it types).
    pub(crate) fn silence_wait(&self, ip: IpAddr) -> Duration {
        let short = self.config.sniff_timeout;
        let browser = self
            .http_peers
            .lock()
            .ok()
            .and_then(|p| p.get(&ip).copied())
            .is_some_and(|at| at.elapsed() < BROWSER_MEMORY);
        if browser {
            short.max(BROWSER_SILENCE)
        } else {
            short
        }
    }

    /// The cluster this server is a node of, for discovery: the chat
    /// bus's id, or one made from the bucket it serves.
    pub(crate) fn cluster(&self) -> Option<String> {
        if let Some(id) = self.chat.as_ref().and_then(|h| h.cluster()) {
            return Some(id);
        }
        // Nodes of one bucket: an id made from where the bucket is, the
        // same on each (and telling nothing of it).
        use sha2::Digest;
        let url = self.config.store.as_ref()?;
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        let d = sha2::Sha256::digest(format!("{endpoint}\n{url}").as_bytes());
        Some(d[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// What this server offers, as hello, `ferry ping` and discovery list
    /// it: `files` and `time` always; `exec` (and `pty`: terminal
    /// sessions), `chat`, `web` and `tls` when
    /// they are on (`chat-since`: a chat rejoin may ask for history after a
    /// time); `hidden` when names starting with a dot are served.
    pub(crate) fn features(&self) -> Vec<String> {
        let cfg = &self.config;
        let on = [
            ("files", true),
            ("time", true),
            ("exec", cfg.granted.exec),
            ("pty", cfg.granted.exec),
            ("chat", self.chat.is_some()),
            ("chat-since", self.chat.is_some()),
            ("web", cfg.web),
            ("tls", self.tls.is_some()),
            ("hidden", cfg.showing.hidden),
            // Transfers may be verified with BLAKE3 (`digest` in get/put).
            ("blake3", true),
            // `get` takes `fresh`: hash what is sent, remembered or not.
            ("fresh", true),
            // A request may follow `auth` before its reply: after a failed
            // `auth` nothing but `hello` and `auth` is done.
            ("auth-pipelining", true),
        ];
        on.iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// The key resumable-upload URLs are signed with, the first time an
    /// upload needs it (a server that never sees one makes none): the one
    /// every server of a shared storage uses (an upload begun on one goes
    /// on through another), else read from the state folder, or made
    /// there. A shared storage that cannot be reached yet is an error,
    /// and asked again next time.
    pub(crate) fn upload_key(&self) -> Result<Vec<u8>, crate::files::FilesError> {
        if let Some(key) = self.upload_key.get() {
            return Ok(key.clone());
        }
        let key = match self.files.store().shared() {
            Some(shared) => crate::files::storage::shared_key(shared, "upload")?,
            None => {
                crate::secret::state_key(&self.config.state_dir, "upload.key", "resumable uploads")
            }
        };
        Ok(self.upload_key.get_or_init(|| key).clone())
    }

    /// Whether an HTTP request's `Host` names this server (see
    /// [`hosts::KnownNames`]).
    pub(crate) fn answers_to(&self, host: &str) -> bool {
        self.names
            .allows(host, |n| self.tls.as_ref().is_some_and(|t| t.valid_for(n)))
    }
}

/// The chat hub, with its history in the state folder (created private).
pub(super) fn open_chat(config: &ServeConfig) -> anyhow::Result<Arc<crate::chat::Hub>> {
    if config.chat.retention.per_room == 0 || config.chat.bus.is_some() {
        // No history kept here (none at all, or in the chat bus's
        // stream): nothing to write, and no file to open.
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
