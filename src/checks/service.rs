//! A service check: a systemd unit's states (from the shared systemd source), or a sysV
//! service's process, fed to the service detector.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Io;
use crate::alert::Alert;
use crate::config::check::{CheckId, ServiceCheckDef, ServiceType};
use crate::config::settings::Settings;
use crate::control::status::{CheckStatus, SourceStatus};
use crate::detect::service::{Observation, ServiceDetector, ServiceSettings};
use crate::sources::systemd::{UnitState, unit_name};
use crate::sources::sysv::{SysvState, SysvWatch};
use crate::sources::watch::Listener;
use crate::state::{CheckState, SavedCritical};
use crate::time::{Instant, Now};

/// A service check, resolved against the global settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCheckConfig {
    /// systemd or sysV.
    pub kind: ServiceType,
    /// The systemd unit followed (systemd), or the service's name (sysV).
    pub unit: String,
    /// The pid file (sysV): `/var/run/<name>.pid` under the root.
    pub pidfile: PathBuf,
    /// Everything the detector needs.
    pub detector: ServiceSettings,
}

impl ServiceCheckConfig {
    /// Resolves a check file's definition with the global settings.
    pub fn resolve(def: &ServiceCheckDef, s: &Settings, root: &Path) -> ServiceCheckConfig {
        ServiceCheckConfig {
            kind: def.kind,
            unit: match def.kind {
                ServiceType::Systemd => unit_name(&def.service_name),
                ServiceType::SysV => def.service_name.clone(),
            },
            pidfile: crate::config::layout::prefixed(root, &format!("/var/run/{}.pid", def.service_name)),
            detector: ServiceSettings {
                service_name: def.service_name.clone(),
                level: s.default_service_alert_level,
                flap_interval_ms: s.flapping_interval_s.saturating_mul(1000),
                flap_threshold: usize::try_from(s.flapping_count_threshold).unwrap_or(usize::MAX),
                history_max_age_ms: s.alert_log_max_age_s.saturating_mul(1000),
            },
        }
    }

    fn source(&self) -> String {
        match self.kind {
            ServiceType::Systemd => format!("systemd:{}", self.unit),
            ServiceType::SysV => format!("sysv:{}", self.pidfile.display()),
        }
    }
}

/// A service check.
#[derive(Debug)]
pub struct ServiceCheck {
    id: CheckId,
    config: ServiceCheckConfig,
    detector: ServiceDetector,
    /// systemd: the last state read.
    last: Option<UnitState>,
    /// sysV: the process watch and what it last found.
    sysv: Option<(SysvWatch, Option<SysvState>)>,
}

impl ServiceCheck {
    /// Starts the check; alerts left open by a previous run of the agent are resumed, so the
    /// first state read clears them if the service runs.
    pub fn start(
        id: CheckId,
        key: u64,
        config: ServiceCheckConfig,
        saved: Option<&CheckState>,
        now: Now,
        io: &mut Io,
        out: &mut Vec<Alert>,
    ) -> Self {
        let mut detector = ServiceDetector::new(config.detector.clone());
        if let Some(s) = saved.filter(|s| s.source == config.source()) {
            let not_running = s.critical.as_ref().is_some_and(|c| c.alert_name == detector.not_running_name());
            detector.restore(not_running, s.flapping);
        }
        let sysv =
            (config.kind == ServiceType::SysV).then(|| (SysvWatch::new(&config.unit, config.pidfile.clone(), Listener::Check(key)), None));
        let mut check = ServiceCheck { id, config, detector, last: None, sysv };
        match check.config.kind {
            ServiceType::Systemd => {
                io.systemd.watch(&check.config.unit, now.mono);
                if let Some(state) = io.systemd.state(&check.config.unit).cloned() {
                    check.on_unit(now, &state, out);
                }
            }
            ServiceType::SysV => check.on_ready(now, io, out),
        }
        check
    }

    /// sysV: the pid file or the followed process changed; look again.
    pub fn on_ready(&mut self, now: Now, io: &mut Io, out: &mut Vec<Alert>) {
        let Some((watch, last)) = self.sysv.as_mut() else { return };
        let state = watch.check(&mut io.watches, &mut io.check_fds);
        if last.as_ref() == Some(&state) {
            return;
        }
        *last = Some(state.clone());
        let obs = Observation { running: state.running, detail: state.detail, restarts: None };
        self.detector.on_state(now, obs, &mut |a| out.push(a));
    }

    /// The check's id.
    pub fn id(&self) -> &CheckId {
        &self.id
    }

    /// The config it runs.
    pub fn config(&self) -> &ServiceCheckConfig {
        &self.config
    }

    /// The unit's new state.
    pub fn on_unit(&mut self, now: Now, state: &UnitState, out: &mut Vec<Alert>) {
        let obs = Observation { running: state.running(), detail: state.describe(&self.config.unit), restarts: state.restarts };
        self.last = Some(state.clone());
        self.detector.on_state(now, obs, &mut |a| out.push(a));
    }

    /// Applies a changed config on the same unit: open alerts are kept if their names stay, else
    /// cleared under the old names; the last state read is fed to the new detector.
    pub fn reconfigure(&mut self, config: ServiceCheckConfig, now: Now, out: &mut Vec<Alert>) {
        let mut detector = ServiceDetector::new(config.detector.clone());
        if detector.not_running_name() == self.detector.not_running_name() {
            let (not_running, flapping) = self.detector.open_alerts();
            detector.restore(not_running, flapping);
        } else {
            self.detector.clear(now, "check changed", &mut |a| out.push(a));
        }
        self.detector = detector;
        self.config = config;
        if let Some(state) = self.last.clone() {
            self.on_unit(now, &state, out);
        }
    }

    /// Ends flapping when due.
    pub fn on_tick(&mut self, now: Now, out: &mut Vec<Alert>) {
        self.detector.on_tick(now, &mut |a| out.push(a));
    }

    /// When [`on_tick`](Self::on_tick) has something to do.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.detector.next_deadline(now)
    }

    /// Clears open alerts (the check goes away), or keeps them for the next start (`None`: the
    /// agent stops). Returns the state to save.
    pub fn stop(&mut self, now: Now, io: &mut Io, clear: Option<&str>, out: &mut Vec<Alert>) -> CheckState {
        match self.sysv.as_mut() {
            Some((w, _)) => w.stop(&mut io.watches, &mut io.check_fds),
            None => io.systemd.unwatch(&self.config.unit),
        }
        if let Some(why) = clear {
            self.detector.clear(now, why, &mut |a| out.push(a));
        }
        self.snapshot(now)
    }

    /// What to save for a restart.
    pub fn snapshot(&self, now: Now) -> CheckState {
        let (not_running, flapping) = self.detector.open_alerts();
        CheckState {
            source: self.config.source(),
            position: None,
            critical: not_running
                .then(|| SavedCritical { alert_name: self.detector.not_running_name(), last_match_unix_ms: now.wall.as_unix_ms() }),
            flapping,
            pending: None,
        }
    }

    /// The check as `status` shows it.
    pub fn status(&self) -> CheckStatus {
        let (running, _, flapping) = self.detector.view();
        let (not_running_open, _) = self.detector.open_alerts();
        let c = self.detector.counters();
        let counters: BTreeMap<String, u64> = crate::control::status::counters(&[
            ("alerts", c.alerts),
            ("state_changes", c.changes),
            ("restarts_between_signals", c.restarts_unseen),
            ("alerts_suppressed_while_flapping", c.suppressed),
        ]);
        let level = if flapping {
            "FLAPPING"
        } else if not_running_open {
            self.config.detector.level.as_str()
        } else {
            "OK"
        };
        CheckStatus {
            subsystem: self.id.subsystem.clone(),
            name: self.id.name.clone(),
            state: if running.is_some() { "running".into() } else { "running (no state read yet)".into() },
            source: Some(match &self.sysv {
                Some((w, last)) => {
                    SourceStatus::Process { pidfile: w.pidfile().display().to_string(), pid: last.as_ref().and_then(|s| s.pid) }
                }
                None => SourceStatus::Unit {
                    unit: self.config.unit.clone(),
                    active_state: self.last.as_ref().map(|s| s.active.clone()),
                    sub_state: self.last.as_ref().map(|s| s.sub.clone()),
                    load_state: self.last.as_ref().map(|s| s.load.clone()),
                    restarts: self.last.as_ref().and_then(|s| s.restarts),
                },
            }),
            level: Some(level.into()),
            alert: Some(if flapping { self.detector.flapping_name() } else { self.detector.not_running_name() }),
            last_match: None,
            expires: None,
            counters,
        }
    }

    /// One-line summary of the counters, for the log.
    pub fn summary(&self) -> String {
        let c = self.detector.counters();
        format!("state changes {} unseen restarts {} alerts {} suppressed {}", c.changes, c.restarts_unseen, c.alerts, c.suppressed)
    }
}
