//! The hub's side of the chat bus ([`crate::chat::bus`]): what the stream
//! delivers, what other nodes' clients do, and names claimed across the
//! cluster.

use super::*;
use crate::chat::bus::{Bus, Private, Remote, Said};
use crate::chat::store::Stored;

/// Most lines one batch from the bus may hold: what a client's one read
/// can carry (64 KiB of the shortest lines).
const MAX_BATCH_LINES: usize = 32 * 1024;

impl Hub {
    /// Rooms span the cluster through `bus` from now on.
    pub fn attach_bus(&self, bus: Arc<Bus>) {
        let _ = self.bus.set(bus);
    }

    /// The id of the cluster the chat bus joins this server to.
    pub fn cluster(&self) -> Option<String> {
        self.bus()?.cluster()
    }

    pub(super) fn bus(&self) -> Option<&Arc<Bus>> {
        self.bus.get()
    }

    /// As [`Hub::connect_as`], with the nickname claimed for the whole
    /// cluster first when there is a chat bus (a guest is given a name no
    /// node has given out).
    pub async fn enter(
        self: &Arc<Self>,
        nick: Option<&str>,
        rooms: &[String],
        since_ms: Option<i64>,
        owner: Option<&str>,
    ) -> Result<(Member, Events), String> {
        let Some(bus) = self.bus().filter(|b| b.up()).cloned() else {
            return self.connect_as(nick, rooms, since_ms, owner);
        };
        let chosen = match nick.or(owner) {
            Some(n) => {
                check_nick(n)?;
                self.may_use(n, owner)?;
                if self.state().nicks.contains_key(&n.to_lowercase()) {
                    return Err(format!("the nickname {n} is taken"));
                }
                bus.claim(n, Vec::new(), None)
                    .await
                    .map_err(|e| e.to_string())?;
                n.to_string()
            }
            None => self.claim_guest(&bus).await?,
        };
        let entered = self.connect_as(Some(&chosen), rooms, since_ms, owner);
        if entered.is_err() {
            bus.present(&chosen, None);
        }
        entered
    }

    /// A guest name claimed for the cluster.
    async fn claim_guest(&self, bus: &Arc<Bus>) -> Result<String, String> {
        for _ in 0..32 {
            let guest = {
                let st = self.state();
                free_guest(&st, |n| {
                    self.may_use(n, None).is_ok() && !bus.names().taken_elsewhere(n)
                })
            };
            match bus.claim(&guest, Vec::new(), None).await {
                Ok(()) => return Ok(guest),
                Err(crate::chat::bus::ClaimError::Taken(_)) => {
                    // Taken meanwhile: the next number.
                    self.state().next_id += 1;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("no free guest name: choose a nickname".into())
    }

    /// Tells the cluster which rooms client `id` is in now.
    pub(super) fn tell_presence(&self, st: &State, id: u64) {
        if let (Some(bus), Some(c)) = (self.bus(), st.clients.get(&id)) {
            let rooms = c
                .rooms
                .iter()
                .filter_map(|k| st.rooms.get(k).map(|r| r.name.clone()))
                .collect();
            bus.present(&c.nick, Some(rooms));
        }
    }

    /// After someone left the room `key`: once no one is in it on any
    /// node, its topic goes from the cluster, as a room's goes with it on
    /// one server (so topics of rooms long gone do not fill the bucket).
    pub(super) fn room_left(&self, st: &State, key: &str) {
        let Some(bus) = self.bus() else { return };
        let gone = key != LOBBY
            && !st.rooms.contains_key(key)
            && bus.names().others_in(key).is_empty()
            && bus.names().topic(key).is_some();
        if gone {
            bus.clear_topic(key);
        }
    }

    /// Hands `said` to the bus; `Err` gives it back when the bus cannot
    /// take it, for this node to deliver alone.
    pub(super) fn publish(&self, said: Box<Said>) -> Result<(), Box<Said>> {
        match self.bus() {
            Some(bus) => bus.publish(said),
            None => Err(said),
        }
    }

    /// Batches in the stream's order, from any node (this one's too),
    /// each with whether this node delivered it already. Consecutive
    /// batches of one room (and one sender left out) go to its members as
    /// one: a burst read from the stream costs each reader one write, as
    /// a burst from one client does on one server.
    pub fn arrive(&self, batches: Vec<(Said, bool)>) {
        let mut st = self.state();
        let mut run: Option<(String, Option<u64>, Vec<Arc<Delivery>>)> = None;
        let flush = |st: &mut State, run: Option<(String, Option<u64>, Vec<Arc<Delivery>>)>| {
            if let Some((room, except, events)) = run {
                broadcast_batch(st, &room, &Bundle::new(events), except);
            }
        };
        for (said, alone) in batches {
            if !well_formed(&said) {
                warn!("chat bus: a batch that no client could have sent was left out");
                continue;
            }
            if alone {
                // Shown and kept here already.
                continue;
            }
            remember(&mut st, &said, self.limits.replay);
            let own = self.bus().is_some_and(|b| b.node() == said.node);
            let except = own
                .then(|| st.clients.get(&said.client))
                .flatten()
                .filter(|c| !c.echo && c.nick == said.nick)
                .map(|_| said.client);
            let Some(name) = st.rooms.get(&said.room).map(|r| r.name.clone()) else {
                continue;
            };
            let events = message_events(&name, &said.nick, &said.lines, said.ts_ms, false);
            match &mut run {
                Some((room, ex, evs))
                    if *room == said.room && *ex == except && evs.len() < RUN_MAX =>
                {
                    evs.extend(events)
                }
                _ => {
                    flush(&mut st, run.take());
                    run = Some((said.room.clone(), except, events));
                }
            }
        }
        flush(&mut st, run);
    }

    /// A batch the stream did not take: delivered on this node alone, and
    /// its sender told.
    pub fn deliver_alone(&self, said: Box<Said>) {
        let mut st = self.state();
        remember(&mut st, &said, self.limits.replay);
        let except = st
            .clients
            .get(&said.client)
            .filter(|c| !c.echo)
            .map(|_| said.client);
        deliver_said(&mut st, &said, except, false);
        send(
            &mut st,
            said.client,
            Event::Error {
                text: "the other servers did not acknowledge your message in time: people on this server saw it, those on others may see it late or not at all"
                    .into(),
            },
        );
    }

    /// Recent lines of room `key`, for a client joining it.
    pub(super) fn recent(&self, st: &State, key: &str) -> Vec<Stored> {
        st.recent
            .get(key)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The bus went down (`false`) or came back: every client is told.
    pub fn bus_changed(&self, up: bool) {
        let line = if up {
            "the chat is joined to the other servers again: rooms span the cluster"
        } else {
            "the other servers of this chat cannot be reached: only people on this server see what is said until they are back"
        };
        let mut st = self.state();
        let ids: Vec<u64> = st.clients.keys().copied().collect();
        for id in ids {
            send(
                &mut st,
                id,
                Event::Info {
                    lines: vec![line.to_string()],
                },
            );
        }
    }

    /// This node's clients: id, name, rooms by name.
    pub fn present_clients(&self) -> Vec<(u64, String, Vec<String>)> {
        let st = self.state();
        st.clients
            .iter()
            .map(|(id, c)| {
                let rooms = c
                    .rooms
                    .iter()
                    .filter_map(|k| st.rooms.get(k).map(|r| r.name.clone()))
                    .collect();
                (*id, c.nick.clone(), rooms)
            })
            .collect()
    }

    /// Whether a client of this node is called `nick`.
    pub fn holds(&self, nick: &str) -> bool {
        self.state().nicks.contains_key(&nick.to_lowercase())
    }

    /// Client `id`'s name was given out by another node while this one was
    /// cut off: it becomes a guest here, and is told. Returns the new name
    /// and the rooms, to claim.
    pub fn lost_name(&self, id: u64) -> Option<(String, Vec<String>)> {
        let guest = {
            let st = self.state();
            let bus = self.bus()?;
            free_guest(&st, |n| {
                self.may_use(n, None).is_ok() && !bus.names().taken_elsewhere(n)
            })
        };
        let old = self.state().clients.get(&id)?.nick.clone();
        self.rename(id, &guest).ok()?;
        self.error(
            id,
            format!("while this server was cut off, another took the nickname {old}: you are {guest} now"),
        );
        let st = self.state();
        let c = st.clients.get(&id)?;
        let rooms = c
            .rooms
            .iter()
            .filter_map(|k| st.rooms.get(k).map(|r| r.name.clone()))
            .collect();
        Some((guest, rooms))
    }

    /// A private message to `to`, who is on no client of this node: sent
    /// to the node that has it, and shown to the sender once delivered.
    pub(super) fn private_elsewhere(
        &self,
        id: u64,
        from: String,
        to: &str,
        text: String,
    ) -> Result<(), String> {
        let found = self.bus().filter(|b| b.up()).and_then(|b| {
            b.names()
                .node_of(to)
                .map(|(node, nick)| (b.clone(), node, nick))
        });
        let Some((bus, node, to)) = found else {
            return Err(format!("no one is called {to}"));
        };
        let p = Private {
            from,
            to,
            text,
            ts_ms: chrono::Utc::now().timestamp_millis(),
        };
        tokio::spawn(async move {
            let sent = bus.send_private(&node, &p).await;
            let Some(hub) = bus.hub() else { return };
            match sent {
                Ok(()) => {
                    let mut st = hub.state();
                    let ev = Event::Private {
                        from: p.from,
                        to: p.to,
                        text: p.text,
                        ts_ms: p.ts_ms,
                    };
                    send(&mut st, id, ev);
                }
                Err(e) => hub.error(id, e),
            }
        });
        Ok(())
    }

    /// A private message from another node's client to one of this
    /// node's.
    pub fn private_arrived(&self, p: Private) -> Result<(), String> {
        check_nick(&p.from)?;
        self.check_len(&p.text)?;
        let st = self.state();
        let Some(&target) = st.nicks.get(&p.to.to_lowercase()) else {
            return Err(format!("no one is called {}", p.to));
        };
        let to = st.clients[&target].nick.clone();
        let ev = Delivery::new(Event::Private {
            from: p.from,
            to,
            text: p.text,
            ts_ms: p.ts_ms,
        });
        deliver(&st, target, ev);
        Ok(())
    }

    /// What another node's clients did.
    pub fn remote(&self, r: Remote) {
        // Held to what a client of this node could have done.
        let fine = match &r {
            Remote::Nick { old, new, .. } => check_nick(old).is_ok() && check_nick(new).is_ok(),
            Remote::Room(Event::Joined { nick, .. } | Event::Left { nick, .. }) => {
                check_nick(nick).is_ok()
            }
            Remote::Room(Event::Topic { topic, .. }) => topic.len() <= crate::chat::MAX_MESSAGE_CAP,
            Remote::Room(_) => false,
        };
        if !fine {
            return;
        }
        let mut st = self.state();
        let mut ev = match r {
            Remote::Nick { old, new, rooms } => {
                let mut told = BTreeSet::new();
                for r in rooms {
                    if let Some(room) = room_key(&r).ok().and_then(|k| st.rooms.get(&k)) {
                        told.extend(room.members.iter().copied());
                    }
                }
                let ev = Delivery::new(Event::Nick { old, new });
                for m in told {
                    deliver(&st, m, ev.clone());
                }
                return;
            }
            Remote::Room(ev) => ev,
        };
        let (Event::Joined { room, .. } | Event::Left { room, .. } | Event::Topic { room, .. }) =
            &mut ev
        else {
            return;
        };
        let Ok(key) = room_key(room) else { return };
        let Some(r) = st.rooms.get_mut(&key) else {
            return;
        };
        // Named as this node shows the room.
        *room = r.name.clone();
        if let Event::Topic { topic, .. } = &ev {
            r.topic = topic.clone();
            broadcast(&mut st, &key, Delivery::new(ev));
        } else if r.members.len() <= PRESENCE_MAX {
            // Joins and leaves are told while the room is small here.
            broadcast(&mut st, &key, Delivery::new(ev));
        }
    }
}

/// Keeps `said` among its room's recent lines.
pub(super) fn remember(st: &mut State, said: &Said, keep: usize) {
    if keep == 0 {
        return;
    }
    let cost = |m: &Stored| m.text.len() + m.nick.len() + m.room.len() + 64;
    let mut bytes = st.recent_bytes;
    let ring = st.recent.entry(said.room.clone()).or_default();
    for (text, action) in &said.lines {
        if ring.len() >= keep
            && let Some(old) = ring.pop_front()
        {
            bytes -= cost(&old);
        }
        let m = Stored {
            room: said.room.clone(),
            nick: said.nick.clone(),
            text: text.clone(),
            action: *action,
            ts_ms: said.ts_ms,
        };
        bytes += cost(&m);
        ring.push_back(m);
    }
    st.recent_bytes = bytes;
    if st.recent_bytes > RECENT_MAX {
        forget_recent(st, &said.room);
    }
}

/// What the rooms' recent lines may hold in all; past it, the lines of
/// rooms no one here is in go first (a joiner of one of those is shown
/// only what is said from then on), then the oldest of the others.
const RECENT_MAX: usize = 32 << 20;

fn forget_recent(st: &mut State, keep_room: &str) {
    let target = RECENT_MAX / 4 * 3;
    let idle: Vec<String> = st
        .recent
        .keys()
        .filter(|k| !st.rooms.contains_key(*k) && k.as_str() != keep_room)
        .cloned()
        .collect();
    let cost = |m: &Stored| m.text.len() + m.nick.len() + m.room.len() + 64;
    for k in idle {
        if st.recent_bytes <= target {
            return;
        }
        if let Some(ring) = st.recent.remove(&k) {
            st.recent_bytes -= ring.iter().map(cost).sum::<usize>();
        }
    }
    // Still over: the oldest line of each room in turn.
    while st.recent_bytes > target {
        let mut dropped = false;
        for ring in st.recent.values_mut() {
            if let Some(old) = ring.pop_front() {
                st.recent_bytes -= cost(&old);
                dropped = true;
            }
        }
        if !dropped {
            return;
        }
    }
}

/// Delivers `said` to this node's members of its room but `except`.
pub(super) fn deliver_said(st: &mut State, said: &Said, except: Option<u64>, history: bool) {
    let Some(name) = st.rooms.get(&said.room).map(|r| r.name.clone()) else {
        return;
    };
    let batch = message_batch(&name, &said.nick, &said.lines, said.ts_ms, history);
    broadcast_batch(st, &said.room, &batch, except);
}

/// Whether `said` is what a client could have sent: whoever else can
/// publish on the bus is held to it.
fn well_formed(said: &Said) -> bool {
    room_key(&said.room).ok().as_deref() == Some(said.room.as_str())
        && check_nick(&said.nick).is_ok()
        && !said.lines.is_empty()
        && said.lines.len() <= MAX_BATCH_LINES
        && said
            .lines
            .iter()
            .all(|(t, _)| t.len() <= crate::chat::MAX_MESSAGE_CAP)
}

/// Most lines the batches of one room merged for its readers hold.
const RUN_MAX: usize = 4096;

/// One batch of room messages.
pub(super) fn message_batch(
    name: &str,
    nick: &str,
    lines: &[(String, bool)],
    ts_ms: i64,
    history: bool,
) -> Batch {
    Bundle::new(message_events(name, nick, lines, ts_ms, history))
}

/// Room messages, one event each.
fn message_events(
    name: &str,
    nick: &str,
    lines: &[(String, bool)],
    ts_ms: i64,
    history: bool,
) -> Vec<Arc<Delivery>> {
    lines
        .iter()
        .map(|(text, action)| {
            Delivery::new(Event::Message {
                room: name.to_string(),
                nick: nick.to_string(),
                text: text.clone(),
                ts_ms,
                action: *action,
                history,
            })
        })
        .collect()
}
