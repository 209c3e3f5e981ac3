//! The web door with clients ferry did not write: the page in Debian's
//! chromium (headless, through chromedriver and Selenium: tests/browser.py)
//! and the tuspy tus client (tests/tus_client.py). `scripts/test` installs
//! them when missing.

mod common;

use std::process::Command;

#[test]
fn the_page_works_in_a_real_browser() {
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser.py"))
        .arg(common::ferry_bin())
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser checks failed:\n{text}");
    assert!(text.contains("browser checks passed"), "{text}");
}

#[test]
fn a_tus_client_nobody_here_wrote_uploads_a_file_whole() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("inbox")).unwrap();
    let srv = common::spawn_bin_server(root.path(), &["--allow-upload", "--no-discovery"], &[]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("data.bin");
    std::fs::write(&src, common::noise(5 * 1024 * 1024 + 123, 42)).unwrap();
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tus_client.py"))
        .arg(format!("http://127.0.0.1:{}", srv.port))
        .arg(&src)
        // Several PATCH requests, the last one short.
        .arg((1024 * 1024).to_string())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "tuspy failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8_lossy(&out.stdout);
    assert!(url.contains("/.ferry/tus/"), "{url}");
    let got = root.path().join("inbox/from-tuspy.bin");
    assert_eq!(common::sha256_file(&got), common::sha256_file(&src));
    assert!(common::partial_files(root.path()).is_empty());
    let mut srv = srv;
    let _ = srv.child.kill();
    let _ = srv.child.wait();
}
