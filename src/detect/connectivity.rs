//! The `connectivity` check's decisions, with no socket and no clock: what a target is, when a
//! probe is due (on the grid shared with program checks, or at once after a network change),
//! when it has timed out, and which alerts probe results make.
//!
//! A probe is an HTTP `HEAD` to a URL or a TCP connect to `host:port` (done by
//! `sources::probe`). Failures are counted: the CRITICAL comes after `failures` probes in a row
//! failed, the OK after one success. The kernel's routing events (`sources::netlink`) shorten
//! the wait: a link going down, a route or an address removed starts a probe at once whose
//! failure raises the CRITICAL without waiting for the count ("urgent"); a link, route or address
//! coming back starts a probe at once while the check is failing. Up events while all is well
//! are ignored (IPv6 router advertisements refresh addresses and routes every few minutes).

use crate::alert::{Alert, Details, Level, Subject};
use crate::time::{Instant, Now, rfc3339};

/// The subject type of connectivity alerts.
pub const SUBJECT_TYPE: &str = "connectivity";
/// The subject status of a CRITICAL (UNCONFIRMED: Mender's demo is not public).
pub const STATUS_UNREACHABLE: &str = "CONNECTIVITY_UNREACHABLE";
/// The subject status of an OK.
pub const STATUS_OK: &str = "CONNECTIVITY_OK";

/// What a check probes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `http://host[:port][/path]`: a `HEAD` request; `https://`: a TCP connect to its port only
    /// (`tls`), since the reactor has no TLS.
    Http {
        /// Host name or IP literal (IPv6 without brackets).
        host: String,
        /// Port (80, 443 by default).
        port: u16,
        /// Path and query, starting with `/`.
        path: String,
        /// `https://`: reachability of the port only.
        tls: bool,
    },
    /// `host:port`: a TCP connect.
    Tcp {
        /// Host name or IP literal (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
    },
}

/// A host: an IP literal, or a name of letters, digits, `.`, `-` and `_`.
fn check_host(host: &str, what: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err(format!("{what}: the host is empty"));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if host.len() > 253 || !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) {
        return Err(format!("{what}: {host:?} is not a host name or an IP address"));
    }
    Ok(())
}

/// Splits `host[:port]` or `[v6][:port]`; the port is required unless `default` is given.
fn host_port(s: &str, default: Option<u16>, what: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| format!("{what}: an unclosed '[' in {s:?}"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{what}: [{h}] is not an IPv6 address"));
        }
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or_else(|| format!("{what}: {s:?}: expected ':' after ']'"))?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(format!("{what}: write an IPv6 address in brackets, as [{h}]:port"));
            }
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match (port, default) {
        (Some(p), _) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("{what}: port {p:?} is not a number from 1 to 65535")),
        },
        (None, Some(d)) => d,
        (None, None) => return Err(format!("{what}: {s:?} has no port (host:port, or an http:// URL)")),
    };
    check_host(host, what)?;
    Ok((host.to_string(), port))
}

impl Target {
    /// Reads `http://host[:port][/path]`, `https://...` or `host:port` (`[v6]:port`).
    pub fn parse(s: &str) -> Result<Target, String> {
        let what = "the address";
        let s = s.trim();
        if s.is_empty() {
            return Err(format!("{what} is empty"));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control() || !c.is_ascii()) {
            return Err(format!("{what} {s:?} contains {c:?}"));
        }
        let lower = s.to_ascii_lowercase();
        let (tls, rest) = if lower.starts_with("http://") {
            (false, &s[7..])
        } else if lower.starts_with("https://") {
            (true, &s[8..])
        } else if let Some((scheme, _)) = s.split_once("://") {
            return Err(format!("{what} {s:?}: scheme {scheme:?} is not supported (http://, https:// or host:port)"));
        } else {
            let (host, port) = host_port(s, None, what)?;
            return Ok(Target::Tcp { host, port });
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let cut = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(cut);
        if authority.contains('@') {
            return Err(format!("{what} {s:?}: user names in URLs are not supported"));
        }
        let (host, port) = host_port(authority, Some(if tls { 443 } else { 80 }), what)?;
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Target::Http { host, port, path, tls })
    }

    /// The host to resolve or connect to.
    pub fn host(&self) -> &str {
        match self {
            Target::Http { host, .. } | Target::Tcp { host, .. } => host,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Target::Http { port, .. } | Target::Tcp { port, .. } => *port,
        }
    }

    /// The HTTP request to send, if the probe is an HTTP `HEAD`.
    pub fn request(&self) -> Option<String> {
        match self {
            Target::Http { host, port, path, tls: false } => {
                let h = if host.contains(':') { format!("[{host}]") } else { host.clone() };
                let h = if *port == 80 { h } else { format!("{h}:{port}") };
                Some(format!("HEAD {path} HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\nUser-Agent: lookout\r\n\r\n"))
            }
            _ => None,
        }
    }

    /// What a probe of this target does, for `status`.
    pub fn method(&self) -> &'static str {
        match self {
            Target::Http { tls: false, .. } => "HTTP HEAD",
            Target::Http { tls: true, .. } => "TCP connect (https: no TLS in the reactor)",
            Target::Tcp { .. } => "TCP connect",
        }
    }
}

/// What an HTTP reply's first line means: `Ok("HTTP <code>")` for a status below 500, an error
/// otherwise. `line` is the status line without its `\r\n`.
pub fn http_status(line: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split(' ');
    let version = words.next().unwrap_or_default();
    let code = words.next().unwrap_or_default();
    if !version.starts_with("HTTP/") || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        let shown: String = text.chars().take(60).collect();
        return Err(format!("not an HTTP reply: {shown:?}"));
    }
    if code.as_bytes()[0] >= b'5' {
        return Err(format!("the server answered HTTP {code}"));
    }
    Ok(format!("HTTP {code}"))
}

/// A check's settings, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSettings {
    /// The check's name: the subject's name.
    pub check: String,
    /// The address as written (`CONNECTIVITY_ADDRESS`): part of the alert's name.
    pub address: String,
    /// What to probe.
    pub target: Target,
    /// Time between probes (ms, at least 1000).
    pub interval_ms: u64,
    /// Time a probe (resolution included) may take (ms, at most the interval).
    pub timeout_ms: u64,
    /// Probes in a row that must fail before the CRITICAL (at least 1).
    pub failures: u32,
}

/// A change in the network that the kernel announced (one reactor turn's worth of rtnetlink
/// messages, summed up).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetChange {
    /// The first thing that went away (a link down, a route or address removed), in words.
    pub down: Option<String>,
    /// Something came up (a link, a route, an address).
    pub up: bool,
    /// Messages were lost (the socket overran): anything may have changed.
    pub overrun: bool,
}

impl NetChange {
    /// Whether anything happened.
    pub fn is_empty(&self) -> bool {
        self.down.is_none() && !self.up && !self.overrun
    }
}

/// What is due at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    /// Drop the probe going (timed out, or replaced by a new one).
    pub abort: bool,
    /// Start a probe now.
    pub start: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Running {
    deadline: Instant,
    /// Why the probe is urgent (its failure raises the CRITICAL at once).
    urgent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Clear,
    Raised,
    /// Open when the agent stopped; the first success clears it.
    Restored,
}

/// Counters of one connectivity check.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnCounters {
    /// Probes that ended (success, failure or timeout).
    pub probes: u64,
    /// Probes that failed (timeouts included).
    pub failures: u64,
    /// Probes that timed out.
    pub timeouts: u64,
    /// Probes started at once by a network change.
    pub immediate_probes: u64,
    /// Alerts raised or cleared.
    pub alerts: u64,
}

/// One connectivity check's schedule and alert state.
#[derive(Debug, Clone)]
pub struct ConnDetector {
    settings: ConnSettings,
    next_start: Instant,
    running: Option<Running>,
    /// A probe wanted at once (a network change), and why it is urgent, if it is.
    immediate: Option<Option<String>>,
    failed_in_a_row: u32,
    open: Open,
    last: Option<Result<String, String>>,
    counters: ConnCounters,
}

impl ConnDetector {
    /// A detector whose first probe is due at `now`.
    pub fn new(settings: ConnSettings, now: Instant) -> Self {
        ConnDetector {
            settings,
            next_start: now,
            running: None,
            immediate: None,
            failed_in_a_row: 0,
            open: Open::Clear,
            last: None,
            counters: ConnCounters::default(),
        }
    }

    /// The alert name, the same for the CRITICAL and its OK.
    pub fn alert_name(&self) -> String {
        alert_name(&self.settings.address)
    }

    /// The settings.
    pub fn settings(&self) -> &ConnSettings {
        &self.settings
    }

    /// A CRITICAL was open when the agent stopped: the first success clears it.
    pub fn restore(&mut self) {
        self.open = Open::Restored;
    }

    /// Whether a CRITICAL is open.
    pub fn is_open(&self) -> bool {
        self.open != Open::Clear
    }

    /// The last probe's result: what answered, or why it failed.
    pub fn last(&self) -> Option<&Result<String, String>> {
        self.last.as_ref()
    }

    /// Probes failed in a row.
    pub fn failed_in_a_row(&self) -> u32 {
        self.failed_in_a_row
    }

    /// Counters so far.
    pub fn counters(&self) -> ConnCounters {
        self.counters
    }

    /// Whether a probe is going.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// When [`on_tick`](Self::on_tick) has something to do.
    pub fn next_deadline(&self, now: Instant) -> Instant {
        if self.immediate.is_some() {
            return now;
        }
        match &self.running {
            Some(r) => r.deadline.min(self.next_start),
            None => self.next_start,
        }
    }

    /// The network changed: a probe now, urgent if something went down. Something coming up
    /// matters only while probes fail.
    pub fn on_net(&mut self, change: &NetChange) {
        let failing = self.failed_in_a_row > 0 || self.open != Open::Clear;
        if let Some(why) = &change.down {
            self.immediate = Some(Some(why.clone()));
        } else if (change.up && failing) || change.overrun {
            self.immediate.get_or_insert(None);
        }
    }

    /// What is due at `now`: a probe timed out (its failure is counted here), a probe to start.
    pub fn on_tick(&mut self, now: Now, emit: &mut impl FnMut(Alert)) -> Due {
        let mut due = Due::default();
        if self.running.as_ref().is_some_and(|r| r.deadline <= now.mono) {
            due.abort = true;
            self.counters.timeouts += 1;
            let why = format!("no answer within {} s", self.settings.timeout_ms / 1000);
            self.on_result(now, Err(why), emit);
        }
        let immediate = self.immediate.take();
        if immediate.is_some() || self.next_start <= now.mono {
            if self.running.is_some() {
                due.abort = true;
            }
            if immediate.is_some() {
                self.counters.immediate_probes += 1;
            }
            if self.next_start <= now.mono {
                self.next_start = crate::detect::program::next_slot(now.mono, self.settings.interval_ms);
            }
            let urgent = immediate.flatten().or_else(|| self.running.take().and_then(|r| r.urgent));
            self.running = Some(Running { deadline: now.mono.plus_ms(self.settings.timeout_ms), urgent });
            due.start = true;
        }
        due
    }

    /// The probe going ended: what answered (`Ok`), or why it failed.
    pub fn on_result(&mut self, now: Now, result: Result<String, String>, emit: &mut impl FnMut(Alert)) {
        let urgent = self.running.take().and_then(|r| r.urgent);
        self.counters.probes += 1;
        match &result {
            Ok(what) => {
                self.failed_in_a_row = 0;
                if self.open != Open::Clear {
                    self.open = Open::Clear;
                    let d = format!("{} answers again ({what})", self.settings.address);
                    self.emit(now, Level::Ok, d, emit);
                }
            }
            Err(why) => {
                self.counters.failures += 1;
                self.failed_in_a_row = self.failed_in_a_row.saturating_add(1);
                let n = self.failed_in_a_row;
                let description = match &urgent {
                    Some(cause) => Some(format!("{cause}; then {}: {why}", self.settings.address)),
                    None if n >= self.settings.failures => {
                        let times = if n == 1 { "once".to_string() } else { format!("{n} times in a row") };
                        Some(format!("{} failed {times}: {why}", self.settings.address))
                    }
                    None => None,
                };
                match (self.open, description) {
                    (Open::Clear, Some(d)) => {
                        self.open = Open::Raised;
                        self.emit(now, Level::Critical, d, emit);
                    }
                    (Open::Restored, Some(_)) => self.open = Open::Raised,
                    _ => {}
                }
            }
        }
        self.last = Some(result);
    }

    /// Clears an open CRITICAL with an OK saying `why` (the check went away or changed).
    pub fn clear(&mut self, now: Now, why: &str, emit: &mut impl FnMut(Alert)) {
        if self.open != Open::Clear {
            self.open = Open::Clear;
            self.emit(now, Level::Ok, why.to_string(), emit);
        }
    }

    /// Takes over another detector's alert state and counts (a reconfigured check, same name).
    pub fn adopt(&mut self, other: &ConnDetector) {
        self.open = other.open;
        self.last = other.last.clone();
        self.failed_in_a_row = other.failed_in_a_row;
        self.counters = other.counters;
    }

    fn emit(&mut self, now: Now, level: Level, description: String, emit: &mut impl FnMut(Alert)) {
        self.counters.alerts += 1;
        let status = if level == Level::Ok { STATUS_OK } else { STATUS_UNREACHABLE };
        emit(Alert {
            name: self.alert_name(),
            level,
            timestamp: rfc3339(now.wall),
            subject: Subject {
                name: self.settings.check.clone(),
                kind: SUBJECT_TYPE.into(),
                status: status.into(),
                details: Some(Details { description, lines_before: None, line_matching: None, lines_after: None }),
            },
        });
    }
}

/// `Unable to connect to the address '<address>'`: the alert name, as Mender's demo names it.
pub fn alert_name(address: &str) -> String {
    format!("Unable to connect to the address '{address}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ConnSettings {
        ConnSettings {
            check: "example".into(),
            address: "http://10.0.0.2/".into(),
            target: Target::parse("http://10.0.0.2/").unwrap(),
            interval_ms: 60_000,
            timeout_ms: 5_000,
            failures: 3,
        }
    }

    /// Runs a tick at `at`; returns what is due and the alerts as (level, description).
    fn tick(d: &mut ConnDetector, at: u64) -> (Due, Vec<(Level, String)>) {
        let mut out = Vec::new();
        let due = d.on_tick(Now::at(at), &mut |a| out.push(a));
        (due, out.into_iter().map(summary).collect())
    }

    fn result(d: &mut ConnDetector, at: u64, r: Result<&str, &str>) -> Vec<(Level, String)> {
        let mut out = Vec::new();
        d.on_result(Now::at(at), r.map(str::to_string).map_err(str::to_string), &mut |a| out.push(a));
        out.into_iter().map(summary).collect()
    }

    fn summary(a: Alert) -> (Level, String) {
        assert_eq!(a.name, "Unable to connect to the address 'http://10.0.0.2/'");
        assert_eq!((a.subject.name.as_str(), a.subject.kind.as_str()), ("example", "connectivity"));
        (a.level, a.subject.details.map(|d| d.description).unwrap_or_default())
    }

    const START: Due = Due { abort: false, start: true };

    #[test]
    fn targets() {
        let http = |host: &str, port, path: &str, tls| Target::Http { host: host.into(), port, path: path.into(), tls };
        assert_eq!(Target::parse("http://example.com"), Ok(http("example.com", 80, "/", false)));
        assert_eq!(Target::parse("HTTP://example.com:8080/a/b?x=1#frag"), Ok(http("example.com", 8080, "/a/b?x=1", false)));
        assert_eq!(Target::parse("http://h?q"), Ok(http("h", 80, "/?q", false)));
        assert_eq!(Target::parse("https://example.com"), Ok(http("example.com", 443, "/", true)));
        assert_eq!(Target::parse("http://[fd00::1]:81/"), Ok(http("fd00::1", 81, "/", false)));
        assert_eq!(Target::parse("10.0.0.2:22"), Ok(Target::Tcp { host: "10.0.0.2".into(), port: 22 }));
        assert_eq!(Target::parse("[::1]:22"), Ok(Target::Tcp { host: "::1".into(), port: 22 }));
        for (bad, says) in [
            ("", "empty"),
            ("example.com", "has no port"),
            ("example.com:0", "port \"0\""),
            ("example.com:http", "port \"http\""),
            ("::1:22", "in brackets"),
            ("[nope]:22", "not an IPv6"),
            ("ftp://example.com", "scheme \"ftp\""),
            ("http://user@example.com/", "user names"),
            ("http://exa mple.com/", "contains ' '"),
            ("http://ex%ample.com/", "not a host name"),
            ("http://example.com:99999/", "port \"99999\""),
            ("http:///x", "host is empty"),
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn requests() {
        let r = Target::parse("http://example.com/x?y").unwrap().request().unwrap();
        assert_eq!(r, "HEAD /x?y HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\nUser-Agent: lookout\r\n\r\n");
        let r = Target::parse("http://[fd00::1]:8080").unwrap().request().unwrap();
        assert!(r.contains("Host: [fd00::1]:8080\r\n"), "{r}");
        assert_eq!(Target::parse("https://example.com").unwrap().request(), None);
        assert_eq!(Target::parse("h:1").unwrap().request(), None);
    }

    #[test]
    fn http_statuses() {
        assert_eq!(http_status(b"HTTP/1.1 200 OK"), Ok("HTTP 200".into()));
        assert_eq!(http_status(b"HTTP/1.0 404 Not Found"), Ok("HTTP 404".into()));
        assert_eq!(http_status(b"HTTP/1.1 503 Service Unavailable"), Err("the server answered HTTP 503".into()));
        assert!(http_status(b"SSH-2.0-OpenSSH").unwrap_err().starts_with("not an HTTP reply"));
        assert!(http_status(b"HTTP/1.1 2000").is_err());
        assert!(http_status(&[0xff; 500]).unwrap_err().len() < 300);
    }

    #[test]
    fn critical_after_the_failure_count_and_ok_after_one_success() {
        let mut d = ConnDetector::new(settings(), Instant::from_millis(1_000));
        assert_eq!(d.next_deadline(Instant::from_millis(0)), Instant::from_millis(1_000));
        assert_eq!(tick(&mut d, 1_000), (START, vec![]));
        assert_eq!(d.next_deadline(Instant::from_millis(1_000)), Instant::from_millis(6_000));
        assert_eq!(result(&mut d, 1_010, Ok("HTTP 200")), vec![]);
        // The grid: multiples of the interval.
        assert_eq!(d.next_deadline(Instant::from_millis(1_010)), Instant::from_millis(60_000));
        assert_eq!(tick(&mut d, 60_000), (START, vec![]));
        assert_eq!(result(&mut d, 60_001, Err("connect to 10.0.0.2:80: Connection refused")), vec![]);
        assert_eq!(tick(&mut d, 120_000), (START, vec![]));
        assert_eq!(result(&mut d, 120_001, Err("connect to 10.0.0.2:80: Connection refused")), vec![]);
        assert_eq!(tick(&mut d, 180_000), (START, vec![]));
        assert_eq!(
            result(&mut d, 180_001, Err("connect to 10.0.0.2:80: Connection refused")),
            vec![(Level::Critical, "http://10.0.0.2/ failed 3 times in a row: connect to 10.0.0.2:80: Connection refused".into())]
        );
        assert_eq!(tick(&mut d, 240_000), (START, vec![]));
        assert_eq!(result(&mut d, 240_001, Err("again")), vec![]);
        assert_eq!(tick(&mut d, 300_000), (START, vec![]));
        assert_eq!(result(&mut d, 300_002, Ok("HTTP 204")), vec![(Level::Ok, "http://10.0.0.2/ answers again (HTTP 204)".into())]);
        assert_eq!(d.counters(), ConnCounters { probes: 6, failures: 4, timeouts: 0, immediate_probes: 0, alerts: 2 });
    }

    #[test]
    fn a_probe_times_out_at_its_deadline() {
        let s = ConnSettings { failures: 1, ..settings() };
        let mut d = ConnDetector::new(s, Instant::from_millis(0));
        tick(&mut d, 0);
        assert_eq!(tick(&mut d, 4_999), (Due::default(), vec![]));
        assert_eq!(
            tick(&mut d, 5_000),
            (Due { abort: true, start: false }, vec![(Level::Critical, "http://10.0.0.2/ failed once: no answer within 5 s".into())])
        );
        assert!(!d.is_running());
        assert_eq!(d.next_deadline(Instant::from_millis(5_000)), Instant::from_millis(60_000));
        assert_eq!(d.counters().timeouts, 1);
    }

    #[test]
    fn a_link_down_probes_at_once_and_its_failure_is_critical_at_once() {
        let mut d = ConnDetector::new(settings(), Instant::from_millis(0));
        tick(&mut d, 0);
        result(&mut d, 10, Ok("HTTP 200"));
        // Something came up while all is well: nothing to do.
        d.on_net(&NetChange { up: true, ..NetChange::default() });
        assert_eq!(d.next_deadline(Instant::from_millis(20_000)), Instant::from_millis(60_000));
        d.on_net(&NetChange { down: Some("link veth0 went down".into()), up: false, overrun: false });
        assert_eq!(d.next_deadline(Instant::from_millis(20_000)), Instant::from_millis(20_000));
        assert_eq!(tick(&mut d, 20_000), (START, vec![]));
        assert_eq!(
            result(&mut d, 20_001, Err("connect to 10.0.0.2:80: Network is unreachable")),
            vec![(Level::Critical, "link veth0 went down; then http://10.0.0.2/: connect to 10.0.0.2:80: Network is unreachable".into())]
        );
        // The link comes back while failing: a probe at once, and its success clears.
        d.on_net(&NetChange { up: true, ..NetChange::default() });
        assert_eq!(tick(&mut d, 25_000), (START, vec![]));
        assert_eq!(result(&mut d, 25_003, Ok("HTTP 200")), vec![(Level::Ok, "http://10.0.0.2/ answers again (HTTP 200)".into())]);
        assert_eq!(d.counters().immediate_probes, 2);
        // The grid goes on.
        assert_eq!(d.next_deadline(Instant::from_millis(25_003)), Instant::from_millis(60_000));
    }

    #[test]
    fn a_change_during_a_probe_restarts_it_and_keeps_it_urgent() {
        let mut d = ConnDetector::new(settings(), Instant::from_millis(0));
        tick(&mut d, 0);
        result(&mut d, 10, Ok("HTTP 200"));
        d.on_net(&NetChange { down: Some("default route (IPv4) removed".into()), ..NetChange::default() });
        assert_eq!(tick(&mut d, 30_000), (START, vec![]));
        // An overrun while the urgent probe goes: replaced, still urgent.
        d.on_net(&NetChange { overrun: true, ..NetChange::default() });
        assert_eq!(tick(&mut d, 30_100), (Due { abort: true, start: true }, vec![]));
        let (due, alerts) = tick(&mut d, 35_100);
        assert_eq!(due, Due { abort: true, start: false });
        assert_eq!(alerts, vec![(Level::Critical, "default route (IPv4) removed; then http://10.0.0.2/: no answer within 5 s".into())]);
    }

    #[test]
    fn a_restored_critical_is_cleared_by_a_success_and_not_repeated() {
        let mut d = ConnDetector::new(settings(), Instant::from_millis(0));
        d.restore();
        tick(&mut d, 0);
        assert_eq!(result(&mut d, 1, Err("refused")), vec![]);
        assert!(d.is_open());
        // Failing (restored): an up event probes at once.
        d.on_net(&NetChange { up: true, ..NetChange::default() });
        assert_eq!(tick(&mut d, 100), (START, vec![]));
        assert_eq!(result(&mut d, 101, Ok("connected")).len(), 1);
        assert!(!d.is_open());
        let mut out = Vec::new();
        d.clear(Now::at(200), "check disabled", &mut |a| out.push(a));
        assert!(out.is_empty());
    }
}
