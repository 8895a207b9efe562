//! A log check: a source (a followed file, an `@command`, or a `dbus` check's signals) wired to
//! the log detector.

use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::Io;
use crate::alert::Alert;
use crate::config::check::{CheckId, DbusCheckDef, LogCheckDef, LogSource};
use crate::config::settings::Settings;
use crate::control::status::{CheckStatus, SourceStatus};
use crate::dbus::rule::MatchRule;
use crate::detect::log::{CriticalState, LogDetector, LogSettings};
use crate::detect::matcher::Matcher;
use crate::sources::bus_signals::SignalWatch;
use crate::sources::command::{CommandRunner, Stopping};
use crate::sources::lines::LineSink;
use crate::sources::tail::{Position, Progress, Tailer};
use crate::sources::watch::Listener;
use crate::state::{CheckState, SavedCritical};
use crate::time::{Instant, Now, Wall, rfc3339};

/// A log check, fully resolved against the global settings; two equal configs behave the same,
/// so a reload keeps a check whose config did not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheckConfig {
    /// The file followed, or the command run.
    pub source: LogSource,
    /// `LOG_PATTERN`.
    pub pattern: String,
    /// Everything the detector needs.
    pub detector: LogSettings,
}

impl LogCheckConfig {
    /// Resolves a check file's definition with the global defaults.
    pub fn resolve(def: &LogCheckDef, s: &Settings) -> LogCheckConfig {
        let expiration_s = def.expiration_s.unwrap_or(s.default_log_pattern_expiration_s);
        LogCheckConfig {
            source: def.source.clone(),
            pattern: def.pattern.clone(),
            detector: LogSettings {
                alert_name: def.description.clone().unwrap_or_else(|| format!("Log file contains {}", def.pattern)),
                subject_name: def.service_name.clone(),
                subject_type: def.alert_type.clone().unwrap_or_else(|| "log".into()),
                subject_status: def.status.clone().unwrap_or_else(|| "LOGCONTAINS".into()),
                details_template: def.details.clone(),
                default_description: format!("{} present in {}", def.pattern, def.source.as_config()),
                expired_description: format!("{} not present in {}", def.pattern, def.source.as_config()),
                level: def.level.unwrap_or(s.default_log_alert_level),
                expiration_ms: (expiration_s > 0).then(|| expiration_s.saturating_mul(1000)),
                lines_before: s.log_lines_before,
                lines_after: s.log_lines_after,
                after_window_ms: s.log_lines_after_window_ms,
                max_line_bytes: s.log_max_line_bytes,
            },
        }
    }
}

/// The pattern of a `dbus` check without `DBUS_PATTERN`: the first line of every message
/// (signals; calls, returns and errors where the rule asks for them and the bus shows them).
pub const EVERY_MESSAGE: &str = "^(signal|method call|method return|error) time=";

impl LogCheckConfig {
    /// A `dbus` check is a log check over the signals its match rule selects, written as
    /// `dbus-monitor` prints them (what Mender Monitor grepped): `DBUS_PATTERN` is the pattern
    /// (empty: every signal), the alert is `D-Bus signal arrived on bus <rule without
    /// apostrophes>` (`system bus` without a rule), the subject is `DBUS_NAME`. Context lines
    /// come from the signals' text; a CRITICAL is sent at once, with the rest of its signal.
    pub fn from_dbus(def: &DbusCheckDef, s: &Settings) -> LogCheckConfig {
        // The file's rule was checked when it was read; a rule that does not parse here cannot
        // come from a loaded check, and is sent as given for the bus to judge.
        let rule = MatchRule::parse(&def.watch).map(|r| r.to_add_match()).unwrap_or_else(|_| def.watch.clone());
        let bus = if def.watch.trim().is_empty() { "system bus".to_string() } else { def.watch.replace('\'', "") };
        let expiration_s = def.expiration_s.unwrap_or(s.default_dbus_alert_expiration_s);
        let (present, absent) = if def.pattern.is_empty() {
            (format!("a D-Bus signal matching {rule}"), format!("no D-Bus signal matching {rule}"))
        } else {
            (format!("{} in a D-Bus signal matching {rule}", def.pattern), format!("{} in no D-Bus signal matching {rule}", def.pattern))
        };
        LogCheckConfig {
            source: LogSource::Signals(rule.clone()),
            pattern: if def.pattern.is_empty() { EVERY_MESSAGE.into() } else { def.pattern.clone() },
            detector: LogSettings {
                alert_name: format!("D-Bus signal arrived on bus {bus}"),
                subject_name: def.name.clone(),
                subject_type: "dbus".into(),
                subject_status: "DBUSSIGNAL".into(),
                details_template: None,
                default_description: present,
                expired_description: absent,
                level: s.default_dbus_alert_level,
                expiration_ms: (expiration_s > 0).then(|| expiration_s.saturating_mul(1000)),
                lines_before: s.log_lines_before,
                lines_after: s.log_lines_after,
                after_window_ms: 0,
                max_line_bytes: s.log_max_line_bytes,
            },
        }
    }
}

/// Feeds a source's lines to the detector, collecting alerts.
struct Feed<'a> {
    detector: &'a mut LogDetector,
    now: Now,
    out: &'a mut Vec<Alert>,
}

impl LineSink for Feed<'_> {
    fn lines(&mut self, buf: &[u8], first_line: u64, count: u64) {
        let out = &mut *self.out;
        self.detector.on_lines(self.now, buf, first_line, count, &mut |a| out.push(a));
    }

    fn line(&mut self, line: &[u8], number: u64) {
        let out = &mut *self.out;
        self.detector.on_line(self.now, line, number, &mut |a| out.push(a));
    }
}

#[derive(Debug)]
enum Source {
    File(Box<Tailer>),
    Command(CommandRunner),
    Signals(Box<SignalWatch>),
}

/// A log check on a file or a command's output.
#[derive(Debug)]
pub struct LogCheck {
    id: CheckId,
    config: LogCheckConfig,
    source: Source,
    detector: LogDetector,
}

impl LogCheck {
    /// Starts the check from its saved state (position and CRITICAL) if it is for the same
    /// source; a file check without one reads its file from the start. A command starts at the
    /// next tick.
    pub fn start(
        id: CheckId,
        key: u64,
        config: LogCheckConfig,
        saved: Option<&CheckState>,
        now: Now,
        out: &mut Vec<Alert>,
    ) -> Result<Self, String> {
        let matcher = Matcher::new(&config.pattern)?;
        let saved = saved.filter(|s| s.source == config.source.as_config());
        let source = match &config.source {
            LogSource::File(path) => {
                let resume = saved.and_then(|s| s.position).map(Into::into);
                Source::File(Box::new(Tailer::new(path.clone(), Listener::Check(key), resume)))
            }
            LogSource::Command(cmd) => {
                Source::Command(CommandRunner::new(cmd.clone(), format!("check {id}"), Listener::Check(key), now.mono))
            }
            LogSource::Signals(rule) => {
                Source::Signals(Box::new(SignalWatch::new(rule.clone(), format!("check {id}"), Listener::Check(key), now.mono)))
            }
        };
        let mut detector = LogDetector::new(config.detector.clone(), matcher);
        // A CRITICAL that waited for its after-lines when the agent stopped without sending it
        // (a crash): it goes out as it stood, before anything else of this check.
        if let Some(p) = saved.and_then(|s| s.pending.clone()) {
            out.push(p);
        }
        if let Some(c) = saved.and_then(|s| s.critical.as_ref()) {
            if c.alert_name == config.detector.alert_name {
                detector.restore(now, CriticalState { last_match_wall: Wall::from_unix_ms(c.last_match_unix_ms) });
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
                old.restore(now, CriticalState { last_match_wall: Wall::from_unix_ms(c.last_match_unix_ms) });
                old.clear(now, "check changed", &mut |a| out.push(a));
            }
        }
        if !detector.matcher_has_prefilter() && !matches!(config.source, LogSource::Signals(_)) {
            crate::info!("check {id}: pattern {:?} has no literal to search for; every line goes through the regex", config.pattern);
        }
        Ok(LogCheck { id, config, source, detector })
    }

    /// The check's id.
    pub fn id(&self) -> &CheckId {
        &self.id
    }

    /// The config it runs.
    pub fn config(&self) -> &LogCheckConfig {
        &self.config
    }

    /// Reads what is new (at most `budget` bytes) and runs it through the detector.
    pub fn on_ready(&mut self, now: Now, io: &mut Io, budget: &mut usize, out: &mut Vec<Alert>) -> Progress {
        let mut feed = Feed { detector: &mut self.detector, now, out };
        match &mut self.source {
            Source::File(t) => t.sync(now.mono, &mut io.watches, &mut io.scratch, budget, &mut feed),
            Source::Command(c) => c.on_ready(&mut io.check_fds, &mut io.scratch, budget, &mut feed),
            Source::Signals(w) => {
                w.on_ready(now, &mut io.check_fds, &mut feed);
                Progress::Done
            }
        }
    }

    /// Runs what is due at `now`: the detector's timers, and the source's (a retired file, a
    /// fallback re-read, a command to restart).
    pub fn on_tick(&mut self, now: Now, io: &mut Io, budget: &mut usize, out: &mut Vec<Alert>) -> Progress {
        let mut progress = Progress::Done;
        if self.source_deadline().is_some_and(|d| d <= now.mono) {
            match &mut self.source {
                Source::File(_) => progress = self.on_ready(now, io, budget, out),
                Source::Command(c) => c.on_tick(now.mono, &mut io.check_fds),
                Source::Signals(w) => {
                    w.on_tick(now, &io.system_bus, &mut io.check_fds, &mut Feed { detector: &mut self.detector, now, out })
                }
            }
        }
        self.detector.on_tick(now, &mut |a| out.push(a));
        progress
    }

    fn source_deadline(&self) -> Option<Instant> {
        match &self.source {
            Source::File(t) => t.next_deadline(),
            Source::Command(c) => c.next_deadline(),
            Source::Signals(w) => w.next_deadline(),
        }
    }

    /// The earliest time [`on_tick`](Self::on_tick) must run.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.detector.next_deadline(), self.source_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The process id of the check's command, if one runs.
    pub fn child(&self) -> Option<Pid> {
        match &self.source {
            Source::Command(c) => c.pid(),
            Source::File(_) | Source::Signals(_) => None,
        }
    }

    /// The check's command exited: read its last output; returns its group if members are left.
    pub fn on_child_exit(&mut self, now: Now, status: &WaitStatus, io: &mut Io, out: &mut Vec<Alert>) -> Option<Stopping> {
        let Source::Command(c) = &mut self.source else { return None };
        let mut feed = Feed { detector: &mut self.detector, now, out };
        c.on_exit(now.mono, status, &mut io.check_fds, &mut io.scratch, &mut feed)
    }

    /// Applies a changed config to a running check with the same source: the source (position,
    /// process) stays; a CRITICAL stays if the alert keeps its name, else it is cleared under
    /// the old name.
    pub fn reconfigure(&mut self, config: LogCheckConfig, now: Now, out: &mut Vec<Alert>) -> Result<(), String> {
        debug_assert_eq!(config.source, self.config.source);
        let matcher = Matcher::new(&config.pattern)?;
        let mut detector = LogDetector::new(config.detector.clone(), matcher);
        // A CRITICAL still waiting for its after-lines leaves as it stands, not with the old
        // detector.
        self.detector.flush(&mut |a| out.push(a));
        match self.detector.critical_state() {
            Some(c) if config.detector.alert_name == self.config.detector.alert_name => detector.restore(now, c),
            _ => self.detector.clear(now, "check changed", &mut |a| out.push(a)),
        }
        detector.inherit_context(&mut self.detector);
        self.detector = detector;
        self.config = config;
        Ok(())
    }

    /// Whether a CRITICAL was raised and waits for its after-lines.
    pub fn awaiting_context(&self) -> bool {
        self.detector.view().collecting_context
    }

    /// Sends a CRITICAL that waits for its after-lines as it stands: always (`max_bytes` 0),
    /// or if it holds more than `max_bytes` of lines (too much to keep in the state file).
    pub fn flush(&mut self, max_bytes: usize, out: &mut Vec<Alert>) {
        if self.detector.pending_bytes() > max_bytes || max_bytes == 0 {
            self.detector.flush(&mut |a| out.push(a));
        }
    }

    /// What to save for a restart.
    pub fn snapshot(&self) -> CheckState {
        let position = match &self.source {
            Source::File(t) => t.position(),
            Source::Command(_) | Source::Signals(_) => None,
        };
        self.snapshot_at(position)
    }

    fn snapshot_at(&self, position: Option<Position>) -> CheckState {
        CheckState {
            source: self.config.source.as_config(),
            position: position.map(Into::into),
            critical: self.detector.critical_state().map(|c| SavedCritical {
                alert_name: self.config.detector.alert_name.clone(),
                last_match_unix_ms: c.last_match_wall.as_unix_ms(),
            }),
            flapping: false,
            pending: self.detector.pending_alert(),
        }
    }

    /// Stops the source. With `clear`, a CRITICAL is cleared with an OK saying why (the check
    /// was disabled, deleted or changed); without, it is kept for the next start (the agent
    /// stops: a daemon's shutdown raises no alerts). Returns the state to save, and the
    /// command's process group if one must still be reaped.
    pub fn stop(&mut self, now: Now, io: &mut Io, clear: Option<&str>, out: &mut Vec<Alert>) -> (CheckState, Option<Stopping>) {
        let (position, stopping) = match &mut self.source {
            Source::File(t) => (t.stop(&mut io.watches), None),
            Source::Command(c) => (None, c.stop(now.mono, &mut io.check_fds)),
            Source::Signals(w) => {
                w.stop(&mut io.check_fds);
                (None, None)
            }
        };
        if let Some(why) = clear {
            self.detector.clear(now, why, &mut |a| out.push(a));
        }
        (self.snapshot_at(position), stopping)
    }

    /// The check as `status` shows it.
    pub fn status(&self) -> CheckStatus {
        let view = self.detector.view();
        let d = self.detector.counters();
        let mut counters = crate::control::status::counters(&[
            ("lines", d.lines),
            ("matches", d.matches),
            ("alerts", d.alerts),
            ("truncated_lines_in_alerts", d.truncated_lines),
            ("invalid_utf8_lines", d.invalid_utf8_lines),
        ]);
        let source = match &self.source {
            Source::File(t) => {
                let c = t.counters();
                counters.extend(crate::control::status::counters(&[
                    ("bytes", c.read.bytes),
                    ("long_lines_cut", c.read.long_lines),
                    ("rotations", c.rotations),
                    ("truncations", c.truncations),
                    ("copies_recovered", c.copies_recovered),
                    ("rotated_files_read", c.rotated_files_read),
                    ("rotated_files_skipped", c.rotated_files_skipped),
                    ("read_errors", c.errors),
                    ("file_notes_not_logged", c.notes_suppressed),
                ]));
                let pos = t.reading();
                SourceStatus::File {
                    path: t.path().display().to_string(),
                    inode: pos.map(|p| p.id.ino),
                    offset: pos.map(|p| p.offset),
                    line: pos.map(|p| p.line),
                    problem: t.problem().map(str::to_string),
                }
            }
            Source::Command(r) => {
                let c = r.counters();
                counters.extend(crate::control::status::counters(&[
                    ("bytes", c.stdout.bytes),
                    ("long_lines_cut", c.stdout.long_lines),
                    ("stderr_lines", c.stderr_lines),
                    ("stderr_lines_not_logged", c.stderr_suppressed),
                ]));
                SourceStatus::Command {
                    command: r.command().to_string(),
                    pid: r.pid().map(|p| p.as_raw()),
                    starts: c.starts,
                    exits: c.exits,
                }
            }
            Source::Signals(w) => {
                let c = w.counters();
                counters.extend(crate::control::status::counters(&[
                    ("signals", c.signals),
                    ("other_messages", c.other_messages),
                    ("not_matching", c.not_matching),
                    ("bytes", c.bytes),
                    ("signals_cut", c.cut),
                    ("connects", c.connects),
                    ("disconnects", c.disconnects),
                    ("malformed_messages", c.malformed),
                    ("oversized_messages", c.oversized),
                ]));
                SourceStatus::Bus { rule: w.rule().to_string(), state: w.state().to_string(), mode: w.mode().to_string() }
            }
        };
        CheckStatus {
            subsystem: self.id.subsystem.clone(),
            name: self.id.name.clone(),
            state: "running".into(),
            source: Some(source),
            level: Some(if view.critical { self.config.detector.level.as_str().into() } else { "OK".into() }),
            alert: Some(self.config.detector.alert_name.clone()),
            last_match: view.last_match_wall.map(rfc3339),
            expires: view.expires_wall.map(rfc3339),
            counters,
        }
    }

    /// One-line summary of the counters, for the log.
    pub fn summary(&self) -> String {
        let d = self.detector.counters();
        let source = match &self.source {
            Source::File(t) => {
                let t = t.counters();
                format!(
                    "bytes {} rotations {} truncations {} long-lines {} errors {}",
                    t.read.bytes, t.rotations, t.truncations, t.read.long_lines, t.errors
                )
            }
            Source::Command(c) => {
                let c = c.counters();
                format!(
                    "bytes {} long-lines {} starts {} exits {} stderr-lines {} (not logged {})",
                    c.stdout.bytes, c.stdout.long_lines, c.starts, c.exits, c.stderr_lines, c.stderr_suppressed
                )
            }
            Source::Signals(w) => {
                let c = w.counters();
                format!(
                    "signals {} bytes {} cut {} connects {} disconnects {} malformed {} oversized {}",
                    c.signals, c.bytes, c.cut, c.connects, c.disconnects, c.malformed, c.oversized
                )
            }
        };
        format!("lines {} matches {} alerts {} invalid-utf8 {} {source}", d.lines, d.matches, d.alerts, d.invalid_utf8_lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check::LogCheckDef;
    use crate::detect::log::count_lines;

    fn def(pattern: &str, expiration_s: Option<u64>, description: Option<&str>) -> LogCheckDef {
        LogCheckDef {
            service_name: "svc".into(),
            pattern: pattern.into(),
            source: LogSource::Command("true".into()),
            expiration_s,
            level: None,
            description: description.map(str::to_string),
            details: None,
            status: None,
            alert_type: None,
        }
    }

    fn config(pattern: &str, expiration_s: Option<u64>, description: Option<&str>) -> LogCheckConfig {
        LogCheckConfig::resolve(
            &def(pattern, expiration_s, description),
            &Settings { log_lines_after_window_ms: 200, ..Settings::default() },
        )
    }

    fn start(config: LogCheckConfig, saved: Option<&CheckState>, now: Now) -> (LogCheck, Vec<Alert>) {
        let mut out = Vec::new();
        let c = LogCheck::start(CheckId::new("log", "app"), 1, config, saved, now, &mut out).unwrap();
        (c, out)
    }

    fn feed(c: &mut LogCheck, now: Now, text: &[u8], first: u64, out: &mut Vec<Alert>) {
        c.detector.on_lines(now, text, first, count_lines(text), &mut |a| out.push(a));
    }

    fn saved_critical(name: &str, last_match_unix_ms: u64) -> CheckState {
        CheckState {
            source: "@true".into(),
            position: None,
            critical: Some(SavedCritical { alert_name: name.into(), last_match_unix_ms }),
            flapping: false,
            pending: None,
        }
    }

    #[test]
    fn resolving_a_file_applies_mender_defaults() {
        let c = config("ERROR", None, None);
        assert_eq!(c.detector.alert_name, "Log file contains ERROR");
        assert_eq!(c.detector.subject_type, "log");
        assert_eq!(c.detector.subject_status, "LOGCONTAINS");
        assert_eq!(c.detector.expiration_ms, None, "DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS=0: never");
        assert_eq!(config("ERROR", Some(5), Some("Boom")).detector.alert_name, "Boom");
        assert_eq!(config("ERROR", Some(5), None).detector.expiration_ms, Some(5_000));
    }

    #[test]
    fn a_dbus_check_is_named_after_its_rule() {
        let d = DbusCheckDef { name: "bat".into(), pattern: String::new(), watch: "type='signal',member='X'".into(), expiration_s: None };
        let c = LogCheckConfig::from_dbus(&d, &Settings::default());
        assert_eq!(c.detector.alert_name, "D-Bus signal arrived on bus type=signal,member=X");
        assert_eq!(c.pattern, EVERY_MESSAGE);
        assert_eq!(c.detector.after_window_ms, 0, "a signal arrives whole");
        let d = DbusCheckDef { watch: String::new(), ..d };
        assert_eq!(LogCheckConfig::from_dbus(&d, &Settings::default()).detector.alert_name, "D-Bus signal arrived on bus system bus");
    }

    /// A CRITICAL saved before a restart: still CRITICAL if its expiry has not passed, its OK at
    /// once if it has, and an OK under the old name if the check was renamed meanwhile.
    #[test]
    fn a_saved_critical_is_resumed_expired_or_cleared() {
        let now = Now::at(100_000);
        let (c, out) =
            start(config("ERROR", Some(60), None), Some(&saved_critical("Log file contains ERROR", now.wall.as_unix_ms() - 10_000)), now);
        assert!(out.is_empty());
        assert!(c.snapshot().critical.is_some(), "still CRITICAL");
        let (c, out) =
            start(config("ERROR", Some(5), None), Some(&saved_critical("Log file contains ERROR", now.wall.as_unix_ms() - 10_000)), now);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].level, crate::alert::Level::Ok);
        assert!(c.snapshot().critical.is_none());
        let (_, out) =
            start(config("ERROR", Some(60), Some("New name")), Some(&saved_critical("Old name", now.wall.as_unix_ms() - 1_000)), now);
        assert_eq!((out.len(), out[0].name.as_str(), out[0].level), (1, "Old name", crate::alert::Level::Ok));
    }

    /// A reload that keeps the alert's name keeps the CRITICAL; a new name clears the old one.
    /// A CRITICAL still waiting for its after-lines leaves first, as it stands.
    #[test]
    fn reconfiguring_keeps_or_clears_and_never_drops_a_waiting_critical() {
        let now = Now::at(0);
        let (mut c, _) = start(config("ERROR", Some(60), None), None, now);
        let mut out = Vec::new();
        feed(&mut c, now, b"ERROR one\n", 1, &mut out);
        assert!(out.is_empty() && c.detector.view().collecting_context, "waits for its after-lines");
        c.reconfigure(config("ERROR", Some(120), None), now, &mut out).unwrap();
        assert_eq!(out.len(), 1, "the waiting CRITICAL left as it stood");
        assert_eq!(out[0].level, crate::alert::Level::Critical);
        assert!(!c.detector.view().collecting_context);
        assert!(c.snapshot().critical.is_some(), "same name: still CRITICAL");
        out.clear();
        c.reconfigure(config("ERROR", Some(120), Some("Renamed")), now, &mut out).unwrap();
        assert_eq!((out.len(), out[0].name.as_str(), out[0].level), (1, "Log file contains ERROR", crate::alert::Level::Ok));
        assert!(c.snapshot().critical.is_none());
    }

    /// The state saved while a CRITICAL waits for its after-lines carries it as it stands; a
    /// start from that state (after a crash) sends it first, and the check is CRITICAL.
    #[test]
    fn a_waiting_critical_is_saved_with_the_state_and_sent_after_a_crash() {
        let now = Now::at(0);
        let (mut c, _) = start(config("ERROR", Some(60), None), None, now);
        let mut out = Vec::new();
        feed(&mut c, now, b"before\nERROR one\nafter\n", 1, &mut out);
        assert!(out.is_empty());
        let saved = c.snapshot();
        let pending = saved.pending.clone().expect("saved with the state");
        assert_eq!(pending.subject.details.as_ref().and_then(|d| d.lines_after.as_ref()).map(Vec::len), Some(1));
        // Through the state file's JSON, as a restart reads it.
        let saved: CheckState = serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
        let (c, out) = start(config("ERROR", Some(60), None), Some(&saved), Now::at(1_000));
        assert_eq!(out, vec![pending]);
        assert!(c.snapshot().critical.is_some());
        assert!(c.snapshot().pending.is_none(), "sent: not saved again");
    }
}
