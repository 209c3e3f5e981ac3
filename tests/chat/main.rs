//! The chat hub through its doors: plain text lines and the native client.

#[path = "../common/mod.rs"]
mod common;

use common::{TestServer, spawn_bin_server};
use ferry::access::Rights;
use ferry::chat::Event;
use ferry::client::Client;
use ferry::secret::Secret;
use ferry::wire::messages::ErrorCode;
use std::collections::HashMap;
use std::time::{Duration, Instant};
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

fn nix_term(pid: u32) {
    assert!(
        std::process::Command::new("kill")
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

mod clients;
mod history;
mod rooms;
mod slow;
mod staying;
