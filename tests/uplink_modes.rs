//! Alert text is private (issue 11, defect 4): alerts quote lines of logs that may be root-only,
//! so the state directory, the spool and every file in them are for root alone, whatever the
//! umask the agent was started with, and an older install's open modes are narrowed at start.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The agent started under `umask 0022` (a shell's usual one).
fn agent_with_umask_0022(root: &Root, server: &AlertServer) -> Daemon {
    let inner = Daemon::command(root, Some(server));
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg("umask 0022; exec \"$@\"").arg("sh").arg(inner.get_program()).args(inner.get_args());
    Daemon::spawn(root, cmd)
}

/// Every path under `dir` (itself included) with its permission bits. A file gone between the
/// listing and its `lstat` is left out: the state writer's temporary file is renamed away by a
/// thread of its own, at any time.
fn modes(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let mut out = vec![(dir.to_path_buf(), meta.is_dir(), meta.permissions().mode() & 0o7777)];
    if meta.is_dir() {
        for e in fs::read_dir(dir).unwrap().flatten() {
            out.extend(modes(&e.path()));
        }
    }
    out
}

/// Runs `args` as nobody; whether it succeeded, and what it said.
fn as_nobody(args: &[&str]) -> (bool, String) {
    let out = Command::new("setpriv").args(["--reuid=65534", "--regid=65534", "--clear-groups"]).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn state_and_spool_are_private_whatever_the_umask() {
    let (root, server, log) = log_check("modes", "app", "ERROR", None);
    // The alert stays in the spool: the server is down.
    server.set_reply(Reply::Status(503, None));
    let state = root.path().join("var/lib/mender-monitor");
    // Other users may reach the root (as they reach /var/lib on a device).
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let daemon = agent_with_umask_0022(&root, &server);
    append(&log, b"ERROR secret from a root-only log\n");
    daemon.wait_log("alert CRITICAL");
    let seg = state.join("spool/0000000000000001.seg");
    wait_until("the alert in the spool and the state saved", || {
        fs::read(&seg).is_ok_and(|b| String::from_utf8_lossy(&b).contains("secret")) && state.join("lookout-state.json").exists()
    });
    server.wait_alert_attempts(1);
    wait_until("the ack file", || state.join("spool/acked").exists());
    let all = modes(&state);
    let names: Vec<String> = all.iter().map(|(p, _, _)| p.strip_prefix(&state).unwrap().display().to_string()).collect();
    for want in ["", "spool", "lookout-state.json", "spool/0000000000000001.seg", "spool/acked"] {
        assert!(names.iter().any(|n| n == want), "{want:?} in {names:?}");
    }
    for (p, is_dir, mode) in &all {
        assert_eq!(*mode, if *is_dir { 0o700 } else { 0o600 }, "{}: {mode:04o}", p.display());
    }
    // What root cannot show: another user cannot read it.
    let (ok, said) = as_nobody(&["cat", seg.to_str().unwrap()]);
    assert!(!ok && said.contains("Permission denied"), "nobody read the segment: {said}");
    let (ok, _) = as_nobody(&["cat", log.to_str().unwrap()]);
    assert!(ok, "the check is sound: nobody can read what is not private (the log here)");
    assert!(daemon.terminate().success());

    // An older install left everything open: narrowed at the next start, and said.
    for (p, is_dir, _) in modes(&state) {
        fs::set_permissions(&p, fs::Permissions::from_mode(if is_dir { 0o755 } else { 0o644 })).unwrap();
    }
    let daemon = agent_with_umask_0022(&root, &server);
    wait_until("the spool to be read", || daemon.log().contains("wait for delivery"));
    // The inbox (`send-alert`'s) is opened after the spool, once the reactor starts.
    wait_until("the inbox to be opened", || daemon.log().contains("inbox was open to other users (mode 0755)"));
    for (p, is_dir, mode) in modes(&state) {
        assert_eq!(mode, if is_dir { 0o700 } else { 0o600 }, "{}: {mode:04o}", p.display());
    }
    let said = daemon.log();
    assert!(said.contains("files were readable by other users") && said.contains("made them private"), "{said}");
    assert!(said.contains("was open to other users (mode 0755)"), "{said}");
    drop(daemon);
}
