//! The names' background work: this node's lease, the watcher that
//! mirrors the bucket, and the writer that makes this node's changes to
//! it one at a time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::warn;

use super::names::{LEASE_EVERY, NameEntry, Op, lease_alive, nick_key, renew, topic_key};
use super::{Bus, ClaimError, Session};

/// Keeps this node's lease, and removes the names of nodes whose lease
/// is gone.
pub(super) async fn leases(bus: Arc<Bus>, s: Session) {
    let mut tick = tokio::time::interval(LEASE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = renew(&bus, &s).await {
            warn!("chat bus: cannot renew this node's lease: {e}");
            continue;
        }
        for node in bus.names.other_nodes() {
            match lease_alive(&s, &node).await {
                Ok(true) => {}
                Ok(false) => {
                    let (told, gone) = bus.names.forget_node(&node);
                    if let Some(hub) = bus.hub.upgrade() {
                        for r in told {
                            hub.remote(r);
                        }
                    }
                    for (k, rev) in gone {
                        let _ = s.names.delete_expect_revision(&k, Some(rev)).await;
                    }
                }
                Err(_) => break,
            }
        }
    }
}

/// Follows the bucket of names, and writes this node's changes to it in
/// the order they were made.
pub(super) async fn watcher(bus: Arc<Bus>, s: Session) {
    let rx = bus
        .names
        .ops_rx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let writer = rx.map(|rx| tokio::spawn(writer(bus.clone(), rx)));
    loop {
        match s.names.watch_all().await {
            Ok(mut w) => {
                while let Some(e) = w.next().await {
                    let Ok(e) = e else { break };
                    let told = bus.names.apply(&e);
                    if let Some(hub) = bus.hub.upgrade() {
                        for r in told {
                            hub.remote(r);
                        }
                    }
                }
            }
            Err(e) => warn!("chat bus: cannot watch names: {e}"),
        }
        if writer.as_ref().is_some_and(|w| w.is_finished()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn writer(bus: Arc<Bus>, mut rx: mpsc::UnboundedReceiver<Op>) {
    while let Some(op) = rx.recv().await {
        // Changes made while the bus is down are written whole at rejoin.
        let Some(s) = bus.session() else {
            if let Op::Claim { done, .. } = op {
                let _ = done.send(Err(ClaimError::Bus("not connected".into())));
            }
            continue;
        };
        match op {
            Op::Claim {
                nick,
                rooms,
                was,
                done,
            } => {
                let r = bus.names.claim_as(&s, &nick, rooms, was, false).await;
                let _ = done.send(r);
            }
            Op::Present(nick, Some(rooms)) => {
                let key = nick_key(&nick);
                let entry = NameEntry {
                    node: bus.node.clone(),
                    nick,
                    rooms,
                    was: None,
                };
                let rev = bus.names.mirror().nicks.get(&key).map(|(_, r)| *r);
                let value = Bytes::from(serde_json::to_vec(&entry).unwrap_or_default());
                // Only over this node's own entry: a name lost meanwhile
                // is not taken back by a late update.
                if let Some(rev) = rev
                    && let Ok(r) = s.names.update(&key, value, rev).await
                {
                    bus.names.mirror().nicks.insert(key, (entry, r));
                }
            }
            Op::Present(nick, None) => {
                let key = nick_key(&nick);
                let rev = bus
                    .names
                    .mirror()
                    .nicks
                    .get(&key)
                    .and_then(|(e, r)| (e.node == bus.node).then_some(*r));
                if let Some(rev) = rev {
                    let _ = s.names.delete_expect_revision(&key, Some(rev)).await;
                }
            }
            Op::Topic(key, Some(t)) => {
                let value = Bytes::from(serde_json::to_vec(&t).unwrap_or_default());
                let _ = s.names.put(topic_key(&key), value).await;
            }
            Op::Topic(key, None) => {
                let _ = s.names.purge(topic_key(&key)).await;
            }
        }
    }
}
