//! SysV service checks: the process of `/var/run/<name>.pid`, followed with a pidfd and the pid
//! file with inotify, no polling.

mod common;

use std::process::{Child, Command};

use common::*;

fn spawn_daemon() -> Child {
    Command::new("sleep").arg("100000").spawn().unwrap()
}

#[test]
fn a_sysv_service_that_dies_and_comes_back() {
    let root = Root::new("sysv");
    let server = AlertServer::start();
    let pidfile = root.path().join("var/run/mydaemon.pid");
    std::fs::create_dir_all(pidfile.parent().unwrap()).unwrap();
    let mut first = spawn_daemon();
    std::fs::write(&pidfile, format!("{}\n", first.id())).unwrap();
    root.ctl_ok(&["create", "service", "mydaemon", "sysV"]);
    root.ctl_ok(&["enable", "service", "mydaemon"]);
    let daemon = Daemon::start(&root, Some(&server));
    daemon.wait_log("check service mydaemon: started");
    // Running at start: not news. It dies: the pidfd says so at once.
    first.kill().unwrap();
    first.wait().unwrap();
    let alerts = server.wait_alerts(1);
    assert_eq!(level_name(&alerts[0]), ("CRITICAL".into(), "Service mydaemon not running".into()));
    let detail = alerts[0]["subject"]["details"]["description"].as_str().unwrap().to_string();
    assert!(detail.contains(&format!("pid {} in", first.id())) && detail.ends_with("is not running"), "{detail}");
    // Restarted: a new pid in the pid file.
    let mut second = spawn_daemon();
    std::fs::write(&pidfile, format!("{}\n", second.id())).unwrap();
    let alerts = server.wait_alerts(2);
    assert_eq!(level_name(&alerts[1]), ("OK".into(), "Service mydaemon not running".into()));
    let status: serde_json::Value = serde_json::from_slice(&root.ctl(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["checks"][0]["source"]["pid"], second.id());
    // Gone with its pid file.
    std::fs::remove_file(&pidfile).unwrap();
    second.kill().unwrap();
    second.wait().unwrap();
    let alerts = server.wait_alerts(3);
    assert_eq!(alerts[2]["level"], "CRITICAL");
    assert!(alerts[2]["subject"]["details"]["description"].as_str().unwrap().contains("no process, and no pid in"));
    drop(daemon);
}
