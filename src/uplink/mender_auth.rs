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
//!
//! Any local user may send signals on the system bus, to the agent too: `JwtTokenStateChange` is
//! taken only from the connection that owns the service's name (asked with `GetNameOwner`, then
//! followed through `NameOwnerChanged`), and `NameOwnerChanged` only from the bus itself. Others
//! are counted, said once, and ignored: a forged token would send alerts to a server of the
//! sender's choosing.
//!
//! The connection is the shared [`BusClient`]; what the answers and signals mean for the token
//! is decided by [`Auth`], which sees only the client and its events (tested without a socket).

use std::path::PathBuf;

use mio::Registry;

use crate::dbus::client::{CallError, Client, ClientCounters, Event, ForeignSignals, SayOnce};
use crate::dbus::driver::{BusClient, Endpoint, FixedToken};
use crate::dbus::message::{Kind, Message, bus};
use crate::dbus::wire::Value;
use crate::time::Instant;
use crate::tokens::MENDER_BUS;

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

/// What a call to the Mender client (or the bus) was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Setup,
    Owner,
    Get,
    Fetch,
}

impl Call {
    fn member(self) -> &'static str {
        match self {
            Call::Setup => "AddMatch",
            Call::Owner => "GetNameOwner",
            Call::Get => "GetJwtToken",
            Call::Fetch => "FetchJwtToken",
        }
    }
}

/// The client.
#[derive(Debug)]
pub struct MenderAuth {
    endpoint: [Endpoint; 1],
    registry: Registry,
    bus: BusClient<Call>,
    auth: Auth,
}

impl MenderAuth {
    /// A client for the bus at `bus`; connects at the first tick (due at `now`).
    pub fn start(bus: PathBuf, registry: Registry, now: Instant) -> MenderAuth {
        let mut client = BusClient::new("Mender client", "the system bus");
        client.want(now);
        MenderAuth { endpoint: [Endpoint::bus(bus)], registry, bus: client, auth: Auth::default() }
    }

    /// A sentence for `status`.
    pub fn state(&self) -> &str {
        &self.auth.state
    }

    /// Tokens received.
    pub fn tokens(&self) -> u64 {
        self.auth.tokens
    }

    /// The connection's counters.
    pub fn counters(&self) -> ClientCounters {
        self.bus.counters()
    }

    /// Signals ignored because they did not come from whom they claim to.
    pub fn foreign_signals(&self) -> u64 {
        self.auth.foreign.count
    }

    /// When [`on_tick`](Self::on_tick) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        [self.bus.next_deadline(), self.auth.fetch_deadline].into_iter().flatten().min()
    }

    /// Reconnects when due, times out calls, reads the token again after a fetch without news.
    pub fn on_tick(&mut self, now: Instant) -> Vec<AuthUpdate> {
        let mut poll = FixedToken { registry: &self.registry, token: MENDER_BUS };
        let events = self.bus.on_tick(now, &self.endpoint, &mut poll);
        self.auth.on_tick(now, self.bus.client());
        self.handle(now, events)
    }

    /// Reads what the connection has.
    pub fn on_ready(&mut self, now: Instant) -> Vec<AuthUpdate> {
        let mut poll = FixedToken { registry: &self.registry, token: MENDER_BUS };
        let events = self.bus.on_ready(now, &mut poll);
        self.handle(now, events)
    }

    /// The server refused the token (or there is none): ask the client for a new one.
    pub fn refresh(&mut self, now: Instant) {
        self.auth.refresh(now, self.bus.client());
        self.bus.settle(&mut FixedToken { registry: &self.registry, token: MENDER_BUS });
    }

    fn handle(&mut self, now: Instant, events: Vec<Event<Call>>) -> Vec<AuthUpdate> {
        let mut out = Vec::new();
        for e in events {
            self.auth.on_event(now, e, self.bus.client(), &mut out);
        }
        self.bus.settle(&mut FixedToken { registry: &self.registry, token: MENDER_BUS });
        out
    }
}

/// The token's state and what the Mender client's answers and signals mean for it. No I/O: it
/// sees the client and its events.
#[derive(Debug)]
struct Auth {
    /// After a `FetchJwtToken`: when to read the token again if no signal came.
    fetch_deadline: Option<Instant>,
    /// Token troubles said (connection troubles are the client's).
    said: SayOnce,
    /// What the last update said, for `status`.
    state: String,
    /// Tokens received.
    tokens: u64,
    /// The unique name of the connection that owns [`NAME`], if known.
    owner: Option<String>,
    /// Signals from others than they claim to be from (ignored).
    foreign: ForeignSignals,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            fetch_deadline: None,
            said: SayOnce::default(),
            state: "connecting to the system bus".into(),
            tokens: 0,
            owner: None,
            foreign: ForeignSignals::default(),
        }
    }
}

impl Auth {
    fn on_tick(&mut self, now: Instant, bus: &mut Client<Call>) {
        if self.fetch_deadline.is_some_and(|t| t <= now) {
            self.fetch_deadline = None;
            crate::warn!("Mender client: no new token {} s after FetchJwtToken; reading the current one", FETCH_WAIT_MS / 1000);
            call(Call::Get, now, bus);
        }
    }

    fn refresh(&mut self, now: Instant, bus: &mut Client<Call>) {
        if bus.is_ready() {
            crate::info!("Mender client: asking for a new token (FetchJwtToken)");
            call(Call::Fetch, now, bus);
            self.fetch_deadline = Some(now.plus_ms(FETCH_WAIT_MS));
        }
    }

    fn on_event(&mut self, now: Instant, e: Event<Call>, bus: &mut Client<Call>, out: &mut Vec<AuthUpdate>) {
        match e {
            Event::Ready { again } => {
                if again {
                    crate::info!("Mender client: connected to the system bus again");
                }
                for rule in [
                    format!("type='signal',sender='{NAME}',path='{PATH}',interface='{IFACE}',member='JwtTokenStateChange'"),
                    format!("type='signal',sender='{}',member='NameOwnerChanged',arg0='{NAME}'", bus::NAME),
                ] {
                    send(Message::add_match(rule), Call::Setup, now, bus);
                }
                send(Message::to_bus("GetNameOwner", vec![Value::Str(NAME.into())]), Call::Owner, now, bus);
                call(Call::Get, now, bus);
            }
            Event::Reply { tag, result } => self.on_reply(tag, result, now, bus, out),
            Event::Signal(m) => self.on_signal(&m, now, bus, out),
            Event::Lost { why, say, .. } => {
                self.fetch_deadline = None;
                self.owner = None;
                if say && self.tokens > 0 {
                    crate::info!("Mender client: keeping the last token meanwhile");
                }
                self.state = why;
            }
            // Never asked for (no eavesdropping rule, no monitor).
            Event::Skipped { .. } | Event::Observed(_) => {}
        }
    }

    fn on_reply(
        &mut self,
        call_: Call,
        result: Result<Vec<Value>, CallError>,
        now: Instant,
        bus: &mut Client<Call>,
        out: &mut Vec<AuthUpdate>,
    ) {
        match (call_, result) {
            // A call lost with its connection: the loss says so.
            (_, Err(CallError::Disconnected)) => {}
            // The signal brings a fetched token.
            (Call::Setup | Call::Fetch, Ok(_)) => {}
            (Call::Setup, Err(e)) => crate::warn!("D-Bus: AddMatch failed: {e}"),
            (Call::Owner, Ok(body)) => self.owner = body.first().and_then(Value::as_str).map(str::to_string),
            // Nobody owns it: GetJwtToken says so too.
            (Call::Owner, Err(_)) => self.owner = None,
            (Call::Get, Ok(body)) => match (body.first().and_then(Value::as_str), body.get(1).and_then(Value::as_str)) {
                (Some(token), Some(url)) => self.token(token, url, "GetJwtToken", out),
                _ => self.no_token(format!("GetJwtToken answered {body:?}, not (token, server URL)"), out),
            },
            (Call::Get | Call::Fetch, Err(e)) => {
                self.fetch_deadline = None;
                let why = match e.name() {
                    Some(bus::SERVICE_UNKNOWN | bus::NAME_HAS_NO_OWNER) => {
                        format!("its authentication service ({NAME}) is not on the system bus")
                    }
                    _ => format!("{} failed: {e}", call_.member()),
                };
                self.no_token(why, out);
                if call_ == Call::Fetch {
                    call(Call::Get, now, bus);
                }
            }
        }
    }

    fn on_signal(&mut self, m: &Message, now: Instant, bus: &mut Client<Call>, out: &mut Vec<AuthUpdate>) {
        if m.kind != Kind::Signal {
            return;
        }
        match (m.interface.as_deref(), m.member.as_deref()) {
            (Some(IFACE), Some("JwtTokenStateChange")) if self.owner.is_none() || m.sender != self.owner => {
                self.foreign(m, &format!("not from the owner of {NAME}"));
            }
            (Some(bus::INTERFACE), Some("NameOwnerChanged")) if m.sender.as_deref() != Some(bus::NAME) => {
                self.foreign(m, "not from the bus");
            }
            (Some(IFACE), Some("JwtTokenStateChange")) => {
                self.fetch_deadline = None;
                match (m.body.first().and_then(Value::as_str), m.body.get(1).and_then(Value::as_str)) {
                    (Some(token), Some(url)) => self.token(token, url, "JwtTokenStateChange", out),
                    _ => self.no_token("JwtTokenStateChange without (token, server URL)".into(), out),
                }
            }
            (Some(bus::INTERFACE), Some("NameOwnerChanged")) if m.body.first().and_then(Value::as_str) == Some(NAME) => {
                let new_owner = m.body.get(2).and_then(Value::as_str).unwrap_or_default();
                self.owner = (!new_owner.is_empty()).then(|| new_owner.to_string());
                if new_owner.is_empty() {
                    self.no_token(format!("its authentication service ({NAME}) left the system bus"), out);
                } else {
                    crate::info!("Mender client: {NAME} is on the system bus; reading the token");
                    call(Call::Get, now, bus);
                }
            }
            _ => {}
        }
    }

    fn foreign(&mut self, m: &Message, why: &str) {
        if let Some(what) = self.foreign.note(m, why) {
            crate::warn!("Mender client: {what}");
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
        if self.said.clear() || self.tokens == 0 {
            crate::info!("Mender client: got a token ({from}); sending to {url}");
        }
        self.tokens += 1;
        self.state = format!("token from the Mender client, server {url}");
        out.push(AuthUpdate::Token { token: token.to_string(), server_url: url.to_string() });
    }

    fn no_token(&mut self, why: String, out: &mut Vec<AuthUpdate>) {
        if self.said.say(&why) {
            crate::warn!("Mender client: {why}; alerts are kept in the spool until there is a token");
        }
        self.state = why.clone();
        out.push(AuthUpdate::NoToken(why));
    }
}

/// Calls `what` on the Mender client.
fn call(what: Call, now: Instant, bus: &mut Client<Call>) {
    send(Message::call(Some(NAME), PATH, IFACE, what.member(), vec![]), what, now, bus);
}

fn send(msg: Message, what: Call, now: Instant, bus: &mut Client<Call>) {
    if let Err(e) = bus.call(now, &msg, what, CALL_TIMEOUT_MS) {
        crate::warn!("D-Bus: cannot send {}: {e}", what.member());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dbus::client::testing::{bytes, from, ready, sent, tick};

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    const OWNER: &str = ":1.3";

    /// The Mender client's side of one exchange: feeds `m` and returns the updates.
    fn feed(auth: &mut Auth, bus: &mut Client<Call>, now: Instant, m: &Message) -> Vec<AuthUpdate> {
        let mut events = Vec::new();
        bus.received(now, &bytes(m), &mut events);
        run(auth, bus, now, events)
    }

    fn run(auth: &mut Auth, bus: &mut Client<Call>, now: Instant, events: Vec<Event<Call>>) -> Vec<AuthUpdate> {
        let mut out = Vec::new();
        for e in events {
            auth.on_event(now, e, bus, &mut out);
        }
        out
    }

    /// The members called since last asked, and the serial of the last one.
    fn called(bus: &mut Client<Call>) -> (Vec<String>, u32) {
        let msgs = sent(bus);
        let last = msgs.last().map_or(0, |m| m.serial);
        (msgs.into_iter().map(|m| m.member.unwrap_or_default()).collect(), last)
    }

    fn token(serial: u32, token: &str, url: &str) -> Message {
        from(OWNER, Message::reply(serial, Ok(vec![Value::Str(token.into()), Value::Str(url.into())])))
    }

    fn signal(token: &str, url: &str) -> Message {
        from(OWNER, Message::signal(PATH, IFACE, "JwtTokenStateChange", vec![Value::Str(token.into()), Value::Str(url.into())]))
    }

    fn owner_changed(new: &str) -> Message {
        let body = vec![Value::Str(NAME.into()), Value::Str(String::new()), Value::Str(new.into())];
        from(bus::NAME, Message::signal(bus::PATH, bus::INTERFACE, "NameOwnerChanged", body))
    }

    /// Connected: the match rules, who owns the service's name, then the token is read.
    fn connected() -> (Auth, Client<Call>, u32) {
        let mut auth = Auth::default();
        let mut bus = ready("the system bus", t(0), true);
        assert_eq!(run(&mut auth, &mut bus, t(0), vec![Event::Ready { again: false }]), []);
        let (members, get) = called(&mut bus);
        assert_eq!(members, ["AddMatch", "AddMatch", "GetNameOwner", "GetJwtToken"]);
        let owner = from(bus::NAME, Message::reply(get - 1, Ok(vec![Value::Str(OWNER.into())])));
        assert_eq!(feed(&mut auth, &mut bus, t(1), &owner), []);
        assert_eq!(auth.owner.as_deref(), Some(OWNER));
        (auth, bus, get)
    }

    #[test]
    fn the_token_is_read_on_connect_and_an_empty_one_waits() {
        let (mut auth, mut bus, get) = connected();
        let got = feed(&mut auth, &mut bus, t(5), &token(get, "", ""));
        assert_eq!(got, [AuthUpdate::NoToken("no token yet (the device is not authorised?)".into())]);
        assert_eq!(auth.state, "no token yet (the device is not authorised?)");
        // The client authorises and says so.
        let got = feed(&mut auth, &mut bus, t(900), &signal("T1", "http://127.0.0.1:8080"));
        assert_eq!(got, [AuthUpdate::Token { token: "T1".into(), server_url: "http://127.0.0.1:8080".into() }]);
        assert_eq!((auth.tokens, auth.state.as_str()), (1, "token from the Mender client, server http://127.0.0.1:8080"));
    }

    #[test]
    fn a_refused_token_is_fetched_and_read_again_if_no_signal_comes() {
        let (mut auth, mut bus, get) = connected();
        feed(&mut auth, &mut bus, t(5), &token(get, "T1", "http://127.0.0.1:8080"));
        auth.refresh(t(1_000), &mut bus);
        let (members, fetch) = called(&mut bus);
        assert_eq!(members, ["FetchJwtToken"]);
        assert_eq!(auth.fetch_deadline, Some(t(1_000 + FETCH_WAIT_MS)));
        assert_eq!(feed(&mut auth, &mut bus, t(1_010), &from(OWNER, Message::reply(fetch, Ok(vec![Value::Bool(true)])))), []);
        // No JwtTokenStateChange within 30 s: the token is read again.
        auth.on_tick(t(1_000 + FETCH_WAIT_MS - 1), &mut bus);
        assert_eq!(called(&mut bus).0, Vec::<String>::new());
        auth.on_tick(t(1_000 + FETCH_WAIT_MS), &mut bus);
        let (members, get) = called(&mut bus);
        assert_eq!(members, ["GetJwtToken"]);
        assert_eq!(auth.fetch_deadline, None);
        let got = feed(&mut auth, &mut bus, t(31_100), &token(get, "T2", "http://127.0.0.1:8080"));
        assert_eq!(got, [AuthUpdate::Token { token: "T2".into(), server_url: "http://127.0.0.1:8080".into() }]);
    }

    #[test]
    fn the_signal_after_a_fetch_ends_the_wait() {
        let (mut auth, mut bus, get) = connected();
        feed(&mut auth, &mut bus, t(5), &token(get, "T1", "http://proxy"));
        auth.refresh(t(100), &mut bus);
        called(&mut bus);
        let got = feed(&mut auth, &mut bus, t(200), &signal("T2", "http://proxy"));
        assert_eq!(got, [AuthUpdate::Token { token: "T2".into(), server_url: "http://proxy".into() }]);
        assert_eq!(auth.fetch_deadline, None);
        let got = feed(&mut auth, &mut bus, t(300), &signal("", ""));
        assert_eq!(got, [AuthUpdate::NoToken("the client could not fetch a token (JwtTokenStateChange with an empty token)".into())]);
    }

    #[test]
    fn a_failed_fetch_reads_the_token_and_a_refresh_waits_for_a_connection() {
        let (mut auth, mut bus, get) = connected();
        feed(&mut auth, &mut bus, t(5), &token(get, "T1", "http://proxy"));
        auth.refresh(t(100), &mut bus);
        let (_, fetch) = called(&mut bus);
        let got = feed(&mut auth, &mut bus, t(150), &from(OWNER, Message::reply(fetch, Err(("io.mender.Error", "server down")))));
        assert_eq!(got, [AuthUpdate::NoToken("FetchJwtToken failed: io.mender.Error: server down".into())]);
        assert_eq!(called(&mut bus).0, ["GetJwtToken"]);
        assert_eq!(auth.fetch_deadline, None);
        let mut idle: Client<Call> = Client::new("the system bus");
        auth.refresh(t(200), &mut idle);
        assert_eq!(auth.fetch_deadline, None, "nothing asked without a connection");
    }

    #[test]
    fn a_missing_service_is_said_once_and_its_arrival_reads_the_token() {
        let (mut auth, mut bus, get) = connected();
        let unknown = |serial| from(bus::NAME, Message::reply(serial, Err((bus::SERVICE_UNKNOWN, "The name is not activatable"))));
        let why = format!("its authentication service ({NAME}) is not on the system bus");
        assert_eq!(feed(&mut auth, &mut bus, t(5), &unknown(get)), [AuthUpdate::NoToken(why.clone())]);
        assert!(!auth.said.say(&why), "said already");
        assert_eq!(feed(&mut auth, &mut bus, t(500), &owner_changed(OWNER)), []);
        let (members, get) = called(&mut bus);
        assert_eq!(members, ["GetJwtToken"]);
        let got = feed(&mut auth, &mut bus, t(510), &token(get, "T1", "http://proxy"));
        assert!(matches!(&got[..], [AuthUpdate::Token { .. }]));
        let left = feed(&mut auth, &mut bus, t(600), &owner_changed(""));
        assert_eq!(left, [AuthUpdate::NoToken(format!("its authentication service ({NAME}) left the system bus"))]);
    }

    /// Any peer may send signals to the agent: a token only counts from the service's owner,
    /// an owner change only from the bus.
    #[test]
    fn signals_from_others_than_they_claim_are_ignored() {
        let (mut auth, mut bus, get) = connected();
        feed(&mut auth, &mut bus, t(5), &token(get, "T1", "http://proxy"));
        let mut forged = signal("EVIL", "http://evil");
        forged.sender = Some(":1.66".into());
        assert_eq!(feed(&mut auth, &mut bus, t(10), &forged), []);
        let mut left = owner_changed("");
        left.sender = Some(":1.66".into());
        assert_eq!(feed(&mut auth, &mut bus, t(11), &left), []);
        assert_eq!(auth.owner.as_deref(), Some(OWNER));
        assert_eq!(auth.foreign.count, 2);
        assert_eq!(auth.state, "token from the Mender client, server http://proxy");
        // The service restarts under a new name: its signals count, the old name's do not.
        assert_eq!(feed(&mut auth, &mut bus, t(20), &owner_changed(":1.40")), []);
        called(&mut bus);
        assert_eq!(feed(&mut auth, &mut bus, t(21), &signal("T2", "http://proxy")), [], "from the old owner");
        let mut from_new = signal("T3", "http://proxy");
        from_new.sender = Some(":1.40".into());
        assert_eq!(
            feed(&mut auth, &mut bus, t(22), &from_new),
            [AuthUpdate::Token { token: "T3".into(), server_url: "http://proxy".into() }]
        );
        assert_eq!(auth.foreign.count, 3);
    }

    #[test]
    fn an_unanswered_call_times_out_into_no_token() {
        let (mut auth, mut bus, _) = connected();
        let events = tick(&mut bus, t(CALL_TIMEOUT_MS));
        let got = run(&mut auth, &mut bus, t(CALL_TIMEOUT_MS), events);
        assert_eq!(got, [AuthUpdate::NoToken("GetJwtToken failed: lookout.Timeout: no reply in time".into())]);
    }

    #[test]
    fn a_url_it_cannot_send_to_is_no_token() {
        let (mut auth, mut bus, get) = connected();
        let got = feed(&mut auth, &mut bus, t(5), &token(get, "T1", "ftp://x"));
        assert_eq!(got, [AuthUpdate::NoToken("GetJwtToken gave the server URL \"ftp://x\": not an http:// URL".into())]);
        let got = feed(&mut auth, &mut bus, t(6), &from(OWNER, Message::reply(get + 1, Ok(vec![]))));
        assert_eq!(got, [], "an answer to no call of ours is dropped");
    }

    #[test]
    fn a_lost_bus_keeps_the_last_token_and_its_fetch_is_forgotten() {
        let (mut auth, mut bus, get) = connected();
        feed(&mut auth, &mut bus, t(5), &token(get, "T1", "http://proxy"));
        auth.refresh(t(10), &mut bus);
        let mut events = Vec::new();
        bus.closed(t(20), "the peer closed the connection".into(), &mut events);
        assert_eq!(run(&mut auth, &mut bus, t(20), events), [], "no update: the token stays in use");
        assert_eq!(auth.state, "lost the connection to the system bus: the peer closed the connection");
        assert_eq!(auth.fetch_deadline, None);
        assert_eq!(bus.next_deadline(), Some(t(1_020)));
    }
}
