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
//!
//! Any local user may send signals on the system bus, to the agent too. On a bus, unit changes
//! and jobs count only from systemd's own connection (asked with `GetNameOwner`, followed
//! through `NameOwnerChanged`; its previous one too, since the name may leave while a shutdown
//! is announced), and `NameOwnerChanged` only from the bus itself; others are counted, said
//! once and ignored. A forged `JobNew` for `poweroff.target` would otherwise silence every
//! service check.
//!
//! The connection is the shared [`BusClient`]; what systemd's answers and signals mean is
//! decided by [`Units`], which sees only the client and its events (tested without a socket).

use std::collections::BTreeMap;
use std::path::PathBuf;

use mio::Registry;

use crate::dbus::client::{CallError, Client, Event, ForeignSignals};
use crate::dbus::driver::{BusClient, Endpoint, FixedToken};
use crate::dbus::message::{Kind, Message, bus};
use crate::dbus::wire::Value;
use crate::time::Instant;
use crate::tokens::SYSTEMD_BUS;

/// Time allowed for one call.
pub const CALL_TIMEOUT_MS: u64 = 10_000;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
const PROPERTIES: &str = bus::PROPERTIES;

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

/// What a call to systemd was for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Setup,
    Owner,
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
    /// Messages over [`crate::dbus::message::MAX_MESSAGE`] (skipped unread), over every connection.
    pub oversized_messages: u64,
    /// Calls that got no answer in time, over every connection.
    pub call_timeouts: u64,
    /// Signals ignored because they did not come from whom they claim to.
    pub foreign_signals: u64,
}

/// The connection to systemd and the units it follows.
#[derive(Debug)]
pub struct SystemdSource {
    /// The system bus, then systemd's private socket.
    endpoints: [Endpoint; 2],
    registry: Registry,
    bus: BusClient<Call>,
    units: Units,
}

impl SystemdSource {
    /// A source that will talk to the bus at `bus` or else to systemd at `private`.
    pub fn new(bus: PathBuf, private: PathBuf, registry: Registry) -> Self {
        SystemdSource {
            endpoints: [Endpoint::bus(bus), Endpoint::peer(private)],
            registry,
            bus: BusClient::new("", "systemd"),
            units: Units::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> SystemdCounters {
        let c = self.bus.counters();
        SystemdCounters {
            connects: c.connects,
            disconnects: c.disconnects,
            failed_calls: self.units.failed_calls,
            updates: self.units.updates,
            malformed_messages: c.malformed,
            oversized_messages: c.oversized,
            call_timeouts: c.timeouts,
            foreign_signals: self.units.foreign.count,
        }
    }

    /// Whether a connection is up.
    pub fn connected(&self) -> bool {
        self.bus.is_ready()
    }

    /// The last state read of `unit`.
    pub fn state(&self, unit: &str) -> Option<&UnitState> {
        self.units.state(unit)
    }

    /// Starts following `unit` (connecting if this is the first one).
    pub fn watch(&mut self, unit: &str, now: Instant) {
        self.units.watch(unit, now, self.bus.client());
        self.bus.settle(&mut FixedToken { registry: &self.registry, token: SYSTEMD_BUS });
    }

    /// Stops following `unit`; the connection closes with the last one.
    pub fn unwatch(&mut self, unit: &str) {
        if self.units.unwatch(unit) {
            self.bus.stop(&mut FixedToken { registry: &self.registry, token: SYSTEMD_BUS });
        }
    }

    /// When [`on_tick`](Self::on_tick) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.bus.next_deadline()
    }

    /// Reconnects when due; times out calls.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Update> {
        let mut poll = FixedToken { registry: &self.registry, token: SYSTEMD_BUS };
        let events = self.bus.on_tick(now, &self.endpoints, &mut poll);
        self.handle(now, events)
    }

    /// Reads what the connection has.
    pub fn on_ready(&mut self, now: Instant) -> Vec<Update> {
        let mut poll = FixedToken { registry: &self.registry, token: SYSTEMD_BUS };
        let events = self.bus.on_ready(now, &mut poll);
        self.handle(now, events)
    }

    fn handle(&mut self, now: Instant, events: Vec<Event<Call>>) -> Vec<Update> {
        let mut out = Vec::new();
        for e in events {
            self.units.on_event(now, e, self.bus.client(), &mut out);
        }
        self.bus.settle(&mut FixedToken { registry: &self.registry, token: SYSTEMD_BUS });
        out
    }
}

/// The units followed and what systemd's replies and signals mean for them: the calls to make
/// and the changes to pass on. No I/O: it sees the client and its events.
#[derive(Debug, Default)]
struct Units {
    units: BTreeMap<String, Unit>,
    shutting_down: bool,
    /// On a bus: systemd's connection, and the one before it.
    owner: Option<String>,
    previous_owner: Option<String>,
    failed_calls: u64,
    updates: u64,
    foreign: ForeignSignals,
}

impl Units {
    fn state(&self, unit: &str) -> Option<&UnitState> {
        self.units.get(unit).and_then(|u| u.state.as_ref())
    }

    fn watch(&mut self, unit: &str, now: Instant, bus: &mut Client<Call>) {
        let u = self.units.entry(unit.to_string()).or_default();
        u.watchers += 1;
        if u.watchers > 1 {
            return;
        }
        if bus.is_ready() {
            load(unit, now, bus);
        } else {
            bus.want(now); // loaded once the connection is ready
        }
    }

    /// Returns whether no unit is left (the connection is not needed).
    fn unwatch(&mut self, unit: &str) -> bool {
        if let Some(u) = self.units.get_mut(unit) {
            u.watchers = u.watchers.saturating_sub(1);
            if u.watchers == 0 {
                self.units.remove(unit);
            }
        }
        self.units.is_empty()
    }

    fn on_event(&mut self, now: Instant, e: Event<Call>, bus: &mut Client<Call>, out: &mut Vec<Update>) {
        match e {
            Event::Ready { again } => {
                if again {
                    crate::info!("connected to systemd again ({})", if bus.on_bus() { "system bus" } else { "private socket" });
                }
                if bus.on_bus() {
                    for rule in [
                        format!("type='signal',sender='{SYSTEMD}',interface='{PROPERTIES}',member='PropertiesChanged'"),
                        // Not by sender name: during a shutdown systemd's name changes hands while
                        // it still announces jobs.
                        format!("type='signal',path='{MANAGER_PATH}',interface='{MANAGER}',member='JobNew'"),
                        format!("type='signal',sender='{}',member='NameOwnerChanged',arg0='{SYSTEMD}'", bus::NAME),
                    ] {
                        call(Message::add_match(rule), Call::Setup, now, bus);
                    }
                    call(Message::to_bus("GetNameOwner", vec![Value::Str(SYSTEMD.into())]), Call::Owner, now, bus);
                }
                self.subscribe_and_load(now, bus);
            }
            Event::Reply { tag, result } => self.on_reply(tag, result, now, bus, out),
            Event::Signal(m) => self.on_signal(m, now, bus, out),
            Event::Lost { .. } => {
                self.owner = None;
                self.previous_owner = None;
                for u in self.units.values_mut() {
                    u.path = None;
                }
            }
            // Never asked for (no eavesdropping rule, no monitor).
            Event::Skipped { .. } | Event::Observed(_) => {}
        }
    }

    fn subscribe_and_load(&mut self, now: Instant, bus: &mut Client<Call>) {
        let dest = bus.on_bus().then_some(SYSTEMD);
        call(Message::call(dest, MANAGER_PATH, MANAGER, "Subscribe", vec![]), Call::Setup, now, bus);
        for u in self.units.keys() {
            load(u, now, bus);
        }
    }

    fn on_reply(&mut self, call: Call, result: Result<Vec<Value>, CallError>, now: Instant, bus: &mut Client<Call>, out: &mut Vec<Update>) {
        let body = match result {
            Ok(b) => b,
            Err(CallError::Disconnected) => return, // the loss that follows says it
            Err(e) => {
                self.failed_calls += 1;
                match &call {
                    Call::GetRestarts(_) => {} // not every unit has NRestarts
                    _ => crate::warn!("systemd: {call:?} failed: {e}"),
                }
                return;
            }
        };
        match call {
            Call::Setup => {}
            Call::Owner => self.owner = body.first().and_then(Value::as_str).map(str::to_string),
            Call::LoadUnit(unit) => {
                let Some(path) = body.first().and_then(Value::as_str).map(str::to_string) else { return };
                if let Some(u) = self.units.get_mut(&unit) {
                    u.path = Some(path.clone());
                    read(&unit, &path, now, bus);
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
                self.updates += 1;
                out.push(Update::State(unit.to_string(), next));
            }
        }
    }

    fn on_signal(&mut self, m: Message, now: Instant, bus: &mut Client<Call>, out: &mut Vec<Update>) {
        if m.kind != Kind::Signal {
            return;
        }
        crate::debug!(
            "D-Bus signal {}.{} on {}",
            m.interface.as_deref().unwrap_or(""),
            m.member.as_deref().unwrap_or(""),
            m.path.as_deref().unwrap_or("")
        );
        let from_bus = m.sender.as_deref() == Some(bus::NAME);
        let from_systemd = !bus.on_bus() || (m.sender.is_some() && (m.sender == self.owner || m.sender == self.previous_owner));
        match (m.interface.as_deref(), m.member.as_deref()) {
            (Some(PROPERTIES), Some("PropertiesChanged")) | (Some(MANAGER), Some("JobNew")) if !from_systemd => {
                self.foreign(&m, "not from systemd");
            }
            (Some(bus::INTERFACE), Some("NameOwnerChanged")) if !from_bus => self.foreign(&m, "not from the bus"),
            (Some(PROPERTIES), Some("PropertiesChanged")) => self.on_properties(&m, now, bus, out),
            (Some(MANAGER), Some("JobNew")) if is_shutdown_job(m.body.get(2).and_then(Value::as_str)) && !self.shutting_down => {
                crate::info!("the system is shutting down: service changes are not reported from now on");
                self.shutting_down = true;
                out.push(Update::ShuttingDown);
            }
            (Some(bus::INTERFACE), Some("NameOwnerChanged")) => {
                let name = m.body.first().and_then(Value::as_str);
                let new_owner = m.body.get(2).and_then(Value::as_str).unwrap_or_default();
                if name == Some(SYSTEMD) {
                    let old = std::mem::replace(&mut self.owner, (!new_owner.is_empty()).then(|| new_owner.to_string()));
                    self.previous_owner = old.or(self.previous_owner.take());
                }
                if name == Some(SYSTEMD) && !new_owner.is_empty() {
                    crate::info!("systemd is back on the bus (re-executed?); reading every unit again");
                    self.subscribe_and_load(now, bus);
                }
            }
            _ => {}
        }
    }

    fn foreign(&mut self, m: &Message, why: &str) {
        if let Some(what) = self.foreign.note(m, why) {
            crate::warn!("systemd: {what}");
        }
    }

    fn on_properties(&mut self, m: &Message, now: Instant, bus: &mut Client<Call>, out: &mut Vec<Update>) {
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
            read(&unit, path, now, bus);
        }
    }
}

fn call(msg: Message, what: Call, now: Instant, bus: &mut Client<Call>) {
    if let Err(e) = bus.call(now, &msg, what, CALL_TIMEOUT_MS) {
        crate::warn!("D-Bus: cannot send {}: {e}", msg.member.unwrap_or_default());
    }
}

fn load(unit: &str, now: Instant, bus: &mut Client<Call>) {
    let dest = bus.on_bus().then_some(SYSTEMD);
    let m = Message::call(dest, MANAGER_PATH, MANAGER, "LoadUnit", vec![Value::Str(unit.into())]);
    call(m, Call::LoadUnit(unit.into()), now, bus);
}

fn read(unit: &str, path: &str, now: Instant, bus: &mut Client<Call>) {
    let dest = bus.on_bus().then_some(SYSTEMD);
    let m = Message::call(dest, path, PROPERTIES, "GetAll", vec![Value::Str(UNIT.into())]);
    call(m, Call::GetUnit(unit.into()), now, bus);
    if unit.ends_with(".service") {
        let m = Message::call(dest, path, PROPERTIES, "Get", vec![Value::Str(SERVICE.into()), Value::Str("NRestarts".into())]);
        call(m, Call::GetRestarts(unit.into()), now, bus);
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
    use crate::dbus::client::testing::{bytes, from, ready, sent};
    use crate::dbus::wire::Type;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    const PATH: &str = "/org/freedesktop/systemd1/unit/crasher_2eservice";

    fn props(active: &str, sub: &str) -> Value {
        let entry =
            |k: &str, v: &str| Value::DictEntry(Box::new(Value::Str(k.into())), Box::new(Value::Variant(Box::new(Value::Str(v.into())))));
        Value::Array(
            Type::DictEntry(Box::new(Type::Str), Box::new(Type::Variant)),
            vec![entry("ActiveState", active), entry("SubState", sub), entry("LoadState", "loaded")],
        )
    }

    fn changed(active: &str, sub: &str, invalidated: &[&str]) -> Message {
        let inv = invalidated.iter().map(|s| Value::Str(s.to_string())).collect();
        from(
            ":1.1",
            Message::signal(
                PATH,
                PROPERTIES,
                "PropertiesChanged",
                vec![Value::Str(UNIT.into()), props(active, sub), Value::Array(Type::Str, inv)],
            ),
        )
    }

    /// Feeds `m` to the client and hands what it made of it to `units`.
    fn feed(units: &mut Units, bus: &mut Client<Call>, now: Instant, m: &Message) -> Vec<Update> {
        let mut events = Vec::new();
        bus.received(now, &bytes(m), &mut events);
        let mut out = Vec::new();
        for e in events {
            units.on_event(now, e, bus, &mut out);
        }
        out
    }

    /// What was sent: (destination, member, first string argument).
    fn calls(bus: &mut Client<Call>) -> Vec<(Option<String>, String, String)> {
        sent(bus)
            .into_iter()
            .map(|m| (m.destination, m.member.unwrap_or_default(), m.body.first().and_then(Value::as_str).unwrap_or_default().to_string()))
            .collect()
    }

    /// A unit watched before the bus is up: match rules, Subscribe, LoadUnit; the unit's
    /// properties and NRestarts; then only changes are passed on.
    fn connected_with_crasher() -> (Units, Client<Call>) {
        let mut units = Units::default();
        let mut bus: Client<Call> = Client::new("systemd");
        units.watch("crasher.service", t(0), &mut bus);
        assert_eq!(bus.next_deadline(), Some(t(0)), "the first watch wants a connection");
        let mut bus = ready("systemd", t(0), true);
        let mut out = Vec::new();
        units.on_event(t(1), Event::Ready { again: false }, &mut bus, &mut out);
        let sent = calls(&mut bus);
        let members: Vec<&str> = sent.iter().map(|(_, m, _)| m.as_str()).collect();
        assert_eq!(members, ["AddMatch", "AddMatch", "AddMatch", "GetNameOwner", "Subscribe", "LoadUnit"]);
        assert!(sent[1].2.contains("member='JobNew'") && sent[1].2.contains(MANAGER_PATH), "{}", sent[1].2);
        assert_eq!(sent[5], (Some(SYSTEMD.into()), "LoadUnit".into(), "crasher.service".into()));
        // Serials: Hello 1, AddMatch 2..=4, GetNameOwner 5, Subscribe 6, LoadUnit 7.
        let owner = from(bus::NAME, Message::reply(5, Ok(vec![Value::Str(":1.1".into())])));
        assert_eq!(feed(&mut units, &mut bus, t(1), &owner), []);
        assert_eq!(units.owner.as_deref(), Some(":1.1"));
        (units, bus)
    }

    #[test]
    fn a_unit_is_read_once_then_followed_by_its_changes() {
        let (mut units, mut bus) = connected_with_crasher();
        let load = Message::reply(7, Ok(vec![Value::ObjectPath(PATH.into())]));
        assert_eq!(feed(&mut units, &mut bus, t(2), &from(":1.1", load)), []);
        let sent = sent(&mut bus);
        let what: Vec<(&str, &str)> = sent.iter().map(|m| (m.path.as_deref().unwrap(), m.member.as_deref().unwrap())).collect();
        assert_eq!(what, [(PATH, "GetAll"), (PATH, "Get")]);
        let state =
            |active: &str, sub: &str, restarts| UnitState { active: active.into(), sub: sub.into(), load: "loaded".into(), restarts };
        let got = feed(&mut units, &mut bus, t(3), &from(":1.1", Message::reply(sent[0].serial, Ok(vec![props("failed", "failed")]))));
        assert_eq!(got, [Update::State("crasher.service".into(), state("failed", "failed", None))]);
        let got = feed(
            &mut units,
            &mut bus,
            t(3),
            &from(":1.1", Message::reply(sent[1].serial, Ok(vec![Value::Variant(Box::new(Value::U32(2)))]))),
        );
        assert_eq!(got, [Update::State("crasher.service".into(), state("failed", "failed", Some(2)))]);
        // systemd repeats the whole set on every change: the same state again is not news.
        assert_eq!(feed(&mut units, &mut bus, t(4), &changed("failed", "failed", &[])), []);
        let got = feed(&mut units, &mut bus, t(5), &changed("active", "running", &[]));
        assert_eq!(got, [Update::State("crasher.service".into(), state("active", "running", Some(2)))]);
        assert_eq!(units.state("crasher.service").map(UnitState::running), Some(true));
        assert_eq!(units.updates, 3);
        // Properties announced without values are read.
        assert_eq!(feed(&mut units, &mut bus, t(6), &changed("active", "running", &["ActiveState"])), []);
        assert_eq!(calls(&mut bus).iter().map(|c| c.1.as_str()).collect::<Vec<_>>(), ["GetAll", "Get"]);
    }

    #[test]
    fn a_shutdown_job_stops_the_reporting() {
        let (mut units, mut bus) = connected_with_crasher();
        let load = from(":1.1", Message::reply(7, Ok(vec![Value::ObjectPath(PATH.into())])));
        feed(&mut units, &mut bus, t(2), &load);
        sent(&mut bus);
        let job = |unit: &str| {
            let body = vec![Value::U32(7), Value::ObjectPath("/org/freedesktop/systemd1/job/7".into()), Value::Str(unit.into())];
            from(":1.1", Message::signal(MANAGER_PATH, MANAGER, "JobNew", body))
        };
        assert_eq!(feed(&mut units, &mut bus, t(3), &job("crasher.service")), [], "an ordinary job");
        assert_eq!(feed(&mut units, &mut bus, t(4), &job("poweroff.target")), [Update::ShuttingDown]);
        assert_eq!(feed(&mut units, &mut bus, t(5), &job("shutdown.target")), [], "said once");
        assert_eq!(feed(&mut units, &mut bus, t(6), &changed("inactive", "dead", &[])), [], "stops are not news now");
    }

    /// Any peer may send signals to the agent, and a job by path: they count only from
    /// systemd's connection (or its previous one), owner changes only from the bus.
    #[test]
    fn signals_from_others_than_systemd_are_ignored() {
        let (mut units, mut bus) = connected_with_crasher();
        let load = from(":1.1", Message::reply(7, Ok(vec![Value::ObjectPath(PATH.into())])));
        feed(&mut units, &mut bus, t(2), &load);
        let sent = sent(&mut bus);
        feed(&mut units, &mut bus, t(3), &from(":1.1", Message::reply(sent[0].serial, Ok(vec![props("active", "running")]))));
        let job = |sender: &str| {
            let body =
                vec![Value::U32(7), Value::ObjectPath("/org/freedesktop/systemd1/job/7".into()), Value::Str("poweroff.target".into())];
            from(sender, Message::signal(MANAGER_PATH, MANAGER, "JobNew", body))
        };
        assert_eq!(feed(&mut units, &mut bus, t(4), &job(":1.66")), []);
        let mut fake = changed("failed", "failed", &[]);
        fake.sender = Some(":1.66".into());
        assert_eq!(feed(&mut units, &mut bus, t(5), &fake), []);
        let owner = |new: &str, sender: &str| {
            let body = vec![Value::Str(SYSTEMD.into()), Value::Str(":1.1".into()), Value::Str(new.into())];
            from(sender, Message::signal(bus::PATH, bus::INTERFACE, "NameOwnerChanged", body))
        };
        assert_eq!(feed(&mut units, &mut bus, t(6), &owner(":1.66", ":1.66")), []);
        assert_eq!((units.foreign.count, units.owner.as_deref()), (3, Some(":1.1")));
        assert!(!units.shutting_down);
        let got = feed(&mut units, &mut bus, t(7), &changed("failed", "failed", &[]));
        assert_eq!(got.len(), 1, "systemd's own change is news");
        // systemd's name leaves while it announces the shutdown: its jobs still count.
        feed(&mut units, &mut bus, t(8), &owner("", bus::NAME));
        assert_eq!(feed(&mut units, &mut bus, t(9), &job(":1.1")), [Update::ShuttingDown]);
    }

    #[test]
    fn systemd_back_on_the_bus_means_reading_everything_again() {
        let (mut units, mut bus) = connected_with_crasher();
        let owner = |new: &str| {
            let body = vec![Value::Str(SYSTEMD.into()), Value::Str(String::new()), Value::Str(new.into())];
            from(bus::NAME, Message::signal(bus::PATH, bus::INTERFACE, "NameOwnerChanged", body))
        };
        assert_eq!(feed(&mut units, &mut bus, t(2), &owner("")), []);
        assert_eq!(calls(&mut bus), []);
        feed(&mut units, &mut bus, t(3), &owner(":1.99"));
        let members: Vec<String> = calls(&mut bus).into_iter().map(|c| c.1).collect();
        assert_eq!(members, ["Subscribe", "LoadUnit"]);
    }

    #[test]
    fn on_systemds_private_socket_there_are_no_match_rules_or_destinations() {
        let mut units = Units::default();
        let mut bus: Client<Call> = ready("systemd", t(0), false);
        units.watch("crasher.service", t(0), &mut bus);
        assert_eq!(calls(&mut bus), [(None, "LoadUnit".into(), "crasher.service".into())], "ready: loaded at once");
        let mut out = Vec::new();
        units.on_event(t(1), Event::Ready { again: true }, &mut bus, &mut out);
        let members: Vec<String> = calls(&mut bus).into_iter().map(|c| c.1).collect();
        assert_eq!(members, ["Subscribe", "LoadUnit"]);
        assert!(units.unwatch("crasher.service"), "the last unit: the connection is not needed");
    }

    #[test]
    fn failed_calls_are_counted_a_loss_is_not_and_paths_are_read_again_after_it() {
        let (mut units, mut bus) = connected_with_crasher();
        let load = from(":1.1", Message::reply(7, Ok(vec![Value::ObjectPath(PATH.into())])));
        feed(&mut units, &mut bus, t(2), &load);
        let sent = sent(&mut bus);
        let no = Message::reply(sent[1].serial, Err(("org.freedesktop.DBus.Error.UnknownProperty", "no NRestarts")));
        feed(&mut units, &mut bus, t(3), &from(":1.1", no));
        assert_eq!(units.failed_calls, 1);
        let mut events = Vec::new();
        bus.closed(t(4), "the peer closed the connection".into(), &mut events);
        assert!(matches!(events[0], Event::Reply { result: Err(CallError::Disconnected), .. }), "GetAll was waiting");
        let mut out = Vec::new();
        for e in events {
            units.on_event(t(4), e, &mut bus, &mut out);
        }
        assert_eq!(units.failed_calls, 1, "a call lost with its connection is not a failed call");
        assert_eq!(feed(&mut units, &mut bus, t(5), &changed("active", "running", &[])), [], "no path until LoadUnit again");
        assert!(units.units["crasher.service"].path.is_none());
    }

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
