//! The agent's own log: leveled lines on stderr (the journal under systemd). Mender Monitor's
//! `CONFIG_LOG_LEVEL` names the level. No log file: the journal bounds itself.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::time::Instant;

/// Severity of a log line, most severe first (the order of the `CONFIG_LOG_LEVEL` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// The agent cannot go on.
    Fatal = 0,
    /// Something failed; the agent goes on without it.
    Error = 1,
    /// Something is wrong with input or environment.
    Warn = 2,
    /// What the agent does, at the rate of user-visible events.
    Info = 3,
    /// Details for debugging.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

impl Level {
    /// Parses a `CONFIG_LOG_LEVEL` value (case-insensitive; `WARNING` accepted for `WARN`).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_uppercase().as_str() {
            "FATAL" => Level::Fatal,
            "ERROR" => Level::Error,
            "WARN" | "WARNING" => Level::Warn,
            "INFO" => Level::Info,
            "DEBUG" => Level::Debug,
            "TRACE" => Level::Trace,
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            Level::Fatal => "FATAL",
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the most verbose level that is written.
pub fn set_level(level: Level) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether a line at `level` would be written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Writes one line; use the `error!`/`warn!`/`info!`/`debug!` macros.
pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let mut err = std::io::stderr().lock();
    // A failing stderr must not take the agent down; there is nowhere else to report it.
    let _ = writeln!(err, "[{}] {}", level.label(), args);
}

/// Logs at ERROR.
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::logging::write($crate::logging::Level::Error, format_args!($($t)*)) } }
/// Logs at WARN.
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::logging::write($crate::logging::Level::Warn, format_args!($($t)*)) } }
/// Logs at INFO.
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::logging::write($crate::logging::Level::Info, format_args!($($t)*)) } }
/// Logs at DEBUG.
#[macro_export]
macro_rules! debug { ($($t:tt)*) => { $crate::logging::write($crate::logging::Level::Debug, format_args!($($t)*)) } }

/// A rate limit for one kind of repeated log line (a file rotated in a loop, a path that keeps
/// failing): at most `per_minute` lines in a minute; the rest are counted and summed up in the
/// first line of a later minute. Pure: the caller passes the time.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Limiter {
    window_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

/// What a [`Limiter`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write the line.
    Log {
        /// Lines left out since the last one written: say so first, if any.
        left_out: u64,
    },
    /// Leave it out (it is counted).
    Suppress,
}

impl Limiter {
    /// Whether a line may be written at `now`.
    pub fn admit(&mut self, now: Instant, per_minute: u32) -> Admit {
        if self.window_start.is_none_or(|start| start.until(now) >= 60_000) {
            let left_out = std::mem::take(&mut self.suppressed);
            *self = Limiter { window_start: Some(now), logged: 1, suppressed: 0 };
            return Admit::Log { left_out };
        }
        if self.logged < per_minute {
            self.logged += 1;
            Admit::Log { left_out: 0 }
        } else {
            self.suppressed += 1;
            Admit::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limiter_lets_a_few_through_a_minute_and_sums_the_rest() {
        let mut l = Limiter::default();
        let t0 = 5_000;
        assert_eq!(l.admit(Instant::from_millis(t0), 3), Admit::Log { left_out: 0 });
        assert_eq!(l.admit(Instant::from_millis(t0 + 1), 3), Admit::Log { left_out: 0 });
        assert_eq!(l.admit(Instant::from_millis(t0 + 2), 3), Admit::Log { left_out: 0 });
        for i in 0..100 {
            assert_eq!(l.admit(Instant::from_millis(t0 + 3 + i), 3), Admit::Suppress);
        }
        assert_eq!(l.admit(Instant::from_millis(t0 + 59_999), 3), Admit::Suppress);
        assert_eq!(l.admit(Instant::from_millis(t0 + 60_000), 3), Admit::Log { left_out: 101 });
        assert_eq!(l.admit(Instant::from_millis(t0 + 60_001), 3), Admit::Log { left_out: 0 });
    }
}
