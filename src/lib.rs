//! ferry: the classic client/server services of a local network, done
//! properly, in one binary.
//!
//! # Map
//!
//! A connection arrives at [`server`], which binds one TCP and one UDP port
//! (7070 by default), enforces connection limits, and sniffs each TCP
//! connection's first bytes ([`server::sniff`]) to pick a door: the native
//! protocol, the classic `struct.pack('i', len)` + JSON client of the old
//! exercise, HTTP (any request line; another protocol's greeting is
//! closed), or (anything else) the chat in plain text lines. Each door
//! turns its framing into calls on a service and knows nothing of the
//! others. What each door trusts, and the totals that are bounded, are in
//! `docs/THREAT_MODEL.md`; HTTP answers only the names
//! [`server::hosts`] knows.
//!
//! - [`wire`]: the native protocol. [`wire::frame`] is pure (bytes in,
//!   prefix out, caps checked first); [`wire::codec`] yields frame heads and
//!   body chunks; [`wire::connection`] owns buffers and deadlines;
//!   [`wire::messages`] are the typed JSON headers and stable error codes;
//!   [`wire::classic`] is the classic framing.
//! - [`access`]: the one access decision, (who, action, path) → allowed or
//!   why not; every door asks it.
//! - [`files`]: the files service. [`files::name`] is the one validator for
//!   every name from a peer; [`files::storage`] is the one seam to where
//!   files are kept, and [`files::local`] the jailed folder on disk;
//!   [`files::part`] writes every received byte to a hidden partial file
//!   that only becomes visible once its size and SHA-256 check out, and
//!   never trusts what it finds at that name; every change is made in a
//!   folder opened beneath the root with no link followed;
//!   [`files::pipe`] moves bytes between a disk thread and a socket.
//! - [`time`]: the NTPv4 server and client ([`time::ntp`] is the pure
//!   packet codec and era-safe arithmetic), the classic `time` text query,
//!   and per-source rate limiting for datagrams.
//! - [`exec`]: remote commands, each in its own process group that is
//!   stopped whole on exit, timeout, cancel or shutdown.
//! - [`chat`]: the chat hub (rooms, nicknames, private messages, topics),
//!   the IRC-like line syntax every door shares, the events clients get,
//!   and the history in SQLite; a client that stops reading is dropped,
//!   never waited for.
//! - [`server::http`]: the web door, in the doors' wing: hyper and axum on
//!   the shared port; files with ranges and validators
//!   ([`server::http::cond`] is pure), tus uploads, auth and
//!   cross-site checks, the embedded page, the chat over WebSocket.
//! - [`subnet`]: the subnet calculator (pure).
//! - [`discovery`]: probes and signed answers on the shared UDP port
//!   ([`discovery::wire`] is pure), and `ferry discover`.
//! - [`client`]: the client library the CLI uses, with resume and folder
//!   transfers; [`client::addr`] parses `HOST[:PORT][:/PATH]`.
//! - [`config`]: flags, `FERRY_*` variables, a TOML file and defaults merged
//!   into one validated [`config::ServeConfig`].
//! - [`cli`]: one module per subcommand; `main.rs` only parses and runs.
//! - [`ids`]: bytes as hex, and random ids and keys from the kernel.
//! - [`secret`] and [`text`]: tokens that never print, and peer text made
//!   safe for terminals and logs; [`log`]: the log subscriber and the
//!   request log's fast path.
//!
//! `docs/ARCHITECTURE.md` tells the same story at more length, and
//! `docs/PROTOCOL.md` specifies the wire format.

/// Software name and version, as hellos, announcements and logs give it.
pub const SOFTWARE: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));

/// `eprintln!` that never panics: a message to standard error is worth
/// writing but not worth dying for (a closed or full stderr made
/// `eprintln!` end a transfer with a panic before it began).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that never panics; see [`say!`].
#[macro_export]
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

pub mod access;
pub mod chat;
pub mod cli;
pub mod client;
pub mod config;
pub mod discovery;
pub mod exec;
pub mod files;
pub mod ids;
pub mod log;
pub mod qr;
pub mod secret;
pub mod server;
pub mod subnet;
pub mod text;
pub mod time;
pub mod tls;
pub mod wire;
