//! Moves in an S3 bucket (`--store s3://…`), against a real SeaweedFS the
//! tests start themselves: what a move keeps of each file, and that moves
//! racing other servers' moves and uploads never lose a file's bytes.

mod common;

use std::fs;
use std::time::Duration;

use common::s3::{MTIME, Seaweed, at, cli_ok, node, set_mtime};
use common::{noise, run_cli};

const MIB: usize = 1 << 20;

#[test]
fn moves_keep_each_files_time_and_digests_stored_whole_or_in_parts() {
    let store = Seaweed::start();
    let bucket = store.bucket("moves");
    let a = node(&store, &bucket, &[]);
    let b = node(&store, &bucket, &[]);
    let local = tempfile::tempdir().unwrap();
    let big = noise(19 * MIB + 7, 3);
    let big_s = local.path().join("big.bin");
    let small_s = local.path().join("small.txt");
    fs::write(&big_s, &big).unwrap();
    fs::write(&small_s, b"small\n").unwrap();
    set_mtime(&[&big_s, &small_s], MTIME);
    // A folder no marker makes (another tool's keys), holding both.
    store.put_object(&bucket, "share/implied/other.txt", "other");
    cli_ok(&["put", big_s.to_str().unwrap(), &at(&a, "/implied/")]);
    cli_ok(&["put", small_s.to_str().unwrap(), &at(&a, "/implied/")]);
    let stat = |n: &common::BinServer, p: &str| -> serde_json::Value {
        serde_json::from_str(&cli_ok(&["stat", "--json", &at(n, p)])).unwrap()
    };

    // One file, then the folder, each moved through the other server.
    cli_ok(&["mv", &at(&b, "/implied/big.bin"), "/big.bin"]);
    cli_ok(&["mv", &at(&a, "/implied"), "/moved"]);
    cli_ok(&["mv", &at(&b, "/big.bin"), "/moved/big.bin"]);
    for (name, file) in [("big.bin", &big_s), ("small.txt", &small_s)] {
        let st = stat(&a, &format!("/moved/{name}"));
        assert_eq!(st["mtime_unix"], MTIME, "{name}: {st}");
        let kept = store.kept_sha256(&bucket, &format!("share/moved/{name}"));
        assert_eq!(kept, Some(common::sha256_file(file)), "{name}");
    }
    let got = local.path().join("got.bin");
    cli_ok(&["get", &at(&b, "/moved/big.bin"), got.to_str().unwrap()]);
    assert!(fs::read(&got).unwrap() == big, "the bytes differ");
    let keys = store.keys(&bucket, "share/");
    assert!(
        keys.contains(&"share/moved/other.txt".to_string()),
        "{keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("implied") || k == "share/big.bin"),
        "{keys:?}"
    );
    // Nothing of an upload is left behind by the copies made through a
    // server, and the record of the file stored in parts moved with it.
    assert!(
        !keys.iter().any(|k| k.starts_with("share/.ferry/uploads")),
        "{keys:?}"
    );
    let records = |store: &Seaweed| {
        let keys = store.keys(&bucket, "share/.ferry/files/");
        keys.len()
    };
    assert_eq!(records(&store), 1, "{keys:?}");
    // Removed, alone or with its folder, a file's record goes too.
    cli_ok(&["put", big_s.to_str().unwrap(), &at(&a, "/again.bin")]);
    assert_eq!(records(&store), 2);
    cli_ok(&["rm", &at(&b, "/again.bin")]);
    assert_eq!(records(&store), 1);
    cli_ok(&["rm", "-r", &at(&b, "/moved")]);
    assert_eq!(records(&store), 0);
}

#[test]
fn a_move_never_deletes_what_another_server_wrote_meanwhile() {
    let store = Seaweed::start();
    let bucket = store.bucket("moverace");
    let a = node(&store, &bucket, &[]);
    let b = node(&store, &bucket, &[]);
    let local = tempfile::tempdir().unwrap();
    let big_s = local.path().join("big.bin");
    let new_s = local.path().join("new.txt");
    fs::write(&big_s, noise(60 * MIB, 5)).unwrap();
    fs::write(&new_s, b"the newer one\n").unwrap();
    cli_ok(&["put", big_s.to_str().unwrap(), &at(&a, "/src.bin")]);
    // The move copies 60 MiB through A; B replaces the source meanwhile.
    let moving = std::thread::spawn({
        let src = at(&a, "/src.bin");
        move || run_cli(&["mv", &src, "/dst.bin"], &[])
    });
    // Once the copy is under way (its upload's state is in the bucket).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.keys(&bucket, "share/.ferry/uploads/").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the copy never began");
        std::thread::sleep(Duration::from_millis(20));
    }
    cli_ok(&[
        "put",
        "--force",
        new_s.to_str().unwrap(),
        &at(&b, "/src.bin"),
    ]);
    let (code, _, err) = moving.join().unwrap();
    assert_ne!(code, 0, "the move went on over a newer source");
    assert!(err.contains("changed"), "{err}");
    // The newer file is where it was written, and the move left nothing.
    let got = local.path().join("got.txt");
    cli_ok(&["get", &at(&a, "/src.bin"), got.to_str().unwrap()]);
    assert_eq!(fs::read(&got).unwrap(), b"the newer one\n");
    let keys = store.keys(&bucket, "share/");
    assert!(!keys.iter().any(|k| k.contains("dst.bin")), "{keys:?}");

    // Two moves onto one new name at once, through two servers: whatever
    // each answers, neither file's bytes are ever lost.
    for round in 0..8 {
        let (p, q, t) = (
            format!("/p{round}.txt"),
            format!("/q{round}.txt"),
            format!("/t{round}.txt"),
        );
        for (name, body) in [(&p, "pp"), (&q, "qq")] {
            let f = local.path().join("body.txt");
            fs::write(&f, format!("{body}{round}")).unwrap();
            cli_ok(&["put", f.to_str().unwrap(), &at(&a, name)]);
        }
        std::thread::scope(|sc| {
            let one = sc.spawn(|| run_cli(&["mv", &at(&a, &p), &t], &[]));
            let two = sc.spawn(|| run_cli(&["mv", &at(&b, &q), &t], &[]));
            one.join().unwrap();
            two.join().unwrap();
        });
        let mut held = Vec::new();
        for name in [&p, &q, &t] {
            let got = local.path().join("got-race.txt");
            let _ = fs::remove_file(&got);
            if run_cli(&["get", &at(&a, name), got.to_str().unwrap()], &[]).0 == 0 {
                held.push(fs::read_to_string(&got).unwrap());
            }
        }
        for body in ["pp", "qq"] {
            assert!(
                held.contains(&format!("{body}{round}")),
                "round {round}: {body} lost; left {held:?}"
            );
        }
    }

    // Two servers swapping two names with --force at once: each file's
    // bytes stay somewhere, whatever each move answers.
    for round in 0..8 {
        let (x, y) = (format!("/x{round}.txt"), format!("/y{round}.txt"));
        for (name, body) in [(&x, "xx"), (&y, "yy")] {
            let f = local.path().join("body.txt");
            fs::write(&f, format!("{body}{round}")).unwrap();
            cli_ok(&["put", f.to_str().unwrap(), &at(&a, name)]);
        }
        std::thread::scope(|sc| {
            let one = sc.spawn(|| run_cli(&["mv", "--force", &at(&a, &x), &y], &[]));
            let two = sc.spawn(|| run_cli(&["mv", "--force", &at(&b, &y), &x], &[]));
            one.join().unwrap();
            two.join().unwrap();
        });
        let mut held = Vec::new();
        for name in [&x, &y] {
            let got = local.path().join("got-swap.txt");
            let _ = fs::remove_file(&got);
            if run_cli(&["get", &at(&a, name), got.to_str().unwrap()], &[]).0 == 0 {
                held.push(fs::read_to_string(&got).unwrap());
            }
        }
        assert!(
            held.contains(&format!("xx{round}")) || held.contains(&format!("yy{round}")),
            "round {round}: both lost; left {held:?}"
        );
    }

    // A folder holding another tool's marker (a key ending in /) is not
    // moved at all, rather than half-way; nor is one that is only that.
    store.put_object(&bucket, "share/odd/file.txt", "x");
    store.put_object(&bucket, "share/odd/emptysub/", "");
    store.put_object(&bucket, "share/onlymarker/", "");
    store.put_object(&bucket, "share/ownmarker/", "");
    store.put_object(&bucket, "share/ownmarker/in.txt", "in");
    for folder in ["/odd", "/onlymarker", "/ownmarker"] {
        let (code, _, err) = run_cli(&["mv", &at(&b, folder), "/moved"], &[]);
        assert_ne!(code, 0, "{folder}: {:?}", store.keys(&bucket, "share/"));
        assert!(err.contains("another tool"), "{folder}: {err}");
    }
    let keys = store.keys(&bucket, "share/");
    assert!(!keys.iter().any(|k| k.contains("moved")), "{keys:?}");
    assert!(keys.contains(&"share/odd/file.txt".to_string()), "{keys:?}");
    assert!(
        keys.contains(&"share/ownmarker/in.txt".to_string()),
        "{keys:?}"
    );
}
