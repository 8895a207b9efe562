//! File descriptors: the agent's own are never starved by its checks.
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard one (systemd's default soft limit is
//! 1024 whatever the hard one allows). Then the last [`RESERVE`] descriptors below the limit are
//! kept for the agent itself — the state file, spool segments, the control socket's clients,
//! HTTP connections, reading check files — and a check may not take one of them.
//!
//! The test costs nothing: Linux gives out the lowest free descriptor, so a new descriptor
//! numbered `limit - RESERVE` or more means fewer than [`RESERVE`] are free. A check refused
//! this way says so in the log and in `status`, and tries again later.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI64, Ordering};

/// Descriptors below the limit that checks may not take.
pub const RESERVE: i64 = 64;

/// The first descriptor number checks may not hold (`limit - RESERVE`).
static CHECK_CEILING: AtomicI64 = AtomicI64::new(i64::MAX);

/// What raising the limit did, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The soft limit found.
    pub was: u64,
    /// The soft limit now.
    pub now: u64,
}

/// Raises the soft limit to the hard one and sets the ceiling for checks.
// rlim_t is 32 bits on armv7 and 64 on aarch64/x86_64: the conversions are needed on one.
#[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
pub fn raise() -> Result<Limits, String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("cannot read the open files limit: {}", e.desc()))?;
    // rlim_t is 32 bits on armv7, 64 on aarch64.
    let (soft_raw, hard_raw) = (soft, hard);
    let (soft, hard) = (u64::from(soft), u64::from(hard));
    // An unlimited hard limit is not accepted as a soft one; the kernel's own ceiling is.
    let target = if hard_raw == nix::libc::RLIM_INFINITY { nr_open().unwrap_or(soft) } else { hard };
    let now = if target > soft {
        let new_soft = nix::libc::rlim_t::try_from(target).unwrap_or(soft_raw);
        match setrlimit(Resource::RLIMIT_NOFILE, new_soft, hard_raw) {
            Ok(()) => target,
            Err(e) => {
                set_ceiling(soft);
                return Err(format!("cannot raise the open files limit from {soft} to {target}: {}", e.desc()));
            }
        }
    } else {
        soft
    };
    set_ceiling(now);
    Ok(Limits { was: soft, now })
}

fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open").ok()?.trim().parse().ok()
}

/// Sets the ceiling for a soft limit of `limit` descriptors.
pub fn set_ceiling(limit: u64) {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    CHECK_CEILING.store(limit.saturating_sub(RESERVE).max(0), Ordering::Relaxed);
}

/// The soft limit the agent works under (for messages and `status`).
pub fn limit() -> u64 {
    u64::try_from(CHECK_CEILING.load(Ordering::Relaxed).saturating_add(RESERVE)).unwrap_or(0)
}

/// Whether a check may hold the new descriptor `fd`; if not, what to say (the caller closes it
/// and tries again later).
pub fn check_may_hold(fd: RawFd) -> Result<(), String> {
    if i64::from(fd) < CHECK_CEILING.load(Ordering::Relaxed) { Ok(()) } else { Err(shortage()) }
}

/// The message for a check that finds no descriptor.
pub fn shortage() -> String {
    format!("no file descriptor left for checks (the last {RESERVE} of the limit of {} are kept for the agent)", limit())
}

/// Whether an I/O error says the process or system is out of descriptors.
pub fn is_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(nix::libc::EMFILE | nix::libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_descriptors_are_kept_for_the_agent() {
        set_ceiling(1024);
        assert!(check_may_hold(10).is_ok());
        assert!(check_may_hold(1024 - 65).is_ok());
        let e = check_may_hold(1024 - 64).unwrap_err();
        assert!(e.contains("limit of 1024"), "{e}");
        set_ceiling(u64::MAX);
        assert!(check_may_hold(RawFd::MAX).is_ok());
    }
}
