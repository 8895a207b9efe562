//! Signals as reactor events: SIGTERM/SIGINT (stop), SIGHUP (reload) and SIGCHLD (a command
//! exited) are blocked in every thread and read from a signalfd registered with the poll, so no
//! handler runs at an arbitrary point. Block them before any thread is spawned: threads inherit
//! the mask, and so do child processes: the command runner clears it in the child before exec.
//! Several SIGCHLD
//! coalesce into one: the reactor reaps with `waitpid(-1, WNOHANG)` until nothing is left.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// What the reactor should do about the signals that arrived.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    /// SIGTERM or SIGINT: shut down cleanly.
    pub stop: bool,
    /// SIGHUP: re-read the configuration.
    pub reload: bool,
    /// SIGCHLD: a child exited and must be reaped.
    pub children: bool,
}

/// The blocked signals and their signalfd.
#[derive(Debug)]
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks SIGTERM, SIGINT, SIGHUP and SIGCHLD in the calling thread and opens a signalfd for
    /// them.
    pub fn install() -> nix::Result<Signals> {
        let mut mask = SigSet::empty();
        for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGCHLD] {
            mask.add(s);
        }
        mask.thread_block()?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals { fd })
    }

    /// The fd to register with the reactor.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_fd().as_raw_fd()
    }

    /// Reads every pending signal.
    pub fn read(&self) -> Requests {
        let mut r = Requests::default();
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGTERM | Signal::SIGINT) => r.stop = true,
                    Ok(Signal::SIGHUP) => r.reload = true,
                    Ok(Signal::SIGCHLD) => r.children = true,
                    _ => {}
                },
                Ok(None) => return r,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    crate::error!("reading signals failed: {}", e.desc());
                    return r;
                }
            }
        }
    }
}
