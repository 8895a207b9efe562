//! Manual alerts: Mender's `monitor_send_alert` (the shim `monitor-lib.sh` from the Yocto
//! layer, sourced by the real bash) through `lookout send-alert`, with a daemon running,
//! without one, and while one starts; and the daemon's pid file.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use serde_json::{Value, json};

fn shim() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("yocto-layer/meta-lookout/recipes-monitoring/lookout/files/monitor-lib.sh")
}

/// The binary as the shim calls it: itself, or a wrapper that runs it under the test runner.
fn lookout_bin(root: &Root) -> PathBuf {
    match runner() {
        None => bin(),
        Some(r) => {
            let w = root.path().join("lookout-wrapper");
            fs::write(&w, format!("#!/bin/sh\nexec {r} {} \"$@\"\n", bin().display())).unwrap();
            Command::new("chmod").arg("+x").arg(&w).status().unwrap();
            w
        }
    }
}

/// `source monitor-lib.sh; monitor_send_alert ARGS...` in bash.
fn send(root: &Root, args: &[&str]) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("source {}; monitor_send_alert \"$@\"", shim().display()))
        .arg("bash")
        .args(args)
        .env("LOOKOUT_BIN", lookout_bin(root))
        .env("LOOKOUT_ROOT", root.path())
        .output()
        .unwrap()
}

fn inbox(root: &Root) -> PathBuf {
    root.path().join("var/lib/mender-monitor/inbox")
}

fn waiting(root: &Root) -> usize {
    fs::read_dir(inbox(root)).map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count()).unwrap_or(0)
}

fn without_timestamp(mut a: Value) -> Value {
    assert!(a["timestamp"].as_str().unwrap().ends_with('Z'));
    a.as_object_mut().unwrap().remove("timestamp");
    a
}

#[test]
fn with_a_daemon_the_alert_is_spooled_before_the_shim_returns() {
    let root = Root::new("send-live");
    let server = AlertServer::start();
    let daemon = Daemon::start(&root, Some(&server));
    let out = send(&root, &["OK", "Service crond not running", "The main process is present again", "crond", "running", "service"]);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    // The daemon answered after spooling it: it is out of the inbox already.
    assert_eq!(waiting(&root), 0);
    let a = server.wait_alerts(1);
    assert_eq!(
        without_timestamp(a[0].clone()),
        json!({"name": "Service crond not running", "level": "OK",
               "subject": {"name": "crond", "type": "service", "status": "running",
                           "details": {"description": "The main process is present again"}}})
    );
    // Log context, as the Get-started page's USB example passes it, with grep -n lines.
    let out = send(
        &root,
        &[
            "CRITICAL",
            "Log file contains USB disconnect",
            "USB disconnect present in /var/log/kern.log",
            "log_usb",
            "LOGCONTAINS",
            "log",
            "USB disconnect",
            "/var/log/kern.log",
            "7:before",
            "8:usb 1-1: USB disconnect",
            "after",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let a = server.wait_alerts(2);
    let d = &a[1]["subject"]["details"];
    assert_eq!(d["line_matching"], json!({"line_number": 8, "data": "usb 1-1: USB disconnect"}));
    assert_eq!(d["lines_before"], json!([{"line_number": 7, "data": "before"}]));
    assert_eq!(d["lines_after"], json!([{"line_number": 9, "data": "after"}]));
    // Bad input: a clear message, nothing queued.
    let out = send(&root, &["PANIC", "n", "d", "s", "st", "t"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LEVEL \"PANIC\" is not OK, CRITICAL or WARNING"), "{out:?}");
    assert_eq!(waiting(&root), 0);
    assert!(daemon.terminate().success());
}

#[test]
fn without_a_daemon_the_alert_waits_and_leaves_at_start() {
    let root = Root::new("send-offline");
    let server = AlertServer::start();
    let out = send(&root, &["OK", "Log file contains ERROR", "cleared by hand", "crasher_app", "LOGCONTAINS", "log"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no daemon is running: the alert waits in"), "{out:?}");
    assert_eq!(waiting(&root), 1);
    let daemon = Daemon::start(&root, Some(&server));
    let a = server.wait_alerts(1);
    assert_eq!(a[0]["name"], "Log file contains ERROR");
    assert_eq!(a[0]["subject"]["details"]["description"], "cleared by hand");
    wait_until("the inbox to empty", || waiting(&root) == 0);
    assert!(daemon.terminate().success());
}

#[test]
fn alerts_sent_while_a_daemon_starts_all_arrive() {
    let root = Root::new("send-race");
    let server = AlertServer::start();
    const N: usize = 20;
    let sender = {
        let root_path = root.path().to_path_buf();
        let bin = lookout_bin(&root);
        std::thread::spawn(move || {
            for i in 0..N {
                let out = Command::new(&bin)
                    .args(["send-alert", "OK", &format!("manual {i}"), "d", "s", "st", "t"])
                    .env("LOOKOUT_ROOT", &root_path)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
            }
        })
    };
    let daemon = Daemon::start(&root, Some(&server));
    sender.join().unwrap();
    let a = server.wait_alerts(N);
    let mut names: Vec<String> = a.iter().map(|a| a["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), N);
    wait_until("the inbox to empty", || waiting(&root) == 0);
    assert!(daemon.terminate().success());
}

#[test]
fn the_pid_file_is_written_removed_and_never_clobbered() {
    let root = Root::new("pidfile");
    let pid_file = root.path().join("var/run/monitoring-client.pid");
    let daemon = Daemon::start(&root, None);
    assert_eq!(fs::read_to_string(&pid_file).unwrap().trim(), daemon.pid().to_string());
    // What Mender's tests do with it.
    assert!(fs::read_dir(format!("/proc/{}/fd", fs::read_to_string(&pid_file).unwrap().trim())).is_ok());
    assert!(daemon.terminate().success());
    assert!(!pid_file.exists());
    // A live process's pid file (this test's) is left alone.
    let me = std::process::id().to_string();
    fs::write(&pid_file, format!("{me}\n")).unwrap();
    let daemon = Daemon::start(&root, None);
    assert!(daemon.log().contains("which is running; leaving it alone"), "{}", daemon.log());
    assert!(daemon.terminate().success());
    assert_eq!(fs::read_to_string(&pid_file).unwrap().trim(), me);
    // A stale one is replaced.
    fs::write(&pid_file, "2147483646\n").unwrap();
    let daemon = Daemon::start(&root, None);
    assert_eq!(fs::read_to_string(&pid_file).unwrap().trim(), daemon.pid().to_string());
    daemon.kill9();
}
