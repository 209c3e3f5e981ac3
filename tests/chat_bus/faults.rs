//! NATS killed and back.

use super::*;

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
async fn nats_back_without_its_store_is_joined_again() {
    let mut nats = Nats::start();
    let (a, _ra) = node(&nats, &[]);
    let (b, _rb) = node(&nats, &[]);
    let mut alice = Text::named(a.port, "alice").await;
    let mut bob = Text::named(b.port, "bob").await;
    for i in 0..5 {
        alice.send(&format!("before {i}")).await;
    }
    bob.messages(5).await;
    nats.kill();
    std::fs::remove_dir_all(nats.dir().join("js")).unwrap();
    nats.restart();
    for t in [&mut alice, &mut bob] {
        t.until(|l| l.contains("joined to the other servers again"))
            .await;
    }
    // The new stream's first lines reach the other node; both names are
    // claimed again.
    alice.send("after").await;
    assert_eq!(bob.messages(1).await, vec!["<alice> after"]);
    let who = bob.who().await;
    assert!(who.contains("alice") && who.contains("bob"), "{who}");
}
