//! litmus, the WebDAV conformance suite, run against a server.

use std::process::Command;

/// Every suite litmus has.
pub const SUITES: [&str; 5] = ["basic", "copymove", "props", "locks", "http"];

/// litmus's whole output against the server at `url`.
pub fn litmus(url: &str) -> String {
    // litmus writes its logs into the folder it runs in.
    let logs = tempfile::tempdir().unwrap();
    let out = Command::new("litmus")
        .arg(url)
        .current_dir(logs.path())
        .output()
        .expect("litmus is installed by scripts/test (Debian's litmus)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics unless every suite ran and passed whole in `out`.
pub fn assert_every_suite_passed(out: &str) {
    for suite in SUITES {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("summary for `{suite}'")))
            .unwrap_or_else(|| panic!("suite {suite} did not run:\n{out}"));
        assert!(
            line.contains(" 0 failed") && line.contains("100.0%"),
            "{line}\n{out}"
        );
    }
}
