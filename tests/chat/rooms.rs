//! Rooms, nicknames, escapes and the token, across the text and native doors.

use super::*;

#[tokio::test]
async fn clients_across_rooms_see_exactly_their_rooms_messages_in_one_order() {
    let s = fast_server().await;
    const PER: usize = 30;
    let rooms = ["lobby", "ops", "lobby", "ops", "lobby", "dev"];
    let mut tasks = Vec::new();
    // Everyone joins before anyone talks.
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(rooms.len()));
    for (i, room) in rooms.iter().enumerate() {
        let addr = s.addr;
        let ready = ready.clone();
        let room = room.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&addr.to_string(), None).await.unwrap();
            let nick = format!("user{i}");
            let (mut chat, welcome) = c
                .chat(Some(&nick), std::slice::from_ref(&room))
                .await
                .unwrap();
            assert!(matches!(welcome, Event::Welcome { .. }));
            ready.wait().await;
            let expected = PER * rooms_count(&room);
            let mut got = Vec::new();
            let mut sent = 0;
            let (mut events, mut lines) = chat.halves();
            let send = async {
                while sent < PER {
                    lines.say(&format!("{nick} says {sent}")).await.unwrap();
                    sent += 1;
                }
            };
            let recv = async {
                while got.len() < expected {
                    let e = events.next().await.unwrap().unwrap();
                    if let Some(m) = message(&e) {
                        got.push(m);
                    }
                }
            };
            tokio::join!(send, recv);
            // Nothing more than expected arrives.
            let extra = tokio::time::timeout(Duration::from_millis(300), async {
                loop {
                    if let Some(m) = message(&events.next().await.unwrap().unwrap()) {
                        return m;
                    }
                }
            })
            .await;
            assert!(extra.is_err(), "unexpected {extra:?}");
            (room, got)
        }));
    }
    fn rooms_count(room: &str) -> usize {
        ["lobby", "ops", "lobby", "ops", "lobby", "dev"]
            .iter()
            .filter(|r| **r == room)
            .count()
    }
    let mut by_room: HashMap<String, Vec<Vec<Seen>>> = HashMap::new();
    for t in tasks {
        let (room, got) = t.await.unwrap();
        by_room.entry(room).or_default().push(got);
    }
    for (room, views) in &by_room {
        for v in views {
            assert!(
                v.iter().all(|(r, _, _)| r == room),
                "{room}: a message from elsewhere"
            );
            // Each sender's lines in the order sent.
            let mut last: HashMap<&str, usize> = HashMap::new();
            for (_, nick, text) in v {
                let n: usize = text.rsplit(' ').next().unwrap().parse().unwrap();
                if let Some(prev) = last.insert(nick, n) {
                    assert_eq!(n, prev + 1, "{nick} out of order in {room}");
                }
            }
        }
        // Everyone in a room saw the same order.
        assert!(
            views.windows(2).all(|w| w[0] == w[1]),
            "{room}: orders differ"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn nick_collisions_are_refused_case_insensitively() {
    let s = fast_server().await;
    let mut a = s.client().await;
    let (_chat_a, _) = a.chat(Some("Alice"), &[]).await.unwrap();
    let mut b = s.client().await;
    let e = b.chat(Some("alice"), &[]).await.err().unwrap();
    assert_eq!(e.code(), Some(ErrorCode::Exists));
    let mut c = s.client().await;
    let e = c.chat(Some("bad nick"), &[]).await.err().unwrap();
    assert_eq!(e.code(), Some(ErrorCode::InvalidName));
    let mut d = s.client().await;
    let (mut chat_d, _) = d.chat(Some("dora"), &[]).await.unwrap();
    chat_d.say("/nick ALICE").await.unwrap();
    loop {
        match chat_d.next_event().await.unwrap().unwrap() {
            Event::Error { text } => {
                assert!(text.contains("taken"), "{text}");
                break;
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn a_text_client_and_a_native_client_talk_and_no_ip_is_shown() {
    let s = fast_server().await;
    let mut nc = Text::connect(s.addr).await;
    let mut c = s.client().await;
    let (mut chat, _) = c.chat(Some("native"), &[]).await.unwrap();
    nc.until(|l| l.contains("native joined")).await;
    chat.say("hello nc").await.unwrap();
    let lines = nc.until(|l| l.ends_with("<native> hello nc")).await;
    assert!(lines.iter().all(|l| !l.contains("127.0.0.1")), "{lines:?}");
    nc.send(b"hello native").await;
    loop {
        if let Some((room, nick, text)) = message(&chat.next_event().await.unwrap().unwrap()) {
            if nick == "native" {
                continue; // our own line, echoed
            }
            assert_eq!(room, "lobby");
            assert!(nick.starts_with("guest"));
            assert_eq!(text, "hello native");
            break;
        }
    }
    nc.send(b"/who").await;
    let who = nc.until(|l| l.starts_with("* in [lobby]")).await;
    // The text door does not echo a client's own lines: its terminal
    // already shows what was typed.
    assert!(!who.iter().any(|l| l.contains("hello native")), "{who:?}");
    assert!(who.last().unwrap().contains("native"));
    nc.send(b"/msg native psst").await;
    loop {
        if let Event::Private { to, text, .. } = chat.next_event().await.unwrap().unwrap() {
            assert_eq!((to.as_str(), text.as_str()), ("native", "psst"));
            break;
        }
    }
    nc.send(b"/quit see you").await;
    loop {
        if let Event::Left { reason, .. } = chat.next_event().await.unwrap().unwrap() {
            assert_eq!(reason.as_deref(), Some("see you"));
            break;
        }
    }
    chat.end().await.unwrap();
}

#[tokio::test]
async fn escapes_are_neutralised_and_bad_lines_refused() {
    let s = fast_server().await;
    let mut eve = Text::connect(s.addr).await;
    let mut bob = Text::connect(s.addr).await;
    eve.until(|l| l.contains("joined") && !l.contains("guest1 joined"))
        .await;
    eve.send(b"\x1b[2J\x1b]0;pwned\x07 clear \xe2\x80\xae txt")
        .await;
    let raw = loop {
        let l = bob.line().await.unwrap();
        if l.windows(5).any(|w| w == b"clear") {
            break l;
        }
    };
    assert!(!raw.iter().any(|b| *b < 0x20 || *b == 0x7f), "{raw:?}");
    let shown = String::from_utf8(raw).unwrap();
    assert!(shown.contains("\\u{1b}[2J"), "{shown}");
    assert!(shown.contains("\\u{202e}"), "bidi override kept: {shown}");

    // Oversized: refused with an error, never truncated; invalid UTF-8 too.
    eve.send(&vec![b'x'; 5000]).await;
    eve.until(|l| l.starts_with("! line too long")).await;
    eve.send(b"bad \xff\xfe bytes").await;
    eve.until(|l| l.starts_with("! line is not valid UTF-8"))
        .await;
    eve.send(b"after").await;
    let seen = bob.until(|l| l.ends_with("> after")).await;
    assert!(
        seen.iter()
            .all(|l| !l.contains("xxxx") && !l.contains("bytes")),
        "{seen:?}"
    );

    // The same limits through the native door.
    let mut c = s.client().await;
    let (mut chat, _) = c.chat(Some("nat"), &[]).await.unwrap();
    chat.say(&"y".repeat(2001)).await.unwrap();
    loop {
        if let Event::Error { text } = chat.next_event().await.unwrap().unwrap() {
            assert!(text.contains("2000"), "{text}");
            break;
        }
    }
}

#[tokio::test]
async fn chat_can_require_the_token() {
    const TOKEN: &str = "chat-token-for-tests";
    let s = TestServer::start(|c| {
        c.token = Some(Secret::new(TOKEN));
        c.anonymous = Rights {
            read: true,
            ..Rights::default()
        };
        c.granted.chat = true;
        c.sniff_timeout = Duration::from_millis(200);
    })
    .await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut t, &mut out)
        .await
        .unwrap();
    assert!(out.contains("needs the token"), "{out}");
    let mut anon = s.client().await;
    let e = anon.chat(None, &[]).await.err().unwrap();
    assert_eq!(e.code(), Some(ErrorCode::AuthRequired));
    let mut c = s.client_with(TOKEN).await.unwrap();
    c.chat(Some("member"), &[]).await.unwrap();
}
