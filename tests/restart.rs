//! What survives a restart: read positions (no re-alert, nothing missed), CRITICAL states and
//! their expiry; and what a crash (SIGKILL) costs: at most a repeated alert.

mod common;

use common::*;
use serde_json::Value;

fn matching(a: &Value) -> String {
    a["subject"]["details"]["line_matching"]["data"].as_str().unwrap_or_default().to_string()
}

#[test]
fn sigterm_and_restart_neither_realert_nor_miss() {
    let (root, server, log) = log_check("sigterm", "svc", "ERROR", Some("1"));
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"ERROR one\n");
    server.wait_alerts(2); // CRITICAL, then OK after 1 s
    let status = daemon.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert_eq!(server.alerts().len(), 2, "a daemon's shutdown raises no alerts");
    // Written while the agent is down.
    append(&log, b"ok line\nERROR two\n");
    let daemon = Daemon::start(&root, Some(&server));
    let alerts = server.wait_alerts(4);
    let crit: Vec<String> = alerts.iter().filter(|a| a["level"] == "CRITICAL").map(matching).collect();
    assert_eq!(crit, vec!["ERROR one", "ERROR two"], "the old match is not re-alerted, the new one is not missed");
    assert_eq!(alerts[2]["subject"]["details"]["line_matching"]["line_number"], 3);
    drop(daemon);
}

#[test]
fn critical_and_its_expiry_survive_a_restart() {
    let (root, server, log) = log_check("critical-restart", "svc", "ERROR", Some("3"));
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"ERROR one\n");
    let first = server.wait_alerts(1);
    assert_eq!(first[0]["level"], "CRITICAL");
    assert!(daemon.terminate().success());
    let daemon = Daemon::start(&root, Some(&server));
    // Another match while still CRITICAL (carried over) does not raise a second CRITICAL...
    append(&log, b"ERROR again\n");
    // ...and the OK still comes.
    let alerts = server.wait_alerts(2);
    assert_eq!(level_name(&alerts[1]), ("OK".into(), "Log file contains ERROR".into()));
    assert_eq!(alerts.iter().filter(|a| a["level"] == "CRITICAL").count(), 1);
    drop(daemon);
}

#[test]
fn after_kill9_nothing_is_missed() {
    let (root, server, log) = log_check("kill9", "svc", "ERROR", Some("1"));
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"ERROR one\n");
    server.wait_alerts(2);
    daemon.kill9();
    append(&log, b"ERROR written while crashed\n");
    let daemon = Daemon::start(&root, Some(&server));
    let state = std::fs::read_to_string(root.path().join("var/lib/mender-monitor/lookout-state.json")).unwrap_or_default();
    eprintln!("STATE {state}");
    let alerts = server.wait_for("the match written while crashed", |a| a.iter().any(|x| matching(x) == "ERROR written while crashed"));
    // Repeating the last alert is acceptable after a crash; missing one is not.
    assert!(alerts.iter().filter(|a| a["level"] == "CRITICAL").count() >= 2);
    drop(daemon);
}

#[test]
fn a_log_copytruncated_and_refilled_while_stopped_is_not_misread() {
    // logrotate's copytruncate while the agent is down, and a busy writer that refills the log
    // past the saved offset: same inode, longer file, other bytes. Resuming at the saved offset
    // would start mid-line in new text and miss what is before it.
    let (root, server, log) = log_check("copytruncate-stopped", "svc", "ERROR", Some("1"));
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"ERROR one\n");
    server.wait_alerts(2);
    assert!(daemon.terminate().success());
    append(&log, b"ERROR two, after the stop\n");
    let copy = log.with_extension("log.1");
    std::fs::copy(&log, &copy).unwrap();
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    append(&log, b"ERROR three, first in the new file\nand a writer that goes on and on\n");
    let daemon = Daemon::start(&root, Some(&server));
    let alerts = server.wait_alerts(3);
    // The copy's unread line first, then the new file from its start (as lines after the match).
    assert_eq!(matching(&alerts[2]), "ERROR two, after the stop");
    assert_eq!(alerts[2]["subject"]["details"]["line_matching"]["line_number"], 2);
    assert_eq!(
        lines(&alerts[2]["subject"]["details"]["lines_after"]),
        [(1, "ERROR three, first in the new file".to_string()), (2, "and a writer that goes on and on".to_string())]
    );
    daemon.wait_log("rewritten (the bytes before the saved offset changed) while stopped; reading the rest of the copy");
    drop(daemon);
}

/// A CRITICAL still waiting for its after-lines when SIGTERM comes is sent (or spooled) as it
/// stands; it was lost (`echo ERR >> log; sleep 0.05; kill $PID` lost 5 of 5: issue 11, defect 1).
#[test]
fn sigterm_while_a_critical_waits_for_its_after_lines_loses_nothing() {
    let (root, server, log) = log_check("sigterm-pending", "svc", "ERROR", Some("60"));
    // A long window, so that the stop surely comes inside it.
    root.write_config("LOG_LINES_AFTER_WINDOW_MS=30000\n");
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"before\nERROR one\nafter\n");
    wait_until("the match to be read", || root.check_status("svc")["source"]["line"] == 4);
    assert!(server.alerts().is_empty(), "the CRITICAL waits for its after-lines");
    assert!(daemon.terminate().success());
    let daemon = Daemon::start(&root, Some(&server));
    let alerts = server.wait_alerts(1);
    assert_eq!(level_name(&alerts[0]).0, "CRITICAL");
    assert_eq!(matching(&alerts[0]), "ERROR one");
    assert_eq!(lines(&alerts[0]["subject"]["details"]["lines_after"]), [(3, "after".to_string())], "as it stood");
    assert_eq!(root.check_status("svc")["level"], "CRITICAL");
    drop(daemon);
    assert_eq!(server.alerts().len(), 1, "sent once");
}

/// kill -9 while a CRITICAL waits for its after-lines, after another check's alert made the
/// agent save its state: the saved position was past the match and the check marked CRITICAL,
/// so the CRITICAL was never sent (issue 11, defect 1). Now the state carries the waiting
/// CRITICAL as it stands, and the restart sends it.
#[test]
fn kill9_while_a_critical_waits_for_its_after_lines_loses_nothing() {
    let (root, server, log) = log_check("kill9-pending", "svc", "ERROR", Some("60"));
    root.write_config("LOG_LINES_AFTER_WINDOW_MS=30000\nDEFAULT_LOG_LINES_AFTER=2\n");
    let other = root.log("other.log");
    root.ctl_ok(&["create", "log", "other", "FAIL", other.to_str().unwrap()]);
    root.ctl_ok(&["enable", "log", "other"]);
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"ERROR one\n");
    wait_until("the match to be read", || root.check_status("svc")["source"]["line"] == 2);
    // The other check's CRITICAL is complete at once (its two after-lines are there): it is
    // spooled, sent, and the state is saved while svc's CRITICAL still waits.
    append(&other, b"FAIL\nx\ny\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["subject"]["name"], "other");
    let state = root.path().join("var/lib/mender-monitor/lookout-state.json");
    wait_until("the state to be saved with other's CRITICAL", || {
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains("Log file contains FAIL"))
    });
    daemon.kill9();
    // The state saved with other's CRITICAL carries svc's, as it stood: sent at the restart.
    let daemon = Daemon::start(&root, Some(&server));
    let alerts = server.wait_for("svc's CRITICAL", |a| a.iter().any(|x| x["subject"]["name"] == "svc"));
    let svc: Vec<&Value> = alerts.iter().filter(|a| a["subject"]["name"] == "svc").collect();
    assert_eq!(matching(svc[0]), "ERROR one");
    assert_eq!(svc[0]["subject"]["details"]["line_matching"]["line_number"], 1);
    assert_eq!(lines(&svc[0]["subject"]["details"]["lines_after"]), []);
    assert_eq!(svc.len(), 1, "its line is not read again");
    drop(daemon);
}

/// A reload that changes a check (same file) while its CRITICAL waits for its after-lines: the
/// CRITICAL leaves as it stands instead of being dropped with the old detector.
#[test]
fn a_reload_while_a_critical_waits_for_its_after_lines_loses_nothing() {
    let (root, server, log) = log_check("reload-pending", "svc", "ERROR", Some("60"));
    root.write_config("LOG_LINES_AFTER_WINDOW_MS=30000\n");
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"ERROR one\nafter\n");
    wait_until("the match to be read", || root.check_status("svc")["source"]["line"] == 3);
    root.ctl_ok(&["create", "log", "svc", "ERROR", log.to_str().unwrap(), "120"]);
    let alerts = server.wait_alerts(1);
    assert_eq!(matching(&alerts[0]), "ERROR one");
    assert_eq!(lines(&alerts[0]["subject"]["details"]["lines_after"]), [(2, "after".to_string())]);
    assert_eq!(root.check_status("svc")["level"], "CRITICAL", "still CRITICAL under its unchanged name");
    drop(daemon);
}
