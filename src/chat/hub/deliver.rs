//! Delivering events: to one client, to a room, in batches; presence;
//! names and room keys.

use super::*;

pub(super) fn leave_room(
    st: &mut State,
    id: u64,
    key: &str,
    reason: Option<String>,
) -> Result<(), String> {
    let nick = st.clients.get(&id).ok_or("not connected")?.nick.clone();
    let room = st.rooms.get_mut(key).ok_or(format!("no room {key}"))?;
    if !room.members.contains(&id) {
        return Err(format!("you are not in [{}]", room.name));
    }
    let name = room.name.clone();
    let ev = Delivery::new(Event::Left {
        room: name,
        nick,
        reason,
    });
    presence(st, key, id, ev);
    if let Some(room) = st.rooms.get_mut(key) {
        room.members.remove(&id);
        if room.members.is_empty() && key != LOBBY {
            st.rooms.remove(key);
        }
    }
    if let Some(c) = st.clients.get_mut(&id) {
        c.rooms.remove(key);
    }
    Ok(())
}

/// The key of `room`, or of the client's current room.
pub(super) fn named_or_current(st: &State, id: u64, room: Option<&str>) -> Result<String, String> {
    match room {
        Some(r) => room_key(r),
        None => st
            .clients
            .get(&id)
            .and_then(|c| c.current.clone())
            .ok_or_else(|| "you are in no room".to_string()),
    }
}

pub(super) fn send(st: &mut State, id: u64, ev: Event) {
    deliver(st, id, Delivery::new(ev));
}

/// Rooms larger than this do not announce each join and leave to everyone
/// (as large IRC channels do): only the one who joined or left is told.
/// Announcing them costs one event per member per arrival, so a burst of
/// N clients into one room cost N² events (16 million for 4,000), whose
/// queues outlived the burst in the allocator.
pub const PRESENCE_MAX: usize = 100;

/// A join or leave of `who`: told to the room while it is small, to `who`
/// alone once it is large.
pub(super) fn presence(st: &mut State, room: &str, who: u64, ev: Arc<Delivery>) {
    let large = st
        .rooms
        .get(room)
        .is_some_and(|r| r.members.len() > PRESENCE_MAX);
    if large {
        deliver(st, who, ev);
    } else {
        broadcast(st, room, ev);
    }
}

pub(super) fn broadcast(st: &mut State, room: &str, ev: Arc<Delivery>) {
    broadcast_batch(st, room, &Bundle::new(vec![ev]), None);
}

/// Offers `batch` to every member of `room` but `except`.
pub(super) fn broadcast_batch(st: &mut State, room: &str, batch: &Batch, except: Option<u64>) {
    let Some(r) = st.rooms.get(room) else {
        return;
    };
    for &m in &r.members {
        if Some(m) != except {
            deliver_batch(st, m, batch);
        }
    }
}

pub(super) fn deliver(st: &State, id: u64, ev: Arc<Delivery>) {
    deliver_batch(st, id, &Bundle::new(vec![ev]));
}

/// Offers `batch` to one client without waiting; a full queue drops the
/// client (its door sees `dropped` and closes).
pub(super) fn deliver_batch(st: &State, id: u64, batch: &Batch) {
    let Some(c) = st.clients.get(&id) else {
        return;
    };
    if c.kicked.load(Ordering::Relaxed) {
        return;
    }
    // Held until the batch is written or queued, so that the door cannot
    // go idle in between.
    let mut inline = c.inline.as_ref().map(|i| i.idle());
    let mut skip = 0;
    if let (Some(idle), Some(i)) = (inline.as_deref_mut(), &c.inline)
        && *idle
    {
        // A send costs less than waking the client's door to make it;
        // batches bigger than a socket takes at once go to the doors.
        let text = batch.text();
        if text.len() <= INLINE_MAX {
            match i.sock.try_write(text) {
                Ok(n) if n == text.len() => return,
                Ok(n) => skip = n,
                // Full (queued below) or failed (the door meets the error
                // on its next write).
                Err(_) => {}
            }
        }
        *idle = false;
    }
    let Err(backlog) = c
        .out
        .push(batch, skip, st.limits.queue, st.limits.queue_bytes)
    else {
        return;
    };
    let reason = format!(
        "{} stopped reading ({} KiB waiting)",
        c.nick,
        backlog / 1024
    );
    info!(nick = %crate::text::escape(&c.nick), "chat client dropped: not reading");
    if let Ok(mut r) = c.reason.lock() {
        *r = Some(reason);
    }
    c.kicked.store(true, Ordering::Relaxed);
    c.dropped.cancel();
}

/// Nicknames: 1 to 32 letters, digits and `_-.[]{}|^`, not starting with a
/// digit or `-`.
pub fn check_nick(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.chars().count() <= 32
        && !n.starts_with(|c: char| c.is_ascii_digit() || c == '-')
        && n.chars()
            .all(|c| c.is_alphanumeric() || "_-.[]{}|^".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{}\" is not a nickname: 1 to 32 letters, digits and _-.[]{{}}|^, not starting with a digit or -",
            crate::text::escape(n)
        ))
    }
}

/// A room's key: the name without a leading `#`, lower-cased; 1 to 32
/// letters, digits and `_-.`.
pub fn room_key(r: &str) -> Result<String, String> {
    let name = r.strip_prefix('#').unwrap_or(r);
    let ok = !name.is_empty()
        && name.chars().count() <= 32
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(name.to_lowercase())
    } else {
        Err(format!(
            "\"{}\" is not a room name: 1 to 32 letters, digits and _-.",
            crate::text::escape(r)
        ))
    }
}

pub(super) fn free_guest(st: &State, allowed: impl Fn(&str) -> bool) -> String {
    let mut n = st.next_id + 1;
    loop {
        let nick = format!("guest{n}");
        if !st.nicks.contains_key(&nick) && allowed(&nick) {
            return nick;
        }
        n += 1;
    }
}
