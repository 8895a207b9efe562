//! The messages of a `dbus` check, as lines: a connection of the check's own to the system bus
//! with its match rule, each message written as `dbus-monitor` would print it (see
//! [`crate::dbus::render`]) and handed to the check's line sink, like a command's output.
//!
//! What the check sees is what `dbus-monitor` sees, asked for in its order ([`Mode`]): the bus
//! is asked to make the connection a monitor of what the rule selects (`BecomeMonitor`:
//! unicast signals and calls between other peers too); refused, an eavesdropping `AddMatch`;
//! refused, a plain `AddMatch` (broadcasts only). The mode in place and why are said once and
//! shown in `status`. A monitor cannot send: the connection is the check's alone.
//!
//! One connection per check, as Mender Monitor ran one `dbus-monitor` per check: the bus does
//! the matching (well-known sender names included), and nothing is polled. What it sends is
//! checked against the rule once more ([`MatchRule::matches`]): a monitor also gets the bus's
//! signals about itself. The connection is made at the first tick after the start; a lost one
//! is retried with a backoff from 1 s doubling to 30 s (messages sent meanwhile are not seen:
//! the bus keeps none). A rule the bus refuses in every mode is said once and not retried: it
//! will be refused again until the check changes.
//!
//! The connection is the shared [`BusClient`] (which reads at most its budget per turn, so a
//! flood of messages cannot hold up the other checks); what its events mean for the check is
//! decided by [`Watch`], which sees only the client and its events.

use std::io;
use std::path::Path;

use mio::net::UnixStream;
use mio::{Interest, Token};

use super::check_fds::CheckFds;
use super::lines::LineSink;
use super::watch::Listener;
use crate::dbus::client::{CallError, Client, Event, SayOnce};
use crate::dbus::driver::{BusClient, Endpoint, Poller};
use crate::dbus::message::{Kind, Message, bus};
use crate::dbus::render::message_lines;
use crate::dbus::rule::MatchRule;
use crate::time::{Instant, Now};

/// Time allowed for `BecomeMonitor` and `AddMatch`.
pub const CALL_TIMEOUT_MS: u64 = 10_000;

/// Counters of a signal source.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SignalCounters {
    /// Connections made.
    pub connects: u64,
    /// Connections lost.
    pub disconnects: u64,
    /// Signals passed on.
    pub signals: u64,
    /// Method calls, returns and errors passed on (a monitor's, or an eavesdropper's).
    pub other_messages: u64,
    /// Messages the bus sent that the rule does not select (dropped).
    pub not_matching: u64,
    /// Bytes of text they made.
    pub bytes: u64,
    /// Signals whose text was cut at [`crate::dbus::render::MAX_LINES`].
    pub cut: u64,
    /// Messages that did not decode (skipped), over every connection.
    pub malformed: u64,
    /// Messages over [`crate::dbus::message::MAX_MESSAGE`] (skipped unread).
    pub oversized: u64,
}

/// A check's signal source.
#[derive(Debug)]
pub struct SignalWatch {
    listener: Listener,
    bus: BusClient<Mode>,
    watch: Watch,
    next_line: u64,
}

/// A check's connection in the pipe table: a fresh token per connection, routed to the check.
struct CheckPoller<'a> {
    pipes: &'a mut CheckFds,
    listener: Listener,
}

impl Poller for CheckPoller<'_> {
    fn add(&mut self, stream: &mut UnixStream) -> io::Result<Token> {
        self.pipes.register_with(self.listener, |registry, token| {
            registry.register(stream, token, Interest::READABLE | Interest::WRITABLE).map(|()| token)
        })
    }

    fn remove(&mut self, stream: &mut UnixStream, token: Token) {
        // Failure means it is not in the poll; closing it is all that is left.
        let _ = self.pipes.registry().deregister(stream);
        self.pipes.forget(token);
    }
}

impl SignalWatch {
    /// A source for `rule` (as [`MatchRule::to_add_match`](crate::dbus::rule::MatchRule::to_add_match)
    /// gives it) that wakes `listener`; it connects at the first tick (at `now`).
    pub fn new(rule: String, label: String, listener: Listener, now: Instant) -> Self {
        let mut bus = BusClient::new(&label, "the system bus");
        bus.want(now);
        SignalWatch { listener, bus, watch: Watch::new(rule, label), next_line: 1 }
    }

    /// The match rule.
    pub fn rule(&self) -> &str {
        &self.watch.rule
    }

    /// What the source is doing, for `status`.
    pub fn state(&self) -> &str {
        &self.watch.state
    }

    /// What the connection sees ([`Mode`] and why), for `status`; empty until a mode is in
    /// place.
    pub fn mode(&self) -> &str {
        &self.watch.mode
    }

    /// Counters so far.
    pub fn counters(&self) -> SignalCounters {
        let c = self.bus.counters();
        SignalCounters {
            connects: c.connects,
            disconnects: c.disconnects,
            malformed: c.malformed,
            oversized: c.oversized,
            ..self.watch.counters
        }
    }

    /// When [`on_tick`](Self::on_tick) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.bus.next_deadline()
    }

    /// Reads what the bus sent and passes the signals on as lines.
    pub fn on_ready(&mut self, now: Now, pipes: &mut CheckFds, sink: &mut impl LineSink) {
        let events = self.bus.on_ready(now.mono, &mut CheckPoller { pipes, listener: self.listener });
        self.handle(now, events, pipes, sink);
    }

    /// Connects to the bus at `bus` when due, reads what the last turn left, times out
    /// `AddMatch`.
    pub fn on_tick(&mut self, now: Now, bus: &Path, pipes: &mut CheckFds, sink: &mut impl LineSink) {
        let endpoints = [Endpoint::bus(bus.to_path_buf())];
        let events = self.bus.on_tick(now.mono, &endpoints, &mut CheckPoller { pipes, listener: self.listener });
        self.handle(now, events, pipes, sink);
    }

    fn handle(&mut self, now: Now, events: Vec<Event<Mode>>, pipes: &mut CheckFds, sink: &mut impl LineSink) {
        let mut text = Vec::new();
        for e in events {
            self.watch.on_event(now, e, self.bus.client(), &mut text);
        }
        self.bus.settle(&mut CheckPoller { pipes, listener: self.listener });
        if !text.is_empty() {
            self.watch.counters.bytes += text.len() as u64;
            let count = crate::detect::log::count_lines(&text);
            sink.lines(&text, self.next_line, count);
            self.next_line += count;
        }
    }

    /// Closes the connection.
    pub fn stop(&mut self, pipes: &mut CheckFds) {
        self.bus.stop(&mut CheckPoller { pipes, listener: self.listener });
    }
}

/// How much of the bus a check's connection sees, from most to least: the order in which
/// they are asked for, as `dbus-monitor` asks (`BecomeMonitor`, else an eavesdropping
/// `AddMatch`, else a plain one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `BecomeMonitor` with the rule: every message it selects, between any two peers.
    Monitor,
    /// `AddMatch` with `eavesdrop='true'`: messages between other peers too, as far as the
    /// bus's policy lets us receive them (it cannot be asked whether it does).
    Eavesdrop,
    /// A plain `AddMatch`: broadcast signals only.
    Broadcast,
}

impl Mode {
    /// The mode to ask for after the bus refused `self` (with an error, not silence).
    pub fn fallback(self) -> Option<Mode> {
        match self {
            Mode::Monitor => Some(Mode::Eavesdrop),
            Mode::Eavesdrop => Some(Mode::Broadcast),
            Mode::Broadcast => None,
        }
    }

    /// The call that asks for it, for sentences.
    fn call(self) -> &'static str {
        match self {
            Mode::Monitor => "BecomeMonitor",
            Mode::Eavesdrop => "AddMatch with eavesdrop='true'",
            Mode::Broadcast => "AddMatch",
        }
    }

    /// Asks the bus for this mode with `rule` (as `AddMatch` takes it).
    fn ask(self, now: Now, rule: &str, bus: &mut Client<Mode>) {
        let sent = match self {
            Mode::Monitor => bus.become_monitor(now.mono, vec![rule.to_string()], self, CALL_TIMEOUT_MS),
            Mode::Eavesdrop => bus.call(now.mono, &Message::add_match(format!("{rule},eavesdrop='true'")), self, CALL_TIMEOUT_MS),
            Mode::Broadcast => bus.call(now.mono, &Message::add_match(rule.to_string()), self, CALL_TIMEOUT_MS),
        };
        if let Err(e) = sent {
            bus.fail(format!("cannot send {}: {e}", self.call()));
        }
    }

    /// What the check sees in this mode, after `refusals`, for `status` and the log.
    fn describe(self, refusals: &[String]) -> String {
        let why = refusals.join("; ");
        match self {
            Mode::Monitor => "monitor: every message the rule selects, unicast ones included".into(),
            Mode::Eavesdrop => {
                format!("eavesdrop ({why}): messages between other peers arrive only where the bus's policy allows eavesdropping")
            }
            Mode::Broadcast => format!("broadcast only ({why}): messages sent to one peer are not seen"),
        }
    }
}

/// What a check's connection does: once ready, asks for the most it may see ([`Mode`]),
/// falls back when refused, and a rule the bus refuses in every mode is the end; messages
/// become text. No I/O: it sees the client and its events.
#[derive(Debug)]
struct Watch {
    /// The rule, as `AddMatch` and `BecomeMonitor` take it.
    rule: String,
    /// The rule parsed, to drop what the bus sends besides what it selects.
    filter: Option<MatchRule>,
    /// Names the check in the log.
    label: String,
    /// What the source is doing, for `status`.
    state: String,
    /// What the connection sees, once a mode is in place (empty before), for `status`.
    mode: String,
    /// Why the modes asked for on this connection were refused.
    refusals: Vec<String>,
    /// The mode sentence last logged (a reconnection to the same bus is not news).
    said: SayOnce,
    /// A loss was said and the rule is not in place again yet (its return is news).
    again: bool,
    /// Messages, their text and cuts (the connection's counters are the client's).
    counters: SignalCounters,
}

impl Watch {
    fn new(rule: String, label: String) -> Self {
        Watch {
            filter: MatchRule::parse(&rule).ok(),
            rule,
            label,
            state: "connecting to the system bus".into(),
            mode: String::new(),
            refusals: Vec::new(),
            said: SayOnce::default(),
            again: false,
            counters: SignalCounters::default(),
        }
    }

    /// Acts on `e` at `now`; messages are appended to `text` as lines.
    fn on_event(&mut self, now: Now, e: Event<Mode>, bus: &mut Client<Mode>, text: &mut Vec<u8>) {
        match e {
            Event::Ready { .. } => {
                self.refusals.clear();
                Mode::Monitor.ask(now, &self.rule, bus);
            }
            Event::Reply { tag, result: Ok(_) } => self.in_place(tag),
            Event::Reply { result: Err(CallError::Disconnected), .. } => {} // the loss follows
            Event::Reply { tag, result: Err(CallError::Timeout) } => bus.fail(format!("the bus did not answer {} in time", tag.call())),
            Event::Reply { tag, result: Err(e) } => match tag.fallback() {
                Some(next) => {
                    self.refusals.push(format!("{} refused: {}", tag.call(), brief(&e)));
                    next.ask(now, &self.rule, bus);
                }
                None => {
                    let why = format!("the bus refuses the match rule {:?}: {}", self.rule, e.to_string().trim_end());
                    crate::error!("{}: {why}; not retrying until the check changes", self.label);
                    bus.stop();
                    self.state = why;
                    self.mode.clear();
                }
            },
            Event::Signal(m) | Event::Observed(m) => self.on_message(now, &m, bus.unique_name(), text),
            Event::Lost { why, .. } => {
                self.again = true;
                self.state = format!("{why}; retrying");
                self.mode.clear();
            }
            Event::Skipped { .. } => {}
        }
    }

    /// The bus granted `mode`: watching; what is seen is said once.
    fn in_place(&mut self, mode: Mode) {
        self.state = "watching".into();
        self.mode = mode.describe(&self.refusals);
        if self.said.say(&self.mode) {
            match mode {
                Mode::Monitor => crate::info!("{}: watching the bus as a monitor (messages between any peers)", self.label),
                _ => crate::warn!("{}: watching in mode {}", self.label, self.mode),
            }
        }
        if std::mem::take(&mut self.again) {
            crate::info!("{}: watching D-Bus signals again", self.label);
        }
    }

    /// `m`, unless it is the bus talking to us or not what the rule selects, as lines.
    fn on_message(&mut self, now: Now, m: &Message, us: Option<&str>, text: &mut Vec<u8>) {
        if is_about_us(m, us) {
            return;
        }
        if self.filter.as_ref().is_some_and(|f| !f.matches(m)) {
            self.counters.not_matching += 1;
            return;
        }
        if m.kind == Kind::Signal {
            self.counters.signals += 1;
        } else {
            self.counters.other_messages += 1;
        }
        if message_lines(m, now.wall, text) {
            self.counters.cut += 1;
        }
    }
}

/// Most characters of a refusal's text kept in `status` (dbus-daemon's name the whole policy).
const MAX_REFUSAL: usize = 120;

/// A refusal as its error name and the start of its text.
fn brief(e: &CallError) -> String {
    let text = e.to_string();
    let text = text.trim_end();
    match text.char_indices().nth(MAX_REFUSAL) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// The bus driver's signals about our own connection (`NameAcquired` after `Hello`, and
/// `NameLost`, also when it becomes a monitor): sent to us whatever we match, and not news
/// about the system. The same signals to other peers are (a monitor sees them).
fn is_about_us(m: &Message, us: Option<&str>) -> bool {
    let to_us = match (us, m.destination.as_deref()) {
        (Some(us), Some(to)) => us == to,
        (None, to) => to.is_some(),
        (Some(_), None) => false,
    };
    m.sender.as_deref() == Some(bus::NAME) && to_us && matches!(m.member.as_deref(), Some("NameAcquired" | "NameLost"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dbus::client::testing::{UNIQUE, bytes, from, ready, sent, tick};
    use crate::dbus::wire::Value;

    const RULE: &str = "type='signal',interface='com.example.Power'";

    fn at(ms: u64) -> Now {
        Now::at(ms)
    }

    fn run(w: &mut Watch, bus: &mut Client<Mode>, now: Now, events: Vec<Event<Mode>>) -> String {
        let mut text = Vec::new();
        for e in events {
            w.on_event(now, e, bus, &mut text);
        }
        String::from_utf8(text).unwrap()
    }

    fn feed(w: &mut Watch, bus: &mut Client<Mode>, now: Now, m: &Message) -> String {
        let mut events = Vec::new();
        bus.received(now.mono, &bytes(m), &mut events);
        run(w, bus, now, events)
    }

    /// The one message the client sent since last asked.
    fn one_sent(bus: &mut Client<Mode>) -> Message {
        let mut out = sent(bus);
        assert_eq!(out.len(), 1, "{out:?}");
        out.remove(0)
    }

    fn refuse(w: &mut Watch, bus: &mut Client<Mode>, now: Now, call: &Message, name: &str) -> String {
        feed(w, bus, now, &from(bus::NAME, Message::reply(call.serial, Err((name, "no\n")))))
    }

    fn grant(w: &mut Watch, bus: &mut Client<Mode>, now: Now, call: &Message) {
        feed(w, bus, now, &from(bus::NAME, Message::reply(call.serial, Ok(vec![]))));
        assert_eq!(w.state, "watching");
    }

    /// Ready: `BecomeMonitor` with the rule, asked first.
    fn asking(rule: &str) -> (Watch, Client<Mode>, Message) {
        let mut w = Watch::new(rule.into(), "check dbus power".into());
        let mut bus = ready("the system bus", at(0).mono, true);
        run(&mut w, &mut bus, at(0), vec![Event::Ready { again: false }]);
        let call = one_sent(&mut bus);
        assert_eq!((call.interface.as_deref(), call.member.as_deref()), (Some("org.freedesktop.DBus.Monitoring"), Some("BecomeMonitor")));
        assert_eq!(call.body, [Value::Array(crate::dbus::wire::Type::Str, vec![Value::Str(rule.into())]), Value::U32(0)]);
        assert_eq!(w.state, "connecting to the system bus");
        (w, bus, call)
    }

    /// Refused `BecomeMonitor`: the eavesdropping `AddMatch` comes next.
    fn eavesdrop_asked(rule: &str) -> (Watch, Client<Mode>, Message) {
        let (mut w, mut bus, call) = asking(rule);
        refuse(&mut w, &mut bus, at(1), &call, "org.freedesktop.DBus.Error.AccessDenied");
        let add = one_sent(&mut bus);
        assert_eq!(add.member.as_deref(), Some("AddMatch"));
        assert_eq!(add.body[0].as_str().unwrap_or_default(), format!("{rule},eavesdrop='true'"));
        (w, bus, add)
    }

    /// The plain `AddMatch` in place (monitor and eavesdropping refused); returns the watch and its client.
    /// The connection dialled again 1 s after a loss at 10 ms: authenticated and `Hello`
    /// answered by 1,012 ms; the events that came of it.
    fn redial(bus: &mut Client<Mode>) -> Vec<Event<Mode>> {
        assert!(bus.dial_due(at(1_010).mono));
        bus.dialed(at(1_010).mono, 0, true);
        let auth = bus.output().len();
        bus.wrote(auth);
        let mut events = Vec::new();
        bus.received(at(1_011).mono, b"OK 1\r\n", &mut events);
        let hello = sent(bus);
        bus.received(at(1_012).mono, &bytes(&Message::reply(hello[0].serial, Ok(vec![Value::Str(UNIQUE.into())]))), &mut events);
        events
    }

    fn watching() -> (Watch, Client<Mode>) {
        let (mut w, mut bus, add) = eavesdrop_asked(RULE);
        refuse(&mut w, &mut bus, at(2), &add, "org.example.NoEavesdropping");
        let plain = one_sent(&mut bus);
        assert_eq!((plain.member.as_deref(), plain.body[0].as_str()), (Some("AddMatch"), Some(RULE)));
        grant(&mut w, &mut bus, at(3), &plain);
        (w, bus)
    }

    #[test]
    fn a_monitor_sees_calls_between_other_peers_and_cannot_send() {
        let rule = "type='method_call',interface='io.mender.Authentication1'";
        let (mut w, mut bus, call) = asking(rule);
        // The bus answers, then says we lost our name and copies what others send, all in one read.
        let mut bytes = bytes(&from(bus::NAME, Message::reply(call.serial, Ok(vec![]))));
        let mut lost = from(bus::NAME, Message::signal(bus::PATH, bus::INTERFACE, "NameLost", vec![Value::Str(UNIQUE.into())]));
        lost.destination = Some(UNIQUE.into());
        bytes.extend(crate::dbus::client::testing::bytes(&lost));
        let mut fetch = from(
            ":1.9",
            Message::call(Some(":1.4"), "/io/mender/AuthenticationManager", "io.mender.Authentication1", "FetchJwtToken", vec![]),
        );
        fetch.serial = call.serial; // another peer's serial may equal ours: it is still theirs
        bytes.extend(crate::dbus::client::testing::bytes(&fetch));
        let mut answer = from(":1.4", Message::reply(call.serial, Ok(vec![Value::Bool(true)])));
        answer.destination = Some(":1.9".into());
        bytes.extend(crate::dbus::client::testing::bytes(&answer));
        let mut events = Vec::new();
        bus.received(at(1).mono, &bytes, &mut events);
        let text = run(&mut w, &mut bus, at(1), events);
        assert_eq!(w.state, "watching");
        assert_eq!(w.mode, "monitor: every message the rule selects, unicast ones included");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("method call time=1700000000.001000 sender=:1.9 -> destination=:1.4 serial="), "{text}");
        assert!(text.trim_end().ends_with("interface=io.mender.Authentication1; member=FetchJwtToken"), "{text}");
        assert_eq!((w.counters.other_messages, w.counters.not_matching), (1, 1), "the return is not a method call");
        assert!(matches!(bus.call(at(2).mono, &Message::to_bus("GetId", vec![]), Mode::Broadcast, 1), Err(CallError::Unsendable(_))));
    }

    #[test]
    fn refusals_fall_back_to_eavesdropping_then_to_broadcasts_and_say_why() {
        let (mut w, mut bus, add) = eavesdrop_asked(RULE);
        grant(&mut w, &mut bus, at(2), &add);
        assert_eq!(
            w.mode,
            "eavesdrop (BecomeMonitor refused: org.freedesktop.DBus.Error.AccessDenied: no): messages between other peers \
             arrive only where the bus's policy allows eavesdropping"
        );
        // Eavesdropped: a signal to another peer; a reply to another peer whose serial is ours.
        let mut unicast = from(":1.9", Message::signal("/p", "com.example.Power", "Changed", vec![]));
        unicast.destination = Some(":1.4".into());
        assert!(feed(&mut w, &mut bus, at(3), &unicast).starts_with("signal time=1700000000.003000 sender=:1.9 -> destination=:1.4"));
        let (w, _) = watching();
        assert_eq!(
            w.mode,
            "broadcast only (BecomeMonitor refused: org.freedesktop.DBus.Error.AccessDenied: no; AddMatch with eavesdrop='true' \
             refused: org.example.NoEavesdropping: no): messages sent to one peer are not seen"
        );
    }

    #[test]
    fn a_reconnection_asks_for_a_monitor_again_and_a_silent_bus_is_dropped() {
        let (mut w, mut bus) = watching();
        let mut events = Vec::new();
        bus.closed(at(10).mono, "the peer closed the connection".into(), &mut events);
        run(&mut w, &mut bus, at(10), events);
        assert_eq!(w.mode, "", "nothing is seen while away");
        let events = redial(&mut bus);
        run(&mut w, &mut bus, at(1_012), events);
        let call = one_sent(&mut bus);
        assert_eq!(call.member.as_deref(), Some("BecomeMonitor"));
        // No answer: the connection is dropped and dialled again, like an unanswered AddMatch.
        let events = tick(&mut bus, at(1_012 + CALL_TIMEOUT_MS).mono);
        run(&mut w, &mut bus, at(1_012 + CALL_TIMEOUT_MS), events);
        let events = tick(&mut bus, at(1_013 + CALL_TIMEOUT_MS).mono);
        run(&mut w, &mut bus, at(1_013 + CALL_TIMEOUT_MS), events);
        assert!(w.state.ends_with("the bus did not answer BecomeMonitor in time; retrying"), "{}", w.state);
    }

    #[test]
    fn signals_become_dbus_monitor_lines_but_not_the_bus_greeting_us() {
        let (mut w, mut bus) = watching();
        let mut greeting = from(bus::NAME, Message::signal(bus::PATH, bus::INTERFACE, "NameAcquired", vec![Value::Str(UNIQUE.into())]));
        greeting.destination = Some(UNIQUE.into());
        assert_eq!(feed(&mut w, &mut bus, at(3), &greeting), "");
        let power = from(":1.9", Message::signal("/com/example/Power", "com.example.Power", "Changed", vec![Value::Str("low".into())]));
        let text = feed(&mut w, &mut bus, at(4), &power);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("signal time=1700000000.004000 sender=:1.9 -> destination=(null destination)"), "{}", lines[0]);
        assert_eq!(lines[1], "   string \"low\"");
        assert_eq!(w.counters.signals, 1);
    }

    #[test]
    fn a_rule_refused_in_every_mode_stops_the_connection_for_good() {
        let rule = "type='signal',sender='not a name'";
        let (mut w, mut bus, add) = eavesdrop_asked(rule);
        refuse(&mut w, &mut bus, at(2), &add, "org.freedesktop.DBus.Error.MatchRuleInvalid");
        let plain = one_sent(&mut bus);
        refuse(&mut w, &mut bus, at(3), &plain, "org.freedesktop.DBus.Error.MatchRuleInvalid");
        assert_eq!(
            w.state,
            "the bus refuses the match rule \"type='signal',sender='not a name'\": org.freedesktop.DBus.Error.MatchRuleInvalid: no"
        );
        assert_eq!(w.mode, "");
        assert!(!bus.is_open());
        assert_eq!(bus.next_deadline(), None, "not retried");
    }

    #[test]
    fn an_unanswered_become_monitor_drops_the_connection_and_dials_again() {
        let mut w = Watch::new(RULE.into(), "check dbus power".into());
        let mut bus = ready("the system bus", at(0).mono, true);
        run(&mut w, &mut bus, at(0), vec![Event::Ready { again: false }]);
        let events = tick(&mut bus, at(CALL_TIMEOUT_MS).mono);
        run(&mut w, &mut bus, at(CALL_TIMEOUT_MS), events);
        assert_eq!(bus.next_deadline(), Some(Instant::from_millis(0)), "the failure is reported at once");
        let events = tick(&mut bus, at(CALL_TIMEOUT_MS + 1).mono);
        assert!(matches!(&events[..], [Event::Lost { retry_in_ms: 1_000, say: true, .. }]), "{events:?}");
        run(&mut w, &mut bus, at(CALL_TIMEOUT_MS + 1), events);
        assert_eq!(w.state, "lost the connection to the system bus: the bus did not answer BecomeMonitor in time; retrying");
        assert!(bus.dial_due(at(CALL_TIMEOUT_MS + 1_001).mono));
    }

    #[test]
    fn after_a_loss_the_most_is_asked_for_again() {
        let (mut w, mut bus) = watching();
        let mut events = Vec::new();
        bus.closed(at(10).mono, "the peer closed the connection".into(), &mut events);
        run(&mut w, &mut bus, at(10), events);
        assert!(w.again);
        let events = redial(&mut bus);
        assert_eq!(events, [Event::Ready { again: true }]);
        run(&mut w, &mut bus, at(1_012), events);
        let call = one_sent(&mut bus);
        assert_eq!(call.member.as_deref(), Some("BecomeMonitor"), "what the bus refused may have changed");
        grant(&mut w, &mut bus, at(1_013), &call);
        assert!(w.mode.starts_with("monitor:") && !w.again);
    }
}
