//! Shared helpers for the black-box tests: a temp device root, the built binary, a recording
//! stand-in for the Mender server, and a daemon handle that is always stopped by PID.
#![allow(dead_code)]

pub mod container;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a test waits for something that should happen "at once" on an idle machine; generous
/// for a loaded 2-core CI machine (and for qemu-user).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The binary under test: `LOOKOUT_BIN` (a cross-built one, say) or the one cargo built.
pub fn bin() -> PathBuf {
    std::env::var_os("LOOKOUT_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lookout")))
}

/// The emulator to run the binary under (`LOOKOUT_TEST_RUNNER=qemu-aarch64-static`): without
/// binfmt_misc an ARM binary cannot be executed directly.
pub fn runner() -> Option<String> {
    std::env::var("LOOKOUT_TEST_RUNNER").ok().filter(|r| !r.is_empty())
}

/// A command running the lookout binary at `path` (or a link to it, whose name it sees).
pub fn command_for(path: &Path) -> Command {
    match runner() {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg(path);
            c
        }
        None => Command::new(path),
    }
}

/// A temporary device root, removed when dropped.
pub struct Root {
    dir: PathBuf,
}

impl Root {
    pub fn new(tag: &str) -> Root {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!("lookout-test-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("logs")).unwrap();
        Root { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A path for a log file inside the root.
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(name)
    }

    /// Runs the CLI (`lookout --root <root> args...`).
    pub fn ctl(&self, args: &[&str]) -> Output {
        command_for(&bin()).arg("--root").arg(&self.dir).args(args).output().unwrap()
    }

    /// Runs the CLI and insists on success with no output (Mender's CLI is silent on success).
    pub fn ctl_ok(&self, args: &[&str]) {
        let out = self.ctl(args);
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{args:?}: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn config_sh(&self) -> PathBuf {
        self.dir.join("usr/share/mender-monitor/config/config.sh")
    }

    /// Writes config.sh.
    pub fn write_config(&self, text: &str) {
        let p = self.config_sh();
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    pub fn available(&self) -> PathBuf {
        self.dir.join("etc/mender-monitor/monitor.d/available")
    }

    /// Check `name` as `status --json` shows it; `Null` while no daemon answers (so it can be
    /// polled from `wait_until` while the daemon starts).
    pub fn check_status(&self, name: &str) -> serde_json::Value {
        let out = self.ctl(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name).cloned()).unwrap_or_default()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A root with one log check created and enabled through the CLI, and a server to send to:
/// `(root, server, log file)`. Start the daemon after it (so it is dropped before the root).
pub fn log_check(tag: &str, check: &str, pattern: &str, expiry: Option<&str>) -> (Root, AlertServer, PathBuf) {
    let root = Root::new(tag);
    let server = AlertServer::start();
    let log = root.log(&format!("{check}.log"));
    let mut args = vec!["create", "log", check, pattern, log.to_str().unwrap()];
    args.extend(expiry);
    root.ctl_ok(&args);
    root.ctl_ok(&["enable", "log", check]);
    (root, server, log)
}

/// The processes whose process group is `pgid`, zombies included: `(pid, state, name)`.
pub fn group_members(pgid: i32) -> Vec<(i32, char, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) {
            out.push((pid, fields[0].chars().next().unwrap_or('?'), stat[open + 1..close].to_string()));
        }
    }
    out
}

/// The children of `ppid`.
pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(ppid) {
            out.push(pid);
        }
    }
    out
}

/// Polls `cond` until it holds, or panics after `PATIENCE` with `what`.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Appends to a file, creating it.
pub fn append(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// One request the stand-in server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

/// How the stand-in server answers alert and configuration requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 204 No Content.
    Accept,
    /// 500 for the next N requests, then accept.
    FailTimes(u32),
    /// This status for every request, with a `Retry-After` header if given.
    Status(u16, Option<String>),
    /// Read the request and never answer (until the connection is closed).
    Hang,
}

/// One request the server answered (or hung on), with what it answered.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub path: String,
    pub status: u16,
    pub authorization: Option<String>,
    pub at: Instant,
}

struct ServerState {
    requests: Vec<Request>,
    attempts: Vec<Attempt>,
    reply: Reply,
    /// Only `Bearer <token>` is accepted; others get 401.
    token: Option<String>,
    /// An alert request (Mender's or Alertmanager's) whose body holds this gets 400.
    refuse: Option<String>,
}

/// A small HTTP/1.1 server that records every request and answers as told.
pub struct AlertServer {
    addr: String,
    state: Arc<(Mutex<ServerState>, Condvar)>,
}

/// A port on 127.0.0.1 that nothing listens on (yet): a server that is down.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl AlertServer {
    pub fn start() -> AlertServer {
        AlertServer::start_on(0)
    }

    /// A server on `port` (0: any), e.g. one that comes up where an agent has been failing to
    /// connect.
    pub fn start_on(port: u16) -> AlertServer {
        AlertServer::serve(TcpListener::bind(("127.0.0.1", port)).unwrap())
    }

    /// A server on 127.0.0.1 of the network namespace of process `pid` (a container's, with
    /// `--private-network`), for an agent running there. Served from here: only the socket
    /// belongs to that namespace.
    pub fn start_in_netns_of(pid: i32) -> AlertServer {
        use std::os::fd::AsRawFd;
        let ns = fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
        let listener = thread::spawn(move || {
            // SAFETY: setns with a valid namespace fd; it moves this short-lived thread only.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            TcpListener::bind("127.0.0.1:0").unwrap()
        })
        .join()
        .unwrap();
        AlertServer::serve(listener)
    }

    fn serve(listener: TcpListener) -> AlertServer {
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new((
            Mutex::new(ServerState { requests: Vec::new(), attempts: Vec::new(), reply: Reply::Accept, token: None, refuse: None }),
            Condvar::new(),
        ));
        let st = Arc::clone(&state);
        // The accept thread ends with the test process; connections end when the daemon does.
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = Arc::clone(&st);
                thread::spawn(move || serve(conn, st));
            }
        });
        AlertServer { addr, state }
    }

    pub fn url(&self) -> &str {
        &self.addr
    }

    pub fn set_reply(&self, r: Reply) {
        self.state.0.lock().unwrap().reply = r;
    }

    /// Accept only `Authorization: Bearer <token>`; 401 for anything else.
    pub fn require_token(&self, token: &str) {
        self.state.0.lock().unwrap().token = Some(token.to_string());
    }

    /// Answer 400 to every alert request whose body contains `marker`.
    pub fn refuse_bodies_with(&self, marker: &str) {
        self.state.0.lock().unwrap().refuse = Some(marker.to_string());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.0.lock().unwrap().requests.clone()
    }

    /// Every request answered, accepted or not.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.state.0.lock().unwrap().attempts.clone()
    }

    /// The bodies of the configuration pushes received, parsed.
    pub fn configs(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .filter(|r| r.path == "/api/devices/v1/devicemonitor/config")
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }

    /// Every alert received so far, in order, with the time its request arrived.
    pub fn alerts(&self) -> Vec<(Instant, Value)> {
        alerts_of(&self.state.0.lock().unwrap().requests)
    }

    /// Waits until `pred` holds for the accepted requests, or panics after `PATIENCE`.
    pub fn wait_requests(&self, what: &str, pred: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let deadline = Instant::now() + PATIENCE;
        let (lock, cv) = &*self.state;
        // The predicate is checked under the lock the server thread takes to record a request,
        // so no notification can fall between the check and the wait.
        let mut guard = lock.lock().unwrap();
        loop {
            if pred(&guard.requests) {
                return guard.requests.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                let paths: Vec<String> = guard.requests.iter().map(|r| r.path.clone()).collect();
                drop(guard);
                panic!("timed out waiting for {what}; requests so far: {paths:?}");
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Waits until `pred` holds for the alerts received, or panics after `PATIENCE`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        let (lock, cv) = &*self.state;
        let mut guard = lock.lock().unwrap();
        loop {
            let alerts: Vec<Value> = alerts_of(&guard.requests).into_iter().map(|(_, a)| a).collect();
            if pred(&alerts) {
                return alerts;
            }
            let now = Instant::now();
            if now >= deadline {
                drop(guard);
                panic!("timed out waiting for {what}; alerts so far: {}", serde_json::to_string(&alerts).unwrap());
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }

    /// Waits for the `n`-th alert (1-based) and returns all so far.
    pub fn wait_alerts(&self, n: usize) -> Vec<Value> {
        self.wait_for(&format!("{n} alerts"), |a| a.len() >= n)
    }

    /// Waits until `n` alert requests were answered (or hung on), accepted or not; returns
    /// them.
    pub fn wait_alert_attempts(&self, n: usize) -> Vec<Attempt> {
        let deadline = Instant::now() + PATIENCE;
        let (lock, cv) = &*self.state;
        let mut guard = lock.lock().unwrap();
        loop {
            let alerts: Vec<Attempt> = guard.attempts.iter().filter(|a| a.path.ends_with("/alert")).cloned().collect();
            if alerts.len() >= n {
                return alerts;
            }
            let now = Instant::now();
            assert!(now < deadline, "timed out waiting for {n} alert attempts; {:?}", guard.attempts);
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }
}

fn alerts_of(requests: &[Request]) -> Vec<(Instant, Value)> {
    let mut out = Vec::new();
    for r in requests {
        if r.path != "/api/devices/v1/devicemonitor/alert" {
            continue;
        }
        let v: Value = serde_json::from_slice(&r.body).expect("alert body is JSON");
        for a in v.as_array().expect("alert body is a JSON array") {
            out.push((r.at, a.clone()));
        }
    }
    out
}

fn serve(conn: TcpStream, st: Arc<(Mutex<ServerState>, Condvar)>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (lock, cv) = &*st;
        let (status, retry_after) = {
            let mut s = lock.lock().unwrap();
            let authorization = headers.get("authorization").cloned();
            let (status, retry_after) = if s.token.as_ref().is_some_and(|t| authorization.as_deref() != Some(&format!("Bearer {t}"))) {
                (401, None)
            } else if (path.ends_with("/alert") || path.ends_with("/alerts"))
                && s.refuse.as_ref().is_some_and(|m| String::from_utf8_lossy(&body).contains(m.as_str()))
            {
                (400, None)
            } else {
                match s.reply.clone() {
                    Reply::Accept | Reply::FailTimes(0) => (204, None),
                    Reply::FailTimes(n) => {
                        s.reply = Reply::FailTimes(n - 1);
                        (500, None)
                    }
                    Reply::Status(code, after) => (code, after),
                    Reply::Hang => (0, None),
                }
            };
            s.attempts.push(Attempt { path: path.clone(), status, authorization, at: Instant::now() });
            if status == 204 {
                s.requests.push(Request { method, path, headers, body, at: Instant::now() });
            }
            (status, retry_after)
        };
        cv.notify_all();
        if status == 0 {
            // Hang: hold the connection until the client gives up and closes it.
            let mut sink = [0u8; 1];
            let _ = reader.read(&mut sink);
            return;
        }
        let text = match status {
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            429 => "Too Many Requests",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "Whatever",
        };
        let body = if status == 204 { String::new() } else { format!("{{\"error\":\"{text}\",\"request_id\":\"test\"}}") };
        let extra = retry_after.map(|r| format!("Retry-After: {r}\r\n")).unwrap_or_default();
        let resp = format!("HTTP/1.1 {status} {text}\r\n{extra}Content-Length: {}\r\n\r\n{body}", body.len());
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// The agent with neither --server nor --stdout: the Mender client on `bus` says where.
pub fn agent_via_mender_client(root: &Root, bus: &Bus) -> Daemon {
    let mut cmd = command_for(&bin());
    cmd.arg("--root").arg(root.path()).arg("run");
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", bus.address());
    Daemon::spawn(root, cmd)
}

/// The python3-dbus stand-in for mender-authd; stopped by PID on drop.
pub struct MenderClient {
    child: Child,
    stdin: ChildStdin,
    out: PathBuf,
}

impl MenderClient {
    pub fn start(root: &Root, bus: &Bus, initial: Option<(&str, &str)>) -> MenderClient {
        let out = root.path().join("mender-auth.out");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mender-auth.py"));
        if let Some((t, u)) = initial {
            cmd.args([t, u]);
        }
        let mut child = cmd
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .stdin(Stdio::piped())
            .stdout(fs::File::create(&out).unwrap())
            .spawn()
            .expect("/usr/bin/python3 with python3-dbus and python3-gi (scripts/test installs them)");
        let stdin = child.stdin.take().unwrap();
        let m = MenderClient { child, stdin, out };
        wait_until("the Mender client stand-in to own its name", || m.said().lines().any(|l| l == "ready"));
        m
    }

    pub fn said(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn calls(&self, method: &str) -> usize {
        self.said().lines().filter(|l| *l == method).count()
    }

    pub fn tell(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        let ack = format!("ok {command}");
        wait_until(&format!("the stand-in to do {command:?}"), || self.said().lines().any(|l| l == ack));
    }
}

impl Drop for MenderClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real dbus-daemon on a socket in the root, with a policy that lets anyone own any name (a
/// test bus, not the system's).
pub struct Bus {
    child: Child,
    pub socket: PathBuf,
}

impl Bus {
    /// The policy of [`Bus::start`]: anyone may own any name, send anything and eavesdrop.
    pub const OPEN_POLICY: &'static str =
        "<allow user=\"*\"/><allow own=\"*\"/><allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/>";

    pub fn start(root: &Root) -> Bus {
        Bus::start_with_policy(root, Bus::OPEN_POLICY)
    }

    /// A bus whose default policy context holds `policy` (`<allow .../>` and `<deny .../>`).
    pub fn start_with_policy(root: &Root, policy: &str) -> Bus {
        let socket = root.path().join("system_bus_socket");
        let conf = root.path().join("bus.conf");
        fs::write(
            &conf,
            format!(
                "<busconfig><type>system</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\
                 <policy context=\"default\">{policy}</policy></busconfig>",
                socket.display()
            ),
        )
        .unwrap();
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon is installed (scripts/test installs it)");
        wait_until("the bus to listen", || socket.exists());
        Bus { child, socket }
    }

    /// The address for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running daemon; stopped by PID when dropped.
pub struct Daemon {
    child: Option<Child>,
    pub stderr: PathBuf,
    pub stdout: PathBuf,
}

impl Daemon {
    /// Starts `lookout --root <root> run --server <server> --token TOKEN` (`--stdout` without a
    /// server) and waits until its first scan of monitor.d is done.
    pub fn start(root: &Root, server: Option<&AlertServer>) -> Daemon {
        Daemon::spawn(root, Daemon::command(root, server))
    }

    /// The command line `start` runs, to add to (environment, ...) before [`Daemon::spawn`].
    pub fn command(root: &Root, server: Option<&AlertServer>) -> Command {
        let mut cmd = command_for(&bin());
        cmd.arg("--root").arg(root.path()).arg("run");
        match server {
            Some(s) => cmd.args(["--server", s.url(), "--token", "TOKEN"]),
            None => cmd.arg("--stdout"),
        };
        cmd
    }

    /// Starts `cmd` (a daemon command line) with its output in files under the root, and waits
    /// until its first scan of monitor.d is done.
    pub fn spawn(root: &Root, mut cmd: Command) -> Daemon {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let stderr = root.path().join(format!("daemon-{n}.err"));
        let stdout = root.path().join(format!("daemon-{n}.out"));
        let child =
            cmd.stdin(Stdio::null()).stdout(fs::File::create(&stdout).unwrap()).stderr(fs::File::create(&stderr).unwrap()).spawn().unwrap();
        let d = Daemon { child: Some(child), stderr, stdout };
        d.wait_log("started: checks in");
        d
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the daemon's log contains `needle` (a poll with a deadline: the log is a file).
    pub fn wait_log(&self, needle: &str) {
        self.wait_log_count(needle, 1);
    }

    /// Waits until `needle` appears `n` times in the log.
    pub fn wait_log_count(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.log().matches(needle).count() < n {
            assert!(Instant::now() < deadline, "timed out waiting for {needle:?} x{n} in the log:\n{}", self.log());
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// SIGTERM, then waits for the exit; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let status = wait_with_deadline(self.child.as_mut().unwrap());
        self.child = None;
        status
    }

    /// SIGKILL (a crash or power cut, as far as the agent can tell).
    pub fn kill9(mut self) {
        let mut c = self.child.take().unwrap();
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn wait_with_deadline(c: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return s;
        }
        if Instant::now() >= deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("the daemon did not exit within {PATIENCE:?} of SIGTERM");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `level` and `name` of an alert.
pub fn level_name(a: &Value) -> (String, String) {
    (a["level"].as_str().unwrap_or_default().to_string(), a["name"].as_str().unwrap_or_default().to_string())
}

/// `(line_number, data)` pairs of a context array.
pub fn lines(v: &Value) -> Vec<(u64, String)> {
    v.as_array()
        .map(|a| a.iter().map(|l| (l["line_number"].as_u64().unwrap(), l["data"].as_str().unwrap().to_string())).collect())
        .unwrap_or_default()
}

/// Parses an alert's RFC 3339 timestamp to Unix milliseconds.
pub fn timestamp_ms(a: &Value) -> u64 {
    let t = humantime::parse_rfc3339(a["timestamp"].as_str().unwrap()).unwrap();
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
