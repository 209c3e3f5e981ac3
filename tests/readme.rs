//! Every example of the README, walked as written on fresh servers
//! (tests/readme_walk.py), in network, mount and host-name namespaces of
//! the test's own: there the machine is called `nas`, the names `nas` and
//! `pool.example` lead to its loopback, and ports 7070 and 123 are free.
//! An example the walk does not handle fails it, so the README cannot
//! drift from the binary.

mod common;

use std::process::Command;

#[test]
fn every_readme_example_works_as_written() {
    let can = Command::new("unshare")
        .args(["--net", "--mount", "--uts", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        common::checked_nothing("namespaces cannot be made here, so the README was not walked");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let script = r#"
        set -e
        ip link set lo up
        echo nas > /proc/sys/kernel/hostname
        { cat /etc/hosts; echo "127.0.0.1 nas pool.example"; } > "$3/hosts"
        mount --bind "$3/hosts" /etc/hosts
        exec python3 "$4" "$1" "$2" "$3"
    "#;
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--uts", "sh", "-c", script, "sh"])
        .arg(common::ferry_bin())
        .arg(format!("{dir}/README.md"))
        .arg(work.path())
        .arg(format!("{dir}/tests/readme_walk.py"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("walked "), "{stdout}");
}
