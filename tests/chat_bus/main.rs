//! Chat rooms across nodes on a real `nats-server -js`: one order and one
//! history on every node, names unique across the cluster, presence that
//! leaves with a dead node, and no acknowledged line lost when NATS is
//! killed.

#[path = "../common/mod.rs"]
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
            // Messages only: not "[lobby] <- x left".
            if let Some(m) = l.strip_prefix("[lobby] <").filter(|m| !m.starts_with("- ")) {
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

mod faults;
mod names;
mod order;
