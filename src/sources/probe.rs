//! One probe of a `connectivity` check, in the reactor's poll: a name resolved on a short-lived
//! thread (getaddrinfo blocks; a literal IP skips it), a non-blocking TCP connect to each address
//! in turn, and for `http://` a `HEAD` request whose status line is read (at most
//! [`MAX_REPLY`] bytes). Nothing here blocks or reads the clock: the check's deadline (in
//! `detect::connectivity`) drops a probe that takes too long, resolution included.
//!
//! Resolver threads are bounded by [`MAX_RESOLVERS`] for the whole agent; one still running
//! when its probe was dropped finishes on its own (the system resolver has its own timeouts)
//! and its answer is thrown away. A thread wakes the reactor by closing its end of a pipe that
//! is one of the check's fds.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mio::net::TcpStream;
use mio::unix::pipe::Receiver;
use mio::{Interest, Token};

use super::check_fds::CheckFds;
use super::watch::Listener;
use crate::detect::connectivity::{Target, http_status};

/// Resolver threads that may run at once (all checks together).
pub const MAX_RESOLVERS: usize = 4;
/// Addresses of one name tried in turn.
pub const MAX_ADDRESSES: usize = 8;
/// Bytes of an HTTP reply read to find its status line.
pub const MAX_REPLY: usize = 1024;
/// A resolver thread's stack.
const RESOLVER_STACK: usize = 256 * 1024;

static RESOLVERS: AtomicUsize = AtomicUsize::new(0);
static RESOLVERS_REFUSED: AtomicU64 = AtomicU64::new(0);

/// Resolver threads running now, and resolutions refused because [`MAX_RESOLVERS`] ran.
pub fn resolver_counts() -> (u64, u64) {
    (RESOLVERS.load(Ordering::Relaxed) as u64, RESOLVERS_REFUSED.load(Ordering::Relaxed))
}

type Answer = Arc<Mutex<Option<Result<Vec<SocketAddr>, String>>>>;

#[derive(Debug)]
enum Phase {
    /// A thread resolves the name; it closes the pipe when done.
    Resolving { pipe: Receiver, token: Token, answer: Answer },
    /// Connecting to `addr` (the others after it), then the request and its reply.
    Connected { stream: TcpStream, token: Token, addr: SocketAddr, rest: Vec<SocketAddr>, sent: usize, reply: Vec<u8> },
}

/// A probe going.
#[derive(Debug)]
pub struct Probe {
    target: Target,
    listener: Listener,
    phase: Option<Phase>,
}

/// The end of a probe: what answered, or why it failed.
pub type Outcome = Result<String, String>;

impl Probe {
    /// Starts a probe of `target`; its fds wake `listener`. `Err` is a failure known at once (no
    /// route: `ENETUNREACH`; no resolver free).
    pub fn start(target: &Target, fds: &mut CheckFds, listener: Listener) -> Result<Probe, String> {
        let mut p = Probe { target: target.clone(), listener, phase: None };
        match target.host().parse::<IpAddr>() {
            Ok(ip) => p.connect(fds, vec![SocketAddr::new(ip, target.port())], None)?,
            Err(_) => p.phase = Some(resolve(target.host(), target.port(), fds, listener)?),
        }
        Ok(p)
    }

    /// Makes what progress the fds allow; `Some` when the probe is over (its fds are closed).
    pub fn on_ready(&mut self, fds: &mut CheckFds) -> Option<Outcome> {
        let r = self.step(fds);
        if r.is_some() {
            self.stop(fds);
        }
        r
    }

    fn step(&mut self, fds: &mut CheckFds) -> Option<Outcome> {
        match self.phase.as_mut()? {
            Phase::Resolving { pipe, answer, .. } => {
                // The thread closes the pipe once its answer is in the slot (and it is no
                // longer counted): until the end of the pipe, there is nothing to take.
                let mut b = [0u8; 16];
                loop {
                    match pipe.read(&mut b) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return None,
                    }
                }
                let got = answer.lock().ok()?.take()?;
                let addrs = match got {
                    Ok(a) if a.is_empty() => return Some(Err(format!("{} has no address", self.target.host()))),
                    Ok(a) => a,
                    Err(e) => return Some(Err(format!("cannot resolve {}: {e}", self.target.host()))),
                };
                self.stop(fds);
                self.connect(fds, addrs, None).err().map(Err)
            }
            Phase::Connected { .. } => self.exchange(fds),
        }
    }

    /// Connects to the first address that does not fail at once; `last` is the previous error.
    fn connect(&mut self, fds: &mut CheckFds, mut addrs: Vec<SocketAddr>, mut last: Option<String>) -> Result<(), String> {
        addrs.truncate(MAX_ADDRESSES);
        let mut addrs = addrs.into_iter();
        while let Some(addr) = addrs.next() {
            let mut stream = match TcpStream::connect(addr) {
                Ok(s) => s,
                Err(e) => {
                    last = Some(format!("connect to {addr}: {e}"));
                    continue;
                }
            };
            let registered = fds.register_with(self.listener, |reg, token| {
                reg.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).map(|()| token)
            });
            match registered {
                Ok(token) => {
                    let rest = addrs.collect();
                    self.phase = Some(Phase::Connected { stream, token, addr, rest, sent: 0, reply: Vec::new() });
                    return Ok(());
                }
                Err(e) => last = Some(format!("cannot poll a socket: {e}")),
            }
        }
        Err(last.unwrap_or_else(|| "no address to connect to".into()))
    }

    /// The connection's progress: connected, request written, status line read.
    fn exchange(&mut self, fds: &mut CheckFds) -> Option<Outcome> {
        let request = self.target.request();
        let Some(Phase::Connected { stream, addr, rest, sent, reply, .. }) = self.phase.as_mut() else { return None };
        let addr = *addr;
        if let Some(e) = stream.take_error().ok().flatten().or_else(|| match stream.peer_addr() {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
            Err(e) => Some(e),
            Ok(_) => None,
        }) {
            // This address failed: the next one, if any.
            let rest = std::mem::take(rest);
            self.stop(fds);
            let why = format!("connect to {addr}: {e}");
            return self.connect(fds, rest, Some(why)).err().map(Err);
        }
        if stream.peer_addr().is_err() {
            return None; // still connecting
        }
        let Some(request) = request else { return Some(Ok(format!("connected to {addr}"))) };
        while *sent < request.len() {
            match stream.write(&request.as_bytes()[*sent..]) {
                Ok(n) => *sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(format!("sending to {addr}: {e}"))),
            }
        }
        let mut b = [0u8; 256];
        loop {
            if let Some(end) = reply.iter().position(|c| *c == b'\n') {
                let line = reply[..end].strip_suffix(b"\r").unwrap_or(&reply[..end]);
                return Some(http_status(line).map(|s| format!("{s} from {addr}")));
            }
            if reply.len() >= MAX_REPLY {
                return Some(http_status(reply).map(|s| format!("{s} from {addr}")));
            }
            let room = (MAX_REPLY - reply.len()).min(b.len());
            match stream.read(&mut b[..room]) {
                Ok(0) => return Some(Err(format!("{addr} closed the connection without an answer"))),
                Ok(n) => reply.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(format!("reading from {addr}: {e}"))),
            }
        }
    }

    /// Drops the probe's fds (a probe that timed out or was replaced, or one that ended).
    pub fn stop(&mut self, fds: &mut CheckFds) {
        match self.phase.take() {
            Some(Phase::Resolving { mut pipe, token, .. }) => fds.deregister(&mut pipe, token),
            Some(Phase::Connected { mut stream, token, .. }) => {
                fds.forget(token);
                let _ = fds.registry().deregister(&mut stream);
            }
            None => {}
        }
    }
}

/// Starts a resolver thread for `host`, if one is free.
fn resolve(host: &str, port: u16, fds: &mut CheckFds, listener: Listener) -> Result<Phase, String> {
    if RESOLVERS.fetch_add(1, Ordering::AcqRel) >= MAX_RESOLVERS {
        RESOLVERS.fetch_sub(1, Ordering::AcqRel);
        RESOLVERS_REFUSED.fetch_add(1, Ordering::Relaxed);
        return Err(format!("cannot resolve {host}: {MAX_RESOLVERS} name resolutions are still running"));
    }
    let started = (|| {
        let (sender, mut pipe) = mio::unix::pipe::new().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let token = fds.register(&mut pipe, listener).map_err(|e| format!("cannot poll a pipe: {e}"))?;
        let answer: Answer = Arc::new(Mutex::new(None));
        let (a, name) = (answer.clone(), host.to_string());
        let spawned = std::thread::Builder::new().name("lookout-resolve".into()).stack_size(RESOLVER_STACK).spawn(move || {
            let r = (name.as_str(), port).to_socket_addrs().map(|i| i.take(MAX_ADDRESSES).collect()).map_err(|e| e.to_string());
            if let Ok(mut slot) = a.lock() {
                *slot = Some(r);
            }
            RESOLVERS.fetch_sub(1, Ordering::AcqRel);
            // Closing the pipe wakes the reactor.
            drop(sender);
        });
        match spawned {
            Ok(_) => Ok(Phase::Resolving { pipe, token, answer }),
            Err(e) => {
                fds.deregister(&mut pipe, token);
                Err(format!("cannot start a resolver thread: {e}"))
            }
        }
    })();
    if started.is_err() {
        RESOLVERS.fetch_sub(1, Ordering::AcqRel);
    }
    started.map_err(|e| format!("cannot resolve {host}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    use mio::{Events, Poll};

    /// Runs a probe of `target` to its end, with a real poll; its fds are all closed after.
    fn probe(target: &str) -> Outcome {
        let mut poll = Poll::new().unwrap();
        let mut fds = CheckFds::new(poll.registry().try_clone().unwrap());
        let mut p = Probe::start(&Target::parse(target).unwrap(), &mut fds, Listener::Check(1))?;
        let mut events = Events::with_capacity(8);
        for _ in 0..2000 {
            poll.poll(&mut events, Some(Duration::from_millis(10))).unwrap();
            if let Some(r) = p.on_ready(&mut fds) {
                assert!(fds.is_empty(), "fds left in the poll");
                return r;
            }
        }
        panic!("the probe of {target} did not end");
    }

    /// A server on 127.0.0.1 that reads one request and answers `reply` (then closes).
    fn serve_once(reply: &'static [u8]) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 256];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&b[..n]),
                }
            }
            assert!(got.starts_with(b"HEAD /p?q HTTP/1.1\r\nHost: 127.0.0.1:"), "{}", String::from_utf8_lossy(&got));
            let _ = c.write_all(reply);
        });
        port
    }

    #[test]
    fn http_replies() {
        let url = |port: u16| format!("http://127.0.0.1:{port}/p?q");
        assert_eq!(probe(&url(serve_once(b"HTTP/1.1 200 OK\r\n\r\n"))).map(|s| s.starts_with("HTTP 200 from 127.0.0.1:")), Ok(true));
        assert_eq!(probe(&url(serve_once(b"HTTP/1.0 503 Busy\r\n\r\n"))), Err("the server answered HTTP 503".into()));
        assert!(probe(&url(serve_once(b"SSH-2.0-OpenSSH\r\n"))).unwrap_err().starts_with("not an HTTP reply"));
        assert!(probe(&url(serve_once(b""))).unwrap_err().ends_with("closed the connection without an answer"));
        // A reply with no line end: at most MAX_REPLY bytes are read.
        static LONG: [u8; 4096] = [b'x'; 4096];
        assert!(probe(&url(serve_once(&LONG))).unwrap_err().starts_with("not an HTTP reply"));
    }

    #[test]
    fn tcp_connects_and_refusals() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(probe(&format!("127.0.0.1:{port}")), Ok(format!("connected to 127.0.0.1:{port}")));
        drop(l);
        let e = probe(&format!("127.0.0.1:{port}")).unwrap_err();
        assert!(e.starts_with(&format!("connect to 127.0.0.1:{port}: ")) && e.contains("refused"), "{e}");
    }

    #[test]
    fn names_are_resolved_on_a_thread_and_each_address_is_tried() {
        // localhost may be ::1 first: refused there, the next address answers.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // (From /etc/hosts: tests ask no name server; tests/connectivity.rs has one that refuses.)
        assert_eq!(probe(&format!("localhost:{port}")), Ok(format!("connected to 127.0.0.1:{port}")));
        assert_eq!(resolver_counts().0, 0);
    }
}
