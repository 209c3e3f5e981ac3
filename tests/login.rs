//! `ferry login`: an account's password once, then a login token kept
//! 0600 and presented by every later command (and usable as a Bearer
//! token over HTTP) with exactly the account's rights, until it runs out,
//! the password changes, or `ferry logout`. An account's name in the chat
//! is its own.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{passwd_hash, run_cli, spawn_bin_server_with_state};

fn curl_status(args: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[test]
fn a_login_is_kept_and_stands_for_its_account_until_it_ends() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir(r.join("alice")).unwrap();
    let etc = tempfile::tempdir().unwrap();
    let state = etc.path().join("state");
    let cfg = etc.path().join("ferry.toml");
    let config = |password: &str| {
        let text = format!(
            "[users.alice]\npassword_hash = \"{}\"\nrights = [\"/:read\", \"/alice:write\"]\n\n[anonymous]\nrights = []\n",
            passwd_hash(password)
        );
        std::fs::write(&cfg, text).unwrap();
    };
    config("alice-password");
    let srv = spawn_bin_server_with_state(
        r,
        &state,
        &["--allow-all", "--config", cfg.to_str().unwrap()],
    );
    let host = format!("127.0.0.1:{}", srv.port);
    let logins = etc.path().join("conf/logins");
    let kept = [("FERRY_LOGINS", logins.to_str().unwrap())];
    let body = etc.path().join("body.txt");
    std::fs::write(&body, "body").unwrap();
    let b = body.to_str().unwrap();

    // A wrong password keeps nothing.
    let (code, _, err) = run_cli(
        &["login", &host, "--user", "alice"],
        &[kept[0], ("FERRY_PASSWORD", "wrong-password")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("wrong user name or password"), "{err}");
    assert!(!logins.exists());

    // The password on standard input, as a script would give it.
    let (code, _, err) =
        common::run_cli_with_input(&["login", &host, "-u", "alice"], &kept, "alice-password\n");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("as alice until"), "{err}");
    let mode = std::fs::metadata(&logins).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let text = std::fs::read_to_string(&logins).unwrap();
    let (at, token) = text.trim().split_once(' ').unwrap();
    assert_eq!(at, host);
    assert!(token.starts_with("ferry1."), "{token}");
    assert!(!token.contains("alice-password"));

    // Later commands present it: alice's rights, no more.
    let (code, _, err) = run_cli(&["put", b, &format!("{host}:/alice/n.txt")], &kept);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_cli(&["put", b, &format!("{host}:/top.txt")], &kept);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not among your account's rights"), "{err}");
    // And over HTTP as a Bearer token.
    let bearer = format!("Authorization: Bearer {token}");
    let url = |p: &str| format!("http://{host}{p}");
    assert_eq!(
        curl_status(&["-H", &bearer, "-T", b, &url("/alice/h.txt")]),
        201
    );
    assert_eq!(
        curl_status(&["-H", &bearer, "-T", b, &url("/top.txt")]),
        403
    );
    // A token changed by one byte is no login.
    let mut forged = token.to_string().into_bytes();
    let n = forged.len() - 2;
    forged[n] = if forged[n] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let bad = format!("Authorization: Bearer {forged}");
    assert_eq!(
        curl_status(&["-H", &bad, "-T", b, &url("/alice/f.txt")]),
        401
    );
    // A login token does not make another: that takes the password.
    let (code, _, err) = run_cli(
        &["login", &host, "--user", "alice"],
        &[
            ("FERRY_LOGINS", etc.path().join("other").to_str().unwrap()),
            ("FERRY_PASSWORD", token),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("with its password"), "{err}");

    // A login that has run out.
    let short = etc.path().join("short");
    let (code, _, err) = run_cli(
        &["login", &host, "--user", "alice", "--expires", "1s"],
        &[
            ("FERRY_LOGINS", short.to_str().unwrap()),
            ("FERRY_PASSWORD", "alice-password"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, _, err) = run_cli(
        &["put", b, &format!("{host}:/alice/late.txt")],
        &[("FERRY_LOGINS", short.to_str().unwrap())],
    );
    assert_ne!(code, 0);
    assert!(err.contains("ferry login"), "{err}");

    // Logging out forgets it: anonymous again (who may do nothing here).
    let (code, _, err) = run_cli(&["logout", &host], &kept);
    assert_eq!(code, 0, "{err}");
    assert!(!std::fs::read_to_string(&logins).unwrap().contains(&host));
    let (code, _, _) = run_cli(&["put", b, &format!("{host}:/alice/m.txt")], &kept);
    assert_ne!(code, 0);
    let (code, _, err) = run_cli(&["logout", &host], &kept);
    assert_eq!(code, 1);
    assert!(err.contains("no login kept"), "{err}");

    // A link alice made with her login token, which the new password
    // ends too.
    let (code, link, err) = run_cli(
        &["share", &format!("{host}:/alice/n.txt")],
        &[("FERRY_TOKEN", token)],
    );
    assert_eq!(code, 0, "{err}");
    let link = link.trim().rsplit('/').next().unwrap().to_string();
    let opened = |port: u16| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-L",
                "-c",
                "/dev/null",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("http://127.0.0.1:{port}/.ferry/share/{link}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).parse::<u16>().unwrap()
    };
    assert_eq!(opened(srv.port), 200);

    // A new password ends the tokens made under the old one.
    drop(srv);
    config("new-password");
    let srv = spawn_bin_server_with_state(
        r,
        &state,
        &["--allow-all", "--config", cfg.to_str().unwrap()],
    );
    let url = format!("http://127.0.0.1:{}/alice/after.txt", srv.port);
    assert_eq!(curl_status(&["-H", &bearer, "-T", b, &url]), 401);
    assert_ne!(opened(srv.port), 200);
    assert!(!r.join("alice/after.txt").exists());
    assert!(!r.join("top.txt").exists());
    assert!(!r.join("alice/f.txt").exists());
    assert!(r.join("alice/n.txt").exists() && r.join("alice/h.txt").exists());
    // Tokens never reach the log.
    let _ = Command::new("kill")
        .arg(srv.child.id().to_string())
        .status();
    let log = srv.stderr.join().unwrap();
    assert!(!log.contains("ferry1."), "{log}");
    assert!(!log.contains(&link), "{log}");
}

/// HTTP Basic takes an account's name and password, or any other name
/// with the token: a wrong answer takes a password's check either way,
/// so its time does not tell which names are accounts. Each try comes
/// from a loopback address of its own, before any throttle.
#[test]
fn a_wrong_basic_login_takes_as_long_whatever_the_name() {
    let root = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    let text = format!(
        "[users.alice]\npassword_hash = \"{}\"\nrights = [\"/:read\"]\n\n[anonymous]\nrights = []\n",
        passwd_hash("alice-password")
    );
    std::fs::write(&cfg, text).unwrap();
    let srv = spawn_bin_server_with_state(
        root.path(),
        &etc.path().join("state"),
        &["--config", cfg.to_str().unwrap()],
    );
    let url = format!("http://127.0.0.1:{}/", srv.port);
    let took = |from: &str, user: &str| -> f64 {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code} %{time_total}"])
            .args(["--interface", from, "-u", &format!("{user}:wrong"), &url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, last) = text.rsplit_once('\n').unwrap();
        let (code, secs) = last.split_once(' ').unwrap();
        assert_eq!(code, "401", "{user}");
        // The same words whatever the name.
        assert_eq!(body.trim(), "wrong user name or password", "{user}");
        secs.parse().unwrap()
    };
    let account = took("127.0.0.21", "alice");
    // A password's check here is argon2id at its defaults (19 MiB, two
    // passes): tens of milliseconds, where a token's comparison is none.
    let others = ["127.0.0.22", "127.0.0.23", "127.0.0.24"]
        .iter()
        .zip(["nosuch", "bob", "root"])
        .map(|(from, user)| took(from, user))
        .fold(f64::MAX, f64::min);
    assert!(account >= 0.005, "{account}");
    assert!(
        others >= 0.005,
        "an answer for a name that is no account in {others} s"
    );
    // A try right after a wrong one for the same name, from another
    // address, waits its turn (a quarter second after the last) whether
    // or not the name is an account's.
    for (first, then, user) in [
        ("127.0.0.25", "127.0.0.26", "carol"),
        ("127.0.0.27", "127.0.0.28", "alice"),
    ] {
        took(first, user);
        let again = took(then, user);
        assert!(again >= 0.1, "{user}'s next try answered in {again} s");
    }
}

/// In the chat an account's name is its own: guests cannot take it, and
/// an account logged in chats under it.
#[test]
fn chat_names_of_accounts_are_theirs() {
    let root = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    let text = format!(
        "[users.alice]\npassword_hash = \"{}\"\n",
        common::passwd_hash("alice-password")
    );
    std::fs::write(&cfg, text).unwrap();
    let srv = common::spawn_bin_server(root.path(), &["--config", cfg.to_str().unwrap()], &[]);
    let host = format!("127.0.0.1:{}", srv.port);
    let (code, _, err) = run_cli(&["chat", &host, "--nick", "Alice", "--send", "hi"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("belongs to an account"), "{err}");
    let alice = [
        ("FERRY_USER", "alice"),
        ("FERRY_PASSWORD", "alice-password"),
    ];
    let (code, _, err) = run_cli(&["chat", &host, "--send", "hello as alice"], &alice);
    assert_eq!(code, 0, "{err}");
    // The text door's guests cannot rename to it either.
    use std::io::{BufRead, BufReader, Write};
    let mut nc = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    nc.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    nc.write_all(b"/nick alice\n").unwrap();
    let mut reader = BufReader::new(nc.try_clone().unwrap());
    let mut said = String::new();
    for _ in 0..20 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        said.push_str(&line);
        if line.contains("belongs to an account") {
            break;
        }
    }
    assert!(said.contains("belongs to an account"), "{said}");
}
