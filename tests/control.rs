//! Local control: `status`, `reload`, `test-pattern`, `check-config`, and a control socket that
//! no client can use to stall the agent.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Output;

use common::*;
use serde_json::Value;

fn status(root: &Root) -> Value {
    let out = root.ctl(&["status", "--json"]);
    assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name} in {s}"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn without_timestamp(mut a: Value) -> Value {
    a.as_object_mut().unwrap().remove("timestamp");
    a
}

#[test]
fn status_shows_a_critical_check_and_its_offset_advancing() {
    let (root, server, log) = log_check("status", "app", "ERROR", Some("60"));
    let out = root.ctl(&["status"]);
    assert_eq!(out.status.code(), Some(3), "no daemon: exit 3; {}", stderr(&out));
    assert!(stderr(&out).contains("no lookout daemon answers on"));
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"boot\nERROR disk failure\n");
    server.wait_alerts(1);
    let s = status(&root);
    let c = check(&s, "app");
    assert_eq!(c["state"], "running");
    assert_eq!(c["level"], "CRITICAL");
    assert_eq!(c["alert"], "Log file contains ERROR");
    assert!(c["last_match"].as_str().is_some() && c["expires"].as_str().is_some());
    let offset = c["source"]["offset"].as_u64().unwrap();
    assert_eq!(offset, 24);
    assert_eq!(c["source"]["line"], 3);
    assert_eq!(c["counters"]["alerts"], 1);
    append(&log, b"more\n");
    wait_until("the offset to advance", || check(&status(&root), "app")["source"]["offset"].as_u64() == Some(offset + 5));
    let table = String::from_utf8_lossy(&root.ctl(&["status"]).stdout).into_owned();
    assert!(table.contains("log app  CRITICAL"), "{table}");
    assert!(table.contains("offset 29, line 4"), "{table}");
    assert!(table.contains("uplink: to http://127.0.0.1:"), "{table}");
    assert_eq!(s["uplink"]["counters"]["delivered"], 1);
    drop(daemon);
}

#[test]
fn reload_keeps_unchanged_checks_and_restarts_changed_ones() {
    let root = Root::new("reload");
    let server = AlertServer::start();
    let (a, b) = (root.log("a.log"), root.log("b.log"));
    root.ctl_ok(&["create", "log", "a", "AERR", a.to_str().unwrap(), "4"]);
    root.ctl_ok(&["create", "log", "b", "BERR", b.to_str().unwrap(), "60"]);
    root.ctl_ok(&["enable", "log", "a"]);
    root.ctl_ok(&["enable", "log", "b"]);
    let daemon = Daemon::start(&root, Some(&server));
    append(&a, b"AERR\n");
    append(&b, b"BERR\n");
    server.wait_alerts(2);
    let before = check(&status(&root), "a").clone();
    // b changes (a new pattern renames its alert); a does not.
    root.ctl_ok(&["create", "log", "b", "BFAIL", b.to_str().unwrap(), "60"]);
    let out = root.ctl(&["reload"]);
    assert!(out.status.success(), "reload: {}", stderr(&out));
    let after = check(&status(&root), "a").clone();
    assert_eq!(after["expires"], before["expires"], "a keeps its expiry");
    assert_eq!(after["source"], before["source"], "a keeps its position");
    let alerts = server.wait_alerts(3);
    assert_eq!(level_name(&alerts[2]), ("OK".into(), "Log file contains BERR".into()), "b's old alert is cleared");
    // a's OK comes when it was due, and a was never raised again.
    let alerts = server.wait_for("a's OK", |al| al.iter().any(|x| x["name"] == "Log file contains AERR" && x["level"] == "OK"));
    let ok = alerts.iter().find(|x| x["name"] == "Log file contains AERR" && x["level"] == "OK").unwrap();
    let due =
        humantime::parse_rfc3339(before["expires"].as_str().unwrap()).unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    let sent = timestamp_ms(ok);
    assert!(sent >= due && sent - due < 2_000, "OK dated {sent}, due {due}");
    assert_eq!(alerts.iter().filter(|x| x["name"] == "Log file contains AERR" && x["level"] == "CRITICAL").count(), 1);
    drop(daemon);
}

#[test]
fn a_broken_file_on_reload_keeps_the_previous_version() {
    let (root, server, log) = log_check("broken-reload", "app", "ERROR", Some("1"));
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"ERROR one\n");
    server.wait_alerts(2);
    std::fs::write(root.available().join("log_app.sh"), "LOG_PATTERN=\"([\"\nLOG_FILE=/x\n").unwrap();
    let out = root.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("log_app.sh:1: LOG_PATTERN: invalid pattern"), "{err}");
    assert!(err.contains("check log app: keeping the previous version running"), "{err}");
    append(&log, b"ERROR two\n");
    let alerts = server.wait_alerts(3);
    assert_eq!(alerts[2]["subject"]["details"]["line_matching"]["data"], "ERROR two");
    let out = root.ctl(&["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("log_app.sh:1: LOG_PATTERN: invalid pattern"), "{text}");
    assert!(text.contains("FAILED: 1 checks (1 enabled), 1 errors"), "{text}");
    drop(daemon);
}

#[test]
fn clients_that_never_read_do_not_stall_alerts() {
    let (root, server, log) = log_check("flood-clients", "app", "ERROR", None);
    let daemon = Daemon::start(&root, Some(&server));
    let sock = root.path().join("run/lookout.sock");
    let mut idle = Vec::new();
    for i in 0..100 {
        let mut c = UnixStream::connect(&sock).unwrap();
        if i % 2 == 0 {
            // Asks, then never reads the answer.
            let _ = c.write_all(b"{\"v\":1,\"cmd\":\"status\"}\n");
        }
        idle.push(c);
    }
    append(&log, b"ERROR during the client flood\n");
    server.wait_alerts(1);
    // Slow clients are dropped after their time is up; then status answers again.
    wait_until("status to answer again", || root.ctl(&["status", "--json"]).status.success());
    let agent = &status(&root)["agent"];
    // Every connection was served or refused at once; the 50 that never ask can hold at most
    // 16 slots, so at least 34 of them were refused.
    let (accepted, refused) = (agent["control_accepted"].as_u64().unwrap(), agent["control_refused_too_many"].as_u64().unwrap());
    assert!(accepted + refused >= 100 && refused >= 34, "{agent}");
    // The clients that never asked are closed when their time is up.
    wait_until("idle clients to be timed out", || status(&root)["agent"]["control_timed_out"].as_u64() >= Some(1));
    drop(idle);
    drop(daemon);
}

#[test]
fn test_pattern_shows_what_the_daemon_sends() {
    let root = Root::new("test-pattern");
    let server = AlertServer::start();
    let log = root.log("app.log");
    let mut text = String::new();
    for i in 1..=40 {
        text.push_str(&format!("line {i}\n"));
    }
    text.push_str("ERROR:root:Crashing...\n\u{fffd} after\nlast\n");
    std::fs::write(&log, &text).unwrap();
    let out = root.ctl(&["test-pattern", "--name", "app", "ERROR", log.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.starts_with("41:ERROR:root:Crashing...\n--- the alert"), "{report}");
    let json_start = report.find('{').unwrap();
    let predicted: Value = serde_json::from_str(&report[json_start..]).unwrap();
    root.ctl_ok(&["create", "log", "app", "ERROR", log.to_str().unwrap()]);
    root.ctl_ok(&["enable", "log", "app"]);
    let daemon = Daemon::start(&root, Some(&server));
    let sent = server.wait_alerts(1);
    assert_eq!(without_timestamp(sent[0].clone()), without_timestamp(predicted));
    let none = root.ctl(&["test-pattern", "NOPE", log.to_str().unwrap()]);
    assert_eq!(none.status.code(), Some(1));
    // `-` reads standard input, as the usage says (argh alone refuses a lone `-`).
    let mut piped = command_for(&bin())
        .args(["test-pattern", "--name", "app", "ERROR", "-"])
        .stdin(std::process::Stdio::from(std::fs::File::open(&log).unwrap()))
        .output()
        .unwrap();
    assert!(piped.status.success(), "{}", stderr(&piped));
    piped.stdout.truncate(report.find('{').unwrap());
    assert_eq!(String::from_utf8_lossy(&piped.stdout), report[..json_start]);
    drop(daemon);
}

#[test]
fn mender_monitorctl_tells_the_running_daemon() {
    let root = Root::new("notify");
    let server = AlertServer::start();
    let daemon = Daemon::start(&root, Some(&server));
    let log = root.log("app.log");
    root.ctl_ok(&["create", "log", "app", "ERROR", log.to_str().unwrap()]);
    root.ctl_ok(&["enable", "log", "app"]);
    daemon.wait_log("reload requested on the control socket");
    daemon.wait_log("check log app: started");
    let out = root.ctl(&["check-config"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK: 1 checks (1 enabled), 0 errors, 0 warnings\n");
    drop(daemon);
}
