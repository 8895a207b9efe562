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
//! `CHAOS_KILLS` times (10 here; bench/chaos.sh runs 50). Meanwhile the real logrotate rotates
//! every log every 0.7-1.5 s (`create` and `copytruncate`, every other log), so stops fall
//! before, during and after rotations and the restarted agent must find the rotated file by its
//! inode, or the copy by its content. The logs do not exist when the agent starts.
//!
//! Then: every line written reached the server in a CRITICAL, as the matching line or, when the
//! agent was down long enough for two lines of one log to be read together, as an after-line of
//! the first; every check's last alert is its OK (no check left CRITICAL at the server). The
//! repeat rate (CRITICALs for a line already received) is printed.
//!
//! The tests at the end pin down the two losses this test found (fixed in the reactor: a
//! CRITICAL waiting for its after-lines is saved with the state, at once).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
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

/// What happened when (since the test began): stops, starts, rotations, lines written. Shown
/// around a lost line when the test fails.
#[derive(Clone)]
struct Timeline {
    start: Instant,
    events: Arc<Mutex<Vec<(Duration, String)>>>,
}

impl Timeline {
    fn new() -> Timeline {
        Timeline { start: Instant::now(), events: Arc::new(Mutex::new(Vec::new())) }
    }

    fn note(&self, what: String) {
        let at = self.start.elapsed();
        self.events.lock().unwrap().push((at, what));
    }

    fn at(&self, what: &str) -> Option<Duration> {
        self.events.lock().unwrap().iter().find(|(_, w)| w == what).map(|(t, _)| *t)
    }

    /// The events within `span` of `at`, one a line.
    fn around(&self, at: Duration, span: Duration) -> String {
        let events = self.events.lock().unwrap();
        let near = events.iter().filter(|(t, _)| t.abs_diff(at) <= span);
        near.map(|(t, w)| format!("  {:>7.3} s  {w}\n", t.as_secs_f64())).collect()
    }
}

/// A thread that loops until told to stop, then says how many things it did; stopped and
/// joined when dropped.
struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Background {
    fn spawn(f: impl FnOnce(&AtomicBool) -> u64 + Send + 'static) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        Background { stop, thread: Some(thread::spawn(move || f(&s))) }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().expect("a background thread"))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Appends one line every `LINE_EVERY` (each write opens the log, as `echo >>` does), never
/// while `gate` is held; returns the number of lines written.
fn writer(logs: Vec<PathBuf>, gate: Arc<Mutex<()>>, timeline: Timeline) -> Background {
    Background::spawn(move |stop| {
        let start = Instant::now();
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            {
                let _g = gate.lock().unwrap();
                append(&logs[seq as usize % LOGS], format!("{}\n", text(seq)).as_bytes());
            }
            timeline.note(format!("line {seq} written to app{:02}.log", seq as usize % LOGS));
            seq += 1;
            thread::sleep((start + LINE_EVERY * seq as u32).saturating_duration_since(Instant::now()));
        }
        seq
    })
}

/// Runs the real logrotate (`-f`) over every log every 0.7-1.5 s, holding `gate` so that no line
/// is written while it runs: the copytruncate window is the rotation matrix's subject, not this
/// test's. Log `i` is rotated with `modes[i % modes.len()]`. Returns the number of runs.
fn rotator(root: &Root, logs: &[PathBuf], modes: &[&str], gate: Arc<Mutex<()>>, mut rng: Rng, timeline: Timeline) -> Background {
    let conf = root.path().join("logrotate.conf");
    let mut text = String::new();
    for (i, log) in logs.iter().enumerate() {
        let mode = modes[i % modes.len()];
        text.push_str(&format!("{} {{\n  rotate 10\n  missingok\n  {mode}\n}}\n", log.display()));
    }
    fs::write(&conf, text).unwrap();
    let state = root.path().join("logrotate.status");
    let bin = ["/usr/sbin/logrotate", "/sbin/logrotate"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("logrotate");
    Background::spawn(move |stop| {
        let mut runs = 0;
        while !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(700 + rng.below(800)));
            let _g = gate.lock().unwrap();
            timeline.note("logrotate".into());
            let out = Command::new(bin).arg("-f").arg("-s").arg(&state).arg(&conf).output().expect("logrotate is installed");
            assert!(out.status.success(), "logrotate: {}", String::from_utf8_lossy(&out.stderr));
            runs += 1;
        }
        runs
    })
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
    // Under qemu-user the agent is down for hundreds of milliseconds a stop, and starts slowly:
    // a log created by the writer while the agent is down (or before its first read: the 15
    // logs do not exist when the run starts) can be rotated before the agent ever reads it,
    // and with no position saved for it the rotated file is not looked for: its first line is
    // lost (README, Rotation). Every loss in 3 runs there was such a first line (of 71-94);
    // the files rotated in between, twice while down, are read. The two kill -9 cases above
    // run under qemu too.
    if let Some(r) = runner() {
        eprintln!("skipped under {r}: a log created and rotated before the agent first reads it (see the comment)");
        return;
    }
    chaos(&["create", "copytruncate"]);
}

/// Stops and starts the agent at random moments while logs are written and rotated with
/// `modes`; checks that every line reached the server and every check ended OK.
fn chaos(modes: &[&str]) {
    let kills: u32 = std::env::var("CHAOS_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    eprintln!("chaos: seed {seed} (CHAOS_SEED={seed} picks the same moments), {kills} stops, logrotate {modes:?}");
    let mut rng = Rng(seed);
    let root = Root::new("chaos");
    let server = AlertServer::start();
    for i in 0..LOGS {
        let log = root.log(&format!("app{i:02}.log"));
        root.ctl_ok(&["create", "log", &format!("app{i:02}"), "ERROR", log.to_str().unwrap(), "1"]);
        root.ctl_ok(&["enable", "log", &format!("app{i:02}")]);
    }
    let logs: Vec<PathBuf> = (0..LOGS).map(|i| root.log(&format!("app{i:02}.log"))).collect();
    let mut daemon = Some(Daemon::start(&root, Some(&server)));
    let gate = Arc::new(Mutex::new(()));
    let timeline = Timeline::new();
    let writer = writer(logs.clone(), Arc::clone(&gate), timeline.clone());
    let rotator = rotator(&root, &logs, modes, gate, Rng(rng.next()), timeline.clone());
    let (mut sigkills, mut sigterms) = (0, 0);
    let mut downtime = Duration::ZERO;
    for _ in 0..kills {
        thread::sleep(Duration::from_millis(rng.below(2500)));
        let d = daemon.take().unwrap();
        let down = Instant::now();
        if rng.below(4) == 0 {
            timeline.note("SIGTERM".into());
            let status = d.terminate();
            assert!(status.success(), "SIGTERM: {status:?}");
            sigterms += 1;
        } else {
            timeline.note("kill -9".into());
            d.kill9();
            sigkills += 1;
        }
        daemon = Some(Daemon::start(&root, Some(&server)));
        timeline.note("started".into());
        downtime += down.elapsed();
    }
    thread::sleep(Duration::from_millis(rng.below(2500)));
    let rotations = rotator.stop();
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
        if Instant::now() >= deadline {
            let mut story = String::new();
            for s in missing.iter().take(3) {
                let t = timeline.at(&format!("line {s} written to app{:02}.log", *s as usize % LOGS)).unwrap_or_default();
                story += &format!("around line {s}:\n{}", timeline.around(t, Duration::from_millis(1500)));
            }
            panic!(
                "{} of {written} lines never reached the server: {missing:?}; checks whose last alert is not an OK: {stuck:?}\n{story}",
                missing.len()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    let status = daemon.take().unwrap().terminate();
    assert!(status.success(), "the last SIGTERM: {status:?}");

    let r = Received::of(&alerts);
    let criticals: u32 = r.matched.values().sum();
    let repeats: u32 = r.matched.values().map(|n| n - 1).sum();
    let only_after = (0..written).filter(|s| !r.matched.contains_key(s)).count();
    eprintln!(
        "chaos: {sigkills} kill -9 and {sigterms} SIGTERM in {:.1} s (down {:.0} ms on average, restart included), \
         {rotations} logrotate runs; \
         {written} lines written, all received: {} as the match of a CRITICAL, {only_after} only as an after-line; \
         {criticals} CRITICALs, {repeats} repeats ({:.1} % of lines); {} alerts in all",
        LINE_EVERY.as_secs_f64() * written as f64,
        downtime.as_millis() as f64 / f64::from(kills.max(1)),
        r.matched.len(),
        100.0 * f64::from(repeats) / written.max(1) as f64,
        alerts.len()
    );
}

/// `kill -9` while the CRITICAL of "ERROR one" waits for its after-lines; after the restart and
/// an after-line it must arrive.
fn kill9_then_the_pending_critical_arrives(root: &Root, server: &AlertServer, daemon: Daemon, log: &Path) {
    assert!(server.alerts().is_empty(), "the CRITICAL still waits");
    daemon.kill9();
    let daemon = Daemon::start(root, Some(server));
    append(log, b"after\n");
    let alerts =
        server.wait_for("the CRITICAL of ERROR one", |a| a.iter().any(|x| x["subject"]["details"]["line_matching"]["data"] == "ERROR one"));
    assert_eq!(alerts[0]["level"], "CRITICAL");
    drop(daemon);
}

/// `kill -9` while a CRITICAL waits for its after-lines, when logrotate's copytruncate moved its
/// line to the copy meanwhile, and the position saved before the match is at the start of the
/// file (the file had just been truncated, or nothing was read of it yet: the usual case for a
/// quiet log rotated with copytruncate). When the agent kept that position for the match,
/// after the restart it looked valid (same inode, offset 0, nothing to compare), the file was
/// read from its start, and the line, only in the copy, never: the CRITICAL was lost (the chaos
/// test with copytruncate rotations lost a line or two of ~75 in about half the runs).
#[test]
fn kill9_after_copytruncate_moved_a_pending_match_loses_nothing() {
    let (root, server, log) = log_check("pending-copytruncate", "svc", "ERROR", Some("60"));
    root.write_config("LOG_LINES_AFTER_WINDOW_MS=30000\nDEFAULT_LOG_LINES_AFTER=1\nSTATE_SAVE_INTERVAL_S=1\n");
    let daemon = Daemon::start(&root, Some(&server));
    let state = root.path().join("var/lib/mender-monitor/lookout-state.json");
    let copytruncate = |n: u32| {
        fs::copy(&log, log.with_extension(format!("log.{n}"))).unwrap();
        fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    };
    // A first line, rotated away: the saved position is the end of the copy (where the
    // truncated file starts; README, Rotation).
    append(&log, b"quiet start\n");
    wait_until("the first line to be read", || root.check_status("svc")["source"]["line"] == 2);
    copytruncate(1);
    wait_until("the truncation to be seen", || root.check_status("svc")["counters"]["truncations"] == 1);
    let copy_ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(log.with_extension("log.1")).unwrap());
    wait_until("the position after the truncation to be saved", || {
        fs::read_to_string(&state).is_ok_and(|s| s.contains(&format!("\"ino\": {copy_ino}")))
    });
    // The match, read; its CRITICAL waits for an after-line. Then copytruncate moves it.
    append(&log, b"ERROR one\n");
    wait_until("the match to be read", || root.check_status("svc")["source"]["line"] == 2);
    copytruncate(2);
    wait_until("the second truncation to be seen", || root.check_status("svc")["counters"]["truncations"] == 2);
    kill9_then_the_pending_critical_arrives(&root, &server, daemon, &log);
}

/// `kill -9` while a CRITICAL waits for its after-lines, when its line is in the first file the
/// check ever read and logrotate (`create`) renamed that file meanwhile. When the agent kept the
/// state saved before the match, none named a file (the log did not exist at start), so the
/// restarted agent read the new file from its start and never the renamed one: the CRITICAL was
/// lost (bench/chaos.sh: 1 line of 309 in 50 stops).
#[test]
fn kill9_after_the_first_file_was_rotated_under_a_pending_match_loses_nothing() {
    let (root, server, log) = log_check("pending-first-file", "svc", "ERROR", Some("60"));
    root.write_config("LOG_LINES_AFTER_WINDOW_MS=30000\nDEFAULT_LOG_LINES_AFTER=1\n");
    let daemon = Daemon::start(&root, Some(&server));
    daemon.wait_log("does not exist yet");
    append(&log, b"ERROR one\n");
    wait_until("the match to be read", || root.check_status("svc")["source"]["line"] == 2);
    // What logrotate's create mode does.
    fs::rename(&log, log.with_extension("log.1")).unwrap();
    append(&log, b"");
    wait_until("the rotation to be seen", || root.check_status("svc")["counters"]["rotations"] == 1);
    kill9_then_the_pending_critical_arrives(&root, &server, daemon, &log);
}
