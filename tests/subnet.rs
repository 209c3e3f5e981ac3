//! `ferry subnet` against a table of hand-worked cases, cross-checked with
//! Python's ipaddress module.

mod common;

use std::process::Command;

use common::run_cli;

const CASES: &[&str] = &[
    "192.168.1.10/24",
    "10.20.30.40/8",
    "172.16.5.4/20",
    "0.0.0.0/0",
    "203.0.113.9/31",
    "203.0.113.9/32",
    "198.51.100.77/27",
    "2001:db8::1/64",
    "2001:db8:abcd:12::1/56",
    "fe80::1/127",
    "::1/128",
    "::/0",
];

#[test]
fn matches_python_ipaddress() {
    for case in CASES {
        let (rc, out, err) = run_cli(&["subnet", case, "--json"], &[]);
        assert_eq!(rc, 0, "{case}: {err}");
        let ours: serde_json::Value = serde_json::from_str(&out).unwrap();
        let script = format!(
            "import ipaddress, json; n = ipaddress.ip_interface('{case}').network; \
             print(json.dumps({{'network': str(n.network_address), 'prefix': n.prefixlen, \
             'netmask': str(n.netmask), 'wildcard': str(n.hostmask), 'addresses': str(n.num_addresses), \
             'broadcast': str(n.broadcast_address) if n.version == 4 else None}}))"
        );
        let py = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "{}",
            String::from_utf8_lossy(&py.stderr)
        );
        let theirs: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
        for key in [
            "network",
            "prefix",
            "netmask",
            "wildcard",
            "addresses",
            "broadcast",
        ] {
            assert_eq!(ours[key], theirs[key], "{case}: {key}");
        }
    }
}

#[test]
fn same_lan_exit_codes_and_bad_input() {
    let (rc, out, _) = run_cli(
        &["subnet", "192.168.1.10", "255.255.255.0", "192.168.1.77"],
        &[],
    );
    assert_eq!(rc, 0);
    assert!(out.contains("192.168.1.77 is on the same network"), "{out}");
    let (rc, out, _) = run_cli(
        &["subnet", "192.168.1.10/24", "192.168.1.77", "192.168.2.1"],
        &[],
    );
    assert_eq!(rc, 1);
    assert!(out.contains("192.168.2.1 is NOT on"), "{out}");
    for bad in [
        &["subnet", "192.168.1.10/33"][..],
        &["subnet", "192.168.1.10/255.0.255.0"],
        // As the README shows it: a mask as its own argument.
        &["subnet", "192.168.1.10", "255.0.255.0"],
        &["subnet", "192.168.1.10", "255.255.0.255", "192.168.1.77"],
        &["subnet", "banana"],
        &["subnet", "10.0.0.1/8", "not-an-address"],
        &["subnet", "10.0.0.1/8", "::1"],
    ] {
        let (rc, _, err) = run_cli(bad, &[]);
        assert_eq!(rc, 2, "{bad:?}");
        assert!(err.starts_with("ferry: "), "{err}");
    }
    for bad in ["10.0.0.1/255.0.255.0", "10.0.0.1 255.0.255.0"] {
        let args: Vec<&str> = std::iter::once("subnet").chain(bad.split(' ')).collect();
        let (_, _, err) = run_cli(&args, &[]);
        assert!(err.contains("contiguous"), "{err}");
    }
}
