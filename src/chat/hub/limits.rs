//! What the hub is held to: message size, queues, replay, rooms.

/// Hub settings.
#[derive(Debug, Clone, Copy)]
pub struct ChatLimits {
    /// Longest message, in bytes.
    pub max_message: usize,
    /// Events queued per client before it is dropped as not reading.
    pub queue: usize,
    /// Bytes of events queued per client before it is dropped as not
    /// reading (IRC's "sendq"): what a stuck client can cost in memory.
    pub queue_bytes: usize,
    /// Messages replayed from history on join.
    pub replay: usize,
    /// Rooms that may exist at once on the server (a room exists while
    /// someone is in it; the lobby always does).
    pub rooms: usize,
    /// Rooms one client may be in at once.
    pub rooms_per_client: usize,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_message: 2000,
            queue: 16 * 1024,
            queue_bytes: 2 * 1024 * 1024,
            replay: 50,
            rooms: 1000,
            rooms_per_client: 32,
        }
    }
}
