//! The rotation matrix: the real `logrotate` rotates a log again and again, in each mode users
//! configure, under a real writer process appending 10,000 numbered lines a second, while lookout
//! follows it. Per mode: lines written, seen, lost, repeated.
//!
//! How every line is observed. The agent only sends alerts, one CRITICAL per check until its OK,
//! so its alerts cannot say which of 10,000 lines a second it read. Two channels can:
//! - **the tailer, line by line.** `sources::tail::Tailer`, the code the agent runs for a log
//!   check, driven here as the reactor drives it: inotify events through a mio `Poll`, its own
//!   deadlines, at most 1 MiB per turn, no other wake-up. Its sink records every line's sequence
//!   number and checks the line is whole: exact counts of lost, repeated and garbled lines.
//! - **the agent, in total.** The built binary (`run --stdout`) follows the same file at the
//!   same time with a check that never matches; its `status --json` counter `lines` (lines its
//!   detector was given) must equal the lines written: the whole daemon read each line once. It
//!   cannot tell a loss from a repeat that cancel out; the first channel can.
//!
//! The copytruncate window: logrotate copies the log, then truncates it; lines written between
//! the two are in neither file and no reader can have them (unless it read them in between). All
//! copies are kept (`rotate 100`), so after the run the lines found in no file on disk are that
//! window, and a line the tailer missed that is on disk is a loss. One configuration adds to
//! what cannot be read: `copytruncate` with `compress` but without `delaycompress` compresses
//! the copy at once, and lookout does not read compressed files, so the lines it had not read
//! before the copy are only in the `.gz`; that row freezes the readers across each rotation to
//! show the cost (the cure is `delaycompress`). In every other mode there is no excuse: every
//! line must be seen. No line may be seen twice (no crash here; the "stopped" rows stop the
//! readers cleanly).
//!
//! Readers are followed as they are, or frozen (SIGSTOP; the tailer's thread pauses) from 20 ms
//! before each rotation to 20 ms after it, so the rotated file holds lines not read yet, or
//! stopped (SIGTERM; the tailer stops and a new one resumes from the position it saved) across
//! each rotation. The writer holds its file open with `O_APPEND`, as applications do, and
//! reopens it on SIGHUP from logrotate's `postrotate` (in `missingok` mode only 100 ms later, so
//! the log is missing for a while and a second logrotate run finds nothing).
//! `ROTATION_MATRIX_SCALE=N` multiplies the rotations (bench/rotation-matrix.sh runs it longer).
//!
//! Not run under qemu-user (`LOOKOUT_TEST_RUNNER`): the schedule (a rotation every 200 ms under
//! 10,000 lines/s) assumes native speed: under qemu a stopped agent's restart takes longer than
//! the gap between rotations, and the run would measure qemu's start-up. The tailer's logic is
//! the same code on every target; its unit and model tests run under qemu.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::*;
use lookout::reactor::TURN_BUDGET;
use lookout::sources::tail::{LineSink, Position, Progress, Scratch, TailCounters, Tailer};
use lookout::sources::watch::{Listener, Watches};
use lookout::time::Clock;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::Signal;

/// Lines per second the writer appends.
const RATE: u32 = 10_000;

/// One way of rotating.
struct Mode {
    name: &'static str,
    /// The lines of the logrotate stanza (`{old}`: the olddir).
    conf: &'static str,
    /// Rotations, one every `every_ms`.
    rotations: u32,
    every_ms: u64,
    /// `logrotate -f`; without it only `size` decides.
    force: bool,
    /// Run logrotate twice in a row (the second finds the log missing).
    twice: bool,
    /// The writer reopens its file this long after SIGHUP.
    lazy_reopen_ms: u64,
    copytruncate: bool,
    /// `compress` without `delaycompress` on a copytruncate log: the copy is compressed at once,
    /// and lookout does not read compressed files, so what it had not read before the copy is
    /// only there. Such lines count as unreadable, like the window.
    gz_copy: bool,
    /// The writer buffers and writes 4 KiB at a time (stdio's full buffering), cutting lines
    /// between writes; it flushes before it reopens.
    buffered: bool,
    /// Stop both readers (SIGTERM) before each rotation and start them again after it: they
    /// continue from the positions they saved.
    restart: bool,
    /// Freeze both readers from 20 ms before each rotation to 20 ms after it (a loaded device):
    /// the rotated file holds lines they have not read, the new one lines written since.
    paused: bool,
}

/// Four forced rotations, 200 ms apart, the writer reopening at once; readers not held up.
const FORCED: Mode = Mode {
    name: "",
    conf: "",
    rotations: 4,
    every_ms: 200,
    force: true,
    twice: false,
    lazy_reopen_ms: 0,
    copytruncate: false,
    gz_copy: false,
    buffered: false,
    restart: false,
    paused: false,
};

const MODES: &[Mode] = &[
    Mode { name: "create", conf: "rotate 100\ncreate", ..FORCED },
    Mode { name: "create, readers frozen across each rotation", conf: "rotate 100\ncreate", paused: true, ..FORCED },
    Mode { name: "create, writer buffering 4 KiB (lines cut between writes)", conf: "rotate 100\ncreate", buffered: true, ..FORCED },
    Mode { name: "create, readers stopped (SIGTERM) across each rotation", conf: "rotate 100\ncreate", restart: true, ..FORCED },
    Mode { name: "copytruncate", conf: "rotate 100\ncopytruncate", copytruncate: true, ..FORCED },
    Mode {
        name: "copytruncate, readers frozen across each rotation",
        conf: "rotate 100\ncopytruncate",
        copytruncate: true,
        paused: true,
        ..FORCED
    },
    Mode {
        name: "copytruncate, readers stopped (SIGTERM) across each rotation",
        conf: "rotate 100\ncopytruncate",
        copytruncate: true,
        restart: true,
        ..FORCED
    },
    Mode {
        name: "copytruncate + compress (no delaycompress), readers frozen",
        conf: "rotate 100\ncopytruncate\ncompress",
        copytruncate: true,
        gz_copy: true,
        paused: true,
        ..FORCED
    },
    Mode { name: "compress + delaycompress", conf: "rotate 100\ncreate\ncompress\ndelaycompress", ..FORCED },
    // One a second at most: the name has the time to the second.
    Mode { name: "dateext", conf: "rotate 100\ncreate\ndateext\ndateformat -%Y%m%d-%H%M%S", rotations: 2, every_ms: 1100, ..FORCED },
    Mode { name: "olddir", conf: "rotate 100\ncreate\nolddir {old}", ..FORCED },
    Mode {
        name: "olddir, readers stopped (SIGTERM) across each rotation",
        conf: "rotate 100\ncreate\nolddir {old}",
        restart: true,
        ..FORCED
    },
    Mode {
        name: "copytruncate + olddir, readers frozen across each rotation",
        conf: "rotate 100\ncopytruncate\nolddir {old}",
        copytruncate: true,
        paused: true,
        ..FORCED
    },
    Mode { name: "rotate 0", conf: "rotate 0\ncreate", ..FORCED },
    Mode { name: "missingok + nocreate", conf: "rotate 100\nnocreate\nmissingok", twice: true, lazy_reopen_ms: 100, ..FORCED },
    // Checked every 100 ms, not forced: rotates when the log passed 150 kB (every ~0.3 s).
    Mode { name: "size 150k", conf: "rotate 100\ncreate\nsize 150k", rotations: 17, every_ms: 100, force: false, ..FORCED },
];

/// The text of line `seq`: numbered, of varied length (some longer than the tailer's 64-byte
/// fingerprint), each a match for an `ERROR` check.
fn text(seq: u64) -> String {
    format!("seq={seq:09} ERROR rotation matrix {}", "x".repeat((seq as usize * 7) % 50))
}

const WRITER: &str = r#"
import os, signal, sys, time
path, rate, total, lazy, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) / 1000, int(sys.argv[5])
reopen_at = None
def hup(*_):
    global reopen_at
    reopen_at = time.monotonic() + lazy
signal.signal(signal.SIGHUP, hup)
def text(seq):
    return b"seq=%09d ERROR rotation matrix %s\n" % (seq, b"x" * ((seq * 7) % 50))
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
buf = b""
def write(data):
    global buf
    if chunk == 0:
        os.write(fd, data)
        return
    buf += data
    while len(buf) >= chunk:
        os.write(fd, buf[:chunk])
        buf = buf[chunk:]
seq, t0 = 0, time.monotonic()
while seq < total:
    now = time.monotonic()
    if reopen_at is not None and now >= reopen_at:
        reopen_at = None
        if buf:
            os.write(fd, buf)
            buf = b""
        new = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.close(fd)
        fd = new
    target = min(total, int((now - t0) * rate) + 1)
    while seq < target:
        write(text(seq))
        seq += 1
    time.sleep(0.001)
if buf:
    os.write(fd, buf)
print(seq, round(seq / (time.monotonic() - t0)))
"#;

/// The writer process, killed by PID if the test fails before it ends.
struct Writer(Option<Child>);

impl Writer {
    fn start(dir: &Path, log: &Path, total: u64, lazy_reopen_ms: u64, chunk: usize) -> Writer {
        let script = dir.join("writer.py");
        fs::write(&script, WRITER).unwrap();
        let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
        let child = Command::new(python)
            .arg(&script)
            .arg(log)
            .args([RATE.to_string(), total.to_string(), lazy_reopen_ms.to_string(), chunk.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the writer");
        Writer(Some(child))
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Waits for the end; `(lines written, lines/s)`.
    fn finish(mut self) -> (u64, u64) {
        let mut child = self.0.take().unwrap();
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(child.wait().unwrap().success(), "the writer failed");
        let mut it = out.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every line the tailer handed on.
#[derive(Default)]
struct Seen {
    /// Times each sequence number was seen.
    count: Vec<u32>,
    /// Lines that are not a line the writer wrote, whole.
    garbled: Vec<String>,
}

impl Seen {
    fn record(&mut self, line: &[u8]) {
        let s = String::from_utf8_lossy(line);
        let seq = s.strip_prefix("seq=").and_then(|r| r.get(..9)).and_then(|n| n.parse::<u64>().ok());
        match seq {
            Some(n) if text(n) == s => {
                let i = n as usize;
                if self.count.len() <= i {
                    self.count.resize(i + 1, 0);
                }
                self.count[i] += 1;
            }
            _ => self.garbled.push(s.chars().take(120).collect()),
        }
    }

    fn has(&self, seq: u64) -> bool {
        self.count.get(seq as usize).is_some_and(|c| *c > 0)
    }
}

struct Recorder(Arc<Mutex<Seen>>);

impl LineSink for Recorder {
    fn lines(&mut self, buf: &[u8], _first_line: u64, _count: u64) {
        let mut seen = self.0.lock().unwrap();
        for l in buf.split(|&b| b == b'\n') {
            if !l.is_empty() {
                seen.record(l);
            }
        }
    }

    fn line(&mut self, line: &[u8], _number: u64) {
        self.0.lock().unwrap().record(line);
    }
}

/// The tailer on its own thread, driven as the reactor drives a log check; stopped and joined
/// when dropped.
struct Follower {
    stop: Arc<AtomicBool>,
    /// While set, the tailer reads nothing (as a frozen reactor); events wait in the queue.
    paused: Arc<AtomicBool>,
    thread: Option<JoinHandle<(TailCounters, Option<Position>)>>,
}

impl Follower {
    fn start(path: PathBuf, resume: Option<Position>, seen: &Arc<Mutex<Seen>>) -> Follower {
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let (s, p, r) = (Arc::clone(&stop), Arc::clone(&paused), Recorder(Arc::clone(seen)));
        let thread = thread::spawn(move || follow(path, resume, &s, &p, r));
        Follower { stop, paused, thread: Some(thread) }
    }

    /// Stops as the agent stops: its counters, and the position it would save.
    fn stop(mut self) -> (TailCounters, Option<Position>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("the follower thread")
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reactor's loop for one check: read in the first turn, then only on an inotify event for
/// it or at its own deadline; a check with more to read than one turn's budget goes on at once.
fn follow(
    path: PathBuf,
    resume: Option<Position>,
    stop: &AtomicBool,
    paused: &AtomicBool,
    mut sink: Recorder,
) -> (TailCounters, Option<Position>) {
    let clock = Clock::default();
    let mut watches = Watches::new().expect("inotify");
    let mut poll = Poll::new().expect("epoll");
    let fd = watches.raw_fd();
    poll.registry().register(&mut SourceFd(&fd), Token(1), Interest::READABLE).expect("register inotify");
    let mut events = Events::with_capacity(16);
    let mut scratch = Scratch::new(16 * 1024);
    let mut tailer = Tailer::new(path, Listener::Check(1), resume);
    let mut work = true;
    while !stop.load(Ordering::Relaxed) {
        if paused.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        if work {
            let mut budget = TURN_BUDGET;
            if tailer.sync(clock.now().mono, &mut watches, &mut scratch, &mut budget, &mut sink) == Progress::More {
                continue;
            }
        }
        let now = clock.now().mono;
        // The reactor sleeps until an event or the deadline; 100 ms here only to see `stop`.
        let wait = tailer.next_deadline().map_or(100, |d| now.until(d).min(100));
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(wait))) {
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "poll: {e}");
        }
        let routed = watches.read();
        work = !routed.listeners.is_empty() || routed.overflow || tailer.next_deadline().is_some_and(|d| d <= clock.now().mono);
    }
    let position = tailer.stop(&mut watches);
    (tailer.counters(), position)
}

/// The two readers of the log: the tailer on its thread and the agent.
struct Readers<'a> {
    root: &'a Root,
    log: PathBuf,
    seen: Arc<Mutex<Seen>>,
    follower: Option<Follower>,
    daemon: Option<Daemon>,
    /// Rotations and truncations the tailer followed, in the runs before this one.
    switches: u64,
    /// Lines the agent read, in the runs before this one.
    agent_lines: u64,
}

impl<'a> Readers<'a> {
    fn start(root: &'a Root, log: &Path) -> Readers<'a> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let follower = Some(Follower::start(log.to_path_buf(), None, &seen));
        let daemon = Some(Daemon::start(root, None));
        Readers { root, log: log.to_path_buf(), seen, follower, daemon, switches: 0, agent_lines: 0 }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) both.
    fn freeze(&self, frozen: bool) {
        if let Some(f) = &self.follower {
            f.paused.store(frozen, Ordering::Relaxed);
        }
        if let Some(d) = &self.daemon {
            d.signal(if frozen { Signal::SIGSTOP } else { Signal::SIGCONT });
        }
    }

    /// Waits until both readers have read what the log holds now: a rotation comes after the
    /// readers followed the one before, as rotations hours apart do. On a loaded machine the
    /// readers can fall behind a rotation every 200 ms; the figures are of one rotation at a
    /// time (several within one stall are the tailer's unit and model tests').
    fn catch_up(&self) {
        let Ok(bytes) = fs::read(&self.log) else { return };
        let Some(id) = fs::metadata(&self.log).ok().map(|m| m.ino()) else { return };
        let complete = &bytes[..bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)];
        let last = complete
            .split(|b| *b == b'\n')
            .rev()
            .find_map(|l| l.strip_prefix(b"seq=").and_then(|r| r.get(..9)).and_then(|n| std::str::from_utf8(n).ok()?.parse::<u64>().ok()));
        if let (Some(last), Some(_)) = (last, &self.follower) {
            wait_until("the tailer to catch up before the next rotation", || self.seen.lock().unwrap().has(last));
        }
        if self.daemon.is_some() {
            let size = complete.len() as u64;
            wait_until("the agent to catch up before the next rotation", || {
                let src = agent_source(self.root);
                src["inode"].as_u64() != Some(id) || src["offset"].as_u64().is_some_and(|o| o >= size)
            });
        }
    }

    /// Stops both as the agent stops (SIGTERM); the position the tailer saved.
    fn stop(&mut self) -> Option<Position> {
        let (counters, position) = self.follower.take().map(Follower::stop).unwrap_or_default();
        self.switches += counters.rotations + counters.truncations;
        if let Some(d) = self.daemon.take() {
            let log = d.stderr.clone();
            assert!(d.terminate().success(), "the agent's exit on SIGTERM");
            self.agent_lines += lines_at_stop(&fs::read_to_string(log).unwrap_or_default());
        }
        position
    }

    /// Starts both again, the tailer from `position`, the agent from its state file.
    fn restart(&mut self, position: Option<Position>) {
        self.follower = Some(Follower::start(self.log.clone(), position, &self.seen));
        self.daemon = Some(Daemon::start(self.root, None));
    }

    /// Once the tailer has seen line `last` and the agent's count has reached `floor` (and
    /// 150 ms more): what the tailer saw, the rotations it followed, the lines the agent read.
    fn finish(mut self, last: u64, floor: u64) -> (Seen, u64, u64) {
        let seen = Arc::clone(&self.seen);
        wait_until("the tailer to see the last line", || seen.lock().unwrap().has(last));
        let (counters, _) = self.follower.take().map(Follower::stop).unwrap_or_default();
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        let floor = floor.saturating_sub(self.agent_lines);
        // Not an assertion: the caller's, on every count, say more.
        let deadline = Instant::now() + PATIENCE;
        while agent_lines(self.root) < floor && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        // A repeat would show as more: give it a moment.
        thread::sleep(Duration::from_millis(150));
        let agent = self.agent_lines + agent_lines(self.root);
        (seen, self.switches + counters.rotations + counters.truncations, agent)
    }
}

/// The `lines` counter an agent logged for its one check when it stopped.
fn lines_at_stop(log: &str) -> u64 {
    let summary = log.lines().rev().find_map(|l| l.split_once(": lines ").map(|(_, rest)| rest));
    summary
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the check's counters in the agent's log at its stop")
}

/// Identity and size of the file at `path`, if any.
fn file_state(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.ino(), m.len()))
}

/// Runs logrotate once; whether it rotated the log (new inode, gone, or shorter).
fn logrotate(root: &Root, conf: &Path, log: &Path, force: bool) -> bool {
    let before = file_state(log);
    let bin = ["/usr/sbin/logrotate", "/sbin/logrotate"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("logrotate");
    let mut cmd = Command::new(bin);
    if force {
        cmd.arg("-f");
    }
    let out = cmd.arg("-s").arg(root.path().join("logrotate.status")).arg(conf).output().expect("logrotate is installed");
    assert!(out.status.success(), "logrotate: {}", String::from_utf8_lossy(&out.stderr));
    let after = file_state(log);
    match (before, after) {
        (Some(b), Some(a)) => a.0 != b.0 || a.1 < b.1,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The sequence numbers in every file of the log under `dirs` (compressed ones through
/// `gzip -dc`, unless `plain_only`).
fn on_disk(dirs: &[PathBuf], written: u64, plain_only: bool) -> Vec<bool> {
    let mut found = vec![false; written as usize];
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if !p.is_file() || !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("app.log")) {
                continue;
            }
            let gz = p.extension().is_some_and(|x| x == "gz");
            if gz && plain_only {
                continue;
            }
            let bytes = if gz { Command::new("gzip").arg("-dc").arg(&p).output().expect("gzip").stdout } else { fs::read(&p).unwrap() };
            for l in String::from_utf8_lossy(&bytes).lines() {
                if let Some(n) = l.strip_prefix("seq=").and_then(|r| r.get(..9)).and_then(|n| n.parse::<usize>().ok()) {
                    if let Some(f) = found.get_mut(n) {
                        *f = true;
                    }
                }
            }
        }
    }
    found
}

/// The agent's `source` (file, inode, offset) for its one check.
fn agent_source(root: &Root) -> serde_json::Value {
    let out = root.ctl(&["status", "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    s["checks"][0]["source"].clone()
}

/// The agent's `lines` counter for its one check.
fn agent_lines(root: &Root) -> u64 {
    let out = root.ctl(&["status", "--json"]);
    assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    s["checks"][0]["counters"]["lines"].as_u64().unwrap_or(0)
}

/// What one mode gave.
struct Row {
    name: &'static str,
    rotations: u32,
    written: u64,
    rate: u64,
    seen: u64,
    lost: u64,
    window: u64,
    window_seen: u64,
    lost_gz: u64,
    repeated: u64,
    agent_lines: u64,
}

fn run_mode(mode: &Mode, scale: u32) -> Row {
    let root = Root::new("rotation-matrix");
    let log = root.log("app.log");
    let old = root.path().join("logs/old");
    fs::create_dir_all(&old).unwrap();
    root.ctl_ok(&["create", "log", "follow", "NEVER MATCHES THIS", log.to_str().unwrap()]);
    root.ctl_ok(&["enable", "log", "follow"]);
    let mut readers = Readers::start(&root, &log);
    let rotations = mode.rotations * scale;
    let total = u64::from(RATE) * (u64::from(rotations) + 1) * mode.every_ms / 1000;
    let writer = Writer::start(root.path(), &log, total, mode.lazy_reopen_ms, if mode.buffered { 4096 } else { 0 });
    let postrotate = if mode.copytruncate { String::new() } else { format!("\npostrotate\n  kill -HUP {}\nendscript", writer.pid()) };
    let conf = root.path().join("logrotate.conf");
    let body = mode.conf.replace("{old}", old.to_str().unwrap());
    fs::write(&conf, format!("{} {{\n{body}{postrotate}\n}}\n", log.display())).unwrap();

    let start = Instant::now();
    let mut rotated = 0;
    for i in 1..=rotations {
        readers.catch_up();
        let at = start + Duration::from_millis(u64::from(i) * mode.every_ms);
        thread::sleep(at.saturating_duration_since(Instant::now()));
        if mode.paused {
            readers.freeze(true);
            thread::sleep(Duration::from_millis(20));
        }
        let position = if mode.restart { readers.stop() } else { None };
        rotated += u32::from(logrotate(&root, &conf, &log, mode.force));
        if mode.twice {
            logrotate(&root, &conf, &log, mode.force);
        }
        if mode.restart {
            readers.restart(position);
        }
        if mode.paused {
            thread::sleep(Duration::from_millis(20));
            readers.freeze(false);
        }
    }
    let (written, rate) = writer.finish();

    // What no reader can have: the copytruncate window (lines in no file at all) and, in
    // `gz_copy` mode, what is only in a compressed copy.
    let (all, plain) = if mode.copytruncate {
        let dirs = [root.path().join("logs"), old];
        (on_disk(&dirs, written, false), if mode.gz_copy { on_disk(&dirs, written, true) } else { Vec::new() })
    } else {
        (vec![true; written as usize], Vec::new())
    };
    let in_window = |s: u64| !all[s as usize];
    let only_gz = |s: u64| mode.gz_copy && all[s as usize] && !plain[s as usize];
    let excused = |s: u64| in_window(s) || only_gz(s);
    // The agent: every line once (less at most what no reader can have).
    let floor = written - (0..written).filter(|s| excused(*s)).count() as u64;
    let (seen, switches, agent) = readers.finish(written - 1, floor);
    // A line being written while logrotate copied the log can be cut in the copy (a read is not
    // atomic with a write), and its end truncated away: the window again. Nothing else is cut.
    let garbled: Vec<&String> =
        seen.garbled.iter().filter(|g| !(0..written).any(|s| in_window(s) && text(s).starts_with(g.as_str()))).collect();
    assert!(garbled.is_empty(), "{}: lines that were not written, whole: {:?}", mode.name, &garbled[..garbled.len().min(5)]);
    let missed: Vec<u64> = (0..written).filter(|s| !seen.has(*s) && !excused(*s)).collect();
    let repeated: u64 = seen.count.iter().map(|c| u64::from(c.saturating_sub(1))).sum();
    let seen_distinct = (0..written).filter(|s| seen.has(*s)).count() as u64;
    let row = Row {
        name: mode.name,
        rotations: rotated,
        written,
        rate,
        seen: seen_distinct,
        lost: written - seen_distinct,
        window: (0..written).filter(|s| in_window(*s)).count() as u64,
        window_seen: (0..written).filter(|s| in_window(*s) && seen.has(*s)).count() as u64,
        lost_gz: (0..written).filter(|s| only_gz(*s) && !seen.has(*s)).count() as u64,
        repeated,
        agent_lines: agent,
    };
    assert!(
        missed.is_empty(),
        "{}: {} lines on disk were never seen, first {:?}",
        mode.name,
        missed.len(),
        &missed[..missed.len().min(10)]
    );
    assert_eq!(repeated, 0, "{}: lines seen twice", mode.name);
    assert!(rotated >= 1 && switches >= u64::from(rotated), "{}: rotated {rotated}, the tailer followed {switches}", mode.name);
    assert!((floor..=written).contains(&agent), "{}: the agent read {agent} lines of {written} written (at least {floor})", mode.name);
    row
}

#[test]
fn every_logrotate_mode_under_a_fast_writer() {
    if let Some(r) = runner() {
        eprintln!("skipped under {r}: the schedule assumes native speed (see the module's doc)");
        return;
    }
    let scale = std::env::var("ROTATION_MATRIX_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mut rows = Vec::new();
    for mode in MODES {
        rows.push(run_mode(mode, scale));
    }
    eprintln!(
        "| mode | rotations | lines written | lines/s | seen | lost | copytruncate window: lines in no file (seen before the truncation) | lost, only in a .gz copy | repeated | agent's `lines` |"
    );
    eprintln!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let window =
            if r.window > 0 || r.name.contains("copytruncate") { format!("{} ({})", r.window, r.window_seen) } else { "—".into() };
        let gz = if r.lost_gz > 0 { r.lost_gz.to_string() } else { "—".into() };
        eprintln!(
            "| {} | {} | {} | {} | {} | {} | {window} | {gz} | {} | {} |",
            r.name, r.rotations, r.written, r.rate, r.seen, r.lost, r.repeated, r.agent_lines
        );
    }
}
