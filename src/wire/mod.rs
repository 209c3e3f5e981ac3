//! The native wire protocol and the classic framing.
//!
//! - [`frame`]: the fixed prefix, pure functions.
//! - [`codec`]: a decoder yielding frame heads and body chunks.
//! - [`messages`]: the typed JSON headers and error codes.
//! - [`connection`]: buffered reads and writes with deadlines, shared by the
//!   server and the client.
//! - [`classic`]: the `struct.pack('i', len)` + JSON framing of the old
//!   exercise.
//! - [`stream`]: the transport under every door, plain TCP or TLS; and
//!   [`guarded`], the replay of sniffed bytes and the stalled-write deadline.

pub mod body;
pub mod classic;
pub mod codec;
pub mod connection;
pub mod exec;
pub mod frame;
pub mod guarded;
pub mod messages;
pub mod share;
pub mod stream;

pub use codec::{Head, Inbound};
pub use connection::{ConnError, Connection, Deadlines, FrameReader, FrameWriter};
pub use frame::Kind;
pub use guarded::Guarded;
pub use stream::Stream;
