//! `ferry exec` and `ferry shell`: remote commands with real exit codes.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::output::DirectOut;
use super::{connect, remote};
use crate::client::{Client, ClientError, Remote};
use crate::text::escape;
use crate::wire::messages::{ExecRequest, ExitReport};

/// The exit status table, for `--help` of both commands.
pub(super) const EXIT_STATUS: &str = "\
EXIT STATUS:
  N      the remote command's own exit code
  128+N  the command died of signal N (143: SIGTERM, 137: SIGKILL)
  124    the command ran past its timeout and was stopped
  130    the command was interrupted (Ctrl-C)
  127    the command was not found on the server
  126    the command was found but could not be run
  255    ferry's own failure: no connection, connection lost, refused
         (exec not enabled, no token, busy)";

/// Arguments of `ferry exec`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS)]
pub struct ExecArgs {
    /// HOST[:PORT][:/DIR]: the server, and the working folder inside the
    /// served folder (default: the served folder itself).
    pub remote: String,
    /// Run SCRIPT with /bin/sh -c on the server (pipes, globs, redirections),
    /// instead of a command.
    #[arg(long, value_name = "SCRIPT", conflicts_with = "command")]
    pub shell: Option<String>,
    /// Run it on a pseudo-terminal, as `ssh -t` does: for interactive
    /// programs (editors, top, prompts), colours, and Ctrl-C passed
    /// through the terminal. Output comes on stdout only.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Set a variable for the command; repeat for more.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub env: Vec<(String, String)>,
    /// Stop the command after SECS seconds (exit status 124); the server
    /// may cap it.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Do not forward stdin: the command reads /dev/null.
    #[arg(short = 'n', long)]
    pub no_stdin: bool,
    /// The command and its arguments, run as given, no shell; everything
    /// from the command on is its own (`--` before it works too).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// Arguments of `ferry shell`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_STATUS)]
pub struct ShellArgs {
    /// HOST[:PORT][:/DIR]: the server and the folder to start in.
    pub remote: String,
    /// Set a variable for the session; repeat for more.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub env: Vec<(String, String)>,
    /// End the session after SECS seconds (the server caps it).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected NAME=VALUE".into()),
    }
}

/// Status for ferry's own failures.
const OWN_FAILURE: u8 = 255;

/// `ferry exec`.
pub(super) async fn exec(args: ExecArgs) -> ExitCode {
    let argv = match (&args.shell, args.command.is_empty()) {
        (Some(script), _) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
        (None, false) => args.command.clone(),
        (None, true) => {
            crate::say!("ferry: say what to run: ferry exec HOST COMMAND [ARGS...]");
            return ExitCode::from(2);
        }
    };
    let (r, mut client) = match open(&args.remote).await {
        Ok(x) => x,
        Err(e) => return own_failure(&e),
    };
    let spec = ExecRequest {
        argv,
        cwd: r.path.clone(),
        env: args.env.into_iter().collect::<BTreeMap<_, _>>(),
        timeout_secs: args.timeout,
        ..ExecRequest::default()
    };
    let stdin = !args.no_stdin && stdin_is_open();
    run(&mut client, spec, stdin, args.tty, args.timeout).await
}

/// Runs `spec` on a terminal of the server (`tty`), or with its output on
/// ours and, with `stdin`, ours forwarded; exits with its status.
async fn run(
    client: &mut Client,
    spec: ExecRequest,
    stdin: bool,
    tty: bool,
    timeout: Option<u64>,
) -> ExitCode {
    let result = if tty {
        super::terminal::session(client, spec).await
    } else {
        let cancel = CancellationToken::new();
        let interrupts = tokio::spawn(on_interrupt(cancel.clone(), true));
        let r = client
            .exec(
                &spec,
                stdin.then(tokio::io::stdin),
                &mut DirectOut(std::io::stdout()),
                &mut DirectOut(std::io::stderr()),
                &cancel,
            )
            .await;
        interrupts.abort();
        r
    };
    match result {
        Ok(report) => ExitCode::from(explain(&report, timeout)),
        Err(e) => own_failure(&e),
    }
}

fn own_failure(e: &ClientError) -> ExitCode {
    // Whatever read the output stopped reading: quiet, as every command.
    if matches!(e, ClientError::OutputClosed) {
        return ExitCode::from(141);
    }
    crate::say!("ferry: {e}");
    match e {
        ClientError::Usage(_) => ExitCode::from(2),
        _ => ExitCode::from(OWN_FAILURE),
    }
}

async fn open(arg: &str) -> Result<(Remote, Client), ClientError> {
    let r = remote(arg)?;
    let client = connect(&r).await?;
    Ok((r, client))
}

/// Whether this process has a stdin to forward (file descriptor 0 open).
fn stdin_is_open() -> bool {
    nix::sys::stat::fstat(std::io::stdin()).is_ok()
}

/// First Ctrl-C: ask the server to stop the command. Second (in `exec`):
/// give up at once.
async fn on_interrupt(cancel: CancellationToken, second_quits: bool) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    cancel.cancel();
    if second_quits {
        crate::say!("ferry: stopping the remote command (Ctrl-C again to quit now)");
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    }
}

/// Says on stderr what the report says beyond the exit code; returns the
/// status to exit with.
fn explain(report: &ExitReport, timeout: Option<u64>) -> u8 {
    if let Some(e) = &report.error {
        crate::say!("ferry: {}", escape(e));
    }
    if report.timed_out {
        match timeout {
            Some(t) => crate::say!("ferry: the command ran past its {t}s timeout and was stopped"),
            None => {
                crate::say!("ferry: the command ran past the server's time limit and was stopped")
            }
        }
    }
    if report.truncated {
        crate::say!("ferry: the server dropped output beyond its limit");
    }
    report.status()
}

/// `ferry shell`: one shell session on the server, as `ssh HOST` gives:
/// on a terminal, the server's interactive shell on a pseudo-terminal;
/// with stdin not a terminal, `/bin/sh` reading its commands from it.
/// Either way variables and `cd` hold for the session, and its status is
/// the shell's.
pub(super) async fn shell(args: ShellArgs) -> ExitCode {
    let (r, mut client) = match open(&args.remote).await {
        Ok(x) => x,
        Err(e) => return own_failure(&e),
    };
    let interactive = std::io::stdin().is_terminal();
    let spec = ExecRequest {
        argv: if interactive {
            Vec::new()
        } else {
            vec!["/bin/sh".into()]
        },
        cwd: r.path.clone(),
        env: args.env.into_iter().collect(),
        timeout_secs: args.timeout,
        ..ExecRequest::default()
    };
    run(&mut client, spec, true, interactive, args.timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pairs_parse() {
        assert_eq!(parse_var("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(parse_var("=x").is_err());
        assert!(parse_var("novalue").is_err());
    }
}
