//! A program check: a plugin run on the reactor's timers (no thread of its own), its exit status
//! read the monitoring-plugins way by [`crate::detect::program`], which decides everything; this
//! module starts and kills runs, reads their output and hands results on.

use std::collections::BTreeMap;

use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::Io;
use crate::alert::{Alert, Level};
use crate::config::check::{CheckId, ProgramCheckDef};
use crate::control::status::{CheckStatus, SourceStatus};
use crate::detect::program::{ProgramDetector, ProgramSettings, RunEnd, RunResult, Schedule};
use crate::sources::command::Stopping;
use crate::sources::program::{OutputCounters, ProgramRun, StartError};
use crate::sources::tail::Progress;
use crate::sources::watch::Listener;
use crate::state::CheckState;
use crate::time::{Instant, Now};

/// Longest default timeout: a check every 10 minutes still gets killed after a minute.
pub const DEFAULT_TIMEOUT_MAX_S: u64 = 60;

/// A program check, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramCheckConfig {
    /// `PROGRAM_COMMAND`.
    pub command: String,
    /// What the detector and the schedule need.
    pub settings: ProgramSettings,
}

impl ProgramCheckConfig {
    /// Resolves a check file's definition: the timeout defaults to the interval, at most
    /// [`DEFAULT_TIMEOUT_MAX_S`]; WARNING and UNKNOWN default to CRITICAL.
    pub fn resolve(id: &CheckId, def: &ProgramCheckDef) -> ProgramCheckConfig {
        let timeout_s = def.timeout_s.unwrap_or(def.interval_s.min(DEFAULT_TIMEOUT_MAX_S));
        ProgramCheckConfig {
            command: def.command.clone(),
            settings: ProgramSettings {
                check: id.name.clone(),
                interval_ms: def.interval_s.saturating_mul(1000),
                timeout_ms: timeout_s.saturating_mul(1000),
                warning_level: def.warning_level.unwrap_or(Level::Critical),
                unknown_level: def.unknown_level.unwrap_or(Level::Critical),
            },
        }
    }

    fn source(&self) -> String {
        format!("program:{}", self.command)
    }
}

/// A program check.
#[derive(Debug)]
pub struct ProgramCheck {
    id: CheckId,
    key: u64,
    config: ProgramCheckConfig,
    schedule: Schedule,
    detector: ProgramDetector,
    run: Option<ProgramRun>,
    starts: u64,
    output: OutputCounters,
}

impl ProgramCheck {
    /// A check whose first run is due at once; an alert left open by the previous run of the
    /// agent is settled by the first result.
    pub fn start(id: CheckId, key: u64, config: ProgramCheckConfig, saved: Option<&CheckState>, now: Now) -> Self {
        let mut detector = ProgramDetector::new(config.settings.clone());
        if saved.and_then(|s| s.critical.as_ref()).is_some_and(|c| c.alert_name == detector.alert_name()) {
            detector.restore();
        }
        let schedule = Schedule::new(config.settings.interval_ms, config.settings.timeout_ms, now.mono);
        ProgramCheck { id, key, config, schedule, detector, run: None, starts: 0, output: OutputCounters::default() }
    }

    fn what(&self) -> String {
        format!("check {}", self.id)
    }

    /// Reads the running plugin's output.
    pub fn on_ready(&mut self, io: &mut Io, budget: &mut usize) -> Progress {
        match self.run.as_mut() {
            Some(r) => r.on_ready(&mut io.check_fds, &mut io.scratch, budget),
            None => Progress::Done,
        }
    }

    /// Starts a run, kills one whose time is up, or counts a slot skipped, as the schedule says.
    pub fn on_tick(&mut self, now: Now, io: &mut Io, out: &mut Vec<Alert>) {
        let due = self.schedule.on_tick(now.mono);
        if due.overrun {
            self.detector.on_overrun();
            crate::warn!(
                "{}: the plugin started at the previous slot still runs; not starting it twice (skipped {} times so far)",
                self.what(),
                self.detector.counters().overruns
            );
        }
        if due.kill {
            if let Some(r) = &self.run {
                crate::warn!(
                    "{}: the plugin runs longer than {} s; killing its process group",
                    self.what(),
                    self.config.settings.timeout_ms / 1000
                );
                r.kill();
            }
        }
        if due.start {
            self.starts += 1;
            match ProgramRun::start(&self.config.command, &mut io.check_fds, Listener::Check(self.key)) {
                Ok(r) => {
                    crate::debug!("{}: started `{}` (pid {})", self.what(), self.config.command, r.pid());
                    self.run = Some(r);
                }
                Err(StartError::NotStarted(e)) => {
                    crate::error!("{}: cannot start `/bin/sh -c {}`: {e}", self.what(), self.config.command);
                    self.schedule.on_end();
                    let result = RunResult { end: RunEnd::CannotStart(e), stdout: None, stderr: None };
                    self.detector.on_result(now, &result, &mut |a| out.push(a));
                }
            }
        }
    }

    /// When [`on_tick`](Self::on_tick) must run.
    pub fn next_deadline(&self) -> Option<Instant> {
        Some(self.schedule.next_deadline())
    }

    /// The running plugin's shell.
    pub fn child(&self) -> Option<Pid> {
        self.run.as_ref().map(ProgramRun::pid)
    }

    /// The plugin's shell was reaped: the run's result goes to the detector.
    pub fn on_child_exit(&mut self, now: Now, status: &WaitStatus, io: &mut Io, out: &mut Vec<Alert>) -> Option<Stopping> {
        let run = self.run.take()?;
        let what = self.what();
        let (output, stopping) = run.finish(now.mono, &what, &mut io.check_fds, &mut io.scratch);
        self.output.bytes += output.counters.bytes;
        self.output.bytes_dropped += output.counters.bytes_dropped;
        self.output.long_lines += output.counters.long_lines;
        let killed = self.schedule.on_end();
        let end = match status {
            _ if killed => RunEnd::TimedOut,
            WaitStatus::Exited(_, code) => RunEnd::Exited(*code),
            WaitStatus::Signaled(_, sig, _) => RunEnd::Signaled(sig.as_str().to_string()),
            other => RunEnd::Signaled(format!("{other:?}")),
        };
        crate::debug!("{}: the plugin ended: {end:?}", self.what());
        let result = RunResult { end, stdout: output.stdout, stderr: output.stderr };
        self.detector.on_result(now, &result, &mut |a| out.push(a));
        stopping
    }

    /// Applies a changed config with the same command: the open alert (same name) is kept, the
    /// run going goes on, the schedule takes the new interval and timeout from its next slot.
    pub fn reconfigure(&mut self, config: ProgramCheckConfig, now: Now) {
        let mut detector = ProgramDetector::new(config.settings.clone());
        detector.adopt(&self.detector);
        self.detector = detector;
        let mut schedule = Schedule::new(config.settings.interval_ms, config.settings.timeout_ms, now.mono);
        if self.schedule.is_running() {
            // The new schedule starts with the run going (its kill time counted from now).
            schedule.on_tick(now.mono);
        }
        self.schedule = schedule;
        self.config = config;
    }

    /// Stops a run going (SIGTERM to its group, then the reaper) and clears an open alert if
    /// the check goes away (`clear`).
    pub fn stop(&mut self, now: Now, io: &mut Io, clear: Option<&str>, out: &mut Vec<Alert>) -> (CheckState, Option<Stopping>) {
        let what = self.what();
        let stopping = self.run.take().map(|r| r.stop(now.mono, &what, &mut io.check_fds));
        if let Some(why) = clear {
            self.detector.clear(now, why, &mut |a| out.push(a));
        }
        (self.snapshot(now), stopping)
    }

    /// What to save for a restart: whether an alert is open.
    pub fn snapshot(&self, now: Now) -> CheckState {
        CheckState::alert_only(self.config.source(), self.detector.is_open().then(|| self.detector.alert_name()), now.wall)
    }

    /// The check as `status` shows it.
    pub fn status(&self) -> CheckStatus {
        let c = self.detector.counters();
        let counters: BTreeMap<String, u64> = crate::control::status::counters(&[
            ("starts", self.starts),
            ("runs", c.runs),
            ("timeouts", c.timeouts),
            ("overruns", c.overruns),
            ("alerts", c.alerts),
            ("output_bytes", self.output.bytes),
            ("output_bytes_dropped", self.output.bytes_dropped),
            ("long_lines_cut", self.output.long_lines),
        ]);
        let last = self.detector.last();
        let level = match last {
            Some(v) if self.detector.is_open() => v.level.as_str().to_string(),
            Some(_) => "OK".into(),
            None if self.detector.is_open() => "CRITICAL".into(),
            None => "-".into(),
        };
        CheckStatus {
            subsystem: self.id.subsystem.clone(),
            name: self.id.name.clone(),
            state: "running".into(),
            source: Some(SourceStatus::Program {
                command: self.config.command.clone(),
                interval_s: self.config.settings.interval_ms / 1000,
                pid: self.child().map(|p| p.as_raw()),
                last: last.map(|v| format!("{}: {}", v.state.as_str(), v.description)),
            }),
            level: Some(level),
            alert: Some(self.detector.alert_name()),
            last_match: None,
            expires: None,
            counters,
        }
    }

    /// One-line summary of the counters, for the log.
    pub fn summary(&self) -> String {
        let c = self.detector.counters();
        format!(
            "runs {} timeouts {} overruns {} alerts {} output bytes {} (dropped {})",
            c.runs, c.timeouts, c.overruns, c.alerts, self.output.bytes, self.output.bytes_dropped
        )
    }
}
