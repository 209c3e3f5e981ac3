//! Private messages to people on other nodes: a request to the node the
//! name's entry names, answered once the message is delivered there. They
//! go through NATS itself, never into the stream: private messages are
//! not kept, on one node or several.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::Bus;

/// A private message between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Private {
    /// Sender.
    pub from: String,
    /// Recipient, as its node spells it.
    pub to: String,
    /// The text.
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
}

/// How long a sender waits for the other node to say it delivered.
const ANSWER_WAIT: Duration = Duration::from_secs(3);

fn subject(node: &str) -> String {
    format!("ferry.private.{node}")
}

impl Bus {
    /// Delivers `p` to its recipient on another node; `Ok` once that node
    /// has given it to its client.
    pub async fn send_private(&self, node: &str, p: &Private) -> Result<(), String> {
        let s = self
            .session()
            .ok_or("the other servers cannot be reached now")?;
        let body = serde_json::to_vec(p).map_err(|e| e.to_string())?;
        match tokio::time::timeout(ANSWER_WAIT, s.client.request(subject(node), body.into())).await
        {
            Ok(Ok(m)) if &m.payload[..] == b"ok" => Ok(()),
            Ok(Ok(m)) => Err(String::from_utf8_lossy(&m.payload).into_owned()),
            _ => Err(format!("{}'s server did not answer; not sent", p.to)),
        }
    }
}

/// Takes private messages for this node's clients, and answers each.
pub(super) async fn inbox(bus: Arc<Bus>, client: async_nats::Client) {
    let Ok(mut sub) = client.subscribe(subject(&bus.node)).await else {
        return;
    };
    while let Some(m) = sub.next().await {
        let answer = match (serde_json::from_slice::<Private>(&m.payload), bus.hub()) {
            (Ok(p), Some(hub)) => hub.private_arrived(p),
            (Err(_), _) => Err("not a private message".to_string()),
            (_, None) => return,
        };
        if let Some(reply) = m.reply {
            let body = match answer {
                Ok(()) => "ok".to_string(),
                Err(e) => e,
            };
            let _ = client.publish(reply, body.into()).await;
        }
    }
}
