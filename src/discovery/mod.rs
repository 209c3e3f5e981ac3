//! LAN discovery: servers answer probes on the shared UDP port; `ferry
//! discover` sends them to every local network and gathers the answers.

pub mod client;
pub mod mdns;
pub mod wire;
