//! Link-time settings for the `ferry` binary.
//!
//! Relative relocations packed (`DT_RELR`): a position-independent binary
//! of this size carries about 23,000 of them, which the dynamic loader
//! reads from a 560 KB table on every start (some 140 pages faulted in
//! before `main`, for a command that may take a few milliseconds in all).
//! Packed, the table is a few KB. Only where the C library applies packed
//! relocations (glibc 2.36 and later) and the build is for the machine it
//! runs on; elsewhere the binary is linked as before.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target == host && target.ends_with("-linux-gnu") && glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
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
