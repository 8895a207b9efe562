//! SysV services: is the process of `/var/run/<name>.pid` (or, without a pid file, a process
//! named `<name>`) alive? Event-driven: the process is followed with a pidfd (readable when it
//! exits) and the pid file's directory with inotify (a restart rewrites the pid file); nothing
//! is polled.

use std::ffi::OsString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use mio::Token;

use super::check_fds::CheckFds;
use super::watch::{Listener, WatchHandle, Watches};

/// Opens a pidfd for `pid` (Linux 5.3+): readable once the process exits.
fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is passed.
    // It has no wrapper in nix or std for non-child processes.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("pidfd out of range"))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `pid` names a live (not zombie) process.
fn alive(root_proc: &Path, pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(root_proc.join(pid.to_string()).join("stat")) else { return false };
    stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).is_some_and(|state| state != "Z" && state != "X")
}

/// A process whose command name is `name` (the kernel keeps the first 15 bytes).
fn pidof(name: &str) -> Option<i32> {
    let want: String = name.chars().take(15).collect();
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let comm = fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim_end() == want && alive(Path::new("/proc"), pid)).then_some(pid)
    })
}

/// What the watch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysvState {
    /// The process runs.
    pub running: bool,
    /// A sentence for the alert details.
    pub detail: String,
    /// Its pid, while it runs.
    pub pid: Option<i32>,
}

/// One sysV service.
#[derive(Debug)]
pub struct SysvWatch {
    name: String,
    pidfile: PathBuf,
    listener: Listener,
    dir_watch: Option<WatchHandle>,
    followed: Option<(OwnedFd, Token, i32)>,
}

impl SysvWatch {
    /// Follows service `name` through `pidfile`.
    pub fn new(name: &str, pidfile: PathBuf, listener: Listener) -> Self {
        SysvWatch { name: name.into(), pidfile, listener, dir_watch: None, followed: None }
    }

    /// The pid file.
    pub fn pidfile(&self) -> &Path {
        &self.pidfile
    }

    /// Looks again: called at start, when the pid file changes, and when the followed process
    /// exits.
    pub fn check(&mut self, watches: &mut Watches, pipes: &mut CheckFds) -> SysvState {
        if self.dir_watch.is_none() {
            if let Some(dir) = self.pidfile.parent() {
                let name: Option<OsString> = self.pidfile.file_name().map(|n| n.to_os_string());
                match watches.watch_dir(dir, name, self.listener) {
                    Ok(h) => self.dir_watch = Some(h),
                    Err(e) => crate::warn!("service {}: cannot watch {}: {e}", self.name, dir.display()),
                }
            }
        }
        let from_file = fs::read_to_string(&self.pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok()).filter(|p| *p > 0);
        if let Some((_, _, pid)) = &self.followed {
            let pid = *pid;
            // The pid file now names another live process (a restart that started the new one
            // before the old one ended, or a hand-edited file): that one is the service.
            let moved = from_file.is_some_and(|p| p != pid && alive(Path::new("/proc"), p));
            if !moved && alive(Path::new("/proc"), pid) {
                return SysvState { running: true, detail: format!("{} runs as pid {pid}", self.name), pid: Some(pid) };
            }
            self.unfollow(pipes);
        }
        let (pid, how) = match from_file {
            Some(p) if alive(Path::new("/proc"), p) => (Some(p), "from its pid file"),
            _ => (pidof(&self.name), "found by name"),
        };
        let Some(pid) = pid else {
            let why = match from_file {
                Some(p) => format!("{}: pid {p} in {} is not running", self.name, self.pidfile.display()),
                None => format!("{}: no process, and no pid in {}", self.name, self.pidfile.display()),
            };
            return SysvState { running: false, detail: why, pid: None };
        };
        match pidfd_open(pid) {
            Ok(fd) => match pipes.register_fd(fd.as_raw_fd(), self.listener) {
                Ok(token) => self.followed = Some((fd, token, pid)),
                Err(e) => crate::warn!("service {}: cannot follow pid {pid}: {e}", self.name),
            },
            // It exited in between: the next look finds out.
            Err(e) => crate::debug!("service {}: pidfd_open({pid}): {e}", self.name),
        }
        SysvState { running: true, detail: format!("{} runs as pid {pid} ({how})", self.name), pid: Some(pid) }
    }

    fn unfollow(&mut self, pipes: &mut CheckFds) {
        if let Some((fd, token, _)) = self.followed.take() {
            pipes.deregister_fd(fd.as_raw_fd(), token);
        }
    }

    /// Stops following.
    pub fn stop(&mut self, watches: &mut Watches, pipes: &mut CheckFds) {
        self.unfollow(pipes);
        if let Some(h) = self.dir_watch.take() {
            watches.unwatch(h);
        }
    }
}
