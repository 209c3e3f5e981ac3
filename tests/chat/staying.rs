//! Staying in the chat: an idle `ferry chat` is not dropped at the idle
//! timeout, and one whose connection really was lost rejoins and is shown
//! only what it missed.

use super::*;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::AsyncBufReadExt;

/// `ferry chat ADDR --nick NICK`, fed from a pipe the test holds, its
/// output lines gathered as they come.
struct ChatProcess {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl ChatProcess {
    fn start(addr: std::net::SocketAddr, nick: &str) -> ChatProcess {
        let mut child = tokio::process::Command::new(common::ferry_bin())
            .args(["chat", &addr.to_string(), "--nick", nick])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut out = tokio::io::BufReader::new(out).lines();
            while let Ok(Some(l)) = out.next_line().await {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        ChatProcess {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits up to 10 s for a line that matches.
    async fn until(&mut self, want: impl Fn(&str) -> bool) {
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(l) = self.lines.recv().await {
                let done = want(&l);
                self.seen.push(l);
                if done {
                    return;
                }
            }
            panic!("the chat ended; saw {:?}", self.seen);
        })
        .await;
        assert!(found.is_ok(), "not seen; saw {:?}", self.seen);
    }

    async fn say(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// How many lines seen so far end with `text`.
    fn count(&self, text: &str) -> usize {
        self.seen.iter().filter(|l| l.ends_with(text)).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_chat_stays_past_the_idle_timeout() {
    let s = TestServer::start(|c| {
        c.deadlines.idle = Duration::from_secs(1);
        c.sniff_timeout = Duration::from_millis(200);
    })
    .await;
    let mut idler = ChatProcess::start(s.addr, "idler");
    idler.until(|l| l.contains("welcome")).await;
    let mut watcher = Text::connect(s.addr).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    idler.say("still here").await;
    let seen = watcher.until(|l| l.ends_with("<idler> still here")).await;
    assert!(
        !seen
            .iter()
            .any(|l| l.contains("idler left") || l.contains("idler joined")),
        "the idle client was dropped and came back: {seen:?}"
    );
    assert!(
        !idler.seen.iter().any(|l| l.contains("connection lost")),
        "{:?}",
        idler.seen
    );
}

/// A proxy that the test can close: it cuts the connections it carries,
/// and turns new ones away until it is opened again.
struct Cuttable {
    addr: std::net::SocketAddr,
    open: Arc<AtomicBool>,
    cut: Arc<std::sync::Mutex<tokio_util::sync::CancellationToken>>,
}

impl Cuttable {
    fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = tokio_util::sync::CancellationToken::new();
    }

    fn reopen(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

async fn cuttable(target: std::net::SocketAddr) -> Cuttable {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicBool::new(true));
    let cut = Arc::new(std::sync::Mutex::new(
        tokio_util::sync::CancellationToken::new(),
    ));
    let (o, c) = (open.clone(), cut.clone());
    tokio::spawn(async move {
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            if !o.load(Ordering::SeqCst) {
                continue;
            }
            let mut server = TcpStream::connect(target).await.unwrap();
            let c = c.lock().unwrap().clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = c.cancelled() => {}
                }
            });
        }
    });
    Cuttable { addr, open, cut }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_shows_only_what_was_missed() {
    let s = fast_server().await;
    let proxy = cuttable(s.addr).await;
    let mut alice = ChatProcess::start(proxy.addr, "alice");
    alice.until(|l| l.contains("welcome")).await;
    let mut bob = Client::connect(&s.addr.to_string(), None).await.unwrap();
    let (mut chat, _) = bob.chat(Some("bob"), &[]).await.unwrap();
    chat.say("before the cut").await.unwrap();
    alice.until(|l| l.ends_with("<bob> before the cut")).await;

    proxy.close();
    alice.until(|l| l.contains("connection lost")).await;
    chat.say("while away 1").await.unwrap();
    chat.say("while away 2").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.reopen();

    alice.until(|l| l.ends_with("while away 2")).await;
    chat.say("after").await.unwrap();
    alice.until(|l| l.ends_with("<bob> after")).await;
    assert_eq!(alice.count("before the cut"), 1, "{:?}", alice.seen);
    assert_eq!(alice.count("while away 1"), 1, "{:?}", alice.seen);
    assert_eq!(alice.count("while away 2"), 1, "{:?}", alice.seen);
}

/// A client that sends /quit with its very first bytes still gets its
/// welcome before the goodbye: what was queued goes out first.
#[tokio::test]
async fn a_quit_at_once_still_gets_the_welcome() {
    use tokio::io::AsyncReadExt;
    let s = fast_server().await;
    for _ in 0..5 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"/quit\n").await.unwrap();
        let mut all = String::new();
        tokio::time::timeout(Duration::from_secs(10), c.read_to_string(&mut all))
            .await
            .unwrap()
            .unwrap();
        assert!(all.starts_with("* welcome"), "{all}");
        assert!(all.contains("bye"), "{all}");
    }
}
