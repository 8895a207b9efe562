//! Byte producers registered with the reactor: the inotify watch table and the file tailer.

pub mod tail;
pub mod watch;
