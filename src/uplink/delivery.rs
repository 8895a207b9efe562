//! Delivery decisions, without a clock or a socket: what the worker does next ([`Delivery::step`])
//! and what a reply means for the alerts and the schedule ([`Delivery::on_outcome`]). The worker
//! thread ([`worker`](super::worker)) is the driver: it reads the clock, does what an [`Action`]
//! says (read payloads, POST or print, wake the reactor, park) and reports back.
//!
//! Each step does one thing: push the configuration if it is due, or send the oldest waiting
//! alerts as one batch (at most [`MAX_BATCH`] alerts and [`MAX_BATCH_BYTES`]), in order. What the
//! server answers decides the next step:
//!
//! - 2xx: the batch is done.
//! - 400/413/422: something in the batch is refused. The batch is halved until the refused
//!   record is alone, and only that one is dropped (logged with the server's reason); Mender
//!   Monitor drops the whole batch. If [`MAX_REFUSED_IN_A_ROW`] records are refused alone with no
//!   delivery between, it is the server, not the records: they are kept and retried.
//! - 401: with the Mender client, ask it for a new token (through the reactor) and retry when it
//!   comes, or after [`TOKEN_WAIT`]; with `--token`, back off.
//! - anything else: back off with full jitter (see [`backoff`](super::backoff)), at least as
//!   long as `Retry-After` says (seconds, or an HTTP date taken against the wall clock of `now`).
//!
//! On stop: one last attempt now, for at most [`SHUTDOWN_FLUSH`]; the rest stays in the spool.
//! Idle (nothing waiting, no push due) the answer is [`Action::Wait`]`(None)`: no wake-ups.

use std::sync::Arc;
use std::time::Duration;

use super::alertmanager::{self, Lease};
use super::backoff::{Backoff, Jitter};
use super::index::BatchItem;
use super::sink::{self, CONFIG_PATH, Outcome};
use super::{Credentials, Inner, MAX_BATCH, MAX_BATCH_BYTES, SHUTDOWN_FLUSH, TOKEN_WAIT};
use crate::alert::Alert;
use crate::time::{Instant, Now};

/// Records refused alone in a row, with no delivery between, after which the server is
/// suspected instead of the records.
pub const MAX_REFUSED_IN_A_ROW: u32 = 3;
/// The shortest request timeout during the final flush.
const MIN_FLUSH_TIMEOUT: Duration = Duration::from_millis(100);

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The full URL.
    pub url: String,
    /// The JWT (empty: no `Authorization` header).
    pub token: String,
    /// The most the whole request may take.
    pub timeout: Duration,
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read these records' payloads (reporting unreadable ones with
    /// [`Delivery::on_unreadable`]) and POST them as one JSON array, or print them on stdout
    /// when there is no request; then [`Delivery::on_outcome`].
    Send {
        /// The records, oldest first.
        batch: Vec<BatchItem>,
        /// `None`: stdout.
        request: Option<Request>,
    },
    /// Alertmanager: POST these firing alerts again (their lease is running out); then
    /// [`Delivery::on_outcome`].
    Resend {
        /// The alerts.
        alerts: Vec<Alert>,
        /// Where.
        request: Request,
    },
    /// POST the configuration; then [`Delivery::on_outcome`].
    PushConfig {
        /// The body.
        body: Arc<[u8]>,
        /// Where.
        request: Request,
    },
    /// Wake the reactor: it asks the Mender client for a token (the request is already set in
    /// the shared state); then step again.
    AskToken,
    /// Nothing to do until this instant (`None`: until woken by new alerts, settings, a token
    /// or the stop).
    Wait(Option<Instant>),
    /// The stop is done: write the last acknowledgement and end the thread.
    Exit,
}

/// What is under way between an action and its outcome.
#[derive(Debug)]
enum Pending {
    Alerts { items: Vec<BatchItem>, generation: u64, stop: bool },
    Config { generation: u64, token_generation: u64 },
    Resend { alerts: Vec<Alert> },
}

/// An Alertmanager destination: where, and its firing alerts.
#[derive(Debug)]
struct Am {
    url: String,
    lease: Lease,
}

/// The delivery state machine. All times are passed in.
#[derive(Debug)]
pub struct Delivery {
    /// Which destination this is (its bit in the index, its part of the shared state).
    dest: usize,
    /// An Alertmanager (else Mender or stdout).
    am: Option<Am>,
    /// Alerts go to a server (else to stdout).
    http: bool,
    /// Tokens come from the Mender client (a 401 asks it for a new one).
    mender: bool,
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// Most records per batch: halved while looking for a refused record.
    limit: usize,
    refused_in_a_row: u32,
    /// After a 401: the token generation that was refused, and until when to wait for a newer.
    awaiting_token: Option<(u64, Instant)>,
    /// When a token was last asked for while there was none.
    asked_token_at: Option<Instant>,
    /// A token is to be asked for at the next step.
    ask_pending: bool,
    /// The configuration generation last pushed (or refused), and when.
    config_sent: Option<(u64, Instant)>,
    config_retry_at: Option<Instant>,
    /// The last failure logged, to log a repeated one only at debug level.
    last_logged: Option<String>,
    stop_deadline: Option<Instant>,
    /// The stop came and the last attempt failed: exit at the next step.
    exiting: bool,
    pending: Option<Pending>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Delivery {
    /// A machine for a server (`http`), with tokens from the Mender client (`mender`), or for
    /// stdout; `jitter` spreads the retries.
    pub fn new(http: bool, mender: bool, jitter: Jitter) -> Delivery {
        Delivery {
            dest: 0,
            am: None,
            http,
            mender,
            backoff: Backoff::new(jitter),
            retry_at: None,
            limit: MAX_BATCH,
            refused_in_a_row: 0,
            awaiting_token: None,
            asked_token_at: None,
            ask_pending: false,
            config_sent: None,
            config_retry_at: None,
            last_logged: None,
            stop_deadline: None,
            exiting: false,
            pending: None,
        }
    }

    /// The machine of destination number `dest` (0 by default).
    pub fn for_destination(mut self, dest: usize) -> Delivery {
        self.dest = dest;
        self
    }

    /// The machine of an Alertmanager at base URL `url`, with the firing alerts an earlier run
    /// left (`firing`, re-sent at `now`).
    pub fn alertmanager(mut self, url: &str, firing: Vec<Alert>, now: Instant) -> Delivery {
        let mut lease = Lease::default();
        lease.restore(now, firing);
        self.am = Some(Am { url: url.to_string(), lease });
        self.http = true;
        self.mender = false;
        self
    }

    /// Alertmanager: its firing alerts.
    pub fn lease(&self) -> Option<&Lease> {
        self.am.as_ref().map(|a| &a.lease)
    }

    /// Alertmanager: the alerts of the batch just delivered, at `now` (before
    /// [`on_outcome`](Self::on_outcome)); whether the firing set changed (to save it).
    pub fn on_delivered_alerts(&mut self, now: Instant, g: &mut Inner, alerts: &[Alert]) -> bool {
        let Some(am) = self.am.as_mut() else { return false };
        let changed = am.lease.on_delivered(now, ms(g.settings.lease), alerts);
        g.dests[self.dest].firing = Some((am.lease.len(), am.lease.untracked));
        changed
    }

    /// What to do at `now`, given the shared state `g` (bounds are applied as time passes).
    pub fn step(&mut self, now: Now, g: &mut Inner) -> Action {
        let t = now.mono;
        g.enforce(now.wall);
        if g.stop && self.stop_deadline.is_none() {
            self.stop_deadline = Some(t.plus_ms(ms(SHUTDOWN_FLUSH)));
            self.retry_at = None; // one last attempt, now
            self.awaiting_token = None;
            self.ask_pending = false;
        }
        if self.exiting || self.stop_deadline.is_some_and(|d| t >= d) {
            return self.exit(g);
        }
        if std::mem::take(&mut self.ask_pending) {
            g.refresh_wanted = true;
            return Action::AskToken;
        }
        if let Some(r) = self.retry_at {
            if t < r {
                return Action::Wait(Some(self.until(r)));
            }
            self.retry_at = None;
            g.dests[self.dest].worker.retry_at = None;
        }
        let creds = match (&self.am, self.http) {
            (Some(am), _) => Some(Credentials { server: am.url.clone(), ..Credentials::default() }),
            (None, false) => None,
            (None, true) => match self.target(t, g) {
                Ok(c) => Some(c),
                Err(next) => return next,
            },
        };
        if let (Some(c), Some((body, generation)), None) = (&creds, &g.config, &self.am) {
            if !g.stop && self.config_due(*generation, t, g.settings.confpush_interval) {
                let request = Request { url: sink::join(&c.server, CONFIG_PATH), token: c.token.clone(), timeout: g.settings.timeout };
                self.pending = Some(Pending::Config { generation: *generation, token_generation: c.generation });
                return Action::PushConfig { body: Arc::clone(body), request };
            }
        }
        let batch = g.index.take_batch(self.dest, self.limit, MAX_BATCH_BYTES);
        if batch.is_empty() {
            if g.stop {
                return self.exit(g);
            }
            if let Some(a) = self.resend(t, g) {
                return a;
            }
            let lease = self.am.as_ref().and_then(|a| a.lease.next_due());
            return Action::Wait([self.next_config_push(g), lease].into_iter().flatten().min());
        }
        g.dests[self.dest].worker.in_flight = batch.len();
        let timeout = match self.stop_deadline {
            Some(d) => g.settings.timeout.min(Duration::from_millis(t.until(d))).max(MIN_FLUSH_TIMEOUT),
            None => g.settings.timeout,
        };
        let path = if self.am.is_some() { alertmanager::ALERTS_PATH } else { g.settings.alert_url.as_str() };
        let request = creds.as_ref().map(|c| {
            g.dests[self.dest].requests.requests += 1;
            Request { url: sink::join(&c.server, path), token: c.token.clone(), timeout }
        });
        let generation = creds.map_or(0, |c| c.generation);
        self.pending = Some(Pending::Alerts { items: batch.clone(), generation, stop: g.stop });
        Action::Send { batch, request }
    }

    /// Alertmanager: the firing alerts whose lease is due, as one request.
    fn resend(&mut self, t: Instant, g: &mut Inner) -> Option<Action> {
        let am = self.am.as_ref()?;
        let alerts = am.lease.due(t, MAX_BATCH);
        if alerts.is_empty() {
            return None;
        }
        g.dests[self.dest].requests.requests += 1;
        let request = Request { url: sink::join(&am.url, alertmanager::ALERTS_PATH), token: String::new(), timeout: g.settings.timeout };
        self.pending = Some(Pending::Resend { alerts: alerts.clone() });
        Some(Action::Resend { alerts, request })
    }

    /// The payload of record `seq` of the batch could not be read: it is dropped (counted,
    /// logged) and the batch goes on without it.
    pub fn on_unreadable(&mut self, g: &mut Inner, seq: u64, why: &str) {
        let Some(Pending::Alerts { items, .. }) = self.pending.as_mut() else { return };
        let Some(i) = items.iter().position(|it| it.seq == seq) else { return };
        let item = items.remove(i);
        g.index.discard(seq);
        g.index.counters.read_errors += 1;
        crate::error!("spool: {why}: dropped {}", item.label);
        if items.is_empty() {
            self.pending = None;
            g.index.release(self.dest);
            g.dests[self.dest].worker.in_flight = 0;
            if self.http {
                g.dests[self.dest].requests.requests = g.dests[self.dest].requests.requests.saturating_sub(1);
            }
        } else {
            g.dests[self.dest].worker.in_flight = items.len();
        }
    }

    /// What came of the last [`Action::Send`] or [`Action::PushConfig`], at `now`.
    pub fn on_outcome(&mut self, now: Now, g: &mut Inner, outcome: Outcome) {
        match self.pending.take() {
            Some(Pending::Alerts { items, generation, stop }) => self.after_alerts(now, g, &items, generation, stop, outcome),
            Some(Pending::Config { generation, token_generation }) => self.after_config(now, g, generation, token_generation, outcome),
            Some(Pending::Resend { alerts }) => self.after_resend(now, g, &alerts, outcome),
            None => {}
        }
    }

    /// The instant `t`, but no later than the stop deadline.
    fn until(&self, t: Instant) -> Instant {
        self.stop_deadline.map_or(t, |d| t.min(d))
    }

    /// The server and token to use, or what to do while there is none.
    fn target(&mut self, t: Instant, g: &mut Inner) -> Result<Credentials, Action> {
        let creds = &g.creds;
        if creds.token.is_empty() && self.mender || creds.server.is_empty() {
            if g.stop {
                return Err(self.exit(g));
            }
            g.dests[self.dest].worker.waiting_for = Some(creds.problem.clone().unwrap_or_else(|| "no token".into()));
            if g.index.waiting_for(self.dest) == 0 {
                // Nothing to send: a new token or a new alert wakes the worker.
                return Err(Action::Wait(None));
            }
            let resend = ms(g.settings.resend_interval);
            if self.asked_token_at.is_none_or(|a| a.until(t) >= resend) {
                self.asked_token_at = Some(t);
                g.refresh_wanted = true;
                return Err(Action::AskToken);
            }
            return Err(Action::Wait(Some(t.plus_ms(resend))));
        }
        if let Some((generation, until)) = self.awaiting_token {
            if creds.generation == generation && t < until {
                g.dests[self.dest].worker.waiting_for = Some("a new token from the Mender client (the last one was refused)".into());
                return Err(Action::Wait(Some(self.until(until))));
            }
            self.awaiting_token = None;
        }
        g.dests[self.dest].worker.waiting_for = None;
        Ok(g.creds.clone())
    }

    fn config_due(&self, generation: u64, t: Instant, interval: Duration) -> bool {
        if self.config_retry_at.is_some_and(|r| t < r) {
            return false;
        }
        match self.config_sent {
            None => true,
            Some((g, at)) => g != generation || (!interval.is_zero() && at.until(t) >= ms(interval)),
        }
    }

    /// When the next periodic push (or a push retry) is due, if any.
    fn next_config_push(&self, g: &Inner) -> Option<Instant> {
        g.config.as_ref()?;
        if !self.http {
            return None;
        }
        let interval = g.settings.confpush_interval;
        let periodic = match self.config_sent {
            Some((_, at)) if !interval.is_zero() => Some(at.plus_ms(ms(interval))),
            _ => None,
        };
        [periodic, self.config_retry_at].into_iter().flatten().min()
    }

    fn after_config(&mut self, now: Now, g: &mut Inner, generation: u64, token_generation: u64, outcome: Outcome) {
        let t = now.mono;
        match outcome {
            Outcome::Delivered => {
                self.config_sent = Some((generation, t));
                self.config_retry_at = None;
                g.dests[self.dest].requests.config_pushes += 1;
                crate::debug!("configuration pushed");
            }
            Outcome::Refused(why) => {
                crate::error!("{why}: the server refuses the configuration; it is pushed again when it changes or after CONFPUSH_INTERVAL");
                self.config_sent = Some((generation, t));
                self.config_retry_at = None;
            }
            Outcome::Unauthorized(why) => self.unauthorized(now, g, &why, token_generation),
            Outcome::Retry { why, after } => {
                // Not the alerts' backoff: a server without the configuration endpoint must
                // not hold alerts up.
                let after = after.map(|a| a.delay(now.wall)).unwrap_or_default();
                let wait = after.max(g.settings.resend_interval);
                crate::warn!("{why}; pushing the configuration again in {} s", wait.as_secs());
                self.config_retry_at = Some(t.plus_ms(ms(wait)));
            }
        }
    }

    fn after_resend(&mut self, now: Now, g: &mut Inner, alerts: &[Alert], outcome: Outcome) {
        let Some(am) = self.am.as_mut() else { return };
        let next = match outcome {
            Outcome::Delivered => {
                g.dests[self.dest].worker.last_delivery = Some(now.wall);
                ms(g.settings.lease) / 2
            }
            Outcome::Refused(why) | Outcome::Unauthorized(why) | Outcome::Retry { why, .. } => {
                crate::warn!("{why}: renewing the lease of {} firing alerts failed; trying again", alerts.len());
                g.dests[self.dest].requests.failures += 1;
                g.dests[self.dest].worker.last_error = Some((now.wall, why));
                ms(g.settings.resend_interval.min(g.settings.lease / 4)).max(1_000)
            }
        };
        am.lease.resent(alerts, now.mono.plus_ms(next));
    }

    fn after_alerts(&mut self, now: Now, g: &mut Inner, items: &[BatchItem], generation: u64, stop: bool, outcome: Outcome) {
        match outcome {
            Outcome::Delivered => {
                let seqs: Vec<u64> = items.iter().map(|i| i.seq).collect();
                g.index.complete(self.dest, &seqs);
                g.dests[self.dest].worker.in_flight = 0;
                g.dests[self.dest].worker.last_delivery = Some(now.wall);
                g.dests[self.dest].worker.retry_at = None;
                if self.backoff.failures() > 0 {
                    crate::info!("delivering again after {} failed attempts", self.backoff.failures());
                }
                crate::debug!("delivered {} alerts", items.len());
                self.backoff.reset();
                self.refused_in_a_row = 0;
                self.last_logged = None;
            }
            Outcome::Refused(why) if items.len() > 1 => {
                g.index.release(self.dest);
                g.dests[self.dest].requests.bisections += 1;
                g.dests[self.dest].worker.in_flight = 0;
                self.limit = (items.len() / 2).max(1);
                crate::warn!("{why}: the server refuses something in a batch of {}; sending halves to find it", items.len());
            }
            Outcome::Refused(why) if self.refused_in_a_row >= MAX_REFUSED_IN_A_ROW => {
                g.index.release(self.dest);
                let why = format!(
                    "{why} (the server refused {} alerts in a row on their own: suspecting the server; keeping them)",
                    self.refused_in_a_row
                );
                self.fail(now, g, why, None, stop);
            }
            Outcome::Refused(why) => {
                let Some(item) = items.first() else { return };
                g.index.refuse(self.dest, item.seq);
                g.dests[self.dest].worker.in_flight = 0;
                g.dests[self.dest].worker.last_error = Some((now.wall, why.clone()));
                let total = g.index.dest_counters(self.dest).rejected;
                crate::error!("{why}: the server refuses {} on its own; dropped it ({total} refused so far)", item.label);
                self.refused_in_a_row += 1;
                self.limit = MAX_BATCH;
            }
            Outcome::Unauthorized(why) => {
                g.index.release(self.dest);
                self.unauthorized(now, g, &why, generation);
                self.exiting |= stop;
            }
            Outcome::Retry { why, after } => {
                g.index.release(self.dest);
                let after = after.map(|a| a.delay(now.wall));
                self.fail(now, g, why, after, stop);
            }
        }
    }

    fn unauthorized(&mut self, now: Now, g: &mut Inner, why: &str, generation: u64) {
        g.dests[self.dest].requests.unauthorized += 1;
        if self.mender {
            crate::warn!("{why}: the token was refused; asking the Mender client for a new one");
            self.awaiting_token = Some((generation, now.mono.plus_ms(ms(TOKEN_WAIT))));
            self.ask_pending = true;
        }
        self.fail(now, g, format!("{why} (token refused)"), None, false);
    }

    /// A failed attempt: back off (at least `after`); if the stop had come, that was the last.
    fn fail(&mut self, now: Now, g: &mut Inner, why: String, after: Option<Duration>, stop: bool) {
        let delay = self.backoff.next(g.settings.max_interval, g.settings.resend_interval, after);
        self.retry_at = Some(now.mono.plus_ms(ms(delay)));
        g.dests[self.dest].requests.failures += 1;
        g.dests[self.dest].worker.in_flight = 0;
        g.dests[self.dest].worker.last_error = Some((now.wall, why.clone()));
        g.dests[self.dest].worker.retry_at = Some(now.wall.plus_ms(ms(delay)));
        let waiting = g.index.waiting_for(self.dest);
        if self.last_logged.as_deref() != Some(why.as_str()) {
            crate::warn!("{why}; {waiting} alerts kept, trying again in {:.1} s", delay.as_secs_f32());
            self.last_logged = Some(why);
        } else {
            crate::debug!("{why}; {waiting} alerts kept, trying again in {:.1} s", delay.as_secs_f32());
        }
        self.exiting |= stop;
    }

    fn exit(&mut self, g: &mut Inner) -> Action {
        let waiting = g.index.waiting_for(self.dest) as u64;
        g.dests[self.dest].requests.left_at_exit = waiting;
        // Alerts held in memory (the spool could not be written) are the uplink's to report:
        // they are not in the spool.
        let on_disk = waiting.saturating_sub(g.index.in_memory() as u64);
        if on_disk > 0 {
            crate::info!("stopping: {on_disk} alerts stay in the spool for the next start");
        }
        Action::Exit
    }
}

#[cfg(test)]
mod tests;
