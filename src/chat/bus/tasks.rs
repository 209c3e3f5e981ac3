//! The names' background work: this node's lease, the watcher that
//! mirrors the bucket, and the writer that makes this node's changes to
//! it one at a time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::warn;

use std::sync::atomic::Ordering;

use super::names::{
    LEASE_EVERY, LEASE_TTL, NAMES, NameEntry, Op, lease_alive, nick_key, renew, topic_key,
};
use super::{Bus, ClaimError, Session};

/// Delete markers are removed from the bucket this long after they were
/// seen: long enough for every watcher to have taken them in (a watcher
/// that starts again later finds the key gone, and the names' keys say
/// so).
const MARKER_KEEP: Duration = Duration::from_secs(30);

/// Keeps this node's lease (`rev`: its revision); claims this node's
/// names again when the lease was lost meanwhile or one of them was
/// deleted by another node; removes the names of nodes whose lease is
/// gone, once this node has itself been connected for longer than a lease
/// lasts (a node back from a break must not take everyone else for dead);
/// and removes old delete markers.
pub(super) async fn leases(bus: Arc<Bus>, s: Session, mut rev: u64) {
    let since = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(LEASE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match renew(&bus, &s, Some(rev)).await {
            Ok(r) => rev = r,
            Err(_) => {
                // Expired: others may have taken this node's names.
                match renew(&bus, &s, None).await {
                    Ok(r) => rev = r,
                    Err(e) => {
                        warn!("chat bus: cannot renew this node's lease: {e}");
                        continue;
                    }
                }
                warn!("chat bus: this node's lease had expired; claiming its names again");
                bus.names.lost.store(true, Ordering::Release);
            }
        }
        if bus.names.lost.swap(false, Ordering::AcqRel) {
            bus.names.rejoin(&s, &bus).await;
        }
        if since.elapsed() > LEASE_TTL + LEASE_EVERY {
            reap(&bus, &s).await;
        }
        sweep(&bus, &s).await;
    }
}

/// Removes the names of nodes whose lease is gone.
async fn reap(bus: &Arc<Bus>, s: &Session) {
    for node in bus.names.other_nodes() {
        match lease_alive(s, &node).await {
            Ok(true) => {}
            Ok(false) => {
                let (told, gone) = bus.names.forget_node(&node);
                if let Some(hub) = bus.hub() {
                    for r in told {
                        hub.remote(r);
                    }
                }
                for (k, rev) in gone {
                    let _ = s.names.delete_expect_revision(&k, Some(rev)).await;
                }
            }
            Err(_) => return,
        }
    }
}

/// Removes delete markers seen long enough ago, each only up to its own
/// revision (a name made again since stays).
async fn sweep(bus: &Arc<Bus>, s: &Session) {
    let due: Vec<(String, u64)> = {
        let Ok(mut marks) = bus.names.markers.lock() else {
            return;
        };
        let now = std::time::Instant::now();
        let (old, young): (Vec<_>, Vec<_>) = marks
            .drain(..)
            .partition(|(_, _, at)| now.duration_since(*at) >= MARKER_KEEP);
        *marks = young;
        old.into_iter().map(|(k, rev, _)| (k, rev)).collect()
    };
    if due.is_empty() {
        return;
    }
    let Ok(stream) = s.js.get_stream(format!("KV_{NAMES}")).await else {
        return;
    };
    for (key, rev) in due {
        let _ = stream
            .purge()
            .filter(format!("$KV.{NAMES}.{key}"))
            .sequence(rev + 1)
            .await;
    }
}

/// Follows the bucket of names, and writes this node's changes to it in
/// the order they were made. Each time it starts, it is shown every name
/// there is (and what other nodes' names it knew of are no longer there
/// are taken as gone).
pub(super) async fn watcher(bus: Arc<Bus>, s: Session) {
    let rx = bus
        .names
        .ops_rx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let writer = rx.map(|rx| tokio::spawn(writer(bus.clone(), rx)));
    loop {
        let live = async {
            let mut keys = s.names.keys().await?;
            let mut live = std::collections::BTreeSet::new();
            while let Some(k) = keys.next().await {
                live.insert(k?);
            }
            anyhow::Ok(live)
        }
        .await;
        match live {
            Ok(live) => {
                if live.is_empty() {
                    bus.names.synced.store(true, Ordering::Release);
                }
                tell(&bus, bus.names.retain_live(&live));
            }
            Err(e) => warn!("chat bus: cannot list names: {e}"),
        }
        match s.names.watch_with_history(">").await {
            Ok(mut w) => {
                while let Some(e) = w.next().await {
                    let Ok(e) = e else { break };
                    if e.delta == 0 {
                        bus.names.synced.store(true, Ordering::Release);
                    }
                    let (told, lost) = bus.names.apply(&e);
                    tell(&bus, told);
                    if let (Some(nick), Some(hub)) = (lost, bus.hub())
                        && hub.holds(&nick)
                    {
                        bus.names.lost.store(true, Ordering::Release);
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

fn tell(bus: &Bus, told: Vec<super::Remote>) {
    if let Some(hub) = bus.hub() {
        for r in told {
            hub.remote(r);
        }
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
                let rev = bus.names.own_revision(&key);
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
                let rev = bus.names.own_revision(&key);
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
