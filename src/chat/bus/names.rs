//! Names across the cluster: nicknames (with the rooms each is in) and
//! topics, in one key-value bucket every node watches, and each node's
//! lease in another whose entries expire.
//!
//! A nickname's key is created only when free, so two nodes can never
//! both give it out; its value names the node that holds it and the rooms
//! its client is in, which is the cluster's presence. A name whose node's
//! lease has expired is free again: the nodes that see the lease gone
//! delete the node's names (each only if unchanged since it looked), and
//! every node tells its clients that those people left.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::warn;

use super::{Bus, ClaimError, Session, hex};
use crate::chat::Event;
use crate::chat::hub::room_key;

/// The bucket of names and topics.
pub(super) const NAMES: &str = "ferry_chat_names";
/// The bucket of leases.
const LEASES: &str = "ferry_chat_nodes";
/// A lease lasts this long unless renewed.
pub(super) const LEASE_TTL: Duration = Duration::from_secs(6);
/// And is renewed this often (and other nodes' leases looked at).
pub(super) const LEASE_EVERY: Duration = Duration::from_millis(1500);

/// How long a client waits for its name to be claimed.
const CLAIM_WAIT: Duration = Duration::from_secs(10);

/// A nickname's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameEntry {
    /// The node its client is on.
    pub node: String,
    /// As its client spells it.
    pub nick: String,
    /// Rooms its client is in, by name.
    pub rooms: Vec<String>,
    /// The client's name before, when it was renamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub was: Option<String>,
}

/// A room's topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct TopicEntry {
    room: String,
    nick: String,
    topic: String,
}

/// What another node's clients did, for this node's clients to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A join, leave or topic: told to the room the event names.
    Room(Event),
    /// Someone took a new name: told to everyone in `rooms` (by name).
    Nick {
        /// The name before.
        old: String,
        /// The name now.
        new: String,
        /// The rooms they are in.
        rooms: Vec<String>,
    },
}

/// This node's writes to the bucket, made one at a time in the order
/// asked: a claim made while an update of the client's rooms waits would
/// otherwise overtake it, and the update bring the old name back.
pub(super) enum Op {
    Claim {
        nick: String,
        rooms: Vec<String>,
        was: Option<String>,
        done: tokio::sync::oneshot::Sender<Result<(), ClaimError>>,
    },
    Present(String, Option<Vec<String>>),
    /// A room's topic set (`Some`) or removed.
    Topic(String, Option<TopicEntry>),
}

/// The cluster's names as this node sees them.
pub struct Names {
    node: String,
    mirror: Mutex<Mirror>,
    ops: mpsc::UnboundedSender<Op>,
    pub(super) ops_rx: Mutex<Option<mpsc::UnboundedReceiver<Op>>>,
    /// Set when this node's own name of a client still here was deleted
    /// by another node: the names are claimed again.
    pub(super) lost: std::sync::atomic::AtomicBool,
    /// Delete markers seen (key, revision, when): removed from the bucket
    /// after a while, or every name ever used would stay in it.
    pub(super) markers: Mutex<Vec<(String, u64, std::time::Instant)>>,
    /// The watcher has been shown every name there was when it started.
    pub(super) synced: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
pub(super) struct Mirror {
    /// Key → entry and revision.
    pub(super) nicks: HashMap<String, (NameEntry, u64)>,
    /// Room key → topic.
    topics: HashMap<String, TopicEntry>,
}

pub(super) fn nick_key(nick: &str) -> String {
    format!("n.{}", hex(&nick.to_lowercase()))
}

pub(super) fn topic_key(room: &str) -> String {
    format!("t.{}", hex(room))
}

/// The buckets, made when missing.
pub(super) async fn open(js: &jetstream::Context) -> anyhow::Result<(kv::Store, kv::Store)> {
    Ok((
        bucket(js, NAMES, None).await?,
        bucket(js, LEASES, Some(LEASE_TTL)).await?,
    ))
}

/// A key-value bucket, its stream made by hand when missing, as the
/// key-value convention lays it out (`KV_NAME` over `$KV.NAME.>`, one
/// value per key, rollups, direct gets): the client's own bucket creation
/// first reads the account's limits in a form that the NATS of Debian
/// stable (2.9) does not answer.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Option<Duration>,
) -> anyhow::Result<kv::Store> {
    if let Ok(s) = js.get_key_value(name).await {
        return Ok(s);
    }
    let window = max_age
        .unwrap_or(Duration::from_secs(120))
        .min(Duration::from_secs(120));
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age: max_age.unwrap_or_default(),
        max_bytes: 64 << 20,
        max_message_size: 64 * 1024,
        discard: jetstream::stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        storage: jetstream::stream::StorageType::File,
        num_replicas: 1,
        duplicate_window: window,
        ..Default::default()
    })
    .await?;
    Ok(js.get_key_value(name).await?)
}

impl Names {
    pub(super) fn new(node: &str) -> Names {
        let (ops, rx) = mpsc::unbounded_channel();
        Names {
            node: node.to_string(),
            mirror: Mutex::new(Mirror::default()),
            ops,
            ops_rx: Mutex::new(Some(rx)),
            lost: Default::default(),
            markers: Default::default(),
            synced: Default::default(),
        }
    }

    pub(super) fn mirror(&self) -> std::sync::MutexGuard<'_, Mirror> {
        self.mirror.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets every name: the bucket was made anew.
    pub(super) fn forget_all(&self) {
        let mut m = self.mirror();
        m.nicks.clear();
        m.topics.clear();
    }

    /// Drops the names other nodes no longer hold (`live`: the bucket's
    /// keys now), for what a watcher that starts again does not show.
    pub(super) fn retain_live(&self, live: &BTreeSet<String>) -> Vec<Remote> {
        let mut m = self.mirror();
        let gone: Vec<String> = m
            .nicks
            .iter()
            .filter(|(k, (e, _))| e.node != self.node && !live.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        let mut told = Vec::new();
        for k in gone {
            if let Some((e, _)) = m.nicks.remove(&k) {
                for r in e.rooms {
                    told.push(Remote::Room(Event::Left {
                        room: r,
                        nick: e.nick.clone(),
                        reason: None,
                    }));
                }
            }
        }
        m.topics.retain(|k, _| live.contains(&topic_key(k)));
        told
    }

    /// The revision of the entry at `key`, when it is this node's.
    pub(super) fn own_revision(&self, key: &str) -> Option<u64> {
        self.mirror()
            .nicks
            .get(key)
            .and_then(|(e, r)| (e.node == self.node).then_some(*r))
    }

    /// Whether another node's client is called `nick`.
    pub fn taken_elsewhere(&self, nick: &str) -> bool {
        self.mirror()
            .nicks
            .get(&nick_key(nick))
            .is_some_and(|(e, _)| e.node != self.node)
    }

    /// The node another node's client called `nick` is on, and how it
    /// spells the name.
    pub fn node_of(&self, nick: &str) -> Option<(String, String)> {
        self.mirror()
            .nicks
            .get(&nick_key(nick))
            .filter(|(e, _)| e.node != self.node)
            .map(|(e, _)| (e.node.clone(), e.nick.clone()))
    }

    /// Other nodes' clients in the room `key`.
    pub fn others_in(&self, key: &str) -> Vec<String> {
        self.mirror()
            .nicks
            .values()
            .filter(|(e, _)| e.node != self.node)
            .filter(|(e, _)| {
                e.rooms
                    .iter()
                    .any(|r| room_key(r).ok().as_deref() == Some(key))
            })
            .map(|(e, _)| e.nick.clone())
            .collect()
    }

    /// Rooms other nodes' clients are in: key → (name, how many).
    pub fn others_rooms(&self) -> BTreeMap<String, (String, usize)> {
        let mut out: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for (e, _) in self.mirror().nicks.values() {
            if e.node == self.node {
                continue;
            }
            for r in &e.rooms {
                if let Ok(k) = room_key(r) {
                    out.entry(k).or_insert_with(|| (r.clone(), 0)).1 += 1;
                }
            }
        }
        out
    }

    /// The topic of the room `key` in the cluster.
    pub fn topic(&self, key: &str) -> Option<String> {
        self.mirror().topics.get(key).map(|t| t.topic.clone())
    }

    /// Claims `nick`, after this node's earlier writes.
    pub(super) async fn claim(
        &self,
        nick: &str,
        rooms: Vec<String>,
        was: Option<String>,
    ) -> Result<(), ClaimError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let op = Op::Claim {
            nick: nick.to_string(),
            rooms,
            was,
            done,
        };
        if self.ops.send(op).is_err() {
            return Err(ClaimError::Bus("not connected".into()));
        }
        match tokio::time::timeout(CLAIM_WAIT, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ClaimError::Bus("not connected".into())),
            Err(_) => Err(ClaimError::Bus(format!(
                "no answer in {} s",
                CLAIM_WAIT.as_secs()
            ))),
        }
    }

    /// Claims `nick`; `mine` also takes it back from an entry of this
    /// node's (on rejoining after a break).
    pub(super) async fn claim_as(
        &self,
        s: &Session,
        nick: &str,
        rooms: Vec<String>,
        was: Option<String>,
        mine: bool,
    ) -> Result<(), ClaimError> {
        let key = nick_key(nick);
        let entry = NameEntry {
            node: self.node.clone(),
            nick: nick.to_string(),
            rooms,
            was,
        };
        let value = Bytes::from(serde_json::to_vec(&entry).unwrap_or_default());
        let bus = |e: &dyn std::fmt::Display| ClaimError::Bus(e.to_string());
        match s.names.create(&key, value.clone()).await {
            Ok(rev) => {
                self.mirror().nicks.insert(key, (entry, rev));
                return Ok(());
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(bus(&e)),
        }
        let held = s.names.entry(key.clone()).await.map_err(|e| bus(&e))?;
        let taken = || ClaimError::Taken(nick.to_string());
        let Some(held) = held else {
            return Err(taken());
        };
        let holder: Option<NameEntry> = serde_json::from_slice(&held.value).ok();
        let free = match &holder {
            Some(h) if h.node == self.node => mine,
            Some(h) => !lease_alive(s, &h.node).await.map_err(|e| bus(&e))?,
            // Not a name ferry wrote: left alone.
            None => false,
        };
        if !free {
            return Err(taken());
        }
        match s.names.update(&key, value, held.revision).await {
            Ok(rev) => {
                self.mirror().nicks.insert(key, (entry, rev));
                Ok(())
            }
            Err(_) => Err(taken()),
        }
    }

    pub(super) fn present(&self, nick: &str, rooms: Option<Vec<String>>) {
        let _ = self.ops.send(Op::Present(nick.to_string(), rooms));
    }

    pub(super) fn set_topic(&self, key: &str, name: &str, nick: &str, topic: &str) {
        let _ = self.ops.send(Op::Topic(
            key.to_string(),
            Some(TopicEntry {
                room: name.to_string(),
                nick: nick.to_string(),
                topic: topic.to_string(),
            }),
        ));
    }

    pub(super) fn clear_topic(&self, key: &str) {
        let _ = self.ops.send(Op::Topic(key.to_string(), None));
    }

    /// After a break: claims the names of this node's clients again (a
    /// client whose name another node gave out meanwhile is renamed), and
    /// frees this node's names that no client holds any more.
    pub(super) async fn rejoin(&self, s: &Session, bus: &Arc<Bus>) {
        let Some(hub) = bus.hub.upgrade() else {
            return;
        };
        let here = hub.present_clients();
        let keep: BTreeSet<String> = here.iter().map(|(_, n, _)| nick_key(n)).collect();
        for (id, nick, rooms) in here {
            match self.claim_as(s, &nick, rooms, None, true).await {
                Ok(()) => {}
                Err(ClaimError::Taken(_)) => {
                    // Renamed to a guest, until one is had.
                    for _ in 0..8 {
                        let Some((guest, rooms)) = hub.lost_name(id) else {
                            break;
                        };
                        if self.claim_as(s, &guest, rooms, None, false).await.is_ok() {
                            break;
                        }
                    }
                }
                Err(e) => {
                    // Tried again by the lease's next round.
                    warn!("chat bus: {e}");
                    self.lost.store(true, std::sync::atomic::Ordering::Release);
                }
            }
        }
        let stale: Vec<(String, u64)> = self
            .mirror()
            .nicks
            .iter()
            .filter(|(k, (e, _))| e.node == self.node && !keep.contains(*k))
            .map(|(k, (_, rev))| (k.clone(), *rev))
            .collect();
        for (k, rev) in stale {
            let _ = s.names.delete_expect_revision(&k, Some(rev)).await;
        }
    }

    /// Takes in one change of the bucket; returns what this node's
    /// clients are to be told, and the name of this node's that someone
    /// else deleted, if it was.
    pub(super) fn apply(&self, e: &kv::Entry) -> (Vec<Remote>, Option<String>) {
        let mut m = self.mirror();
        let mut out = Vec::new();
        if e.operation != kv::Operation::Put
            && let Ok(mut marks) = self.markers.lock()
        {
            marks.push((e.key.clone(), e.revision, std::time::Instant::now()));
        }
        if let Some(hex_key) = e.key.strip_prefix("t.") {
            // Keyed by the room key, found again from the name (a key is
            // the name's hex, checked against it).
            let put = (e.operation == kv::Operation::Put)
                .then(|| serde_json::from_slice::<TopicEntry>(&e.value).ok())
                .flatten()
                .and_then(|t| room_key(&t.room).ok().map(|k| (k, t)))
                .filter(|(k, _)| super::hex(k) == hex_key);
            match put {
                Some((k, t)) => {
                    if m.topics.get(&k) != Some(&t) {
                        out.push(Remote::Room(Event::Topic {
                            room: t.room.clone(),
                            nick: Some(t.nick.clone()),
                            topic: t.topic.clone(),
                        }));
                    }
                    m.topics.insert(k, t);
                }
                None => m.topics.retain(|k, _| super::hex(k) != hex_key),
            }
            return (out, None);
        }
        if !e.key.starts_with("n.") {
            return (out, None);
        }
        // Older than what this node wrote itself since: already seen.
        if m.nicks
            .get(&e.key)
            .is_some_and(|(_, rev)| *rev > e.revision)
        {
            return (out, None);
        }
        let new = match e.operation {
            kv::Operation::Put => serde_json::from_slice::<NameEntry>(&e.value).ok(),
            _ => None,
        };
        let prev = match &new {
            Some(n) => m.nicks.insert(e.key.clone(), (n.clone(), e.revision)),
            None => m.nicks.remove(&e.key),
        }
        .map(|(p, _)| p);
        if new.is_none()
            && let Some(p) = prev.as_ref().filter(|p| p.node == self.node)
        {
            return (out, Some(p.nick.clone()));
        }
        if let Some(n) = &new {
            if n.node == self.node {
                return (out, None);
            }
            let renamed = prev.is_none()
                && n.was.as_ref().is_some_and(|w| {
                    let wk = nick_key(w);
                    let same = m.nicks.get(&wk).is_some_and(|(o, _)| o.node == n.node);
                    if same {
                        m.nicks.remove(&wk);
                    }
                    same
                });
            if renamed {
                out.push(Remote::Nick {
                    old: n.was.clone().unwrap_or_default(),
                    new: n.nick.clone(),
                    rooms: n.rooms.clone(),
                });
                return (out, None);
            }
        }
        let before: Vec<String> = prev
            .iter()
            .filter(|p| p.node != self.node)
            .flat_map(|p| p.rooms.clone())
            .collect();
        let after: Vec<String> = new.iter().flat_map(|n| n.rooms.clone()).collect();
        let nick = new
            .as_ref()
            .or(prev.as_ref())
            .map(|x| x.nick.clone())
            .unwrap_or_default();
        for r in &after {
            if !before.contains(r) {
                out.push(Remote::Room(Event::Joined {
                    room: r.clone(),
                    nick: nick.clone(),
                }));
            }
        }
        for r in &before {
            if !after.contains(r) {
                out.push(Remote::Room(Event::Left {
                    room: r.clone(),
                    nick: nick.clone(),
                    reason: None,
                }));
            }
        }
        (out, None)
    }

    /// Forgets the names of `node`, whose lease is gone; returns what to
    /// tell this node's clients, and the keys to delete.
    pub(super) fn forget_node(&self, node: &str) -> (Vec<Remote>, Vec<(String, u64)>) {
        let mut m = self.mirror();
        let keys: Vec<String> = m
            .nicks
            .iter()
            .filter(|(_, (e, _))| e.node == node)
            .map(|(k, _)| k.clone())
            .collect();
        let mut told = Vec::new();
        let mut gone = Vec::new();
        for k in keys {
            if let Some((e, rev)) = m.nicks.remove(&k) {
                for r in e.rooms {
                    told.push(Remote::Room(Event::Left {
                        room: r,
                        nick: e.nick.clone(),
                        reason: Some("their server is gone".into()),
                    }));
                }
                gone.push((k, rev));
            }
        }
        (told, gone)
    }

    pub(super) fn other_nodes(&self) -> BTreeSet<String> {
        self.mirror()
            .nicks
            .values()
            .filter(|(e, _)| e.node != self.node)
            .map(|(e, _)| e.node.clone())
            .collect()
    }
}

/// The cluster's id: made by the first node, read by the others.
pub(super) async fn cluster_id(s: &Session) -> anyhow::Result<String> {
    let mine = format!("{:016x}", super::rand_u64());
    match s.names.create("cluster", Bytes::from(mine.clone())).await {
        Ok(_) => Ok(mine),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
            let v = s.names.get("cluster").await?.unwrap_or_default();
            Ok(String::from_utf8_lossy(&v).into_owned())
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn lease_alive(s: &Session, node: &str) -> Result<bool, kv::EntryError> {
    Ok(s.leases.get(node).await?.is_some())
}

/// Renews this node's lease once.
/// Renews this node's lease: over the revision it had (`None`: whatever
/// is there). An error means the lease is not this node's any more (it
/// expired, and others may have taken this node's names).
pub(super) async fn renew(bus: &Bus, s: &Session, rev: Option<u64>) -> anyhow::Result<u64> {
    let value = Bytes::from(bus.node.clone());
    Ok(match rev {
        Some(rev) => s.leases.update(&bus.node, value, rev).await?,
        None => s.leases.put(&bus.node, value).await?,
    })
}
