//! The worker thread: the only place that waits on the network. A thin driver around
//! [`Delivery`]: it reads the clock, does what each [`Action`] says (read payloads from the
//! spool, POST or print, wake the reactor, park), reports what came of it, and keeps the spool's
//! files in step with the index (the ack file, deleting delivered segments, rewriting a mostly
//! dead one). Idle, it parks without a timeout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::alertmanager::{self, Mapping};
use super::backoff::Jitter;
use super::delivery::{Action, Delivery, Request};
use super::index::BatchItem;
use super::sink::{self, Http, Outcome};
use super::spool::{COMPACT_MIN_BYTES, SpoolReader};
use super::{Destination, Shared};
use crate::alert::{Alert, Level};
use crate::time::{Clock, Now};

/// The spool's files, shared by every worker under one lock (see [`Shared::files`]).
pub(crate) struct SpoolFiles {
    reader: SpoolReader,
    acked_written: Option<u64>,
    /// Per destination when there are several: its tag and the cursor last written.
    dest_acks: Vec<(String, Option<u64>)>,
    /// The last failure to write an ack file, said once until it works again.
    ack_problem: Option<String>,
    /// Segments whose rewrite failed (not tried again this run).
    compact_failed: Vec<u64>,
}

impl SpoolFiles {
    pub fn new(reader: SpoolReader, destinations: &[Destination]) -> SpoolFiles {
        let dest_acks = if destinations.len() > 1 { destinations.iter().map(|d| (d.tag(), None)).collect() } else { Vec::new() };
        SpoolFiles { reader, acked_written: None, dest_acks, ack_problem: None, compact_failed: Vec::new() }
    }
}

pub(crate) struct Worker {
    shared: Arc<Shared>,
    http: Option<Http>,
    machine: Delivery,
    clock: Clock,
    /// Alertmanager: the file that keeps its firing alerts across restarts.
    firing_file: Option<PathBuf>,
    /// The hostname: the `device` label unless `ALERT_LABELS` sets it.
    hostname: String,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, dest: usize, destination: &Destination, spool_dir: &Path) -> Worker {
        let http = (*destination != Destination::Stdout).then(Http::new);
        // Devices booted together still spread their retries: the wall clock and the pid.
        let seed = crate::time::wall_now().as_unix_ms() ^ (u64::from(std::process::id()) << 32) ^ dest as u64;
        let clock = Clock::default();
        let mut machine =
            Delivery::new(http.is_some(), *destination == Destination::MenderClient, Jitter::seeded(seed)).for_destination(dest);
        let mut firing_file = None;
        if let Destination::Alertmanager { url } = destination {
            let path = spool_dir.join(format!("firing.{}.json", destination.tag()));
            let firing: Vec<Alert> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
            if !firing.is_empty() {
                crate::info!("{}: {} alerts fired before the restart; renewing their lease", destination.describe(), firing.len());
            }
            machine = machine.alertmanager(url, firing, clock.now().mono);
            firing_file = Some(path);
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
        let hostname = if hostname.is_empty() { "unknown".to_string() } else { hostname };
        Worker { shared, http, machine, clock, firing_file, hostname }
    }

    pub fn run(mut self) {
        loop {
            self.housekeeping();
            let now = self.clock.now();
            let action = self.machine.step(now, &mut self.shared.lock());
            match action {
                Action::Send { batch, request } => self.send(batch, request),
                Action::PushConfig { body, request } => {
                    let outcome = self.post(&request, &body);
                    self.machine.on_outcome(self.clock.now(), &mut self.shared.lock(), outcome);
                }
                Action::Resend { alerts, request } => {
                    let body = self.alertmanager_body(&alerts, now);
                    let outcome = self.post(&request, &body);
                    self.machine.on_outcome(self.clock.now(), &mut self.shared.lock(), outcome);
                }
                Action::AskToken => self.shared.wake_reactor(),
                Action::Wait(None) => thread::park(),
                Action::Wait(Some(t)) => thread::park_timeout(Duration::from_millis(now.mono.until(t))),
                Action::Exit => {
                    self.housekeeping();
                    return;
                }
            }
        }
    }

    fn post(&self, request: &Request, body: &[u8]) -> Outcome {
        match &self.http {
            Some(http) => http.post(&request.url, &request.token, body, request.timeout),
            None => Outcome::Retry { why: "no HTTP client for stdout".into(), after: None },
        }
    }

    /// Reads the batch's payloads (where they are now: a rewrite may have moved them since the
    /// batch was taken), sends them, reports the outcome.
    fn send(&mut self, batch: Vec<BatchItem>, request: Option<Request>) {
        let mut payloads = Vec::with_capacity(batch.len());
        {
            let mut files = self.shared.files();
            for item in batch {
                let Some(loc) = self.shared.lock().index.location(item.seq) else { continue };
                match files.reader.read(&BatchItem { loc, ..item }) {
                    Ok(p) => payloads.push(p),
                    Err(e) => self.machine.on_unreadable(&mut self.shared.lock(), item.seq, &e),
                }
            }
        }
        if payloads.is_empty() {
            return;
        }
        let now = self.clock.now();
        let alerts = self.machine.lease().is_some().then(|| parse_alerts(&payloads));
        let outcome = match (&request, &alerts) {
            (Some(r), Some(alerts)) => self.post(r, &self.alertmanager_body(alerts, now)),
            (Some(r), None) => self.post(r, &json_array(&payloads)),
            (None, _) => sink::print(&payloads),
        };
        let now = self.clock.now();
        let mut g = self.shared.lock();
        if let (Outcome::Delivered, Some(alerts)) = (&outcome, &alerts) {
            if self.machine.on_delivered_alerts(now.mono, &mut g, alerts) {
                let firing = self.machine.lease().map(|l| l.alerts()).unwrap_or_default();
                drop(g);
                self.save_firing(&firing);
                g = self.shared.lock();
            }
        }
        self.machine.on_outcome(now, &mut g, outcome);
    }

    /// The body of a POST to Alertmanager: each alert mapped at `now` with the settings in
    /// force; an OK takes its severity from the alert it ends.
    fn alertmanager_body(&self, alerts: &[Alert], now: Now) -> Vec<u8> {
        let (labels, device, lease) = {
            let g = self.shared.lock();
            (g.settings.labels.clone(), g.settings.device.clone(), g.settings.lease)
        };
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        let map = Mapping { device: device.unwrap_or_else(|| self.hostname.clone()), labels, lease_ms };
        let lease = self.machine.lease();
        let body: Vec<serde_json::Value> = alerts
            .iter()
            .map(|a| {
                let severity = match a.level {
                    Level::Ok => lease.and_then(|l| l.severity(a)).unwrap_or(Level::Critical),
                    l => l,
                };
                alertmanager::to_alertmanager(a, severity, &map, now.wall)
            })
            .collect();
        serde_json::to_vec(&body).unwrap_or_else(|_| b"[]".to_vec())
    }

    /// Keeps the firing alerts for the next start (temporary file, then rename).
    fn save_firing(&self, firing: &[Alert]) {
        let Some(path) = &self.firing_file else { return };
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec(firing).unwrap_or_else(|_| b"[]".to_vec());
        let written = super::spool::private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&body))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            crate::warn!("{}: {e}; after a restart the lease of firing alerts is renewed only when they change", path.display());
        }
    }

    /// Writes the acks, deletes segments with nothing waiting, rewrites one mostly dead one.
    fn housekeeping(&mut self) {
        let mut files = self.shared.files();
        let files = &mut *files;
        let (acked, dest_acked, dead, sparse) = {
            let g = self.shared.lock();
            let sparse = g.index.sparse_segment(COMPACT_MIN_BYTES).filter(|s| !files.compact_failed.contains(s));
            let dest_acked: Vec<u64> = (0..files.dest_acks.len()).map(|d| g.index.acked_for(d)).collect();
            (g.index.acked(), dest_acked, g.index.dead_segments(), sparse.map(|s| (s, g.index.records_in(s))))
        };
        let mut problem = None;
        for (d, seq) in dest_acked.into_iter().enumerate() {
            let (tag, written) = &mut files.dest_acks[d];
            if *written != Some(seq) {
                *written = Some(seq);
                problem = problem.or(files.reader.write_dest_ack(tag, seq).err());
            }
        }
        if files.acked_written != Some(acked) {
            files.acked_written = Some(acked);
            problem = problem.or(files.reader.write_ack(acked).err());
        }
        match problem {
            None if files.ack_problem.take().is_some() => crate::info!("spool: recording deliveries again"),
            Some(e) if files.ack_problem.as_deref() != Some(e.as_str()) => {
                crate::warn!("spool: cannot record deliveries ({e}); after a restart they are sent again");
                files.ack_problem = Some(e);
            }
            _ => {}
        }
        for s in dead {
            if let Err(e) = files.reader.delete(s) {
                crate::warn!("spool: cannot delete {e}");
            }
            self.shared.lock().index.forget_segment(s);
        }
        if let Some((segment, records)) = sparse {
            match files.reader.compact(segment, &records) {
                Ok((moved, size)) => {
                    let mut g = self.shared.lock();
                    g.index.relocate(segment, &moved, size);
                    for (seq, _, _) in records.iter().filter(|r| !moved.iter().any(|m| m.0 == r.0)) {
                        if let Some(label) = g.index.discard(*seq) {
                            g.index.counters.read_errors += 1;
                            crate::error!("spool: record {seq} did not check out when segment {segment:x} was rewritten: dropped {label}");
                        }
                    }
                }
                Err(e) => {
                    crate::warn!("spool: {e}");
                    files.compact_failed.push(segment);
                }
            }
        }
    }
}

/// The alerts of a batch; a payload that does not read as one is said and left out.
fn parse_alerts(payloads: &[Vec<u8>]) -> Vec<Alert> {
    payloads
        .iter()
        .filter_map(|p| match serde_json::from_slice::<Alert>(p) {
            Ok(a) => Some(a),
            Err(e) => {
                crate::error!("spool: a record is not an alert ({e}); Alertmanager does not get it");
                None
            }
        })
        .collect()
}

/// A JSON array of alert payloads (each is one JSON object).
fn json_array(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(payloads.iter().map(|p| p.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, p) in payloads.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(p);
    }
    body.push(b']');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_make_a_json_array() {
        assert_eq!(json_array(&[]), b"[]");
        let v: serde_json::Value = serde_json::from_slice(&json_array(&[br#"{"a":1}"#.to_vec(), br#"{"b":2}"#.to_vec()])).unwrap();
        assert_eq!(v, serde_json::json!([{"a": 1}, {"b": 2}]));
    }
}
