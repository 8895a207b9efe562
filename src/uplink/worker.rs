//! The worker thread: the only place that waits on the network. A thin driver around
//! [`Delivery`]: it reads the clock, does what each [`Action`] says (read payloads from the
//! spool, POST or print, wake the reactor, park), reports what came of it, and keeps the spool's
//! files in step with the index (the ack file, deleting delivered segments, rewriting a mostly
//! dead one). Idle, it parks without a timeout.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::backoff::Jitter;
use super::delivery::{Action, Delivery, Request};
use super::index::BatchItem;
use super::sink::{self, Http, Outcome};
use super::spool::{COMPACT_MIN_BYTES, SpoolReader};
use super::{Destination, Shared};
use crate::time::Clock;

pub(crate) struct Worker {
    shared: Arc<Shared>,
    reader: SpoolReader,
    http: Option<Http>,
    machine: Delivery,
    clock: Clock,
    acked_written: Option<u64>,
    /// The last failure to write the ack file, said once until it works again.
    ack_problem: Option<String>,
    /// Segments whose rewrite failed (not tried again this run).
    compact_failed: Vec<u64>,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, reader: SpoolReader, destination: &Destination) -> Worker {
        let http = (*destination != Destination::Stdout).then(Http::new);
        // Devices booted together still spread their retries: the wall clock and the pid.
        let seed = crate::time::wall_now().as_unix_ms() ^ (u64::from(std::process::id()) << 32);
        let machine = Delivery::new(http.is_some(), *destination == Destination::MenderClient, Jitter::seeded(seed));
        Worker {
            shared,
            reader,
            http,
            machine,
            clock: Clock::default(),
            acked_written: None,
            ack_problem: None,
            compact_failed: Vec::new(),
        }
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

    /// Reads the batch's payloads, sends them, reports the outcome.
    fn send(&mut self, batch: Vec<BatchItem>, request: Option<Request>) {
        let mut payloads = Vec::with_capacity(batch.len());
        for item in &batch {
            match self.reader.read(item) {
                Ok(p) => payloads.push(p),
                Err(e) => self.machine.on_unreadable(&mut self.shared.lock(), item.seq, &e),
            }
        }
        if payloads.is_empty() {
            return;
        }
        let outcome = match &request {
            Some(r) => self.post(r, &json_array(&payloads)),
            None => sink::print(&payloads),
        };
        self.machine.on_outcome(self.clock.now(), &mut self.shared.lock(), outcome);
    }

    /// Writes the ack, deletes segments with nothing waiting, rewrites one mostly dead one.
    fn housekeeping(&mut self) {
        let (acked, dead, sparse) = {
            let g = self.shared.lock();
            let sparse = g.index.sparse_segment(COMPACT_MIN_BYTES).filter(|s| !self.compact_failed.contains(s));
            (g.index.acked(), g.index.dead_segments(), sparse.map(|s| (s, g.index.records_in(s))))
        };
        if self.acked_written != Some(acked) {
            self.acked_written = Some(acked);
            match self.reader.write_ack(acked) {
                Ok(()) => {
                    if self.ack_problem.take().is_some() {
                        crate::info!("spool: recording deliveries again");
                    }
                }
                Err(e) => {
                    if self.ack_problem.as_deref() != Some(e.as_str()) {
                        crate::warn!("spool: cannot record deliveries ({e}); after a restart they are sent again");
                        self.ack_problem = Some(e);
                    }
                }
            }
        }
        for s in dead {
            if let Err(e) = self.reader.delete(s) {
                crate::warn!("spool: cannot delete {e}");
            }
            self.shared.lock().index.forget_segment(s);
        }
        if let Some((segment, records)) = sparse {
            match self.reader.compact(segment, &records) {
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
                    self.compact_failed.push(segment);
                }
            }
        }
    }
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
