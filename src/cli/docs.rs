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
    clap_complete::generate(a.shell, &mut cmd, "ferry", &mut std::io::stdout());
    ExitCode::SUCCESS
}

pub(crate) fn man(a: &ManArgs) -> ExitCode {
    let mut cmd = Cli::command();
    cmd.build();
    let written = match &a.dir {
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()),
        Some(dir) => std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(cmd, dir)),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // Read only in part (`ferry man | head`): nothing went wrong here.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            crate::say!("ferry: writing the manual: {e}");
            ExitCode::from(1)
        }
    }
}
