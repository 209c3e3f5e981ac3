//! Interrupted transfers: cut connections, a server killed with SIGKILL in
//! the middle of an upload, and files past 4 GiB.

mod common;

use std::fs;
use std::time::Duration;

use common::{ProxyPlan, TestServer, noise, partial_files, sha256_file, spawn_bin_server};
use ferry::client::{Client, TransferOpts};
use indicatif::ProgressBar;

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn upload_cut_mid_transfer_resumes_and_verifies() {
    let s = TestServer::start(|_| {}).await;
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("big.bin");
    fs::write(&src, noise(8 * MIB, 7)).unwrap();

    let cut = ProxyPlan {
        cut_up_after: Some(3 * MIB as u64),
        cut_down_after: None,
        up_rate: None,
        down_rate: None,
    };
    let via = common::proxy(s.addr, cut).await;
    let mut c = Client::connect(&via.to_string(), None).await.unwrap();
    let err = c
        .put_file(
            &src,
            "big.bin",
            TransferOpts::default(),
            &ProgressBar::hidden(),
        )
        .await;
    let err = err.unwrap_err();
    assert!(err.is_transport());
    let said = err.to_string();
    assert!(
        said.contains("the upload stopped after") && said.contains("the same command resumes"),
        "{said}"
    );
    // Nothing visible under the real name; the partial bytes are kept hidden.
    assert!(!s.path("big.bin").exists());
    assert!(c_ls_names(&s).await.is_empty());
    // The server may still be writing the last chunks; wait for the bytes to settle.
    let parts = wait_for_partial(s.root.path()).await;
    assert_eq!(parts.len(), 1);

    let mut c = s.client().await;
    let done = c
        .put_file(
            &src,
            "big.bin",
            TransferOpts::default(),
            &ProgressBar::hidden(),
        )
        .await
        .unwrap();
    assert!(
        done.resumed_from > MIB as u64,
        "resumed from {}",
        done.resumed_from
    );
    assert_eq!(sha256_file(&s.path("big.bin")), sha256_file(&src));
    assert!(partial_files(s.root.path()).is_empty());
    s.stop().await;
}

async fn c_ls_names(s: &TestServer) -> Vec<String> {
    s.client()
        .await
        .ls("")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

async fn wait_for_partial(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut last = u64::MAX;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let parts = partial_files(dir);
        let size: u64 = parts
            .iter()
            .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        if !parts.is_empty() && size == last {
            return parts;
        }
        last = size;
    }
    partial_files(dir)
}

/// A client told to stop (Ctrl-C between the files of a folder) begins
/// no download: no partial file is made for the next file, and it says so.
#[tokio::test]
async fn a_client_told_to_stop_begins_no_download() {
    let s = TestServer::start(|_| {}).await;
    fs::write(s.path("next.bin"), noise(MIB, 4)).unwrap();
    let local = tempfile::tempdir().unwrap();
    let mut c = s.client().await;
    let stop = tokio_util::sync::CancellationToken::new();
    c.stop_on(stop.clone());
    stop.cancel();
    let dst = local.path().join("next.bin");
    let err = c
        .get_file(
            "next.bin",
            &dst,
            TransferOpts::default(),
            &ProgressBar::hidden(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ferry::client::ClientError::Interrupted(_)),
        "{err}"
    );
    assert!(err.to_string().contains("before"), "{err}");
    assert_eq!(fs::read_dir(local.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn download_cut_mid_transfer_resumes_and_verifies() {
    let s = TestServer::start(|_| {}).await;
    fs::write(s.path("big.bin"), noise(8 * MIB, 9)).unwrap();
    let local = tempfile::tempdir().unwrap();
    let dst = local.path().join("copy.bin");

    let cut = ProxyPlan {
        cut_up_after: None,
        cut_down_after: Some(5 * MIB as u64),
        up_rate: None,
        down_rate: None,
    };
    let via = common::proxy(s.addr, cut).await;
    let mut c = Client::connect(&via.to_string(), None).await.unwrap();
    let err = c
        .get_file(
            "big.bin",
            &dst,
            TransferOpts::default(),
            &ProgressBar::hidden(),
        )
        .await;
    let err = err.unwrap_err();
    assert!(err.is_transport());
    // Said as what it is: how far it got, and that it will resume.
    let said = err.to_string();
    let whole = format!("stopped after {} of {} bytes", partial_held(&dst), 8 * MIB);
    assert!(said.contains(&whole), "{said}");
    assert!(said.contains("the same command resumes"), "{said}");
    assert!(!dst.exists());
    assert_eq!(partial_files(local.path()).len(), 1);

    let mut c = s.client().await;
    let done = c
        .get_file(
            "big.bin",
            &dst,
            TransferOpts::default(),
            &ProgressBar::hidden(),
        )
        .await
        .unwrap();
    assert!(
        done.resumed_from > 4 * MIB as u64,
        "resumed from {}",
        done.resumed_from
    );
    assert_eq!(sha256_file(&dst), sha256_file(&s.path("big.bin")));
    assert!(partial_files(local.path()).is_empty());

    // A partial file that is not the start of the remote file is detected
    // and the download starts over.
    let dst2 = local.path().join("other.bin");
    fs::write(
        ferry::files::part::part_path(&dst2),
        b"definitely not the same bytes",
    )
    .unwrap();
    let done = c
        .get_file(
            "big.bin",
            &dst2,
            TransferOpts::default(),
            &ProgressBar::hidden(),
        )
        .await
        .unwrap();
    assert_eq!(done.resumed_from, 0);
    assert_eq!(sha256_file(&dst2), sha256_file(&s.path("big.bin")));
    // And --no-resume ignores what is there.
    let dst3 = local.path().join("fresh.bin");
    fs::write(
        ferry::files::part::part_path(&dst3),
        &noise(8 * MIB, 9)[..MIB],
    )
    .unwrap();
    let fresh = TransferOpts {
        force: false,
        resume: false,
    };
    let done = c
        .get_file("big.bin", &dst3, fresh, &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(done.resumed_from, 0);
    s.stop().await;
}

#[tokio::test]
async fn server_killed_mid_upload_loses_nothing_and_resume_completes() {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("payload.bin");
    fs::write(&src, noise(24 * MIB, 3)).unwrap();

    let mut server = spawn_bin_server(root.path(), &["--allow-upload"], &[]);
    let target = format!("127.0.0.1:{}", server.port).parse().unwrap();
    // Slow the upload down so that the kill lands in the middle of it.
    let upload = common::slow_put(target, 8 * MIB as u64, &src, "payload.bin").await;
    let mut waited = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
        let held: u64 = partial_files(root.path())
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        if held > 2 * MIB as u64 {
            break;
        }
        assert!(waited < 200, "upload never started");
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    assert!(upload.await.unwrap().is_err());
    assert!(
        !root.path().join("payload.bin").exists(),
        "a partial file became visible"
    );
    let held = fs::metadata(&partial_files(root.path())[0]).unwrap().len();
    assert!(held > 0 && held < 24 * MIB as u64);

    let server = spawn_bin_server(root.path(), &["--allow-upload"], &[]);
    let mut c = Client::connect(&format!("127.0.0.1:{}", server.port), None)
        .await
        .unwrap();
    assert!(
        c.ls("").await.unwrap().is_empty(),
        "the partial upload must not be listed"
    );
    let done = c
        .put_file(
            &src,
            "payload.bin",
            TransferOpts::default(),
            &ProgressBar::hidden(),
        )
        .await
        .unwrap();
    assert!(
        done.resumed_from >= 2 * MIB as u64,
        "resumed from {}",
        done.resumed_from
    );
    // Verified with BLAKE3, which the server offers, across the resume.
    assert_eq!(done.algo, ferry::files::digest::Algo::Blake3);
    assert_eq!(done.digest, common::blake3_file(&src));
    assert_eq!(
        sha256_file(&root.path().join("payload.bin")),
        sha256_file(&src)
    );
    assert!(partial_files(root.path()).is_empty());
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// Offsets and sizes past 4 GiB, both ways, without moving 4 GiB: sparse
/// files stand in for the bytes already transferred.
#[tokio::test]
async fn files_larger_than_4_gib_resume_past_the_32_bit_boundary() {
    let four_gib = 4u64 << 30;
    let tail = noise(MIB, 11);
    let s = TestServer::start(|_| {}).await;
    {
        let f = fs::File::create(s.path("huge.bin")).unwrap();
        f.set_len(four_gib).unwrap();
        use std::io::{Seek, SeekFrom, Write};
        let mut f = f;
        f.seek(SeekFrom::Start(four_gib)).unwrap();
        f.write_all(&tail).unwrap();
    }
    let local = tempfile::tempdir().unwrap();
    let dst = local.path().join("huge.bin");
    fs::File::create(ferry::files::part::part_path(&dst))
        .unwrap()
        .set_len(four_gib)
        .unwrap();

    let mut c = s.client().await;
    let st = c.stat("huge.bin").await.unwrap();
    assert_eq!(st.size, four_gib + MIB as u64);
    let got = c
        .get_file(
            "huge.bin",
            &dst,
            TransferOpts::default(),
            &ProgressBar::hidden(),
        )
        .await
        .unwrap();
    assert_eq!(got.resumed_from, four_gib);
    assert_eq!(got.size, four_gib + MIB as u64);
    assert_eq!(fs::metadata(&dst).unwrap().len(), four_gib + MIB as u64);
    let mut f = fs::File::open(&dst).unwrap();
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(four_gib)).unwrap();
    let mut back = Vec::new();
    f.read_to_end(&mut back).unwrap();
    assert_eq!(back, tail);

    // Upload direction: the server holds the first 4 GiB as a partial file.
    fs::File::create(ferry::files::part::part_path(&s.path("up.bin")))
        .unwrap()
        .set_len(four_gib)
        .unwrap();
    let put = c
        .put_file(
            &dst,
            "up.bin",
            TransferOpts::default(),
            &ProgressBar::hidden(),
        )
        .await
        .unwrap();
    assert_eq!(put.resumed_from, four_gib);
    assert_eq!(put.digest, got.digest);
    assert_eq!(
        fs::metadata(s.path("up.bin")).unwrap().len(),
        four_gib + MIB as u64
    );
    s.stop().await;
}

/// Bytes in the partial file kept for `target`.
fn partial_held(target: &std::path::Path) -> u64 {
    let part = ferry::files::part::part_path(target);
    fs::metadata(part).unwrap().len()
}
