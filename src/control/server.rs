//! The daemon's end of the control socket, driven by the reactor.
//!
//! Bounded by construction: at most [`MAX_CLIENTS`] connections (more are accepted and closed at
//! once, so a flood of clients cannot fill the listen backlog and lock the CLI out), requests of
//! at most [`super::protocol::MAX_REQUEST`] bytes, one response per connection, and
//! [`CLIENT_TIMEOUT_MS`] for a client to send its request and read the answer. A client that
//! never reads costs one buffered response until its time is up; the reactor never waits on it.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use super::protocol::{MAX_REQUEST, Parsed, Response, parse_request};
use crate::time::Instant;
use crate::tokens::{CONTROL_LISTENER, FIRST_CONTROL_CLIENT};

/// Connections served at once.
pub const MAX_CLIENTS: usize = 16;
/// Time a client has for its request and for reading the answer.
pub const CLIENT_TIMEOUT_MS: u64 = 5_000;
/// Most bytes dropped after answering an overlong request, waiting for the client to close;
/// beyond that it is closed anyway (it was sent its answer).
pub const DRAIN_MAX: usize = 64 * 1024;
/// How soon a failed `accept` (no descriptor left) is tried again.
pub const ACCEPT_RETRY_MS: u64 = 250;

/// Counters of the control socket.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ControlCounters {
    /// Connections served.
    pub accepted: u64,
    /// Connections closed at once because [`MAX_CLIENTS`] were open.
    pub refused: u64,
    /// Connections closed because the client was too slow.
    pub timed_out: u64,
    /// Requests that were too long or not understood.
    pub bad_requests: u64,
    /// `accept` failures (out of file descriptors): retried on a timer.
    pub accept_errors: u64,
}

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    answered: bool,
    /// After the answer, read and drop what the client still sends until it closes (or its
    /// time is up): closing a socket with unread input resets it, and the client could lose
    /// the answer (a request longer than the bound).
    drain: bool,
    /// Bytes dropped so; at most [`DRAIN_MAX`].
    drained: usize,
    deadline: Instant,
}

/// A request the reactor must answer with [`ControlServer::respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// `status`.
    Status,
    /// `reload`.
    Reload,
    /// `take-inbox`.
    TakeInbox,
}

/// The listening socket and its connections.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    registry: Registry,
    conns: HashMap<Token, Conn>,
    next: usize,
    counters: ControlCounters,
    /// An `accept` failed: when to try again. The listener is edge-triggered, so a connection
    /// left in the backlog would otherwise never be served.
    accept_retry_at: Option<Instant>,
}

impl ControlServer {
    /// Listens on `path` (mode 0600). A socket file left by a dead daemon is replaced; one a live
    /// daemon answers on is an error.
    pub fn bind(path: &Path, registry: Registry) -> io::Result<ControlServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{}: another lookout daemon is running", path.display())));
                }
                Err(_) => std::fs::remove_file(path)?,
            }
        }
        // Created with no permissions for others from the first moment (umask), then 0600.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        nix::sys::stat::umask(old);
        let mut listener = bound.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        registry.register(&mut listener, CONTROL_LISTENER, Interest::READABLE)?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
            registry,
            conns: HashMap::new(),
            next: FIRST_CONTROL_CLIENT,
            counters: ControlCounters::default(),
            accept_retry_at: None,
        })
    }

    /// Counters so far.
    pub fn counters(&self) -> ControlCounters {
        self.counters
    }

    /// Whether `token` is one of our connections.
    pub fn owns(token: Token) -> bool {
        token.0 >= FIRST_CONTROL_CLIENT
    }

    /// Accepts every pending connection.
    pub fn on_listener(&mut self, now: Instant) {
        let retrying = self.accept_retry_at.take().is_some();
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.conns.len() >= MAX_CLIENTS {
                        self.counters.refused += 1;
                        continue; // dropped: the client sees the connection closed
                    }
                    let token = Token(self.next);
                    self.next += 1;
                    if self.registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_err() {
                        continue;
                    }
                    self.counters.accepted += 1;
                    self.conns.insert(
                        token,
                        Conn {
                            stream,
                            input: Vec::new(),
                            output: Vec::new(),
                            written: 0,
                            answered: false,
                            drain: false,
                            drained: 0,
                            deadline: now.plus_ms(CLIENT_TIMEOUT_MS),
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if !retrying {
                        crate::warn!("{}: accept failed: {e}; trying again every {ACCEPT_RETRY_MS} ms", self.path.display());
                    }
                    self.counters.accept_errors += 1;
                    self.accept_retry_at = Some(now.plus_ms(ACCEPT_RETRY_MS));
                    return;
                }
            }
        }
    }

    /// Reads or writes on a connection; returns a request to answer once one has arrived.
    pub fn on_connection(&mut self, token: Token) -> Option<Asked> {
        let conn = self.conns.get_mut(&token)?;
        if conn.answered && conn.written < conn.output.len() {
            self.flush(token);
            return None;
        }
        if conn.answered {
            self.drain(token);
            return None;
        }
        let mut buf = [0u8; 1024];
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    self.close(token);
                    return None;
                }
                Ok(n) => {
                    conn.input.extend_from_slice(&buf[..n]);
                    // The newline must come within the bound, however the reads fell.
                    let within = &conn.input[..conn.input.len().min(MAX_REQUEST + 1)];
                    if let Some(end) = memchr::memchr(b'\n', within) {
                        let line = conn.input[..end].to_vec();
                        return match parse_request(&line) {
                            Parsed::Status => Some(Asked::Status),
                            Parsed::Reload => Some(Asked::Reload),
                            Parsed::TakeInbox => Some(Asked::TakeInbox),
                            Parsed::Bad(why) => {
                                self.counters.bad_requests += 1;
                                self.respond(token, &Response::error(why));
                                None
                            }
                        };
                    }
                    if conn.input.len() > MAX_REQUEST {
                        self.counters.bad_requests += 1;
                        conn.drain = true;
                        self.respond(token, &Response::error(format!("request longer than {MAX_REQUEST} bytes")));
                        return None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(token);
                    return None;
                }
            }
        }
    }

    /// Queues `response` on a connection and writes what the socket takes now.
    pub fn respond(&mut self, token: Token, response: &Response) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        conn.output = response.to_line();
        conn.written = 0;
        conn.answered = true;
        self.flush(token);
    }

    fn flush(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        while conn.written < conn.output.len() {
            match conn.stream.write(&conn.output[conn.written..]) {
                Ok(0) => break,
                Ok(n) => conn.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if conn.drain && conn.written == conn.output.len() {
            let _ = conn.stream.shutdown(std::net::Shutdown::Write);
            self.drain(token);
        } else {
            self.close(token);
        }
    }

    /// Reads and drops what a client still sends after its answer; closes at its end.
    fn drain(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        let mut buf = [0u8; 4096];
        while conn.drained < DRAIN_MAX {
            match conn.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => conn.drained += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        self.close(token);
    }

    fn close(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.registry.deregister(&mut conn.stream);
        }
    }

    /// When the next slow client is to be closed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.values().map(|c| c.deadline).chain(self.accept_retry_at).min()
    }

    /// Closes the connections whose time is up.
    pub fn on_tick(&mut self, now: Instant) {
        if self.accept_retry_at.is_some_and(|t| t <= now) {
            self.on_listener(now);
        }
        let late: Vec<Token> = self.conns.iter().filter(|(_, c)| c.deadline <= now).map(|(t, _)| *t).collect();
        for t in late {
            self.counters.timed_out += 1;
            self.close(t);
        }
    }

    /// Connections open now.
    pub fn clients(&self) -> usize {
        self.conns.len()
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        // The next daemon would replace it anyway; removing it tells the CLI at once that no
        // daemon runs.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixStream as Client;

    fn server(tmp: &crate::testutil::TempDir) -> (mio::Poll, ControlServer) {
        let poll = mio::Poll::new().unwrap();
        let s = ControlServer::bind(&tmp.path().join("ctl.sock"), poll.registry().try_clone().unwrap()).unwrap();
        (poll, s)
    }

    fn connect(tmp: &crate::testutil::TempDir) -> Client {
        Client::connect(tmp.path().join("ctl.sock")).unwrap()
    }

    fn answer(c: Client) -> String {
        let mut line = String::new();
        c.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        BufReader::new(c).read_line(&mut line).unwrap();
        line
    }

    #[test]
    fn one_request_one_answer_then_closed() {
        let tmp = crate::testutil::TempDir::new("control");
        let (_poll, mut s) = server(&tmp);
        let mut c = connect(&tmp);
        c.write_all(b"{\"v\":1,\"cmd\":\"status\"}\n").unwrap();
        s.on_listener(Instant::from_millis(0));
        assert_eq!(s.clients(), 1);
        let t = Token(FIRST_CONTROL_CLIENT);
        assert_eq!(s.on_connection(t), Some(Asked::Status));
        s.respond(t, &Response::error("just a test"));
        assert_eq!(s.clients(), 0, "closed once the answer is written");
        assert!(answer(c).contains("just a test"));
        assert_eq!(s.counters().accepted, 1);
    }

    #[test]
    fn clients_beyond_the_bound_are_closed_at_once() {
        let tmp = crate::testutil::TempDir::new("control");
        let (_poll, mut s) = server(&tmp);
        let clients: Vec<Client> = (0..MAX_CLIENTS + 5).map(|_| connect(&tmp)).collect();
        s.on_listener(Instant::from_millis(0));
        assert_eq!(s.clients(), MAX_CLIENTS);
        assert_eq!(s.counters().refused, 5);
        drop(clients);
    }

    #[test]
    fn a_slow_client_is_closed_when_its_time_is_up() {
        let tmp = crate::testutil::TempDir::new("control");
        let (_poll, mut s) = server(&tmp);
        let _c = connect(&tmp);
        s.on_listener(Instant::from_millis(1_000));
        assert_eq!(s.next_deadline(), Some(Instant::from_millis(1_000 + CLIENT_TIMEOUT_MS)));
        s.on_tick(Instant::from_millis(1_000 + CLIENT_TIMEOUT_MS - 1));
        assert_eq!(s.clients(), 1);
        s.on_tick(Instant::from_millis(1_000 + CLIENT_TIMEOUT_MS));
        assert_eq!((s.clients(), s.counters().timed_out), (0, 1));
        assert_eq!(s.next_deadline(), None, "nothing left to wait for: no wake-ups");
    }

    #[test]
    fn garbage_and_overlong_requests_get_an_error() {
        let tmp = crate::testutil::TempDir::new("control");
        let (_poll, mut s) = server(&tmp);
        let mut garbage = connect(&tmp);
        garbage.write_all(b"\xff\x00 not json\n").unwrap();
        // Longer than the bound, with its newline in the same read: refused all the same.
        let mut long = connect(&tmp);
        let mut text = vec![b'a'; MAX_REQUEST + 500];
        text.push(b'\n');
        long.write_all(&text).unwrap();
        s.on_listener(Instant::from_millis(0));
        assert_eq!(s.on_connection(Token(FIRST_CONTROL_CLIENT)), None);
        assert_eq!(s.on_connection(Token(FIRST_CONTROL_CLIENT + 1)), None);
        assert_eq!(s.counters().bad_requests, 2);
        assert!(answer(garbage).contains("error"));
        // The client goes on writing after the refusal: the answer is not lost to a reset.
        long.write_all(b"more after the refusal").unwrap();
        s.on_connection(Token(FIRST_CONTROL_CLIENT + 1));
        assert!(answer(long).contains("longer than"));
    }
}
