//! Getting alerts to the server without losing any, offline or across a crash.
//!
//! The reactor appends every alert to the spool (a small write, then one `fdatasync` per turn
//! that had alerts, by policy) before it counts as accepted, adds it to the index and wakes
//! the workers. The worker threads own every blocking call: each takes the oldest alerts
//! waiting for its destination in batches (bounded in count and bytes), reads them back, POSTs
//! them, and records what was delivered. They share one mutex for the index, held only for
//! in-memory steps, never across I/O, and one for the spool's files.
//!
//! Several destinations at once (the Mender server or stdout, each Alertmanager peer): one
//! worker thread and one [`delivery::Delivery`] each, with its own cursor over the one spool
//! (see [`index`]), its own backoff and credentials, so one that is down never holds up another.
//!
//! - [`record`], [`spool`], [`index`]: the durable queue and its bounds;
//! - [`delivery`]: what to send next and what a reply means (400 bisection, token refresh,
//!   backoff, the lease's renewals, the final flush), without a clock; [`worker`]: the thread
//!   that drives it;
//! - [`sink`]: HTTP and stdout; [`backoff`]: when to retry;
//! - [`alertmanager`]: what an alert becomes for Prometheus Alertmanager, and the lease of a
//!   firing one;
//! - [`mender_auth`]: the JWT from the Mender client over D-Bus (driven by the reactor);
//! - [`confpush`]: the configuration the server is told about.

pub mod alertmanager;
pub mod backoff;
pub mod confpush;
mod delivery;
pub mod inbox;
pub mod index;
pub mod mender_auth;
pub mod record;
pub mod sink;
pub mod spool;
mod worker;

use crate::time::Wall;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::alert::Alert;
use crate::config::settings::Settings;
use crate::time::{Instant, Now};
use index::{Bounds, DropReason, Dropped, Index, SpoolCounters};
use mender_auth::AuthUpdate;
use spool::{Fsync, SpoolWriter};

/// Most alerts in one POST.
pub const MAX_BATCH: usize = 100;
/// Most bytes of alerts in one POST (a bigger single alert is sent alone).
pub const MAX_BATCH_BYTES: u64 = 512 * 1024;
/// How long a stopping agent keeps trying to deliver; the rest stays in the spool.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
/// Beyond [`SHUTDOWN_FLUSH`], how long a stop waits for a request that was already under way
/// (its own timeout is `SEND_ALERT_TIMEOUT_S`); then the agent exits without it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// How long the worker waits for a new token after a 401 before trying the old one again.
pub const TOKEN_WAIT: Duration = Duration::from_millis(mender_auth::FETCH_WAIT_MS + 5_000);
/// Drops logged one by one per minute; more are summed up (all are counted).
pub const DROPS_LOGGED_PER_MINUTE: u32 = 20;
/// First retry of writing alerts held in memory, when no new alert comes to retry it.
pub const HELD_RETRY_FIRST_MS: u64 = 1_000;
/// Longest wait between retries of writing alerts held in memory.
pub const HELD_RETRY_MAX_MS: u64 = 30_000;

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// JSON lines on stdout (`--stdout`): the local sink, no server.
    Stdout,
    /// A server given on the command line (`--server`, `--token`).
    Server {
        /// Base URL.
        url: String,
        /// JWT (may be empty).
        token: String,
    },
    /// The server and token the Mender client gives over D-Bus (the default).
    MenderClient,
    /// One Alertmanager (a peer of a cluster is one each), `POST <url>/api/v2/alerts`.
    Alertmanager {
        /// Base URL.
        url: String,
    },
}

impl Destination {
    /// For the log and `status`.
    pub fn describe(&self) -> String {
        match self {
            Destination::Stdout => "stdout".into(),
            Destination::Server { url, .. } => url.clone(),
            Destination::MenderClient => "the Mender client's server".into(),
            Destination::Alertmanager { url } => format!("Alertmanager {url}"),
        }
    }

    /// A short name that stays the same across restarts, for the files of its cursor and lease.
    pub fn tag(&self) -> String {
        let id = match self {
            Destination::Stdout => "stdout".to_string(),
            Destination::Server { url, .. } => format!("server {url}"),
            Destination::MenderClient => "mender".to_string(),
            Destination::Alertmanager { url } => format!("alertmanager {}", url.trim_end_matches('/')),
        };
        format!("{:08x}", crate::crc32c::crc32c(&[id.as_bytes()]))
    }

    /// Whether it takes the Mender JSON over HTTP with the credentials of `--server` or the
    /// Mender client (one such destination at most).
    pub fn is_mender(&self) -> bool {
        matches!(self, Destination::Server { .. } | Destination::MenderClient)
    }
}

/// Where alerts go, as the command line says it; `ALERTMANAGER_URL` fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinations {
    /// `--server`, `--stdout`, else the Mender client; `None`: `--alertmanager` alone.
    pub main: Option<Destination>,
    /// `--alertmanager` URLs; when none, config.sh's `ALERTMANAGER_URL` ones.
    pub alertmanagers: Vec<String>,
}

impl Destinations {
    /// The destinations in order: the main one, then each Alertmanager peer.
    pub fn resolve(&self, settings: &Settings) -> Vec<Destination> {
        let ams = if self.alertmanagers.is_empty() { &settings.alertmanager_urls } else { &self.alertmanagers };
        let peers = ams.iter().map(|u| Destination::Alertmanager { url: u.clone() });
        self.main.iter().cloned().chain(peers).collect()
    }
}

/// The settings the uplink follows, from config.sh (applied live).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkSettings {
    /// `ALERT_URL`: a path joined to the server URL, or a full URL.
    pub alert_url: String,
    /// `SEND_ALERT_MAX_INTERVAL_S`: the backoff cap (0: no backoff, retry every resend interval).
    pub max_interval: Duration,
    /// `DEFAULT_ALERT_STORE_RESEND_INTERVAL_S`.
    pub resend_interval: Duration,
    /// `CONFPUSH_INTERVAL` (0: push only on change).
    pub confpush_interval: Duration,
    /// `SEND_ALERT_TIMEOUT_S`: a whole request.
    pub timeout: Duration,
    /// The spool's bounds.
    pub bounds: Bounds,
    /// `ALERT_STORE_FSYNC`.
    pub fsync: Fsync,
    /// `ALERT_LABELS` (checked; `device=` apart).
    pub labels: Vec<(String, String)>,
    /// `device=` of `ALERT_LABELS`, else the hostname.
    pub device: Option<String>,
    /// `ALERTMANAGER_LEASE_S`.
    pub lease: Duration,
}

impl UplinkSettings {
    /// From the global settings.
    pub fn from_settings(s: &Settings) -> UplinkSettings {
        UplinkSettings {
            alert_url: s.alert_url.clone(),
            max_interval: Duration::from_secs(s.send_alert_max_interval_s),
            resend_interval: Duration::from_secs(s.alert_store_resend_interval_s.max(1)),
            confpush_interval: Duration::from_secs(s.confpush_interval_s),
            timeout: Duration::from_secs(s.send_alert_timeout_s.max(1)),
            bounds: Bounds {
                max_count: s.alert_offline_store_max_count,
                max_bytes: s.alert_store_max_bytes,
                max_age_ms: s.alert_store_max_record_age_s.saturating_mul(1000),
            },
            fsync: s.alert_store_fsync,
            labels: s.alert_labels.iter().filter(|(k, _)| k != "device").cloned().collect(),
            device: s.alert_labels.iter().find(|(k, _)| k == "device").map(|(_, v)| v.clone()),
            lease: Duration::from_secs(s.alertmanager_lease_s.max(2)),
        }
    }
}

/// The server URL and token to use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Base URL (empty: none yet).
    pub server: String,
    /// JWT (empty: none).
    pub token: String,
    /// Bumped on every new token, so the worker can tell a refresh arrived.
    pub generation: u64,
    /// Why there is no usable token, if there is none.
    pub problem: Option<String>,
}

/// What the worker is doing, for `status`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerState {
    /// Alerts in the request being made.
    pub in_flight: usize,
    /// Last successful delivery, Unix ms.
    pub last_delivery: Option<Wall>,
    /// Last failure, Unix ms, and what it was.
    pub last_error: Option<(Wall, String)>,
    /// While backing off: when the next attempt is due, Unix ms.
    pub retry_at: Option<Wall>,
    /// What delivery waits for, if anything but the server (a token).
    pub waiting_for: Option<String>,
}

/// Counters of requests, for `status` (per destination; summed for the whole uplink).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RequestCounters {
    /// Alert POSTs made.
    pub requests: u64,
    /// Attempts that failed and will be retried.
    pub failures: u64,
    /// 401 answers.
    pub unauthorized: u64,
    /// Batches split after a 400.
    pub bisections: u64,
    /// Configuration pushes delivered.
    pub config_pushes: u64,
    /// Alerts still waiting when the agent stopped (they stay in the spool).
    pub left_at_exit: u64,
}

impl RequestCounters {
    /// Both summed.
    pub fn plus(&self, o: &RequestCounters) -> RequestCounters {
        RequestCounters {
            requests: self.requests + o.requests,
            failures: self.failures + o.failures,
            unauthorized: self.unauthorized + o.unauthorized,
            bisections: self.bisections + o.bisections,
            config_pushes: self.config_pushes + o.config_pushes,
            left_at_exit: self.left_at_exit.max(o.left_at_exit),
        }
    }
}

/// Rate limit for the log lines about dropped alerts.
#[derive(Debug, Default)]
struct DropLog {
    window_start: Wall,
    logged: u32,
    suppressed: u64,
}

impl DropLog {
    fn log(&mut self, now: Wall, dropped: &[Dropped]) {
        for d in dropped {
            if now.since(self.window_start) >= 60_000 {
                if self.suppressed > 0 {
                    crate::warn!(
                        "spool: {} more alerts were dropped in the last minute without a log line each (status has the counters)",
                        self.suppressed
                    );
                }
                *self = DropLog { window_start: now, logged: 0, suppressed: 0 };
            }
            if self.logged >= DROPS_LOGGED_PER_MINUTE {
                self.suppressed += 1;
                continue;
            }
            self.logged += 1;
            let bound = match d.reason {
                DropReason::Age => "ALERT_STORE_MAX_RECORD_AGE_S",
                DropReason::Count => "ALERT_OFFLINE_STORE_MAX_COUNT",
                DropReason::Bytes => "ALERT_STORE_MAX_BYTES",
            };
            if d.superseded {
                crate::warn!("spool: {bound} reached: dropped {}, superseded by a newer state of the same alert", d.label);
            } else {
                crate::error!("spool: {bound} reached: dropped {}, the last state of that alert: the server will not see it", d.label);
            }
        }
    }
}

/// One destination's part of the shared state.
#[derive(Debug, Default, Clone)]
pub(crate) struct DestState {
    /// What its worker does.
    pub worker: WorkerState,
    /// Its requests.
    pub requests: RequestCounters,
    /// Alertmanager: alerts firing (their lease is renewed), and those not kept.
    pub firing: Option<(usize, u64)>,
}

/// The state the threads share.
pub(crate) struct Inner {
    pub index: Index,
    pub settings: UplinkSettings,
    pub creds: Credentials,
    /// The worker wants a new token.
    pub refresh_wanted: bool,
    /// The configuration to push, and its generation.
    pub config: Option<(Arc<[u8]>, u64)>,
    /// Per destination, in the order of [`Uplink::start`]'s list.
    pub dests: Vec<DestState>,
    pub stop: bool,
    drops: DropLog,
}

impl Inner {
    /// The shared state at start: what the spool holds, the settings, the credentials.
    pub fn new(index: Index, settings: UplinkSettings, creds: Credentials) -> Inner {
        Inner {
            index,
            settings,
            creds,
            refresh_wanted: false,
            config: None,
            dests: vec![DestState::default()],
            stop: false,
            drops: DropLog::default(),
        }
    }

    /// Applies the bounds and logs what they dropped.
    pub fn enforce(&mut self, now: Wall) {
        let dropped = self.index.enforce(now, self.settings.bounds);
        self.drops.log(now, &dropped);
    }
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// The spool's files (reads, acks, deletes, rewrites): one reader for all workers, so a
    /// rewrite never happens under another's read. Locked before `inner`, never after.
    files: Mutex<worker::SpoolFiles>,
    /// Wakes the reactor (token refresh requests).
    waker: Option<mio::Waker>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere aborts the process (panic = "abort"); in tests, carry on.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn files(&self) -> MutexGuard<'_, worker::SpoolFiles> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn wake_reactor(&self) {
        if let Some(w) = &self.waker {
            if let Err(e) = w.wake() {
                crate::warn!("cannot wake the reactor: {e}");
            }
        }
    }
}

/// Everything `status` shows of the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkSnapshot {
    /// Alerts waiting.
    pub waiting: u64,
    /// Their record bytes.
    pub waiting_bytes: u64,
    /// When the oldest was accepted, Unix ms.
    pub oldest: Option<Wall>,
    /// Bytes of the spool's segment files.
    pub spool_bytes: u64,
    /// The worker.
    pub worker: WorkerState,
    /// Spool counters.
    pub spool: SpoolCounters,
    /// Every destination.
    pub destinations: Vec<DestSnapshot>,
    /// Request counters.
    pub requests: RequestCounters,
    /// The count bound.
    pub max_count: u64,
    /// Waiting alerts held only in memory (the spool cannot be written): a crash loses them.
    pub in_memory: u64,
    /// Why the spool cannot be written, while it cannot.
    pub spool_problem: Option<String>,
}

/// One destination in `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestSnapshot {
    /// Where.
    pub name: String,
    /// Alerts waiting for it.
    pub waiting: u64,
    /// Its worker.
    pub worker: WorkerState,
    /// Its requests.
    pub requests: RequestCounters,
    /// Its spool counters.
    pub counters: index::DestCounters,
    /// Alertmanager: alerts firing (lease renewed), and firing alerts not kept (over the bound).
    pub firing: Option<(usize, u64)>,
}

/// The reactor's end of the uplink.
pub struct Uplink {
    shared: Arc<Shared>,
    writer: SpoolWriter,
    workers: Vec<JoinHandle<()>>,
    /// Disconnected when every worker thread has ended.
    worker_done: Receiver<()>,
    destinations: Vec<Destination>,
    appended: bool,
    last_config: Vec<u8>,
    config_generation: u64,
    /// While alerts are held in memory: when to try writing them again, and the wait after.
    held_retry: Option<(Instant, u64)>,
}

impl Uplink {
    /// Opens the spool in `spool_dir` (alerts a previous run left are delivered first) and
    /// starts one worker per destination (at most [`index::MAX_DESTINATIONS`]; at most one
    /// Mender destination). `waker` lets the Mender worker ask the reactor for a new token.
    pub fn start(
        destinations: Vec<Destination>,
        spool_dir: &Path,
        settings: UplinkSettings,
        waker: Option<mio::Waker>,
        now: Wall,
    ) -> std::io::Result<Uplink> {
        let mut destinations = destinations;
        destinations.truncate(index::MAX_DESTINATIONS);
        if destinations.is_empty() {
            destinations.push(Destination::Stdout);
        }
        let mut loaded = spool::load(spool_dir, settings.fsync, now);
        for p in &loaded.problems {
            crate::warn!("{p}");
        }
        for n in &loaded.notes {
            crate::info!("{n}");
        }
        if destinations.len() > 1 {
            loaded.index.set_destinations(destinations.len());
            for (i, d) in destinations.iter().enumerate() {
                if let Some(seq) = spool::read_dest_ack(spool_dir, &d.tag()) {
                    loaded.index.delivered_upto(i, seq);
                }
            }
        }
        let creds = match destinations.iter().find(|d| d.is_mender()) {
            Some(Destination::Server { url, token }) => {
                Credentials { server: url.clone(), token: token.clone(), generation: 1, problem: None }
            }
            Some(Destination::MenderClient) => {
                Credentials { problem: Some("no token from the Mender client yet".into()), ..Credentials::default() }
            }
            _ => Credentials::default(),
        };
        let mut inner = Inner::new(loaded.index, settings, creds);
        inner.dests = vec![DestState::default(); destinations.len()];
        for (st, d) in inner.dests.iter_mut().zip(&destinations) {
            if let Destination::Alertmanager { .. } = d {
                st.firing = Some((0, 0));
            }
        }
        inner.enforce(now);
        let files = worker::SpoolFiles::new(loaded.reader, &destinations);
        let shared = Arc::new(Shared { inner: Mutex::new(inner), files: Mutex::new(files), waker });
        let (done, worker_done) = mpsc::channel::<()>();
        let mut workers = Vec::with_capacity(destinations.len());
        for (i, d) in destinations.iter().enumerate() {
            let w = worker::Worker::new(Arc::clone(&shared), i, d, spool_dir);
            let done = done.clone();
            workers.push(thread::Builder::new().name(format!("uplink-{i}")).spawn(move || {
                let _done = done; // dropped when the thread ends, however it ends
                w.run()
            })?);
        }
        Ok(Uplink {
            shared,
            writer: loaded.writer,
            workers,
            worker_done,
            destinations,
            appended: false,
            last_config: Vec::new(),
            config_generation: 0,
            held_retry: None,
        })
    }

    /// Where alerts go, in order.
    pub fn destinations(&self) -> &[Destination] {
        &self.destinations
    }

    fn unpark_all(&self) {
        for w in &self.workers {
            w.thread().unpark();
        }
    }

    /// Accepts an alert: written to the spool (synced at [`commit`](Self::commit)), indexed,
    /// bounds applied. If the disk refuses it, or alerts held before it are still not written,
    /// it is held in memory (see [`all_durable`](Self::all_durable)).
    pub fn push(&mut self, alert: &Alert, now: Now) {
        let payload = alert.to_json().into_bytes();
        let (key, label) = spool::key_and_label(&alert.name, alert.level.as_str(), &alert.subject.name);
        // Segments hold records in sequence order: the held ones go first, or this one waits too.
        let (meta, written) = if self.write_held() {
            self.writer.append(&payload, key, label, now.wall)
        } else {
            (self.writer.hold(&payload, key, label, now.wall), Err(String::new()))
        };
        let mut g = self.shared.lock();
        g.index.set_head(self.writer.head_id());
        match written {
            Ok(bytes) => g.index.grow_segment(self.writer.head_id(), bytes),
            Err(_) => g.index.counters.write_errors += 1,
        }
        g.index.insert(meta);
        g.enforce(now.wall);
        let held = g.index.in_memory() > 0;
        drop(g);
        if held && self.held_retry.is_none() {
            self.held_retry = Some((now.mono.plus_ms(HELD_RETRY_FIRST_MS), HELD_RETRY_FIRST_MS));
        }
        self.appended = true;
    }

    /// Ends a turn's appends: the workers are woken, then one `fdatasync` (by policy) for all of
    /// them. The workers read the records from the page cache, so sending need not wait for
    /// the disk: the sync is what a power cut needs, not what delivery needs, and an alert
    /// delivered before its sync is only delivered sooner. Returns
    /// [`all_durable`](Self::all_durable).
    pub fn commit(&mut self) -> bool {
        if std::mem::take(&mut self.appended) {
            self.unpark_all();
            if let Err(e) = self.writer.sync() {
                crate::error!("{e}");
            }
        }
        self.all_durable()
    }

    /// Whether every accepted alert still waiting is in the spool (or delivered): false while
    /// some are held only in memory, which a crash would lose. The reactor saves no read
    /// position past an alert while this is false.
    pub fn all_durable(&self) -> bool {
        self.shared.lock().index.in_memory() == 0
    }

    /// When [`on_tick`](Self::on_tick) wants to run: only while alerts are held in memory.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held_retry.map(|(at, _)| at)
    }

    /// Tries again to write the alerts held in memory (the disk may take them now); if it
    /// still cannot, the next try waits twice as long, up to [`HELD_RETRY_MAX_MS`].
    pub fn on_tick(&mut self, now: Now) {
        let Some((at, wait)) = self.held_retry else { return };
        if now.mono < at {
            return;
        }
        if self.write_held() {
            self.held_retry = None;
            if let Err(e) = self.writer.sync() {
                crate::error!("{e}");
            }
        } else {
            let next = wait.saturating_mul(2).min(HELD_RETRY_MAX_MS);
            self.held_retry = Some((now.mono.plus_ms(wait), next));
        }
    }

    /// Writes the alerts held in memory to the spool, oldest first, as far as the disk takes
    /// them; whether none is left in memory. The lock is not held across the writes.
    fn write_held(&mut self) -> bool {
        let held = self.shared.lock().index.held();
        if held.is_empty() {
            return true;
        }
        let mut written = Vec::with_capacity(held.len());
        for (seq, payload) in &held {
            match self.writer.write_record(*seq, payload) {
                Ok(at) => written.push((*seq, at)),
                Err(_) => break,
            }
        }
        let mut g = self.shared.lock();
        g.index.set_head(self.writer.head_id());
        for &(seq, (segment, offset, bytes)) in &written {
            g.index.grow_segment(segment, bytes);
            // Delivered meanwhile from memory: then only dead bytes, acknowledged already.
            g.index.held_written(seq, segment, offset);
        }
        let left = g.index.in_memory();
        drop(g);
        if !written.is_empty() {
            crate::info!("spool: {} alerts held in memory are now on disk; {left} still held", written.len());
        }
        left == 0
    }

    /// New settings from config.sh.
    pub fn set_settings(&mut self, settings: UplinkSettings, now: Wall) {
        self.writer.set_fsync(settings.fsync);
        let mut g = self.shared.lock();
        if g.settings != settings {
            g.settings = settings;
            g.enforce(now);
            drop(g);
            self.unpark_all();
        }
    }

    /// The configuration to push; pushed when it changed (and every `CONFPUSH_INTERVAL`).
    pub fn set_config(&mut self, body: Vec<u8>) {
        if body == self.last_config && self.config_generation > 0 {
            return;
        }
        self.config_generation += 1;
        self.shared.lock().config = Some((body.clone().into(), self.config_generation));
        self.last_config = body;
        self.unpark_all();
    }

    /// What the Mender client said about the token.
    pub fn set_credentials(&mut self, update: AuthUpdate) {
        let mut g = self.shared.lock();
        match update {
            AuthUpdate::Token { token, server_url } => {
                g.creds = Credentials { server: server_url, token, generation: g.creds.generation + 1, problem: None };
            }
            AuthUpdate::NoToken(why) => {
                g.creds.token.clear();
                g.creds.problem = Some(why);
            }
        }
        drop(g);
        self.unpark_all();
    }

    /// Whether the worker asked for a new token since the last call.
    pub fn take_refresh_request(&mut self) -> bool {
        std::mem::take(&mut self.shared.lock().refresh_wanted)
    }

    /// For `status`.
    pub fn snapshot(&self) -> UplinkSnapshot {
        let g = self.shared.lock();
        let in_memory = g.index.in_memory() as u64;
        let destinations = self
            .destinations
            .iter()
            .zip(&g.dests)
            .enumerate()
            .map(|(i, (d, st))| DestSnapshot {
                name: d.describe(),
                waiting: g.index.waiting_for(i) as u64,
                worker: st.worker.clone(),
                requests: st.requests,
                counters: g.index.dest_counters(i),
                firing: st.firing,
            })
            .collect();
        let first = g.dests.first().cloned().unwrap_or_default();
        UplinkSnapshot {
            waiting: g.index.len() as u64,
            waiting_bytes: g.index.bytes(),
            oldest: g.index.oldest(),
            spool_bytes: g.index.segment_bytes(),
            worker: first.worker,
            spool: g.index.counters,
            destinations,
            requests: g.dests.iter().fold(RequestCounters::default(), |a, d| a.plus(&d.requests)),
            max_count: g.settings.bounds.max_count,
            in_memory,
            spool_problem: self.writer.problem().filter(|_| in_memory > 0).map(str::to_string),
        }
    }

    /// Stops the worker after a last delivery attempt of at most [`SHUTDOWN_FLUSH`]; what is
    /// not delivered stays in the spool for the next start. A request already under way when
    /// the stop came (a server that hangs) is not waited for beyond [`SHUTDOWN_GRACE`]: the
    /// process exits with it, and its alerts, not acknowledged, are sent again next time.
    /// Alerts held in memory are written once more; those the disk still refuses are said to
    /// be lost with the process (their lines are read again at the next start: the reactor
    /// saved no position past them).
    pub fn shutdown(mut self) {
        self.commit();
        self.write_held();
        if let Err(e) = self.writer.sync() {
            crate::error!("{e}");
        }
        self.shared.lock().stop = true;
        self.unpark_all();
        if let Err(RecvTimeoutError::Timeout) = self.worker_done.recv_timeout(SHUTDOWN_FLUSH + SHUTDOWN_GRACE) {
            crate::warn!("a request to the server is still under way; stopping without it (its alerts are sent again next time)");
        } else if self.workers.drain(..).any(|w| w.join().is_err()) {
            crate::error!("an uplink worker panicked");
        }
        let held = self.shared.lock().index.in_memory();
        if held > 0 {
            crate::error!(
                "stopping: {held} alerts were held in memory only ({}) and are lost with this process; \
                 their lines are read again at the next start (read positions were not saved past them)",
                self.writer.problem().unwrap_or("the spool could not be written")
            );
        }
    }
}
