//! Prometheus Alertmanager as a destination: what a lookout alert becomes in
//! `POST <url>/api/v2/alerts`, and the lease of a firing alert. Pure: no I/O, times passed in.
//!
//! Mapping (README, "Destinations"):
//! - labels are the alert's identity only, the same for a CRITICAL, its re-sends and its OK:
//!   `alertname` ([`label_safe`] of the alert's name), `device` (the hostname unless
//!   `ALERT_LABELS` sets `device=`), `check` (the subject: a check's `SERVICE_NAME`, which
//!   `create` sets to the check's name; the unit of a service check), `subsystem` (`log`,
//!   `service`, `dbus`, ...), `severity` (`critical` or `warning`), then `ALERT_LABELS`;
//! - annotations carry the variable text: `summary` (the alert's name as is), `description`,
//!   `line_matching`, `lines_before`, `lines_after` (`<line number>: <text>` lines), `status`.
//!
//! Lease: a CRITICAL (or WARNING) is sent with `endsAt = now + lease` and re-sent while it
//! fires, when half the lease has passed ([`Lease`]); a device that dies or goes offline is
//! resolved by Alertmanager after the lease instead of firing forever (Prometheus does the
//! same with its own alerts). The OK is sent with the same labels and `startsAt = endsAt =` its
//! own timestamp, so `endsAt` is never before `startsAt` (Alertmanager answers 400 to that).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::alert::{Alert, Level, LineDescriptor};
use crate::time::{Instant, Wall, rfc3339};

/// The endpoint, joined to each Alertmanager base URL.
pub const ALERTS_PATH: &str = "/api/v2/alerts";
/// Most firing alerts whose lease is kept (and re-sent) per Alertmanager; more are sent once
/// and counted (`status`: `lease_untracked`).
pub const MAX_FIRING: usize = 1024;
/// Most bytes (as JSON) of the firing alerts kept per Alertmanager: a log alert carries up to
/// twice `DEFAULT_LOG_LINES_*` lines of up to `LOG_MAX_LINE_BYTES`; past this, as past
/// [`MAX_FIRING`].
pub const MAX_FIRING_BYTES: usize = 4 << 20;
/// Labels lookout sets itself; `ALERT_LABELS` may not set them (except `device`).
pub const OWN_LABELS: &[&str] = &["alertname", "check", "subsystem", "severity"];

/// What the mapping needs besides the alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The `device` label (the hostname, or `device=` of `ALERT_LABELS`).
    pub device: String,
    /// `ALERT_LABELS` without `device`, in order.
    pub labels: Vec<(String, String)>,
    /// `ALERTMANAGER_LEASE_S` in ms.
    pub lease_ms: u64,
}

/// A stable, label-safe form of an alert's name for `alertname`: ASCII letters and digits kept,
/// every other run of characters one `_`, no `_` at the ends, `_` first if it would start with
/// a digit (Prometheus' metric-name rule), `unnamed` if nothing is left.
pub fn label_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() {
        return "unnamed".into();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Reads `ALERT_LABELS`: `name=value` pairs separated by blanks; names as Prometheus allows
/// them (`[a-zA-Z_][a-zA-Z0-9_]*`), not one lookout sets itself ([`OWN_LABELS`]), each once.
///
/// # Errors
/// What is wrong with which pair.
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in text.split_ascii_whitespace() {
        let Some((k, v)) = pair.split_once('=') else { return Err(format!("{pair:?} is not name=value")) };
        let name_ok =
            k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(format!("{k:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"));
        }
        if OWN_LABELS.contains(&k) {
            return Err(format!("{k} is set by lookout itself"));
        }
        if v.is_empty() {
            return Err(format!("{k} has an empty value"));
        }
        if out.iter().any(|(n, _)| n == k) {
            return Err(format!("{k} is given twice"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

fn lines(ls: &[LineDescriptor]) -> String {
    ls.iter().map(|l| format!("{}: {}", l.line_number, l.data)).collect::<Vec<_>>().join("\n")
}

/// The alert's own timestamp, if it reads as RFC 3339.
fn timestamp(a: &Alert) -> Option<Wall> {
    let t = humantime::parse_rfc3339_weak(&a.timestamp).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok().map(Wall::from_unix_ms)
}

/// One alert as Alertmanager takes it, sent at `now`. `severity` is the level the alert fired
/// at (for an OK: the CRITICAL's or WARNING's, so its labels match the firing alert).
pub fn to_alertmanager(a: &Alert, severity: Level, map: &Mapping, now: Wall) -> Value {
    let mut labels = Map::new();
    labels.insert("alertname".into(), label_safe(&a.name).into());
    labels.insert("device".into(), map.device.clone().into());
    labels.insert("check".into(), a.subject.name.clone().into());
    labels.insert("subsystem".into(), a.subject.kind.clone().into());
    let sev = if severity == Level::Warning { "warning" } else { "critical" };
    labels.insert("severity".into(), sev.into());
    for (k, v) in &map.labels {
        labels.insert(k.clone(), v.clone().into());
    }
    let mut notes = Map::new();
    notes.insert("summary".into(), a.name.clone().into());
    if !a.subject.status.is_empty() {
        notes.insert("status".into(), a.subject.status.clone().into());
    }
    if let Some(d) = &a.subject.details {
        notes.insert("description".into(), d.description.clone().into());
        if let Some(m) = &d.line_matching {
            notes.insert("line_matching".into(), lines(std::slice::from_ref(m)).into());
        }
        for (k, ls) in [("lines_before", &d.lines_before), ("lines_after", &d.lines_after)] {
            if let Some(ls) = ls.as_ref().filter(|ls| !ls.is_empty()) {
                notes.insert(k.into(), lines(ls).into());
            }
        }
    }
    let at = timestamp(a).unwrap_or(now);
    let ends = match a.level {
        Level::Ok => at,
        _ => now.plus_ms(map.lease_ms).max(at),
    };
    json!({"labels": labels, "annotations": notes, "startsAt": rfc3339(at), "endsAt": rfc3339(ends)})
}

/// The identity of an alert for the lease: the spool's key (name and subject).
pub fn key(a: &Alert) -> u64 {
    crate::uplink::spool::key_and_label(&a.name, "", &a.subject.name).0
}

/// A firing alert: what to send again, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Firing {
    alert: Alert,
    due: Instant,
    /// Its size as JSON, counted against [`MAX_FIRING_BYTES`].
    bytes: usize,
}

fn json_len(a: &Alert) -> usize {
    serde_json::to_vec(a).map_or(0, |v| v.len())
}

/// The firing alerts one Alertmanager has, and when each is re-sent: half a lease after it
/// was last delivered. Empty when nothing fires: then there is nothing to wake up for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Lease {
    firing: BTreeMap<u64, Firing>,
    /// Sum of the firing alerts' `bytes`.
    bytes: usize,
    /// Firing alerts not kept because [`MAX_FIRING`] were (sent once; resolved after the lease).
    pub untracked: u64,
}

impl Lease {
    /// The level `a` fired at, if it fires (an OK takes its labels from it).
    pub fn severity(&self, a: &Alert) -> Option<Level> {
        self.firing.get(&key(a)).map(|f| f.alert.level)
    }

    /// Alerts delivered at `now`: a CRITICAL or WARNING fires (re-sent half a lease later), an
    /// OK ends it. Whether the set of firing alerts changed (to save it).
    pub fn on_delivered(&mut self, now: Instant, lease_ms: u64, alerts: &[Alert]) -> bool {
        let mut changed = false;
        for a in alerts {
            let k = key(a);
            let old = self.firing.remove(&k);
            self.bytes -= old.as_ref().map_or(0, |f| f.bytes);
            if a.level == Level::Ok {
                changed |= old.is_some();
                continue;
            }
            let bytes = json_len(a);
            if self.firing.len() < MAX_FIRING && self.bytes + bytes <= MAX_FIRING_BYTES {
                changed |= old.is_none_or(|old| old.alert != *a);
                self.bytes += bytes;
                self.firing.insert(k, Firing { alert: a.clone(), due: now.plus_ms(lease_ms / 2), bytes });
            } else {
                changed |= old.is_some();
                self.untracked += 1;
            }
        }
        changed
    }

    /// When the next re-send is due, if anything fires.
    pub fn next_due(&self) -> Option<Instant> {
        self.firing.values().map(|f| f.due).min()
    }

    /// The firing alerts due at `now`, at most `max`.
    pub fn due(&self, now: Instant, max: usize) -> Vec<Alert> {
        self.firing.values().filter(|f| f.due <= now).take(max).map(|f| f.alert.clone()).collect()
    }

    /// These were re-sent (due again half a lease later) or failed (due at the retry): due
    /// at `next`.
    pub fn resent(&mut self, alerts: &[Alert], next: Instant) {
        for a in alerts {
            if let Some(f) = self.firing.get_mut(&key(a)) {
                f.due = next;
            }
        }
    }

    /// The firing alerts, to save (and load at the next start).
    pub fn alerts(&self) -> Vec<Alert> {
        self.firing.values().map(|f| f.alert.clone()).collect()
    }

    /// Firing alerts saved by an earlier run, due at `now` (re-sent at once: the lease may
    /// have run out while the agent was stopped).
    pub fn restore(&mut self, now: Instant, alerts: Vec<Alert>) {
        for a in alerts.into_iter().filter(|a| a.level != Level::Ok) {
            let bytes = json_len(&a);
            if self.firing.len() >= MAX_FIRING || self.bytes + bytes > MAX_FIRING_BYTES {
                self.untracked += 1;
                continue;
            }
            self.bytes += bytes;
            if let Some(old) = self.firing.insert(key(&a), Firing { alert: a, due: now, bytes }) {
                self.bytes -= old.bytes;
            }
        }
    }

    /// Alerts firing.
    pub fn len(&self) -> usize {
        self.firing.len()
    }

    /// Whether nothing fires.
    pub fn is_empty(&self) -> bool {
        self.firing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Details, Subject};

    fn alert(level: Level, ts: &str) -> Alert {
        Alert {
            name: "Log file contains ERROR".into(),
            level,
            timestamp: ts.into(),
            subject: Subject {
                name: "crasher_app".into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Some(Details {
                    description: "ERROR present in /root/crasher.log".into(),
                    lines_before: Some(vec![LineDescriptor { line_number: 1, data: "starting".into() }]),
                    line_matching: Some(LineDescriptor { line_number: 2, data: "ERROR:root:Crashing...".into() }),
                    lines_after: Some(vec![]),
                }),
            },
        }
    }

    fn map() -> Mapping {
        Mapping { device: "pi-7".into(), labels: vec![("site".into(), "plant-4".into())], lease_ms: 300_000 }
    }

    const T0: &str = "2026-11-29T10:00:00.000Z";
    fn wall(s: &str) -> Wall {
        timestamp(&alert(Level::Ok, s)).unwrap()
    }

    #[test]
    fn names_become_label_safe_and_stay_stable() {
        assert_eq!(label_safe("Log file contains ERROR"), "Log_file_contains_ERROR");
        assert_eq!(label_safe("Service crasher going up and down"), "Service_crasher_going_up_and_down");
        assert_eq!(label_safe("  D-Bus signal arrived on bus type=signal,member=X "), "D_Bus_signal_arrived_on_bus_type_signal_member_X");
        assert_eq!(label_safe("5 errors"), "_5_errors");
        assert_eq!(label_safe("é→"), "unnamed");
    }

    #[test]
    fn a_critical_carries_identity_in_labels_and_text_in_annotations() {
        let v = to_alertmanager(&alert(Level::Critical, T0), Level::Critical, &map(), wall("2026-11-29T10:00:01Z"));
        assert_eq!(
            v,
            json!({
                "labels": {"alertname": "Log_file_contains_ERROR", "device": "pi-7", "check": "crasher_app",
                           "subsystem": "log", "severity": "critical", "site": "plant-4"},
                "annotations": {"summary": "Log file contains ERROR", "status": "LOGCONTAINS",
                                "description": "ERROR present in /root/crasher.log",
                                "line_matching": "2: ERROR:root:Crashing...", "lines_before": "1: starting"},
                "startsAt": "2026-11-29T10:00:00.000Z",
                "endsAt": "2026-11-29T10:05:01.000Z"
            })
        );
    }

    #[test]
    fn an_ok_has_the_same_labels_and_ends_when_it_starts() {
        let crit = to_alertmanager(&alert(Level::Warning, T0), Level::Warning, &map(), wall(T0));
        let mut ok = alert(Level::Ok, "2026-11-29T10:00:09.500Z");
        ok.subject.details = None;
        let v = to_alertmanager(&ok, Level::Warning, &map(), wall("2026-11-29T11:00:00Z"));
        assert_eq!(v["labels"], crit["labels"]);
        assert_eq!(v["labels"]["severity"], "warning");
        assert_eq!((v["startsAt"].as_str(), v["endsAt"].as_str()), (Some("2026-11-29T10:00:09.500Z"), Some("2026-11-29T10:00:09.500Z")));
    }

    #[test]
    fn a_timestamp_ahead_of_the_lease_never_ends_before_it_starts() {
        let v = to_alertmanager(&alert(Level::Critical, "2030-01-01T00:00:00Z"), Level::Critical, &map(), wall(T0));
        assert_eq!(v["startsAt"], v["endsAt"]);
        let v = to_alertmanager(&alert(Level::Critical, "garbage"), Level::Critical, &map(), wall(T0));
        assert_eq!((v["startsAt"].as_str(), v["endsAt"].as_str()), (Some(T0), Some("2026-11-29T10:05:00.000Z")));
    }

    #[test]
    fn user_labels_are_checked() {
        assert_eq!(
            parse_labels(" site=plant-4  model=pi4 ").unwrap(),
            vec![("site".into(), "plant-4".into()), ("model".into(), "pi4".into())]
        );
        assert_eq!(parse_labels("").unwrap(), vec![]);
        assert_eq!(parse_labels("site").unwrap_err(), "\"site\" is not name=value");
        assert_eq!(parse_labels("1x=a").unwrap_err(), "\"1x\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)");
        assert_eq!(parse_labels("severity=low").unwrap_err(), "severity is set by lookout itself");
        assert_eq!(parse_labels("a=1 a=2").unwrap_err(), "a is given twice");
        assert_eq!(parse_labels("a=").unwrap_err(), "a has an empty value");
        assert!(parse_labels("device=gw-1").is_ok());
    }

    #[test]
    fn the_lease_is_renewed_while_firing_and_ends_with_the_ok() {
        let mut l = Lease::default();
        let t = Instant::from_millis;
        assert_eq!(l.next_due(), None, "nothing fires: no wake-up");
        assert!(l.on_delivered(t(1_000), 10_000, &[alert(Level::Critical, T0)]));
        assert_eq!(l.severity(&alert(Level::Ok, T0)), Some(Level::Critical));
        assert_eq!(l.next_due(), Some(t(6_000)), "half the lease");
        assert!(l.due(t(5_999), 100).is_empty());
        let due = l.due(t(6_000), 100);
        assert_eq!(due.len(), 1);
        l.resent(&due, t(11_000));
        assert_eq!(l.next_due(), Some(t(11_000)));
        assert!(!l.on_delivered(t(7_000), 10_000, &[alert(Level::Critical, T0)]) || l.len() == 1);
        assert!(l.on_delivered(t(8_000), 10_000, &[alert(Level::Ok, "2026-11-29T10:00:08Z")]));
        assert_eq!((l.next_due(), l.is_empty()), (None, true));
        assert!(!l.on_delivered(t(9_000), 10_000, &[alert(Level::Ok, T0)]), "an OK for nothing firing changes nothing");
    }

    #[test]
    fn the_lease_table_is_bounded_and_counted() {
        let mut l = Lease::default();
        for i in 0..MAX_FIRING + 3 {
            let mut a = alert(Level::Critical, T0);
            a.subject.name = format!("c{i}");
            l.on_delivered(Instant::from_millis(0), 1000, &[a]);
        }
        assert_eq!((l.len(), l.untracked), (MAX_FIRING, 3));
        // By bytes too: one alert with a huge line takes the room of many.
        let mut big = Lease::default();
        let mut a = alert(Level::Critical, T0);
        a.subject.details.as_mut().unwrap().description = "x".repeat(MAX_FIRING_BYTES - 1000);
        big.on_delivered(Instant::from_millis(0), 1000, &[a.clone()]);
        assert_eq!((big.len(), big.untracked), (1, 0));
        let mut b = alert(Level::Critical, T0);
        b.subject.name = "other".into();
        b.subject.details.as_mut().unwrap().description = "y".repeat(1000);
        big.on_delivered(Instant::from_millis(0), 1000, &[b.clone()]);
        assert_eq!((big.len(), big.untracked), (1, 1), "over the byte bound: not kept");
        big.on_delivered(Instant::from_millis(0), 1000, &[Alert { level: Level::Ok, ..a }]);
        big.on_delivered(Instant::from_millis(0), 1000, &[b]);
        assert_eq!((big.len(), big.untracked), (1, 1), "room again once the big one ended");
        let mut restored = Lease::default();
        restored.restore(Instant::from_millis(5), l.alerts());
        assert_eq!((restored.len(), restored.next_due()), (MAX_FIRING, Some(Instant::from_millis(5))));
    }
}
