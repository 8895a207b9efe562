//! The body of the configuration push, `POST <server>/api/devices/v1/devicemonitor/config`: a
//! JSON array with one object per enabled check, as Mender Monitor sends it (the shape the
//! Mender UI reads back):
//!
//! ```json
//! [{"name": "crond.sh", "type": "service", "status": "enabled", "service": {"name": "crond", "type": "systemd"}},
//!  {"name": "clientlogs.sh", "type": "log", "status": "enabled",
//!   "log": {"pattern": "[Ee]rror.*", "path": "@journalctl -u mender-authd -f", "expire_seconds": 32}},
//!  {"name": "test.sh", "type": "dbus", "status": "enabled",
//!   "dbus": {"name": "test", "pattern": "", "watch": "type='signal',...", "alert_expiration": 5}}]
//! ```
//!
//! `name` is the file name without the subsystem prefix. Only checks that are enabled and parse
//! are pushed (Mender's tests only ever show `enabled`); custom subsystems are left out (the
//! schema knows log, service and dbus). Checks are in file-name order, so an unchanged
//! configuration gives the same bytes and is not pushed again before `CONFPUSH_INTERVAL`.

use serde::Serialize;

use crate::config::check::{CheckDef, CheckId};

#[derive(Serialize)]
struct Entry<'a> {
    name: String,
    #[serde(rename = "type")]
    kind: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<Log<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<Service<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dbus: Option<Dbus<'a>>,
}

#[derive(Serialize)]
struct Log<'a> {
    pattern: &'a str,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_seconds: Option<u64>,
}

#[derive(Serialize)]
struct Service<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

#[derive(Serialize)]
struct Dbus<'a> {
    name: &'a str,
    pattern: &'a str,
    watch: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert_expiration: Option<u64>,
}

/// The JSON body for the enabled checks (`checks` in file-name order). `default_expiry_s` is
/// `DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS`, the expiry of log checks that set none (0: never).
pub fn body<'a>(checks: impl IntoIterator<Item = (&'a CheckId, &'a CheckDef)>, default_expiry_s: u64) -> Vec<u8> {
    let entries: Vec<Entry> = checks
        .into_iter()
        .filter_map(|(id, def)| {
            let name = format!("{}.sh", id.name);
            let entry = |kind| Entry { name, kind, status: "enabled", log: None, service: None, dbus: None };
            match def {
                CheckDef::Log(l) => Some(Entry {
                    log: Some(Log {
                        pattern: &l.pattern,
                        path: l.source.as_config(),
                        expire_seconds: l.expiration_s.or(Some(default_expiry_s)).filter(|s| *s > 0),
                    }),
                    ..entry("log")
                }),
                CheckDef::Service(s) => {
                    Some(Entry { service: Some(Service { name: &s.service_name, kind: s.kind.as_str() }), ..entry("service") })
                }
                CheckDef::Dbus(d) => Some(Entry {
                    dbus: Some(Dbus { name: &d.name, pattern: &d.pattern, watch: &d.watch, alert_expiration: d.expiration_s }),
                    ..entry("dbus")
                }),
                // The schema knows log, service and dbus; a program check is pushed as nothing.
                CheckDef::Program(_) | CheckDef::Connectivity(_) | CheckDef::Diskusage(_) | CheckDef::Custom => None,
            }
        })
        .collect();
    // Plain structs of strings and numbers always serialize.
    serde_json::to_vec(&entries).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check::{DbusCheckDef, LogCheckDef, LogSource, ServiceCheckDef, ServiceType};

    #[test]
    fn the_mender_shape() {
        let log = CheckDef::Log(LogCheckDef {
            service_name: "clientlogs".into(),
            pattern: "[Ee]rror.*".into(),
            source: LogSource::Command("journalctl -u mender-authd -f".into()),
            expiration_s: Some(32),
            level: None,
            description: None,
            details: None,
            status: None,
            alert_type: None,
        });
        let quiet = CheckDef::Log(LogCheckDef {
            expiration_s: None,
            source: LogSource::File("/var/log/x.log".into()),
            ..match &log {
                CheckDef::Log(l) => l.clone(),
                _ => unreachable!(),
            }
        });
        let svc = CheckDef::Service(ServiceCheckDef { service_name: "crond".into(), kind: ServiceType::Systemd });
        let dbus = CheckDef::Dbus(DbusCheckDef {
            name: "test".into(),
            pattern: String::new(),
            watch: "type='signal'".into(),
            expiration_s: Some(5),
        });
        let ids = [
            CheckId::new("log", "clientlogs"),
            CheckId::new("log", "quiet"),
            CheckId::new("service", "crond"),
            CheckId::new("dbus", "test"),
            CheckId::new("disk", "root"),
        ];
        let defs = [log, quiet, svc, dbus, CheckDef::Custom];
        let v: serde_json::Value = serde_json::from_slice(&body(ids.iter().zip(defs.iter()), 0)).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"name": "clientlogs.sh", "type": "log", "status": "enabled",
                 "log": {"pattern": "[Ee]rror.*", "path": "@journalctl -u mender-authd -f", "expire_seconds": 32}},
                {"name": "quiet.sh", "type": "log", "status": "enabled", "log": {"pattern": "[Ee]rror.*", "path": "/var/log/x.log"}},
                {"name": "crond.sh", "type": "service", "status": "enabled", "service": {"name": "crond", "type": "systemd"}},
                {"name": "test.sh", "type": "dbus", "status": "enabled",
                 "dbus": {"name": "test", "pattern": "", "watch": "type='signal'", "alert_expiration": 5}}
            ])
        );
        let v: serde_json::Value = serde_json::from_slice(&body(ids[1..2].iter().zip(defs[1..2].iter()), 60)).unwrap();
        assert_eq!(v[0]["log"]["expire_seconds"], 60, "the default expiry when the check sets none");
    }
}
