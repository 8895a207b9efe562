//! Getting alerts off the reactor thread: a fixed-size lock-free ring (heapless SPSC) into a
//! worker thread that owns every blocking call (HTTP, stdout) and delivers in order, batching what
//! is queued.
//!
//! The reactor never waits: [`Uplink::push`] either enqueues and wakes the worker, or counts and
//! logs an overflow. The worker retries a failed batch with capped exponential backoff and keeps
//! order. The crash-safe spool, token refresh and 400 bisection build on this shape later: the
//! worker is the only place that talks to the server.

pub mod backoff;
pub mod index;
pub mod record;
pub mod sink;
pub mod spool;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use heapless::spsc::{Consumer, Producer, Queue};

use crate::alert::Alert;
pub use sink::{SendError, Sink, SinkConfig};

/// Slots of the in-memory ring (one is kept free by the SPSC algorithm: 256 alerts fit).
pub const QUEUE_SLOTS: usize = 257;
/// Most alerts in one POST.
pub const MAX_BATCH: usize = 100;
/// First retry delay after a failed delivery.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long a stopping agent keeps trying to deliver what is queued.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// Counters shared by the reactor and the worker.
#[derive(Debug, Default)]
pub struct UplinkCounters {
    /// Alerts accepted into the ring.
    pub queued: AtomicU64,
    /// Alerts refused because the ring was full.
    pub overflowed: AtomicU64,
    /// Alerts delivered.
    pub delivered: AtomicU64,
    /// Alerts the server refused for good.
    pub rejected: AtomicU64,
    /// Failed delivery attempts.
    pub failures: AtomicU64,
    /// Alerts still queued when the agent stopped.
    pub undelivered_at_exit: AtomicU64,
}

/// What the worker is doing, for `status`. The worker holds the lock only to update it, never
/// across a request, so the reactor never waits on it for long.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WorkerState {
    /// Alerts taken from the ring and not yet delivered.
    pub in_flight: usize,
    /// Last successful delivery, Unix ms.
    pub last_delivery_ms: Option<u64>,
    /// Last failure, Unix ms, and what it was.
    pub last_error: Option<(u64, String)>,
    /// While backing off: when the next attempt is due, Unix ms.
    pub retry_at_ms: Option<u64>,
}

struct Shared {
    stop: AtomicBool,
    counters: UplinkCounters,
    state: Mutex<WorkerState>,
}

/// The reactor's end of the uplink.
pub struct Uplink {
    producer: Producer<'static, Alert>,
    worker: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Uplink {
    /// Starts the worker thread with `config`'s sink; `max_interval` caps the retry backoff
    /// (`SEND_ALERT_MAX_INTERVAL_S`; zero retries at the first delay).
    pub fn start(config: &SinkConfig, max_interval: Duration) -> std::io::Result<Uplink> {
        // The ring lives as long as the process; leaking it gives both ends a 'static borrow.
        let queue: &'static mut Queue<Alert, QUEUE_SLOTS> = Box::leak(Box::new(Queue::new()));
        let (producer, consumer) = queue.split();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            counters: UplinkCounters::default(),
            state: Mutex::new(WorkerState::default()),
        });
        let sink = Sink::new(config);
        let worker_shared = Arc::clone(&shared);
        let worker = thread::Builder::new()
            .name("uplink".into())
            .spawn(move || Worker { consumer, sink, shared: worker_shared, max_interval }.run())?;
        Ok(Uplink { producer, worker, shared })
    }

    /// Hands an alert to the worker without waiting. A full ring drops the alert, counted and
    /// logged with its name.
    pub fn push(&mut self, alert: Alert) {
        match self.producer.enqueue(alert) {
            Ok(()) => {
                self.shared.counters.queued.fetch_add(1, Ordering::Relaxed);
                self.worker.thread().unpark();
            }
            Err(alert) => {
                let n = self.shared.counters.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
                crate::error!(
                    "alert queue full ({} alerts waiting for the server): dropped {} {:?} ({n} dropped so far)",
                    QUEUE_SLOTS - 1,
                    alert.level.as_str(),
                    alert.name
                );
                self.worker.thread().unpark();
            }
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> &UplinkCounters {
        &self.shared.counters
    }

    /// Alerts waiting in the ring.
    pub fn queued(&self) -> usize {
        self.producer.len()
    }

    /// What the worker is doing.
    pub fn worker_state(&self) -> WorkerState {
        self.shared.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops the worker after a last delivery attempt of at most [`SHUTDOWN_FLUSH`] (plus one
    /// request timeout).
    pub fn shutdown(self) {
        self.shared.stop.store(true, Ordering::Release);
        self.worker.thread().unpark();
        if self.worker.join().is_err() {
            crate::error!("the uplink worker panicked");
        }
    }
}

struct Worker {
    consumer: Consumer<'static, Alert>,
    sink: Sink,
    shared: Arc<Shared>,
    max_interval: Duration,
}

impl Worker {
    fn update(&self, f: impl FnOnce(&mut WorkerState)) {
        if let Ok(mut s) = self.shared.state.lock() {
            f(&mut s);
        }
    }

    fn run(mut self) {
        let c = &self.shared.counters;
        let mut batch: Vec<Alert> = Vec::new();
        let mut delay = FIRST_RETRY;
        let mut retry_at: Option<Instant> = None;
        let mut stop_deadline: Option<Instant> = None;
        loop {
            let stopping = self.shared.stop.load(Ordering::Acquire);
            if stopping && stop_deadline.is_none() {
                stop_deadline = Some(Instant::now() + SHUTDOWN_FLUSH);
            }
            while batch.len() < MAX_BATCH {
                match self.consumer.dequeue() {
                    Some(a) => batch.push(a),
                    None => break,
                }
            }
            if batch.is_empty() {
                if stopping {
                    return;
                }
                thread::park();
                continue;
            }
            let now = Instant::now();
            if stop_deadline.is_some_and(|d| now >= d) {
                let left = batch.len() + self.consumer.len();
                c.undelivered_at_exit.fetch_add(left as u64, Ordering::Relaxed);
                crate::error!("stopping: {left} alerts could not be delivered");
                return;
            }
            if let Some(t) = retry_at.filter(|t| now < *t) {
                let wait = match stop_deadline {
                    Some(d) => (t - now).min(d.saturating_duration_since(now)),
                    None => t - now,
                };
                thread::park_timeout(wait);
                continue;
            }
            self.update(|s| s.in_flight = batch.len());
            match self.sink.send(&batch) {
                Ok(()) => {
                    self.update(|s| {
                        s.in_flight = 0;
                        s.last_delivery_ms = Some(crate::time::wall_now_ms());
                        s.retry_at_ms = None;
                    });
                    c.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    crate::debug!("delivered {} alerts", batch.len());
                    batch.clear();
                    delay = FIRST_RETRY;
                    retry_at = None;
                }
                Err(SendError::Rejected(why)) => {
                    self.update(|s| {
                        s.in_flight = 0;
                        s.last_error = Some((crate::time::wall_now_ms(), why.clone()));
                    });
                    c.rejected.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    let names: Vec<&str> = batch.iter().map(|a| a.name.as_str()).collect();
                    crate::error!("{why}: dropped {} alerts {names:?}", batch.len());
                    batch.clear();
                }
                Err(SendError::Retry(why)) => {
                    c.failures.fetch_add(1, Ordering::Relaxed);
                    crate::warn!("{why}; {} alerts kept, retrying in {} s", batch.len() + self.consumer.len(), delay.as_secs_f32());
                    retry_at = Some(Instant::now() + delay);
                    let wall = crate::time::wall_now_ms();
                    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                    self.update(|s| {
                        s.last_error = Some((wall, why.clone()));
                        s.retry_at_ms = Some(wall.saturating_add(delay_ms));
                    });
                    let cap = self.max_interval.max(FIRST_RETRY);
                    delay = (delay * 2).min(cap);
                }
            }
        }
    }
}
