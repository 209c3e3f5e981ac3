//! The `ferry` binary: parse the command line, set up logging, run.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = ferry::cli::Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(ferry::cli::default_log_filter(&cli.command)));
    // Lines are written by a thread of their own, many per write(2) under
    // load: a busy server's request log then costs its workers only the
    // formatting. Not lossy: a full queue slows the loggers down instead.
    let (writer, _flush_at_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("ferry-log")
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(ferry::cli::run(cli));
    // A read of stdin may still be pending on a blocking thread; do not
    // wait for a line that will never be used.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}
