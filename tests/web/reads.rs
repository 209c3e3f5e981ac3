//! Reading: ranges, conditional requests, listings, archives, compression.

use super::*;

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
    // An uploaded HTML file is sandboxed; so is every kind of XML, which a
    // browser parses as a document whose XHTML parts run script.
    let r = c.get(url(&s, "/f/page.html")).send().await.unwrap();
    assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], "sandbox");
    let xhtml =
        r#"<a:html xmlns:a="http://www.w3.org/1999/xhtml"><a:script>alert(1)</a:script></a:html>"#;
    std::fs::create_dir(s.path("x")).unwrap();
    for ext in ["rss", "atom", "kml", "rdf", "svg", "xhtml", "xml", "xsl"] {
        std::fs::write(s.path(&format!("x/feed.{ext}")), xhtml).unwrap();
        let r = c
            .get(url(&s, &format!("/x/feed.{ext}")))
            .send()
            .await
            .unwrap();
        let ctype = r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let csp = r.headers().get(header::CONTENT_SECURITY_POLICY);
        assert_eq!(
            csp.map(|v| v.to_str().unwrap()),
            Some("sandbox"),
            "{ext}: {ctype}"
        );
    }
    std::fs::write(s.path("x/plain.txt"), xhtml).unwrap();
    let r = c.get(url(&s, "/x/plain.txt")).send().await.unwrap();
    assert!(!r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
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
    // Its tag is weak: the compressed bytes are not the file's, which the
    // strong tag names, and a range of the file must not resume them.
    let zipped_tag = r.headers()[header::ETAG].to_str().unwrap().to_string();
    let r = c.get(url(&s, "/f/style.css")).send().await.unwrap();
    assert!(!r.headers().contains_key(header::CONTENT_ENCODING));
    let tag = r.headers()[header::ETAG].to_str().unwrap().to_string();
    assert!(tag.starts_with('"'), "{tag}");
    assert_eq!(zipped_tag, format!("W/{tag}"));
    let r = c
        .get(url(&s, "/f/style.css"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(header::RANGE, "bytes=100-")
        .header(header::IF_RANGE, &zipped_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "a weak tag never gets a range");
    let r = c
        .get(url(&s, "/f/style.css"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(header::IF_NONE_MATCH, &zipped_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
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

/// Markdown, source code and other text a browser would download under
/// its registered type are shown as plain UTF-8 text; pages stay pages
/// (sandboxed) and binaries stay binaries.
#[tokio::test]
async fn text_files_are_shown_as_text() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    for (name, want) in [
        ("notes.md", "text/plain; charset=utf-8"),
        ("main.rs", "text/plain; charset=utf-8"),
        ("deploy.sh", "text/plain; charset=utf-8"),
        ("Cargo.toml", "text/plain; charset=utf-8"),
        ("Makefile", "text/plain; charset=utf-8"),
        ("page.html", "text/html; charset=utf-8"),
        ("data.bin", "application/octet-stream"),
        ("photo.png", "image/png"),
    ] {
        std::fs::write(s.path(name), "x").unwrap();
        let res = c.get(url(&s, &format!("/{name}"))).send().await.unwrap();
        let ctype = res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(ctype, want, "{name}");
    }
}

/// A folder's listing mirrors cleanly: `wget -r` and `lftp mirror` take
/// the files and folders, and nothing of the page's own (its script and
/// style, an archive of each folder).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_mirror_cleanly_with_wget_and_lftp() {
    let s = TestServer::start(|_| {}).await;
    std::fs::create_dir_all(s.path("sub/deeper")).unwrap();
    std::fs::write(s.path("a.txt"), "a").unwrap();
    std::fs::write(s.path("sub/deeper/b name.txt"), "b").unwrap();
    let files = |dir: &std::path::Path| -> Vec<String> {
        let mut out: Vec<String> = walk(dir)
            .into_iter()
            .map(|p| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    };
    let base = url(&s, "/");

    let wget = tempfile::tempdir().unwrap();
    let (b, d) = (base.clone(), wget.path().to_path_buf());
    let ok = tokio::task::spawn_blocking(move || {
        std::process::Command::new("wget")
            .args(["-q", "-r", "-np", "-nH", "-R", "index.html*", &b])
            .current_dir(&d)
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(ok.success());
    assert_eq!(files(wget.path()), ["a.txt", "sub/deeper/b name.txt"]);

    let lftp = tempfile::tempdir().unwrap();
    let d = lftp.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("lftp")
            .arg("-c")
            .arg(format!("open {base}; mirror . ."))
            .current_dir(&d)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files(lftp.path()), ["a.txt", "sub/deeper/b name.txt"]);
}

/// Every file below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
