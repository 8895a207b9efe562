//! An idle agent costs nothing: no periodic wake-ups once there is nothing to do.

mod common;

use std::time::Duration;

use common::*;

/// Voluntary context switches of every thread of `pid`: each one is a sleep that ended.
fn wakeups(pid: i32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                total += v.trim().parse::<u64>().unwrap();
            }
        }
    }
    total
}

/// Watches `daemon` for 3 s (after giving the worker a moment to park after its last request)
/// and insists that none of its threads woke up.
fn assert_idle(daemon: &Daemon) {
    std::thread::sleep(Duration::from_millis(300));
    let before = wakeups(daemon.pid());
    std::thread::sleep(Duration::from_secs(3));
    let after = wakeups(daemon.pid());
    assert_eq!(after, before, "the idle agent woke up {} times in 3 s", after - before);
}

#[test]
fn idle_agent_does_not_wake_up() {
    let (root, server, log) = log_check("idle", "idle", "ERROR", Some("1"));
    // A sysV service check too: its process is followed with a pidfd, not polled.
    let pidfile = root.path().join("var/run/idlesvc.pid");
    std::fs::create_dir_all(pidfile.parent().unwrap()).unwrap();
    let mut svc = std::process::Command::new("sleep").arg("100000").spawn().unwrap();
    std::fs::write(&pidfile, svc.id().to_string()).unwrap();
    root.ctl_ok(&["create", "service", "idlesvc", "sysV"]);
    root.ctl_ok(&["enable", "service", "idlesvc"]);
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"ERROR\n");
    server.wait_alerts(2); // CRITICAL, then OK: no deadline is left
    assert_idle(&daemon);
    drop(daemon);
    let _ = svc.kill();
    let _ = svc.wait();
}

#[test]
fn idle_agent_on_the_mender_client_does_not_wake_up() {
    // The token comes over D-Bus; after delivering, the bus connections and the worker sleep.
    let (root, server, log) = log_check("idle-mender", "idle", "ERROR", None);
    let bus = Bus::start(&root);
    // A dbus check on the same bus: its connection waits for signals, it does not poll.
    root.ctl_ok(&["create", "dbus", "quiet", "x", "", "type='signal',interface='com.example.Never'"]);
    root.ctl_ok(&["enable", "dbus", "quiet"]);
    let _client = MenderClient::start(&root, &bus, Some(("T1", server.url())));
    let daemon = agent_via_mender_client(&root, &bus);
    append(&log, b"ERROR\n");
    server.wait_alerts(1);
    wait_until("the dbus check to watch", || {
        let out = root.ctl(&["status", "--json"]);
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        s["checks"].as_array().into_iter().flatten().any(|c| c["source"]["state"] == "watching")
    });
    assert_idle(&daemon);
    drop(daemon);
}

#[test]
fn idle_agent_waiting_for_a_token_does_not_wake_up() {
    // No Mender client on the bus and nothing to send: nothing to do until one appears.
    let root = Root::new("idle-notoken");
    // A short resend interval: waking up for it with nothing to send would show.
    root.write_config("DEFAULT_ALERT_STORE_RESEND_INTERVAL_S=1\n");
    let bus = Bus::start(&root);
    let daemon = agent_via_mender_client(&root, &bus);
    daemon.wait_log("is not on the system bus");
    assert_idle(&daemon);
    drop(daemon);
}

#[test]
fn idle_agent_with_alertmanager_too_does_not_wake_up_once_nothing_fires() {
    // Two destinations, two workers: a firing alert's lease would be renewed; after its OK
    // nothing fires, and neither worker wakes up.
    let (root, server, log) = log_check("idle-am", "idle", "ERROR", Some("1"));
    let am = AlertServer::start();
    let mut cmd = Daemon::command(&root, Some(&server));
    cmd.args(["--alertmanager", am.url()]);
    let daemon = Daemon::spawn(&root, cmd);
    append(&log, b"ERROR\n");
    server.wait_alerts(2);
    am.wait_requests("the CRITICAL and the OK on the Alertmanager side", |r| {
        let bodies = r.iter().filter(|r| r.path == "/api/v2/alerts");
        bodies.map(|r| serde_json::from_slice::<Vec<serde_json::Value>>(&r.body).map_or(0, |v| v.len())).sum::<usize>() >= 2
    });
    assert_idle(&daemon);
    drop(daemon);
}
