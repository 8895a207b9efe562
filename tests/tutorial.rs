//! The seed tutorial verbatim on a bare system: a systemd booted in a container (tests/common/
//! container.rs) with nothing of lookout but the binary, bound at /opt/lookout. `lookout install`
//! lays it down; then every command of the tutorial runs inside as written (its crasher.py and
//! both crasher.service units are tests/fixtures/seed/, copied from it), and each alert it
//! promises must reach a recording server.
//!
//! What differs from the page, and why:
//! - Timings are shortened through the commands' arguments (crash intervals, expirations, the
//!   restarting unit's RestartSec, `sleep`s), never by changing a command.
//! - Interactive steps (`tail -f`, `journalctl -f`, `fg` + Ctrl+c) are left out or done by PID
//!   (`kill -INT`, which is Ctrl+c); Docker is the test suite's stand-in `docker events`
//!   (tests/fixtures/docker), so `docker build/run/restart/stop/rm/ps` are left out.
//! - The installed unit runs `/usr/bin/mender-monitord`; a drop-in adds `--server` so alerts go
//!   to the recording server (no Mender client in the container), which listens on the
//!   container's loopback (`--private-network`).

mod common;

use std::fs;

use common::container::Container;
use common::*;
use serde_json::Value;

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seed");

/// `(level, name)` of every alert from index `from` on.
fn since(alerts: &[Value], from: usize) -> Vec<(String, String)> {
    alerts.iter().skip(from).map(level_name).collect()
}

/// Whether `want` appear in this order (others may come between).
fn in_order(got: &[(String, String)], want: &[(&str, &str)]) -> bool {
    let mut it = got.iter();
    want.iter().all(|(l, n)| it.any(|(gl, gn)| gl == l && gn == n))
}

fn pair<'a>(level: &'a str, name: &'a str) -> (&'a str, &'a str) {
    (level, name)
}

#[test]
fn the_seed_tutorial_after_lookout_install_on_a_bare_system() {
    if common::container::installed_unit_cannot_run() {
        return;
    }
    let c = Container::boot_with(&[], true);
    c.units_writable();
    let server = AlertServer::start_in_netns_of(c.pid1);
    let units = c.dir.join("units");
    fs::create_dir_all(units.join("mender-monitor.service.d")).unwrap();
    fs::write(
        units.join("mender-monitor.service.d/alerts-to-test-server.conf"),
        format!("[Service]\nExecStart=\nExecStart=/usr/bin/mender-monitord --server {} --token TOKEN\n", server.url()),
    )
    .unwrap();

    // Dropped on the device: one command.
    let name = bin().file_name().unwrap().to_string_lossy().into_owned();
    let said = c.sh(&format!("/opt/lookout/{name} install"));
    for step in [
        "created       /usr/bin/lookout (from /opt/lookout/",
        "run           systemctl enable mender-monitor.service",
        "run           systemctl start mender-monitor.service",
    ] {
        assert!(said.contains(step), "{step:?} in:\n{said}");
    }
    assert_eq!(c.exec(&["systemctl", "is-active", "mender-monitor.service"]), "active");
    assert_eq!(c.exec(&["systemctl", "is-enabled", "mender-monitor.service"]), "enabled");
    let again = c.sh("lookout install");
    assert!(again.ends_with("nothing to change: lookout is installed\n"), "{again}");
    assert!(c.sh("mender-monitorctl list").starts_with("no checks in /etc/mender-monitor/monitor.d/available\n"));

    // Prerequisites and "Monitoring a log file" (--crash-interval 20 -> 2: a crash every ~7 s).
    c.upload("/root/crasher.py", fs::read_to_string(format!("{SEED}/crasher.py")).unwrap());
    c.sh("chmod 755 crasher.py\n./crasher.py -h");
    c.sh("./crasher.py --log-to-file --crash-interval 2 --fake-crash & sleep 1; echo $! > crasher.pid");
    c.sh("mender-monitorctl create    log         crasher_app      ERROR     /root/crasher.log                5");
    c.sh("mender-monitorctl enable log crasher_app");
    let error = "Log file contains ERROR";
    server.wait_for("the crasher's CRITICAL, then its OK 5 s later", |a| {
        in_order(&since(a, 0), &[pair("CRITICAL", error), pair("OK", error)])
    });
    c.sh("kill -INT $(cat crasher.pid)\nmender-monitorctl disable log crasher_app\nmender-monitorctl delete log crasher_app");

    // "Monitoring a docker container" (expiry 15 -> 3), with the stand-in docker.
    let mark = server.alerts().len();
    c.sh(
        r#"mender-monitorctl create    log      monitor-container   ".*container die.*image=crasher-docker-image"     "@docker events"                    3
mender-monitorctl enable log monitor-container
systemctl restart mender-monitor"#,
    );
    let die = "Log file contains .*container die.*image=crasher-docker-image";
    server.wait_for("the container's die CRITICAL and its OK", |a| in_order(&since(a, mark), &[pair("CRITICAL", die), pair("OK", die)]));
    c.sh("sleep 1\nmender-monitorctl disable log monitor-container\nmender-monitorctl delete log monitor-container");
    assert!(c.sh("mender-monitorctl list").starts_with("no checks in "));

    // "Monitoring a systemd service".
    let mark = server.alerts().len();
    c.upload("/etc/systemd/system/crasher.service", fs::read_to_string(format!("{SEED}/crasher.service")).unwrap());
    c.sh("systemctl start crasher");
    c.sh("mender-monitorctl create     service         crasher           systemd");
    c.sh("mender-monitorctl enable service crasher\nsystemctl stop crasher");
    let down = "Service crasher not running";
    server.wait_for("the stopped service's CRITICAL", |a| in_order(&since(a, mark), &[pair("CRITICAL", down)]));
    c.sh("systemctl start crasher\nsleep 1");
    server.wait_for("its OK once started again", |a| in_order(&since(a, mark), &[pair("CRITICAL", down), pair("OK", down)]));
    c.sh("mender-monitorctl disable service crasher\nmender-monitorctl delete service crasher\nsystemctl stop crasher");

    // "Flapping example": the page's two sed lines, a restart, and the restarting unit (a crash
    // after 1-2 s instead of 50-60, RestartSec 2 instead of 10).
    c.sh("sed -i 's/FLAPPING_INTERVAL=.*/FLAPPING_INTERVAL=150/g' /usr/share/mender-monitor/config/config.sh\n\
         sed -i 's/FLAPPING_COUNT_THRESHOLD=.*/FLAPPING_COUNT_THRESHOLD=3/g' /usr/share/mender-monitor/config/config.sh\n\
         systemctl restart mender-monitor");
    let config = c.sh("cat /usr/share/mender-monitor/config/config.sh");
    assert!(config.contains("\nFLAPPING_INTERVAL=150\n") && config.contains("\nFLAPPING_COUNT_THRESHOLD=3\n"), "{config}");
    assert!(c.sh("lookout check-config").starts_with("OK: 0 checks"), "the edited config.sh is clean");
    let restarting = fs::read_to_string(format!("{SEED}/crasher-restarting.service")).unwrap();
    let shortened =
        restarting.replace("RestartSec=10", "RestartSec=2").replace("--crash-interval-random 50 60", "--crash-interval-random 1 2");
    assert_ne!(shortened, restarting);
    c.upload("/etc/systemd/system/crasher.service", &shortened);
    let mark = server.alerts().len();
    c.sh("mender-monitorctl create service crasher systemd\nsystemctl start crasher\nmender-monitorctl enable service crasher");
    let flapping = "Service crasher going up and down";
    let alerts = server.wait_for("crashed, running again, then going up and down", |a| {
        in_order(&since(a, mark), &[pair("CRITICAL", down), pair("OK", down), pair("CRITICAL", flapping)])
    });
    eprintln!("flapping phase: {:?}", since(&alerts, mark));
    c.sh(
        "systemctl restart crasher\nsleep 1\nmender-monitorctl disable service crasher\nmender-monitorctl delete service crasher\nsystemctl stop crasher",
    );
    // Deleting the check clears what it raised.
    server.wait_for("the flapping alert cleared", |a| in_order(&since(a, mark), &[pair("CRITICAL", flapping), pair("OK", flapping)]));

    // And away again: the unit stopped and gone, the edited config.sh kept.
    let said = c.sh("lookout uninstall");
    assert!(said.contains("run           systemctl stop mender-monitor.service"), "{said}");
    assert!(said.contains("config.sh (edited: yours (--purge removes it))"), "{said}");
    assert_eq!(c.exec(&["systemctl", "is-active", "mender-monitor.service"]), "inactive");
    assert!(!units.join("mender-monitor.service").exists());
    assert!(c.exec(&["sh", "-c", "command -v mender-monitorctl || echo gone"]) == "gone");
}
