//! The web door, driven by a real HTTP client (reqwest) and by raw sockets
//! where a client would tidy the request up: every method and status,
//! ranges and their edges, conditional requests, traversal attempts,
//! compression, archives, auth and cross-site checks, slow clients.

mod common;

use std::time::Duration;

use common::TestServer;
use reqwest::{Method, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn url(s: &TestServer, path: &str) -> String {
    format!("http://{}{path}", s.addr)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

/// Sends `request` as is and reads the whole answer (the request should
/// say `Connection: close`).
async fn raw(s: &TestServer, request: &[u8]) -> String {
    let out = s.exchange(request, Duration::from_secs(10)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

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
    for m in ["GET", "HEAD", "PUT", "DELETE", "MKCOL", "MOVE", "OPTIONS"] {
        assert!(allow.contains(m), "{allow}");
    }
    for m in ["POST", "PROPFIND", "PATCH"] {
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
    // Storage that fails (a symlink to itself): 500 with the reason, and
    // the server goes on.
    std::os::unix::fs::symlink("loop", s.path("loop")).unwrap();
    let r = c.get(url(&s, "/loop")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.text().await.unwrap().contains("loop"));
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
async fn ranges_and_their_edges() {
    let s = TestServer::start(|_| {}).await;
    let data: Vec<u8> = (0..100u8).collect();
    std::fs::write(s.path("r.bin"), &data).unwrap();
    let c = http();
    let get = |range: &'static str| {
        let c = c.clone();
        let u = url(&s, "/r.bin");
        async move {
            let r = c.get(u).header(header::RANGE, range).send().await.unwrap();
            let st = r.status();
            let cr = r
                .headers()
                .get(header::CONTENT_RANGE)
                .map(|v| v.to_str().unwrap().to_string());
            (st, cr, r.bytes().await.unwrap().to_vec())
        }
    };
    let (st, cr, b) = get("bytes=0-0").await;
    assert_eq!(
        (st, cr.as_deref(), b.as_slice()),
        (
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 0-0/100"),
            &data[..1]
        )
    );
    let (st, cr, b) = get("bytes=-5").await;
    assert_eq!(
        (st, cr.as_deref(), b.as_slice()),
        (
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 95-99/100"),
            &data[95..]
        )
    );
    let (st, cr, b) = get("bytes=90-").await;
    assert_eq!(
        (st, cr.as_deref(), b.as_slice()),
        (
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 90-99/100"),
            &data[90..]
        )
    );
    let (st, cr, b) = get("bytes=98-1000").await;
    assert_eq!(
        (st, cr.as_deref(), b.as_slice()),
        (
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 98-99/100"),
            &data[98..]
        )
    );
    let (st, _, b) = get("bytes=-500").await;
    assert_eq!((st, b.as_slice()), (StatusCode::PARTIAL_CONTENT, &data[..]));
    for unsatisfiable in ["bytes=-0", "bytes=10-1", "bytes=100-", "bytes=500-600"] {
        let (st, cr, _) = get(unsatisfiable).await;
        assert_eq!(st, StatusCode::RANGE_NOT_SATISFIABLE, "{unsatisfiable}");
        assert_eq!(cr.as_deref(), Some("bytes */100"), "{unsatisfiable}");
    }
    // Several ranges, or ones that do not parse: the whole file.
    for whole in ["bytes=0-1,5-6", "bytes=x-y", "lines=1-2"] {
        let (st, cr, b) = get(whole).await;
        assert_eq!((st, cr, b.len()), (StatusCode::OK, None, 100), "{whole}");
    }
    // If-Range: honoured with the current ETag, whole file otherwise.
    let etag = c.head(url(&s, "/r.bin")).send().await.unwrap().headers()[header::ETAG]
        .to_str()
        .unwrap()
        .to_string();
    let r = c
        .get(url(&s, "/r.bin"))
        .header(header::RANGE, "bytes=10-19")
        .header(header::IF_RANGE, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let r = c
        .get(url(&s, "/r.bin"))
        .header(header::RANGE, "bytes=10-19")
        .header(header::IF_RANGE, "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().len(), 100);
    // A range is never compressed.
    std::fs::write(s.path("t.txt"), "text ".repeat(2000)).unwrap();
    let r = c
        .get(url(&s, "/t.txt"))
        .header(header::RANGE, "bytes=0-2047")
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert!(!r.headers().contains_key(header::CONTENT_ENCODING));
    assert_eq!(r.bytes().await.unwrap().len(), 2048);
    s.stop().await;
}

#[tokio::test]
async fn conditional_requests() {
    let s = TestServer::start(|_| {}).await;
    std::fs::write(s.path("c.txt"), "version one").unwrap();
    let c = http();
    let r = c.get(url(&s, "/c.txt")).send().await.unwrap();
    let etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
    let lm = r.headers()[header::LAST_MODIFIED]
        .to_str()
        .unwrap()
        .to_string();
    let r = c
        .get(url(&s, "/c.txt"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()[header::ETAG].to_str().unwrap(), etag);
    let r = c
        .get(url(&s, "/c.txt"))
        .header(header::IF_MODIFIED_SINCE, &lm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = c
        .get(url(&s, "/c.txt"))
        .header(header::IF_NONE_MATCH, "\"something-else\"")
        .header(header::IF_MODIFIED_SINCE, &lm)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "If-None-Match decides");
    // Writes guarded by the version the client saw.
    let r = c
        .put(url(&s, "/c.txt"))
        .header(header::IF_MATCH, "\"stale\"")
        .body("lost update")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = c
        .put(url(&s, "/c.txt"))
        .header(header::IF_MATCH, &etag)
        .body("version two")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let new_etag = r.headers()[header::ETAG].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let r = c
        .delete(url(&s, "/c.txt"))
        .header(header::IF_UNMODIFIED_SINCE, "Mon, 01 Jan 2001 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        std::fs::read_to_string(s.path("c.txt")).unwrap(),
        "version two"
    );
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
async fn a_file_past_4_gib_by_range() {
    let s = TestServer::start(|_| {}).await;
    let size = (1u64 << 32) + 4096;
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(s.path("big.img")).unwrap();
        f.set_len(size).unwrap();
        f.seek(SeekFrom::Start((1 << 32) + 10)).unwrap();
        f.write_all(b"past-four-gib").unwrap();
    }
    let c = http();
    let start = (1u64 << 32) + 10;
    let r = c
        .get(url(&s, "/big.img"))
        .header(header::RANGE, format!("bytes={start}-{}", start + 12))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()[header::CONTENT_RANGE].to_str().unwrap(),
        format!("bytes {start}-{}/{size}", start + 12)
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"past-four-gib");
    let r = c.head(url(&s, "/big.img")).send().await.unwrap();
    assert_eq!(
        r.headers()[header::CONTENT_LENGTH].to_str().unwrap(),
        size.to_string()
    );
    let r = c
        .get(url(&s, "/big.img"))
        .header(header::RANGE, "bytes=-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), [0, 0, 0]);
    s.stop().await;
}

#[tokio::test]
async fn listings_archives_and_compression() {
    let s = TestServer::start(|_| {}).await;
    std::fs::create_dir_all(s.path("f/sub")).unwrap();
    std::fs::write(s.path("f/<img src=x onerror=alert(1)>.txt"), "x").unwrap();
    std::fs::write(s.path("f/sub/deep.txt"), "deep bytes").unwrap();
    std::fs::write(s.path("f/page.html"), "<script>alert(1)</script>").unwrap();
    std::fs::write(s.path("f/style.css"), "a { color: red }\n".repeat(500)).unwrap();
    let c = http();
    // JSON by query or by Accept.
    let j: serde_json::Value = c
        .get(url(&s, "/f/?json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "sub",
            "<img src=x onerror=alert(1)>.txt",
            "page.html",
            "style.css"
        ]
    );
    let r = c
        .get(url(&s, "/f"))
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // The page: escaped names, a CSP without inline script.
    let r = c.get(url(&s, "/f/")).send().await.unwrap();
    let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;.txt"));
    assert!(!page.contains("<img src=x"));
    // An uploaded HTML file is sandboxed.
    let r = c.get(url(&s, "/f/page.html")).send().await.unwrap();
    assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], "sandbox");
    // Text compresses when asked; a download names itself.
    let r = c
        .get(url(&s, "/f/style.css?download"))
        .header(header::ACCEPT_ENCODING, "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[header::CONTENT_ENCODING], "br");
    assert!(
        r.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"style.css\"")
    );
    let r = c
        .get(url(&s, "/f/style.css"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
    let r = c.get(url(&s, "/f/style.css")).send().await.unwrap();
    assert!(!r.headers().contains_key(header::CONTENT_ENCODING));
    // The folder as a tar stream, whole.
    let r = c.get(url(&s, "/f/?tar")).send().await.unwrap();
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/x-tar");
    let bytes = r.bytes().await.unwrap();
    let mut ar = tar::Archive::new(bytes.as_ref());
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut body = String::new();
        std::io::Read::read_to_string(&mut e, &mut body).unwrap();
        seen.push((path, body));
    }
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "f/",
            "f/<img src=x onerror=alert(1)>.txt",
            "f/page.html",
            "f/style.css",
            "f/sub/",
            "f/sub/deep.txt"
        ]
    );
    assert_eq!(seen[5].1, "deep bytes");
    assert_eq!(seen[3].1.len(), 17 * 500);
    s.stop().await;
}

#[tokio::test]
async fn auth_rights_and_cross_site_requests() {
    let s = TestServer::start(|cfg| {
        cfg.token = Some(ferry::secret::Secret::new("s3cret-token"));
        cfg.anonymous = ferry::access::Rights {
            read: true,
            chat: true,
            ..Default::default()
        };
    })
    .await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    let c = http();
    // Anonymous: reads, but writing needs the token (401 with a challenge).
    assert_eq!(
        c.get(url(&s, "/a.txt")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let r = c.put(url(&s, "/b.txt")).body("b").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    // The page's own requests get no browser dialog.
    let r = c
        .put(url(&s, "/b.txt"))
        .header("X-Ferry", "1")
        .body("b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!r.headers().contains_key(header::WWW_AUTHENTICATE));
    // Bearer, Basic; a wrong token is 401.
    let r = c
        .put(url(&s, "/b.txt"))
        .bearer_auth("s3cret-token")
        .body("b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .put(url(&s, "/c.txt"))
        .basic_auth("anyone", Some("s3cret-token"))
        .body("c")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .put(url(&s, "/d.txt"))
        .bearer_auth("wrong")
        .body("d")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!s.path("d.txt").exists());
    // Exec is never an HTTP right: nothing to test but that it is absent.
    let who: serde_json::Value = c
        .get(url(&s, "/.ferry/whoami"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["permissions"]["upload"], true);
    assert_eq!(who["permissions"]["exec"], false);

    // Login: needs the page's header; sets an HttpOnly, SameSite=Strict cookie.
    let r = c
        .post(url(&s, "/.ferry/login"))
        .body("token=s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(url(&s, "/.ferry/login"))
        .header("X-Ferry", "1")
        .body("token=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .post(url(&s, "/.ferry/login"))
        .header("X-Ferry", "1")
        .body("token=s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let set = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let r = c
        .put(url(&s, "/e.txt"))
        .header(header::COOKIE, &cookie)
        .body("e")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Cross-site: another Origin, or a cross-site fetch, changes nothing.
    for (name, value) in [
        ("Origin", "http://evil.example".to_string()),
        ("Origin", "null".to_string()),
        ("Sec-Fetch-Site", "cross-site".to_string()),
    ] {
        let r = c
            .delete(url(&s, "/e.txt"))
            .header(header::COOKIE, &cookie)
            .header(name, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    assert!(s.path("e.txt").exists());
    let r = c
        .delete(url(&s, "/e.txt"))
        .header(header::COOKIE, &cookie)
        .header("Origin", format!("http://{}", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Logout ends the session.
    let r = c
        .post(url(&s, "/.ferry/logout"))
        .header("X-Ferry", "1")
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c
        .put(url(&s, "/f.txt"))
        .header(header::COOKIE, &cookie)
        .body("f")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A WebSocket from another site's page is refused.
    let ans = raw(
        &s,
        b"GET /.ferry/chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Origin: http://evil.example\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ans), 403, "{ans}");
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

#[tokio::test]
async fn upload_limits_and_cut_uploads_leave_nothing() {
    let s = TestServer::start(|cfg| cfg.max_upload = Some(1000)).await;
    let c = http();
    let r = c
        .put(url(&s, "/big"))
        .body(vec![1u8; 1001])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Chunked, no length: stopped as soon as it passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..5).map(|_| Ok(vec![2u8; 400])).collect();
    let r = c
        .put(url(&s, "/big"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Chunked within the limit: stored whole.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..2).map(|_| Ok(vec![3u8; 400])).collect();
    let r = c
        .put(url(&s, "/ok"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(std::fs::read(s.path("ok")).unwrap(), vec![3u8; 800]);
    // A body cut off halfway: nothing appears, no partial file stays.
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(b"PUT /cut HTTP/1.1\r\nHost: localhost\r\nContent-Length: 900\r\n\r\n")
        .await
        .unwrap();
    sock.write_all(&[4u8; 300]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(sock);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!s.path("cut").exists());
    assert!(common::partial_files(s.root.path()).is_empty());
    assert!(!s.path("big").exists());
    s.stop().await;
}

#[tokio::test]
async fn slow_and_oversized_requests_are_cut_off() {
    let s = TestServer::start(|cfg| {
        cfg.deadlines.header = Duration::from_secs(1);
        cfg.deadlines.body = Duration::from_secs(1);
    })
    .await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    // Slowloris: a head that never ends is closed.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if c.write_all(b"X-Slow: 1\r\n").await.is_err() {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "held for {:?}",
        started.elapsed()
    );
    // Kept alive but idle: closed after the same time.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "an idle kept-alive connection stayed open");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(4));
    // A body that stalls: the upload fails, nothing is left.
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(b"PUT /slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nabc")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf)).await;
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    assert!(!s.path("slow").exists());
    assert!(common::partial_files(s.root.path()).is_empty());
    // Headers past the bound: 431; too many of them: refused too.
    let big = format!(
        "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "y".repeat(20_000)
    );
    assert_eq!(status_of(&raw(&s, big.as_bytes()).await), 431);
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /a.txt HTTP/1.1\r\nHost: localhost\r\n{many}Connection: close\r\n\r\n");
    let st = status_of(&raw(&s, many.as_bytes()).await);
    assert!(st == 431 || st == 400, "{st}");
    // Garbage after a valid start: 400, and the server goes on.
    let ans = raw(&s, b"GET /a.txt HTTP/1.1\r\nHost x\r\n\r\n").await;
    assert_eq!(status_of(&ans), 400, "{ans}");
    let r = http().get(url(&s, "/a.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn busy_servers_answer_503() {
    let s = TestServer::start(|cfg| {
        cfg.limits.max_connections = 1;
        cfg.limits.limit_loopback = true;
    })
    .await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    let _hold = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ans = raw(
        &s,
        b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&ans), 503, "{ans}");
    s.stop().await;
}

#[tokio::test]
async fn tus_uploads_resume_where_they_stopped() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    let data = common::noise(300_000, 9);
    let r = c
        .request(Method::OPTIONS, url(&s, "/.ferry/tus/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["tus-version"], "1.0.0");
    assert!(
        r.headers()["tus-extension"]
            .to_str()
            .unwrap()
            .contains("creation")
    );
    // Without Tus-Resumable: 412.
    let r = c
        .post(url(&s, "/.ferry/tus/"))
        .header("Upload-Length", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let create = |meta: &str| {
        c.post(url(&s, "/.ferry/tus/"))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", data.len().to_string())
            .header("Upload-Metadata", meta.to_string())
            .send()
    };
    // "in/t.bin": folders are made as needed.
    let r = create("path aW4vdC5iaW4=").await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let loc = r.headers()[header::LOCATION].to_str().unwrap().to_string();
    let patch = |offset: usize, body: Vec<u8>| {
        c.patch(url(&s, &loc))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset.to_string())
            .header(header::CONTENT_TYPE, "application/offset+octet-stream")
            .body(body)
            .send()
    };
    let r = patch(0, data[..100_000].to_vec()).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["upload-offset"], "100000");
    // The wrong offset: 409, nothing changes.
    let r = patch(5, data[5..10].to_vec()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // A PATCH cut off midway keeps what arrived.
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: localhost\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 100000\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: 200000\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&data[100_000..150_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(sock);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = c
        .head(url(&s, &loc))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let at: usize = r.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(at, 150_000);
    assert!(!s.path("in/t.bin").exists());
    let r = patch(at, data[at..].to_vec()).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(std::fs::read(s.path("in/t.bin")).unwrap(), data);
    assert!(common::partial_files(s.root.path()).is_empty());
    // Finished: HEAD still says where it is; an existing name is refused.
    let r = c
        .head(url(&s, &loc))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["upload-offset"].to_str().unwrap(),
        data.len().to_string()
    );
    assert_eq!(
        create("path aW4vdC5iaW4=").await.unwrap().status(),
        StatusCode::CONFLICT
    );
    // Termination.
    let r = create("filename Z29uZS5iaW4=").await.unwrap();
    let loc2 = r.headers()[header::LOCATION].to_str().unwrap().to_string();
    let r = c
        .delete(url(&s, &loc2))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(common::partial_files(s.root.path()).is_empty());
    // Hostile targets and forged ids.
    assert_eq!(
        create("path Li4vZXNjYXBl").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let r = c
        .head(url(&s, "/.ferry/tus/eyJwIjoiLi4vZSIsIm4iOjF9"))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn requests_are_logged_with_peer_text_escaped() {
    let root = tempfile::tempdir().unwrap();
    let mut srv = common::spawn_bin_server(root.path(), &["--no-discovery"], &[]);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    std::io::Write::write_all(
        &mut c,
        b"GET /evil%1b[31mred%0aforged HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut c, &mut out);
    assert!(
        out.starts_with("HTTP/1.1 400") || out.starts_with("HTTP/1.1 404"),
        "{out}"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(srv.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = srv.child.wait();
    let log = srv.stderr.join().unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("GET /evil"))
        .expect("a log line");
    assert!(
        line.contains("\"GET /evil%1b[31mred%0aforged HTTP/1.1\" 4"),
        "{line}"
    );
    assert!(!line.contains('\u{1b}'));
}

#[tokio::test]
async fn without_the_web_door_http_gets_a_clear_refusal() {
    let s = TestServer::start(|cfg| cfg.web = false).await;
    std::fs::write(s.path("a.txt"), "a").unwrap();
    let ans = raw(&s, b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status_of(&ans), 501, "{ans}");
    assert!(ans.contains("--no-web"), "{ans}");
    // The native door is unaffected.
    let mut c = s.client().await;
    assert_eq!(c.ls("").await.unwrap().len(), 1);
    s.stop().await;
}
