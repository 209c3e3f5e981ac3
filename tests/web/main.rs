//! The web door, driven by a real HTTP client (reqwest) and by raw sockets
//! where a client would tidy the request up: every method and status,
//! ranges and their edges, conditional requests, traversal attempts,
//! compression, archives, auth and cross-site checks, slow clients.

#[path = "../common/mod.rs"]
mod common;

use common::TestServer;
use reqwest::{Method, StatusCode, header};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn url(s: &TestServer, path: &str) -> String {
    format!("http://{}{path}", s.addr)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

/// Sends `request` as is and reads the whole answer (the request should
/// say `Connection: close`).
async fn raw(s: &TestServer, request: &[u8]) -> String {
    let out = s.exchange(request, Duration::from_secs(10)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether an answer asks for credentials a desktop client can give.
fn challenged(r: &reqwest::Response) -> bool {
    r.status() == StatusCode::UNAUTHORIZED
        && r.headers()
            .get(header::WWW_AUTHENTICATE)
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Basic"))
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

mod access;
mod archives;
mod dav;
mod dav_ends;
mod limits;
mod methods;
mod page;
mod reads;
mod removal;
mod tus;
