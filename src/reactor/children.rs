//! Child processes of `@command` checks: reaping on SIGCHLD, and stopping them all at shutdown.
//! Every child is reaped here, including orphaned grandchildren (the agent is a child
//! subreaper): no zombies.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::Daemon;
use crate::alert::Alert;
use crate::sources::command::{KILL_GRACE_MS, group_is_empty};
use crate::time::{Clock, Now};

/// How long a stopping agent waits for killed groups to be reaped.
const FINAL_REAP_MS: u64 = 1_000;

impl Daemon {
    /// Reaps every child that has exited and tells its check or the reaper.
    pub(super) fn reap_children(&mut self, now: Now, out: &mut Vec<Alert>) {
        while let Some((pid, status)) = reap_one() {
            let owner = self.checks.values_mut().find(|c| c.check.child() == Some(pid));
            match owner {
                Some(c) => {
                    let (group, raised) = c.check.raised_waiting(|check| check.on_child_exit(now, &status, &mut self.io, out));
                    if let Some(group) = group {
                        self.reaper.adopt(group);
                    }
                    self.save_now |= raised;
                    self.dirty_since.get_or_insert(now.mono);
                }
                // A stopped command's shell, or an orphan re-parented to us.
                None => {
                    self.reaper.on_reaped(pid);
                }
            }
        }
    }

    /// At shutdown, after every command was sent SIGTERM: waits up to the grace period for their
    /// groups to go, then kills what is left and reaps it. Blocking is fine here: the reactor
    /// has stopped serving.
    pub(super) fn stop_children(&mut self, clock: &Clock) {
        let deadline = clock.now().mono.plus_ms(KILL_GRACE_MS);
        while !self.reaper.is_empty() && clock.now().mono < deadline {
            while let Some((pid, _)) = reap_one() {
                self.reaper.on_reaped(pid);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for g in self.reaper.groups() {
            if !group_is_empty(g.pid) {
                crate::warn!("{}: still running at shutdown after SIGTERM; sending SIGKILL", g.what);
                let _ = killpg(g.pid, Signal::SIGKILL);
            }
        }
        let deadline = clock.now().mono.plus_ms(FINAL_REAP_MS);
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Err(Errno::ECHILD) => return,
                Ok(WaitStatus::StillAlive) => {
                    if clock.now().mono >= deadline {
                        crate::warn!("children still running at exit");
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => {}
            }
        }
    }
}

/// One exited child, if any (non-blocking).
fn reap_one() -> Option<(Pid, WaitStatus)> {
    loop {
        return match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => None,
            Ok(status) => match status.pid() {
                Some(pid) => Some((pid, status)),
                None => continue,
            },
            Err(Errno::EINTR) => continue,
            Err(e) => {
                crate::error!("waitpid failed: {}", e.desc());
                None
            }
        };
    }
}
