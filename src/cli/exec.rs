//! `ferry exec` and `ferry shell`: remote commands with real exit codes.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

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
    /// instead of a command given after `--`.
    #[arg(long, value_name = "SCRIPT", conflicts_with = "command")]
    pub shell: Option<String>,
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
    /// The command and its arguments, after `--`; run as given, no shell.
    #[arg(last = true, value_name = "COMMAND")]
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
    /// Set a variable for every command; repeat for more.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub env: Vec<(String, String)>,
    /// Stop each command after SECS seconds.
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
            eprintln!("ferry: say what to run: ferry exec HOST -- COMMAND [ARGS...]");
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
    let stdin = (!args.no_stdin && stdin_is_open()).then(tokio::io::stdin);
    let cancel = CancellationToken::new();
    let interrupts = tokio::spawn(on_interrupt(cancel.clone(), true));
    let result = client
        .exec(
            &spec,
            stdin,
            &mut DirectOut(std::io::stdout()),
            &mut DirectOut(std::io::stderr()),
            &cancel,
        )
        .await;
    interrupts.abort();
    match result {
        Ok(report) => ExitCode::from(explain(&report, args.timeout)),
        Err(e) => own_failure(&e),
    }
}

fn own_failure(e: &ClientError) -> ExitCode {
    eprintln!("ferry: {e}");
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
        eprintln!("ferry: stopping the remote command (Ctrl-C again to quit now)");
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    }
}

/// Says on stderr what the report says beyond the exit code; returns the
/// status to exit with.
fn explain(report: &ExitReport, timeout: Option<u64>) -> u8 {
    if let Some(e) = &report.error {
        eprintln!("ferry: {}", escape(e));
    }
    if report.timed_out {
        match timeout {
            Some(t) => eprintln!("ferry: the command ran past its {t}s timeout and was stopped"),
            None => {
                eprintln!("ferry: the command ran past the server's time limit and was stopped")
            }
        }
    }
    if report.truncated {
        eprintln!("ferry: the server dropped output beyond its limit");
    }
    report.status()
}

/// `ferry shell`.
pub(super) async fn shell(args: ShellArgs) -> ExitCode {
    let (r, client) = match open(&args.remote).await {
        Ok(x) => x,
        Err(e) => return own_failure(&e),
    };
    let mut sh = Shell {
        remote: r.clone(),
        cwd: r.path.trim_matches('/').to_string(),
        client: Some(client),
        env: args.env.into_iter().collect(),
        timeout: args.timeout,
        last: 0,
    };
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ferry: cannot start the line editor: {e}");
            return ExitCode::from(OWN_FAILURE);
        }
    };
    let history = history_file();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!(
            "ferry shell on {}: each line runs with /bin/sh -c; cd DIR, exit. Ctrl-C stops the running command.",
            escape(&sh.remote.authority())
        );
    }
    loop {
        let prompt = format!("{}:/{}$ ", sh.remote.host, sh.cwd);
        let (ed, line) = match tokio::task::spawn_blocking(move || {
            let line = editor.readline(&prompt);
            (editor, line)
        })
        .await
        {
            Ok(x) => x,
            Err(_) => return ExitCode::from(OWN_FAILURE),
        };
        editor = ed;
        let line = match line {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("ferry: {e}");
                break;
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        match sh.builtin(line).await {
            Some(Flow::Exit(code)) => {
                sh.last = code;
                break;
            }
            Some(Flow::Next) => continue,
            None => {}
        }
        sh.run(line).await;
    }
    if let Some(h) = &history {
        if let Some(dir) = h.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.save_history(h);
    }
    ExitCode::from(sh.last)
}

/// This process's stdout or stderr, written in place. tokio's own handles
/// copy every chunk over to a blocking thread first, which halves the rate
/// of a big output; a blocking write here only holds up this one command's
/// task, which has nothing else to do until the write is through.
struct DirectOut<W>(W);

impl<W: std::io::Write + Unpin> tokio::io::AsyncWrite for DirectOut<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(tokio::task::block_in_place(|| self.0.write(buf)))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(tokio::task::block_in_place(|| self.0.flush()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// `$XDG_STATE_HOME/ferry/shell_history`, or under `~/.local/state`.
fn history_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("ferry").join("shell_history"))
}

enum Flow {
    Next,
    Exit(u8),
}

struct Shell {
    remote: Remote,
    /// Working folder relative to the served root, `/`-separated.
    cwd: String,
    client: Option<Client>,
    env: BTreeMap<String, String>,
    timeout: Option<u64>,
    last: u8,
}

impl Shell {
    /// `exit [N]` and `cd [DIR]`; `None` for anything else.
    async fn builtin(&mut self, line: &str) -> Option<Flow> {
        let mut words = line.split_whitespace();
        match words.next()? {
            "exit" | "quit" | "logout" => {
                let code = match words.next() {
                    Some(n) => n.parse::<u8>().unwrap_or(2),
                    None => self.last,
                };
                Some(Flow::Exit(code))
            }
            "cd" => {
                let target = cd_target(&self.cwd, words.next().unwrap_or("/"));
                match target {
                    Some(t) => match self.check_folder(&t).await {
                        Ok(()) => {
                            self.cwd = t;
                            self.last = 0;
                        }
                        Err(e) => {
                            eprintln!("cd: {e}");
                            self.last = 1;
                        }
                    },
                    None => {
                        eprintln!("cd: that leaves the served folder");
                        self.last = 1;
                    }
                }
                Some(Flow::Next)
            }
            _ => None,
        }
    }

    async fn client(&mut self) -> Result<&mut Client, ClientError> {
        if self.client.is_none() {
            self.client = Some(connect(&self.remote).await?);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    async fn check_folder(&mut self, path: &str) -> Result<(), ClientError> {
        let entry = self.client().await?.stat(path).await?;
        if entry.kind != crate::wire::messages::EntryKind::Dir {
            return Err(ClientError::Local(format!(
                "{} is not a folder",
                escape(path)
            )));
        }
        Ok(())
    }

    /// Runs one line with `/bin/sh -c`; Ctrl-C stops it, not the shell.
    async fn run(&mut self, line: &str) {
        let spec = ExecRequest {
            argv: vec!["/bin/sh".into(), "-c".into(), line.into()],
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            timeout_secs: self.timeout,
            ..ExecRequest::default()
        };
        let timeout = self.timeout;
        let cancel = CancellationToken::new();
        let interrupts = tokio::spawn(on_interrupt(cancel.clone(), false));
        let result = match self.client().await {
            Ok(c) => {
                c.exec(
                    &spec,
                    None::<tokio::io::Stdin>,
                    &mut DirectOut(std::io::stdout()),
                    &mut DirectOut(std::io::stderr()),
                    &cancel,
                )
                .await
            }
            Err(e) => Err(e),
        };
        interrupts.abort();
        match result {
            Ok(report) => {
                self.last = explain(&report, timeout);
                if report.cancelled {
                    eprintln!("[interrupted]");
                } else if let Some(sig) = report.signal.filter(|_| !report.timed_out) {
                    eprintln!("[killed by signal {sig}, exit {}]", self.last);
                } else if self.last != 0 {
                    eprintln!("[exit {}]", self.last);
                }
            }
            Err(e) => {
                eprintln!("ferry: {e}");
                self.last = OWN_FAILURE;
                if e.is_transport() {
                    // Reconnect for the next line.
                    self.client = None;
                }
            }
        }
    }
}

/// The folder `cd arg` leads to from `cwd`, both relative to the served
/// root; `None` when it would climb above the root.
fn cd_target(cwd: &str, arg: &str) -> Option<String> {
    let mut parts: Vec<&str> = if arg.starts_with('/') {
        Vec::new()
    } else {
        cwd.split('/').filter(|p| !p.is_empty()).collect()
    };
    for p in arg.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            _ => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cd_stays_inside_the_root() {
        assert_eq!(cd_target("", "a/b").as_deref(), Some("a/b"));
        assert_eq!(cd_target("a/b", "..").as_deref(), Some("a"));
        assert_eq!(cd_target("a/b", "/c").as_deref(), Some("c"));
        assert_eq!(cd_target("a", "./x/../y").as_deref(), Some("a/y"));
        assert_eq!(cd_target("a", "../.."), None);
        assert_eq!(cd_target("", "/").as_deref(), Some(""));
    }

    #[test]
    fn env_pairs_parse() {
        assert_eq!(parse_var("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(parse_var("=x").is_err());
        assert!(parse_var("novalue").is_err());
    }
}
