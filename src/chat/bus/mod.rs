//! Rooms across nodes: the chat bus on NATS JetStream.
//!
//! Every node publishes what its clients say to one JetStream stream (a
//! subject per room) and delivers what the stream gives back, its own
//! clients' lines included: the stream's order is every node's order, and
//! a sender sees its line once the stream has it. The stream is the
//! history (its per-room and total limits are the history's), read from
//! the start when a node starts, so a node that joins late shows the
//! same history as the others.
//!
//! Names live in a JetStream key-value bucket that every node watches
//! ([`names`]): each nickname is a key, created only if free (so a name is
//! unique across the cluster), holding its node and the rooms it is in
//! (presence, `/who`, `/rooms`); each room's topic is a key too. Each node
//! holds a lease in a second bucket whose entries expire; the names of a
//! node whose lease is gone are removed by the others.
//!
//! When NATS cannot be reached, the hub goes on delivering among the
//! node's own clients, tells them, and joins back by itself: the client
//! library reconnects, the stream's reader and the names' watcher resume
//! where they were, and the node claims its clients' names again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Hub;
use crate::secret::Secret;

mod flow;
mod names;
mod private;
mod tasks;
pub use names::{NameEntry, Names, Remote};
pub use private::Private;

/// The stream every room's lines go to.
const STREAM: &str = "FERRY_CHAT";
/// Its subjects: `ferry.chat.<room key in hex>`.
const SUBJECT: &str = "ferry.chat";

/// How the bus is reached and what it keeps.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// `nats://HOST:PORT` (several, comma-separated, for a NATS cluster).
    pub url: String,
    /// User and password, from the environment.
    pub user: Option<(String, Secret)>,
    /// Token, from the environment.
    pub token: Option<Secret>,
    /// Batches kept per room.
    pub per_room: usize,
    /// Oldest kept.
    pub max_age: Duration,
    /// Bytes the stream may hold in all.
    pub max_bytes: u64,
    /// Longest message a client may send, which bounds a batch.
    pub max_message: usize,
}

/// What one client said at once, as the stream keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Said {
    /// `NODE-SEQ`: unique, and the stream's de-duplication id.
    pub id: String,
    /// The node the sender is on.
    pub node: String,
    /// The sender's id on its node.
    pub client: u64,
    /// Room key.
    pub room: String,
    /// Room name as typed by whoever made it.
    pub name: String,
    /// Sender.
    pub nick: String,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The lines, each with whether it is a `/me` action.
    pub lines: Vec<(String, bool)>,
}

/// Why a name could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Someone on another node has it.
    #[error("the nickname {0} is taken")]
    Taken(String),
    /// NATS did not answer.
    #[error("the chat bus did not answer: {0}")]
    Bus(String),
}

/// One node's end of the bus.
pub struct Bus {
    /// This node's id: new at every start.
    node: String,
    up: AtomicBool,
    seq: AtomicU64,
    publish: mpsc::Sender<Box<Said>>,
    names: Names,
    /// Ids of batches delivered by this node alone after the stream did
    /// not acknowledge them: if the stream did keep one, it is not shown
    /// twice.
    skip: Mutex<VecDeque<String>>,
    session: tokio::sync::watch::Receiver<Option<Session>>,
    hub: Weak<Hub>,
    /// The cluster's id, kept in the bus (made by the first node; read
    /// again whenever the bus was made anew).
    cluster: std::sync::RwLock<Option<String>>,
    /// The stream's sequence this node has read up to: a reader started
    /// again goes on after it.
    read: AtomicU64,
    /// The stream's last sequence when the bus was reached: read up to
    /// it, the node has the history.
    tail: AtomicU64,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("node", &self.node)
            .field("up", &self.up)
            .finish()
    }
}

/// What a connection to NATS gives: its JetStream context and buckets.
#[derive(Clone)]
pub(crate) struct Session {
    client: async_nats::Client,
    js: jetstream::Context,
    names: kv::Store,
    leases: kv::Store,
    /// When the stream and the names' bucket were made: a NATS that came
    /// back without its store has made them anew.
    made: (i64, i64),
}

/// Publishes queued beyond this are refused ("try again"), never held.
const PUBLISH_QUEUE: usize = 4096;
/// Batches the stream's reader hands the hub at once, when they came
/// together.
const READ_AT_ONCE: usize = 256;
/// How long a starting node waits for the bus before it serves.
const START_WAIT: Duration = Duration::from_secs(5);
/// Publishes awaiting the stream's acknowledgement at once.
const IN_FLIGHT: usize = 256;

impl Bus {
    /// Starts the bus for `hub` on the current runtime: NATS is dialled in
    /// the background, and until it answers the hub serves this node's
    /// clients alone.
    pub async fn start(hub: &Arc<Hub>, config: BusConfig) -> anyhow::Result<Arc<Bus>> {
        let node = format!("{:016x}", rand_u64());
        let (publish, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (session_tx, session_rx) = tokio::sync::watch::channel(None);
        let bus = Arc::new(Bus {
            node: node.clone(),
            up: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            publish,
            names: Names::new(&node),
            skip: Mutex::new(VecDeque::new()),
            session: session_rx,
            hub: Arc::downgrade(hub),
            cluster: std::sync::RwLock::new(None),
            read: AtomicU64::new(0),
            tail: AtomicU64::new(0),
        });
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("ferry {node}"))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(3))
            .reconnect_delay_callback(|n| Duration::from_millis((250 * n as u64).min(2000)))
            .event_callback(move |e| {
                let tx = events_tx.clone();
                async move {
                    let _ = tx.send(e);
                }
            });
        if let Some((user, password)) = &config.user {
            opts = opts.user_and_password(user.clone(), password.expose().to_string());
        }
        if let Some(token) = &config.token {
            opts = opts.token(token.expose().to_string());
        }
        let client = opts.connect(config.url.as_str()).await?;
        tokio::spawn(run(
            bus.clone(),
            client,
            config,
            events_rx,
            session_tx,
            publish_rx,
        ));
        // A node whose bus answers starts joined to it, with the history
        // and the names read, rather than giving its first clients names
        // the cluster does not know, half the history, or the arrivals
        // of people who were there all along.
        let deadline = tokio::time::Instant::now() + START_WAIT;
        let ready =
            |b: &Bus| b.up() && b.read.load(Ordering::Acquire) >= b.tail.load(Ordering::Acquire);
        while !ready(&bus) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !bus.up() {
            warn!("chat bus: not reachable yet; chatting on this server alone until it is");
        }
        Ok(bus)
    }

    /// The hub, while it runs.
    pub(crate) fn hub(&self) -> Option<Arc<Hub>> {
        self.hub.upgrade()
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The id every node of this cluster shares, once the bus was
    /// reached.
    pub fn cluster(&self) -> Option<String> {
        self.cluster.read().ok().and_then(|c| c.clone())
    }

    /// Whether the stream is reachable now.
    pub fn up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The names of the cluster, as this node last saw them.
    pub fn names(&self) -> &Names {
        &self.names
    }

    fn session(&self) -> Option<Session> {
        self.session.borrow().clone()
    }

    /// A new batch id.
    pub fn next_id(&self) -> String {
        format!(
            "{}-{}",
            self.node,
            self.seq.fetch_add(1, Ordering::Relaxed) + 1
        )
    }

    /// Queues `said` for the stream without waiting. Refused when the
    /// queue is full or the bus is down: the caller delivers it itself.
    pub fn publish(&self, said: Box<Said>) -> Result<(), Box<Said>> {
        if !self.up() {
            return Err(said);
        }
        self.publish.try_send(said).map_err(|e| e.into_inner())
    }

    /// Notes that `id` was delivered by this node alone.
    pub fn delivered_alone(&self, id: &str) {
        if let Ok(mut s) = self.skip.lock() {
            if s.len() >= 4096 {
                s.pop_front();
            }
            s.push_back(id.to_string());
        }
    }

    fn was_delivered_alone(&self, id: &str) -> bool {
        self.skip.lock().is_ok_and(|s| s.iter().any(|x| x == id))
    }

    /// Claims `nick` (as typed) for a client of this node in `rooms`
    /// (names as shown); `was` is its old name on a rename.
    pub async fn claim(
        &self,
        nick: &str,
        rooms: Vec<String>,
        was: Option<String>,
    ) -> Result<(), ClaimError> {
        if self.session().is_none() {
            return Err(ClaimError::Bus("not connected".into()));
        }
        self.names.claim(nick, rooms, was).await
    }

    /// Says in the cluster that the client called `nick` is in `rooms`
    /// now; `None` frees the name. Done in the background, in order.
    pub fn present(&self, nick: &str, rooms: Option<Vec<String>>) {
        self.names.present(nick, rooms);
    }

    /// Removes the topic of the room `key` from the cluster.
    pub fn clear_topic(&self, key: &str) {
        self.names.clear_topic(key);
    }

    /// Sets `room`'s topic for the whole cluster.
    pub fn set_topic(&self, key: &str, name: &str, nick: &str, topic: &str) {
        self.names.set_topic(key, name, nick, topic);
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the system's random source");
    u64::from_le_bytes(b)
}

/// A room key as a subject token: hex, since keys may hold any letter.
pub(crate) fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The stream and buckets, made when missing and brought to `config`.
async fn open(
    client: &async_nats::Client,
    js: &jetstream::Context,
    config: &BusConfig,
) -> anyhow::Result<Session> {
    let wanted = stream::Config {
        name: STREAM.into(),
        subjects: vec![format!("{SUBJECT}.>")],
        max_messages_per_subject: config.per_room.max(1) as i64,
        max_age: config.max_age,
        max_bytes: config.max_bytes as i64,
        max_message_size: (config.max_message * 64 + 64 * 1024).min(1 << 20) as i32,
        discard: stream::DiscardPolicy::Old,
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    // Made by the first node; an existing stream is taken as it is (one
    // node's settings do not rewrite the cluster's history).
    let stream = js.get_or_create_stream(wanted).await?;
    let info = stream.cached_info();
    let (names, leases) = names::open(js).await?;
    let names_made = js
        .get_stream(format!("KV_{}", names::NAMES))
        .await?
        .cached_info()
        .created
        .unix_timestamp_nanos() as i64;
    Ok(Session {
        client: client.clone(),
        js: js.clone(),
        names,
        leases,
        made: (info.created.unix_timestamp_nanos() as i64, names_made),
    })
}

/// The bus's life: follows the connection, and keeps the stream's reader,
/// the names' watcher and the leases going while it is up.
async fn run(
    bus: Arc<Bus>,
    client: async_nats::Client,
    config: BusConfig,
    mut events: mpsc::UnboundedReceiver<async_nats::Event>,
    session_tx: tokio::sync::watch::Sender<Option<Session>>,
    publish_rx: mpsc::Receiver<Box<Said>>,
) {
    let js = jetstream::new(client.clone());
    tokio::spawn(flow::publisher(bus.clone(), publish_rx));
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut connected = client.connection_state() == async_nats::connection::State::Connected;
    // When the stream and the names' bucket were made, as last seen.
    let mut made: Option<(i64, i64)> = None;
    loop {
        if bus.hub.strong_count() == 0 {
            return;
        }
        if connected && !bus.up() {
            match open(&client, &js, &config).await {
                Ok(s) => {
                    if made != Some(s.made) {
                        // First reached, or made anew (a NATS that came back
                        // without its store): the stream is read from its
                        // start, and the names' mirror starts over.
                        if made.is_some_and(|m| m.1 != s.made.1) {
                            bus.names.forget_all();
                        }
                        if made.is_some_and(|m| m.0 != s.made.0) {
                            bus.read.store(0, Ordering::Release);
                        }
                        made = Some(s.made);
                        match names::cluster_id(&s).await {
                            Ok(id) => {
                                if let Ok(mut c) = bus.cluster.write() {
                                    *c = Some(id);
                                }
                            }
                            Err(e) => warn!("chat bus: cannot read the cluster's id: {e}"),
                        }
                    }
                    match s.js.get_stream(STREAM).await {
                        Ok(st) => bus
                            .tail
                            .store(st.cached_info().state.last_sequence, Ordering::Release),
                        Err(e) => warn!("chat bus: {e}"),
                    }
                    let lease = match names::renew(&bus, &s, None).await {
                        Ok(rev) => rev,
                        Err(e) => {
                            warn!("chat bus: cannot take this node's lease: {e}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    };
                    session_tx.send_replace(Some(s.clone()));
                    for t in tasks.drain(..) {
                        t.abort();
                    }
                    tasks.push(tokio::spawn(flow::reader(bus.clone(), s.clone())));
                    tasks.push(tokio::spawn(tasks::watcher(bus.clone(), s.clone())));
                    tasks.push(tokio::spawn(tasks::leases(bus.clone(), s.clone(), lease)));
                    tasks.push(tokio::spawn(private::inbox(bus.clone(), client.clone())));
                    bus.names.rejoin(&s, &bus).await;
                    bus.up.store(true, Ordering::Release);
                    // Clients let in while the names were claimed again
                    // (on this node alone) are claimed in the lease's next
                    // round.
                    bus.names.lost.store(true, Ordering::Release);
                    info!("chat bus: connected");
                    if let Some(hub) = bus.hub.upgrade() {
                        hub.bus_changed(true);
                    }
                }
                Err(e) => {
                    warn!("chat bus: cannot open the stream: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        // The first connection is not told as an event: the state is
        // looked at too.
        let e = tokio::select! {
            e = events.recv() => match e {
                Some(e) => e,
                None => return,
            },
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                connected = client.connection_state() == async_nats::connection::State::Connected;
                if !connected && bus.up() {
                    async_nats::Event::Disconnected
                } else {
                    continue;
                }
            }
        };
        match e {
            async_nats::Event::Connected => connected = true,
            async_nats::Event::Disconnected | async_nats::Event::Closed => {
                connected = false;
                // Nothing runs on a connection that is gone: no lease is
                // renewed, and no one reaped, until this node is back.
                for t in tasks.drain(..) {
                    t.abort();
                }
                if bus.up.swap(false, Ordering::AcqRel) {
                    warn!("chat bus: disconnected");
                    session_tx.send_replace(None);
                    if let Some(hub) = bus.hub.upgrade() {
                        hub.bus_changed(false);
                    }
                }
            }
            _ => {}
        }
    }
}
