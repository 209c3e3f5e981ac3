use super::*;
use crate::access::{Action, Denied, Policy, Rights, Who};
use crate::files::{Files, LocalDisk, RelPath};

/// A body of `chunks`, then the end, or `fail` as an error.
pub(super) struct Chunks {
    chunks: Vec<Vec<u8>>,
    fail: bool,
}

impl BodySource for Chunks {
    type Error = io::Error;

    async fn read_into(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        if self.chunks.is_empty() {
            return if self.fail {
                Err(io::ErrorKind::ConnectionReset.into())
            } else {
                Ok(0)
            };
        }
        let c = self.chunks.remove(0);
        buf.extend_from_slice(&c);
        Ok(c.len())
    }
}

pub(super) fn body(parts: &[&[u8]], fail: bool) -> Chunks {
    Chunks {
        chunks: parts.iter().map(|p| p.to_vec()).collect(),
        fail,
    }
}

pub(super) fn service(
    dir: &std::path::Path,
    delete: bool,
    max: Option<u64>,
    abort: CancellationToken,
) -> Files {
    stalling_after(dir, delete, max, abort, Duration::from_secs(5))
}

/// [`service`], with a body's stall deadline of `stall`.
pub(super) fn stalling_after(
    dir: &std::path::Path,
    delete: bool,
    max: Option<u64>,
    abort: CancellationToken,
    stall: Duration,
) -> Files {
    let holder = Rights {
        read: true,
        upload: true,
        delete,
        ..Rights::default()
    };
    let policy = Policy::simple(
        Rights {
            read: true,
            ..Rights::default()
        },
        holder,
        true,
    );
    let store = std::sync::Arc::new(LocalDisk::open(dir).unwrap());
    Files::new(store, policy, max, stall, abort)
}

/// Begins an upload that must begin.
pub(super) async fn begin(files: &Files, rel: &RelPath, opts: UploadOptions) -> Upload {
    files
        .begin_upload(Who::TokenHolder, rel, opts)
        .await
        .unwrap()
}

pub(super) fn parts_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(super::super::name::PART_SUFFIX))
        .collect()
}

#[tokio::test]
async fn an_upload_is_checked_received_and_moved_into_place() {
    let d = tempfile::tempdir().unwrap();
    let files = service(d.path(), false, None, CancellationToken::new());
    let rel = RelPath::parse("a.txt").unwrap();
    let opts = UploadOptions::new(Some(5));
    let e = files
        .begin_upload(Who::Anonymous, &rel, opts)
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        FilesError::Denied(Denied::NeedsToken(Action::Create))
    ));
    let mut up = begin(&files, &rel, opts).await;
    up.start(0).await.unwrap();
    assert_eq!(
        up.receive(&mut body(&[b"he", b"llo"], false))
            .await
            .unwrap(),
        5
    );
    let sha = up.finish(None, None).await.unwrap();
    assert_eq!(sha.len(), 64);
    assert_eq!(std::fs::read(d.path().join("a.txt")).unwrap(), b"hello");
    // Replacing needs delete, which this holder lacks; without
    // overwrite, an existing file refuses.
    let over = UploadOptions {
        overwrite: true,
        ..opts
    };
    let e = files
        .begin_upload(Who::TokenHolder, &rel, over)
        .await
        .unwrap_err();
    assert!(
        matches!(e, FilesError::Denied(Denied::Forbidden(Action::Replace))),
        "{e}"
    );
    let e = files
        .begin_upload(Who::TokenHolder, &rel, opts)
        .await
        .unwrap_err();
    assert!(matches!(e, FilesError::Exists(_)), "{e}");
    assert!(parts_in(d.path()).is_empty());
}

#[tokio::test]
async fn an_upload_refused_at_the_end_keeps_nothing() {
    let d = tempfile::tempdir().unwrap();
    let files = service(d.path(), true, None, CancellationToken::new());
    let keep = UploadOptions {
        on_break: OnBreak::Keep,
        ..UploadOptions::new(Some(4))
    };
    // The name is taken while the body comes (a folder or a file made
    // by someone else): refused, and no partial file stays behind,
    // even for a door that resumes.
    for (name, taken_by_folder) in [("t.txt", true), ("u.txt", false)] {
        let rel = RelPath::parse(name).unwrap();
        let mut up = begin(&files, &rel, keep).await;
        up.start(0).await.unwrap();
        up.receive(&mut body(&[b"abcd"], false)).await.unwrap();
        if taken_by_folder {
            std::fs::create_dir(d.path().join(name)).unwrap();
        } else {
            std::fs::write(d.path().join(name), b"theirs").unwrap();
        }
        let e = up.finish(None, None).await.unwrap_err();
        assert!(
            matches!(e, FilesError::Exists(_) | FilesError::Io(_)),
            "{e}"
        );
        assert!(parts_in(d.path()).is_empty(), "{name}");
    }
    assert_eq!(std::fs::read(d.path().join("u.txt")).unwrap(), b"theirs");
    // A wrong digest is refused the same way.
    let rel = RelPath::parse("v.txt").unwrap();
    let mut up = begin(&files, &rel, keep).await;
    up.start(0).await.unwrap();
    up.receive(&mut body(&[b"abcd"], false)).await.unwrap();
    let e = up.finish(Some("00".repeat(32)), None).await.unwrap_err();
    assert!(matches!(e, FilesError::Checksum(_)), "{e}");
    assert!(parts_in(d.path()).is_empty());
}

#[tokio::test]
async fn a_broken_body_is_kept_only_where_the_door_can_resume() {
    let d = tempfile::tempdir().unwrap();
    let files = service(d.path(), true, None, CancellationToken::new());
    let rel = RelPath::parse("b.bin").unwrap();
    for (on_break, kept) in [(OnBreak::Discard, false), (OnBreak::Keep, true)] {
        let opts = UploadOptions {
            on_break,
            ..UploadOptions::new(Some(10))
        };
        let mut up = begin(&files, &rel, opts).await;
        up.start(0).await.unwrap();
        let r = up.receive(&mut body(&[b"abcd"], true)).await;
        assert!(matches!(r, Err(Broke::Lost(_))));
        drop(up);
        assert_eq!(!parts_in(d.path()).is_empty(), kept, "{on_break:?}");
    }
    // Going on from what was kept: the digest of the held bytes, then
    // the rest.
    let opts = UploadOptions {
        resume: true,
        on_break: OnBreak::Keep,
        ..UploadOptions::new(Some(10))
    };
    let mut up = begin(&files, &rel, opts).await;
    assert_eq!(up.held(), 4);
    assert!(
        up.held_digest(crate::files::digest::Algo::Sha256)
            .await
            .unwrap()
            .is_some()
    );
    up.start(4).await.unwrap();
    up.receive(&mut body(&[b"efghij"], false)).await.unwrap();
    up.finish(None, None).await.unwrap();
    assert_eq!(
        std::fs::read(d.path().join("b.bin")).unwrap(),
        b"abcdefghij"
    );
    assert!(parts_in(d.path()).is_empty());
}

#[tokio::test]
async fn too_much_shutdown_and_an_empty_start_leave_nothing() {
    let d = tempfile::tempdir().unwrap();
    let abort = CancellationToken::new();
    let files = service(d.path(), true, Some(6), abort.clone());
    let rel = RelPath::parse("c.bin").unwrap();
    let keep = UploadOptions {
        on_break: OnBreak::Keep,
        ..UploadOptions::new(None)
    };
    // Past the server's limit, with no size announced.
    let mut up = begin(&files, &rel, keep).await;
    up.start(0).await.unwrap();
    let r = up.receive(&mut body(&[b"1234", b"5678"], false)).await;
    assert!(matches!(r, Err(Broke::TooLarge(_))), "{r:?}");
    drop(up);
    assert!(parts_in(d.path()).is_empty());
    // More than announced.
    let mut up = files
        .begin_upload(
            Who::TokenHolder,
            &rel,
            UploadOptions {
                size: Some(2),
                ..keep
            },
        )
        .await
        .unwrap();
    up.start(0).await.unwrap();
    let r = up.receive(&mut body(&[b"123"], false)).await;
    assert!(matches!(r, Err(Broke::TooLarge(_))), "{r:?}");
    drop(up);
    assert!(parts_in(d.path()).is_empty());
    // Past the announced size after some good bytes: a door that
    // resumes keeps those, not the chunk that went past.
    let other = RelPath::parse("e.bin").unwrap();
    let sized = UploadOptions {
        size: Some(4),
        ..keep
    };
    let mut up = begin(&files, &other, sized).await;
    up.start(0).await.unwrap();
    let r = up.receive(&mut body(&[b"ab", b"cde"], false)).await;
    assert!(matches!(r, Err(Broke::TooLarge(_))), "{r:?}");
    drop(up);
    let held = std::fs::read(d.path().join(".e.bin.ferry-part")).unwrap();
    assert_eq!(held, b"ab");
    std::fs::remove_file(d.path().join(".e.bin.ferry-part")).unwrap();
    // Shutting down.
    abort.cancel();
    let mut up = begin(&files, &rel, keep).await;
    up.start(0).await.unwrap();
    let r = up.receive(&mut body(&[b"12"], false)).await;
    assert!(matches!(r, Err(Broke::ShuttingDown)), "{r:?}");
    drop(up);
    assert!(parts_in(d.path()).is_empty());
    // Dropped before any byte: no empty partial file either, unless
    // kept on purpose.
    let up = begin(&files, &rel, keep).await;
    drop(up);
    assert!(parts_in(d.path()).is_empty());
    let up = begin(&files, &rel, keep).await;
    up.keep();
    assert_eq!(parts_in(d.path()).len(), 1);
    // Going on needs something held; a new name has nothing.
    let other = RelPath::parse("d.bin").unwrap();
    let cont = UploadOptions {
        continuing: true,
        resume: true,
        ..keep
    };
    let e = files
        .begin_upload(Who::TokenHolder, &other, cont)
        .await
        .unwrap_err();
    assert!(matches!(e, FilesError::NotFound(_)), "{e}");
}

/// A second upload of a name waits for the first to let go (a client
/// killed and run again), and is refused as busy only when the first
/// goes on holding it.
#[tokio::test]
async fn a_second_upload_of_a_name_waits_then_is_busy() {
    let d = tempfile::tempdir().unwrap();
    let files = std::sync::Arc::new(service(d.path(), true, None, CancellationToken::new()));
    let rel = RelPath::parse("held.bin").unwrap();
    let opts = UploadOptions::new(Some(3));
    let first = begin(&files, &rel, opts).await;
    let (f, r) = (files.clone(), rel.clone());
    let second = tokio::spawn(async move { f.begin_upload(Who::TokenHolder, &r, opts).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second did not wait");
    drop(first);
    let mut up = second.await.unwrap().expect("taken over once let go");
    up.start(0).await.unwrap();

    let started = std::time::Instant::now();
    let e = files
        .begin_upload(Who::TokenHolder, &rel, opts)
        .await
        .unwrap_err();
    assert!(matches!(e, FilesError::Busy(_)), "{e}");
    assert!(started.elapsed() >= super::super::service::BUSY_WAIT);
}

/// An upload of no announced size, started, to push a body into.
async fn pushed_to(files: &Files, rel: &RelPath) -> Pushing {
    let mut up = begin(files, rel, UploadOptions::new(None)).await;
    up.start(0).await.unwrap();
    up.pushing()
}

/// Many small pieces (HTTP frames) are gathered into large writes, and the
/// bytes arrive whole and in order, pushed or received.
#[tokio::test]
async fn small_pieces_are_gathered_and_kept_in_order() {
    let d = tempfile::tempdir().unwrap();
    let files = service(d.path(), true, None, CancellationToken::new());
    let piece = |i: usize| vec![(i % 251) as u8; 4096 + i % 7];
    let whole: Vec<u8> = (0..600).flat_map(piece).collect();

    let pushed = RelPath::parse("pushed.bin").unwrap();
    let mut pushing = pushed_to(&files, &pushed).await;
    for i in 0..600 {
        pushing.push(&piece(i)).await.unwrap();
    }
    let up = pushing.end().await.unwrap();
    assert_eq!(up.written(), whole.len() as u64);
    up.finish(None, None).await.unwrap();
    assert_eq!(std::fs::read(d.path().join("pushed.bin")).unwrap(), whole);

    let received = RelPath::parse("received.bin").unwrap();
    let mut up = begin(
        &files,
        &received,
        UploadOptions::new(Some(whole.len() as u64)),
    )
    .await;
    up.start(0).await.unwrap();
    let chunks: Vec<Vec<u8>> = (0..600).map(piece).collect();
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    up.receive(&mut body(&refs, false)).await.unwrap();
    up.finish(None, None).await.unwrap();
    assert_eq!(std::fs::read(d.path().join("received.bin")).unwrap(), whole);
}

/// A pushed body over the limit, cut by shutdown, or dropped before its
/// end leaves nothing where the door cannot resume.
#[tokio::test]
async fn a_pushed_body_stopped_short_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let abort = CancellationToken::new();
    let files = service(d.path(), true, Some(10_000), abort.clone());
    let rel = RelPath::parse("p.bin").unwrap();

    let mut pushing = pushed_to(&files, &rel).await;
    pushing.push(&[1; 6000]).await.unwrap();
    let r = pushing.push(&[1; 6000]).await;
    assert!(matches!(r, Err(Broke::TooLarge(_))), "{r:?}");
    assert!(matches!(
        pushing.push(&[1]).await,
        Err(Broke::Storage { .. })
    ));
    drop(pushing);
    assert!(parts_in(d.path()).is_empty());

    let mut pushing = pushed_to(&files, &rel).await;
    pushing.push(&[2; 100]).await.unwrap();
    pushing.broke().await;
    assert!(parts_in(d.path()).is_empty());

    // Dropped: settled on a task of its own.
    let mut pushing = pushed_to(&files, &rel).await;
    pushing.push(&[3; 100]).await.unwrap();
    drop(pushing);
    for _ in 0..100 {
        if parts_in(d.path()).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(parts_in(d.path()).is_empty());

    let mut pushing = pushed_to(&files, &rel).await;
    pushing.push(&[4; 100]).await.unwrap();
    abort.cancel();
    let r = pushing.push(&[4; 100]).await;
    assert!(matches!(r, Err(Broke::ShuttingDown)), "{r:?}");
    assert!(parts_in(d.path()).is_empty());
    assert!(!d.path().join("p.bin").exists());
}

/// A request given up half-way (its connection closed, so its future is
/// dropped wherever it waits, even while its bytes are being written)
/// leaves no partial file that nobody holds; where the door resumes, what
/// came is kept.
#[tokio::test]
async fn an_upload_given_up_mid_way_leaves_nothing_behind() {
    let d = tempfile::tempdir().unwrap();
    let files = service(d.path(), true, None, CancellationToken::new());
    let rel = RelPath::parse("g.bin").unwrap();
    let gone = || async {
        for _ in 0..100 {
            if parts_in(d.path()).is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    // Dropped at every await of its ending: polled once, then let go.
    for polls in 0..4 {
        let mut pushing = pushed_to(&files, &rel).await;
        pushing.push(&[4; 100]).await.unwrap();
        let mut ending = Box::pin(pushing.end());
        for _ in 0..polls {
            // Done already (the disk thread was quick): nothing to drop it
            // in the middle of; it must leave nothing all the same.
            if poll_once(ending.as_mut()) {
                break;
            }
        }
        drop(ending);
        assert!(gone().await, "left after {polls} polls");
    }
    // Where the door resumes, the bytes that came stay.
    let opts = UploadOptions {
        on_break: OnBreak::Keep,
        ..UploadOptions::new(Some(1000))
    };
    let mut up = begin(&files, &rel, opts).await;
    up.start(0).await.unwrap();
    let mut pushing = up.pushing();
    pushing.push(&[5; 100]).await.unwrap();
    let mut ending = Box::pin(pushing.end());
    let _ = poll_once(ending.as_mut());
    drop(ending);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(parts_in(d.path()).len(), 1);
}

/// Polls `f` once, as a runtime would before it is given up; whether it
/// is done (then it must not be polled again).
fn poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    f.poll(&mut cx).is_ready()
}
