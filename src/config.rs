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
use serde::Deserialize;

use crate::access::{Policy, Rights};
use crate::secret::Secret;
use crate::wire::Deadlines;

mod groups;
mod values;
use groups::tls_config;
pub use groups::{ChatConfig, ExecLimits, Limits, TlsConfig};
pub use values::{Listen, Size};

/// The default port, TCP and UDP.
pub const DEFAULT_PORT: u16 = 7070;

/// One value as a flag (or variable) and as a file key: the flag wins when
/// it was given.
trait Layer {
    fn over(self, lower: Self) -> Self;
}

impl<T> Layer for Option<T> {
    fn over(self, lower: Self) -> Self {
        self.or(lower)
    }
}

/// A switch is on when either turns it on.
impl Layer for bool {
    fn over(self, lower: Self) -> Self {
        self || lower
    }
}

/// A list given as flags replaces the file's.
impl<T> Layer for Vec<T> {
    fn over(self, lower: Self) -> Self {
        if self.is_empty() { lower } else { self }
    }
}

/// Declares [`ServeOptions`] and layers its fields, every one of them,
/// one over another (hand-written: no crate layers clap's flags over a
/// serde file without listing every field again).
macro_rules! options {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            /// These options over `lower`'s, field by field.
            fn over(self, lower: $name) -> $name {
                $name { $( $field: Layer::over(self.$field, lower.$field), )* }
            }
        }
    };
}

options! {
/// Server options: flags (each also read from its `FERRY_*` variable) and
/// the config file's keys (the flag's name in snake case).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeOptions {
    /// Where to listen, TCP and UDP alike: ADDR:PORT, or a port alone
    /// (PORT or :PORT) for every address of both families; repeat for more.
    /// [default: 0.0.0.0:7070 and [::]:7070]
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "FERRY_LISTEN",
        value_delimiter = ','
    )]
    pub listen: Vec<Listen>,
    /// Listen on this port, every address of both families (the same as
    /// --listen PORT). [default: 7070]
    #[arg(
        short = 'p',
        long,
        value_name = "PORT",
        env = "FERRY_PORT",
        conflicts_with = "listen",
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub port: Option<u16>,
    /// Name shown to clients. [default: the host name]
    #[arg(long, env = "FERRY_NAME")]
    pub name: Option<String>,
    /// Let clients upload files and create folders.
    #[arg(long, env = "FERRY_ALLOW_UPLOAD", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_upload: bool,
    /// Let clients delete (and, with upload, overwrite and move).
    #[arg(long, env = "FERRY_ALLOW_DELETE", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_delete: bool,
    /// Everything but remote commands: upload and delete.
    #[arg(long, env = "FERRY_ALLOW_ALL", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_all: bool,
    /// With a token set: clients without it get nothing, not even reading.
    #[arg(long, env = "FERRY_PRIVATE", value_parser = clap::builder::BoolishValueParser::new())]
    pub private: bool,
    /// Let clients that present the token run commands (`ferry exec`,
    /// `ferry shell`). Needs a token; never granted without one.
    #[arg(long, env = "FERRY_ALLOW_EXEC", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_exec: bool,
    /// Longest a command may run, and the default limit. [default: 3600]
    #[arg(long, value_name = "SECS", env = "FERRY_EXEC_TIMEOUT")]
    pub exec_timeout: Option<u64>,
    /// Seconds between SIGTERM and SIGKILL when a command is stopped. [default: 5]
    #[arg(long, value_name = "SECS", env = "FERRY_EXEC_GRACE")]
    pub exec_grace: Option<u64>,
    /// Most commands running at once. [default: 32]
    #[arg(long, value_name = "N", env = "FERRY_EXEC_JOBS")]
    pub exec_jobs: Option<usize>,
    /// Most commands running at once for one client address. [default: 4]
    #[arg(long, value_name = "N", env = "FERRY_EXEC_JOBS_PER_CLIENT")]
    pub exec_jobs_per_client: Option<usize>,
    /// Most output bytes one command may send; the rest is dropped and the
    /// exit report says so (a size: 500M, 8GiB). [default: 8 GiB]
    #[arg(long, value_name = "BYTES", env = "FERRY_EXEC_OUTPUT_MAX")]
    pub exec_output_max: Option<Size>,
    /// Most connections at once. [default: 4096]
    #[arg(long, value_name = "N", env = "FERRY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most connections from one address. [default: 64]
    #[arg(long, value_name = "N", env = "FERRY_MAX_PER_IP")]
    pub max_per_ip: Option<usize>,
    /// Apply the per-address limit to loopback too (exempt by default).
    #[arg(long, env = "FERRY_LIMIT_LOOPBACK", value_parser = clap::builder::BoolishValueParser::new())]
    pub limit_loopback: bool,
    /// Seconds a connection may sit idle between requests. [default: 300]
    #[arg(long, value_name = "SECS", env = "FERRY_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Seconds a peer may stall inside a frame or a transfer. [default: 30]
    #[arg(long, value_name = "SECS", env = "FERRY_IO_TIMEOUT")]
    pub io_timeout: Option<u64>,
    /// Seconds in-flight transfers get to finish on shutdown. [default: 10]
    #[arg(long, value_name = "SECS", env = "FERRY_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<u64>,
    /// Also answer NTP on this UDP port (123 is the standard one).
    #[arg(long, value_name = "PORT", env = "FERRY_NTP_PORT")]
    pub ntp_port: Option<u16>,
    /// Stratum the time service announces. [default: 10, a local clock]
    #[arg(long, value_name = "N", env = "FERRY_NTP_STRATUM", value_parser = clap::value_parser!(u8).range(1..=15))]
    pub ntp_stratum: Option<u8>,
    /// Reference ID the time service announces (up to 4 ASCII characters). [default: LOCL]
    #[arg(long, value_name = "ID", env = "FERRY_NTP_REFID")]
    pub ntp_refid: Option<String>,
    /// Datagrams per second answered per source address (loopback exempt
    /// unless --limit-loopback). [default: 4]
    #[arg(long, value_name = "N", env = "FERRY_UDP_RATE")]
    pub udp_rate: Option<f64>,
    /// Burst of datagrams answered per source before the rate applies. [default: 16]
    #[arg(long, value_name = "N", env = "FERRY_UDP_BURST")]
    pub udp_burst: Option<f64>,
    /// Announce this server on the local networks every SECS seconds, for
    /// `ferry discover --watch` (off by default).
    #[arg(long, value_name = "SECS", env = "FERRY_ANNOUNCE", value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub announce: Option<u32>,
    /// Days after which the hidden partial file of an upload that never
    /// resumed is removed. [default: 7]
    #[arg(long, value_name = "DAYS", env = "FERRY_PARTIAL_MAX_AGE")]
    pub partial_max_age: Option<u64>,
    /// Do not answer discovery probes (`ferry discover` will not list this server).
    #[arg(long, env = "FERRY_NO_DISCOVERY", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_discovery: bool,
    /// Do not run the chat hub (the plain-text door then closes at once).
    #[arg(long, env = "FERRY_NO_CHAT", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_chat: bool,
    /// Chat only for clients that present the token (the plain-text door,
    /// which cannot, is then refused).
    #[arg(long, env = "FERRY_CHAT_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub chat_auth: bool,
    /// Messages of history kept per room (a room is trimmed back to N each
    /// time it has had N new ones, at least 256); 0 keeps none and writes
    /// nothing to disk. [default: 1000]
    #[arg(long, value_name = "N", env = "FERRY_CHAT_HISTORY")]
    pub chat_history: Option<usize>,
    /// Days of history kept. [default: 30]
    #[arg(long, value_name = "DAYS", env = "FERRY_CHAT_MAX_AGE")]
    pub chat_max_age: Option<u64>,
    /// Messages replayed to a client joining a room. [default: 50]
    #[arg(long, value_name = "N", env = "FERRY_CHAT_REPLAY")]
    pub chat_replay: Option<usize>,
    /// Longest chat message in bytes; longer ones are refused. [default: 2000]
    #[arg(long, value_name = "BYTES", env = "FERRY_CHAT_MAX_MESSAGE")]
    pub chat_max_message: Option<Size>,
    /// Chat lines per second a client may send on average; faster senders
    /// are slowed down, then disconnected. [default: 20]
    #[arg(long, value_name = "N", env = "FERRY_CHAT_RATE")]
    pub chat_rate: Option<f64>,
    /// Folder for the server's own state (chat history).
    /// [default: $XDG_STATE_HOME/ferry or ~/.local/state/ferry]
    #[arg(long, value_name = "DIR", env = "FERRY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Do not serve HTTP (the web page, files and chat for browsers).
    #[arg(long, env = "FERRY_NO_WEB", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_web: bool,
    /// Largest file an upload may create (every door), in bytes or as a
    /// size: 500M, 1G, 8GiB. [default: no limit]
    #[arg(long, value_name = "BYTES", env = "FERRY_MAX_UPLOAD")]
    pub max_upload: Option<Size>,
    /// Encrypt with TLS: every door on the shared port also answers TLS. A
    /// key and self-signed certificate are made on first start (kept in
    /// the state folder) unless --tls-cert and --tls-key name others.
    #[arg(long, env = "FERRY_TLS", value_parser = clap::builder::BoolishValueParser::new())]
    pub tls: bool,
    /// Certificate chain (PEM) to present instead of the generated one;
    /// implies --tls.
    #[arg(
        long,
        value_name = "FILE",
        env = "FERRY_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(
        long,
        value_name = "FILE",
        env = "FERRY_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Refuse plain connections except from loopback (HTTP is redirected to
    /// https); implies --tls.
    #[arg(long, env = "FERRY_TLS_REQUIRED", value_parser = clap::builder::BoolishValueParser::new())]
    pub tls_required: bool,
    /// Also answer HTTP requests that name this host (repeat for more): a
    /// DNS alias or a proxy's name. Requests naming anything but the
    /// server's own names (its addresses, localhost, its host name and
    /// NAME.local, its certificate's names) get 421, so a page on another
    /// site cannot reach it through DNS rebinding.
    #[arg(
        long = "allow-host",
        value_name = "NAME",
        env = "FERRY_ALLOW_HOST",
        value_delimiter = ','
    )]
    pub allow_host: Vec<String>,
    /// TOML file with any of these settings (and `root`, and `token` or
    /// `token_file`).
    #[arg(long, value_name = "FILE", env = "FERRY_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The served folder, in the file (as a flag it is the argument).
    #[arg(skip)]
    pub root: Option<PathBuf>,
    /// The token, in the file only (never argv).
    #[arg(skip)]
    pub token: Option<Secret>,
    /// A file holding the token, in the file only.
    #[arg(skip)]
    pub token_file: Option<PathBuf>,
}
}

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The served folder.
    pub root: PathBuf,
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
        let io = secs(o.io_timeout, 30);
        let tls = tls_config(&o, io)?;
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
            upload: o.allow_all || o.allow_upload,
            delete: o.allow_all || o.allow_delete,
            exec: o.allow_exec,
            chat: !o.no_chat,
        };
        if granted.exec && token.is_none() {
            bail!(
                "--allow-exec needs a token: set FERRY_TOKEN or FERRY_TOKEN_FILE (commands are only ever run for clients that present it)"
            );
        }
        if o.private && token.is_none() {
            bail!("--private needs a token (set FERRY_TOKEN or `token` in the config file)");
        }
        if o.chat_auth && token.is_none() {
            bail!("--chat-auth needs a token (set FERRY_TOKEN or `token` in the config file)");
        }
        let anonymous = match (&token, o.private) {
            (None, _) => granted,
            (Some(_), false) => Rights {
                read: true,
                chat: granted.chat && !o.chat_auth,
                ..Rights::default()
            },
            (Some(_), true) => Rights::default(),
        };
        let wanted = match (o.port, o.listen.is_empty()) {
            (Some(_), false) => bail!("give --port or --listen, not both"),
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
            limit_loopback: o.limit_loopback,
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
        let chat = ChatConfig {
            enabled: !o.no_chat,
            limits: crate::chat::ChatLimits {
                max_message: o.chat_max_message.map_or(2000, |s| s.0).clamp(16, 60_000) as usize,
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
        };
        if chat.rate.is_nan() || chat.rate <= 0.0 {
            bail!("--chat-rate must be above 0");
        }
        let udp_rate = o.udp_rate.unwrap_or(4.0);
        let udp_burst = o.udp_burst.unwrap_or(16.0);
        if !(udp_rate > 0.0 && udp_burst >= 1.0) {
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
            discovery: !o.no_discovery,
            announce: o.announce.filter(|s| (1..=3600).contains(s)),
            partial_max_age: days(o.partial_max_age, 7),
            exec,
            chat,
            state_dir: o.state_dir.clone().unwrap_or_else(default_state_dir),
            web: !o.no_web,
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
        }
    }

    /// Whether clients must present the token before anything else.
    pub fn auth_required(&self) -> bool {
        self.token.is_some() && !self.anonymous.read
    }
}

/// `$XDG_STATE_HOME/ferry`, else `~/.local/state/ferry`, else
/// `.ferry-state` in the working folder.
fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|p| p.join("ferry"))
        .unwrap_or_else(|| PathBuf::from(".ferry-state"))
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
