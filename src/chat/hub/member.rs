//! A client's end of the hub: what a door calls to speak for its client.

use super::*;

/// One client's place in the hub; leaving is dropping it.
#[derive(Debug)]
pub struct Member {
    pub(super) id: u64,
    pub(super) hub: Arc<Hub>,
    /// Cancelled when the hub drops this client (it stopped reading).
    pub dropped: CancellationToken,
    pub(super) reason: Arc<Mutex<Option<String>>>,
    pub(super) quit_reason: Option<String>,
    /// The room whose readers were far behind after this client's last
    /// message.
    pub(super) behind: Option<String>,
}

/// What a line led to, for the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Go on reading.
    Continue,
    /// The client said /quit.
    Quit,
}

impl Member {
    /// This client's id in the hub.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// This client's nickname now.
    pub fn nick(&self) -> String {
        let st = self.hub.state();
        st.clients
            .get(&self.id)
            .map(|c| c.nick.clone())
            .unwrap_or_default()
    }

    /// Lets the hub write this plain-text client's output to its socket
    /// itself whenever nothing is queued for it.
    pub fn share_socket(&self, inline: Arc<Inline>) {
        if let Some(c) = self.hub.state().clients.get_mut(&self.id) {
            c.inline = Some(inline);
        }
    }

    /// Stops sending this client its own room messages back. A plain-text
    /// client's terminal already shows the line its user typed, so an echo
    /// would show it twice (ncat --chat and IRC servers do not echo either);
    /// the native client and the web page show a line once the hub sends
    /// it back, in the order everyone sees. Private messages still come
    /// back, as the sign of who got them.
    pub fn no_echo(&self) {
        if let Some(c) = self.hub.state().clients.get_mut(&self.id) {
            c.echo = false;
        }
    }

    /// Tells this client (alone) that something it sent was refused.
    pub fn tell(&self, text: String) {
        self.hub.error(self.id, text);
    }

    /// Acts on one line from this client.
    pub fn line(&mut self, line: &str) -> Outcome {
        self.lines(std::iter::once(line))
    }

    /// Acts on lines that arrived together: runs of plain messages are
    /// stored and fanned out as one batch.
    pub fn lines<'a>(&mut self, lines: impl IntoIterator<Item = &'a str>) -> Outcome {
        let mut batch = Vec::new();
        let mut behind = false;
        let mut flush = |batch: &mut Vec<(String, bool)>| {
            if !batch.is_empty() {
                match self.hub.say(self.id, std::mem::take(batch)) {
                    Ok(b) => behind |= b,
                    Err(e) => self.hub.error(self.id, e),
                }
            }
        };
        for line in lines {
            match Command::parse(line) {
                Ok(Command::Say(t)) => batch.push((t, false)),
                Ok(Command::Me(t)) => batch.push((t, true)),
                Ok(Command::Quit(reason)) => {
                    flush(&mut batch);
                    self.quit_reason = reason;
                    return Outcome::Quit;
                }
                Ok(cmd) => {
                    flush(&mut batch);
                    self.hub.command(self.id, cmd);
                }
                Err(e) => {
                    flush(&mut batch);
                    self.hub.error(self.id, e.to_string());
                }
            }
        }
        flush(&mut batch);
        if behind {
            self.behind = self
                .hub
                .state()
                .clients
                .get(&self.id)
                .and_then(|c| c.current.clone());
        }
        Outcome::Continue
    }

    /// Waits while a reader in the room this client last spoke in is far
    /// behind and still reading, so that a burst slows its sender down (as
    /// TCP would) instead of getting a slow reader dropped. A reader that
    /// has stopped holds no one back for more than [`STOPPED_MS`]. The
    /// doors call this before reading more.
    pub async fn keep_pace(&mut self) {
        let Some(room) = self.behind.take() else {
            return;
        };
        loop {
            tokio::time::sleep(PACE_STEP).await;
            let st = self.hub.state();
            if !self.hub.behind(&st, &room) {
                return;
            }
        }
    }

    /// Why the hub dropped this client, once [`Member::dropped`] fired.
    pub fn drop_reason(&self) -> String {
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "dropped".into())
    }

    /// Sets the reason others see when this client leaves.
    pub fn set_quit_reason(&mut self, reason: &str) {
        self.quit_reason = Some(reason.to_string());
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let reason = if self.dropped.is_cancelled() {
            Some(self.drop_reason())
        } else {
            self.quit_reason.take()
        };
        self.hub.leave(self.id, reason);
    }
}
