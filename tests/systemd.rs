//! Service checks against a real systemd: the host's own systemd booted in a container
//! (systemd-nspawn --volatile=yes on the host's /usr, see TESTING.md), the agent on the host
//! talking to it over the bind-mounted bus socket, or over its private socket.
//!
//! One test runs every scenario in one container: booting takes a moment, and the test must
//! first move itself into a cgroup of its own (a systemd started from the root cgroup takes
//! over every process on the machine) and leave it again at the end.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::container::{Container, lookout_inside};
use common::*;
use serde_json::Value;

impl Container {
    /// Starts the agent inside the container as the `mender-monitor.service` the Yocto layer
    /// installs (`Type=notify`, hardened), with a drop-in that runs the binary under test on the
    /// root bound at /var/lookout, alerts to a file. systemd's private socket accepts only peers
    /// in its own PID namespace, so this is how the private-socket path is tested too.
    fn agent_as_service(&self) -> Inside {
        let units = self.dir.join("units");
        let unit = concat!(env!("CARGO_MANIFEST_DIR"), "/yocto-layer/meta-lookout/recipes-monitoring/lookout/files/mender-monitor.service");
        fs::copy(unit, units.join("mender-monitor.service")).unwrap();
        fs::create_dir_all(units.join("mender-monitor.service.d")).unwrap();
        let exec = lookout_inside().join(" ");
        fs::write(
            units.join("mender-monitor.service.d/test.conf"),
            format!(
                "[Service]\nExecStart=\nExecStart={exec} --root /var/lookout run --stdout\nEnvironment=DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/bus\n\
                 StandardOutput=append:/var/lookout/alerts.jsonl\nStandardError=append:/var/lookout/agent.log\n"
            ),
        )
        .unwrap();
        self.systemctl(&["daemon-reload"]);
        // Type=notify: this returns once the agent said READY=1.
        self.systemctl(&["start", "mender-monitor.service"]);
        assert_eq!(self.exec(&["systemctl", "is-active", "mender-monitor.service"]), "active");
        Inside { root: self.dir.join("agent"), container_pid1: self.pid1 }
    }
}

/// The agent running inside the container as a service; stopped with systemctl on drop.
struct Inside {
    root: PathBuf,
    container_pid1: i32,
}

impl Inside {
    fn log(&self) -> String {
        fs::read_to_string(self.root.join("agent.log")).unwrap_or_default()
    }

    fn alerts(&self) -> Vec<Value> {
        fs::read_to_string(self.root.join("alerts.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `pred` holds for the alerts the agent printed; the panic shows its log.
    fn wait_for(&self, what: &str, pred: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !pred(&self.alerts()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}; alerts {:?}; log:\n{}", self.alerts(), self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `systemctl stop`: the service must end cleanly (SIGTERM, exit 0) and say STOPPING.
    fn stop(&self) -> String {
        let pid1 = self.container_pid1.to_string();
        let run = |args: &[&str]| {
            let out = Command::new("nsenter").args(["-t", &pid1, "-a", "systemctl"]).args(args).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        run(&["stop", "mender-monitor.service"]);
        run(&["show", "-p", "Result", "--value", "mender-monitor.service"])
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .args(["-t", &self.container_pid1.to_string(), "-a", "systemctl", "stop", "mender-monitor.service"])
            .status();
    }
}

fn service(root: &Root, name: &str) {
    root.ctl_ok(&["create", "service", name, "systemd"]);
    root.ctl_ok(&["enable", "service", name]);
}

fn agent(root: &Root, server: &AlertServer, bus: &str) -> Daemon {
    let mut cmd = Daemon::command(root, Some(server));
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", bus);
    Daemon::spawn(root, cmd)
}

fn named<'a>(alerts: &'a [Value], name: &str) -> Vec<(&'a str, &'a str)> {
    alerts
        .iter()
        .filter(|a| a["name"] == name)
        .map(|a| (a["level"].as_str().unwrap(), a["subject"]["details"]["description"].as_str().unwrap_or("")))
        .collect()
}

const CRASHER: &str = "[Service]\nExecStart=/bin/sh /usr/local/bin/crasher-service.sh\nEnvironment=CRASH_AFTER=100000\n";
const FLAPPY: &str = "[Service]\nExecStart=/bin/sh /usr/local/bin/crasher-service.sh\nEnvironment=CRASH_AFTER=1\nRestart=always\nRestartSec=1\nStartLimitIntervalSec=0\n";

#[test]
fn service_checks_against_a_real_systemd() {
    let c = Container::boot(&[("crasher.service", CRASHER), ("flappy.service", FLAPPY), ("steady.service", CRASHER)]);
    c.systemctl(&["start", "crasher.service", "steady.service"]);
    let root = Root::new("systemd");
    let server = AlertServer::start();
    root.write_config("FLAPPING_INTERVAL=10\nFLAPPING_COUNT_THRESHOLD=3\n");
    for s in ["crasher", "steady", "nope", "flappy"] {
        service(&root, s);
    }
    let daemon = agent(&root, &server, &c.bus());

    // A unit that does not exist is not running, and the details say why.
    server.wait_for("nope's CRITICAL", |a| !named(a, "Service nope not running").is_empty());
    let alerts = server.alerts().into_iter().map(|(_, a)| a).collect::<Vec<_>>();
    assert_eq!(named(&alerts, "Service nope not running"), vec![("CRITICAL", "nope.service does not exist (not-found)")]);
    // flappy was never started: a bad first state is reported too.
    assert_eq!(named(&alerts, "Service flappy not running").first().map(|a| a.0), Some("CRITICAL"));
    // A running service's first state is not news.
    assert!(named(&alerts, "Service crasher not running").is_empty());

    // The seed: systemctl stop -> CRITICAL, start -> OK.
    c.systemctl(&["stop", "crasher.service"]);
    server.wait_for("crasher's CRITICAL", |a| named(a, "Service crasher not running").len() == 1);
    c.systemctl(&["start", "crasher.service"]);
    let alerts = server.wait_for("crasher's OK", |a| named(a, "Service crasher not running").len() == 2);
    let crasher = named(&alerts, "Service crasher not running");
    assert_eq!(crasher[0].0, "CRITICAL");
    assert_eq!(crasher[1], ("OK", "The main process is present again (crasher.service is active (running))"));

    // SIGKILL: the unit goes down (its first not-running state is in the details) and fails.
    c.systemctl(&["kill", "-s", "KILL", "steady.service"]);
    let alerts = server.wait_for("steady's CRITICAL", |a| !named(a, "Service steady not running").is_empty());
    let steady = named(&alerts, "Service steady not running");
    assert_eq!(steady.len(), 1);
    assert_eq!(steady[0].0, "CRITICAL");
    assert!(steady[0].1.starts_with("steady.service is "), "{steady:?}");
    wait_until("status to show steady failed", || {
        let s: Value = serde_json::from_slice(&root.ctl(&["status", "--json"]).stdout).unwrap_or_default();
        s["checks"].as_array().is_some_and(|cs| cs.iter().any(|c| c["name"] == "steady" && c["source"]["active_state"] == "failed"))
    });

    // Flapping: a crash every ~2 s, threshold 3 in 10 s.
    let before = server.alerts().len();
    c.systemctl(&["start", "flappy.service"]);
    let alerts = server.wait_for("the flapping CRITICAL", |a| !named(a, "Service flappy going up and down").is_empty());
    let flapping_at = alerts.iter().position(|a| a["name"] == "Service flappy going up and down").unwrap();
    assert!(flapping_at >= before);
    // It settles once it stops crashing: the flapping OK, then the settled state.
    fs::write(c.dir.join("bin/stay-up"), b"").unwrap();
    let alerts = server.wait_for("the flapping OK", |a| named(a, "Service flappy going up and down").len() == 2);
    let ok_at = alerts.iter().rposition(|a| a["name"] == "Service flappy going up and down").unwrap();
    assert_eq!(alerts[ok_at]["level"], "OK");
    let per_change_while_flapping = alerts[flapping_at + 1..ok_at].iter().filter(|a| a["name"] == "Service flappy not running").count();
    assert_eq!(per_change_while_flapping, 0, "no per-change alerts while flapping");
    let alerts = server.wait_for("the settled state", |a| a.len() > ok_at + 1);
    assert_eq!(level_name(&alerts[ok_at + 1]), ("OK".into(), "Service flappy not running".into()));
    let status = root.ctl(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let flappy = status["checks"].as_array().unwrap().iter().find(|c| c["name"] == "flappy").unwrap();
    assert_eq!(flappy["level"], "OK");
    assert!(flappy["source"]["restarts"].as_u64().unwrap() >= 2, "{flappy}");

    // dbus restarts: the agent reconnects, re-reads, and still alerts.
    c.systemctl(&["restart", "dbus.service"]);
    daemon.wait_log("connected to systemd again");
    c.systemctl(&["stop", "crasher.service"]);
    server.wait_for("crasher's CRITICAL after the dbus restart", |a| named(a, "Service crasher not running").len() == 3);

    // Without a bus daemon: systemd's private socket, from inside the container.
    let inside_root = c.dir.join("agent");
    fs::create_dir_all(inside_root.join("run/systemd")).unwrap();
    std::os::unix::fs::symlink("/run/systemd/private", inside_root.join("run/systemd/private")).unwrap();
    // The CLI runs inside too: enabled links are absolute paths, as Mender makes them.
    let ctl_inside = |args: &[&str]| {
        let out = Command::new("nsenter")
            .args(["-t", &c.pid1.to_string(), "-a"])
            .args(lookout_inside())
            .args(["--root", "/var/lookout"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    ctl_inside(&["create", "service", "crasher", "systemd"]);
    ctl_inside(&["enable", "service", "crasher"]);
    let inside = c.agent_as_service();
    inside.wait_for("the CRITICAL over the private socket", |a| named(a, "Service crasher not running").len() == 1);
    c.systemctl(&["start", "crasher.service"]);
    inside.wait_for("the OK over the private socket", |a| named(a, "Service crasher not running").len() == 2);
    assert!(!inside.log().contains("lost the connection"), "{}", inside.log());
    // systemctl reload sends SIGHUP (ExecReload); stop ends it cleanly.
    c.systemctl(&["reload", "mender-monitor.service"]);
    wait_until("the reload", || inside.log().contains("SIGHUP: reloading the configuration"));
    assert_eq!(inside.stop(), "success", "{}", inside.log());
    drop(inside);

    // The system shuts down: units stop, but that is not news.
    let before = server.alerts().len();
    let _ = Command::new("nsenter").args(["-t", &c.pid1.to_string(), "-a", "systemctl", "poweroff"]).status();
    daemon.wait_log("the system is shutting down");
    daemon.wait_log("lost the connection to systemd");
    let after: Vec<Value> = server.alerts().into_iter().skip(before).map(|(_, a)| a).collect();
    assert!(after.iter().all(|a| a["level"] != "CRITICAL"), "alerts during shutdown: {after:?}");
    // Everything systemd said came from systemd's own connection (signals from others are
    // ignored: tests/dbus_hostile.rs).
    assert!(!daemon.log().contains("not from systemd"), "{}", daemon.log());
    drop(daemon);
    drop(c);
}
