//! The hub: rooms, nicknames, fan-out. Every door (plain text, native,
//! later the browser) holds a [`Member`] and feeds it lines; events come
//! back on the member's bounded queue.
//!
//! Fan-out never waits: an event is offered to each recipient's queue, and
//! a recipient whose queue is full (it stopped reading) is dropped with a
//! reason, so one stuck client never delays anyone else. A message is
//! stored in the history before anyone sees it, and under the same lock as
//! the fan-out, so every client sees one order.
//!
//! Lines that arrive together travel as one [`Batch`]: one allocation
//! shared by every recipient and one push onto each recipient's queue,
//! whatever the number of lines, so the hub's cost per line does not grow
//! with the number of listeners.
//!
//! A plain-text client's socket is written by the hub itself while nothing
//! is queued for it ([`Inline`]): one `send` per client per batch, from the
//! sender's thread, with no task to wake, as a single-threaded broker
//! would. Whatever its socket does not take at once goes to its queue, and
//! its door writes from then on, until the queue is empty again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::command::{Command, HELP};
use super::event::{Delivery, Event};
use super::outbox::{Batch, Bundle, INLINE_MAX, Outbox, outbox};
pub use super::outbox::{Chunk, Events, Inline};
use super::store::History;

mod cluster;
mod deliver;
mod limits;
mod member;
mod names;
mod rooms;
#[cfg(test)]
mod tests;

use deliver::*;
pub use deliver::{PRESENCE_MAX, check_nick, room_key};
pub use limits::ChatLimits;
pub use member::{Member, Outcome};

/// The room everyone starts in.
pub const LOBBY: &str = "lobby";

/// A reader this far behind (bytes queued) slows its rooms' senders down
/// while it keeps reading, rather than being dropped when a burst outruns
/// it: 512 KiB with the default 2 MiB budget.
fn behind_mark(limits: &ChatLimits) -> usize {
    limits.queue_bytes / 4
}

/// A reader that has taken nothing for this long has stopped: it no longer
/// slows anyone down, and is dropped when its budget is spent.
const STOPPED_MS: u64 = 300;

/// How often a held-back sender looks again.
const PACE_STEP: Duration = Duration::from_millis(2);

/// The chat hub of one server.
#[derive(Debug)]
pub struct Hub {
    server: String,
    /// The hub's clock for [`Backlog::taken_ms`].
    epoch: Instant,
    limits: ChatLimits,
    history: Option<History>,
    state: Mutex<State>,
    /// Lower-cased names only their accounts may chat under (see
    /// [`Hub::reserve`]).
    reserved: std::sync::RwLock<std::collections::HashSet<String>>,
    /// The chat bus, when rooms span several nodes.
    bus: std::sync::OnceLock<Arc<crate::chat::bus::Bus>>,
}

#[derive(Debug, Default)]
struct State {
    /// The hub's limits, for the queue bounds.
    limits: ChatLimits,
    next_id: u64,
    clients: HashMap<u64, Client>,
    /// Lower-cased nickname → client.
    nicks: HashMap<String, u64>,
    /// Lower-cased room name → room.
    rooms: BTreeMap<String, Room>,
    /// With a chat bus, each room's latest lines from the stream (the
    /// history a joining client is shown), by room key.
    recent: HashMap<String, std::collections::VecDeque<crate::chat::store::Stored>>,
    /// What `recent` holds, counted as `cluster::remember` counts it.
    recent_bytes: usize,
}

#[derive(Debug)]
struct Client {
    nick: String,
    /// The account it is logged in as (lower-cased), which may use its
    /// own reserved name.
    owner: Option<String>,
    /// The client's queue.
    out: Outbox,
    /// The socket, for a plain-text client.
    inline: Option<Arc<Inline>>,
    /// Whether the client's own room messages come back to it.
    echo: bool,
    /// Set with `dropped`, cheaper to test on every delivery.
    kicked: AtomicBool,
    /// A new name is being claimed for it across the cluster.
    renaming: bool,
    /// Room keys.
    rooms: BTreeSet<String>,
    current: Option<String>,
    dropped: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

#[derive(Debug)]
struct Room {
    name: String,
    topic: String,
    members: BTreeSet<u64>,
}

impl Hub {
    /// A hub for the server `server`, with history when given.
    pub fn new(server: &str, limits: ChatLimits, history: Option<History>) -> Arc<Hub> {
        Arc::new(Hub {
            server: server.to_string(),
            epoch: Instant::now(),
            limits,
            history,
            state: Mutex::new(State {
                limits,
                ..State::default()
            }),
            reserved: Default::default(),
            bus: Default::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The limits in force.
    pub fn limits(&self) -> ChatLimits {
        self.limits
    }

    /// Joins a new client under `nick` (or a free `guest-N` when `None`),
    /// into `rooms` (the lobby when empty). A taken or invalid nickname is
    /// refused.
    pub fn connect(
        self: &Arc<Self>,
        nick: Option<&str>,
        rooms: &[String],
    ) -> Result<(Member, Events), String> {
        self.connect_since(nick, rooms, None)
    }

    /// As [`Hub::connect`], for a client coming back: each room's history
    /// is replayed only from after `since_ms` (the time of the last message
    /// it saw), so that it is shown what it missed and nothing twice.
    pub fn connect_since(
        self: &Arc<Self>,
        nick: Option<&str>,
        rooms: &[String],
        since_ms: Option<i64>,
    ) -> Result<(Member, Events), String> {
        self.connect_as(nick, rooms, since_ms, None)
    }

    /// As [`Hub::connect_since`], for a client logged in as the account
    /// `owner`: it may use its account's name, which it gets when it asks
    /// for none.
    pub fn connect_as(
        self: &Arc<Self>,
        nick: Option<&str>,
        rooms: &[String],
        since_ms: Option<i64>,
        owner: Option<&str>,
    ) -> Result<(Member, Events), String> {
        let nick = nick.or(owner);
        if let Some(n) = nick {
            self.may_use(n, owner)?;
        }
        let (out, events) = outbox(self.epoch);
        let dropped = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        let id = {
            let mut st = self.state();
            let nick = match nick {
                Some(n) => {
                    check_nick(n)?;
                    if st.nicks.contains_key(&n.to_lowercase()) {
                        return Err(format!("the nickname {n} is taken"));
                    }
                    n.to_string()
                }
                None => free_guest(&st, |n| self.may_use(n, None).is_ok()),
            };
            st.next_id += 1;
            let id = st.next_id;
            st.nicks.insert(nick.to_lowercase(), id);
            st.clients.insert(
                id,
                Client {
                    nick,
                    owner: owner.map(str::to_lowercase),
                    out,
                    inline: None,
                    echo: true,
                    kicked: AtomicBool::new(false),
                    renaming: false,
                    rooms: BTreeSet::new(),
                    current: None,
                    dropped: dropped.clone(),
                    reason: reason.clone(),
                },
            );
            id
        };
        let member = Member {
            id,
            hub: self.clone(),
            dropped,
            reason,
            quit_reason: None,
            behind: None,
        };
        let wanted: Vec<String> = if rooms.is_empty() {
            vec![LOBBY.to_string()]
        } else {
            rooms.to_vec()
        };
        {
            let mut st = self.state();
            let nick = st.clients[&id].nick.clone();
            let first = room_key(&wanted[0]).unwrap_or_else(|_| LOBBY.into());
            send(
                &mut st,
                id,
                Event::Welcome {
                    nick,
                    server: self.server.clone(),
                    room: first,
                },
            );
        }
        for r in &wanted {
            self.join_since(id, r, since_ms)?;
        }
        if wanted.len() > 1 {
            let first = room_key(&wanted[0])?;
            let mut st = self.state();
            if let Some(c) = st.clients.get_mut(&id) {
                c.current = Some(first.clone());
            }
            let name = st
                .rooms
                .get(&first)
                .map(|r| r.name.clone())
                .unwrap_or(first);
            send(&mut st, id, Event::Current { room: name });
        }
        Ok((member, events))
    }

    fn error(&self, id: u64, text: String) {
        let mut st = self.state();
        send(&mut st, id, Event::Error { text });
    }

    /// Acts on one parsed command from client `id`.
    pub fn command(&self, id: u64, cmd: Command) -> Outcome {
        let result = match cmd {
            Command::Say(text) => self.say(id, vec![(text, false)]).map(drop),
            Command::Me(text) => self.say(id, vec![(text, true)]).map(drop),
            Command::Nick(n) => self.nick(id, &n),
            Command::Join(r) => self.join_since(id, &r, None),
            Command::Part(r) => self.part(id, r.as_deref(), None),
            Command::Msg(to, text) => self.private(id, &to, text),
            Command::Who(r) => self.who(id, r.as_deref()),
            Command::Rooms => self.rooms(id),
            Command::Topic(r, t) => self.topic(id, r.as_deref(), t),
            Command::Help => {
                let mut st = self.state();
                let lines = HELP.iter().map(|s| s.to_string()).collect();
                send(&mut st, id, Event::Info { lines });
                Ok(())
            }
            Command::Quit(_) => return Outcome::Quit,
        };
        if let Err(text) = result {
            self.error(id, text);
        }
        Outcome::Continue
    }

    fn check_len(&self, text: &str) -> Result<(), String> {
        if text.len() > self.limits.max_message {
            return Err(format!(
                "message of {} bytes not sent: the limit is {} bytes",
                text.len(),
                self.limits.max_message
            ));
        }
        if text.trim().is_empty() {
            return Err("empty message not sent".into());
        }
        Ok(())
    }

    /// Messages for the client's current room (`true` for `/me`), as
    /// many as came in at once: checked, stored in one transaction, then
    /// fanned out in order. A refused one is answered and left out.
    /// Returns whether a reader in the room is far behind (see
    /// [`Member::keep_pace`]).
    fn say(&self, id: u64, items: Vec<(String, bool)>) -> Result<bool, String> {
        let mut ok = Vec::with_capacity(items.len());
        for (text, action) in items {
            match self.check_len(&text) {
                Ok(()) => ok.push((text, action)),
                Err(e) => self.error(id, e),
            }
        }
        if ok.is_empty() {
            return Ok(false);
        }
        let mut st = self.state();
        let client = st.clients.get(&id).ok_or("not connected")?;
        let Some(room) = client.current.clone() else {
            return Err("you are in no room: /join ROOM".into());
        };
        let nick = client.nick.clone();
        let except = (!client.echo).then_some(id);
        let ts_ms = chrono::Utc::now().timestamp_millis();
        if let Some(h) = &self.history {
            if let Err(e) = h.append(&room, &nick, ts_ms, &ok) {
                warn!("chat history: {e}");
                return Err("the server could not store your message; not sent".into());
            }
        }
        let name = st.rooms[&room].name.clone();
        if let Some(bus) = self.bus() {
            let said = Box::new(crate::chat::bus::Said {
                id: bus.next_id(),
                node: bus.node().to_string(),
                client: id,
                room: room.clone(),
                name,
                nick,
                ts_ms,
                lines: ok,
            });
            // Delivered in the stream's order when it comes back, on every
            // node; while the bus is away, here alone.
            let up = bus.up();
            match self.publish(said) {
                Ok(()) => {}
                Err(_) if up => {
                    return Err("the other servers are behind: not sent; say it again".into());
                }
                Err(said) => {
                    cluster::deliver_said(&mut st, &said, except, false);
                    cluster::remember(&mut st, &said, self.limits.replay);
                }
            }
            return Ok(self.behind(&st, &room));
        }
        let batch = cluster::message_batch(&name, &nick, &ok, ts_ms, false);
        broadcast_batch(&mut st, &room, &batch, except);
        Ok(self.behind(&st, &room))
    }

    /// Whether a member of `room` that is still reading is far behind.
    fn behind(&self, st: &State, room: &str) -> bool {
        let Some(r) = st.rooms.get(room) else {
            return false;
        };
        let mark = behind_mark(&self.limits);
        let now = self.epoch.elapsed().as_millis() as u64;
        r.members.iter().any(|m| {
            st.clients.get(m).is_some_and(|c| {
                let q = c.out.backlog();
                q.bytes.load(Ordering::Relaxed) > mark
                    && now.saturating_sub(q.taken_ms.load(Ordering::Relaxed)) < STOPPED_MS
                    && !c.kicked.load(Ordering::Relaxed)
            })
        })
    }

    fn join_since(&self, id: u64, room: &str, since_ms: Option<i64>) -> Result<(), String> {
        let key = room_key(room)?;
        let mut replay = match &self.history {
            Some(h) => h.recent(&key, self.limits.replay).unwrap_or_else(|e| {
                warn!("chat history: {e}");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let mut st = self.state();
        if self.bus().is_some() {
            replay = self.recent(&st, &key);
        }
        // From that very millisecond on: messages said in one share it,
        // and the client leaves out those it saw.
        replay.retain(|m| since_ms.is_none_or(|since| m.ts_ms >= since));
        let client = st.clients.get(&id).ok_or("not connected")?;
        let nick = client.nick.clone();
        if client.rooms.contains(&key) {
            let name = st.rooms[&key].name.clone();
            st.clients.get_mut(&id).ok_or("not connected")?.current = Some(key);
            send(&mut st, id, Event::Current { room: name });
            return Ok(());
        }
        if client.rooms.len() >= self.limits.rooms_per_client {
            return Err(format!(
                "you are in {} rooms, the most one client may be in: /part one first",
                client.rooms.len()
            ));
        }
        let (count, exists) = self.room_count(&st, &key);
        if !exists && count >= self.limits.rooms {
            return Err(format!(
                "this chat has {count} rooms, the most it keeps: join one of them (/rooms)"
            ));
        }
        let display = room.trim_start_matches('#').to_string();
        let topic = self
            .bus()
            .and_then(|b| b.names().topic(&key))
            .unwrap_or_default();
        let room_entry = st.rooms.entry(key.clone()).or_insert_with(|| Room {
            name: display,
            topic,
            members: BTreeSet::new(),
        });
        room_entry.members.insert(id);
        let (name, topic) = (room_entry.name.clone(), room_entry.topic.clone());
        if let Some(c) = st.clients.get_mut(&id) {
            c.rooms.insert(key.clone());
            c.current = Some(key.clone());
        }
        if !replay.is_empty() {
            let batch = Bundle::new(
                replay
                    .into_iter()
                    .map(|m| {
                        Delivery::new(Event::Message {
                            room: name.clone(),
                            nick: m.nick,
                            text: m.text,
                            ts_ms: m.ts_ms,
                            action: m.action,
                            history: true,
                        })
                    })
                    .collect(),
            );
            deliver_batch(&st, id, &batch);
        }
        if !topic.is_empty() {
            send(
                &mut st,
                id,
                Event::Topic {
                    room: name.clone(),
                    nick: None,
                    topic,
                },
            );
        }
        presence(
            &mut st,
            &key,
            id,
            Delivery::new(Event::Joined { room: name, nick }),
        );
        self.tell_presence(&st, id);
        Ok(())
    }

    fn part(&self, id: u64, room: Option<&str>, reason: Option<String>) -> Result<(), String> {
        let mut st = self.state();
        let key = named_or_current(&st, id, room)?;
        leave_room(&mut st, id, &key, reason)?;
        self.tell_presence(&st, id);
        self.room_left(&st, &key);
        let c = st.clients.get_mut(&id).ok_or("not connected")?;
        if c.current.as_deref() == Some(key.as_str()) {
            c.current = c.rooms.iter().next().cloned();
            let next = c.current.clone();
            match next {
                Some(k) => {
                    let name = st.rooms.get(&k).map(|r| r.name.clone()).unwrap_or(k);
                    send(&mut st, id, Event::Current { room: name });
                }
                None => send(
                    &mut st,
                    id,
                    Event::Info {
                        lines: vec!["you are in no room now: /join ROOM".into()],
                    },
                ),
            }
        }
        Ok(())
    }

    fn private(&self, id: u64, to: &str, text: String) -> Result<(), String> {
        self.check_len(&text)?;
        let st = self.state();
        let from = st.clients.get(&id).ok_or("not connected")?.nick.clone();
        let Some(&target) = st.nicks.get(&to.to_lowercase()) else {
            drop(st);
            return self.private_elsewhere(id, from, to, text);
        };
        let to = st.clients[&target].nick.clone();
        let ev = Delivery::new(Event::Private {
            from,
            to,
            text,
            ts_ms: chrono::Utc::now().timestamp_millis(),
        });
        deliver(&st, target, ev.clone());
        if target != id {
            deliver(&st, id, ev);
        }
        Ok(())
    }

    fn leave(&self, id: u64, reason: Option<String>) {
        let mut st = self.state();
        let Some(client) = st.clients.get(&id) else {
            return;
        };
        let rooms: Vec<String> = client.rooms.iter().cloned().collect();
        for r in rooms {
            let _ = leave_room(&mut st, id, &r, reason.clone());
            self.room_left(&st, &r);
        }
        if let Some(c) = st.clients.remove(&id) {
            st.nicks.remove(&c.nick.to_lowercase());
            if let Some(bus) = self.bus() {
                bus.present(&c.nick, None);
            }
        }
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.state().clients.len()
    }
}
