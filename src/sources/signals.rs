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
//! Only signals broadcast on the bus (or sent to us) are seen, not messages between two other
//! peers: that would take `BecomeMonitor`, which turns the connection into a monitor of every
//! message on the bus.

use std::path::Path;

use mio::Token;

use super::lines::LineSink;
use super::pipes::Pipes;
use super::watch::Listener;
use crate::dbus::conn::{Connection, Event, Redial};
use crate::dbus::message::Message;
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
}

#[derive(Debug)]
struct Link {
    conn: Connection,
    token: Token,
    /// The serial of `AddMatch` until it is answered.
    adding: Option<u32>,
}

/// A check's signal source.
#[derive(Debug)]
pub struct SignalWatch {
    /// The rule sent to `AddMatch`.
    rule: String,
    /// Names the check in the log.
    label: String,
    listener: Listener,
    link: Option<Link>,
    redial: Redial,
    /// What the source is doing, for `status`.
    state: String,
    /// The last problem said, to say it once.
    said: Option<String>,
    next_line: u64,
    counters: SignalCounters,
}

impl SignalWatch {
    /// A source for `rule` (as [`MatchRule::to_add_match`](crate::dbus::rule::MatchRule::to_add_match)
    /// gives it) that wakes `listener`; it connects at the first tick (at `now`).
    pub fn new(rule: String, label: String, listener: Listener, now: Instant) -> Self {
        SignalWatch {
            rule,
            label,
            listener,
            link: None,
            redial: Redial::due_at(now),
            state: "connecting to the system bus".into(),
            said: None,
            next_line: 1,
            counters: SignalCounters::default(),
        }
    }

    /// The match rule.
    pub fn rule(&self) -> &str {
        &self.rule
    }

    /// What the source is doing, for `status`.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Counters so far (including the current connection's).
    pub fn counters(&self) -> SignalCounters {
        let mut c = self.counters;
        if let Some(l) = &self.link {
            c.malformed += l.conn.counters().malformed;
        }
        c
    }

    /// When [`on_tick`](Self::on_tick) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.redial.at().into_iter().chain(self.link.as_ref().and_then(|l| l.conn.next_deadline())).min()
    }

    /// Reads what the bus sent and passes the signals on as lines.
    pub fn on_ready(&mut self, now: Now, pipes: &mut Pipes, sink: &mut impl LineSink) {
        let Some(l) = self.link.as_mut() else { return };
        let events = l.conn.on_ready();
        self.on_events(now, events, pipes, sink);
    }

    /// Connects when due, and times out `AddMatch`.
    pub fn on_tick(&mut self, now: Now, bus: &Path, pipes: &mut Pipes, sink: &mut impl LineSink) {
        if self.redial.take_due(now.mono) {
            self.connect(now.mono, bus, pipes);
            return;
        }
        let Some(l) = self.link.as_mut() else { return };
        let events = l.conn.on_tick(now.mono);
        self.on_events(now, events, pipes, sink);
    }

    fn connect(&mut self, now: Instant, bus: &Path, pipes: &mut Pipes) {
        let link = pipes.register_with(self.listener, |registry, token| {
            Connection::connect(bus, true, registry, token, now).map(|conn| Link { conn, token, adding: None })
        });
        match link {
            Ok(l) => {
                self.link = Some(l);
                self.counters.connects += 1;
            }
            Err(e) => self.lost(now, pipes, format!("cannot reach the system bus at {}: {e}", bus.display())),
        }
    }

    fn on_events(&mut self, now: Now, events: Vec<Event>, pipes: &mut Pipes, sink: &mut impl LineSink) {
        let mut text = Vec::new();
        for e in events {
            match e {
                Event::Ready => {
                    let Some(l) = self.link.as_mut() else { return };
                    let add = Message::add_match(self.rule.clone());
                    match l.conn.call(&add, now.mono, CALL_TIMEOUT_MS) {
                        Ok(serial) => l.adding = Some(serial),
                        Err(e) => return self.lost(now.mono, pipes, format!("cannot send AddMatch: {e}")),
                    }
                }
                Event::Reply { serial, result } => {
                    if self.link.as_ref().and_then(|l| l.adding) != Some(serial) {
                        continue;
                    }
                    match result {
                        Ok(_) => {
                            if let Some(l) = self.link.as_mut() {
                                l.adding = None;
                            }
                            self.redial.succeeded();
                            self.state = "watching".into();
                            if self.said.take().is_some() {
                                crate::info!("{}: watching D-Bus signals again", self.label);
                            }
                        }
                        Err((name, _)) if name == "lookout.Timeout" => {
                            return self.lost(now.mono, pipes, "the bus did not answer AddMatch in time".into());
                        }
                        Err((name, message)) => {
                            let why = format!("the bus refuses the match rule {:?}: {name}: {}", self.rule, message.trim_end());
                            crate::error!("{}: {why}; not retrying until the check changes", self.label);
                            self.close(pipes);
                            self.state = why;
                            return;
                        }
                    }
                }
                Event::Signal(m) => {
                    if is_about_us(&m) {
                        continue;
                    }
                    self.counters.signals += 1;
                    if signal_lines(&m, now.wall_ms, &mut text) {
                        self.counters.cut += 1;
                    }
                }
                Event::Closed(why) => {
                    self.pass_on(&mut text, sink);
                    return self.lost(now.mono, pipes, why);
                }
            }
        }
        self.pass_on(&mut text, sink);
    }

    fn pass_on(&mut self, text: &mut Vec<u8>, sink: &mut impl LineSink) {
        if text.is_empty() {
            return;
        }
        self.counters.bytes += text.len() as u64;
        let count = crate::detect::log::count_lines(text);
        sink.lines(text, self.next_line, count);
        self.next_line += count;
        text.clear();
    }

    fn close(&mut self, pipes: &mut Pipes) {
        if let Some(l) = self.link.take() {
            self.counters.malformed += l.conn.counters().malformed;
            l.conn.close(pipes.registry());
            pipes.forget(l.token);
        }
    }

    fn lost(&mut self, now: Instant, pipes: &mut Pipes, why: String) {
        if self.link.is_some() {
            self.counters.disconnects += 1;
        }
        self.close(pipes);
        if self.said.as_deref() != Some(why.as_str()) {
            crate::warn!("{}: {why}; retrying", self.label);
            self.said = Some(why.clone());
        }
        self.state = format!("{why}; retrying");
        self.redial.failed(now);
    }

    /// Closes the connection.
    pub fn stop(&mut self, pipes: &mut Pipes) {
        self.close(pipes);
        self.redial.cancel();
    }
}

/// The bus driver's signals about our own connection (`NameAcquired` after `Hello`, and
/// `NameLost`): sent to us whatever we match, and not news about the system.
fn is_about_us(m: &Message) -> bool {
    m.sender.as_deref() == Some("org.freedesktop.DBus")
        && m.destination.is_some()
        && matches!(m.member.as_deref(), Some("NameAcquired" | "NameLost"))
}
