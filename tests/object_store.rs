//! The served files in an S3 bucket (`--store s3://…`), against a real
//! SeaweedFS the tests start themselves: several nodes on one bucket,
//! uploads taken up by another node, and a store that goes away.

mod common;

use std::fs;
use std::time::Duration;

use common::s3::{MTIME, Seaweed, at, cli_ok, node, set_mtime};
use common::{ProxyPlan, curl, noise, run_cli};
use ferry::client::{Client, TransferOpts};
use indicatif::ProgressBar;

const MIB: usize = 1 << 20;

#[test]
fn two_nodes_on_one_bucket_serve_the_same_files() {
    let store = Seaweed::start();
    let bucket = store.bucket("two-nodes");
    let a = node(&store, &bucket, &[]);
    let b = node(&store, &bucket, &[]);
    let local = tempfile::tempdir().unwrap();
    // Three parts and a bit: a multipart upload.
    let big = noise(25 * MIB + 123, 1);
    fs::write(local.path().join("big.bin"), &big).unwrap();
    fs::write(local.path().join("small.txt"), b"hello\n").unwrap();
    let big_s = local.path().join("big.bin");
    let small_s = local.path().join("small.txt");
    // Each file's own time goes with it, stored in one PUT or in parts.
    set_mtime(&[&big_s, &small_s], MTIME);
    cli_ok(&["put", big_s.to_str().unwrap(), &at(&a, "/")]);
    cli_ok(&["put", small_s.to_str().unwrap(), &at(&a, "/")]);

    // Got through B, byte for byte.
    let got = local.path().join("got.bin");
    cli_ok(&["get", &at(&b, "/big.bin"), got.to_str().unwrap()]);
    assert!(fs::read(&got).unwrap() == big, "the bytes differ");
    let listing = cli_ok(&["ls", &at(&b, "/")]);
    assert!(
        listing.contains("big.bin") && listing.contains("small.txt"),
        "{listing}"
    );
    assert!(!listing.contains(".ferry"), "{listing}");
    for name in ["/big.bin", "/small.txt"] {
        let stat = cli_ok(&["stat", "--json", &at(&b, name)]);
        let stat: serde_json::Value = serde_json::from_str(&stat).unwrap();
        assert_eq!(stat["mtime_unix"], MTIME, "{name}: {stat}");
    }
    // Each keeps its SHA-256, though BLAKE3 verified the upload: as
    // metadata of one PUT, in a record beside one stored in parts.
    for (key, file) in [("share/big.bin", &big_s), ("share/small.txt", &small_s)] {
        let kept = store.kept_sha256(&bucket, key);
        assert_eq!(kept, Some(common::sha256_file(file)), "{key}");
    }
    // The keys are where a user of the bucket expects them.
    let keys = store.keys(&bucket, "share/");
    assert!(keys.contains(&"share/big.bin".to_string()), "{keys:?}");

    // HTTP through B: a range, and the whole small file.
    let part = local.path().join("part");
    let (code, _) = curl(&[
        "-r",
        "10-19",
        "-o",
        part.to_str().unwrap(),
        &format!("http://127.0.0.1:{}/big.bin", b.port),
    ]);
    assert_eq!(code, 206);
    assert_eq!(fs::read(&part).unwrap(), &big[10..20]);
    let (code, body) = curl(&[format!("http://127.0.0.1:{}/small.txt", b.port)]);
    assert_eq!((code, body.as_str()), (200, "hello\n"));

    // The classic client puts through A and gets through B.
    let classic = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/classic_client.py");
    let run_classic = |args: &[&str]| {
        let out = std::process::Command::new("python3")
            .arg(classic)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "classic {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (pa, pb) = (a.port.to_string(), b.port.to_string());
    run_classic(&[
        "127.0.0.1",
        &pa,
        "put",
        small_s.to_str().unwrap(),
        "classic.txt",
    ]);
    let classic_got = local.path().join("classic.got");
    run_classic(&[
        "127.0.0.1",
        &pb,
        "get",
        "classic.txt",
        classic_got.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(&classic_got).unwrap(), b"hello\n");

    // WebDAV: a PUT through B, a listing through A; and the web page.
    let (code, _) = curl(&[
        "-T",
        small_s.to_str().unwrap(),
        &format!("http://127.0.0.1:{}/dav.txt", b.port),
    ]);
    assert_eq!(code, 201);
    let (code, body) = curl(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        &format!("http://127.0.0.1:{}/", a.port),
    ]);
    assert_eq!(code, 207);
    assert!(
        body.contains("dav.txt") && body.contains("big.bin"),
        "{body}"
    );
    let (code, body) = curl(&[format!("http://127.0.0.1:{}/", b.port)]);
    assert_eq!(code, 200);
    assert!(
        body.contains("classic.txt") && body.contains("dav.txt"),
        "{body}"
    );

    // Folders: made on A, moved on B, removed on A.
    cli_ok(&["mkdir", &at(&a, "/docs")]);
    assert!(cli_ok(&["ls", &at(&b, "/")]).contains("docs/"));
    cli_ok(&["put", small_s.to_str().unwrap(), &at(&b, "/docs/")]);
    cli_ok(&["mv", &at(&b, "/docs"), "/papers"]);
    let listing = cli_ok(&["ls", &at(&a, "/papers")]);
    assert!(listing.contains("small.txt"), "{listing}");
    let (code, _, err) = run_cli(&["rm", &at(&a, "/papers")], &[]);
    assert_ne!(code, 0, "a folder with files is removed only recursively");
    assert!(err.contains("not empty"), "{err}");
    cli_ok(&["rm", "-r", &at(&a, "/papers")]);
    let listing = cli_ok(&["ls", &at(&b, "/")]);
    assert!(
        !listing.contains("papers") && !listing.contains("docs"),
        "{listing}"
    );

    // Replacing needs --force; the later upload wins whole.
    fs::write(&small_s, b"second\n").unwrap();
    let (code, _, err) = run_cli(&["put", small_s.to_str().unwrap(), &at(&b, "/")], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("exists"), "{err}");
    cli_ok(&["put", "--force", small_s.to_str().unwrap(), &at(&b, "/")]);
    let (_, body) = curl(&[format!("http://127.0.0.1:{}/small.txt", a.port)]);
    assert_eq!(body, "second\n");

    // Two nodes replacing one name at once: each upload completes, and
    // what is there is one of them whole. (A name that appears during an
    // upload is not replaced: the access decision saw none there.)
    cli_ok(&["put", small_s.to_str().unwrap(), &at(&a, "/same.bin")]);
    let one = noise(17 * MIB, 11);
    let other = noise(17 * MIB, 12);
    let (one_s, other_s) = (local.path().join("one"), local.path().join("other"));
    fs::write(&one_s, &one).unwrap();
    fs::write(&other_s, &other).unwrap();
    let racers: Vec<_> = [(&one_s, &a), (&other_s, &b)]
        .into_iter()
        .map(|(file, n)| {
            let args = [
                "put".to_string(),
                "--force".to_string(),
                file.to_str().unwrap().to_string(),
                at(n, "/same.bin"),
            ];
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                run_cli(&args, &[])
            })
        })
        .collect();
    for r in racers {
        let (code, _, err) = r.join().unwrap();
        assert_eq!(code, 0, "{err}");
    }
    let got = local.path().join("same.got");
    cli_ok(&["get", &at(&a, "/same.bin"), got.to_str().unwrap()]);
    let got = fs::read(&got).unwrap();
    assert!(got == one || got == other, "a torn object");

    // Nothing of the uploads' own state is left once they are done.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let own = store.keys(&bucket, "share/.ferry/uploads/");
        if own.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "left: {own:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn names_the_server_keeps_or_that_leave_the_share_are_refused() {
    let store = Seaweed::start();
    let bucket = store.bucket("names");
    let a = node(&store, &bucket, &["--hidden"]);
    let local = tempfile::tempdir().unwrap();
    let f = local.path().join("f");
    fs::write(&f, b"x").unwrap();
    for bad in ["/.ferry/uploads/x", "/.ferry", "/d/.ferry-folder"] {
        let (code, _, err) = run_cli(&["put", f.to_str().unwrap(), &at(&a, bad)], &[]);
        assert_ne!(code, 0, "{bad} was taken");
        assert!(!err.is_empty());
    }
    // Names S3 tools shy away from are kept as they are.
    for name in ["a b.txt", "naïve #1 %41?.txt", "[x]{y}~^.txt"] {
        let target = format!("/{name}");
        cli_ok(&["put", f.to_str().unwrap(), &at(&a, &target)]);
        let keys = store.keys(&bucket, "share/");
        let key = format!("share/{name}");
        let escaped = key.replace('&', "&amp;");
        assert!(keys.contains(&escaped), "{key} not in {keys:?}");
        let back = local.path().join("back");
        let _ = fs::remove_file(&back);
        cli_ok(&["get", &at(&a, &target), back.to_str().unwrap()]);
        assert_eq!(fs::read(&back).unwrap(), b"x");
    }
    // A folder of names that break naive tools, up through one node and
    // down through another, whole.
    let b = node(&store, &bucket, &["--hidden"]);
    let tree = local.path().join("tree");
    fs::create_dir(&tree).unwrap();
    common::hostile_tree(&tree);
    cli_ok(&["put", "-r", tree.to_str().unwrap(), &at(&a, "/up")]);
    let down = local.path().join("down");
    cli_ok(&["get", "-r", &at(&b, "/up"), down.to_str().unwrap()]);
    let files = |top: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut all = Vec::new();
        let mut stack = vec![top.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(top).unwrap().display().to_string();
                    all.push((rel, fs::read(&p).unwrap()));
                }
            }
        }
        all.sort();
        all
    };
    let sent = files(&tree);
    assert_eq!(sent.len(), 9);
    assert_eq!(files(&down), sent);
    // Going up is refused before the store is asked.
    let (code, _, _) = run_cli(&["get", &at(&a, "/../names/x"), "/dev/null"], &[]);
    assert_ne!(code, 0);
    let listing = cli_ok(&["ls", &at(&a, "/")]);
    assert!(!listing.contains(".ferry"), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_on_one_node_goes_on_from_another() {
    let store = Seaweed::start();
    let bucket = store.bucket("resume");
    let a = node(&store, &bucket, &[]);
    let b = node(&store, &bucket, &[]);
    let local = tempfile::tempdir().unwrap();
    let data = noise(40 * MIB + 7, 3);
    let src = local.path().join("big.bin");
    fs::write(&src, &data).unwrap();

    // Cut after 21 MiB on the way to A.
    let cut = ProxyPlan {
        cut_up_after: Some(21 * MIB as u64),
        cut_down_after: None,
        up_rate: None,
        down_rate: None,
    };
    let via = common::proxy(format!("127.0.0.1:{}", a.port).parse().unwrap(), cut).await;
    let err = common::put_to(&via.to_string(), &src, "big.bin").await;
    assert!(err.is_err(), "the cut upload succeeded");
    // Nothing is visible while the upload is unfinished.
    let (code, _) = curl(&[format!("http://127.0.0.1:{}/big.bin", b.port)]);
    assert_eq!(code, 404);
    // A writes down what it holds (the bytes past its last whole part
    // too) once it sees the connection gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !store
        .keys(&bucket, "share/.ferry/uploads/")
        .iter()
        .any(|k| k.ends_with(".tail"))
    {
        assert!(std::time::Instant::now() < deadline, "A kept nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // B takes it up from where A left it, and the result is verified.
    let done = common::put_to(&format!("127.0.0.1:{}", b.port), &src, "big.bin")
        .await
        .unwrap();
    // Two whole parts and what came after them, up to where the cut was.
    let resumed = done.resumed_from;
    assert!(
        resumed > 16 * MIB as u64 && resumed <= 21 * MIB as u64,
        "B went on from byte {resumed}, not from what A held"
    );
    let got = local.path().join("got.bin");
    let mut c = Client::connect(&format!("127.0.0.1:{}", a.port), None)
        .await
        .unwrap();
    c.get_file(
        "big.bin",
        &got,
        TransferOpts::default(),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert!(fs::read(&got).unwrap() == data, "the bytes differ");
    // Its SHA-256 went on from A's parts too.
    let kept = store.kept_sha256(&bucket, "share/big.bin");
    assert_eq!(kept, Some(common::sha256_file(&got)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_goes_away_gives_clear_errors_and_nothing_torn() {
    let mut store = Seaweed::start();
    let bucket = store.bucket("faults");
    let a = node(&store, &bucket, &[]);
    let local = tempfile::tempdir().unwrap();
    let data = noise(30 * MIB, 5);
    let src = local.path().join("up.bin");
    fs::write(&src, &data).unwrap();
    // Large enough that what the sockets and buffers on the way hold
    // cannot carry the download to its end once the store is gone.
    let served = noise(64 * MIB, 6);
    let served_src = local.path().join("down.bin");
    fs::write(&served_src, &served).unwrap();
    cli_ok(&["put", served_src.to_str().unwrap(), &at(&a, "/down.bin")]);

    // An upload, slowed so that the store dies in its middle.
    let a_addr = format!("127.0.0.1:{}", a.port).parse().unwrap();
    let upload = common::slow_put(a_addr, 10 * MIB as u64, &src, "up.bin").await;
    // And a download, slowed the same way.
    let got = local.path().join("got.bin");
    let mut download = std::process::Command::new("curl")
        .args(["-s", "--limit-rate", "8M", "-o"])
        .arg(&got)
        .arg(format!("http://127.0.0.1:{}/down.bin", a.port))
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.kill();

    let err = upload
        .await
        .unwrap()
        .expect_err("the upload outlived its store");
    let text = err.to_string();
    assert!(
        text.contains("store") || text.contains("unavailable"),
        "{text}"
    );
    let status = download.wait().unwrap();
    assert!(!status.success(), "the download outlived its store");
    assert!(fs::metadata(&got).map_or(0, |m| m.len()) < served.len() as u64);

    // The node says the store is away, and serves what needs no store.
    let (code, _, err) = run_cli(&["ls", &at(&a, "/")], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("unavailable"), "{err}");
    let (code, _) = curl(&[format!("http://127.0.0.1:{}/down.bin", a.port)]);
    assert_eq!(code, 503);
    // Listings that stream say so before a byte of the listing.
    for listing in ["/?json", "/"] {
        let (code, _) = curl(&[format!("http://127.0.0.1:{}{listing}", a.port)]);
        assert_eq!(code, 503, "{listing}");
    }
    // A PROPFIND's answer starts before its listing: it is cut short,
    // never sent whole-looking with the folder's entries left out.
    let propfind = std::process::Command::new("curl")
        .args(["-s", "-X", "PROPFIND", "-H", "Depth: 1"])
        .arg(format!("http://127.0.0.1:{}/", a.port))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&propfind.stdout);
    assert!(!propfind.status.success(), "{text}");
    assert!(!text.contains("</D:multistatus>"), "{text}");
    let addr = format!("127.0.0.1:{}", a.port);
    let (code, out, err) = run_cli(&["time", &addr], &[]);
    assert_eq!(code, 0, "time: {out}{err}");
    let (code, _, err) = run_cli(&["ping", "-c", "1", &addr], &[]);
    assert_eq!(code, 0, "ping: {err}");

    // Back again: nothing half-written is there, and the same commands
    // finish.
    store.restart();
    let (code, _) = curl(&[format!("http://127.0.0.1:{}/up.bin", a.port)]);
    assert_eq!(code, 404, "a torn upload became visible");
    common::put_to(&addr, &src, "up.bin").await.unwrap();
    let back = local.path().join("back.bin");
    cli_ok(&["get", &at(&a, "/up.bin"), back.to_str().unwrap()]);
    assert!(
        fs::read(&back).unwrap() == data,
        "the upload's bytes differ"
    );
    let (code, _) = curl(&[
        "-C".to_string(),
        "-".to_string(),
        "-o".to_string(),
        got.to_str().unwrap().to_string(),
        format!("http://127.0.0.1:{}/down.bin", a.port),
    ]);
    assert!(code == 206 || code == 200, "{code}");
    assert!(
        fs::read(&got).unwrap() == served,
        "the download's bytes differ"
    );
}
