//! When to try the server again: exponential backoff with full jitter (a fleet that lost its
//! server together does not come back in lockstep), starting at a second and capped by
//! `SEND_ALERT_MAX_INTERVAL_S`, or at least what the server's `Retry-After` asks. Pure: the
//! random source is passed in (seeded by the caller), and a `Retry-After` date is resolved
//! against a wall-clock time the caller passes.

use crate::time::Wall;
use std::time::Duration;

/// The first backoff ceiling.
pub const FIRST: Duration = Duration::from_secs(1);
/// The shortest wait: a jittered zero would hammer the server.
pub const FLOOR: Duration = Duration::from_millis(100);
/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A small xorshift generator for jitter (not for anything secret).
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator from `seed`: the worker seeds it from the wall clock and the pid, so that
    /// devices booted together still differ; tests give a fixed seed.
    pub fn seeded(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// A number in `0..=max`.
    pub fn below(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if max == u64::MAX { self.0 } else { self.0 % (max + 1) }
    }
}

/// The backoff state of one destination.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
    jitter: Jitter,
}

impl Backoff {
    /// No failure yet.
    pub fn new(jitter: Jitter) -> Backoff {
        Backoff { failures: 0, jitter }
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A delivery worked: the next failure starts from the first ceiling again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Another failure: how long to wait. `cap` is `SEND_ALERT_MAX_INTERVAL_S`; zero turns the
    /// backoff off, and then every retry waits `fixed` (`DEFAULT_ALERT_STORE_RESEND_INTERVAL_S`).
    /// A `Retry-After` from the server is a lower bound.
    pub fn next(&mut self, cap: Duration, fixed: Duration, retry_after: Option<Duration>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let base = if cap.is_zero() {
            fixed.max(FLOOR)
        } else {
            let ceiling = FIRST.saturating_mul(1u32 << (self.failures - 1).min(20)).min(cap.max(FIRST));
            let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
            Duration::from_millis(self.jitter.below(ms)).max(FLOOR)
        };
        match retry_after {
            Some(r) => base.max(r.min(MAX_RETRY_AFTER)),
            None => base,
        }
    }
}

/// A server's `Retry-After`, as it said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// delay-seconds.
    Delay(Duration),
    /// An HTTP date.
    At(Wall),
}

impl RetryAfter {
    /// How long to wait from `now` (a date in the past: not at all); at most
    /// [`MAX_RETRY_AFTER`].
    pub fn delay(self, now: Wall) -> Duration {
        let d = match self {
            RetryAfter::Delay(d) => d,
            RetryAfter::At(at) => Duration::from_millis(at.since(now)),
        };
        d.min(MAX_RETRY_AFTER)
    }
}

/// Reads a `Retry-After` value (any bytes): delay-seconds, or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`). `None` if it is neither.
pub fn parse_retry_after(value: &[u8]) -> Option<RetryAfter> {
    let v = std::str::from_utf8(value).ok()?.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(RetryAfter::Delay(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX))));
    }
    http_date_ms(v).map(|ms| RetryAfter::At(Wall::from_unix_ms(ms)))
}

/// IMF-fixdate (RFC 9110 §5.6.7) to Unix ms, by rewriting it as RFC 3339 for humantime to
/// check (day of month, leap years, ranges).
fn http_date_ms(v: &str) -> Option<u64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts[..] else { return None };
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let m = MONTHS.iter().position(|x| *x == month)? + 1;
    if day.len() != 2 || year.len() != 4 || time.len() != 8 {
        return None;
    }
    let t = humantime::parse_rfc3339(&format!("{year}-{m:02}-{day}T{time}Z")).ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().and_then(|d| u64::try_from(d.as_millis()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn ceilings_double_from_a_second_to_the_cap_with_full_jitter() {
        let mut b = Backoff::new(Jitter::seeded(42));
        let mut seen = Vec::new();
        for _ in 0..12 {
            seen.push(b.next(S(30), S(60), None));
        }
        for (i, d) in seen.iter().enumerate() {
            let ceiling = S(1u64 << i.min(20)).min(S(30));
            assert!(*d >= FLOOR && *d <= ceiling, "failure {i}: {d:?} over {ceiling:?}");
        }
        assert!(seen[8..].iter().any(|d| *d > S(15)), "late waits reach the upper half of the cap: {seen:?}");
        assert!(seen.windows(2).any(|w| w[1] < w[0]), "jittered, not monotonic: {seen:?}");
        b.reset();
        assert!(b.next(S(30), S(60), None) <= S(1));
    }

    #[test]
    fn zero_cap_means_the_fixed_resend_interval_and_retry_after_is_a_floor() {
        let mut b = Backoff::new(Jitter::seeded(7));
        assert_eq!(b.next(Duration::ZERO, S(60), None), S(60));
        assert!(b.next(S(300), S(60), Some(S(120))) >= S(120));
        assert_eq!(Backoff::new(Jitter::seeded(1)).next(S(2), S(60), Some(S(1 << 40))), MAX_RETRY_AFTER);
    }

    #[test]
    fn retry_after_in_both_forms() {
        let at = |v: &str, now: u64| parse_retry_after(v.as_bytes()).map(|r| r.delay(Wall::from_unix_ms(now)));
        assert_eq!(at("120", 0), Some(S(120)));
        assert_eq!(at(" 0 ", 0), Some(S(0)));
        assert_eq!(at("99999999999999999999999", 0), Some(MAX_RETRY_AFTER), "capped, not overflowed");
        // 1994-11-06T08:49:37Z = 784111777 s.
        let now = 784_111_777_000 - 5_000;
        assert_eq!(parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GMT"), Some(RetryAfter::At(Wall::from_unix_ms(784_111_777_000))));
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(S(5)));
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT", now + 10_000), Some(S(0)), "a past date: at once");
        for bad in
            ["", "soon", "-1", "1.5", "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 UTC", "Sunday, 06-Nov-94 08:49:37 GMT"]
        {
            assert_eq!(at(bad, now), None, "{bad:?}");
        }
        assert_eq!(parse_retry_after(b"\xff\xfe12"), None, "not UTF-8");
    }
}
