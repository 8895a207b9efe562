//! `@command` sources: a long-running command whose standard output is read like a log file.
//!
//! The command line runs through `/bin/sh -c`, so pipes and redirections work, in a process
//! group of its own, with stdin from /dev/null and stdout and stderr on non-blocking pipes
//! registered with the reactor. Its stdout goes through the same line assembly as files (lines
//! are numbered from 1 at every start); its stderr lines go to the agent's log, cut and capped
//! per run. The reactor learns of the exit from SIGCHLD (a signalfd); the runner then reads what
//! is left in the pipe, stops what remains of the group, and starts the command again after a
//! backoff that doubles from 1 s to a minute and starts over once a run has lasted 30 s.
//! Stopping (disable, delete, change, agent shutdown) sends SIGTERM to the whole group and hands
//! it to the reactor's [`Reaper`], which sends SIGKILL after a grace period.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use mio::Token;
use mio::unix::pipe::Receiver;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::check_fds::CheckFds;
use super::lines::{LineAssembler, LineSink, Pumped, ReadCounters, Scratch};
use super::tail::Progress;
use super::watch::Listener;
use crate::time::Instant;

/// First restart delay.
pub const RESTART_FIRST_MS: u64 = 1_000;
/// Longest restart delay.
pub const RESTART_MAX_MS: u64 = 60_000;
/// A run this long resets the restart delay.
pub const STABLE_RUN_MS: u64 = 30_000;
/// Time between SIGTERM and SIGKILL when a command is stopped.
pub const KILL_GRACE_MS: u64 = 2_000;
/// Longest stderr line written to the agent's log.
pub const STDERR_LINE_MAX: usize = 512;
/// Stderr lines logged per run; the rest are counted only.
pub const STDERR_LINES_PER_RUN: u64 = 100;
/// Most bytes read from a pipe after its command exited (what the pipe buffer can hold, and
/// then some); what a still-running grandchild writes after that is not waited for.
pub(crate) const DRAIN_AFTER_EXIT: usize = 1 << 20;

/// Counters of one command source.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommandCounters {
    /// Times the command was started.
    pub starts: u64,
    /// Times it exited (or could not be started).
    pub exits: u64,
    /// Bytes and cut lines of its stdout.
    pub stdout: ReadCounters,
    /// Lines it wrote to stderr.
    pub stderr_lines: u64,
    /// Stderr lines not logged (over the per-run cap).
    pub stderr_suppressed: u64,
}

/// One output pipe of a child, read through the line assembly.
#[derive(Debug)]
pub(crate) struct Stream {
    pipe: Receiver,
    token: Token,
    asm: LineAssembler,
}

impl Stream {
    fn open(pipe: Option<impl Into<Receiver>>, pipes: &mut CheckFds, listener: Listener) -> io::Result<Stream> {
        let mut pipe: Receiver = pipe.ok_or_else(|| io::Error::other("no pipe"))?.into();
        // A child's pipe is blocking by default; the reactor must never block on it.
        pipe.set_nonblocking(true)?;
        let token = pipes.register(&mut pipe, listener)?;
        Ok(Stream { pipe, token, asm: LineAssembler::new(0, 1) })
    }

    /// Reads until the pipe is empty or closed, or `budget` is spent.
    pub(crate) fn pump(
        &mut self,
        scratch: &mut Scratch,
        budget: &mut usize,
        counters: &mut ReadCounters,
        sink: &mut dyn LineSink,
    ) -> io::Result<Pumped> {
        let pipe = &mut self.pipe;
        let mut read = |buf: &mut [u8], _at: u64| pipe.read(buf);
        self.asm.pump(scratch, budget, counters, sink, &mut read)
    }

    /// Hands on an unterminated last line.
    pub(crate) fn finish(&mut self, sink: &mut dyn LineSink) {
        self.asm.finish(sink);
    }

    /// Deregisters and closes the pipe.
    pub(crate) fn close(mut self, pipes: &mut CheckFds) {
        pipes.deregister(&mut self.pipe, self.token);
    }
}

#[derive(Debug)]
struct Running {
    pid: Pid,
    started: Instant,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    stderr_logged: u64,
}

#[derive(Debug)]
enum State {
    /// Not running; (re)start at this time.
    Waiting {
        start_at: Instant,
    },
    Running(Box<Running>),
}

/// A process group that was told to stop and must be reaped (and killed if it lingers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopping {
    /// The group's leader (the shell) and the group's id.
    pub pid: Pid,
    /// When to send SIGKILL to what is left of the group.
    pub kill_at: Instant,
    /// Whether the leader has been reaped.
    pub reaped: bool,
    /// What it was, for the log.
    pub what: String,
}

/// Process groups on their way out. The reactor reaps with `waitpid(-1)` on SIGCHLD, tells the
/// reaper, and calls [`Reaper::on_tick`] at [`Reaper::next_deadline`].
#[derive(Debug, Default)]
pub struct Reaper {
    groups: Vec<Stopping>,
}

impl Reaper {
    /// Takes over a group that has been sent SIGTERM.
    pub fn adopt(&mut self, s: Stopping) {
        self.groups.push(s);
    }

    /// A child was reaped; returns whether it was one of ours.
    pub fn on_reaped(&mut self, pid: Pid) -> bool {
        let mut found = false;
        for g in self.groups.iter_mut().filter(|g| g.pid == pid) {
            g.reaped = true;
            found = true;
        }
        // A group whose leader is reaped and that has no member left is done.
        self.groups.retain(|g| !(g.reaped && group_is_empty(g.pid)));
        found
    }

    /// When the next SIGKILL is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.groups.iter().map(|g| g.kill_at).min()
    }

    /// Kills the groups whose grace has run out.
    pub fn on_tick(&mut self, now: Instant) {
        self.groups.retain(|g| {
            if g.kill_at > now {
                return true;
            }
            if !group_is_empty(g.pid) {
                crate::warn!("{}: still running {} ms after SIGTERM; sending SIGKILL to its process group", g.what, KILL_GRACE_MS);
                let _ = killpg(g.pid, Signal::SIGKILL);
            }
            // After SIGKILL the members die at once; their exit is reaped on SIGCHLD.
            false
        });
    }

    /// Groups not yet gone.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether every group is gone.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every group still known, for the final kill at shutdown.
    pub fn groups(&self) -> &[Stopping] {
        &self.groups
    }
}

/// Whether no process is left in group `pgid` (zombies waiting to be reaped still count).
pub fn group_is_empty(pgid: Pid) -> bool {
    matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

/// Writes a command's stderr lines to the agent's log, cut and capped.
struct StderrLog<'a> {
    what: &'a str,
    counters: &'a mut CommandCounters,
    logged: &'a mut u64,
}

impl StderrLog<'_> {
    fn one(&mut self, line: &[u8]) {
        self.counters.stderr_lines += 1;
        if *self.logged < STDERR_LINES_PER_RUN {
            *self.logged += 1;
            let cut = &line[..line.len().min(STDERR_LINE_MAX)];
            crate::warn!("{}: stderr: {}", self.what, String::from_utf8_lossy(cut).trim_end());
            if *self.logged == STDERR_LINES_PER_RUN {
                crate::warn!("{}: further stderr lines of this run are counted, not logged", self.what);
            }
        } else {
            self.counters.stderr_suppressed += 1;
        }
    }
}

impl LineSink for StderrLog<'_> {
    fn lines(&mut self, buf: &[u8], _first_line: u64, _count: u64) {
        for line in buf.split_inclusive(|&b| b == b'\n') {
            self.one(&line[..line.len() - 1]);
        }
    }

    fn line(&mut self, line: &[u8], _number: u64) {
        self.one(line);
    }
}

/// Describes how a process ended, for the log.
pub fn describe_exit(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, 127) => "exited with status 127 (command not found)".into(),
        WaitStatus::Exited(_, 126) => "exited with status 126 (not executable)".into(),
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("was killed by {}", sig.as_str()),
        other => format!("ended ({other:?})"),
    }
}

/// A command started in a process group of its own, with its output on non-blocking pipes
/// registered with the reactor.
#[derive(Debug)]
pub(crate) struct Spawned {
    /// The shell's pid, also the group's id.
    pub pid: Pid,
    /// Its standard output.
    pub stdout: Stream,
    /// Its standard error.
    pub stderr: Stream,
}

/// Why [`spawn_group`] gave no watched process.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// `/bin/sh` could not be started.
    NotStarted(io::Error),
    /// Started, but its pipes could not be watched: its group was sent SIGKILL, and its exit
    /// comes through SIGCHLD like any other.
    Unwatched {
        /// The shell's pid.
        pid: Pid,
        /// Why not.
        why: String,
    },
}

/// Runs `/bin/sh -c command` in a group of its own, stdin from /dev/null, stdout and stderr on
/// pipes registered for `listener`: what `@command` sources and program checks share.
pub(crate) fn spawn_group(command: &str, pipes: &mut CheckFds, listener: Listener) -> Result<Spawned, SpawnError> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that stopping it stops everything it started.
        .process_group(0)
        // systemd's notify socket is ours, not the command's.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    // SAFETY: the closure runs in the forked child before exec and only calls
    // sigprocmask, which is async-signal-safe. It is needed: the reactor blocks SIGTERM,
    // SIGHUP, SIGINT and SIGCHLD, and std's posix_spawn path passes that mask on to the
    // child (seen with strace), where it would make the command deaf to our SIGTERM.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&nix::sys::signal::SigSet::empty()), None)
                .map_err(io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(SpawnError::NotStarted)?;
    let pid = Pid::from_raw(child.id() as i32);
    // The pipes are the newest descriptors: if they eat into the agent's reserve, the command
    // is stopped (see crate::fdlimit).
    let shortage = [child.stdout.as_ref().map(|p| p.as_raw_fd()), child.stderr.as_ref().map(|p| p.as_raw_fd())]
        .into_iter()
        .flatten()
        .find_map(|fd| crate::fdlimit::check_may_hold(fd).err());
    let (stdout, stderr) = match shortage {
        None => (Stream::open(child.stdout.take(), pipes, listener), Stream::open(child.stderr.take(), pipes, listener)),
        Some(why) => (Err(io::Error::other(why.clone())), Err(io::Error::other(why))),
    };
    match (stdout, stderr) {
        (Ok(stdout), Ok(stderr)) => Ok(Spawned { pid, stdout, stderr }),
        (o, e) => {
            let why = o.as_ref().err().or(e.as_ref().err()).map(|e| e.to_string()).unwrap_or_default();
            for s in [o.ok(), e.ok()].into_iter().flatten() {
                s.close(pipes);
            }
            let _ = killpg(pid, Signal::SIGKILL);
            Err(SpawnError::Unwatched { pid, why })
        }
    }
}

/// One `@command` source.
#[derive(Debug)]
pub struct CommandRunner {
    command: String,
    /// `check <id>` for messages.
    what: String,
    listener: Listener,
    state: State,
    delay_ms: u64,
    counters: CommandCounters,
}

impl CommandRunner {
    /// A runner for `command` (without the `@`) that wakes `listener`; it starts at the first
    /// tick.
    pub fn new(command: String, what: String, listener: Listener, now: Instant) -> Self {
        CommandRunner {
            command,
            what,
            listener,
            state: State::Waiting { start_at: now },
            delay_ms: RESTART_FIRST_MS,
            counters: CommandCounters::default(),
        }
    }

    /// The command line (without the `@`).
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Counters so far.
    pub fn counters(&self) -> CommandCounters {
        self.counters
    }

    /// The running command's process id (also its process group).
    pub fn pid(&self) -> Option<Pid> {
        match &self.state {
            State::Running(r) => Some(r.pid),
            State::Waiting { .. } => None,
        }
    }

    /// When the command is due to (re)start.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { start_at } => Some(start_at),
            State::Running(_) => None,
        }
    }

    /// Starts the command if it is due.
    pub fn on_tick(&mut self, now: Instant, pipes: &mut CheckFds) {
        if matches!(self.state, State::Waiting { start_at } if start_at <= now) {
            self.spawn(now, pipes);
        }
    }

    fn spawn(&mut self, now: Instant, pipes: &mut CheckFds) {
        self.counters.starts += 1;
        match spawn_group(&self.command, pipes, self.listener) {
            Ok(Spawned { pid, stdout, stderr }) => {
                crate::info!("{}: started `{}` (pid {pid})", self.what, self.command);
                self.state =
                    State::Running(Box::new(Running { pid, started: now, stdout: Some(stdout), stderr: Some(stderr), stderr_logged: 0 }));
            }
            Err(SpawnError::NotStarted(e)) => {
                self.counters.exits += 1;
                crate::error!("{}: cannot start `/bin/sh -c {}`: {e}; retrying in {} s", self.what, self.command, self.delay_ms / 1000);
                self.wait_to_restart(now, now);
            }
            Err(SpawnError::Unwatched { pid, why }) => {
                crate::error!("{}: cannot watch the command's output ({why}); stopping it", self.what);
                // Its exit is reaped on SIGCHLD like any other and leads to a restart.
                self.state = State::Running(Box::new(Running { pid, started: now, stdout: None, stderr: None, stderr_logged: 0 }));
            }
        }
    }

    fn wait_to_restart(&mut self, now: Instant, started: Instant) {
        if now.as_millis().saturating_sub(started.as_millis()) >= STABLE_RUN_MS {
            self.delay_ms = RESTART_FIRST_MS;
        }
        self.state = State::Waiting { start_at: now.plus_ms(self.delay_ms) };
        self.delay_ms = (self.delay_ms * 2).min(RESTART_MAX_MS);
    }

    /// Reads the command's output (at most `budget` bytes of it).
    pub fn on_ready(&mut self, pipes: &mut CheckFds, scratch: &mut Scratch, budget: &mut usize, sink: &mut dyn LineSink) -> Progress {
        let State::Running(r) = &mut self.state else { return Progress::Done };
        let mut progress = Progress::Done;
        if let Some(s) = r.stdout.as_mut() {
            match s.pump(scratch, budget, &mut self.counters.stdout, sink) {
                Ok(Pumped::Budget) => progress = Progress::More,
                Ok(Pumped::WouldBlock) => {}
                Ok(Pumped::Eof) | Err(_) => {
                    // Closed (or broken): what is pending is the last line; the exit follows.
                    if let Some(mut s) = r.stdout.take() {
                        s.asm.finish(sink);
                        s.close(pipes);
                    }
                }
            }
        }
        if let Some(s) = r.stderr.as_mut() {
            let mut log = StderrLog { what: &self.what, counters: &mut self.counters, logged: &mut r.stderr_logged };
            let mut ignored = ReadCounters::default();
            match s.pump(scratch, budget, &mut ignored, &mut log) {
                Ok(Pumped::Budget) => progress = Progress::More,
                Ok(Pumped::WouldBlock) => {}
                Ok(Pumped::Eof) | Err(_) => {
                    if let Some(mut s) = r.stderr.take() {
                        s.asm.finish(&mut log);
                        s.close(pipes);
                    }
                }
            }
        }
        progress
    }

    /// The command's shell exited with `status`: read what is left, stop the rest of its group,
    /// and wait to restart. Returns the group to reap if members are left.
    pub fn on_exit(
        &mut self,
        now: Instant,
        status: &WaitStatus,
        pipes: &mut CheckFds,
        scratch: &mut Scratch,
        sink: &mut dyn LineSink,
    ) -> Option<Stopping> {
        let State::Running(r) = &self.state else { return None };
        let (pid, started) = (r.pid, r.started);
        let mut budget = DRAIN_AFTER_EXIT;
        self.on_ready(pipes, scratch, &mut budget, sink);
        self.close_streams(pipes, Some(sink));
        self.counters.exits += 1;
        let ran_ms = now.as_millis().saturating_sub(started.as_millis());
        self.wait_to_restart(now, started);
        let next = match self.state {
            State::Waiting { start_at } => start_at.as_millis().saturating_sub(now.as_millis()),
            State::Running(_) => 0,
        };
        crate::warn!(
            "{}: `{}` {} after {}.{:03} s; restarting in {} s",
            self.what,
            self.command,
            describe_exit(status),
            ran_ms / 1000,
            ran_ms % 1000,
            next / 1000
        );
        // Whatever the shell left running in its group would be duplicated by the restart.
        (!group_is_empty(pid)).then(|| {
            let _ = killpg(pid, Signal::SIGTERM);
            Stopping { pid, kill_at: now.plus_ms(KILL_GRACE_MS), reaped: true, what: self.what.clone() }
        })
    }

    /// Closes the pipes; with a sink, an unterminated last line of stdout is handed on.
    fn close_streams(&mut self, pipes: &mut CheckFds, sink: Option<&mut dyn LineSink>) {
        let State::Running(r) = &mut self.state else { return };
        if let Some(mut s) = r.stdout.take() {
            if let Some(sink) = sink {
                s.asm.finish(sink);
            }
            s.close(pipes);
        }
        if let Some(s) = r.stderr.take() {
            s.close(pipes);
        }
    }

    /// Stops the command: SIGTERM to its group, pipes closed (what is unread is not looked at:
    /// stopping raises no alerts). Returns the group for the reaper.
    pub fn stop(&mut self, now: Instant, pipes: &mut CheckFds) -> Option<Stopping> {
        let pid = self.pid()?;
        self.close_streams(pipes, None);
        self.state = State::Waiting { start_at: Instant::from_millis(u64::MAX) };
        let _ = killpg(pid, Signal::SIGTERM);
        Some(Stopping { pid, kill_at: now.plus_ms(KILL_GRACE_MS), reaped: false, what: self.what.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_descriptions() {
        let p = Pid::from_raw(1);
        assert_eq!(describe_exit(&WaitStatus::Exited(p, 127)), "exited with status 127 (command not found)");
        assert_eq!(describe_exit(&WaitStatus::Exited(p, 3)), "exited with status 3");
        assert_eq!(describe_exit(&WaitStatus::Signaled(p, Signal::SIGKILL, false)), "was killed by SIGKILL");
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_stable_run() {
        let mut r = CommandRunner::new("true".into(), "check log t".into(), Listener::Check(1), Instant::from_millis(0));
        let mut delays = Vec::new();
        let mut now = Instant::from_millis(1_000_000);
        for _ in 0..9 {
            r.wait_to_restart(now, now.plus_ms(0));
            let State::Waiting { start_at } = r.state else { panic!() };
            delays.push(now.until(start_at));
            now = start_at;
        }
        assert_eq!(delays, vec![1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
        // A run of 30 s or more starts the backoff over.
        let started = now;
        now = now.plus_ms(STABLE_RUN_MS);
        r.wait_to_restart(now, started);
        let State::Waiting { start_at } = r.state else { panic!() };
        assert_eq!(now.until(start_at), 1_000);
    }
}
