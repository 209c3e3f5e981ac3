//! Names, topics and presence across the cluster; a node cut off; discovery.

use super::*;

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
    made_a_guest(&mut alice, &mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_late_knows_everyone_already_there() {
    let nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let mut alice = Text::named(a.port, "alice").await;
    alice.send("/topic set before B started").await;
    alice.until(|l| l.contains("set the topic")).await;
    let (b, _rb) = node(&nats, &[]);
    let mut bob = Text::connect(b.port).await;
    assert!(bob.who().await.contains("alice"));
    bob.send("/msg alice are you there?").await;
    alice
        .until(|l| l.ends_with("-> alice] are you there?"))
        .await;
    bob.send("/nick Alice").await;
    assert!(
        bob.until(|l| l.starts_with("! "))
            .await
            .pop()
            .unwrap()
            .contains("taken")
    );
    bob.send("/topic").await;
    bob.until(|l| l == "[lobby] topic: set before B started")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_past_its_lease_gives_up_a_name_taken_meanwhile() {
    let nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let (b, _rb) = node(&nats, &[]);
    let mut alice = Text::named(a.port, "alice").await;
    let mut bob = Text::named(b.port, "bob").await;
    // A stops (a laptop's lid closed) with its connection still open.
    let pid = nix::unistd::Pid::from_raw(a.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    bob.until(|l| l.starts_with("[lobby] <- alice left")).await;
    bob.send("/nick alice").await;
    bob.until(|l| l == "* bob is now known as alice").await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    // A finds its lease lost, and its alice is a guest now.
    made_a_guest(&mut alice, &mut bob).await;
}

/// `alice` is told that another took the name alice while its node was
/// cut off; `bob`, on another node, sees one alice and the guest she
/// became.
async fn made_a_guest(alice: &mut Text, bob: &mut Text) {
    let seen = alice
        .until(|l| l.contains("another took the nickname alice"))
        .await;
    let notice = seen.last().unwrap();
    let guest = notice
        .rsplit("you are ")
        .next()
        .unwrap()
        .trim_end_matches(" now")
        .to_string();
    assert!(guest.starts_with("guest"), "{notice}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let who = bob.who().await;
        assert_eq!(who.matches("alice").count(), 1, "{who}");
        if who.contains(&guest) {
            break;
        }
        assert!(Instant::now() < deadline, "{guest} not seen from B: {who}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_given_up_leave_nothing_in_the_bucket() {
    let nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let nc = async_nats::ConnectOptions::with_token(common::nats::TOKEN.into())
        .connect(nats.url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(nc);
    let count = async || {
        let mut st = js.get_stream("KV_ferry_chat_names").await.unwrap();
        st.info().await.unwrap().state.messages
    };
    let before = count().await;
    // Two renames sent at once: the second is refused while the first is
    // claimed, and no name is left held.
    let mut t = Text::connect(a.port).await;
    t.send("/nick bob\n/nick carol").await;
    t.until(|l| l.contains("still being claimed")).await;
    t.until(|l| l.ends_with("is now known as bob")).await;
    for i in 0..8 {
        let mut g = Text::connect(a.port).await;
        g.send(&format!("/nick passer{i}")).await;
        g.until(|l| l.ends_with(&format!("is now known as passer{i}")))
            .await;
        g.send("/quit").await;
    }
    t.send("/quit").await;
    // Their delete markers go too, once every watcher has had them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = count().await;
        if n <= before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} messages left in the bucket (from {before})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let kv = js.get_key_value("ferry_chat_names").await.unwrap();
    for n in ["bob", "carol", "passer0"] {
        let key = format!(
            "n.{}",
            n.bytes().map(|b| format!("{b:02x}")).collect::<String>()
        );
        assert!(kv.get(&key).await.unwrap().is_none(), "{n} still held");
    }
}
