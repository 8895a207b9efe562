//! Changes to monitor.d and config.sh apply to a running daemon at once, without a restart.

mod common;

use std::fs;

use common::*;

#[test]
fn enable_edit_disable_while_running() {
    let root = Root::new("live");
    let server = AlertServer::start();
    let log = root.log("app.log");
    let other = root.log("other.log");
    let daemon = Daemon::start(&root, Some(&server));
    // Enable: the check starts and reads the file from the start.
    append(&log, b"boot\nERROR early\n");
    root.ctl_ok(&["create", "log", "app", "ERROR", log.to_str().unwrap()]);
    root.ctl_ok(&["enable", "log", "app"]);
    let alerts = server.wait_alerts(1);
    assert_eq!(level_name(&alerts[0]), ("CRITICAL".into(), "Log file contains ERROR".into()));
    assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["line_number"], 2);
    // Edit: a new pattern renames the alert; the old CRITICAL is cleared, the position is kept.
    root.ctl_ok(&["create", "log", "app", "PANIC", log.to_str().unwrap()]);
    let alerts = server.wait_alerts(2);
    assert_eq!(level_name(&alerts[1]), ("OK".into(), "Log file contains ERROR".into()));
    append(&log, b"PANIC now\n");
    let alerts = server.wait_alerts(3);
    assert_eq!(level_name(&alerts[2]), ("CRITICAL".into(), "Log file contains PANIC".into()));
    assert_eq!(alerts[2]["subject"]["details"]["line_matching"]["line_number"], 3, "old lines are not read again");
    // Disable: the CRITICAL is cleared; later matches raise nothing.
    root.ctl_ok(&["disable", "log", "app"]);
    let alerts = server.wait_alerts(4);
    assert_eq!(level_name(&alerts[3]), ("OK".into(), "Log file contains PANIC".into()));
    assert!(alerts[3]["subject"]["details"]["description"].as_str().unwrap().contains("check disabled"));
    append(&log, b"PANIC while disabled\n");
    // A second check on another file is the barrier: once its alert is in, the disabled
    // check has had every chance to send one.
    root.ctl_ok(&["create", "log", "barrier", "DONE", other.to_str().unwrap()]);
    root.ctl_ok(&["enable", "log", "barrier"]);
    append(&other, b"DONE\n");
    let alerts = server.wait_alerts(5);
    assert_eq!(alerts[4]["name"], "Log file contains DONE");
    assert_eq!(alerts.len(), 5);
    // Re-enable: reading resumes where it stopped (the PANIC written while disabled).
    root.ctl_ok(&["enable", "log", "app"]);
    let alerts = server.wait_alerts(6);
    assert_eq!(alerts[5]["subject"]["details"]["line_matching"]["data"], "PANIC while disabled");
    drop(daemon);
}

#[test]
fn config_sh_edit_applies_live() {
    let root = Root::new("live-config");
    let server = AlertServer::start();
    let log = root.log("app.log");
    root.write_config("DEFAULT_LOG_LINES_BEFORE=30\n");
    root.ctl_ok(&["create", "log", "app", "ERROR", log.to_str().unwrap(), "1"]);
    root.ctl_ok(&["enable", "log", "app"]);
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"a\nb\nc\nERROR 1\n");
    let alerts = server.wait_alerts(2);
    assert_eq!(lines(&alerts[0]["subject"]["details"]["lines_before"]).len(), 3);
    // As the Mender docs do it: sed -i (a rename over config.sh).
    let status = std::process::Command::new("sed")
        .args(["-i", "s/DEFAULT_LOG_LINES_BEFORE=.*/DEFAULT_LOG_LINES_BEFORE=1/"])
        .arg(root.config_sh())
        .status()
        .unwrap();
    assert!(status.success());
    daemon.wait_log("settings changed");
    append(&log, b"d\nERROR 2\n");
    let alerts = server.wait_alerts(3);
    assert_eq!(lines(&alerts[2]["subject"]["details"]["lines_before"]), vec![(5, "d".to_string())]);
    drop(daemon);
}

#[test]
fn broken_check_file_is_reported_and_others_run() {
    let root = Root::new("broken");
    let server = AlertServer::start();
    let log = root.log("app.log");
    fs::create_dir_all(root.available()).unwrap();
    fs::write(root.available().join("log_bad.sh"), "LOG_PATTERN=\"([\"\nLOG_FILE=/x\n$(reboot)\n").unwrap();
    root.ctl_ok(&["create", "log", "good", "ERROR", log.to_str().unwrap()]);
    root.ctl_ok(&["enable", "log", "good"]);
    let enabled = root.path().join("etc/mender-monitor/monitor.d/enabled");
    std::os::unix::fs::symlink(root.available().join("log_bad.sh"), enabled.join("log_bad.sh")).unwrap();
    let daemon = Daemon::start(&root, Some(&server));
    daemon.wait_log("log_bad.sh:1: LOG_PATTERN: invalid pattern");
    daemon.wait_log("log_bad.sh:3: not a variable assignment");
    append(&log, b"ERROR\n");
    server.wait_alerts(1);
    drop(daemon);
}

#[test]
fn alerts_wait_for_the_server_and_keep_their_order() {
    let root = Root::new("retry");
    let server = AlertServer::start();
    server.set_reply(Reply::FailTimes(2));
    let log = root.log("app.log");
    root.ctl_ok(&["create", "log", "app", "ERROR", log.to_str().unwrap(), "1"]);
    root.ctl_ok(&["enable", "log", "app"]);
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, b"ERROR\n");
    let alerts = server.wait_alerts(2);
    let levels: Vec<_> = alerts.iter().map(|a| a["level"].as_str().unwrap()).collect();
    assert_eq!(levels, vec!["CRITICAL", "OK"]);
    daemon.wait_log("HTTP 500");
    drop(daemon);
}

#[test]
fn sighup_reloads_and_the_agent_keeps_running() {
    let (root, server, log) = log_check("sighup", "app", "ERROR", None);
    let daemon = Daemon::start(&root, Some(&server));
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_log("SIGHUP: reloading the configuration");
    append(&log, b"ERROR after the reload\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["data"], "ERROR after the reload");
    assert!(daemon.terminate().success());
}
