//! Resumable uploads (tus 1.0).

use super::*;

/// Where the upload at `loc` stands (`HEAD`): its status and offset.
async fn offset_of(c: &reqwest::Client, s: &TestServer, loc: &str) -> (StatusCode, Option<usize>) {
    let r = c
        .head(url(s, loc))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    let at = r
        .headers()
        .get("upload-offset")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (r.status(), at)
}

/// A creation of an upload of `length` bytes of `filename_b64` bringing
/// `body`.
fn create_with(
    c: &reqwest::Client,
    s: &TestServer,
    (length, filename_b64): (usize, &str),
    body: reqwest::Body,
) -> reqwest::RequestBuilder {
    c.post(url(s, "/.ferry/tus/"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", format!("filename {filename_b64}"))
        .header(header::CONTENT_TYPE, "application/offset+octet-stream")
        .body(body)
}

/// A DELETE of the upload at `loc` (tus termination): its status.
async fn given_up(c: &reqwest::Client, s: &TestServer, loc: &str) -> StatusCode {
    c.delete(url(s, loc))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap()
        .status()
}

/// [`create_with`], which must make the upload: where it is.
async fn created(
    c: &reqwest::Client,
    s: &TestServer,
    spec: (usize, &str),
    body: reqwest::Body,
) -> String {
    let r = create_with(c, s, spec, body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.headers()[header::LOCATION].to_str().unwrap().to_string()
}

/// A body sent in two chunks, with no length announced.
fn two_chunks(a: &[u8], b: &[u8]) -> reqwest::Body {
    reqwest::Body::wrap_stream(futures_util::stream::iter([
        Ok::<_, std::io::Error>(a.to_vec()),
        Ok(b.to_vec()),
    ]))
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
    let (status, at) = offset_of(&c, &s, &loc).await;
    assert_eq!(status, StatusCode::OK);
    let at = at.unwrap();
    assert_eq!(at, 150_000);
    assert!(!s.path("in/t.bin").exists());
    let r = patch(at, data[at..].to_vec()).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(std::fs::read(s.path("in/t.bin")).unwrap(), data);
    assert!(common::partial_files(s.root.path()).is_empty());
    // Finished: HEAD still says where it is; an existing name is refused.
    assert_eq!(offset_of(&c, &s, &loc).await.1, Some(data.len()));
    assert_eq!(
        create("path aW4vdC5iaW4=").await.unwrap().status(),
        StatusCode::CONFLICT
    );
    // Termination.
    let r = create("filename Z29uZS5iaW4=").await.unwrap();
    let loc2 = r.headers()[header::LOCATION].to_str().unwrap().to_string();
    assert_eq!(given_up(&c, &s, &loc2).await, StatusCode::NO_CONTENT);
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

/// A PATCH that would take an upload past its announced length is 413,
/// and what the upload held is kept for the client to go on from.
#[tokio::test]
async fn a_patch_past_the_announced_length_is_refused_and_keeps_the_upload() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    let r = c
        .post(url(&s, "/.ferry/tus/"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "10")
        .header("Upload-Metadata", "filename dC5iaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let loc = r.headers()[header::LOCATION].to_str().unwrap().to_string();
    let patch = |offset: usize, body: &'static [u8]| {
        c.patch(url(&s, &loc))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset.to_string())
            .header(header::CONTENT_TYPE, "application/offset+octet-stream")
            .body(body)
            .send()
    };
    assert_eq!(
        patch(0, b"0123").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let r = patch(4, b"456789-too-much").await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(offset_of(&c, &s, &loc).await.1, Some(4));
    // Sent without a length (chunked), it is found out as it comes.
    let r = c
        .patch(url(&s, &loc))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "4")
        .header(header::CONTENT_TYPE, "application/offset+octet-stream")
        .body(two_chunks(b"4567", b"89-too-much"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let at = offset_of(&c, &s, &loc).await.1.unwrap();
    assert!((4..10).contains(&at), "{at}");
    assert!(!s.path("t.bin").exists());
    let rest: &'static [u8] = &b"0123456789"[at..];
    assert_eq!(
        patch(at, rest).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(std::fs::read(s.path("t.bin")).unwrap(), b"0123456789");
    // Bytes past the length with the creation: 413, and where the upload
    // is kept, for the client to go on from.
    let r = create_with(
        &c,
        &s,
        (10, "dS5iaW4="),
        two_chunks(b"01234", b"56789-too-much"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let loc = r.headers()[header::LOCATION].to_str().unwrap().to_string();
    let (status, at) = offset_of(&c, &s, &loc).await;
    assert_eq!(status, StatusCode::OK);
    let at = at.unwrap();
    assert!((1..10).contains(&at), "{at}");
    assert!(!s.path("u.bin").exists());
    s.stop().await;
}

/// A creation whose upload cannot be finished (the target appeared
/// meanwhile, and replacing it was not asked for) keeps what is there and
/// gives no `Location`: there is no upload left to go on with.
#[tokio::test]
async fn a_creation_refused_at_its_finish_names_no_upload_to_go_on_with() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let body = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(b"01234".to_vec())]),
        futures_util::stream::once(async move {
            let _ = wait.await;
            Ok(b"56789".to_vec())
        }),
    );
    let post = create_with(&c, &s, (10, "dy5iaW4="), reqwest::Body::wrap_stream(body)).send();
    let post = tokio::spawn(post);
    // The upload has begun once its first bytes are in its partial file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while common::partial_files(s.root.path()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no partial file");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    std::fs::write(s.path("w.bin"), "theirs").unwrap();
    go.send(()).unwrap();
    let r = post.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(
        r.headers().get(header::LOCATION).is_none(),
        "{:?}",
        r.headers()
    );
    assert_eq!(std::fs::read(s.path("w.bin")).unwrap(), b"theirs");
    assert!(common::partial_files(s.root.path()).is_empty());
    s.stop().await;
}

/// Two creations of the same target and length are two uploads: the one
/// that started over holds the partial file, and the first one's id then
/// names no upload (HEAD, PATCH and DELETE alike), so that neither client
/// ever goes on from, finishes with or removes the other's bytes.
#[tokio::test]
async fn an_upload_started_over_by_another_client_is_not_mixed_with_it() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    let first = created(&c, &s, (10, "eC5iaW4="), "AAAAA".into()).await;
    let second = created(&c, &s, (10, "eC5iaW4="), "BBBBB".into()).await;
    assert_ne!(first, second);
    let patch = |loc: &str, body: &'static [u8]| {
        c.patch(url(&s, loc))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", "5")
            .header(header::CONTENT_TYPE, "application/offset+octet-stream")
            .body(body)
            .send()
    };
    // The first client's id no longer names an upload.
    assert_eq!(offset_of(&c, &s, &first).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        patch(&first, b"aaaaa").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(given_up(&c, &s, &first).await, StatusCode::NOT_FOUND);
    // The second's is whole, and all its own.
    assert_eq!(offset_of(&c, &s, &second).await, (StatusCode::OK, Some(5)));
    assert_eq!(
        patch(&second, b"bbbbb").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(std::fs::read(s.path("x.bin")).unwrap(), b"BBBBBbbbbb");
    assert!(common::partial_files(s.root.path()).is_empty());
    s.stop().await;
}

/// A server stopped while a PATCH is coming in keeps what it took, and
/// what it had confirmed before: a tus upload goes on after a restart.
#[tokio::test]
async fn a_shutdown_during_a_patch_keeps_the_upload() {
    let s = TestServer::start(|c| c.shutdown_grace = std::time::Duration::from_millis(500)).await;
    let c = http();
    let loc = created(&c, &s, (100, "ci5iaW4="), vec![b'a'; 10].into()).await;
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: localhost\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 10\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: 90\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&[b'b'; 30]).await.unwrap();
    // The server holds what it took until the body ends or breaks off;
    // give it a moment to take them.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let root = s.stop().await;
    let mut want = vec![b'a'; 10];
    want.extend([b'b'; 30]);
    assert_eq!(
        std::fs::read(root.path().join(".r.bin.ferry-part")).unwrap(),
        want
    );
    assert!(!root.path().join("r.bin").exists());
}

/// Numbers are digits alone, and a header or metadata key given twice is
/// refused rather than one of its values guessed at: nothing is made.
#[tokio::test]
async fn signed_repeated_or_doubled_tus_headers_are_refused() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    let post = |headers: &[(&'static str, &'static str)]| {
        let mut r = c
            .post(url(&s, "/.ferry/tus/"))
            .header("Tus-Resumable", "1.0.0");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send()
    };
    let meta = ("Upload-Metadata", "filename ZC5iaW4=");
    for headers in [
        &[("Upload-Length", "+5"), meta][..],
        &[("Upload-Length", "-0"), meta],
        &[("Upload-Length", "5 6"), meta],
        &[("Upload-Length", "5"), ("Upload-Length", "99999"), meta],
        &[("Upload-Length", "5"), meta, meta],
        &[
            ("Upload-Length", "5"),
            ("Upload-Metadata", "filename ZC5iaW4=,filename ZS5iaW4="),
        ],
        // `overwrite x`: neither a yes nor a no.
        &[
            ("Upload-Length", "5"),
            ("Upload-Metadata", "filename ZC5iaW4=,overwrite eA=="),
        ],
    ] {
        let r = post(headers).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{headers:?}");
    }
    assert!(common::partial_files(s.root.path()).is_empty());
    // Leading zeros are a number like any other.
    let r = post(&[("Upload-Length", "05"), meta]).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let loc = r.headers()[header::LOCATION].to_str().unwrap().to_string();
    let r = c
        .patch(url(&s, &loc))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "+0")
        .header(header::CONTENT_TYPE, "application/offset+octet-stream")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(!s.path("d.bin").exists());
    s.stop().await;
}

/// A native upload of the same target that starts over (its bytes differ
/// from those held) makes a new partial file too, and the file it puts in
/// place is not the tus upload's: its id names no upload, and HEAD does
/// not take that file for the upload finished.
#[tokio::test]
async fn a_native_upload_that_starts_over_ends_the_tus_upload_of_that_name() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    let loc = created(&c, &s, (10, "bi5iaW4="), "LLL".into()).await;
    assert_eq!(offset_of(&c, &s, &loc).await, (StatusCode::OK, Some(3)));
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("n.bin");
    std::fs::write(&src, b"AAAAAAAAAA").unwrap();
    let resume = ferry::client::TransferOpts {
        force: false,
        resume: true,
    };
    let bar = indicatif::ProgressBar::hidden();
    let mut native = s.client().await;
    native.put_file(&src, "n.bin", resume, &bar).await.unwrap();
    assert_eq!(std::fs::read(s.path("n.bin")).unwrap(), b"AAAAAAAAAA");
    assert_eq!(offset_of(&c, &s, &loc).await.0, StatusCode::NOT_FOUND);
    s.stop().await;
}

/// A creation whose body is announced longer than the upload is refused
/// before it begins anything: the upload of that name under way is left
/// as it was.
#[tokio::test]
async fn a_creation_announced_too_long_leaves_the_upload_under_way_alone() {
    let s = TestServer::start(|_| {}).await;
    let c = http();
    let loc = created(&c, &s, (10, "ay5iaW4="), "abc".into()).await;
    let r = create_with(&c, &s, (10, "ay5iaW4="), vec![b'x'; 20].into())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.headers().get(header::LOCATION).is_none());
    assert_eq!(offset_of(&c, &s, &loc).await, (StatusCode::OK, Some(3)));
    assert_eq!(std::fs::read(s.path(".k.bin.ferry-part")).unwrap(), b"abc");
    s.stop().await;
}
