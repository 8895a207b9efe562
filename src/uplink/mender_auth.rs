//! The device's JWT and server URL from the Mender client, over the system bus, driven by the
//! reactor: `io.mender.AuthenticationManager` at `/io/mender/AuthenticationManager`, interface
//! `io.mender.Authentication1`.
//!
//! On connect: match rules for `JwtTokenStateChange` and for the name's owner, then
//! `GetJwtToken() -> (token, server_url)`. An empty token means the device is not authorised
//! yet: alerts wait in the spool until the signal brings one (an empty pair there means the
//! client's fetch failed). When the worker gets a 401 it asks for [`refresh`](MenderAuth::refresh):
//! `FetchJwtToken()`, then the signal; if none comes within [`FETCH_WAIT_MS`], the token is read
//! again. If the service is not on the bus that is said once, and it is asked again when the
//! name gets an owner. A lost bus connection is retried (1 s doubling to 30 s); the last token
//! stays in use meanwhile (the proxy does not depend on the bus).

use std::collections::HashMap;
use std::path::PathBuf;

use mio::{Registry, Token};

use crate::dbus::conn::{Connection, Event, Redial};
use crate::dbus::message::{Kind, Message};
use crate::dbus::wire::Value;
use crate::time::Instant;

/// The connection's token.
pub const AUTH_DBUS: Token = Token(4);
/// The well-known name of the Mender client's authentication service.
pub const NAME: &str = "io.mender.AuthenticationManager";
const PATH: &str = "/io/mender/AuthenticationManager";
const IFACE: &str = "io.mender.Authentication1";
/// Time allowed for one call.
pub const CALL_TIMEOUT_MS: u64 = 10_000;
/// How long a `FetchJwtToken` may take before the token is read again.
pub const FETCH_WAIT_MS: u64 = 30_000;

/// What the reactor passes on to the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthUpdate {
    /// A token and the URL to use it with.
    Token {
        /// The JWT.
        token: String,
        /// Where to send (usually the client's local proxy).
        server_url: String,
    },
    /// No usable token, and why.
    NoToken(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Setup,
    Get,
    Fetch,
}

/// The client.
#[derive(Debug)]
pub struct MenderAuth {
    bus: PathBuf,
    registry: Registry,
    conn: Option<Connection>,
    redial: Redial,
    calls: HashMap<u32, Call>,
    /// After a `FetchJwtToken`: when to read the token again if no signal came.
    fetch_deadline: Option<Instant>,
    /// The last problem said, to say it once.
    said: Option<String>,
    /// What the last update said, for `status`.
    state: String,
    /// Tokens received.
    pub tokens: u64,
}

impl MenderAuth {
    /// A client for the bus at `bus`; connects at once.
    pub fn start(bus: PathBuf, registry: Registry, now: Instant) -> MenderAuth {
        let mut a = MenderAuth {
            bus,
            registry,
            conn: None,
            redial: Redial::idle(),
            calls: HashMap::new(),
            fetch_deadline: None,
            said: None,
            state: "connecting to the system bus".into(),
            tokens: 0,
        };
        a.connect(now);
        a
    }

    /// A sentence for `status`.
    pub fn state(&self) -> &str {
        &self.state
    }

    fn connect(&mut self, now: Instant) {
        self.redial.cancel();
        match Connection::connect(&self.bus, true, &self.registry, AUTH_DBUS, now) {
            Ok(c) => self.conn = Some(c),
            Err(e) => self.lost(now, format!("cannot reach the system bus at {}: {e}", self.bus.display())),
        }
    }

    fn lost(&mut self, now: Instant, why: String) {
        if let Some(c) = self.conn.take() {
            c.close(&self.registry);
        }
        self.calls.clear();
        self.fetch_deadline = None;
        let then = if self.tokens > 0 { "keeping the last token; retrying" } else { "retrying" };
        self.say(&why, then);
        self.state = why;
        self.redial.failed(now);
    }

    fn say(&mut self, why: &str, then: &str) {
        if self.said.as_deref() != Some(why) {
            crate::warn!("Mender client: {why}; {then}");
            self.said = Some(why.to_string());
        }
    }

    /// When [`on_tick`](Self::on_tick) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.redial.at(), self.fetch_deadline, self.conn.as_ref().and_then(Connection::next_deadline)].into_iter().flatten().min()
    }

    /// Reconnects when due, times out calls, reads the token again after a fetch without news.
    pub fn on_tick(&mut self, now: Instant) -> Vec<AuthUpdate> {
        if self.redial.take_due(now) {
            self.connect(now);
            return Vec::new();
        }
        if self.fetch_deadline.is_some_and(|t| t <= now) {
            self.fetch_deadline = None;
            crate::warn!("Mender client: no new token {} s after FetchJwtToken; reading the current one", FETCH_WAIT_MS / 1000);
            self.call(Call::Get, "GetJwtToken", now);
        }
        let events = self.conn.as_mut().map(|c| c.on_tick(now)).unwrap_or_default();
        self.handle(events, now)
    }

    /// Reads what the connection has.
    pub fn on_ready(&mut self, now: Instant) -> Vec<AuthUpdate> {
        let events = self.conn.as_mut().map(Connection::on_ready).unwrap_or_default();
        self.handle(events, now)
    }

    /// The server refused the token (or there is none): ask the client for a new one.
    pub fn refresh(&mut self, now: Instant) {
        if self.conn.as_ref().is_some_and(Connection::is_ready) {
            crate::info!("Mender client: asking for a new token (FetchJwtToken)");
            self.call(Call::Fetch, "FetchJwtToken", now);
            self.fetch_deadline = Some(now.plus_ms(FETCH_WAIT_MS));
        }
    }

    fn call(&mut self, what: Call, member: &str, now: Instant) {
        let msg = match what {
            Call::Setup => return,
            Call::Get | Call::Fetch => Message::call(Some(NAME), PATH, IFACE, member, vec![]),
        };
        self.send(msg, what, now);
    }

    fn send(&mut self, msg: Message, what: Call, now: Instant) {
        let Some(conn) = self.conn.as_mut() else { return };
        match conn.call(&msg, now, CALL_TIMEOUT_MS) {
            Ok(serial) => {
                self.calls.insert(serial, what);
            }
            Err(e) => crate::warn!("D-Bus: cannot send {}: {e}", msg.member.unwrap_or_default()),
        }
    }

    fn handle(&mut self, events: Vec<Event>, now: Instant) -> Vec<AuthUpdate> {
        let mut out = Vec::new();
        for e in events {
            match e {
                Event::Ready => self.on_connected(now),
                Event::Reply { serial, result } => {
                    if let Some(call) = self.calls.remove(&serial) {
                        self.on_reply(call, result, now, &mut out);
                    }
                }
                Event::Signal(m) => self.on_signal(&m, now, &mut out),
                Event::Closed(why) => {
                    self.lost(now, format!("lost the system bus: {why}"));
                    break;
                }
            }
        }
        out
    }

    fn on_connected(&mut self, now: Instant) {
        self.redial.succeeded();
        for rule in [
            format!("type='signal',sender='{NAME}',path='{PATH}',interface='{IFACE}',member='JwtTokenStateChange'"),
            format!("type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{NAME}'"),
        ] {
            let m = Message::add_match(rule);
            self.send(m, Call::Setup, now);
        }
        self.call(Call::Get, "GetJwtToken", now);
    }

    fn on_reply(&mut self, call: Call, result: Result<Vec<Value>, (String, String)>, now: Instant, out: &mut Vec<AuthUpdate>) {
        match (call, result) {
            (Call::Setup, Ok(_)) => {}
            (Call::Setup, Err((name, msg))) => crate::warn!("D-Bus: AddMatch failed: {name}: {msg}"),
            (Call::Get, Ok(body)) => match (body.first().and_then(Value::as_str), body.get(1).and_then(Value::as_str)) {
                (Some(token), Some(url)) => self.token(token, url, "GetJwtToken", out),
                _ => self.no_token(format!("GetJwtToken answered {body:?}, not (token, server URL)"), out),
            },
            (Call::Fetch, Ok(_)) => {} // the signal brings the token
            (Call::Get | Call::Fetch, Err((name, msg))) => {
                self.fetch_deadline = None;
                let why = if name == "org.freedesktop.DBus.Error.ServiceUnknown" || name == "org.freedesktop.DBus.Error.NameHasNoOwner" {
                    format!("its authentication service ({NAME}) is not on the system bus")
                } else {
                    format!("{} failed: {name}: {msg}", if call == Call::Get { "GetJwtToken" } else { "FetchJwtToken" })
                };
                self.no_token(why, out);
                if call == Call::Fetch {
                    self.call(Call::Get, "GetJwtToken", now);
                }
            }
        }
    }

    fn on_signal(&mut self, m: &Message, now: Instant, out: &mut Vec<AuthUpdate>) {
        if m.kind != Kind::Signal {
            return;
        }
        match (m.interface.as_deref(), m.member.as_deref()) {
            (Some(IFACE), Some("JwtTokenStateChange")) => {
                self.fetch_deadline = None;
                match (m.body.first().and_then(Value::as_str), m.body.get(1).and_then(Value::as_str)) {
                    (Some(token), Some(url)) => self.token(token, url, "JwtTokenStateChange", out),
                    _ => self.no_token("JwtTokenStateChange without (token, server URL)".into(), out),
                }
            }
            (Some("org.freedesktop.DBus"), Some("NameOwnerChanged")) if m.body.first().and_then(Value::as_str) == Some(NAME) => {
                let new_owner = m.body.get(2).and_then(Value::as_str).unwrap_or_default();
                if new_owner.is_empty() {
                    self.no_token(format!("its authentication service ({NAME}) left the system bus"), out);
                } else {
                    crate::info!("Mender client: {NAME} is on the system bus; reading the token");
                    self.call(Call::Get, "GetJwtToken", now);
                }
            }
            _ => {}
        }
    }

    fn token(&mut self, token: &str, url: &str, from: &str, out: &mut Vec<AuthUpdate>) {
        if token.is_empty() {
            let why = if from == "JwtTokenStateChange" {
                "the client could not fetch a token (JwtTokenStateChange with an empty token)"
            } else {
                "no token yet (the device is not authorised?)"
            };
            self.no_token(why.into(), out);
            return;
        }
        if let Some(why) = super::sink::unusable_url(url) {
            self.no_token(format!("{from} gave the server URL {url:?}: {why}"), out);
            return;
        }
        if self.said.take().is_some() || self.tokens == 0 {
            crate::info!("Mender client: got a token ({from}); sending to {url}");
        }
        self.tokens += 1;
        self.state = format!("token from the Mender client, server {url}");
        out.push(AuthUpdate::Token { token: token.to_string(), server_url: url.to_string() });
    }

    fn no_token(&mut self, why: String, out: &mut Vec<AuthUpdate>) {
        self.say(&why, "alerts are kept in the spool until there is a token");
        self.state = why.clone();
        out.push(AuthUpdate::NoToken(why));
    }
}
