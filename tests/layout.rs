//! The crate's map holds (`scripts/layers.py`): the services import
//! nothing from the doors or the wire, no modules import each other in a
//! loop, and no Rust file (src/ or tests/) passes 600 lines.

use std::process::Command;

/// Runs the checker for `check`; gives what it printed, once it passed.
fn layers(check: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/layers.py");
    let out = Command::new("python3")
        .args([script, check])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn services_import_no_door() {
    assert_eq!(layers("--services").trim(), "ok: services");
}

#[test]
fn no_modules_import_each_other_in_a_loop() {
    assert_eq!(layers("--loops").trim(), "ok: loops");
}

#[test]
fn no_source_file_passes_600_lines() {
    assert_eq!(layers("--sizes").trim(), "ok: sizes");
}
