//! A running check: a source wired to a detector, with what it needs to persist and reload.
//! The reactor owns these; they own no thread and never block beyond a bounded file read.

use std::path::PathBuf;

use crate::alert::Alert;
use crate::config::check::{CheckId, LogCheckDef, LogSource};
use crate::config::settings::Settings;
use crate::detect::log::{CriticalState, LogDetector, LogSettings};
use crate::detect::matcher::Matcher;
use crate::sources::tail::{LineSink, Progress, Scratch, Tailer};
use crate::sources::watch::{Listener, Watches};
use crate::state::{CheckState, SavedCritical};
use crate::time::{Instant, Now};

/// A log check on a file, fully resolved against the global settings; two equal configs behave
/// the same, so a reload keeps a check whose config did not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileConfig {
    /// The followed file.
    pub path: PathBuf,
    /// `LOG_PATTERN`.
    pub pattern: String,
    /// Everything the detector needs.
    pub detector: LogSettings,
}

impl LogFileConfig {
    /// Resolves a check file's definition with the global defaults. `None` for `@command`
    /// sources, which a file check does not run.
    pub fn resolve(def: &LogCheckDef, s: &Settings) -> Option<LogFileConfig> {
        let LogSource::File(path) = &def.source else { return None };
        let expiration_s = def.expiration_s.unwrap_or(s.default_log_pattern_expiration_s);
        Some(LogFileConfig {
            path: path.clone(),
            pattern: def.pattern.clone(),
            detector: LogSettings {
                alert_name: def.description.clone().unwrap_or_else(|| format!("Log file contains {}", def.pattern)),
                subject_name: def.service_name.clone(),
                subject_type: def.alert_type.clone().unwrap_or_else(|| "log".into()),
                subject_status: def.status.clone().unwrap_or_else(|| "LOGCONTAINS".into()),
                details_template: def.details.clone(),
                default_description: format!("{} present in {}", def.pattern, path.display()),
                level: def.level.unwrap_or(s.default_log_alert_level),
                expiration_ms: (expiration_s > 0).then(|| expiration_s.saturating_mul(1000)),
                lines_before: s.log_lines_before,
                lines_after: s.log_lines_after,
                after_window_ms: s.log_lines_after_window_ms,
                max_line_bytes: s.log_max_line_bytes,
            },
        })
    }

    fn source(&self) -> String {
        self.path.display().to_string()
    }
}

/// Feeds the tailer's lines to the detector, collecting alerts.
struct Feed<'a> {
    detector: &'a mut LogDetector,
    now: Now,
    out: &'a mut Vec<Alert>,
}

impl LineSink for Feed<'_> {
    fn lines(&mut self, buf: &[u8], first_line: u64) -> u64 {
        let out = &mut *self.out;
        self.detector.on_lines(self.now, buf, first_line, &mut |a| out.push(a))
    }

    fn line(&mut self, line: &[u8], number: u64) {
        let out = &mut *self.out;
        self.detector.on_line(self.now, line, number, &mut |a| out.push(a));
    }
}

/// A log check following a file.
#[derive(Debug)]
pub struct LogFileCheck {
    id: CheckId,
    config: LogFileConfig,
    tailer: Tailer,
    detector: LogDetector,
}

impl LogFileCheck {
    /// Starts the check from its saved state (position and CRITICAL) if it is for the same
    /// file; a check without one reads its file from the start.
    pub fn start(
        id: CheckId,
        key: u64,
        config: LogFileConfig,
        saved: Option<&CheckState>,
        now: Now,
        out: &mut Vec<Alert>,
    ) -> Result<Self, String> {
        let matcher = Matcher::new(&config.pattern)?;
        let saved = saved.filter(|s| s.source == config.source());
        let resume = saved.and_then(|s| s.position).map(Into::into);
        let tailer = Tailer::new(config.path.clone(), Listener::Check(key), resume);
        let mut detector = LogDetector::new(config.detector.clone(), matcher);
        if let Some(c) = saved.and_then(|s| s.critical.as_ref()) {
            if c.alert_name == config.detector.alert_name {
                detector.restore(now, CriticalState { last_match_wall_ms: c.last_match_unix_ms });
                // Expired while we were down: the OK goes out before any new line is read, so
                // a match read now raises a CRITICAL of its own. (After a crash the server may
                // already have this OK: a repeat, never a miss.)
                detector.on_tick(now, &mut |a| out.push(a));
            } else {
                // Renamed while stopped: clear the old name, which nothing else would.
                let mut old = LogDetector::new(
                    LogSettings { alert_name: c.alert_name.clone(), ..config.detector.clone() },
                    Matcher::new(&config.pattern)?,
                );
                old.restore(now, CriticalState { last_match_wall_ms: c.last_match_unix_ms });
                old.clear(now, "check changed", &mut |a| out.push(a));
            }
        }
        if !detector.matcher_has_prefilter() {
            crate::info!("check {id}: pattern {:?} has no literal to search for; every line goes through the regex", config.pattern);
        }
        Ok(LogFileCheck { id, config, tailer, detector })
    }

    /// The check's id.
    pub fn id(&self) -> &CheckId {
        &self.id
    }

    /// The config it runs.
    pub fn config(&self) -> &LogFileConfig {
        &self.config
    }

    /// Reads what is new (at most `budget` bytes) and runs it through the detector.
    pub fn on_ready(
        &mut self,
        now: Now,
        watches: &mut Watches,
        scratch: &mut Scratch,
        budget: &mut usize,
        out: &mut Vec<Alert>,
    ) -> Progress {
        let mut feed = Feed { detector: &mut self.detector, now, out };
        self.tailer.sync(now.mono, watches, scratch, budget, &mut feed)
    }

    /// Runs what is due at `now`: the detector's timers, and the tailer's (retired files,
    /// fallback polling).
    pub fn on_tick(
        &mut self,
        now: Now,
        watches: &mut Watches,
        scratch: &mut Scratch,
        budget: &mut usize,
        out: &mut Vec<Alert>,
    ) -> Progress {
        let progress = if self.tailer.next_deadline().is_some_and(|d| d <= now.mono) {
            self.on_ready(now, watches, scratch, budget, out)
        } else {
            Progress::Done
        };
        self.detector.on_tick(now, &mut |a| out.push(a));
        progress
    }

    /// The earliest time [`on_tick`](Self::on_tick) must run.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.detector.next_deadline(), self.tailer.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies a changed config to a running check on the same file: the read position stays;
    /// a CRITICAL stays if the alert keeps its name, else it is cleared under the old name.
    pub fn reconfigure(&mut self, config: LogFileConfig, now: Now, out: &mut Vec<Alert>) -> Result<(), String> {
        debug_assert_eq!(config.path, self.config.path);
        let matcher = Matcher::new(&config.pattern)?;
        let mut detector = LogDetector::new(config.detector.clone(), matcher);
        match self.detector.critical_state() {
            Some(c) if config.detector.alert_name == self.config.detector.alert_name => detector.restore(now, c),
            _ => self.detector.clear(now, "check changed", &mut |a| out.push(a)),
        }
        detector.inherit_context(&mut self.detector);
        self.detector = detector;
        self.config = config;
        Ok(())
    }

    /// What to save for a restart.
    pub fn snapshot(&self) -> CheckState {
        self.snapshot_at(self.tailer.position())
    }

    fn snapshot_at(&self, position: Option<crate::sources::tail::Position>) -> CheckState {
        CheckState {
            source: self.config.source(),
            position: position.map(Into::into),
            critical: self
                .detector
                .critical_state()
                .map(|c| SavedCritical { alert_name: self.config.detector.alert_name.clone(), last_match_unix_ms: c.last_match_wall_ms }),
        }
    }

    /// Stops following the file. With `clear`, a CRITICAL is cleared with an OK saying why
    /// (the check was disabled or deleted); without, it is kept for the next start (the agent
    /// stops: a daemon's shutdown raises no alerts). Returns the state to save.
    pub fn stop(&mut self, watches: &mut Watches, clear: Option<(&str, Now)>, out: &mut Vec<Alert>) -> CheckState {
        let position = self.tailer.stop(watches);
        if let Some((why, now)) = clear {
            self.detector.clear(now, why, &mut |a| out.push(a));
        }
        self.snapshot_at(position)
    }

    /// One-line summary of the counters, for the log.
    pub fn summary(&self) -> String {
        let d = self.detector.counters();
        let t = self.tailer.counters();
        format!(
            "lines {} matches {} alerts {} bytes {} rotations {} truncations {} long-lines {} invalid-utf8 {} errors {}",
            d.lines, d.matches, d.alerts, t.read.bytes, t.rotations, t.truncations, t.read.long_lines, d.invalid_utf8_lines, t.errors
        )
    }
}
