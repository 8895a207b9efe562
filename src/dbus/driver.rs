//! The socket side of a D-Bus [`Client`]: connect (the first of its endpoints that answers),
//! read and write without blocking, put the socket into the reactor's poll and take it out, and
//! log what the client says is worth saying. Everything decided is decided by the client.
//!
//! A user drives it from the reactor: [`BusClient::on_ready`] when the socket's token fires,
//! [`BusClient::on_tick`] when [`BusClient::next_deadline`] has passed, lets its own logic make
//! calls through [`BusClient::client`], and ends each step with [`BusClient::settle`], which
//! writes those calls at once (the socket is edge-triggered: no event would come to write them
//! later) and takes a stopped connection out of the poll.
//!
//! A peer that floods cannot hold up the reactor: one step reads at most [`READ_BUDGET`] bytes,
//! and the rest is read at the next turn (the deadline is then at once).

use std::io::{self, Read, Write};
use std::path::PathBuf;

use mio::net::UnixStream;
use mio::{Interest, Registry, Token};

use super::client::{Client, ClientCounters, Event};
use crate::time::Instant;

/// Most bytes read from one connection in one step.
pub const READ_BUDGET: usize = 256 * 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Where a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The socket's path.
    pub path: PathBuf,
    /// A bus daemon (`Hello`, destinations, match rules), or a peer.
    pub is_bus: bool,
}

impl Endpoint {
    /// A bus daemon's socket.
    pub fn bus(path: PathBuf) -> Self {
        Endpoint { path, is_bus: true }
    }

    /// A peer's socket (systemd's private one).
    pub fn peer(path: PathBuf) -> Self {
        Endpoint { path, is_bus: false }
    }
}

/// How a client's socket gets into the reactor's poll and out again.
pub trait Poller {
    /// Registers `stream` for reading and writing; returns its token.
    fn add(&mut self, stream: &mut UnixStream) -> io::Result<Token>;
    /// Removes `stream`, registered as `token`, before it is closed.
    fn remove(&mut self, stream: &mut UnixStream, token: Token);
}

/// A poll slot with a token of its own (systemd's connection, the Mender client's).
#[derive(Debug)]
pub struct FixedToken<'a> {
    /// The reactor's registry.
    pub registry: &'a Registry,
    /// The token.
    pub token: Token,
}

impl Poller for FixedToken<'_> {
    fn add(&mut self, stream: &mut UnixStream) -> io::Result<Token> {
        self.registry.register(stream, self.token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(self.token)
    }

    fn remove(&mut self, stream: &mut UnixStream, _token: Token) {
        // Failure means it is not in the poll; closing it is all that is left.
        let _ = self.registry.deregister(stream);
    }
}

/// A client and its socket.
#[derive(Debug)]
pub struct BusClient<T> {
    client: Client<T>,
    socket: Option<(UnixStream, Token)>,
    /// The read budget ran out before the socket was drained: read at the next step.
    backlog: bool,
    /// Most bytes read per step ([`READ_BUDGET`]).
    budget: usize,
    /// Starts every line logged (`"check dbus power: "`), or is empty.
    prefix: String,
}

impl<T> BusClient<T> {
    /// An idle client; `label` names its user in the log (empty: none), `peer` what it reaches
    /// (`systemd`, `the system bus`).
    pub fn new(label: &str, peer: &'static str) -> Self {
        let prefix = if label.is_empty() { String::new() } else { format!("{label}: ") };
        BusClient { client: Client::new(peer), socket: None, backlog: false, budget: READ_BUDGET, prefix }
    }

    /// The client, for the user's calls (written by [`settle`](Self::settle)).
    pub fn client(&mut self) -> &mut Client<T> {
        &mut self.client
    }

    /// Counters over every connection.
    pub fn counters(&self) -> ClientCounters {
        self.client.counters()
    }

    /// Whether calls are answered now.
    pub fn is_ready(&self) -> bool {
        self.client.is_ready()
    }

    /// The connection is needed: a dial at the next step, unless one is open or scheduled.
    pub fn want(&mut self, now: Instant) {
        self.client.want(now);
    }

    /// When [`on_tick`](Self::on_tick) has something to do (at once while input waits).
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.backlog {
            return Some(Instant::from_millis(0));
        }
        self.client.next_deadline()
    }

    /// The socket is ready: writes what waits, reads (at most [`READ_BUDGET`]), and returns
    /// what happened.
    pub fn on_ready(&mut self, now: Instant, poll: &mut impl Poller) -> Vec<Event<T>> {
        let mut out = Vec::new();
        self.write();
        self.read(now, &mut out);
        self.client.on_tick(now, &mut out);
        self.finish(poll, &out);
        out
    }

    /// Dials (the first of `endpoints` that connects) when due, reads what the last step left,
    /// times out calls; returns what happened.
    pub fn on_tick(&mut self, now: Instant, endpoints: &[Endpoint], poll: &mut impl Poller) -> Vec<Event<T>> {
        let mut out = Vec::new();
        if self.client.dial_due(now) {
            self.dial(now, endpoints, poll, &mut out);
        }
        if self.backlog {
            self.read(now, &mut out);
        }
        self.client.on_tick(now, &mut out);
        self.finish(poll, &out);
        out
    }

    /// Ends a step of the user's: writes the calls it made, and takes a connection it stopped
    /// out of the poll.
    pub fn settle(&mut self, poll: &mut impl Poller) {
        self.write();
        if !self.client.is_open() {
            self.backlog = false;
            if let Some((mut stream, token)) = self.socket.take() {
                poll.remove(&mut stream, token);
            }
        }
    }

    /// Closes the connection and cancels any dial.
    pub fn stop(&mut self, poll: &mut impl Poller) {
        self.client.stop();
        self.settle(poll);
    }

    fn finish(&mut self, poll: &mut impl Poller, events: &[Event<T>]) {
        self.settle(poll);
        for e in events {
            match e {
                Event::Lost { why, retry_in_ms, say: true } => {
                    crate::warn!("{}{why}; retrying in {} s", self.prefix, retry_in_ms / 1000);
                }
                Event::Skipped { why, say: true } => crate::warn!("{}D-Bus: skipped {why}", self.prefix),
                _ => {}
            }
        }
    }

    fn dial(&mut self, now: Instant, endpoints: &[Endpoint], poll: &mut impl Poller, out: &mut Vec<Event<T>>) {
        let mut errors = Vec::new();
        for ep in endpoints {
            let connected = UnixStream::connect(&ep.path).and_then(|mut s| poll.add(&mut s).map(|token| (s, token)));
            match connected {
                Ok(socket) => {
                    self.socket = Some(socket);
                    self.client.dialed(now, nix::unistd::getuid().as_raw(), ep.is_bus);
                    self.write();
                    return;
                }
                Err(e) => errors.push(format!("{}: {e}", ep.path.display())),
            }
        }
        out.push(self.client.dial_failed(now, &errors.join("; ")));
    }

    /// Reads until the socket is drained or the budget is spent.
    fn read(&mut self, now: Instant, out: &mut Vec<Event<T>>) {
        self.backlog = false;
        let Some((stream, _)) = self.socket.as_mut() else { return };
        let mut buf = [0u8; READ_CHUNK];
        let mut budget = self.budget;
        while self.client.is_open() {
            if budget == 0 {
                self.backlog = true;
                return;
            }
            match stream.read(&mut buf[..READ_CHUNK.min(budget)]) {
                Ok(0) => self.client.closed(now, "the peer closed the connection".into(), out),
                Ok(n) => {
                    budget -= n;
                    self.client.received(now, &buf[..n], out);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.client.closed(now, format!("read failed: {e}"), out),
            }
        }
    }

    /// Writes what the client holds until the socket takes no more; a failure is the client's
    /// to report at its next step.
    fn write(&mut self) {
        let Some((stream, _)) = self.socket.as_mut() else { return };
        while !self.client.output().is_empty() {
            match stream.write(self.client.output()) {
                Ok(0) => return self.client.fail("the peer stopped reading".into()),
                Ok(n) => self.client.wrote(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.client.fail(format!("write failed: {e}")),
            }
        }
        self.client.check_output();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::dbus::message::Message;
    use crate::dbus::wire::Value;

    /// A flood larger than the budget is read over several steps, each due at once, and none
    /// of it is lost.
    #[test]
    fn a_flood_is_read_a_budget_at_a_time() {
        let dir = std::env::temp_dir().join(format!("lookout-driver-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peer");
        let listener = UnixListener::bind(&path).unwrap();
        let poll = mio::Poll::new().unwrap();
        let mut slot = FixedToken { registry: poll.registry(), token: Token(1) };
        let mut bus: BusClient<()> = BusClient::new("test", "the peer");
        bus.budget = 16 * 1024;
        let now = Instant::from_millis(0);
        bus.want(now);
        assert!(bus.on_tick(now, &[Endpoint::peer(path.clone())], &mut slot).is_empty());
        let (mut peer, _) = listener.accept().unwrap();
        let mut auth = String::new();
        BufReader::new(&peer).read_line(&mut auth).unwrap();
        assert!(auth.starts_with("\0AUTH EXTERNAL "), "{auth:?}");
        let one = Message::signal("/a", "x.y", "Z", vec![Value::Str("x".repeat(200))]);
        let mut bytes = b"OK 1\r\n".to_vec();
        let n = 400;
        for serial in 1..=n {
            bytes.extend(one.encode(serial).unwrap());
        }
        assert!(bytes.len() > 5 * bus.budget);
        peer.write_all(&bytes).unwrap();
        let signals = |events: &[Event<()>]| events.iter().filter(|e| matches!(e, Event::Signal(_))).count();
        let first = bus.on_ready(now, &mut slot);
        assert!(matches!(first[0], Event::Ready { .. }));
        let mut seen = signals(&first);
        assert!(seen < n as usize, "one step read {seen} of {n}");
        assert_eq!(bus.next_deadline(), Some(Instant::from_millis(0)), "the rest is due at once");
        let mut steps = 1;
        while bus.next_deadline().is_some() {
            seen += signals(&bus.on_tick(now, &[], &mut slot));
            steps += 1;
            assert!(steps < 100);
        }
        assert_eq!(seen, n as usize);
        assert!(steps >= 5, "{steps} steps");
        bus.stop(&mut slot);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
