//! The worker thread: the only place that waits on the network.
//!
//! Each step does one thing and says when to come back: push the configuration if it is due,
//! or send the oldest waiting alerts as one batch (at most [`MAX_BATCH`] alerts and
//! [`MAX_BATCH_BYTES`]), in order. What the server answers decides the next step:
//!
//! - 2xx: the batch is done; the ack file and old segments follow.
//! - 400/413/422: something in the batch is refused. The batch is halved until the refused
//!   record is alone, and only that one is dropped (logged with the server's reason); Mender
//!   Monitor drops the whole batch. If records keep being refused alone with no delivery
//!   between, it is the server, not the records: they are kept and retried.
//! - 401: with the Mender client, ask it for a new token (through the reactor) and retry when it
//!   comes, or after [`TOKEN_WAIT`]; with `--token`, back off.
//! - anything else: back off with full jitter (see [`backoff`](super::backoff)), at least as
//!   long as `Retry-After` says.
//!
//! On stop: one last attempt now, for at most [`SHUTDOWN_FLUSH`]; the rest stays in the spool.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::backoff::{Backoff, Jitter};
use super::index::BatchItem;
use super::sink::{self, CONFIG_PATH, Http, Outcome};
use super::spool::{COMPACT_MIN_BYTES, SpoolReader};
use super::{Credentials, Destination, MAX_BATCH, MAX_BATCH_BYTES, SHUTDOWN_FLUSH, Shared, TOKEN_WAIT, UplinkSettings, WorkerState};

/// Records refused alone in a row, with no delivery between, after which the server is
/// suspected instead of the records.
const MAX_REFUSED_IN_A_ROW: u32 = 3;

enum Next {
    Again,
    Park(Option<Duration>),
    Exit,
}

pub(crate) struct Worker {
    shared: Arc<Shared>,
    reader: SpoolReader,
    destination: Destination,
    http: Option<Http>,
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// Most records per batch: halved while looking for a refused record.
    limit: usize,
    refused_in_a_row: u32,
    /// After a 401: the token generation that was refused, and until when to wait for a newer.
    awaiting_token: Option<(u64, Instant)>,
    /// When the worker last asked for a token while it had none.
    asked_token_at: Option<Instant>,
    /// The configuration generation last pushed (or refused), and when.
    config_sent: Option<(u64, Instant)>,
    config_retry_at: Option<Instant>,
    acked_written: Option<u64>,
    /// Segments whose rewrite failed (not tried again this run).
    compact_failed: Vec<u64>,
    /// The last failure logged, to log a repeated one only at debug level.
    last_logged: Option<String>,
    stop_deadline: Option<Instant>,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, reader: SpoolReader, destination: Destination) -> Worker {
        let http = (destination != Destination::Stdout).then(Http::new);
        Worker {
            shared,
            reader,
            destination,
            http,
            backoff: Backoff::new(Jitter::from_entropy()),
            retry_at: None,
            limit: MAX_BATCH,
            refused_in_a_row: 0,
            awaiting_token: None,
            asked_token_at: None,
            config_sent: None,
            config_retry_at: None,
            acked_written: None,
            compact_failed: Vec::new(),
            last_logged: None,
            stop_deadline: None,
        }
    }

    pub fn run(mut self) {
        loop {
            match self.step() {
                Next::Again => {}
                Next::Park(None) => thread::park(),
                Next::Park(Some(d)) => thread::park_timeout(d),
                Next::Exit => return,
            }
        }
    }

    fn state(&self, f: impl FnOnce(&mut WorkerState)) {
        f(&mut self.shared.lock().worker);
    }

    /// How long to wait for `t`, no later than the stop deadline.
    fn until(&self, t: Instant, now: Instant) -> Duration {
        let t = self.stop_deadline.map_or(t, |d| t.min(d));
        t.saturating_duration_since(now)
    }

    fn step(&mut self) -> Next {
        let now = Instant::now();
        let (stop, settings, creds, config) = {
            let mut g = self.shared.lock();
            // The age bound applies as time passes, not only when alerts arrive.
            g.enforce(crate::time::wall_now_ms());
            (g.stop, g.settings.clone(), g.creds.clone(), g.config.clone())
        };
        if stop && self.stop_deadline.is_none() {
            self.stop_deadline = Some(now + SHUTDOWN_FLUSH);
            self.retry_at = None; // one last attempt, now
            self.awaiting_token = None;
        }
        if self.stop_deadline.is_some_and(|d| now >= d) {
            return self.exit();
        }
        self.housekeeping();
        if let Some(t) = self.retry_at {
            if now < t {
                return Next::Park(Some(self.until(t, now)));
            }
            self.retry_at = None;
            self.state(|w| w.retry_at_ms = None);
        }
        let target = match self.http.is_some() {
            false => None,
            true => match self.target(&creds, &settings, stop, now) {
                Ok(c) => Some(c),
                Err(next) => return next,
            },
        };
        if let (Some(c), Some((body, generation))) = (&target, &config) {
            if !stop && self.config_due(*generation, now, settings.confpush_interval) {
                return self.push_config(c, body, *generation, &settings, now);
            }
        }
        let batch = self.shared.lock().index.take_batch(self.limit, MAX_BATCH_BYTES);
        if batch.is_empty() {
            if stop {
                return self.exit();
            }
            return Next::Park(self.next_config_push(now, &settings, config.as_ref().map(|c| c.1)));
        }
        let mut items = Vec::with_capacity(batch.len());
        let mut payloads = Vec::with_capacity(batch.len());
        for item in batch {
            match self.reader.read(&item) {
                Ok(p) => {
                    payloads.push(p);
                    items.push(item);
                }
                Err(e) => {
                    let mut g = self.shared.lock();
                    g.index.discard(item.seq);
                    g.index.counters.read_errors += 1;
                    drop(g);
                    crate::error!("spool: {e}: dropped {}", item.label);
                }
            }
        }
        if items.is_empty() {
            self.shared.lock().index.release();
            return Next::Again;
        }
        self.state(|w| w.in_flight = items.len());
        let timeout = match self.stop_deadline {
            Some(d) => settings.timeout.min(d.saturating_duration_since(now)).max(Duration::from_millis(100)),
            None => settings.timeout,
        };
        let outcome = match (&self.http, &target) {
            (Some(http), Some(c)) => {
                self.shared.lock().requests.requests += 1;
                let url = sink::join(&c.server, &settings.alert_url);
                http.post(&url, &c.token, &json_array(&payloads), timeout)
            }
            _ => sink::print(&payloads),
        };
        self.after_alerts(outcome, &items, &creds, &settings, stop)
    }

    /// The server and token to use, or what to do while there is none.
    fn target(&mut self, creds: &Credentials, settings: &UplinkSettings, stop: bool, now: Instant) -> Result<Credentials, Next> {
        if creds.token.is_empty() && self.destination == Destination::MenderClient || creds.server.is_empty() {
            if stop {
                return Err(self.exit());
            }
            let why = creds.problem.clone().unwrap_or_else(|| "no token".into());
            self.state(|w| w.waiting_for = Some(why));
            if self.shared.lock().index.is_empty() {
                // Nothing to send: a new token or a new alert unparks the worker.
                return Err(Next::Park(None));
            }
            if self.asked_token_at.is_none_or(|t| now.duration_since(t) >= settings.resend_interval) {
                self.asked_token_at = Some(now);
                self.request_token();
            }
            return Err(Next::Park(Some(settings.resend_interval)));
        }
        if let Some((generation, until)) = self.awaiting_token {
            if creds.generation == generation && now < until {
                self.state(|w| w.waiting_for = Some("a new token from the Mender client (the last one was refused)".into()));
                return Err(Next::Park(Some(self.until(until, now))));
            }
            self.awaiting_token = None;
        }
        self.state(|w| w.waiting_for = None);
        Ok(creds.clone())
    }

    fn request_token(&self) {
        self.shared.lock().refresh_wanted = true;
        self.shared.wake_reactor();
    }

    fn config_due(&self, generation: u64, now: Instant, interval: Duration) -> bool {
        if self.config_retry_at.is_some_and(|t| now < t) {
            return false;
        }
        match self.config_sent {
            None => true,
            Some((g, at)) => g != generation || (!interval.is_zero() && now.duration_since(at) >= interval),
        }
    }

    /// When the next periodic push (or a push retry) is due, if any.
    fn next_config_push(&self, now: Instant, settings: &UplinkSettings, generation: Option<u64>) -> Option<Duration> {
        generation?;
        self.http.as_ref()?;
        let periodic = match self.config_sent {
            Some((_, at)) if !settings.confpush_interval.is_zero() => Some(at + settings.confpush_interval),
            _ => None,
        };
        [periodic, self.config_retry_at].into_iter().flatten().min().map(|t| t.saturating_duration_since(now))
    }

    fn push_config(&mut self, c: &Credentials, body: &[u8], generation: u64, settings: &UplinkSettings, now: Instant) -> Next {
        let Some(http) = self.http.as_ref() else { return Next::Again };
        let url = sink::join(&c.server, CONFIG_PATH);
        match http.post(&url, &c.token, body, settings.timeout) {
            Outcome::Delivered => {
                self.config_sent = Some((generation, now));
                self.config_retry_at = None;
                self.shared.lock().requests.config_pushes += 1;
                crate::debug!("configuration pushed to {url}");
            }
            Outcome::Refused(why) => {
                crate::error!("{why}: the server refuses the configuration; it is pushed again when it changes or after CONFPUSH_INTERVAL");
                self.config_sent = Some((generation, now));
            }
            Outcome::Unauthorized(why) => self.unauthorized(&why, c, settings, now),
            Outcome::Retry { why, after } => {
                // Not the alerts' backoff: a server without the configuration endpoint must
                // not hold alerts up.
                let wait = after.unwrap_or(settings.resend_interval).max(settings.resend_interval);
                crate::warn!("{why}; pushing the configuration again in {} s", wait.as_secs());
                self.config_retry_at = Some(now + wait);
            }
        }
        Next::Again
    }

    fn after_alerts(&mut self, outcome: Outcome, items: &[BatchItem], creds: &Credentials, settings: &UplinkSettings, stop: bool) -> Next {
        let now = Instant::now();
        match outcome {
            Outcome::Delivered => {
                let seqs: Vec<u64> = items.iter().map(|i| i.seq).collect();
                let failures = self.backoff.failures();
                let mut g = self.shared.lock();
                g.index.complete(&seqs);
                g.worker.in_flight = 0;
                g.worker.last_delivery_ms = Some(crate::time::wall_now_ms());
                g.worker.retry_at_ms = None;
                drop(g);
                if failures > 0 {
                    crate::info!("delivering again after {failures} failed attempts");
                }
                crate::debug!("delivered {} alerts", items.len());
                self.backoff.reset();
                self.refused_in_a_row = 0;
                self.last_logged = None;
                Next::Again
            }
            Outcome::Refused(why) if items.len() > 1 => {
                let mut g = self.shared.lock();
                g.index.release();
                g.requests.bisections += 1;
                g.worker.in_flight = 0;
                drop(g);
                self.limit = (items.len() / 2).max(1);
                crate::warn!("{why}: the server refuses something in a batch of {}; sending halves to find it", items.len());
                Next::Again
            }
            Outcome::Refused(why) if self.refused_in_a_row >= MAX_REFUSED_IN_A_ROW => {
                self.shared.lock().index.release();
                let why = format!(
                    "{why} (the server refused {} alerts in a row on their own: suspecting the server; keeping them)",
                    self.refused_in_a_row
                );
                self.fail(why, None, settings, stop, now)
            }
            Outcome::Refused(why) => {
                let item = &items[0];
                let mut g = self.shared.lock();
                g.index.discard(item.seq);
                g.index.counters.rejected += 1;
                g.worker.in_flight = 0;
                g.worker.last_error = Some((crate::time::wall_now_ms(), why.clone()));
                let total = g.index.counters.rejected;
                drop(g);
                crate::error!("{why}: the server refuses {} on its own; dropped it ({total} refused so far)", item.label);
                self.refused_in_a_row += 1;
                self.limit = MAX_BATCH;
                Next::Again
            }
            Outcome::Unauthorized(why) => {
                self.shared.lock().index.release();
                self.unauthorized(&why, creds, settings, now);
                if stop { self.exit() } else { Next::Again }
            }
            Outcome::Retry { why, after } => {
                self.shared.lock().index.release();
                self.fail(why, after, settings, stop, now)
            }
        }
    }

    fn unauthorized(&mut self, why: &str, creds: &Credentials, settings: &UplinkSettings, now: Instant) {
        self.shared.lock().requests.unauthorized += 1;
        if self.destination == Destination::MenderClient {
            crate::warn!("{why}: the token was refused; asking the Mender client for a new one");
            self.awaiting_token = Some((creds.generation, now + TOKEN_WAIT));
            self.request_token();
        }
        self.fail(format!("{why} (token refused)"), None, settings, false, now);
    }

    /// A failed attempt: back off.
    fn fail(&mut self, why: String, after: Option<Duration>, settings: &UplinkSettings, stop: bool, now: Instant) -> Next {
        let delay = self.backoff.next(settings.max_interval, settings.resend_interval, after);
        self.retry_at = Some(now + delay);
        let wall = crate::time::wall_now_ms();
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let mut g = self.shared.lock();
        g.requests.failures += 1;
        g.worker.in_flight = 0;
        g.worker.last_error = Some((wall, why.clone()));
        g.worker.retry_at_ms = Some(wall.saturating_add(delay_ms));
        let waiting = g.index.len();
        drop(g);
        if self.last_logged.as_deref() != Some(why.as_str()) {
            crate::warn!("{why}; {waiting} alerts kept, trying again in {:.1} s", delay.as_secs_f32());
            self.last_logged = Some(why);
        } else {
            crate::debug!("{why}; {waiting} alerts kept, trying again in {:.1} s", delay.as_secs_f32());
        }
        if stop { self.exit() } else { Next::Again }
    }

    fn exit(&mut self) -> Next {
        self.housekeeping();
        let mut g = self.shared.lock();
        let left = g.index.len() as u64;
        g.requests.left_at_exit = left;
        drop(g);
        if left > 0 {
            crate::info!("stopping: {left} alerts stay in the spool for the next start");
        }
        Next::Exit
    }

    /// Writes the ack, deletes segments with nothing waiting, rewrites one mostly dead one.
    fn housekeeping(&mut self) {
        let (acked, dead, sparse) = {
            let g = self.shared.lock();
            let sparse = g.index.sparse_segment(COMPACT_MIN_BYTES).filter(|s| !self.compact_failed.contains(s));
            (g.index.acked(), g.index.dead_segments(), sparse.map(|s| (s, g.index.records_in(s))))
        };
        if self.acked_written != Some(acked) {
            match self.reader.write_ack(acked) {
                Ok(()) => self.acked_written = Some(acked),
                Err(e) => {
                    if self.acked_written.is_some() || self.last_logged.as_deref() != Some(e.as_str()) {
                        crate::warn!("spool: cannot record deliveries ({e}); after a restart they are sent again");
                    }
                    self.acked_written = Some(acked);
                }
            }
        }
        for s in dead {
            match self.reader.delete(s) {
                Ok(()) => self.shared.lock().index.forget_segment(s),
                Err(e) => {
                    crate::warn!("spool: cannot delete {e}");
                    self.shared.lock().index.forget_segment(s);
                }
            }
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
