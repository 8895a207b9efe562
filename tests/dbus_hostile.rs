//! Hostile peers on a real dbus-daemon (private, started with --nofork, killed by PID): a peer
//! that floods a `dbus` check with signals, one that sends messages at the size limit and over
//! it, and names that are owned but never answer (a Mender client, a systemd). Each time the
//! agent's other checks keep alerting with their usual latency, `status` keeps answering, memory
//! stays bounded, and what happened is counted in `status`.
//!
//! The hostile peers are raw connections written here with lookout's own encoder: unlike
//! libdbus, they answer nothing by themselves, and they write as fast as the socket takes.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use lookout::dbus::message::{MAX_MESSAGE, Message, decode, message_len};
use lookout::dbus::sasl;
use lookout::dbus::wire::Value;
use serde_json::Value as Json;

/// A blocking D-Bus connection that does only what the test says.
struct RawPeer {
    stream: UnixStream,
    serial: u32,
    input: Vec<u8>,
    /// The name the bus gave it.
    unique: String,
}

impl RawPeer {
    fn connect(bus: &Bus) -> RawPeer {
        // The socket file exists from dbus-daemon's bind; it may not listen yet.
        let mut stream = None;
        wait_until("the bus to accept connections", || {
            stream = UnixStream::connect(&bus.socket).ok();
            stream.is_some()
        });
        let mut stream = stream.unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(&sasl::hello(nix::unistd::getuid().as_raw())).unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            assert_eq!(stream.read(&mut byte).unwrap(), 1, "the bus hung up during authentication");
            line.push(byte[0]);
        }
        assert!(line.starts_with(b"OK "), "{}", String::from_utf8_lossy(&line));
        stream.write_all(b"BEGIN\r\n").unwrap();
        let mut peer = RawPeer { stream, serial: 0, input: Vec::new(), unique: String::new() };
        let hello = peer.call(Message::to_bus("Hello", vec![]));
        peer.unique = hello.body[0].as_str().unwrap().to_string();
        peer
    }

    fn send(&mut self, m: &Message) -> u32 {
        self.serial += 1;
        self.stream.write_all(&m.encode(self.serial).unwrap()).unwrap();
        self.serial
    }

    fn read_message(&mut self) -> Message {
        let mut chunk = [0u8; 4096];
        loop {
            if self.input.len() >= 16 {
                let len = message_len(self.input[..16].try_into().unwrap()).unwrap();
                if self.input.len() >= len {
                    let m = decode(&self.input[..len]).unwrap();
                    self.input.drain(..len);
                    return m;
                }
            }
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the bus hung up");
            self.input.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next message as bytes, whatever its length.
    fn read_frame(&mut self) -> Vec<u8> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if self.input.len() >= 16 {
                let u32_at = |i: usize| u32::from_le_bytes(self.input[i..i + 4].try_into().unwrap()) as usize;
                let header = 16 + u32_at(12);
                let len = header + (8 - header % 8) % 8 + u32_at(4);
                if self.input.len() >= len {
                    return self.input.drain(..len).collect();
                }
            }
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the bus hung up");
            self.input.extend_from_slice(&chunk[..n]);
        }
    }

    /// Calls and waits for the answer (other messages are dropped).
    fn call(&mut self, m: Message) -> Message {
        let serial = self.send(&m);
        loop {
            let r = self.read_message();
            if r.reply_serial == Some(serial) {
                return r;
            }
        }
    }

    /// Takes `name` (primary owner, or the test fails).
    fn own(&mut self, name: &str) {
        let r = self.call(Message::to_bus("RequestName", vec![Value::Str(name.into()), Value::U32(4)]));
        assert_eq!(r.body, [Value::U32(1)], "{name} is owned by someone else");
    }
}

/// A signal `member` on `com.example.<iface>` whose one string argument is `text`.
fn signal(iface: &str, member: &str, text: &str) -> Message {
    Message::signal("/com/example", &format!("com.example.{iface}"), member, vec![Value::Str(text.into())])
}

/// The bytes of a signal whose one string argument is `len` bytes: `lead`, then `fill` (so `len`
/// is at least `lead`'s length). Built by hand for any length: lookout's encoder refuses what it
/// would not accept.
fn signal_bytes(iface: &str, lead: &str, fill: u8, len: usize, serial: u32) -> Vec<u8> {
    assert!(len >= lead.len());
    let mut bytes = signal(iface, "Big", "").encode(serial).unwrap();
    // The body is the string's length (u32), its bytes, a NUL: 5 bytes when empty.
    let at = bytes.len() - 5;
    bytes.truncate(at);
    bytes[4..8].copy_from_slice(&((len + 5) as u32).to_le_bytes());
    bytes.extend_from_slice(&(len as u32).to_le_bytes());
    bytes.extend_from_slice(lead.as_bytes());
    bytes.resize(at + 4 + len, fill);
    bytes.push(0);
    bytes
}

/// Resident memory of `pid`, KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()).unwrap()
}

fn status(root: &Root) -> Json {
    let out = root.ctl(&["status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `status`, and how long it took to answer.
fn timed_status(root: &Root) -> (Json, Duration) {
    let t0 = Instant::now();
    let s = status(root);
    (s, t0.elapsed())
}

fn check_status(s: &Json, name: &str) -> Json {
    s["checks"].as_array().into_iter().flatten().find(|c| c["name"] == name).cloned().unwrap_or_default()
}

fn counter(s: &Json, name: &str, key: &str) -> u64 {
    check_status(s, name)["counters"][key].as_u64().unwrap_or(0)
}

fn matching(a: &Json) -> String {
    a["subject"]["details"]["line_matching"]["data"].as_str().unwrap_or_default().to_string()
}

/// Writes `line` to `log` and returns how long its CRITICAL took to reach the server.
fn probe(server: &AlertServer, log: &Path, line: &str) -> Duration {
    let t0 = Instant::now();
    append(log, format!("{line}\n").as_bytes());
    server.wait_for(&format!("the alert for {line:?}"), |a| a.iter().any(|x| matching(x) == line));
    let at = server.alerts().into_iter().find(|(_, a)| matching(a) == line).map(|(at, _)| at).unwrap();
    at.saturating_duration_since(t0)
}

/// The agent, with the test's bus as the system bus, sending to `server`.
fn agent(root: &Root, server: &AlertServer, bus: &Bus) -> Daemon {
    let mut cmd = Daemon::command(root, Some(server));
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", bus.address());
    Daemon::spawn(root, cmd)
}

fn wait_watching(root: &Root, name: &str) {
    wait_until(&format!("check {name} to watch the bus"), || check_status(&status(root), name)["source"]["state"] == "watching");
}

/// A log check `name` on `<root>/logs/<name>.log` for `ERROR`, clearing after 1 s.
fn log_check(root: &Root, name: &str) -> std::path::PathBuf {
    let log = root.log(&format!("{name}.log"));
    root.ctl_ok(&["create", "log", name, "ERROR", log.to_str().unwrap(), "1"]);
    root.ctl_ok(&["enable", "log", name]);
    log
}

/// The most a log alert may take while the bus is hostile, on a loaded 2-core machine; without
/// a hostile peer it takes milliseconds.
const LATENCY_BOUND: Duration = Duration::from_secs(5);

#[test]
fn a_flood_of_signals_does_not_hold_up_the_other_checks_or_grow_memory() {
    let root = Root::new("dbus-flood");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    root.ctl_ok(&["create", "dbus", "flood", "x", "member=Flood", "type='signal',interface='com.example.Flood'"]);
    root.ctl_ok(&["enable", "dbus", "flood"]);
    let logs: Vec<_> = (1..=3).map(|i| log_check(&root, &format!("app{i}"))).collect();
    let daemon = agent(&root, &server, &bus);
    wait_watching(&root, "flood");
    let before = rss_kib(daemon.pid());

    // The check sees what dbus-monitor sees: as root a monitor, else eavesdropping (the test
    // bus's policy allows it); either way the unicast half of the flood reaches it too.
    let mode = check_status(&status(&root), "flood")["source"]["mode"].as_str().unwrap_or_default().to_string();
    let want = if nix::unistd::geteuid().is_root() { "monitor:" } else { "eavesdrop (" };
    assert!(mode.starts_with(want), "{mode}");

    // The flood: as fast as the bus takes them, ~200-byte signals, until told to stop; every
    // other one is sent to the bus driver (which ignores signals), seen only by a monitor.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let flooder = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        let mut peer = RawPeer::connect(&bus);
        thread::spawn(move || {
            let broadcast = signal("Flood", "Flood", &"f".repeat(100));
            let mut unicast = broadcast.clone();
            unicast.destination = Some("org.freedesktop.DBus".into());
            let mut both = [broadcast.encode(1).unwrap(), unicast.encode(1).unwrap()];
            let mut batch = Vec::with_capacity(both[1].len() * 64);
            let mut serial = 1u32;
            while !stop.load(Ordering::Relaxed) {
                batch.clear();
                for i in 0..64 {
                    serial = serial.wrapping_add(1).max(1);
                    let m = &mut both[i % 2];
                    m[8..12].copy_from_slice(&serial.to_le_bytes());
                    batch.extend_from_slice(m);
                }
                if peer.stream.write_all(&batch).is_err() {
                    return;
                }
                sent.fetch_add(64, Ordering::Relaxed);
            }
        })
    };
    wait_until("the flood to reach the check", || counter(&status(&root), "flood", "signals") > 10_000);

    // Meanwhile: log alerts, status, memory.
    let mut latencies = Vec::new();
    let mut status_times = Vec::new();
    let mut peak = before;
    for (i, log) in logs.iter().enumerate() {
        latencies.push(probe(&server, log, &format!("ERROR probe {i}")));
        let (_, took) = timed_status(&root);
        status_times.push(took);
        peak = peak.max(rss_kib(daemon.pid()));
        thread::sleep(Duration::from_millis(500));
        peak = peak.max(rss_kib(daemon.pid()));
    }
    let (s, _) = timed_status(&root);
    let seen = counter(&s, "flood", "signals");
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    let after = rss_kib(daemon.pid());
    println!(
        "flood: {} signals sent, {seen} seen by the check in {took:?} ({:.0}/s); log alert latency {latencies:?}; \
         status took {status_times:?}; RSS {before} KiB before, {peak} KiB peak, {after} KiB after",
        sent.load(Ordering::Relaxed),
        seen as f64 / took.as_secs_f64()
    );
    for l in &latencies {
        assert!(*l < LATENCY_BOUND, "a log alert took {l:?} during the flood (all: {latencies:?})");
    }
    for t in &status_times {
        assert!(*t < LATENCY_BOUND, "status took {t:?} during the flood");
    }
    assert!(peak < before + 64 * 1024, "RSS grew from {before} KiB to {peak} KiB during the flood");
    assert!(seen > 10_000, "{seen}");
    // The check raised its one CRITICAL and stayed up on its one connection.
    assert_eq!(counter(&s, "flood", "disconnects"), 0, "{}", check_status(&s, "flood"));
    assert_eq!(check_status(&s, "flood")["level"], "CRITICAL");
    drop(daemon);
}

#[test]
fn messages_at_the_size_limit_are_read_and_over_it_skipped_without_losing_the_connection() {
    let root = Root::new("dbus-big");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    root.ctl_ok(&["create", "dbus", "big", "x", "marker-", "type='signal',interface='com.example.Big'"]);
    root.ctl_ok(&["enable", "dbus", "big"]);
    let daemon = agent(&root, &server, &bus);
    wait_watching(&root, "big");
    let mut peer = RawPeer::connect(&bus);
    // Sees what the agent sees, to check that the first message arrives exactly at the limit
    // (the bus adds the sender's name to every message it passes on).
    let mut witness = RawPeer::connect(&bus);
    witness.call(Message::add_match("type='signal',interface='com.example.Big'".into()));
    // Exactly the largest message the agent accepts, then one twice as long, then a small one
    // right after it (a connection dropped over the long one would miss it: the bus keeps
    // nothing for a connection that is not there).
    let mut probe = signal("Big", "Big", "");
    probe.sender = Some(peer.unique.clone());
    let overhead = probe.encode(2).unwrap().len();
    let at_limit = signal_bytes("Big", "marker-at-limit ", b'a', MAX_MESSAGE - overhead, 2);
    peer.stream.write_all(&at_limit).unwrap();
    let over = signal_bytes("Big", "marker-over ", b'o', 2 * MAX_MESSAGE, 3);
    peer.stream.write_all(&over).unwrap();
    peer.serial = 3;
    peer.send(&signal("Big", "Small", "marker-after"));
    let sizes: Vec<usize> = (0..3).map(|_| witness.read_frame().len()).collect();
    assert_eq!(sizes[0], MAX_MESSAGE, "as the bus passes it on: {sizes:?}");
    assert!(sizes[1] > 2 * MAX_MESSAGE, "{sizes:?}");
    let alerts = server.wait_alerts(1);
    let line = matching(&alerts[0]);
    assert!(line.starts_with("   string \"marker-at-limit aaaa"), "{}", &line[..line.len().min(80)]);
    assert!(line.len() <= 16 * 1024 + 64, "the line in the alert is cut to LOG_MAX_LINE_BYTES: {} bytes", line.len());
    // The CRITICAL stays (no expiry): the next signals show in the check's counters.
    wait_until("the small signal after the long one", || counter(&status(&root), "big", "signals") >= 2);
    let s = status(&root);
    let c = check_status(&s, "big");
    println!("size limit: {}", c["counters"]);
    assert_eq!(c["counters"]["signals"], 2, "the one at the limit and the small one after the long one: {c}");
    assert_eq!(c["counters"]["oversized_messages"], 1, "{c}");
    assert_eq!(c["counters"]["disconnects"], 0, "{c}");
    assert!(c["counters"]["truncated_lines_in_alerts"].as_u64().unwrap_or(0) >= 1, "{c}");
    daemon.wait_log("check dbus big: D-Bus: skipped a message of");
    drop(daemon);
}

#[test]
fn a_mender_client_that_never_answers_holds_up_nothing() {
    let root = Root::new("dbus-silent-mender");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    let log = log_check(&root, "app");
    // Owns the name and reads nothing: GetJwtToken waits forever.
    let mut silent = RawPeer::connect(&bus);
    silent.own("io.mender.AuthenticationManager");
    let daemon = agent_via_mender_client(&root, &bus);
    let t0 = Instant::now();
    append(&log, b"ERROR while the client says nothing\n");
    wait_until("the CRITICAL to wait in the spool", || status(&root)["uplink"]["queue_depth"] == 1);
    let (s, took) = timed_status(&root);
    assert!(took < LATENCY_BOUND, "status took {took:?}");
    assert_eq!(check_status(&s, "app")["level"], "CRITICAL", "the check alerted at once ({:?})", t0.elapsed());
    // After the call's 10 s: said, counted, and the agent still turns.
    wait_until("GetJwtToken to time out", || status(&root)["agent"]["mender_client_call_timeouts"].as_u64().unwrap_or(0) >= 1);
    let s = status(&root);
    let auth = s["uplink"]["auth"].as_str().unwrap_or_default().to_string();
    // GetJwtToken at the start, and FetchJwtToken when the worker asks for a token: both time
    // out; which is said last depends on the machine's speed (under qemu, Fetch's often).
    assert!(
        ["GetJwtToken", "FetchJwtToken"].iter().any(|call| auth == format!("{call} failed: lookout.Timeout: no reply in time")),
        "{auth}"
    );
    daemon.wait_log("Mender client: GetJwtToken failed: lookout.Timeout: no reply in time");
    // The silent one goes, a real one comes with a token: the alert is delivered.
    drop(silent);
    let _client = MenderClient::start(&root, &bus, Some(("T1", server.url())));
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["level"], "CRITICAL");
    drop(daemon);
}

#[test]
fn a_systemd_that_never_answers_on_the_bus_holds_up_nothing() {
    let root = Root::new("dbus-silent-systemd");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    let mut silent = RawPeer::connect(&bus);
    silent.own("org.freedesktop.systemd1");
    root.ctl_ok(&["create", "service", "x", "systemd"]);
    root.ctl_ok(&["enable", "service", "x"]);
    let log = log_check(&root, "app");
    let daemon = agent(&root, &server, &bus);
    let latency = probe(&server, &log, "ERROR while systemd says nothing");
    assert!(latency < LATENCY_BOUND, "{latency:?}");
    let (s, took) = timed_status(&root);
    assert!(took < LATENCY_BOUND, "status took {took:?}");
    assert_eq!(s["agent"]["systemd_connected"], 1);
    wait_until("the calls to time out", || status(&root)["agent"]["systemd_call_timeouts"].as_u64().unwrap_or(0) >= 1);
    daemon.wait_log("failed: lookout.Timeout: no reply in time");
    let latency = probe(&server, &root.log("app.log"), "ERROR after the timeouts");
    assert!(latency < LATENCY_BOUND, "{latency:?}");
    println!("silent systemd: {}", status(&root)["agent"]);
    assert!(server.alerts().iter().all(|(_, a)| a["subject"]["type"] != "service"), "nothing said about the unit");
    drop(daemon);
    drop(silent);
}

/// Every unique name on the bus but `except`'s: where a hostile peer sends signals meant for
/// the agent (it need not know which connection is which).
fn unique_names(peer: &mut RawPeer, except: &[&str]) -> Vec<String> {
    let names = peer.call(Message::to_bus("ListNames", vec![]));
    let Some(Value::Array(_, names)) = names.body.first() else { panic!("ListNames: {names:?}") };
    names.iter().filter_map(Value::as_str).filter(|n| n.starts_with(':') && !except.contains(n)).map(str::to_string).collect()
}

#[test]
fn a_forged_token_signal_does_not_redirect_the_alerts() {
    let root = Root::new("dbus-forged-token");
    let server = AlertServer::start();
    let evil = AlertServer::start();
    let bus = Bus::start(&root);
    let log = log_check(&root, "app");
    let client = MenderClient::start(&root, &bus, Some(("T1", server.url())));
    let daemon = agent_via_mender_client(&root, &bus);
    wait_until("the token", || status(&root)["uplink"]["auth"].as_str().unwrap_or_default().starts_with("token from the Mender client"));
    // Any local user may send signals on the system bus. First one addressed to each
    // connection, as if from the Mender client, with a server of its own.
    let mut attacker = RawPeer::connect(&bus);
    let me = attacker.unique.clone();
    let to_everyone = |attacker: &mut RawPeer, mut m: Message| {
        for name in unique_names(attacker, &[&me]) {
            m.destination = Some(name);
            attacker.send(&m);
        }
        attacker.call(Message::to_bus("GetId", vec![])); // the bus has passed them on
    };
    let body = vec![Value::Str("EVIL".into()), Value::Str(evil.url().into())];
    to_everyone(
        &mut attacker,
        Message::signal("/io/mender/AuthenticationManager", "io.mender.Authentication1", "JwtTokenStateChange", body),
    );
    let auth = |root: &Root| status(root)["uplink"]["auth"].as_str().unwrap_or_default().to_string();
    wait_until("the agent to hear the forged token", || {
        auth(&root).ends_with(evil.url()) || daemon.log().contains("not from the owner of io.mender.AuthenticationManager")
    });
    append(&log, b"ERROR secret\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(matching(&alerts[0]), "ERROR secret");
    assert!(
        evil.requests().is_empty(),
        "the alert went to the forged server: {:?}",
        evil.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert!(auth(&root).ends_with(server.url()), "{}", auth(&root));
    // Then, as if from the bus, that the Mender client left: alerts would wait for a token.
    let body = vec![Value::Str("io.mender.AuthenticationManager".into()), Value::Str(String::new()), Value::Str(String::new())];
    to_everyone(&mut attacker, Message::signal("/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged", body));
    wait_until("the agent to hear the forged departure", || {
        auth(&root).contains("left the system bus") || daemon.log().contains("NameOwnerChanged from")
    });
    // The first CRITICAL's OK (1 s expiry), then a new CRITICAL: both delivered.
    server.wait_for("the OK", |a| a.iter().any(|x| x["level"] == "OK"));
    append(&log, b"ERROR again\n");
    server.wait_for("the second CRITICAL", |a| a.iter().any(|x| matching(x) == "ERROR again"));
    assert!(evil.requests().is_empty());
    let s = status(&root);
    assert!(s["agent"]["mender_client_foreign_signals"].as_u64().unwrap_or(0) >= 2, "{}", s["agent"]);
    drop(daemon);
    drop(client);
}

/// systemd on the test bus: a raw connection that owns `org.freedesktop.systemd1` and answers
/// as systemd would for one service; it announces changes when told.
struct BusSystemd {
    writer: Arc<std::sync::Mutex<UnixStream>>,
    serial: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

const UNIT_PATH: &str = "/org/freedesktop/systemd1/unit/x_2eservice";

fn unit_props(active: &str, sub: &str) -> Value {
    use lookout::dbus::wire::Type;
    let entry =
        |k: &str, v: &str| Value::DictEntry(Box::new(Value::Str(k.into())), Box::new(Value::Variant(Box::new(Value::Str(v.into())))));
    Value::Array(
        Type::DictEntry(Box::new(Type::Str), Box::new(Type::Variant)),
        vec![entry("ActiveState", active), entry("SubState", sub), entry("LoadState", "loaded")],
    )
}

impl BusSystemd {
    fn start(bus: &Bus) -> BusSystemd {
        let mut peer = RawPeer::connect(bus);
        peer.own("org.freedesktop.systemd1");
        let writer = Arc::new(std::sync::Mutex::new(peer.stream.try_clone().unwrap()));
        let serial = Arc::new(AtomicU64::new(100));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, n, s) = (Arc::clone(&writer), Arc::clone(&serial), Arc::clone(&stop));
        peer.stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                while peer.input.len() >= 16 {
                    let len = message_len(peer.input[..16].try_into().unwrap()).unwrap();
                    if peer.input.len() < len {
                        break;
                    }
                    let m = decode(&peer.input[..len]).unwrap();
                    peer.input.drain(..len);
                    let body = match m.member.as_deref() {
                        _ if m.kind != lookout::dbus::message::Kind::Call => continue,
                        Some("LoadUnit") => vec![Value::ObjectPath(UNIT_PATH.into())],
                        Some("GetAll") => vec![unit_props("active", "running")],
                        Some("Get") => vec![Value::Variant(Box::new(Value::U32(0)))],
                        _ => vec![],
                    };
                    let mut r = Message::reply(m.serial, Ok(body));
                    r.destination = m.sender.clone();
                    let bytes = r.encode(n.fetch_add(1, Ordering::Relaxed) as u32).unwrap();
                    if w.lock().unwrap().write_all(&bytes).is_err() {
                        return;
                    }
                }
                match peer.stream.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(k) => peer.input.extend_from_slice(&chunk[..k]),
                    Err(_) => {} // the timeout: look at `stop` again
                }
            }
        });
        BusSystemd { writer, serial, stop }
    }

    /// Announces the unit's state, as systemd does after a change.
    fn announce(&self, active: &str, sub: &str) {
        use lookout::dbus::wire::Type;
        let body = vec![Value::Str("org.freedesktop.systemd1.Unit".into()), unit_props(active, sub), Value::Array(Type::Str, vec![])];
        let m = Message::signal(UNIT_PATH, "org.freedesktop.DBus.Properties", "PropertiesChanged", body);
        let bytes = m.encode(self.serial.fetch_add(1, Ordering::Relaxed) as u32).unwrap();
        self.writer.lock().unwrap().write_all(&bytes).unwrap();
    }
}

impl Drop for BusSystemd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_forged_shutdown_job_does_not_silence_service_checks() {
    let root = Root::new("dbus-forged-job");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    let systemd = BusSystemd::start(&bus);
    root.ctl_ok(&["create", "service", "x", "systemd"]);
    root.ctl_ok(&["enable", "service", "x"]);
    let daemon = agent(&root, &server, &bus);
    wait_until("the unit to be read", || status(&root)["agent"]["systemd_updates"].as_u64().unwrap_or(0) >= 1);
    // Any local user may broadcast a signal: a job for poweroff.target, as if from systemd.
    let mut attacker = RawPeer::connect(&bus);
    let body = vec![Value::U32(666), Value::ObjectPath("/org/freedesktop/systemd1/job/666".into()), Value::Str("poweroff.target".into())];
    attacker.send(&Message::signal("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "JobNew", body));
    let forged = |log: &str| log.contains("the system is shutting down") || log.contains("not from systemd");
    wait_until("the agent to hear the forged job", || forged(&daemon.log()));
    // The service fails for real: that is news.
    systemd.announce("failed", "failed");
    let alerts = server.wait_alerts(1);
    assert_eq!(level_name(&alerts[0]), ("CRITICAL".into(), "Service x not running".into()));
    assert!(status(&root)["agent"]["systemd_foreign_signals"].as_u64().unwrap_or(0) >= 1);
    drop(daemon);
}
