//! Connectivity checks on a real network: two network namespaces made by the test (`ip netns`),
//! a veth pair between them, the agent running in the first, a small server (in this process,
//! its socket in the second) on the far side. A link taken down raises the CRITICAL at once (the
//! kernel's routing events, not the 60 s interval); up again, the OK follows a probe. TCP mode:
//! a refused port is CRITICAL after the failure count, a listener there clears it. The host's
//! own network is never touched; the namespaces (and with them the veth pair) are deleted and
//! the agent is killed by PID when a test ends, failed or not.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const A_ADDR: &str = "10.99.0.1/30";
/// Held while /etc/netns is made or removed (tests run in parallel).
static ETC_NETNS: std::sync::Mutex<()> = std::sync::Mutex::new(());
const B_IP: &str = "10.99.0.2";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())) }
}

/// Two namespaces joined by a veth pair (`a` in A with 10.99.0.1/30, `b` in B with
/// 10.99.0.2/30); deleted when dropped (the pair goes with them).
struct Net {
    a: String,
    b: String,
    link_a: String,
}

impl Net {
    /// The pair, or why it cannot be made here (the test then skips itself).
    fn new() -> Result<Net, String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{n}", std::process::id());
        let net = Net { a: format!("lkca{id}"), b: format!("lkcb{id}"), link_a: format!("va{id}") };
        let link_b = format!("vb{id}");
        ip(&["netns", "add", &net.a])?;
        // `ip netns exec` puts these over /etc/hosts and /etc/resolv.conf for the agent in A:
        // one name known, and a name server that refuses (nothing listens on B's port 53).
        let etc = net.etc();
        let guard = ETC_NETNS.lock().unwrap_or_else(|e| e.into_inner());
        fs::create_dir_all(&etc).map_err(|e| format!("{}: {e}", etc.display()))?;
        drop(guard);
        fs::write(etc.join("hosts"), format!("127.0.0.1 localhost\n{B_IP} probe.test\n")).map_err(|e| e.to_string())?;
        fs::write(etc.join("resolv.conf"), format!("nameserver {B_IP}\noptions timeout:1 attempts:1\n")).map_err(|e| e.to_string())?;
        ip(&["netns", "add", &net.b])?;
        ip(&["-n", &net.a, "link", "add", &net.link_a, "type", "veth", "peer", "name", &link_b, "netns", &net.b])?;
        ip(&["-n", &net.a, "addr", "add", A_ADDR, "dev", &net.link_a])?;
        ip(&["-n", &net.b, "addr", "add", &format!("{B_IP}/30"), "dev", &link_b])?;
        for (ns, dev) in [(&net.a, &net.link_a), (&net.b, &link_b), (&net.a, &"lo".to_string()), (&net.b, &"lo".to_string())] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(net)
    }

    /// `/etc/netns/<A>`: files `ip netns exec` binds over /etc for the agent.
    fn etc(&self) -> std::path::PathBuf {
        std::path::PathBuf::from("/etc/netns").join(&self.a)
    }

    fn set_link_a(&self, state: &str) {
        ip(&["-n", &self.a, "link", "set", &self.link_a, state]).unwrap();
    }

    /// The agent's command line, run in namespace A.
    fn agent(&self, root: &Root) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.a]);
        if let Some(r) = runner() {
            cmd.arg(r);
        }
        cmd.arg(bin()).arg("--root").arg(root.path()).args(["run", "--stdout"]);
        cmd
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
        let _guard = ETC_NETNS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = fs::remove_dir_all(self.etc());
        // The parent, if no other test's namespace uses it.
        let _ = fs::remove_dir("/etc/netns");
    }
}

/// Namespaces and veth pairs, or a reason to skip.
fn net_or_skip() -> Option<Net> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: network namespaces need root");
        return None;
    }
    match Net::new() {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!("skipped: cannot make network namespaces here: {e}");
            None
        }
    }
}

/// A server with its socket in namespace `ns`, on `B_IP:port`: answers an HTTP request with
/// `reply`, or (no reply) accepts and closes. Stops when dropped.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(ns: &str, port: u16, reply: Option<&'static str>) -> Server {
        Server::start_on(ns, B_IP, port, reply)
    }

    fn start_on(ns: &str, addr: &'static str, port: u16, reply: Option<&'static str>) -> Server {
        let ns_file = fs::File::open(format!("/run/netns/{ns}")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            // SAFETY: setns with a valid namespace fd; it moves this thread only.
            let rc = unsafe { libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let listener = TcpListener::bind((addr, port)).unwrap();
            listener.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        let Some(reply) = reply else { continue };
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut got = Vec::new();
                        let mut b = [0u8; 512];
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                            match c.read(&mut b) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => got.extend_from_slice(&b[..n]),
                            }
                        }
                        assert!(got.starts_with(b"HEAD /health HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&got));
                        let _ = c.write_all(reply.as_bytes());
                    }
                    // Polling the accept keeps the stop flag simple; not a synchronisation.
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        rx.recv_timeout(PATIENCE).expect("the server did not start");
        Server { stop, thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The alerts the agent printed so far (JSON lines on its stdout).
fn alerts(d: &Daemon) -> Vec<Value> {
    fs::read_to_string(&d.stdout)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| match v {
            Value::Array(a) => a,
            other => vec![other],
        })
        .collect()
}

fn wait_alerts(d: &Daemon, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let a = alerts(d);
        if a.len() >= n {
            return a;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {n} alerts; have {a:?}\nlog:\n{}", d.log());
        thread::sleep(Duration::from_millis(10));
    }
}

fn description(a: &Value) -> String {
    a["subject"]["details"]["description"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_link_down_is_critical_at_once_and_up_is_ok_after_a_probe() {
    let Some(net) = net_or_skip() else { return };
    let _server = Server::start(&net.b, 8080, Some("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
    let root = Root::new("conn-link");
    let address = format!("http://{B_IP}:8080/health");
    // Every 60 s: anything sooner than that is the kernel's events at work.
    root.ctl_ok(&["create", "connectivity", "web", &address, "60", "5"]);
    root.ctl_ok(&["enable", "connectivity", "web"]);
    let d = Daemon::spawn(&root, net.agent(&root));
    wait_until("the first probe answered", || {
        root.check_status("web")["source"]["last"].as_str().is_some_and(|l| l.starts_with("reachable: HTTP 200"))
    });
    let st = root.check_status("web");
    assert_eq!(st["source"]["network_events"], "followed (rtnetlink)", "{st}");
    assert_eq!(st["level"], "OK");
    assert!(alerts(&d).is_empty());

    let down = Instant::now();
    net.set_link_a("down");
    let a = wait_alerts(&d, 1);
    let took = down.elapsed();
    eprintln!("link down -> CRITICAL in {took:?}: {}", description(&a[0]));
    assert!(took < Duration::from_secs(3), "the CRITICAL took {took:?}");
    let name = format!("Unable to connect to the address '{address}'");
    assert_eq!((a[0]["level"].as_str(), a[0]["name"].as_str()), (Some("CRITICAL"), Some(name.as_str())));
    assert_eq!((a[0]["subject"]["name"].as_str(), a[0]["subject"]["type"].as_str()), (Some("web"), Some("connectivity")));
    let why = description(&a[0]);
    assert!(why.contains("went down") || why.contains("was removed"), "{why}");
    assert!(why.contains(&address), "{why}");

    let up = Instant::now();
    net.set_link_a("up");
    let a = wait_alerts(&d, 2);
    eprintln!("link up -> OK in {:?}: {}", up.elapsed(), description(&a[1]));
    assert!(up.elapsed() < Duration::from_secs(30), "the OK waited for the interval: {:?}", up.elapsed());
    assert_eq!((a[1]["level"].as_str(), a[1]["name"].as_str()), (Some("OK"), Some(name.as_str())));
    assert!(description(&a[1]).contains("HTTP 200"), "{}", description(&a[1]));
    let st = root.check_status("web");
    assert!(st["counters"]["immediate_probes"].as_u64().unwrap_or(0) >= 2, "{st}");
    d.terminate();
}

#[test]
fn the_default_route_removed_is_critical_at_once() {
    let Some(net) = net_or_skip() else { return };
    // A server beyond the link: an address of B's that A reaches only by its default route.
    ip(&["-n", &net.b, "addr", "add", "10.98.0.1/32", "dev", "lo"]).unwrap();
    ip(&["-n", &net.a, "route", "add", "default", "via", B_IP]).unwrap();
    let listener = Server::start_on(&net.b, "10.98.0.1", 8081, None);
    let root = Root::new("conn-route");
    root.ctl_ok(&["create", "connectivity", "far", "10.98.0.1:8081", "60", "5"]);
    root.ctl_ok(&["enable", "connectivity", "far"]);
    let d = Daemon::spawn(&root, net.agent(&root));
    wait_until("the first probe answered", || {
        root.check_status("far")["source"]["last"].as_str().is_some_and(|l| l.starts_with("reachable: connected to 10.98.0.1:8081"))
    });
    let gone = Instant::now();
    ip(&["-n", &net.a, "route", "del", "default"]).unwrap();
    let a = wait_alerts(&d, 1);
    let took = gone.elapsed();
    eprintln!("default route removed -> CRITICAL in {took:?}: {}", description(&a[0]));
    assert!(took < Duration::from_secs(3), "the CRITICAL took {took:?}");
    assert_eq!(a[0]["level"], "CRITICAL");
    assert!(description(&a[0]).starts_with("the default route (IPv4) was removed; then 10.98.0.1:8081: "), "{}", description(&a[0]));
    // The route back: a probe at once, and the OK.
    ip(&["-n", &net.a, "route", "add", "default", "via", B_IP]).unwrap();
    let a = wait_alerts(&d, 2);
    assert_eq!(a[1]["level"], "OK");
    drop(listener);
    d.terminate();
}

#[test]
fn a_refused_port_is_critical_after_the_failure_count_and_a_listener_clears_it() {
    let Some(net) = net_or_skip() else { return };
    let root = Root::new("conn-tcp");
    let address = format!("{B_IP}:2222");
    root.ctl_ok(&["create", "connectivity", "ssh", &address, "1", "1"]);
    root.ctl_ok(&["enable", "connectivity", "ssh"]);
    let d = Daemon::spawn(&root, net.agent(&root));
    let a = wait_alerts(&d, 1);
    assert_eq!(a[0]["level"], "CRITICAL");
    let why = description(&a[0]);
    assert!(why.contains("failed 3 times in a row") && why.contains("refused"), "{why}");
    assert!(root.check_status("ssh")["counters"]["probes"].as_u64().unwrap_or(0) >= 3);
    let _server = Server::start(&net.b, 2222, None);
    let a = wait_alerts(&d, 2);
    assert_eq!(a[1]["level"], "OK");
    assert!(description(&a[1]).contains(&format!("connected to {address}")), "{}", description(&a[1]));
    // One CRITICAL, one OK: no repeats while the state holds.
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(alerts(&d).len(), 2);
    d.terminate();
}

#[test]
fn a_critical_survives_a_restart_and_disabling_clears_it() {
    let Some(net) = net_or_skip() else { return };
    let root = Root::new("conn-restart");
    fs::create_dir_all(root.available()).unwrap();
    let file = format!("CONNECTIVITY_ADDRESS={B_IP}:2223\nCONNECTIVITY_FAILURES=1\n");
    fs::write(root.available().join("connectivity_once.sh"), file).unwrap();
    root.ctl_ok(&["enable", "connectivity", "once"]);
    let d = Daemon::spawn(&root, net.agent(&root));
    let a = wait_alerts(&d, 1);
    assert_eq!(a[0]["level"], "CRITICAL");
    assert!(description(&a[0]).contains("failed once"), "{}", description(&a[0]));
    d.terminate();
    // Still refused after the restart: the CRITICAL stands, it is not sent again.
    let d = Daemon::spawn(&root, net.agent(&root));
    wait_until("a probe after the restart", || root.check_status("once")["counters"]["probes"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(root.check_status("once")["level"], "CRITICAL");
    assert!(alerts(&d).is_empty(), "{:?}", alerts(&d));
    root.ctl_ok(&["disable", "connectivity", "once"]);
    let a = wait_alerts(&d, 1);
    assert_eq!(a[0]["level"], "OK");
    assert_eq!(a[0]["name"], format!("Unable to connect to the address '{B_IP}:2223'"));
    d.terminate();
}

#[test]
fn names_are_resolved_off_the_reactor() {
    let Some(net) = net_or_skip() else { return };
    let _server = Server::start(&net.b, 8080, Some("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
    let root = Root::new("conn-dns");
    root.ctl_ok(&["create", "connectivity", "named", "http://probe.test:8080/health", "60", "5"]);
    root.ctl_ok(&["enable", "connectivity", "named"]);
    fs::write(root.available().join("connectivity_unknown.sh"), "CONNECTIVITY_ADDRESS=http://nope.test/\nCONNECTIVITY_FAILURES=1\n")
        .unwrap();
    root.ctl_ok(&["enable", "connectivity", "unknown"]);
    let d = Daemon::spawn(&root, net.agent(&root));
    // A 404 is an answer: the server is reachable.
    wait_until("the named probe answered", || {
        root.check_status("named")["source"]["last"].as_str().is_some_and(|l| l.starts_with("reachable: HTTP 404"))
    });
    let a = wait_alerts(&d, 1);
    assert_eq!((a[0]["level"].as_str(), a[0]["subject"]["name"].as_str()), (Some("CRITICAL"), Some("unknown")));
    assert!(description(&a[0]).contains("cannot resolve nope.test"), "{}", description(&a[0]));
    d.terminate();
}

#[test]
fn create_refuses_what_it_cannot_probe() {
    let root = Root::new("conn-cli");
    for (args, says) in [
        (vec!["ftp://example.com"], "scheme \"ftp\""),
        (vec!["example.com"], "has no port"),
        (vec!["http://example.com", "0"], "interval must be at least 1"),
        (vec!["http://example.com", "60", "soon"], "timeout"),
        (vec![], "usage: create connectivity"),
    ] {
        let mut all = vec!["create", "connectivity", "x"];
        all.extend(args.iter());
        let out = root.ctl(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{args:?}: {err}");
    }
    root.ctl_ok(&["create", "connectivity", "example", "https://example.com", "5m"]);
    let text = fs::read_to_string(root.available().join("connectivity_example.sh")).unwrap();
    assert!(text.contains("CONNECTIVITY_ADDRESS=\"https://example.com\"\nCONNECTIVITY_INTERVAL=300\n"), "{text}");
}
