//! Running checks: a source wired to a detector, with what it needs to persist and reload. The
//! reactor owns these; they own no thread and never block beyond a bounded read or a spawn.

pub mod connectivity;
pub mod diskusage;
pub mod log;
pub mod program;
pub mod service;

use crate::sources::check_fds::CheckFds;
use crate::sources::lines::Scratch;
use crate::sources::watch::Watches;

pub use connectivity::{ConnectivityCheck, ConnectivityCheckConfig};
pub use diskusage::{DiskusageCheck, DiskusageCheckConfig};
pub use log::{LogCheck, LogCheckConfig};
pub use program::{ProgramCheck, ProgramCheckConfig};
pub use service::{ServiceCheck, ServiceCheckConfig};

/// What a check's source may use of the reactor: the inotify table, the pipe table, the shared
/// read buffer, the systemd connection and where the system bus is. The reactor keeps them in
/// one value, so lending it to a check borrows one field of the daemon.
pub struct Io {
    /// inotify watches.
    pub watches: Watches,
    /// Per-check fds registered with the poll (pipes, pidfds, `dbus` checks' connections).
    pub check_fds: CheckFds,
    /// The shared read buffer.
    pub scratch: Scratch,
    /// Unit states.
    pub systemd: SystemdSource,
    /// The system bus's socket, for the connections of `dbus` checks.
    pub system_bus: std::path::PathBuf,
    /// The kernel's routing events, open while a `connectivity` check runs.
    pub netlink: crate::sources::netlink::Netlink,
}

use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::alert::Alert;
use crate::config::check::CheckId;
use crate::control::status::CheckStatus;
use crate::sources::command::Stopping;
use crate::sources::systemd::{SystemdSource, UnitState};
use crate::sources::tail::Progress;
use crate::state::CheckState;
use crate::time::{Instant, Now};

/// A check's resolved configuration; equal configs behave the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckConfig {
    /// A log check.
    Log(LogCheckConfig),
    /// A service check.
    Service(ServiceCheckConfig),
    /// A program check.
    Program(ProgramCheckConfig),
    /// A connectivity check.
    Connectivity(ConnectivityCheckConfig),
    /// A diskusage check.
    Diskusage(DiskusageCheckConfig),
}

impl CheckConfig {
    /// Whether a change from `self` to `other` can keep the running source (position, process,
    /// unit subscription) and only reconfigure the detector.
    pub fn same_source(&self, other: &CheckConfig) -> bool {
        match (self, other) {
            (CheckConfig::Log(a), CheckConfig::Log(b)) => a.source == b.source,
            (CheckConfig::Service(a), CheckConfig::Service(b)) => a.unit == b.unit,
            (CheckConfig::Program(a), CheckConfig::Program(b)) => a.command == b.command,
            (CheckConfig::Connectivity(a), CheckConfig::Connectivity(b)) => a.same_source(b),
            (CheckConfig::Diskusage(a), CheckConfig::Diskusage(b)) => a.same_alert(b),
            _ => false,
        }
    }
}

/// A running check of any subsystem.
#[derive(Debug)]
pub enum Check {
    /// A log check (file or command).
    Log(Box<LogCheck>),
    /// A service check (systemd unit).
    Service(Box<ServiceCheck>),
    /// A program check.
    Program(Box<ProgramCheck>),
    /// A connectivity check.
    Connectivity(Box<ConnectivityCheck>),
    /// A diskusage check.
    Diskusage(Box<DiskusageCheck>),
}

impl Check {
    /// Starts a check (see [`LogCheck::start`], [`ServiceCheck::start`]).
    pub fn start(
        id: CheckId,
        key: u64,
        config: CheckConfig,
        saved: Option<&CheckState>,
        now: Now,
        io: &mut Io,
        out: &mut Vec<Alert>,
    ) -> Result<Check, String> {
        Ok(match config {
            CheckConfig::Log(c) => Check::Log(Box::new(LogCheck::start(id, key, c, saved, now, out)?)),
            CheckConfig::Service(c) => Check::Service(Box::new(ServiceCheck::start(id, key, c, saved, now, io, out))),
            CheckConfig::Program(c) => Check::Program(Box::new(ProgramCheck::start(id, key, c, saved, now))),
            CheckConfig::Connectivity(c) => Check::Connectivity(Box::new(ConnectivityCheck::start(id, key, c, saved, now, io))),
            CheckConfig::Diskusage(c) => Check::Diskusage(Box::new(DiskusageCheck::start(id, c, saved, now, out))),
        })
    }

    /// Reads what is new (log checks), looks at the process again (sysV service checks).
    pub fn on_ready(&mut self, now: Now, io: &mut Io, budget: &mut usize, out: &mut Vec<Alert>) -> Progress {
        match self {
            Check::Log(c) => c.on_ready(now, io, budget, out),
            Check::Service(c) => {
                c.on_ready(now, io, out);
                Progress::Done
            }
            Check::Program(c) => c.on_ready(io, budget),
            Check::Connectivity(c) => c.on_ready(now, io, out),
            Check::Diskusage(_) => Progress::Done,
        }
    }

    /// Runs what is due.
    pub fn on_tick(&mut self, now: Now, io: &mut Io, budget: &mut usize, out: &mut Vec<Alert>) -> Progress {
        match self {
            Check::Log(c) => c.on_tick(now, io, budget, out),
            Check::Service(c) => {
                c.on_tick(now, out);
                Progress::Done
            }
            Check::Program(c) => {
                c.on_tick(now, io, out);
                Progress::Done
            }
            Check::Connectivity(c) => {
                c.on_tick(now, io, out);
                Progress::Done
            }
            Check::Diskusage(c) => {
                c.on_tick(now, out);
                Progress::Done
            }
        }
    }

    /// When [`on_tick`](Self::on_tick) must run.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        match self {
            Check::Log(c) => c.next_deadline(),
            Check::Service(c) => c.next_deadline(now),
            Check::Program(c) => c.next_deadline(),
            Check::Connectivity(c) => c.next_deadline(now),
            Check::Diskusage(c) => c.next_deadline(),
        }
    }

    /// A unit's new state, for the service checks that follow it.
    pub fn on_unit(&mut self, now: Now, unit: &str, state: &UnitState, out: &mut Vec<Alert>) {
        if let Check::Service(c) = self {
            if c.config().unit == unit {
                c.on_unit(now, state, out);
            }
        }
    }

    /// The kernel said the network changed (links, routes, addresses), for connectivity checks.
    pub fn on_net(&mut self, change: &crate::detect::connectivity::NetChange) {
        if let Check::Connectivity(c) = self {
            c.on_net(change);
        }
    }

    /// The process id of a log check's command.
    pub fn child(&self) -> Option<Pid> {
        match self {
            Check::Log(c) => c.child(),
            Check::Program(c) => c.child(),
            Check::Service(_) | Check::Connectivity(_) | Check::Diskusage(_) => None,
        }
    }

    /// A log check's command exited.
    pub fn on_child_exit(&mut self, now: Now, status: &WaitStatus, io: &mut Io, out: &mut Vec<Alert>) -> Option<Stopping> {
        match self {
            Check::Log(c) => c.on_child_exit(now, status, io, out),
            Check::Program(c) => c.on_child_exit(now, status, io, out),
            Check::Service(_) | Check::Connectivity(_) | Check::Diskusage(_) => None,
        }
    }

    /// Applies a config with the same source (see [`CheckConfig::same_source`]).
    pub fn reconfigure(&mut self, config: CheckConfig, now: Now, out: &mut Vec<Alert>) -> Result<(), String> {
        match (self, config) {
            (Check::Log(c), CheckConfig::Log(cfg)) => c.reconfigure(cfg, now, out),
            (Check::Service(c), CheckConfig::Service(cfg)) => {
                c.reconfigure(cfg, now, out);
                Ok(())
            }
            (Check::Program(c), CheckConfig::Program(cfg)) => {
                c.reconfigure(cfg, now);
                Ok(())
            }
            (Check::Connectivity(c), CheckConfig::Connectivity(cfg)) => {
                c.reconfigure(cfg, now);
                Ok(())
            }
            (Check::Diskusage(c), CheckConfig::Diskusage(cfg)) => {
                c.reconfigure(cfg, now);
                Ok(())
            }
            _ => Err("a check cannot change its subsystem".into()),
        }
    }

    /// Whether a log CRITICAL was raised and waits for its after-lines (it is in no spool yet).
    pub fn awaiting_context(&self) -> bool {
        match self {
            Check::Log(c) => c.awaiting_context(),
            Check::Service(_) | Check::Program(_) | Check::Connectivity(_) | Check::Diskusage(_) => false,
        }
    }

    /// Runs `step` on the check; true if it raised a CRITICAL that now waits for its
    /// after-lines: the state (which then carries it) must be saved at once.
    pub fn raised_waiting<R>(&mut self, step: impl FnOnce(&mut Check) -> R) -> (R, bool) {
        let before = self.awaiting_context();
        let r = step(self);
        (r, !before && self.awaiting_context())
    }

    /// Sends a log CRITICAL that waits for its after-lines as it stands: always (`max_bytes`
    /// 0: the agent stops), or if it is too big to be saved with the state (see
    /// [`LogCheck::flush`]).
    pub fn flush(&mut self, max_bytes: usize, out: &mut Vec<Alert>) {
        if let Check::Log(c) = self {
            c.flush(max_bytes, out);
        }
    }

    /// What to save for a restart.
    pub fn snapshot(&self, now: Now) -> CheckState {
        match self {
            Check::Log(c) => c.snapshot(),
            Check::Service(c) => c.snapshot(now),
            Check::Program(c) => c.snapshot(now),
            Check::Connectivity(c) => c.snapshot(now),
            Check::Diskusage(c) => c.snapshot(now),
        }
    }

    /// Stops the check (see [`LogCheck::stop`], [`ServiceCheck::stop`]).
    pub fn stop(&mut self, now: Now, io: &mut Io, clear: Option<&str>, out: &mut Vec<Alert>) -> (CheckState, Option<Stopping>) {
        match self {
            Check::Log(c) => c.stop(now, io, clear, out),
            Check::Service(c) => (c.stop(now, io, clear, out), None),
            Check::Program(c) => c.stop(now, io, clear, out),
            Check::Connectivity(c) => (c.stop(now, io, clear, out), None),
            Check::Diskusage(c) => (c.stop(now, clear, out), None),
        }
    }

    /// The check as `status` shows it.
    pub fn status(&self) -> CheckStatus {
        match self {
            Check::Log(c) => c.status(),
            Check::Service(c) => c.status(),
            Check::Program(c) => c.status(),
            Check::Connectivity(c) => c.status(),
            Check::Diskusage(c) => c.status(),
        }
    }

    /// One-line summary of the counters, for the log.
    pub fn summary(&self) -> String {
        match self {
            Check::Log(c) => c.summary(),
            Check::Service(c) => c.summary(),
            Check::Program(c) => c.summary(),
            Check::Connectivity(c) => c.summary(),
            Check::Diskusage(c) => c.summary(),
        }
    }
}
