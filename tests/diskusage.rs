//! Diskusage checks against real file systems: small tmpfs mounts made by the test (unmounted
//! at the end), filled with `fallocate`. The CRITICAL above the threshold, no OK inside the
//! hysteresis band, the OK below it (after a restart too), inode use, a path that cannot be
//! measured, the OK when a CRITICAL check is disabled, and one wake-up per interval for many
//! checks.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A tmpfs mounted on a directory of the test's root; unmounted when dropped (declare it after
/// the root, so that it goes first).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` (`size=1m`, ...) on `dir`; `None` (with the reason printed)
    /// where this machine cannot mount.
    fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(dir).output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir: dir.to_path_buf() }),
            Ok(o) => {
                eprintln!("skipped: cannot mount a tmpfs (root is needed): {}", String::from_utf8_lossy(&o.stderr).trim());
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// Makes `name` exactly `kib` KiB of allocated blocks (`fallocate`, as the issue asks).
    fn fill(&self, name: &str, kib: u64) {
        let p = self.dir.join(name);
        let _ = fs::remove_file(&p);
        let out = Command::new("fallocate").args(["-l", &format!("{kib}KiB")]).arg(&p).output().unwrap();
        assert!(out.status.success(), "fallocate: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// The alerts of check `check` about `disk` above `threshold` (the alert's name): (level,
/// subject status, description); the subject type is asserted on the way.
fn of(alerts: &[Value], check: &str, disk: &str, threshold: u64) -> Vec<(String, String, String)> {
    let name = format!("Disk storage has grown to fill more than {threshold}% of the disk '{disk}'");
    alerts
        .iter()
        .filter(|a| a["subject"]["name"] == check && a["name"] == name.as_str())
        .map(|a| {
            assert_eq!(a["subject"]["type"], "diskusage");
            (
                a["level"].as_str().unwrap().to_string(),
                a["subject"]["status"].as_str().unwrap().to_string(),
                a["subject"]["details"]["description"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn samples(root: &Root, name: &str) -> u64 {
    root.check_status(name)["counters"]["samples"].as_u64().unwrap_or(0)
}

fn all(server: &AlertServer) -> Vec<Value> {
    server.alerts().into_iter().map(|(_, a)| a).collect()
}

#[test]
fn a_filled_tmpfs_raises_and_clears_with_hysteresis() {
    let root = Root::new("disk");
    // 1 MiB = 256 pages: every 4 KiB allocated is a known share.
    let Some(fs1) = Tmpfs::mount(&root.path().join("mnt/data"), "size=1024k") else { return };
    let server = AlertServer::start();
    let disk = fs1.path();
    // CRITICAL above 50 %, OK at or below 40 %.
    root.ctl_ok(&["create", "diskusage", "data", disk, "50", "1"]);
    fs::write(root.available().join("diskusage_data.sh"), {
        let mut t = fs::read_to_string(root.available().join("diskusage_data.sh")).unwrap();
        t.push_str("DISKUSAGE_MARGIN=10\n");
        t
    })
    .unwrap();
    root.ctl_ok(&["enable", "diskusage", "data"]);
    let daemon = Daemon::start(&root, Some(&server));
    wait_until("a first sample", || samples(&root, "data") >= 1);
    let st = root.check_status("data");
    assert_eq!(st["level"], "OK", "{st}");
    assert!(st["source"]["last"].as_str().unwrap().starts_with("0% "), "{st}");

    fs1.fill("big", 700); // 175 of 256 pages: 69 %
    let alerts = server.wait_for("the CRITICAL", |a| !of(a, "data", disk, 50).is_empty());
    let c = &of(&alerts, "data", disk, 50)[0];
    assert_eq!((c.0.as_str(), c.1.as_str()), ("CRITICAL", "DISKUSAGE_USAGE_WARNING"));
    assert_eq!(c.2, format!("Disk {disk} is now at 69% capacity (700.0 KiB of 1.0 MiB used), above the 50% threshold"));

    // Below the threshold, above threshold - margin: no OK, however many samples.
    fs1.fill("big", 460); // 115 pages: 45 %
    let seen = samples(&root, "data");
    wait_until("three more samples", || samples(&root, "data") >= seen + 3);
    assert_eq!(of(&all(&server), "data", disk, 50).len(), 1, "no OK inside the band");
    assert_eq!(root.check_status("data")["level"], "CRITICAL");

    // A restart keeps the open alert: no second CRITICAL, and the OK carries the same name.
    assert!(daemon.terminate().success());
    let daemon = Daemon::start(&root, Some(&server));
    let seen = samples(&root, "data");
    wait_until("two samples after the restart", || samples(&root, "data") >= seen + 2);
    assert_eq!(of(&all(&server), "data", disk, 50).len(), 1, "the open alert is not sent again");
    assert_eq!(root.check_status("data")["level"], "CRITICAL");

    fs::remove_file(fs1.dir.join("big")).unwrap();
    let alerts = server.wait_for("the OK", |a| of(a, "data", disk, 50).len() >= 2);
    let ok = &of(&alerts, "data", disk, 50)[1];
    assert_eq!((ok.0.as_str(), ok.1.as_str()), ("OK", "DISKUSAGE_USAGE_OK"));
    assert!(ok.2.starts_with(&format!("Disk {disk} is back below the 50% threshold: 0% capacity")), "{ok:?}");
    assert!(daemon.terminate().success());
}

#[test]
fn inodes_a_missing_path_and_disabling() {
    let root = Root::new("disk-inodes");
    // 20 inodes, the root directory one of them.
    let Some(fs1) = Tmpfs::mount(&root.path().join("mnt/few"), "size=1024k,nr_inodes=20") else { return };
    let server = AlertServer::start();
    let disk = fs1.path();
    let missing = root.path().join("mnt/not-mounted");
    root.ctl_ok(&["create", "diskusage", "few", disk, "50", "1"]);
    let out = root.ctl(&["create", "diskusage", "gone", missing.to_str().unwrap(), "50", "1"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist (yet)"), "{out:?}");
    root.ctl_ok(&["enable", "diskusage", "few"]);
    root.ctl_ok(&["enable", "diskusage", "gone"]);
    let daemon = Daemon::start(&root, Some(&server));

    // A path that cannot be measured: a problem in status and the log, no alert.
    daemon.wait_log(&format!("check diskusage gone: cannot measure {}: No such file or directory", missing.display()));
    wait_until("the problem in status", || root.check_status("gone")["source"]["problem"].as_str() == Some("No such file or directory"));
    assert_eq!(root.check_status("gone")["level"], "-");
    let table = String::from_utf8(root.ctl(&["status"]).stdout).unwrap();
    assert!(table.contains("cannot measure: No such file or directory"), "{table}");

    for i in 0..12 {
        fs::write(fs1.dir.join(format!("f{i}")), "").unwrap(); // 13 of 20 inodes: 65 %
    }
    let alerts = server.wait_for("the inode CRITICAL", |a| !of(a, "few", disk, 50).is_empty());
    let c = &of(&alerts, "few", disk, 50)[0];
    assert_eq!(c.2, format!("Disk {disk} has 65% of its inodes used (13 of 20), above the 50% threshold (space: 0%)"));

    // Mounted now: measured again, and said so.
    let Some(_fs2) = Tmpfs::mount(&missing, "size=64k") else { return };
    daemon.wait_log(&format!("check diskusage gone: {} can be measured again", missing.display()));
    assert_eq!(root.check_status("gone")["source"]["problem"], Value::Null);

    // A CRITICAL check that is disabled clears with an OK.
    root.ctl_ok(&["disable", "diskusage", "few"]);
    let alerts = server.wait_for("the OK after disable", |a| of(a, "few", disk, 50).len() >= 2);
    assert_eq!(of(&alerts, "few", disk, 50)[1], ("OK".into(), "DISKUSAGE_USAGE_OK".into(), "check disabled".into()));
    assert!(of(&all(&server), "gone", missing.to_str().unwrap(), 50).is_empty());
    assert!(daemon.terminate().success());
}

#[test]
fn a_threshold_changed_while_stopped_clears_the_old_alert() {
    let root = Root::new("disk-renamed");
    let Some(fs1) = Tmpfs::mount(&root.path().join("mnt/data"), "size=1024k") else { return };
    let server = AlertServer::start();
    let disk = fs1.path();
    fs1.fill("big", 700); // 69 %
    root.ctl_ok(&["create", "diskusage", "data", disk, "50", "1"]);
    root.ctl_ok(&["enable", "diskusage", "data"]);
    let daemon = Daemon::start(&root, Some(&server));
    server.wait_for("the CRITICAL above 50%", |a| !of(a, "data", disk, 50).is_empty());
    assert!(daemon.terminate().success());
    // The alert's name holds the threshold: the old one gets its OK, the new one its CRITICAL.
    root.ctl_ok(&["create", "diskusage", "data", disk, "60", "1"]);
    let daemon = Daemon::start(&root, Some(&server));
    let alerts =
        server.wait_for("the old OK and the new CRITICAL", |a| of(a, "data", disk, 50).len() >= 2 && !of(a, "data", disk, 60).is_empty());
    assert_eq!(of(&alerts, "data", disk, 50)[1], ("OK".into(), "DISKUSAGE_USAGE_OK".into(), "check changed".into()));
    assert_eq!(of(&alerts, "data", disk, 60)[0].0, "CRITICAL");
    assert!(daemon.terminate().success());
}

#[test]
fn create_names_the_bad_argument() {
    let root = Root::new("disk-cli");
    let err = |args: &[&str]| {
        let out = root.ctl(&[&["create", "diskusage", "x"][..], args].concat());
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(err(&[]).contains("missing argument; usage: create diskusage <check> <mount point> <threshold %> [interval]"));
    assert!(err(&["/"]).contains("missing argument"));
    assert!(err(&["relative", "50"]).contains("mount point \"relative\" is not an absolute path"));
    assert!(err(&["/", "150"]).contains("threshold: \"150\" is not a percentage from 1 to 100"));
    assert!(err(&["/", "half"]).contains("threshold: \"half\""));
    assert!(err(&["/", "50", "0"]).contains("interval must be at least 1 second"));
    assert!(!root.available().join("diskusage_x.sh").exists());
    // A hand-written file with a bad value is refused by enable, naming the file and line.
    fs::create_dir_all(root.available()).unwrap();
    fs::write(root.available().join("diskusage_hand.sh"), "DISKUSAGE_NAME=/\nDISKUSAGE_THRESHOLD=0\n").unwrap();
    let out = root.ctl(&["enable", "diskusage", "hand"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("diskusage_hand.sh:2: DISKUSAGE_THRESHOLD"), "{e}");
}

/// Voluntary context switches of every thread of `pid`: each one is a sleep that ended.
fn wakeups(pid: i32) -> u64 {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                total += v.trim().parse::<u64>().unwrap();
            }
        }
    }
    total
}

#[test]
fn many_checks_with_one_interval_wake_the_agent_once_per_interval() {
    let root = Root::new("disk-wake");
    // The state is saved once after the checks start (with an fsync: a few wake-ups); soon,
    // so that it is over before counting.
    root.write_config("STATE_SAVE_INTERVAL_S=1\n");
    let server = AlertServer::start();
    // Four checks on / with a threshold never reached: no alert, only samples.
    for i in 0..4 {
        root.ctl_ok(&["create", "diskusage", &format!("c{i}"), "/", "100", "1"]);
        root.ctl_ok(&["enable", "diskusage", &format!("c{i}")]);
    }
    let daemon = Daemon::start(&root, Some(&server));
    wait_until("samples", || samples(&root, "c3") >= 3);
    // Asking for status wakes the agent: ask before counting, and after.
    let s0 = samples(&root, "c0");
    std::thread::sleep(Duration::from_millis(300));
    let before = wakeups(daemon.pid());
    std::thread::sleep(Duration::from_secs(5));
    let woke = wakeups(daemon.pid()) - before;
    let slots = samples(&root, "c0") - s0;
    eprintln!("four diskusage checks every 1 s: {woke} wake-ups in {slots} slots");
    assert!(slots >= 3, "c0 sampled only {slots} times in 5 s");
    // One wake-up per slot serves all four checks (a few more for timer rounding under load);
    // a wake-up per check would be four per slot.
    assert!(woke <= 2 * slots, "{woke} wake-ups for {slots} slots of four checks");
    for i in 1..4 {
        let n = samples(&root, &format!("c{i}"));
        assert!(n + 1 >= s0 + slots, "c{i} sampled {n} times, c0 {}", s0 + slots);
    }
    assert!(server.alerts().is_empty());
    assert!(daemon.terminate().success());
}
