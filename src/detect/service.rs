//! The service check as a pure state machine: fed the states a unit goes through (with
//! systemd's restart counter) and an injected clock, it raises `Service <name> not running` when
//! the service stops and clears it when it runs again, and, when it changes state too often,
//! one `Service <name> going up and down` instead of a stream of per-change alerts.
//!
//! Flapping: a flap is a change between running and not running. When the flaps within the last
//! `FLAPPING_INTERVAL` reach `FLAPPING_COUNT_THRESHOLD`, the flapping CRITICAL goes out and
//! per-change alerts stop; when the count falls below the threshold (on a state change, or at
//! the moment the oldest flap leaves the window), the flapping OK goes out, then the settled
//! state under the normal name, so the server never keeps a stale state. Restarts that happen
//! between two observations (faster than a signal batch) are counted from `NRestarts`.

use super::flapping::{FlapWindow, RING};
use crate::alert::{Alert, Details, Level, Subject};
use crate::time::{Instant, Now, rfc3339};

/// What a service check needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    /// `SERVICE_NAME`, as in the alert names.
    pub service_name: String,
    /// Level of the raised alerts.
    pub level: Level,
    /// `FLAPPING_INTERVAL` in ms.
    pub flap_interval_ms: u64,
    /// `FLAPPING_COUNT_THRESHOLD` (0 turns flapping detection off).
    pub flap_threshold: usize,
    /// `ALERT_LOG_MAX_AGE` in ms.
    pub history_max_age_ms: u64,
}

/// One observation of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Whether it runs (systemd: ActiveState active or reloading).
    pub running: bool,
    /// For the alert details: e.g. `crasher.service is failed (failed)`.
    pub detail: String,
    /// systemd's `NRestarts`, when known (it counts a restart when the service is started again).
    pub restarts: Option<u64>,
}

/// Counters of one service detector.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServiceCounters {
    /// Observations that changed the running state.
    pub changes: u64,
    /// Flaps counted only from NRestarts (changes no signal showed).
    pub restarts_unseen: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Per-change alerts not sent while flapping.
    pub suppressed: u64,
}

/// One service check's state.
#[derive(Debug)]
pub struct ServiceDetector {
    settings: ServiceSettings,
    /// The last observed state.
    running: Option<bool>,
    detail: String,
    restarts: Option<u64>,
    /// Downs observed since `restarts` last changed.
    downs_since_restart: u64,
    /// A CRITICAL "not running" is outstanding.
    not_running_open: bool,
    /// A CRITICAL "going up and down" is outstanding.
    flapping: bool,
    flaps: FlapWindow,
    counters: ServiceCounters,
}

impl ServiceDetector {
    /// A detector that has seen nothing yet.
    pub fn new(settings: ServiceSettings) -> Self {
        let flaps = FlapWindow::new(settings.flap_interval_ms, settings.history_max_age_ms);
        ServiceDetector {
            settings,
            running: None,
            detail: String::new(),
            restarts: None,
            downs_since_restart: 0,
            not_running_open: false,
            flapping: false,
            flaps,
            counters: ServiceCounters::default(),
        }
    }

    /// The name of the per-change alert.
    pub fn not_running_name(&self) -> String {
        format!("Service {} not running", self.settings.service_name)
    }

    /// The name of the flapping alert.
    pub fn flapping_name(&self) -> String {
        format!("Service {} going up and down", self.settings.service_name)
    }

    /// Counters so far.
    pub fn counters(&self) -> ServiceCounters {
        self.counters
    }

    /// `(not running is open, flapping is open)`, to carry across a restart of the agent.
    pub fn open_alerts(&self) -> (bool, bool) {
        (self.not_running_open, self.flapping)
    }

    /// The last observed state, and whether it is flapping, for `status`.
    pub fn view(&self) -> (Option<bool>, &str, bool) {
        (self.running, &self.detail, self.flapping)
    }

    /// Resumes the alerts that were open when the agent stopped.
    pub fn restore(&mut self, not_running_open: bool, flapping: bool) {
        self.not_running_open = not_running_open;
        self.flapping = flapping;
    }

    fn threshold(&self) -> usize {
        self.settings.flap_threshold.min(RING)
    }

    /// A new observation.
    pub fn on_state(&mut self, now: Now, obs: Observation, emit: &mut impl FnMut(Alert)) {
        let prev = self.running;
        let changed = prev.is_some_and(|p| p != obs.running);
        if changed && !obs.running {
            self.downs_since_restart += 1;
        }
        // systemd counts a restart when it starts the service again, after the down that caused
        // it was observed. Restarts without an observed down went by faster than the signals
        // (down and up in one batch): each is two flaps nobody saw.
        let mut unseen = 0;
        if let (Some(old), Some(new)) = (self.restarts, obs.restarts) {
            if new > old {
                unseen = 2 * (new - old).saturating_sub(self.downs_since_restart);
                self.downs_since_restart = 0;
            }
        }
        if obs.restarts.is_some() {
            self.restarts = obs.restarts;
        }
        self.running = Some(obs.running);
        self.detail = obs.detail;
        let flaps = u64::from(changed) + unseen;
        if changed {
            self.counters.changes += 1;
        }
        self.counters.restarts_unseen += unseen;
        if flaps > 0 {
            self.flaps.record(now.mono, flaps);
        }
        let threshold = self.threshold();
        if threshold > 0 && !self.flapping && self.flaps.count(now.mono) >= threshold {
            self.flapping = true;
            let n = self.flaps.count(now.mono);
            let description = format!(
                "{} changed between running and not running {n} times in the last {} s",
                self.settings.service_name,
                self.settings.flap_interval_ms / 1000
            );
            self.emit(now, self.flapping_name(), self.settings.level, "flapping", description, emit);
            return;
        }
        if self.flapping {
            if self.flaps.count(now.mono) < threshold {
                self.end_flapping(now, emit);
            } else if prev.is_some() {
                self.counters.suppressed += u64::from(changed);
            }
            return;
        }
        match (prev, obs.running) {
            // First sight: only a bad state is news (or an OK owed from before a restart).
            (None, false) | (Some(true), false) => self.raise_not_running(now, emit),
            (None, true) | (Some(false), true) => self.clear_not_running(now, emit),
            _ => {}
        }
    }

    /// Ends flapping when its time has come.
    pub fn on_tick(&mut self, now: Now, emit: &mut impl FnMut(Alert)) {
        if self.flapping && self.flaps.count(now.mono) < self.threshold() {
            self.end_flapping(now, emit);
        }
    }

    /// When [`on_tick`](Self::on_tick) has something to do.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        if !self.flapping {
            return None;
        }
        // Flapping with an empty window (restored from before a restart) ends at once.
        Some(self.flaps.falls_below_at(self.threshold(), now).unwrap_or(now))
    }

    /// Clears what is open because the check goes away (disabled, deleted, changed).
    pub fn clear(&mut self, now: Now, why: &str, emit: &mut impl FnMut(Alert)) {
        if self.flapping {
            self.flapping = false;
            let d = format!("{} ({why})", self.settings.service_name);
            self.emit(now, self.flapping_name(), Level::Ok, "flapping", d, emit);
        }
        if self.not_running_open {
            self.not_running_open = false;
            let d = format!("{} ({why})", self.settings.service_name);
            self.emit(now, self.not_running_name(), Level::Ok, "running", d, emit);
        }
    }

    fn end_flapping(&mut self, now: Now, emit: &mut impl FnMut(Alert)) {
        self.flapping = false;
        let description = format!("{} has stopped going up and down", self.settings.service_name);
        self.emit(now, self.flapping_name(), Level::Ok, "running", description, emit);
        // The settled state, under the normal name, whatever the server saw before.
        match self.running {
            Some(false) => {
                self.not_running_open = false;
                self.raise_not_running(now, emit);
            }
            _ => {
                self.not_running_open = true;
                self.clear_not_running(now, emit);
            }
        }
    }

    fn raise_not_running(&mut self, now: Now, emit: &mut impl FnMut(Alert)) {
        if self.not_running_open {
            return;
        }
        self.not_running_open = true;
        let d = self.detail.clone();
        self.emit(now, self.not_running_name(), self.settings.level, "not-running", d, emit);
    }

    fn clear_not_running(&mut self, now: Now, emit: &mut impl FnMut(Alert)) {
        if !self.not_running_open {
            return;
        }
        self.not_running_open = false;
        let d = format!("The main process is present again ({})", self.detail);
        self.emit(now, self.not_running_name(), Level::Ok, "running", d, emit);
    }

    fn emit(&mut self, now: Now, name: String, level: Level, status: &str, description: String, emit: &mut impl FnMut(Alert)) {
        self.counters.alerts += 1;
        emit(Alert {
            name,
            level,
            timestamp: rfc3339(now.wall),
            subject: Subject {
                name: self.settings.service_name.clone(),
                kind: "service".into(),
                status: status.into(),
                details: Some(Details { description, lines_before: None, line_matching: None, lines_after: None }),
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(threshold: usize) -> ServiceDetector {
        ServiceDetector::new(ServiceSettings {
            service_name: "crasher".into(),
            level: Level::Critical,
            flap_interval_ms: 150_000,
            flap_threshold: threshold,
            history_max_age_ms: 3_600_000,
        })
    }

    fn obs(running: bool, restarts: u64) -> Observation {
        let detail = if running { "crasher.service is active (running)" } else { "crasher.service is failed (failed)" };
        Observation { running, detail: detail.into(), restarts: Some(restarts) }
    }

    /// Feeds an observation at `s` seconds; returns `(level, name)` of the alerts.
    fn feed(d: &mut ServiceDetector, s: u64, o: Observation) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        d.on_state(Now::at(s * 1000), o, &mut |a| out.push(a));
        out.into_iter().map(|a| (a.level.as_str(), a.name)).collect()
    }

    fn tick(d: &mut ServiceDetector, s: u64) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        d.on_tick(Now::at(s * 1000), &mut |a| out.push(a));
        out.into_iter().map(|a| (a.level.as_str(), a.name)).collect()
    }

    const NR: &str = "Service crasher not running";
    const FL: &str = "Service crasher going up and down";

    #[test]
    fn stop_and_start() {
        let mut d = detector(3);
        assert!(feed(&mut d, 0, obs(true, 0)).is_empty(), "a good first state is not news");
        assert_eq!(feed(&mut d, 1, obs(true, 0)), vec![], "systemd repeats unchanged states");
        assert_eq!(feed(&mut d, 2, obs(false, 0)), vec![("CRITICAL", NR.into())]);
        assert_eq!(feed(&mut d, 3, obs(false, 0)), vec![]);
        assert_eq!(feed(&mut d, 4, obs(true, 0)), vec![("OK", NR.into())]);
    }

    #[test]
    fn a_bad_first_state_is_reported() {
        let mut d = detector(3);
        assert_eq!(feed(&mut d, 0, obs(false, 0)), vec![("CRITICAL", NR.into())]);
    }

    #[test]
    fn flapping_replaces_per_change_alerts_and_settles() {
        // The seed: FLAPPING_INTERVAL=150, FLAPPING_COUNT_THRESHOLD=3, a crash every ~55 s.
        let mut d = detector(3);
        feed(&mut d, 0, obs(true, 0));
        assert_eq!(feed(&mut d, 55, obs(false, 0)), vec![("CRITICAL", NR.into())]);
        assert_eq!(feed(&mut d, 65, obs(true, 1)), vec![("OK", NR.into())]);
        assert_eq!(feed(&mut d, 120, obs(false, 1)), vec![("CRITICAL", FL.into())], "third flap in 150 s");
        assert_eq!(feed(&mut d, 130, obs(true, 2)), vec![], "suppressed while flapping");
        assert_eq!(feed(&mut d, 185, obs(false, 2)), vec![]);
        assert_eq!(d.counters().suppressed, 2);
        assert_eq!(feed(&mut d, 195, obs(true, 3)), vec![]);
        // It stays up: the window empties; the flapping OK, then the settled state.
        let due = d.next_deadline(Instant::from_millis(195_000)).unwrap();
        // Flaps at 130, 185, 195 s are in the window at 195 s; below 3 when the one at 130 s leaves.
        assert_eq!(due, Instant::from_millis(280_000));
        assert!(tick(&mut d, 279).is_empty());
        assert_eq!(tick(&mut d, 280), vec![("OK", FL.into()), ("OK", NR.into())]);
        assert_eq!(d.next_deadline(Instant::from_millis(280_000)), None);
    }

    #[test]
    fn flapping_ends_down_with_a_critical() {
        let mut d = detector(2);
        feed(&mut d, 0, obs(true, 0));
        feed(&mut d, 1, obs(false, 0));
        assert_eq!(feed(&mut d, 2, obs(true, 1)), vec![("CRITICAL", FL.into())]);
        feed(&mut d, 3, obs(false, 1));
        // Down for good: when the window empties, the settled state is a CRITICAL.
        let due = d.next_deadline(Instant::from_millis(3_000)).unwrap();
        let s = due.as_millis() / 1000;
        assert_eq!(tick(&mut d, s), vec![("OK", FL.into()), ("CRITICAL", NR.into())]);
    }

    #[test]
    fn restarts_no_signal_showed_still_count() {
        let mut d = detector(3);
        feed(&mut d, 0, obs(true, 5));
        // Up, up: but NRestarts went from 5 to 7 in between: four flaps nobody saw.
        assert_eq!(feed(&mut d, 1, obs(true, 7)), vec![("CRITICAL", FL.into())]);
        assert_eq!(d.counters().restarts_unseen, 4);
    }

    /// systemd's order: the down, then NRestarts + 1 while the service waits to restart, then up.
    #[test]
    fn a_restart_seen_in_its_steps_is_two_flaps() {
        let mut d = detector(3);
        feed(&mut d, 0, obs(true, 0));
        feed(&mut d, 10, obs(false, 0));
        feed(&mut d, 11, obs(false, 1));
        feed(&mut d, 12, obs(true, 1));
        assert_eq!(d.counters().restarts_unseen, 0);
        assert_eq!(d.counters().changes, 2);
        assert!(!d.view().2, "two flaps: not flapping");
    }

    #[test]
    fn restored_and_cleared() {
        let mut d = detector(3);
        d.restore(true, false);
        assert_eq!(feed(&mut d, 0, obs(true, 0)), vec![("OK", NR.into())], "the OK owed from before the restart");
        let mut d = detector(3);
        d.restore(false, true);
        assert_eq!(d.next_deadline(Instant::from_millis(0)), Some(Instant::from_millis(0)));
        feed(&mut d, 0, obs(true, 0));
        let mut d = detector(3);
        feed(&mut d, 0, obs(false, 0));
        let mut out = Vec::new();
        d.clear(Now::at(1), "check disabled", &mut |a| out.push(a));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].level, out[0].name.as_str()), (Level::Ok, NR));
    }

    #[test]
    fn threshold_zero_turns_flapping_off() {
        let mut d = detector(0);
        feed(&mut d, 0, obs(true, 0));
        for s in 1..20 {
            let a = feed(&mut d, s, obs(s % 2 == 0, s));
            assert_eq!(a.len(), 1);
            assert_eq!(a[0].1, NR);
        }
    }
}
