//! The server's configuration: flags, then `FERRY_*` environment variables,
//! then a TOML file, then defaults, merged into one validated [`ServeConfig`].
//!
//! Every option is one field of [`ServeOptions`]: its doc comment is the
//! help, its `#[arg]` names the flag and the variable, and its name is the
//! file key. The file is read into the same struct, and the two are
//! layered field by field ([`Layer`]), so nothing lists the options again.
//!
//! Secrets (the token) come only from the environment or the file, never
//! from argv, where any local user could read them in `ps`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::access::{Account, Grants, Policy, Rights};
use crate::secret::Secret;
use crate::wire::Deadlines;

mod groups;
mod options;
mod values;
use groups::tls_config;
pub use groups::{ChatConfig, ExecLimits, Limits, TlsConfig};
pub use options::ServeOptions;
pub use values::{Listen, Size};

/// The default port, TCP and UDP.
pub const DEFAULT_PORT: u16 = 7070;

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The served folder.
    pub root: PathBuf,
    /// The bucket the files are kept in instead, when one is named.
    pub store: Option<crate::files::object::StoreUrl>,
    /// Where to listen (TCP and UDP each).
    pub listen: Vec<SocketAddr>,
    /// Whether `listen` is the default pair (an IPv6 failure is then fine).
    pub default_listen: bool,
    /// Display name.
    pub name: String,
    /// The shared token, if any.
    pub token: Option<Secret>,
    /// What clients may do once authenticated (or all clients, without a token).
    pub granted: Rights,
    /// What clients without the token may do when a token is set.
    pub anonymous: Rights,
    /// Where anonymous clients may do what (`[anonymous] rights`).
    pub anonymous_paths: Option<Grants>,
    /// The accounts (`[users.NAME]`).
    pub accounts: std::sync::Arc<[Account]>,
    /// Connection limits.
    pub limits: Limits,
    /// Per-connection deadlines.
    pub deadlines: Deadlines,
    /// How long to wait for the first bytes before deciding on a door.
    pub sniff_timeout: Duration,
    /// How long in-flight transfers get on shutdown.
    pub shutdown_grace: Duration,
    /// An extra UDP port for NTP alone.
    pub ntp_port: Option<u16>,
    /// How the time service presents the clock.
    pub time: crate::time::TimeConfig,
    /// Datagrams answered per second per source.
    pub udp_rate: f64,
    /// Datagram burst per source.
    pub udp_burst: f64,
    /// Whether discovery probes are answered.
    pub discovery: bool,
    /// Seconds between unsolicited announcements, if any.
    pub announce: Option<u32>,
    /// Age after which abandoned partial uploads are removed.
    pub partial_max_age: Duration,
    /// Limits of remote commands.
    pub exec: ExecLimits,
    /// Chat settings.
    pub chat: ChatConfig,
    /// The server's own state (chat history).
    pub state_dir: PathBuf,
    /// Whether HTTP is served.
    pub web: bool,
    /// Largest upload, in bytes.
    pub max_upload: Option<u64>,
    /// TLS, when on.
    pub tls: Option<TlsConfig>,
    /// Names HTTP requests may carry besides the server's own.
    pub allow_host: Vec<String>,
    /// What of the served folder is served: dot-names (`--hidden`), and
    /// the server's own files (config, token, TLS; the state folder is
    /// added where the storage is opened), never.
    pub showing: crate::files::Showing,
    /// Every option as given (flags over the file), for code that needs
    /// one as it is; the token is not kept here.
    pub options: ServeOptions,
}

impl ServeConfig {
    /// A configuration for `root` with every default, for tests and embedding.
    pub fn for_root(root: &Path) -> ServeConfig {
        ServeConfig::merge(root.to_path_buf(), ServeOptions::default(), None)
            .expect("defaults are valid")
    }

    /// Merges flags (already including `FERRY_*` variables), the TOML file
    /// they name, and the token from `FERRY_TOKEN` / `FERRY_TOKEN_FILE`.
    pub fn load(root: Option<PathBuf>, opts: &ServeOptions) -> anyhow::Result<ServeConfig> {
        let file = match &opts.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                ServeOptions::parse_file(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => ServeOptions::default(),
        };
        let env_token = match (
            std::env::var("FERRY_TOKEN"),
            std::env::var("FERRY_TOKEN_FILE"),
        ) {
            (Ok(t), _) => Some(Secret::new(t)),
            (_, Ok(path)) => Some(read_token_file(Path::new(&path))?),
            _ => None,
        };
        let mut options = opts.clone().over(file);
        let root = root
            .or_else(|| options.root.take())
            .unwrap_or_else(|| PathBuf::from("."));
        ServeConfig::merge(root, options, env_token)
    }

    /// Validates the layered options `o` and works out what follows.
    fn merge(
        root: PathBuf,
        mut o: ServeOptions,
        env_token: Option<Secret>,
    ) -> anyhow::Result<ServeConfig> {
        let secs =
            |value: Option<u64>, default: u64| Duration::from_secs(value.unwrap_or(default).max(1));
        let on = |switch: Option<bool>| switch.unwrap_or(false);
        let io = secs(o.io_timeout, 30);
        let tls = tls_config(&o, io)?;
        let state_dir = o.state_dir.clone().unwrap_or_else(default_state_dir);
        let mut own_files = Vec::new();
        own_files.extend(o.config.clone());
        own_files.extend(o.token_file.clone());
        own_files.extend(std::env::var_os("FERRY_TOKEN_FILE").map(PathBuf::from));
        if let Some((cert, key)) = tls.as_ref().and_then(|t| t.files.clone()) {
            own_files.extend([cert, key]);
        }
        let token = match (env_token, o.token.take(), o.token_file.take()) {
            (Some(t), _, _) => Some(t),
            (None, Some(t), _) => Some(t),
            (None, None, Some(path)) => Some(read_token_file(&path)?),
            _ => None,
        };
        if let Some(t) = &token {
            if t.expose().trim().len() < 8 {
                bail!("the token must be at least 8 characters");
            }
        }
        let granted = Rights {
            read: true,
            upload: on(o.allow_all) || on(o.allow_upload),
            delete: on(o.allow_all) || on(o.allow_delete),
            exec: on(o.allow_exec),
            chat: !on(o.no_chat),
        };
        let accounts = accounts(&o.users)?;
        let anonymous_paths = match o.anonymous.take() {
            Some(a) => Some(grants(&a.rights).context("in [anonymous]")?),
            None => None,
        };
        let gated = token.is_some() || !accounts.is_empty();
        if granted.exec && !gated {
            bail!(
                "--allow-exec needs a token or accounts: set FERRY_TOKEN or FERRY_TOKEN_FILE, or add [users.NAME] with exec = true (commands are only ever run for clients that log in)"
            );
        }
        // Without a token or accounts everyone holds the token, so
        // `[anonymous]` rights would limit nobody: refused, not ignored.
        if anonymous_paths.is_some() && !gated {
            bail!(
                "[anonymous] rights need a token or accounts: without either, every client may do everything the flags allow, everywhere (set FERRY_TOKEN, or `token` or [users.NAME] in the config file)"
            );
        }
        let private = on(o.private);
        if private && !gated {
            bail!(
                "--private needs a token or accounts (set FERRY_TOKEN, or `token` or [users.NAME] in the config file)"
            );
        }
        if private && anonymous_paths.is_some() {
            bail!(
                "--private gives anonymous clients nothing, and [anonymous] rights give them something: keep one"
            );
        }
        let chat_auth = on(o.chat_auth);
        if chat_auth && !gated {
            bail!(
                "--chat-auth needs a token or accounts (set FERRY_TOKEN, or `token` or [users.NAME] in the config file)"
            );
        }
        let anonymous = match (gated, private) {
            (false, _) => granted,
            (true, false) => Rights {
                read: true,
                chat: granted.chat && !chat_auth,
                ..Rights::default()
            },
            (true, true) => Rights::default(),
        };
        let wanted = match (o.port, o.listen.is_empty()) {
            (Some(_), false) => bail!("give --port or --listen, not both"),
            (Some(0), true) => bail!("port 0 is out of range (1 to 65535)"),
            (Some(p), true) => vec![Listen::Port(p)],
            (None, true) => vec![Listen::Port(DEFAULT_PORT)],
            (None, false) => o.listen.clone(),
        };
        // A port alone stands for both families, as the default does: an
        // IPv6 that cannot be had then only warns.
        let default_listen = wanted.iter().all(|l| matches!(l, Listen::Port(_)));
        let listen: Vec<SocketAddr> = wanted.iter().flat_map(|l| l.addrs()).collect();
        let limits = Limits {
            max_connections: o.max_connections.unwrap_or(4096),
            max_per_ip: o.max_per_ip.unwrap_or(64),
            limit_loopback: on(o.limit_loopback),
        };
        if limits.max_connections == 0 || limits.max_per_ip == 0 {
            bail!("connection limits must be at least 1");
        }
        let stratum = o.ntp_stratum.unwrap_or(10);
        if !(1..=15).contains(&stratum) {
            bail!("the NTP stratum must be between 1 and 15");
        }
        let refid = o.ntp_refid.clone().unwrap_or_else(|| "LOCL".into());
        if refid.is_empty() || refid.len() > 4 || !refid.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the NTP reference ID must be 1 to 4 printable ASCII characters");
        }
        let mut reference_id = [0u8; 4];
        reference_id[..refid.len()].copy_from_slice(refid.as_bytes());
        let exec = ExecLimits {
            timeout: secs(o.exec_timeout, 3600),
            grace: secs(o.exec_grace, 5),
            jobs: o.exec_jobs.unwrap_or(32),
            jobs_per_client: o.exec_jobs_per_client.unwrap_or(4),
            max_output: o.exec_output_max.map_or(8 << 30, |s| s.0),
        };
        if exec.jobs == 0 || exec.jobs_per_client == 0 {
            bail!("--exec-jobs and --exec-jobs-per-client must be at least 1");
        }
        let days = |value: Option<u64>, default: u64| {
            Duration::from_secs(value.unwrap_or(default).clamp(1, 36_500) * 86_400)
        };
        let mut chat = ChatConfig {
            enabled: !on(o.no_chat),
            limits: crate::chat::ChatLimits {
                max_message: o
                    .chat_max_message
                    .map_or(2000, |s| s.0)
                    .clamp(16, crate::chat::MAX_MESSAGE_CAP as u64)
                    as usize,
                replay: o.chat_replay.unwrap_or(50),
                ..crate::chat::ChatLimits::default()
            },
            retention: crate::chat::store::Retention {
                per_room: o.chat_history.unwrap_or(1000),
                max_age: days(o.chat_max_age, 30),
                max_bytes: crate::chat::store::MAX_HISTORY_BYTES,
            },
            rate: o.chat_rate.unwrap_or(20.0),
            flood: Duration::from_secs(10),
            bus: None,
        };
        chat.bus = groups::chat_bus(
            o.chat_bus.as_deref(),
            &chat.retention,
            chat.limits.max_message,
        )?;
        if !(chat.rate.is_finite() && chat.rate > 0.0) {
            bail!("--chat-rate must be a number above 0");
        }
        let udp_rate = o.udp_rate.unwrap_or(4.0);
        let udp_burst = o.udp_burst.unwrap_or(16.0);
        if !(udp_rate.is_finite() && udp_rate > 0.0 && udp_burst.is_finite() && udp_burst >= 1.0) {
            bail!("--udp-rate must be above 0 and --udp-burst at least 1");
        }
        Ok(ServeConfig {
            root,
            listen,
            default_listen,
            name: o.name.clone().unwrap_or_else(host_name),
            token,
            granted,
            anonymous,
            anonymous_paths,
            accounts,
            limits,
            deadlines: Deadlines {
                idle: secs(o.idle_timeout, 300),
                header: io,
                body: io,
            },
            sniff_timeout: Duration::from_secs(1),
            shutdown_grace: secs(o.shutdown_grace, 10),
            ntp_port: o.ntp_port,
            time: crate::time::TimeConfig {
                stratum,
                reference_id,
            },
            udp_rate,
            udp_burst,
            discovery: !on(o.no_discovery),
            announce: o.announce.filter(|s| (1..=3600).contains(s)),
            partial_max_age: days(o.partial_max_age, 7),
            store: match &o.store {
                Some(url) => Some(url.parse().map_err(|e: String| anyhow::anyhow!(e))?),
                None => None,
            },
            exec,
            chat,
            state_dir,
            showing: crate::files::Showing {
                hidden: on(o.hidden),
                private: own_files,
            },
            web: !on(o.no_web),
            max_upload: o.max_upload.map(|s| s.0),
            tls,
            allow_host: o.allow_host.clone(),
            options: o,
        })
    }

    /// Who may do what: the one access decision every door asks.
    pub fn policy(&self) -> Policy {
        Policy {
            anonymous: self.anonymous,
            holder: self.granted,
            token: self.token.is_some(),
            anonymous_paths: self.anonymous_paths.clone(),
            accounts: self.accounts.clone(),
            links: std::sync::Arc::new(crate::access::links::Links::new(Some(
                self.state_dir.clone(),
            ))),
        }
    }

    /// Whether clients must log in before anything else.
    pub fn auth_required(&self) -> bool {
        self.policy().gated() && !self.anonymous.read
    }
}

/// The accounts of the config file, checked.
fn accounts(
    users: &std::collections::BTreeMap<String, options::UserEntry>,
) -> anyhow::Result<std::sync::Arc<[Account]>> {
    let mut out = Vec::new();
    for (name, u) in users {
        crate::access::accounts::check_name(name).map_err(anyhow::Error::msg)?;
        crate::access::accounts::check_hash(&u.password_hash)
            .map_err(|e| anyhow::anyhow!("[users.{name}] password_hash: {e}"))?;
        let rights = match &u.rights {
            Some(r) => grants(r).with_context(|| format!("in [users.{name}]"))?,
            None => Grants::everywhere(crate::access::Level::Read),
        };
        out.push(Account {
            name: name.clone(),
            hash: u.password_hash.clone(),
            grants: rights,
            exec: u.exec,
            chat: u.chat.unwrap_or(true),
        });
    }
    Ok(out.into())
}

/// Rights written as `"/path:level"`, checked.
fn grants(list: &[String]) -> anyhow::Result<Grants> {
    let parsed = list
        .iter()
        .map(|g| g.parse().map_err(|e| anyhow::anyhow!("right {g:?}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Grants::new(parsed).map_err(anyhow::Error::msg)
}

/// `$XDG_STATE_HOME/ferry`, else `~/.local/state/ferry`, else
/// `.ferry-state` in the working folder.
fn default_state_dir() -> PathBuf {
    xdg_dir("XDG_STATE_HOME", ".local/state").unwrap_or_else(|| PathBuf::from(".ferry-state"))
}

/// ferry's folder in one of the user's base folders, as the XDG rules
/// have it: `$VAR/ferry` when `VAR` is an absolute path (a relative one is
/// ignored), else `~/UNDER_HOME/ferry`; `None` without a home.
pub fn xdg_dir(var: &str, under_home: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(under_home)))
        .map(|d| d.join("ferry"))
}

impl ServeOptions {
    /// The options a config file sets. Keys are the flags' names in snake
    /// case; an unknown key is an error, not a silent no-op.
    fn parse_file(text: &str) -> anyhow::Result<ServeOptions> {
        Ok(toml::from_str(text)?)
    }
}

fn read_token_file(path: &Path) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading token file {}", path.display()))?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// This machine's host name, else `ferry`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "ferry".to_string())
}

#[cfg(test)]
mod tests;
