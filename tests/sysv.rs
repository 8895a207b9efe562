//! SysV service checks: the process of `/var/run/<name>.pid`, followed with a pidfd and the pid
//! file with inotify, no polling.

mod common;

use std::process::{Child, Command};

use common::*;

/// A stand-in service process, stopped by its PID when dropped (also when a test fails, so
/// that it does not outlive the test and hold its output open).
struct Proc(Child);

impl Proc {
    fn id(&self) -> u32 {
        self.0.id()
    }

    fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }

    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_daemon() -> Proc {
    Proc(Command::new("sleep").arg("100000").spawn().unwrap())
}

/// A sysV check `mydaemon` whose pid file names a running stand-in, and the agent started on it.
fn watched_service(root: &Root) -> (AlertServer, std::path::PathBuf, Proc, Daemon) {
    let server = AlertServer::start();
    let pidfile = root.path().join("var/run/mydaemon.pid");
    std::fs::create_dir_all(pidfile.parent().unwrap()).unwrap();
    let first = spawn_daemon();
    std::fs::write(&pidfile, format!("{}\n", first.id())).unwrap();
    root.ctl_ok(&["create", "service", "mydaemon", "sysV"]);
    root.ctl_ok(&["enable", "service", "mydaemon"]);
    let daemon = Daemon::start(root, Some(&server));
    daemon.wait_log("check service mydaemon: started");
    (server, pidfile, first, daemon)
}

#[test]
fn a_sysv_service_that_dies_and_comes_back() {
    let root = Root::new("sysv");
    let (server, pidfile, mut first, daemon) = watched_service(&root);
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

/// The pid file rewritten to name another live process while the first still runs (a restart
/// that starts the new one first): the new one is followed, so the old one's end is not news
/// and the new one's is (it used to keep following the first: found by bench/peers.sh).
#[test]
fn a_pid_file_that_names_another_live_process_is_followed_there() {
    let root = Root::new("sysv-moved");
    let (server, pidfile, mut first, daemon) = watched_service(&root);
    let mut second = spawn_daemon();
    // Renamed into place, as a daemon writing its pid file safely does.
    let tmp = pidfile.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n", second.id())).unwrap();
    std::fs::rename(&tmp, &pidfile).unwrap();
    wait_until("the second process to be followed", || root.check_status("mydaemon")["source"]["pid"] == second.id());
    first.kill().unwrap();
    first.wait().unwrap();
    second.kill().unwrap();
    second.wait().unwrap();
    let alerts = server.wait_alerts(1);
    assert_eq!(level_name(&alerts[0]), ("CRITICAL".into(), "Service mydaemon not running".into()));
    let detail = alerts[0]["subject"]["details"]["description"].as_str().unwrap().to_string();
    assert!(detail.contains(&format!("pid {} in", second.id())), "{detail}");
    drop(daemon);
}
