//! Byte producers registered with the reactor: the inotify watch table, the file tailer, and
//! the line assembly they share.

pub mod lines;
pub mod tail;
pub mod watch;
