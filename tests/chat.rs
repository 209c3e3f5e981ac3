//! The chat hub through its doors: plain text lines and the native client.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{TestServer, spawn_bin_server};
use ferry::access::Rights;
use ferry::chat::Event;
use ferry::client::Client;
use ferry::secret::Secret;
use ferry::wire::messages::ErrorCode;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A person with nc: raw lines both ways.
struct Text {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

impl Text {
    async fn connect(addr: std::net::SocketAddr) -> Text {
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, w) = s.into_split();
        let mut t = Text {
            rd: BufReader::new(r),
            wr: w,
        };
        t.until(|l| l.starts_with("* welcome")).await;
        t
    }

    async fn send(&mut self, line: &[u8]) {
        self.wr.write_all(line).await.unwrap();
        self.wr.write_all(b"\n").await.unwrap();
    }

    /// The next line (raw bytes, line ending stripped); `None` at EOF.
    async fn line(&mut self) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), self.rd.read_until(b'\n', &mut buf))
            .await
            .expect("a line within 10 s")
            .unwrap();
        if n == 0 {
            return None;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Some(buf)
    }

    /// Reads lines until one matches; returns all of them.
    async fn until(&mut self, want: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let l = self
                .line()
                .await
                .unwrap_or_else(|| panic!("EOF; saw {seen:?}"));
            let l = String::from_utf8(l).unwrap();
            let done = want(&l);
            seen.push(l);
            if done {
                return seen;
            }
        }
    }
}

async fn fast_server() -> TestServer {
    TestServer::start(|c| {
        c.chat.rate = 100_000.0;
        c.sniff_timeout = Duration::from_millis(200);
    })
    .await
}

/// A live message as (room, nick, text).
type Seen = (String, String, String);

/// Says `count` lines from a native client, reading its own echoes as it
/// goes, or it would be the one dropped for not reading.
async fn say_all(
    chat: &mut ferry::client::ChatSession<'_>,
    count: usize,
    line: impl Fn(usize) -> String,
) {
    let (mut events, mut lines) = chat.halves();
    let send = async {
        for i in 0..count {
            lines.say(&line(i)).await.unwrap();
            // Let the readers keep up on a one-thread runtime.
            tokio::task::yield_now().await;
        }
    };
    let echo = async {
        let mut n = 0;
        while n < count {
            if message(&events.next().await.unwrap().unwrap()).is_some() {
                n += 1;
            }
        }
    };
    tokio::join!(send, echo);
}

fn message(e: &Event) -> Option<Seen> {
    match e {
        Event::Message {
            room,
            nick,
            text,
            history: false,
            ..
        } => Some((room.clone(), nick.clone(), text.clone())),
        _ => None,
    }
}

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
async fn a_client_that_never_reads_is_dropped_and_the_others_get_everything() {
    // 3 MB: more than the stuck client's socket buffers and queue hold.
    const SENT: usize = 3000;
    let s = fast_server().await;
    // Connects, gets in, then never reads again.
    let stuck = Text::connect(s.addr).await;
    let mut readers = Vec::new();
    for i in 0..5 {
        let mut c = Client::connect(&s.addr.to_string(), None).await.unwrap();
        let nick = format!("reader{i}");
        readers.push(tokio::spawn(async move {
            let (mut chat, _) = c.chat(Some(&nick), &[]).await.unwrap();
            let mut n = 0;
            let mut saw_drop = false;
            while n < SENT {
                match chat.next_event().await.unwrap().unwrap() {
                    Event::Message { .. } => n += 1,
                    Event::Left { reason, .. } => {
                        saw_drop |= reason.unwrap_or_default().contains("stopped reading")
                    }
                    _ => {}
                }
            }
            (n, saw_drop)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sender = s.client().await;
    let (mut chat, _) = sender.chat(Some("sender"), &[]).await.unwrap();
    let started = Instant::now();
    let line = "z".repeat(1000);
    say_all(&mut chat, SENT, |i| format!("{i} {line}")).await;
    for r in readers {
        let (n, saw_drop) = tokio::time::timeout(Duration::from_secs(30), r)
            .await
            .expect("readers got everything in time")
            .unwrap();
        assert_eq!(n, SENT);
        assert!(saw_drop, "the stuck client was not dropped");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_readers_that_fall_behind_and_catch_up_get_every_line_whole_and_in_order() {
    // The hub writes a text client's socket itself while nothing is queued
    // for it; a reader that pauses fills its socket, the rest is queued and
    // its door writes, then the hub takes over again. Across many such
    // hand-overs, including writes the socket took only part of, each
    // reader must see every line once, whole, in order. The lines (3.4 MB)
    // are more than a reader's 2 MiB budget: readers that pause but keep
    // reading slow the sender down instead of being dropped.
    const SENT: usize = 4000;
    let s = fast_server().await;
    let mut readers = Vec::new();
    for pause_every in [50usize, 170, 400] {
        let mut t = Text::connect(s.addr).await;
        readers.push(tokio::spawn(async move {
            let mut next = 0;
            let mut n = 0;
            while next < SENT {
                let l = String::from_utf8(t.line().await.expect("a line")).unwrap();
                let Some(body) = l.strip_prefix("[lobby] <sender> ") else {
                    continue;
                };
                let (seq, pad) = body.split_once(' ').unwrap();
                assert_eq!(seq.parse::<usize>().unwrap(), next, "out of order");
                assert_eq!(pad, "y".repeat(700 + next % 300), "torn line {next}");
                next += 1;
                n += 1;
                if n % pause_every == 0 {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }
            next
        }));
    }
    let mut sender = s.client().await;
    let (mut chat, _) = sender.chat(Some("sender"), &[]).await.unwrap();
    say_all(&mut chat, SENT, |i| {
        format!("{i} {}", "y".repeat(700 + i % 300))
    })
    .await;
    for r in readers {
        let got = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .expect("readers got everything in time")
            .unwrap();
        assert_eq!(got, SENT);
    }
}

#[tokio::test]
async fn fast_senders_are_slowed_then_flooders_disconnected() {
    let s = TestServer::start(|c| {
        c.chat.rate = 10.0;
        c.chat.flood = Duration::from_secs(1);
        c.sniff_timeout = Duration::from_millis(200);
    })
    .await;
    let mut watcher = Text::connect(s.addr).await;
    let mut nc = Text::connect(s.addr).await;
    // 20 in a burst go through at once; the next 10 take about a second.
    let started = Instant::now();
    for i in 0..30 {
        nc.send(format!("line {i}").as_bytes()).await;
    }
    watcher.until(|l| l.ends_with("> line 29")).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(800), "not slowed: {took:?}");
    // Keep flooding: past a second of being held back, disconnected.
    let flood = async {
        for i in 0..500 {
            if nc
                .wr
                .write_all(format!("flood {i}\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), flood)
        .await
        .ok();
    let lines = nc.until(|l| l.starts_with("* disconnected")).await;
    assert!(lines.last().unwrap().contains("flooding"), "{lines:?}");
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

fn nix_term(pid: u32) {
    assert!(
        std::process::Command::new("kill")
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
}

// ---- the terminal client ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    wait_for("(history");
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

/// A WebSocket to the chat, as the page opens it.
async fn websocket(
    addr: std::net::SocketAddr,
    query: &str,
    origin: &str,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/.ferry/chat?{query}")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("Origin", origin.parse().unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
}

async fn next_event(
    ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
) -> Option<serde_json::Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event within 10 s")?;
        match m {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
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
