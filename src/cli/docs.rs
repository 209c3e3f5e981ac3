//! `ferry completions SHELL` and `ferry man`: shell completions and manual
//! pages, generated from the same definition the parser uses, so they
//! cannot drift from it.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::Cli;
use crate::client::ClientError;

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

pub(crate) fn completions(a: &CompletionsArgs) -> Result<(), ClientError> {
    let mut cmd = Cli::command();
    // Every command's arguments, not just their names (they are deferred).
    cmd.build();
    // Into memory first: `generate` panics when its writer fails.
    let mut text = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "ferry", &mut text);
    print_all(&text)
}

pub(crate) fn man(a: &ManArgs) -> Result<(), ClientError> {
    let mut cmd = Cli::command();
    cmd.build();
    let manual = |e: std::io::Error| ClientError::Local(format!("writing the manual: {e}"));
    let Some(dir) = &a.dir else {
        let mut text = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut text)
            .map_err(manual)?;
        return print_all(&text);
    };
    std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(cmd, dir))
        .map_err(manual)
}

/// Writes `text` whole to standard output; a failure is the command's
/// result as for every command ([`ClientError::output`]).
fn print_all(text: &[u8]) -> Result<(), ClientError> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text)
        .and_then(|()| out.flush())
        .map_err(ClientError::output)
}
