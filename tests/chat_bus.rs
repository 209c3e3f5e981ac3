//! Chat rooms across nodes on a real `nats-server -js`: one order and one
//! history on every node, names unique across the cluster, presence that
//! leaves with a dead node, and no acknowledged line lost when NATS is
//! killed.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::nats::{Nats, node};
use ferry::chat::Event;
use ferry::client::Client;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A person with nc.
struct Text {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    nick: String,
}

impl Text {
    async fn connect(port: u16) -> Text {
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (r, w) = s.into_split();
        let mut t = Text {
            rd: BufReader::new(r),
            wr: w,
            nick: String::new(),
        };
        let seen = t.until(|l| l.starts_with("* welcome")).await;
        let w = seen.last().unwrap();
        t.nick = w
            .split("you are ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap()
            .to_string();
        t
    }

    /// Connects and takes the name `nick`.
    async fn named(port: u16, nick: &str) -> Text {
        let mut t = Text::connect(port).await;
        t.send(&format!("/nick {nick}")).await;
        t.until(|l| l.ends_with(&format!("is now known as {nick}")))
            .await;
        t.nick = nick.to_string();
        t
    }

    async fn send(&mut self, line: &str) {
        self.wr.write_all(line.as_bytes()).await.unwrap();
        self.wr.write_all(b"\n").await.unwrap();
    }

    async fn line(&mut self, wait: Duration) -> Option<String> {
        let mut buf = String::new();
        let n = tokio::time::timeout(wait, self.rd.read_line(&mut buf))
            .await
            .ok()?
            .unwrap();
        if n == 0 {
            return None;
        }
        Some(buf.trim_end().to_string())
    }

    /// Lines until one matches (within 20 s), all of them.
    async fn until(&mut self, want: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self
                .line(left)
                .await
                .unwrap_or_else(|| panic!("{}: nothing matched; saw {seen:?}", self.nick));
            let done = want(&l);
            seen.push(l);
            if done {
                return seen;
            }
        }
    }

    /// The next `n` live room messages, as `<nick> text`.
    async fn messages(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        while out.len() < n {
            let l = self
                .line(Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("{}: {} of {n} messages came", self.nick, out.len()));
            if let Some(m) = l.strip_prefix("[lobby] <") {
                out.push(format!("<{m}"));
            }
        }
        out
    }

    /// What `/who` says of the lobby.
    async fn who(&mut self) -> String {
        self.send("/who").await;
        self.until(|l| l.starts_with("* in [lobby]"))
            .await
            .pop()
            .unwrap()
    }
}

/// The history a client joining now is shown: `(history …) <nick> text`
/// with the time left out.
async fn history_seen(port: u16) -> Vec<String> {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (r, _w) = s.into_split();
    let mut rd = BufReader::new(r);
    let mut out = Vec::new();
    loop {
        let mut l = String::new();
        let n = tokio::time::timeout(Duration::from_secs(5), rd.read_line(&mut l))
            .await
            .expect("the greeting and history")
            .unwrap();
        assert!(n > 0);
        if l.contains("joined") {
            return out;
        }
        if let Some(rest) = l.trim_end().strip_prefix("[lobby] (history ") {
            out.push(rest.split_once(") ").unwrap().1.to_string());
        }
    }
}

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
async fn names_and_topics_are_one_across_the_cluster() {
    let nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let (b, _rb) = node(&nats, &[]);
    let (c, _rc) = node(&nats, &[]);
    let mut alice = Text::named(a.port, "alice").await;
    // Taken on another node: refused, by rename and at the door.
    let mut other = Text::connect(b.port).await;
    other.send("/nick ALICE").await;
    let got = other.until(|l| l.starts_with("! ")).await;
    assert!(got.last().unwrap().contains("taken"), "{got:?}");
    let ws = Client::connect(&format!("127.0.0.1:{}", c.port), None).await;
    let mut native = ws.unwrap();
    let refused = native.chat(Some("alice"), &[]).await;
    assert!(refused.is_err(), "alice taken on A was given out on C");
    // Two nodes asking for one free name at once: one has it.
    let mut on_b = Text::connect(b.port).await;
    let mut on_c = Text::connect(c.port).await;
    on_b.send("/nick zed").await;
    on_c.send("/nick zed").await;
    let mine = |n: &str| {
        let own = format!("* {n} is now known as zed");
        move |l: &str| l == own || l.starts_with("! ")
    };
    let rb = on_b.until(mine(&on_b.nick.clone())).await.pop().unwrap();
    let rc = on_c.until(mine(&on_c.nick.clone())).await.pop().unwrap();
    let won = [&rb, &rc].iter().filter(|l| l.starts_with("* ")).count();
    assert_eq!(won, 1, "B: {rb}; C: {rc}");
    let winner = if rb.starts_with("* ") {
        &mut on_b
    } else {
        &mut on_c
    };
    winner.nick = "zed".into();
    // Presence: /who on C lists the people of every node.
    let who = on_c.who().await;
    for n in ["alice", "zed", &other.nick] {
        assert!(who.contains(n), "{n} missing from {who}");
    }
    // Private messages reach people on other nodes, and the sender sees
    // one once it is delivered; a name no node has is refused.
    on_c.send("/msg Alice across the cluster").await;
    let line = format!("[private {} -> alice] across the cluster", on_c.nick);
    alice.until(|l| l == line).await;
    on_c.until(|l| l == line).await;
    on_c.send("/msg nobody hello?").await;
    on_c.until(|l| l == "! no one is called nobody").await;
    // A topic set on A is the room's topic on C and in /rooms on B.
    alice.send("/topic one topic for all").await;
    on_c.until(|l| l.contains("set the topic: one topic for all"))
        .await;
    on_b.send("/rooms").await;
    on_b.until(|l| l.starts_with("* [lobby]") && l.ends_with("here: one topic for all"))
        .await;
    // A room's topic goes once no one is in it on any node.
    alice.send("/join ops").await;
    alice.send("/topic ops for now").await;
    alice
        .until(|l| l.contains("set the topic: ops for now"))
        .await;
    on_c.send("/join ops").await;
    on_c.until(|l| l.contains("ops for now")).await;
    let nc = async_nats::ConnectOptions::with_token(common::nats::TOKEN.into())
        .connect(nats.url())
        .await
        .unwrap();
    let kv = async_nats::jetstream::new(nc)
        .get_key_value("ferry_chat_names")
        .await
        .unwrap();
    let key = "t.6f7073"; // "ops"
    assert!(kv.get(key).await.unwrap().is_some());
    alice.send("/part ops").await;
    on_c.until(|l| l.starts_with("[ops] <- alice left")).await;
    assert!(kv.get(key).await.unwrap().is_some(), "gone while C was in");
    on_c.send("/part ops").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while kv.get(key).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the topic of an empty room stayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_takes_its_people_with_it() {
    let nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let (b, _rb) = node(&nats, &[]);
    let (mut c, _rc) = node(&nats, &[]);
    let mut alice = Text::named(a.port, "alice").await;
    let mut bob = Text::named(b.port, "bob").await;
    let _carol = Text::named(c.port, "carol").await;
    alice.until(|l| l.contains("carol")).await;
    assert!(alice.who().await.contains("carol"));
    c.child.kill().unwrap();
    let killed = Instant::now();
    alice
        .until(|l| l.starts_with("[lobby] <- carol left"))
        .await;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(15), "carol left after {took:?}");
    assert!(!alice.who().await.contains("carol"));
    // The others go on, and the name is free again.
    bob.send("still here").await;
    alice.until(|l| l == "[lobby] <bob> still here").await;
    let _again = Text::named(a.port, "carol").await;
}

/// A native client's lines, each acknowledged when it comes back.
async fn say_acked(chat: &mut ferry::client::ChatSession<'_>, text: &str) -> bool {
    chat.say(text).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, chat.next_event()).await {
            Ok(Ok(Some(Event::Message { text: t, .. }))) if t == text => return true,
            Ok(Ok(Some(_))) => continue,
            _ => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_back_loses_no_acknowledged_line() {
    let mut nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let (b, _rb) = node(&nats, &[]);
    let mut c = Client::connect(&format!("127.0.0.1:{}", a.port), None)
        .await
        .unwrap();
    let (mut chat, _) = c.chat(Some("writer"), &[]).await.unwrap();
    let mut here = Text::named(a.port, "neighbour").await;
    let mut there = Text::named(b.port, "faraway").await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let t = format!("before {i}");
        assert!(say_acked(&mut chat, &t).await, "{t} not acknowledged");
        acked.push(format!("<writer> {t}"));
    }
    assert_eq!(there.messages(20).await, acked);
    nats.kill();
    // Cut off: the node says so, and its own people go on chatting.
    here.until(|l| l.contains("cannot be reached")).await;
    chat.say("while away").await.unwrap();
    here.until(|l| l == "[lobby] <writer> while away").await;
    nats.restart();
    here.until(|l| l.contains("joined to the other servers again"))
        .await;
    there
        .until(|l| l.contains("joined to the other servers again"))
        .await;
    for i in 0..5 {
        let t = format!("after {i}");
        assert!(say_acked(&mut chat, &t).await, "{t} not acknowledged");
        acked.push(format!("<writer> {t}"));
    }
    let after: Vec<String> = there.messages(5).await;
    assert_eq!(after, acked[20..].to_vec());
    // Every acknowledged line is in the history a node started now shows.
    let (late, _rl) = node(&nats, &[]);
    let history = history_seen(late.port).await;
    assert_eq!(history, acked, "history after NATS came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_shows_the_nodes_of_one_cluster_as_one_service() {
    let nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let (b, _rb) = node(&nats, &[]);
    // A server of its own, on no bus: listed apart.
    let alone_root = tempfile::tempdir().unwrap();
    let alone = common::spawn_bin_server(alone_root.path(), &[], &[]);
    let to: Vec<String> = [a.port, b.port, alone.port]
        .iter()
        .flat_map(|p| ["--to".to_string(), format!("127.0.0.1:{p}")])
        .collect();
    let mut args: Vec<&str> = vec!["discover", "--timeout", "1.5", "--json"];
    args.extend(to.iter().map(String::as_str));
    let (code, out, err) = common::run_cli(&args, &[]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let servers = v["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{out}");
    let cluster = servers
        .iter()
        .find(|s| s["cluster"].is_string())
        .unwrap_or_else(|| panic!("no cluster in {out}"));
    let mut ports: Vec<u64> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["tcp_port"].as_u64().unwrap())
        .collect();
    ports.sort();
    let mut want = vec![a.port as u64, b.port as u64];
    want.sort();
    assert_eq!(ports, want, "{out}");
    let single = servers.iter().find(|s| s["cluster"].is_null()).unwrap();
    assert_eq!(single["tcp_port"].as_u64(), Some(alone.port as u64));
    // And in words: one line for the cluster, with both addresses.
    args.retain(|a| *a != "--json");
    let (_, text, _) = common::run_cli(&args, &[]);
    let line = text
        .lines()
        .find(|l| l.contains("cluster of 2 nodes"))
        .unwrap_or_else(|| panic!("{text}"));
    for p in [a.port, b.port] {
        assert!(line.contains(&format!("127.0.0.1:{p}")), "{line}");
    }
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
    let long = "x".repeat(3000);
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

/// A TCP path to NATS that can be cut and mended, as a network would.
struct Cable {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cable {
    async fn to(target: u16) -> Cable {
        use std::sync::atomic::Ordering;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (u, c) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let t = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                c.lock().unwrap().push(t);
            }
        });
        Cable { port, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn mend(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_given_out_while_a_node_was_cut_off_makes_its_holder_a_guest() {
    let nats = Nats::start();
    let cable = Cable::to(nats.port).await;
    let root = tempfile::tempdir().unwrap();
    let bus = format!("nats://127.0.0.1:{}", cable.port);
    let a = common::spawn_bin_server(
        root.path(),
        &["--chat-bus", &bus, "--chat-rate", "10000"],
        &[("FERRY_CHAT_BUS_TOKEN", common::nats::TOKEN)],
    );
    let (b, _rb) = node(&nats, &[]);
    let mut alice = Text::named(a.port, "alice").await;
    let mut bob = Text::named(b.port, "bob").await;
    assert!(bob.who().await.contains("alice"));
    cable.cut();
    alice.until(|l| l.contains("cannot be reached")).await;
    // Once A's lease is gone, B's people may take A's names.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        bob.send("/nick alice").await;
        let l = bob
            .until(|l| l == "* bob is now known as alice" || l.starts_with("! "))
            .await
            .pop()
            .unwrap();
        if l.starts_with("* ") {
            break;
        }
        assert!(Instant::now() < deadline, "alice was never freed: {l}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cable.mend();
    let seen = alice
        .until(|l| l.contains("another took the nickname alice"))
        .await;
    let notice = seen.last().unwrap();
    let guest = notice
        .rsplit("you are ")
        .next()
        .unwrap()
        .trim_end_matches(" now");
    assert!(guest.starts_with("guest"), "{notice}");
    // One of each name across the cluster again (once A's claim of the
    // guest name is seen by B).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let who = bob.who().await;
        assert_eq!(who.matches("alice").count(), 1, "{who}");
        if who.contains(guest) {
            break;
        }
        assert!(Instant::now() < deadline, "{guest} not seen from B: {who}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
