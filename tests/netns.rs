//! Discovery across real networks: network namespaces made by the test,
//! joined by veth pairs to a bridge, one `ferry serve` in each of three and
//! `ferry discover` (plain LAN mode: broadcast and multicast) in a fourth.
//! Needs root (CI runs as root); where namespaces cannot be made, the test
//! says so in its output and checks nothing else.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The namespaces and servers of one test, removed on drop.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    servers: Vec<Child>,
    /// Each server's own state folder (they share one file system).
    state: tempfile::TempDir,
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn in_ns(ns: &str, args: &[&str]) -> bool {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    ip(&all)
}

/// Builds hub (a bridge) plus one namespace per node, each with `eth0` at
/// 10.231.0.N/24. Returns None when namespaces cannot be made here.
fn build(tag: char, nodes: &[(&str, u8)]) -> Option<Lab> {
    let prefix = format!("f{tag}{}", std::process::id() % 100_000);
    let mut lab = Lab {
        prefix,
        namespaces: Vec::new(),
        servers: Vec::new(),
        state: tempfile::tempdir().unwrap(),
    };
    let hub = lab.ns("hub");
    if !ip(&["netns", "add", &hub]) {
        return None;
    }
    lab.namespaces.push(hub.clone());
    assert!(in_ns(&hub, &["ip", "link", "add", "br0", "type", "bridge"]));
    assert!(in_ns(&hub, &["ip", "link", "set", "br0", "up"]));
    for (i, (name, host)) in nodes.iter().enumerate() {
        let ns = lab.ns(name);
        assert!(ip(&["netns", "add", &ns]), "netns add {ns}");
        lab.namespaces.push(ns.clone());
        let (a, b) = (format!("{}a{i}", lab.prefix), format!("{}b{i}", lab.prefix));
        assert!(ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]));
        assert!(ip(&["link", "set", &a, "netns", &ns]));
        assert!(ip(&["link", "set", &b, "netns", &hub]));
        assert!(in_ns(&hub, &["ip", "link", "set", &b, "master", "br0"]));
        assert!(in_ns(&hub, &["ip", "link", "set", &b, "up"]));
        assert!(in_ns(&ns, &["ip", "link", "set", &a, "name", "eth0"]));
        // Link-local IPv6 usable at once: no duplicate address detection.
        for knob in [
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.eth0.accept_dad=0",
        ] {
            let _ = Command::new("ip")
                .args(["netns", "exec", &ns, "sysctl", "-qw", knob])
                .status();
        }
        let addr = format!("10.231.0.{host}/24");
        assert!(in_ns(
            &ns,
            &["ip", "addr", "add", &addr, "brd", "+", "dev", "eth0"]
        ));
        assert!(in_ns(&ns, &["ip", "link", "set", "eth0", "up"]));
        assert!(in_ns(&ns, &["ip", "link", "set", "lo", "up"]));
    }
    Some(lab)
}

fn serve_in(lab: &mut Lab, node: &str, extra: &[&str]) {
    serve_in_with(lab, node, extra, None);
}

fn serve_in_with(lab: &mut Lab, node: &str, extra: &[&str], token: Option<&str>) {
    let root = std::env::temp_dir();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.ns(node), common::ferry_bin(), "serve"])
        .arg(&root)
        .args([
            "--listen",
            "0.0.0.0:7070",
            "--listen",
            "[::]:7070",
            "--name",
            node,
        ])
        .arg("--state-dir")
        .arg(lab.state.path().join(node))
        .args(extra)
        .env_remove("FERRY_TOKEN")
        .envs(token.map(|t| ("FERRY_TOKEN", t)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    assert!(
        lines.any(|l| l.map(|l| l.starts_with("listening on")).unwrap_or(false)),
        "{node} did not start"
    );
    std::thread::spawn(move || for _ in lines {});
    lab.servers.push(child);
}

/// Runs `ferry discover ARGS` in the lab's client namespace; its output.
fn discover_in(lab: &Lab, args: &[&str], token: Option<&str>) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("cl"),
            common::ferry_bin(),
            "discover",
        ])
        .args(args)
        .env_remove("FERRY_TOKEN")
        .envs(token.map(|t| ("FERRY_TOKEN", t)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn discover_finds_every_server_on_the_lan_once_and_not_the_silent_one() {
    let Some(mut lab) = build('p', &[("s1", 1), ("s2", 2), ("s3", 3), ("cl", 10)]) else {
        println!(
            "SKIPPED: cannot create network namespaces here (needs root); only the loopback discovery tests ran"
        );
        return;
    };
    serve_in(&mut lab, "s1", &[]);
    serve_in(&mut lab, "s2", &[]);
    serve_in(&mut lab, "s3", &["--no-discovery"]);
    std::thread::sleep(Duration::from_millis(300));
    let stdout = discover_in(&lab, &["--json", "--timeout", "1.5"], None);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let servers = v["servers"].as_array().unwrap();
    let mut seen: Vec<(String, Vec<String>)> = servers
        .iter()
        .map(|s| {
            let addrs = s["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            (s["name"].as_str().unwrap().to_string(), addrs)
        })
        .collect();
    seen.sort();
    // Each server once, reached over IPv4 (broadcast and multicast) and
    // IPv6 (all-nodes multicast): one address of each family.
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec!["s1", "s2"],
        "every server once, the silent one not at all: {v}"
    );
    for (i, (name, addrs)) in seen.iter().enumerate() {
        let v4: Vec<_> = addrs.iter().filter(|a| !a.contains(':')).collect();
        let v6: Vec<_> = addrs.iter().filter(|a| a.contains(':')).collect();
        assert_eq!(v4, vec![&format!("10.231.0.{}", i + 1)], "{name}: {v}");
        assert_eq!(v6.len(), 1, "{name} answered over IPv6 too: {v}");
    }
}

#[test]
fn watch_hears_announcements_on_the_lan() {
    let Some(mut lab) = build('w', &[("s1", 1), ("s4", 4), ("s5", 5), ("cl", 10)]) else {
        println!(
            "SKIPPED: cannot create network namespaces here (needs root); only the loopback watch test ran"
        );
        return;
    };
    serve_in(&mut lab, "s1", &[]);
    // s4 answers no probe: it can only be heard announcing.
    serve_in(&mut lab, "s4", &["--no-discovery", "--announce", "1"]);
    serve_in(&mut lab, "s5", &["--no-discovery"]);
    let stdout = discover_in(
        &lab,
        &["--watch", "--for", "3", "--timeout", "1", "--json"],
        None,
    );
    let mut ups: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "up")
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    ups.sort();
    assert_eq!(
        ups,
        vec!["s1", "s4"],
        "s1 by probe, s4 by announcement, s5 silent, each once"
    );
}

#[test]
fn with_a_token_an_answer_signed_with_another_is_refused_on_the_lan() {
    let Some(mut lab) = build('t', &[("s1", 1), ("s6", 6), ("cl", 10)]) else {
        println!(
            "SKIPPED: cannot create network namespaces here (needs root); only the loopback forgery test ran"
        );
        return;
    };
    serve_in_with(&mut lab, "s1", &[], Some("the-real-token-1"));
    // s6 claims to be a server of this network but does not hold the token.
    serve_in_with(&mut lab, "s6", &[], Some("a-guessed-token-2"));
    std::thread::sleep(Duration::from_millis(300));
    let stdout = discover_in(
        &lab,
        &["--json", "--timeout", "1.5"],
        Some("the-real-token-1"),
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["s1"], "{v}");
    assert!(
        v["rejected"].as_u64().unwrap() >= 1,
        "the forged answers were counted: {v}"
    );
}

/// Runs the ferry CLI in one of the lab's namespaces; (code, stdout, stderr).
fn cli_in(lab: &Lab, node: &str, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns(node), common::ferry_bin()])
        .args(args)
        .env_remove("FERRY_TOKEN")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    common::outcome(out)
}

/// Runs a command in a namespace; its stdout.
fn output_in(lab: &Lab, node: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns(node)])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tls_required_refuses_plain_connections_from_the_lan_but_not_from_loopback() {
    let Some(mut lab) = build('r', &[("s1", 1), ("s2", 2), ("s3", 3), ("cl", 10)]) else {
        println!("SKIPPED: cannot create network namespaces here (needs root)");
        return;
    };
    const TOKEN: &str = "lan-token-for-tls-tests";
    serve_in_with(&mut lab, "s3", &["--tls", "--no-discovery"], Some(TOKEN));
    serve_in_with(
        &mut lab,
        "s1",
        &["--tls-required", "--no-discovery"],
        Some(TOKEN),
    );
    serve_in_with(&mut lab, "s2", &["--no-discovery"], Some(TOKEN));
    std::thread::sleep(Duration::from_millis(300));
    let home = tempfile::tempdir().unwrap();
    let known = home.path().join("known_hosts");
    let known = known.to_str().unwrap();
    let env = [("FERRY_KNOWN_HOSTS", known), ("FERRY_TOKEN", TOKEN)];

    // In clear, the server answers the hello with "TLS required" (before
    // any token is sent); the client goes again with TLS, and with no pin
    // and no terminal stops at the unknown certificate.
    let (code, _, err) = cli_in(&lab, "cl", &["ls", "10.231.0.1"], &env);
    assert_eq!(code, 255, "{err}");
    assert!(
        err.contains("requires TLS; connecting again with TLS"),
        "{err}"
    );
    assert!(err.contains("not known yet"), "{err}");
    assert!(
        !err.contains("without TLS"),
        "no token was offered in clear: {err}"
    );
    // Accepting it pins it; from then on plain `ferry ls` uses TLS.
    let (code, _, err) = cli_in(&lab, "cl", &["ls", "--accept-new", "10.231.0.1"], &env);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli_in(&lab, "cl", &["ping", "-c", "1", "10.231.0.1"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("TLS, certificate"), "{out}");
    assert!(!err.contains("requires TLS"), "{err}");

    // A text client in clear is told what to do, and closed.
    let said = output_in(
        &lab,
        "cl",
        &[
            "timeout",
            "15",
            "bash",
            "-c",
            "exec 3<>/dev/tcp/10.231.0.1/7070; cat <&3",
        ],
    );
    assert!(said.contains("requires TLS"), "{said:?}");
    assert!(said.contains("openssl s_client"), "{said:?}");
    // HTTP in clear is sent to https, path and query kept.
    let status = |args: &[&str]| {
        let mut all = vec!["curl", "-sS", "-o", "/dev/null", "-w"];
        all.extend_from_slice(args);
        output_in(&lab, "cl", &all)
    };
    assert_eq!(
        status(&[
            "%{http_code} %{redirect_url}",
            "http://10.231.0.1:7070/some/dir/?x=1"
        ]),
        "308 https://10.231.0.1:7070/some/dir/?x=1"
    );
    // A Host that would turn the redirect into another URL gets a 400.
    let curl = status(&[
        "%{http_code}",
        "-H",
        "Host: evil.example/x?",
        "http://10.231.0.1:7070/",
    ]);
    assert_eq!(curl, "400");
    // The classic client in clear gets its own framing's error.
    let classic = output_in(
        &lab,
        "cl",
        &[
            "python3",
            "-c",
            "import json, socket, struct\n\
             s = socket.create_connection(('10.231.0.1', 7070), timeout=10)\n\
             h = json.dumps({'cmd': 'get', 'filename': 'x'}).encode()\n\
             s.sendall(struct.pack('i', len(h)) + h)\n\
             n = struct.unpack('i', s.recv(4))[0]\n\
             print(s.recv(n).decode())",
        ],
    );
    let reply: serde_json::Value = serde_json::from_str(classic.trim()).unwrap();
    assert!(
        reply["error"].as_str().unwrap().contains("requires TLS"),
        "{reply}"
    );

    // Loopback is exempt: on the server's own machine, plain works.
    let (code, out, err) = cli_in(&lab, "s1", &["ping", "-c", "1", "127.0.0.1:7070"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("in clear"), "{out}");

    // Without TLS across the network, a token is sent after one warning.
    let (code, _, err) = cli_in(&lab, "cl", &["ls", "10.231.0.2"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("without TLS").count(), 1, "{err}");
    let (code, _, err) = cli_in(
        &lab,
        "cl",
        &["ls", "10.231.0.2"],
        &[("FERRY_KNOWN_HOSTS", known)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("without TLS"), "no token, no warning: {err}");

    // A server with TLS that does not require it says so in its hello: a
    // client with no pin leaves before sending its token and comes back
    // with TLS.
    let (code, _, err) = cli_in(&lab, "cl", &["ls", "10.231.0.3"], &env);
    assert_eq!(code, 255, "{err}");
    assert!(
        err.contains("offers TLS; connecting again with TLS"),
        "{err}"
    );
    assert!(err.contains("not known yet"), "{err}");
    assert!(
        !err.contains("without TLS"),
        "the token went in clear: {err}"
    );
    let (code, _, err) = cli_in(&lab, "cl", &["ls", "--accept-new", "10.231.0.3"], &env);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli_in(&lab, "cl", &["ping", "-c", "1", "10.231.0.3"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("TLS, certificate"), "{out}");
}

/// Browses DNS-SD for `types` in the lab's client namespace with
/// python-zeroconf (a browser nobody here wrote); what it resolved, as
/// JSON lines.
fn zeroconf_browse(lab: &Lab, types: &[&str]) -> Vec<serde_json::Value> {
    let script = r#"
import json, sys, time
from zeroconf import ServiceBrowser, Zeroconf
zc = Zeroconf()
found = {}
class L:
    def add_service(self, zc, ty, name):
        info = zc.get_service_info(ty, name, timeout=3000)
        if info:
            found[name] = dict(type=ty, name=name, port=info.port,
                addresses=info.parsed_addresses(),
                props={k.decode(): (v or b"").decode() for k, v in info.properties.items()})
    def update_service(self, *a): pass
    def remove_service(self, *a): pass
browsers = [ServiceBrowser(zc, t, L()) for t in sys.argv[1:]]
time.sleep(4)
zc.close()
for f in found.values():
    print(json.dumps(f))
"#;
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns("cl"), "python3", "-c", script])
        .args(types)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python-zeroconf (installed by scripts/test): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn desktops_find_the_server_by_dns_sd_and_the_silent_one_not_at_all() {
    let Some(mut lab) = build('m', &[("s1", 1), ("s2", 2), ("cl", 10)]) else {
        println!("SKIPPED: cannot create network namespaces here (needs root)");
        return;
    };
    serve_in(&mut lab, "s1", &[]);
    serve_in(&mut lab, "s2", &["--no-discovery"]);
    let seen = zeroconf_browse(
        &lab,
        &[
            "_ferry._tcp.local.",
            "_webdav._tcp.local.",
            "_http._tcp.local.",
        ],
    );
    let of = |ty: &str| seen.iter().filter(|s| s["type"] == ty).collect::<Vec<_>>();
    for ty in [
        "_ferry._tcp.local.",
        "_webdav._tcp.local.",
        "_http._tcp.local.",
    ] {
        let found = of(ty);
        assert_eq!(found.len(), 1, "{ty}: only s1 announces: {seen:?}");
        let s = found[0];
        assert!(s["name"].as_str().unwrap().starts_with("s1."), "{s}");
        assert_eq!(s["port"], 7070, "{s}");
        let addrs = s["addresses"].as_array().unwrap();
        assert!(addrs.iter().any(|a| a == "10.231.0.1"), "{s}");
        assert!(
            !addrs
                .iter()
                .any(|a| a.as_str().unwrap().starts_with("127.")),
            "{s}"
        );
        if ty != "_ferry._tcp.local." {
            assert_eq!(s["props"]["path"], "/", "{s}");
        }
    }
    assert_eq!(of("_ferry._tcp.local.")[0]["props"]["auth"], "0");
    // `ferry discover` reads the announcement too.
    let stdout = discover_in(&lab, &["--json", "--timeout", "3"], None);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let s1 = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "s1")
        .unwrap_or_else(|| panic!("{v}"));
    let via: Vec<&str> = s1["via"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(via.contains(&"probe") && via.contains(&"mdns"), "{v}");
    assert!(!v.to_string().contains("\"s2\""), "{v}");
}

/// Holds a TCP connection from namespace `ns` to `to` open for a while.
fn hold_connection(lab: &Lab, ns: &str, to: &str) -> Child {
    let script = format!(
        "import socket, time; s = socket.create_connection(('{to}', 7070)); print('up', flush=True); time.sleep(10)"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.ns(ns), "python3", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "up", "no connection from {ns} to {to}");
    child
}

#[test]
fn only_connections_from_the_same_machine_leave_the_system_congestion_control() {
    let Some(mut lab) = build('c', &[("sv", 1), ("cl", 10)]) else {
        println!("SKIPPED: cannot create network namespaces here (needs root)");
        return;
    };
    // The server's namespace defaults to Reno: a choice of its own that
    // ferry must keep for peers on other machines.
    let sv = lab.ns("sv");
    assert!(in_ns(
        &sv,
        &["sysctl", "-qw", "net.ipv4.tcp_congestion_control=reno"]
    ));
    serve_in(&mut lab, "sv", &[]);
    let mut held = vec![
        hold_connection(&lab, "cl", "10.231.0.1"),
        hold_connection(&lab, "sv", "127.0.0.1"),
        hold_connection(&lab, "sv", "10.231.0.1"),
    ];
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new("ip")
        .args(["netns", "exec", &sv, "ss", "-tinH", "state", "established"])
        .args(["( sport = :7070 )"])
        .output()
        .unwrap();
    for c in &mut held {
        let _ = c.kill();
        let _ = c.wait();
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // Each socket: a line of addresses, then one of details naming the
    // congestion control.
    let mut by_peer = std::collections::BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [addrs, info] = pair else { continue };
        let peer = addrs.split_whitespace().nth(3).unwrap_or_default();
        let peer = peer.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(peer);
        let cc = ["cubic", "reno", "bbr"]
            .into_iter()
            .find(|n| info.split_whitespace().any(|w| w == *n))
            .unwrap_or("?");
        by_peer.insert(peer.to_string(), cc);
    }
    let want = std::collections::BTreeMap::from([
        ("10.231.0.10".to_string(), "reno"),
        ("127.0.0.1".to_string(), "cubic"),
        ("10.231.0.1".to_string(), "cubic"),
    ]);
    assert_eq!(by_peer, want, "{text}");
}
