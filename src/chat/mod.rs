//! The chat service: a hub with rooms, nicknames, private messages and
//! topics ([`hub`]), the line syntax every door shares ([`command`]), the
//! events clients get ([`event`]), each client's pace ([`pace`]), and the
//! history kept in the server's state folder ([`store`]).

pub mod bus;
pub mod command;
pub mod event;
pub mod hub;
mod outbox;
pub mod pace;
pub mod store;

/// The longest `--chat-max-message` may be; what arrives from other nodes
/// (whose limit may differ) is held to it.
pub const MAX_MESSAGE_CAP: usize = 60_000;

pub use command::Command;
pub use event::{Delivery, Event};
pub use hub::{ChatLimits, Chunk, Events, Hub, Inline, Member, Outcome};
pub use pace::Pace;
