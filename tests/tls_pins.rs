//! Trust on first use: an unknown certificate asked about (or refused
//! without a terminal), pinned, and a changed one refused loudly with
//! nothing sent; how the pins file and the flags behave when they are
//! wrong.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::spawn_bin_server;
use common::tls::{cert_of, cli, openssl_fingerprint, stop};

#[test]
fn an_unknown_or_changed_certificate_is_refused_and_nothing_is_sent() {
    let (root_a, root_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = spawn_bin_server(root_a.path(), &["--tls", "--no-discovery"], &[]);
    let b = spawn_bin_server(root_b.path(), &["--tls", "--no-discovery"], &[]);
    let (host_a, host_b) = (
        format!("127.0.0.1:{}", a.port),
        format!("127.0.0.1:{}", b.port),
    );
    let (fp_a, fp_b) = (
        openssl_fingerprint(&cert_of(&a)),
        openssl_fingerprint(&cert_of(&b)),
    );
    assert_ne!(fp_a, fp_b, "each state folder has its own certificate");
    let home = tempfile::tempdir().unwrap();
    let known = home.path().join("known_hosts");

    // Unknown, and no terminal to ask on: refused, with the fingerprint and
    // the way to go on; nothing pinned.
    let (code, _, err) = cli(&["ls", "--tls", &host_b], &known);
    assert_eq!(code, 255, "{err}");
    assert!(
        err.contains("not known yet") && err.contains(&fp_b),
        "{err}"
    );
    assert!(
        err.contains("--fingerprint") && err.contains("--accept-new"),
        "{err}"
    );
    assert!(!known.exists());

    // Trust on first use.
    let (code, _, err) = cli(&["ls", "--accept-new", &host_a], &known);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("pinned") && err.contains(&fp_a), "{err}");

    // The certificate at B's address is swapped: the pin says A's.
    let pins = std::fs::read_to_string(&known).unwrap();
    std::fs::write(&known, format!("{pins}{host_b} {fp_a}\n")).unwrap();
    let local = home.path().join("x.bin");
    std::fs::write(&local, b"must not arrive").unwrap();
    for extra in [&[][..], &["--accept-new"][..]] {
        let mut args = vec!["put"];
        args.extend_from_slice(extra);
        let dest = format!("{host_b}:/");
        args.extend([local.to_str().unwrap(), dest.as_str()]);
        let (code, _, err) = cli(&args, &known);
        assert_eq!(code, 255, "{err}");
        assert!(err.contains("HAS CHANGED"), "{err}");
        assert!(err.contains(&fp_a) && err.contains(&fp_b), "{err}");
        assert!(
            err.contains(known.to_str().unwrap()),
            "says which file: {err}"
        );
        assert!(!root_b.path().join("x.bin").exists());
    }
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        format!("{pins}{host_b} {fp_a}\n"),
        "a refusal changes no pin"
    );

    // A wrong expected fingerprint is refused too.
    let (code, _, err) = cli(&["ls", "--fingerprint", &fp_a, &host_b], &known);
    assert_eq!(code, 255, "{err}");

    // Told the new fingerprint, the client re-pins, as the message says.
    let (code, _, err) = cli(&["ls", "--fingerprint", &fp_b, &host_b], &known);
    assert_eq!(code, 0, "{err}");
    let pins = std::fs::read_to_string(&known).unwrap();
    assert!(pins.contains(&format!("{host_b} {fp_b}")), "{pins}");
    assert!(!pins.contains(&format!("{host_b} {fp_a}")), "{pins}");
    assert!(pins.contains(&format!("{host_a} {fp_a}")), "{pins}");

    // --insecure goes through anything, says it is for tests, pins nothing.
    let other = home.path().join("other_hosts");
    let (code, _, err) = cli(&["ls", "--insecure", &host_a], &other);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("for tests only"), "{err}");
    assert!(!other.exists());

    // A pins file that cannot be read stops the client: it must not fall
    // back to speaking in clear to a server that may be pinned.
    let unreadable = home.path().join("a-folder");
    std::fs::create_dir(&unreadable).unwrap();
    let (code, _, err) = cli(&["ls", &host_a], &unreadable);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot read") && err.contains("a-folder"),
        "{err}"
    );

    // A fingerprint that is not one is a usage error.
    let (code, _, err) = cli(&["ls", "--fingerprint", "12:34:zz", &host_a], &known);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("64 hex digits"), "{err}");

    stop(a);
    stop(b);
}

#[test]
fn tls_asked_of_a_server_without_it_fails_clearly() {
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(root.path(), &["--no-discovery"], &[]);
    let home = tempfile::tempdir().unwrap();
    let known = home.path().join("known_hosts");
    let (code, _, err) = cli(
        &["ls", "--accept-new", &format!("127.0.0.1:{}", srv.port)],
        &known,
    );
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("TLS handshake failed"), "{err}");
    assert!(err.contains("--tls?"), "says what to check: {err}");
    assert!(!known.exists());
    stop(srv);
}

/// Runs `ferry ARGS` on a terminal (a pty made by `script`), typing
/// `answer` at it; (exit code, everything the terminal showed).
fn on_terminal(args: &[&str], known: &Path, answer: &str) -> (i32, String) {
    let mut line = common::ferry_bin().to_string();
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("FERRY_KNOWN_HOSTS", known)
        .env_remove("FERRY_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (bsdutils) is installed");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).unwrap();
    let mut shown = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut shown)
        .unwrap();
    drop(stdin);
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, shown)
}

#[test]
fn on_a_terminal_the_fingerprint_is_shown_and_must_be_confirmed() {
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(root.path(), &["--tls", "--no-discovery"], &[]);
    let host = format!("127.0.0.1:{}", srv.port);
    let fp = openssl_fingerprint(&cert_of(&srv));
    let home = tempfile::tempdir().unwrap();
    let known = home.path().join("known_hosts");

    let (code, shown) = on_terminal(&["ls", "--tls", &host], &known, "n\n");
    assert_eq!(code, 255, "{shown}");
    assert!(shown.contains(&fp) && shown.contains("[y/N]"), "{shown}");
    assert!(shown.contains("not accepted"), "{shown}");
    assert!(!known.exists(), "a refusal pins nothing");

    let (code, shown) = on_terminal(&["ls", "--tls", &host], &known, "y\n");
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("[y/N]"), "{shown}");
    let pins = std::fs::read_to_string(&known).unwrap();
    assert!(pins.contains(&format!("{host} {fp}")), "{pins}");

    // Pinned: no question any more.
    let (code, shown) = on_terminal(&["ls", &host], &known, "");
    assert_eq!(code, 0, "{shown}");
    assert!(!shown.contains("[y/N]"), "{shown}");
    stop(srv);
}
