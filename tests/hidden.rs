//! Hidden files: a checkout served as it is does not serve its `.git`.
//! Names starting with a dot are left out and refused on every door
//! unless `--hidden`, and the server's own state, config and token are
//! never served, wherever they are and by whatever name they are reached.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::{BinServer, run_cli, spawn_bin_server, spawn_bin_server_with_state};

/// `curl` a path on the server: (status, body).
fn curl(srv: &BinServer, method: &str, path: &str, data: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}"]);
    // HEAD with -X would wait for a body that never comes.
    if method == "HEAD" {
        cmd.arg("-I");
    } else {
        cmd.args(["-X", method]);
    }
    cmd.arg(format!("http://127.0.0.1:{}{path}", srv.port));
    if let Some(d) = data {
        cmd.args(["--data-binary", d]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

fn checkout(root: &Path) {
    fs::create_dir_all(root.join(".git/objects")).unwrap();
    fs::write(root.join(".git/config"), "[core]\n").unwrap();
    fs::write(root.join(".env"), "SECRET=1\n").unwrap();
    fs::create_dir(root.join("src")).unwrap();
    fs::write(root.join("src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(root.join("src/.notes"), "private\n").unwrap();
    fs::write(root.join("README.md"), "# hi\n").unwrap();
}

fn classic_get(srv: &BinServer, name: &str, dest: &Path) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/classic_client.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["127.0.0.1", &srv.port.to_string(), "get", name])
        .arg(dest)
        .output()
        .unwrap();
    (
        out.status.success() && dest.exists(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn dot_names_are_hidden_on_every_door_by_default() {
    let root = tempfile::tempdir().unwrap();
    checkout(root.path());
    let srv = spawn_bin_server(root.path(), &["--allow-all"], &[]);
    let at = |p: &str| format!("127.0.0.1:{}:{p}", srv.port);

    // Native: listings leave them out, reads find nothing, writes refuse.
    let (code, out, err) = run_cli(&["ls", &at("/"), "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("README.md") && !out.contains(".git") && !out.contains(".env"),
        "{out}"
    );
    let (code, _, err) = run_cli(&["ls", &at("/.git")], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("does not exist"), "{err}");
    let local = tempfile::tempdir().unwrap();
    let (code, _, err) = run_cli(&["get", &at("/.env"), local.path().to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("does not exist"), "{err}");
    let up = local.path().join("x");
    fs::write(&up, "x").unwrap();
    let (code, _, err) = run_cli(&["put", up.to_str().unwrap(), &at("/.bashrc")], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("--hidden"), "{err}");
    assert!(!root.path().join(".bashrc").exists());
    let (code, _, _) = run_cli(&["mkdir", &at("/.ssh")], &[]);
    assert_ne!(code, 0);
    let (code, _, _) = run_cli(&["mv", &at("/README.md"), "/.README.md"], &[]);
    assert_ne!(code, 0);
    let (code, _, _) = run_cli(&["rm", "-r", &at("/.git")], &[]);
    assert_ne!(code, 0);
    assert!(root.path().join(".git/config").exists());

    // A whole-tree download leaves them out.
    let copy = local.path().join("copy");
    let (code, _, err) = run_cli(&["get", "-r", &at("/"), copy.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(copy.join("src/main.rs").exists());
    assert!(!copy.join(".git").exists() && !copy.join("src/.notes").exists());

    // A folder upload leaves them out, and says so.
    let proj = local.path().join("proj");
    checkout(&proj);
    let (code, _, err) = run_cli(&["put", "-r", proj.to_str().unwrap(), &at("/proj")], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("leaving out .env, .git"), "{err}");
    assert!(root.path().join("proj/src/main.rs").exists());
    assert!(!root.path().join("proj/.git").exists());

    // HTTP: reads are 404, writes refused, listings and archives clean.
    assert_eq!(curl(&srv, "GET", "/.git/config", None).0, 404);
    assert_eq!(curl(&srv, "GET", "/src/.notes", None).0, 404);
    assert_eq!(curl(&srv, "HEAD", "/.env", None).0, 404);
    let (code, _) = curl(&srv, "PUT", "/.htaccess", Some("x"));
    assert_eq!(code, 403);
    assert!(!root.path().join(".htaccess").exists());
    assert_eq!(curl(&srv, "DELETE", "/.env", None).0, 404);
    assert!(root.path().join(".env").exists());
    let (code, page) = curl(&srv, "GET", "/", None);
    assert_eq!(code, 200);
    assert!(page.contains("README.md") && !page.contains(".git") && !page.contains(".env"));
    let (code, json) = curl(&srv, "GET", "/?json", None);
    assert_eq!(code, 200, "{json}");
    assert!(!json.contains(".git") && !json.contains(".env"), "{json}");
    let tar = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "curl -s 'http://127.0.0.1:{}/?tar' | tar -t",
            srv.port
        ))
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&tar.stdout);
    assert!(names.contains("src/main.rs"), "{names}");
    assert!(
        !names.contains(".git") && !names.contains(".notes"),
        "{names}"
    );

    // The classic door.
    let (ok, out) = classic_get(&srv, ".env", &local.path().join("env"));
    assert!(!ok, "{out}");
    let (ok, out) = classic_get(&srv, "README.md", &local.path().join("readme"));
    assert!(ok, "{out}");

    // ping lists what the server offers: no hidden names, no exec.
    let (code, out, _) = run_cli(&["ping", &at(""), "-c", "1", "--json"], &[]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let features: Vec<&str> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        !features.contains(&"hidden") && !features.contains(&"exec"),
        "{features:?}"
    );
}

#[test]
fn hidden_serves_dot_names() {
    let root = tempfile::tempdir().unwrap();
    checkout(root.path());
    let srv = spawn_bin_server(root.path(), &["--allow-all", "--hidden"], &[]);
    let at = |p: &str| format!("127.0.0.1:{}:{p}", srv.port);
    let (code, out, err) = run_cli(&["ls", &at("/"), "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".git") && out.contains(".env"), "{out}");
    assert_eq!(
        curl(&srv, "GET", "/.git/config", None),
        (200, "[core]\n".into())
    );
    let local = tempfile::tempdir().unwrap();
    let proj = local.path().join("proj");
    checkout(&proj);
    let (code, _, err) = run_cli(&["put", "-r", proj.to_str().unwrap(), &at("/proj")], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(root.path().join("proj/.git/config").exists());
}

/// The state folder, the config file and the token file inside the served
/// folder: never served, even with --hidden, even through a link.
#[test]
fn the_servers_own_files_are_never_served() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    fs::create_dir(&state).unwrap();
    fs::write(state.join("chat.db"), "history").unwrap();
    let config = root.path().join("ferry.toml");
    let token = root.path().join("secret-token");
    fs::write(&token, "a-token-of-twenty-chars\n").unwrap();
    fs::write(
        &config,
        format!("token_file = {:?}\n", token.to_str().unwrap()),
    )
    .unwrap();
    fs::write(root.path().join("public.txt"), "hello").unwrap();
    symlink(&state, root.path().join("innocent")).unwrap();
    symlink(state.join("chat.db"), root.path().join("db.txt")).unwrap();
    let srv = spawn_bin_server_with_state(
        root.path(),
        &state,
        &["--hidden", "--config", config.to_str().unwrap()],
    );
    let at = |p: &str| format!("127.0.0.1:{}:{p}", srv.port);
    let (code, out, err) = run_cli(&["ls", &at("/"), "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("public.txt"), "{out}");
    for hidden in ["state", "ferry.toml", "secret-token", "innocent", "db.txt"] {
        assert!(
            !out.contains(&format!("\"{hidden}\"")),
            "{hidden} listed: {out}"
        );
        assert_eq!(
            curl(&srv, "GET", &format!("/{hidden}"), None).0,
            404,
            "{hidden}"
        );
    }
    for path in ["/state/chat.db", "/innocent/chat.db"] {
        assert_eq!(curl(&srv, "GET", path, None).0, 404, "{path}");
        let (code, _, _) = run_cli(&["stat", &at(path)], &[]);
        assert_ne!(code, 0, "{path}");
    }
    let (code, names) = curl(&srv, "GET", "/?tar", None);
    assert_eq!(code, 200);
    assert!(names.contains("public.txt") && !names.contains("history"));
}

/// A folder above the state folder cannot be moved or removed (that would
/// take the state along, or put other files in its place), and a state
/// folder named through a link and `..`, made on this start, is fenced.
#[test]
fn the_state_folder_cannot_be_moved_away_or_reached_by_another_path() {
    let base = tempfile::tempdir().unwrap();
    let real = base.path().join("real");
    fs::create_dir_all(real.join("data")).unwrap();
    fs::write(real.join("data/public.txt"), "hello").unwrap();
    symlink(&real, base.path().join("link")).unwrap();
    // Not there yet, reached through the link, with a `..` on the way.
    let state = base.path().join("link/data/x/../st/ferry");
    let srv = spawn_bin_server_with_state(
        &base.path().join("link"),
        &state,
        &["--allow-all", "--tls", "--no-discovery"],
    );
    let at = |p: &str| format!("127.0.0.1:{}:{p}", srv.port);
    assert!(real.join("data/st/ferry/tls/key.pem").exists());
    for path in ["/data/st/ferry/tls/key.pem", "/data/st/ferry"] {
        let (code, _, _) = run_cli(&["stat", &at(path), "--insecure"], &[]);
        assert_ne!(code, 0, "{path} reachable");
    }
    let (code, _, err) = run_cli(&["mv", &at("/data"), "/d2", "--insecure"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("server's own files"), "{err}");
    let (code, _, _) = run_cli(&["rm", "-r", &at("/data"), "--insecure"], &[]);
    assert_ne!(code, 0);
    assert!(real.join("data/st/ferry/tls/key.pem").exists());
    assert!(real.join("data/public.txt").exists());
    // Nor may something else be moved into the state folder's place.
    let (code, _, _) = run_cli(&["mkdir", &at("/other"), "--insecure"], &[]);
    assert_eq!(code, 0);
    let (code, _, _) = run_cli(&["mv", &at("/other"), "/data/st/ferry", "--insecure"], &[]);
    assert_ne!(code, 0);
    // HTTP is held to the same.
    let out = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
        ])
        .arg(format!("https://127.0.0.1:{}/data", srv.port))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    assert!(real.join("data/st/ferry/tls/key.pem").exists());
    // Refused whole, before anything in it went: WebDAV removes a folder
    // an entry at a time, the folder last.
    assert!(real.join("data/public.txt").exists());
    // A folder a MOVE or COPY would replace is held to the same.
    for method in ["MOVE", "COPY"] {
        let out = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
            .args(["-H", "Overwrite: T", "-H"])
            .arg(format!("Destination: https://127.0.0.1:{}/data", srv.port))
            .arg(format!("https://127.0.0.1:{}/other", srv.port))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "403", "{method}");
        assert!(real.join("data/public.txt").exists(), "{method}");
        assert!(real.join("other").is_dir(), "{method}");
    }
}

/// A right of `none` hides an entry from every door's listing, as walks
/// and searches leave it out: not even its name is told.
#[test]
fn what_an_account_may_not_read_is_not_listed() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("secret/open")).unwrap();
    fs::write(r.join("secret/s.txt"), "hidden-bytes").unwrap();
    fs::write(r.join("secret/open/o.txt"), "open-bytes").unwrap();
    fs::write(r.join("payroll.xlsx"), "pay").unwrap();
    fs::write(r.join("notes.txt"), "notes").unwrap();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    let text = format!(
        "[users.alice]\npassword_hash = \"{}\"\nrights = [\"/:read\", \"/payroll.xlsx:none\", \"/secret:none\", \"/secret/open:read\"]\n",
        common::passwd_hash("alice-password")
    );
    fs::write(&cfg, text).unwrap();
    let srv = spawn_bin_server(r, &["--private", "--config", cfg.to_str().unwrap()], &[]);
    let alice = [
        ("FERRY_USER", "alice"),
        ("FERRY_PASSWORD", "alice-password"),
    ];
    let shown = |what: &str, text: &str| {
        assert!(text.contains("notes.txt"), "{what}: {text}");
        assert!(!text.contains("payroll"), "{what}: {text}");
        assert!(!text.contains("secret"), "{what}: {text}");
    };
    let (code, out, err) = run_cli(&["ls", &format!("127.0.0.1:{}:/", srv.port)], &alice);
    assert_eq!(code, 0, "{err}");
    shown("ls", &out);
    let url = format!("http://127.0.0.1:{}/", srv.port);
    let u = ["-u", "alice:alice-password"];
    for (what, extra) in [
        ("the page", vec![url.clone()]),
        ("json", vec![format!("{url}?json")]),
        (
            "PROPFIND",
            vec![
                "-X".into(),
                "PROPFIND".into(),
                "-H".into(),
                "Depth: 1".into(),
                url.clone(),
            ],
        ),
    ] {
        let mut args: Vec<&str> = u.to_vec();
        args.extend(extra.iter().map(String::as_str));
        let (status, body) = common::curl(&args);
        assert!(status == 200 || status == 207, "{what}: {status} {body}");
        shown(what, &body);
    }
    // A folder's archive leaves out what is not read, and keeps what a
    // right below it gives, as a folder download does.
    let tar = common::curl(&["-u", "alice:alice-password", &format!("{url}?tar")]).1;
    assert!(tar.contains("open-bytes") && tar.contains("secret/open/o.txt"));
    assert!(!tar.contains("hidden-bytes") && !tar.contains("pay"));
    let down = tempfile::tempdir().unwrap();
    let to = down.path().join("d");
    let from = format!("127.0.0.1:{}:/", srv.port);
    let (code, _, err) = run_cli(&["get", "-r", &from, to.to_str().unwrap()], &alice);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        fs::read(to.join("secret/open/o.txt")).unwrap(),
        b"open-bytes"
    );
    assert!(!to.join("secret/s.txt").exists() && !to.join("payroll.xlsx").exists());
    // Nor read, of course.
    let (status, _) = common::curl(&["-u", "alice:alice-password", &format!("{url}payroll.xlsx")]);
    assert_eq!(status, 403);
}
