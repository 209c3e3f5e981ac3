//! Transfer digests: BLAKE3 for a client that asks (the server lists it
//! in its hello), SHA-256 for one that does not (every older client), resume
//! checks in the digest asked for, and the server's memory of a settled
//! file's digest, which any change misses.

mod common;

use std::fs;

use common::TestServer;
use ferry::client::TransferOpts;
use ferry::wire::Kind;
use ferry::wire::messages::{Digest, ErrorCode, Request};
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
    let req = Request::Get {
        path: path.into(),
        offset,
        prefix_sha256: prefix,
        digest: digest.map(str::to_string),
        fresh: false,
    };
    ask(c, &req).await
}

/// The whole of `path` in BLAKE3, asking for it hashed as it goes.
async fn fresh_get(c: &mut ferry::client::Client, path: &str) -> Result<String, ErrorCode> {
    let req = Request::Get {
        path: path.into(),
        offset: 0,
        prefix_sha256: None,
        digest: Some("blake3".into()),
        fresh: true,
    };
    ask(c, &req).await
}

/// Sends a `get` and reads its answer (see [`raw_get`]).
async fn ask(c: &mut ferry::client::Client, req: &Request) -> Result<String, ErrorCode> {
    let conn = c.connection().await.unwrap();
    conn.send(Kind::Request, req, 0).await.unwrap();
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

/// A whole download of `name` through the client: what it reports, and
/// the bytes of the copy.
async fn download(
    c: &mut ferry::client::Client,
    name: &str,
) -> (ferry::client::Transferred, Vec<u8>) {
    let local = tempfile::tempdir().unwrap();
    let to = local.path().join(name);
    let opts = TransferOpts::default();
    let got = c.get_file(name, &to, opts, &ProgressBar::hidden()).await;
    (got.unwrap(), fs::read(&to).unwrap())
}

/// Starts a BLAKE3 get of `path` and reads the first MiB or so of its
/// body, leaving the rest: how many bytes were read.
async fn start_get(conn: &mut ferry::wire::Connection, path: &str, fresh: bool) -> usize {
    let req = Request::Get {
        path: path.into(),
        offset: 0,
        prefix_sha256: None,
        digest: Some("blake3".into()),
        fresh,
    };
    conn.send(Kind::Request, &req, 0).await.unwrap();
    assert_eq!(conn.next_head().await.unwrap().kind, Kind::Partial);
    let mut buf = Vec::with_capacity(1 << 20);
    let mut read = 0;
    while read < 1 << 20 {
        buf.clear();
        read += conn.read_body_into(&mut buf).await.unwrap();
    }
    read
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
    assert!(c.offers("blake3"));
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
    let (got, bytes) = download(&mut c, "f.bin").await;
    assert_eq!(got.digest, b3(&changed));
    assert!(bytes == changed);
}

/// A file whose digest is remembered goes from the page cache to the
/// socket (`sendfile`): it arrives whole and verified; when it shrinks
/// while it is being sent, that connection breaks (no digest is claimed
/// for bytes that were not sent) and the server serves the next one.
#[tokio::test]
async fn a_remembered_file_is_sent_whole_and_one_that_shrinks_mid_send_breaks_only_its_connection()
{
    let s = TestServer::start(|_| {}).await;
    let data = common::noise(64 * 1024 * 1024 + 5, 3);
    fs::write(s.path("big.bin"), &data).unwrap();
    backdate(
        &s.path("big.bin"),
        std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let mut c = s.client().await;
    let b3 = ferry::files::digest::Algo::Blake3.hex_of(&data);
    assert_eq!(
        raw_get(&mut c, "big.bin", 0, None, Some("blake3")).await,
        Ok(b3.clone())
    );
    let (got, bytes) = download(&mut c, "big.bin").await;
    assert_eq!(got.digest, b3);
    assert!(bytes == data);

    shrinks_mid_send(&s, &data, false).await;
}

/// A file hashed as it is sent (`fresh`, so the server trusts no digest it
/// remembers) is read back behind the bytes sent: when it shrinks while it
/// is being sent, that connection breaks and the server lives on.
#[tokio::test]
async fn a_file_hashed_as_it_is_sent_that_shrinks_mid_send_breaks_only_its_connection() {
    let s = TestServer::start(|_| {}).await;
    for round in 0..3 {
        let data = common::noise(64 * 1024 * 1024 + 5, round);
        fs::write(s.path("big.bin"), &data).unwrap();
        shrinks_mid_send(&s, &data, true).await;
    }
}

/// Starts a get of `big.bin` (holding `data`), read slowly, cuts the file
/// to 2 MiB under it: the connection breaks, and the server answers the
/// next one with the cut file's digest.
async fn shrinks_mid_send(s: &TestServer, data: &[u8], fresh: bool) {
    // A get read slowly; the file is cut short under it.
    let mut slow = s.client().await;
    let conn = slow.connection().await.unwrap();
    let mut read = start_get(conn, "big.bin", fresh).await;
    let mut buf = Vec::with_capacity(1 << 20);
    fs::File::options()
        .write(true)
        .open(s.path("big.bin"))
        .unwrap()
        .set_len(2 * 1024 * 1024)
        .unwrap();
    let rest = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            buf.clear();
            match conn.read_body_into(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => read += n,
                Err(e) => return Err(e),
            }
            if conn.body_remaining() == 0 {
                return Ok(());
            }
        }
    })
    .await
    .expect("the server neither finished nor broke off");
    assert!(rest.is_err(), "a cut file was sent whole: {read} bytes");
    assert!(read < data.len(), "{read}");

    let mut again = s.client().await;
    let r = raw_get(&mut again, "big.bin", 0, None, Some("blake3")).await;
    assert_eq!(
        r,
        Ok(ferry::files::digest::Algo::Blake3.hex_of(&data[..2 * 1024 * 1024]))
    );
}

/// A file written through a shared mapping whose page is already dirty
/// keeps its times, so the server's remembered digest goes stale. The
/// client's copy then fails its check; the client asks once more with the
/// bytes hashed as they go (`fresh`), and gets a verified copy, and the
/// server remembers the new digest.
#[tokio::test]
#[allow(unsafe_code)] // mmap: the only way to change a file without its times
async fn a_digest_gone_stale_under_a_mapping_is_rehashed_when_the_client_asks() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let s = TestServer::start(|_| {}).await;
    let mut data = common::noise(3 * 4096, 5);
    fs::write(s.path("m.bin"), &data).unwrap();
    let file = fs::File::options()
        .read(true)
        .write(true)
        .open(s.path("m.bin"))
        .unwrap();
    // SAFETY: a shared read-write mapping of a file this test made and
    // keeps open; only its first page is written, through `first`, while
    // the mapping lives, and the file is never shortened.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    let first = map.cast::<u8>();
    let poke = |at: usize, data: &mut Vec<u8>| {
        data[at] ^= 0x5a;
        // SAFETY: `at` < 4096, inside the mapping made above.
        unsafe { first.add(at).write_volatile(data[at]) };
    };
    // The first write through the mapping dirties the page and sets the
    // file's times; then they are set back, and left to settle.
    poke(0, &mut data);
    backdate(
        &s.path("m.bin"),
        std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let b3 = |b: &[u8]| ferry::files::digest::Algo::Blake3.hex_of(b);
    let mut c = s.client().await;
    assert!(c.offers("fresh"));
    let r = raw_get(&mut c, "m.bin", 0, None, Some("blake3")).await;
    assert_eq!(r, Ok(b3(&data)));

    let times = |p: &std::path::Path| {
        let m = fs::metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec())
    };
    let before = times(&s.path("m.bin"));
    let stale = b3(&data);
    poke(100, &mut data);
    assert_eq!(times(&s.path("m.bin")), before, "the write moved the times");
    assert_eq!(fs::read(s.path("m.bin")).unwrap(), data);
    // What the server remembers is now wrong...
    let r = raw_get(&mut c, "m.bin", 0, None, Some("blake3")).await;
    assert_eq!(r, Ok(stale));
    // ...but a download to a stream, which cannot be fetched again, is
    // hashed as it goes anyway...
    let mut out = Vec::new();
    let got = c.get_to("m.bin", &mut out).await.unwrap();
    assert_eq!((got.digest, &out), (b3(&data), &data));
    let stale = b3(&data);
    poke(200, &mut data);
    assert_eq!(times(&s.path("m.bin")), before, "the write moved the times");
    let r = raw_get(&mut c, "m.bin", 0, None, Some("blake3")).await;
    assert_eq!(r, Ok(stale));
    // ...and a download still comes out right.
    let (got, bytes) = download(&mut c, "m.bin").await;
    assert_eq!(got.digest, b3(&data));
    assert_eq!(bytes, data);
    // The server remembers what it hashed on the way.
    let r = raw_get(&mut c, "m.bin", 0, None, Some("blake3")).await;
    assert_eq!(r, Ok(b3(&data)));
    let r = fresh_get(&mut c, "m.bin").await;
    assert_eq!(r, Ok(b3(&data)));
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(map, 4096) };
}

/// A file written in place while it is sent gives a copy that mixes old
/// and new bytes, which hash to what was sent: the server sees the file's
/// modification time move and answers a mismatch instead of a digest. A
/// file that only grows (a log) still held the bytes sent: that copy
/// stands.
#[tokio::test]
async fn a_file_written_in_place_while_sent_is_no_copy_and_one_that_grows_is() {
    use std::io::{Seek, Write};
    let s = TestServer::start(|_| {}).await;
    let data = common::noise(48 * 1024 * 1024, 4);
    for (name, in_place) in [("rewritten.bin", true), ("grown.bin", false)] {
        fs::write(s.path(name), &data).unwrap();
        let mut c = s.client().await;
        let conn = c.connection().await.unwrap();
        start_get(conn, name, false).await;
        // A second later, so that the modification time surely moves.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let mut f = fs::File::options().write(true).open(s.path(name)).unwrap();
        if in_place {
            f.seek(std::io::SeekFrom::Start(40 << 20)).unwrap();
        } else {
            f.seek(std::io::SeekFrom::End(0)).unwrap();
        }
        f.write_all(b"new bytes").unwrap();
        drop(f);
        conn.discard_body().await.unwrap();
        let head = conn.next_head().await.unwrap();
        if in_place {
            assert_eq!(head.kind, Kind::Error, "{name}");
            let v: serde_json::Value = serde_json::from_slice(&head.header).unwrap();
            assert_eq!(v["code"], "checksum_mismatch", "{v}");
            assert!(
                v["message"]
                    .as_str()
                    .unwrap()
                    .contains("changed while it was sent")
            );
        } else {
            assert_eq!(head.kind, Kind::Ok, "{name}");
            let d: Digest = serde_json::from_slice(&head.header).unwrap();
            assert_eq!(d.sha256, ferry::files::digest::Algo::Blake3.hex_of(&data));
        }
        // The connection is still in step: the file (as it is now) is
        // downloaded whole and verified.
        let (got, bytes) = download(&mut c, name).await;
        assert_eq!(bytes, fs::read(s.path(name)).unwrap());
        assert_eq!(got.resumed_from, 0);
    }
}

/// The mirror image for an upload: a local file written in place while
/// it is sent is not committed, so no mixed copy appears on the server.
#[tokio::test]
async fn an_upload_written_in_place_while_sent_is_not_kept() {
    use std::io::{Seek, Write};
    let s = TestServer::start(|_| {}).await;
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src.bin");
    fs::write(&src, common::noise(8 * 1024 * 1024, 6)).unwrap();
    let upload = common::slow_put(s.addr, 4 * 1024 * 1024, &src, "up.bin").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut f = fs::File::options().write(true).open(&src).unwrap();
    f.seek(std::io::SeekFrom::Start(100)).unwrap();
    f.write_all(b"changed").unwrap();
    drop(f);
    let err = upload.await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("changed while it was sent"),
        "{err}"
    );
    assert!(!s.path("up.bin").exists());
    // Run again, it is sent as it is now.
    let again = common::put_to(&s.addr.to_string(), &src, "up.bin").await;
    again.unwrap();
    assert_eq!(fs::read(s.path("up.bin")).unwrap(), fs::read(&src).unwrap());
}

/// A file cut below the bytes a resuming client holds while the server
/// reads its start to check them: `resume_mismatch`, naming the file (the
/// client starts again from 0), not a bare I/O error.
#[tokio::test]
async fn a_file_cut_while_its_start_is_checked_is_a_resume_mismatch() {
    let s = TestServer::start(|_| {}).await;
    // A sparse gibibyte: the server takes a while to read and hash it.
    let held: u64 = 1 << 30;
    let mut h = ferry::files::digest::Algo::Blake3.hasher();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..held >> 20 {
        h.update(&zeros);
    }
    let prefix = h.hex();
    let mut inside = 0;
    for wait in [100, 40, 250, 20, 400] {
        let f = fs::File::create(s.path("sparse.bin")).unwrap();
        f.set_len(held + (1 << 20)).unwrap();
        let mut c = s.client().await;
        let conn = c.connection().await.unwrap();
        let req = Request::Get {
            path: "sparse.bin".into(),
            offset: held,
            prefix_sha256: Some(prefix.clone()),
            digest: Some("blake3".into()),
            fresh: false,
        };
        conn.send(Kind::Request, &req, 0).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        f.set_len(1 << 20).unwrap();
        let head = conn.next_head().await.unwrap();
        if head.kind == Kind::Partial {
            continue; // checked before the cut
        }
        let v: serde_json::Value = serde_json::from_slice(&head.header).unwrap();
        assert_eq!(v["code"], "resume_mismatch", "{v}");
        let message = v["message"].as_str().unwrap();
        if message.contains("cut shorter") {
            assert!(message.contains("sparse.bin"), "{message}");
            inside += 1;
            if inside == 2 {
                break;
            }
        }
    }
    assert!(inside > 0, "no cut landed while the start was read");
}
