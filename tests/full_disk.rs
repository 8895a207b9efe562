//! A full disk under the state directory (issue 11, defect 2): the spool and the state file on a
//! small real tmpfs that fills up while alerts keep coming; the logs the checks read are
//! elsewhere. Nothing accepted may be lost, whether the agent lives until space returns, is
//! killed (`kill -9`) or stopped (SIGTERM) meanwhile; the agent keeps answering `status` and says
//! that the spool is degraded. Needs root (mount); the tmpfs is unmounted on every path.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A tmpfs mounted on a directory; unmounted when dropped (also when a test fails).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount -t tmpfs on {} (the test runs as root, as TESTING.md says)", dir.display());
        Tmpfs { dir: dir.to_path_buf() }
    }

    /// Fills the file system to the last byte.
    fn fill(&self) {
        let mut f = fs::File::create(self.dir.join("fill")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let free = nix::sys::statvfs::statvfs(&self.dir).unwrap().blocks_available();
        assert_eq!(free, 0, "the tmpfs is full");
    }

    /// Space returns.
    fn free(&self) {
        fs::remove_file(self.dir.join("fill")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut c = Command::new("umount");
            if lazy {
                c.arg("-l");
            }
            c.arg(&self.dir).status().is_ok_and(|s| s.success())
        };
        if !umount(false) {
            umount(true);
        }
    }
}

/// A device root whose state directory is a small tmpfs, with log checks `names` (pattern
/// `ERROR`, logs outside the tmpfs) and a server that answers 503 until told otherwise.
fn setup(tag: &str, names: &[&str]) -> (Root, Tmpfs, AlertServer, Vec<PathBuf>) {
    let root = Root::new(tag);
    root.write_config("SEND_ALERT_MAX_INTERVAL_S=1\n");
    let tmpfs = Tmpfs::mount(&root.path().join("var/lib/mender-monitor"), "256k");
    let server = AlertServer::start();
    server.set_reply(Reply::Status(503, None));
    let logs = names
        .iter()
        .map(|n| {
            let log = root.log(&format!("{n}.log"));
            root.ctl_ok(&["create", "log", n, "ERROR", log.to_str().unwrap()]);
            root.ctl_ok(&["enable", "log", n]);
            log
        })
        .collect();
    (root, tmpfs, server, logs)
}

/// `status --json`, which must answer promptly even while the disk is full.
fn status(root: &Root) -> Value {
    let asked = Instant::now();
    let out = root.ctl(&["status", "--json"]);
    assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
    assert!(asked.elapsed() < Duration::from_secs(5), "status took {:?}", asked.elapsed());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn in_memory(root: &Root) -> u64 {
    status(root)["uplink"]["counters"]["alerts_in_memory_only"].as_u64().unwrap_or(0)
}

fn segments(root: &Root) -> Vec<(String, u64)> {
    let dir = root.path().join("var/lib/mender-monitor/spool");
    let mut v: Vec<(String, u64)> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .collect();
    v.sort();
    v
}

/// The subjects of the CRITICALs received, each once, in order of first arrival.
fn criticals(server: &AlertServer) -> Vec<String> {
    let mut seen = Vec::new();
    for (_, a) in server.alerts() {
        let s = a["subject"]["name"].as_str().unwrap_or_default().to_string();
        if a["level"] == "CRITICAL" && !seen.contains(&s) {
            seen.push(s);
        }
    }
    seen
}

/// Raises one CRITICAL per log, each waited for in the daemon's log.
fn raise(daemon: &Daemon, logs: &[PathBuf], already: usize) {
    for (i, log) in logs.iter().enumerate() {
        append(log, b"INFO fine\nERROR it broke\n");
        daemon.wait_log_count("alert CRITICAL", already + i + 1);
    }
}

#[test]
fn alerts_held_on_a_full_disk_are_written_when_space_returns_and_survive_kill_9() {
    let (root, tmpfs, server, logs) = setup("full-disk-return", &["a", "b", "c", "d"]);
    let daemon = Daemon::start(&root, Some(&server));
    tmpfs.fill();
    raise(&daemon, &logs[..3], 0);
    // Said in status and in the log; the agent answers all along.
    let s = status(&root);
    let degraded = s["uplink"]["spool_degraded"].as_str().unwrap_or_default();
    assert!(degraded.starts_with("3 alerts held in memory only") && degraded.contains("No space left on device"), "{s}");
    assert!(daemon.log().contains("alerts are kept in memory only until it works again"), "{}", daemon.log());
    assert_eq!(s["uplink"]["queue_depth"], 3);
    assert!(segments(&root).len() <= 1, "no empty segment per refused alert: {:?}", segments(&root));

    // Space returns; no new alert comes: the held ones are written on the retry timer.
    tmpfs.free();
    wait_until("the held alerts to be written", || in_memory(&root) == 0);
    daemon.wait_log("3 alerts held in memory are now on disk");
    assert!(status(&root)["uplink"]["spool_degraded"].is_null());
    // A later alert makes the agent save read positions past all four lines.
    raise(&daemon, &logs[3..], 3);
    let segs = segments(&root);
    assert!(segs.iter().map(|s| s.1).sum::<u64>() > 0, "{segs:?}");
    daemon.kill9();

    server.set_reply(Reply::Accept);
    let daemon = Daemon::start(&root, Some(&server));
    wait_until("all four CRITICALs", || criticals(&server).len() >= 4);
    assert_eq!(criticals(&server), ["a", "b", "c", "d"], "in order, none lost");
    drop(daemon);
}

#[test]
fn stopped_or_killed_on_a_full_disk_nothing_is_lost_and_the_log_tells_the_truth() {
    let (root, tmpfs, server, logs) = setup("full-disk-stop", &["a", "b"]);
    let daemon = Daemon::start(&root, Some(&server));
    tmpfs.fill();
    raise(&daemon, &logs, 0);
    wait_until("both alerts held", || in_memory(&root) == 2);
    let log = daemon.stderr.clone();
    assert!(daemon.terminate().success());
    let said = fs::read_to_string(&log).unwrap();
    assert!(!said.contains("stay in the spool"), "they are not in the spool:\n{said}");
    assert!(
        said.contains("stopping: 2 alerts were held in memory only") && said.contains("read again at the next start"),
        "the stop says what is lost and how it comes back:\n{said}"
    );

    // Restarted on the still full disk: the lines are read again and the alerts held again.
    let daemon = Daemon::start(&root, Some(&server));
    daemon.wait_log_count("alert CRITICAL", 2);
    wait_until("both alerts held again", || in_memory(&root) == 2);
    daemon.kill9();

    tmpfs.free();
    server.set_reply(Reply::Accept);
    let daemon = Daemon::start(&root, Some(&server));
    wait_until("both CRITICALs", || criticals(&server).len() >= 2);
    assert_eq!(criticals(&server), ["a", "b"]);
    wait_until("the spool to drain", || status(&root)["uplink"]["queue_depth"] == 0);
    drop(daemon);
}
