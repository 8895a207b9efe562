//! The `program` check's decisions, with no process and no clock: when a plugin runs, when its
//! time is up, what its exit status means (the monitoring-plugins convention: 0 OK, 1 WARNING,
//! 2 CRITICAL, 3 UNKNOWN) and which alerts that makes.
//!
//! Runs are due on a grid shared by all program checks: multiples of the interval on the
//! monotonic clock, so checks with the same interval (or multiples of one another) are served
//! by one wake-up. The first run is at once when the check starts. A run still going when its
//! next slot comes is not started twice: the slot is skipped and counted (`overruns`).
//!
//! Mender alerts know CRITICAL and OK, so by default WARNING and UNKNOWN raise a CRITICAL; the
//! plugin's own state is always the subject's `status` (`OK`, `WARNING`, `CRITICAL`,
//! `UNKNOWN`). A check may map WARNING and UNKNOWN to CRITICAL, WARNING or OK (no alert).

use crate::alert::{Alert, Details, Level, Subject};
use crate::time::{Instant, Now, rfc3339};

/// The subject type of program alerts.
pub const SUBJECT_TYPE: &str = "program";
/// Longest description taken from a plugin's output (bytes, cut at a character boundary).
pub const DESCRIPTION_MAX: usize = 1024;

/// A plugin's state, as its exit status says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginState {
    /// Exit 0.
    Ok,
    /// Exit 1.
    Warning,
    /// Exit 2.
    Critical,
    /// Exit 3, any other status, a signal, a timeout, or a plugin that cannot run.
    Unknown,
}

impl PluginState {
    /// The name plugins print, used as the subject's status.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Ok => "OK",
            PluginState::Warning => "WARNING",
            PluginState::Critical => "CRITICAL",
            PluginState::Unknown => "UNKNOWN",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// The shell exited with this status.
    Exited(i32),
    /// The shell was killed by this signal (not by us).
    Signaled(String),
    /// Killed by us at the timeout.
    TimedOut,
    /// The shell could not be started.
    CannotStart(String),
}

/// What one run came to: its end and the first lines of its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    /// How it ended.
    pub end: RunEnd,
    /// The first line of stdout, if any.
    pub stdout: Option<String>,
    /// The first line of stderr, if any.
    pub stderr: Option<String>,
}

/// A program check's settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramSettings {
    /// The check's name: the subject's name and part of the alert's name.
    pub check: String,
    /// Time between runs (ms, at least 1000).
    pub interval_ms: u64,
    /// Time a run may take before its process group is killed (ms).
    pub timeout_ms: u64,
    /// What WARNING (exit 1) raises.
    pub warning_level: Level,
    /// What UNKNOWN (exit 3 and the rest) raises.
    pub unknown_level: Level,
}

/// What a run means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The plugin's state.
    pub state: PluginState,
    /// The alert level it maps to (OK: none).
    pub level: Level,
    /// One line for the alert.
    pub description: String,
}

/// The plugin's first line of output without its performance data (after `|`), trimmed and cut
/// to [`DESCRIPTION_MAX`]; `None` if nothing is left.
fn first_line(text: Option<&str>) -> Option<String> {
    let t = text?.split('|').next().unwrap_or_default().trim();
    if t.is_empty() {
        return None;
    }
    let mut end = t.len().min(DESCRIPTION_MAX);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    Some(t[..end].to_string())
}

/// The meaning of a run's result under `s`.
pub fn verdict(s: &ProgramSettings, r: &RunResult) -> Verdict {
    let out = first_line(r.stdout.as_deref());
    let err = first_line(r.stderr.as_deref());
    let said = |fallback: String| out.clone().or(err.clone()).unwrap_or(fallback);
    let (state, description) = match &r.end {
        RunEnd::Exited(0) => (PluginState::Ok, said("exited with status 0 (OK)".into())),
        RunEnd::Exited(1) => (PluginState::Warning, said("exited with status 1 (WARNING)".into())),
        RunEnd::Exited(2) => (PluginState::Critical, said("exited with status 2 (CRITICAL)".into())),
        RunEnd::Exited(3) => (PluginState::Unknown, said("exited with status 3 (UNKNOWN)".into())),
        RunEnd::Exited(c @ (126 | 127)) => {
            let why = if *c == 127 { "not found" } else { "not executable" };
            let tail = err.clone().or(out.clone()).map(|e| format!(": {e}")).unwrap_or_default();
            (PluginState::Unknown, format!("cannot run the plugin: {why} (exit status {c}){tail}"))
        }
        RunEnd::Exited(c) => {
            let tail = out.clone().or(err.clone()).map(|e| format!(": {e}")).unwrap_or_default();
            (PluginState::Unknown, format!("exited with status {c} (not a plugin status){tail}"))
        }
        RunEnd::Signaled(sig) => {
            let tail = out.clone().or(err.clone()).map(|e| format!(": {e}")).unwrap_or_default();
            (PluginState::Unknown, format!("killed by {sig}{tail}"))
        }
        RunEnd::TimedOut => {
            let tail = out.clone().map(|e| format!(" (it said: {e})")).unwrap_or_default();
            (PluginState::Unknown, format!("timed out after {} s; its process group was killed{tail}", s.timeout_ms / 1000))
        }
        RunEnd::CannotStart(e) => (PluginState::Unknown, format!("cannot start /bin/sh: {e}")),
    };
    let level = match state {
        PluginState::Ok => Level::Ok,
        PluginState::Warning => s.warning_level,
        PluginState::Critical => Level::Critical,
        PluginState::Unknown => s.unknown_level,
    };
    Verdict { state, level, description }
}

/// The first slot of the grid of `interval_ms` strictly after `t`.
pub fn next_slot(t: Instant, interval_ms: u64) -> Instant {
    let i = interval_ms.max(1);
    Instant::from_millis((t.as_millis() / i).saturating_add(1).saturating_mul(i))
}

/// What is due at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    /// Start a run now.
    pub start: bool,
    /// Kill the running group: its time is up.
    pub kill: bool,
    /// A slot came while the previous run still goes: skipped.
    pub overrun: bool,
}

/// When runs start and end: the timer of one program check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    interval_ms: u64,
    timeout_ms: u64,
    next_start: Instant,
    /// The running run's kill time, and whether it was killed.
    running: Option<(Instant, bool)>,
}

impl Schedule {
    /// A schedule whose first run is at `now`.
    pub fn new(interval_ms: u64, timeout_ms: u64, now: Instant) -> Self {
        Schedule { interval_ms, timeout_ms, next_start: now, running: None }
    }

    /// When [`on_tick`](Self::on_tick) has something to do.
    pub fn next_deadline(&self) -> Instant {
        match self.running {
            Some((kill_at, false)) => kill_at.min(self.next_start),
            _ => self.next_start,
        }
    }

    /// What is due at `now`; a start is recorded as begun at `now`.
    pub fn on_tick(&mut self, now: Instant) -> Due {
        let mut due = Due::default();
        if let Some((kill_at, killed)) = self.running.as_mut() {
            if !*killed && *kill_at <= now {
                *killed = true;
                due.kill = true;
            }
            if self.next_start <= now {
                due.overrun = true;
                self.next_start = next_slot(now, self.interval_ms);
            }
        } else if self.next_start <= now {
            due.start = true;
            self.running = Some((now.plus_ms(self.timeout_ms), false));
            self.next_start = next_slot(now, self.interval_ms);
        }
        due
    }

    /// The run ended; returns whether it was killed at its timeout.
    pub fn on_end(&mut self) -> bool {
        self.running.take().is_some_and(|(_, killed)| killed)
    }

    /// Whether a run is going.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// When the next run starts.
    pub fn next_start(&self) -> Instant {
        self.next_start
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// No alert raised.
    Clear,
    /// An alert at this level for this state is open.
    Raised(Level, PluginState),
    /// An alert was open when the agent stopped; its level is not known.
    Restored,
}

/// Counters of one program check.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProgramCounters {
    /// Runs that ended.
    pub runs: u64,
    /// Runs killed at their timeout.
    pub timeouts: u64,
    /// Slots skipped because the previous run still went.
    pub overruns: u64,
    /// Alerts raised or cleared.
    pub alerts: u64,
}

/// A program check's alert state: one alert open until its OK; a new alert (same name) when
/// the level or the plugin's state changes, none when only the text changes.
#[derive(Debug, Clone)]
pub struct ProgramDetector {
    settings: ProgramSettings,
    open: Open,
    last: Option<Verdict>,
    counters: ProgramCounters,
}

impl ProgramDetector {
    /// A detector with nothing open.
    pub fn new(settings: ProgramSettings) -> Self {
        ProgramDetector { settings, open: Open::Clear, last: None, counters: ProgramCounters::default() }
    }

    /// The alert name, the same for every level and for the OK.
    pub fn alert_name(&self) -> String {
        alert_name(&self.settings.check)
    }

    /// The settings.
    pub fn settings(&self) -> &ProgramSettings {
        &self.settings
    }

    /// An alert was open when the agent stopped: the first run sends its state, OK included.
    pub fn restore(&mut self) {
        self.open = Open::Restored;
    }

    /// Whether an alert is open.
    pub fn is_open(&self) -> bool {
        self.open != Open::Clear
    }

    /// The last run's verdict.
    pub fn last(&self) -> Option<&Verdict> {
        self.last.as_ref()
    }

    /// Counters so far.
    pub fn counters(&self) -> ProgramCounters {
        self.counters
    }

    /// Counts a skipped slot.
    pub fn on_overrun(&mut self) {
        self.counters.overruns += 1;
    }

    /// A run ended with `r`.
    pub fn on_result(&mut self, now: Now, r: &RunResult, emit: &mut impl FnMut(Alert)) {
        self.counters.runs += 1;
        if r.end == RunEnd::TimedOut {
            self.counters.timeouts += 1;
        }
        let v = verdict(&self.settings, r);
        match (v.level, self.open) {
            (Level::Ok, Open::Clear) => {}
            (Level::Ok, _) => {
                self.open = Open::Clear;
                self.emit(now, Level::Ok, v.state, v.description.clone(), emit);
            }
            (level, Open::Raised(l, s)) if l == level && s == v.state => {}
            (level, _) => {
                self.open = Open::Raised(level, v.state);
                self.emit(now, level, v.state, v.description.clone(), emit);
            }
        }
        self.last = Some(v);
    }

    /// Clears an open alert with an OK saying `why` (the check went away or changed).
    pub fn clear(&mut self, now: Now, why: &str, emit: &mut impl FnMut(Alert)) {
        if self.open != Open::Clear {
            self.open = Open::Clear;
            self.emit(now, Level::Ok, PluginState::Ok, why.to_string(), emit);
        }
    }

    /// Takes over another detector's open alert (a reconfigured check with the same name).
    pub fn adopt(&mut self, other: &ProgramDetector) {
        self.open = other.open;
        self.last = other.last.clone();
        self.counters = other.counters;
    }

    fn emit(&mut self, now: Now, level: Level, state: PluginState, description: String, emit: &mut impl FnMut(Alert)) {
        self.counters.alerts += 1;
        emit(Alert {
            name: self.alert_name(),
            level,
            timestamp: rfc3339(now.wall),
            subject: Subject {
                name: self.settings.check.clone(),
                kind: SUBJECT_TYPE.into(),
                status: state.as_str().into(),
                details: Some(Details { description, lines_before: None, line_matching: None, lines_after: None }),
            },
        });
    }
}

/// `Program <check> not OK`: the alert name of a program check.
pub fn alert_name(check: &str) -> String {
    format!("Program {check} not OK")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ProgramSettings {
        ProgramSettings {
            check: "disk".into(),
            interval_ms: 60_000,
            timeout_ms: 10_000,
            warning_level: Level::Critical,
            unknown_level: Level::Critical,
        }
    }

    fn exited(code: i32, out: &str) -> RunResult {
        RunResult { end: RunEnd::Exited(code), stdout: Some(out.into()), stderr: None }
    }

    fn run(d: &mut ProgramDetector, at: u64, r: RunResult) -> Vec<(Level, String, String)> {
        let mut out = Vec::new();
        d.on_result(Now::at(at), &r, &mut |a| out.push(a));
        out.into_iter()
            .map(|a| {
                assert_eq!(a.name, "Program disk not OK");
                assert_eq!(a.subject.name, "disk");
                assert_eq!(a.subject.kind, "program");
                (a.level, a.subject.status, a.subject.details.map(|d| d.description).unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn exit_statuses_map_the_plugin_way() {
        let s = settings();
        let v = |r: RunResult| {
            let v = verdict(&s, &r);
            (v.state, v.level, v.description)
        };
        assert_eq!(
            v(exited(0, "DISK OK - free space: / 5000 MB (50%) | /=5000MB")),
            (PluginState::Ok, Level::Ok, "DISK OK - free space: / 5000 MB (50%)".into())
        );
        assert_eq!(v(exited(1, "LOAD WARNING")), (PluginState::Warning, Level::Critical, "LOAD WARNING".into()));
        assert_eq!(v(exited(2, "")), (PluginState::Critical, Level::Critical, "exited with status 2 (CRITICAL)".into()));
        assert_eq!(v(exited(3, "UNKNOWN - bad args")).0, PluginState::Unknown);
        assert_eq!(v(exited(42, "x")), (PluginState::Unknown, Level::Critical, "exited with status 42 (not a plugin status): x".into()));
        let missing = RunResult { end: RunEnd::Exited(127), stdout: None, stderr: Some("sh: 1: /nope: not found".into()) };
        assert_eq!(v(missing).2, "cannot run the plugin: not found (exit status 127): sh: 1: /nope: not found");
        assert_eq!(
            v(RunResult { end: RunEnd::TimedOut, stdout: None, stderr: None }).2,
            "timed out after 10 s; its process group was killed"
        );
        assert_eq!(v(RunResult { end: RunEnd::Signaled("SIGSEGV".into()), stdout: None, stderr: None }).2, "killed by SIGSEGV");
        let long = "é".repeat(1000);
        assert!(v(exited(2, &long)).2.len() <= DESCRIPTION_MAX);
    }

    #[test]
    fn warning_and_unknown_levels_are_settable() {
        let s = ProgramSettings { warning_level: Level::Warning, unknown_level: Level::Ok, ..settings() };
        assert_eq!(verdict(&s, &exited(1, "w")).level, Level::Warning);
        assert_eq!(verdict(&s, &exited(3, "u")).level, Level::Ok);
        assert_eq!(verdict(&s, &RunResult { end: RunEnd::TimedOut, stdout: None, stderr: None }).level, Level::Ok);
        assert_eq!(verdict(&s, &exited(2, "c")).level, Level::Critical);
    }

    #[test]
    fn one_alert_until_ok_and_a_new_one_when_the_state_changes() {
        let mut d = ProgramDetector::new(settings());
        assert_eq!(run(&mut d, 0, exited(0, "fine")), vec![]);
        assert_eq!(run(&mut d, 60_000, exited(1, "WARN 91%")), vec![(Level::Critical, "WARNING".into(), "WARN 91%".into())]);
        // Only the text changed: nothing.
        assert_eq!(run(&mut d, 120_000, exited(1, "WARN 92%")), vec![]);
        assert_eq!(run(&mut d, 180_000, exited(2, "CRIT 99%")), vec![(Level::Critical, "CRITICAL".into(), "CRIT 99%".into())]);
        assert_eq!(run(&mut d, 240_000, exited(0, "OK 50%")), vec![(Level::Ok, "OK".into(), "OK 50%".into())]);
        assert_eq!(run(&mut d, 300_000, exited(0, "OK 50%")), vec![]);
        assert_eq!(d.counters().alerts, 3);
        assert_eq!(d.counters().runs, 6);
    }

    #[test]
    fn a_restored_alert_is_settled_by_the_first_run() {
        let mut d = ProgramDetector::new(settings());
        d.restore();
        assert_eq!(run(&mut d, 0, exited(0, "fine")).len(), 1);
        let mut d = ProgramDetector::new(settings());
        d.restore();
        assert_eq!(run(&mut d, 0, exited(2, "bad")), vec![(Level::Critical, "CRITICAL".into(), "bad".into())]);
        assert_eq!(run(&mut d, 60_000, exited(2, "bad")), vec![]);
    }

    #[test]
    fn clearing_sends_an_ok_only_when_open() {
        let mut d = ProgramDetector::new(settings());
        let mut out = Vec::new();
        d.clear(Now::at(0), "check disabled", &mut |a| out.push(a));
        assert!(out.is_empty());
        run(&mut d, 0, exited(2, "bad"));
        d.clear(Now::at(5), "check disabled", &mut |a| out.push(a));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].level, out[0].name.as_str()), (Level::Ok, "Program disk not OK"));
        assert_eq!(out[0].subject.details.as_ref().unwrap().description, "check disabled");
    }

    #[test]
    fn slots_are_shared_multiples_of_the_interval() {
        assert_eq!(next_slot(Instant::from_millis(0), 60_000), Instant::from_millis(60_000));
        assert_eq!(next_slot(Instant::from_millis(59_999), 60_000), Instant::from_millis(60_000));
        assert_eq!(next_slot(Instant::from_millis(60_000), 60_000), Instant::from_millis(120_000));
        // Two checks started at different times meet on the same slots.
        let mut a = Schedule::new(30_000, 5_000, Instant::from_millis(1_000));
        let mut b = Schedule::new(30_000, 5_000, Instant::from_millis(17_000));
        a.on_tick(Instant::from_millis(1_000));
        a.on_end();
        b.on_tick(Instant::from_millis(17_000));
        b.on_end();
        assert_eq!(a.next_deadline(), Instant::from_millis(30_000));
        assert_eq!(b.next_deadline(), Instant::from_millis(30_000));
    }

    #[test]
    fn dialogue_start_timeout_overrun() {
        let t = Instant::from_millis;
        let mut s = Schedule::new(10_000, 25_000, t(100_000));
        assert_eq!(s.next_deadline(), t(100_000));
        assert_eq!(s.on_tick(t(99_999)), Due::default());
        assert_eq!(s.on_tick(t(100_000)), Due { start: true, ..Due::default() });
        // Next slot at 110 s, kill at 125 s.
        assert_eq!(s.next_deadline(), t(110_000));
        assert_eq!(s.on_tick(t(110_000)), Due { overrun: true, ..Due::default() });
        assert_eq!(s.on_tick(t(120_000)), Due { overrun: true, ..Due::default() });
        assert_eq!(s.next_deadline(), t(125_000));
        assert_eq!(s.on_tick(t(125_000)), Due { kill: true, ..Due::default() });
        // Killed once: the kill is not due again while the group dies.
        assert_eq!(s.next_deadline(), t(130_000));
        assert!(s.on_end());
        assert!(!s.is_running());
        assert_eq!(s.on_tick(t(130_000)), Due { start: true, ..Due::default() });
        assert!(!s.on_end());
    }

    #[test]
    fn a_slot_missed_while_busy_is_not_made_up() {
        let t = Instant::from_millis;
        let mut s = Schedule::new(10_000, 5_000, t(0));
        s.on_tick(t(0));
        // The run ends late (the agent was stopped), after two slots.
        assert!(!s.on_end());
        assert_eq!(s.next_deadline(), t(10_000));
        assert_eq!(s.on_tick(t(25_000)), Due { start: true, ..Due::default() });
        assert_eq!(s.next_start(), t(30_000));
    }
}
