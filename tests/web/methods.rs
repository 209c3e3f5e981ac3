//! Every method on a path, with its status codes, and traversal attempts.

use super::*;

#[tokio::test]
async fn every_method_with_its_status_codes() {
    let s = TestServer::start(|_| {}).await;
    std::fs::write(s.path("a.txt"), "hello world").unwrap();
    std::fs::create_dir(s.path("dir")).unwrap();
    let c = http();

    let r = c.get(url(&s, "/a.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert!(r.headers().contains_key(header::ETAG));
    assert!(r.headers().contains_key(header::LAST_MODIFIED));
    assert_eq!(r.headers()[header::ACCEPT_RANGES], "bytes");
    assert_eq!(r.text().await.unwrap(), "hello world");

    let r = c.head(url(&s, "/a.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_LENGTH], "11");
    assert!(r.bytes().await.unwrap().is_empty());

    assert_eq!(
        c.get(url(&s, "/missing")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // PUT: created, replaced, parent missing, precondition.
    let r = c
        .put(url(&s, "/new.bin"))
        .body(vec![7u8; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()[header::LOCATION], "/new.bin");
    assert_eq!(std::fs::read(s.path("new.bin")).unwrap(), vec![7u8; 5000]);
    let r = c
        .put(url(&s, "/new.bin"))
        .body("short")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(std::fs::read_to_string(s.path("new.bin")).unwrap(), "short");
    let r = c.put(url(&s, "/nope/x")).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = c
        .put(url(&s, "/new.bin"))
        .header(header::IF_NONE_MATCH, "*")
        .body("again")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(std::fs::read_to_string(s.path("new.bin")).unwrap(), "short");
    let r = c.put(url(&s, "/dir")).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(common::partial_files(s.root.path()).is_empty());
    // A partial PUT, a folder's name and the asterisk are refused; the
    // file stays whole.
    let r = c
        .put(url(&s, "/new.bin"))
        .header("content-range", "bytes 0-3/9")
        .body("EVIL")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c.put(url(&s, "/new.bin/")).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(std::fs::read_to_string(s.path("new.bin")).unwrap(), "short");
    let star = raw(
        &s,
        b"PUT * HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
    )
    .await;
    assert_eq!(status_of(&star), 400, "{star}");
    assert!(!s.path("*").exists());

    // MKCOL.
    let r = c
        .request(method("MKCOL"), url(&s, "/made"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(s.path("made").is_dir());
    let r = c
        .request(method("MKCOL"), url(&s, "/made"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = c
        .request(method("MKCOL"), url(&s, "/no/such"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // MOVE: created, refused without Overwrite, replaced with it.
    let r = c
        .request(method("MOVE"), url(&s, "/new.bin"))
        .header("Destination", format!("http://{}/made/moved.bin", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(s.path("made/moved.bin").is_file() && !s.path("new.bin").exists());
    std::fs::write(s.path("other.txt"), "other").unwrap();
    let r = c
        .request(method("MOVE"), url(&s, "/other.txt"))
        .header("Destination", "/made/moved.bin")
        .header("Overwrite", "F")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = c
        .request(method("MOVE"), url(&s, "/other.txt"))
        .header("Destination", "/made/moved.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        std::fs::read_to_string(s.path("made/moved.bin")).unwrap(),
        "other"
    );
    let r = c
        .request(method("MOVE"), url(&s, "/a.txt"))
        .header("Destination", "http://elsewhere.example/a.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);

    // DELETE, a folder with what is in it too.
    let r = c.delete(url(&s, "/made")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!s.path("made").exists());
    let r = c.delete(url(&s, "/made")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // OPTIONS, and methods not served.
    let r = c
        .request(Method::OPTIONS, url(&s, "/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let allow = r.headers()[header::ALLOW].to_str().unwrap().to_string();
    for m in [
        "GET", "HEAD", "PUT", "DELETE", "MKCOL", "MOVE", "OPTIONS", "PROPFIND", "LOCK",
    ] {
        assert!(allow.contains(m), "{allow}");
    }
    for m in ["POST", "PATCH", "SEARCH"] {
        let r = c
            .request(method(m), url(&s, "/a.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert!(r.headers().contains_key(header::ALLOW));
    }
    // A name the rules refuse.
    let r = c.get(url(&s, "/.a.txt.ferry-part")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A symlink to itself leads nowhere: 404 saying so, and the server
    // goes on.
    std::os::unix::fs::symlink("loop", s.path("loop")).unwrap();
    let r = c.get(url(&s, "/loop")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("loop of links"));
    assert_eq!(
        c.get(url(&s, "/a.txt")).send().await.unwrap().status(),
        StatusCode::OK
    );
    // A FIFO is not a file to serve, and cannot hold a thread open.
    nix::unistd::mkfifo(
        &s.path("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), c.get(url(&s, "/pipe")).send())
        .await
        .expect("answered at once")
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    s.stop().await;
}

#[tokio::test]
async fn traversal_attempts_reach_nothing_outside_the_root() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(outer.path().join("secret.txt"), "TOP-SECRET").unwrap();
    let root_dir = tempfile::TempDir::new_in(&root).unwrap();
    std::fs::write(root_dir.path().join("ok.txt"), "fine").unwrap();
    let s = TestServer::start_in(root_dir, |_| {}).await;
    let attempts = [
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/%252e%252e/secret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "//../secret.txt",
        "/./../secret.txt",
        "/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/ok.txt/../../secret.txt",
        "/%c0%ae%c0%ae/secret.txt",
    ];
    for a in attempts {
        for m in ["GET", "PUT", "DELETE", "MKCOL"] {
            let req = format!(
                "{m} {a} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nConnection: close\r\n\r\nEVIL"
            );
            let ans = raw(&s, req.as_bytes()).await;
            assert!(!ans.contains("TOP-SECRET"), "{m} {a}: {ans}");
            let st = status_of(&ans);
            assert!(
                [400, 404, 405, 409, 415].contains(&st),
                "{m} {a} answered {st}: {ans}"
            );
        }
    }
    // An encoded slash is no separator: the path is refused, not read as
    // /pub/a.txt.
    std::fs::create_dir(s.path("pub")).unwrap();
    std::fs::write(s.path("pub/a.txt"), "a").unwrap();
    for a in ["/pub%2fa.txt", "/pub%2Fa.txt"] {
        let req = format!("GET {a} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let ans = raw(&s, req.as_bytes()).await;
        assert_eq!(status_of(&ans), 400, "{a}: {ans}");
    }
    // A folder redirect never points at another host.
    std::fs::create_dir(s.path("d")).unwrap();
    let ans = raw(
        &s,
        b"GET /d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ans), 301);
    assert!(
        ans.to_ascii_lowercase().contains("location: /d/\r\n"),
        "{ans}"
    );
    // Nothing was written or removed outside the root.
    let mut outside: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outside.sort();
    assert_eq!(outside, ["root", "secret.txt"]);
    assert_eq!(
        std::fs::read_to_string(outer.path().join("secret.txt")).unwrap(),
        "TOP-SECRET"
    );
    s.stop().await;
}

#[tokio::test]
async fn rights_the_server_does_not_grant_are_403() {
    let s = TestServer::start(|cfg| {
        cfg.granted.upload = false;
        cfg.granted.delete = false;
        cfg.anonymous = cfg.granted;
    })
    .await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    let c = http();
    for (m, p) in [
        ("PUT", "/b.txt"),
        ("DELETE", "/a.txt"),
        ("MKCOL", "/d"),
        ("MOVE", "/a.txt"),
    ] {
        let r = c
            .request(method(m), url(&s, p))
            .header("Destination", "/z.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{m}");
    }
    assert!(s.path("a.txt").exists() && !s.path("b.txt").exists());
    s.stop().await;
}
