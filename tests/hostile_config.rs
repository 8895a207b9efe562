//! Hostile configuration files: check files, `enabled/` links and `config.sh` that are FIFOs,
//! devices, directories, loops, links out of monitor.d, too large, or full of shell commands.
//! The agent refuses each with a message naming the file, keeps running, and the other checks
//! keep alerting; nothing in a file is ever executed.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

fn enabled(root: &Root) -> PathBuf {
    root.path().join("etc/mender-monitor/monitor.d/enabled")
}

/// The daemon under a data limit: before the fix, an `enabled/` link to /dev/zero made it read
/// without end (2.7 GiB in 6 s); the limit turns that into a quick failure instead of an
/// out-of-memory machine. (Not under qemu-user, which maps its own large regions.)
fn limited_daemon(root: &Root, server: &AlertServer) -> Daemon {
    let plain = Daemon::command(root, Some(server));
    if runner().is_some() {
        return Daemon::spawn(root, plain);
    }
    let mut cmd = Command::new("prlimit");
    cmd.arg("--data=1073741824").arg("--").arg(plain.get_program()).args(plain.get_args());
    Daemon::spawn(root, cmd)
}

/// A check `good` on its own log, enabled through the CLI: the witness that the agent runs.
fn good_check(root: &Root) -> PathBuf {
    let log = root.log("good.log");
    root.ctl_ok(&["create", "log", "good", "ERROR", log.to_str().unwrap()]);
    root.ctl_ok(&["enable", "log", "good"]);
    log
}

#[test]
fn check_files_that_are_not_small_regular_files_are_refused_at_start() {
    let root = Root::new("hostile-files");
    let server = AlertServer::start();
    let log = good_check(&root);
    let (available, enabled) = (root.available(), enabled(&root));
    mkfifo(&available.join("log_fifo.sh"));
    symlink(available.join("log_fifo.sh"), enabled.join("log_fifo.sh")).unwrap();
    symlink("/dev/zero", enabled.join("log_zero.sh")).unwrap();
    symlink(&available, enabled.join("log_dir.sh")).unwrap();
    symlink(enabled.join("log_loop.sh"), enabled.join("log_loop.sh")).unwrap();
    fs::create_dir_all(root.path().join("elsewhere")).unwrap();
    let outside = root.path().join("elsewhere/log_out.sh");
    fs::write(&outside, format!("LOG_PATTERN=ERROR\nLOG_FILE={}\n", log.display())).unwrap();
    symlink(&outside, enabled.join("log_out.sh")).unwrap();
    fs::File::create(available.join("log_big.sh")).unwrap().set_len(1 << 20).unwrap();
    symlink(available.join("log_big.sh"), enabled.join("log_big.sh")).unwrap();
    // config.sh a FIFO: opening it blocked the daemon before it even started.
    fs::create_dir_all(root.config_sh().parent().unwrap()).unwrap();
    mkfifo(&root.config_sh());

    let daemon = limited_daemon(&root, &server);
    daemon.wait_log("config.sh: is a FIFO, not a regular file; not read; using defaults");
    for (file, why) in [
        ("log_fifo.sh", "available/log_fifo.sh, which is a FIFO, not a regular file; not read"),
        ("log_zero.sh", "links to /dev/zero, which is a character device, not a regular file; not read"),
        ("log_dir.sh", "which is a directory, not a regular file; not read"),
        ("log_loop.sh", "which is a loop of symbolic links; not read"),
        ("log_out.sh", "elsewhere/log_out.sh, outside "),
        ("log_big.sh", "which is 1048576 bytes, more than the 262144 a configuration file may have; not read"),
    ] {
        daemon.wait_log(&format!("enabled/{file}: links to "));
        assert!(
            daemon.log().lines().any(|l| l.contains(&format!("enabled/{file}: ")) && l.contains(why)),
            "{file}: {why}\n{}",
            daemon.log()
        );
    }
    append(&log, b"ERROR while the others are refused\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["subject"]["name"], "good");
    assert_eq!(alerts.len(), 1, "only the good check runs");
    // The control socket answers, and reload names every refused file.
    let out = root.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let problems = String::from_utf8_lossy(&out.stderr);
    for file in ["config.sh", "log_fifo.sh", "log_zero.sh", "log_dir.sh", "log_loop.sh", "log_out.sh", "log_big.sh"] {
        assert!(problems.contains(file), "{file} in: {problems}");
    }
    assert!(daemon.terminate().success());
}

#[test]
fn a_fifo_or_device_appearing_while_running_does_not_freeze_the_agent() {
    let root = Root::new("hostile-live");
    let server = AlertServer::start();
    let log = good_check(&root);
    root.write_config("DEFAULT_LOG_LINES_BEFORE=0\n");
    let daemon = limited_daemon(&root, &server);
    // What an unprivileged user cannot do, but a mistake can: config.sh replaced by a FIFO, and
    // enabled links to a FIFO and to /dev/zero, all noticed by inotify.
    fs::remove_file(root.config_sh()).unwrap();
    mkfifo(&root.config_sh());
    mkfifo(&root.available().join("log_fifo.sh"));
    symlink(root.available().join("log_fifo.sh"), enabled(&root).join("log_fifo.sh")).unwrap();
    symlink("/dev/zero", enabled(&root).join("log_zero.sh")).unwrap();
    daemon.wait_log("config.sh: is a FIFO, not a regular file");
    daemon.wait_log("links to /dev/zero, which is a character device");
    daemon.wait_log("log_fifo.sh, which is a FIFO");
    append(&log, b"ERROR still watched\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["data"], "ERROR still watched");
    let out = root.ctl(&["status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(daemon.terminate().success());
}

#[test]
fn hostile_config_sh_lines_are_named_and_skipped_and_the_rest_applies() {
    let root = Root::new("hostile-config-sh");
    let server = AlertServer::start();
    let log = good_check(&root);
    let proof = root.path().join("proof");
    let p = proof.display();
    let text = format!(
        "DEFAULT_LOG_LINES_BEFORE=1\n$(touch {p})\n`touch {p}`\nDEFAULT_LOG_LINES_AFTER=$(touch {p})\nFLAPPING_INTERVAL=`touch {p}`\n\
         echo hi; touch {p}\nDEFAULT_LOG_LINES_AFTER=0; touch {p}\nALERT_URL=$'\\xff'\nCONFPUSH_INTERVAL=$HOME\n\
         export PATH=/tmp:$PATH\nLOG_LINES_AFTER_WINDOW_MS=\"unterminated\nFLAPPING_COUNT_THRESHOLD=3\n"
    );
    root.write_config(&text);
    let check = root.ctl(&["check-config"]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{report}");
    let config = root.config_sh();
    for line in 2..=11 {
        assert!(report.contains(&format!("{}:{line}: ", config.display())), "line {line} in:\n{report}");
    }
    assert!(report.contains(":8: ALERT_URL=$'\\xff': not valid UTF-8"), "{report}");
    let daemon = Daemon::start(&root, Some(&server));
    daemon.wait_log(&format!("{}:11: unterminated \" quote opened on line 11", config.display()));
    append(&log, b"one\ntwo\nERROR\nafter\n");
    let alerts = server.wait_alerts(1);
    // Lines 1 and 7 applied: one line before, none after.
    assert_eq!(lines(&alerts[0]["subject"]["details"]["lines_before"]), vec![(2, "two".to_string())]);
    assert_eq!(lines(&alerts[0]["subject"]["details"]["lines_after"]), vec![]);
    assert!(!proof.exists(), "nothing in config.sh is ever executed");
    assert!(daemon.terminate().success());
}
