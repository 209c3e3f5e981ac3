//! The crate's map holds: the services import nothing from the doors or
//! the wire (`scripts/layers.py`, which also reports import loops and
//! long files).

use std::process::Command;

#[test]
fn services_import_no_door() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/layers.py");
    let out = Command::new("python3")
        .args([script, "--services"])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("ok: services"), "{text}");
}
