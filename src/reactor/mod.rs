//! The daemon: one mio reactor thread multiplexing inotify (log files and monitor.d), the pipes of
//! `@command` sources, D-Bus connections, the control socket, a signalfd (stop, reload, child
//! exits) and the deadlines of everything (`Timer`); alerts leave through the uplink's spool
//! to the worker thread.
//!
//! One turn: wait until an fd is ready or the earliest deadline; read the clock once; route each
//! event; let every check with work read (bounded bytes per turn, so one busy file cannot starve
//! the rest); fire every deadline that has passed; hand the alerts to the uplink (spooled and
//! synced); then save state if due — never past an alert that is not in the spool. When idle
//! there are no deadlines and `poll` sleeps without a timeout. What to do on a reload is decided
//! by [`plan`], a pure function; this module carries it out.

mod children;
pub mod plan;
mod status;
pub mod unix_signals;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::alert::Alert;
use crate::checks::{Check, CheckConfig, Io};
use crate::config::check::CheckId;
use crate::config::layout::Layout;
use crate::config::settings::Settings;
use crate::config::store;
use crate::control::protocol::Response;
use crate::control::server::{Asked, ControlServer};
use crate::logging::{Admit, Limiter};
use crate::sources::check_fds::CheckFds;
use crate::sources::command::Reaper;
use crate::sources::lines::Scratch;
use crate::sources::systemd::{SystemdSource, Update};
use crate::sources::tail::Progress;
use crate::sources::watch::{Listener, WatchHandle, Watches};
use crate::state::{CheckState, StateStore};
use crate::time::{Clock, Instant, Now};
use crate::tokens::{CONTROL_LISTENER, FIRST_CHECK_FD, INOTIFY, MENDER_BUS, NETLINK, SIGNALS, SYSTEMD_BUS, WAKER};
use crate::uplink::mender_auth::MenderAuth;
use crate::uplink::{Uplink, UplinkSettings};

/// Bytes one check may read per turn before the others get theirs.
pub const TURN_BUDGET: usize = 1 << 20;

/// The longest waits of the reactor on the disk since start, in ms (rounded up): the two
/// places it waits, both after the worker was woken for the turn's alerts, so they delay the
/// next turn, not the alerts of this one.
#[derive(Debug, Default, Clone, Copy)]
struct DiskWaits {
    /// `fdatasync` of the spool at the end of a turn with alerts (`ALERT_STORE_FSYNC=always`).
    spool_sync_ms: u64,
    /// Taking the state and handing it to the writer thread (which writes, syncs and renames).
    state_save_ms: u64,
}
/// Delay between a change in monitor.d or config.sh (or a SIGHUP) and the rescan (editors write
/// in steps).
pub const RESCAN_DEBOUNCE_MS: u64 = 20;
/// Most bytes of lines a CRITICAL waiting for its after-lines may hold and still be saved with
/// the state; a bigger one is sent as it stands when the state is saved.
const PENDING_IN_STATE_MAX: usize = 64 * 1024;
/// SIGHUP reloads logged per minute.
const RELOAD_NOTES_PER_MINUTE: u32 = 10;

pub use crate::uplink::{Destination, Destinations};
use plan::Action;

/// Everything in the daemon that has deadlines. [`Daemon::deadline`] and [`Daemon::fire`] match
/// on it exhaustively, so a new component cannot be left out of one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Every check's own timers (after-window, expiry, retired files, restarts, ...).
    Checks,
    /// Process groups of stopped commands that get SIGKILL.
    Reaper,
    /// systemd's watchdog ping.
    Watchdog,
    /// The systemd connection (calls, reconnects).
    Systemd,
    /// The Mender client's connection.
    MenderAuth,
    /// Control clients that took too long, a failed accept.
    Control,
    /// Alerts held in memory (spool disk full) to write out.
    Uplink,
    /// A change in monitor.d or config.sh, after its debounce.
    Rescan,
    /// Read positions that changed.
    StateSave,
}

/// The order timers fire in within a turn: sources first, the rescan last.
const TIMERS: [Timer; 9] = [
    Timer::Checks,
    Timer::Reaper,
    Timer::Watchdog,
    Timer::Systemd,
    Timer::MenderAuth,
    Timer::Control,
    Timer::Uplink,
    Timer::Rescan,
    Timer::StateSave,
];

/// What executing one step of a reload plan came to.
enum Outcome {
    Done,
    /// A problem to report for the check.
    Problem(CheckId, String),
    /// The check could not start (already logged).
    StartFailed(CheckId, String),
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(layout: Layout, destinations: Destinations) -> Result<(), String> {
    match crate::fdlimit::raise() {
        Ok(l) if l.now > l.was => crate::info!("open files limit raised from {} to {}", l.was, l.now),
        Ok(_) => {}
        Err(e) => crate::warn!("{e}"),
    }
    let signals = unix_signals::Signals::install().map_err(|e| format!("cannot set up signal handling: {}", e.desc()))?;
    let clock = Clock::default();
    let started = clock.now();
    let mut poll = Poll::new().map_err(|e| format!("cannot create the poll: {e}"))?;
    register(&poll, signals.raw_fd(), SIGNALS)?;
    // The control socket before anything slow, so that the CLI gets answers from the first
    // moment.
    let control = bind_control(&poll, &layout)?;
    let (settings, errors) = load_settings(&layout);
    let layout = layout.with_monitor_d(&settings.monitor_d);
    let waker = mio::Waker::new(poll.registry(), WAKER).map_err(|e| format!("cannot create the reactor's waker: {e}"))?;
    let now = clock.now();
    let spool = layout.state_dir().join("spool");
    let destinations = destinations.resolve(&settings);
    let mender_client = destinations.contains(&Destination::MenderClient);
    let uplink = Uplink::start(destinations, &spool, UplinkSettings::from_settings(&settings), Some(waker), now.wall)
        .map_err(|e| format!("cannot start the uplink thread: {e}"))?;
    let auth = match mender_client {
        true => Some(MenderAuth::start(system_bus(layout.root()), registry(&poll)?, now.mono)),
        false => None,
    };
    let io = open_io(&poll, &layout, &settings)?;
    // Commands' orphaned grandchildren are re-parented to us and reaped here, not left as
    // zombies under an init that may not reap them.
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        crate::warn!("cannot become a child subreaper: {}; orphans of commands are left to init", e.desc());
    }
    let (mut state, warning) = StateStore::load(&layout.state_dir());
    if let Err(e) = state.start_writer() {
        crate::warn!("cannot start the state writer thread: {e}; the state is written on the reactor");
    }
    let layout_state_dir = layout.state_dir();
    let pid_file = crate::pidfile::PidFile::create(layout.root());
    if let Some(w) = warning {
        crate::warn!("{w}");
    }
    let mut daemon = Daemon {
        io,
        parked: state.entries(),
        layout,
        settings,
        reaper: Reaper::default(),
        state,
        checks: BTreeMap::new(),
        by_key: HashMap::new(),
        next_key: 1,
        config_watches: Vec::new(),
        ready: BTreeSet::new(),
        rescan_at: None,
        dirty_since: None,
        disk_waits: DiskWaits::default(),
        available: BTreeSet::new(),
        problems: BTreeMap::new(),
        control,
        started,
        uplink,
        auth,
        notifier: crate::sdnotify::Notifier::from_env(),
        reload_notes: Limiter::default(),
        save_now: false,
        config_errors: errors.iter().map(|e| e.to_string()).collect(),
        inbox: crate::uplink::inbox::dir(&layout_state_dir),
        inbox_taken: 0,
        inbox_refused: 0,
        pid_file,
    };
    daemon.start(&clock);
    let result = daemon.run(&mut poll, &signals, &clock);
    daemon.shutdown(&clock);
    result
}

/// config.sh at start, its level applied and what is wrong with it logged (and its absence said
/// once: the defaults run).
fn load_settings(layout: &Layout) -> (Settings, Vec<crate::config::settings::ConfigError>) {
    let (settings, errors) = Settings::load(&layout.config_sh());
    crate::logging::set_level(settings.log_level);
    if std::fs::symlink_metadata(layout.config_sh()).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        crate::info!(
            "{}: not found; running on the built-in defaults (`lookout install` writes a documented one)",
            layout.config_sh().display()
        );
    }
    for e in &errors {
        crate::warn!("{e}");
    }
    (settings, errors)
}

fn registry(poll: &Poll) -> Result<mio::Registry, String> {
    poll.registry().try_clone().map_err(|e| format!("cannot clone the poll registry: {e}"))
}

/// The control socket. Another daemon on it is fatal; an unusable /run only costs the socket.
fn bind_control(poll: &Poll, layout: &Layout) -> Result<Option<ControlServer>, String> {
    match ControlServer::bind(&crate::control::socket_path(layout.root()), registry(poll)?) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(e.to_string()),
        Err(e) => {
            crate::warn!("no control socket ({e}); status and reload are not available");
            Ok(None)
        }
    }
}

/// What checks use of the reactor: inotify, the pipe table, the read buffer, systemd.
fn open_io(poll: &Poll, layout: &Layout, settings: &Settings) -> Result<Io, String> {
    let watches = Watches::new().map_err(|e| format!("cannot create an inotify instance: {}", e.desc()))?;
    register(poll, watches.raw_fd(), INOTIFY)?;
    let pipes = CheckFds::new(registry(poll)?);
    let bus = system_bus(layout.root());
    let systemd = SystemdSource::new(bus.clone(), crate::config::layout::prefixed(layout.root(), "/run/systemd/private"), registry(poll)?);
    let netlink = crate::sources::netlink::Netlink::new(registry(poll)?, NETLINK);
    Ok(Io { watches, check_fds: pipes, scratch: Scratch::new(settings.log_max_line_bytes), systemd, system_bus: bus, netlink })
}

fn register(poll: &Poll, fd: RawFd, token: Token) -> Result<(), String> {
    poll.registry()
        .register(&mut SourceFd(&fd), token, Interest::READABLE)
        .map_err(|e| format!("cannot register fd {fd} with the poll: {e}"))
}

/// The system bus: `DBUS_SYSTEM_BUS_ADDRESS` as given, else the default socket under the root.
fn system_bus(root: &std::path::Path) -> PathBuf {
    match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
        Ok(a) if !a.is_empty() => crate::dbus::address::unix_path(&a).unwrap_or_else(|e| {
            crate::warn!("DBUS_SYSTEM_BUS_ADDRESS: {e}; using the default system bus");
            crate::config::layout::prefixed(root, "/run/dbus/system_bus_socket")
        }),
        _ => crate::config::layout::prefixed(root, "/run/dbus/system_bus_socket"),
    }
}

/// The key a check's state is saved under: its file name without `.sh`.
fn state_key(id: &CheckId) -> String {
    format!("{}_{}", id.subsystem, id.name)
}

struct RunningCheck {
    key: u64,
    config: CheckConfig,
    check: Check,
}

struct Daemon {
    layout: Layout,
    settings: Settings,
    /// inotify, pipes, the read buffer, systemd and the bus: what checks use (lent whole).
    io: Io,
    /// Process groups of stopped or exited commands, until they are gone.
    reaper: Reaper,
    state: StateStore,
    /// Saved states of checks that are not running (disabled, broken), kept for when they run.
    parked: BTreeMap<String, CheckState>,
    checks: BTreeMap<CheckId, RunningCheck>,
    by_key: HashMap<u64, CheckId>,
    next_key: u64,
    config_watches: Vec<(PathBuf, WatchHandle)>,
    /// Checks with something to read this turn.
    ready: BTreeSet<u64>,
    rescan_at: Option<Instant>,
    /// Since when positions have changed without being saved.
    dirty_since: Option<Instant>,
    /// The longest the reactor waited on the disk, for `status`.
    disk_waits: DiskWaits,
    /// Checks in `available/` at the last rescan.
    available: BTreeSet<CheckId>,
    /// Problems of each enabled check's file at the last rescan (logged when they change).
    problems: BTreeMap<CheckId, Vec<String>>,
    /// The control socket, if it could be created.
    control: Option<ControlServer>,
    /// When the daemon started.
    started: Now,
    config_errors: Vec<String>,
    uplink: Uplink,
    /// The Mender client's token over D-Bus (when alerts go to the Mender client's server).
    auth: Option<MenderAuth>,
    /// systemd's notify socket and watchdog.
    notifier: crate::sdnotify::Notifier,
    /// Rate limit of the SIGHUP log lines.
    reload_notes: Limiter,
    /// A check raised a CRITICAL that waits for its after-lines this turn: save the state now.
    save_now: bool,
    /// Alerts handed in from outside (`lookout send-alert`).
    inbox: PathBuf,
    /// Alerts taken from the inbox, and files refused there (not an alert).
    inbox_taken: u64,
    inbox_refused: u64,
    /// `/var/run/monitoring-client.pid`, if ours.
    pid_file: Option<crate::pidfile::PidFile>,
}

impl Daemon {
    /// The first scan of monitor.d; then systemd is told the agent is ready.
    fn start(&mut self, clock: &Clock) {
        crate::info!(
            "lookout {} started: checks in {}, alerts to {}",
            env!("CARGO_PKG_VERSION"),
            self.layout.monitor_d().display(),
            self.destination()
        );
        let mut out = Vec::new();
        let now = clock.now();
        self.rescan(now, &mut out);
        self.deliver(now, out);
        self.open_inbox(now);
        let status = format!("following {} checks", self.checks.len());
        self.notifier.ready(now.mono, &status);
    }

    fn run(&mut self, poll: &mut Poll, signals: &unix_signals::Signals, clock: &Clock) -> Result<(), String> {
        let mut events = Events::with_capacity(64);
        loop {
            let now = clock.now();
            let timeout = if self.ready.is_empty() {
                self.next_deadline(now.mono).map(|d| Duration::from_millis(now.mono.until(d)))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll failed: {e}"));
            }
            let now = clock.now();
            let mut out = Vec::new();
            for event in events.iter() {
                match event.token() {
                    SIGNALS => {
                        let r = signals.read();
                        if r.stop {
                            crate::info!("stopping");
                            return Ok(());
                        }
                        if r.reload && self.rescan_at.is_none() {
                            // A storm of SIGHUPs is one reload per debounce period, and a few
                            // log lines a minute.
                            match self.reload_notes.admit(now.mono, RELOAD_NOTES_PER_MINUTE) {
                                Admit::Log { left_out: 0 } => crate::info!("SIGHUP: reloading the configuration"),
                                Admit::Log { left_out } => {
                                    crate::info!("SIGHUP: reloading the configuration ({left_out} more reloads were not logged)")
                                }
                                Admit::Suppress => {}
                            }
                            self.schedule_rescan(now);
                        }
                        if r.children {
                            self.reap_children(now, &mut out);
                        }
                    }
                    INOTIFY => self.on_inotify(now),
                    SYSTEMD_BUS => {
                        let updates = self.io.systemd.on_ready(now.mono);
                        self.on_units(now, updates, &mut out);
                    }
                    MENDER_BUS => {
                        let updates = self.auth.as_mut().map(|a| a.on_ready(now.mono)).unwrap_or_default();
                        for u in updates {
                            self.uplink.set_credentials(u);
                        }
                    }
                    WAKER if self.uplink.take_refresh_request() => {
                        if let Some(a) = self.auth.as_mut() {
                            a.refresh(now.mono);
                        }
                    }
                    NETLINK => self.on_netlink(),
                    CONTROL_LISTENER => {
                        if let Some(c) = self.control.as_mut() {
                            c.on_listener(now.mono);
                        }
                    }
                    t if ControlServer::owns(t) => self.on_control(t, now, &mut out),
                    t if t.0 >= FIRST_CHECK_FD => {
                        if let Some(Listener::Check(key)) = self.io.check_fds.route(t) {
                            self.ready.insert(key);
                        }
                    }
                    // Spurious or stale events happen; there is nothing to route them to.
                    _ => {}
                }
            }
            self.run_ready(now, &mut out);
            self.run_deadlines(now, &mut out);
            self.deliver(now, out);
        }
    }

    fn on_control(&mut self, token: Token, now: Now, out: &mut Vec<Alert>) {
        let Some(asked) = self.control.as_mut().and_then(|c| c.on_connection(token)) else { return };
        let response = match asked {
            Asked::Status => Response::status(self.status(now)),
            Asked::Reload => {
                crate::info!("reload requested on the control socket");
                self.rescan_at = None;
                Response::reloaded(self.rescan(now, out))
            }
            // Spooled (and synced) before the answer: the sender may rely on it.
            Asked::TakeInbox => match self.take_inbox(now) {
                (_, true) => Response::reloaded(Vec::new()),
                (_, false) => Response::error("the alerts are held in memory only (the spool cannot be written); they stay in the inbox"),
            },
        };
        if let Some(c) = self.control.as_mut() {
            c.respond(token, &response);
        }
    }

    fn on_units(&mut self, now: Now, updates: Vec<Update>, out: &mut Vec<Alert>) {
        for u in updates {
            if let Update::State(unit, state) = u {
                crate::debug!("{unit}: {}/{} ({}), restarts {:?}", state.active, state.sub, state.load, state.restarts);
                for c in self.checks.values_mut() {
                    c.check.on_unit(now, &unit, &state, out);
                }
            }
        }
    }

    /// The kernel's routing events: every connectivity check hears what changed.
    fn on_netlink(&mut self) {
        let change = self.io.netlink.on_ready();
        if !change.is_empty() {
            crate::debug!("network: {change:?}");
            for c in self.checks.values_mut() {
                c.check.on_net(&change);
            }
        }
    }

    fn on_inotify(&mut self, now: Now) {
        let routed = self.io.watches.read();
        if routed.overflow {
            self.ready.extend(self.checks.values().map(|c| c.key));
            self.schedule_rescan(now);
            return;
        }
        for l in routed.listeners {
            match l {
                Listener::Check(key) => {
                    self.ready.insert(key);
                }
                Listener::Config => self.schedule_rescan(now),
                Listener::Inbox => {
                    self.take_inbox(now);
                }
            }
        }
    }

    fn schedule_rescan(&mut self, now: Now) {
        if self.rescan_at.is_none() {
            self.rescan_at = Some(now.mono.plus_ms(RESCAN_DEBOUNCE_MS));
        }
    }

    fn run_ready(&mut self, now: Now, out: &mut Vec<Alert>) {
        for key in std::mem::take(&mut self.ready) {
            let Some(c) = self.by_key.get(&key).and_then(|id| self.checks.get_mut(id)) else {
                continue;
            };
            let mut budget = TURN_BUDGET;
            let (progress, raised) = c.check.raised_waiting(|check| check.on_ready(now, &mut self.io, &mut budget, out));
            if progress == Progress::More {
                self.ready.insert(key);
            }
            self.save_now |= raised;
            self.dirty_since.get_or_insert(now.mono);
        }
    }

    /// Fires every timer that is due, in [`TIMERS`] order.
    fn run_deadlines(&mut self, now: Now, out: &mut Vec<Alert>) {
        for timer in TIMERS {
            if self.deadline(timer, now.mono).is_some_and(|d| d <= now.mono) {
                self.fire(timer, now, out);
            }
        }
    }

    /// The earliest deadline of all: how long the poll may sleep (`None`: until an event).
    fn next_deadline(&self, now: Instant) -> Option<Instant> {
        TIMERS.into_iter().filter_map(|t| self.deadline(t, now)).min()
    }

    /// When `timer` is due next.
    fn deadline(&self, timer: Timer, now: Instant) -> Option<Instant> {
        match timer {
            Timer::Checks => self.checks.values().filter_map(|c| c.check.next_deadline(now)).min(),
            Timer::Reaper => self.reaper.next_deadline(),
            Timer::Watchdog => self.notifier.next_deadline(),
            Timer::Systemd => self.io.systemd.next_deadline(),
            Timer::MenderAuth => self.auth.as_ref().and_then(MenderAuth::next_deadline),
            Timer::Control => self.control.as_ref().and_then(ControlServer::next_deadline),
            Timer::Uplink => self.uplink.next_deadline(),
            Timer::Rescan => self.rescan_at,
            // Not while alerts are held in memory only: the save would wait for them anyway.
            Timer::StateSave => self.save_due().filter(|_| self.uplink.all_durable()),
        }
    }

    /// Runs what `timer` has due at `now`.
    fn fire(&mut self, timer: Timer, now: Now, out: &mut Vec<Alert>) {
        match timer {
            Timer::Checks => {
                for c in self.checks.values_mut() {
                    if c.check.next_deadline(now.mono).is_some_and(|d| d <= now.mono) {
                        let mut budget = TURN_BUDGET;
                        let (progress, raised) = c.check.raised_waiting(|check| check.on_tick(now, &mut self.io, &mut budget, out));
                        if progress == Progress::More {
                            self.ready.insert(c.key);
                        }
                        self.save_now |= raised;
                    }
                }
            }
            Timer::Reaper => self.reaper.on_tick(now.mono),
            Timer::Watchdog => self.notifier.on_tick(now.mono),
            Timer::Systemd => {
                let updates = self.io.systemd.on_tick(now.mono);
                self.on_units(now, updates, out);
            }
            Timer::MenderAuth => {
                for u in self.auth.as_mut().map(|a| a.on_tick(now.mono)).unwrap_or_default() {
                    self.uplink.set_credentials(u);
                }
            }
            Timer::Control => {
                if let Some(c) = self.control.as_mut() {
                    c.on_tick(now.mono);
                }
            }
            Timer::Uplink => self.uplink.on_tick(now),
            Timer::Rescan => {
                self.rescan_at = None;
                self.rescan(now, out);
            }
            // Saved by `deliver` at the end of the turn, after this turn's alerts are in the
            // spool: saving here would put read positions past alerts not yet accepted.
            Timer::StateSave => {}
        }
    }

    /// When read positions that changed must be saved (at most `STATE_SAVE_INTERVAL_S` late).
    fn save_due(&self) -> Option<Instant> {
        self.dirty_since.map(|t| t.plus_ms(self.settings.state_save_interval_s.saturating_mul(1000)))
    }

    /// Hands alerts to the uplink (spooled, synced once for the turn); an alert changes a
    /// check's level, so state is saved at once, after the alerts are safe.
    fn deliver(&mut self, now: Now, mut out: Vec<Alert>) {
        // An alert, or a CRITICAL raised that waits for its after-lines (saved with the state,
        // since it is in no spool yet), changes what a crash would lose: save at once.
        let urgent = !out.is_empty() || std::mem::take(&mut self.save_now);
        let due = self.save_due().is_some_and(|t| t <= now.mono);
        if urgent || due {
            // A CRITICAL still waiting for its after-lines is saved with the state (it is in no
            // spool yet); one too big for the state file leaves now, as it stands.
            for c in self.checks.values_mut() {
                c.check.flush(PENDING_IN_STATE_MAX, &mut out);
            }
        }
        for a in &out {
            crate::info!("alert {} {:?} ({})", a.level.as_str(), a.name, a.subject.name);
            self.uplink.push(a, now);
        }
        // Alerts held in memory only (spool disk full): no position is saved past them, so a
        // crash reads their lines again.
        // Timed only in a turn with alerts: the only turns that sync (no clock read otherwise).
        let sync = (!out.is_empty()).then(crate::time::Stopwatch::start);
        let durable = self.uplink.commit();
        if let Some(sync) = sync {
            self.disk_waits.spool_sync_ms = self.disk_waits.spool_sync_ms.max(sync.elapsed_ms());
        }
        if (urgent || due) && durable {
            let save = crate::time::Stopwatch::start();
            self.save_state(now);
            self.disk_waits.state_save_ms = self.disk_waits.state_save_ms.max(save.elapsed_ms());
        } else if urgent {
            self.dirty_since.get_or_insert(now.mono);
        }
    }

    fn save_state(&mut self, now: Now) {
        self.dirty_since = None;
        let mut all: BTreeMap<String, CheckState> = BTreeMap::new();
        // Parked states survive while their check file exists.
        for (k, s) in &self.parked {
            if self.available.iter().any(|id| state_key(id) == *k) {
                all.insert(k.clone(), s.clone());
            }
        }
        for (id, c) in &self.checks {
            all.insert(state_key(id), c.check.snapshot(now));
        }
        if let Err(e) = self.state.save(all) {
            crate::error!("cannot save read positions: {e}");
        }
    }

    /// Re-reads config.sh and monitor.d and brings the running checks in line (the decisions
    /// are [`plan::plan`]'s). Returns every problem found (each is logged once, when it first
    /// appears).
    fn rescan(&mut self, now: Now, out: &mut Vec<Alert>) -> Vec<String> {
        self.ensure_config_watches();
        self.reload_settings(now);
        let mut all_problems = self.config_errors.clone();
        let loaded = match store::load_enabled(&self.layout) {
            Ok(l) => l,
            Err(e) => {
                let m = format!("cannot read the enabled checks: {e}; keeping the running ones");
                crate::error!("{m}");
                all_problems.push(m);
                return all_problems;
            }
        };
        self.available = store::check_ids(&self.layout.available()).unwrap_or_default().into_iter().collect();
        let parsed = loaded.iter().filter_map(|lc| lc.def.as_ref().ok().map(|d| (&lc.id, d)));
        self.uplink.set_config(crate::uplink::confpush::body(parsed, self.settings.default_log_pattern_expiration_s));
        let wanted = plan::wanted(&loaded, &self.settings, self.layout.root());
        let running: Vec<(&CheckId, &CheckConfig)> = self.checks.iter().map(|(id, c)| (id, &c.config)).collect();
        // What the files say, then what the plan makes of them.
        let mut problems: BTreeMap<CheckId, Vec<String>> = BTreeMap::new();
        for lc in &loaded {
            let report: Vec<String> = lc
                .warnings
                .iter()
                .map(|w| format!("warning: {w}"))
                .chain(lc.def.as_ref().err().into_iter().flatten().map(|e| e.to_string()))
                .collect();
            if !report.is_empty() {
                problems.insert(lc.id.clone(), report);
            }
        }
        let mut failed_starts = Vec::new();
        let actions = plan::plan(&running, &wanted, &self.available);
        for action in actions {
            match self.execute(action, now, out) {
                Outcome::Done => {}
                Outcome::Problem(id, line) => problems.entry(id).or_default().push(line),
                Outcome::StartFailed(id, line) => failed_starts.push((id, line)),
            }
        }
        for (id, report) in &problems {
            if self.problems.get(id) != Some(report) {
                for line in report {
                    crate::warn!("{line}");
                }
            }
        }
        // A failed start was logged as it happened.
        for (id, line) in failed_starts {
            problems.entry(id).or_default().push(line);
        }
        all_problems.extend(problems.values().flatten().cloned());
        self.problems = problems;
        all_problems
    }

    /// Re-reads config.sh; applies what changed.
    fn reload_settings(&mut self, now: Now) {
        let (settings, errors) = Settings::load(&self.layout.config_sh());
        let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        if messages != self.config_errors {
            for m in &messages {
                crate::warn!("{m}");
            }
            self.config_errors = messages;
        }
        if settings != self.settings {
            crate::info!("{}: settings changed", self.layout.config_sh().display());
            crate::logging::set_level(settings.log_level);
            self.io.scratch.set_max_line(settings.log_max_line_bytes);
            if settings.alertmanager_urls != self.settings.alertmanager_urls {
                crate::warn!("ALERTMANAGER_URL changed: the destinations are chosen at start; it applies at the next start");
            }
            self.uplink.set_settings(UplinkSettings::from_settings(&settings), now.wall);
            self.settings = settings;
        }
    }

    /// Carries out one step of a reload plan.
    fn execute(&mut self, action: Action, now: Now, out: &mut Vec<Alert>) -> Outcome {
        let (id, config, what) = match action {
            Action::Stop(id, gone) => {
                self.stop_check(&id, now, Some(gone.reason()), out);
                crate::info!("check {id}: stopped ({})", gone.reason());
                return Outcome::Done;
            }
            Action::KeepPrevious(id) => {
                let line = format!("check {id}: keeping the previous version running");
                return Outcome::Problem(id, line);
            }
            Action::NotStarted(id) => {
                let line = format!("check {id}: not started");
                return Outcome::Problem(id, line);
            }
            Action::Unsupported(id) => {
                let line = format!("check {id}: lookout does not run custom subsystem scripts ({}.sh)", id.subsystem);
                return Outcome::Problem(id, line);
            }
            Action::Reconfigure(id, config) => {
                if let Some(c) = self.checks.get_mut(&id) {
                    c.config = config.clone();
                    if let Err(e) = c.check.reconfigure(config, now, out) {
                        crate::error!("check {id}: {e}");
                    }
                }
                crate::info!("check {id}: reconfigured");
                return Outcome::Done;
            }
            Action::Start(id, config) => (id, config, "started"),
            Action::Restart(id, config) => {
                self.stop_check(&id, now, Some("check changed"), out);
                (id, config, "restarted on a new source")
            }
        };
        match self.start_check(id.clone(), config, now, out) {
            Ok(()) => {
                crate::info!("check {id}: {what}");
                Outcome::Done
            }
            Err(e) => {
                let line = format!("check {id}: not started: {e}");
                Outcome::StartFailed(id, line)
            }
        }
    }

    fn start_check(&mut self, id: CheckId, config: CheckConfig, now: Now, out: &mut Vec<Alert>) -> Result<(), String> {
        let key = self.next_key;
        self.next_key += 1;
        let saved = self.parked.remove(&state_key(&id));
        match Check::start(id.clone(), key, config.clone(), saved.as_ref(), now, &mut self.io, out) {
            Ok(check) => {
                self.by_key.insert(key, id.clone());
                self.checks.insert(id, RunningCheck { key, config, check });
                self.ready.insert(key);
                Ok(())
            }
            Err(e) => {
                crate::error!("check {id}: not started: {e}");
                if let Some(s) = saved {
                    self.parked.insert(state_key(&id), s);
                }
                Err(e)
            }
        }
    }

    fn stop_check(&mut self, id: &CheckId, now: Now, clear: Option<&str>, out: &mut Vec<Alert>) {
        if let Some(mut c) = self.checks.remove(id) {
            self.by_key.remove(&c.key);
            self.ready.remove(&c.key);
            let (state, stopping) = c.check.stop(now, &mut self.io, clear, out);
            if let Some(s) = stopping {
                self.reaper.adopt(s);
            }
            crate::debug!("check {id}: {}", c.check.summary());
            self.parked.insert(state_key(id), state);
        }
    }

    fn ensure_config_watches(&mut self) {
        let dirs = [
            self.layout.monitor_d().to_path_buf(),
            self.layout.available(),
            self.layout.enabled(),
            self.layout.config_sh().parent().map(|p| p.to_path_buf()).unwrap_or_default(),
        ];
        for dir in [&dirs[1], &dirs[2]] {
            if !dir.is_dir() {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    crate::warn!("cannot create {}: {e}", dir.display());
                }
            }
        }
        for dir in dirs {
            if let Some(i) = self.config_watches.iter().position(|(d, _)| *d == dir) {
                if self.io.watches.is_live(&self.config_watches[i].1) {
                    continue;
                }
                let (_, h) = self.config_watches.swap_remove(i);
                self.io.watches.unwatch(h);
            }
            match self.io.watches.watch_dir(&dir, None, Listener::Config) {
                Ok(h) => self.config_watches.push((dir, h)),
                Err(e) => crate::debug!("not watching {}: {e}", dir.display()),
            }
        }
    }

    /// Watches the inbox, then takes what waits there: a file renamed in at any moment after
    /// the watch is seen by the watch, one from before by the first read.
    fn open_inbox(&mut self, now: Now) {
        match crate::state::private_dir(&self.inbox) {
            Ok(Some(narrowed)) => crate::warn!("{narrowed}"),
            Ok(None) => {}
            Err(e) => crate::warn!("cannot create {}: {e}; alerts sent without a daemon are taken at the next start", self.inbox.display()),
        }
        match self.io.watches.watch_dir(&self.inbox, None, Listener::Inbox) {
            Ok(_) => {}
            Err(e) => crate::warn!("not watching {}: {e}; alerts there are taken when `send-alert` asks", self.inbox.display()),
        }
        self.take_inbox(now);
    }

    /// Takes every alert waiting in the inbox into the spool; the files go once the alerts are
    /// on disk. Returns how many were taken and whether they are on disk.
    fn take_inbox(&mut self, now: Now) -> (usize, bool) {
        let mut alerts = Vec::new();
        let mut files = Vec::new();
        for (path, read) in crate::uplink::inbox::take(&self.inbox) {
            match read {
                Ok(a) => {
                    alerts.push(a);
                    files.push(path);
                }
                Err(e) => {
                    crate::error!("inbox: {e}; removed");
                    self.inbox_refused += 1;
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let n = alerts.len();
        if n > 0 {
            self.inbox_taken += n as u64;
            self.deliver(now, alerts);
        }
        let durable = self.uplink.all_durable();
        if durable {
            for p in files {
                if let Err(e) = std::fs::remove_file(&p) {
                    crate::error!("inbox: cannot remove {}: {e}; its alert may be sent again", p.display());
                }
            }
        }
        (n, durable)
    }

    /// Where alerts go, for the log and `status`.
    fn destination(&self) -> String {
        let each = self.uplink.destinations().iter().map(|d| match d {
            Destination::Server { url, .. } => crate::uplink::sink::join(url, &self.settings.alert_url),
            d => d.describe(),
        });
        each.collect::<Vec<_>>().join(", ")
    }

    fn shutdown(mut self, clock: &Clock) {
        self.notifier.stopping();
        let now = clock.now();
        let mut out = Vec::new();
        let ids: Vec<CheckId> = self.checks.keys().cloned().collect();
        for id in &ids {
            if let Some(c) = self.checks.get(id) {
                crate::info!("check {id}: {}", c.check.summary());
            }
        }
        // A CRITICAL still waiting for its after-lines leaves as it stands, before the state past
        // it is saved. Otherwise stopping the agent is not a change of any check: no alerts,
        // CRITICAL states are kept (unless alerts are held in memory only, the spool's disk
        // being full: then their lines must be read again).
        for c in self.checks.values_mut() {
            c.check.flush(0, &mut out);
        }
        self.deliver(now, std::mem::take(&mut out));
        // The last save is written here, after what the writer thread has waiting.
        self.state.finish_writer();
        if self.uplink.all_durable() {
            self.save_state(now);
        }
        for id in ids {
            self.stop_check(&id, now, None, &mut out);
        }
        debug_assert!(out.is_empty());
        self.stop_children(clock);
        self.uplink.shutdown();
        if let Some(p) = self.pid_file.take() {
            p.remove();
        }
    }
}
