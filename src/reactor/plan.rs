//! Reload as a pure plan: from the checks that run and the checks the files now describe, what
//! to start, stop, restart, reconfigure or keep. No I/O: the reactor executes the plan.

use std::collections::BTreeSet;
use std::path::Path;

use crate::checks::{CheckConfig, ConnectivityCheckConfig, DiskusageCheckConfig, LogCheckConfig, ProgramCheckConfig, ServiceCheckConfig};
use crate::config::check::{CheckDef, CheckId, LoadedCheck};
use crate::config::settings::Settings;

/// What an enabled check file asks for, resolved against the global settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A check to run with this configuration.
    Run(Box<CheckConfig>),
    /// The file has errors (already reported with file and line).
    Broken,
    /// A subsystem lookout does not run (a custom bash subsystem).
    Unsupported,
}

/// Resolves every loaded enabled check against the settings; sorted by id.
pub fn wanted(loaded: &[LoadedCheck], settings: &Settings, root: &Path) -> Vec<(CheckId, Wanted)> {
    let mut wanted: Vec<(CheckId, Wanted)> = loaded
        .iter()
        .map(|lc| {
            let w = match &lc.def {
                Err(_) => Wanted::Broken,
                Ok(CheckDef::Log(def)) => Wanted::Run(Box::new(CheckConfig::Log(LogCheckConfig::resolve(def, settings)))),
                Ok(CheckDef::Service(def)) => Wanted::Run(Box::new(CheckConfig::Service(ServiceCheckConfig::resolve(def, settings, root)))),
                Ok(CheckDef::Dbus(def)) => Wanted::Run(Box::new(CheckConfig::Log(LogCheckConfig::from_dbus(def, settings)))),
                Ok(CheckDef::Program(def)) => Wanted::Run(Box::new(CheckConfig::Program(ProgramCheckConfig::resolve(&lc.id, def)))),
                Ok(CheckDef::Connectivity(def)) => {
                    Wanted::Run(Box::new(CheckConfig::Connectivity(ConnectivityCheckConfig::resolve(&lc.id, def))))
                }
                Ok(CheckDef::Diskusage(def)) => Wanted::Run(Box::new(CheckConfig::Diskusage(DiskusageCheckConfig::resolve(&lc.id, def)))),
                Ok(CheckDef::Custom) => Wanted::Unsupported,
            };
            (lc.id.clone(), w)
        })
        .collect();
    // Sorted by id, as `plan` looks ids up (a sorted Vec, not a map: one instantiation less).
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    wanted
}

/// Why a running check stops for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// Its `enabled/` link is gone; the file is still in `available/`.
    Disabled,
    /// Its file is gone.
    Deleted,
}

impl Gone {
    /// For the log and the OK that clears a CRITICAL.
    pub fn reason(self) -> &'static str {
        match self {
            Gone::Disabled => "check disabled",
            Gone::Deleted => "check deleted",
        }
    }
}

/// One step of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a check that does not run.
    Start(CheckId, CheckConfig),
    /// Stop a check, clearing its CRITICAL with an OK.
    Stop(CheckId, Gone),
    /// The source changed: stop (clearing a CRITICAL: "check changed") and start again.
    Restart(CheckId, CheckConfig),
    /// Same source, other settings: keep the position (or process) and context.
    Reconfigure(CheckId, CheckConfig),
    /// The file is broken: the previous version keeps running.
    KeepPrevious(CheckId),
    /// The file is broken and no previous version runs: nothing starts.
    NotStarted(CheckId),
    /// A subsystem lookout does not run.
    Unsupported(CheckId),
}

/// The plan that brings `running` (each check's configuration, sorted by id) in line with
/// `wanted` (sorted by id too: both are looked up by binary search).
/// `available` holds the ids with a file in `available/`, to tell a disabled check from a
/// deleted one. Unchanged checks get no action. Stops come first, so that a check renamed
/// clears its old alert before the new one can raise its own.
pub fn plan(running: &[(&CheckId, &CheckConfig)], wanted: &[(CheckId, Wanted)], available: &BTreeSet<CheckId>) -> Vec<Action> {
    let mut actions: Vec<Action> = running
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| wanted.binary_search_by(|(w, _)| w.cmp(id)).is_err())
        .map(|id| Action::Stop(id.clone(), if available.contains(id) { Gone::Disabled } else { Gone::Deleted }))
        .collect();
    for (id, w) in wanted {
        let now = running.binary_search_by(|(r, _)| (*r).cmp(id)).ok().map(|i| running[i].1);
        let action = match (w, now) {
            (Wanted::Run(c), None) => Action::Start(id.clone(), (**c).clone()),
            (Wanted::Run(c), Some(r)) if **c == *r => continue,
            (Wanted::Run(c), Some(r)) if r.same_source(c) => Action::Reconfigure(id.clone(), (**c).clone()),
            (Wanted::Run(c), Some(_)) => Action::Restart(id.clone(), (**c).clone()),
            (Wanted::Broken, Some(_)) => Action::KeepPrevious(id.clone()),
            (Wanted::Broken, None) => Action::NotStarted(id.clone()),
            // A check that ran and is now of a subsystem we do not run: it went away.
            (Wanted::Unsupported, Some(_)) => {
                actions.insert(0, Action::Stop(id.clone(), Gone::Disabled));
                Action::Unsupported(id.clone())
            }
            (Wanted::Unsupported, None) => Action::Unsupported(id.clone()),
        };
        actions.push(action);
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check::{LogCheckDef, LogSource};
    use std::collections::BTreeMap;

    fn sorted(m: &BTreeMap<CheckId, CheckConfig>) -> Vec<(&CheckId, &CheckConfig)> {
        m.iter().collect()
    }

    fn id(name: &str) -> CheckId {
        CheckId::new("log", name)
    }

    fn log_config(file: &str, pattern: &str, settings: &Settings) -> CheckConfig {
        let def = LogCheckDef {
            service_name: "svc".into(),
            pattern: pattern.into(),
            source: LogSource::File(file.into()),
            expiration_s: Some(5),
            level: None,
            description: None,
            details: None,
            status: None,
            alert_type: None,
        };
        CheckConfig::Log(LogCheckConfig::resolve(&def, settings))
    }

    fn run(c: &CheckConfig) -> Wanted {
        Wanted::Run(Box::new(c.clone()))
    }

    #[test]
    fn every_combination_of_running_and_wanted() {
        let s = Settings::default();
        let a = log_config("/var/log/a", "ERROR", &s);
        let a_edited = log_config("/var/log/a", "PANIC", &s);
        let a_moved = log_config("/var/log/a2", "ERROR", &s);
        let b = log_config("/var/log/b", "ERROR", &s);
        let running: BTreeMap<CheckId, CheckConfig> = [
            (id("same"), a.clone()),
            (id("edited"), a.clone()),
            (id("moved"), a.clone()),
            (id("disabled"), b.clone()),
            (id("deleted"), b.clone()),
            (id("broken"), b.clone()),
            (id("renamed_old"), b.clone()),
        ]
        .into();
        let mut wanted: Vec<(CheckId, Wanted)> = [
            (id("same"), run(&a)),
            (id("edited"), run(&a_edited)),
            (id("moved"), run(&a_moved)),
            (id("broken"), Wanted::Broken),
            (id("broken_new"), Wanted::Broken),
            (id("new"), run(&b)),
            (id("renamed_new"), run(&b)),
            (id("custom"), Wanted::Unsupported),
        ]
        .into();
        wanted.sort_by(|a, b| a.0.cmp(&b.0));
        let available: BTreeSet<CheckId> = [id("disabled")].into();
        let got = plan(&sorted(&running), &wanted, &available);
        assert_eq!(
            got,
            vec![
                Action::Stop(id("deleted"), Gone::Deleted),
                Action::Stop(id("disabled"), Gone::Disabled),
                Action::Stop(id("renamed_old"), Gone::Deleted),
                Action::KeepPrevious(id("broken")),
                Action::NotStarted(id("broken_new")),
                Action::Unsupported(id("custom")),
                Action::Reconfigure(id("edited"), a_edited),
                Action::Restart(id("moved"), a_moved),
                Action::Start(id("new"), b.clone()),
                Action::Start(id("renamed_new"), b),
            ]
        );
    }

    #[test]
    fn broken_then_fixed() {
        let s = Settings::default();
        let a = log_config("/var/log/a", "ERROR", &s);
        let fixed = log_config("/var/log/a", "PANIC", &s);
        let running: BTreeMap<CheckId, CheckConfig> = [(id("x"), a.clone())].into();
        let none = BTreeSet::new();
        assert_eq!(plan(&sorted(&running), &[(id("x"), Wanted::Broken)], &none), vec![Action::KeepPrevious(id("x"))]);
        // Fixed back to what runs: nothing to do; fixed to something else: reconfigured.
        assert_eq!(plan(&sorted(&running), &[(id("x"), run(&a))], &none), vec![]);
        assert_eq!(plan(&sorted(&running), &[(id("x"), run(&fixed))], &none), vec![Action::Reconfigure(id("x"), fixed)]);
        // Broken before it ever ran, then fixed: started.
        let empty = BTreeMap::new();
        assert_eq!(plan(&sorted(&empty), &[(id("x"), Wanted::Broken)], &none), vec![Action::NotStarted(id("x"))]);
        assert_eq!(plan(&sorted(&empty), &[(id("x"), run(&a))], &none), vec![Action::Start(id("x"), a)]);
    }

    /// A config.sh change reaches every check through its resolved configuration: a new default
    /// changes the log checks that use it (same source: reconfigured), not the others.
    #[test]
    fn a_settings_change_reconfigures_the_checks_it_touches() {
        let old = Settings::default();
        let new = Settings { log_lines_before: 5, ..Settings::default() };
        let running: BTreeMap<CheckId, CheckConfig> = [(id("x"), log_config("/var/log/a", "ERROR", &old))].into();
        let changed = log_config("/var/log/a", "ERROR", &new);
        assert_ne!(running[&id("x")], changed);
        assert_eq!(plan(&sorted(&running), &[(id("x"), run(&changed))], &BTreeSet::new()), vec![Action::Reconfigure(id("x"), changed)]);
    }

    #[test]
    fn a_running_check_whose_subsystem_is_no_longer_run_stops() {
        let s = Settings::default();
        let running: BTreeMap<CheckId, CheckConfig> = [(id("x"), log_config("/var/log/a", "ERROR", &s))].into();
        assert_eq!(
            plan(&sorted(&running), &[(id("x"), Wanted::Unsupported)], &BTreeSet::new()),
            vec![Action::Stop(id("x"), Gone::Disabled), Action::Unsupported(id("x"))]
        );
    }
}
