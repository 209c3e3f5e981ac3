//! What is already in the bucket, or sent to leave the share, treated as
//! hostile (`--store s3://…`, against a real SeaweedFS the tests start
//! themselves): traversals touch no key, and keys other tools left (folder
//! markers, a file and a folder of one name) list and download whole.

mod common;

use std::fs;

use common::s3::{Seaweed, at, cli_ok, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversals_through_the_native_and_classic_doors_touch_no_key() {
    let store = Seaweed::start();
    let bucket = store.bucket("traversals");
    // Beside the served prefix, and where `..` from it would lead.
    let planted = ["escape.txt", "secret.txt", "other/escape.txt"];
    for key in planted {
        store.put_object(&bucket, key, "outside");
    }
    let n = node(&store, &bucket, &[]);
    let addr = format!("127.0.0.1:{}", n.port);
    common::traversal::native_refuses_every_traversal(&addr).await;
    common::traversal::classic_refuses_every_traversal(&addr).await;
    let mut keys = store.keys(&bucket, "");
    keys.retain(|k| !k.starts_with("share/.ferry/"));
    keys.sort();
    assert_eq!(keys, ["escape.txt", "other/escape.txt", "secret.txt"]);
}

#[test]
fn keys_other_tools_left_list_and_download_whole() {
    let store = Seaweed::start();
    let bucket = store.bucket("planted");
    for (key, body) in [
        ("share/ok.txt", "ok"),
        // Folder markers of other tools: empty, and with keys below.
        ("share/empty/", ""),
        ("share/marked/", ""),
        ("share/marked/in.txt", "in"),
        ("share/deep/x/", ""),
        // A file and a folder of one name (two servers made them at once).
        ("share/both", "file"),
        ("share/both/in.txt", "below"),
        // Names no peer may be sent: left out, and said so.
        ("share/rtl%E2%80%AEtxt.exe", "no"),
        ("share/dir%E2%80%AEa/in.txt", "no"),
    ] {
        store.put_object(&bucket, key, body);
    }
    // A key deeper than a path may go: 129 names below the share.
    let deeper = vec!["z"; 128].join("/");
    store.put_object(&bucket, &format!("share/{deeper}/far.txt"), "far");
    let n = node(&store, &bucket, &[]);
    let listing = cli_ok(&["ls", &at(&n, "/")]);
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(
        names,
        ["both/", "deep/", "empty/", "marked/", "ok.txt", "z/"],
        "{listing}"
    );
    // A folder wins over a file of its name, in every listing.
    assert!(cli_ok(&["ls", &at(&n, "/both")]).contains("in.txt"));
    assert!(cli_ok(&["ls", &at(&n, "/deep")]).contains("x/"));
    // Downloaded whole: markers become folders, never files.
    let local = tempfile::tempdir().unwrap();
    let down = local.path().join("down");
    let (code, _, err) = common::run_cli(&["get", "-r", &at(&n, "/"), down.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    for said in ["rtl\\u{202e}txt.exe", "dir\\u{202e}a"] {
        assert!(
            err.contains(&format!("skipping {said} (name not allowed)")),
            "{said} in {err}"
        );
    }
    assert!(!down.join("dir\u{202e}a").exists());
    // What lies deeper than a path may go is named and left out; a folder
    // as deep as one may go can still be made (its marker is no path).
    let far = format!("{}/far.txt", vec!["z"; 128].join("/"));
    let too_deep = format!("skipping {far} (more than 128 folders deep)");
    assert!(err.contains(&too_deep), "{err}");
    assert!(down.join(vec!["z"; 128].join("/")).is_dir());
    assert!(!down.join(&far).exists());
    cli_ok(&[
        "mkdir",
        "-p",
        &at(&n, &format!("/made/{}", vec!["m"; 127].join("/"))),
    ]);
    let made = cli_ok(&[
        "ls",
        &at(&n, &format!("/made/{}", vec!["m"; 126].join("/"))),
    ]);
    assert!(made.contains("m/"), "{made}");
    for folder in ["empty", "marked", "deep", "deep/x", "both"] {
        assert!(down.join(folder).is_dir(), "{folder}");
    }
    assert_eq!(fs::read(down.join("marked/in.txt")).unwrap(), b"in");
    assert_eq!(fs::read(down.join("both/in.txt")).unwrap(), b"below");
    // The name itself still reaches the file.
    let file = local.path().join("both.file");
    cli_ok(&["get", &at(&n, "/both"), file.to_str().unwrap()]);
    assert_eq!(fs::read(&file).unwrap(), b"file");
    assert_eq!(fs::read(down.join("ok.txt")).unwrap(), b"ok");
}

#[test]
fn a_digest_kept_beside_a_file_is_used_and_a_forged_one_is_caught() {
    let store = Seaweed::start();
    let bucket = store.bucket("digests");
    let n = node(&store, &bucket, &[]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("f.txt");
    fs::write(&src, b"the real bytes\n").unwrap();
    cli_ok(&["put", src.to_str().unwrap(), &at(&n, "/f.txt")]);
    let back = local.path().join("back.txt");
    cli_ok(&["get", &at(&n, "/f.txt"), back.to_str().unwrap()]);
    assert_eq!(fs::read(&back).unwrap(), b"the real bytes\n");
    // Metadata that lies about the bytes (anyone with the bucket's keys
    // could write it): the download is refused, and nothing is kept. (The
    // client asks again for the bytes hashed as they go; the digest kept
    // with the file still stands for what it must hold.)
    let wrong = format!("x-amz-meta-ferry-blake3: {}", "ab".repeat(32));
    store.put_object_with(&bucket, "share/g.txt", "other bytes\n", &[&wrong]);
    let out = local.path().join("g.txt");
    let (code, _, err) = common::run_cli(&["get", &at(&n, "/g.txt"), out.to_str().unwrap()], &[]);
    assert_ne!(code, 0, "a forged digest went unnoticed");
    assert!(err.contains("checksum") || err.contains("digest"), "{err}");
    assert!(!out.exists(), "a file that failed its check was kept");
}
