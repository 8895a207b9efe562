//! File descriptors (issue 11, defect 8): more checks than the open files limit allows. The
//! agent raises its soft limit to the hard one, keeps descriptors for itself (state, spool,
//! control socket), says which checks could not get one, and starts them when descriptors are
//! freed.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use serde_json::Value;

fn status(root: &Root) -> Value {
    let out = root.ctl(&["status", "--json"]);
    assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn starved(s: &Value) -> Vec<String> {
    s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"]["problem"].as_str().is_some_and(|p| p.contains("no file descriptor")))
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// `n` log checks `c000`.. on files of their own, written as `create` writes them, enabled.
fn many_checks(root: &Root, n: usize) {
    let available = root.available();
    let enabled = available.parent().unwrap().join("enabled");
    fs::create_dir_all(&available).unwrap();
    fs::create_dir_all(&enabled).unwrap();
    for i in 0..n {
        let log = root.log(&format!("c{i:03}.log"));
        fs::write(&log, b"").unwrap();
        let file = available.join(format!("log_c{i:03}.sh"));
        fs::write(&file, format!("SERVICE_NAME=\"c{i:03}\"\nLOG_PATTERN=\"ERROR\"\nLOG_FILE=\"{}\"\n", log.display())).unwrap();
        std::os::unix::fs::symlink(&file, enabled.join(format!("log_c{i:03}.sh"))).unwrap();
    }
}

/// The daemon under `prlimit --nofile=SOFT:HARD`.
fn daemon_with_limit(root: &Root, server: &AlertServer, soft: u32, hard: u32) -> Daemon {
    let inner = Daemon::command(root, Some(server));
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={soft}:{hard}")).arg("--").arg(inner.get_program()).args(inner.get_args());
    Daemon::spawn(root, cmd)
}

#[test]
fn more_checks_than_descriptors_starve_neither_the_agent_nor_the_rest() {
    let root = Root::new("fds");
    let server = AlertServer::start();
    many_checks(&root, 300);
    let daemon = daemon_with_limit(&root, &server, 256, 256);
    let s = status(&root);
    assert_eq!(s["agent"]["open_files_limit"], 256);
    let waiting = starved(&s);
    assert!(waiting.len() >= 300 - 256 + 64, "{} checks wait for a descriptor", waiting.len());
    assert!(!waiting.contains(&"c000".to_string()), "the first checks run");
    // The ones that run alert, and the state (which needs descriptors of the agent's own) is saved.
    append(&root.log("c000.log"), b"ERROR in c000\n");
    server.wait_alerts(1);
    let state = root.path().join("var/lib/mender-monitor/lookout-state.json");
    wait_until("the state to be saved", || fs::read_to_string(&state).is_ok_and(|s| s.contains("Log file contains ERROR")));
    // Control clients are served: many in a row.
    for _ in 0..20 {
        status(&root);
    }
    // Disabling 200 checks frees descriptors: the starved ones start by themselves.
    let enabled = root.available().parent().unwrap().join("enabled");
    for i in 1..=200 {
        fs::remove_file(enabled.join(format!("log_c{i:03}.sh"))).unwrap();
    }
    assert!(root.ctl(&["reload"]).status.success());
    wait_until("every remaining check to have a descriptor", || starved(&status(&root)).is_empty());
    append(&root.log("c299.log"), b"ERROR in c299\n");
    server.wait_for("c299's alert", |a| a.iter().any(|a| a["subject"]["name"] == "c299"));
    assert!(daemon.log().contains("no file descriptor left for checks"));
    assert!(daemon.terminate().success());
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_one() {
    let root = Root::new("fds-raise");
    let server = AlertServer::start();
    many_checks(&root, 300);
    let daemon = daemon_with_limit(&root, &server, 256, 4096);
    daemon.wait_log("open files limit raised from 256 to 4096");
    let s = status(&root);
    assert_eq!(s["agent"]["open_files_limit"], 4096);
    assert!(starved(&s).is_empty());
    append(&root.log("c299.log"), b"ERROR in c299\n");
    server.wait_alerts(1);
    drop(daemon);
}
