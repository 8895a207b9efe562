//! Byte producers registered with the reactor: the inotify watch table, the file tailer, the
//! command runner and its pipes, and the line assembly they share.

pub mod command;
pub mod lines;
pub mod pipes;
pub mod rotation;
pub mod signals;
pub mod systemd;
pub mod sysv;
pub mod tail;
#[cfg(test)]
mod tail_model;
pub mod watch;
