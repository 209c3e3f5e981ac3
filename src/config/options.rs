//! [`ServeOptions`]: every option of `ferry serve`, each one field that
//! is its flag, its `FERRY_*` variable and its file key at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{Listen, Size};
use crate::secret::Secret;

/// One value as a flag (or variable) and as a file key: the flag wins when
/// it was given. A switch is an `Option<bool>`, so that one given off
/// (`--allow-exec=false`, `FERRY_ALLOW_EXEC=0`) wins over a file that
/// turns it on.
trait Layer {
    fn over(self, lower: Self) -> Self;
}

impl<T> Layer for Option<T> {
    fn over(self, lower: Self) -> Self {
        self.or(lower)
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
            pub(super) fn over(self, lower: $name) -> $name {
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
    #[arg(
        long,
        env = "FERRY_ALLOW_UPLOAD",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_upload: Option<bool>,
    /// Let clients delete (and, with upload, overwrite and move).
    #[arg(
        long,
        env = "FERRY_ALLOW_DELETE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_delete: Option<bool>,
    /// Everything but remote commands: upload and delete.
    #[arg(
        long,
        env = "FERRY_ALLOW_ALL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_all: Option<bool>,
    /// With a token set: clients without it get nothing, not even reading.
    #[arg(
        long,
        env = "FERRY_PRIVATE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub private: Option<bool>,
    /// Serve names that start with a dot (.git, .env, .ssh). Without it they
    /// are left out of listings, reported as absent, and refused as
    /// upload targets, on every door. The server's own state, config,
    /// token and TLS files are never served either way.
    #[arg(
        long,
        env = "FERRY_HIDDEN",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub hidden: Option<bool>,
    /// Let the token holder and accounts with the exec right run commands
    /// (`ferry exec`, `ferry shell`). Needs a token or accounts; never
    /// granted to anonymous clients.
    #[arg(
        long,
        env = "FERRY_ALLOW_EXEC",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_exec: Option<bool>,
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
    #[arg(
        long,
        env = "FERRY_LIMIT_LOOPBACK",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub limit_loopback: Option<bool>,
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
    /// Do not answer discovery probes nor announce by mDNS/DNS-SD (`ferry discover`
    /// and desktops will not list this server).
    #[arg(
        long,
        env = "FERRY_NO_DISCOVERY",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_discovery: Option<bool>,
    /// Do not run the chat hub (the plain-text door then closes at once).
    #[arg(
        long,
        env = "FERRY_NO_CHAT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_chat: Option<bool>,
    /// Chat only for clients that present the token (the plain-text door,
    /// which cannot, is then refused).
    #[arg(
        long,
        env = "FERRY_CHAT_AUTH",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub chat_auth: Option<bool>,
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
    /// Join the chat rooms of every server on this NATS JetStream server:
    /// nats://HOST:PORT (several, comma-separated, for a NATS cluster).
    /// History is then kept in its stream. Credentials come from
    /// FERRY_CHAT_BUS_USER and FERRY_CHAT_BUS_PASSWORD, or
    /// FERRY_CHAT_BUS_TOKEN (never from flags or the URL).
    #[arg(long, value_name = "URL", env = "FERRY_CHAT_BUS")]
    pub chat_bus: Option<String>,
    /// Keep the served files in an S3-compatible bucket instead of the
    /// folder: s3://BUCKET or s3://BUCKET/PREFIX. The endpoint, region and
    /// credentials come from AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (never from flags).
    /// Several servers may serve one bucket.
    #[arg(long, value_name = "URL", env = "FERRY_STORE")]
    pub store: Option<String>,
    /// Folder for the server's own state (chat history).
    /// [default: $XDG_STATE_HOME/ferry or ~/.local/state/ferry]
    #[arg(long, value_name = "DIR", env = "FERRY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Do not serve HTTP (the web page, files and chat for browsers).
    #[arg(
        long,
        env = "FERRY_NO_WEB",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_web: Option<bool>,
    /// Largest file an upload may create (every door), in bytes or as a
    /// size: 500M, 1G, 8GiB. [default: no limit]
    #[arg(long, value_name = "BYTES", env = "FERRY_MAX_UPLOAD")]
    pub max_upload: Option<Size>,
    /// Encrypt with TLS: every door on the shared port also answers TLS. A
    /// key and self-signed certificate are made on first start (kept in
    /// the state folder) unless --tls-cert and --tls-key name others.
    #[arg(
        long,
        env = "FERRY_TLS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub tls: Option<bool>,
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
    #[arg(
        long,
        env = "FERRY_TLS_REQUIRED",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub tls_required: Option<bool>,
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
    /// Accounts, in the file only: `[users.NAME]` tables.
    #[arg(skip)]
    pub users: BTreeMap<String, UserEntry>,
    /// Where anonymous clients may do what, in the file only.
    #[arg(skip)]
    pub anonymous: Option<AnonymousEntry>,
}
}

impl<K: Ord, V> Layer for BTreeMap<K, V> {
    fn over(self, lower: Self) -> Self {
        if self.is_empty() { lower } else { self }
    }
}

/// An account in the config file (`[users.NAME]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// The password's argon2id hash, as `ferry passwd` prints it.
    pub password_hash: String,
    /// Rights as `"/path:level"` (none, read, upload, write, delete,
    /// admin); the longest matching path decides. Default: `["/:read"]`.
    #[serde(default)]
    pub rights: Option<Vec<String>>,
    /// May run commands (with the server's --allow-exec).
    #[serde(default)]
    pub exec: bool,
    /// May chat under this name (with chat on). Default: yes.
    #[serde(default)]
    pub chat: Option<bool>,
}

/// Anonymous rights per path in the config file (`[anonymous]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousEntry {
    /// Rights as for an account; anonymous clients never run commands.
    pub rights: Vec<String>,
}
