//! Nicknames: renaming, and the names only their accounts may use.

use std::collections::BTreeSet;

use super::*;

impl Hub {
    /// Names that only their accounts may chat under: no guest, and no
    /// other account, can take them (compared without case).
    pub fn reserve(&self, names: impl IntoIterator<Item = String>) {
        if let Ok(mut r) = self.reserved.write() {
            r.extend(names.into_iter().map(|n| n.to_lowercase()));
        }
    }

    /// Whether `owner` may chat as `nick`: a reserved name only by its
    /// own account.
    pub(super) fn may_use(&self, nick: &str, owner: Option<&str>) -> Result<(), String> {
        let key = nick.to_lowercase();
        // What the server's records call the token holder and a share
        // link's holder: nobody chats as them.
        if matches!(key.as_str(), "admin" | "link") {
            return Err(format!(
                "the nickname {nick} is kept: it names the token holder or a link's holder"
            ));
        }
        let reserved = self.reserved.read().is_ok_and(|r| r.contains(&key));
        if reserved && owner.map(str::to_lowercase).as_deref() != Some(key.as_str()) {
            return Err(format!(
                "the nickname {nick} belongs to an account; log in as it to use it"
            ));
        }
        Ok(())
    }

    pub(super) fn nick(&self, id: u64, new: &str) -> Result<(), String> {
        check_nick(new)?;
        let (old, rooms) = {
            let st = self.state();
            let c = st.clients.get(&id).ok_or("not connected")?;
            self.may_use(new, c.owner.as_deref())?;
            if c.nick == new {
                return Ok(());
            }
            if c.renaming {
                return Err("your last /nick is still being claimed: try again in a moment".into());
            }
            if st
                .nicks
                .get(&new.to_lowercase())
                .is_some_and(|other| *other != id)
            {
                return Err(format!("the nickname {new} is taken"));
            }
            let rooms: Vec<String> = c
                .rooms
                .iter()
                .filter_map(|k| st.rooms.get(k).map(|r| r.name.clone()))
                .collect();
            (c.nick.clone(), rooms)
        };
        // Only the spelling changes: the name is this client's already.
        let same = old.to_lowercase() == new.to_lowercase();
        let Some(bus) = self.bus().filter(|b| b.up() && !same).cloned() else {
            self.rename(id, new)?;
            self.publish_presence(id);
            return Ok(());
        };
        if bus.names().taken_elsewhere(new) {
            return Err(format!("the nickname {new} is taken"));
        }
        // Claimed for the cluster first; renamed here once it is had. One
        // at a time, so that the name given up is the one it had.
        if let Some(c) = self.state().clients.get_mut(&id) {
            c.renaming = true;
        }
        let new = new.to_string();
        tokio::spawn(async move {
            let claimed = bus.claim(&new, rooms, Some(old)).await;
            let Some(hub) = bus.hub() else { return };
            match claimed {
                Ok(()) => match hub.rename(id, &new) {
                    Ok(was) => {
                        bus.present(&was, None);
                        hub.publish_presence(id);
                    }
                    Err(e) => {
                        bus.present(&new, None);
                        hub.error(id, e);
                    }
                },
                Err(e) => hub.error(id, e.to_string()),
            }
            if let Some(c) = hub.state().clients.get_mut(&id) {
                c.renaming = false;
            }
        });
        Ok(())
    }

    /// Tells the cluster client `id`'s name and rooms as they are now.
    fn publish_presence(&self, id: u64) {
        let st = self.state();
        self.tell_presence(&st, id);
    }

    /// Renames client `id` here, telling everyone who shares a room with
    /// it; returns the name it had.
    pub(super) fn rename(&self, id: u64, new: &str) -> Result<String, String> {
        let mut st = self.state();
        let key = new.to_lowercase();
        let old = st.clients.get(&id).ok_or("not connected")?.nick.clone();
        if old == new {
            return Ok(old);
        }
        if st.nicks.get(&key).is_some_and(|other| *other != id) {
            return Err(format!("the nickname {new} is taken"));
        }
        st.nicks.remove(&old.to_lowercase());
        st.nicks.insert(key, id);
        let rooms = {
            let c = st.clients.get_mut(&id).ok_or("not connected")?;
            c.nick = new.to_string();
            c.rooms.clone()
        };
        // Everyone who shares a room with the client, and the client.
        let mut told: BTreeSet<u64> = BTreeSet::from([id]);
        for r in &rooms {
            if let Some(room) = st.rooms.get(r) {
                told.extend(room.members.iter().copied());
            }
        }
        let ev = Delivery::new(Event::Nick {
            old: old.clone(),
            new: new.to_string(),
        });
        for m in told {
            deliver(&st, m, ev.clone());
        }
        Ok(old)
    }
}
