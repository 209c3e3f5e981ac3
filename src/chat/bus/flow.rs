//! The stream's two ends on one node: the publisher of what its clients
//! say, and the reader that hands the hub every room's lines in the
//! stream's order.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::consumer;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::warn;

use super::{Bus, IN_FLIGHT, READ_AT_ONCE, STREAM, SUBJECT, Said, Session, hex};

/// Publishes what clients say, in order, with many acknowledgements
/// awaited at once; a batch the stream did not take is delivered by this
/// node alone, and its sender told.
pub(super) async fn publisher(bus: Arc<Bus>, mut rx: mpsc::Receiver<Box<Said>>) {
    let mut acks = futures_util::stream::FuturesOrdered::new();
    loop {
        tokio::select! {
            biased;
            Some((said, r)) = acks.next(), if !acks.is_empty() => {
                let (said, r): (Box<Said>, Result<(), String>) = (said, r);
                if let Err(e) = r {
                    warn!("chat bus: a message was not stored: {e}");
                    if let Some(hub) = bus.hub.upgrade() {
                        bus.delivered_alone(&said.id);
                        hub.deliver_alone(said);
                    }
                }
            }
            said = rx.recv(), if acks.len() < IN_FLIGHT => {
                let Some(said) = said else { return };
                let Some(s) = bus.session() else {
                    if let Some(hub) = bus.hub.upgrade() {
                        hub.deliver_alone(said);
                    }
                    continue;
                };
                let subject = format!("{SUBJECT}.{}", hex(&said.room));
                let body = match serde_json::to_vec(&said) {
                    Ok(b) => b,
                    Err(_) => continue,
                };
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", said.id.as_str());
                let sent = s.js.publish_with_headers(subject, headers, body.into()).await;
                acks.push_back(async move {
                    let r = match sent {
                        Ok(ack) => match tokio::time::timeout(Duration::from_secs(5), ack).await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err("no acknowledgement in 5 s".to_string()),
                        },
                        Err(e) => Err(e.to_string()),
                    };
                    (said, r)
                });
            }
            else => return,
        }
    }
}

/// Reads the stream from where this node is (the start, at first) and
/// hands each batch to the hub, in the stream's order.
pub(super) async fn reader(bus: Arc<Bus>, s: Session) {
    let last = &bus.read;
    loop {
        let from = last.load(Ordering::Acquire);
        let deliver_policy = if from == 0 {
            consumer::DeliverPolicy::All
        } else {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from + 1,
            }
        };
        let made = async {
            let stream = s.js.get_stream(STREAM).await?;
            let c = stream
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subject: format!("{SUBJECT}.>"),
                    deliver_policy,
                    ..Default::default()
                })
                .await?;
            anyhow::Ok(c.messages().await?)
        }
        .await;
        let mut msgs = match made {
            Ok(m) => m,
            Err(e) => {
                warn!("chat bus: cannot read the stream: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut broke = false;
        while let Some(first) = msgs.next().await {
            // What else came already goes to the hub with it.
            let mut got = vec![first];
            while got.len() < READ_AT_ONCE {
                match futures_util::FutureExt::now_or_never(msgs.next()) {
                    Some(Some(m)) => got.push(m),
                    _ => break,
                }
            }
            let mut batches = Vec::with_capacity(got.len());
            for m in got {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        warn!("chat bus: reading the stream: {e}");
                        broke = true;
                        break;
                    }
                };
                match m.info() {
                    // Delivered already (by a reader this one replaced).
                    Ok(info) if info.stream_sequence <= last.load(Ordering::Acquire) => continue,
                    Ok(info) => last.store(info.stream_sequence, Ordering::Release),
                    Err(_) => {}
                }
                let Ok(said) = serde_json::from_slice::<Said>(&m.payload) else {
                    warn!(
                        "chat bus: a message on {} is not a batch of lines",
                        m.subject
                    );
                    continue;
                };
                if m.subject.as_str() != format!("{SUBJECT}.{}", hex(&said.room)) {
                    warn!("chat bus: a batch on {} names another room", m.subject);
                    continue;
                }
                let alone = said.node == bus.node && bus.was_delivered_alone(&said.id);
                batches.push((said, alone));
            }
            let Some(hub) = bus.hub.upgrade() else {
                return;
            };
            hub.arrive(batches);
            if broke {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
