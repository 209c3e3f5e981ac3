//! Paths go at most 128 folders deep, on every door: deeper, resolving a
//! path (every prefix looked at from the top) and making or walking a
//! folder level by level cost the square and the cube of the depth, and
//! one request of 2,000 levels kept a core busy for 100 s. What lies
//! deeper in the served folder is left out of folder transfers, named.

mod common;

use std::process::Command;

use common::{run_cli, spawn_bin_server};

fn levels(n: usize) -> String {
    vec!["d"; n].join("/")
}

#[test]
fn paths_deeper_than_128_folders_are_refused_and_left_out_by_name() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    // Deeper than the cap, made on the disk: 130 folders, a file in the last.
    let deepest = r.join("tree").join(levels(129));
    std::fs::create_dir_all(&deepest).unwrap();
    std::fs::write(deepest.join("deep.txt"), "deep").unwrap();
    std::fs::write(r.join("tree/top.txt"), "top").unwrap();
    // And a file one deeper than a path may go, beside a folder.
    std::fs::write(r.join("tree").join(levels(127)).join("f.txt"), "f").unwrap();
    let srv = spawn_bin_server(r, &["--allow-upload", "--allow-delete"], &[]);
    let at = |p: &str| format!("127.0.0.1:{}:{p}", srv.port);
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", srv.port);

    // Made level by level: refused past 128, at once, with nothing made.
    let (code, _, err) = run_cli(&["mkdir", "-p", &at(&format!("/m/{}", levels(128)))], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("more than 128 folders deep"), "{err}");
    assert!(!r.join("m").exists());
    let (code, _, err) = run_cli(&["mkdir", "-p", &at(&format!("/m/{}", levels(127)))], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(r.join("m").join(levels(127)).is_dir());
    // Over HTTP too (PUT, MKCOL, tus's creation all parse the same path).
    let status = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let too_deep = url(&format!("/h/{}/f.txt", levels(128)));
    assert_eq!(status(&["-T", "/etc/hostname", &too_deep]), "400");
    assert_eq!(
        status(&["-X", "MKCOL", &url(&format!("/h/{}", levels(128)))]),
        "400"
    );
    assert!(!r.join("h").exists());

    // A folder upload whose paths would land too deep: refused whole.
    let local = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(local.path().join("up").join(levels(10))).unwrap();
    std::fs::write(local.path().join("up").join(levels(10)).join("f"), "f").unwrap();
    let base = format!("/m/{}", levels(120));
    let src = local.path().join("up");
    let (code, _, err) = run_cli(&["put", "-r", src.to_str().unwrap(), &at(&base)], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("more than 128 folders deep"), "{err}");
    assert!(!r.join("m").join(levels(120)).join("up").exists());

    // A tree deeper than the cap on the disk: what lies within it comes,
    // what lies deeper is named and left out.
    let dest = tempfile::tempdir().unwrap();
    let to = dest.path().join("tree");
    let (code, _, err) = run_cli(&["get", "-r", &at("/tree"), to.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("more than 128 folders deep"), "{err}");
    assert!(to.join("top.txt").exists());
    assert!(to.join(levels(127)).is_dir());
    assert!(!to.join(levels(128)).exists());
    let out = Command::new("curl")
        .args(["-s", &url("/tree/?tar")])
        .output()
        .unwrap();
    let mut ar = tar::Archive::new(out.stdout.as_slice());
    let mut note = String::new();
    let mut deepest_entry = 0;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        if path == "tree.left-out.txt" {
            std::io::Read::read_to_string(&mut e, &mut note).unwrap();
        }
        deepest_entry = deepest_entry.max(path.trim_end_matches('/').split('/').count());
    }
    // tree/ and 127 folders below it: 128 levels of the served folder.
    assert_eq!(deepest_entry, 128);
    let want = format!("tree/{}\tmore than 128 folders deep", levels(128));
    assert!(note.lines().any(|l| l == want), "{note}");

    // A folder as deep as a path may go lists empty: nothing in it can be
    // named.
    let (code, out, err) = run_cli(&["ls", &at(&format!("/tree/{}", levels(127)))], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().is_empty(), "{out}");

    // Where rights differ from folder to folder, a walk from the top still
    // names what lies too deep (judged by the folder above it).
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    let text = format!(
        "[users.x]\npassword_hash = \"{}\"\nrights = [\"/:read\", \"/other:none\"]\n",
        common::passwd_hash("x-password")
    );
    std::fs::write(&cfg, text).unwrap();
    let accounts = spawn_bin_server(r, &["--config", cfg.to_str().unwrap()], &[]);
    let login = [("FERRY_USER", "x"), ("FERRY_PASSWORD", "x-password")];
    let to = dest.path().join("all");
    let top = format!("127.0.0.1:{}:/", accounts.port);
    let (code, _, err) = run_cli(&["get", "-r", &top, to.to_str().unwrap()], &login);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("more than 128 folders deep"), "{err}");
    drop(accounts);

    // Removed whole, deeper parts and all, on either door (no path can
    // name what lies deeper, so nothing may be removed entry by entry).
    let copy = |to: &str| {
        let ok = Command::new("cp")
            .arg("-a")
            .arg(r.join("tree"))
            .arg(r.join(to))
            .status();
        assert!(ok.unwrap().success());
    };
    copy("tree2");
    assert_eq!(common::curl(&["-X", "DELETE", &url("/tree/")]).0, 204);
    assert!(!r.join("tree").exists());
    let (code, _, err) = run_cli(&["rm", "-r", &at("/tree2")], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!r.join("tree2").exists());
}
