//! The D-Bus wire protocol lookout needs, in pure Rust and non-blocking: addresses, SASL
//! EXTERNAL, marshalling of the basic and container types in both byte orders, messages and
//! framing, one connection's protocol without I/O ([`conn`]), the client every user of the bus
//! shares ([`client`]: calls with timeouts, reconnects, what to say once) and its socket side
//! ([`driver`]). Malformed or hostile bytes are errors, never panics.

pub mod address;
pub mod client;
pub mod conn;
pub mod driver;
pub mod message;
pub mod render;
pub mod rule;
pub mod sasl;
pub mod wire;
