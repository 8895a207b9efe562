//! `lookout install` / `uninstall` into a temporary root (no systemd calls there), a read-only
//! `/usr` in a mount namespace of the test's own, and the first run on an empty system: what a
//! user who copied the binary to a device sees. The install on a booted systemd, followed by the
//! seed tutorial, is in tests/tutorial.rs.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const YOCTO_FILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/yocto-layer/meta-lookout/recipes-monitoring/lookout/files");

fn lookout(args: &[&str]) -> Output {
    command_for(&bin()).args(args).env_remove("LOOKOUT_ROOT").output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every entry under `root`: relative path -> (mode, contents or link target, mtime).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let body = if m.is_symlink() {
                fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()
            } else if m.is_file() {
                fs::read(&p).unwrap()
            } else {
                stack.push(p.clone());
                Vec::new()
            };
            out.insert(p.strip_prefix(root).unwrap().to_path_buf(), (m.mode(), body, m.mtime_nsec() + m.mtime() * 1_000_000_000));
        }
    }
    out
}

/// The files (not directories) under `root`, relative.
fn files(root: &Path) -> Vec<String> {
    snapshot(root).into_iter().filter(|(_, (mode, ..))| mode & 0o170000 != 0o040000).map(|(p, _)| p.display().to_string()).collect()
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn install_twice_then_uninstall_keeps_only_the_users_files_and_purge_keeps_nothing() {
    let root = Root::new("install");
    let r = root.path();
    let r_s = r.to_str().unwrap();
    let out = lookout(&["install", "--root", r_s, "--demo-checks"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains(&format!("created       {r_s}/usr/bin/lookout (from ")), "{said}");
    assert!(!said.contains("systemctl"), "no systemd calls under --root: {said}");
    // What the Yocto layer lays down, from the same files.
    assert_eq!(fs::read(r.join("usr/bin/lookout")).unwrap(), fs::read(bin()).unwrap());
    assert_eq!(mode(&r.join("usr/bin/lookout")), 0o755);
    for link in ["mender-monitorctl", "mender-monitord"] {
        assert_eq!(fs::read_link(r.join("usr/bin").join(link)).unwrap(), Path::new("lookout"));
    }
    assert_eq!(
        fs::read(r.join("etc/systemd/system/mender-monitor.service")).unwrap(),
        fs::read(format!("{YOCTO_FILES}/mender-monitor.service")).unwrap()
    );
    assert_eq!(fs::read(root.config_sh()).unwrap(), fs::read(format!("{YOCTO_FILES}/config.sh")).unwrap());
    assert_eq!(mode(&root.config_sh()), 0o644);
    // Mender's library entry point for manual alerts, where its docs source it from.
    let lib = r.join("usr/share/mender-monitor/lib/monitor-lib.sh");
    assert_eq!(fs::read(&lib).unwrap(), fs::read(format!("{YOCTO_FILES}/monitor-lib.sh")).unwrap());
    let sourced = Command::new("bash").arg("-c").arg(format!(". {}; type -t monitor_send_alert", lib.display())).output().unwrap();
    assert_eq!(text(&sourced.stdout), "function\n", "{}", text(&sourced.stderr));
    assert_eq!(mode(&r.join("var/lib/mender-monitor")), 0o700);
    for d in ["available", "enabled"] {
        assert_eq!(mode(&r.join("etc/mender-monitor/monitor.d").join(d)), 0o755);
    }
    // The demo checks are available, not enabled, and valid; the installed name works.
    let ctl = command_for(&r.join("usr/bin/mender-monitorctl")).args(["--root", r_s, "check-config"]).output().unwrap();
    assert!(ctl.status.success(), "{}", text(&ctl.stdout));
    assert!(text(&ctl.stdout).starts_with("OK: 5 checks (0 enabled), 0 errors, 0 warnings"), "{}", text(&ctl.stdout));

    // Again: nothing changes, and it says so.
    let before = snapshot(r);
    let out = lookout(&["install", "--root", r_s, "--demo-checks"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).ends_with("nothing to change: lookout is installed\n"), "{}", text(&out.stdout));
    assert_eq!(snapshot(r), before);

    // The user's check and config.sh edit (the tutorial's sed) survive a reinstall.
    root.ctl_ok(&["create", "log", "app", "ERROR", "/var/log/app.log", "5"]);
    root.ctl_ok(&["enable", "log", "app"]);
    let conf = fs::read_to_string(root.config_sh()).unwrap().replace("FLAPPING_INTERVAL=600", "FLAPPING_INTERVAL=150");
    fs::write(root.config_sh(), &conf).unwrap();
    let out = lookout(&["install", "--root", r_s]);
    assert!(text(&out.stdout).contains("config.sh (exists: never overwritten)"), "{}", text(&out.stdout));
    assert_eq!(fs::read_to_string(root.config_sh()).unwrap(), conf);

    // A dry run prints and changes nothing.
    let before = snapshot(r);
    let out = lookout(&["uninstall", "--root", r_s, "--dry-run"]);
    assert!(text(&out.stdout).contains(&format!("would remove  {r_s}/usr/bin/lookout")), "{}", text(&out.stdout));
    assert_eq!(snapshot(r), before);

    let out = lookout(&["uninstall", "--root", r_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        files(r),
        [
            "etc/mender-monitor/monitor.d/available/log_app.sh",
            "etc/mender-monitor/monitor.d/enabled/log_app.sh",
            "usr/share/mender-monitor/config/config.sh"
        ],
        "{}",
        text(&out.stdout)
    );

    let out = lookout(&["uninstall", "--root", r_s, "--purge"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(files(r), Vec::<String>::new(), "{}", text(&out.stdout));
    for gone in ["etc/mender-monitor", "usr/share/mender-monitor", "var/lib/mender-monitor"] {
        assert!(!r.join(gone).exists(), "{gone}");
    }
    let out = lookout(&["uninstall", "--root", r_s, "--purge"]);
    assert!(text(&out.stdout).ends_with("nothing to remove\n"), "{}", text(&out.stdout));
}

#[test]
fn install_refuses_to_replace_what_is_not_its_own() {
    let root = Root::new("install-foreign");
    let r = root.path();
    fs::create_dir_all(r.join("usr/bin")).unwrap();
    fs::write(r.join("usr/bin/mender-monitorctl"), "#!/bin/sh\n# Mender Monitor's\n").unwrap();
    let out = lookout(&["install", "--root", r.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("nothing was changed") && err.contains("usr/bin/mender-monitorctl: is a regular file, not a link to lookout"),
        "{err}"
    );
    assert!(!r.join("usr/bin/lookout").exists());
    let out = lookout(&["install", "--root", r.to_str().unwrap(), "--bin", "/etc/hostname"]);
    assert!(text(&out.stderr).contains("--bin /etc/hostname: not an executable"), "{}", text(&out.stderr));
}

#[test]
fn a_read_only_usr_is_an_error_naming_what_cannot_be_written() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: a read-only bind mount needs root (unshare -m)");
        return;
    }
    let root = Root::new("install-ro");
    let r = root.path();
    fs::create_dir_all(r.join("usr")).unwrap();
    fs::create_dir_all(r.join("etc")).unwrap();
    // A mount namespace of its own: the read-only /usr exists only for this command.
    let script = r#"mount --bind "$1/usr" "$1/usr" && mount -o remount,bind,ro "$1/usr" && shift && exec "$@""#;
    let mut argv: Vec<String> = runner().into_iter().collect();
    argv.push(bin().display().to_string());
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script, "sh", r.to_str().unwrap()])
        .args(&argv)
        .args(["install", "--root", r.to_str().unwrap()])
        .env_remove("LOOKOUT_ROOT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("cannot write these paths, so nothing was changed"), "{err}");
    assert!(err.contains(&format!("{}/usr/bin/lookout: {}/usr: Read-only file system", r.display(), r.display())), "{err}");
    assert!(err.contains("usr/share/mender-monitor/config/config.sh"), "{err}");
    assert_eq!(files(r), Vec::<String>::new(), "nothing written, not even under the writable /etc");
    assert_eq!(fs::read_dir(r.join("etc")).unwrap().count(), 0);
}

#[test]
fn the_first_run_explains_itself() {
    let root = Root::new("first-run");
    let out = root.ctl(&["list"]);
    assert!(out.status.success());
    let said = text(&out.stdout);
    assert!(said.starts_with(&format!("no checks in {}\n", root.available().display())), "{said}");
    assert!(said.contains("mender-monitorctl create log crasher_app ERROR /root/crasher.log 5\n"), "{said}");
    let out = root.ctl(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("start it with `systemctl start mender-monitor`, or in the foreground with `lookout run`"),
        "{}",
        text(&out.stderr)
    );
    // No config.sh: the defaults, said once (not again on a reload).
    let daemon = Daemon::start(&root, None);
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_log("SIGHUP: reloading the configuration");
    assert_eq!(daemon.log().matches("not found; running on the built-in defaults").count(), 1, "{}", daemon.log());
    assert!(daemon.log().contains(&format!("{}: not found", root.config_sh().display())), "{}", daemon.log());
}
