//! Prometheus Alertmanager as a destination, against the real one (Debian's
//! `prometheus-alertmanager` 0.25, with `amtool`): started by PID on loopback with a free port
//! and a temporary storage path, stopped by PID. What is checked is what an operator sees:
//! `GET /api/v2/alerts`, `amtool alert query`, mails.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const ALERTMANAGER: &str = "prometheus-alertmanager";

/// Whether Alertmanager is installed (scripts/test installs it); a test without it says so.
fn have_alertmanager() -> bool {
    let found = Command::new(ALERTMANAGER).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        eprintln!("skipped: {ALERTMANAGER} is not installed (scripts/test installs it)");
    }
    found
}

/// A route that sends nowhere, grouping at once.
const NULL_ROUTE: &str = "route:\n  receiver: 'null'\n  group_wait: 1s\nreceivers:\n  - name: 'null'\n";

/// One Alertmanager, stopped by PID when dropped.
struct Am {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Am {
    /// Starts one on 127.0.0.1:`port` with `config`; `cluster`: its gossip port and its peers'
    /// (none: gossip off).
    fn start(dir: &Path, port: u16, config: &str, cluster: Option<(u16, &[u16])>) -> Am {
        let dir = dir.join(format!("am-{port}"));
        fs::create_dir_all(dir.join("data")).unwrap();
        fs::write(dir.join("am.yml"), config).unwrap();
        let mut cmd = Command::new(ALERTMANAGER);
        cmd.arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        match cluster {
            None => {
                cmd.arg("--cluster.listen-address=");
            }
            Some((gossip, peers)) => {
                cmd.arg(format!("--cluster.listen-address=127.0.0.1:{gossip}"));
                cmd.arg(format!("--cluster.advertise-address=127.0.0.1:{gossip}"));
                for p in peers {
                    cmd.arg(format!("--cluster.peer=127.0.0.1:{p}"));
                }
                // Settle quickly on loopback.
                cmd.arg("--cluster.gossip-interval=50ms").arg("--cluster.pushpull-interval=1s").arg("--cluster.settle-timeout=1s");
            }
        }
        let log = fs::File::create(dir.join("am.log")).unwrap();
        let child = cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        let am = Am { child: Some(child), port, dir };
        wait_until("Alertmanager ready", || get(&format!("{}/-/ready", am.url())).is_some());
        am
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The active alerts (`GET /api/v2/alerts`; resolved ones are not listed).
    fn alerts(&self) -> Vec<Value> {
        get(&format!("{}/api/v2/alerts", self.url()))
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits until the active alerts satisfy `pred`; returns them.
    fn wait(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let alerts = self.alerts();
            if pred(&alerts) {
                return alerts;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} on Alertmanager {}; it has {alerts:#?}\n{}",
                self.url(),
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("am.log")).unwrap_or_default()
    }

    /// Stops it (SIGTERM by PID, then waits).
    fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + PATIENCE;
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Am {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A GET on loopback: the body of a 2xx, else `None`.
fn get(url: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().into();
    agent.get(url).call().ok().and_then(|r| r.into_body().read_to_string().ok())
}

/// The alert with `alertname`, if active.
fn named<'a>(alerts: &'a [Value], alertname: &str) -> Option<&'a Value> {
    alerts.iter().find(|a| a["labels"]["alertname"] == alertname)
}

/// The agent sending to `ams` (and to `server` too, if given).
fn agent(root: &Root, server: Option<&AlertServer>, ams: &[&Am]) -> Daemon {
    let mut cmd = command_for(&bin());
    cmd.arg("--root").arg(root.path()).arg("run");
    if let Some(s) = server {
        cmd.args(["--server", s.url(), "--token", "TOKEN"]);
    }
    for am in ams {
        cmd.args(["--alertmanager", &am.url()]);
    }
    Daemon::spawn(root, cmd)
}

const CONFIG: &str = "ALERT_LABELS='site=plant-4 device=pi-test'\nSEND_ALERT_MAX_INTERVAL_S=2\nDEFAULT_ALERT_STORE_RESEND_INTERVAL_S=1\n";

#[test]
fn the_crasher_s_alert_fires_in_alertmanager_with_its_labels_and_resolves_after_the_ok() {
    if !have_alertmanager() {
        return;
    }
    let (root, _mender, log) = log_check("am-crasher", "crasher_app", "ERROR", Some("3"));
    root.write_config(CONFIG);
    let am = Am::start(root.path(), free_port(), NULL_ROUTE, None);
    let d = agent(&root, None, &[&am]);
    append(&log, b"INFO:root:starting\nERROR:root:Crashing...\n");
    let alerts = am.wait("the CRITICAL", |a| named(a, "Log_file_contains_ERROR").is_some());
    let a = named(&alerts, "Log_file_contains_ERROR").unwrap();
    let labels: Value = serde_json::json!({"alertname": "Log_file_contains_ERROR", "device": "pi-test", "check": "crasher_app",
        "subsystem": "log", "severity": "critical", "site": "plant-4"});
    assert_eq!(a["labels"], labels);
    assert_eq!(a["annotations"]["summary"], "Log file contains ERROR");
    assert_eq!(a["annotations"]["line_matching"], "2: ERROR:root:Crashing...");
    assert_eq!(a["annotations"]["lines_before"], "1: INFO:root:starting");
    assert_eq!(a["status"]["state"], "active");
    // amtool sees it too.
    let out = Command::new("amtool")
        .args(["--alertmanager.url", &am.url(), "alert", "query", "-o", "json", "check=crasher_app"])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(out.status.success() && named(listed.as_array().unwrap(), "Log_file_contains_ERROR").is_some(), "amtool: {listed:#}");
    // No new match for 3 s: the OK resolves it.
    am.wait("the resolve", |a| named(a, "Log_file_contains_ERROR").is_none());
    assert!(d.terminate().success());
    am.stop();
}

/// `send-alert LEVEL NAME`, about a disk: an alert with a name of its own, at once.
fn send(root: &Root, level: &str, name: &str) {
    let out = root.ctl(&["send-alert", level, name, "by hand", name, "USAGE", "diskusage"]);
    assert!(out.status.success(), "send-alert: {}", String::from_utf8_lossy(&out.stderr));
}

/// The alertnames active on `am`, sorted.
fn active(alerts: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = alerts.iter().filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string)).collect();
    v.sort();
    v
}

#[test]
fn mender_and_alertmanager_each_get_every_alert_in_order_whichever_is_down() {
    if !have_alertmanager() {
        return;
    }
    let root = Root::new("am-both");
    let mender = AlertServer::start();
    root.write_config(CONFIG);
    let port = free_port();
    // Alertmanager is down: Mender gets every alert at once.
    let down = Am { child: None, port, dir: root.path().join("none") };
    let d = agent(&root, Some(&mender), &[&down]);
    for (level, name) in [("CRITICAL", "disk a full"), ("CRITICAL", "disk b full"), ("OK", "disk a full"), ("WARNING", "disk c full")] {
        send(&root, level, name);
    }
    let got = mender.wait_for("four alerts", |a| a.len() >= 4);
    let seen: Vec<(String, String)> = got.iter().map(level_name).collect();
    let names = |v: &[(&str, &str)]| v.iter().map(|(l, n)| (l.to_string(), n.to_string())).collect::<Vec<_>>();
    assert_eq!(seen, names(&[("CRITICAL", "disk a full"), ("CRITICAL", "disk b full"), ("OK", "disk a full"), ("WARNING", "disk c full")]));
    // Alertmanager comes back: it gets them all, in order (a's OK after a's CRITICAL).
    let am = Am::start(root.path(), port, NULL_ROUTE, None);
    let alerts = am.wait("b and c firing, a resolved", |a| active(a) == ["disk_b_full", "disk_c_full"]);
    assert_eq!(named(&alerts, "disk_c_full").unwrap()["labels"]["severity"], "warning");
    let status: Value = serde_json::from_slice(&root.ctl(&["status", "--json"]).stdout).unwrap();
    let dests = status["uplink"]["destinations"].as_array().cloned().unwrap_or_default();
    assert_eq!(dests.len(), 2, "{status:#}");
    assert!(dests.iter().all(|d| d["queue_depth"] == 0), "{status:#}");
    // The reverse: Mender refuses everything for a while, Alertmanager is up and is not held up.
    mender.set_reply(Reply::Status(503, None));
    send(&root, "OK", "disk b full");
    send(&root, "CRITICAL", "disk d full");
    am.wait("b resolved and d firing while Mender is down", |a| active(a) == ["disk_c_full", "disk_d_full"]);
    assert_eq!(mender.alerts().len(), 4, "Mender took nothing new");
    mender.set_reply(Reply::Accept);
    let got = mender.wait_for("both after Mender returns", |a| a.len() >= 6);
    assert_eq!(got[4..].iter().map(level_name).collect::<Vec<_>>(), names(&[("OK", "disk b full"), ("CRITICAL", "disk d full")]));
    assert!(d.terminate().success());
    am.stop();
}

#[test]
fn a_two_node_cluster_has_every_alert_and_a_stopped_peer_gets_them_when_it_returns() {
    if !have_alertmanager() {
        return;
    }
    let root = Root::new("am-cluster");
    // Alertmanager keeps alerts in memory and does not gossip them: a peer that returns learns
    // the ones sent while it was away from the agent, and the older ones from their lease's
    // renewal (every half lease).
    root.write_config(&format!("{CONFIG}ALERTMANAGER_LEASE_S=4\n"));
    let (p1, p2, g1, g2) = (free_port(), free_port(), free_port(), free_port());
    let a1 = Am::start(root.path(), p1, NULL_ROUTE, Some((g1, &[g2])));
    let a2 = Am::start(root.path(), p2, NULL_ROUTE, Some((g2, &[g1])));
    let d = agent(&root, None, &[&a1, &a2]);
    send(&root, "CRITICAL", "disk a full");
    for am in [&a1, &a2] {
        am.wait("the CRITICAL on every peer", |a| active(a) == ["disk_a_full"]);
    }
    // One peer stops while another alert fires; the other has it.
    a2.stop();
    send(&root, "CRITICAL", "disk b full");
    a1.wait("the second alert on the peer that runs", |a| active(a) == ["disk_a_full", "disk_b_full"]);
    // It comes back (same storage, same ports): it gets b, which it missed, and a again.
    let a2 = Am::start(root.path(), p2, NULL_ROUTE, Some((g2, &[g1])));
    a2.wait("both alerts on the peer that returned", |a| active(a) == ["disk_a_full", "disk_b_full"]);
    assert!(d.terminate().success());
    a1.stop();
    a2.stop();
}

#[test]
fn an_agent_killed_while_an_alert_fires_leaves_it_to_resolve_when_its_lease_runs_out() {
    if !have_alertmanager() {
        return;
    }
    let (root, _mender, log) = log_check("am-lease", "crasher_app", "ERROR", None);
    // Renewed every 3 s: a margin of 3 s for a loaded machine (or qemu).
    root.write_config(&format!("{CONFIG}ALERTMANAGER_LEASE_S=6\n"));
    let am = Am::start(root.path(), free_port(), NULL_ROUTE, None);
    let d = agent(&root, None, &[&am]);
    append(&log, b"ERROR stuck\n");
    am.wait("the CRITICAL", |a| named(a, "Log_file_contains_ERROR").is_some());
    // Still firing after more than a lease: the agent renews it.
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(8) {
        assert!(named(&am.alerts(), "Log_file_contains_ERROR").is_some(), "the lease was renewed while the agent ran");
        thread::sleep(Duration::from_millis(250));
    }
    d.kill9();
    am.wait("the resolve after the lease", |a| named(a, "Log_file_contains_ERROR").is_none());
    assert!(since.elapsed() >= Duration::from_secs(8));
    am.stop();
}

/// A small SMTP receiver on loopback: enough of RFC 5321 for Alertmanager's client (no TLS, no
/// auth); every message's DATA is kept. Its thread ends with the test process.
struct Smtp {
    port: u16,
    mails: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Smtp {
    fn start() -> Smtp {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = std::sync::Arc::clone(&mails);
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut out = conn.try_clone().unwrap();
                let mut input = BufReader::new(conn);
                let _ = out.write_all(b"220 localhost ESMTP test\r\n");
                let mut line = String::new();
                while input.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        b"250 localhost\r\n"
                    } else if cmd == "DATA" {
                        let _ = out.write_all(b"354 go on\r\n");
                        let mut data = String::new();
                        let mut l = String::new();
                        while input.read_line(&mut l).is_ok_and(|n| n > 0) && l.trim_end() != "." {
                            data.push_str(&l);
                            l.clear();
                        }
                        kept.lock().unwrap().push(data);
                        b"250 kept\r\n"
                    } else if cmd == "QUIT" {
                        let _ = out.write_all(b"221 bye\r\n");
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = out.write_all(reply);
                    line.clear();
                }
            }
        });
        Smtp { port, mails }
    }

    /// The mails so far, quoted-printable soft breaks and `=XX` escapes undone.
    fn mails(&self) -> Vec<String> {
        self.mails.lock().unwrap().iter().map(|m| unquote(m)).collect()
    }

    fn wait(&self, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let m = self.mails();
            if pred(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; mails: {m:#?}");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Quoted-printable decoded (enough for the mails Alertmanager writes).
fn unquote(m: &str) -> String {
    let m = m.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::with_capacity(m.len());
    let b = m.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'=', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn the_crasher_s_critical_and_its_ok_arrive_as_mails_with_the_device_and_the_matching_line() {
    if !have_alertmanager() {
        return;
    }
    let smtp = Smtp::start();
    let (root, _mender, log) = log_check("am-mail", "crasher_app", "ERROR", Some("2"));
    root.write_config(CONFIG);
    let config = format!(
        "global:\n  smtp_smarthost: '127.0.0.1:{}'\n  smtp_from: 'alertmanager@example.org'\n  smtp_require_tls: false\n\
         route:\n  receiver: mail\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: mail\n    email_configs:\n      - to: 'ops@example.org'\n        send_resolved: true\n",
        smtp.port
    );
    let am = Am::start(root.path(), free_port(), &config, None);
    let d = agent(&root, None, &[&am]);
    append(&log, b"INFO:root:starting\nERROR:root:Crashing...\n");
    let mails = smtp.wait("the CRITICAL's mail", |m| !m.is_empty());
    let first = &mails[0];
    assert!(first.contains("Subject: [FIRING:1]"), "{first}");
    for want in ["pi-test", "ERROR:root:Crashing...", "Log_file_contains_ERROR", "crasher_app"] {
        assert!(first.contains(want), "the mail names {want}: {first}");
    }
    let mails = smtp.wait("the OK's mail", |m| m.iter().any(|m| m.contains("Subject: [RESOLVED]")));
    let resolved = mails.iter().find(|m| m.contains("Subject: [RESOLVED]")).unwrap();
    assert!(resolved.contains("pi-test") && resolved.contains("Log_file_contains_ERROR"), "{resolved}");
    assert!(d.terminate().success());
    am.stop();
}

const CRASHER: &str = "[Service]\nExecStart=/bin/sh /usr/local/bin/crasher-service.sh\nEnvironment=CRASH_AFTER=100000\n";
const FLAPPY: &str = "[Service]\nExecStart=/bin/sh /usr/local/bin/crasher-service.sh\nEnvironment=CRASH_AFTER=1\nRestart=always\nRestartSec=1\nStartLimitIntervalSec=0\n";

#[test]
fn the_systemd_crasher_and_a_flapping_service_end_in_alertmanager() {
    if !have_alertmanager() {
        return;
    }
    let c = common::container::Container::boot(&[("crasher.service", CRASHER), ("flappy.service", FLAPPY)]);
    c.systemctl(&["start", "crasher.service"]);
    let root = Root::new("am-systemd");
    root.write_config(&format!("{CONFIG}FLAPPING_INTERVAL=10\nFLAPPING_COUNT_THRESHOLD=3\n"));
    for s in ["crasher", "flappy"] {
        root.ctl_ok(&["create", "service", s, "systemd"]);
        root.ctl_ok(&["enable", "service", s]);
    }
    let am = Am::start(root.path(), free_port(), NULL_ROUTE, None);
    let mut cmd = command_for(&bin());
    cmd.arg("--root").arg(root.path()).args(["run", "--alertmanager", &am.url()]).env("DBUS_SYSTEM_BUS_ADDRESS", c.bus());
    let d = Daemon::spawn(&root, cmd);
    // flappy was never started: it is not running.
    am.wait("flappy not running", |a| active(a) == ["Service_flappy_not_running"]);
    // The seed: systemctl stop -> firing, start -> resolved.
    c.systemctl(&["stop", "crasher.service"]);
    let alerts = am.wait("crasher not running", |a| named(a, "Service_crasher_not_running").is_some());
    let labels = &named(&alerts, "Service_crasher_not_running").unwrap()["labels"];
    assert_eq!((labels["check"].as_str(), labels["subsystem"].as_str()), (Some("crasher"), Some("service")), "{labels}");
    c.systemctl(&["start", "crasher.service"]);
    am.wait("crasher resolved", |a| named(a, "Service_crasher_not_running").is_none());
    // Flapping: going up and down fires; once it stays up, it resolves, and so does the settled
    // state (running).
    c.systemctl(&["start", "flappy.service"]);
    am.wait("flappy going up and down", |a| named(a, "Service_flappy_going_up_and_down").is_some());
    fs::write(c.dir.join("bin/stay-up"), b"").unwrap();
    am.wait("everything resolved once flappy settles", |a| active(a).is_empty());
    assert!(d.terminate().success());
    am.stop();
    drop(c);
}

/// The alerts an Alertmanager stand-in accepted, in order.
fn am_alerts(server: &AlertServer) -> Vec<Value> {
    let bodies = server.requests().into_iter().filter(|r| r.path == "/api/v2/alerts");
    bodies.flat_map(|r| serde_json::from_slice::<Vec<Value>>(&r.body).unwrap()).collect()
}

#[test]
fn an_alert_alertmanager_refuses_is_isolated_and_dropped_for_it_only() {
    let root = Root::new("am-refuse");
    root.write_config(CONFIG);
    let mender = AlertServer::start();
    // A stand-in, to make Alertmanager refuse one alert (a 400 for any batch that holds it).
    let stand_in = AlertServer::start();
    stand_in.refuse_bodies_with("poison");
    let mut cmd = command_for(&bin());
    cmd.arg("--root").arg(root.path()).args(["run", "--server", mender.url(), "--alertmanager", stand_in.url()]);
    // Stopped: the five alerts wait in the inbox and go out as one batch at start.
    for name in ["disk a", "disk b", "poison c", "disk d", "disk e"] {
        send(&root, "CRITICAL", name);
    }
    let d = Daemon::spawn(&root, cmd);
    let got = mender.wait_for("all five on Mender", |a| a.len() >= 5);
    assert_eq!(got.len(), 5, "Mender takes them all");
    wait_until("four on the stand-in", || am_alerts(&stand_in).len() >= 4);
    let names: Vec<String> = am_alerts(&stand_in).iter().map(|a| a["labels"]["alertname"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["disk_a", "disk_b", "disk_d", "disk_e"], "in order, the refused one alone left out");
    let status: Value = serde_json::from_slice(&root.ctl(&["status", "--json"]).stdout).unwrap();
    let dests = status["uplink"]["destinations"].as_array().cloned().unwrap_or_default();
    assert_eq!((dests[0]["counters"]["rejected"].as_u64(), dests[1]["counters"]["rejected"].as_u64()), (Some(0), Some(1)), "{status:#}");
    assert!(d.log().contains("poison c"), "the refused alert is named in the log:\n{}", d.log());
    assert!(d.terminate().success());
}

#[test]
fn after_a_restart_each_destination_gets_only_what_it_lacked() {
    let root = Root::new("am-cursor");
    root.write_config(CONFIG);
    let mender = AlertServer::start();
    let port = free_port();
    let down = format!("http://127.0.0.1:{port}");
    let mut cmd = command_for(&bin());
    cmd.arg("--root").arg(root.path()).args(["run", "--server", mender.url(), "--alertmanager", &down]);
    let d = Daemon::spawn(&root, cmd);
    send(&root, "CRITICAL", "disk a");
    send(&root, "CRITICAL", "disk b");
    mender.wait_for("both on Mender", |a| a.len() >= 2);
    assert!(d.terminate().success());
    // Alertmanager is up now: it gets both; Mender gets nothing twice.
    let stand_in = AlertServer::start_on(port);
    let mut cmd = command_for(&bin());
    cmd.arg("--root").arg(root.path()).args(["run", "--server", mender.url(), "--alertmanager", &down]);
    let d = Daemon::spawn(&root, cmd);
    wait_until("both on Alertmanager", || am_alerts(&stand_in).len() >= 2);
    send(&root, "CRITICAL", "disk c");
    mender.wait_for("the third on Mender", |a| a.len() >= 3);
    wait_until("the third on Alertmanager", || am_alerts(&stand_in).len() >= 3);
    let names: Vec<String> = mender.wait_for("", |_| true).iter().map(|a| a["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["disk a", "disk b", "disk c"], "nothing twice");
    assert!(d.terminate().success());
}

#[test]
fn bad_alertmanager_settings_are_named_by_check_config_and_run() {
    let root = Root::new("am-config");
    root.write_config(
        "ALERTMANAGER_URL=\"http://am1:9093 am2:9093\"\nALERT_LABELS=\"site=plant-4 severity=low\"\nALERTMANAGER_LEASE_S=1\n",
    );
    let out = root.ctl(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let file = root.config_sh().display().to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    for want in [
        format!("{file}:1: ALERTMANAGER_URL=\"http://am1:9093 am2:9093\": am2:9093: not an http:// URL"),
        format!("{file}:2: ALERT_LABELS=\"site=plant-4 severity=low\": severity is set by lookout itself"),
        format!("{file}:3: ALERTMANAGER_LEASE_S=1: at least 2"),
    ] {
        assert!(text.contains(&want), "check-config says {want:?}:\n{text}");
    }
    let out = root.ctl(&["run", "--alertmanager", "am:9093"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "lookout: --alertmanager am:9093: not an http:// URL");
}
