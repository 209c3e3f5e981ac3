//! Share links through the real binary: made with `ferry share`, opened
//! with curl as a browser would (the link sets a cookie and leads to what
//! it shares), and refused when tampered with, from another server, run
//! out or revoked. A link never grants more than read (or upload-only)
//! below its path.

mod common;

use common::{run_cli, spawn_bin_server};

/// curl with a cookie jar, following redirects: (status, body).
fn curl(jar: &std::path::Path, args: &[&str]) -> (u16, String) {
    let jar = jar.to_str().unwrap();
    let mut all = vec!["-L", "-c", jar, "-b", jar];
    all.extend_from_slice(args);
    common::curl(&all)
}

/// A served folder with `photos/a.jpg`, `private/s.txt` and an empty
/// `drop`.
fn shared_tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in ["photos", "private", "drop"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("photos/a.jpg"), "jpeg").unwrap();
    std::fs::write(r.join("private/s.txt"), "secret").unwrap();
    root
}

#[test]
fn share_links_grant_what_they_say_and_no_more() {
    let root = shared_tree();
    let r = root.path();
    std::fs::create_dir(r.join("photos/sub")).unwrap();
    std::fs::write(r.join("photos/sub/b.txt"), "bee").unwrap();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    let text = format!(
        "[users.alice]\npassword_hash = \"{}\"\nrights = [\"/photos:read\", \"/drop:write\"]\n",
        common::passwd_hash("alice-password")
    );
    std::fs::write(&cfg, text).unwrap();
    let srv = spawn_bin_server(
        r,
        &[
            "--allow-upload",
            "--private",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[],
    );
    let alice = [
        ("FERRY_USER", "alice"),
        ("FERRY_PASSWORD", "alice-password"),
    ];
    let host = format!("127.0.0.1:{}", srv.port);
    let url = |p: &str| format!("http://{host}{p}");
    let share = |args: &[&str]| -> (i32, String, String) {
        let mut all = vec!["share"];
        all.extend_from_slice(args);
        run_cli(&all, &alice)
    };

    // A read link to a folder: it leads there, and reads below it only.
    let (code, link, err) = share(&[&format!("{host}:/photos"), "--expires", "1h"]);
    assert_eq!(code, 0, "{err}");
    let link = link.trim().to_string();
    assert!(link.starts_with(&url("/.ferry/share/")), "{link}");
    let jar = etc.path().join("jar");
    let (status, body) = curl(&jar, &[&link]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("a.jpg"), "{body}");
    assert_eq!(
        curl(&jar, &[&url("/photos/sub/b.txt")]),
        (200, "bee".into())
    );
    assert_ne!(curl(&jar, &[&url("/private/s.txt")]).0, 200);
    assert_ne!(curl(&jar, &[&url("/photos/")]).0 / 100, 5);
    let (status, _) = curl(&jar, &["-T", cfg.to_str().unwrap(), &url("/photos/up.txt")]);
    assert!(status == 401 || status == 403, "{status}");
    // Without the cookie, nothing (the server is private).
    let bare = etc.path().join("bare");
    assert_eq!(curl(&bare, &[&url("/photos/a.jpg")]).0, 401);

    // An upload-only link: new files into the folder, nothing read.
    let (code, up, err) = share(&[&format!("{host}:/drop"), "--upload"]);
    assert_eq!(code, 0, "{err}");
    let jar2 = etc.path().join("jar2");
    curl(&jar2, &[up.trim()]);
    let body = etc.path().join("body.txt");
    std::fs::write(&body, "dropped").unwrap();
    let b = body.to_str().unwrap();
    assert_eq!(curl(&jar2, &["-T", b, &url("/drop/new.txt")]).0, 201);
    assert_eq!(
        std::fs::read_to_string(r.join("drop/new.txt")).unwrap(),
        "dropped"
    );
    // Nobody overwrites on this server; beyond the link, the holder is
    // anonymous: logging in might help.
    assert_eq!(curl(&jar2, &["-T", b, &url("/drop/new.txt")]).0, 403);
    assert_eq!(curl(&jar2, &[&url("/drop/new.txt")]).0, 401);
    assert_eq!(curl(&jar2, &["-T", b, &url("/photos/x.txt")]).0, 401);
    assert_eq!(
        std::fs::read_to_string(r.join("drop/new.txt")).unwrap(),
        "dropped"
    );
    assert!(!r.join("photos/x.txt").exists());

    // Not more than its maker: alice may not read /private, so no link.
    let (code, _, err) = share(&[&format!("{host}:/private")]);
    assert_eq!(code, 1, "{err}");
    // Nor anonymous clients make any.
    let (code, _, _) = run_cli(&["share", &format!("{host}:/photos")], &[]);
    assert_ne!(code, 0);

    // Tampered: the same signature over another path.
    let token = link.rsplit('/').next().unwrap();
    let (payload, tag) = token.split_once('.').unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut grant: serde_json::Value =
        serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
    grant["path"] = "private".into();
    let forged = format!("{}.{tag}", b64.encode(serde_json::to_vec(&grant).unwrap()));
    let jar3 = etc.path().join("jar3");
    let (status, body) = curl(&jar3, &[&url(&format!("/.ferry/share/{forged}"))]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not valid"), "{body}");
    // A forged cookie is no better than none.
    let (status, _) = curl(
        &jar3,
        &[
            "-H",
            &format!("Cookie: ferry_share={forged}"),
            &url("/private/s.txt"),
        ],
    );
    assert_eq!(status, 401);
    // Another server's link.
    let other_root = tempfile::tempdir().unwrap();
    let other = spawn_bin_server(other_root.path(), &[], &[]);
    let elsewhere = format!("http://127.0.0.1:{}/.ferry/share/{token}", other.port);
    assert_eq!(curl(&etc.path().join("jar4"), &[&elsewhere]).0, 403);

    // Run out.
    let (code, short, err) = share(&[&format!("{host}:/photos"), "--expires", "1s"]);
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (status, body) = curl(&etc.path().join("jar5"), &[short.trim()]);
    assert_eq!(status, 403);
    assert!(body.contains("expired"), "{body}");

    // Listed, then revoked: the cookie already held stops working.
    let (code, list, err) = share(&[&host, "--list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&list).unwrap();
    let id = grant["id"].as_str().unwrap();
    assert!(
        listed["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == id),
        "{list}"
    );
    let (code, _, err) = share(&[&host, "--revoke", id]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(curl(&jar, &[&url("/photos/a.jpg")]).0, 401);
    assert_eq!(curl(&etc.path().join("jar6"), &[&link]).0, 403);
    let (code, _, _) = share(&[&host, "--revoke", "0000000000000000"]);
    assert_eq!(code, 1);
}

/// The page's "Share" action (`POST /.ferry/share`): for an account or the
/// token holder, for what they may read; its bad inputs refused plainly.
#[test]
fn the_page_makes_links_for_accounts_only() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("pics")).unwrap();
    std::fs::write(root.path().join("pics/p.txt"), "pic").unwrap();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    let text = format!(
        "[users.alice]\npassword_hash = \"{}\"\nrights = [\"/pics:read\"]\n\n[anonymous]\nrights = []\n",
        common::passwd_hash("alice-password")
    );
    std::fs::write(&cfg, text).unwrap();
    let srv = spawn_bin_server(root.path(), &["--config", cfg.to_str().unwrap()], &[]);
    let url = format!("http://127.0.0.1:{}/.ferry/share", srv.port);
    let jar = etc.path().join("jar");
    let post = |extra: &[&str], body: &str| -> (u16, String) {
        let mut args = vec!["-X", "POST", "--data-binary", body];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&jar, &args)
    };
    let page = ["-H", "X-Ferry: 1", "-u", "alice:alice-password"];
    let (status, body) = post(&page, "path=/pics/p.txt");
    assert_eq!(status, 200, "{body}");
    let made: serde_json::Value = serde_json::from_str(&body).unwrap();
    let link = made["url"].as_str().unwrap();
    assert!(link.starts_with("/.ferry/share/"), "{link}");
    // The link opens the file for someone with no login at all.
    let opened = curl(
        &etc.path().join("other"),
        &[&format!("http://127.0.0.1:{}{link}", srv.port)],
    );
    assert_eq!(opened, (200, "pic".to_string()));
    // Not beyond the account's rights; not for anonymous clients.
    assert_eq!(post(&page, "path=/other").0, 403);
    assert_eq!(post(&["-H", "X-Ferry: 1"], "path=/pics").0, 401);
    // Bad inputs: no path, a bad expiry, a hostile name, too much, no
    // X-Ferry header, another site's page.
    assert_eq!(post(&page, "upload=1").0, 400);
    assert_eq!(post(&page, "path=/pics&expires=0").0, 400);
    assert_eq!(post(&page, "path=/pics/%2e%2e/x").0, 400);
    assert_eq!(post(&page, &"x".repeat(5000)).0, 413);
    assert_eq!(post(&["-u", "alice:alice-password"], "path=/pics").0, 403);
    let evil = ["-H", "X-Ferry: 1", "-H", "Origin: http://evil.example"];
    let mut with = page.to_vec();
    with.extend_from_slice(&evil);
    assert_eq!(post(&with, "path=/pics").0, 403);
}

#[test]
fn the_token_holder_revokes_any_link_by_its_id_and_nobody_else_does() {
    let root = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[users.alice]\npassword_hash = \"{}\"\nrights = [\"/:read\"]\n",
            common::passwd_hash("alice-password")
        ),
    )
    .unwrap();
    let token = "share-admin-token-0123456789abcdef";
    let srv = spawn_bin_server(
        root.path(),
        &["--config", cfg.to_str().unwrap()],
        &[("FERRY_TOKEN", token)],
    );
    let host = format!("127.0.0.1:{}", srv.port);
    let admin = [("FERRY_TOKEN", token)];
    let alice = [
        ("FERRY_USER", "alice"),
        ("FERRY_PASSWORD", "alice-password"),
    ];
    // An id no list here holds (a link made through a server whose list
    // is gone): the token holder revokes it, an account cannot.
    let id = "0123456789abcdef";
    let (code, out, err) = run_cli(&["share", &host, "--revoke", id], &admin);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked"), "{out}");
    let (code, _, err) = run_cli(&["share", &host, "--revoke", "fedcba9876543210"], &alice);
    assert_ne!(code, 0);
    assert!(err.contains("no share link"), "{err}");
    // What is not an id at all is not taken as one.
    let (code, _, err) = run_cli(&["share", &host, "--revoke", "../../x"], &admin);
    assert_ne!(code, 0);
    assert!(err.contains("no share link"), "{err}");
}

/// A link is a right on one path: a symlink inside its folder that leads
/// elsewhere in the served folder is judged where it leads, even on a
/// server whose other rights are the same everywhere (a token alone).
#[test]
fn a_link_inside_a_shared_folder_does_not_widen_the_share() {
    use std::os::unix::fs::symlink;
    let root = shared_tree();
    let r = root.path();
    symlink("../private/s.txt", r.join("photos/x")).unwrap();
    symlink("../private", r.join("photos/p")).unwrap();
    symlink("../private", r.join("drop/sub")).unwrap();
    let token = "share-link-jail-token-0123456789";
    let srv = spawn_bin_server(
        r,
        &["--allow-upload", "--private"],
        &[("FERRY_TOKEN", token)],
    );
    let host = format!("127.0.0.1:{}", srv.port);
    let url = |p: &str| format!("http://{host}{p}");
    let admin = [("FERRY_TOKEN", token)];
    let etc = tempfile::tempdir().unwrap();

    let (code, link, err) = run_cli(&["share", &format!("{host}:/photos")], &admin);
    assert_eq!(code, 0, "{err}");
    let jar = etc.path().join("jar");
    assert_eq!(curl(&jar, &[link.trim()]).0, 200);
    assert_eq!(curl(&jar, &[&url("/photos/a.jpg")]), (200, "jpeg".into()));
    for p in ["/photos/x", "/photos/p/s.txt", "/private/s.txt"] {
        let (status, body) = curl(&jar, &[&url(p)]);
        assert!(status == 401 || status == 403, "{p}: {status} {body}");
        assert!(!body.contains("secret"), "{p}: {body}");
    }
    // Nor in a folder's archive.
    let zip = etc.path().join("photos.zip");
    let (status, _) = curl(&jar, &["-o", zip.to_str().unwrap(), &url("/photos/?zip")]);
    assert_eq!(status, 200);
    let bytes = std::fs::read(&zip).unwrap();
    assert!(
        bytes.windows(4).any(|w| w == b"jpeg"),
        "the archive lacks a.jpg"
    );
    assert!(
        !bytes.windows(6).any(|w| w == b"secret"),
        "the archive holds s.txt"
    );

    // An upload link to /drop does not upload through drop/sub into
    // /private.
    let (code, up, err) = run_cli(&["share", &format!("{host}:/drop"), "--upload"], &admin);
    assert_eq!(code, 0, "{err}");
    let jar2 = etc.path().join("jar2");
    curl(&jar2, &[up.trim()]);
    let body = etc.path().join("body.txt");
    std::fs::write(&body, "dropped").unwrap();
    let b = body.to_str().unwrap();
    assert_eq!(curl(&jar2, &["-T", b, &url("/drop/new.txt")]).0, 201);
    let (status, _) = curl(&jar2, &["-T", b, &url("/drop/sub/new.txt")]);
    assert!(status == 401 || status == 403, "{status}");
    assert!(!r.join("private/new.txt").exists());
}

/// A link asked for over the native door with `expires` 0 (one that has
/// run out before it is made) is refused as a bad request, as the page's
/// form and the command line refuse it.
#[tokio::test]
async fn a_link_that_expires_at_once_is_refused() {
    use ferry::wire::Kind;
    use ferry::wire::messages::{ErrorCode, ErrorReply, Request};
    let s = common::TestServer::start(|_| {}).await;
    std::fs::create_dir(s.path("pub")).unwrap();
    let mut c = s.client().await;
    c.hello().await.unwrap();
    let conn = c.connection().await.unwrap();
    let share = |expires| Request::Share {
        path: Some("pub".into()),
        upload: false,
        expires,
        revoke: None,
    };
    conn.send(Kind::Request, &share(Some(0)), 0).await.unwrap();
    let head = conn.next_head().await.unwrap();
    assert_eq!(head.kind, Kind::Error);
    let e: ErrorReply = serde_json::from_slice(&head.header).unwrap();
    assert_eq!(e.code, ErrorCode::BadRequest, "{}", e.message);
    conn.send(Kind::Request, &share(Some(60)), 0).await.unwrap();
    let head = conn.next_head().await.unwrap();
    assert_eq!(
        head.kind,
        Kind::Ok,
        "{}",
        String::from_utf8_lossy(&head.header)
    );
}

/// An upload link's PUT into a folder another client has locked is told
/// so (423), not asked to log in: the refusal a probe met on the way
/// (the link may not read) is not what the answer is about.
#[test]
fn an_upload_into_a_locked_folder_is_told_it_is_locked() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("drop")).unwrap();
    let token = "share-lock-token-0123456789abcdef";
    let srv = spawn_bin_server(
        root.path(),
        &["--allow-upload", "--allow-delete", "--private"],
        &[("FERRY_TOKEN", token)],
    );
    let host = format!("127.0.0.1:{}", srv.port);
    let url = |p: &str| format!("http://{host}{p}");
    let (code, up, err) = run_cli(
        &["share", &format!("{host}:/drop"), "--upload"],
        &[("FERRY_TOKEN", token)],
    );
    assert_eq!(code, 0, "{err}");
    let etc = tempfile::tempdir().unwrap();
    let jar = etc.path().join("jar");
    curl(&jar, &[up.trim()]);
    let bearer = format!("Authorization: Bearer {token}");
    let lock = r#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let (status, body) = common::curl(&[
        "-X",
        "LOCK",
        "-H",
        &bearer,
        "-H",
        "Depth: infinity",
        "-H",
        "Content-Type: application/xml",
        "--data-binary",
        lock,
        &url("/drop/"),
    ]);
    assert_eq!(status, 200, "{body}");
    let file = etc.path().join("body.txt");
    std::fs::write(&file, "dropped").unwrap();
    let (status, body) = curl(&jar, &["-T", file.to_str().unwrap(), &url("/drop/a.txt")]);
    assert_eq!(status, 423, "{body}");
    assert!(!root.path().join("drop/a.txt").exists());
}
