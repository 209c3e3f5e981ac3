//! Paths that try to leave the served folder, sent to a server's native
//! and classic doors: each must be refused as an invalid name.

use std::fs;

use ferry::client::{Client, TransferOpts};
use ferry::wire::frame::Kind;
use ferry::wire::messages::{ErrorCode, ErrorReply, Request};
use indicatif::ProgressBar;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TRAVERSALS: &[&str] = &[
    "../escape.txt",
    "../../escape.txt",
    "a/../../escape.txt",
    "/../escape.txt",
    "..\\escape.txt",
    "C:\\escape.txt",
    "c:escape.txt",
    "x/./../../escape.txt",
    "escape\0.txt",
    "escape\n.txt",
    "//escape.txt",
];

/// Every request of the native door, with each traversal, at `addr`:
/// each is refused as `invalid_name`.
pub async fn native_refuses_every_traversal(addr: &str) {
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    fs::write(&src, b"payload").unwrap();
    let mut c = Client::connect(addr, None).await.unwrap();
    for bad in TRAVERSALS.iter().copied().chain(["../secret.txt"]) {
        let e = c
            .put_file(&src, bad, TransferOpts::default(), &ProgressBar::hidden())
            .await;
        assert!(e.is_err(), "put {bad:?}");
        for r in [
            Request::Get {
                path: bad.into(),
                offset: 0,
                prefix_sha256: None,
                digest: Some("blake3".into()),
                fresh: false,
            },
            Request::Stat { path: bad.into() },
            Request::Ls { path: bad.into() },
            Request::Rm {
                path: bad.into(),
                recursive: true,
            },
            Request::Mkdir {
                path: bad.into(),
                parents: true,
            },
            Request::Mv {
                from: "x".into(),
                to: bad.into(),
                force: true,
            },
            Request::Put {
                path: bad.into(),
                size: 1,
                mtime: None,
                force: true,
                resume: false,
                digest: None,
            },
        ] {
            let conn = c.connection().await.unwrap();
            conn.send(Kind::Request, &r, 0).await.unwrap();
            let head = conn.next_head().await.unwrap();
            assert_eq!(head.kind, Kind::Error, "{r:?} was not refused");
            let e: ErrorReply = serde_json::from_slice(&head.header).unwrap();
            assert_eq!(e.code, ErrorCode::InvalidName, "{r:?}");
        }
    }
}

/// A put and a get of each traversal through the classic door at
/// `addr`: each is answered with an error, and no file.
pub async fn classic_refuses_every_traversal(addr: &str) {
    for bad in TRAVERSALS
        .iter()
        .copied()
        .chain(["../secret.txt", "/etc/passwd", ""])
    {
        for cmd in ["put", "get"] {
            let header =
                serde_json::json!({"cmd": cmd, "filename": bad, "filesize": 7}).to_string();
            let mut msg = (header.len() as i32).to_le_bytes().to_vec();
            msg.extend_from_slice(header.as_bytes());
            if cmd == "put" {
                msg.extend_from_slice(b"payload");
            }
            let mut t = TcpStream::connect(addr).await.unwrap();
            t.write_all(&msg).await.unwrap();
            let mut len = [0u8; 4];
            t.read_exact(&mut len).await.unwrap();
            let mut reply = vec![0u8; i32::from_le_bytes(len) as usize];
            t.read_exact(&mut reply).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
            assert!(v.get("error").is_some(), "{cmd} {bad:?} answered {v}");
            assert!(v.get("filesize").is_none(), "{cmd} {bad:?} sent a file");
        }
    }
}
