//! What a WebDAV COPY or MOVE meets at its ends: a folder never goes into
//! itself through a link, nor a file onto itself under another name, and
//! only a file or a link is ever replaced.

use super::*;

/// Sends each `(method, from, to)` with `Overwrite: T`; each must be 403.
/// Gives the refusals' words.
async fn refused(c: &reqwest::Client, s: &TestServer, cases: &[(&str, &str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for (m, from, to) in cases {
        let r = c
            .request(method(m), url(s, from))
            .header("Destination", *to)
            .header("Overwrite", "T")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{m} {from} {to}");
        out.push(format!("{m} {from} {to}: {}", r.text().await.unwrap()));
    }
    out
}

#[tokio::test]
async fn a_copy_or_move_through_a_link_never_goes_into_itself() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    let link = |to: &str, at: &str| std::os::unix::fs::symlink(to, s.path(at)).unwrap();
    std::fs::create_dir_all(s.path("rel/v1")).unwrap();
    std::fs::write(s.path("rel/v1/app.bin"), "app").unwrap();
    link("rel/v1", "latest");
    link("rel", "alias");
    std::fs::create_dir(s.path("shared")).unwrap();
    std::fs::write(s.path("shared/big.bin"), "big").unwrap();
    link(".", "shared/loop");
    let cases = [
        // The destination, through a link, inside the source.
        ("COPY", "/rel/v1/", "/latest/copy/"),
        ("MOVE", "/rel/v1/", "/latest/moved/"),
        ("COPY", "/rel/", "/latest/up/"),
        // The source a link to a folder that holds the destination.
        ("COPY", "/shared/loop", "/shared/c/"),
        // A file onto itself under another name.
        ("COPY", "/alias/v1/app.bin", "/rel/v1/app.bin"),
        ("MOVE", "/alias/v1/app.bin", "/rel/v1/app.bin"),
    ];
    for why in refused(&c, &s, &cases).await {
        assert!(why.contains("itself"), "{why}");
    }
    assert_eq!(std::fs::read(s.path("rel/v1/app.bin")).unwrap(), b"app");
    for made in ["rel/v1/copy", "rel/v1/moved", "rel/v1/up", "shared/c"] {
        assert!(!s.path(made).exists(), "{made}");
    }
    assert_eq!(std::fs::read(s.path("shared/big.bin")).unwrap(), b"big");
    // Through the same links to somewhere else: copied as asked.
    let r = c
        .request(method("COPY"), url(&s, "/latest/"))
        .header("Destination", "/elsewhere/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(std::fs::read(s.path("elsewhere/app.bin")).unwrap(), b"app");
    s.stop().await;
}

#[tokio::test]
async fn a_move_replaces_a_file_or_a_link_never_a_fifo_or_a_device() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    nix::unistd::mkfifo(
        &s.path("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    std::os::unix::net::UnixListener::bind(s.path("sock")).unwrap();
    std::fs::write(s.path("m.txt"), "moved").unwrap();
    for at in ["fifo", "sock"] {
        let r = c
            .request(method("MOVE"), url(&s, "/m.txt"))
            .header("Destination", format!("/{at}"))
            .header("Overwrite", "T")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{at}");
        assert!(r.text().await.unwrap().contains("only a file or a link"));
        assert_eq!(std::fs::read(s.path("m.txt")).unwrap(), b"moved");
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(s.path("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(
        std::fs::symlink_metadata(s.path("sock"))
            .unwrap()
            .file_type()
            .is_socket()
    );
    // A link is replaced (the link, not what it leads to).
    std::fs::write(s.path("target.txt"), "kept").unwrap();
    std::os::unix::fs::symlink("target.txt", s.path("ln")).unwrap();
    let r = c
        .request(method("MOVE"), url(&s, "/m.txt"))
        .header("Destination", "/ln")
        .header("Overwrite", "T")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(std::fs::read(s.path("ln")).unwrap(), b"moved");
    assert_eq!(std::fs::read(s.path("target.txt")).unwrap(), b"kept");
    s.stop().await;
}

/// A MOVE of a link onto what it leads to (or onto a folder above it)
/// would replace it with the link, its content lost; a folder's COPY or
/// MOVE onto a FIFO would replace the FIFO. Refused on WebDAV and native.
#[tokio::test]
async fn a_move_never_replaces_what_its_link_leads_to_nor_a_fifo() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    std::fs::create_dir_all(s.path("rel/v1/sub")).unwrap();
    std::fs::write(s.path("rel/v1/f.txt"), "hi").unwrap();
    std::fs::write(s.path("rel/v1/sub/g.txt"), "deep").unwrap();
    std::os::unix::fs::symlink("rel/v1", s.path("latest")).unwrap();
    std::os::unix::fs::symlink("rel", s.path("relink")).unwrap();
    std::os::unix::fs::symlink("rel/v1/f.txt", s.path("fl")).unwrap();
    std::fs::create_dir_all(s.path("d")).unwrap();
    std::fs::create_dir_all(s.path("srcdir")).unwrap();
    std::fs::write(s.path("srcdir/x"), "x").unwrap();
    nix::unistd::mkfifo(
        &s.path("d/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let cases = [
        ("MOVE", "/latest", "/rel/v1"),
        ("MOVE", "/relink", "/rel"),
        ("MOVE", "/fl", "/rel/v1/f.txt"),
        ("MOVE", "/srcdir/", "/d/fifo"),
        ("COPY", "/srcdir/", "/d/fifo"),
    ];
    refused(&c, &s, &cases).await;
    // A link whose end is no path in the share: where it leads cannot be
    // told, so it is not copied.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("o.txt"), "out").unwrap();
    std::os::unix::fs::symlink(outside.path(), s.path("out")).unwrap();
    let why = refused(&c, &s, &[("COPY", "/out/", "/outcopy/")]).await;
    assert!(why[0].contains("not a path in the share"), "{why:?}");
    assert!(!s.path("outcopy").exists());
    let mut native = s.client().await;
    assert!(native.mv("/fl", "/rel/v1/f.txt", true).await.is_err());
    assert_eq!(std::fs::read(s.path("rel/v1/f.txt")).unwrap(), b"hi");
    assert_eq!(std::fs::read(s.path("rel/v1/sub/g.txt")).unwrap(), b"deep");
    use std::os::unix::fs::FileTypeExt;
    let fifo = std::fs::symlink_metadata(s.path("d/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(std::fs::read(s.path("srcdir/x")).unwrap(), b"x");
    s.stop().await;
}

/// Whether two paths lead to one folder is the server's to know: a client
/// that may not write at the destination is told that, not that the copy
/// would go into itself.
#[tokio::test]
async fn a_reader_is_refused_for_its_rights_before_it_learns_where_links_lead() {
    let s = TestServer::start(|cfg| {
        cfg.token = Some(ferry::secret::Secret::new("ends-token-0123"));
        cfg.anonymous = ferry::access::Rights {
            read: true,
            ..Default::default()
        };
    })
    .await;
    let c = http();
    std::fs::create_dir_all(s.path("rel/v1")).unwrap();
    std::fs::write(s.path("rel/v1/app.bin"), "app").unwrap();
    std::os::unix::fs::symlink("rel/v1", s.path("latest")).unwrap();
    for (to, linked) in [("/latest/copy/", true), ("/other/copy/", false)] {
        let r = c
            .request(method("COPY"), url(&s, "/rel/v1/"))
            .header("Destination", to)
            .header("X-Ferry", "1")
            .send()
            .await
            .unwrap();
        let status = r.status();
        let words = r.text().await.unwrap();
        // The same answer whether or not the destination leads into the
        // source.
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{to} (linked: {linked}): {words}"
        );
        assert!(!words.contains("itself"), "{to}: {words}");
    }
    // The token holder is told why.
    let r = c
        .request(method("COPY"), url(&s, "/rel/v1/"))
        .header("Destination", "/latest/copy/")
        .bearer_auth("ends-token-0123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("itself"));
    assert!(!s.path("rel/v1/copy").exists());
    assert!(!s.path("other").exists());
    s.stop().await;
}

/// `Overwrite` is `T` or `F` (RFC 4918 section 10.6): anything else is no
/// yes, and nothing is replaced. A `Destination` of another scheme is
/// another server.
#[tokio::test]
async fn a_malformed_overwrite_or_a_foreign_scheme_replaces_nothing() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    std::fs::write(s.path("a.txt"), "a").unwrap();
    std::fs::write(s.path("b.txt"), "b").unwrap();
    let host = s.addr.to_string();
    let cases = [
        ("/b.txt".to_string(), Some("X"), StatusCode::BAD_REQUEST),
        ("/b.txt".to_string(), Some(""), StatusCode::BAD_REQUEST),
        ("/b.txt".to_string(), Some("yes"), StatusCode::BAD_REQUEST),
        (
            format!("ftp://{host}/b.txt"),
            Some("T"),
            StatusCode::BAD_GATEWAY,
        ),
        (format!("ftp://{host}/c.txt"), None, StatusCode::BAD_GATEWAY),
        ("file:///c.txt".to_string(), None, StatusCode::BAD_GATEWAY),
        (format!("FTP://{host}/c.txt"), None, StatusCode::BAD_GATEWAY),
        (format!("{host}/c.txt"), None, StatusCode::BAD_REQUEST),
    ];
    for (to, overwrite, want) in cases {
        for m in ["COPY", "MOVE"] {
            let mut r = c
                .request(method(m), url(&s, "/a.txt"))
                .header("Destination", &to);
            if let Some(o) = overwrite {
                r = r.header("Overwrite", o);
            }
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), want, "{m} {to} {overwrite:?}");
        }
    }
    assert_eq!(std::fs::read(s.path("a.txt")).unwrap(), b"a");
    assert_eq!(std::fs::read(s.path("b.txt")).unwrap(), b"b");
    assert!(!s.path("c.txt").exists());
    // `f` is `F` and `t` is `T`.
    for (m, o, want) in [
        ("COPY", "f", StatusCode::PRECONDITION_FAILED),
        ("MOVE", "f", StatusCode::PRECONDITION_FAILED),
        ("COPY", "t", StatusCode::NO_CONTENT),
    ] {
        let r = c
            .request(method(m), url(&s, "/a.txt"))
            .header("Destination", "/b.txt")
            .header("Overwrite", o)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{m} {o}");
        assert!(s.path("a.txt").exists(), "{m} {o}");
    }
    assert_eq!(std::fs::read(s.path("b.txt")).unwrap(), b"a");
    s.stop().await;
}
