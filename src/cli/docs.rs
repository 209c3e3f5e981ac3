//! `ferry completions SHELL` and `ferry man`: shell completions and manual
//! pages, generated from the same definition the parser uses, so they
//! cannot drift from it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory};

use super::Cli;

/// Arguments of `ferry completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `ferry man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write ferry.1 and a ferry-COMMAND.1 for each command into this
    /// folder (e.g. ~/.local/share/man/man1) instead of printing ferry.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub(crate) fn completions(a: &CompletionsArgs) -> ExitCode {
    let mut cmd = Cli::command();
    // Every command's arguments, not just their names (they are deferred).
    cmd.build();
    // Into memory first: `generate` panics when its writer fails.
    let mut text = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "ferry", &mut text);
    print_all(&text, "completions")
}

pub(crate) fn man(a: &ManArgs) -> ExitCode {
    let mut cmd = Cli::command();
    cmd.build();
    let Some(dir) = &a.dir else {
        let mut text = Vec::new();
        return match clap_mangen::Man::new(cmd).render(&mut text) {
            Ok(()) => print_all(&text, "manual"),
            Err(e) => {
                crate::say!("ferry: writing the manual: {e}");
                ExitCode::from(1)
            }
        };
    };
    match std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(cmd, dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::say!("ferry: writing the manual: {e}");
            ExitCode::from(1)
        }
    }
}

/// Writes `text` to standard output, ending as every command does when it
/// cannot (README, exit status): 141 without a word when the reader
/// stopped reading (`ferry man | head`), else the error and 1.
fn print_all(text: &[u8], what: &str) -> ExitCode {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(141),
        Err(e) => {
            crate::say!("ferry: writing the {what}: {e}");
            ExitCode::from(1)
        }
    }
}
