//! The chat over WebSocket, for the page: the same hub, rooms and history
//! as the terminal and nc clients. Each text message from the browser is
//! one line (text or a `/` command); each event goes back as one text
//! message holding its JSON (as in the native door).

use std::collections::HashMap;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tracing::info;

use super::auth;
use super::{Web, error};
use crate::chat::Pace;
use crate::chat::{Delivery, Event, Outcome};
use crate::text::escape;

/// `GET /.ferry/chat?nick=NAME&rooms=a,b` with an upgrade to WebSocket.
pub async fn upgrade(
    State(web): State<Web>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    // A page on another site may open a WebSocket here with the visitor's
    // cookies: only this server's own page is let in.
    if headers.get(axum::http::header::ORIGIN).is_none() {
        return error(StatusCode::FORBIDDEN, "a WebSocket needs an Origin");
    }
    if let Err(r) = auth::same_origin(&headers) {
        return r;
    }
    let who = match auth::who(&web, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let root = crate::files::RelPath::root();
    if let Err(r) = auth::allow(&who, &web, &headers, crate::access::Action::Chat, &root) {
        return r;
    }
    let Some(hub) = web.ctx.chat.clone() else {
        return error(StatusCode::NOT_FOUND, "this server does not run the chat");
    };
    let nick = q.get("nick").filter(|n| !n.is_empty()).cloned();
    let rooms: Vec<String> = q
        .get("rooms")
        .map(|r| {
            r.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let max = hub.limits().max_message;
    // A logged-in account chats under its own name (which is its alone).
    let owner = web
        .ctx
        .files
        .policy()
        .account_name(who.id)
        .map(str::to_string);
    // What waits to go out is bounded too: each event is sent and flushed
    // in turn, but the library answers every ping with a pong of its own,
    // and without a bound a client that pings and never reads would pile
    // them up here. At the bound one pong is kept (the latest), as the
    // protocol allows. The bound holds the largest event there is (every
    // room with the longest topic, escaped: `/rooms`); pings past a few a
    // second end the connection (see `PINGS`).
    let largest = hub.limits().rooms.saturating_mul(6 * max + 256);
    ws.max_message_size(max + 1024)
        .max_frame_size(max + 1024)
        .max_write_buffer_size(largest.max(8 << 20) + (1 << 20))
        .on_upgrade(move |socket| run(socket, web, hub, nick, rooms, owner))
}

/// At most this many pings in this long: a keep-alive sends one every
/// several seconds; a flood is ended.
const PINGS: (u32, std::time::Duration) = (64, std::time::Duration::from_secs(10));

fn text(ev: &Delivery) -> Message {
    Message::Text(Utf8Bytes::from(
        String::from_utf8_lossy(ev.json()).into_owned(),
    ))
}

async fn run(
    socket: WebSocket,
    web: Web,
    hub: std::sync::Arc<crate::chat::Hub>,
    nick: Option<String>,
    rooms: Vec<String>,
    owner: Option<String>,
) {
    let (mut tx, mut rx) = socket.split();
    let (mut member, mut events) = match hub
        .enter(nick.as_deref(), &rooms, None, owner.as_deref())
        .await
    {
        Ok(m) => m,
        Err(e) => {
            let bye = Delivery::new(Event::Bye { reason: e });
            let _ = tx.send(text(&bye)).await;
            let _ = tx
                .send(Message::Close(Some(CloseFrame {
                    code: 4009,
                    reason: Utf8Bytes::from_static("refused"),
                })))
                .await;
            return;
        }
    };
    info!(nick = %escape(&member.nick()), "chat (web) joined");
    let mut pace = Pace::new(web.ctx.config.chat.rate, web.ctx.config.chat.flood);
    let done = tokio_util::sync::CancellationToken::new();
    let dropped = member.dropped.clone();
    let stop = web.ctx.stop.clone();
    let reading = async {
        let mut pings = (std::time::Instant::now(), 0u32);
        let why: Option<String> = loop {
            let msg = tokio::select! {
                m = rx.next() => m,
                _ = dropped.cancelled() => break Some(member.drop_reason()),
                _ = stop.cancelled() => break Some("the server is shutting down".into()),
            };
            let line = match msg {
                Some(Ok(Message::Text(t))) => t.to_string(),
                Some(Ok(Message::Binary(_))) => {
                    member.tell("send text, not binary".into());
                    continue;
                }
                Some(Ok(Message::Ping(_))) => {
                    let now = std::time::Instant::now();
                    if now.duration_since(pings.0) > PINGS.1 {
                        pings = (now, 0);
                    }
                    pings.1 += 1;
                    if pings.1 > PINGS.0 {
                        break Some("too many pings".into());
                    }
                    continue;
                }
                Some(Ok(Message::Pong(_))) => continue,
                // Oversized frames end here too: the library refuses them.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break None,
            };
            if line.len() > hub.limits().max_message {
                member.tell(format!(
                    "line too long: at most {} bytes; not sent",
                    hub.limits().max_message
                ));
                continue;
            }
            if line.contains(['\n', '\r']) {
                member.tell("a line may not contain line breaks; not sent".into());
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            if let Err(e) = pace.admit().await {
                break Some(e);
            }
            if member.line(&line) == Outcome::Quit {
                break None;
            }
            member.keep_pace().await;
        };
        done.cancel();
        why
    };
    let writing = async {
        loop {
            let ev = tokio::select! {
                e = events.recv() => e,
                _ = done.cancelled() => None,
            };
            let Some(ev) = ev else { break };
            let sent = tokio::select! {
                r = tx.send(text(&ev)) => r.is_ok(),
                // Dropped for not reading: do not wait on it any longer.
                _ = dropped.cancelled() => false,
            };
            if !sent {
                break;
            }
        }
        tx
    };
    let (why, mut tx) = tokio::join!(reading, writing);
    if let Some(reason) = &why {
        member.set_quit_reason(reason);
    }
    let stuck = member.dropped.is_cancelled();
    drop(member);
    let farewell = async {
        if !stuck {
            while let Some(ev) = events.try_recv() {
                tx.send(text(&ev)).await?;
            }
        }
        if let Some(reason) = why {
            let bye = Delivery::new(Event::Bye { reason });
            tx.send(text(&bye)).await?;
        }
        tx.send(Message::Close(None)).await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), farewell).await;
}
