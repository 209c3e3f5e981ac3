//! A full disk, on every upload door: the client is told so by the server
//! (the CLI exits 1 with the server's words, not "broken pipe"), and
//! nothing of the refused upload is kept, so the disk is not left full.
//! The server serves a 4 MiB tmpfs of its own (a mount namespace made for
//! it); a 6 MiB upload fills it, and a 3 MiB upload right after must fit.
//! Needs root (CI runs as root); where the small disk cannot be made, the
//! test says so and checks nothing else.

mod common;

use std::time::Duration;

use common::{BinServer, noise, run_cli, spawn_bin_server_on_small_disk};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIG: usize = 6 << 20;
const SMALL: usize = 3 << 20;

fn server(root: &tempfile::TempDir) -> Option<BinServer> {
    let s = spawn_bin_server_on_small_disk(root.path(), "4m", &["--allow-upload"]);
    if s.is_none() {
        common::checked_nothing(
            "full_disk: cannot mount a small disk here (needs root and unshare)",
        );
    }
    s
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A 3 MiB upload over HTTP PUT: it fits only if nothing of the refused
/// upload was kept.
async fn small_put_fits(port: u16, name: &str) {
    let r = http()
        .put(format!("http://127.0.0.1:{port}/{name}"))
        .body(noise(SMALL, 9))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "the disk stayed full: {}",
        r.text().await.unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_put_to_a_full_disk_says_so_and_keeps_nothing() {
    let root = tempfile::tempdir().unwrap();
    let Some(mut s) = server(&root) else { return };
    let local = tempfile::tempdir().unwrap();
    let big = local.path().join("big.bin");
    std::fs::write(&big, noise(BIG, 1)).unwrap();
    let dest = format!("127.0.0.1:{}:/big.bin", s.port);
    let (code, _, err) =
        tokio::task::spawn_blocking(move || run_cli(&["put", big.to_str().unwrap(), &dest], &[]))
            .await
            .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no space left"), "{err}");
    assert!(
        !err.contains("Broken pipe") && !err.contains("re-run"),
        "{err}"
    );
    small_put_fits(s.port, "after-native.bin").await;
    let _ = s.child.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_put_to_a_full_disk_gets_507_and_keeps_nothing() {
    let root = tempfile::tempdir().unwrap();
    let Some(mut s) = server(&root) else { return };
    let r = http()
        .put(format!("http://127.0.0.1:{}/big.bin", s.port))
        .body(noise(BIG, 2))
        .send()
        .await;
    // The server may answer before the body is all sent, and close.
    if let Ok(r) = r {
        assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    }
    small_put_fits(s.port, "after-put.bin").await;
    let _ = s.child.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tus_upload_to_a_full_disk_gets_507_and_keeps_nothing() {
    let root = tempfile::tempdir().unwrap();
    let Some(mut s) = server(&root) else { return };
    let c = http();
    let meta = format!(
        "filename {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "big.bin")
    );
    let r = c
        .post(format!("http://127.0.0.1:{}/.ferry/tus/", s.port))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", BIG.to_string())
        .header("Upload-Metadata", meta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let url = format!(
        "http://127.0.0.1:{}{}",
        s.port,
        r.headers()["location"].to_str().unwrap()
    );
    let r = c
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .body(noise(BIG, 3))
        .send()
        .await;
    if let Ok(r) = r {
        assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    }
    small_put_fits(s.port, "after-tus.bin").await;
    let _ = s.child.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_put_to_a_full_disk_is_refused_and_keeps_nothing() {
    let root = tempfile::tempdir().unwrap();
    let Some(mut s) = server(&root) else { return };
    let mut t = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
        .await
        .unwrap();
    let head = format!(r#"{{"cmd":"put","filename":"big.bin","filesize":{BIG}}}"#);
    let mut out = (head.len() as i32).to_le_bytes().to_vec();
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&noise(BIG, 4));
    // The server may stop reading once the disk is full.
    let _ = tokio::time::timeout(Duration::from_secs(20), t.write_all(&out)).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), t.read_to_end(&mut reply)).await;
    if reply.len() > 4 {
        let text = String::from_utf8_lossy(&reply[4..]);
        assert!(text.contains("error"), "{text}");
    }
    small_put_fits(s.port, "after-classic.bin").await;
    let _ = s.child.kill();
}
