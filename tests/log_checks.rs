//! Black-box tests of the log subsystem: the built binary in a temp root, real inotify, real
//! files, a recording HTTP server standing in for Mender.

mod common;

use std::fs;
use std::process::Command;
use std::time::Instant;

use common::*;
use nix::sys::signal::Signal;

#[test]
fn crasher_scenario_end_to_end() {
    let root = Root::new("crasher");
    let server = AlertServer::start();
    let log = root.log("crasher.log");
    let log_s = log.to_str().unwrap();
    root.ctl_ok(&["create", "log", "crasher_app", "ERROR", log_s, "2"]);
    root.ctl_ok(&["enable", "log", "crasher_app"]);
    let daemon = Daemon::start(&root, Some(&server));
    // The crasher: logs a little, then an ERROR, and dies.
    let status = Command::new("sh").arg(env!("CARGO_MANIFEST_DIR").to_string() + "/tests/fixtures/crasher.sh").arg(&log).status().unwrap();
    assert_eq!(status.code(), Some(1));
    let written = Instant::now();
    let alerts = server.wait_alerts(1);
    let critical_latency = written.elapsed();
    let a = &alerts[0];
    assert_eq!(level_name(a), ("CRITICAL".into(), "Log file contains ERROR".into()));
    assert_eq!(a["subject"]["name"], "crasher_app");
    assert_eq!(a["subject"]["type"], "log");
    assert_eq!(a["subject"]["status"], "LOGCONTAINS");
    assert_eq!(a["subject"]["details"]["description"], format!("ERROR present in {log_s}"));
    assert_eq!(lines(&a["subject"]["details"]["lines_before"]), vec![(1, "INFO:root:Starting".into()), (2, "INFO:root:Working".into())]);
    assert_eq!(a["subject"]["details"]["line_matching"]["data"], "ERROR:root:Crashing...");
    assert_eq!(a["subject"]["details"]["line_matching"]["line_number"], 3);
    let req = &server.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.headers.get("authorization").map(String::as_str), Some("Bearer TOKEN"));
    assert_eq!(req.headers.get("content-type").map(String::as_str), Some("application/json"));
    // 2 s without another match: the OK, with the same name.
    let alerts = server.wait_alerts(2);
    let ok = &alerts[1];
    assert_eq!(level_name(ok), ("OK".into(), "Log file contains ERROR".into()));
    let gap = timestamp_ms(ok) - timestamp_ms(&alerts[0]);
    assert!((2000..10_000).contains(&gap), "OK came {gap} ms after the CRITICAL");
    eprintln!("CRITICAL arrived {critical_latency:?} after the write");
    root.ctl_ok(&["disable", "log", "crasher_app"]);
    root.ctl_ok(&["delete", "log", "crasher_app"]);
    let out = root.ctl(&["list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("no checks in "), "{}", String::from_utf8_lossy(&out.stdout));
    // mender-monitorctl tells the daemon at once: the check stops when it is disabled.
    daemon.wait_log("check log crasher_app: stopped (check disabled)");
    assert_eq!(server.alerts().len(), 2, "an OK check that goes away sends nothing");
}

#[test]
fn context_lines_from_one_write() {
    let (root, server, log) = log_check("context", "ctx", "match", None);
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"first\nsecond\n");
    append(&log, b"match\nafter\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts.len(), 1);
    let d = &alerts[0]["subject"]["details"];
    assert_eq!(lines(&d["lines_before"]), vec![(1, "first".into()), (2, "second".into())]);
    assert_eq!(d["line_matching"], serde_json::json!({"line_number": 3, "data": "match"}));
    assert_eq!(lines(&d["lines_after"]), vec![(4, "after".into())]);
    drop(daemon);
}

#[test]
fn file_created_after_enable_and_existing_matches_alert() {
    let (root, server, log) = log_check("late", "late", "FATAL", None);
    let daemon = Daemon::start(&root, Some(&server));
    daemon.wait_log("does not exist yet");
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    append(&log, b"boot\nFATAL: no disk\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["line_number"], 2);
}

/// logrotate's default mode (rename, create): lines written to the old file around the rotation,
/// some after it by a writer that still holds it open, all arrive, in order, with their numbers.
#[test]
fn rename_rotation_with_logrotate() {
    let (root, server, log) = log_check("rotate", "rot", "MATCH", Some("1"));
    let daemon = Daemon::start(&root, Some(&server));
    let mut writer = fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
    use std::io::Write;
    writer.write_all(b"a1 MATCH\n").unwrap();
    // The agent has read a1 once its alert has expired.
    server.wait_alerts(2);
    // Freeze the agent so the rotation happens with unread lines in the old file.
    daemon.signal(Signal::SIGSTOP);
    writer.write_all(b"a2\n").unwrap();
    logrotate(&root, &log, "create");
    writer.write_all(b"a3 (old fd after rename)\n").unwrap();
    append(&log, b"b1\n");
    daemon.signal(Signal::SIGCONT);
    append(&log, b"b2 MATCH\n");
    let alerts = server.wait_alerts(3);
    let d = &alerts[2]["subject"]["details"];
    assert_eq!(
        lines(&d["lines_before"]),
        vec![(1, "a1 MATCH".into()), (2, "a2".into()), (3, "a3 (old fd after rename)".into()), (1, "b1".into())]
    );
    assert_eq!(d["line_matching"]["line_number"], 2);
    daemon.wait_log("rotated");
}

/// logrotate copytruncate: the lines written between the agent's last read and the truncation
/// exist only in the copy; they are read from it before the truncated file is read again.
#[test]
fn copytruncate_with_logrotate() {
    let (root, server, log) = log_check("copytrunc", "ct", "MATCH", Some("1"));
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"x1\nx2\nfirst MATCH\n");
    // The agent has read everything once the first alert has expired.
    server.wait_alerts(2);
    daemon.signal(Signal::SIGSTOP);
    append(&log, b"x3 unread at rotation\n");
    logrotate(&root, &log, "copytruncate");
    append(&log, b"y1\n");
    daemon.signal(Signal::SIGCONT);
    append(&log, b"second MATCH\n");
    let alerts = server.wait_alerts(3);
    let d = &alerts[2]["subject"]["details"];
    assert_eq!(
        lines(&d["lines_before"]),
        vec![(1, "x1".into()), (2, "x2".into()), (3, "first MATCH".into()), (4, "x3 unread at rotation".into()), (1, "y1".into())]
    );
    assert_eq!(d["line_matching"], serde_json::json!({"line_number": 2, "data": "second MATCH"}));
    daemon.wait_log("copytruncate");
}

/// Deleted and re-created: what was written to the old file before the deletion is still read.
#[test]
fn delete_and_recreate() {
    let (root, server, log) = log_check("recreate", "rc", "MATCH", Some("1"));
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"old1\nMATCH one\n");
    server.wait_alerts(2);
    daemon.signal(Signal::SIGSTOP);
    append(&log, b"old2 unread at deletion\n");
    fs::remove_file(&log).unwrap();
    append(&log, b"new1\n");
    daemon.signal(Signal::SIGCONT);
    append(&log, b"MATCH two\n");
    let alerts = server.wait_alerts(3);
    let d = &alerts[2]["subject"]["details"];
    assert_eq!(
        lines(&d["lines_before"]),
        vec![(1, "old1".into()), (2, "MATCH one".into()), (3, "old2 unread at deletion".into()), (1, "new1".into())]
    );
}

fn logrotate(root: &Root, log: &std::path::Path, mode: &str) {
    let conf = root.path().join(format!("logrotate-{mode}.conf"));
    fs::write(&conf, format!("{} {{\n  rotate 3\n  {mode}\n  missingok\n}}\n", log.display())).unwrap();
    // Root's PATH has /usr/sbin; a user's may not.
    let bin = ["/usr/sbin/logrotate", "/sbin/logrotate"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap_or("logrotate");
    let out = Command::new(bin)
        .arg("-f")
        .arg("-s")
        .arg(root.path().join("logrotate.status"))
        .arg(&conf)
        .output()
        .expect("logrotate is installed (scripts/test installs it)");
    assert!(out.status.success(), "logrotate: {}", String::from_utf8_lossy(&out.stderr));
}

/// A 1 MiB line is cut (and counted), invalid UTF-8 and NUL bytes are sent as text, and
/// neither stalls the check.
#[test]
fn huge_line_and_invalid_utf8() {
    let (root, server, log) = log_check("bytes", "bytes", "ERROR", None);
    let daemon = Daemon::start(&root, Some(&server));
    let mut big = vec![b'x'; 1 << 20];
    big.push(b'\n');
    append(&log, &big);
    append(&log, b"\xff\xfe\x00 ERROR in binary\nafter\n");
    let alerts = server.wait_alerts(1);
    let d = &alerts[0]["subject"]["details"];
    let before = lines(&d["lines_before"]);
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].0, 1);
    assert_eq!(before[0].1.len(), 16 * 1024, "cut to LOG_MAX_LINE_BYTES");
    assert_eq!(d["line_matching"]["line_number"], 2);
    assert_eq!(d["line_matching"]["data"], "\u{fffd}\u{fffd}\u{0} ERROR in binary");
    assert_eq!(lines(&d["lines_after"]), vec![(3, "after".into())]);
    assert!(daemon.terminate().success());
}
