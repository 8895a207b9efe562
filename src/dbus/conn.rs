//! One D-Bus connection's protocol without I/O: the SASL EXTERNAL handshake, `Hello` on a bus
//! (not on a peer-to-peer socket such as systemd's private one), serials, framing of the input
//! into messages, and the bytes to send.
//!
//! The driver moves the bytes: it writes what [`Conn::output`] holds and reports how much with
//! [`Conn::wrote`], hands over what it reads with [`Conn::received`], and says when the socket is
//! gone with [`Conn::closed`]. Time comes in as `now`. Calls and their answers are matched by
//! the caller ([`super::client::Client`]); this core only numbers messages and frames replies.
//!
//! Bounds: the input holds at most one message of [`MAX_MESSAGE`] plus one read; a message that
//! frames but does not decode is skipped; a longer one that still frames (up to the
//! specification's [`MAX_FRAMED`]) is skipped without being buffered, so a peer cannot cut a
//! connection (and the signals it would have carried) with one big message; a header that makes
//! framing impossible closes the connection. The output is bounded by [`MAX_OUTPUT`]: a peer that does
//! not read is dropped. Nothing here panics on input.

use std::fmt;

use super::message::{FIXED_HEADER, Kind, MAX_MESSAGE, Message, decode, message_len};
use super::sasl;
use super::wire::{Value, WireError};
use crate::time::Instant;

/// The bus driver's interface for monitors.
pub const MONITORING: &str = "org.freedesktop.DBus.Monitoring";
/// Time allowed for connecting and authenticating.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Most bytes waiting to be written before the peer is considered stuck.
pub const MAX_OUTPUT: usize = 4 * MAX_MESSAGE;
/// The longest message the specification allows (128 MiB): a longer one cannot be framed.
pub const MAX_FRAMED: usize = 1 << 27;

/// Why a call got no answer from its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer within the call's timeout.
    Timeout,
    /// The connection was lost before the answer came (or there was none to send it on).
    Disconnected,
    /// The message could not be encoded (the reason).
    Unsendable(String),
    /// The peer answered with an error.
    Error {
        /// The D-Bus error name (`org.freedesktop.DBus.Error.ServiceUnknown`, ...).
        name: String,
        /// Its text (empty if it had none).
        message: String,
    },
}

impl CallError {
    /// The D-Bus error name, if the peer answered with one.
    pub fn name(&self) -> Option<&str> {
        match self {
            CallError::Error { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Written like a D-Bus error, so that every failed call reads the same in the log.
            CallError::Timeout => write!(f, "lookout.Timeout: no reply in time"),
            CallError::Disconnected => write!(f, "lookout.Disconnected: the connection is gone"),
            CallError::Unsendable(why) => write!(f, "lookout.Unsendable: {why}"),
            CallError::Error { name, message } => write!(f, "{name}: {message}"),
        }
    }
}

/// What the connection learnt from the bytes it was given.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnEvent {
    /// Authenticated (and, on a bus, `Hello` answered): calls are answered from now on.
    Ready,
    /// The answer to the message with serial `serial`: its body, or the peer's error.
    Reply {
        /// The call's serial.
        serial: u32,
        /// The reply.
        result: Result<Vec<Value>, CallError>,
    },
    /// A signal (broadcast, or sent to us).
    Signal(Message),
    /// A message the bus copied to us that was not for us: any message once the connection is
    /// a monitor, or one addressed to another peer (an eavesdropping match rule).
    Observed(Message),
    /// A message that frames but does not decode, or is over [`MAX_MESSAGE`], was skipped.
    Skipped(String),
    /// The connection is unusable; the reason. Nothing more comes from it.
    Closed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Auth,
    Hello { serial: u32 },
    Ready,
    Closed,
}

/// Counters of one connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnCounters {
    /// Messages received (skipped ones included).
    pub received: u64,
    /// Messages that framed but did not decode (skipped).
    pub malformed: u64,
    /// Messages over [`MAX_MESSAGE`] (skipped unread).
    pub oversized: u64,
}

/// Whether the connection is, or is becoming, a monitor (`BecomeMonitor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Monitor {
    /// A normal connection.
    No,
    /// `BecomeMonitor` was sent with this serial: its reply turns the connection into a
    /// monitor before the messages after it (in the same read) are dispatched.
    Asked(u32),
    /// A monitor: every message is a copy of someone else's, and nothing may be sent.
    Yes,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Conn {
    phase: Phase,
    is_bus: bool,
    /// Our unique name, from `Hello`'s answer (a bus only).
    unique: Option<String>,
    monitor: Monitor,
    /// Received bytes not yet consumed: the SASL answer, then the start of the next message.
    input: Vec<u8>,
    /// Bytes of an over-long message still to be thrown away as they arrive.
    skipping: usize,
    /// Bytes to write, in order.
    output: Vec<u8>,
    /// Messages made before the handshake ended, sent right after it.
    queued: Vec<u8>,
    /// The next serial; never 0.
    next_serial: u32,
    handshake_deadline: Option<Instant>,
    /// Set by the driver when the socket failed outside a read; reported by the next step.
    failed: Option<String>,
    counters: ConnCounters,
}

impl Conn {
    /// A connection whose socket just connected at `now`, authenticating as `uid`. `is_bus`: a
    /// bus daemon (send `Hello`), else a peer.
    pub fn new(uid: u32, is_bus: bool, now: Instant) -> Conn {
        Conn {
            phase: Phase::Auth,
            is_bus,
            unique: None,
            monitor: Monitor::No,
            input: Vec::new(),
            skipping: 0,
            output: sasl::hello(uid),
            queued: Vec::new(),
            next_serial: 1,
            handshake_deadline: Some(now.plus_ms(HANDSHAKE_TIMEOUT_MS)),
            failed: None,
            counters: ConnCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> ConnCounters {
        self.counters
    }

    /// Whether calls are answered now.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Whether the peer is a bus daemon (messages name a destination; match rules apply).
    pub fn is_bus(&self) -> bool {
        self.is_bus
    }

    /// Our unique name on the bus, once `Hello` was answered.
    pub fn unique_name(&self) -> Option<&str> {
        self.unique.as_deref()
    }

    /// Whether the connection is a monitor (it receives copies and cannot send).
    pub fn is_monitor(&self) -> bool {
        self.monitor == Monitor::Yes
    }

    /// Queues `BecomeMonitor(rules, 0)`; returns its serial. Its reply makes the connection a
    /// monitor at exactly that point of the input.
    pub fn become_monitor(&mut self, rules: Vec<String>) -> Result<u32, CallError> {
        let rules = Value::Array(super::wire::Type::Str, rules.into_iter().map(Value::Str).collect());
        let msg = Message::call(
            Some(super::message::bus::NAME),
            super::message::bus::PATH,
            MONITORING,
            "BecomeMonitor",
            vec![rules, Value::U32(0)],
        );
        let serial = self.send(&msg)?;
        self.monitor = Monitor::Asked(serial);
        Ok(serial)
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    fn serial(&mut self) -> u32 {
        let s = self.next_serial;
        self.next_serial = self.next_serial.checked_add(1).unwrap_or(1);
        s
    }

    /// Queues `msg` for sending; returns its serial. Messages made before the handshake ends
    /// are sent after it.
    pub fn send(&mut self, msg: &Message) -> Result<u32, CallError> {
        if self.phase == Phase::Closed {
            return Err(CallError::Disconnected);
        }
        if self.monitor == Monitor::Yes {
            return Err(CallError::Unsendable("a monitor connection cannot send".into()));
        }
        let serial = self.serial();
        let bytes = msg.encode(serial).map_err(|e| CallError::Unsendable(e.to_string()))?;
        if self.phase == Phase::Ready {
            self.output.extend_from_slice(&bytes);
        } else {
            self.queued.extend_from_slice(&bytes);
        }
        Ok(serial)
    }

    /// The bytes waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// `n` bytes of [`output`](Self::output) were written.
    pub fn wrote(&mut self, n: usize) {
        self.output.drain(..n.min(self.output.len()));
    }

    /// The driver could write no more for now: a peer that leaves more than [`MAX_OUTPUT`]
    /// unread is stuck, and the connection fails.
    pub fn check_output(&mut self) {
        if self.output.len() > MAX_OUTPUT {
            self.fail(format!("the peer does not read ({} bytes waiting)", self.output.len()));
        }
    }

    /// The socket failed outside a read (a write, say); the next [`on_tick`](Self::on_tick) or
    /// [`received`](Self::received) reports it, and [`next_deadline`](Self::next_deadline) is at once.
    pub fn fail(&mut self, why: String) {
        if self.phase != Phase::Closed {
            self.failed.get_or_insert(why);
        }
    }

    /// The earliest time [`on_tick`](Self::on_tick) has something to do: the handshake's
    /// deadline, or at once after a failure.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.failed.is_some() {
            return Some(Instant::from_millis(0));
        }
        self.handshake_deadline.filter(|_| self.phase != Phase::Closed)
    }

    /// Reports a failure, or a handshake not finished in time.
    pub fn on_tick(&mut self, now: Instant, events: &mut Vec<ConnEvent>) {
        if self.report_failure(events) {
            return;
        }
        if self.phase != Phase::Closed && self.handshake_deadline.is_some_and(|d| d <= now) {
            let why = match self.phase {
                Phase::Hello { .. } => "no answer to Hello in time (does the bus's policy let us receive?)",
                _ => "no answer to the authentication in time",
            };
            self.closed(why.into(), events);
        }
    }

    fn report_failure(&mut self, events: &mut Vec<ConnEvent>) -> bool {
        match self.failed.take() {
            Some(why) => {
                self.closed(why, events);
                true
            }
            None => false,
        }
    }

    /// The socket is gone (end of file, or an error; `why` says which).
    pub fn closed(&mut self, why: String, events: &mut Vec<ConnEvent>) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.handshake_deadline = None;
            self.failed = None;
            events.push(ConnEvent::Closed(why));
        }
    }

    /// Consumes `bytes` read from the socket.
    pub fn received(&mut self, mut bytes: &[u8], events: &mut Vec<ConnEvent>) {
        if self.report_failure(events) || self.phase == Phase::Closed {
            return;
        }
        let skip = self.skipping.min(bytes.len());
        self.skipping -= skip;
        bytes = &bytes[skip..];
        self.input.extend_from_slice(bytes);
        if let Err(why) = self.process(events) {
            self.closed(why, events);
        }
    }

    /// Consumes what is complete in the input.
    fn process(&mut self, events: &mut Vec<ConnEvent>) -> Result<(), String> {
        if self.phase == Phase::Auth {
            match sasl::on_bytes(&self.input)? {
                sasl::Step::NeedMore => return Ok(()),
                sasl::Step::Done { leftover } => {
                    self.input = leftover;
                    self.output.extend_from_slice(sasl::BEGIN);
                    if self.is_bus {
                        let serial = self.serial();
                        let hello = Message::to_bus("Hello", vec![]);
                        self.output.extend(hello.encode(serial).map_err(|e| e.to_string())?);
                        self.phase = Phase::Hello { serial };
                    } else {
                        self.become_ready(events);
                    }
                }
            }
        }
        while self.phase != Phase::Closed && self.input.len() >= FIXED_HEADER {
            let head: [u8; FIXED_HEADER] = self.input[..FIXED_HEADER].try_into().map_err(|_| "header".to_string())?;
            let len = frame_len(&head)?;
            if len > MAX_MESSAGE {
                self.skip_oversized(len, events);
                continue;
            }
            if self.input.len() < len {
                break;
            }
            self.counters.received += 1;
            match decode(&self.input[..len]) {
                Ok(m) => self.dispatch(m, events),
                Err(e) => {
                    self.counters.malformed += 1;
                    events.push(ConnEvent::Skipped(format!("a malformed message: {e}")));
                }
            }
            self.input.drain(..len);
        }
        Ok(())
    }

    /// Throws away a message of `len` bytes (over [`MAX_MESSAGE`]) without buffering it.
    fn skip_oversized(&mut self, len: usize, events: &mut Vec<ConnEvent>) {
        self.counters.received += 1;
        self.counters.oversized += 1;
        events.push(ConnEvent::Skipped(format!("a message of {len} bytes (more than {MAX_MESSAGE})")));
        let here = len.min(self.input.len());
        self.input.drain(..here);
        self.skipping = len - here;
    }

    fn become_ready(&mut self, events: &mut Vec<ConnEvent>) {
        self.phase = Phase::Ready;
        self.handshake_deadline = None;
        self.output.append(&mut self.queued);
        events.push(ConnEvent::Ready);
    }

    fn dispatch(&mut self, m: Message, events: &mut Vec<ConnEvent>) {
        if self.monitor == Monitor::Yes || self.for_someone_else(&m) {
            events.push(ConnEvent::Observed(m));
            return;
        }
        match m.kind {
            Kind::Return | Kind::Error => {
                let Some(serial) = m.reply_serial else { return };
                if let Phase::Hello { serial: hello } = self.phase {
                    if serial == hello {
                        if m.kind == Kind::Return {
                            self.unique = m.body.first().and_then(Value::as_str).map(str::to_string);
                            self.become_ready(events);
                        } else {
                            let name = m.error_name.unwrap_or_default();
                            self.closed(format!("Hello refused: {name}"), events);
                        }
                        return;
                    }
                }
                if self.monitor == Monitor::Asked(serial) {
                    self.monitor = if m.kind == Kind::Return { Monitor::Yes } else { Monitor::No };
                }
                let result = if m.kind == Kind::Return {
                    Ok(m.body)
                } else {
                    let message = m.body.first().and_then(Value::as_str).unwrap_or_default().to_string();
                    Err(CallError::Error { name: m.error_name.unwrap_or_default(), message })
                };
                events.push(ConnEvent::Reply { serial, result });
            }
            Kind::Signal => events.push(ConnEvent::Signal(m)),
            // Nobody calls methods on us; a bus would answer the caller with an error itself
            // if we had no name, and we have nothing to offer.
            Kind::Call => {}
        }
    }

    /// Whether `m` is addressed to another peer (an eavesdropping rule copied it to us): its
    /// reply serial is not one of ours, even if the number is.
    fn for_someone_else(&self, m: &Message) -> bool {
        match (&m.destination, &self.unique) {
            (Some(to), Some(us)) => to != us,
            _ => false,
        }
    }
}

/// The length of the message that starts with `head`: an error when it cannot be framed (a
/// bad header, or longer than the specification allows); lengths over [`MAX_MESSAGE`] are
/// returned, for skipping.
fn frame_len(head: &[u8; FIXED_HEADER]) -> Result<usize, String> {
    match message_len(head) {
        Ok(n) => Ok(n),
        Err(WireError::TooLarge(n)) if n <= MAX_FRAMED => Ok(n),
        Err(e) => Err(format!("unreadable message header: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dbus::message::Message;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A bus connection through SASL and `Hello`, with the output taken.
    fn ready_bus() -> Conn {
        let mut c = Conn::new(0, true, t(0));
        assert_eq!(c.output(), b"\0AUTH EXTERNAL 30\r\n");
        let n = c.output().len();
        c.wrote(n);
        let mut ev = Vec::new();
        c.received(b"OK 0123\r\n", &mut ev);
        assert!(ev.is_empty());
        let out = c.output().to_vec();
        assert!(out.starts_with(b"BEGIN\r\n"));
        let hello = decode(&out[7..]).unwrap();
        assert_eq!((hello.member.as_deref(), hello.serial), (Some("Hello"), 1));
        c.wrote(out.len());
        c.received(&Message::reply(1, Ok(vec![Value::Str(":1.7".into())])).encode(1).unwrap(), &mut ev);
        assert_eq!(ev, [ConnEvent::Ready]);
        c
    }

    #[test]
    fn a_peer_is_ready_after_authentication_and_a_bus_after_hello() {
        let mut c = Conn::new(1000, false, t(0));
        let mut ev = Vec::new();
        c.received(b"OK 1234\r\n", &mut ev);
        assert_eq!(ev, [ConnEvent::Ready]);
        assert!(c.is_ready());
        let c = ready_bus();
        assert!(c.is_ready());
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn messages_before_the_handshake_are_sent_after_it() {
        let mut c = Conn::new(0, false, t(0));
        let serial = c.send(&Message::to_bus("ListNames", vec![])).unwrap();
        assert_eq!(c.output(), b"\0AUTH EXTERNAL 30\r\n", "held back");
        let n = c.output().len();
        c.wrote(n);
        let mut ev = Vec::new();
        c.received(b"OK 1\r\n", &mut ev);
        let out = c.output();
        assert_eq!(&out[..7], b"BEGIN\r\n");
        assert_eq!(decode(&out[7..]).unwrap().serial, serial);
    }

    #[test]
    fn replies_and_errors_are_framed_across_reads() {
        let mut c = ready_bus();
        let a = c.send(&Message::to_bus("GetId", vec![])).unwrap();
        let b = c.send(&Message::to_bus("GetId", vec![])).unwrap();
        let mut bytes = Message::reply(a, Ok(vec![Value::U32(5)])).encode(9).unwrap();
        bytes.extend(Message::reply(b, Err(("x.Failed", "no"))).encode(10).unwrap());
        let mut ev = Vec::new();
        for chunk in bytes.chunks(3) {
            c.received(chunk, &mut ev);
        }
        assert_eq!(
            ev,
            [
                ConnEvent::Reply { serial: a, result: Ok(vec![Value::U32(5)]) },
                ConnEvent::Reply { serial: b, result: Err(CallError::Error { name: "x.Failed".into(), message: "no".into() }) },
            ]
        );
        assert_eq!(c.counters().received, 3, "Hello's answer too");
    }

    #[test]
    fn an_unanswered_handshake_closes_at_its_deadline() {
        let mut c = Conn::new(0, true, t(100));
        assert_eq!(c.next_deadline(), Some(t(100 + HANDSHAKE_TIMEOUT_MS)));
        let mut ev = Vec::new();
        c.on_tick(t(100 + HANDSHAKE_TIMEOUT_MS - 1), &mut ev);
        assert!(ev.is_empty());
        c.received(b"OK 1\r\n", &mut ev);
        c.on_tick(t(100 + HANDSHAKE_TIMEOUT_MS), &mut ev);
        assert_eq!(ev, [ConnEvent::Closed("no answer to Hello in time (does the bus's policy let us receive?)".into())]);
        assert!(c.is_closed());
        assert_eq!(c.send(&Message::to_bus("GetId", vec![])), Err(CallError::Disconnected));
    }

    #[test]
    fn a_refused_authentication_or_hello_closes() {
        let mut c = Conn::new(0, true, t(0));
        let mut ev = Vec::new();
        c.received(b"REJECTED EXTERNAL\r\n", &mut ev);
        assert_eq!(ev, [ConnEvent::Closed("authentication refused: REJECTED EXTERNAL".into())]);
        let mut c = Conn::new(0, true, t(0));
        let mut ev = Vec::new();
        c.received(b"OK 1\r\n", &mut ev);
        c.received(&Message::reply(1, Err(("org.freedesktop.DBus.Error.AccessDenied", ""))).encode(1).unwrap(), &mut ev);
        assert_eq!(ev, [ConnEvent::Closed("Hello refused: org.freedesktop.DBus.Error.AccessDenied".into())]);
    }

    #[test]
    fn a_malformed_message_is_skipped_and_the_next_one_read() {
        let mut c = ready_bus();
        let mut bad = Message::signal("/a", "x.y", "Z", vec![Value::Bool(true)]).encode(3).unwrap();
        let n = bad.len();
        bad[n - 4] = 2;
        bad.extend(Message::signal("/a", "x.y", "Z", vec![]).encode(4).unwrap());
        let mut ev = Vec::new();
        c.received(&bad, &mut ev);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0], ConnEvent::Skipped("a malformed message: boolean with value 2".into()));
        assert!(matches!(&ev[1], ConnEvent::Signal(m) if m.serial == 4));
        assert_eq!(c.counters().malformed, 1);
    }

    #[test]
    fn a_reply_to_another_peer_is_observed_even_with_our_serial() {
        let mut c = ready_bus();
        assert_eq!(c.unique_name(), Some(":1.7"));
        let ours = c.send(&Message::add_match("type='signal',eavesdrop='true'".into())).unwrap();
        let mut theirs = Message::reply(ours, Ok(vec![]));
        theirs.destination = Some(":1.9".into());
        let mut to_us = Message::reply(ours, Ok(vec![]));
        to_us.destination = Some(":1.7".into());
        let mut ev = Vec::new();
        c.received(&theirs.encode(5).unwrap(), &mut ev);
        c.received(&to_us.encode(6).unwrap(), &mut ev);
        assert!(matches!(&ev[0], ConnEvent::Observed(m) if m.destination.as_deref() == Some(":1.9")), "{ev:?}");
        assert_eq!(ev[1], ConnEvent::Reply { serial: ours, result: Ok(vec![]) });
    }

    #[test]
    fn a_refused_become_monitor_leaves_a_normal_connection() {
        let mut c = ready_bus();
        let serial = c.become_monitor(vec!["type='signal'".into()]).unwrap();
        let mut ev = Vec::new();
        c.received(&Message::reply(serial, Err(("org.freedesktop.DBus.Error.AccessDenied", "no"))).encode(5).unwrap(), &mut ev);
        assert!(!c.is_monitor());
        assert!(c.send(&Message::add_match("type='signal'".into())).is_ok(), "it can still ask for a rule");
    }

    #[test]
    fn an_unframeable_header_closes() {
        let mut c = ready_bus();
        let mut ev = Vec::new();
        c.received(b"Xgarbage-garbage-garbage", &mut ev);
        assert_eq!(ev, [ConnEvent::Closed("unreadable message header: bad header: endianness byte 0x58".into())]);
        c.received(&Message::signal("/a", "x.y", "Z", vec![]).encode(4).unwrap(), &mut ev);
        assert_eq!(ev.len(), 1, "nothing after the close");
    }

    #[test]
    fn an_oversized_message_is_skipped_unbuffered_and_the_next_one_read() {
        let mut c = ready_bus();
        // A signal whose string is MAX_MESSAGE bytes: encode() refuses it, so its bytes are an
        // empty string's with the lengths patched, and the string sent in pieces.
        let small = Message::signal("/a", "x.y", "Big", vec![Value::Str(String::new())]).encode(5).unwrap();
        let mut bytes = small.clone();
        let body = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize + MAX_MESSAGE;
        bytes[4..8].copy_from_slice(&(body as u32).to_le_bytes());
        let str_at = small.len() - 5;
        bytes[str_at..str_at + 4].copy_from_slice(&(MAX_MESSAGE as u32).to_le_bytes());
        bytes.truncate(str_at + 4);
        let total = small.len() + MAX_MESSAGE;
        let mut ev = Vec::new();
        c.received(&bytes, &mut ev);
        assert_eq!(ev, [ConnEvent::Skipped(format!("a message of {total} bytes (more than {MAX_MESSAGE})"))]);
        let rest = total - bytes.len();
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = rest - 1;
        while left > 0 {
            let n = left.min(chunk.len());
            c.received(&chunk[..n], &mut ev);
            left -= n;
            assert!(c.input.is_empty(), "not buffered");
        }
        let mut tail = vec![0u8];
        tail.extend(Message::signal("/a", "x.y", "After", vec![]).encode(6).unwrap());
        c.received(&tail, &mut ev);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(matches!(&ev[1], ConnEvent::Signal(m) if m.member.as_deref() == Some("After")));
        assert_eq!(c.counters().oversized, 1);
    }

    #[test]
    fn a_peer_that_does_not_read_fails_the_connection() {
        let mut c = ready_bus();
        let s = Value::Str("x".repeat(MAX_MESSAGE / 2));
        while c.output().len() <= MAX_OUTPUT {
            c.send(&Message::to_bus("Ping", vec![s.clone()])).unwrap();
        }
        c.check_output();
        assert_eq!(c.next_deadline(), Some(Instant::from_millis(0)), "reported at once");
        let mut ev = Vec::new();
        c.on_tick(t(1), &mut ev);
        assert!(matches!(&ev[..], [ConnEvent::Closed(why)] if why.starts_with("the peer does not read (")));
    }
}
