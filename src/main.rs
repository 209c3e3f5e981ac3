//! The `ferry` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;

#[cfg(all(target_os = "linux", target_env = "gnu", not(test)))]
mod early;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod mathlib;

// The server makes many small, short-lived allocations per request and per
// chat line, from several threads: mimalloc's thread-local free lists serve
// them with less work and less lock traffic than the system allocator.
// Built without transparent huge pages: after an idle spell mimalloc hands
// memory back, and a burst would then pay for zeroing a 2 MiB page per
// first touch. A client command is short-lived and allocates little, and
// there mimalloc costs more than it saves: a fresh page per size class and
// per thread, touched as it is first used, was the biggest part of a
// `ferry exec`'s start. So the server uses mimalloc and every other
// command the C library's allocator; see [`chosen`].
#[global_allocator]
static ALLOC: chosen::Chosen = chosen::Chosen;

#[allow(unsafe_code)]
unsafe extern "C" {
    // From the mimalloc library linked above (`mimalloc.h`). The Rust
    // wrappers expose them only behind a feature that adds nothing else we
    // use.
    fn mi_collect(force: bool);
    fn mi_is_in_heap_region(p: *const u8) -> bool;
    // mimalloc's own start (`src/init.c`), which it runs from a
    // constructor as the program loads unless built with
    // `MI_PRIM_HAS_PROCESS_ATTACH` (see `.cargo/config.toml`), and whether
    // it has run.
    fn _mi_auto_process_init();
    fn _mi_preloading() -> bool;
}

/// The allocator behind [`ALLOC`]: mimalloc once [`chosen::serving`] has
/// been called (first thing in `main`, for `ferry serve`), the system's
/// until then and for every other command. What was allocated before the
/// choice (the runtime's own start, the arguments) is freed by the
/// allocator it came from: mimalloc knows its own memory by address.
mod chosen {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, Ordering};

    static SERVING: AtomicBool = AtomicBool::new(false);

    /// From here on, new memory comes from mimalloc. Called on the main
    /// thread before any other starts.
    #[allow(unsafe_code)]
    pub(super) fn serving() {
        // mimalloc is built without the constructor that would start it as
        // the program loads (it read its ~30 options from the environment,
        // name by name, and set up the main heap: as much of a client
        // command's start as all of its own `main`); the server starts it
        // here instead. A build that kept the constructor has started it.
        // SAFETY: both take no arguments; the start runs once, on the
        // main thread, before any allocation from mimalloc.
        unsafe {
            if super::_mi_preloading() {
                super::_mi_auto_process_init();
            }
        }
        SERVING.store(true, Ordering::Relaxed);
    }

    pub(super) fn is_serving() -> bool {
        SERVING.load(Ordering::Relaxed)
    }

    #[allow(unsafe_code)]
    fn is_mimalloc(p: *mut u8) -> bool {
        // SAFETY: a lookup of the address in mimalloc's page map; any
        // pointer may be asked about.
        is_serving() && unsafe { super::mi_is_in_heap_region(p) }
    }

    pub(super) struct Chosen;

    // SAFETY: every call goes to one of two allocators that each uphold the
    // GlobalAlloc contract; a block is always freed or resized by the one
    // that allocated it (mimalloc's by address, everything else the
    // system's, which is never switched back to once mimalloc is in use).
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Chosen {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract, passed on.
            unsafe {
                if is_serving() {
                    mimalloc::MiMalloc.alloc(layout)
                } else {
                    System.alloc(layout)
                }
            }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract, passed on.
            unsafe {
                if is_serving() {
                    mimalloc::MiMalloc.alloc_zeroed(layout)
                } else {
                    System.alloc_zeroed(layout)
                }
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract, passed on to the allocator
            // that owns `ptr`.
            unsafe {
                if is_mimalloc(ptr) {
                    mimalloc::MiMalloc.dealloc(ptr, layout)
                } else {
                    System.dealloc(ptr, layout)
                }
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller's contract, passed on to the allocator
            // that owns `ptr`.
            unsafe {
                if is_mimalloc(ptr) {
                    mimalloc::MiMalloc.realloc(ptr, layout, new_size)
                } else {
                    System.realloc(ptr, layout, new_size)
                }
            }
        }
    }
}

/// Giving memory back after a burst.
///
/// mimalloc frees a thread's empty pages, and the blocks other threads
/// freed into them, only when that thread allocates or collects again. A
/// worker that served a burst of connections and then went idle would keep
/// their memory for as long as it stays idle. So a worker collects as it
/// parks, at most once a second (a full collection costs too much to run on
/// every park of a busy server). A worker that parks sooner owes one; a
/// janitor thread wakes the workers once a second while any owes, so the
/// last park after a burst is never the one that was skipped.
mod collect {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    const EVERY: Duration = Duration::from_secs(1);

    static OWING: AtomicUsize = AtomicUsize::new(0);

    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
        static OWES: Cell<bool> = const { Cell::new(false) };
    }

    /// The runtime's park hook.
    #[allow(unsafe_code)]
    pub(super) fn on_park() {
        ferry::log::parked();
        if !super::chosen::is_serving() {
            return;
        }
        let now = Instant::now();
        if LAST.get().is_some_and(|at| now.duration_since(at) < EVERY) {
            if !OWES.replace(true) {
                OWING.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        LAST.set(Some(now));
        if OWES.replace(false) {
            OWING.fetch_sub(1, Ordering::Relaxed);
        }
        // SAFETY: mi_collect takes no arguments to get wrong and may be
        // called on any thread at any time; it walks the calling thread's
        // heap and the pages abandoned by threads that ended.
        unsafe { super::mi_collect(true) };
    }

    /// Starts the thread that wakes the workers while one owes a collection.
    pub(super) fn janitor(runtime: tokio::runtime::Handle, workers: usize) {
        let spawned = std::thread::Builder::new()
            .name("ferry-collect".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EVERY);
                    if OWING.load(Ordering::Relaxed) > 0 {
                        // A task pushed from outside the runtime wakes a
                        // parked worker; it runs nothing and parks again.
                        for _ in 0..workers {
                            drop(runtime.spawn(async {}));
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::debug!("no memory janitor: {e}");
        }
    }
}

/// `ferry ls HOST | head -1`: the commands print with `println!`, which
/// panics once the reader of standard output has gone. Like other Unix
/// tools, end quietly then, with the status a shell reports for a
/// command stopped by SIGPIPE (128 + 13). (The signal itself stays
/// ignored: it would also stop the client on a socket whose peer left.)
fn quiet_when_stdout_closes() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if let Some(why) = text.strip_prefix("failed printing to stdout: ") {
            output_failed(why.contains("Broken pipe"), &why);
        }
        report(info);
    }));
}

/// How a command ends when its standard output cannot be written, as the
/// README's exit statuses say: when whatever read it stopped reading, as
/// a command stopped by SIGPIPE (141) and without a word; otherwise (a
/// full disk, a closed descriptor) with the error and status 1.
fn output_failed(reader_left: bool, why: &dyn std::fmt::Display) -> ! {
    if !reader_left {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "ferry: writing the output: {why}");
    }
    std::process::exit(if reader_left { 141 } else { 1 })
}

/// `ferry --version` (or `-V`) alone, answered as clap would, before the
/// whole command line's definition is built: a script that asks for the
/// version pays for nothing else. On glibc `early.rs` has answered it
/// already, before the runtime started.
fn version_alone() -> bool {
    let mut args = std::env::args_os().skip(1);
    let (Some(only), None) = (args.next(), args.next()) else {
        return false;
    };
    if only != "--version" && only != "-V" {
        return false;
    }
    use std::io::Write as _;
    if let Err(e) = writeln!(std::io::stdout(), "ferry {}", env!("CARGO_PKG_VERSION")) {
        output_failed(e.kind() == std::io::ErrorKind::BrokenPipe, &e);
    }
    true
}

fn main() -> ExitCode {
    if version_alone() {
        return ExitCode::SUCCESS;
    }
    run()
}

/// Everything but `--version`. Apart from `main`: with the command line
/// and the runtime inlined, this frame is about 17 KB (60 KB before the
/// command's future moved to the heap, below), and a frame is probed page
/// by page as it is entered (14 page faults, a tenth of `ferry
/// --version`'s time, when it was `main`'s own).
#[inline(never)]
fn run() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "serve") {
        chosen::serving();
        // The mode finished uploads get, learnt while no other thread runs.
        ferry::files::part::finished_mode();
    }
    quiet_when_stdout_closes();
    let cli = ferry::cli::Cli::parse();
    let serving = matches!(cli.command, ferry::cli::Command::Serve(_));
    let _flush_at_exit = ferry::log::init(ferry::cli::default_log_filter(&cli.command), serving);
    // A remote command pumps three streams over one connection: the main
    // thread does it, with no worker to start first and no hand-over
    // between threads at every round trip.
    let mut builder = if matches!(cli.command, ferry::cli::Command::Exec(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder
        .enable_all()
        .on_thread_park(collect::on_park)
        .on_thread_stop(ferry::log::parked)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ferry::say!("ferry: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if serving {
        collect::janitor(runtime.handle().clone(), runtime.metrics().num_workers());
    }
    // On the heap: the future of every command in one is about 40 KB, and
    // on the stack each of its pages is probed as `run` is entered (8 page
    // faults of a `ferry exec`); on the heap only the pages the command's
    // own state uses are touched.
    let code = runtime.block_on(Box::pin(ferry::cli::run(cli)));
    // A read of stdin may still be pending on a blocking thread; do not
    // wait for a line that will never be used.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}
