//! History across restarts, and a server that keeps none.

use super::*;

#[test]
fn history_survives_a_restart_and_kill_9() {
    let root = tempfile::tempdir().unwrap();
    let mut srv = spawn_bin_server(root.path(), &["--no-discovery"], &[]);
    let state = srv.state.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = srv.port;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&addr.to_string(), None).await.unwrap();
        let (mut chat, _) = c.chat(Some("writer"), &["ops".into()]).await.unwrap();
        for i in 0..3 {
            chat.say(&format!("note {i}")).await.unwrap();
        }
        // Acknowledged = seen coming back.
        let mut n = 0;
        while n < 3 {
            if message(&chat.next_event().await.unwrap().unwrap()).is_some() {
                n += 1;
            }
        }
    });
    srv.child.kill().unwrap(); // SIGKILL
    srv.child.wait().unwrap();
    for round in 0..2 {
        let mut again =
            common::spawn_bin_server_with_state(root.path(), &state, &["--no-discovery"]);
        let addr = format!("127.0.0.1:{}", again.port);
        let history = rt.block_on(async {
            let mut c = Client::connect(&addr, None).await.unwrap();
            let (mut chat, _) = c.chat(Some("reader"), &["ops".into()]).await.unwrap();
            let mut got = Vec::new();
            loop {
                match chat.next_event().await.unwrap().unwrap() {
                    Event::Message {
                        text,
                        history: true,
                        ts_ms,
                        ..
                    } => {
                        assert!(ts_ms > 0);
                        got.push(text)
                    }
                    Event::Joined { nick, .. } if nick == "reader" => break,
                    _ => {}
                }
            }
            got
        });
        assert_eq!(history, ["note 0", "note 1", "note 2"], "round {round}");
        // Second round: after a graceful stop this time.
        nix_term(again.child.id());
        again.child.wait().unwrap();
    }
}

#[test]
fn history_zero_keeps_nothing_and_writes_no_file() {
    let root = tempfile::tempdir().unwrap();
    let args = ["--no-discovery", "--chat-history", "0"];
    let mut srv = spawn_bin_server(root.path(), &args, &[]);
    let state = srv.state.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = format!("127.0.0.1:{}", srv.port);
    rt.block_on(async {
        let mut c = Client::connect(&addr, None).await.unwrap();
        let (mut chat, _) = c.chat(Some("writer"), &["ops".into()]).await.unwrap();
        chat.say("not kept").await.unwrap();
        // Still a chat: the line comes back.
        loop {
            if let Some(m) = message(&chat.next_event().await.unwrap().unwrap()) {
                assert_eq!(m.2, "not kept");
                break;
            }
        }
    });
    let files: Vec<_> = std::fs::read_dir(&state)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "state folder holds {files:?}");
    nix_term(srv.child.id());
    srv.child.wait().unwrap();
    let mut again = common::spawn_bin_server_with_state(root.path(), &state, &args);
    let addr = format!("127.0.0.1:{}", again.port);
    let replayed = rt.block_on(async {
        let mut c = Client::connect(&addr, None).await.unwrap();
        let (mut chat, _) = c.chat(Some("reader"), &["ops".into()]).await.unwrap();
        let mut n = 0;
        loop {
            match chat.next_event().await.unwrap().unwrap() {
                Event::Message { .. } => n += 1,
                Event::Joined { nick, .. } if nick == "reader" => break n,
                _ => {}
            }
        }
    });
    assert_eq!(replayed, 0);
    nix_term(again.child.id());
    again.child.wait().unwrap();
}
