//! lookout: an on-device monitoring agent for embedded Linux, a drop-in replacement for the
//! Mender Monitor add-on.
//!
//! Map (see DESIGN.md): `cli` parses the command line; `ctl` edits monitor.d; `install` lays a dropped binary down on a device; `config` reads
//! check files and config.sh without executing them; `reactor` is the daemon's single-threaded
//! event loop; `sources` read bytes (files through inotify); `detect` holds the pure state
//! machines; `checks` wires a source to a detector; `control` is the local socket and its CLI; `alert` is the wire model; `uplink` is the
//! worker thread that delivers alerts; `state` persists positions across restarts.
#![deny(missing_docs)]

pub mod logging;

pub mod alert;
pub mod checks;
pub mod cli;
pub mod config;
pub mod control;
pub mod crc32c;
pub mod ctl;
pub mod dbus;
pub mod detect;
pub mod fdlimit;
pub mod install;
pub mod pidfile;
pub mod reactor;
pub mod regular_file;
pub mod sdnotify;
pub mod sources;
pub mod state;
pub mod time;
pub mod tokens;
pub mod uplink;
pub mod url;

#[cfg(test)]
pub(crate) mod testutil;
