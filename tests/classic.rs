//! The classic Python client from the old exercise, unmodified, against
//! the real server.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::{TestServer, noise, partial_files, sha256_file};

fn classic(args: &[&str]) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/classic_client.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_put_and_get_work_unmodified() {
    let s = TestServer::start(|_| {}).await;
    let port = s.addr.port().to_string();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("report.bin");
    fs::write(&src, noise(3_000_017, 4)).unwrap();
    let src_s = src.to_str().unwrap().to_string();

    let p = port.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || classic(&["127.0.0.1", &p, "put", &src_s]))
        .await
        .unwrap();
    assert!(ok, "{out}");
    let reply: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["filesize"], 3_000_017);
    assert_eq!(sha256_file(&s.path("report.bin")), sha256_file(&src));
    assert_eq!(reply["sha256"].as_str().unwrap(), sha256_file(&src));

    // The old client that hangs up without reading any reply.
    let src_s = src.to_str().unwrap().to_string();
    let p = port.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        classic(&["127.0.0.1", &p, "put", &src_s, "copy.bin", "--no-reply"])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    for _ in 0..50 {
        if s.path("copy.bin").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sha256_file(&s.path("copy.bin")), sha256_file(&src));

    // get, in the same framing.
    let dst = local.path().join("back.bin");
    let dst_s = dst.to_str().unwrap().to_string();
    let p = port.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        classic(&["127.0.0.1", &p, "get", "report.bin", &dst_s])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert_eq!(sha256_file(&dst), sha256_file(&src));

    // Errors come back as a header with "error"; nothing is overwritten.
    let dst_s = dst.to_str().unwrap().to_string();
    let p = port.clone();
    let (ok, out) =
        tokio::task::spawn_blocking(move || classic(&["127.0.0.1", &p, "get", "missing", &dst_s]))
            .await
            .unwrap();
    assert!(!ok && out.contains("does not exist"), "{out}");
    fs::write(local.path().join("other"), b"other bytes").unwrap();
    let other = local.path().join("other").to_str().unwrap().to_string();
    let p = port.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        classic(&["127.0.0.1", &p, "put", &other, "report.bin"])
    })
    .await
    .unwrap();
    assert!(ok && out.contains("exists"), "{out}");
    assert_eq!(sha256_file(&s.path("report.bin")), sha256_file(&src));
    assert!(partial_files(s.root.path()).is_empty());
    s.stop().await;
}

#[tokio::test]
async fn classic_put_cut_short_leaves_nothing() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start(|_| {}).await;
    let header = br#"{"cmd":"put","filename":"short.bin","filesize":100000}"#;
    let mut msg = (header.len() as i32).to_le_bytes().to_vec();
    msg.extend_from_slice(header);
    msg.extend_from_slice(&[7u8; 5000]);
    let mut t = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    t.write_all(&msg).await.unwrap();
    drop(t);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!s.path("short.bin").exists());
    assert!(partial_files(s.root.path()).is_empty());

    // A read-only server refuses the classic upload.
    let ro = TestServer::start(|c| {
        c.granted.upload = false;
        c.anonymous = c.granted;
    })
    .await;
    let mut t = tokio::net::TcpStream::connect(ro.addr).await.unwrap();
    t.write_all(&msg).await.unwrap();
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut t, &mut out)
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&out[4..]).unwrap();
    assert!(
        reply["error"].as_str().unwrap().contains("--allow-upload"),
        "{reply}"
    );
    assert!(!ro.path("short.bin").exists());
}

/// Sends one classic request; gives the reply header and the bytes after it.
async fn classic_request(
    s: &TestServer,
    header: &[u8],
    body: &[u8],
) -> (serde_json::Value, Vec<u8>) {
    let mut msg = (header.len() as i32).to_le_bytes().to_vec();
    msg.extend_from_slice(header);
    msg.extend_from_slice(body);
    // A refusal that needs the token closes; a get is read to its end.
    let out = s.exchange(&msg, Duration::from_secs(5)).await;
    let len = i32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
    let reply = serde_json::from_slice(&out[4..4 + len]).unwrap();
    (reply, out[4 + len..].to_vec())
}

#[tokio::test]
async fn the_classic_client_has_the_anonymous_rights_on_a_server_with_a_token() {
    let s = TestServer::start(|c| {
        c.token = Some(ferry::secret::Secret::new("classic-door-token-123456"));
        c.anonymous = ferry::access::Rights {
            read: true,
            ..Default::default()
        };
    })
    .await;
    std::fs::write(s.path("open.txt"), b"anyone may read").unwrap();
    // Reading is anonymous here: the classic get works.
    let (reply, body) = classic_request(&s, br#"{"cmd":"get","filename":"open.txt"}"#, b"").await;
    assert_eq!(reply["filesize"], 15, "{reply}");
    assert_eq!(body, b"anyone may read");
    // Uploading needs the token, which the classic client cannot present.
    let (reply, _) = classic_request(
        &s,
        br#"{"cmd":"put","filename":"new.txt","filesize":3}"#,
        b"abc",
    )
    .await;
    let e = reply["error"].as_str().unwrap();
    assert!(
        e.contains("needs authentication") && e.contains("FERRY_TOKEN"),
        "{reply}"
    );
    assert!(!s.path("new.txt").exists());
    assert!(partial_files(s.root.path()).is_empty());
}
