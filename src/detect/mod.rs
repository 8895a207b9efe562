//! Pure state machines: no I/O, no clock. Time comes in as [`crate::time::Now`].

pub mod connectivity;
pub mod diskusage;
pub mod flapping;
pub mod literal;
pub mod log;
pub mod matcher;
pub mod program;
pub mod recent;
pub mod service;
