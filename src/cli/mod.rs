//! The command line: one module per subcommand, all on top of the
//! [`client`](crate::client) library or the [`server`](crate::server).

mod chat;
mod discover;
mod exec;
mod files;
mod output;
mod ping;
mod serve;
mod subnet;
mod time;
mod transfer;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::{Client, ClientError, Remote, parse_remote};
use crate::secret::Secret;

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

EXIT STATUS:
  0    success
  1    the operation failed (refused by the server, a local file error, a
       checksum mismatch)
  2    usage error
  255  no connection, or the connection broke (re-run to resume a transfer)
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

/// The subcommands.
#[derive(Debug, Subcommand)]
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
    let result = match cli.command {
        Command::Serve(args) => return serve::run(*args).await,
        Command::Time(args) => return time::run(args).await,
        Command::Subnet(args) => return subnet::run(&args),
        Command::Discover(args) => return discover::run(args).await,
        Command::Exec(args) => return exec::exec(args).await,
        Command::Chat(args) => return chat::run(args).await,
        Command::Shell(args) => return exec::shell(args).await,
        Command::Ls(a) => files::ls(a).await,
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
        Err(e) => {
            eprintln!("ferry: {e}");
            if e.is_transport() {
                ExitCode::from(255)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// The token from the environment, if set.
fn token_from_env() -> Option<Secret> {
    std::env::var("FERRY_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(Secret::new)
}

/// Parses an address argument.
fn remote(arg: &str) -> Result<Remote, ClientError> {
    parse_remote(arg).map_err(|e| ClientError::Local(e.to_string()))
}

/// Connects to the server an address names.
async fn connect(r: &Remote) -> Result<Client, ClientError> {
    Client::connect(&r.authority(), token_from_env().as_ref()).await
}
