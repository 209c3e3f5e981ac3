//! Whatever already sits in the served folder at an upload's hidden
//! partial name (`.NAME.ferry-part`) is hostile: a symlink out of the root
//! (absolute or relative), a hard link to a file outside, a FIFO, a folder.
//! Through every upload door (native, classic, HTTP PUT, tus) the file
//! outside keeps its bytes, nothing about it is revealed (size, digest),
//! and no upload hangs.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bytes::BytesMut;
use common::TestServer;
use ferry::wire::frame::{Kind, encode_head};
use ferry::wire::messages::PutReady;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the file outside the root holds, and must still hold.
const SECRET: &[u8] = b"original secret bytes\n";
/// What is uploaded: it starts with the secret, so a server that offered
/// to resume from the outside file's bytes would be caught.
const UPLOAD: &[u8] = b"original secret bytes\nand what the upload adds\n";

#[derive(Debug, Clone, Copy)]
enum Plant {
    AbsoluteSymlink,
    RelativeSymlink,
    HardLink,
    Fifo,
    Folder,
}

const PLANTS: [Plant; 5] = [
    Plant::AbsoluteSymlink,
    Plant::RelativeSymlink,
    Plant::HardLink,
    Plant::Fifo,
    Plant::Folder,
];

/// A served folder beside `base/outside/victim.txt`, with `plant` at
/// `root/.victim.ferry-part`.
struct Scene {
    base: tempfile::TempDir,
}

impl Scene {
    /// The scene and the server on its root.
    async fn serve(plant: Plant) -> (Scene, TestServer) {
        let base = tempfile::tempdir().unwrap();
        let outside = base.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let root = tempfile::TempDir::new_in(base.path()).unwrap();
        let victim = outside.join("victim.txt");
        std::fs::write(&victim, SECRET).unwrap();
        let part = root.path().join(".victim.ferry-part");
        match plant {
            Plant::AbsoluteSymlink => std::os::unix::fs::symlink(&victim, &part).unwrap(),
            Plant::RelativeSymlink => {
                std::os::unix::fs::symlink("../outside/victim.txt", &part).unwrap()
            }
            Plant::HardLink => std::fs::hard_link(&victim, &part).unwrap(),
            Plant::Fifo => {
                let ok = Command::new("mkfifo").arg(&part).status().unwrap();
                assert!(ok.success());
            }
            Plant::Folder => {
                std::fs::create_dir(&part).unwrap();
                std::fs::write(part.join("inside"), b"keep me").unwrap();
            }
        }
        let s = TestServer::start_in(root, |_| {}).await;
        (Scene { base }, s)
    }

    fn outside(&self) -> PathBuf {
        self.base.path().join("outside")
    }

    /// The file outside is untouched, and the planted folder (if any)
    /// kept what it held.
    fn check_outside(&self, s: &TestServer, plant: Plant) {
        assert_eq!(
            std::fs::read(self.outside().join("victim.txt")).unwrap(),
            SECRET,
            "{plant:?}: the file outside the root was changed"
        );
        if let Plant::Folder = plant {
            let inside = s.path(".victim.ferry-part/inside");
            assert_eq!(std::fs::read(inside).unwrap(), b"keep me");
        }
    }

    /// After an upload that succeeded: the target holds exactly the upload.
    fn check_uploaded(&self, s: &TestServer, plant: Plant) {
        let got = std::fs::read(s.path("victim")).unwrap();
        assert_eq!(got, UPLOAD, "{plant:?}: the uploaded file is wrong");
        assert!(
            s.path(".victim.ferry-part").symlink_metadata().is_err(),
            "{plant:?}: something was left at the partial name"
        );
    }
}

fn frame(kind: Kind, json: &serde_json::Value, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_head(
        kind,
        &serde_json::to_vec(json).unwrap(),
        body.len() as u64,
        &mut b,
    );
    b.extend_from_slice(body);
    b.to_vec()
}

/// Reads one frame: its kind byte and JSON header.
async fn read_frame(s: &mut TcpStream) -> (u8, serde_json::Value) {
    let mut prefix = [0u8; 18];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut prefix))
        .await
        .expect("a reply in time")
        .unwrap();
    let hl = u32::from_be_bytes(prefix[6..10].try_into().unwrap()) as usize;
    let mut head = vec![0u8; hl];
    s.read_exact(&mut head).await.unwrap();
    (prefix[5], serde_json::from_slice(&head).unwrap())
}

/// The native door, frame by frame, with `resume` asked for: the offer
/// must start at 0 with no digest (nothing of the outside file), and the
/// upload completes.
async fn native(s: &TestServer) -> Result<(), String> {
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    t.write_all(&frame(
        Kind::Request,
        &serde_json::json!({"op": "hello", "versions": [1]}),
        b"",
    ))
    .await
    .unwrap();
    let (kind, _) = read_frame(&mut t).await;
    assert_eq!(kind, Kind::Ok as u8);
    let put =
        serde_json::json!({"op": "put", "path": "victim", "size": UPLOAD.len(), "resume": true});
    t.write_all(&frame(Kind::Request, &put, b"")).await.unwrap();
    let (kind, reply) = read_frame(&mut t).await;
    if kind == Kind::Error as u8 {
        return Err(reply.to_string());
    }
    let ready: PutReady = serde_json::from_value(reply).unwrap();
    assert_eq!(ready.offset, 0, "the outside file's size was offered");
    assert_eq!(
        ready.prefix_sha256, None,
        "the outside file's digest was sent"
    );
    let data = serde_json::json!({"op": "data", "offset": 0});
    t.write_all(&frame(Kind::Request, &data, UPLOAD))
        .await
        .unwrap();
    let sha = hex(&Sha256::digest(UPLOAD));
    let commit = serde_json::json!({"op": "commit", "sha256": sha});
    t.write_all(&frame(Kind::Request, &commit, b""))
        .await
        .unwrap();
    let (kind, reply) = read_frame(&mut t).await;
    if kind == Kind::Error as u8 {
        return Err(reply.to_string());
    }
    Ok(())
}

/// The classic door: `struct.pack('i', n)` + JSON + the bytes.
async fn classic(s: &TestServer) -> Result<(), String> {
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    let head = serde_json::to_vec(
        &serde_json::json!({"cmd": "put", "filename": "victim", "filesize": UPLOAD.len()}),
    )
    .unwrap();
    let mut out = (head.len() as i32).to_le_bytes().to_vec();
    out.extend_from_slice(&head);
    out.extend_from_slice(UPLOAD);
    t.write_all(&out).await.unwrap();
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), t.read_exact(&mut len))
        .await
        .expect("a reply in time")
        .unwrap();
    let mut reply = vec![0u8; i32::from_le_bytes(len) as usize];
    t.read_exact(&mut reply).await.unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    if reply["ok"] == true {
        Ok(())
    } else {
        Err(reply.to_string())
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// HTTP PUT of the whole file.
async fn http_put(s: &TestServer) -> Result<(), String> {
    let r = http()
        .put(format!("http://{}/victim", s.addr))
        .body(UPLOAD.to_vec())
        .send()
        .await
        .unwrap();
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "{} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ))
    }
}

/// tus: create, ask where the upload stands (it must be 0: the outside
/// file's size is not reported), then send the bytes.
async fn tus(s: &TestServer) -> Result<(), String> {
    let c = http();
    let meta = format!(
        "filename {}",
        base64_of(b"victim") // the target's name
    );
    let r = c
        .post(format!("http://{}/.ferry/tus/", s.addr))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", UPLOAD.len().to_string())
        .header("Upload-Metadata", meta)
        .send()
        .await
        .unwrap();
    if r.status() != StatusCode::CREATED {
        return Err(format!(
            "{} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ));
    }
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let url = format!("http://{}{location}", s.addr);
    let head = c
        .head(&url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["upload-offset"].to_str().unwrap(),
        "0",
        "tus HEAD reported the outside file's size"
    );
    let r = c
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .body(UPLOAD.to_vec())
        .send()
        .await
        .unwrap();
    if r.status() == StatusCode::NO_CONTENT {
        Ok(())
    } else {
        Err(format!(
            "{} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ))
    }
}

/// A tus HEAD for an upload nobody created, whose partial name holds the
/// plant: nothing of the outside file is reported.
async fn tus_head_only(s: &TestServer) -> String {
    // The upload URL names its target and length; make one as the page
    // would, without creating anything.
    let c = http();
    let r = c
        .post(format!("http://{}/.ferry/tus/", s.addr))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "1000")
        .header(
            "Upload-Metadata",
            format!("filename {}", base64_of(b"other")),
        )
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    // Point it at `victim` instead: the id carries the target and length,
    // signed; the signature no longer fits.
    let id = location.rsplit('/').next().unwrap();
    let (body, tag) = id.split_once('.').expect("a signed upload id");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let raw = base64::Engine::decode(&b64, body).unwrap();
    let text = String::from_utf8(raw).unwrap().replace("other", "victim");
    let forged = format!("{}.{tag}", base64::Engine::encode(&b64, text));
    let head = c
        .head(format!("http://{}/.ferry/tus/{forged}", s.addr))
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    head.headers()
        .get("upload-offset")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_else(|| head.status().to_string())
}

fn base64_of(b: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The upload doors.
#[derive(Debug, Clone, Copy)]
enum Door {
    Native,
    Classic,
    HttpPut,
    Tus,
}

impl Door {
    async fn upload(self, s: &TestServer) -> Result<(), String> {
        match self {
            Door::Native => native(s).await,
            Door::Classic => classic(s).await,
            Door::HttpPut => http_put(s).await,
            Door::Tus => tus(s).await,
        }
    }
}

/// Runs one door against every plant: a folder at the part name is
/// refused with a clear error, anything else is never followed and the
/// upload lands whole.
async fn every_plant(door: Door) {
    for plant in PLANTS {
        let (scene, s) = Scene::serve(plant).await;
        let result = tokio::time::timeout(Duration::from_secs(30), door.upload(&s))
            .await
            .unwrap_or_else(|_| panic!("{door:?} × {plant:?}: the upload hung"));
        scene.check_outside(&s, plant);
        match plant {
            Plant::Folder => {
                let e = result.expect_err("a folder at the part name must be refused");
                assert!(
                    e.contains("folder is in the way"),
                    "{door:?} × {plant:?}: unclear error: {e}"
                );
            }
            _ => {
                result.unwrap_or_else(|e| panic!("{door:?} × {plant:?}: {e}"));
                scene.check_uploaded(&s, plant);
            }
        }
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_put_never_follows_a_planted_part_file() {
    every_plant(Door::Native).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_put_never_follows_a_planted_part_file() {
    every_plant(Door::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_put_never_follows_a_planted_part_file() {
    every_plant(Door::HttpPut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_never_follows_a_planted_part_file() {
    every_plant(Door::Tus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_head_reports_nothing_of_a_planted_part_file() {
    for plant in [
        Plant::AbsoluteSymlink,
        Plant::RelativeSymlink,
        Plant::HardLink,
    ] {
        let (scene, s) = Scene::serve(plant).await;
        let offset = tus_head_only(&s).await;
        assert!(
            offset != SECRET.len().to_string(),
            "{plant:?}: tus HEAD answered the outside file's size"
        );
        assert_eq!(offset, "404 Not Found", "a forged upload id was answered");
        scene.check_outside(&s, plant);
        s.stop().await;
    }
}

/// A folder on the way that leads out of the root is refused, on every
/// door that writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_on_the_way_that_leads_outside_is_refused() {
    let (scene, s) = Scene::serve(Plant::Fifo).await;
    let outside = scene.outside();
    std::os::unix::fs::symlink(&outside, s.path("sub")).unwrap();
    let r = http()
        .put(format!("http://{}/sub/new.bin", s.addr))
        .body(UPLOAD.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let mut c = s.client().await;
    let local = scene.base.path().join("local.bin");
    std::fs::write(&local, UPLOAD).unwrap();
    let bar = indicatif::ProgressBar::hidden();
    assert!(
        c.put_file(&local, "sub/new.bin", Default::default(), &bar)
            .await
            .is_err()
    );
    assert!(!outside.join("new.bin").exists());
    scene.check_outside(&s, Plant::Fifo);
    s.stop().await;
}

/// A local user swaps a folder and a symlink out of the root back and
/// forth (RENAME_EXCHANGE) while mkdir, rm and mv name paths through that
/// folder: nothing outside is created, moved, replaced or removed.
#[test]
fn a_folder_swapped_for_a_symlink_mid_operation_changes_nothing_outside() {
    use ferry::files::{LocalDisk, RelPath, Storage};
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    let outside = base.path().join("outside");
    std::fs::create_dir_all(root.join("racedir")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("racelink")).unwrap();
    let store = LocalDisk::open(&root).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let root = root.clone();
        std::thread::spawn(move || {
            let dir = std::fs::File::open(&root).unwrap();
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = nix::fcntl::renameat2(
                    &dir,
                    "racedir",
                    &dir,
                    "racelink",
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
                swaps += 1;
            }
            swaps
        })
    };
    let rel = |s: &str| RelPath::parse(s).unwrap();
    let started = std::time::Instant::now();
    let mut tries = 0;
    while tries < 3000 && started.elapsed() < Duration::from_secs(10) {
        let _ = store.mkdir(&rel(&format!("racedir/made{tries}")));
        let _ = store.remove(&rel("racedir/secret.txt"), false);
        let _ = store.rename(
            &rel("racedir/secret.txt"),
            &rel(&format!("stolen{tries}")),
            false,
        );
        std::fs::write(root.join(format!("decoy{tries}")), b"OVERWRITTEN").unwrap();
        let _ = store.rename(
            &rel(&format!("decoy{tries}")),
            &rel("racedir/secret.txt"),
            true,
        );
        let _ = store.remove(&rel(&format!("racedir/made{tries}")), true);
        tries += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 100, "the folder was swapped only {swaps} times");
    let names: Vec<String> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["secret.txt"],
        "after {tries} tries and {swaps} swaps"
    );
    assert_eq!(std::fs::read(outside.join("secret.txt")).unwrap(), SECRET);
}

/// A FIFO, a socket or a device at a name is never replaced by an upload,
/// even one told to overwrite, and never read: every door refuses it as
/// forbidden (not as a server error).
#[tokio::test]
async fn special_files_in_the_served_folder_are_refused_not_replaced() {
    let s = TestServer::start(|_| {}).await;
    assert!(
        Command::new("mkfifo")
            .arg(s.path("fifo"))
            .status()
            .unwrap()
            .success()
    );
    let _sock = std::os::unix::net::UnixListener::bind(s.path("sock")).unwrap();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    std::fs::write(&src, UPLOAD).unwrap();
    let mut c = s.client().await;
    let force = ferry::client::TransferOpts {
        force: true,
        resume: true,
    };
    let hidden = indicatif::ProgressBar::hidden();
    for name in ["fifo", "sock"] {
        let err = c.put_file(&src, name, force, &hidden).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(ferry::wire::messages::ErrorCode::Forbidden),
            "{name}: {err}"
        );
        let r = http()
            .put(format!("http://{}/{name}", s.addr))
            .body(UPLOAD.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}");
        let r = http()
            .get(format!("http://{}/{name}", s.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{name}");
        let kind = std::fs::symlink_metadata(s.path(name)).unwrap().file_type();
        assert!(!kind.is_file(), "{name} was replaced");
    }
    let err = c
        .get_file("sock", &local.path().join("got"), force, &hidden)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(ferry::wire::messages::ErrorCode::Forbidden),
        "{err}"
    );
}
