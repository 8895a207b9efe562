//! Time as lookout uses it: a monotonic millisecond [`Instant`] for every deadline, and the wall
//! clock ([`Wall`]) only for timestamps. Both are read once per reactor turn into a [`Now`] and passed
//! down, so detectors never read a clock and their tests use exact times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point on the monotonic clock, in milliseconds since [`MONO_ORIGIN_MS`] before the process
/// started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The instant `ms` milliseconds after the clock's origin.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the clock's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This instant plus `ms` milliseconds (saturating: a huge expiry means "never").
    pub const fn plus_ms(self, ms: u64) -> Self {
        Instant(self.0.saturating_add(ms))
    }

    /// Milliseconds from `self` until `later`, 0 if `later` is not after `self`.
    pub const fn until(self, later: Instant) -> u64 {
        later.0.saturating_sub(self.0)
    }
}

/// A point on the wall clock, in milliseconds since the Unix epoch: for timestamps (alerts,
/// `status`, HTTP dates) and for carrying a deadline across a restart, never for waiting. A type
/// of its own, so that it cannot be compared with an [`Instant`] by mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Wall(u64);

impl Wall {
    /// The point `ms` milliseconds after the Unix epoch.
    pub const fn from_unix_ms(ms: u64) -> Self {
        Wall(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_ms(self) -> u64 {
        self.0
    }

    /// This point plus `ms` milliseconds (saturating).
    pub const fn plus_ms(self, ms: u64) -> Self {
        Wall(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, 0 if `earlier` is not before (the wall clock may
    /// step back).
    pub const fn since(self, earlier: Wall) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// The time of one reactor turn: monotonic for deadlines, wall clock for timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time; all deadlines are compared against this.
    pub mono: Instant,
    /// Wall-clock time; only for timestamps and for carrying deadlines across a restart.
    pub wall: Wall,
}

impl Now {
    /// A `Now` at `ms` on both clocks, for tests.
    pub const fn at(ms: u64) -> Self {
        Now { mono: Instant(ms), wall: Wall(1_700_000_000_000 + ms) }
    }
}

/// Where the monotonic clock starts (ms): far enough from zero that instants before the
/// process started (a last match carried across a restart) are still representable.
pub const MONO_ORIGIN_MS: u64 = 1 << 40;

/// The process's clocks. The only place in lookout that reads the time.
#[derive(Debug)]
pub struct Clock {
    origin: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock { origin: std::time::Instant::now() }
    }
}

impl Clock {
    /// Reads both clocks.
    pub fn now(&self) -> Now {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mono = Instant(MONO_ORIGIN_MS.saturating_add(elapsed));
        Now { mono, wall: wall_now() }
    }
}

/// How long a disk wait took (a spool sync, a state save), for `status`: the reactor's turns are
/// timed by what they wait on, not by the clock of `Now`, which is read once per turn.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    /// Starts timing.
    pub fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    /// Milliseconds since [`start`](Self::start), rounded up (a wait of 0.2 ms shows as 1).
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
    }
}

/// The wall clock (the epoch if the clock is before 1970, as on a Pi without RTC before NTP:
/// timestamps are then wrong but nothing fails).
pub fn wall_now() -> Wall {
    Wall(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0))
}

/// RFC 3339 UTC with milliseconds, as the Mender server parses it: `2026-11-29T10:00:00.123Z`.
pub fn rfc3339(wall: Wall) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(wall.0);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc_millis() {
        assert_eq!(rfc3339(Wall(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(Wall(1_795_946_400_123)), "2026-11-29T10:00:00.123Z");
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let t = Instant::from_millis(10);
        assert_eq!(t.plus_ms(5).as_millis(), 15);
        assert_eq!(t.plus_ms(u64::MAX).as_millis(), u64::MAX);
        assert_eq!(t.until(Instant::from_millis(4)), 0);
        assert_eq!(t.until(Instant::from_millis(14)), 4);
    }
}
