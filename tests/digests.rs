//! Transfer digests: BLAKE3 for a client that asks (the server lists it
//! in its hello), SHA-256 for one that does not (every older client), resume
//! checks in the digest asked for, and the server's memory of a settled
//! file's digest, which any change misses.

mod common;

use std::fs;

use common::TestServer;
use ferry::client::TransferOpts;
use ferry::wire::messages::ErrorCode;
use indicatif::ProgressBar;

/// A `get` sent by hand: (the digest the server reports, its bytes), or
/// the error it answered.
async fn raw_get(
    c: &mut ferry::client::Client,
    path: &str,
    offset: u64,
    prefix: Option<String>,
    digest: Option<&str>,
) -> Result<String, ErrorCode> {
    use ferry::wire::Kind;
    use ferry::wire::messages::{Digest, Request};
    let conn = c.connection();
    let req = Request::Get {
        path: path.into(),
        offset,
        prefix_sha256: prefix,
        digest: digest.map(str::to_string),
    };
    conn.send(Kind::Request, &req, 0).await.unwrap();
    let head = conn.next_head().await.unwrap();
    if head.kind != Kind::Partial {
        let v: serde_json::Value = serde_json::from_slice(&head.header).unwrap();
        return Err(serde_json::from_value(v["code"].clone()).unwrap());
    }
    conn.discard_body().await.unwrap();
    let head = conn.next_head().await.unwrap();
    assert_eq!(head.kind, Kind::Ok);
    let d: Digest = serde_json::from_slice(&head.header).unwrap();
    Ok(d.sha256)
}

/// Sets a file's modification time back to `when`.
fn backdate(p: &std::path::Path, when: std::time::SystemTime) {
    let f = fs::File::options().write(true).open(p).unwrap();
    f.set_modified(when).unwrap();
}

#[tokio::test]
async fn digests_are_blake3_when_asked_sha256_otherwise_and_a_changed_file_is_rehashed() {
    let s = TestServer::start(|_| {}).await;
    let data = common::noise(2 * 1024 * 1024 + 3, 9);
    fs::write(s.path("f.bin"), &data).unwrap();
    let mut c = s.client().await;
    assert!(c.hello().features.iter().any(|f| f == "blake3"));
    let sha = |b: &[u8]| ferry::files::digest::Algo::Sha256.hex_of(b);
    let b3 = |b: &[u8]| ferry::files::digest::Algo::Blake3.hex_of(b);
    // A client that names no digest (any older one) gets SHA-256.
    assert_eq!(
        raw_get(&mut c, "f.bin", 0, None, None).await,
        Ok(sha(&data))
    );
    assert_eq!(
        raw_get(&mut c, "f.bin", 0, None, Some("blake3")).await,
        Ok(b3(&data))
    );
    assert_eq!(
        raw_get(&mut c, "f.bin", 0, None, Some("md5")).await,
        Err(ErrorCode::BadRequest)
    );
    // Resume checks stay exact, in the digest asked for.
    let k = 1_000_000;
    let held = &data[..k as usize];
    for (prefix, want) in [
        (b3(held), Ok(b3(&data))),
        (sha(held), Err(ErrorCode::ResumeMismatch)),
    ] {
        let r = raw_get(&mut c, "f.bin", k, Some(prefix), Some("blake3")).await;
        assert_eq!(r, want);
    }

    // Settled files have their digest kept; any change misses it, even
    // one that keeps the size and puts the modification time back.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    backdate(&s.path("f.bin"), old);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for _ in 0..2 {
        let r = raw_get(&mut c, "f.bin", 0, None, Some("blake3")).await;
        assert_eq!(r, Ok(b3(&data)));
    }
    let mut changed = data.clone();
    changed[10] ^= 0xff;
    fs::write(s.path("f.bin"), &changed).unwrap();
    backdate(&s.path("f.bin"), old);
    let r = raw_get(&mut c, "f.bin", 0, None, Some("blake3")).await;
    assert_eq!(r, Ok(b3(&changed)));
    // And a whole download of it, verified by the client.
    let local = tempfile::tempdir().unwrap();
    let got = c
        .get_file(
            "f.bin",
            &local.path().join("f.bin"),
            TransferOpts::default(),
            &ProgressBar::hidden(),
        )
        .await
        .unwrap();
    assert_eq!(got.digest, b3(&changed));
}
