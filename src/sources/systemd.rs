//! Unit states from systemd over D-Bus, event-driven: one connection for every service check,
//! to the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else `/run/dbus/system_bus_socket`) or, when no
//! bus daemon runs, to systemd's private socket (`/run/systemd/private`).
//!
//! On connect: match rules (on a bus), `Manager.Subscribe()`, then per unit `LoadUnit`, the
//! unit's properties and the service's `NRestarts`. Afterwards only signals: `PropertiesChanged`
//! (systemd repeats unchanged states; only changes are passed on), `JobNew` for
//! `shutdown.target` or the poweroff/reboot/halt targets (the system is going down: no more
//! updates), and `NameOwnerChanged` for
//! systemd's bus name (after `daemon-reexec`: subscribe and read every unit again). A lost
//! connection is retried with a backoff from 1 s doubling to 30 s; on reconnect every unit is
//! read again, so changes that happened meanwhile are reported. No connection is made while no
//! service check runs, and nothing is polled.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use mio::{Registry, Token};

use crate::dbus::conn::{Connection, Event, Redial};
use crate::dbus::message::{Kind, Message};
use crate::dbus::wire::Value;
use crate::time::Instant;

/// The connection's token.
pub const DBUS: Token = Token(3);
/// Time allowed for one call.
pub const CALL_TIMEOUT_MS: u64 = 10_000;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// What systemd says of a unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitState {
    /// `ActiveState`: active, reloading, inactive, failed, activating, deactivating, ...
    pub active: String,
    /// `SubState`: running, dead, failed, auto-restart, ...
    pub sub: String,
    /// `LoadState`: loaded, not-found, masked, error, ...
    pub load: String,
    /// The service's `NRestarts`.
    pub restarts: Option<u64>,
}

impl UnitState {
    /// Running: `ActiveState` active or reloading.
    pub fn running(&self) -> bool {
        self.active == "active" || self.active == "reloading"
    }

    /// A sentence for the alert details, saying which kind of "not running" it is.
    pub fn describe(&self, unit: &str) -> String {
        match self.load.as_str() {
            "not-found" => format!("{unit} does not exist (not-found)"),
            "masked" => format!("{unit} is masked"),
            _ => format!("{unit} is {} ({})", self.active, self.sub),
        }
    }
}

/// The unit a `SERVICE_NAME` stands for: `crasher` is `crasher.service`.
pub fn unit_name(service: &str) -> String {
    const SUFFIXES: &[&str] =
        &[".service", ".socket", ".timer", ".target", ".mount", ".automount", ".path", ".scope", ".slice", ".swap", ".device"];
    if SUFFIXES.iter().any(|s| service.ends_with(s)) { service.to_string() } else { format!("{service}.service") }
}

/// What the reactor hears from this source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// A unit's state changed (or was read for the first time).
    State(String, UnitState),
    /// The system is shutting down: unit changes from now on are not news.
    ShuttingDown,
}

#[derive(Debug, Clone)]
enum Call {
    Setup,
    LoadUnit(String),
    GetUnit(String),
    GetRestarts(String),
}

#[derive(Debug, Default)]
struct Unit {
    path: Option<String>,
    state: Option<UnitState>,
    /// Check ids watching it.
    watchers: usize,
}

/// Counters of the systemd source.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SystemdCounters {
    /// Connections made.
    pub connects: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// Calls that failed or timed out.
    pub failed_calls: u64,
    /// State changes passed on.
    pub updates: u64,
    /// Messages that did not decode (skipped), over every connection.
    pub malformed_messages: u64,
    /// Calls that got no answer in time, over every connection.
    pub call_timeouts: u64,
}

/// The connection to systemd and the units it follows.
#[derive(Debug)]
pub struct SystemdSource {
    bus: PathBuf,
    private: PathBuf,
    registry: Registry,
    conn: Option<Connection>,
    via_bus: bool,
    redial: Redial,
    units: BTreeMap<String, Unit>,
    calls: HashMap<u32, Call>,
    shutting_down: bool,
    /// The last connection failure said, to say it once.
    said: Option<String>,
    counters: SystemdCounters,
}

impl SystemdSource {
    /// A source that will talk to the bus at `bus` or else to systemd at `private`.
    pub fn new(bus: PathBuf, private: PathBuf, registry: Registry) -> Self {
        SystemdSource {
            bus,
            private,
            registry,
            conn: None,
            via_bus: false,
            redial: Redial::idle(),
            units: BTreeMap::new(),
            calls: HashMap::new(),
            shutting_down: false,
            said: None,
            counters: SystemdCounters::default(),
        }
    }

    /// Counters so far (including the current connection's).
    pub fn counters(&self) -> SystemdCounters {
        let mut c = self.counters;
        if let Some(conn) = &self.conn {
            c.malformed_messages += conn.counters().malformed;
            c.call_timeouts += conn.counters().timeouts;
        }
        c
    }

    fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            self.counters.malformed_messages += c.counters().malformed;
            self.counters.call_timeouts += c.counters().timeouts;
            c.close(&self.registry);
        }
    }

    /// Whether a connection is up.
    pub fn connected(&self) -> bool {
        self.conn.as_ref().is_some_and(Connection::is_ready)
    }

    /// The last state read of `unit`.
    pub fn state(&self, unit: &str) -> Option<&UnitState> {
        self.units.get(unit).and_then(|u| u.state.as_ref())
    }

    /// Starts following `unit` (connecting if this is the first one).
    pub fn watch(&mut self, unit: &str, now: Instant) {
        let u = self.units.entry(unit.to_string()).or_default();
        u.watchers += 1;
        if u.watchers > 1 {
            return;
        }
        match self.conn.as_ref().map(Connection::is_ready) {
            Some(true) => self.load(unit, now),
            Some(false) => {} // loaded once the connection is ready
            None if self.redial.at().is_none() => self.connect(now),
            None => {}
        }
    }

    /// Stops following `unit`; the connection closes with the last one.
    pub fn unwatch(&mut self, unit: &str) {
        if let Some(u) = self.units.get_mut(unit) {
            u.watchers = u.watchers.saturating_sub(1);
            if u.watchers == 0 {
                self.units.remove(unit);
            }
        }
        if self.units.is_empty() {
            self.close();
            self.redial.cancel();
            self.calls.clear();
        }
    }

    fn connect(&mut self, now: Instant) {
        self.redial.cancel();
        let attempts = [(self.bus.clone(), true), (self.private.clone(), false)];
        let mut errors = Vec::new();
        for (path, is_bus) in attempts {
            match Connection::connect(&path, is_bus, &self.registry, DBUS, now) {
                Ok(c) => {
                    self.conn = Some(c);
                    self.via_bus = is_bus;
                    self.counters.connects += 1;
                    return;
                }
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            }
        }
        let msg = format!("cannot reach systemd ({})", errors.join("; "));
        self.schedule_retry(now, msg);
    }

    fn schedule_retry(&mut self, now: Instant, why: String) {
        let delay_ms = self.redial.failed(now);
        if self.said.as_deref() != Some(why.as_str()) {
            crate::warn!("{why}; retrying, first in {} s", delay_ms / 1000);
            self.said = Some(why);
        }
    }

    /// When [`on_tick`](Self::on_tick) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.redial.at().or_else(|| self.conn.as_ref().and_then(Connection::next_deadline))
    }

    /// Reconnects when due; times out calls.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Update> {
        if self.redial.take_due(now) {
            if !self.units.is_empty() {
                self.connect(now);
            }
            return Vec::new();
        }
        let events = self.conn.as_mut().map(|c| c.on_tick(now)).unwrap_or_default();
        self.handle(events, now)
    }

    /// Reads what the connection has.
    pub fn on_ready(&mut self, now: Instant) -> Vec<Update> {
        let events = self.conn.as_mut().map(Connection::on_ready).unwrap_or_default();
        self.handle(events, now)
    }

    fn handle(&mut self, events: Vec<Event>, now: Instant) -> Vec<Update> {
        let mut out = Vec::new();
        for e in events {
            match e {
                Event::Ready => self.on_connected(now),
                Event::Reply { serial, result } => {
                    if let Some(call) = self.calls.remove(&serial) {
                        self.on_reply(call, result, now, &mut out);
                    }
                }
                Event::Signal(m) => self.on_signal(m, now, &mut out),
                Event::Closed(why) => {
                    self.close();
                    self.calls.clear();
                    self.counters.disconnects += 1;
                    for u in self.units.values_mut() {
                        u.path = None;
                    }
                    if !self.units.is_empty() {
                        self.schedule_retry(now, format!("lost the connection to systemd: {why}"));
                    }
                    break;
                }
            }
        }
        out
    }

    fn call(&mut self, msg: Message, what: Call, now: Instant) {
        let Some(conn) = self.conn.as_mut() else { return };
        match conn.call(&msg, now, CALL_TIMEOUT_MS) {
            Ok(serial) => {
                self.calls.insert(serial, what);
            }
            Err(e) => crate::warn!("D-Bus: cannot send {}: {e}", msg.member.unwrap_or_default()),
        }
    }

    fn on_connected(&mut self, now: Instant) {
        self.redial.succeeded();
        if self.said.take().is_some() {
            crate::info!("connected to systemd again ({})", if self.via_bus { "system bus" } else { "private socket" });
        }
        if self.via_bus {
            for rule in [
                format!("type='signal',sender='{SYSTEMD}',interface='{PROPERTIES}',member='PropertiesChanged'"),
                // Not by sender name: during a shutdown systemd's name changes hands while it
                // still announces jobs.
                format!("type='signal',path='{MANAGER_PATH}',interface='{MANAGER}',member='JobNew'"),
                format!("type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{SYSTEMD}'"),
            ] {
                let m = Message::add_match(rule);
                self.call(m, Call::Setup, now);
            }
        }
        self.subscribe_and_load(now);
    }

    fn subscribe_and_load(&mut self, now: Instant) {
        let dest = self.via_bus.then_some(SYSTEMD);
        self.call(Message::call(dest, MANAGER_PATH, MANAGER, "Subscribe", vec![]), Call::Setup, now);
        let units: Vec<String> = self.units.keys().cloned().collect();
        for u in units {
            self.load(&u, now);
        }
    }

    fn load(&mut self, unit: &str, now: Instant) {
        let dest = self.via_bus.then_some(SYSTEMD);
        let m = Message::call(dest, MANAGER_PATH, MANAGER, "LoadUnit", vec![Value::Str(unit.into())]);
        self.call(m, Call::LoadUnit(unit.into()), now);
    }

    fn read(&mut self, unit: &str, path: &str, now: Instant) {
        let dest = self.via_bus.then_some(SYSTEMD);
        let m = Message::call(dest, path, PROPERTIES, "GetAll", vec![Value::Str(UNIT.into())]);
        self.call(m, Call::GetUnit(unit.into()), now);
        if unit.ends_with(".service") {
            let m = Message::call(dest, path, PROPERTIES, "Get", vec![Value::Str(SERVICE.into()), Value::Str("NRestarts".into())]);
            self.call(m, Call::GetRestarts(unit.into()), now);
        }
    }

    fn on_reply(&mut self, call: Call, result: Result<Vec<Value>, (String, String)>, now: Instant, out: &mut Vec<Update>) {
        let body = match result {
            Ok(b) => b,
            Err((name, msg)) => {
                self.counters.failed_calls += 1;
                match &call {
                    Call::GetRestarts(_) => {} // not every unit has NRestarts
                    _ => crate::warn!("systemd: {call:?} failed: {name}: {msg}"),
                }
                return;
            }
        };
        match call {
            Call::Setup => {}
            Call::LoadUnit(unit) => {
                let Some(path) = body.first().and_then(Value::as_str).map(str::to_string) else { return };
                if let Some(u) = self.units.get_mut(&unit) {
                    u.path = Some(path.clone());
                    self.read(&unit, &path, now);
                }
            }
            Call::GetUnit(unit) => {
                let Some(props) = body.first() else { return };
                self.update(&unit, |s| apply_unit_props(s, props), out);
            }
            Call::GetRestarts(unit) => {
                let Some(n) = body.first().and_then(Value::as_u64) else { return };
                self.update(&unit, |s| s.restarts = Some(n), out);
            }
        }
    }

    fn update(&mut self, unit: &str, f: impl FnOnce(&mut UnitState), out: &mut Vec<Update>) {
        let Some(u) = self.units.get_mut(unit) else { return };
        let mut next = u.state.clone().unwrap_or_default();
        f(&mut next);
        if next.active.is_empty() {
            // NRestarts came before the unit's own properties: wait for them.
            u.state = Some(next);
            return;
        }
        if u.state.as_ref() != Some(&next) {
            u.state = Some(next.clone());
            if !self.shutting_down {
                self.counters.updates += 1;
                out.push(Update::State(unit.to_string(), next));
            }
        }
    }

    fn on_signal(&mut self, m: Message, now: Instant, out: &mut Vec<Update>) {
        if m.kind != Kind::Signal {
            return;
        }
        crate::debug!(
            "D-Bus signal {}.{} on {}",
            m.interface.as_deref().unwrap_or(""),
            m.member.as_deref().unwrap_or(""),
            m.path.as_deref().unwrap_or("")
        );
        match (m.interface.as_deref(), m.member.as_deref()) {
            (Some(PROPERTIES), Some("PropertiesChanged")) => {
                let Some(path) = m.path.as_deref() else { return };
                let Some(unit) = self.units.iter().find(|(_, u)| u.path.as_deref() == Some(path)).map(|(n, _)| n.clone()) else { return };
                let iface = m.body.first().and_then(Value::as_str).unwrap_or_default();
                let Some(changed) = m.body.get(1) else { return };
                match iface {
                    UNIT => self.update(&unit, |s| apply_unit_props(s, changed), out),
                    SERVICE => {
                        if let Some(n) = changed.dict_get("NRestarts").and_then(Value::as_u64) {
                            self.update(&unit, |s| s.restarts = Some(n), out);
                        }
                    }
                    _ => {}
                }
                // Properties announced without values: read them.
                let invalidated = matches!(m.body.get(2), Some(Value::Array(_, v)) if !v.is_empty());
                if invalidated && iface == UNIT {
                    self.read(&unit, path, now);
                }
            }
            (Some(MANAGER), Some("JobNew")) if is_shutdown_job(m.body.get(2).and_then(Value::as_str)) && !self.shutting_down => {
                crate::info!("the system is shutting down: service changes are not reported from now on");
                self.shutting_down = true;
                out.push(Update::ShuttingDown);
            }
            (Some("org.freedesktop.DBus"), Some("NameOwnerChanged")) => {
                let name = m.body.first().and_then(Value::as_str);
                let new_owner = m.body.get(2).and_then(Value::as_str).unwrap_or_default();
                if name == Some(SYSTEMD) && !new_owner.is_empty() {
                    crate::info!("systemd is back on the bus (re-executed?); reading every unit again");
                    self.subscribe_and_load(now);
                }
            }
            _ => {}
        }
    }
}

/// Whether a job for `unit` means the system is going down (the first of these is queued as soon
/// as `poweroff`, `reboot` or `halt` is asked for; `shutdown.target` follows).
fn is_shutdown_job(unit: Option<&str>) -> bool {
    matches!(
        unit,
        Some(
            "shutdown.target"
                | "poweroff.target"
                | "reboot.target"
                | "halt.target"
                | "kexec.target"
                | "soft-reboot.target"
                | "final.target"
        )
    )
}

fn apply_unit_props(s: &mut UnitState, props: &Value) {
    if let Some(v) = props.dict_get("ActiveState").and_then(Value::as_str) {
        s.active = v.to_string();
    }
    if let Some(v) = props.dict_get("SubState").and_then(Value::as_str) {
        s.sub = v.to_string();
    }
    if let Some(v) = props.dict_get("LoadState").and_then(Value::as_str) {
        s.load = v.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_and_descriptions() {
        assert_eq!(unit_name("crasher"), "crasher.service");
        assert_eq!(unit_name("crasher.service"), "crasher.service");
        assert_eq!(unit_name("docker.socket"), "docker.socket");
        let s = UnitState { active: "inactive".into(), sub: "dead".into(), load: "not-found".into(), restarts: None };
        assert!(!s.running());
        assert_eq!(s.describe("nope.service"), "nope.service does not exist (not-found)");
        let s = UnitState { active: "failed".into(), sub: "failed".into(), load: "loaded".into(), restarts: Some(2) };
        assert_eq!(s.describe("crasher.service"), "crasher.service is failed (failed)");
        assert!(UnitState { active: "reloading".into(), ..s }.running());
    }
}
