//! The command line: one module per subcommand, all on top of the
//! [`client`](crate::client) library or the [`server`](crate::server).

mod chat;
mod discover;
mod docs;
mod exec;
mod files;
mod interrupt;
mod login;
mod output;
mod passwd;
mod ping;
mod report;
mod serve;
mod share;
mod subnet;
mod terminal;
mod time;
mod transfer;
mod tree;

use std::process::ExitCode;

use std::sync::OnceLock;

use clap::{Args, Parser, Subcommand};

use crate::client::{Client, ClientError, Remote, TlsPolicy, parse_remote};
use crate::secret::Secret;
use crate::tls::Fingerprint;
use crate::tls::client::{KnownHosts, TlsOptions, Trust};

const AFTER_HELP: &str = "\
ADDRESSES:
  HOST                 the served folder on port 7070
  HOST:PORT            another port
  HOST:/PATH           a path on the server (HOST:PATH works too)
  HOST:PORT:/PATH      both;  HOST/PATH and HOST:PORT/PATH work too
  [::1]:7070/PATH      IPv6 literals in brackets
  Paths are relative to the served folder; digits alone after HOST: are a port.

AUTHENTICATION:
  Set FERRY_TOKEN in the environment (never on the command line) on the
  server to require it, and on the client to present it.

TLS:
  `ferry serve --tls` encrypts every door. Clients pin the server's
  certificate on first use (its SHA-256 fingerprint, as `ferry serve`
  prints it) in ~/.config/ferry/known_hosts, and always use TLS with a
  pinned server; a changed certificate is refused. --tls, --accept-new and
  --fingerprint choose how the first connection goes.

FILES:
  ~/.cache/ferry/digests   digests of local files hashed before, so an
                           unchanged file is uploaded without being hashed
                           again (the server still checks every byte);
                           FERRY_DIGESTS names another file,
                           FERRY_DIGESTS=off keeps none

EXIT STATUS:
  0    success
  1    the operation failed (refused by the server, a local file error, a
       checksum mismatch)
  2    usage error
  130  a get or put stopped by Ctrl-C (143: by SIGTERM, 129: by SIGHUP);
       what arrived is kept and the same command resumes
  141  whatever read the output stopped reading (ferry ls HOST | head)
  255  no connection, the connection broke or the server shut down (re-run to
       resume a transfer)
  ferry exec and ferry shell exit with the remote command's status instead;
  see ferry exec --help.";

/// Files, remote commands, chat, time and discovery between the machines of a LAN.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Each one's arguments are defined only when that
/// command is the one run (or when help, completions or a manual page
/// need them all): defining all of them took most of a short command's
/// own time before it could connect.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Serve a folder (default: the current one) on TCP and UDP port 7070.
    Serve(Box<serve::ServeArgs>),
    /// List a folder on a server.
    Ls(files::LsArgs),
    /// Show one file or folder on a server.
    Stat(files::StatArgs),
    /// Download files or folders (-r); interrupted downloads resume.
    Get(transfer::GetArgs),
    /// Upload files or folders (-r); interrupted uploads resume.
    Put(transfer::PutArgs),
    /// Remove a file, or a folder with -r.
    Rm(files::RmArgs),
    /// Create a folder (-p: with parents).
    Mkdir(files::MkdirArgs),
    /// Rename or move a file or folder on a server.
    Mv(files::MvArgs),
    /// Chat with the people on a server (rooms, private messages); or
    /// `--send` one line from a script.
    Chat(chat::ChatArgs),
    /// Run a command on a server, streaming its output; exits with its status.
    Exec(exec::ExecArgs),
    /// An interactive prompt that runs each line on a server.
    Shell(exec::ShellArgs),
    /// Measure a server's clock: offset and round-trip delay over NTP.
    Time(time::TimeArgs),
    /// Network, broadcast and host range of an address; same LAN or not.
    Subnet(subnet::SubnetArgs),
    /// Connect to a server: who it is, and round trips of a few hellos.
    Ping(ping::PingArgs),
    /// List the ferry servers on the local networks.
    Discover(discover::DiscoverArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish,
    /// powershell).
    Completions(docs::CompletionsArgs),
    /// Print the manual page (ferry.1), or write every page with --dir.
    Man(docs::ManArgs),
    /// Print the argon2id hash of a password for an account in the config
    /// file (read from the terminal or standard input, never argv).
    Passwd(passwd::PasswdArgs),
    /// Make a link that gives read access to a path, or upload-only access
    /// to a folder, until it expires; list or revoke links.
    Share(share::ShareArgs),
    /// Log in to an account on a server once (its password, never argv),
    /// and keep the login token for later commands (0600).
    Login(login::LoginArgs),
    /// Forget the login kept for a server.
    Logout(login::LogoutArgs),
}

/// How a client subcommand uses TLS; flattened into each of them.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// Use TLS even when no certificate is pinned for the server yet (a
    /// pinned server always gets TLS; one that requires it gets it too).
    #[arg(long, env = "FERRY_TLS", value_parser = clap::builder::BoolishValueParser::new())]
    pub tls: bool,
    /// Trust and pin the server's certificate without asking when none is
    /// pinned for it yet (trust on first use, for scripts). Implies --tls.
    #[arg(long, conflicts_with = "fingerprint")]
    pub accept_new: bool,
    /// Trust only the certificate with this SHA-256 fingerprint (as `ferry
    /// serve` prints it), and pin it. Implies --tls.
    #[arg(long, value_name = "SHA256", env = "FERRY_FINGERPRINT", value_parser = parse_fingerprint)]
    pub fingerprint: Option<Fingerprint>,
    /// Do not check the server's certificate at all, and pin nothing.
    /// FOR TESTS ONLY: anyone on the path can read and change everything.
    #[arg(long, conflicts_with_all = ["accept_new", "fingerprint"])]
    pub insecure: bool,
}

/// A number of seconds for a timeout or a duration: finite and not
/// negative (`nan` or `inf` would reach `Duration::from_secs_f64`, which
/// panics on them). The command still bounds it to its own range.
pub(crate) fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err("expected a number of seconds, such as 2 or 0.5".to_string()),
    }
}

fn parse_fingerprint(text: &str) -> Result<Fingerprint, String> {
    crate::tls::parse(text)
        .ok_or_else(|| "expected 64 hex digits, with or without colons (SHA-256)".to_string())
}

impl TlsArgs {
    /// The client's policy: the flags, and the known-hosts file.
    fn policy(&self) -> Result<TlsPolicy, ClientError> {
        let trust = match (&self.fingerprint, self.accept_new, self.insecure) {
            (_, _, true) => Trust::Insecure,
            (Some(fp), _, _) => Trust::Expect(*fp),
            (None, true, _) => Trust::AcceptNew,
            (None, false, false) => Trust::Ask,
        };
        let known_hosts = KnownHosts::default_path().ok_or_else(|| {
            ClientError::Local(
                "no place for the known-hosts file: set HOME, XDG_CONFIG_HOME or FERRY_KNOWN_HOSTS"
                    .into(),
            )
        })?;
        Ok(TlsPolicy {
            force: self.tls || self.accept_new || self.fingerprint.is_some() || self.insecure,
            options: TlsOptions { trust, known_hosts },
        })
    }
}

/// This process's TLS flags (one subcommand per process).
static TLS: OnceLock<TlsArgs> = OnceLock::new();

impl Command {
    /// The TLS flags of a subcommand that connects to a server.
    fn tls(&self) -> Option<&TlsArgs> {
        Some(match self {
            Command::Ls(a) => &a.tls,
            Command::Stat(a) => &a.tls,
            Command::Get(a) => &a.tls,
            Command::Put(a) => &a.tls,
            Command::Rm(a) => &a.tls,
            Command::Mkdir(a) => &a.tls,
            Command::Mv(a) => &a.tls,
            Command::Chat(a) => &a.tls,
            Command::Exec(a) => &a.tls,
            Command::Shell(a) => &a.tls,
            Command::Ping(a) => &a.tls,
            Command::Share(a) => &a.tls,
            Command::Login(a) => &a.tls,
            Command::Serve(_)
            | Command::Logout(_)
            | Command::Time(_)
            | Command::Subnet(_)
            | Command::Discover(_)
            | Command::Completions(_)
            | Command::Passwd(_)
            | Command::Man(_) => {
                return None;
            }
        })
    }
}

/// Whether this process logs verbosely: RUST_LOG rules, else a default.
pub fn default_log_filter(cmd: &Command) -> &'static str {
    match cmd {
        Command::Serve(_) => "info",
        _ => "warn",
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    if let Some(t) = cli.command.tls() {
        let _ = TLS.set(t.clone());
    }
    let result = match cli.command {
        Command::Serve(args) => return serve::run(*args).await,
        Command::Time(args) => return time::run(args).await,
        Command::Subnet(args) => return subnet::run(&args),
        Command::Discover(args) => return discover::run(args).await,
        Command::Passwd(args) => return passwd::run(&args),
        Command::Exec(args) => return exec::exec(args).await,
        Command::Chat(args) => return chat::run(args).await,
        Command::Shell(args) => return exec::shell(args).await,
        Command::Completions(a) => docs::completions(&a),
        Command::Man(a) => docs::man(&a),
        Command::Ls(a) => files::ls(a).await,
        Command::Share(a) => share::run(a).await,
        Command::Login(a) => login::login(a).await,
        Command::Logout(a) => login::logout(a).await,
        Command::Stat(a) => files::stat(a).await,
        Command::Rm(a) => files::rm(a).await,
        Command::Mkdir(a) => files::mkdir(a).await,
        Command::Mv(a) => files::mv(a).await,
        Command::Ping(a) => ping::run(a).await,
        Command::Get(a) => transfer::get(a).await,
        Command::Put(a) => transfer::put(a).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Quiet, as other tools are (and `ls`, see `main`).
        Err(ClientError::OutputClosed) => ExitCode::from(141),
        Err(e) => {
            crate::say!("ferry: {e}");
            // A get or put stopped by Ctrl-C, SIGTERM or SIGHUP (see
            // `interrupt`): gone by the signal. One done all the same is not.
            interrupt::die_if_caught();
            exit_code(&e)
        }
    }
}

/// The exit status for a failure: 2 for a usage error, 255 when the
/// connection failed or the server went away (shutting down: it keeps what
/// an upload took, and a run again resumes), 1 for the rest.
fn exit_code(e: &ClientError) -> ExitCode {
    use crate::wire::messages::ErrorCode;
    match e {
        ClientError::Usage(_) => ExitCode::from(2),
        e if e.is_transport() || e.code() == Some(ErrorCode::ShuttingDown) => ExitCode::from(255),
        _ => ExitCode::from(1),
    }
}

/// The token from the environment, if set; or, with `FERRY_USER` set,
/// that account's password (`FERRY_PASSWORD`).
fn token_from_env() -> Option<Secret> {
    let var = if std::env::var_os("FERRY_USER").is_some_and(|u| !u.is_empty()) {
        "FERRY_PASSWORD"
    } else {
        "FERRY_TOKEN"
    };
    std::env::var(var)
        .ok()
        .filter(|t| !t.is_empty())
        .map(Secret::new)
}

/// Parses an address argument.
fn remote(arg: &str) -> Result<Remote, ClientError> {
    parse_remote(arg).map_err(|e| ClientError::Usage(e.to_string()))
}

/// Connects to the server an address names, with TLS as the flags and the
/// pins say.
async fn connect(r: &Remote) -> Result<Client, ClientError> {
    let token = token_from_env().or_else(|| login::kept(&r.authority()));
    connect_as(r, token.as_ref()).await
}

/// Connects as [`connect`] does, presenting `token` (or nothing).
async fn connect_as(r: &Remote, token: Option<&Secret>) -> Result<Client, ClientError> {
    let policy = TLS.get().cloned().unwrap_or_default().policy()?;
    Client::connect_with(&r.authority(), token, &policy).await
}

#[cfg(test)]
mod exit_tests {
    use super::*;
    use crate::wire::messages::ErrorCode;

    #[test]
    fn a_server_going_away_is_a_broken_connection_and_a_refusal_is_not() {
        let remote = |code| ClientError::Remote {
            code,
            message: String::new(),
        };
        assert_eq!(
            exit_code(&remote(ErrorCode::ShuttingDown)),
            ExitCode::from(255)
        );
        assert_eq!(exit_code(&remote(ErrorCode::Exists)), ExitCode::from(1));
        assert_eq!(
            exit_code(&ClientError::Usage("x".into())),
            ExitCode::from(2)
        );
    }
}
