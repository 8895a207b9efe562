//! The D-Bus wire protocol lookout needs, in pure Rust and non-blocking: addresses, SASL
//! EXTERNAL, marshalling of the basic and container types in both byte orders, messages and
//! framing, and a connection that the reactor drives (method calls with serials and timeouts,
//! signals, match rules). Malformed or hostile bytes are errors, never panics.

pub mod address;
pub mod conn;
pub mod message;
pub mod render;
pub mod rule;
pub mod sasl;
pub mod wire;
