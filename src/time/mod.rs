//! The time service: an NTPv4 server on the shared UDP port (and on an
//! extra NTP port if asked), the classic text `time` query, and the client
//! measurement behind `ferry time`.

pub mod client;
pub mod limit;
pub mod ntp;
pub mod server;

pub use server::{TimeConfig, TimeService};
