//! What `lookout status` shows: the daemon's view of every check, the uplink and every bound's
//! counter, as JSON on the socket and as a table for people.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

/// A counter map from `(name, value)` pairs.
pub fn counters(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The whole status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `lookout <version>`.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// When it started (RFC 3339).
    pub started: String,
    /// Seconds since.
    pub uptime_s: u64,
    /// Every enabled check, running or not.
    pub checks: Vec<CheckStatus>,
    /// Alert delivery.
    pub uplink: UplinkStatus,
    /// Counters of the agent's own bounds (inotify, control socket, state file, children).
    pub agent: BTreeMap<String, u64>,
}

/// One enabled check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// Subsystem (`log`, `service`, ...).
    pub subsystem: String,
    /// Check name.
    pub name: String,
    /// `running`, or why not (`error: ...`, `not supported ...`).
    pub state: String,
    /// Where its lines come from, when running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceStatus>,
    /// `OK` or `CRITICAL`, when running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The name its alerts carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// Last match while CRITICAL (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_match: Option<String>,
    /// When the OK is due (RFC 3339), if it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Lines read, matches, alerts, bytes, cut lines, rotations, ...
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
}

/// Where a check reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceStatus {
    /// A followed file.
    File {
        /// The path.
        path: String,
        /// Inode of the file read now (none while it does not exist).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inode: Option<u64>,
        /// Offset of the next line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// Number of the next line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<u64>,
        /// Why the path cannot be read now (missing, not a regular file, no permission).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        problem: Option<String>,
    },
    /// A systemd unit.
    Unit {
        /// The unit name.
        unit: String,
        /// `ActiveState`, once read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        active_state: Option<String>,
        /// `SubState`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sub_state: Option<String>,
        /// `LoadState`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        load_state: Option<String>,
        /// `NRestarts`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restarts: Option<u64>,
    },
    /// A sysV service's process.
    Process {
        /// The pid file.
        pidfile: String,
        /// The process, while it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<i32>,
    },
    /// A command's output.
    Command {
        /// The command line.
        command: String,
        /// Its process id while it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<i32>,
        /// Times started.
        starts: u64,
        /// Times exited.
        exits: u64,
    },
    /// A program check's plugin.
    Program {
        /// The command line.
        command: String,
        /// Seconds between runs.
        interval_s: u64,
        /// The running plugin's shell.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<i32>,
        /// The last result: the plugin's state and its description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<String>,
    },
    /// A connectivity check's probes.
    Connectivity {
        /// `CONNECTIVITY_ADDRESS`.
        address: String,
        /// HTTP HEAD or TCP connect.
        method: String,
        /// Seconds between probes.
        interval_s: u64,
        /// Seconds a probe may take.
        timeout_s: u64,
        /// Probes in a row that fail before the CRITICAL.
        failures: u32,
        /// Whether the kernel's routing events are followed, or why not.
        network_events: String,
        /// Whether a probe is going.
        probing: bool,
        /// The last probe's result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<String>,
    },
    /// A diskusage check's file system.
    Disk {
        /// `DISKUSAGE_NAME`.
        path: String,
        /// CRITICAL above this percentage.
        threshold: u64,
        /// OK at or below this percentage.
        ok_at: u64,
        /// Seconds between samples.
        interval_s: u64,
        /// The last sample: space use, and inode use where counted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<String>,
        /// Why the last sample could not be taken.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        problem: Option<String>,
    },
    /// A `dbus` check's messages on the system bus.
    Bus {
        /// The match rule.
        rule: String,
        /// Watching, or what is wrong.
        state: String,
        /// What is seen: `monitor: ...`, `eavesdrop (why): ...` or `broadcast only (why): ...`;
        /// empty until the bus granted one.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        mode: String,
    },
}

/// Alert delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkStatus {
    /// `stdout` or the alert URL.
    pub destination: String,
    /// Alerts waiting in the spool (the batch being sent included).
    pub queue_depth: u64,
    /// The most alerts the spool keeps (`ALERT_OFFLINE_STORE_MAX_COUNT`).
    pub queue_capacity: u64,
    /// Bytes of the alerts waiting.
    #[serde(default)]
    pub queue_bytes: u64,
    /// Bytes of the spool's files (delivered records not yet compacted away included).
    #[serde(default)]
    pub spool_bytes: u64,
    /// When the oldest waiting alert was accepted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_waiting: Option<String>,
    /// The Mender client's token, when alerts go through it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// What delivery waits for besides the server (a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Last successful delivery (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<String>,
    /// Last failure, with its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Next retry (RFC 3339) while backing off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// While the spool cannot be written: how many alerts are held in memory only, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool_degraded: Option<String>,
    /// queued, delivered, rejected, failures, overflowed.
    pub counters: BTreeMap<String, u64>,
    /// Each destination when there are several (the Mender server, stdout, each Alertmanager
    /// peer): its own queue, state and counters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<DestinationStatus>,
}

/// One destination of several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationStatus {
    /// Where.
    pub destination: String,
    /// Alerts waiting for it.
    pub queue_depth: u64,
    /// Last successful delivery (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<String>,
    /// Last failure, with its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Next retry (RFC 3339) while backing off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// delivered, rejected, dropped, requests, failed_attempts, firing (Alertmanager: alerts
    /// whose lease is renewed), lease_untracked (firing alerts over the bound).
    pub counters: BTreeMap<String, u64>,
}

impl SourceStatus {
    /// One cell of the status table.
    fn describe(&self) -> String {
        match self {
            SourceStatus::File { path, inode, offset, line, problem } => match (inode, offset, line, problem) {
                (Some(i), Some(o), Some(l), None) => format!("{path} (inode {i}, offset {o}, line {l})"),
                (Some(i), Some(o), Some(l), Some(p)) => format!("{path} (inode {i}, offset {o}, line {l}; the path {p})"),
                (_, _, _, Some(p)) => format!("{path} ({p})"),
                _ => format!("{path} (waiting for it)"),
            },
            SourceStatus::Command { command, pid, starts, exits } => match pid {
                Some(p) => format!("@{command} (pid {p}, starts {starts}, exits {exits})"),
                None => format!("@{command} (not running, starts {starts}, exits {exits})"),
            },
            SourceStatus::Unit { unit, active_state, sub_state, load_state, restarts } => match (active_state, sub_state) {
                (Some(a), Some(s)) => format!(
                    "{unit} ({a}/{s}{}{})",
                    load_state.as_deref().filter(|l| *l != "loaded").map(|l| format!(", {l}")).unwrap_or_default(),
                    restarts.map(|r| format!(", {r} restarts")).unwrap_or_default()
                ),
                _ => format!("{unit} (not read yet)"),
            },
            SourceStatus::Process { pidfile, pid } => match pid {
                Some(p) => format!("pid {p} ({pidfile})"),
                None => format!("no process ({pidfile})"),
            },
            SourceStatus::Bus { rule, state, mode } if !mode.is_empty() => {
                let mode = mode.split([' ', ':']).next().unwrap_or_default();
                format!("D-Bus {rule} ({state}, {mode})")
            }
            SourceStatus::Bus { rule, state, .. } => format!("D-Bus {rule} ({state})"),
            SourceStatus::Connectivity { address, method, interval_s, timeout_s, failures, network_events, probing, last } => {
                let now = if *probing { ", probing" } else { "" };
                let last = last.as_ref().map(|l| format!(", last {l}")).unwrap_or_default();
                format!(
                    "{method} {address} every {interval_s} s (timeout {timeout_s} s, CRITICAL after {failures}); network events {network_events}{now}{last}"
                )
            }
            SourceStatus::Program { command, interval_s, pid, last } => {
                let now = pid.map(|p| format!(", running (pid {p})")).unwrap_or_default();
                let last = last.as_ref().map(|l| format!(", last {l}")).unwrap_or_default();
                format!("every {interval_s} s: {command}{now}{last}")
            }
            SourceStatus::Disk { path, threshold, ok_at, interval_s, last, problem } => {
                let seen = match (last, problem) {
                    (_, Some(p)) => format!("cannot measure: {p}"),
                    (Some(l), None) => l.clone(),
                    (None, None) => "not sampled yet".into(),
                };
                format!("{path} every {interval_s} s, above {threshold}% (OK at {ok_at}%): {seen}")
            }
        }
    }
}

impl CheckStatus {
    /// The check's row of the status table.
    fn row(&self) -> [String; 6] {
        let source = self.source.as_ref().map_or_else(|| self.state.clone(), SourceStatus::describe);
        let level = self.level.clone().unwrap_or_else(|| "-".into());
        let since = self.last_match.clone().unwrap_or_else(|| "-".into());
        let log = matches!(self.source, Some(SourceStatus::File { .. } | SourceStatus::Command { .. } | SourceStatus::Bus { .. }));
        let expires = match (&self.level, &self.expires) {
            (Some(l), None) if l != "OK" && log => "never".into(),
            (_, e) => e.clone().unwrap_or_else(|| "-".into()),
        };
        let counts =
            ["lines", "alerts"].iter().map(|k| format!("{}", self.counters.get(*k).copied().unwrap_or(0))).collect::<Vec<_>>().join("/");
        [format!("{} {}", self.subsystem, self.name), level, source, since, expires, counts]
    }
}

impl Status {
    /// The table `lookout status` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{} (pid {}), up {} s since {}", self.version, self.pid, self.uptime_s, self.started);
        if self.checks.is_empty() {
            out.push_str("no enabled checks\n");
        }
        let rows: Vec<[String; 6]> = self.checks.iter().map(CheckStatus::row).collect();
        if !rows.is_empty() {
            let header = ["CHECK", "LEVEL", "SOURCE", "LAST MATCH", "EXPIRES", "LINES/ALERTS"];
            let widths: Vec<usize> =
                (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0)).collect();
            for r in std::iter::once(header.map(String::from)).chain(rows) {
                let cells: Vec<String> = r.iter().enumerate().map(|(i, c)| format!("{c:w$}", w = widths[i])).collect();
                let _ = writeln!(out, "{}", cells.join("  ").trim_end());
            }
        }
        for c in &self.checks {
            let nonzero: Vec<String> = c.counters.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k} {v}")).collect();
            if !nonzero.is_empty() {
                let _ = writeln!(out, "  {} {}: {}", c.subsystem, c.name, nonzero.join(", "));
            }
        }
        let u = &self.uplink;
        let _ = writeln!(
            out,
            "uplink: to {}, {} alerts waiting ({} bytes; at most {}), spool files {} bytes",
            u.destination, u.queue_depth, u.queue_bytes, u.queue_capacity, u.spool_bytes
        );
        if let Some(t) = &u.oldest_waiting {
            let _ = writeln!(out, "  oldest waiting since {t}");
        }
        if let Some(a) = &u.auth {
            let _ = writeln!(out, "  Mender client: {a}");
        }
        if let Some(w) = &u.waiting_for {
            let _ = writeln!(out, "  delivery waits: {w}");
        }
        if let Some(t) = &u.last_delivery {
            let _ = writeln!(out, "  last delivery {t}");
        }
        if let Some(e) = &u.last_error {
            let _ = writeln!(out, "  last error {e}");
        }
        if let Some(t) = &u.retry_at {
            let _ = writeln!(out, "  backing off, next try {t}");
        }
        if let Some(d) = &u.spool_degraded {
            let _ = writeln!(out, "  spool degraded: {d}");
        }
        let counts: Vec<String> = u.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "  {}", counts.join(", "));
        for d in &u.destinations {
            let _ = writeln!(out, "  to {}: {} alerts waiting", d.destination, d.queue_depth);
            for (what, v) in [("last delivery", &d.last_delivery), ("last error", &d.last_error), ("backing off, next try", &d.retry_at)] {
                if let Some(v) = v {
                    let _ = writeln!(out, "    {what} {v}");
                }
            }
            let counts: Vec<String> = d.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(out, "    {}", counts.join(", "));
        }
        let agent: Vec<String> = self.agent.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "agent: {}", agent.join(", "));
        out
    }
}
