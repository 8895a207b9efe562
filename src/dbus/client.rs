//! The D-Bus client every part of the agent uses (systemd's unit states, the Mender client's
//! token, each `dbus` check's signals), without I/O: a connection's life (dial, handshake, lost,
//! dial again on the shared [`Redial`] schedule), calls with timeouts matched to what they were
//! for, and which troubles are worth saying (each once, until something else happens).
//!
//! The driver ([`super::driver::BusClient`]) does the socket work and logs; this part decides,
//! from bytes and events at the times it is given, so its tests are dialogues at exact times.
//! Every call gets exactly one outcome: its reply, the peer's error, [`CallError::Timeout`], or
//! [`CallError::Disconnected`] (the connection went first). A reply after its timeout is counted
//! and dropped.

pub use super::conn::CallError;
use super::conn::{Conn, ConnEvent};
use super::message::Message;
use super::wire::Value;
use crate::time::Instant;

/// When to connect again after a connection was lost or could not be made: 1 s after the first
/// failure, doubling to 30 s, and back to 1 s once a connection works.
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

    /// A dial at `now` (unless one is scheduled already).
    pub fn soon(&mut self, now: Instant) {
        self.at.get_or_insert(now);
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

    /// Drops a scheduled dial (nothing needs the connection any more).
    pub fn cancel(&mut self) {
        self.at = None;
    }
}

/// Says a trouble once: the same sentence again is not news, a different one is, and after
/// [`clear`](Self::clear) (things went well) the same one is news again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SayOnce {
    last: Option<String>,
}

impl SayOnce {
    /// Whether `what` should be said now (it is remembered as said).
    pub fn say(&mut self, what: &str) -> bool {
        if self.last.as_deref() == Some(what) {
            return false;
        }
        self.last = Some(what.to_string());
        true
    }

    /// Things went well; returns whether a trouble had been said (so that its end is news).
    pub fn clear(&mut self) -> bool {
        self.last.take().is_some()
    }
}

/// Signals that claim to come from someone they do not come from (any peer on a bus may send
/// signals, to anyone): how many, and which were said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ForeignSignals {
    /// Signals ignored so far.
    pub count: u64,
    said: SayOnce,
}

impl ForeignSignals {
    /// Counts `m`, ignored because of `why`; returns the sentence to say, unless it was the
    /// last one said (same kind, same sender).
    pub fn note(&mut self, m: &Message, why: &str) -> Option<String> {
        self.count += 1;
        let sender = m.sender.as_deref().unwrap_or("(no sender)");
        let what = format!("ignored {} from {sender}: {why}", m.member.as_deref().unwrap_or_default());
        self.said.say(&what).then_some(what)
    }
}

/// What happened, for the client's user. `T` says what a call was for.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<T> {
    /// Connected (authenticated, and `Hello` answered on a bus): calls are answered. `again`:
    /// a loss had been said, so the recovery is news.
    Ready {
        /// Whether a loss was said since the last time the client was ready.
        again: bool,
    },
    /// The outcome of a call.
    Reply {
        /// What the call was for.
        tag: T,
        /// Its body, or why there is none.
        result: Result<Vec<Value>, CallError>,
    },
    /// A signal (broadcast, or sent to us).
    Signal(Message),
    /// A message the bus copied to us that was not for us (a monitor's, or an eavesdropping
    /// rule's): any type, any destination.
    Observed(Message),
    /// A message was skipped (it did not decode, or was too long); `say`: not the same as the
    /// last one said.
    Skipped {
        /// What was skipped and why.
        why: String,
        /// Whether to say it.
        say: bool,
    },
    /// The connection could not be made or is gone; the next dial is in `retry_in_ms`. `say`:
    /// not the trouble said last.
    Lost {
        /// A sentence: `cannot reach ...` or `lost the connection to ...`.
        why: String,
        /// Delay until the next dial.
        retry_in_ms: u64,
        /// Whether to say it.
        say: bool,
    },
}

/// Counters of a client, over all its connections.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClientCounters {
    /// Connections made (sockets connected).
    pub connects: u64,
    /// Connections lost after they were made.
    pub disconnects: u64,
    /// Dials that found nobody to connect to.
    pub failed_dials: u64,
    /// Messages received.
    pub received: u64,
    /// Messages that did not decode (skipped).
    pub malformed: u64,
    /// Messages longer than the client accepts (skipped unread).
    pub oversized: u64,
    /// Calls that got no answer in time.
    pub timeouts: u64,
    /// Answers that came after their call had timed out (dropped).
    pub late_replies: u64,
}

#[derive(Debug)]
struct Pending<T> {
    serial: u32,
    deadline: Instant,
    tag: T,
}

/// One client: at most one connection at a time, the calls waiting on it, and the schedule.
#[derive(Debug)]
pub struct Client<T> {
    /// What is reached, for sentences (`systemd`, `the system bus`).
    peer: &'static str,
    conn: Option<Conn>,
    /// Calls sent on `conn` and not answered yet, in the order they were made (a handful: a
    /// list costs less code than a map, once per user).
    pending: Vec<Pending<T>>,
    redial: Redial,
    /// Connection troubles.
    trouble: SayOnce,
    /// Skipped messages.
    skipped: SayOnce,
    /// Counters of connections already closed (the open one's are added on demand).
    counters: ClientCounters,
}

impl<T> Client<T> {
    /// An idle client for `peer` (named in sentences): it dials when [`want`](Self::want) is
    /// called.
    pub fn new(peer: &'static str) -> Self {
        Client {
            peer,
            conn: None,
            pending: Vec::new(),
            redial: Redial::idle(),
            trouble: SayOnce::default(),
            skipped: SayOnce::default(),
            counters: ClientCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> ClientCounters {
        let mut c = self.counters;
        if let Some(conn) = &self.conn {
            let k = conn.counters();
            c.received += k.received;
            c.malformed += k.malformed;
            c.oversized += k.oversized;
        }
        c
    }

    /// Whether calls are answered now.
    pub fn is_ready(&self) -> bool {
        self.conn.as_ref().is_some_and(Conn::is_ready)
    }

    /// Whether the connection is to a bus daemon, not to a peer such as systemd's private socket
    /// (only then do calls name a destination and match rules exist).
    pub fn on_bus(&self) -> bool {
        self.conn.as_ref().is_some_and(Conn::is_bus)
    }

    /// Our unique name on the bus, once connected.
    pub fn unique_name(&self) -> Option<&str> {
        self.conn.as_ref().and_then(Conn::unique_name)
    }

    /// Asks the bus to make the connection a monitor of the messages `rules` select
    /// (`BecomeMonitor`), answered within `timeout_ms`; `tag` comes back with the outcome.
    /// Once it succeeded, every message is an [`Event::Observed`] and nothing can be sent.
    pub fn become_monitor(&mut self, now: Instant, rules: Vec<String>, tag: T, timeout_ms: u64) -> Result<(), CallError> {
        let conn = self.conn.as_mut().ok_or(CallError::Disconnected)?;
        let serial = conn.become_monitor(rules)?;
        self.pending.push(Pending { serial, deadline: now.plus_ms(timeout_ms), tag });
        Ok(())
    }

    /// Whether a connection is open (ready or still in its handshake).
    pub fn is_open(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.is_closed())
    }

    /// The connection is needed: a dial at `now`, unless one is open or scheduled.
    pub fn want(&mut self, now: Instant) {
        if self.conn.is_none() {
            self.redial.soon(now);
        }
    }

    /// Whether a dial is due at `now` (taken: the driver dials now, then reports with
    /// [`dialed`](Self::dialed) or [`dial_failed`](Self::dial_failed)).
    pub fn dial_due(&mut self, now: Instant) -> bool {
        self.conn.is_none() && self.redial.take_due(now)
    }

    /// A socket connected at `now`; the handshake starts, as `uid`, with `Hello` if `is_bus`.
    pub fn dialed(&mut self, now: Instant, uid: u32, is_bus: bool) {
        self.redial.cancel();
        self.counters.connects += 1;
        self.conn = Some(Conn::new(uid, is_bus, now));
    }

    /// No socket could be connected at `now`; `errors` says why.
    pub fn dial_failed(&mut self, now: Instant, errors: &str) -> Event<T> {
        self.counters.failed_dials += 1;
        self.schedule(now, format!("cannot reach {} ({errors})", self.peer))
    }

    fn schedule(&mut self, now: Instant, why: String) -> Event<T> {
        let retry_in_ms = self.redial.failed(now);
        let say = self.trouble.say(&why);
        Event::Lost { why, retry_in_ms, say }
    }

    /// Sends a call that must be answered within `timeout_ms`; `tag` comes back with its
    /// outcome. Calls made during the handshake are sent after it.
    pub fn call(&mut self, now: Instant, msg: &Message, tag: T, timeout_ms: u64) -> Result<(), CallError> {
        let conn = self.conn.as_mut().ok_or(CallError::Disconnected)?;
        let serial = conn.send(msg)?;
        self.pending.push(Pending { serial, deadline: now.plus_ms(timeout_ms), tag });
        Ok(())
    }

    /// Calls waiting for an answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The bytes to write.
    pub fn output(&self) -> &[u8] {
        self.conn.as_ref().map_or(&[], Conn::output)
    }

    /// `n` bytes of the output were written.
    pub fn wrote(&mut self, n: usize) {
        if let Some(c) = self.conn.as_mut() {
            c.wrote(n);
        }
    }

    /// The driver wrote what it could; too much left unread by the peer fails the connection.
    pub fn check_output(&mut self) {
        if let Some(c) = self.conn.as_mut() {
            c.check_output();
        }
    }

    /// The socket failed where no event could be returned (a write outside a read); reported
    /// at the next step, which is due at once.
    pub fn fail(&mut self, why: String) {
        if let Some(c) = self.conn.as_mut() {
            c.fail(why);
        }
    }

    /// Bytes read from the socket at `now`.
    pub fn received(&mut self, now: Instant, bytes: &[u8], out: &mut Vec<Event<T>>) {
        let Some(conn) = self.conn.as_mut() else { return };
        let mut events = Vec::new();
        conn.received(bytes, &mut events);
        self.translate(now, events, out);
    }

    /// The socket reached its end or failed at `now` (`why`).
    pub fn closed(&mut self, now: Instant, why: String, out: &mut Vec<Event<T>>) {
        let Some(conn) = self.conn.as_mut() else { return };
        let mut events = Vec::new();
        conn.closed(why, &mut events);
        self.translate(now, events, out);
    }

    /// Times out calls and a handshake whose deadlines are `<= now`; reports a failure.
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<Event<T>>) {
        let mut events = Vec::new();
        if let Some(conn) = self.conn.as_mut() {
            conn.on_tick(now, &mut events);
        }
        self.translate(now, events, out);
        while let Some(i) = self.pending.iter().position(|p| p.deadline <= now) {
            let p = self.pending.remove(i);
            self.counters.timeouts += 1;
            out.push(Event::Reply { tag: p.tag, result: Err(CallError::Timeout) });
        }
    }

    /// The earliest time [`on_tick`](Self::on_tick) or a dial has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let conn = self.conn.as_ref().and_then(Conn::next_deadline);
        let calls = self.pending.iter().map(|p| p.deadline).min();
        [self.redial.at(), conn, calls].into_iter().flatten().min()
    }

    /// Closes the connection and cancels any dial: nothing needs it now. Calls waiting are
    /// dropped without an outcome (their user asked for this).
    pub fn stop(&mut self) {
        self.drop_conn();
        self.pending.clear();
        self.redial.cancel();
    }

    fn drop_conn(&mut self) {
        if let Some(c) = self.conn.take() {
            let k = c.counters();
            self.counters.received += k.received;
            self.counters.malformed += k.malformed;
            self.counters.oversized += k.oversized;
        }
    }

    fn translate(&mut self, now: Instant, events: Vec<ConnEvent>, out: &mut Vec<Event<T>>) {
        for e in events {
            match e {
                ConnEvent::Ready => {
                    self.redial.succeeded();
                    out.push(Event::Ready { again: self.trouble.clear() });
                }
                ConnEvent::Reply { serial, result } => match self.pending.iter().position(|p| p.serial == serial) {
                    Some(i) => out.push(Event::Reply { tag: self.pending.remove(i).tag, result }),
                    None => self.counters.late_replies += 1,
                },
                ConnEvent::Signal(m) => out.push(Event::Signal(m)),
                ConnEvent::Observed(m) => out.push(Event::Observed(m)),
                ConnEvent::Skipped(why) => {
                    let say = self.skipped.say(&why);
                    out.push(Event::Skipped { why, say });
                }
                ConnEvent::Closed(why) => {
                    self.drop_conn();
                    self.counters.disconnects += 1;
                    for p in std::mem::take(&mut self.pending) {
                        out.push(Event::Reply { tag: p.tag, result: Err(CallError::Disconnected) });
                    }
                    let lost = format!("lost the connection to {}: {why}", self.peer);
                    out.push(self.schedule(now, lost));
                }
            }
        }
    }
}

/// Helpers for dialogues with a [`Client`] in unit tests: no socket, the peer's bytes made
/// here and the client's bytes decoded.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::dbus::message::{decode, message_len};

    /// The unique name the test bus gives the client.
    pub const UNIQUE: &str = ":1.7";

    /// A client dialled at `now` and through the handshake with a bus (`is_bus`) or a peer.
    pub fn ready<T: std::fmt::Debug>(peer: &'static str, now: Instant, is_bus: bool) -> Client<T> {
        let mut c = Client::new(peer);
        c.want(now);
        assert!(c.dial_due(now));
        c.dialed(now, 0, is_bus);
        let mut out = Vec::new();
        let n = c.output().len();
        c.wrote(n);
        c.received(now, b"OK 0123456789abcdef\r\n", &mut out);
        if is_bus {
            let hello = sent(&mut c);
            assert_eq!(hello.len(), 1);
            let reply = Message::reply(hello[0].serial, Ok(vec![Value::Str(UNIQUE.into())]));
            c.received(now, &bytes(&reply), &mut out);
        }
        assert!(matches!(&out[..], [Event::Ready { again: false }]), "{out:?}");
        c
    }

    /// The messages the client wrote since last asked (its output is taken).
    pub fn sent<T>(c: &mut Client<T>) -> Vec<Message> {
        let mut out = c.output().to_vec();
        c.wrote(out.len());
        if out.starts_with(b"BEGIN\r\n") {
            out.drain(..7);
        }
        let mut msgs = Vec::new();
        while out.len() >= 16 {
            let len = message_len(out[..16].try_into().unwrap()).unwrap();
            msgs.push(decode(&out[..len]).unwrap());
            out.drain(..len);
        }
        assert!(out.is_empty(), "a partial message was written");
        msgs
    }

    /// `m` on the wire (its serial, if unset, is 1000).
    pub fn bytes(m: &Message) -> Vec<u8> {
        m.encode(if m.serial == 0 { 1000 } else { m.serial }).unwrap()
    }

    /// `m` from `sender` (as the bus writes it).
    pub fn from(sender: &str, mut m: Message) -> Message {
        m.sender = Some(sender.into());
        m
    }

    /// Feeds `m` to the client at `now` and returns what it made of it.
    pub fn feed<T>(c: &mut Client<T>, now: Instant, m: &Message) -> Vec<Event<T>> {
        let mut out = Vec::new();
        c.received(now, &bytes(m), &mut out);
        out
    }

    /// Ticks the client at `now` and returns what happened.
    pub fn tick<T>(c: &mut Client<T>, now: Instant) -> Vec<Event<T>> {
        let mut out = Vec::new();
        c.on_tick(now, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn ping() -> Message {
        Message::to_bus("GetId", vec![])
    }

    #[test]
    fn redial_doubles_to_thirty_seconds_and_starts_over_after_a_success() {
        let mut r = Redial::idle();
        let t0 = t(1_000);
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
    }

    #[test]
    fn say_once_says_a_trouble_once_until_it_changes_or_clears() {
        let mut s = SayOnce::default();
        assert!(s.say("a"));
        assert!(!s.say("a"));
        assert!(s.say("b"));
        assert!(s.say("a"), "a different trouble came between");
        assert!(s.clear());
        assert!(!s.clear());
        assert!(s.say("a"), "after a recovery the same trouble is news");
    }

    /// Nobody listens: dials at 0, 1, 3, 7, 15, 31, 61, 91 s; said once; then a connection
    /// works, is lost, and the next dial is 1 s later again, said because it is new.
    #[test]
    fn dials_back_off_from_one_second_to_thirty_and_say_the_trouble_once() {
        let mut c: Client<()> = Client::new("the system bus");
        assert_eq!(c.next_deadline(), None, "idle until wanted");
        c.want(t(0));
        let mut now = t(0);
        let mut dials = Vec::new();
        let mut said = Vec::new();
        for i in 0..8 {
            assert_eq!(c.next_deadline(), Some(now));
            if i > 0 {
                assert!(!c.dial_due(Instant::from_millis(now.as_millis() - 1)), "not before its time");
            }
            assert!(c.dial_due(now));
            dials.push(now.as_millis());
            let Event::Lost { why, retry_in_ms, say } = c.dial_failed(now, "/run/bus: No such file or directory") else { panic!() };
            assert_eq!(why, "cannot reach the system bus (/run/bus: No such file or directory)");
            said.push(say);
            now = now.plus_ms(retry_in_ms);
        }
        assert_eq!(dials, [0, 1_000, 3_000, 7_000, 15_000, 31_000, 61_000, 91_000]);
        assert_eq!(said, [true, false, false, false, false, false, false, false]);
        assert!(c.dial_due(now));
        c.dialed(now, 0, false);
        let out = {
            let mut out = Vec::new();
            c.received(now, b"OK 1\r\n", &mut out);
            out
        };
        assert_eq!(out, [Event::Ready { again: true }], "the trouble had been said: its end is news");
        let mut out = Vec::new();
        c.closed(t(200_000), "the peer closed the connection".into(), &mut out);
        assert_eq!(
            out,
            [Event::Lost {
                why: "lost the connection to the system bus: the peer closed the connection".into(),
                retry_in_ms: 1_000,
                say: true
            }]
        );
        assert_eq!(c.next_deadline(), Some(t(201_000)));
        let k = c.counters();
        assert_eq!((k.connects, k.disconnects, k.failed_dials), (1, 1, 8));
    }

    #[test]
    fn a_call_times_out_at_its_deadline_and_a_late_reply_is_dropped() {
        let mut c: Client<&str> = ready("the system bus", t(0), true);
        c.call(t(100), &ping(), "first", 10_000).unwrap();
        c.call(t(200), &ping(), "second", 10_000).unwrap();
        let sent = sent(&mut c);
        assert_eq!(sent.len(), 2);
        assert_eq!(c.next_deadline(), Some(t(10_100)));
        assert_eq!(tick(&mut c, t(10_099)), []);
        assert_eq!(tick(&mut c, t(10_100)), [Event::Reply { tag: "first", result: Err(CallError::Timeout) }]);
        assert_eq!(c.next_deadline(), Some(t(10_200)));
        // The answer to the first comes late: dropped, counted; the second's is on time.
        assert_eq!(feed(&mut c, t(10_150), &Message::reply(sent[0].serial, Ok(vec![]))), []);
        let on_time = feed(&mut c, t(10_160), &Message::reply(sent[1].serial, Ok(vec![Value::U32(3)])));
        assert_eq!(on_time, [Event::Reply { tag: "second", result: Ok(vec![Value::U32(3)]) }]);
        assert_eq!(c.next_deadline(), None);
        let k = c.counters();
        assert_eq!((k.timeouts, k.late_replies), (1, 1));
        assert_eq!(CallError::Timeout.to_string(), "lookout.Timeout: no reply in time");
    }

    #[test]
    fn an_error_reply_is_typed() {
        let mut c: Client<u8> = ready("systemd", t(0), false);
        c.call(t(0), &ping(), 7, 1_000).unwrap();
        let serial = sent(&mut c)[0].serial;
        let out = feed(&mut c, t(5), &Message::reply(serial, Err(("org.freedesktop.DBus.Error.ServiceUnknown", "nobody"))));
        let err = CallError::Error { name: "org.freedesktop.DBus.Error.ServiceUnknown".into(), message: "nobody".into() };
        assert_eq!(out, [Event::Reply { tag: 7, result: Err(err.clone()) }]);
        assert_eq!(err.name(), Some("org.freedesktop.DBus.Error.ServiceUnknown"));
        assert_eq!(err.to_string(), "org.freedesktop.DBus.Error.ServiceUnknown: nobody");
    }

    /// Every call waiting when the connection goes gets its outcome, before the loss.
    #[test]
    fn a_disconnect_answers_every_waiting_call_then_schedules_a_dial() {
        let mut c: Client<u8> = ready("systemd", t(0), false);
        for tag in [1, 2, 3] {
            c.call(t(10), &ping(), tag, 10_000).unwrap();
        }
        let mut out = Vec::new();
        c.closed(t(500), "read failed: Connection reset by peer".into(), &mut out);
        let disconnected = |tag| Event::Reply { tag, result: Err(CallError::Disconnected) };
        assert_eq!(
            out,
            [
                disconnected(1),
                disconnected(2),
                disconnected(3),
                Event::Lost {
                    why: "lost the connection to systemd: read failed: Connection reset by peer".into(),
                    retry_in_ms: 1_000,
                    say: true
                },
            ]
        );
        assert_eq!(c.pending(), 0);
        assert!(!c.is_open());
        assert_eq!(c.call(t(600), &ping(), 4, 1_000), Err(CallError::Disconnected));
        assert_eq!(c.next_deadline(), Some(t(1_500)), "no call deadlines left, only the dial");
        assert_eq!(tick(&mut c, t(1_000)), []);
        assert!(c.dial_due(t(1_500)));
    }

    #[test]
    fn a_handshake_left_unanswered_is_a_loss_at_its_deadline() {
        let mut c: Client<()> = Client::new("the system bus");
        c.want(t(0));
        assert!(c.dial_due(t(0)));
        c.dialed(t(0), 0, true);
        c.call(t(0), &ping(), (), 60_000).unwrap();
        assert_eq!(c.next_deadline(), Some(t(10_000)));
        let out = tick(&mut c, t(10_000));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], Event::Reply { tag: (), result: Err(CallError::Disconnected) });
        assert!(matches!(&out[1], Event::Lost { why, .. } if why.ends_with("no answer to the authentication in time")));
    }

    #[test]
    fn the_same_malformed_message_is_said_once() {
        let mut c: Client<()> = ready("systemd", t(0), false);
        let mut bad = Message::signal("/a", "x.y", "Z", vec![Value::Bool(true)]).encode(3).unwrap();
        let n = bad.len();
        bad[n - 4] = 2;
        let mut out = Vec::new();
        for _ in 0..3 {
            c.received(t(1), &bad, &mut out);
        }
        let says: Vec<bool> = out.iter().map(|e| matches!(e, Event::Skipped { say: true, .. })).collect();
        assert_eq!(says, [true, false, false]);
        assert_eq!(c.counters().malformed, 3);
    }

    #[test]
    fn stop_drops_the_connection_its_calls_and_the_schedule() {
        let mut c: Client<()> = ready("systemd", t(0), false);
        c.call(t(0), &ping(), (), 1_000).unwrap();
        c.stop();
        assert_eq!(c.next_deadline(), None);
        assert_eq!(tick(&mut c, t(5_000)), []);
        assert!(!c.dial_due(t(5_000)));
        c.want(t(6_000));
        assert!(c.dial_due(t(6_000)));
    }

    #[test]
    fn a_write_failure_is_reported_at_the_next_tick() {
        let mut c: Client<()> = ready("systemd", t(0), false);
        c.fail("write failed: Broken pipe".into());
        assert_eq!(c.next_deadline(), Some(Instant::from_millis(0)));
        let out = tick(&mut c, t(3));
        assert!(matches!(&out[..], [Event::Lost { why, .. }] if why == "lost the connection to systemd: write failed: Broken pipe"));
    }
}
