//! Every files operation through the public client API against a real
//! server on loopback, including folders full of hostile names.

mod common;

use std::fs;
use std::os::unix::fs::symlink;

use common::{TestServer, partial_files, sha256_file};
use ferry::client::local::walk_local;
use ferry::client::{ClientError, TransferOpts};
use ferry::wire::messages::{EntryKind, ErrorCode, SkipReason};
use indicatif::ProgressBar;

fn quiet() -> ProgressBar {
    ProgressBar::hidden()
}

fn code(e: ClientError) -> ErrorCode {
    e.code()
        .unwrap_or_else(|| panic!("expected a remote error, got {e}"))
}

#[tokio::test]
async fn ls_stat_mkdir_mv_rm() {
    let s = TestServer::start(|_| {}).await;
    fs::write(s.path("a.txt"), b"alpha").unwrap();
    fs::create_dir(s.path("docs")).unwrap();
    let mut c = s.client().await;

    let names: Vec<_> = c
        .ls("/")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    assert_eq!(
        names,
        vec![
            ("a.txt".into(), EntryKind::File),
            ("docs".into(), EntryKind::Dir)
        ]
    );
    let st = c.stat("a.txt").await.unwrap();
    assert_eq!((st.size, st.kind), (5, EntryKind::File));
    assert_eq!(
        code(c.stat("missing").await.unwrap_err()),
        ErrorCode::NotFound
    );
    assert_eq!(
        code(c.ls("a.txt").await.unwrap_err()),
        ErrorCode::NotADirectory
    );

    c.mkdir("docs/x/y", true).await.unwrap();
    assert!(s.path("docs/x/y").is_dir());
    c.mkdir("docs/x/y", true).await.unwrap();
    assert_eq!(
        code(c.mkdir("docs/x/y", false).await.unwrap_err()),
        ErrorCode::Exists
    );
    assert_eq!(
        code(c.mkdir("nope/deeper", false).await.unwrap_err()),
        ErrorCode::NotFound
    );

    c.mv("a.txt", "docs/b.txt", false).await.unwrap();
    assert!(!s.path("a.txt").exists());
    assert_eq!(fs::read(s.path("docs/b.txt")).unwrap(), b"alpha");
    fs::write(s.path("c.txt"), b"c").unwrap();
    assert_eq!(
        code(c.mv("c.txt", "docs/b.txt", false).await.unwrap_err()),
        ErrorCode::Exists
    );
    c.mv("c.txt", "docs/b.txt", true).await.unwrap();
    assert_eq!(fs::read(s.path("docs/b.txt")).unwrap(), b"c");
    assert_eq!(
        code(c.mv("docs", "docs/x/inside", false).await.unwrap_err()),
        ErrorCode::Forbidden
    );

    assert_eq!(
        code(c.rm("docs", false).await.unwrap_err()),
        ErrorCode::NotEmpty
    );
    c.rm("docs/b.txt", false).await.unwrap();
    c.rm("docs", true).await.unwrap();
    assert!(!s.path("docs").exists());
    assert_eq!(
        code(c.rm("/", true).await.unwrap_err()),
        ErrorCode::Forbidden
    );
    assert!(s.root.path().exists());
    s.stop().await;
}

#[tokio::test]
async fn put_get_round_trip_with_mtime_and_force() {
    let s = TestServer::start(|_| {}).await;
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("data.bin");
    fs::write(&src, common::noise(3 * 1024 * 1024 + 7, 1)).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
    fs::File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut c = s.client().await;

    let up = c
        .put_file(&src, "data.bin", TransferOpts::default(), &quiet())
        .await
        .unwrap();
    // BLAKE3, which the server offers, unless SHA-256 is asked for.
    assert_eq!(up.algo, ferry::files::digest::Algo::Blake3);
    assert_eq!(up.digest, common::blake3_file(&src));
    assert_eq!(sha256_file(&s.path("data.bin")), sha256_file(&src));
    assert_eq!(
        fs::metadata(s.path("data.bin"))
            .unwrap()
            .modified()
            .unwrap(),
        old
    );

    let again = c
        .put_file(&src, "data.bin", TransferOpts::default(), &quiet())
        .await;
    assert_eq!(code(again.unwrap_err()), ErrorCode::Exists);
    fs::write(&src, b"new contents").unwrap();
    let forced = TransferOpts {
        force: true,
        resume: true,
    };
    c.put_file(&src, "data.bin", forced, &quiet())
        .await
        .unwrap();
    assert_eq!(fs::read(s.path("data.bin")).unwrap(), b"new contents");

    let dst = local.path().join("back.bin");
    c.verify_with_sha256();
    let down = c
        .get_file("data.bin", &dst, TransferOpts::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(fs::read(&dst).unwrap(), b"new contents");
    assert_eq!(down.algo, ferry::files::digest::Algo::Sha256);
    assert_eq!(down.digest, sha256_file(&dst));
    let twice = c
        .get_file("data.bin", &dst, TransferOpts::default(), &quiet())
        .await;
    assert!(matches!(twice, Err(ClientError::Exists(_))));
    c.get_file("data.bin", &dst, forced, &quiet())
        .await
        .unwrap();

    // Empty files and folders-as-files.
    let empty = local.path().join("empty");
    fs::write(&empty, b"").unwrap();
    c.put_file(&empty, "empty", TransferOpts::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(fs::metadata(s.path("empty")).unwrap().len(), 0);
    fs::create_dir(s.path("dir")).unwrap();
    let e = c
        .get_file(
            "dir",
            &local.path().join("d"),
            TransferOpts::default(),
            &quiet(),
        )
        .await;
    assert_eq!(code(e.unwrap_err()), ErrorCode::IsADirectory);
    assert!(partial_files(local.path()).is_empty());
    assert!(partial_files(s.root.path()).is_empty());
    s.stop().await;
}

#[tokio::test]
async fn permissions_are_enforced() {
    let s = TestServer::start(|c| {
        c.granted.upload = false;
        c.granted.delete = false;
        c.anonymous = c.granted;
    })
    .await;
    fs::write(s.path("keep.txt"), b"keep").unwrap();
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("x");
    fs::write(&src, b"x").unwrap();
    let mut c = s.client().await;
    assert!(
        c.hello().await.unwrap().permissions.read && !c.hello().await.unwrap().permissions.upload
    );
    let e = c
        .put_file(&src, "x", TransferOpts::default(), &quiet())
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::Forbidden);
    assert_eq!(
        code(c.rm("keep.txt", false).await.unwrap_err()),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(c.mkdir("new", false).await.unwrap_err()),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(c.mv("keep.txt", "moved", false).await.unwrap_err()),
        ErrorCode::Forbidden
    );
    assert!(s.path("keep.txt").exists() && !s.path("x").exists() && !s.path("new").exists());
    assert!(partial_files(s.root.path()).is_empty());

    // Upload without delete: new files yes, overwriting no.
    let s2 = TestServer::start(|c| {
        c.granted.delete = false;
        c.anonymous = c.granted;
    })
    .await;
    fs::write(s2.path("x"), b"old").unwrap();
    let mut c2 = s2.client().await;
    let forced = TransferOpts {
        force: true,
        resume: true,
    };
    assert_eq!(
        code(c2.put_file(&src, "x", forced, &quiet()).await.unwrap_err()),
        ErrorCode::Forbidden
    );
    assert_eq!(fs::read(s2.path("x")).unwrap(), b"old");
    c2.put_file(&src, "y", TransferOpts::default(), &quiet())
        .await
        .unwrap();
    assert!(partial_files(s2.root.path()).is_empty());
    // Nor a folder upload asked to overwrite: the plan is refused with the
    // reason, while one that replaces nothing still passes.
    let entry = |path: &str| ferry::wire::messages::TreeEntry {
        path: path.into(),
        kind: ferry::wire::messages::EntryKind::File,
        size: 3,
        mtime: None,
    };
    assert_eq!(
        code(
            c2.plan("", &[entry("x"), entry("z")], true)
                .await
                .unwrap_err()
        ),
        ErrorCode::Forbidden
    );
    c2.plan("", &[entry("z")], true).await.unwrap();
}

#[tokio::test]
async fn folders_with_hostile_names_round_trip() {
    let s = TestServer::start(|c| c.showing.hidden = true).await;
    let local = tempfile::tempdir().unwrap();
    let top = local.path().join("tree");
    fs::create_dir(&top).unwrap();
    common::hostile_tree(&top);
    // A link inside the folder is sent as the file; a link out is skipped.
    symlink(top.join(".dotfile"), top.join("link-in")).unwrap();
    symlink("/etc/hostname", top.join("link-out")).unwrap();

    let tree = walk_local(&top).unwrap();
    assert!(
        tree.skipped
            .iter()
            .any(|s| s.path == "link-out" && s.why == SkipReason::LinkOut)
    );
    let mut c = s.client().await;
    c.plan("up", &tree.entries, false).await.unwrap();
    c.mkdir("up", true).await.unwrap();
    for (e, p) in tree.entries.iter().zip(&tree.paths) {
        let target = format!("up/{}", e.path);
        if e.kind == EntryKind::Dir {
            c.mkdir(&target, true).await.unwrap();
        } else {
            c.put_file(p, &target, TransferOpts::default(), &quiet())
                .await
                .unwrap();
        }
    }
    assert_eq!(
        fs::read(s.path("up/emoji 😀.txt")).unwrap(),
        "emoji 😀.txt".as_bytes()
    );
    assert_eq!(fs::read(s.path("up/link-in")).unwrap(), b".dotfile");
    assert!(!s.path("up/link-out").exists());

    // And back down, through walk.
    let walked = c.walk("up").await.unwrap();
    assert_eq!(walked.entries.len(), tree.entries.len());
    assert!(walked.skipped.is_empty(), "{:?}", walked.skipped);
    let down = local.path().join("down");
    for e in &walked.entries {
        let p = down.join(&e.path);
        if e.kind == EntryKind::Dir {
            fs::create_dir_all(&p).unwrap();
        } else {
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            c.get_file(
                &format!("up/{}", e.path),
                &p,
                TransferOpts::default(),
                &quiet(),
            )
            .await
            .unwrap();
        }
    }
    for e in walked.entries.iter().filter(|e| e.kind == EntryKind::File) {
        assert_eq!(
            sha256_file(&down.join(&e.path)),
            sha256_file(&s.path(&format!("up/{}", e.path)))
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn a_batch_with_one_bad_name_writes_nothing() {
    let s = TestServer::start(|_| {}).await;
    let local = tempfile::tempdir().unwrap();
    let top = local.path().join("tree");
    fs::create_dir(&top).unwrap();
    common::hostile_tree(&top);
    fs::write(top.join("new\nline.txt"), b"x").unwrap();
    // The local walk refuses the whole folder, naming the file escaped.
    let err = walk_local(&top).unwrap_err().to_string();
    assert!(err.contains("new\\nline.txt"), "{err}");

    // A client that skips its own checks is refused by the server the same way.
    let mut tree = walk_local(&local.path().join("tree").join("sub dir"))
        .unwrap()
        .entries;
    tree.push(ferry::wire::messages::TreeEntry {
        path: "../escape".into(),
        kind: EntryKind::File,
        size: 1,
        mtime: None,
    });
    let mut c = s.client().await;
    assert_eq!(
        code(c.plan("up", &tree, false).await.unwrap_err()),
        ErrorCode::InvalidName
    );
    let dup = vec![
        ferry::wire::messages::TreeEntry {
            path: "A".into(),
            kind: EntryKind::File,
            size: 1,
            mtime: None,
        },
        ferry::wire::messages::TreeEntry {
            path: "a".into(),
            kind: EntryKind::File,
            size: 1,
            mtime: None,
        },
    ];
    // Names that differ only in case are two files on this disk, which
    // keeps them apart; the same name twice is refused anywhere.
    c.plan("up", &dup, false).await.unwrap();
    let twice = [dup[1].clone(), dup[1].clone()];
    let e = c.plan("up", &twice, false).await.unwrap_err();
    assert_eq!(code(e), ErrorCode::InvalidName);
    fs::create_dir(s.path("up")).unwrap();
    fs::write(s.path("up/A"), b"there").unwrap();
    let one = &dup[..1];
    assert_eq!(
        code(c.plan("up", one, false).await.unwrap_err()),
        ErrorCode::Exists
    );
    c.plan("up", one, true).await.unwrap();
    assert_eq!(fs::read_dir(s.path("up")).unwrap().count(), 1);
    s.stop().await;
}

#[tokio::test]
async fn symlinks_are_followed_only_inside_the_root() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"secret").unwrap();
    let s = TestServer::start(|_| {}).await;
    fs::write(s.path("real.txt"), b"real").unwrap();
    symlink(s.path("real.txt"), s.path("inside-link")).unwrap();
    symlink(outside.path().join("secret"), s.path("outside-link")).unwrap();
    symlink(outside.path(), s.path("outside-dir")).unwrap();
    fs::write(s.path("bad\nname"), b"hidden from listings").unwrap();
    let mut c = s.client().await;

    let ls = c.ls("").await.unwrap();
    let kind = |n: &str| ls.iter().find(|e| e.name == n).map(|e| e.kind);
    assert_eq!(kind("inside-link"), Some(EntryKind::File));
    assert_eq!(kind("outside-link"), Some(EntryKind::Symlink));
    assert_eq!(kind("bad\nname"), None);
    let local = tempfile::tempdir().unwrap();
    let got = c
        .get_file(
            "inside-link",
            &local.path().join("a"),
            TransferOpts::default(),
            &quiet(),
        )
        .await;
    assert!(got.is_ok());
    for path in ["outside-link", "outside-dir/secret"] {
        let e = c
            .get_file(
                path,
                &local.path().join("b"),
                TransferOpts::default(),
                &quiet(),
            )
            .await;
        assert_eq!(code(e.unwrap_err()), ErrorCode::Forbidden, "{path}");
    }
    assert_eq!(
        code(c.ls("outside-dir").await.unwrap_err()),
        ErrorCode::Forbidden
    );
    // Writing through a link that leaves the root is refused too.
    let src = local.path().join("a");
    let e = c
        .put_file(
            &src,
            "outside-dir/planted",
            TransferOpts::default(),
            &quiet(),
        )
        .await;
    assert_eq!(code(e.unwrap_err()), ErrorCode::Forbidden);
    assert!(!outside.path().join("planted").exists());
    // Removing a link removes the link, never its target.
    c.rm("outside-link", false).await.unwrap();
    assert!(outside.path().join("secret").exists());
    let walked = c.walk("").await.unwrap();
    let paths: Vec<_> = walked.entries.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"inside-link"));
    assert!(!paths.iter().any(|p| p.starts_with("outside")));
    // The link out is named as left out, not passed over in silence.
    assert!(
        walked
            .skipped
            .iter()
            .any(|s| s.path == "outside-dir" && s.why == SkipReason::LinkOut),
        "{:?}",
        walked.skipped
    );
    s.stop().await;
}

#[tokio::test]
async fn abandoned_partial_uploads_are_swept_after_their_age() {
    use ferry::files::part::part_path;
    let s = TestServer::start(|c| c.partial_max_age = std::time::Duration::from_secs(86_400)).await;
    fs::create_dir(s.path("deep")).unwrap();
    let old = part_path(&s.path("deep/old.bin"));
    let fresh = part_path(&s.path("fresh.bin"));
    fs::write(&old, b"abandoned").unwrap();
    fs::write(&fresh, b"recent").unwrap();
    let week_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(8 * 86_400);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(week_ago)
        .unwrap();
    // The server sweeps at start; give it a moment.
    for _ in 0..40 {
        if !old.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!old.exists(), "an abandoned partial file was left");
    assert!(
        fresh.exists(),
        "a recent partial file (still resumable) was removed"
    );
    // And the recent one still resumes.
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("fresh.bin");
    fs::write(&src, b"recent bytes, and more").unwrap();
    let mut c = s.client().await;
    let t = c
        .put_file(&src, "fresh.bin", TransferOpts::default(), &quiet())
        .await
        .unwrap();
    assert_eq!(t.resumed_from, 6);
    s.stop().await;
}

/// A walk of paths near the 4 KiB limit is sent in frames that fit the
/// header cap: 64 such entries to a frame would not.
#[tokio::test]
async fn a_walk_of_long_paths_fits_its_frames() {
    let s = TestServer::start(|_| {}).await;
    let mut deep = s.path("");
    let mut rel = String::new();
    for i in 0..15 {
        let name = format!("{i:x>250}");
        deep.push(&name);
        rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
    }
    fs::create_dir_all(&deep).unwrap();
    for i in 0..70 {
        fs::write(deep.join(format!("{i:f>200}")), b"x").unwrap();
    }
    let mut c = s.client().await;
    let walked = c.walk("").await.unwrap();
    assert_eq!(walked.entries.len(), 15 + 70);
    let last = walked.entries.last().unwrap();
    assert!(last.path.len() > 3900, "{}", last.path.len());
    assert!(last.path.starts_with(&rel));
    s.stop().await;
}
