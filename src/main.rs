//! The `ferry` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;

// Many small, short-lived allocations per request and per chat line, from
// several threads: mimalloc's thread-local free lists serve them with less
// work and less lock traffic than the system allocator. Built without
// transparent huge pages: after an idle spell mimalloc hands memory back,
// and a burst would then pay for zeroing a 2 MiB page per first touch.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = ferry::cli::Cli::parse();
    let _flush_at_exit = ferry::log::init(ferry::cli::default_log_filter(&cli.command));
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
