//! Program checks against real plugins (Debian's `monitoring-plugins-basic`) and user scripts:
//! exit statuses, the level mapping, a timeout that kills the whole group, a flood of output,
//! a plugin that cannot run, overruns, and the OK when a CRITICAL check is disabled.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use serde_json::Value;

const PLUGINS: &str = "/usr/lib/nagios/plugins";

fn plugins_installed() -> bool {
    let ok = Path::new(PLUGINS).join("check_disk").exists();
    if !ok {
        eprintln!("skipped: monitoring-plugins-basic is not installed (scripts/test installs it)");
    }
    ok
}

/// The alerts of check `name`: (level, subject status, description).
fn of(alerts: &[Value], name: &str) -> Vec<(String, String, String)> {
    alerts
        .iter()
        .filter(|a| a["subject"]["name"] == name)
        .map(|a| {
            assert_eq!(a["name"], format!("Program {name} not OK"));
            assert_eq!(a["subject"]["type"], "program");
            (
                a["level"].as_str().unwrap().to_string(),
                a["subject"]["status"].as_str().unwrap().to_string(),
                a["subject"]["details"]["description"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn counter(root: &Root, name: &str, key: &str) -> u64 {
    root.check_status(name)["counters"][key].as_u64().unwrap_or(0)
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn real_plugins_raise_and_clear() {
    if !plugins_installed() {
        return;
    }
    let root = Root::new("plugins");
    let server = AlertServer::start();
    let flag = root.path().join("flag");
    // Free space below 100% is always true: CRITICAL.
    root.ctl_ok(&["create", "program", "disk", &format!("{PLUGINS}/check_disk -w 100% -c 100% -p /"), "1"]);
    // A load of 1000 is never reached: OK, no alert.
    root.ctl_ok(&["create", "program", "load", &format!("{PLUGINS}/check_load -w 1000,1000,1000 -c 2000,2000,2000"), "1"]);
    // CRITICAL while the file is missing, OK once it exists.
    root.ctl_ok(&["create", "program", "flag", &format!("{PLUGINS}/check_file_age -w 3600 -c 7200 -f {}", flag.display()), "1"]);
    for c in ["disk", "load", "flag"] {
        root.ctl_ok(&["enable", "program", c]);
    }
    let daemon = Daemon::start(&root, Some(&server));
    let alerts = server.wait_for("disk and flag CRITICAL", |a| !of(a, "disk").is_empty() && !of(a, "flag").is_empty());
    let disk = &of(&alerts, "disk")[0];
    assert_eq!((disk.0.as_str(), disk.1.as_str()), ("CRITICAL", "CRITICAL"));
    assert!(disk.2.starts_with("DISK CRITICAL"), "{disk:?}");
    assert!(!disk.2.contains('|'), "performance data is not part of the description: {disk:?}");
    let flag_alert = &of(&alerts, "flag")[0];
    assert_eq!(flag_alert.0, "CRITICAL");
    assert!(flag_alert.2.contains("File not found"), "{flag_alert:?}");
    fs::write(&flag, "here").unwrap();
    let alerts = server.wait_for("flag OK", |a| of(a, "flag").len() >= 2);
    let flag_ok = &of(&alerts, "flag")[1];
    assert_eq!((flag_ok.0.as_str(), flag_ok.1.as_str()), ("OK", "OK"));
    assert!(flag_ok.2.starts_with("FILE_AGE OK"), "{flag_ok:?}");
    wait_until("a few runs of check_load", || counter(&root, "load", "runs") >= 2);
    let load = root.check_status("load");
    assert_eq!(load["level"], "OK");
    assert!(load["source"]["last"].as_str().unwrap().starts_with("OK: LOAD OK"), "{load}");
    // The disk stays CRITICAL: one alert only, however many runs.
    wait_until("more runs of check_disk", || counter(&root, "disk", "runs") >= 3);
    assert_eq!(of(&server.alerts().into_iter().map(|(_, a)| a).collect::<Vec<_>>(), "disk").len(), 1);
    assert!(of(&server.alerts().into_iter().map(|(_, a)| a).collect::<Vec<_>>(), "load").is_empty());
    // A CRITICAL program check that is disabled clears with an OK.
    root.ctl_ok(&["disable", "program", "disk"]);
    let alerts = server.wait_for("disk OK after disable", |a| of(a, "disk").len() >= 2);
    assert_eq!(of(&alerts, "disk")[1], ("OK".into(), "OK".into(), "check disabled".into()));
    assert!(daemon.terminate().success());
}

#[test]
fn exit_statuses_and_configured_levels() {
    let root = Root::new("statuses");
    let server = AlertServer::start();
    let code = root.path().join("code");
    fs::write(&code, "0").unwrap();
    let script = format!("c=$(cat {}); echo \"STATE $c | perf=1\"; exit $c", code.display());
    root.ctl_ok(&["create", "program", "plain", &script, "1"]);
    root.ctl_ok(&["create", "program", "mapped", &script, "1"]);
    // WARNING raises a WARNING, UNKNOWN raises nothing.
    let mapped = root.available().join("program_mapped.sh");
    let mut text = fs::read_to_string(&mapped).unwrap();
    text.push_str("PROGRAM_WARNING_LEVEL=WARNING\nPROGRAM_UNKNOWN_LEVEL=OK\n");
    fs::write(&mapped, text).unwrap();
    root.ctl_ok(&["enable", "program", "plain"]);
    root.ctl_ok(&["enable", "program", "mapped"]);
    let daemon = Daemon::start(&root, Some(&server));
    wait_until("first runs", || counter(&root, "plain", "runs") >= 1 && counter(&root, "mapped", "runs") >= 1);
    let step = |c: &str, plain: usize, mapped: usize| {
        fs::write(&code, c).unwrap();
        server.wait_for(&format!("after exit {c}"), |a| of(a, "plain").len() >= plain && of(a, "mapped").len() >= mapped)
    };
    let a = step("1", 1, 1);
    assert_eq!(of(&a, "plain")[0], ("CRITICAL".into(), "WARNING".into(), "STATE 1".into()));
    assert_eq!(of(&a, "mapped")[0], ("WARNING".into(), "WARNING".into(), "STATE 1".into()));
    let a = step("2", 2, 2);
    assert_eq!(of(&a, "plain")[1], ("CRITICAL".into(), "CRITICAL".into(), "STATE 2".into()));
    assert_eq!(of(&a, "mapped")[1], ("CRITICAL".into(), "CRITICAL".into(), "STATE 2".into()));
    // UNKNOWN: CRITICAL by default; mapped to OK, it clears.
    let a = step("3", 3, 3);
    assert_eq!(of(&a, "plain")[2], ("CRITICAL".into(), "UNKNOWN".into(), "STATE 3".into()));
    assert_eq!(of(&a, "mapped")[2], ("OK".into(), "UNKNOWN".into(), "STATE 3".into()));
    let a = step("0", 4, 3);
    assert_eq!(of(&a, "plain")[3], ("OK".into(), "OK".into(), "STATE 0".into()));
    // Not a plugin status: UNKNOWN.
    let a = step("42", 5, 3);
    assert_eq!(of(&a, "plain")[4], ("CRITICAL".into(), "UNKNOWN".into(), "exited with status 42 (not a plugin status): STATE 42".into()));
    assert!(daemon.terminate().success());
}

#[test]
fn timeout_kills_the_whole_group_and_overruns_are_counted() {
    let root = Root::new("timeout");
    let server = AlertServer::start();
    // A grandchild in the background and a shell that waits: both must die at the timeout.
    root.ctl_ok(&["create", "program", "slow", "sleep 987651 & echo 'still going'; sleep 987652", "1", "2"]);
    root.ctl_ok(&["enable", "program", "slow"]);
    let daemon = Daemon::start(&root, Some(&server));
    let a = server.wait_for("the timeout", |a| !of(a, "slow").is_empty());
    let (level, status, description) = &of(&a, "slow")[0];
    assert_eq!((level.as_str(), status.as_str()), ("CRITICAL", "UNKNOWN"));
    assert_eq!(description, "timed out after 2 s; its process group was killed (it said: still going)");
    wait_until("the group to be gone", || processes_with("sleep 98765").is_empty());
    // The slot that came while it ran was skipped, not started twice.
    assert!(counter(&root, "slow", "overruns") >= 1);
    assert!(counter(&root, "slow", "timeouts") >= 1);
    assert!(daemon.log().contains("not starting it twice"));
    assert!(daemon.terminate().success());
    assert!(processes_with("sleep 98765").is_empty());
}

#[test]
fn a_flood_of_output_and_plugins_that_cannot_run() {
    let root = Root::new("flood");
    let server = AlertServer::start();
    let not_exec = root.path().join("not-executable");
    fs::write(&not_exec, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&not_exec, fs::Permissions::from_mode(0o644)).unwrap();
    root.ctl_ok(&["create", "program", "flood", "yes 'FLOOD LINE'", "5", "3"]);
    // Exits at once, leaving a child that holds its stdout open: the run is over anyway.
    root.ctl_ok(&["create", "program", "holder", "sleep 987653 & echo 'HOLDER OK'; exit 0", "1"]);
    root.ctl_ok(&["create", "program", "missing", "/nonexistent/check_thing -w 1", "1"]);
    root.ctl_ok(&["create", "program", "noexec", not_exec.to_str().unwrap(), "1"]);
    for c in ["flood", "holder", "missing", "noexec"] {
        root.ctl_ok(&["enable", "program", c]);
    }
    let daemon = Daemon::start(&root, Some(&server));
    let a = server.wait_for("missing and noexec", |a| !of(a, "missing").is_empty() && !of(a, "noexec").is_empty());
    let missing = &of(&a, "missing")[0];
    assert_eq!((missing.0.as_str(), missing.1.as_str()), ("CRITICAL", "UNKNOWN"));
    assert!(missing.2.starts_with("cannot run the plugin: not found (exit status 127): "), "{missing:?}");
    let noexec = &of(&a, "noexec")[0];
    assert!(noexec.2.starts_with("cannot run the plugin: not executable (exit status 126): "), "{noexec:?}");
    let a = server.wait_for("the flood's timeout", |a| !of(a, "flood").is_empty());
    assert_eq!(of(&a, "flood")[0].2, "timed out after 3 s; its process group was killed (it said: FLOOD LINE)");
    assert!(counter(&root, "flood", "output_bytes_dropped") > 1 << 20, "{}", root.check_status("flood"));
    // Memory stays bounded whatever the plugin printed.
    let rss_kb: u64 = fs::read_to_string(format!("/proc/{}/status", daemon.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap()))
        .unwrap();
    assert!(rss_kb < 64 * 1024, "RSS {rss_kb} kB");
    wait_until("the holder to run twice", || counter(&root, "holder", "runs") >= 2);
    assert_eq!(counter(&root, "holder", "timeouts"), 0);
    assert!(of(&server.alerts().into_iter().map(|(_, a)| a).collect::<Vec<_>>(), "holder").is_empty());
    assert!(daemon.terminate().success());
    wait_until("the holder's child to be gone", || processes_with("sleep 987653").is_empty());
}
