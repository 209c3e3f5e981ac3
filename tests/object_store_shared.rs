//! What servers of one bucket share (`--store s3://…`), against a real
//! SeaweedFS the tests start themselves: a tus upload and a login made
//! through one server hold on another, and uploads never taken up are
//! swept from the bucket.

mod common;

use std::fs;
use std::time::Duration;

use common::s3::{Seaweed, bare_node, curl_headers, header, node};
use common::{BinServer, curl, noise};

const MIB: usize = 1 << 20;

#[test]
fn a_tus_upload_and_a_login_made_on_one_node_hold_on_another() {
    let store = Seaweed::start();
    let bucket = store.bucket("across");
    let etc = tempfile::tempdir().unwrap();
    let config = etc.path().join("ferry.toml");
    fs::write(
        &config,
        format!(
            "[users.ann]\npassword_hash = \"{}\"\nrights = [\"/:delete\"]\n",
            common::passwd_hash("ann-password-1")
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let a = node(&store, &bucket, &["--config", cfg]);
    let b = node(&store, &bucket, &["--config", cfg]);
    let url = |n: &BinServer, p: &str| format!("http://127.0.0.1:{}{p}", n.port);

    // Logged in on A, the cookie works on B; logged out on B, on A too.
    let jar = etc.path().join("jar");
    let j = jar.to_str().unwrap();
    let login = [
        "-c",
        j,
        "-H",
        "X-Ferry: 1",
        "--data",
        "user=ann&password=ann-password-1",
    ];
    let (code, _, _) = curl_headers(&[&login[..], &[url(&a, "/.ferry/login").as_str()]].concat());
    assert_eq!(code, 204);
    let (code, _, body) = curl_headers(&["-b", j, &url(&b, "/.ferry/whoami")]);
    assert_eq!(code, 200);
    let who: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(who["user"], "ann", "{who}");
    let (code, _, _) = curl_headers(&[
        "-b",
        j,
        "-H",
        "X-Ferry: 1",
        "-X",
        "POST",
        &url(&b, "/.ferry/logout"),
    ]);
    assert_eq!(code, 204);
    // Taken at once by the node that ended it, within seconds by the other.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, _, body) = curl_headers(&["-b", j, &url(&a, "/.ferry/whoami")]);
        let who: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if who["user"] != "ann" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "A still takes the session"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A tus upload begun on A is finished on B.
    let data = noise(10 * MIB + 5, 8);
    let first = etc.path().join("first");
    let rest = etc.path().join("rest");
    let cut = 9 * MIB;
    fs::write(&first, &data[..cut]).unwrap();
    fs::write(&rest, &data[cut..]).unwrap();
    let basic = "ann:ann-password-1";
    // A tus creation through `n`: where the upload is.
    let create = |n: &BinServer, length: usize, path_b64: &str| {
        let (code, head, _) = curl_headers(&[
            "-u",
            basic,
            "-X",
            "POST",
            "-H",
            &format!("Upload-Length: {length}"),
            "-H",
            &format!("Upload-Metadata: path {path_b64}"),
            &url(n, "/.ferry/tus/"),
        ]);
        assert_eq!(code, 201, "{head}");
        header(&head, "location").unwrap().to_string()
    };
    let loc = create(&a, data.len(), "dC5iaW4=");
    let patch = |n: &BinServer, offset: usize, file: &std::path::Path| {
        curl_headers(&[
            "-u",
            basic,
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/offset+octet-stream",
            "-H",
            &format!("Upload-Offset: {offset}"),
            "--data-binary",
            &format!("@{}", file.display()),
            &url(n, &loc),
        ])
    };
    let (code, head, _) = patch(&a, 0, &first);
    assert_eq!(code, 204, "{head}");
    assert_eq!(
        header(&head, "upload-offset"),
        Some(cut.to_string().as_str())
    );
    let (code, head, _) = curl_headers(&["-u", basic, "-I", &url(&b, &loc)]);
    assert_eq!(code, 200, "{head}");
    assert_eq!(
        header(&head, "upload-offset"),
        Some(cut.to_string().as_str())
    );
    let (code, head, _) = patch(&b, cut, &rest);
    assert_eq!(code, 204, "{head}");
    let got = etc.path().join("got");
    let (code, _) = curl(&["-u", basic, "-o", got.to_str().unwrap(), &url(&a, "/t.bin")]);
    assert_eq!(code, 200);
    assert!(fs::read(&got).unwrap() == data, "the bytes differ");

    // The same target made again through B starts another upload: the id
    // A gave names none any more, on either node.
    let (old, new) = (
        create(&a, 10, "YWdhaW4uYmlu"),
        create(&b, 10, "YWdhaW4uYmlu"),
    );
    assert_ne!(old, new);
    for n in [&a, &b] {
        let (code, head, _) = curl_headers(&["-u", basic, "-I", &url(n, &old)]);
        assert_eq!(code, 404, "{head}");
        let (code, head, _) = curl_headers(&["-u", basic, "-I", &url(n, &new)]);
        assert_eq!(code, 200, "{head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_never_taken_up_are_aborted_by_the_sweep() {
    use ferry::files::Storage;
    use ferry::files::digest::Algo;
    use ferry::files::object::{ObjectStorage, StoreUrl};
    let store = Seaweed::start();
    let bucket = store.bucket("sweep");
    let url: StoreUrl = format!("s3://{bucket}/share").parse().unwrap();
    let endpoint = store.endpoint();
    let data = noise(9 * MIB, 13);
    tokio::task::spawn_blocking(move || {
        let secret = ferry::secret::Secret::new(common::s3::SECRET_KEY.to_string());
        let s = ObjectStorage::open_at(
            &url,
            Some(&endpoint),
            Some((common::s3::ACCESS_KEY, &secret)),
        )
        .unwrap();
        let rel = ferry::files::RelPath::parse("left.bin").unwrap();
        let mut begun = s.begin_write(&rel, false, true).unwrap();
        assert_eq!(begun.part.hash_existing(Algo::Blake3).unwrap(), None);
        begun.part.start(0, 20 * MIB as u64).unwrap();
        begun.part.write(&data).unwrap();
        begun.part.keep();
        assert!(s.partial_exists(&rel));
        assert_eq!(
            s.upload_progress(&rel, 20 * MIB as u64).unwrap(),
            Some(9 * MIB as u64)
        );
        // One that is young stays; past the age, it goes.
        assert_eq!(s.sweep_partials(Duration::from_secs(3600)), 0);
        assert!(s.partial_exists(&rel));
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(s.sweep_partials(Duration::from_secs(1)), 1);
        assert!(!s.partial_exists(&rel));
        assert_eq!(s.upload_progress(&rel, 20 * MIB as u64).unwrap(), None);
    })
    .await
    .unwrap();
    // Its multipart upload is aborted, and nothing of it is left.
    let (code, body) = store.signed(&[&format!("{}/{bucket}?uploads=", store.endpoint())]);
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("<UploadId>"), "{body}");
    assert!(
        store.keys(&bucket, "share/").is_empty(),
        "{:?}",
        store.keys(&bucket, "share/")
    );
}

#[test]
fn a_folder_larger_than_a_page_of_the_store_lists_whole_and_in_order() {
    let store = Seaweed::start();
    let bucket = store.bucket("paged");
    let a = node(&store, &bucket, &[]);
    let local = tempfile::tempdir().unwrap();
    let many = local.path().join("many");
    fs::create_dir(&many).unwrap();
    // 1,050 files and 14 folders, names interleaved, across two pages of
    // the store.
    let mut want = Vec::new();
    for i in 0..1050 {
        let name = format!("f{i:05}.txt");
        fs::write(many.join(&name), i.to_string()).unwrap();
        want.push(name);
    }
    for i in (0..1050).step_by(77) {
        let name = format!("f{i:05}.d");
        fs::create_dir(many.join(&name)).unwrap();
        fs::write(many.join(&name).join("x"), b"x").unwrap();
        want.push(format!("{name}/"));
    }
    want.sort();
    let (code, _, err) = common::run_cli(
        &[
            "put",
            "-r",
            many.to_str().unwrap(),
            &common::s3::at(&a, "/"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = common::run_cli(&["ls", &common::s3::at(&a, "/many")], &[]);
    assert_eq!(code, 0, "{err}");
    let got: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    assert_eq!(got.len(), want.len(), "{} entries listed", got.len());
    assert!(got == want, "the listing is not whole and in order");

    // The web door's JSON listing and WebDAV's PROPFIND, sent as the
    // store pages them: whole and in order too.
    // Compressed, as browsers ask (the compressing layer reads on past
    // the end of what it compresses).
    let (code, body) = curl(&[
        "--compressed".to_string(),
        format!("http://127.0.0.1:{}/many/?json", a.port),
    ]);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("whole JSON");
    let got: Vec<String> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let slash = if e["kind"] == "dir" { "/" } else { "" };
            format!("{}{slash}", e["name"].as_str().unwrap())
        })
        .collect();
    assert!(
        got == want,
        "?json: {} entries, not whole and in order",
        got.len()
    );
    let (code, body) = curl(&[
        "-X".to_string(),
        "PROPFIND".into(),
        "-H".into(),
        "Depth: 1".into(),
        format!("http://127.0.0.1:{}/many/", a.port),
    ]);
    assert_eq!(code, 207);
    let got: Vec<String> = body
        .split("<D:href>/many/")
        .skip(2)
        .filter_map(|h| h.split_once("</D:href>").map(|(n, _)| n.to_string()))
        .collect();
    assert!(
        got == want,
        "PROPFIND: {} entries, not whole and in order",
        got.len()
    );
    // The page too: every entry a link, in order, and the page whole.
    let (code, page) = curl(&[
        "--compressed".to_string(),
        format!("http://127.0.0.1:{}/many/", a.port),
    ]);
    assert_eq!(code, 200);
    assert!(
        page.trim_end().ends_with("</html>"),
        "the page is cut short"
    );
    let got: Vec<String> = page
        .split("<a href=\"/many/")
        .skip(1)
        .filter_map(|h| h.split_once('"').map(|(n, _)| n.to_string()))
        // The folder's own link, among the crumbs.
        .filter(|n| !n.is_empty())
        .collect();
    assert!(
        got == want,
        "page: {} entries, not whole and in order",
        got.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_server_is_killed_goes_on_from_another_once_its_lease_ends() {
    let store = Seaweed::start();
    let bucket = store.bucket("killed");
    let mut a = node(&store, &bucket, &[]);
    let b = node(&store, &bucket, &[]);
    let local = tempfile::tempdir().unwrap();
    let data = noise(40 * MIB, 21);
    let src = local.path().join("big.bin");
    fs::write(&src, &data).unwrap();
    let a_addr = format!("127.0.0.1:{}", a.port).parse().unwrap();
    let upload = common::slow_put(a_addr, 8 * MIB as u64, &src, "big.bin").await;
    // Two parts written down, then A is killed outright.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listed = store.keys(&bucket, "share/.ferry/uploads/");
        if let Some(json) = listed.iter().find(|k| k.ends_with(".json")) {
            let (_, record) = store.signed(&[&format!("{}/{bucket}/{json}", store.endpoint())]);
            let record: serde_json::Value = serde_json::from_str(&record).unwrap_or_default();
            if record["parts"].as_array().is_some_and(|p| p.len() >= 2) {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "A wrote down no parts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    assert!(upload.await.unwrap().is_err());

    // B refuses to take over a running upload until A's lease ends, then
    // goes on from A's whole parts, and the file is verified.
    let started = std::time::Instant::now();
    let mut busy = 0;
    let done = loop {
        match common::put_to(&format!("127.0.0.1:{}", b.port), &src, "big.bin").await {
            Ok(done) => break done,
            Err(e)
                if e.to_string().contains("busy") || e.to_string().contains("another server") =>
            {
                busy += 1;
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "never taken over"
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(busy > 0, "B took over an upload A had just written to");
    assert!(
        done.resumed_from >= 16 * MIB as u64,
        "went on from byte {}",
        done.resumed_from
    );
    let got = local.path().join("got");
    let (code, _) = curl(&[
        "-o",
        got.to_str().unwrap(),
        &format!("http://127.0.0.1:{}/big.bin", b.port),
    ]);
    assert_eq!(code, 200);
    assert!(fs::read(&got).unwrap() == data, "the bytes differ");
}

/// Where the bucket keeps the unfinished upload of `key`.
fn state_key(key: &str) -> String {
    use sha2::Digest;
    let h = common::hex(&sha2::Sha256::digest(key.as_bytes()));
    format!("share/.ferry/uploads/{}.json", &h[..32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_upload_records_and_files_past_the_limit_are_refused_cleanly() {
    let store = Seaweed::start();
    let bucket = store.bucket("forged");
    let a = node(&store, &bucket, &[]);
    let addr = format!("127.0.0.1:{}", a.port);
    let local = tempfile::tempdir().unwrap();
    let data = noise(20 * MIB, 31);
    let src = local.path().join("f.bin");
    fs::write(&src, &data).unwrap();
    let put_raw = |key: &str, body: &str| store.put_object(&bucket, key, body);
    // What anyone with the bucket's keys, or a broken server, could leave
    // where an upload's state goes: impossible numbers, not JSON, and a
    // folder where the record would be.
    put_raw(
        &state_key("share/one.bin"),
        r#"{"key":"share/one.bin","id":"forged","part_len":8388608,"parts":["x"],"point":null,"algo":"blake3","tail":99999999}"#,
    );
    put_raw(&state_key("share/two.bin"), "not json at all");
    put_raw(&format!("{}/inside", state_key("share/three.bin")), "x");
    for name in ["one.bin", "two.bin", "three.bin"] {
        let done = common::put_to(&addr, &src, name).await.unwrap();
        assert_eq!(done.resumed_from, 0, "{name} went on from a forged record");
        let got = local.path().join(format!("{name}.got"));
        let (code, _) = curl(&[
            "-o",
            got.to_str().unwrap(),
            &format!("http://127.0.0.1:{}/{name}", a.port),
        ]);
        assert_eq!(code, 200);
        assert!(fs::read(&got).unwrap() == data, "{name}: the bytes differ");
    }

    // A file larger than the store keeps (9,000 parts of 64 MiB): refused
    // before a byte is taken, by the native door and by tus alike.
    let huge = local.path().join("huge.bin");
    fs::File::create(&huge).unwrap().set_len(600 << 30).unwrap();
    let err = common::put_to(&addr, &huge, "huge.bin").await.unwrap_err();
    assert!(err.to_string().contains("too_large"), "{err}");
    let (code, head, _) = curl_headers(&[
        "-X",
        "POST",
        "-H",
        &format!("Upload-Length: {}", 600u64 << 30),
        "-H",
        "Upload-Metadata: path aHVnZTIuYmlu",
        &format!("http://127.0.0.1:{}/.ferry/tus/", a.port),
    ]);
    assert_eq!(code, 413, "{head}");
    let (code, _) = curl(&[format!("http://127.0.0.1:{}/huge.bin", a.port)]);
    assert_eq!(code, 404);
}

#[test]
fn a_share_link_made_through_one_node_is_listed_and_revoked_through_another() {
    let store = Seaweed::start();
    let bucket = store.bucket("links");
    store.put_object(&bucket, "share/photos/a.jpg", "jpeg");
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    fs::write(
        &cfg,
        format!(
            "[users.alice]\npassword_hash = \"{}\"\nrights = [\"/photos:read\"]\n",
            common::passwd_hash("alice-password")
        ),
    )
    .unwrap();
    let args = ["--private", "--config", cfg.to_str().unwrap()];
    let a = bare_node(&store, &bucket, &args);
    let b = bare_node(&store, &bucket, &args);
    let alice = [
        ("FERRY_USER", "alice"),
        ("FERRY_PASSWORD", "alice-password"),
    ];
    let share = |n: &BinServer, more: &[&str]| -> String {
        let mut all = vec!["share".to_string(), format!("127.0.0.1:{}", n.port)];
        all.extend(more.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let (code, out, err) = common::run_cli(&all, &alice);
        assert_eq!(code, 0, "{err}");
        out
    };
    let (code, link, err) =
        common::run_cli(&["share", &format!("127.0.0.1:{}:/photos", a.port)], &alice);
    assert_eq!(code, 0, "{err}");
    let token = link.trim().rsplit('/').next().unwrap().to_string();
    use base64::Engine as _;
    let payload = token.split_once('.').unwrap().0;
    let grant: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let id = grant["id"].as_str().unwrap().to_string();
    // The link made on A opens the folder through B.
    let via_b = format!("http://127.0.0.1:{}/.ferry/share/{token}", b.port);
    let cookie = format!("Cookie: ferry_share={token}");
    let file_on = |n: &BinServer| format!("http://127.0.0.1:{}/photos/a.jpg", n.port);
    let jar = etc.path().join("jar");
    let j = jar.to_str().unwrap();
    let (code, body) = curl(&["-L", "-c", j, "-b", j, via_b.as_str()]);
    assert_eq!(code, 200);
    assert!(body.contains("a.jpg"), "{body}");
    assert_eq!(
        curl(&["-H", &cookie, &file_on(&b)]),
        (200, "jpeg".to_string())
    );
    // B lists it, and revokes it.
    assert!(share(&b, &["--list"]).contains(&id));
    assert!(share(&b, &["--revoke", &id]).contains("revoked"));
    // A refuses it within the time a server trusts what it last read.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while curl(&["-H", &cookie, &file_on(&a)]).0 == 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "a link revoked on B still works on A"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(curl(&["-H", &cookie, &file_on(&a)]).0, 401);
    assert!(share(&a, &["--list"]).contains("(revoked)"));

    // A revocation record that does not parse (anyone with the bucket's
    // keys could write one): links are refused, not let through, and the
    // record is left as it is.
    let (code, link, err) =
        common::run_cli(&["share", &format!("127.0.0.1:{}:/photos", a.port)], &alice);
    assert_eq!(code, 0, "{err}");
    let token = link.trim().rsplit('/').next().unwrap().to_string();
    let cookie = format!("Cookie: ferry_share={token}");
    assert_eq!(curl(&["-H", &cookie, &file_on(&b)]).0, 200);
    store.put_object(&bucket, "share/.ferry/share/revoked", "{not a list");
    std::thread::sleep(Duration::from_millis(5500));
    assert_eq!(curl(&["-H", &cookie, &file_on(&b)]).0, 401);
    let url = format!("{}/{bucket}/share/.ferry/share/revoked", store.endpoint());
    assert_eq!(store.signed(&[&url]).1, "{not a list");
}
