//! WebDAV on a bucket (`--store s3://…`), against a real SeaweedFS the
//! tests start themselves: litmus passes every suite there, and a lock
//! taken through one server holds on every other.

mod common;

use std::time::Duration;

use common::BinServer;
use common::s3::{Seaweed, curl_headers, header, node};

fn url(n: &BinServer, p: &str) -> String {
    format!("http://127.0.0.1:{}{p}", n.port)
}

const EXCLUSIVE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner><D:href>ann</D:href></D:owner></D:lockinfo>"#;

/// LOCK `p` on `n`: the status and the lock token (without its brackets).
fn lock(n: &BinServer, p: &str, depth: &str) -> (u16, Option<String>) {
    let (code, head, _) = curl_headers(&[
        "-X",
        "LOCK",
        "-H",
        "Content-Type: application/xml",
        "-H",
        "Timeout: Second-120",
        "-H",
        &format!("Depth: {depth}"),
        "--data-binary",
        EXCLUSIVE,
        &url(n, p),
    ]);
    let token = header(&head, "lock-token").map(|t| {
        t.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned()
    });
    (code, token)
}

/// PUT `body` at `p` on `n`, with `if_header` when given.
fn put(n: &BinServer, p: &str, body: &str, if_header: Option<&str>) -> u16 {
    let mut args = vec!["-X", "PUT", "--data-binary", body];
    let h;
    if let Some(v) = if_header {
        h = format!("If: {v}");
        args.extend(["-H", h.as_str()]);
    }
    let u = url(n, p);
    args.push(&u);
    curl_headers(&args).0
}

#[test]
fn litmus_passes_every_suite_on_a_bucket() {
    let store = Seaweed::start();
    let bucket = store.bucket("litmus");
    let n = node(&store, &bucket, &[]);
    common::dav::assert_every_suite_passed(&common::dav::litmus(&url(&n, "/")));
}

#[test]
fn a_lock_taken_through_one_server_holds_on_the_others() {
    let store = Seaweed::start();
    let bucket = store.bucket("davlocks");
    let a = node(&store, &bucket, &[]);
    let b = node(&store, &bucket, &[]);
    assert_eq!(put(&a, "/doc.txt", "one", None), 201);

    let (code, token) = lock(&a, "/doc.txt", "0");
    assert_eq!(code, 200);
    let token = token.expect("a Lock-Token");
    // Another server refuses a change without the token, and a second lock.
    assert_eq!(put(&b, "/doc.txt", "two", None), 423);
    assert_eq!(lock(&b, "/doc.txt", "0").0, 423);
    // It shows the lock, and takes the change with the token.
    let (code, _, body) = curl_headers(&[
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 0",
        "--data-binary",
        r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>"#,
        &url(&b, "/doc.txt"),
    ]);
    assert_eq!(code, 207);
    assert!(
        String::from_utf8_lossy(&body).contains(&token),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        put(&b, "/doc.txt", "two", Some(&format!("(<{token}>)"))),
        204
    );
    // Unlocked on B, A takes changes again.
    let (code, _, _) = curl_headers(&[
        "-X",
        "UNLOCK",
        "-H",
        &format!("Lock-Token: <{token}>"),
        &url(&b, "/doc.txt"),
    ]);
    assert_eq!(code, 204);
    assert_eq!(put(&a, "/doc.txt", "three", None), 204);

    // A deep lock on a folder through B holds off a write below it on A.
    let (code, _, _) = curl_headers(&["-X", "MKCOL", &url(&a, "/dir")]);
    assert_eq!(code, 201);
    let (code, token) = lock(&b, "/dir/", "infinity");
    assert_eq!(code, 200);
    assert_eq!(put(&a, "/dir/new.txt", "x", None), 423);
    let held = format!("(<{}>)", token.unwrap());
    assert_eq!(put(&a, "/dir/new.txt", "x", Some(&held)), 201);

    // Two servers locking one file at once: exactly one gets it.
    for round in 0..4 {
        let p = format!("/race-{round}.txt");
        assert_eq!(put(&a, &p, "r", None), 201);
        let (ra, rb) = std::thread::scope(|s| {
            let ta = s.spawn(|| lock(&a, &p, "0").0);
            let tb = s.spawn(|| lock(&b, &p, "0").0);
            (ta.join().unwrap(), tb.join().unwrap())
        });
        let mut got = [ra, rb];
        got.sort();
        assert_eq!(got, [200, 423], "round {round}");
    }
}

#[test]
fn a_lock_runs_out_on_every_server() {
    let store = Seaweed::start();
    let bucket = store.bucket("davexpire");
    let a = node(&store, &bucket, &[]);
    let b = node(&store, &bucket, &[]);
    assert_eq!(put(&a, "/f.txt", "one", None), 201);
    let (code, _, _) = curl_headers(&[
        "-X",
        "LOCK",
        "-H",
        "Timeout: Second-1",
        "--data-binary",
        EXCLUSIVE,
        &url(&a, "/f.txt"),
    ]);
    assert_eq!(code, 200);
    assert_eq!(put(&b, "/f.txt", "two", None), 423);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(put(&b, "/f.txt", "two", None), 204);

    // A lock table that does not parse holds every change off (it may
    // have held locks), and is left for an administrator as it is.
    store.put_object(&bucket, "share/.ferry/webdav/locks", "{not a table");
    assert_eq!(put(&a, "/f.txt", "three", None), 423);
    let url = format!("{}/{bucket}/share/.ferry/webdav/locks", store.endpoint());
    assert_eq!(store.signed(&[&url]).1, "{not a table");
}

fn set_colour(n: &BinServer, p: &str, value: &str) -> (u16, String) {
    common::dav::set_colour(&url(n, p), value)
}

fn colours(n: &BinServer, p: &str, depth: &str) -> String {
    common::dav::colours(&url(n, p), depth)
}

#[test]
fn dead_properties_set_through_one_server_are_read_moved_and_removed_through_the_others() {
    let store = Seaweed::start();
    let bucket = store.bucket("davprops");
    let a = node(&store, &bucket, &[]);
    let b = node(&store, &bucket, &[]);
    let (code, _, _) = curl_headers(&["-X", "MKCOL", &url(&a, "/dir")]);
    assert_eq!(code, 201);
    assert_eq!(put(&a, "/dir/doc.txt", "one", None), 201);
    assert_eq!(put(&a, "/dir/other.txt", "two", None), 201);
    let (code, body) = set_colour(&a, "/dir/doc.txt", "blue");
    assert_eq!(code, 207);
    assert!(body.contains("200 OK"), "{body}");
    assert_eq!(set_colour(&b, "/dir/other.txt", "red").0, 207);

    // Each server shows what was set through the other, in one listing too.
    assert!(colours(&b, "/dir/doc.txt", "0").contains(">blue</"));
    let listing = colours(&a, "/dir/", "1");
    assert!(listing.contains(">red</"), "{listing}");
    assert!(listing.contains(">blue</"), "{listing}");

    // A folder moved through B takes its files' properties, for A too.
    let (code, _, _) = curl_headers(&[
        "-X",
        "MOVE",
        "-H",
        &format!("Destination: {}", url(&b, "/moved")),
        &url(&b, "/dir"),
    ]);
    assert_eq!(code, 201);
    assert!(colours(&a, "/moved/doc.txt", "0").contains(">blue</"));
    // Removed through A, a new file of that name through B has none.
    let (code, _, _) = curl_headers(&["-X", "DELETE", &url(&a, "/moved/doc.txt")]);
    assert_eq!(code, 204);
    assert_eq!(put(&b, "/moved/doc.txt", "new", None), 201);
    let shown = colours(&b, "/moved/doc.txt", "0");
    assert!(!shown.contains("colour"), "{shown}");
    assert!(colours(&b, "/moved/other.txt", "0").contains(">red</"));
    // Moved and removed through the other's native door, they follow.
    common::dav::properties_follow_the_native_door(
        &format!("http://127.0.0.1:{}", a.port),
        &format!("127.0.0.1:{}", b.port),
    );
    common::dav::folder_copies_take_their_properties(&format!("http://127.0.0.1:{}", b.port));
}
