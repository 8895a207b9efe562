//! The agent's D-Bus client against peers that misbehave: a stand-in for systemd's private
//! socket that sends malformed, truncated or unframeable messages or never answers, and a real
//! dbus-daemon on which no systemd runs. The agent must keep running and keep answering.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::*;
use lookout::dbus::message::{Kind, Message, decode, message_len};
use lookout::dbus::wire::{Type, Value};

/// How the stand-in behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// Answers like systemd (unit failed), but sends a malformed message before every reply.
    MalformedThenGood,
    /// The first connection gets half a message and is closed; later ones are answered well.
    TruncatedThenGood,
    /// Authenticates, then never answers.
    Silent,
    /// Sends a header whose framing cannot be read; later connections are answered well.
    GarbageThenGood,
}

/// A stand-in for systemd on `<root>/run/systemd/private`; stops when dropped.
struct FakeSystemd {
    stop: Arc<AtomicBool>,
    path: PathBuf,
}

impl FakeSystemd {
    fn start(root: &Root, how: Peer) -> FakeSystemd {
        let path = root.path().join("run/systemd/private");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        n += 1;
                        let first = n == 1;
                        thread::spawn(move || serve(conn, how, first));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeSystemd { stop, path }
    }
}

impl Drop for FakeSystemd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn reply(to: &Message, body: Vec<Value>, serial: u32) -> Vec<u8> {
    let m = Message {
        kind: Kind::Return,
        flags: 0,
        serial: 0,
        path: None,
        interface: None,
        member: None,
        error_name: None,
        reply_serial: Some(to.serial),
        destination: None,
        sender: None,
        body,
    };
    m.encode(serial).unwrap()
}

/// A well-framed message whose boolean body is 2: decodes to an error.
fn malformed(serial: u32) -> Vec<u8> {
    let m = Message {
        kind: Kind::Signal,
        flags: 0,
        serial: 0,
        path: Some("/org/freedesktop/systemd1".into()),
        interface: Some("org.freedesktop.systemd1.Manager".into()),
        member: Some("Bogus".into()),
        error_name: None,
        reply_serial: None,
        destination: None,
        sender: None,
        body: vec![Value::Bool(true)],
    };
    let mut bytes = m.encode(serial).unwrap();
    let n = bytes.len();
    bytes[n - 4] = 2;
    bytes
}

fn serve(mut conn: UnixStream, how: Peer, first: bool) {
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // SASL: wait for the AUTH line, say OK, wait for BEGIN.
    while !buf.windows(2).any(|w| w == b"\r\n") {
        let Ok(n) = conn.read(&mut chunk) else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if conn.write_all(b"OK 0123456789abcdef0123456789abcdef\r\n").is_err() {
        return;
    }
    buf.clear();
    while !buf.windows(7).any(|w| w == b"BEGIN\r\n") {
        let Ok(n) = conn.read(&mut chunk) else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let at = buf.windows(7).position(|w| w == b"BEGIN\r\n").unwrap() + 7;
    buf.drain(..at);
    match (how, first) {
        (Peer::TruncatedThenGood, true) => {
            let half = reply(&Message::call(None, "/", "x.y", "Z", vec![]), vec![Value::U32(1)], 1);
            let _ = conn.write_all(&half[..half.len() / 2]);
            return;
        }
        (Peer::GarbageThenGood, true) => {
            let _ = conn.write_all(b"Xgarbage-garbage-garbage");
            thread::sleep(Duration::from_secs(2));
            return;
        }
        _ => {}
    }
    let mut serial = 100;
    loop {
        while buf.len() >= 16 {
            let len = message_len(buf[..16].try_into().unwrap()).unwrap();
            if buf.len() < len {
                break;
            }
            let m = decode(&buf[..len]).unwrap();
            buf.drain(..len);
            if how == Peer::Silent {
                continue;
            }
            serial += 2;
            let body = match m.member.as_deref() {
                Some("LoadUnit") => vec![Value::ObjectPath("/org/freedesktop/systemd1/unit/x_2eservice".into())],
                Some("GetAll") => {
                    let entry = |k: &str, v: &str| {
                        Value::DictEntry(Box::new(Value::Str(k.into())), Box::new(Value::Variant(Box::new(Value::Str(v.into())))))
                    };
                    vec![Value::Array(
                        Type::DictEntry(Box::new(Type::Str), Box::new(Type::Variant)),
                        vec![entry("ActiveState", "failed"), entry("SubState", "failed"), entry("LoadState", "loaded")],
                    )]
                }
                Some("Get") => vec![Value::Variant(Box::new(Value::U32(0)))],
                _ => vec![],
            };
            let mut out = Vec::new();
            if how == Peer::MalformedThenGood {
                out.extend(malformed(serial - 1));
            }
            out.extend(reply(&m, body, serial));
            if conn.write_all(&out).is_err() {
                return;
            }
        }
        let Ok(n) = conn.read(&mut chunk) else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn agent(root: &Root, server: &AlertServer) -> Daemon {
    let mut cmd = Daemon::command(root, Some(server));
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/system_bus_socket");
    Daemon::spawn(root, cmd)
}

fn setup(tag: &str, how: Peer) -> (Root, AlertServer, FakeSystemd) {
    let root = Root::new(tag);
    let server = AlertServer::start();
    let fake = FakeSystemd::start(&root, how);
    root.ctl_ok(&["create", "service", "x", "systemd"]);
    root.ctl_ok(&["enable", "service", "x"]);
    (root, server, fake)
}

fn status_counter(root: &Root, key: &str) -> u64 {
    let s: serde_json::Value = serde_json::from_slice(&root.ctl(&["status", "--json"]).stdout).unwrap_or_default();
    s["agent"][key].as_u64().unwrap_or(0)
}

#[test]
fn malformed_messages_are_skipped() {
    let (root, server, _fake) = setup("dbus-malformed", Peer::MalformedThenGood);
    let daemon = agent(&root, &server);
    let alerts = server.wait_alerts(1);
    assert_eq!(level_name(&alerts[0]), ("CRITICAL".into(), "Service x not running".into()));
    assert_eq!(alerts[0]["subject"]["details"]["description"], "x.service is failed (failed)");
    daemon.wait_log("D-Bus: skipped a malformed message: boolean with value 2");
    assert!(status_counter(&root, "systemd_malformed_messages") >= 1);
    assert_eq!(status_counter(&root, "systemd_disconnects"), 0, "a message that frames but does not decode costs no reconnect");
}

#[test]
fn a_truncated_message_and_a_closed_socket_mean_reconnect() {
    let (root, server, _fake) = setup("dbus-truncated", Peer::TruncatedThenGood);
    let daemon = agent(&root, &server);
    // "the peer closed the connection", or a broken pipe if we were writing at the time.
    daemon.wait_log("lost the connection to systemd: ");
    server.wait_alerts(1);
    assert!(status_counter(&root, "systemd_connects") >= 2);
}

#[test]
fn unframeable_bytes_close_the_connection_and_it_comes_back() {
    let (root, server, _fake) = setup("dbus-garbage", Peer::GarbageThenGood);
    let daemon = agent(&root, &server);
    daemon.wait_log("unreadable message header: bad header: endianness byte 0x58");
    server.wait_alerts(1);
}

#[test]
fn a_peer_that_never_answers_does_not_stall_the_agent() {
    let (root, server, _fake) = setup("dbus-silent", Peer::Silent);
    let other = root.log("app.log");
    root.ctl_ok(&["create", "log", "app", "ERROR", other.to_str().unwrap()]);
    root.ctl_ok(&["enable", "log", "app"]);
    let daemon = agent(&root, &server);
    // Everything else goes on while the calls wait.
    append(&other, b"ERROR meanwhile\n");
    server.wait_alerts(1);
    assert!(root.ctl(&["status"]).status.success());
    daemon.wait_log("failed: lookout.Timeout: no reply in time");
    assert!(status_counter(&root, "systemd_call_timeouts") >= 1);
}

#[test]
fn a_bus_without_systemd_is_reported_not_fatal() {
    let root = Root::new("dbus-nosystemd");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    root.ctl_ok(&["create", "service", "x", "systemd"]);
    root.ctl_ok(&["enable", "service", "x"]);
    let mut cmd = Daemon::command(&root, Some(&server));
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", bus.socket.display()));
    let daemon = Daemon::spawn(&root, cmd);
    daemon.wait_log("org.freedesktop.DBus.Error.ServiceUnknown");
    assert!(root.ctl(&["status"]).status.success());
    assert_eq!(status_counter(&root, "systemd_connected"), 1);
    assert!(daemon.terminate().success());
    assert!(server.alerts().is_empty());
}
