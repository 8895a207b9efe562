//! One non-blocking D-Bus connection, driven by the reactor: connect, SASL EXTERNAL, `Hello` on a
//! bus (not on a peer-to-peer socket such as systemd's private one), then method calls with
//! serials and timeouts, and signals. Reading and writing never block; a message that does not
//! decode is counted and skipped (its length is known from the header), a header that makes
//! framing impossible closes the connection.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::Path;

use mio::net::UnixStream;
use mio::{Interest, Registry, Token};

use super::message::{FIXED_HEADER, Kind, MAX_MESSAGE, Message, decode, message_len};
use super::sasl;
use super::wire::Value;
use crate::time::Instant;

/// Time allowed for connecting and authenticating.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Most bytes waiting to be written before the peer is considered stuck.
pub const MAX_OUTPUT: usize = 4 * MAX_MESSAGE;

/// When to connect again after a connection was lost or could not be made: 1 s after the first
/// failure, doubling to 30 s, and back to 1 s once a connection works. Every D-Bus client of the
/// agent (systemd, the Mender client, `dbus` checks) redials this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redial {
    at: Option<Instant>,
    delay_ms: u64,
}

impl Redial {
    /// First delay.
    pub const FIRST_MS: u64 = 1_000;
    /// Longest delay.
    pub const MAX_MS: u64 = 30_000;

    /// Nothing scheduled.
    pub fn idle() -> Self {
        Redial { at: None, delay_ms: Self::FIRST_MS }
    }

    /// A first dial due at `now`.
    pub fn due_at(now: Instant) -> Self {
        Redial { at: Some(now), delay_ms: Self::FIRST_MS }
    }

    /// A connection failed at `now`: schedules the next dial; returns its delay.
    pub fn failed(&mut self, now: Instant) -> u64 {
        let delay = self.delay_ms;
        self.at = Some(now.plus_ms(delay));
        self.delay_ms = (delay * 2).min(Self::MAX_MS);
        delay
    }

    /// A connection works: the next failure waits the first delay again.
    pub fn succeeded(&mut self) {
        self.delay_ms = Self::FIRST_MS;
    }

    /// When the next dial is due, if one is scheduled.
    pub fn at(&self) -> Option<Instant> {
        self.at
    }

    /// Whether a dial is due at `now`; if so it is no longer scheduled (the caller dials).
    pub fn take_due(&mut self, now: Instant) -> bool {
        let due = self.at.is_some_and(|t| t <= now);
        if due {
            self.at = None;
        }
        due
    }

    /// Drops a scheduled dial (nothing needs the connection any more, or it is being made).
    pub fn cancel(&mut self) {
        self.at = None;
    }
}

/// What happened on a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Authenticated (and, on a bus, `Hello` answered): calls can be made.
    Ready,
    /// The answer to a call: its body, or the error name and message.
    Reply {
        /// The call's serial.
        serial: u32,
        /// The reply.
        result: Result<Vec<Value>, (String, String)>,
    },
    /// A signal.
    Signal(Message),
    /// The connection is gone; the reason.
    Closed(String),
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Auth,
    Hello { serial: u32 },
    Ready,
    Closed,
}

/// Counters of a connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnCounters {
    /// Messages received.
    pub received: u64,
    /// Messages that did not decode (skipped).
    pub malformed: u64,
    /// Calls that got no answer in time.
    pub timeouts: u64,
}

/// A connection to a bus or to a peer.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    phase: Phase,
    is_bus: bool,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Messages waiting for the handshake to finish.
    queued: Vec<Vec<u8>>,
    next_serial: u32,
    pending: HashMap<u32, Instant>,
    handshake_deadline: Option<Instant>,
    /// A write failed outside `on_ready`; reported by the next `on_ready` or `on_tick`.
    failed: Option<String>,
    counters: ConnCounters,
}

impl Connection {
    /// Connects to the socket at `path` and starts authenticating. `is_bus`: a bus daemon (send
    /// `Hello`), else a peer (systemd's private socket).
    pub fn connect(path: &Path, is_bus: bool, registry: &Registry, token: Token, now: Instant) -> io::Result<Connection> {
        let mut stream = UnixStream::connect(path)?;
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let uid = nix::unistd::getuid().as_raw();
        Ok(Connection {
            stream,
            phase: Phase::Auth,
            is_bus,
            input: Vec::new(),
            output: sasl::hello(uid),
            queued: Vec::new(),
            next_serial: 1,
            pending: HashMap::new(),
            handshake_deadline: Some(now.plus_ms(HANDSHAKE_TIMEOUT_MS)),
            failed: None,
            counters: ConnCounters::default(),
        })
    }

    /// Counters so far.
    pub fn counters(&self) -> ConnCounters {
        self.counters
    }

    /// Whether calls are answered now.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Removes the connection from the poll before it is dropped.
    pub fn close(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.stream);
    }

    fn serial(&mut self) -> u32 {
        let s = self.next_serial;
        self.next_serial = self.next_serial.checked_add(1).unwrap_or(1);
        s
    }

    /// Sends a method call that must be answered within `timeout_ms`; returns its serial.
    /// Calls made before the handshake is done are sent after it.
    pub fn call(&mut self, msg: &Message, now: Instant, timeout_ms: u64) -> Result<u32, String> {
        let serial = self.serial();
        let bytes = msg.encode(serial).map_err(|e| e.to_string())?;
        self.pending.insert(serial, now.plus_ms(timeout_ms));
        if self.phase == Phase::Ready {
            self.output.extend_from_slice(&bytes);
            // The socket is edge-triggered: write now, or no event may come to do it later.
            if let Err(e) = self.flush() {
                self.failed.get_or_insert(e);
            }
        } else {
            self.queued.push(bytes);
        }
        Ok(serial)
    }

    /// The earliest call or handshake deadline (at once if a write failed).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.failed.is_some() {
            return Some(Instant::from_millis(0));
        }
        self.pending.values().copied().chain(self.handshake_deadline).min()
    }

    /// Times out calls and the handshake whose deadline has passed.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(why) = self.failed.take() {
            self.phase = Phase::Closed;
            events.push(Event::Closed(why));
            return events;
        }
        if self.handshake_deadline.is_some_and(|d| d <= now) {
            let why = match self.phase {
                Phase::Hello { .. } => "no answer to Hello in time (does the bus's policy let us receive?)",
                _ => "no answer to the authentication in time",
            };
            self.phase = Phase::Closed;
            events.push(Event::Closed(why.into()));
            return events;
        }
        let late: Vec<u32> = self.pending.iter().filter(|(_, d)| **d <= now).map(|(s, _)| *s).collect();
        for serial in late {
            self.pending.remove(&serial);
            self.counters.timeouts += 1;
            events.push(Event::Reply { serial, result: Err(("lookout.Timeout".into(), "no reply in time".into())) });
        }
        events
    }

    /// Does the I/O the socket allows now and returns what happened.
    pub fn on_ready(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(why) = self.failed.take() {
            self.phase = Phase::Closed;
            events.push(Event::Closed(why));
            return events;
        }
        if self.phase == Phase::Closed {
            return events;
        }
        if let Err(e) = self.flush() {
            self.phase = Phase::Closed;
            events.push(Event::Closed(e));
            return events;
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.phase = Phase::Closed;
                    events.push(Event::Closed("the peer closed the connection".into()));
                    return events;
                }
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    if let Err(e) = self.process(&mut events) {
                        self.phase = Phase::Closed;
                        events.push(Event::Closed(e));
                        return events;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.phase = Phase::Closed;
                    events.push(Event::Closed(format!("read failed: {e}")));
                    return events;
                }
            }
        }
        if let Err(e) = self.flush() {
            self.phase = Phase::Closed;
            events.push(Event::Closed(e));
        }
        events
    }

    fn flush(&mut self) -> Result<(), String> {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => return Err("the peer stopped reading".into()),
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("write failed: {e}")),
            }
        }
        if self.output.len() > MAX_OUTPUT {
            return Err(format!("the peer does not read ({} bytes waiting)", self.output.len()));
        }
        Ok(())
    }

    /// Consumes what is complete in the input buffer.
    fn process(&mut self, events: &mut Vec<Event>) -> Result<(), String> {
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
        while self.input.len() >= FIXED_HEADER {
            let head: [u8; FIXED_HEADER] = self.input[..FIXED_HEADER].try_into().map_err(|_| "header".to_string())?;
            let len = message_len(&head).map_err(|e| format!("unreadable message header: {e}"))?;
            if self.input.len() < len {
                break;
            }
            let bytes: Vec<u8> = self.input.drain(..len).collect();
            self.counters.received += 1;
            match decode(&bytes) {
                Ok(m) => self.dispatch(m, events),
                Err(e) => {
                    self.counters.malformed += 1;
                    crate::warn!("D-Bus: skipped a malformed message: {e}");
                }
            }
        }
        Ok(())
    }

    fn become_ready(&mut self, events: &mut Vec<Event>) {
        self.phase = Phase::Ready;
        self.handshake_deadline = None;
        for q in std::mem::take(&mut self.queued) {
            self.output.extend(q);
        }
        events.push(Event::Ready);
    }

    fn dispatch(&mut self, m: Message, events: &mut Vec<Event>) {
        match m.kind {
            Kind::Return | Kind::Error => {
                let Some(serial) = m.reply_serial else { return };
                if let Phase::Hello { serial: hello } = self.phase {
                    if serial == hello {
                        if m.kind == Kind::Return {
                            self.become_ready(events);
                        } else {
                            self.phase = Phase::Closed;
                            events.push(Event::Closed(format!("Hello refused: {}", m.error_name.unwrap_or_default())));
                        }
                        return;
                    }
                }
                if self.pending.remove(&serial).is_none() {
                    return; // late answer to a call that timed out
                }
                let result = if m.kind == Kind::Return {
                    Ok(m.body)
                } else {
                    Err((m.error_name.unwrap_or_default(), m.body.first().and_then(|v| v.as_str()).unwrap_or_default().to_string()))
                };
                events.push(Event::Reply { serial, result });
            }
            Kind::Signal => events.push(Event::Signal(m)),
            // Nobody calls methods on us; a bus would answer the caller with an error itself
            // if we had no name, and we have nothing to offer.
            Kind::Call => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redial_doubles_to_thirty_seconds_and_starts_over_after_a_success() {
        let mut r = Redial::idle();
        let t0 = Instant::from_millis(1_000);
        assert_eq!(r.at(), None);
        let delays: Vec<u64> = (0..7).map(|_| r.failed(t0)).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
        assert_eq!(r.at(), Some(t0.plus_ms(30_000)));
        assert!(!r.take_due(t0.plus_ms(29_999)));
        assert!(r.take_due(t0.plus_ms(30_000)));
        assert_eq!(r.at(), None, "a due dial is taken once");
        r.succeeded();
        assert_eq!(r.failed(t0), 1_000);
        r.cancel();
        assert_eq!(r.at(), None);
        assert!(Redial::due_at(t0).take_due(t0));
    }
}
