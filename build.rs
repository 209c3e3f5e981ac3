//! Link-time settings for the `ferry` binary.
//!
//! Relative relocations packed (`DT_RELR`), for a position-independent
//! build (`FERRY_PIE=1`, below): a binary of this size carries about
//! 38,000 of them, which the dynamic loader would read from a 900 KB table
//! on every start. Packed, the table is 11 KB. Only where the C library
//! applies packed relocations (glibc 2.36 and later) and the build is for
//! the machine it runs on; elsewhere the binary is linked as before.
//!
//! The unwinder linked in (`libgcc_eh.a`) instead of loaded from
//! `libgcc_s.so.1`: Rust's standard library asks for `-lgcc_s` on
//! GNU/Linux and offers no switch for the static one (rust-lang/rust#29527,
//! open), so a linker script of that name, found first, points at the
//! archive. Loading the shared one costs every start a library's mapping
//! and relocation and its constructor, which probes the processor with
//! `cpuid` (0.2 ms of a 1.4 ms hello-world on a virtual machine, where
//! each `cpuid` is a trip to the hypervisor). Panics unwind as before.
//! Only where the C compiler has the archive.
//!
//! Linked at a fixed address (`-no-pie`), as Go links its programs on
//! this platform (Debian's rclone and nats-server are built so). Wherever a
//! position-independent executable is loaded, the loader first writes the
//! load address into each of its ~38,000 pointers to code and data
//! (vtables, string tables, panic locations): some 170 pages copied on
//! write, 0.4 ms of a 1.35 ms `ferry --version` here, more than all of
//! `main`. Linked at a fixed address, those pointers are final in the file.
//! The libraries, stack, heap and every other mapping stay randomised; what
//! is given up is the random address of ferry's own code, a defence
//! against the exploit of a memory-corruption bug, which safe Rust does
//! not have and the C it links (SQLite, mimalloc, ring) or unsafe code
//! might. `FERRY_PIE=1` at build time keeps the position-independent
//! executable.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target == host && target.ends_with("-linux-gnu") && glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    if target == host && target.ends_with("-linux-gnu") {
        static_unwinder();
    }
    println!("cargo:rerun-if-env-changed=FERRY_PIE");
    let pie = std::env::var("FERRY_PIE").is_ok_and(|v| v == "1");
    if target.ends_with("-linux-gnu") && !pie {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}

/// Writes `libgcc_s.so`, a linker script naming the C compiler's
/// `libgcc_eh.a`, and puts its folder first on the library path.
fn static_unwinder() {
    let Some(archive) = compiler_file("libgcc_eh.a") else {
        return;
    };
    // The script names it by its full path: look again when it changes
    // (a compiler upgrade moves it).
    println!("cargo:rerun-if-changed={}", archive.display());
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let dir = out.join("unwind");
    let script = format!("INPUT(\"{}\")\n", archive.display());
    if std::fs::create_dir_all(&dir).is_ok()
        && std::fs::write(dir.join("libgcc_s.so"), script).is_ok()
    {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
}

/// Where the C compiler (`$CC`, else `cc`) keeps `name`, if it has it:
/// `-print-file-name` answers the bare name when it does not.
fn compiler_file(name: &str) -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=CC");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(cc)
        .arg(format!("-print-file-name={name}"))
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (path.is_absolute() && Path::new(&path).is_file()).then_some(path)
}

/// The running C library's version, from `getconf GNU_LIBC_VERSION`
/// ("glibc 2.36").
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}
