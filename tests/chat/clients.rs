//! The terminal client and the page's WebSocket.

use super::*;

#[test]
fn chat_send_reports_delivery_in_its_exit_code() {
    let root = tempfile::tempdir().unwrap();
    let mut srv = spawn_bin_server(root.path(), &["--no-discovery"], &[]);
    let host = format!("127.0.0.1:{}", srv.port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr: std::net::SocketAddr = host.parse().unwrap();
    let mut watcher = rt.block_on(async {
        let t = Text::connect(addr).await;
        let mut t = t;
        t.send(b"/join ops").await;
        t.until(|l| l.contains("joined")).await;
        t
    });
    let (code, _, err) = common::run_cli(
        &[
            "chat",
            &host,
            "--room",
            "ops",
            "--nick",
            "ci",
            "--send",
            "deploy done",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    rt.block_on(watcher.until(|l| l == "[ops] <ci> deploy done"));
    // Commands exit 0 as soon as the server has acted on them (not at the
    // idle timeout), and a refused one exits 1.
    rt.block_on(async {
        watcher.send(b"/nick watcher").await;
        watcher.until(|l| l.contains("watcher")).await;
    });
    let send = |line: &str| {
        let started = std::time::Instant::now();
        let args = [
            "chat", &host, "--room", "ops", "--nick", "ci", "--send", line,
        ];
        let (code, _, err) = common::run_cli(&args, &[]);
        assert!(started.elapsed() < Duration::from_secs(20), "{line}");
        (code, err)
    };
    for line in [
        "/msg watcher psst",
        "/me waves",
        "//etc is a path",
        "/join other",
        "/quit bye",
    ] {
        let (code, err) = send(line);
        assert_eq!(code, 0, "{line}: {err}");
    }
    rt.block_on(watcher.until(|l| l.contains("psst")));
    rt.block_on(watcher.until(|l| l.contains("ci waves")));
    rt.block_on(watcher.until(|l| l == "[ops] <ci> /etc is a path"));
    let (code, err) = send("/msg nobody-here hi");
    assert_eq!(code, 1, "{err}");
    let long = "x".repeat(3000);
    let (code, _, err) = common::run_cli(&["chat", &host, "--send", &long], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("2000"), "{err}");
    let (code, _, _) = common::run_cli(&["chat", "127.0.0.1:1", "--send", "x"], &[]);
    assert_eq!(code, 255);
    let _ = srv.child.kill();
    let _ = srv.child.wait();
}

#[test]
fn the_terminal_client_reconnects_and_rejoins_its_rooms() {
    use std::io::{BufRead, Write};
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let extra = ["--no-discovery", "--listen", listen.as_str()];
    let mut srv = common::spawn_bin_server_with_state(root.path(), state.path(), &extra);
    let mut client = std::process::Command::new(common::ferry_bin())
        .args(["chat", &listen, "--nick", "roamer", "--room", "ops"])
        .env_remove("FERRY_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = client.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    let wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                let hit = l.contains(want);
                seen.push(l);
                if hit {
                    return;
                }
            }
        }
        panic!("never saw {want:?}; saw {seen:?}");
    };
    wait_for("[ops] -> roamer joined");
    writeln!(stdin, "before the crash").unwrap();
    wait_for("<roamer> before the crash");
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
    wait_for("connection lost");
    let mut srv = common::spawn_bin_server_with_state(root.path(), state.path(), &extra);
    // Back in: the history it saw already is not shown again (see
    // staying.rs).
    wait_for("[ops] -> roamer joined");
    // Lines after the reconnection reach the rejoined room.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seen = rt.block_on(async {
        let mut c = Client::connect(&listen, None).await.unwrap();
        let (mut chat, _) = c.chat(Some("watcher"), &["ops".into()]).await.unwrap();
        writeln!(stdin, "after the restart").unwrap();
        loop {
            if let Some((room, nick, text)) = message(&chat.next_event().await.unwrap().unwrap()) {
                return (room, nick, text);
            }
        }
    });
    assert_eq!(
        seen,
        ("ops".into(), "roamer".into(), "after the restart".into())
    );
    writeln!(stdin, "/quit").unwrap();
    drop(stdin);
    let status = client.wait().unwrap();
    assert!(status.success());
    let _ = srv.child.kill();
    let _ = srv.child.wait();
}

#[tokio::test]
async fn the_page_chats_over_a_websocket_with_the_same_hub() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let s = fast_server().await;
    let origin = format!("http://{}", s.addr);
    // Another site's page may not open it.
    assert!(
        websocket(s.addr, "nick=x", "http://evil.example")
            .await
            .is_err()
    );
    let mut text = Text::connect(s.addr).await;
    text.send(b"/join ops").await;
    text.send(b"before the page came").await;
    // Lines are handled in order: once /who is answered, the message is
    // stored.
    text.send(b"/who").await;
    text.until(|l| l.starts_with("* in [ops]")).await;
    let mut ws = websocket(s.addr, "nick=webby&rooms=ops", &origin)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(ev) = next_event(&mut ws).await {
        let done = ev["kind"] == "message" && ev["text"] == "before the page came";
        seen.push(ev);
        if done {
            break;
        }
    }
    assert_eq!(seen[0]["kind"], "welcome");
    assert_eq!(seen[0]["nick"], "webby");
    assert_eq!(seen.last().unwrap()["history"], true);
    // Both ways, escapes neutralised on the text side.
    ws.send(Message::Text("from the page \u{1b}[2J".into()))
        .await
        .unwrap();
    text.until(|l| l == "[ops] <webby> from the page \\u{1b}[2J")
        .await;
    text.send(b"from nc").await;
    loop {
        let ev = next_event(&mut ws).await.expect("an event");
        if ev["kind"] == "message" && ev["text"] == "from nc" {
            break;
        }
    }
    // A nickname already taken: told why, then closed.
    let mut twin = websocket(s.addr, "nick=WEBBY", &origin).await.unwrap();
    let ev = next_event(&mut twin).await.unwrap();
    assert_eq!(ev["kind"], "bye");
    assert!(ev["reason"].as_str().unwrap().contains("taken"), "{ev}");
    // An oversized message is refused, the chat goes on.
    ws.send(Message::Text("y".repeat(2500).into()))
        .await
        .unwrap();
    loop {
        let ev = next_event(&mut ws).await.expect("an event");
        if ev["kind"] == "error" {
            assert!(ev["text"].as_str().unwrap().contains("too long"), "{ev}");
            break;
        }
    }
    // Far beyond the frame limit: the socket is closed, others unharmed.
    let _ = ws.send(Message::Text("z".repeat(64 * 1024).into())).await;
    while next_event(&mut ws).await.is_some() {}
    text.send(b"/who").await;
    text.until(|l| l.starts_with("* in [ops]")).await;
    s.stop().await;
}
