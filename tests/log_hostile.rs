//! Hostile and unlucky log sources (issue 11): what a local user can put at a watched path, and
//! lines no buffer holds. Each case: the agent stays up and answers `status`, the other checks
//! keep alerting, and the problem is named in the log and in `status`.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// `status --json`, failing the test instead of hanging if the agent does not answer in time.
fn status_within(root: &Root, limit: Duration) -> Value {
    let mut child = command_for(&bin())
        .arg("--root")
        .arg(root.path())
        .args(["status", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("status did not answer within {limit:?}: the agent is frozen");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out: Output = child.wait_with_output().unwrap();
    assert!(out.status.success(), "status: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name} in {s}"))
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
}

/// CPU time (user + system) the process has used, in ms.
fn cpu_ms(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks * 1000 / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).unwrap().unwrap() as u64
}

/// A second check that must keep alerting whatever happens to the first.
fn bystander(root: &Root) -> std::path::PathBuf {
    let log = root.log("bystander.log");
    root.ctl_ok(&["create", "log", "bystander", "ERROR", log.to_str().unwrap(), "1"]);
    root.ctl_ok(&["enable", "log", "bystander"]);
    log
}

/// `rm app.log; mkfifo app.log` under a running agent, and a link to /dev/kmsg: a plain `open`
/// of the FIFO blocked the reactor (every check stopped, `status` hung, SIGTERM was ignored).
#[test]
fn a_log_replaced_by_a_fifo_or_a_device_does_not_freeze_the_agent() {
    let (root, server, log) = log_check("fifo", "app", "ERROR", Some("1"));
    let other = bystander(&root);
    append(&log, b"hello\n");
    let daemon = Daemon::start(&root, Some(&server));
    wait_until("the log to be read", || check(&status_within(&root, PATIENCE), "app")["source"]["line"] == 2);
    fs::remove_file(&log).unwrap();
    mkfifo(&log);
    append(&other, b"ERROR one\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["subject"]["name"], "bystander");
    wait_until("status to name the FIFO", || {
        check(&status_within(&root, Duration::from_secs(5)), "app")["source"]["problem"].as_str().is_some_and(|p| p.contains("a FIFO"))
    });
    daemon.wait_log("app.log: cannot be read: is a FIFO");
    // A link to a device that never ends or blocks.
    fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink("/dev/kmsg", &log).unwrap();
    wait_until("status to name the device", || {
        check(&status_within(&root, Duration::from_secs(5)), "app")["source"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("a character device"))
    });
    // A regular file again: followed from its start.
    fs::remove_file(&log).unwrap();
    append(&log, b"ERROR back\n");
    let alerts = server.wait_for("the CRITICAL of app", |a| a.iter().any(|a| a["subject"]["name"] == "app"));
    let app = alerts.iter().find(|a| a["subject"]["name"] == "app").unwrap();
    assert_eq!(app["subject"]["details"]["line_matching"]["data"], "ERROR back");
    assert!(check(&status_within(&root, PATIENCE), "app")["source"]["problem"].is_null());
    assert!(daemon.terminate().success(), "SIGTERM is heard");
}

/// A check whose file is a FIFO from the start, and one on /dev/zero and /dev/urandom: refused
/// and named, without a blocked start-up or a core burnt reading a device that never ends.
#[test]
fn fifos_and_endless_devices_are_refused_from_the_start() {
    let root = Root::new("devices");
    let server = AlertServer::start();
    let fifo = root.log("pipe.log");
    mkfifo(&fifo);
    root.ctl_ok(&["create", "log", "pipe", "ERROR", fifo.to_str().unwrap()]);
    root.ctl_ok(&["create", "log", "zero", "ERROR", "/dev/zero"]);
    root.ctl_ok(&["create", "log", "random", "ERROR", "/dev/urandom"]);
    for c in ["pipe", "zero", "random"] {
        root.ctl_ok(&["enable", "log", c]);
    }
    let other = bystander(&root);
    let daemon = Daemon::start(&root, Some(&server));
    let s = status_within(&root, Duration::from_secs(5));
    assert!(check(&s, "pipe")["source"]["problem"].as_str().unwrap().contains("a FIFO"), "{s}");
    assert!(check(&s, "zero")["source"]["problem"].as_str().unwrap().contains("a character device"), "{s}");
    assert!(check(&s, "random")["source"]["problem"].as_str().unwrap().contains("a character device"), "{s}");
    let cpu_before = cpu_ms(daemon.pid());
    let t = Instant::now();
    append(&other, b"ERROR still alerting\n");
    server.wait_alerts(1);
    std::thread::sleep(Duration::from_millis(1500)); // a window to measure CPU over, not a sync
    let cpu = cpu_ms(daemon.pid()) - cpu_before;
    let wall = t.elapsed().as_millis() as u64;
    assert!(cpu * 4 < wall, "the agent used {cpu} ms of CPU in {wall} ms with devices as logs");
    let log = daemon.log();
    assert_eq!(log.matches("/dev/zero: cannot be read").count(), 1, "said once:\n{log}");
    assert!(!log.contains("truncated"), "{log}");
    assert!(daemon.terminate().success());
}

/// `ab`, a line of 1 MiB (more than one turn may read), then `kernel PANIC here`: the long line
/// is cut and the PANIC alerted, written before and after the check is enabled. It looped
/// forever ("truncated; reading from the start" thousands of times a second).
#[test]
fn a_line_longer_than_a_turns_budget_is_cut_and_the_next_line_alerted() {
    let mut text = b"ab\n".to_vec();
    text.extend(std::iter::repeat_n(b'x', 1 << 20));
    text.extend_from_slice(b"\nkernel PANIC here\n");
    for written_before_enable in [true, false] {
        let root = Root::new("longline");
        let server = AlertServer::start();
        let log = root.log("kern.log");
        if written_before_enable {
            append(&log, &text);
        } else {
            append(&log, b"start\n");
        }
        root.ctl_ok(&["create", "log", "kern", "PANIC", log.to_str().unwrap()]);
        root.ctl_ok(&["enable", "log", "kern"]);
        let daemon = Daemon::start(&root, Some(&server));
        if !written_before_enable {
            wait_until("the first line to be read", || check(&status_within(&root, PATIENCE), "kern")["source"]["line"] == 2);
            append(&log, &text);
        }
        let alerts = server.wait_alerts(1);
        let first = if written_before_enable { 1 } else { 2 };
        assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["data"], "kernel PANIC here");
        assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["line_number"], first + 2);
        let s = status_within(&root, PATIENCE);
        let c = &check(&s, "kern")["counters"];
        assert_eq!(c["truncations"].as_u64().unwrap_or(0), 0, "{s}");
        assert_eq!(c["long_lines_cut"], 1, "{s}");
        let size = fs::metadata(&log).unwrap().len();
        assert_eq!(check(&s, "kern")["source"]["offset"], size);
        assert_eq!(c["bytes"], size, "every byte read once");
        assert!(!daemon.log().contains("truncated"));
        drop(daemon);
        drop(server);
    }
}

/// A reload that shrinks LOG_MAX_LINE_BYTES while a line is half read: the line in flight is cut
/// by the new bound. It panicked on a slice, and with `panic = "abort"` the daemon died
/// (issue 11, defect 7).
#[test]
fn shrinking_the_line_bound_under_a_half_read_line_is_safe() {
    let (root, server, log) = log_check("shrink", "app", "PANIC", None);
    root.write_config("LOG_MAX_LINE_BYTES=1048576\n");
    append(&log, b"first\n");
    let daemon = Daemon::start(&root, Some(&server));
    append(&log, &vec![b'z'; 300_000]);
    wait_until("the half line to be read", || check(&status_within(&root, PATIENCE), "app")["counters"]["bytes"] == 300_006);
    root.write_config("LOG_MAX_LINE_BYTES=1024\n");
    daemon.wait_log("settings changed");
    append(&log, b" PANIC in the cut part\nPANIC next\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["data"], "PANIC next");
    assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["line_number"], 3);
    assert_eq!(check(&status_within(&root, PATIENCE), "app")["counters"]["long_lines_cut"], 1);
    assert!(daemon.terminate().success(), "still running, and stops cleanly");
}

/// RSS of a process, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap()
}

/// A log deleted and re-created as fast as a loop can (a misbehaving writer, or a hostile
/// user): the agent keeps up, logs a bounded number of lines about it (115k lines in 10 s
/// before), and the other checks keep alerting.
#[test]
fn a_log_recreated_in_a_loop_floods_neither_the_log_nor_the_agent() {
    let (root, server, log) = log_check("recreate", "app", "NEVER", None);
    let other = bystander(&root);
    let daemon = Daemon::start(&root, Some(&server));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = fs::remove_file(&log);
                append(&log, b"a line\n");
                n += 1;
            }
            n
        })
    };
    let t = Instant::now();
    append(&other, b"ERROR while the log churns\n");
    server.wait_alerts(1);
    std::thread::sleep(Duration::from_secs(2).saturating_sub(t.elapsed())); // the churn's length, not a sync
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = churn.join().unwrap();
    let s = status_within(&root, PATIENCE);
    let c = &check(&s, "app")["counters"];
    let rotations = c["rotations"].as_u64().unwrap_or(0);
    let lines = daemon.log().lines().filter(|l| l.contains("app.log")).count();
    eprintln!("{n} re-creations, {rotations} rotations followed, {lines} log lines about them");
    assert!(n > 1000, "the churn ran ({n})");
    assert!(rotations > 10, "{s}");
    assert!(lines <= 20, "{lines} log lines for {rotations} rotations:\n{}", daemon.log());
    assert!(c["file_notes_not_logged"].as_u64().unwrap_or(0) > 0, "{s}");
    // A file gone between its open and its watch is not taken for an unwatchable one (that
    // started polling every second, for good).
    assert!(!daemon.log().contains("re-reading every"), "{}", daemon.log());
    assert!(daemon.terminate().success());
}

/// A loop of symbolic links at the path: named in `status` and once in the log, however often
/// the path is touched.
#[test]
fn a_symlink_loop_is_named_once() {
    let (root, server, log) = log_check("symloop", "app", "ERROR", None);
    let other = log.with_extension("other");
    std::os::unix::fs::symlink(&other, &log).unwrap();
    std::os::unix::fs::symlink(&log, &other).unwrap();
    let daemon = Daemon::start(&root, Some(&server));
    let tmp = log.with_extension("tmp");
    for _ in 0..20 {
        // Events on the watched name (a link renamed over it, the same loop): every one makes
        // the agent look at the path again.
        std::os::unix::fs::symlink(&other, &tmp).unwrap();
        fs::rename(&tmp, &log).unwrap();
    }
    // ELOOP: glibc and musl word it differently ("Too many levels of symbolic links", "Symbolic
    // link loop").
    wait_until("status to name the loop", || {
        check(&status_within(&root, PATIENCE), "app")["source"]["problem"].as_str().is_some_and(|p| p.contains("(os error 40)"))
    });
    let said = daemon.log().matches("(os error 40)").count();
    assert_eq!(said, 1, "{}", daemon.log());
    // Replaced by a real file: followed.
    fs::remove_file(&log).unwrap();
    append(&log, b"ERROR real\n");
    server.wait_alerts(1);
    drop(daemon);
}

/// A log the agent may not read (it runs unprivileged here, as it may on a hardened device): the
/// check says why, the others run.
#[test]
fn an_unreadable_log_is_named_and_the_others_run() {
    let (root, server, log) = log_check("unreadable", "app", "ERROR", None);
    let other = bystander(&root);
    append(&log, b"ERROR secret\n");
    fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // Everything else of the root belongs to the agent's user.
    let status = std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(root.path()).status().unwrap();
    assert!(status.success());
    nix::unistd::chown(&log, Some(nix::unistd::Uid::from_raw(0)), Some(nix::unistd::Gid::from_raw(0))).unwrap();
    let inner = Daemon::command(&root, Some(&server));
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(inner.get_program()).args(inner.get_args());
    let daemon = Daemon::spawn(&root, cmd);
    wait_until("status to say why", || {
        check(&status_within(&root, PATIENCE), "app")["source"]["problem"].as_str().is_some_and(|p| p.contains("Permission denied"))
    });
    append(&other, b"ERROR readable\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["subject"]["name"], "bystander");
    drop(daemon);
}

/// One line of 256 MiB (1 GiB with LOOKOUT_TEST_HUGE_MIB=1024) holding NUL bytes and invalid
/// UTF-8: the agent reads through it in flat memory, cuts it, and alerts on the next line.
#[test]
fn a_huge_line_with_nul_and_invalid_utf8_in_flat_memory() {
    let mib: usize = std::env::var("LOOKOUT_TEST_HUGE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let (root, server, log) = log_check("huge", "app", "PANIC", None);
    append(&log, b"start\n");
    let daemon = Daemon::start(&root, Some(&server));
    wait_until("the first line to be read", || check(&status_within(&root, PATIENCE), "app")["source"]["line"] == 2);
    let rss_before = rss_kib(daemon.pid());
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| [b'x', 0, 0xff, 0xc3, b'y'][(i % 5) as usize]).collect();
    {
        let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
        for _ in 0..mib {
            std::io::Write::write_all(&mut f, &chunk).unwrap();
        }
        std::io::Write::write_all(&mut f, b"\nPANIC after the huge line\n").unwrap();
    }
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["data"], "PANIC after the huge line");
    assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["line_number"], 3);
    let rss_after = rss_kib(daemon.pid());
    eprintln!("RSS {rss_before} KiB before, {rss_after} KiB after a {mib} MiB line");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB (the line is 256 MiB: anything kept of it would show)"
    );
    assert_eq!(check(&status_within(&root, PATIENCE), "app")["counters"]["long_lines_cut"], 1);
    assert!(daemon.terminate().success());
}
