//! Byte producers registered with the reactor: the inotify watch table, the file tailer and its
//! rotation decisions, the command runner, the checks' fds in the poll, systemd's unit states,
//! `dbus` checks' signals, and the line assembly they share.

pub mod bus_signals;
pub mod check_fds;
pub mod command;
pub mod lines;
pub mod netlink;
pub mod probe;
pub mod program;
pub mod rotation;
pub mod statvfs;
pub mod systemd;
pub mod sysv;
pub mod tail;
#[cfg(test)]
mod tail_model;
pub mod watch;
