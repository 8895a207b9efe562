//! Delivery as a device sees it: the server is down, slow, refuses a record or the token, the
//! agent is killed with alerts in its spool, the spool's tail is torn, a flood hits the bounds;
//! the token comes from a Mender client on a real dbus-daemon (a python3-dbus stand-in). Every
//! alert must arrive, in order, or be accounted for.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// `(level, subject, matching line)` of every alert, in order.
fn summary(alerts: &[Value]) -> Vec<(String, String, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                a["level"].as_str().unwrap_or_default().to_string(),
                a["subject"]["name"].as_str().unwrap_or_default().to_string(),
                a["subject"]["details"]["line_matching"]["data"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn expect(v: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    v.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect()
}

/// Creates and enables a log check on `logs/<name>.log` with `ERROR` as pattern.
fn log_check(root: &Root, name: &str, expiry: Option<&str>) -> PathBuf {
    let log = root.log(&format!("{name}.log"));
    let mut args = vec!["create", "log", name, "ERROR", log.to_str().unwrap()];
    args.extend(expiry);
    root.ctl_ok(&args);
    root.ctl_ok(&["enable", "log", name]);
    log
}

fn status(root: &Root) -> Value {
    let out = root.ctl(&["status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn counter(root: &Root, name: &str) -> u64 {
    status(root)["uplink"]["counters"][name].as_u64().unwrap_or(0)
}

/// The agent sending to `url` (`--server`).
fn agent_to(root: &Root, url: &str) -> Daemon {
    let mut cmd = command_for(&bin());
    cmd.arg("--root").arg(root.path()).args(["run", "--server", url, "--token", "TOKEN"]);
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    Daemon::spawn(root, cmd)
}

#[test]
fn alerts_raised_while_the_server_is_down_arrive_in_order() {
    let root = Root::new("uplink-down");
    root.write_config("SEND_ALERT_MAX_INTERVAL_S=1\n");
    let port = free_port();
    let app = log_check(&root, "app", Some("1"));
    let other = log_check(&root, "other", None);
    let daemon = agent_to(&root, &format!("http://127.0.0.1:{port}"));
    append(&app, b"ERROR one\n");
    daemon.wait_log("alert OK \"Log file contains ERROR\" (app)");
    append(&app, b"ERROR two\n");
    daemon.wait_log_count("alert CRITICAL \"Log file contains ERROR\" (app)", 2);
    append(&other, b"ERROR three\n");
    daemon.wait_log("alert CRITICAL \"Log file contains ERROR\" (other)");
    daemon.wait_log_count("alert OK \"Log file contains ERROR\" (app)", 2);
    daemon.wait_log("Connection refused");
    assert_eq!(status(&root)["uplink"]["queue_depth"], 5, "all five wait in the spool");

    // The server comes up where the agent has been failing to connect.
    let server = AlertServer::start_on(port);
    let alerts = server.wait_alerts(5);
    assert_eq!(
        summary(&alerts),
        expect(&[
            ("CRITICAL", "app", "ERROR one"),
            ("OK", "app", ""),
            ("CRITICAL", "app", "ERROR two"),
            ("CRITICAL", "other", "ERROR three"),
            ("OK", "app", "")
        ])
    );
    wait_until("the spool to drain", || status(&root)["uplink"]["queue_depth"] == 0);
    assert_eq!(counter(&root, "delivered"), 5);
    drop(daemon);
}

#[test]
fn a_refused_record_is_the_only_one_lost() {
    let root = Root::new("uplink-400");
    root.write_config("SEND_ALERT_MAX_INTERVAL_S=1\n");
    let server = AlertServer::start();
    server.set_reply(Reply::Status(503, None));
    let logs: Vec<PathBuf> = ["one", "two", "three"].iter().map(|n| log_check(&root, n, None)).collect();
    let daemon = agent_to(&root, server.url());
    for (log, line) in logs.iter().zip(["ERROR fine 1", "ERROR POISON", "ERROR fine 3"]) {
        append(log, format!("{line}\n").as_bytes());
    }
    daemon.wait_log_count("alert CRITICAL", 3);
    // They wait together, so they go in one batch, which the server refuses because of one.
    server.wait_alert_attempts(1);
    server.refuse_bodies_with("POISON");
    server.set_reply(Reply::Accept);
    let alerts = server.wait_alerts(2);
    assert_eq!(summary(&alerts), expect(&[("CRITICAL", "one", "ERROR fine 1"), ("CRITICAL", "three", "ERROR fine 3")]));
    daemon.wait_log("the server refuses CRITICAL \"Log file contains ERROR\" (two) on its own; dropped it");
    assert!(daemon.log().contains("HTTP 400"), "the server's reason is in the log:\n{}", daemon.log());
    assert_eq!(counter(&root, "rejected"), 1);
    assert!(counter(&root, "bisections") >= 1);
    // Later alerts are not held up.
    let four = log_check(&root, "four", None);
    append(&four, b"ERROR fine 4\n");
    let alerts = server.wait_alerts(3);
    assert_eq!(summary(&alerts[2..]), expect(&[("CRITICAL", "four", "ERROR fine 4")]));
    assert!(!serde_json::to_string(&alerts).unwrap().contains("POISON"));
    drop(daemon);
}

#[test]
fn retry_after_is_a_floor_for_the_next_attempt() {
    let root = Root::new("uplink-429");
    let server = AlertServer::start();
    server.set_reply(Reply::Status(429, Some("3".into())));
    let log = log_check(&root, "app", None);
    let daemon = agent_to(&root, server.url());
    append(&log, b"ERROR busy\n");
    let first = server.wait_alert_attempts(1)[0].clone();
    assert_eq!(first.status, 429);
    server.set_reply(Reply::Accept);
    server.wait_alerts(1);
    let attempts = server.wait_alert_attempts(2);
    let gap = attempts[1].at - attempts[0].at;
    // Without Retry-After the first backoff is at most 1 s.
    assert!(gap >= Duration::from_millis(2900), "the second attempt came {gap:?} after a 429 with Retry-After: 3");
    drop(daemon);
}

#[test]
fn a_hanging_server_times_out_and_the_agent_keeps_working() {
    let root = Root::new("uplink-hang");
    root.write_config("SEND_ALERT_TIMEOUT_S=2\nSEND_ALERT_MAX_INTERVAL_S=1\n");
    let server = AlertServer::start();
    server.set_reply(Reply::Hang);
    let app = log_check(&root, "app", None);
    let other = log_check(&root, "other", None);
    let daemon = agent_to(&root, server.url());
    append(&app, b"ERROR first\n");
    server.wait_alert_attempts(1);
    // The worker waits on the server; the reactor does not.
    append(&other, b"ERROR second\n");
    daemon.wait_log("alert CRITICAL \"Log file contains ERROR\" (other)");
    let asked = Instant::now();
    let s = status(&root);
    assert!(asked.elapsed() < Duration::from_secs(2), "status answered while a request hangs");
    assert_eq!(s["uplink"]["counters"]["in_flight"], 1, "{s}");
    server.set_reply(Reply::Accept);
    let alerts = server.wait_alerts(2);
    assert_eq!(summary(&alerts), expect(&[("CRITICAL", "app", "ERROR first"), ("CRITICAL", "other", "ERROR second")]));
    let attempts = server.wait_alert_attempts(2);
    assert!(attempts[1].at - attempts[0].at >= Duration::from_millis(1900), "the hung request was given up after SEND_ALERT_TIMEOUT_S");
    drop(daemon);
}

#[test]
fn a_request_hung_at_the_stop_does_not_hold_the_agent() {
    let root = Root::new("uplink-hang-stop");
    // Waiting for the hung request would take two minutes; the stop must not.
    root.write_config("SEND_ALERT_TIMEOUT_S=120\n");
    let server = AlertServer::start();
    server.set_reply(Reply::Hang);
    let app = log_check(&root, "app", None);
    let daemon = agent_to(&root, server.url());
    append(&app, b"ERROR hung\n");
    daemon.wait_log("alert CRITICAL");
    // The first request (the configuration push at start) hangs; the alert waits behind it.
    wait_until("a request to hang", || !server.attempts().is_empty());
    let log = daemon.stderr.clone();
    // terminate() gives up (and fails the test) after 20 s.
    assert!(daemon.terminate().success());
    let said = fs::read_to_string(&log).unwrap_or_default();
    assert!(said.contains("a request to the server is still under way; stopping without it"), "{said}");
    // Not acknowledged, so sent again by the next run.
    server.set_reply(Reply::Accept);
    let daemon = agent_to(&root, server.url());
    let alerts = server.wait_alerts(1);
    assert_eq!(summary(&alerts), expect(&[("CRITICAL", "app", "ERROR hung")]));
    drop(daemon);
}

fn spool_segments(root: &Root) -> Vec<PathBuf> {
    let dir = root.path().join("var/lib/mender-monitor/spool");
    let mut segs: Vec<PathBuf> =
        fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "seg")).collect();
    segs.sort();
    segs
}

/// Three alerts wait in the spool of an agent whose server answers 503.
fn three_waiting(tag: &str) -> (Root, AlertServer, Daemon) {
    let root = Root::new(tag);
    root.write_config("SEND_ALERT_MAX_INTERVAL_S=1\n");
    let server = AlertServer::start();
    server.set_reply(Reply::Status(503, None));
    let logs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| log_check(&root, n, None)).collect();
    let daemon = agent_to(&root, server.url());
    for (log, n) in logs.iter().zip(1..) {
        append(log, format!("ERROR {n}\n").as_bytes());
        daemon.wait_log_count("alert CRITICAL", n);
    }
    // In the spool (the log line comes just before the write).
    wait_until("three alerts in the spool", || status(&root)["uplink"]["queue_depth"] == 3);
    server.wait_alert_attempts(1);
    (root, server, daemon)
}

const THREE: &[(&str, &str, &str)] = &[("CRITICAL", "a", "ERROR 1"), ("CRITICAL", "b", "ERROR 2"), ("CRITICAL", "c", "ERROR 3")];

/// The alerts in order of first arrival: at-least-once delivery may repeat one.
fn first_arrivals(alerts: &[Value]) -> Vec<(String, String, String)> {
    let mut seen = Vec::new();
    for a in summary(alerts) {
        if !seen.contains(&a) {
            seen.push(a);
        }
    }
    seen
}

#[test]
fn kill_9_with_alerts_in_the_spool_then_restart_delivers_them_in_order() {
    let (root, server, daemon) = three_waiting("uplink-kill9");
    daemon.kill9();
    server.set_reply(Reply::Accept);
    let daemon = agent_to(&root, server.url());
    daemon.wait_log("spool: 3 alerts from before the restart wait for delivery");
    // At least once, in order. (A kill between spooling an alert and saving the check's read
    // position makes the check raise it again after the restart: a repeat, never a loss.)
    let alerts = server.wait_for("the three", |a| first_arrivals(a).len() >= 3);
    assert_eq!(first_arrivals(&alerts), expect(THREE));
    // After a clean stop nothing is sent again.
    let status = daemon.terminate();
    assert!(status.success());
    let before = server.alerts().len();
    let daemon = agent_to(&root, server.url());
    assert!(!daemon.log().contains("from before the restart"), "{}", daemon.log());
    let probe = log_check(&root, "probe", None);
    append(&probe, b"ERROR probe\n");
    let alerts = server.wait_alerts(before + 1);
    assert_eq!(summary(&alerts[before..]), expect(&[("CRITICAL", "probe", "ERROR probe")]));
    drop(daemon);
}

#[test]
fn a_stopped_agent_keeps_what_it_could_not_send_and_a_torn_tail_is_dropped() {
    let (root, server, daemon) = three_waiting("uplink-torn");
    let status = daemon.terminate();
    assert!(status.success());
    let segs = spool_segments(&root);
    let last = segs.last().unwrap();
    // A power cut in the middle of the last record.
    let len = fs::metadata(last).unwrap().len();
    fs::OpenOptions::new().write(true).open(last).unwrap().set_len(len - 10).unwrap();
    server.set_reply(Reply::Accept);
    let daemon = agent_to(&root, server.url());
    daemon.wait_log("torn by a crash");
    assert!(daemon.log().contains(&last.file_name().unwrap().to_string_lossy().into_owned()), "the log names the file:\n{}", daemon.log());
    let alerts = server.wait_alerts(2);
    assert_eq!(summary(&alerts), expect(&THREE[..2]));
    assert!(counter(&root, "spool_corrupt_bytes") > 0);
    drop(daemon);
}

#[test]
fn a_spoiled_record_in_the_middle_is_skipped_and_the_rest_delivered() {
    let (root, server, daemon) = three_waiting("uplink-spoiled");
    daemon.kill9();
    let seg = spool_segments(&root).last().unwrap().clone();
    let mut bytes = fs::read(&seg).unwrap();
    // Spoil the second record's payload (records start with the magic "LKA1").
    let starts: Vec<usize> = bytes.windows(4).enumerate().filter(|(_, w)| *w == b"LKA1").map(|(i, _)| i).collect();
    assert_eq!(starts.len(), 3);
    bytes[starts[1] + 30] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    server.set_reply(Reply::Accept);
    let daemon = agent_to(&root, server.url());
    daemon.wait_log("spoiled bytes at offset");
    let alerts = server.wait_alerts(2);
    assert_eq!(summary(&alerts), expect(&[THREE[0], THREE[2]]));
    drop(daemon);
}

#[test]
fn a_flood_keeps_the_last_state_of_every_alert() {
    let root = Root::new("uplink-flood");
    root.write_config("ALERT_OFFLINE_STORE_MAX_COUNT=4\nFLAPPING_COUNT_THRESHOLD=0\nSEND_ALERT_MAX_INTERVAL_S=1\n");
    let server = AlertServer::start();
    server.set_reply(Reply::Status(503, None));
    let app = log_check(&root, "app", Some("1"));
    let pidfile = root.path().join("var/run/svc.pid");
    fs::create_dir_all(pidfile.parent().unwrap()).unwrap();
    let spawn = || Command::new("sleep").arg("100000").spawn().unwrap();
    let mut proc = spawn();
    fs::write(&pidfile, format!("{}\n", proc.id())).unwrap();
    root.ctl_ok(&["create", "service", "svc", "sysV"]);
    root.ctl_ok(&["enable", "service", "svc"]);
    let daemon = agent_to(&root, server.url());
    daemon.wait_log("check service svc: started");
    // The app's alert: CRITICAL, then its OK.
    append(&app, b"ERROR once\n");
    daemon.wait_log("alert OK \"Log file contains ERROR\" (app)");
    // Then a service goes down and up 12 times: 24 alerts for a store of 4.
    for i in 1..=12 {
        proc.kill().unwrap();
        proc.wait().unwrap();
        daemon.wait_log_count("alert CRITICAL \"Service svc not running\"", i);
        proc = spawn();
        fs::write(&pidfile, format!("{}\n", proc.id())).unwrap();
        daemon.wait_log_count("alert OK \"Service svc not running\"", i);
    }
    server.set_reply(Reply::Accept);
    wait_until("the spool to drain", || status(&root)["uplink"]["queue_depth"] == 0 && !server.alerts().is_empty());
    let alerts: Vec<Value> = server.alerts().into_iter().map(|(_, a)| a).collect();
    let got: Vec<(String, String)> =
        alerts.iter().map(|a| (a["level"].as_str().unwrap().into(), a["subject"]["name"].as_str().unwrap().into())).collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0], ("OK".to_string(), "app".to_string()), "the app's last state survives the flood: {got:?}");
    assert!(!got.contains(&("CRITICAL".to_string(), "app".to_string())), "its superseded CRITICAL went first: {got:?}");
    assert_eq!(got[3], ("OK".to_string(), "svc".to_string()), "the service's last state: {got:?}");
    assert_eq!(counter(&root, "dropped_superseded"), 26 - 4);
    assert_eq!(counter(&root, "dropped_last_state"), 0);
    assert!(daemon.log().contains("ALERT_OFFLINE_STORE_MAX_COUNT reached: dropped"), "drops are logged");
    drop(daemon);
    let _ = proc.kill();
    let _ = proc.wait();
}

#[test]
fn the_configuration_is_pushed_at_start_and_on_every_change() {
    let root = Root::new("uplink-confpush");
    root.write_config("");
    let server = AlertServer::start();
    let log = root.log("app.log");
    root.ctl_ok(&["create", "log", "app", "[Ee]rror.*", log.to_str().unwrap(), "32"]);
    root.ctl_ok(&["enable", "log", "app"]);
    root.ctl_ok(&["create", "service", "crond", "systemd"]);
    root.ctl_ok(&["enable", "service", "crond"]);
    let daemon = agent_to(&root, server.url());
    let app = serde_json::json!({"name": "app.sh", "type": "log", "status": "enabled",
        "log": {"pattern": "[Ee]rror.*", "path": log.to_str().unwrap(), "expire_seconds": 32}});
    let crond =
        serde_json::json!({"name": "crond.sh", "type": "service", "status": "enabled", "service": {"name": "crond", "type": "systemd"}});
    server.wait_requests("the first push", |r| r.iter().any(|r| r.path.ends_with("/config")));
    assert_eq!(server.configs(), vec![serde_json::json!([app, crond])]);
    let first = &server.requests()[0];
    assert_eq!(first.headers.get("authorization").map(String::as_str), Some("Bearer TOKEN"));
    assert_eq!(first.headers.get("content-type").map(String::as_str), Some("application/json"));

    root.ctl_ok(&["disable", "log", "app"]);
    server.wait_requests("the push after disable", |r| r.iter().filter(|r| r.path.ends_with("/config")).count() >= 2);
    assert_eq!(server.configs()[1], serde_json::json!([crond]));
    root.ctl_ok(&["enable", "log", "app"]);
    server.wait_requests("the push after enable", |r| r.iter().filter(|r| r.path.ends_with("/config")).count() >= 3);
    assert_eq!(server.configs()[2], serde_json::json!([app, crond]));

    // And every CONFPUSH_INTERVAL, unchanged.
    root.write_config("CONFPUSH_INTERVAL=1\n");
    server.wait_requests("a periodic push", |r| r.iter().filter(|r| r.path.ends_with("/config")).count() >= 5);
    assert_eq!(server.configs()[4], serde_json::json!([app, crond]));
    drop(daemon);
}

#[test]
fn alerts_wait_for_the_mender_clients_token() {
    let root = Root::new("uplink-notoken");
    let bus = Bus::start(&root);
    let server = AlertServer::start();
    server.require_token("T1");
    let mut client = MenderClient::start(&root, &bus, None);
    let log = log_check(&root, "app", None);
    let daemon = agent_via_mender_client(&root, &bus);
    append(&log, b"ERROR early\n");
    daemon.wait_log("alert CRITICAL");
    daemon.wait_log("no token yet");
    assert!(client.calls("GetJwtToken") >= 1);
    let s = status(&root);
    assert!(s["uplink"]["waiting_for"].as_str().unwrap_or_default().contains("no token yet"), "{s}");
    assert_eq!(s["uplink"]["queue_depth"], 1);
    assert!(server.attempts().is_empty(), "nothing is sent without a token");

    // The device is authorised: the client announces the token.
    client.tell(&format!("token T1 {}", server.url()));
    client.tell("emit");
    let alerts = server.wait_alerts(1);
    assert_eq!(summary(&alerts), expect(&[("CRITICAL", "app", "ERROR early")]));
    assert_eq!(server.requests().iter().find(|r| r.path.ends_with("/alert")).unwrap().headers["authorization"], "Bearer T1");
    assert!(server.configs().len() == 1, "the configuration goes to the same server");
    drop(daemon);
}

#[test]
fn a_refused_token_is_renewed_through_the_mender_client() {
    let root = Root::new("uplink-401");
    root.write_config("SEND_ALERT_MAX_INTERVAL_S=1\n");
    let bus = Bus::start(&root);
    let server = AlertServer::start();
    server.require_token("T2");
    let mut client = MenderClient::start(&root, &bus, Some(("T1", server.url())));
    client.tell("fetch-gives T2");
    let log = log_check(&root, "app", None);
    let daemon = agent_via_mender_client(&root, &bus);
    append(&log, b"ERROR stale token\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(summary(&alerts), expect(&[("CRITICAL", "app", "ERROR stale token")]));
    assert_eq!(client.calls("FetchJwtToken"), 1);
    assert!(server.attempts().iter().any(|a| a.status == 401 && a.authorization.as_deref() == Some("Bearer T1")));
    assert_eq!(server.requests().iter().find(|r| r.path.ends_with("/alert")).unwrap().headers["authorization"], "Bearer T2");
    assert!(daemon.log().contains("the token was refused; asking the Mender client for a new one"), "{}", daemon.log());
    drop(daemon);
}

#[test]
fn without_the_mender_client_alerts_wait_until_it_comes() {
    let root = Root::new("uplink-noclient");
    let bus = Bus::start(&root);
    let server = AlertServer::start();
    let log = log_check(&root, "app", None);
    let daemon = agent_via_mender_client(&root, &bus);
    daemon.wait_log("is not on the system bus");
    append(&log, b"ERROR alone\n");
    daemon.wait_log("alert CRITICAL");
    append(&log, b"ERROR again\n");
    // The Mender client starts: the agent hears the name appear and reads the token.
    let client = MenderClient::start(&root, &bus, Some(("T1", server.url())));
    let alerts = server.wait_alerts(1);
    assert_eq!(summary(&alerts), expect(&[("CRITICAL", "app", "ERROR alone")]));
    assert!(client.calls("GetJwtToken") >= 1);
    assert_eq!(daemon.log().matches("is not on the system bus").count(), 1, "said once:\n{}", daemon.log());
    drop(daemon);
}

#[test]
fn the_spool_lives_in_the_state_directory() {
    let root = Root::new("uplink-where");
    let server = AlertServer::start();
    let log = log_check(&root, "app", None);
    let daemon = agent_to(&root, server.url());
    append(&log, b"ERROR x\n");
    server.wait_alerts(1);
    let dir = Path::new(root.path()).join("var/lib/mender-monitor/spool");
    wait_until("the ack to be written", || dir.join("acked").exists());
    assert!(!spool_segments(&root).is_empty());
    drop(daemon);
}
