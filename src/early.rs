//! `ferry --version` (or `-V`) alone, answered before the Rust runtime
//! starts.
//!
//! The runtime's start (`std`'s `lang_start`) checks the standard streams,
//! sets up the handler that reports a stack overflow (which reads
//! `/proc/self/maps` to find the main thread's stack, then maps and
//! installs an alternate signal stack) and more: about 20 system calls,
//! a fifth of a `ferry --version` on this kind of machine, for an answer
//! that needs one `write`. The C library runs the functions listed in
//! `.init_array` before `main`, and on glibc hands them the arguments
//! (the standard library reads `argv` the same way, `sys/args/unix.rs`);
//! this one answers the version there and ends the process. Everything
//! else goes on to `main` as before, where `main::version_alone` answers
//! the version on platforms without this.

use std::ffi::{CStr, c_char, c_int};

#[allow(unsafe_code)]
#[used]
#[unsafe(link_section = ".init_array")]
static VERSION_FIRST: extern "C" fn(c_int, *const *const c_char, *const *const c_char) =
    version_first;

/// Writes `ferry VERSION` and ends the process when the only argument is
/// `--version` or `-V`; returns otherwise.
#[allow(unsafe_code)]
extern "C" fn version_first(argc: c_int, argv: *const *const c_char, _env: *const *const c_char) {
    if argc != 2 || argv.is_null() {
        return;
    }
    // SAFETY: glibc passes `main`'s own `argc` and `argv` to `.init_array`
    // functions: `argv` holds `argc` valid C strings, then a null.
    let only = unsafe {
        let only = *argv.add(1);
        if only.is_null() {
            return;
        }
        CStr::from_ptr(only)
    };
    if only != c"--version" && only != c"-V" {
        return;
    }
    // A reader that left is told apart by EPIPE, not death by SIGPIPE, as
    // once the runtime has started.
    // SAFETY: sets a signal's disposition; no handler of ours is involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let line = concat!("ferry ", env!("CARGO_PKG_VERSION"), "\n").as_bytes();
    let mut rest = line;
    while !rest.is_empty() {
        // SAFETY: writes from a live slice to the standard output.
        let n = unsafe { libc::write(1, rest.as_ptr().cast(), rest.len()) };
        if n >= 0 {
            rest = &rest[n as usize..];
            continue;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EBADF) {
            // No standard output at all: the standard library's streams
            // count that as written, and every other command does so.
            break;
        }
        if e.kind() != std::io::ErrorKind::Interrupted {
            super::output_failed(e.kind() == std::io::ErrorKind::BrokenPipe, &e);
        }
    }
    // SAFETY: ends the process before anything else has started; no
    // buffer of ours holds anything.
    unsafe { libc::_exit(0) }
}
