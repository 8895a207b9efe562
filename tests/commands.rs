//! `@command` sources: the command's output is a log; the command is restarted when it exits,
//! stopped with its whole process group when the check goes, and never left as a zombie.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::*;
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A daemon whose PATH starts with the fixtures (the stand-in `docker`).
fn daemon_with_fixtures(root: &Root, server: &AlertServer) -> Daemon {
    let mut cmd = Daemon::command(root, Some(server));
    let path = format!("{}:{}", fixtures().display(), std::env::var("PATH").unwrap_or_default());
    cmd.env("PATH", path);
    Daemon::spawn(root, cmd)
}

/// The process group of the command the daemon runs for a check: the daemon's child that
/// leads a group.
fn command_group(daemon: &Daemon) -> i32 {
    let mut found = None;
    wait_until("the command to start", || {
        found = children_of(daemon.pid()).into_iter().find(|c| group_members(*c).iter().any(|(p, _, _)| p == c));
        found.is_some()
    });
    found.unwrap()
}

fn names(alerts: &[Value]) -> Vec<(String, String)> {
    alerts.iter().map(level_name).collect()
}

#[test]
fn docker_events_seed_and_dockerevents_checks() {
    let root = Root::new("docker");
    let server = AlertServer::start();
    root.ctl_ok(&["create", "log", "monitor-container", ".*container die.*image=crasher-docker-image", "@docker events", "2"]);
    root.ctl_ok(&["enable", "log", "monitor-container"]);
    root.ctl_ok(&["create", "dockerevents", "crasher-watch", "crasher-container", "die", "2"]);
    root.ctl_ok(&["enable", "dockerevents", "crasher-watch"]);
    let daemon = daemon_with_fixtures(&root, &server);
    let alerts = server.wait_alerts(4);
    let mut got = names(&alerts);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("CRITICAL".into(), "Docker container crasher-container die".into()),
            ("CRITICAL".into(), "Log file contains .*container die.*image=crasher-docker-image".into()),
            ("OK".into(), "Docker container crasher-container die".into()),
            ("OK".into(), "Log file contains .*container die.*image=crasher-docker-image".into()),
        ]
    );
    let docker = alerts.iter().find(|a| a["name"] == "Docker container crasher-container die" && a["level"] == "CRITICAL").unwrap();
    assert_eq!(docker["subject"]["type"], "docker_event");
    assert_eq!(docker["subject"]["status"], "DOCKEREVENTS_CONTAINER_EVENT");
    let line = "2026-11-29T10:00:01.000000000Z container die 3f2a9c1d0b7e (exitCode=1, image=crasher-docker-image, name=crasher-container)";
    assert_eq!(docker["subject"]["details"]["description"], format!("Alert was raised due to:{line}"));
    assert_eq!(docker["subject"]["details"]["line_matching"], serde_json::json!({"line_number": 2, "data": line}));
    assert_eq!(lines(&docker["subject"]["details"]["lines_before"]).len(), 1);
    assert!(daemon.terminate().success());
}

#[test]
fn a_command_that_exits_is_restarted_and_still_detected() {
    let root = Root::new("restart-cmd");
    let server = AlertServer::start();
    let counter = root.path().join("runs");
    // Fails at once every time; prints the match only from its second run on.
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}; echo \"run $n\"; [ $n -ge 1 ] && echo \"ERROR after restart\"; echo \"dying\" >&2; exit 3",
        c = counter.display()
    );
    root.ctl_ok(&["create", "log", "flaky", "ERROR", &format!("@{script}")]);
    root.ctl_ok(&["enable", "log", "flaky"]);
    let daemon = Daemon::start(&root, Some(&server));
    let alerts = server.wait_alerts(1);
    let d = &alerts[0]["subject"]["details"];
    assert_eq!(d["line_matching"], serde_json::json!({"line_number": 2, "data": "ERROR after restart"}), "numbered from the restart");
    // The context spans the restart, as it spans a log rotation.
    assert_eq!(lines(&d["lines_before"]), vec![(1, "run 0".to_string()), (1, "run 1".to_string())]);
    daemon.wait_log("exited with status 3 after");
    daemon.wait_log("restarting in 1 s");
    daemon.wait_log("check log flaky: stderr: dying");
}

#[test]
fn a_missing_program_is_reported_and_retried() {
    let (root, server, log) = log_check("missing-cmd", "other", "ERROR", None);
    root.ctl_ok(&["create", "log", "missing", "x", "@no-such-program-for-lookout --follow"]);
    root.ctl_ok(&["enable", "log", "missing"]);
    let daemon = Daemon::start(&root, Some(&server));
    daemon.wait_log_count("exited with status 127 (command not found)", 2);
    daemon.wait_log("restarting in 2 s");
    // The agent is still there and still alerts.
    append(&log, b"ERROR\n");
    server.wait_alerts(1);
    assert!(daemon.terminate().success());
}

#[test]
fn a_shell_pipeline_works() {
    let root = Root::new("pipeline");
    let server = AlertServer::start();
    let file = root.log("app.log");
    std::fs::write(&file, b"").unwrap();
    let cmd = format!("@tail -n +1 -F {} | grep --line-buffered -v DEBUG", file.display());
    root.ctl_ok(&["create", "log", "piped", "ERROR", &cmd]);
    root.ctl_ok(&["enable", "log", "piped"]);
    let daemon = Daemon::start(&root, Some(&server));
    append(&file, b"DEBUG ERROR filtered out by grep\nINFO ok\nERROR kept\n");
    let alerts = server.wait_alerts(1);
    let d = &alerts[0]["subject"]["details"];
    assert_eq!(d["line_matching"], serde_json::json!({"line_number": 2, "data": "ERROR kept"}));
    drop(daemon);
}

#[test]
fn disable_change_and_shutdown_stop_the_whole_process_group() {
    let root = Root::new("groups");
    let server = AlertServer::start();
    // A shell with a background grandchild and a pipeline: four processes in the group.
    root.ctl_ok(&["create", "log", "tree", "x", "@sleep 100000 & sleep 100000 | cat"]);
    root.ctl_ok(&["enable", "log", "tree"]);
    let daemon = Daemon::start(&root, Some(&server));
    let group = command_group(&daemon);
    wait_until("the whole tree to start", || group_members(group).len() >= 4);
    root.ctl_ok(&["disable", "log", "tree"]);
    wait_until("the group to be gone, zombies included", || group_members(group).is_empty());
    assert!(daemon.log().contains("check log tree: stopped (check disabled)"));

    // A changed command replaces the old process group.
    root.ctl_ok(&["enable", "log", "tree"]);
    let first = command_group(&daemon);
    root.ctl_ok(&["create", "log", "tree", "x", "@sleep 100001 | cat"]);
    daemon.wait_log("check log tree: restarted on a new source");
    wait_until("the old group to be gone", || group_members(first).is_empty());
    let second = command_group(&daemon);
    assert_ne!(first, second);

    // The agent's shutdown stops it too.
    assert!(daemon.terminate().success());
    assert!(group_members(second).is_empty(), "left behind: {:?}", group_members(second));
}

#[test]
fn a_flooding_command_does_not_hold_up_a_file_check() {
    let (root, server, log) = log_check("flood", "file", "ERROR", None);
    root.ctl_ok(&["create", "log", "flood", "never-matches-anything", "@yes 'a flood of output that never matches'"]);
    root.ctl_ok(&["enable", "log", "flood"]);
    let daemon = Daemon::start(&root, Some(&server));
    command_group(&daemon);
    daemon.wait_log("check log file: started");
    let t = Instant::now();
    append(&log, b"ERROR while the flood runs\n");
    // Without a per-turn byte budget the endless flood would starve the file check for good.
    let alerts = server.wait_alerts(1);
    eprintln!("file alert {:?} after the write, during the flood", t.elapsed());
    assert_eq!(alerts[0]["subject"]["name"], "file");
    assert!(daemon.terminate().success());
}

#[test]
fn a_command_deaf_to_sigterm_is_killed_after_the_grace_period() {
    let root = Root::new("deaf");
    let server = AlertServer::start();
    // Ignored signals stay ignored across exec: neither the shell nor sleep hears SIGTERM.
    root.ctl_ok(&["create", "log", "deaf", "x", "@trap '' TERM; sleep 100000 | cat"]);
    root.ctl_ok(&["enable", "log", "deaf"]);
    let daemon = Daemon::start(&root, Some(&server));
    let group = command_group(&daemon);
    wait_until("the pipeline to start", || group_members(group).len() >= 3);
    root.ctl_ok(&["disable", "log", "deaf"]);
    daemon.wait_log("still running 2000 ms after SIGTERM; sending SIGKILL");
    wait_until("the group to be gone, zombies included", || group_members(group).is_empty());
    assert!(daemon.terminate().success());
}
