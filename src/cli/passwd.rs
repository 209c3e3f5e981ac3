//! `ferry passwd`: the argon2id hash of a password, for an account in the
//! config file. The password is read from the terminal (twice, without
//! echo) or from standard input, never from the command line.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Args;

/// Arguments of `ferry passwd`.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The account's name: the config file snippet printed names it.
    #[arg(value_name = "USER")]
    pub user: Option<String>,
}

/// Reads one line from the terminal without echoing it.
pub(super) fn read_hidden(prompt: &str) -> std::io::Result<String> {
    use nix::sys::termios::{self, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    crate::say_part!("{prompt}");
    let _ = std::io::stderr().flush();
    let saved = termios::tcgetattr(&stdin).map_err(std::io::Error::other)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(std::io::Error::other)?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    crate::say!();
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The password: typed twice on a terminal, else the first line of
/// standard input.
fn password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = read_hidden("password: ").map_err(|e| e.to_string())?;
        let again = read_hidden("again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the two passwords differ".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Prints the hash (and, for a named user, the config file's table).
pub(super) fn run(a: &PasswdArgs) -> ExitCode {
    if let Some(name) = &a.user {
        if let Err(e) = crate::access::accounts::check_name(name) {
            crate::say!("ferry: {e}");
            return ExitCode::from(2);
        }
    }
    let made = password().and_then(|p| {
        if p.chars().count() < 8 {
            return Err("a password needs at least 8 characters".into());
        }
        crate::access::accounts::hash_password(&p)
    });
    let hash = match made {
        Ok(h) => h,
        Err(e) => {
            crate::say!("ferry: {e}");
            return ExitCode::from(1);
        }
    };
    match &a.user {
        Some(name) => {
            println!("[users.{name}]");
            println!("password_hash = \"{hash}\"");
            println!("rights = [\"/:read\"]");
        }
        None => println!("{hash}"),
    }
    ExitCode::SUCCESS
}
