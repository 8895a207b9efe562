//! Assembling `status` from the daemon's parts.

use std::collections::BTreeMap;

use super::Daemon;
use crate::control::status::{CheckStatus, Status, UplinkStatus};
use crate::time::{Now, rfc3339};

impl Daemon {
    /// Everything `lookout status` shows.
    pub(super) fn status(&self, now: Now) -> Status {
        Status {
            version: crate::cli::version(),
            pid: std::process::id(),
            started: rfc3339(self.started.wall),
            uptime_s: self.started.mono.until(now.mono) / 1000,
            checks: self.check_statuses(),
            uplink: self.uplink_status(),
            agent: self.agent_counters(),
        }
    }

    /// Every check that runs, and the enabled ones that do not, with the reason.
    fn check_statuses(&self) -> Vec<CheckStatus> {
        let mut checks: Vec<CheckStatus> = self.checks.values().map(|c| c.check.status()).collect();
        // Enabled checks that do not run, with the reason.
        for (id, problems) in &self.problems {
            if self.checks.contains_key(id) {
                continue;
            }
            checks.push(CheckStatus {
                subsystem: id.subsystem.clone(),
                name: id.name.clone(),
                state: format!("not running: {}", problems.join("; ")),
                source: None,
                level: None,
                alert: None,
                last_match: None,
                expires: None,
                counters: BTreeMap::new(),
            });
        }
        checks.sort_by(|a, b| (&a.subsystem, &a.name).cmp(&(&b.subsystem, &b.name)));
        checks
    }

    /// Delivery: the spool, the worker, the Mender client's token.
    fn uplink_status(&self) -> UplinkStatus {
        let u = self.uplink.snapshot();
        let (sp, rq) = (u.spool, u.requests);
        UplinkStatus {
            destination: self.destination(),
            queue_depth: u.waiting,
            queue_capacity: u.max_count,
            queue_bytes: u.waiting_bytes,
            spool_bytes: u.spool_bytes,
            oldest_waiting: u.oldest.map(rfc3339),
            auth: self.auth.as_ref().map(|a| a.state().to_string()),
            waiting_for: u.worker.waiting_for.clone(),
            last_delivery: u.worker.last_delivery.map(rfc3339),
            last_error: u.worker.last_error.map(|(t, e)| format!("{}: {e}", rfc3339(t))),
            retry_at: u.worker.retry_at.map(rfc3339),
            spool_degraded: (u.in_memory > 0).then(|| {
                format!(
                    "{} alerts held in memory only: {}",
                    u.in_memory,
                    u.spool_problem.as_deref().unwrap_or("the spool cannot be written")
                )
            }),
            counters: crate::control::status::counters(&[
                ("accepted", sp.appended),
                ("delivered", sp.delivered),
                ("in_flight", u.worker.in_flight as u64),
                ("rejected", sp.rejected),
                ("dropped_superseded", sp.dropped_superseded),
                ("dropped_age", sp.dropped_age),
                ("dropped_last_state", sp.dropped_latest),
                ("spool_write_errors", sp.write_errors),
                ("alerts_in_memory_only", u.in_memory),
                ("spool_read_errors", sp.read_errors),
                ("spool_corrupt_bytes", sp.corrupt_bytes),
                ("requests", rq.requests),
                ("failed_attempts", rq.failures),
                ("unauthorized", rq.unauthorized),
                ("bisections", rq.bisections),
                ("config_pushes", rq.config_pushes),
            ]),
            // One Mender or stdout destination: the fields above say it all.
            destinations: match u.destinations.len() > 1 || u.destinations.iter().any(|d| d.firing.is_some()) {
                true => u.destinations.iter().map(destination_status).collect(),
                false => Vec::new(),
            },
        }
    }

    /// The agent's own counters.
    fn agent_counters(&self) -> BTreeMap<String, u64> {
        let watch = self.io.watches.counters();
        let control = self.control.as_ref().map(|c| c.counters()).unwrap_or_default();
        let sd = self.io.systemd.counters();
        let mc = self.auth.as_ref().map(|a| a.counters()).unwrap_or_default();
        let nl = self.io.netlink.counters();
        let (resolvers, resolutions_refused) = crate::sources::probe::resolver_counts();
        crate::control::status::counters(&[
            ("systemd_connected", u64::from(self.io.systemd.connected())),
            ("systemd_connects", sd.connects),
            ("systemd_disconnects", sd.disconnects),
            ("systemd_failed_calls", sd.failed_calls),
            ("systemd_updates", sd.updates),
            ("systemd_malformed_messages", sd.malformed_messages),
            ("systemd_call_timeouts", sd.call_timeouts),
            ("systemd_oversized_messages", sd.oversized_messages),
            ("systemd_foreign_signals", sd.foreign_signals),
            ("mender_client_disconnects", mc.disconnects),
            ("mender_client_call_timeouts", mc.timeouts),
            ("mender_client_skipped_messages", mc.malformed + mc.oversized),
            ("mender_client_foreign_signals", self.auth.as_ref().map_or(0, |a| a.foreign_signals())),
            ("netlink_open", u64::from(self.io.netlink.is_open())),
            ("netlink_messages", nl.messages),
            ("netlink_changes", nl.changes),
            ("netlink_malformed", nl.malformed),
            ("netlink_overruns", nl.overruns),
            ("netlink_foreign", nl.foreign),
            ("netlink_errors", nl.errors),
            ("resolver_threads", resolvers),
            ("resolutions_refused", resolutions_refused),
            ("inotify_overflows", watch.overflows),
            ("inotify_watch_limit_hits", watch.limit_hits),
            // Command pipes, pidfds and `dbus` checks' bus connections in the poll.
            ("check_fds", self.io.check_fds.len() as u64),
            ("process_groups_stopping", self.reaper.len() as u64),
            ("state_saves", self.state.saves()),
            ("state_save_errors", self.state.save_errors()),
            ("state_save_slowest_ms", self.disk_waits.state_save_ms),
            ("state_write_slowest_ms", self.state.slowest_write_ms()),
            ("spool_sync_slowest_ms", self.disk_waits.spool_sync_ms),
            ("control_clients", self.control.as_ref().map_or(0, |c| c.clients()) as u64),
            ("control_accepted", control.accepted),
            ("control_refused_too_many", control.refused),
            ("control_timed_out", control.timed_out),
            ("control_bad_requests", control.bad_requests),
            ("control_accept_errors", control.accept_errors),
            ("open_files_limit", crate::fdlimit::limit()),
            ("inbox_alerts_taken", self.inbox_taken),
            ("inbox_files_refused", self.inbox_refused),
            ("config_files_refused", crate::config::file::refused()),
        ])
    }
}

/// One destination of several, for `status`.
fn destination_status(d: &crate::uplink::DestSnapshot) -> crate::control::status::DestinationStatus {
    let (firing, untracked) = d.firing.map_or((None, None), |(f, u)| (Some(f as u64), Some(u)));
    let mut counters = crate::control::status::counters(&[
        ("delivered", d.counters.delivered),
        ("rejected", d.counters.rejected),
        ("dropped", d.counters.dropped),
        ("requests", d.requests.requests),
        ("failed_attempts", d.requests.failures),
        ("in_flight", d.worker.in_flight as u64),
    ]);
    for (k, v) in [("firing", firing), ("lease_untracked", untracked)] {
        if let Some(v) = v {
            counters.insert(k.into(), v);
        }
    }
    crate::control::status::DestinationStatus {
        destination: d.name.clone(),
        queue_depth: d.waiting,
        last_delivery: d.worker.last_delivery.map(rfc3339),
        last_error: d.worker.last_error.as_ref().map(|(t, e)| format!("{}: {e}", rfc3339(*t))),
        retry_at: d.worker.retry_at.map(rfc3339),
        counters,
    }
}
