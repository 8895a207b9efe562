//! The signals of a `dbus` check, as lines: a connection of the check's own to the system bus
//! with its match rule (`AddMatch`), each signal written as `dbus-monitor` would print it (see
//! [`crate::dbus::render`]) and handed to the check's line sink, like a command's output.
//!
//! One connection per check, as Mender Monitor ran one `dbus-monitor` per check: the bus does
//! the matching (well-known sender names included), and nothing is polled. The connection is
//! made at the first tick after the start; a lost one is retried with a backoff from 1 s
//! doubling to 30 s (signals sent meanwhile are not seen: the bus keeps none). A rule the bus
//! refuses is said once and not retried: it will be refused again until the check changes.
//!
//! The connection is the shared [`BusClient`] (which reads at most its budget per turn, so a
//! flood of signals cannot hold up the other checks); what its events mean for the check is
//! decided by [`Watch`], which sees only the client and its events.
//!
//! Only signals broadcast on the bus (or sent to us) are seen, not messages between two other
//! peers: that would take `BecomeMonitor`, which turns the connection into a monitor of every
//! message on the bus.

use std::io;
use std::path::Path;

use mio::net::UnixStream;
use mio::{Interest, Token};

use super::check_fds::CheckFds;
use super::lines::LineSink;
use super::watch::Listener;
use crate::dbus::client::{CallError, Client, Event};
use crate::dbus::driver::{BusClient, Endpoint, Poller};
use crate::dbus::message::{Message, bus};
use crate::dbus::render::signal_lines;
use crate::time::{Instant, Now};

/// Time allowed for `AddMatch`.
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
    /// Bytes of text they made.
    pub bytes: u64,
    /// Signals whose text was cut at [`crate::dbus::render::MAX_LINES`].
    pub cut: u64,
    /// Messages that did not decode (skipped), over every connection.
    pub malformed: u64,
    /// Messages over [`crate::dbus::message::MAX_MESSAGE`] (skipped unread).
    pub oversized: u64,
}

/// The one call a signal source makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AddMatch;

/// A check's signal source.
#[derive(Debug)]
pub struct SignalWatch {
    listener: Listener,
    bus: BusClient<AddMatch>,
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

    fn handle(&mut self, now: Now, events: Vec<Event<AddMatch>>, pipes: &mut CheckFds, sink: &mut impl LineSink) {
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

/// What a check's connection does: `AddMatch` once ready, a rule the bus refuses is the end,
/// signals become text. No I/O: it sees the client and its events.
#[derive(Debug)]
struct Watch {
    /// The rule sent to `AddMatch`.
    rule: String,
    /// Names the check in the log.
    label: String,
    /// What the source is doing, for `status`.
    state: String,
    /// A loss was said and the rule is not in place again yet (its return is news).
    again: bool,
    /// Signals, their text and cuts (the connection's counters are the client's).
    counters: SignalCounters,
}

impl Watch {
    fn new(rule: String, label: String) -> Self {
        Watch { rule, label, state: "connecting to the system bus".into(), again: false, counters: SignalCounters::default() }
    }

    /// Acts on `e` at `now`; signals are appended to `text` as lines.
    fn on_event(&mut self, now: Now, e: Event<AddMatch>, bus: &mut Client<AddMatch>, text: &mut Vec<u8>) {
        match e {
            Event::Ready { .. } => {
                if let Err(e) = bus.call(now.mono, &Message::add_match(self.rule.clone()), AddMatch, CALL_TIMEOUT_MS) {
                    bus.fail(format!("cannot send AddMatch: {e}"));
                }
            }
            Event::Reply { result: Ok(_), .. } => {
                self.state = "watching".into();
                if std::mem::take(&mut self.again) {
                    crate::info!("{}: watching D-Bus signals again", self.label);
                }
            }
            Event::Reply { result: Err(CallError::Disconnected), .. } => {} // the loss follows
            Event::Reply { result: Err(CallError::Timeout), .. } => bus.fail("the bus did not answer AddMatch in time".into()),
            Event::Reply { result: Err(e), .. } => {
                let why = format!("the bus refuses the match rule {:?}: {}", self.rule, e.to_string().trim_end());
                crate::error!("{}: {why}; not retrying until the check changes", self.label);
                bus.stop();
                self.state = why;
            }
            Event::Signal(m) => {
                if !is_about_us(&m) {
                    self.counters.signals += 1;
                    if signal_lines(&m, now.wall, text) {
                        self.counters.cut += 1;
                    }
                }
            }
            Event::Lost { why, .. } => {
                self.again = true;
                self.state = format!("{why}; retrying");
            }
            Event::Skipped { .. } => {}
        }
    }
}

/// The bus driver's signals about our own connection (`NameAcquired` after `Hello`, and
/// `NameLost`): sent to us whatever we match, and not news about the system.
fn is_about_us(m: &Message) -> bool {
    m.sender.as_deref() == Some(bus::NAME) && m.destination.is_some() && matches!(m.member.as_deref(), Some("NameAcquired" | "NameLost"))
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

    fn run(w: &mut Watch, bus: &mut Client<AddMatch>, now: Now, events: Vec<Event<AddMatch>>) -> String {
        let mut text = Vec::new();
        for e in events {
            w.on_event(now, e, bus, &mut text);
        }
        String::from_utf8(text).unwrap()
    }

    fn feed(w: &mut Watch, bus: &mut Client<AddMatch>, now: Now, m: &Message) -> String {
        let mut events = Vec::new();
        bus.received(now.mono, &bytes(m), &mut events);
        run(w, bus, now, events)
    }

    /// Ready: `AddMatch` with the rule, answered; returns the watch and its client.
    fn watching() -> (Watch, Client<AddMatch>) {
        let mut w = Watch::new(RULE.into(), "check dbus power".into());
        let mut bus = ready("the system bus", at(0).mono, true);
        run(&mut w, &mut bus, at(0), vec![Event::Ready { again: false }]);
        let add = sent(&mut bus);
        assert_eq!(add.len(), 1);
        assert_eq!((add[0].member.as_deref(), add[0].body[0].as_str()), (Some("AddMatch"), Some(RULE)));
        assert_eq!(w.state, "connecting to the system bus");
        feed(&mut w, &mut bus, at(2), &from(bus::NAME, Message::reply(add[0].serial, Ok(vec![]))));
        assert_eq!(w.state, "watching");
        (w, bus)
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
    fn a_refused_rule_stops_the_connection_for_good() {
        let mut w = Watch::new("type='signal',sender='not a name'".into(), "check dbus refused".into());
        let mut bus = ready("the system bus", at(0).mono, true);
        run(&mut w, &mut bus, at(0), vec![Event::Ready { again: false }]);
        let add = sent(&mut bus);
        let no = Message::reply(add[0].serial, Err(("org.freedesktop.DBus.Error.MatchRuleInvalid", "bad sender\n")));
        feed(&mut w, &mut bus, at(1), &from(bus::NAME, no));
        assert_eq!(
            w.state,
            "the bus refuses the match rule \"type='signal',sender='not a name'\": org.freedesktop.DBus.Error.MatchRuleInvalid: bad sender"
        );
        assert!(!bus.is_open());
        assert_eq!(bus.next_deadline(), None, "not retried");
    }

    #[test]
    fn an_unanswered_add_match_drops_the_connection_and_dials_again() {
        let mut w = Watch::new(RULE.into(), "check dbus power".into());
        let mut bus = ready("the system bus", at(0).mono, true);
        run(&mut w, &mut bus, at(0), vec![Event::Ready { again: false }]);
        let events = tick(&mut bus, at(CALL_TIMEOUT_MS).mono);
        run(&mut w, &mut bus, at(CALL_TIMEOUT_MS), events);
        assert_eq!(bus.next_deadline(), Some(Instant::from_millis(0)), "the failure is reported at once");
        let events = tick(&mut bus, at(CALL_TIMEOUT_MS + 1).mono);
        assert!(matches!(&events[..], [Event::Lost { retry_in_ms: 1_000, say: true, .. }]), "{events:?}");
        run(&mut w, &mut bus, at(CALL_TIMEOUT_MS + 1), events);
        assert_eq!(w.state, "lost the connection to the system bus: the bus did not answer AddMatch in time; retrying");
        assert!(bus.dial_due(at(CALL_TIMEOUT_MS + 1_001).mono));
    }

    #[test]
    fn after_a_loss_the_rule_is_added_again() {
        let (mut w, mut bus) = watching();
        let mut events = Vec::new();
        bus.closed(at(10).mono, "the peer closed the connection".into(), &mut events);
        run(&mut w, &mut bus, at(10), events);
        assert!(w.again);
        assert!(bus.dial_due(at(1_010).mono));
        bus.dialed(at(1_010).mono, 0, true);
        let auth = bus.output().len();
        bus.wrote(auth);
        let mut events = Vec::new();
        bus.received(at(1_011).mono, b"OK 1\r\n", &mut events);
        let hello = sent(&mut bus);
        bus.received(at(1_012).mono, &bytes(&Message::reply(hello[0].serial, Ok(vec![Value::Str(UNIQUE.into())]))), &mut events);
        assert_eq!(events, [Event::Ready { again: true }]);
        run(&mut w, &mut bus, at(1_012), events);
        let add = sent(&mut bus);
        assert_eq!(add[0].member.as_deref(), Some("AddMatch"));
        feed(&mut w, &mut bus, at(1_013), &from(bus::NAME, Message::reply(add[0].serial, Ok(vec![]))));
        assert_eq!((w.state.as_str(), w.again), ("watching", false));
    }
}
