//! The inotify instance and who listens to which watch.
//!
//! inotify returns the same watch descriptor for the same inode, so two checks on one file, or a
//! log directory that is also a config directory, share a watch: subscriptions are counted and
//! the watch is removed with its last subscriber. A directory watch carries an optional name
//! filter per subscriber, so a write to another file in `/var/log` wakes nobody.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};

/// Who a watch event is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Listener {
    /// A running check, by its id.
    Check(u64),
    /// The configuration (monitor.d, config.sh).
    Config,
    /// Alerts handed in from outside (`crate::uplink::inbox`).
    Inbox,
}

/// Events asked of a directory: names appearing and disappearing, and files closed after
/// writing (editors, `echo >`). Never IN_MODIFY: that would wake us for every write to any file
/// in the directory.
pub fn dir_mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// Events asked of a followed file: writes, truncation, link count changes, moves.
pub fn file_mask() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_ATTRIB | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_DELETE_SELF
}

/// `IN_MASK_ADD` (not in nix): add to a shared watch's mask instead of replacing it, so a
/// directory that is both a log directory and a config directory keeps both sets of events.
fn mask_add() -> AddWatchFlags {
    AddWatchFlags::from_bits_retain(0x2000_0000)
}

#[derive(Debug)]
struct Subscription {
    listener: Listener,
    name: Option<OsString>,
}

#[derive(Debug, Default)]
struct Watch {
    subs: Vec<Subscription>,
}

/// Why a watch could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchError {
    /// The path does not exist (yet).
    NotFound,
    /// `fs.inotify.max_user_watches` is exhausted.
    Limit,
    /// Anything else (permissions, ...).
    Other(Errno),
}

impl std::fmt::Display for WatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatchError::NotFound => write!(f, "does not exist"),
            WatchError::Limit => write!(f, "inotify watch limit reached (raise fs.inotify.max_user_watches)"),
            WatchError::Other(e) => write!(f, "{}", e.desc()),
        }
    }
}

/// A watch held by one subscriber; give it back with [`Watches::unwatch`].
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct WatchHandle {
    wd: WatchDescriptor,
    listener: Listener,
    name: Option<OsString>,
}

/// Counters of the watch table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WatchCounters {
    /// Times the kernel's event queue overflowed (every source was re-read).
    pub overflows: u64,
    /// Watches refused because of the watch limit.
    pub limit_hits: u64,
}

/// The inotify instance and its subscriptions.
#[derive(Debug)]
pub struct Watches {
    inotify: Inotify,
    watches: HashMap<WatchDescriptor, Watch>,
    counters: WatchCounters,
}

/// What one batch of inotify events means.
#[derive(Debug, Default)]
pub struct Routed {
    /// Listeners with something to look at, each once.
    pub listeners: Vec<Listener>,
    /// The queue overflowed: events were lost, everybody must re-check.
    pub overflow: bool,
}

impl Watches {
    /// A non-blocking inotify instance.
    pub fn new() -> nix::Result<Watches> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(Watches { inotify, watches: HashMap::new(), counters: WatchCounters::default() })
    }

    /// The fd to register with the reactor.
    pub fn raw_fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }

    /// Counters so far.
    pub fn counters(&self) -> WatchCounters {
        self.counters
    }

    /// Watches directory `dir` for `listener`, for events about `name` only if given.
    pub fn watch_dir(&mut self, dir: &Path, name: Option<OsString>, listener: Listener) -> Result<WatchHandle, WatchError> {
        self.add(dir, dir_mask() | mask_add(), name, listener)
    }

    /// Watches the file at `path` (the inode it names now) for `listener`.
    pub fn watch_file(&mut self, path: &Path, listener: Listener) -> Result<WatchHandle, WatchError> {
        self.add(path, file_mask() | mask_add(), None, listener)
    }

    fn add(&mut self, path: &Path, mask: AddWatchFlags, name: Option<OsString>, listener: Listener) -> Result<WatchHandle, WatchError> {
        let wd = self.inotify.add_watch(path, mask).map_err(|e| match e {
            Errno::ENOENT | Errno::ENOTDIR => WatchError::NotFound,
            Errno::ENOSPC => {
                self.counters.limit_hits += 1;
                WatchError::Limit
            }
            e => WatchError::Other(e),
        })?;
        self.watches.entry(wd).or_default().subs.push(Subscription { listener, name: name.clone() });
        Ok(WatchHandle { wd, listener, name })
    }

    /// Whether `handle` still watches something (the kernel drops a watch whose inode is gone).
    pub fn is_live(&self, handle: &WatchHandle) -> bool {
        self.watches.get(&handle.wd).is_some_and(|w| w.subs.iter().any(|s| s.listener == handle.listener && s.name == handle.name))
    }

    /// Gives a watch back; the kernel watch goes with its last subscriber.
    pub fn unwatch(&mut self, handle: WatchHandle) {
        let Some(w) = self.watches.get_mut(&handle.wd) else { return };
        if let Some(i) = w.subs.iter().position(|s| s.listener == handle.listener && s.name == handle.name) {
            w.subs.swap_remove(i);
        }
        if w.subs.is_empty() {
            self.watches.remove(&handle.wd);
            // EINVAL: the kernel already dropped it (the inode is gone); nothing to undo.
            let _ = self.inotify.rm_watch(handle.wd);
        }
    }

    /// Reads every pending event (until the queue is empty) and says whom they concern.
    pub fn read(&mut self) -> Routed {
        let mut routed = Routed::default();
        loop {
            match self.inotify.read_events() {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    for ev in events {
                        self.route(ev, &mut routed);
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    crate::error!("reading inotify events failed: {}; re-reading every source", e.desc());
                    routed.overflow = true;
                    break;
                }
            }
        }
        if routed.overflow {
            routed.listeners.clear();
        }
        routed
    }

    fn route(&mut self, ev: InotifyEvent, routed: &mut Routed) {
        if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            self.counters.overflows += 1;
            crate::warn!("inotify event queue overflowed; re-reading every source");
            routed.overflow = true;
            return;
        }
        let Some(w) = self.watches.get(&ev.wd) else { return };
        for s in &w.subs {
            let wanted = match (&s.name, &ev.name) {
                (None, _) => true,
                (Some(want), Some(got)) => want == got,
                // An event about the watched directory itself (moved, deleted).
                (Some(_), None) => true,
            };
            if wanted && !routed.listeners.contains(&s.listener) {
                routed.listeners.push(s.listener);
            }
        }
        if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
            // The kernel removed the watch (inode deleted, filesystem unmounted). Its listeners
            // were told above and re-establish what they need; the stale handles are harmless.
            self.watches.remove(&ev.wd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(w: &mut Watches) -> Vec<Listener> {
        let mut l = w.read().listeners;
        l.sort();
        l
    }

    /// Two checks on files of one directory share its watch; each hears only of its own name,
    /// and a subscriber without a name (the configuration) hears of everything.
    #[test]
    fn a_shared_directory_watch_routes_by_name() {
        let tmp = crate::testutil::TempDir::new("watch");
        let mut w = Watches::new().unwrap();
        let a = w.watch_dir(tmp.path(), Some("a.log".into()), Listener::Check(1)).unwrap();
        let b = w.watch_dir(tmp.path(), Some("b.log".into()), Listener::Check(2)).unwrap();
        assert_eq!(a.wd, b.wd, "one kernel watch");
        std::fs::write(tmp.path().join("a.log"), b"x").unwrap();
        assert_eq!(read(&mut w), vec![Listener::Check(1)]);
        std::fs::write(tmp.path().join("other"), b"x").unwrap();
        assert_eq!(read(&mut w), vec![], "a file nobody follows wakes nobody");
        let cfg = w.watch_dir(tmp.path(), None, Listener::Config).unwrap();
        std::fs::write(tmp.path().join("b.log"), b"x").unwrap();
        assert_eq!(read(&mut w), vec![Listener::Check(2), Listener::Config]);
        // Given back one by one: the kernel watch stays while anyone holds it.
        w.unwatch(a);
        w.unwatch(cfg);
        assert!(w.is_live(&b));
        std::fs::write(tmp.path().join("b.log"), b"y").unwrap();
        assert_eq!(read(&mut w), vec![Listener::Check(2)]);
        w.unwatch(b.clone());
        assert!(!w.is_live(&b));
        assert!(w.watches.is_empty());
    }

    /// A watched file that is deleted: its listener hears of it, and the watch is gone (the
    /// kernel's IN_IGNORED), so `is_live` tells the tailer to watch anew.
    #[test]
    fn a_deleted_file_drops_its_watch() {
        let tmp = crate::testutil::TempDir::new("watch");
        let file = tmp.path().join("app.log");
        std::fs::write(&file, b"x").unwrap();
        let mut w = Watches::new().unwrap();
        let h = w.watch_file(&file, Listener::Check(7)).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(read(&mut w), vec![Listener::Check(7)]);
        assert!(!w.is_live(&h));
        w.unwatch(h); // harmless after the kernel dropped it
        assert!(matches!(w.watch_file(&file, Listener::Check(7)), Err(WatchError::NotFound)));
    }
}
