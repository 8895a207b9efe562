//! Mender's "Monitor your device" tutorial (Get started, with the demo monitors package) as one
//! scenario on a bare system: a systemd booted in a container (tests/common/container.rs) with
//! nothing of lookout but the binary, bound at /opt/lookout. `lookout install --demo-checks`
//! lays it down with the demo checks; then the tutorial's steps run inside as a user types them
//! (disk usage, connectivity, the countdown service, new root sessions, USB disconnects with
//! their manual alert cleaning), and each alert must reach a recording server with its name,
//! level and subject.
//!
//! What differs from the page, and why:
//! - Timings are shortened through arguments and check files only: the countdown counts 6 s
//!   instead of 30, the demo `connectivity_example` probes every 1 s (its check file edited with
//!   `sed`, as a user would), the extra checks are created with 1 s intervals.
//! - `/` of the container is a tmpfs of the host's memory: it is not filled. The demo
//!   `diskusage_root_space` must say what `df /` implies; the filling (`fallocate`, then `rm`) is
//!   done on a 1 MiB tmpfs with a check of its own.
//! - The network is private (loopback only): example.com cannot be reached, so the demo
//!   `connectivity_example` raises its CRITICAL at once (what a device without network sees).
//!   The page blocks example.com in /etc/hosts; here /etc/hosts points it at a stand-in web
//!   server on loopback instead, which brings the OK. A check of our own on a loopback server
//!   goes CRITICAL when the server stops and OK when it is back.
//! - The root session: the page's pattern, "Started User Manager for UID 0", matches systemd
//!   before 247 only; systemd 252 (Debian 12) logs "Started user@0.service - User Manager for
//!   UID 0." So the check watches the line pam_unix writes, "session opened for user root",
//!   over the page's `@journalctl --follow`, and `su -` (the page's `sudo su`) opens a real
//!   session. The container's volatile /etc has no PAM configuration, which a device has: the
//!   host's /etc/pam.d (with /etc/security, /etc/login.defs and /etc/nsswitch.conf) is copied in.
//! - USB: nothing can be unplugged, and a container has no kernel log of its own (no /dev/kmsg;
//!   the ring buffer is the host's). The demo check reads `journalctl --dmesg`, i.e. the journal
//!   entries whose trusted `_TRANSPORT` is `kernel`, which no client can forge through journald.
//!   So the test writes the entry the kernel's disconnect would give (transport kernel, this
//!   boot, `usb 1-1: USB disconnect, device number N`) into a journal file beside the system
//!   journal with `systemd-journal-remote`, the journal's own import tool; the demo check and
//!   its journalctl command run unchanged and read it as they read the kernel's.
//! - The installed unit runs `/usr/bin/mender-monitord`; a drop-in adds `--server` so alerts go
//!   to the recording server (no Mender client in the container), which listens on the
//!   container's loopback. The same drop-in turns the unit's `ProtectKernelTunables` and
//!   `ProtectControlGroups` off: systemd-nspawn gives the container a boot id of its own by a
//!   file mounted over /proc/sys/kernel/random/boot_id, and the /proc/sys those two settings
//!   mount for the unit uncovers the kernel's. journalctl in the agent's checks then takes the
//!   container's journal for another boot's and prints nothing in `--follow` mode (seen with
//!   systemd 252). A device has one boot id; this is the container's, not the unit's, problem.

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::container::Container;
use common::*;
use serde_json::Value;

/// Where the journal's import tool lives on Debian (package systemd-journal-remote).
const JOURNAL_REMOTE: &str = "/usr/lib/systemd/systemd-journal-remote";

/// The first alert from index `from` on with this level and name.
fn find<'a>(alerts: &'a [Value], from: usize, level: &str, name: &str) -> Option<&'a Value> {
    alerts.iter().skip(from).find(|a| a["level"] == level && a["name"] == name)
}

/// Waits for the alert with this level and name among those from index `from` on; returns it.
fn arrives(server: &AlertServer, from: usize, level: &str, name: &str) -> Value {
    let alerts = server.wait_for(&format!("{level} {name:?}"), |a| find(a, from, level, name).is_some());
    find(&alerts, from, level, name).cloned().unwrap_or_default()
}

/// `(subject.name, subject.type, subject.status)` of an alert.
fn subject(a: &Value) -> (&str, &str, &str) {
    let s = &a["subject"];
    (s["name"].as_str().unwrap_or(""), s["type"].as_str().unwrap_or(""), s["status"].as_str().unwrap_or(""))
}

fn description(a: &Value) -> &str {
    a["subject"]["details"]["description"].as_str().unwrap_or("")
}

fn matching_line(a: &Value) -> &str {
    a["subject"]["details"]["line_matching"]["data"].as_str().unwrap_or("")
}

/// The check `name` in `mender-monitorctl status --json` inside.
fn status_of(c: &Container, name: &str) -> Value {
    let v: Value = serde_json::from_str(&c.sh("mender-monitorctl status --json")).unwrap_or_default();
    v["checks"].as_array().and_then(|cs| cs.iter().find(|x| x["name"] == name).cloned()).unwrap_or_default()
}

fn counter(check: &Value, name: &str) -> u64 {
    check["counters"][name].as_u64().unwrap_or(0)
}

/// The leading number of `42%`, `42% (...)` and the like.
fn percent(s: &str) -> Option<u64> {
    s.trim().split('%').next()?.trim().parse().ok()
}

/// Repeats `act` (an event a user causes again: another session, another unplug) until the
/// alert with this level and name arrives; a log check's command may still be starting when
/// the first one happens, and a line before it has started is not its to read.
fn until_alert(server: &AlertServer, from: usize, level: &str, name: &str, mut act: impl FnMut(u32)) -> Value {
    let deadline = Instant::now() + PATIENCE;
    let mut n = 0;
    loop {
        n += 1;
        act(n);
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let alerts: Vec<Value> = server.alerts().into_iter().map(|(_, a)| a).collect();
            if let Some(a) = find(&alerts, from, level, name) {
                return a.clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let seen: Vec<(String, String)> = server.alerts().iter().map(|(_, a)| level_name(a)).collect();
        assert!(Instant::now() < deadline, "no {level} {name:?} after {n} tries; alerts so far: {seen:?}");
    }
}

/// CLOCK_MONOTONIC in microseconds: the container shares the host's clock (no time namespace),
/// and the journal orders the entries of one boot by it.
fn monotonic_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime with a valid clock id and a pointer to a live timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// The journal entry a USB disconnect makes (journal export format), as the kernel's transport.
fn kernel_usb_disconnect(boot_id: &str, machine_id: &str, device: u32) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros();
    format!(
        "__REALTIME_TIMESTAMP={now}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={boot_id}\n_MACHINE_ID={machine_id}\n\
         _TRANSPORT=kernel\nPRIORITY=6\nSYSLOG_FACILITY=0\nSYSLOG_IDENTIFIER=kernel\n_HOSTNAME=device\n\
         MESSAGE=usb 1-1: USB disconnect, device number {device}\n\n",
        monotonic_us()
    )
}

/// Copies the host's PAM configuration (and what its modules read) into the container's /etc.
fn device_etc(c: &Container) {
    let wanted: Vec<&str> = ["pam.d", "security", "login.defs", "nsswitch.conf"]
        .into_iter()
        .filter(|f| std::path::Path::new("/etc").join(f).exists())
        .collect();
    assert!(wanted.contains(&"pam.d"), "this machine has no /etc/pam.d to give the container");
    let mut tar = Command::new("tar").args(["-C", "/etc", "-cf", "-"]).args(&wanted).stdout(Stdio::piped()).spawn().unwrap();
    let untar = Command::new("nsenter")
        .args(["-t", &c.pid1.to_string(), "-a", "tar", "-C", "/etc", "-xf", "-"])
        .stdin(tar.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(tar.wait().unwrap().success() && untar.success(), "copying /etc/pam.d into the container");
}

#[test]
fn the_monitor_your_device_tutorial_with_the_demo_checks() {
    if common::container::installed_unit_cannot_run() {
        return;
    }
    assert!(
        std::path::Path::new(JOURNAL_REMOTE).exists(),
        "{JOURNAL_REMOTE} is missing: apt-get install systemd-journal-remote (scripts/test does)"
    );
    let started = Instant::now();
    let c = Container::boot_with(&[], true);
    c.units_writable();
    let server = AlertServer::start_in_netns_of(c.pid1);
    let units = c.dir.join("units");
    fs::create_dir_all(units.join("mender-monitor.service.d")).unwrap();
    fs::write(
        units.join("mender-monitor.service.d/alerts-to-test-server.conf"),
        format!(
            "[Service]\nExecStart=\nExecStart=/usr/bin/mender-monitord --server {} --token TOKEN\n\
             ProtectKernelTunables=no\nProtectControlGroups=no\n",
            server.url()
        ),
    )
    .unwrap();
    // A small data partition, there before the agent starts (as on a device).
    c.sh("mkdir -p /mnt/data\nmount -t tmpfs -o size=1024k tmpfs /mnt/data");

    // 1. The add-on and the demo monitors package: one command.
    let name = bin().file_name().unwrap().to_string_lossy().into_owned();
    let said = c.sh(&format!("/opt/lookout/{name} install --demo-checks"));
    let demo = ["connectivity_example", "diskusage_root_space", "log_mender_client", "log_mender_connect", "log_usb_disconnect"];
    for check in demo {
        assert!(said.contains(&format!("created       /etc/mender-monitor/monitor.d/available/{check}.sh")), "{check} in:\n{said}");
    }
    assert_eq!(c.exec(&["systemctl", "is-active", "mender-monitor.service"]), "active");
    c.sh("mender-monitorctl --version");
    let ls = c.sh("ls -lAh /etc/mender-monitor/monitor.d/available/ | grep -v '^d'");
    assert!(demo.iter().all(|check| ls.contains(&format!("{check}.sh"))), "{ls}");
    let list = c.sh("mender-monitorctl list");
    for (subsystem, check) in [
        ("connectivity", "example"),
        ("diskusage", "root_space"),
        ("log", "mender_client"),
        ("log", "mender_connect"),
        ("log", "usb_disconnect"),
    ] {
        let row = list.lines().find(|l| l.split_whitespace().take(2).eq([subsystem, check])).unwrap_or_default();
        assert!(row.split_whitespace().nth(2) == Some("no"), "{subsystem} {check} available, not enabled, in:\n{list}");
    }
    eprintln!("{:?}: installed with the demo checks", started.elapsed());

    disk_usage(&c, &server);
    eprintln!("{:?}: disk usage", started.elapsed());
    connectivity(&c, &server);
    eprintln!("{:?}: connectivity", started.elapsed());
    countdown(&c, &server);
    eprintln!("{:?}: the countdown service", started.elapsed());
    root_sessions(&c, &server);
    eprintln!("{:?}: root sessions", started.elapsed());
    usb_disconnects(&c, &server);
    eprintln!("{:?}: USB disconnects and the alert cleaning", started.elapsed());
}

/// "Monitor disk usage": the demo check on `/` agrees with `df /`; a check of our own on a
/// 1 MiB tmpfs goes CRITICAL with a file filling it and OK once it is removed.
fn disk_usage(c: &Container, server: &AlertServer) {
    c.sh("mender-monitorctl enable diskusage root_space");
    wait_until("a first sample of /", || counter(&status_of(c, "root_space"), "samples") >= 1);
    let st = status_of(c, "root_space");
    let df = c.sh("df -h /\necho space $(df --output=pcent / | tail -n 1)\necho inodes $(df -i --output=ipcent / | tail -n 1)");
    let field = |key: &str| df.lines().find_map(|l| l.strip_prefix(key)).map(str::trim).unwrap_or("");
    let space = percent(field("space ")).unwrap_or_else(|| panic!("df printed no percentage:\n{df}"));
    // A file system that counts no inodes (`-`) is judged on space alone, as by df.
    let inodes = percent(field("inodes ")).unwrap_or(0);
    let sampled = st["source"]["last"].as_str().and_then(percent).unwrap_or(u64::MAX);
    assert!(sampled.abs_diff(space) <= 1, "the agent saw {sampled}% of /, df says {space}%: {st}\n{df}");
    let root_name = "Disk storage has grown to fill more than 75% of the disk '/'";
    if space > 75 || inodes > 75 {
        let a = arrives(server, 0, "CRITICAL", root_name);
        assert_eq!(subject(&a), ("root_space", "diskusage", "DISKUSAGE_USAGE_WARNING"), "{a}");
    } else {
        assert_eq!(st["level"], "OK", "/ is at {space}% (inodes {inodes}%): {st}");
        assert!(find(&server.alerts().into_iter().map(|(_, a)| a).collect::<Vec<_>>(), 0, "CRITICAL", root_name).is_none());
    }
    c.sh("mender-monitorctl disable diskusage root_space");

    let mark = server.alerts().len();
    c.sh("mender-monitorctl create diskusage data /mnt/data 75 1\nmender-monitorctl enable diskusage data");
    wait_until("a first sample of /mnt/data", || counter(&status_of(c, "data"), "samples") >= 1);
    c.sh("fallocate -l 900K /mnt/data/large-file\ndf -h /mnt/data");
    let name = "Disk storage has grown to fill more than 75% of the disk '/mnt/data'";
    let a = arrives(server, mark, "CRITICAL", name);
    assert_eq!(subject(&a), ("data", "diskusage", "DISKUSAGE_USAGE_WARNING"), "{a}");
    assert!(description(&a).starts_with("Disk /mnt/data is now at 88% capacity"), "{a}");
    assert!(description(&a).ends_with("above the 75% threshold"), "{a}");
    c.sh("rm /mnt/data/large-file");
    let a = arrives(server, mark, "OK", name);
    assert_eq!(subject(&a), ("data", "diskusage", "DISKUSAGE_USAGE_OK"), "{a}");
    assert!(description(&a).starts_with("Disk /mnt/data is back below the 75% threshold"), "{a}");
    c.sh("mender-monitorctl disable diskusage data\nmender-monitorctl delete diskusage data");
}

/// "Monitor connectivity": a check on a loopback web server (stopped: CRITICAL after three
/// failed probes; back: OK), then the demo check on example.com in a network without it.
fn connectivity(c: &Container, server: &AlertServer) {
    let mark = server.alerts().len();
    let web = "python3 -m http.server 8080 --bind 127.0.0.1 --directory /root >/dev/null 2>&1 & echo $! > web.pid";
    c.sh(web);
    c.sh("mender-monitorctl create connectivity web http://127.0.0.1:8080/ 1 1\nmender-monitorctl enable connectivity web");
    wait_until("two probes in a row answered", || {
        let st = status_of(c, "web");
        counter(&st, "probes") >= counter(&st, "failures") + 2 && counter(&st, "failed_in_a_row") == 0
    });
    let name = "Unable to connect to the address 'http://127.0.0.1:8080/'";
    let mark_web = server.alerts().len();
    c.sh("kill $(cat web.pid)");
    let a = arrives(server, mark_web, "CRITICAL", name);
    assert_eq!(subject(&a), ("web", "connectivity", "CONNECTIVITY_UNREACHABLE"), "{a}");
    assert!(description(&a).contains("failed 3 times in a row") && description(&a).contains("Connection refused"), "{a}");
    c.sh(web);
    let a = arrives(server, mark_web, "OK", name);
    assert_eq!(subject(&a), ("web", "connectivity", "CONNECTIVITY_OK"), "{a}");
    assert!(description(&a).contains("HTTP 200 from 127.0.0.1:8080"), "{a}");
    c.sh("mender-monitorctl disable connectivity web\nmender-monitorctl delete connectivity web\nkill $(cat web.pid)");

    // The demo check, every second instead of every minute.
    c.sh("sed -i 's/^CONNECTIVITY_INTERVAL=.*/CONNECTIVITY_INTERVAL=1/; s/^CONNECTIVITY_TIMEOUT=.*/CONNECTIVITY_TIMEOUT=1/' \
         /etc/mender-monitor/monitor.d/available/connectivity_example.sh\n\
         mender-monitorctl enable connectivity example");
    let name = "Unable to connect to the address 'http://example.com'";
    let a = arrives(server, mark, "CRITICAL", name);
    assert_eq!(subject(&a), ("example", "connectivity", "CONNECTIVITY_UNREACHABLE"), "{a}");
    assert!(description(&a).contains("example.com"), "{a}");
    eprintln!("example.com from a private network: {}", description(&a));
    // The page's /etc/hosts line the other way round: example.com to a stand-in on loopback.
    c.sh("echo 127.0.0.1 example.com | tee -a /etc/hosts\n\
         python3 -m http.server 80 --bind 127.0.0.1 --directory /root >/dev/null 2>&1 & echo $! > web80.pid");
    let a = arrives(server, mark, "OK", name);
    assert_eq!(subject(&a), ("example", "connectivity", "CONNECTIVITY_OK"), "{a}");
    c.sh("mender-monitorctl disable connectivity example\nkill $(cat web80.pid)\nsed -i '/example/d' /etc/hosts");
}

/// The page's countdown script (30 s shortened to 6), as `setup-countdown.sh`.
const SETUP_COUNTDOWN: &str = r#"cat > countdown.sh << "EOF"
#!/bin/sh
i=6
while [ $i -gt 0 ]; do
    echo "INFO: $i seconds remaining"
    i=$((i-1))
    sleep 1
done
echo "ERROR: Exiting with return 1"
exit 1
EOF

PATH_TO_SCRIPT=$(realpath countdown.sh)
chmod +x $PATH_TO_SCRIPT


cat > /etc/systemd/system/countdown.service << EOF
[Unit]
Description=Countdown Service

[Service]
Type=simple
ExecStart=$PATH_TO_SCRIPT

[Install]
WantedBy=default.target
EOF

systemctl daemon-reload
systemctl start countdown.service
"#;

/// "Monitor a systemd service": the countdown exits (CRITICAL), a restart (OK); then stopped
/// (CRITICAL) and started (OK) by hand; `delete service countdown systemd`.
fn countdown(c: &Container, server: &AlertServer) {
    let mark = server.alerts().len();
    c.upload("/root/setup-countdown.sh", SETUP_COUNTDOWN);
    c.sh("bash setup-countdown.sh");
    c.sh("mender-monitorctl create service countdown systemd\nmender-monitorctl enable service countdown");
    let name = "Service countdown not running";
    let exited = arrives(server, mark, "CRITICAL", name);
    assert_eq!(subject(&exited).0, "countdown", "{exited}");
    assert_eq!(subject(&exited).1, "service", "{exited}");
    eprintln!("countdown exited: {}", description(&exited));
    let mark = server.alerts().len();
    c.sh("systemctl restart countdown");
    let a = arrives(server, mark, "OK", name);
    assert_eq!((subject(&a).0, subject(&a).1), ("countdown", "service"), "{a}");
    let mark = server.alerts().len();
    c.sh("systemctl stop countdown");
    arrives(server, mark, "CRITICAL", name);
    let mark = server.alerts().len();
    c.sh("systemctl start countdown");
    arrives(server, mark, "OK", name);
    c.sh("mender-monitorctl disable service countdown\nmender-monitorctl delete service countdown systemd\nsystemctl stop countdown");
    assert!(!c.sh("mender-monitorctl list").contains("countdown"));
}

/// "Monitor new root sessions": a log check on the journal; `su -` opens a root session.
fn root_sessions(c: &Container, server: &AlertServer) {
    device_etc(c);
    let mark = server.alerts().len();
    c.sh(r#"mender-monitorctl create log auth_root_session "session opened for user root" "@journalctl --follow"
mender-monitorctl enable log auth_root_session"#);
    let name = "Log file contains session opened for user root";
    let a = until_alert(server, mark, "CRITICAL", name, |_| {
        c.sh("su - -c true");
    });
    assert_eq!(subject(&a), ("auth_root_session", "log", "LOGCONTAINS"), "{a}");
    assert!(matching_line(&a).contains("pam_unix(su-l:session): session opened for user root(uid=0)"), "{a}");
    c.sh("mender-monitorctl disable log auth_root_session");
    arrives(server, mark, "OK", name);
}

/// "Monitor USB disconnects": the demo check catches a kernel "USB disconnect" in the journal;
/// it does not clear itself, so the OK is sent by hand, as the page shows.
fn usb_disconnects(c: &Container, server: &AlertServer) {
    let mark = server.alerts().len();
    c.sh("mender-monitorctl enable log usb_disconnect");
    let boot_id = c.sh("cat /proc/sys/kernel/random/boot_id").trim().replace('-', "");
    let machine_id = c.sh("cat /etc/machine-id").trim().to_string();
    let name = "Log file contains usb [0-9.-]+: USB disconnect";
    let a = until_alert(server, mark, "CRITICAL", name, |n| {
        c.upload("/root/usb.export", kernel_usb_disconnect(&boot_id, &machine_id, n + 1));
        c.sh(&format!(
            "D=/var/log/journal/{machine_id}; [ -d $D ] || D=/run/log/journal/{machine_id}\n\
             {JOURNAL_REMOTE} --output=$D/usb-{n}.journal /root/usb.export"
        ));
    });
    assert_eq!(subject(&a), ("log_usb_disconnect", "log", "LOGCONTAINS"), "{a}");
    assert!(matching_line(&a).contains("kernel: usb 1-1: USB disconnect, device number "), "{a}");
    assert!(c.sh("journalctl --dmesg --no-pager").contains("usb 1-1: USB disconnect"), "the kernel's entry is in the journal");

    // The page's alert cleaning, with this check's alert name.
    let mark = server.alerts().len();
    c.bash(
        r#"cd /usr/share/mender-monitor
source lib/monitor-lib.sh
monitor_send_alert OK "Log file contains usb [0-9.-]+: USB disconnect" "usb [0-9.-]+: USB disconnect present in the kernel log" "log_usb_disconnect" LOGCONTAINS "log" "usb [0-9.-]+: USB disconnect" "@journalctl --dmesg --follow --lines=0 --output=short""#,
    );
    let a = arrives(server, mark, "OK", name);
    assert_eq!(subject(&a), ("log_usb_disconnect", "log", "LOGCONTAINS"), "{a}");
    assert_eq!(description(&a), "usb [0-9.-]+: USB disconnect present in the kernel log", "{a}");
}
