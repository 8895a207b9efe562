//! One run of a program check's plugin: started through the shared [`spawn_group`] (`/bin/sh
//! -c`, a process group of its own, non-blocking pipes in the reactor's poll), its output read
//! as the reactor says it is ready, and its end when the reactor reaps the shell on SIGCHLD.
//!
//! Output is bounded: only the first line of stdout and of stderr is kept (each at most
//! [`FIRST_LINE_MAX`] bytes; a line longer than `LOG_MAX_LINE_BYTES` never grows a buffer past
//! that), everything else is read and dropped, counted. A plugin that never stops writing is
//! read a turn's budget at a time and ends at its timeout; one that leaves a process holding
//! its stdout is over when its shell exits (at most 1 MiB more is read, then the pipes close
//! and what is left of its group is stopped).

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::check_fds::CheckFds;
use super::command::{DRAIN_AFTER_EXIT, KILL_GRACE_MS, SpawnError, Spawned, Stopping, Stream, group_is_empty, spawn_group};
use super::lines::{LineSink, Pumped, ReadCounters, Scratch};
use super::tail::Progress;
use super::watch::Listener;
use crate::time::Instant;

/// Most bytes of a first line kept (the alert takes at most 1 KiB of it).
pub const FIRST_LINE_MAX: usize = 4096;

/// Output counters of a program check, over all its runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutputCounters {
    /// Bytes read from stdout and stderr.
    pub bytes: u64,
    /// Of them, bytes not kept (all but the first line of each).
    pub bytes_dropped: u64,
    /// Lines longer than `LOG_MAX_LINE_BYTES` (cut by the line assembly).
    pub long_lines: u64,
}

/// Keeps the first line it is given, at most [`FIRST_LINE_MAX`] bytes of it.
#[derive(Debug, Default)]
struct FirstLine {
    line: Option<Vec<u8>>,
}

impl FirstLine {
    fn keep(&mut self, line: &[u8]) {
        if self.line.is_none() {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            self.line = Some(line[..line.len().min(FIRST_LINE_MAX)].to_vec());
        }
    }

    fn text(&self) -> Option<String> {
        self.line.as_ref().map(|l| String::from_utf8_lossy(l).into_owned())
    }

    fn kept(&self) -> u64 {
        self.line.as_ref().map_or(0, |l| l.len() as u64)
    }
}

impl LineSink for FirstLine {
    fn lines(&mut self, buf: &[u8], _first_line: u64, _count: u64) {
        if self.line.is_none() {
            let end = memchr::memchr(b'\n', buf).map_or(buf.len(), |i| i + 1);
            self.keep(&buf[..end]);
        }
    }

    fn line(&mut self, line: &[u8], _number: u64) {
        self.keep(line);
    }
}

#[derive(Debug)]
struct Pipe {
    stream: Option<Stream>,
    first: FirstLine,
    read: ReadCounters,
}

impl Pipe {
    fn new(stream: Option<Stream>) -> Self {
        Pipe { stream, first: FirstLine::default(), read: ReadCounters::default() }
    }

    /// Reads within `budget`; true if more is waiting.
    fn pump(&mut self, pipes: &mut CheckFds, scratch: &mut Scratch, budget: &mut usize) -> bool {
        let Some(s) = self.stream.as_mut() else { return false };
        match s.pump(scratch, budget, &mut self.read, &mut self.first) {
            Ok(Pumped::Budget) => return true,
            Ok(Pumped::WouldBlock) => {}
            Ok(Pumped::Eof) | Err(_) => self.close(pipes),
        }
        false
    }

    fn close(&mut self, pipes: &mut CheckFds) {
        if let Some(mut s) = self.stream.take() {
            s.finish(&mut self.first);
            s.close(pipes);
        }
    }
}

/// A plugin that runs.
#[derive(Debug)]
pub struct ProgramRun {
    pid: Pid,
    stdout: Pipe,
    stderr: Pipe,
}

/// What a finished run said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// The first line of stdout.
    pub stdout: Option<String>,
    /// The first line of stderr.
    pub stderr: Option<String>,
    /// What this run adds to the output counters.
    pub counters: OutputCounters,
}

impl ProgramRun {
    /// Starts `command`; its pipes wake `listener`.
    pub fn start(command: &str, pipes: &mut CheckFds, listener: Listener) -> Result<ProgramRun, StartError> {
        match spawn_group(command, pipes, listener) {
            Ok(Spawned { pid, stdout, stderr }) => Ok(ProgramRun { pid, stdout: Pipe::new(Some(stdout)), stderr: Pipe::new(Some(stderr)) }),
            Err(SpawnError::NotStarted(e)) => Err(StartError::NotStarted(e.to_string())),
            // Killed already; its exit ends the run as any other.
            Err(SpawnError::Unwatched { pid, why }) => {
                crate::error!("cannot watch a plugin's output ({why}); it was killed");
                Ok(ProgramRun { pid, stdout: Pipe::new(None), stderr: Pipe::new(None) })
            }
        }
    }

    /// The shell's pid (also its group's id).
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Reads what the plugin wrote, at most `budget` bytes.
    pub fn on_ready(&mut self, pipes: &mut CheckFds, scratch: &mut Scratch, budget: &mut usize) -> Progress {
        let more_out = self.stdout.pump(pipes, scratch, budget);
        let more_err = self.stderr.pump(pipes, scratch, budget);
        if more_out || more_err { Progress::More } else { Progress::Done }
    }

    /// Its time is up: SIGKILL to the whole group; the shell's exit follows on SIGCHLD.
    pub fn kill(&self) {
        let _ = killpg(self.pid, Signal::SIGKILL);
    }

    /// The shell was reaped: reads what is left (bounded), closes the pipes, and stops what is
    /// left of the group (returned for the reaper).
    pub fn finish(mut self, now: Instant, what: &str, pipes: &mut CheckFds, scratch: &mut Scratch) -> (RunOutput, Option<Stopping>) {
        let mut budget = DRAIN_AFTER_EXIT;
        self.on_ready(pipes, scratch, &mut budget);
        self.stdout.close(pipes);
        self.stderr.close(pipes);
        let stopping = (!group_is_empty(self.pid)).then(|| {
            let _ = killpg(self.pid, Signal::SIGTERM);
            Stopping { pid: self.pid, kill_at: now.plus_ms(KILL_GRACE_MS), reaped: true, what: what.to_string() }
        });
        let bytes = self.stdout.read.bytes + self.stderr.read.bytes;
        let counters = OutputCounters {
            bytes,
            bytes_dropped: bytes.saturating_sub(self.stdout.first.kept() + self.stderr.first.kept()),
            long_lines: self.stdout.read.long_lines + self.stderr.read.long_lines,
        };
        (RunOutput { stdout: self.stdout.first.text(), stderr: self.stderr.first.text(), counters }, stopping)
    }

    /// The check stops: pipes closed, SIGTERM to the group, handed to the reaper.
    pub fn stop(mut self, now: Instant, what: &str, pipes: &mut CheckFds) -> Stopping {
        self.stdout.close(pipes);
        self.stderr.close(pipes);
        let _ = killpg(self.pid, Signal::SIGTERM);
        Stopping { pid: self.pid, kill_at: now.plus_ms(KILL_GRACE_MS), reaped: false, what: what.to_string() }
    }
}

/// Why a plugin did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// `/bin/sh` could not be started.
    NotStarted(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_line_is_kept_and_bounded() {
        let mut f = FirstLine::default();
        f.lines(b"DISK OK - free\nmore\n", 1, 2);
        f.lines(b"later\n", 3, 1);
        assert_eq!(f.text().as_deref(), Some("DISK OK - free"));
        let mut f = FirstLine::default();
        f.line(&vec![b'x'; 100_000], 1);
        assert_eq!(f.kept(), FIRST_LINE_MAX as u64);
    }
}
