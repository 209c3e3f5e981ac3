//! A right on one folder is a right on that folder only: an account with
//! `/a:write` writes nothing under `/b`, nor outside the root, by any
//! spelling of a path (dot segments, encoded slashes and dots,
//! backslashes, doubled slashes, NUL) or through a link in `/a` that
//! leads to `/b`, on any door; on a folder on disk and on a bucket.

use std::path::Path;
use std::process::Command;

use super::common::s3::{Seaweed, node};
use super::common::{BinServer, passwd_hash, run_cli, spawn_bin_server};

/// Every path below `dir`, not following links.
fn everything(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_right_on_one_folder_reaches_no_other_by_any_spelling() {
    let top = tempfile::tempdir().unwrap();
    let r = top.path().join("root");
    std::fs::create_dir_all(r.join("a")).unwrap();
    std::fs::create_dir_all(r.join("b")).unwrap();
    std::fs::write(r.join("a/f.txt"), "mine").unwrap();
    std::fs::write(r.join("b/victim.txt"), "victim").unwrap();
    std::os::unix::fs::symlink("../b", r.join("a/tob")).unwrap();
    let cfg = config_for_w(top.path());
    let srv = spawn_bin_server(&r, &["--allow-all", "--config", &cfg], &[]);
    every_spelling_is_refused(&srv, top.path(), true);

    // /b is as it was, and nothing was made beside the root.
    assert_eq!(everything(&r.join("b")), vec!["victim.txt"]);
    assert_eq!(
        std::fs::read_to_string(r.join("b/victim.txt")).unwrap(),
        "victim"
    );
    let beside: Vec<_> = everything(top.path())
        .into_iter()
        .filter(|p| !p.starts_with("root") && p != "ferry.toml" && p != "body.txt")
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
    let made: Vec<_> = everything(&r)
        .into_iter()
        .filter(|p| !p.starts_with("a/") && !p.starts_with("b") && p != "a")
        .collect();
    assert!(made.is_empty(), "{made:?}");
}

/// A config in `dir` with one account, `w`, whose one right is
/// `/a:write`; its path.
fn config_for_w(dir: &Path) -> String {
    let cfg = dir.join("ferry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[users.w]\npassword_hash = \"{}\"\nrights = [\"/a:write\"]\n",
            passwd_hash("w-password")
        ),
    )
    .unwrap();
    cfg.to_str().unwrap().to_owned()
}

#[test]
fn on_a_bucket_a_right_on_one_folder_reaches_no_other_by_any_spelling() {
    let store = Seaweed::start();
    let bucket = store.bucket("spellings");
    let planted = [
        ("share/a/f.txt", "mine"),
        ("share/b/victim.txt", "victim"),
        ("secret.txt", "outside"),
        ("other/secret.txt", "outside"),
    ];
    for (key, body) in planted {
        store.put_object(&bucket, key, body);
    }
    let top = tempfile::tempdir().unwrap();
    let srv = node(&store, &bucket, &["--config", &config_for_w(top.path())]);
    every_spelling_is_refused(&srv, top.path(), false);

    // Nothing was made but what `w` may make, and what was there is whole.
    let mut keys = store.keys(&bucket, "");
    keys.retain(|k| !k.starts_with("share/.ferry/"));
    keys.sort();
    let made = ["share/a/mv.txt", "share/a/ok.txt"];
    let mut expected: Vec<&str> = planted.iter().map(|(k, _)| *k).chain(made).collect();
    expected.sort();
    assert_eq!(keys, expected);
    for (key, body) in planted {
        let url = format!("{}/{bucket}/{key}", store.endpoint());
        assert_eq!(store.signed(&[&url]), (200, body.to_owned()), "{key}");
    }
}

/// Tries to write below `/b`, or outside the root, as `w` (whose one
/// right is `/a:write`), by every spelling on every door of `srv`, and
/// asserts each is refused; then that the right itself works. `links`:
/// the root holds `/a/tob`, a link to `../b`. A body file goes in
/// `scratch`.
pub(crate) fn every_spelling_is_refused(srv: &BinServer, scratch: &Path, links: bool) {
    let base = format!("http://127.0.0.1:{}", srv.port);
    let body = scratch.join("body.txt");
    std::fs::write(&body, "evil").unwrap();
    let b = body.to_str().unwrap();
    let curl = |args: &[&str]| -> u16 {
        let out = Command::new("curl")
            .args([
                "-s",
                "--path-as-is",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(["-u", "w:w-password"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).parse().unwrap()
    };
    let mut spellings = vec![
        "/a/../b/x",
        "/a/..%2fb/x",
        "/a/..%2Fb/x",
        "/a/%2e%2e/b/x",
        "/a/%2E%2E%2Fb/x",
        "/a/.%2e/b/x",
        "/a/..%5cb/x",
        "/a/..\\b/x",
        "/a/./../b/x",
        "//b/x",
        "/a//../b/x",
        "/a/%00/../b/x",
        "/b/x",
    ];
    if links {
        spellings.extend(["/a/tob/x", "/a/tob/../../b/x"]);
    }
    // The web door's PUT and WebDAV's MKCOL, COPY and MOVE.
    for &p in &spellings {
        let url = format!("{base}{p}");
        let put = curl(&["-T", b, &url]);
        let mkcol = curl(&["-X", "MKCOL", &format!("{url}-dir")]);
        let dest = format!("Destination: {url}-copy");
        let copy = curl(&["-X", "COPY", "-H", &dest, &format!("{base}/a/f.txt")]);
        for (what, status) in [("PUT", put), ("MKCOL", mkcol), ("COPY", copy)] {
            assert!(!(200..300).contains(&status), "{what} {p}: {status}");
        }
    }
    assert_eq!(curl(&["-T", b, &format!("{base}/a/mv.txt")]), 201);
    for &p in &spellings {
        let dest = format!("Destination: {base}{p}-moved");
        let status = curl(&["-X", "MOVE", "-H", &dest, &format!("{base}/a/mv.txt")]);
        assert!(!(200..300).contains(&status), "MOVE to {p}: {status}");
    }
    // tus: the path in the upload's metadata.
    use base64::Engine as _;
    // (Metadata is not URL-encoded: no %-spellings here.)
    for p in ["a/../b/t", "/b/t", "a/..\\b/t", "a/./../b/t"]
        .into_iter()
        .chain(links.then_some("a/tob/t"))
    {
        let meta = format!(
            "Upload-Metadata: path {}",
            base64::engine::general_purpose::STANDARD.encode(p)
        );
        let status = curl(&[
            "-X",
            "POST",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Length: 4",
            "-H",
            &meta,
            &format!("{base}/.ferry/tus/"),
        ]);
        assert!(!(200..300).contains(&status), "tus {p}: {status}");
    }
    // The native door.
    let env = [("FERRY_USER", "w"), ("FERRY_PASSWORD", "w-password")];
    let host = format!("127.0.0.1:{}", srv.port);
    for p in ["/a/../b/n", "/b/n", "/a/..\\b/n"]
        .into_iter()
        .chain(links.then_some("/a/tob/n"))
    {
        let (code, _, err) = run_cli(&["put", b, &format!("{host}:{p}")], &env);
        assert_ne!(code, 0, "put {p}: {err}");
        let (code, _, err) = run_cli(&["mkdir", &format!("{host}:{p}-dir")], &env);
        assert_ne!(code, 0, "mkdir {p}: {err}");
        let (code, _, err) = run_cli(&["mv", &format!("{host}:/a/mv.txt"), p], &env);
        assert_ne!(code, 0, "mv {p}: {err}");
    }
    // The right itself still works, so the refusals above were about
    // where, not about who.
    assert_eq!(curl(&["-T", b, &format!("{base}/a/ok.txt")]), 201);
}
