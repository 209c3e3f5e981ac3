//! One order and one history on every node, whatever the door, a stalled
//! node or forged batches.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_show_one_order_and_one_history() {
    let nats = Nats::start();
    let nodes: Vec<_> = (0..3).map(|_| node(&nats, &[])).collect();
    let ports: Vec<u16> = nodes.iter().map(|(s, _)| s.port).collect();
    let mut watchers = Vec::new();
    for &p in &ports {
        watchers.push(Text::connect(p).await);
    }
    let names = ["alice", "bob", "carol"];
    let mut senders = Vec::new();
    for (i, &p) in ports.iter().enumerate() {
        senders.push(Text::named(p, names[i]).await);
    }
    // Each says 40 lines at once, all three together.
    const EACH: usize = 40;
    let mut sending = Vec::new();
    for mut s in senders {
        sending.push(tokio::spawn(async move {
            for i in 0..EACH {
                s.send(&format!("{} {i}", s.nick)).await;
            }
            s
        }));
    }
    let mut seen = Vec::new();
    for mut w in watchers {
        seen.push(tokio::spawn(async move { w.messages(3 * EACH).await }));
    }
    let mut orders = Vec::new();
    for s in seen {
        orders.push(s.await.unwrap());
    }
    for s in sending {
        s.await.unwrap();
    }
    assert_eq!(orders[0], orders[1], "nodes A and B saw different orders");
    assert_eq!(orders[0], orders[2], "nodes A and C saw different orders");
    for n in names {
        let own: Vec<&String> = orders[0]
            .iter()
            .filter(|l| l.starts_with(&format!("<{n}>")))
            .collect();
        let want: Vec<String> = (0..EACH).map(|i| format!("<{n}> {n} {i}")).collect();
        assert_eq!(own.len(), EACH);
        assert!(
            own.iter().zip(&want).all(|(a, b)| *a == b),
            "{n}'s lines out of order"
        );
    }
    // History: the last 50 lines, the same from every node, and from a
    // node started only now.
    let last: Vec<String> = orders[0][orders[0].len() - 50..].to_vec();
    for &p in &ports {
        assert_eq!(history_seen(p).await, last, "history on port {p}");
    }
    let (late, _late_root) = node(&nats, &[]);
    assert_eq!(
        history_seen(late.port).await,
        last,
        "history on a late node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_node_holds_no_one_back_and_catches_up() {
    let nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let (b, _rb) = node(&nats, &[]);
    let (c, _rc) = node(&nats, &[]);
    let mut alice = Text::named(a.port, "alice").await;
    let mut bob = Text::named(b.port, "bob").await;
    let mut carol = Text::named(c.port, "carol").await;
    bob.until(|l| l.ends_with("is now known as carol")).await;
    // C stops answering anything (as a node swapping to death would).
    let pid = nix::unistd::Pid::from_raw(c.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    for i in 0..50 {
        alice.send(&format!("line {i}")).await;
    }
    let got = bob.messages(50).await;
    let took = started.elapsed();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let want: Vec<String> = (0..50).map(|i| format!("<alice> line {i}")).collect();
    assert_eq!(got, want);
    assert!(
        took < Duration::from_secs(2),
        "B waited {took:?} on a stalled C"
    );
    // C goes on where it was, in the same order.
    assert_eq!(carol.messages(50).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_no_client_could_send_on_the_bus_is_left_out() {
    let nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let mut alice = Text::named(a.port, "alice").await;
    let nc = async_nats::ConnectOptions::with_token(common::nats::TOKEN.into())
        .connect(nats.url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(nc);
    let lobby = "ferry.chat.6c6f626279";
    let batch = |room: &str, nick: &str, text: &str| {
        serde_json::json!({
            "id": format!("forged-{nick}-{}", text.len()), "node": "elsewhere", "client": 1,
            "room": room, "name": room, "nick": nick, "ts_ms": 0,
            "lines": [[text, false]],
        })
        .to_string()
    };
    let long = "x".repeat(60_001);
    for body in [
        "not json at all".to_string(),
        batch("ops", "mallory", "says it is for another room"),
        batch("lobby", "mal lory", "a name no client may have"),
        batch("lobby", "mallory", &long),
        batch("lobby", "trudy", "this one is fine"),
    ] {
        js.publish(lobby, body.into()).await.unwrap().await.unwrap();
    }
    let seen = alice.until(|l| l.starts_with("[lobby] <trudy>")).await;
    assert_eq!(seen, vec!["[lobby] <trudy> this one is fine"]);
    // A name entry that is not one: no one is made up from it.
    let kv = js.get_key_value("ferry_chat_names").await.unwrap();
    kv.put("n.6d616c6c6f7279", "{broken".into()).await.unwrap();
    assert_eq!(alice.who().await, "* in [lobby] (1): alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_chats_with_the_other_nodes() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let (b, _rb) = node(&nats, &[]);
    let mut alice = Text::named(a.port, "alice").await;
    let ws_to = |port: u16, nick: &str| {
        let origin = format!("http://127.0.0.1:{port}");
        let mut req = format!("ws://127.0.0.1:{port}/.ferry/chat?nick={nick}")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        async move {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            tokio_tungstenite::client_async(req, tcp)
                .await
                .map(|(ws, _)| ws)
        }
    };
    let mut ws = ws_to(b.port, "webby").await.unwrap();
    let mut next = async || loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            break serde_json::from_str::<serde_json::Value>(&t).unwrap();
        }
    };
    assert_eq!(next().await["nick"], "webby");
    alice.until(|l| l == "[lobby] -> webby joined").await;
    alice.send("to the page").await;
    while next().await["text"] != "to the page" {}
    ws.send(Message::Text("from the page".into()))
        .await
        .unwrap();
    alice.until(|l| l == "[lobby] <webby> from the page").await;
    // A page asking for a name another node holds is turned away.
    let mut twin = ws_to(b.port, "ALICE").await.unwrap();
    let bye = loop {
        let m = twin.next().await.unwrap().unwrap();
        if let Message::Text(t) = m {
            break serde_json::from_str::<serde_json::Value>(&t).unwrap();
        }
    };
    assert_eq!(bye["kind"], "bye", "{bye}");
    assert!(bye["reason"].as_str().unwrap().contains("taken"), "{bye}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_kept_is_the_first_nodes_per_room_limit() {
    let nats = Nats::start();
    let (a, _ra) = node(&nats, &["--chat-history", "5"]);
    let mut alice = Text::named(a.port, "alice").await;
    // One batch each: a line, then /who, answered once the line is out.
    for i in 0..8 {
        alice.send(&format!("line {i}")).await;
        alice.who().await;
    }
    // A node started with another limit takes the stream as it is.
    let (b, _rb) = node(&nats, &["--chat-history", "1000"]);
    let want: Vec<String> = (3..8).map(|i| format!("<alice> line {i}")).collect();
    assert_eq!(history_seen(b.port).await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bound_on_rooms_holds_for_the_whole_cluster() {
    let nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let (b, _rb) = node(&nats, &[]);
    // 999 rooms and the lobby: 1000, the most a chat keeps. 32 at a time
    // per client, half of them through each node.
    let mut held = Vec::new();
    for c in 0..32 {
        let port = if c % 2 == 0 { a.port } else { b.port };
        let rooms: Vec<String> = (c * 32..(c * 32 + 32).min(999))
            .map(|r| format!("r{r}"))
            .collect();
        if rooms.is_empty() {
            break;
        }
        let client = Client::connect(&format!("127.0.0.1:{port}"), None)
            .await
            .unwrap();
        held.push((client, format!("holder{c}"), rooms));
    }
    let mut sessions = Vec::new();
    for (client, nick, rooms) in held.iter_mut() {
        let (chat, _) = client.chat(Some(nick), rooms).await.unwrap();
        sessions.push(chat);
    }
    // One more room, through either node, is refused once each node has
    // seen the other's rooms.
    for port in [a.port, b.port] {
        let mut t = Text::connect(port).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            t.send("/join one-too-many").await;
            let l = t
                .until(|l| l.starts_with("! ") || l.contains("one-too-many"))
                .await
                .pop()
                .unwrap();
            if l.contains("1000 rooms") {
                break;
            }
            assert!(Instant::now() < deadline, "joined a room past 1000: {l}");
            t.send("/part one-too-many").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    drop(sessions);
}
