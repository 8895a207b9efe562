//! The `diskusage` check's decisions, with no syscall and no clock: when a file system is
//! sampled, what its use is (as `df` computes it), and which alerts that makes.
//!
//! Space use is `df`'s: used / (used + available to non-root users), rounded up; inode use
//! likewise (`df -i`), unless the file system has no inode count (vfat, btrfs: not judged). A
//! CRITICAL is raised when either is above the threshold; the OK only when both are at or below
//! the threshold minus a margin (hysteresis: a disk that hovers at the threshold does not send an
//! alert per sample). One alert until its OK, whatever changes in between.
//!
//! Samples are due on the grid of [`super::program::next_slot`] (multiples of the interval on
//! the monotonic clock), so every diskusage check with the same interval (or one dividing it) is
//! served by one wake-up. The first sample is at once when the check starts. A path that cannot
//! be measured (missing, not mounted, no permission) raises no alert: it is a problem shown in
//! `status` and logged; an alert that is open stays open until a sample says otherwise.

use super::program::next_slot;
use crate::alert::{Alert, Details, Level, Subject};
use crate::time::{Instant, Now, rfc3339};

/// The subject type of diskusage alerts.
pub const SUBJECT_TYPE: &str = "diskusage";
/// Subject status of the CRITICAL (Mender's demo subsystem uses it).
pub const STATUS_CRITICAL: &str = "DISKUSAGE_USAGE_WARNING";
/// Subject status of the OK (lookout's own: UNCONFIRMED).
pub const STATUS_OK: &str = "DISKUSAGE_USAGE_OK";

/// One measured quantity: how much is used and how much a non-root user could still use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Used (bytes or inodes).
    pub used: u64,
    /// Still available to non-root users (bytes or inodes).
    pub avail: u64,
}

impl Fill {
    /// `df`'s percentage: used / (used + avail), rounded up; 0 for an empty file system.
    pub fn percent(&self) -> u64 {
        let total = u128::from(self.used) + u128::from(self.avail);
        if total == 0 {
            return 0;
        }
        let p = (u128::from(self.used) * 100).div_ceil(total);
        u64::try_from(p).unwrap_or(100)
    }

    /// `used + avail`: the size a non-root user sees.
    pub fn total(&self) -> u64 {
        self.used.saturating_add(self.avail)
    }
}

/// One sample of a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes.
    pub space: Fill,
    /// Inodes; `None` where the file system does not count them.
    pub inodes: Option<Fill>,
}

/// A diskusage check's settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSettings {
    /// The check's name: the subject's name.
    pub check: String,
    /// `DISKUSAGE_NAME` as text: part of the alert's name and of descriptions.
    pub disk: String,
    /// Above this percentage (space or inodes): CRITICAL.
    pub threshold: u64,
    /// OK once both are at or below `threshold - margin`.
    pub margin: u64,
    /// Time between samples (ms, at least 1000).
    pub interval_ms: u64,
}

impl DiskSettings {
    /// The level at or below which an open alert clears.
    pub fn ok_at(&self) -> u64 {
        self.threshold.saturating_sub(self.margin)
    }
}

/// Bytes for people: `512 B`, `3.0 KiB`, `12.3 GiB` (to the nearest tenth, in integers).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut unit = 0;
    let mut divisor: u128 = 1024;
    while u128::from(b) >= divisor * 1024 && unit + 1 < UNITS.len() {
        divisor *= 1024;
        unit += 1;
    }
    let tenths = (u128::from(b) * 10 + divisor / 2) / divisor;
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// The sentence of a CRITICAL: what is above the threshold, with the numbers.
pub fn critical_description(s: &DiskSettings, u: &Usage) -> String {
    let space = u.space.percent();
    let inodes = u.inodes.map(|i| (i.percent(), i));
    let space_text =
        format!("Disk {} is now at {space}% capacity ({} of {} used)", s.disk, human_bytes(u.space.used), human_bytes(u.space.total()));
    let inode_text = |p: u64, i: Fill| format!("{p}% of its inodes used ({} of {})", i.used, i.total());
    match inodes {
        Some((p, i)) if p > s.threshold && space > s.threshold => {
            format!("{space_text} and {}, above the {}% threshold", inode_text(p, i), s.threshold)
        }
        Some((p, i)) if p > s.threshold => {
            format!("Disk {} has {}, above the {}% threshold (space: {space}%)", s.disk, inode_text(p, i), s.threshold)
        }
        _ => format!("{space_text}, above the {}% threshold", s.threshold),
    }
}

/// The sentence of the OK that follows a CRITICAL.
pub fn ok_description(s: &DiskSettings, u: &Usage) -> String {
    let inodes = u.inodes.map(|i| format!(", {}% of its inodes", i.percent())).unwrap_or_default();
    format!(
        "Disk {} is back below the {}% threshold: {}% capacity{inodes} (clears at or below {}%)",
        s.disk,
        s.threshold,
        u.space.percent(),
        s.ok_at()
    )
}

/// Whether `u` is above the threshold (space or inodes).
pub fn above(s: &DiskSettings, u: &Usage) -> bool {
    u.space.percent() > s.threshold || u.inodes.is_some_and(|i| i.percent() > s.threshold)
}

/// Whether `u` is low enough for an open alert to clear (space and inodes).
pub fn clears(s: &DiskSettings, u: &Usage) -> bool {
    u.space.percent() <= s.ok_at() && u.inodes.is_none_or(|i| i.percent() <= s.ok_at())
}

/// `Disk storage has grown to fill more than <T>% of the disk '<disk>'`: Mender's demo name.
pub fn alert_name(s: &DiskSettings) -> String {
    format!("Disk storage has grown to fill more than {}% of the disk '{}'", s.threshold, s.disk)
}

/// When samples are due: the grid of the interval, the first at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    interval_ms: u64,
    next: Instant,
}

impl Schedule {
    /// A schedule whose first sample is at `now`.
    pub fn new(interval_ms: u64, now: Instant) -> Self {
        Schedule { interval_ms, next: now }
    }

    /// When the next sample is due.
    pub fn next_deadline(&self) -> Instant {
        self.next
    }

    /// Whether a sample is due at `now`; if so the next one is set to the next slot (slots
    /// missed while the agent was stopped are not made up).
    pub fn on_tick(&mut self, now: Instant) -> bool {
        if self.next > now {
            return false;
        }
        self.next = next_slot(now, self.interval_ms);
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// No alert raised.
    Clear,
    /// A CRITICAL is open.
    Raised,
    /// A CRITICAL was open when the agent stopped: a sample above keeps it, without sending it
    /// again; a sample that clears sends the OK.
    Restored,
}

/// Counters of one diskusage check.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiskCounters {
    /// Samples taken (measured or not).
    pub samples: u64,
    /// Samples that could not be measured.
    pub errors: u64,
    /// Alerts raised or cleared.
    pub alerts: u64,
}

/// A diskusage check's alert state.
#[derive(Debug, Clone)]
pub struct DiskDetector {
    settings: DiskSettings,
    open: Open,
    last: Option<Result<Usage, String>>,
    counters: DiskCounters,
}

impl DiskDetector {
    /// A detector with nothing open.
    pub fn new(settings: DiskSettings) -> Self {
        DiskDetector { settings, open: Open::Clear, last: None, counters: DiskCounters::default() }
    }

    /// The alert name, the same for the CRITICAL and its OK.
    pub fn alert_name(&self) -> String {
        alert_name(&self.settings)
    }

    /// The settings.
    pub fn settings(&self) -> &DiskSettings {
        &self.settings
    }

    /// An alert was open when the agent stopped.
    pub fn restore(&mut self) {
        self.open = Open::Restored;
    }

    /// Whether an alert is open.
    pub fn is_open(&self) -> bool {
        self.open != Open::Clear
    }

    /// The last sample, or why it could not be taken.
    pub fn last(&self) -> Option<&Result<Usage, String>> {
        self.last.as_ref()
    }

    /// Counters so far.
    pub fn counters(&self) -> DiskCounters {
        self.counters
    }

    /// A sample (or why none could be taken) at `now`.
    pub fn on_sample(&mut self, now: Now, sample: Result<Usage, String>, emit: &mut impl FnMut(Alert)) {
        self.counters.samples += 1;
        match &sample {
            Err(_) => self.counters.errors += 1,
            Ok(u) => match self.open {
                Open::Clear if above(&self.settings, u) => {
                    self.open = Open::Raised;
                    let d = critical_description(&self.settings, u);
                    self.emit(now, Level::Critical, STATUS_CRITICAL, d, emit);
                }
                Open::Raised | Open::Restored if clears(&self.settings, u) => {
                    self.open = Open::Clear;
                    let d = ok_description(&self.settings, u);
                    self.emit(now, Level::Ok, STATUS_OK, d, emit);
                }
                _ => {}
            },
        }
        self.last = Some(sample);
    }

    /// Clears an open alert with an OK saying `why` (the check went away or changed).
    pub fn clear(&mut self, now: Now, why: &str, emit: &mut impl FnMut(Alert)) {
        if self.open != Open::Clear {
            self.open = Open::Clear;
            self.emit(now, Level::Ok, STATUS_OK, why.to_string(), emit);
        }
    }

    /// Takes over another detector's open alert and history (a reconfigured check whose alert
    /// name is the same).
    pub fn adopt(&mut self, other: &DiskDetector) {
        self.open = other.open;
        self.last = other.last.clone();
        self.counters = other.counters;
    }

    fn emit(&mut self, now: Now, level: Level, status: &str, description: String, emit: &mut impl FnMut(Alert)) {
        self.counters.alerts += 1;
        emit(alert(now, self.alert_name(), level, &self.settings.check, status, description));
    }
}

/// A diskusage alert of check `check`.
fn alert(now: Now, name: String, level: Level, check: &str, status: &str, description: String) -> Alert {
    Alert {
        name,
        level,
        timestamp: rfc3339(now.wall),
        subject: Subject {
            name: check.to_string(),
            kind: SUBJECT_TYPE.into(),
            status: status.into(),
            details: Some(Details { description, lines_before: None, line_matching: None, lines_after: None }),
        },
    }
}

/// The OK that clears an alert of another name left open by the previous run of the agent (the
/// check's path or threshold changed while it was stopped): nothing else would clear it.
pub fn clear_renamed(now: Now, check: &str, old_name: &str, emit: &mut impl FnMut(Alert)) {
    emit(alert(now, old_name.to_string(), Level::Ok, check, STATUS_OK, "check changed".into()));
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn settings() -> DiskSettings {
        DiskSettings { check: "root_space".into(), disk: "/".into(), threshold: 75, margin: 5, interval_ms: 60_000 }
    }

    /// A sample at `space`% of 100 GiB, with `inodes`% of 1000 inodes.
    fn at(space: u64, inodes: Option<u64>) -> Usage {
        Usage {
            space: Fill { used: space * GIB, avail: (100 - space) * GIB },
            inodes: inodes.map(|i| Fill { used: i * 10, avail: 1000 - i * 10 }),
        }
    }

    fn sample(d: &mut DiskDetector, ms: u64, s: Result<Usage, String>) -> Vec<(Level, String, String)> {
        let mut out = Vec::new();
        d.on_sample(Now::at(ms), s, &mut |a| out.push(a));
        out.into_iter()
            .map(|a| {
                assert_eq!(a.name, "Disk storage has grown to fill more than 75% of the disk '/'");
                assert_eq!((a.subject.name.as_str(), a.subject.kind.as_str()), ("root_space", "diskusage"));
                (a.level, a.subject.status, a.subject.details.map(|d| d.description).unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn percentages_round_up_as_df_does() {
        assert_eq!(Fill { used: 0, avail: 0 }.percent(), 0);
        assert_eq!(Fill { used: 1, avail: 999 }.percent(), 1);
        assert_eq!(Fill { used: 750, avail: 250 }.percent(), 75);
        assert_eq!(Fill { used: 751, avail: 249 }.percent(), 76);
        assert_eq!(Fill { used: 10, avail: 0 }.percent(), 100);
        assert_eq!(Fill { used: u64::MAX, avail: u64::MAX }.percent(), 50);
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024), "3.0 KiB");
        assert_eq!(human_bytes(12 * GIB + 3 * GIB / 10), "12.3 GiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn dialogue_hysteresis() {
        let mut d = DiskDetector::new(settings());
        assert_eq!(sample(&mut d, 0, Ok(at(50, Some(10)))), vec![]);
        // At the threshold: not above.
        assert_eq!(sample(&mut d, 60_000, Ok(at(75, Some(10)))), vec![]);
        assert_eq!(
            sample(&mut d, 120_000, Ok(at(81, Some(10)))),
            vec![(
                Level::Critical,
                STATUS_CRITICAL.into(),
                "Disk / is now at 81% capacity (81.0 GiB of 100.0 GiB used), above the 75% threshold".into()
            )]
        );
        // Still above, and higher: one alert until the OK.
        assert_eq!(sample(&mut d, 180_000, Ok(at(90, Some(10)))), vec![]);
        // Below the threshold but above threshold - margin: no OK.
        assert_eq!(sample(&mut d, 240_000, Ok(at(74, Some(10)))), vec![]);
        assert_eq!(sample(&mut d, 300_000, Ok(at(71, Some(10)))), vec![]);
        assert!(d.is_open());
        assert_eq!(
            sample(&mut d, 360_000, Ok(at(70, Some(10)))),
            vec![(
                Level::Ok,
                STATUS_OK.into(),
                "Disk / is back below the 75% threshold: 70% capacity, 10% of its inodes (clears at or below 70%)".into()
            )]
        );
        assert_eq!(sample(&mut d, 420_000, Ok(at(74, Some(10)))), vec![]);
        assert_eq!(d.counters(), DiskCounters { samples: 8, errors: 0, alerts: 2 });
    }

    #[test]
    fn inodes_alert_too_and_must_clear_too() {
        let mut d = DiskDetector::new(settings());
        let raised = sample(&mut d, 0, Ok(at(20, Some(80))));
        assert_eq!(raised[0].2, "Disk / has 80% of its inodes used (800 of 1000), above the 75% threshold (space: 20%)");
        // Space fine, inodes in the band: still open.
        assert_eq!(sample(&mut d, 60_000, Ok(at(20, Some(72)))), vec![]);
        assert_eq!(sample(&mut d, 120_000, Ok(at(20, Some(70)))).len(), 1);
        // Both above: both named.
        let both = sample(&mut d, 180_000, Ok(at(99, Some(99))));
        assert_eq!(
            both[0].2,
            "Disk / is now at 99% capacity (99.0 GiB of 100.0 GiB used) and 99% of its inodes used (990 of 1000), above the 75% threshold"
        );
        // No inode count: space alone decides.
        assert_eq!(sample(&mut d, 240_000, Ok(at(10, None))).len(), 1);
    }

    #[test]
    fn errors_raise_nothing_and_keep_an_open_alert() {
        let mut d = DiskDetector::new(settings());
        assert_eq!(sample(&mut d, 0, Err("No such file or directory".into())), vec![]);
        assert_eq!(sample(&mut d, 60_000, Ok(at(80, None))).len(), 1);
        assert_eq!(sample(&mut d, 120_000, Err("gone".into())), vec![]);
        assert!(d.is_open());
        assert_eq!(d.last(), Some(&Err("gone".to_string())));
        assert_eq!(sample(&mut d, 180_000, Ok(at(80, None))), vec![]);
        assert_eq!(d.counters().errors, 2);
    }

    #[test]
    fn a_restored_alert_is_not_sent_again_and_clears_with_an_ok() {
        let mut d = DiskDetector::new(settings());
        d.restore();
        assert_eq!(sample(&mut d, 0, Ok(at(90, None))), vec![]);
        assert_eq!(sample(&mut d, 60_000, Ok(at(72, None))), vec![]);
        assert_eq!(sample(&mut d, 120_000, Ok(at(60, None)))[0].0, Level::Ok);
        let mut d = DiskDetector::new(settings());
        d.restore();
        assert_eq!(sample(&mut d, 0, Ok(at(10, None)))[0].0, Level::Ok);
    }

    #[test]
    fn clearing_sends_an_ok_only_when_open() {
        let mut d = DiskDetector::new(settings());
        let mut out = Vec::new();
        d.clear(Now::at(0), "check disabled", &mut |a| out.push(a));
        assert!(out.is_empty());
        sample(&mut d, 0, Ok(at(99, None)));
        d.clear(Now::at(5), "check disabled", &mut |a| out.push(a));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].level, out[0].subject.status.as_str()), (Level::Ok, STATUS_OK));
        assert!(!d.is_open());
    }

    #[test]
    fn an_alert_renamed_while_stopped_is_cleared_under_its_old_name() {
        let mut out = Vec::new();
        clear_renamed(Now::at(7), "root_space", "Disk storage has grown to fill more than 90% of the disk '/'", &mut |a| out.push(a));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].level, out[0].name.as_str()), (Level::Ok, "Disk storage has grown to fill more than 90% of the disk '/'"));
        assert_eq!((out[0].subject.name.as_str(), out[0].subject.kind.as_str()), ("root_space", "diskusage"));
    }

    #[test]
    fn a_zero_margin_clears_at_the_threshold() {
        let mut d = DiskDetector::new(DiskSettings { margin: 0, ..settings() });
        assert_eq!(sample(&mut d, 0, Ok(at(76, None))).len(), 1);
        assert_eq!(sample(&mut d, 60_000, Ok(at(75, None)))[0].0, Level::Ok);
    }

    #[test]
    fn checks_with_one_interval_share_their_wake_ups() {
        let t = Instant::from_millis;
        let mut a = Schedule::new(60_000, t(1_000));
        let mut b = Schedule::new(60_000, t(17_000));
        let mut c = Schedule::new(30_000, t(17_000));
        assert!(!a.on_tick(t(999)));
        assert!(a.on_tick(t(1_000)));
        assert!(b.on_tick(t(17_000)));
        assert!(c.on_tick(t(17_000)));
        assert_eq!((a.next_deadline(), b.next_deadline(), c.next_deadline()), (t(60_000), t(60_000), t(30_000)));
        assert!(c.on_tick(t(30_000)));
        assert_eq!(c.next_deadline(), t(60_000));
        // A tick late (the agent was stopped): the missed slots are not made up.
        assert!(a.on_tick(t(250_000)));
        assert_eq!(a.next_deadline(), t(300_000));
        assert!(!a.on_tick(t(299_999)));
    }
}
