//! A diskusage check: a file system sampled with `statvfs` on the reactor's timers (no thread,
//! no fd, no process). [`crate::detect::diskusage`] decides everything; this module takes the
//! samples, logs a path that cannot be measured (when the problem starts, changes and ends,
//! rate-limited) and hands alerts on.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::alert::Alert;
use crate::config::check::{CheckId, DISKUSAGE_DEFAULT_INTERVAL_S, DISKUSAGE_DEFAULT_MARGIN, DiskusageCheckDef};
use crate::control::status::{CheckStatus, SourceStatus};
use crate::detect::diskusage::{DiskDetector, DiskSettings, Schedule, Usage, clear_renamed, human_bytes};
use crate::logging::{Admit, Limiter};
use crate::state::CheckState;
use crate::time::{Instant, Now};

/// Log lines about a path that cannot be measured, at most this many a minute per check.
const PROBLEM_LOGS_PER_MINUTE: u32 = 2;

/// A diskusage check, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskusageCheckConfig {
    /// `DISKUSAGE_NAME`.
    pub path: PathBuf,
    /// What the detector and the schedule need.
    pub settings: DiskSettings,
}

impl DiskusageCheckConfig {
    /// Resolves a check file's definition: margin and interval take their defaults.
    pub fn resolve(id: &CheckId, def: &DiskusageCheckDef) -> DiskusageCheckConfig {
        DiskusageCheckConfig {
            path: PathBuf::from(&def.path),
            settings: DiskSettings {
                check: id.name.clone(),
                disk: def.path.clone(),
                threshold: def.threshold,
                margin: def.margin.unwrap_or(DISKUSAGE_DEFAULT_MARGIN.min(def.threshold.saturating_sub(1))),
                interval_ms: def.interval_s.unwrap_or(DISKUSAGE_DEFAULT_INTERVAL_S).saturating_mul(1000),
            },
        }
    }

    /// Whether `other` raises alerts of the same name (path and threshold), so that an open
    /// alert carries over a reload.
    pub fn same_alert(&self, other: &DiskusageCheckConfig) -> bool {
        self.path == other.path && self.settings.threshold == other.settings.threshold
    }

    fn source(&self) -> String {
        format!("diskusage:{}", self.settings.disk)
    }
}

/// A diskusage check.
#[derive(Debug)]
pub struct DiskusageCheck {
    id: CheckId,
    config: DiskusageCheckConfig,
    schedule: Schedule,
    detector: DiskDetector,
    /// The current problem, as logged, while the path cannot be measured.
    problem: Option<String>,
    limiter: Limiter,
}

impl DiskusageCheck {
    /// A check whose first sample is due at once; an alert left open by the previous run of the
    /// agent is settled by the samples (same name) or cleared at once (renamed while stopped).
    pub fn start(id: CheckId, config: DiskusageCheckConfig, saved: Option<&CheckState>, now: Now, out: &mut Vec<Alert>) -> Self {
        let mut detector = DiskDetector::new(config.settings.clone());
        match saved.and_then(|s| s.critical.as_ref()) {
            Some(c) if c.alert_name == detector.alert_name() => detector.restore(),
            Some(c) => clear_renamed(now, &config.settings.check, &c.alert_name, &mut |a| out.push(a)),
            None => {}
        }
        let schedule = Schedule::new(config.settings.interval_ms, now.mono);
        DiskusageCheck { id, config, schedule, detector, problem: None, limiter: Limiter::default() }
    }

    /// Takes a sample if one is due.
    pub fn on_tick(&mut self, now: Now, out: &mut Vec<Alert>) {
        if !self.schedule.on_tick(now.mono) {
            return;
        }
        let sample = crate::sources::statvfs::measure(&self.config.path);
        self.log_problem(now.mono, sample.as_ref().err());
        self.detector.on_sample(now, sample, &mut |a| out.push(a));
    }

    /// Logs a problem when it starts or changes (rate-limited) and when it ends.
    fn log_problem(&mut self, now: Instant, error: Option<&String>) {
        if self.problem.as_ref() == error {
            return;
        }
        self.problem = error.cloned();
        let Admit::Log { left_out } = self.limiter.admit(now, PROBLEM_LOGS_PER_MINUTE) else { return };
        if left_out > 0 {
            crate::warn!("check {}: {left_out} lines about {} left out", self.id, self.config.settings.disk);
        }
        match error {
            Some(e) => crate::warn!(
                "check {}: cannot measure {}: {e}; no alert is raised or cleared until it can be",
                self.id,
                self.config.settings.disk
            ),
            None => crate::info!("check {}: {} can be measured again", self.id, self.config.settings.disk),
        }
    }

    /// When [`on_tick`](Self::on_tick) must run.
    pub fn next_deadline(&self) -> Option<Instant> {
        Some(self.schedule.next_deadline())
    }

    /// Applies a changed config whose alert name is the same (see
    /// [`DiskusageCheckConfig::same_alert`]): the open alert is kept; the next sample is taken at
    /// once with the new margin and interval.
    pub fn reconfigure(&mut self, config: DiskusageCheckConfig, now: Now) {
        let mut detector = DiskDetector::new(config.settings.clone());
        detector.adopt(&self.detector);
        self.detector = detector;
        self.schedule = Schedule::new(config.settings.interval_ms, now.mono);
        self.config = config;
    }

    /// Stops the check, clearing an open alert if the check goes away (`clear`).
    pub fn stop(&mut self, now: Now, clear: Option<&str>, out: &mut Vec<Alert>) -> CheckState {
        if let Some(why) = clear {
            self.detector.clear(now, why, &mut |a| out.push(a));
        }
        self.snapshot(now)
    }

    /// What to save for a restart: whether an alert is open.
    pub fn snapshot(&self, now: Now) -> CheckState {
        CheckState::alert_only(self.config.source(), self.detector.is_open().then(|| self.detector.alert_name()), now.wall)
    }

    /// The check as `status` shows it.
    pub fn status(&self) -> CheckStatus {
        let c = self.detector.counters();
        let counters: BTreeMap<String, u64> =
            crate::control::status::counters(&[("samples", c.samples), ("errors", c.errors), ("alerts", c.alerts)]);
        // Not measured (yet, or now): no level to claim, unless an alert is open.
        let level = match (self.detector.is_open(), self.detector.last()) {
            (true, _) => "CRITICAL",
            (false, Some(Ok(_))) => "OK",
            (false, _) => "-",
        };
        let s = &self.config.settings;
        let (last, problem) = match self.detector.last() {
            Some(Ok(u)) => (Some(describe(u)), None),
            Some(Err(e)) => (None, Some(e.clone())),
            None => (None, None),
        };
        CheckStatus {
            subsystem: self.id.subsystem.clone(),
            name: self.id.name.clone(),
            state: "running".into(),
            source: Some(SourceStatus::Disk {
                path: s.disk.clone(),
                threshold: s.threshold,
                ok_at: s.ok_at(),
                interval_s: s.interval_ms / 1000,
                last,
                problem,
            }),
            level: Some(level.into()),
            alert: Some(self.detector.alert_name()),
            last_match: None,
            expires: None,
            counters,
        }
    }

    /// One-line summary of the counters, for the log.
    pub fn summary(&self) -> String {
        let c = self.detector.counters();
        format!("samples {} errors {} alerts {}", c.samples, c.errors, c.alerts)
    }
}

/// A sample for `status`: `81% (12.3 GiB of 15.2 GiB), inodes 3%`.
fn describe(u: &Usage) -> String {
    let inodes = u.inodes.map(|i| format!(", inodes {}%", i.percent())).unwrap_or_default();
    format!("{}% ({} of {}){inodes}", u.space.percent(), human_bytes(u.space.used), human_bytes(u.space.total()))
}
