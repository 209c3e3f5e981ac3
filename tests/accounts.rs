//! Accounts and rights per path, through the real binary: `ferry passwd`
//! makes the hashes, the config file names the accounts, and HTTP (Basic),
//! WebDAV and the native door each log in and get exactly their rights,
//! at the path and wherever a link leads. Nothing refused is written.

mod common;

use std::path::Path;
use std::process::Command;

use common::{run_cli, spawn_bin_server};

/// The answer's status to `curl` with `args`.
fn status(args: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("ferry.toml");
    let text = format!(
        r#"
[users.alice]
password_hash = "{alice}"
rights = ["/:read", "/alice:delete"]

[users.dropper]
password_hash = "{dropper}"
rights = ["/drop:upload"]

[users.reader]
password_hash = "{reader}"
"#,
        alice = common::passwd_hash("alice-password"),
        dropper = common::passwd_hash("dropper-password"),
        reader = common::passwd_hash("reader-password"),
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn each_account_gets_its_rights_on_every_door() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in ["alice", "drop", "private", "b"] {
        std::fs::create_dir(r.join(d)).unwrap();
    }
    std::fs::write(r.join("pub.txt"), "public").unwrap();
    std::fs::write(r.join("private/secret.txt"), "secret").unwrap();
    // Links inside the share that lead from one right's folder to another.
    std::os::unix::fs::symlink("../private", r.join("drop/peek")).unwrap();
    std::os::unix::fs::symlink("../b", r.join("alice/tob")).unwrap();
    nix::unistd::mkfifo(&r.join("drop/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let etc = tempfile::tempdir().unwrap();
    let cfg = write_config(etc.path());
    let srv = spawn_bin_server(r, &["--allow-all", "--config", cfg.to_str().unwrap()], &[]);
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", srv.port);
    let body = etc.path().join("body.txt");
    std::fs::write(&body, "body").unwrap();
    let b = body.to_str().unwrap();
    let alice = ["-u", "alice:alice-password"];
    let dropper = ["-u", "dropper:dropper-password"];
    let reader = ["-u", "reader:reader-password"];
    let with = |who: &[&str], rest: &[&str]| -> u16 {
        let mut a: Vec<&str> = who.to_vec();
        a.extend_from_slice(rest);
        status(&a)
    };

    // Anonymous: reads, and is asked to log in to write.
    assert_eq!(status(&[&url("/pub.txt")]), 200);
    assert_eq!(status(&["-T", b, &url("/anon.txt")]), 401);
    // A wrong password is a 401, whoever it names.
    assert_eq!(status(&["-u", "alice:wrong", &url("/pub.txt")]), 401);

    // alice: reads everywhere, changes only under /alice.
    assert_eq!(with(&alice, &["-T", b, &url("/alice/a.txt")]), 201);
    assert_eq!(with(&alice, &["-T", b, &url("/alice/a.txt")]), 204);
    assert_eq!(with(&alice, &["-T", b, &url("/top.txt")]), 403);
    assert_eq!(with(&alice, &["-T", b, &url("/alice/tob/x.txt")]), 403);
    assert_eq!(with(&alice, &["-X", "MKCOL", &url("/alice/made")]), 201);
    assert_eq!(with(&alice, &["-X", "MKCOL", &url("/made")]), 403);
    assert_eq!(with(&alice, &["-X", "DELETE", &url("/pub.txt")]), 403);
    assert_eq!(with(&alice, &["-X", "DELETE", &url("/alice/a.txt")]), 204);
    assert_eq!(with(&alice, &[&url("/private/secret.txt")]), 200);

    // dropper: a drop box, and nothing else, not even through a link.
    assert_eq!(with(&dropper, &["-T", b, &url("/drop/d.txt")]), 201);
    assert_eq!(with(&dropper, &["-T", b, &url("/drop/d.txt")]), 403);
    assert_eq!(with(&dropper, &[&url("/drop/d.txt")]), 200);
    assert_eq!(with(&dropper, &[&url("/pub.txt")]), 403);
    assert_eq!(with(&dropper, &[&url("/drop/peek/secret.txt")]), 403);
    assert_eq!(with(&dropper, &["-T", b, &url("/drop/peek/new.txt")]), 403);
    assert_eq!(with(&dropper, &[&url("/?tar")]), 403);
    // The folder's archive leaves out what a link leads to.
    let tar = Command::new("curl")
        .args(["-sf", "-u", "dropper:dropper-password", &url("/drop/?tar")])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let listing = String::from_utf8_lossy(&tar.stdout);
    assert!(
        listing.contains("d.txt") && !listing.contains("secret"),
        "{listing}"
    );

    // So do the zip and a search: a link's target is searched and zipped
    // only where the account may read.
    let get = |who: &[&str], u: &str| -> String {
        let out = Command::new("curl")
            .args(["-sf"])
            .args(who)
            .arg(url(u))
            .output()
            .unwrap();
        assert!(out.status.success(), "{u}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let zip = get(&dropper, "/drop/?zip");
    assert!(zip.contains("d.txt") && !zip.contains("secret"), "{zip}");
    assert_eq!(with(&dropper, &[&url("/drop/?zip&pick=peek")]), 403);
    assert_eq!(with(&dropper, &[&url("/?search=secret")]), 403);
    let found = get(&dropper, "/drop/?search=pe");
    assert!(
        !found.contains("peek") && found.contains("\"done\""),
        "{found}"
    );
    let found = get(&alice, "/drop/?search=pe");
    assert!(found.contains("\"path\":\"peek\""), "{found}");

    // reader: the default rights, read everywhere.
    assert_eq!(with(&reader, &[&url("/pub.txt")]), 200);
    assert_eq!(with(&reader, &["-T", b, &url("/drop/r.txt")]), 403);

    // The native door: FERRY_USER and FERRY_PASSWORD.
    let at = |p: &str| format!("127.0.0.1:{}:{p}", srv.port);
    let as_alice = [
        ("FERRY_USER", "alice"),
        ("FERRY_PASSWORD", "alice-password"),
    ];
    let (code, _, err) = run_cli(&["put", b, &at("/alice/n.txt")], &as_alice);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_cli(&["put", b, &at("/n.txt")], &as_alice);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not among your account's rights"), "{err}");
    let as_dropper = [
        ("FERRY_USER", "dropper"),
        ("FERRY_PASSWORD", "dropper-password"),
    ];
    let (code, _, err) = run_cli(&["get", &at("/drop/peek/secret.txt"), "-"], &as_dropper);
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = run_cli(
        &[
            "get",
            "-r",
            &at("/drop"),
            etc.path().join("got").to_str().unwrap(),
        ],
        &as_dropper,
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(etc.path().join("got/d.txt").exists());
    assert!(!etc.path().join("got/peek").exists());
    // What was left out is named, but not what lies under another right:
    // the link leads to a folder the account may not read.
    assert!(err.contains("skipping fifo (not a regular file)"), "{err}");
    assert!(!err.contains("peek"), "{err}");
    let wrong = [("FERRY_USER", "alice"), ("FERRY_PASSWORD", "nope-nope")];
    let (code, _, err) = run_cli(&["ls", &at("/")], &wrong);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("wrong user name or password"), "{err}");

    // The page's login: a session for the account, its rights and name.
    let jar = etc.path().join("jar");
    let j = jar.to_str().unwrap();
    let page = |extra: &[&str]| -> u16 {
        let mut a = vec!["-c", j, "-b", j, "-H", "X-Ferry: 1"];
        a.extend_from_slice(extra);
        status(&a)
    };
    let form = "user=alice&password=wrong";
    assert_eq!(page(&["--data", form, &url("/.ferry/login")]), 401);
    let form = "user=alice&password=alice-password";
    assert_eq!(page(&["--data", form, &url("/.ferry/login")]), 204);
    assert_eq!(page(&["-T", b, &url("/alice/page.txt")]), 201);
    assert_eq!(page(&["-T", b, &url("/page.txt")]), 403);
    let who = Command::new("curl")
        .args(["-s", "-b", j, &url("/.ferry/whoami")])
        .output()
        .unwrap();
    let who: serde_json::Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(who["user"], "alice", "{who}");
    assert_eq!(who["authenticated"], true, "{who}");
    let listing = Command::new("curl")
        .args(["-s", "-b", j, &url("/alice/")])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains(r#"data-user="alice""#));
    // The buttons each folder offers are the rights there.
    let perms = |p: &str| -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-s", "-b", j, &url(&format!("{p}?json"))])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["permissions"].clone()
    };
    assert_eq!(perms("/alice/")["upload"], true);
    assert_eq!(perms("/alice/")["delete"], true);
    assert_eq!(perms("/")["upload"], false);
    assert_eq!(perms("/")["delete"], false);
    assert_eq!(perms("/")["read"], true);
    assert_eq!(page(&["-X", "POST", &url("/.ferry/logout")]), 204);
    assert_eq!(page(&["-T", b, &url("/alice/page2.txt")]), 401);

    // Every change is in the audit trail: who, from where, what, how.
    let trail = std::fs::read_to_string(srv.state.join("audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = trail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |who: &str, door: &str, what: &str, path: &str, ok: bool| {
        lines.iter().any(|l| {
            l["who"] == who
                && l["door"] == door
                && l["what"] == what
                && l["path"].as_str().is_some_and(|p| p.contains(path))
                && (l["result"] == "ok") == ok
                && l["from"] == "127.0.0.1"
                && l["at"].as_str().is_some_and(|t| t.ends_with('Z'))
        })
    };
    assert!(has("alice", "http", "PUT", "/alice/a.txt", true), "{trail}");
    assert!(has("alice", "http", "PUT", "/top.txt", false), "{trail}");
    assert!(
        has("alice", "http", "DELETE", "/alice/a.txt", true),
        "{trail}"
    );
    assert!(
        has("dropper", "http", "PUT", "/drop/d.txt", true),
        "{trail}"
    );
    assert!(has("-", "http", "PUT", "/anon.txt", false), "{trail}");
    assert!(
        has("alice", "native", "put", "/alice/n.txt", true),
        "{trail}"
    );
    assert!(has("alice", "native", "put", "/n.txt", false), "{trail}");
    assert!(!trail.contains("password"), "{trail}");

    // Nothing refused was written.
    for never in [
        "anon.txt",
        "top.txt",
        "b/x.txt",
        "made",
        "private/new.txt",
        "n.txt",
    ] {
        assert!(!r.join(never).exists(), "{never} was written");
    }
    assert_eq!(
        std::fs::read_to_string(r.join("drop/d.txt")).unwrap(),
        "body"
    );
    assert!(common::partial_files(r).is_empty());
}

/// The config file's accounts are checked before the server starts.
#[test]
fn bad_accounts_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let good = common::passwd_hash("some-password");
    for (text, named) in [
        (
            "[users.\"a b\"]\npassword_hash = \"x\"\n".to_string(),
            "account name",
        ),
        (
            "[users.bob]\npassword_hash = \"plain\"\n".to_string(),
            "password_hash",
        ),
        (
            format!("[users.bob]\npassword_hash = \"{good}\"\nrights = [\"/x:root\"]\n"),
            "unknown level",
        ),
        (
            format!("[users.bob]\npassword_hash = \"{good}\"\nrights = [\"/../x:read\"]\n"),
            "users.bob",
        ),
        (
            "[anonymous]\nrights = [\"/:sudo\"]\n".to_string(),
            "anonymous",
        ),
        // The names the server gives the token holder and link holders.
        (
            format!("[users.Admin]\npassword_hash = \"{good}\"\n"),
            "reserved",
        ),
        (
            format!("[users.link]\npassword_hash = \"{good}\"\n"),
            "reserved",
        ),
    ] {
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, &text).unwrap();
        let (code, _, err) = run_cli(
            &[
                "serve",
                dir.path().to_str().unwrap(),
                "--config",
                cfg.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
            &[],
        );
        assert_ne!(code, 0, "{text}");
        assert!(err.contains(named), "{text}: {err}");
    }
    // A good one starts, and the summary names its accounts.
    let cfg = dir.path().join("good.toml");
    let text = format!("[users.bob]\npassword_hash = \"{good}\"\nrights = [\"/bob:write\"]\n");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new("timeout")
        .args(["2", common::ferry_bin(), "serve"])
        .arg(dir.path())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-discovery",
            "--allow-upload",
            "--config",
        ])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("accounts: bob (rights per folder, within: read, upload)"),
        "{summary}"
    );
    // A password is never taken from the command line, and a short one is
    // refused.
    let (code, _, _) = run_cli(&["passwd", "--password", "x"], &[]);
    assert_eq!(code, 2);
    let (code, _, err) = common::run_cli_with_input(&["passwd"], &[], "short\n");
    assert_eq!(code, 1);
    assert!(err.contains("at least 8"), "{err}");
}

/// Commands run only for accounts with the exec right (and the token).
#[test]
fn commands_run_only_for_accounts_with_the_right() {
    let root = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    let text = format!(
        "[users.runner]\npassword_hash = \"{}\"\nexec = true\n\n[users.alice]\npassword_hash = \"{}\"\n",
        common::passwd_hash("runner-password"),
        common::passwd_hash("alice-password"),
    );
    std::fs::write(&cfg, text).unwrap();
    let srv = spawn_bin_server(
        root.path(),
        &["--allow-exec", "--config", cfg.to_str().unwrap()],
        &[],
    );
    let host = format!("127.0.0.1:{}", srv.port);
    let runner = [
        ("FERRY_USER", "runner"),
        ("FERRY_PASSWORD", "runner-password"),
    ];
    let (code, out, err) = run_cli(&["exec", &host, "echo", "ran"], &runner);
    assert_eq!((code, out.trim()), (0, "ran"), "{err}");
    // The audit trail says who ran what, and where (written once the
    // command's report is sent: looked for a while).
    let audited = || {
        let trail = std::fs::read_to_string(srv.state.join("audit.jsonl")).unwrap_or_default();
        let line = trail.lines().find(|l| l.contains("\"exec\""))?;
        serde_json::from_str::<serde_json::Value>(line).ok()
    };
    let start = std::time::Instant::now();
    let line = loop {
        match audited() {
            Some(line) => break line,
            None if start.elapsed() < std::time::Duration::from_secs(10) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            None => panic!("no exec in the audit trail"),
        }
    };
    assert_eq!(line["who"], "runner", "{line}");
    assert_eq!(line["path"], "echo ran (in /)", "{line}");
    let alice = [
        ("FERRY_USER", "alice"),
        ("FERRY_PASSWORD", "alice-password"),
    ];
    let (code, out, err) = run_cli(&["exec", &host, "echo", "ran"], &alice);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("running commands"), "{err}");
    let (code, _, _) = run_cli(&["exec", &host, "echo", "ran"], &[]);
    assert_ne!(code, 0);
}

/// A folder goes whole or not at all: removing it takes what is below it,
/// so where rights change below it they must allow it too, on every door.
/// WebDAV removes a folder an entry at a time; it is asked whole first.
#[test]
fn a_folder_is_removed_only_where_every_right_below_allows_it() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("proj/keep")).unwrap();
    std::fs::create_dir_all(r.join("proj/sub")).unwrap();
    std::fs::write(r.join("proj/a.txt"), "a").unwrap();
    std::fs::write(r.join("proj/keep/k.txt"), "k").unwrap();
    std::fs::write(r.join("proj/sub/s.txt"), "s").unwrap();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    let text = format!(
        "[users.bob]\npassword_hash = \"{}\"\nrights = [\"/:read\", \"/proj:delete\", \"/proj/keep:read\"]\n",
        common::passwd_hash("bob-password")
    );
    std::fs::write(&cfg, text).unwrap();
    let srv = spawn_bin_server(r, &["--allow-all", "--config", cfg.to_str().unwrap()], &[]);
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", srv.port);
    let bob = ["-u", "bob:bob-password"];
    let all_there = || {
        ["proj/a.txt", "proj/keep/k.txt", "proj/sub/s.txt"]
            .iter()
            .all(|p| r.join(p).exists())
    };
    let delete = |p: &str| status(&[bob[0], bob[1], "-X", "DELETE", &url(p)]);
    assert_eq!(delete("/proj/"), 403);
    assert!(all_there(), "WebDAV removed part of the folder");
    let at = format!("127.0.0.1:{}:/proj", srv.port);
    let login = [("FERRY_USER", "bob"), ("FERRY_PASSWORD", "bob-password")];
    let (code, _, err) = run_cli(&["rm", "-r", &at], &login);
    assert_ne!(code, 0);
    assert!(err.contains("rights"), "{err}");
    assert!(all_there(), "the native door removed the folder");
    // Nor is it moved away from under them, on either door.
    let (code, _, err) = run_cli(&["mv", &at, "/moved"], &login);
    assert_ne!(code, 0);
    assert!(err.contains("rights"), "{err}");
    let moved = status(&[
        bob[0],
        bob[1],
        "-X",
        "MOVE",
        "-H",
        &format!("Destination: {}", url("/proj/sub/moved/")),
        &url("/proj/"),
    ]);
    assert_eq!(moved, 403);
    assert!(all_there(), "the folder was moved");
    // Where every right below allows it, it goes, with a link in it to a
    // file under another right: the link goes, what it leads to stays.
    std::os::unix::fs::symlink("../keep/k.txt", r.join("proj/sub/to-k")).unwrap();
    assert_eq!(delete("/proj/sub/"), 204);
    assert!(!r.join("proj/sub").exists());
    assert_eq!(
        std::fs::read_to_string(r.join("proj/keep/k.txt")).unwrap(),
        "k"
    );
    // So does such a link alone, on either door: its own folder's right
    // decides, not the right where it leads (a change to a link changes
    // the link only).
    for (n, door) in [("l1", "http"), ("l2", "native")] {
        std::os::unix::fs::symlink("keep/k.txt", r.join(format!("proj/{n}"))).unwrap();
        if door == "http" {
            assert_eq!(delete(&format!("/proj/{n}")), 204);
        } else {
            let link = format!("127.0.0.1:{}:/proj/{n}", srv.port);
            let (code, _, err) = run_cli(&["rm", &link], &login);
            assert_eq!(code, 0, "{err}");
        }
        assert!(
            std::fs::symlink_metadata(r.join(format!("proj/{n}"))).is_err(),
            "{door}"
        );
        assert!(r.join("proj/keep/k.txt").exists(), "{door}");
    }
    let sub = format!("127.0.0.1:{}:/proj/a.txt", srv.port);
    let (code, _, err) = run_cli(&["rm", &sub], &login);
    assert_eq!(code, 0, "{err}");
    assert!(r.join("proj/keep/k.txt").exists());
}

/// A folder made on the way to another is a creation where it is made:
/// with the upload right only at /a/b, `mkdir -p a/b/c` does not make `a`
/// where the account may only read, nor does an upload there.
#[test]
fn folders_made_on_the_way_need_the_right_where_they_are_made() {
    let root = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    let text = format!(
        "[users.alice]\npassword_hash = \"{}\"\nrights = [\"/:read\", \"/a/b:upload\"]\n",
        common::passwd_hash("alice-password")
    );
    std::fs::write(&cfg, text).unwrap();
    let srv = spawn_bin_server(
        root.path(),
        &["--allow-upload", "--config", cfg.to_str().unwrap()],
        &[],
    );
    let alice = [
        ("FERRY_USER", "alice"),
        ("FERRY_PASSWORD", "alice-password"),
    ];
    let at = |p: &str| format!("127.0.0.1:{}:{p}", srv.port);
    let (code, _, err) = run_cli(&["mkdir", "-p", &at("/a/b/c")], &alice);
    assert_ne!(code, 0);
    assert!(err.contains("not among your account's rights"), "{err}");
    assert!(!root.path().join("a").exists());
    let url = format!("http://127.0.0.1:{}/a/b/new.txt", srv.port);
    let (status, _) = common::curl(&["-u", "alice:alice-password", "-X", "MKCOL", &url]);
    assert!(status == 403 || status == 409, "{status}");
    assert!(!root.path().join("a").exists());
    // Once `a` is there, what lies below the right is made.
    std::fs::create_dir(root.path().join("a")).unwrap();
    let (code, _, err) = run_cli(&["mkdir", "-p", &at("/a/b/c")], &alice);
    assert_eq!(code, 0, "{err}");
    assert!(root.path().join("a/b/c").is_dir());
}

/// A link is removed by the right where it is, on WebDAV as on the native
/// door, even when it leads where the account may not read: what it leads
/// to is neither read nor touched.
#[test]
fn a_link_to_an_unreadable_file_is_removed_by_its_own_folders_right() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("private")).unwrap();
    std::fs::create_dir_all(r.join("bobdir")).unwrap();
    std::fs::write(r.join("private/secret.txt"), "secret").unwrap();
    for n in ["l1", "l2"] {
        std::os::unix::fs::symlink("../private/secret.txt", r.join("bobdir").join(n)).unwrap();
    }
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    let text = format!(
        "[users.bob]\npassword_hash = \"{}\"\nrights = [\"/bobdir:delete\"]\n",
        common::passwd_hash("bob-password")
    );
    std::fs::write(&cfg, text).unwrap();
    let srv = spawn_bin_server(r, &["--allow-all", "--config", cfg.to_str().unwrap()], &[]);
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", srv.port);
    let bob = ["-u", "bob:bob-password"];
    // Reading through it is still refused.
    assert_eq!(status(&[bob[0], bob[1], &url("/bobdir/l1")]), 403);
    assert_eq!(
        status(&[bob[0], bob[1], "-X", "DELETE", &url("/bobdir/l1")]),
        204
    );
    let link = format!("127.0.0.1:{}:/bobdir/l2", srv.port);
    let login = [("FERRY_USER", "bob"), ("FERRY_PASSWORD", "bob-password")];
    let (code, _, err) = run_cli(&["rm", &link], &login);
    assert_eq!(code, 0, "{err}");
    for n in ["l1", "l2"] {
        assert!(
            std::fs::symlink_metadata(r.join("bobdir").join(n)).is_err(),
            "{n}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(r.join("private/secret.txt")).unwrap(),
        "secret"
    );
}
