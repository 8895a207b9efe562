//! Crash chaos: the agent killed at random moments under a steady stream of alerts, and what
//! reaches the server. The README promises at-least-once: every alert the agent would have sent
//! without the crashes reaches the server, some maybe twice.
//!
//! 15 log checks (`ERROR`, expiry 1 s), a line every 0.2 s overall, round robin, so each log gets
//! a line every 3 s and each line raises its own CRITICAL (the OK of the one before came 2 s
//! earlier). Everything else is the default, the after-line window above all
//! (`LOG_LINES_AFTER_WINDOW_MS`, 200 ms): with a line every 0.2 s a CRITICAL is nearly always
//! waiting for its after-lines when the kill comes, the moment that once lost lines. The agent is
//! stopped after a random 0-2.5 s (seeded; the seed is printed, `CHAOS_SEED` sets it), by
//! `kill -9` or, one time in four, SIGTERM (which must exit 0), and started again at once,
//! `CHAOS_KILLS` times (10 here; bench/chaos.sh runs 50).
//!
//! Then: every line written reached the server in a CRITICAL, as the matching line or, when the
//! agent was down long enough for two lines of one log to be read together, as an after-line of
//! the first; every check's last alert is its OK (no check left CRITICAL at the server). The
//! repeat rate (CRITICALs for a line already received) is printed.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const LOGS: usize = 15;
const LINE_EVERY: Duration = Duration::from_millis(200);

/// splitmix64: a seeded sequence, so a run can be told apart (the timing cannot be replayed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The text of line `seq` (in log `seq % LOGS`).
fn text(seq: u64) -> String {
    format!("seq={seq:06} ERROR chaos in log {:02}", seq as usize % LOGS)
}

fn seq_of(data: &str) -> Option<u64> {
    data.strip_prefix("seq=").and_then(|r| r.get(..6)).and_then(|n| n.parse().ok())
}

/// Appends one line every `LINE_EVERY` until stopped; stopped and joined when dropped.
struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<Mutex<u64>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(root: &Root) -> Writer {
        let logs: Vec<_> = (0..LOGS).map(|i| root.log(&format!("app{i:02}.log"))).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(Mutex::new(0));
        let (s, w) = (Arc::clone(&stop), Arc::clone(&written));
        let thread = thread::spawn(move || {
            let start = Instant::now();
            let mut seq = 0u64;
            while !s.load(Ordering::Relaxed) {
                append(&logs[seq as usize % LOGS], format!("{}\n", text(seq)).as_bytes());
                seq += 1;
                *w.lock().unwrap() = seq;
                let next = start + LINE_EVERY * seq as u32;
                thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        Writer { stop, written, thread: Some(thread) }
    }

    /// Stops writing; the number of lines written.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the writer thread");
        }
        *self.written.lock().unwrap()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the server got: per line, how many CRITICALs had it as the match, and whether it came
/// as an after-line.
#[derive(Default)]
struct Received {
    matched: BTreeMap<u64, u32>,
    after: BTreeMap<u64, u32>,
}

impl Received {
    fn of(alerts: &[Value]) -> Received {
        let mut r = Received::default();
        for a in alerts.iter().filter(|a| a["level"] == "CRITICAL") {
            let d = &a["subject"]["details"];
            if let Some(s) = d["line_matching"]["data"].as_str().and_then(seq_of) {
                *r.matched.entry(s).or_default() += 1;
            }
            for (_, data) in lines(&d["lines_after"]) {
                if let Some(s) = seq_of(&data) {
                    *r.after.entry(s).or_default() += 1;
                }
            }
        }
        r
    }

    fn has(&self, seq: u64) -> bool {
        self.matched.contains_key(&seq) || self.after.contains_key(&seq)
    }
}

/// The checks whose last alert is not their OK (or that sent none).
fn still_critical(alerts: &[Value]) -> Vec<String> {
    let mut last: BTreeMap<String, &str> = (0..LOGS).map(|i| (format!("app{i:02}"), "none")).collect();
    for a in alerts {
        last.insert(a["subject"]["name"].as_str().unwrap_or_default().to_string(), a["level"].as_str().unwrap_or_default());
    }
    last.into_iter().filter(|(_, l)| *l != "OK").map(|(c, _)| c).collect()
}

#[test]
fn kill9_and_sigterm_at_random_moments_lose_no_alert() {
    let kills: u32 = std::env::var("CHAOS_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    eprintln!("chaos: seed {seed} (CHAOS_SEED={seed} picks the same moments), {kills} stops");
    let mut rng = Rng(seed);
    let root = Root::new("chaos");
    let server = AlertServer::start();
    for i in 0..LOGS {
        let log = root.log(&format!("app{i:02}.log"));
        root.ctl_ok(&["create", "log", &format!("app{i:02}"), "ERROR", log.to_str().unwrap(), "1"]);
        root.ctl_ok(&["enable", "log", &format!("app{i:02}")]);
    }
    let mut daemon = Some(Daemon::start(&root, Some(&server)));
    let writer = Writer::start(&root);
    let (mut sigkills, mut sigterms) = (0, 0);
    let mut downtime = Duration::ZERO;
    for _ in 0..kills {
        thread::sleep(Duration::from_millis(rng.below(2500)));
        let d = daemon.take().unwrap();
        let down = Instant::now();
        if rng.below(4) == 0 {
            let status = d.terminate();
            assert!(status.success(), "SIGTERM: {status:?}");
            sigterms += 1;
        } else {
            d.kill9();
            sigkills += 1;
        }
        daemon = Some(Daemon::start(&root, Some(&server)));
        downtime += down.elapsed();
    }
    thread::sleep(Duration::from_millis(rng.below(2500)));
    let written = writer.stop();
    let deadline = Instant::now() + PATIENCE;
    let alerts = loop {
        let alerts: Vec<Value> = server.alerts().into_iter().map(|(_, a)| a).collect();
        let missing: Vec<u64> = {
            let r = Received::of(&alerts);
            (0..written).filter(|s| !r.has(*s)).collect()
        };
        let stuck = still_critical(&alerts);
        if missing.is_empty() && stuck.is_empty() {
            break alerts;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {written} lines never reached the server: {missing:?}; checks whose last alert is not an OK: {stuck:?}",
            missing.len()
        );
        thread::sleep(Duration::from_millis(50));
    };
    let status = daemon.take().unwrap().terminate();
    assert!(status.success(), "the last SIGTERM: {status:?}");

    let r = Received::of(&alerts);
    let criticals: u32 = r.matched.values().sum();
    let repeats: u32 = r.matched.values().map(|n| n - 1).sum();
    let only_after = (0..written).filter(|s| !r.matched.contains_key(s)).count();
    eprintln!(
        "chaos: {sigkills} kill -9 and {sigterms} SIGTERM in {:.1} s (down {:.0} ms on average, restart included); \
         {written} lines written, all received: {} as the match of a CRITICAL, {only_after} only as an after-line; \
         {criticals} CRITICALs, {repeats} repeats ({:.1} % of lines); {} alerts in all",
        LINE_EVERY.as_secs_f64() * written as f64,
        downtime.as_millis() as f64 / f64::from(kills.max(1)),
        r.matched.len(),
        100.0 * f64::from(repeats) / written.max(1) as f64,
        alerts.len()
    );
}
