//! The time service: an NTPv4 server on the shared UDP port (and on an
//! extra NTP port if asked), the classic text `time` query, and the client
//! measurement behind `ferry time`, and the careful clock setting behind
//! `ferry time --sync`.

pub mod client;
pub mod limit;
pub mod ntp;
pub mod server;
pub mod sync;
pub mod sysclock;

pub use server::{TimeConfig, TimeService};
