//! Flap history of one service: the times it changed between running and not running, in a
//! fixed-size ring, pruned by age. Pure, with injected time.

use std::collections::VecDeque;

use crate::time::Instant;

/// Flaps kept per service; a threshold above this could never be reached and is capped.
pub const RING: usize = 64;

/// The flaps of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlapWindow {
    /// Flap times, oldest first; never more than [`RING`].
    times: VecDeque<Instant>,
    interval_ms: u64,
    max_age_ms: u64,
    /// Flaps pushed out of the full ring.
    dropped: u64,
}

impl FlapWindow {
    /// A window counting flaps over `interval_ms`, keeping history at most `max_age_ms`.
    pub fn new(interval_ms: u64, max_age_ms: u64) -> Self {
        FlapWindow { times: VecDeque::with_capacity(RING), interval_ms, max_age_ms, dropped: 0 }
    }

    /// Records `n` flaps at `now`.
    pub fn record(&mut self, now: Instant, n: u64) {
        for _ in 0..n.min(RING as u64) {
            if self.times.len() == RING {
                self.times.pop_front();
                self.dropped += 1;
            }
            self.times.push_back(now);
        }
        self.prune(now);
    }

    fn prune(&mut self, now: Instant) {
        let keep = self.interval_ms.min(self.max_age_ms);
        while self.times.front().is_some_and(|t| t.plus_ms(keep) <= now) {
            self.times.pop_front();
        }
    }

    /// Flaps within the interval before `now`.
    pub fn count(&self, now: Instant) -> usize {
        let keep = self.interval_ms.min(self.max_age_ms);
        self.times.iter().filter(|t| t.plus_ms(keep) > now).count()
    }

    /// When the count will drop below `threshold` if no flap comes (if it is at or above now).
    pub fn falls_below_at(&self, threshold: usize, now: Instant) -> Option<Instant> {
        let n = self.count(now);
        if threshold == 0 || n < threshold {
            return None;
        }
        let keep = self.interval_ms.min(self.max_age_ms);
        // Oldest first: once the (n - threshold)-th entry from the oldest in the window leaves,
        // threshold - 1 remain.
        let in_window: Vec<Instant> = self.times.iter().copied().filter(|t| t.plus_ms(keep) > now).collect();
        in_window.get(n - threshold).map(|t| t.plus_ms(keep))
    }

    /// Flaps pushed out of the full ring.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn counts_within_the_interval_and_says_when_it_falls() {
        let mut w = FlapWindow::new(10_000, 3_600_000);
        w.record(at(1_000), 1);
        w.record(at(2_000), 1);
        w.record(at(4_000), 1);
        assert_eq!(w.count(at(4_000)), 3);
        assert_eq!(w.falls_below_at(3, at(4_000)), Some(at(11_000)), "when the flap at 1 s leaves");
        assert_eq!(w.falls_below_at(2, at(4_000)), Some(at(12_000)));
        assert_eq!(w.count(at(11_000)), 2);
        assert_eq!(w.falls_below_at(3, at(11_000)), None);
        assert_eq!(w.count(at(14_000)), 0);
    }

    #[test]
    fn history_is_bounded_by_age_and_size() {
        let mut w = FlapWindow::new(600_000, 5_000);
        w.record(at(0), 2);
        assert_eq!(w.count(at(4_999)), 2);
        assert_eq!(w.count(at(5_000)), 0, "ALERT_LOG_MAX_AGE shorter than the interval wins");
        let mut w = FlapWindow::new(1_000_000, 1_000_000);
        w.record(at(0), 100);
        assert_eq!(w.count(at(1)), RING);
        assert_eq!(w.dropped(), 0, "a single record is capped at the ring size");
        w.record(at(2), 1);
        assert_eq!(w.count(at(2)), RING);
        assert_eq!(w.dropped(), 1);
    }
}
