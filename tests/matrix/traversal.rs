//! A right on one folder is a right on that folder only: an account with
//! `/a:write` writes nothing under `/b`, nor outside the root, by any
//! spelling of a path (dot segments, encoded slashes and dots,
//! backslashes, doubled slashes, NUL) or through a link in `/a` that
//! leads to `/b`, on any door.

use std::path::Path;
use std::process::Command;

use super::common::{passwd_hash, run_cli, spawn_bin_server};

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
    let cfg = top.path().join("ferry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[users.w]\npassword_hash = \"{}\"\nrights = [\"/a:write\"]\n",
            passwd_hash("w-password")
        ),
    )
    .unwrap();
    let srv = spawn_bin_server(&r, &["--allow-all", "--config", cfg.to_str().unwrap()], &[]);
    let base = format!("http://127.0.0.1:{}", srv.port);
    let body = top.path().join("body.txt");
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
    let spellings = [
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
        "/a/tob/x",
        "/a/tob/../../b/x",
        "/b/x",
    ];
    // The web door's PUT and WebDAV's MKCOL, COPY and MOVE.
    for p in spellings {
        let url = format!("{base}{p}");
        let put = curl(&["-T", b, &url]);
        let mkcol = curl(&["-X", "MKCOL", &format!("{url}-dir")]);
        let dest = format!("Destination: {url}-copy");
        let copy = curl(&["-X", "COPY", "-H", &dest, &format!("{base}/a/f.txt")]);
        for (what, status) in [("PUT", put), ("MKCOL", mkcol), ("COPY", copy)] {
            assert!(!(200..300).contains(&status), "{what} {p}: {status}");
        }
    }
    std::fs::write(r.join("a/mv.txt"), "mv").unwrap();
    for p in spellings {
        let dest = format!("Destination: {base}{p}-moved");
        let status = curl(&["-X", "MOVE", "-H", &dest, &format!("{base}/a/mv.txt")]);
        assert!(!(200..300).contains(&status), "MOVE to {p}: {status}");
    }
    // tus: the path in the upload's metadata.
    use base64::Engine as _;
    // (Metadata is not URL-encoded: no %-spellings here.)
    for p in ["a/../b/t", "/b/t", "a/tob/t", "a/..\\b/t", "a/./../b/t"] {
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
    for p in ["/a/../b/n", "/a/tob/n", "/b/n", "/a/..\\b/n"] {
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
