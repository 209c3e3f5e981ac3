//! What a client asks about rooms: who is in one, which there are, and
//! their topics; across the cluster when there is a chat bus.

use super::*;

impl Hub {
    pub(super) fn who(&self, id: u64, room: Option<&str>) -> Result<(), String> {
        let mut st = self.state();
        let key = named_or_current(&st, id, room)?;
        let others = self
            .bus()
            .map(|b| b.names().others_in(&key))
            .unwrap_or_default();
        let (name, mut nicks) = match st.rooms.get(&key) {
            Some(room) => (
                room.name.clone(),
                room.members
                    .iter()
                    .filter_map(|m| st.clients.get(m).map(|c| c.nick.clone()))
                    .collect::<Vec<_>>(),
            ),
            None if !others.is_empty() => (key.clone(), Vec::new()),
            None => return Err(format!("no room {key}")),
        };
        nicks.extend(others);
        nicks.sort_by_key(|n| n.to_lowercase());
        nicks.dedup_by_key(|n| n.to_lowercase());
        let line = format!("in [{}] ({}): {}", name, nicks.len(), nicks.join(" "));
        send(&mut st, id, Event::Info { lines: vec![line] });
        Ok(())
    }

    pub(super) fn rooms(&self, id: u64) -> Result<(), String> {
        let mut st = self.state();
        // Key → name, how many are in it, topic.
        let mut all: BTreeMap<String, (String, usize, String)> = st
            .rooms
            .iter()
            .map(|(k, r)| {
                (
                    k.clone(),
                    (r.name.clone(), r.members.len(), r.topic.clone()),
                )
            })
            .collect();
        if let Some(bus) = self.bus() {
            for (k, (name, n)) in bus.names().others_rooms() {
                let topic = bus.names().topic(&k).unwrap_or_default();
                let e = all.entry(k).or_insert((name, 0, topic));
                e.1 += n;
            }
        }
        let lines: Vec<String> = all
            .values()
            .map(|(name, n, topic)| {
                if topic.is_empty() {
                    format!("[{name}] {n} here")
                } else {
                    format!("[{name}] {n} here: {topic}")
                }
            })
            .collect();
        send(&mut st, id, Event::Info { lines });
        Ok(())
    }

    /// How many rooms there are, across the cluster when there is a bus,
    /// and whether `key` is one of them.
    pub(super) fn room_count(&self, st: &State, key: &str) -> (usize, bool) {
        let Some(bus) = self.bus() else {
            return (st.rooms.len(), st.rooms.contains_key(key));
        };
        let mut keys: BTreeSet<String> = bus.names().others_rooms().into_keys().collect();
        keys.extend(st.rooms.keys().cloned());
        (keys.len(), keys.contains(key))
    }

    pub(super) fn topic(
        &self,
        id: u64,
        room: Option<&str>,
        text: Option<String>,
    ) -> Result<(), String> {
        if let Some(t) = &text {
            self.check_len(t)?;
        }
        let mut st = self.state();
        let client = st.clients.get(&id).ok_or("not connected")?;
        let nick = client.nick.clone();
        let key = match room {
            Some(r) => room_key(r)?,
            None => client.current.clone().ok_or("you are in no room")?,
        };
        let in_room = client.rooms.contains(&key);
        let room = st.rooms.get_mut(&key).ok_or(format!("no room {key}"))?;
        match text {
            None => {
                let ev = Event::Topic {
                    room: room.name.clone(),
                    nick: None,
                    topic: room.topic.clone(),
                };
                send(&mut st, id, ev);
            }
            Some(t) => {
                if !in_room {
                    return Err("join the room to set its topic".into());
                }
                if let Some(bus) = self.bus().filter(|b| b.up()) {
                    // Every node (this one too) sets it and tells its
                    // clients when the cluster has it.
                    bus.set_topic(&key, &room.name, &nick, &t);
                    return Ok(());
                }
                room.topic = t.clone();
                let ev = Delivery::new(Event::Topic {
                    room: room.name.clone(),
                    nick: Some(nick),
                    topic: t,
                });
                broadcast(&mut st, &key, ev);
            }
        }
        Ok(())
    }
}
