//! A connectivity check: probes on the reactor's timers (no thread of its own but a short-lived
//! resolver's), started at once when the kernel's routing events say the network changed.
//! [`crate::detect::connectivity`] decides everything; this module starts and drops probes
//! ([`crate::sources::probe`]) and hands their results on. It holds the shared rtnetlink socket
//! open while it runs ([`crate::sources::netlink`]).

use std::collections::BTreeMap;

use super::Io;
use crate::alert::Alert;
use crate::config::check::{CheckId, ConnectivityCheckDef};
use crate::control::status::{CheckStatus, SourceStatus};
use crate::detect::connectivity::{ConnDetector, ConnSettings, NetChange};
use crate::sources::probe::Probe;
use crate::sources::tail::Progress;
use crate::sources::watch::Listener;
use crate::state::CheckState;
use crate::time::{Instant, Now};

/// Seconds between probes when `CONNECTIVITY_INTERVAL` is unset.
pub const DEFAULT_INTERVAL_S: u64 = 60;
/// A probe's time when `CONNECTIVITY_TIMEOUT` is unset (at most the interval).
pub const DEFAULT_TIMEOUT_S: u64 = 10;
/// Probes in a row that fail before the CRITICAL when `CONNECTIVITY_FAILURES` is unset.
pub const DEFAULT_FAILURES: u32 = 3;

/// A connectivity check, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectivityCheckConfig {
    /// What the detector needs.
    pub settings: ConnSettings,
}

impl ConnectivityCheckConfig {
    /// Resolves a check file's definition with the defaults; the timeout is at most the interval.
    pub fn resolve(id: &CheckId, def: &ConnectivityCheckDef) -> Self {
        let interval_s = def.interval_s.unwrap_or(DEFAULT_INTERVAL_S);
        let timeout_s = def.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S).min(interval_s);
        ConnectivityCheckConfig {
            settings: ConnSettings {
                check: id.name.clone(),
                address: def.address.clone(),
                target: def.target.clone(),
                interval_ms: interval_s.saturating_mul(1000),
                timeout_ms: timeout_s.saturating_mul(1000),
                failures: def.failures.unwrap_or(DEFAULT_FAILURES),
            },
        }
    }

    /// Whether `other` probes the same address (the alert's name stays the same).
    pub fn same_source(&self, other: &Self) -> bool {
        self.settings.address == other.settings.address
    }
}

/// A connectivity check.
#[derive(Debug)]
pub struct ConnectivityCheck {
    id: CheckId,
    key: u64,
    detector: ConnDetector,
    probe: Option<Probe>,
    /// Why the kernel's routing events are not followed, if they are not.
    netlink_problem: Option<String>,
    /// Whether this check holds the rtnetlink socket open (released once, at stop).
    holds_netlink: bool,
}

impl ConnectivityCheck {
    /// A check whose first probe is due at once; a CRITICAL left open by the previous run of
    /// the agent is cleared by the first success.
    pub fn start(id: CheckId, key: u64, config: ConnectivityCheckConfig, saved: Option<&CheckState>, now: Now, io: &mut Io) -> Self {
        let mut detector = ConnDetector::new(config.settings, now.mono);
        if saved.and_then(|s| s.critical.as_ref()).is_some_and(|c| c.alert_name == detector.alert_name()) {
            detector.restore();
        }
        let netlink_problem = io.netlink.acquire().err();
        if let Some(p) = &netlink_problem {
            crate::warn!("check {id}: {p}");
        }
        ConnectivityCheck { id, key, detector, probe: None, netlink_problem, holds_netlink: true }
    }

    /// The probe's fds are ready: its result, if it is over, goes to the detector.
    pub fn on_ready(&mut self, now: Now, io: &mut Io, out: &mut Vec<Alert>) -> Progress {
        if let Some(outcome) = self.probe.as_mut().and_then(|p| p.on_ready(&mut io.check_fds)) {
            self.probe = None;
            crate::debug!("check {}: probe: {outcome:?}", self.id);
            self.detector.on_result(now, outcome, &mut |a| out.push(a));
        }
        Progress::Done
    }

    /// Drops a probe that timed out or is replaced, starts one that is due.
    pub fn on_tick(&mut self, now: Now, io: &mut Io, out: &mut Vec<Alert>) {
        let due = self.detector.on_tick(now, &mut |a| out.push(a));
        if due.abort || due.start {
            if let Some(mut p) = self.probe.take() {
                p.stop(&mut io.check_fds);
            }
        }
        if due.start {
            match Probe::start(&self.detector.settings().target, &mut io.check_fds, Listener::Check(self.key)) {
                Ok(p) => self.probe = Some(p),
                Err(e) => {
                    crate::debug!("check {}: probe: {e}", self.id);
                    self.detector.on_result(now, Err(e), &mut |a| out.push(a));
                }
            }
        }
    }

    /// The kernel said the network changed.
    pub fn on_net(&mut self, change: &NetChange) {
        self.detector.on_net(change);
    }

    /// When [`on_tick`](Self::on_tick) must run.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        Some(self.detector.next_deadline(now))
    }

    /// Applies a changed config with the same address: the open alert is kept, and a probe
    /// with the new settings starts at once.
    pub fn reconfigure(&mut self, config: ConnectivityCheckConfig, now: Now) {
        let mut detector = ConnDetector::new(config.settings, now.mono);
        detector.adopt(&self.detector);
        self.detector = detector;
    }

    /// Drops a probe going, lets go of the rtnetlink socket, and clears an open alert if the
    /// check goes away (`clear`).
    pub fn stop(&mut self, now: Now, io: &mut Io, clear: Option<&str>, out: &mut Vec<Alert>) -> CheckState {
        if let Some(mut p) = self.probe.take() {
            p.stop(&mut io.check_fds);
        }
        if std::mem::take(&mut self.holds_netlink) {
            io.netlink.release();
        }
        if let Some(why) = clear {
            self.detector.clear(now, why, &mut |a| out.push(a));
        }
        self.snapshot(now)
    }

    /// What to save for a restart: whether the CRITICAL is open.
    pub fn snapshot(&self, now: Now) -> CheckState {
        CheckState::alert_only(
            format!("connectivity:{}", self.detector.settings().address),
            self.detector.is_open().then(|| self.detector.alert_name()),
            now.wall,
        )
    }

    /// The check as `status` shows it.
    pub fn status(&self) -> CheckStatus {
        let c = self.detector.counters();
        let s = self.detector.settings();
        let counters: BTreeMap<String, u64> = crate::control::status::counters(&[
            ("probes", c.probes),
            ("failures", c.failures),
            ("failed_in_a_row", u64::from(self.detector.failed_in_a_row())),
            ("timeouts", c.timeouts),
            ("immediate_probes", c.immediate_probes),
            ("alerts", c.alerts),
        ]);
        let last = self.detector.last().map(|r| match r {
            Ok(what) => format!("reachable: {what}"),
            Err(why) => format!("failed: {why}"),
        });
        CheckStatus {
            subsystem: self.id.subsystem.clone(),
            name: self.id.name.clone(),
            state: "running".into(),
            source: Some(SourceStatus::Connectivity {
                address: s.address.clone(),
                method: s.target.method().into(),
                interval_s: s.interval_ms / 1000,
                timeout_s: s.timeout_ms / 1000,
                failures: s.failures,
                network_events: self.netlink_problem.clone().unwrap_or_else(|| "followed (rtnetlink)".into()),
                probing: self.probe.is_some(),
                last,
            }),
            level: Some(if self.detector.is_open() { "CRITICAL" } else { "OK" }.into()),
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
            "probes {} failures {} timeouts {} immediate probes {} alerts {}",
            c.probes, c.failures, c.timeouts, c.immediate_probes, c.alerts
        )
    }
}
