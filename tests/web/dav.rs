//! WebDAV on the web door: what desktop clients send, and what a hostile
//! one does.

use super::*;

fn propfind(
    c: &reqwest::Client,
    s: &TestServer,
    path: &str,
    depth: &str,
) -> reqwest::RequestBuilder {
    c.request(method("PROPFIND"), url(s, path))
        .header("Depth", depth)
}

#[tokio::test]
async fn listings_properties_quota_and_desktop_probes() {
    let s = TestServer::start(|_| {}).await;
    std::fs::write(s.path("a.txt"), "hello").unwrap();
    std::fs::create_dir(s.path("dir")).unwrap();
    std::fs::write(s.path(".secret"), "hidden").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", s.path("out")).unwrap();
    let c = http();

    let r = c
        .request(Method::OPTIONS, url(&s, "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["dav"], "1, 2");

    let r = propfind(&c, &s, "/", "1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MULTI_STATUS);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<D:href>/a.txt</D:href>") && body.contains("/dir/"),
        "{body}"
    );
    assert!(body.contains("getcontentlength>5<"), "{body}");
    // Hidden names and links that lead out are not offered.
    assert!(!body.contains("secret") && !body.contains("/out"), "{body}");
    // The entity tag is the one GET gives (unquoted, as dav-server
    // writes it).
    let etag = c.get(url(&s, "/a.txt")).send().await.unwrap().headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_string();
    let bare = etag.trim_matches('"');
    assert!(body.contains(&format!("getetag>{bare}<")), "{etag} {body}");

    // Quota (RFC 4331) from the filesystem.
    let q = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>"#;
    let r = propfind(&c, &s, "/", "0").body(q).send().await.unwrap();
    let body = r.text().await.unwrap();
    let avail: u64 = between(&body, "quota-available-bytes>", "<")
        .parse()
        .unwrap();
    assert!(avail > 0, "{body}");

    // Finder's and Windows' probes find nothing, quickly and plainly.
    for probe in [
        "/._a.txt",
        "/.DS_Store",
        "/desktop.ini",
        "/Thumbs.db",
        "/dir/Desktop.ini",
    ] {
        let r = propfind(&c, &s, probe, "0").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{probe}");
    }
    // Unbounded depth is refused with the standard precondition.
    let r = propfind(&c, &s, "/", "infinity").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("propfind-finite-depth"));
    // ... whatever header claims to be a test suite.
    let r = propfind(&c, &s, "/", "infinity")
        .header("X-Litmus", "props: 1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Dead properties are kept, and Windows' Win32 ones accepted.
    let set = r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:" xmlns:x="http://example.com/x"><D:set><D:prop><x:colour>blue</x:colour><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>"#;
    let r = c
        .request(method("PROPPATCH"), url(&s, "/a.txt"))
        .body(set)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MULTI_STATUS);
    let body = r.text().await.unwrap();
    assert!(!body.contains("403") && !body.contains("409"), "{body}");
    let get = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><x:colour xmlns:x="http://example.com/x"/></D:prop></D:propfind>"#;
    let r = propfind(&c, &s, "/a.txt", "0")
        .body(get)
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("blue"));
    // They follow the file when it moves.
    let r = c
        .request(method("MOVE"), url(&s, "/a.txt"))
        .header("Destination", "/dir/b.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = propfind(&c, &s, "/dir/b.txt", "0")
        .body(get)
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("blue"));
    s.stop().await;
}

fn between<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
    let start = text.find(from).map(|i| i + from.len()).unwrap_or(0);
    let rest = &text[start..];
    &rest[..rest.find(to).unwrap_or(0)]
}

#[tokio::test]
async fn finder_chunked_put_and_mtimes() {
    let s = TestServer::start(|_| {}).await;
    // Finder sends the length in X-Expected-Entity-Length and the body
    // chunked.
    let req = b"PUT /finder.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nX-Expected-Entity-Length: 11\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let ans = raw(&s, req).await;
    assert_eq!(status_of(&ans), 201, "{ans}");
    assert_eq!(
        std::fs::read_to_string(s.path("finder.txt")).unwrap(),
        "hello world"
    );
    // A chunked body shorter than it said it would be keeps nothing.
    let req = b"PUT /short.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nX-Expected-Entity-Length: 100\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let ans = raw(&s, req).await;
    assert_eq!(status_of(&ans), 400, "{ans}");
    assert!(!s.path("short.txt").exists());
    // A chunked body cut off keeps nothing either.
    let req = b"PUT /cut.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    let mut conn = s.raw(req).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.shutdown().await.unwrap();
    drop(conn);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!s.path("cut.txt").exists());
    assert!(common::partial_files(s.root.path()).is_empty());

    // ownCloud's and rclone's X-OC-Mtime sets the mtime.
    let r = http()
        .put(url(&s, "/dated.txt"))
        .header("X-OC-Mtime", "1600000000")
        .body("old")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["x-oc-mtime"], "accepted");
    let m = std::fs::metadata(s.path("dated.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        m.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        1_600_000_000
    );
    let r = http()
        .put(url(&s, "/dated.txt"))
        .header("X-OC-Mtime", "soon")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    s.stop().await;
}

#[tokio::test]
async fn locks_are_honoured_and_run_out() {
    let s = TestServer::start(|_| {}).await;
    std::fs::write(s.path("doc.txt"), "v1").unwrap();
    let c = http();
    let lock = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>test</D:owner></D:lockinfo>"#;
    let r = c
        .request(method("LOCK"), url(&s, "/doc.txt"))
        .header("Timeout", "Second-2")
        .body(lock)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.headers()["lock-token"]
        .to_str()
        .unwrap()
        .trim_matches(['<', '>'])
        .to_string();
    assert!(
        token.starts_with("urn:uuid:") || token.starts_with("opaquelocktoken:"),
        "{token}"
    );
    // Without the token: locked.
    let r = c.put(url(&s, "/doc.txt")).body("v2").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::LOCKED);
    let r = c.delete(url(&s, "/doc.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::LOCKED);
    // With it: allowed.
    let r = c
        .put(url(&s, "/doc.txt"))
        .header("If", format!("(<{token}>)"))
        .body("v2")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(std::fs::read_to_string(s.path("doc.txt")).unwrap(), "v2");
    // A lock asked for forever gets a bounded time.
    let r = c
        .request(method("LOCK"), url(&s, "/other.txt"))
        .header("Timeout", "Infinite")
        .body(lock)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let body = r.text().await.unwrap();
    let secs: u64 = between(&body, "<D:timeout>Second-", "<").parse().unwrap();
    assert!((1..=3600).contains(&secs), "{body}");
    // A LOCK of an unmapped URL made it, empty and locked (RFC 4918 7.3).
    assert_eq!(std::fs::read(s.path("other.txt")).unwrap(), b"");
    let r = c.put(url(&s, "/other.txt")).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::LOCKED);
    assert!(common::partial_files(s.root.path()).is_empty());
    // A link out of the served folder, or to nowhere, is not unmapped: a
    // LOCK of it is refused, and the link stays as it was.
    std::os::unix::fs::symlink("/etc/hostname", s.path("out")).unwrap();
    std::os::unix::fs::symlink("nowhere", s.path("dangling")).unwrap();
    for link in ["out", "dangling"] {
        let r = c
            .request(method("LOCK"), url(&s, &format!("/{link}")))
            .body(lock)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{link}");
        let meta = std::fs::symlink_metadata(s.path(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} was replaced");
    }
    // Once its time has passed, the lock is gone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = c.put(url(&s, "/doc.txt")).body("v3").send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    s.stop().await;
}

#[tokio::test]
async fn hostile_requests_are_refused_plainly() {
    let s = TestServer::start(|_| {}).await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    let c = http();
    // Entities and deep nesting never reach the XML parser.
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><D:propfind xmlns:D="DAV:"><D:prop>&b;</D:prop></D:propfind>"#;
    let r = propfind(&c, &s, "/", "0").body(bomb).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let deep = format!(
        "{}{}",
        "<D:x xmlns:D=\"DAV:\">".repeat(5000),
        "</D:x>".repeat(5000)
    );
    let r = propfind(&c, &s, "/", "0").body(deep).send().await.unwrap();
    assert!(matches!(r.status().as_u16(), 400 | 413), "{}", r.status());
    let big = format!(
        "<D:propfind xmlns:D=\"DAV:\"><!--{}--></D:propfind>",
        "x".repeat(70_000)
    );
    let r = propfind(&c, &s, "/", "0").body(big).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = propfind(&c, &s, "/", "0")
        .body("<not xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Destinations: hostile names, another host, none at all.
    for (dest, want) in [
        ("/../escape.txt", 400),
        ("/%2e%2e/escape.txt", 400),
        ("/x/..%2f..%2fescape", 400),
        ("/.b.txt.ferry-part", 400),
        ("http://elsewhere.example/b.txt", 502),
    ] {
        for m in ["MOVE", "COPY"] {
            let r = c
                .request(method(m), url(&s, "/a.txt"))
                .header("Destination", dest)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), want, "{m} {dest}");
        }
    }
    let r = c
        .request(method("COPY"), url(&s, "/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(s.path("a.txt").is_file());
    // A hidden name cannot be made, copied to or locked into being.
    let r = c
        .request(method("COPY"), url(&s, "/a.txt"))
        .header("Destination", "/.hidden")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(!s.path(".hidden").exists());
    // Another site's page cannot make changes.
    let r = c
        .request(method("PROPPATCH"), url(&s, "/a.txt"))
        .header("Origin", "http://evil.example")
        .body("<x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // COPY of a folder copies what is in it, through the upload.
    std::fs::create_dir_all(s.path("tree/sub")).unwrap();
    std::fs::write(s.path("tree/sub/f.txt"), "deep").unwrap();
    let r = c
        .request(method("COPY"), url(&s, "/tree/"))
        .header("Destination", "/copy/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        std::fs::read_to_string(s.path("copy/sub/f.txt")).unwrap(),
        "deep"
    );
    assert!(common::partial_files(s.root.path()).is_empty());
    s.stop().await;
}

#[tokio::test]
async fn anonymous_reads_and_is_asked_for_the_token_on_a_write() {
    let s = TestServer::start(|cfg| {
        cfg.token = Some(ferry::secret::Secret::new("dav-token-0123456789"));
        cfg.anonymous = ferry::access::Rights {
            read: true,
            ..Default::default()
        };
    })
    .await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    let c = http();
    // The mount lists without asking.
    let r = propfind(&c, &s, "/", "1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MULTI_STATUS);
    // A write asks, with a challenge a desktop client answers.
    for m in [
        "PUT",
        "MKCOL",
        "DELETE",
        "PROPPATCH",
        "LOCK",
        "COPY",
        "MOVE",
    ] {
        let r = c
            .request(method(m), url(&s, "/a.txt"))
            .header("Destination", "/b.txt")
            .send()
            .await
            .unwrap();
        assert!(challenged(&r), "{m}: {}", r.status());
    }
    // Basic with any user and the token as the password writes.
    let r = c
        .put(url(&s, "/b.txt"))
        .basic_auth("me", Some("dav-token-0123456789"))
        .body("b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    s.stop().await;
}

#[tokio::test]
async fn a_put_over_the_upload_limit_keeps_nothing() {
    let s = TestServer::start(|cfg| cfg.max_upload = Some(1000)).await;
    let c = http();
    let r = c
        .put(url(&s, "/big.bin"))
        .body(vec![1u8; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().await.unwrap().contains("1000"));
    // Chunked, so the size is only known as it comes.
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(vec![2u8; 500])),
    ));
    let r = c.put(url(&s, "/big.bin")).body(body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!s.path("big.bin").exists());
    assert!(common::partial_files(s.root.path()).is_empty());
    s.stop().await;
}

#[tokio::test]
async fn links_loops_ancestors_and_malformed_headers_cost_nothing() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    // A folder DELETE removes a link inside it, never what it leads to.
    std::fs::create_dir_all(s.path("keep/deep")).unwrap();
    std::fs::write(s.path("keep/p.txt"), "precious").unwrap();
    std::fs::create_dir(s.path("dd")).unwrap();
    std::os::unix::fs::symlink("../keep", s.path("dd/tokeep")).unwrap();
    let r = c.delete(url(&s, "/dd/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!s.path("dd").exists());
    assert_eq!(
        std::fs::read_to_string(s.path("keep/p.txt")).unwrap(),
        "precious"
    );
    // A COPY never walks round a loop of links.
    std::fs::create_dir_all(s.path("il/real")).unwrap();
    std::fs::write(s.path("il/real/f"), "f").unwrap();
    std::os::unix::fs::symlink(".", s.path("il/loop")).unwrap();
    std::os::unix::fs::symlink("../il", s.path("il/up")).unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        c.request(method("COPY"), url(&s, "/il/"))
            .header("Destination", "/ilcopy/")
            .send(),
    )
    .await
    .expect("a COPY through a loop must end")
    .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        std::fs::read_to_string(s.path("ilcopy/real/f")).unwrap(),
        "f"
    );
    assert!(!s.path("ilcopy/loop").exists());
    // Onto a folder that holds the source, or into the source itself:
    // refused, and nothing is lost.
    std::fs::create_dir_all(s.path("a/b")).unwrap();
    std::fs::write(s.path("a/b/f"), "k").unwrap();
    for (m, from, to) in [
        ("COPY", "/a/b/", "/a/"),
        ("MOVE", "/a/b/", "/a/"),
        ("COPY", "/a/b/f", "/a/"),
        ("COPY", "/a/", "/a/b/c/"),
        ("MOVE", "/a/", "/a/b/c/"),
    ] {
        let r = c
            .request(method(m), url(&s, from))
            .header("Destination", to)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{m} {from} {to}");
        assert!(r.text().await.unwrap().contains("itself"));
        assert_eq!(std::fs::read_to_string(s.path("a/b/f")).unwrap(), "k");
    }
    // A date before 1970 is refused, and a file dated so is still listed.
    let r = c
        .put(url(&s, "/old.txt"))
        .header("X-OC-Mtime", "-1")
        .body("b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    std::fs::write(s.path("old.txt"), "old").unwrap();
    std::fs::File::options()
        .write(true)
        .open(s.path("old.txt"))
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH - Duration::from_secs(86_400))
        .unwrap();
    let r = propfind(&c, &s, "/", "1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MULTI_STATUS);
    assert!(r.text().await.unwrap().contains("/old.txt"));
    // Headers that do not parse are 400, with the reason.
    for (name, value) in [
        ("If", "<"),
        ("If", "([\"x"),
        ("If", "(Not Not <urn:x>)"),
        ("Depth", "2"),
    ] {
        let r = c
            .request(method("PROPPATCH"), url(&s, "/old.txt"))
            .header(name, value)
            .body("<x/>")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name}: {value}");
        assert!(!r.text().await.unwrap().is_empty());
    }
    // A property asked for twice is refused: it would be answered twice
    // for every entry.
    let twice = r#"<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/><D:lockdiscovery/></D:prop></D:propfind>"#;
    let r = propfind(&c, &s, "/", "1").body(twice).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Without Depth, a PROPFIND answers for the folder and what it holds.
    let r = c
        .request(method("PROPFIND"), url(&s, "/a/"))
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<D:href>/a/</D:href>") && body.contains("/a/b/"),
        "{body}"
    );
    // Destinations: relative is malformed; another of the server's names
    // on the same port is this server.
    let r = c
        .request(method("COPY"), url(&s, "/old.txt"))
        .header("Destination", "pwn.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .request(method("COPY"), url(&s, "/old.txt"))
        .header(
            "Destination",
            format!("http://localhost:{}/new.txt", s.addr.port()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Shared locks stack on one resource, but not without end.
    let lock = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let mut refused = 0;
    for _ in 0..12 {
        let r = c
            .request(method("LOCK"), url(&s, "/new.txt"))
            .body(lock)
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::LOCKED {
            refused += 1;
        }
    }
    assert_eq!(refused, 4);
    assert_eq!(
        c.get(url(&s, "/new.txt")).send().await.unwrap().status(),
        StatusCode::OK
    );
    s.stop().await;
}

/// A drop box (upload without replace) takes no locks: a lock would hold
/// off every other client's uploads, and the file it made could never be
/// filled by its maker.
#[tokio::test]
async fn a_drop_box_takes_no_locks() {
    let s = TestServer::start(|cfg| {
        cfg.granted.delete = false;
        cfg.anonymous.delete = false;
    })
    .await;
    std::fs::write(s.path("there.txt"), "x").unwrap();
    let c = http();
    let lock = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    for at in ["/", "/there.txt", "/new.docx"] {
        let r = c
            .request(method("LOCK"), url(&s, at))
            .header("Depth", "infinity")
            .body(lock)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{at}");
    }
    assert!(!s.path("new.docx").exists());
    let r = c.put(url(&s, "/other.txt")).body("o").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    s.stop().await;
}
