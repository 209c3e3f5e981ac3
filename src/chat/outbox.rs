//! What the hub hands each client: batches of events shared by every
//! recipient ([`Bundle`]), a client's queue of them, bounded in events and
//! bytes ([`Outbox`] the hub's end, [`Events`] the client's, [`Backlog`] the
//! counts they share), and a plain-text client's socket that
//! the hub may write itself while nothing is queued ([`Inline`]); see the
//! notes of [`super::hub`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::event::Delivery;

/// Events handed out together, shared by every recipient.
pub(super) type Batch = Arc<Bundle>;

#[derive(Debug)]
pub(super) struct Bundle {
    pub(super) events: Vec<Arc<Delivery>>,
    /// The sum of the events' weights.
    pub(super) weight: usize,
    /// The events as the plain-text door's lines, rendered once.
    text: OnceLock<Vec<u8>>,
}

impl Bundle {
    pub(super) fn new(events: Vec<Arc<Delivery>>) -> Batch {
        let weight = events.iter().map(|e| e.weight()).sum();
        Arc::new(Bundle {
            events,
            weight,
            text: OnceLock::new(),
        })
    }

    /// The events as lines of text, each ended by CR LF.
    pub(super) fn text(&self) -> &[u8] {
        self.text.get_or_init(|| {
            // The weight is the bytes of the events' fields; decorations
            // and escapes add a little.
            let mut out = String::with_capacity(self.weight + self.events.len() * 24);
            for ev in &self.events {
                ev.write_line(&mut out);
                out.push_str("\r\n");
            }
            out.into_bytes()
        })
    }
}

/// The largest batch (in bytes of text) the hub writes to a socket
/// itself: about what a plain-text client's socket buffer takes at once.
pub(super) const INLINE_MAX: usize = 64 * 1024;

/// Queued for a client: a batch, less the bytes of its text that the hub
/// already wrote to the client's socket.
type Queued = (Batch, usize);

/// Part of a plain-text client's output, as [`Events::recv_text`] hands it
/// out.
#[derive(Debug)]
pub struct Chunk(Queued);

impl Chunk {
    /// The bytes to write.
    pub fn bytes(&self) -> &[u8] {
        &self.0.0.text()[self.0.1..]
    }
}

/// A plain-text client's socket, shared by its door and the hub; see the
/// module's notes.
#[derive(Debug)]
pub struct Inline {
    pub(super) sock: OwnedWriteHalf,
    /// True while nothing is queued for the client nor in its door's
    /// hands: only then may the hub write to the socket, and only under
    /// this lock.
    idle: Mutex<bool>,
}

impl Inline {
    /// Shares `sock` with the hub (see [`Member::share_socket`]). The door
    /// holds the order first: the hub writes only once [`Events::settle`]
    /// found nothing queued.
    pub fn new(sock: OwnedWriteHalf) -> Arc<Inline> {
        Arc::new(Inline {
            sock,
            idle: Mutex::new(false),
        })
    }

    /// The socket, for the door's own writes.
    pub fn socket(&self) -> &OwnedWriteHalf {
        &self.sock
    }

    pub(super) fn idle(&self) -> std::sync::MutexGuard<'_, bool> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a client has queued and not yet taken: the hub adds, [`Events`]
/// takes away.
#[derive(Debug)]
pub(super) struct Backlog {
    pub(super) events: AtomicUsize,
    pub(super) bytes: AtomicUsize,
    /// When the door last took something, in ms since the hub started.
    pub(super) taken_ms: AtomicU64,
}

/// A client's events, in order, with what is still queued.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::UnboundedReceiver<Queued>,
    /// The batch being taken apart, and how far.
    current: Option<(Batch, usize)>,
    queued: Arc<Backlog>,
    epoch: Instant,
}

impl Events {
    /// The next event; `None` once the client has left the hub. Safe to
    /// cancel (in `select!`): nothing is taken until it returns.
    pub async fn recv(&mut self) -> Option<Arc<Delivery>> {
        loop {
            if let Some(ev) = self.next_queued() {
                return Some(ev);
            }
            let queued = self.rx.recv().await?;
            self.take(queued);
        }
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<Arc<Delivery>> {
        loop {
            if let Some(ev) = self.next_queued() {
                return Some(ev);
            }
            let queued = self.rx.try_recv().ok()?;
            self.take(queued);
        }
    }

    /// The next queued output as text, for the plain-text door (which
    /// uses this and [`Events::settle`] instead of [`Events::recv`]).
    pub async fn recv_text(&mut self) -> Option<Chunk> {
        let queued = self.rx.recv().await?;
        Some(self.take_text(queued))
    }

    /// The next queued output as text, if there is some.
    pub fn try_recv_text(&mut self) -> Option<Chunk> {
        let queued = self.rx.try_recv().ok()?;
        Some(self.take_text(queued))
    }

    /// For a door that has written all it was handed: the next queued
    /// output if there is some; otherwise the client is idle again and the
    /// hub writes to `inline` itself from now on.
    pub fn settle(&mut self, inline: &Inline) -> Option<Chunk> {
        let mut idle = inline.idle();
        let next = self.try_recv_text();
        if next.is_none() {
            *idle = true;
        }
        next
    }

    fn take_text(&mut self, queued: Queued) -> Chunk {
        self.uncount(&queued.0);
        Chunk(queued)
    }

    fn uncount(&self, batch: &Bundle) {
        self.queued
            .taken_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.queued
            .events
            .fetch_sub(batch.events.len(), Ordering::Relaxed);
        self.queued.bytes.fetch_sub(batch.weight, Ordering::Relaxed);
    }

    /// Takes a batch off the queue: from now on it counts against this
    /// client's door, not against its backlog (at most one batch is held
    /// this way, of at most one read's lines).
    fn take(&mut self, (batch, _): Queued) {
        self.uncount(&batch);
        self.current = Some((batch, 0));
    }

    /// The next event of the current batch.
    fn next_queued(&mut self) -> Option<Arc<Delivery>> {
        let (batch, at) = self.current.as_mut()?;
        let Some(ev) = batch.events.get(*at).cloned() else {
            self.current = None;
            return None;
        };
        *at += 1;
        Some(ev)
    }
}

/// The hub's end of a client's queue: unbounded as a channel, because it
/// is bounded here, in events and in bytes.
#[derive(Debug)]
pub(super) struct Outbox {
    tx: mpsc::UnboundedSender<Queued>,
    queued: Arc<Backlog>,
}

impl Outbox {
    /// What is queued, shared with the client's [`Events`].
    pub(super) fn backlog(&self) -> &Backlog {
        &self.queued
    }

    /// Queues `batch`, less the `skip` bytes of its text already written,
    /// if it fits within `max_events` and `max_bytes` on top of what is
    /// queued; otherwise leaves the queue alone and returns the bytes
    /// queued.
    pub(super) fn push(
        &self,
        batch: &Batch,
        skip: usize,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<(), usize> {
        let q = &self.queued;
        let bytes = q.bytes.load(Ordering::Relaxed);
        let events = q.events.load(Ordering::Relaxed);
        if bytes + batch.weight > max_bytes || events + batch.events.len() > max_events {
            return Err(bytes);
        }
        // Counted before it is sent, so that the receiving side never takes
        // away more than was added.
        q.events.fetch_add(batch.events.len(), Ordering::Relaxed);
        q.bytes.fetch_add(batch.weight, Ordering::Relaxed);
        if self.tx.send((batch.clone(), skip)).is_err() {
            // The client is leaving; its door no longer reads.
        }
        Ok(())
    }
}

/// A new client's queue: the hub's end and the client's.
pub(super) fn outbox(epoch: Instant) -> (Outbox, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(Backlog {
        events: AtomicUsize::new(0),
        bytes: AtomicUsize::new(0),
        taken_ms: AtomicU64::new(epoch.elapsed().as_millis() as u64),
    });
    let events = Events {
        rx,
        current: None,
        queued: queued.clone(),
        epoch,
    };
    (Outbox { tx, queued }, events)
}
