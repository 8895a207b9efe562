//! systemd's notify protocol, without libsystemd: a datagram to `$NOTIFY_SOCKET` saying
//! `READY=1` once the reactor runs (for `Type=notify`), `WATCHDOG=1` every half
//! `$WATCHDOG_USEC` from the reactor's deadlines (for `WatchdogSec=`), and `STOPPING=1` on the
//! way out. Sends never block; a failed send is logged once and changes nothing else.

use std::os::unix::net::{SocketAddr, UnixDatagram};

use crate::time::Instant;

/// The notify socket and the watchdog period, from the environment systemd gives us.
#[derive(Debug, Default)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    /// Ping period in ms (half of `WATCHDOG_USEC`).
    ping_ms: Option<u64>,
    next_ping: Option<Instant>,
    failed: bool,
    /// Pings sent.
    pub pings: u64,
}

fn address(path: &str) -> std::io::Result<SocketAddr> {
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())
    } else {
        SocketAddr::from_pathname(path)
    }
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (a watchdog meant for another
    /// process is not ours).
    pub fn from_env() -> Notifier {
        let socket = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty()).and_then(|path| {
            let addr = address(&path).map_err(|e| crate::warn!("NOTIFY_SOCKET {path:?}: {e}")).ok()?;
            let sock = UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s));
            sock.map_err(|e| crate::warn!("cannot open a socket for systemd notifications: {e}")).ok().map(|s| (s, addr))
        });
        let for_us = std::env::var("WATCHDOG_PID").ok().is_none_or(|p| p.trim() == std::process::id().to_string());
        let ping_ms = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us && socket.is_some())
            .map(|u| (u / 2000).max(1));
        Notifier { socket, ping_ms, next_ping: None, failed: false, pings: 0 }
    }

    fn send(&mut self, msg: &str) {
        let Some((sock, addr)) = &self.socket else { return };
        if let Err(e) = sock.send_to_addr(msg.as_bytes(), addr) {
            if !self.failed {
                crate::warn!("cannot notify systemd: {e}");
                self.failed = true;
            }
        }
    }

    /// The agent is up: `READY=1`, and the watchdog starts.
    pub fn ready(&mut self, now: Instant, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
        self.next_ping = self.ping_ms.map(|ms| now.plus_ms(ms));
    }

    /// The agent stops.
    pub fn stopping(&mut self) {
        self.next_ping = None;
        self.send("STOPPING=1");
    }

    /// When the next watchdog ping is due (none without `WatchdogSec=`).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_ping
    }

    /// Pings the watchdog if due.
    pub fn on_tick(&mut self, now: Instant) {
        if let (Some(due), Some(ms)) = (self.next_ping, self.ping_ms) {
            if due <= now {
                self.send("WATCHDOG=1");
                self.pings += 1;
                self.next_ping = Some(now.plus_ms(ms));
            }
        }
    }
}
