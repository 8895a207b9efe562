//! `lookout install` and `lookout uninstall`: lay a dropped binary down as the Yocto layer would
//! (the binary at `/usr/bin/lookout`, the `mender-monitorctl`/`mender-monitord` links, the unit,
//! monitor.d, the state directory, a documented config.sh) and take it away again.
//!
//! The unit and config.sh are the Yocto layer's files, built in (one source for both). Each path
//! is looked at, its action decided by [`plan`] (pure), and printed; nothing is written before
//! every write has been checked to be possible (a read-only `/usr` is an error naming the paths,
//! with nothing changed). A config.sh or check that exists is never overwritten. With a running
//! systemd (and no `--root`), the unit is reloaded, enabled and started (install) or stopped and
//! disabled (uninstall).

pub mod plan;

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::layout::{self, prefixed};
use plan::{Action, Kind, Seen, UnitState};

/// The systemd unit, as the Yocto layer installs it.
pub const UNIT: &str = include_str!("../../yocto-layer/meta-lookout/recipes-monitoring/lookout/files/mender-monitor.service");
/// Mender's library entry point for manual alerts (`monitor_send_alert`), as the Yocto layer
/// installs it.
pub const MONITOR_LIB: &str = include_str!("../../yocto-layer/meta-lookout/recipes-monitoring/lookout/files/monitor-lib.sh");
/// Where it goes (Mender documents sourcing it from there).
pub const MONITOR_LIB_PATH: &str = "/usr/share/mender-monitor/lib/monitor-lib.sh";
/// The unit's name.
pub const UNIT_NAME: &str = "mender-monitor.service";
/// Where install puts the unit: the administrator's unit directory (a package's would be
/// `/usr/lib/systemd/system`, where the Yocto layer puts it).
pub const UNIT_PATH: &str = "/etc/systemd/system/mender-monitor.service";
/// Where the binary goes.
pub const BIN_PATH: &str = "/usr/bin/lookout";

/// Demo checks `--demo-checks` writes to `monitor.d/available` (not enabled): `(file, text)`.
/// Mender's demo package ships these names; their contents are lookout's own (UNCONFIRMED),
/// except `diskusage_root_space.sh`'s variables, which Mender documents. The Yocto layer's
/// `lookout-demo` package installs the same files (every `demo/*.sh`).
pub const DEMO_CHECKS: &[(&str, &str)] = &[
    ("log_usb_disconnect.sh", include_str!("demo/log_usb_disconnect.sh")),
    ("log_mender_client.sh", include_str!("demo/log_mender_client.sh")),
    ("log_mender_connect.sh", include_str!("demo/log_mender_connect.sh")),
    ("connectivity_example.sh", include_str!("demo/connectivity_example.sh")),
    ("diskusage_root_space.sh", include_str!("demo/diskusage_root_space.sh")),
];

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The root prefix (`/` on a device; anything else: no systemd calls).
    pub root: PathBuf,
    /// The binary to install (default: the running one).
    pub bin: Option<PathBuf>,
    /// Talk to systemd (when it runs and the root is `/`).
    pub systemd: bool,
    /// Write the demo checks (install).
    pub demo_checks: bool,
    /// Remove the user's checks, config.sh and the state too (uninstall).
    pub purge: bool,
    /// Print, do nothing.
    pub dry_run: bool,
}

/// One path and what it is for.
struct Item {
    path: PathBuf,
    kind: Kind,
}

/// Every path install looks after, parents first.
fn items(root: &Path, demo_checks: bool) -> Vec<Item> {
    let item = |device: &str, kind| Item { path: prefixed(root, device), kind };
    let dir = Kind::Dir { mode: 0o755, exact: false };
    let mut v = vec![];
    for p in ["/usr/bin", "/usr/share", "/etc", "/etc/systemd/system", "/var/lib"] {
        v.push(item(p, Kind::Parent));
    }
    for p in [
        "/usr/share/mender-monitor",
        "/usr/share/mender-monitor/config",
        "/usr/share/mender-monitor/lib",
        "/etc/mender-monitor",
        layout::MONITOR_D,
    ] {
        v.push(item(p, dir));
    }
    v.push(item(&format!("{}/available", layout::MONITOR_D), dir));
    v.push(item(&format!("{}/enabled", layout::MONITOR_D), dir));
    v.push(item(layout::STATE_DIR, Kind::Dir { mode: 0o700, exact: true }));
    v.push(item(BIN_PATH, Kind::Binary));
    v.push(item("/usr/bin/mender-monitorctl", Kind::Link { target: "lookout" }));
    v.push(item("/usr/bin/mender-monitord", Kind::Link { target: "lookout" }));
    v.push(item(UNIT_PATH, Kind::Owned { text: UNIT }));
    v.push(item(MONITOR_LIB_PATH, Kind::Owned { text: MONITOR_LIB }));
    v.push(item(layout::CONFIG_SH, Kind::Seed { text: crate::config::settings::DEFAULT_CONFIG_SH, mode: 0o644 }));
    if demo_checks {
        for (name, text) in DEMO_CHECKS {
            v.push(item(&format!("{}/available/{name}", layout::MONITOR_D), Kind::Seed { text, mode: 0o644 }));
        }
    }
    v
}

/// The binary to copy, read once.
struct Source {
    path: PathBuf,
    bytes: Vec<u8>,
    id: (u64, u64),
}

impl Source {
    fn read(bin: Option<&Path>) -> Result<Source, String> {
        let path = match bin {
            Some(p) => p.to_path_buf(),
            None => std::env::current_exe().map_err(|e| format!("cannot tell where this binary is ({e}); give --bin PATH"))?,
        };
        let meta = fs::metadata(&path).map_err(|e| format!("--bin {}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("--bin {}: not a regular file", path.display()));
        }
        let bytes = fs::read(&path).map_err(|e| format!("--bin {}: {e}", path.display()))?;
        if !bytes.starts_with(b"\x7fELF") {
            return Err(format!("--bin {}: not an executable (no ELF header)", path.display()));
        }
        Ok(Source { path, bytes, id: (meta.dev(), meta.ino()) })
    }
}

/// A step decided: where, for what, what to do.
struct Step {
    path: PathBuf,
    kind: Kind,
    action: Action,
}

/// What was at `path`. `removed`: paths this run removes (or, dry, would), which do not count
/// in a directory's emptiness.
fn observe(path: &Path, kind: Kind, source: Option<&Source>, removed: &HashSet<PathBuf>) -> Result<Seen, String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(_) if removed.contains(path) => return Ok(Seen::Missing),
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Seen::Missing),
        Err(e) => return Err(format!("cannot look at {}: {e}", path.display())),
    };
    let ft = meta.file_type();
    let wants_dir = matches!(kind, Kind::Parent | Kind::Dir { .. });
    // A directory may be a link to one (the state on /data on Mender images).
    let dir_meta = if ft.is_dir() || (ft.is_symlink() && wants_dir) { fs::metadata(path).ok().filter(|m| m.is_dir()) } else { None };
    if let Some(m) = dir_meta {
        let empty =
            fs::read_dir(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?.flatten().all(|e| removed.contains(&e.path()));
        return Ok(Seen::Dir { mode: m.mode() & 0o7777, empty });
    }
    if ft.is_symlink() {
        let target = fs::read_link(path).map_err(|e| format!("cannot read the link {}: {e}", path.display()))?;
        return Ok(Seen::Link { target: target.to_string_lossy().into_owned() });
    }
    if !ft.is_file() {
        return Ok(Seen::Other(file_kind(&ft)));
    }
    let same = match kind {
        // Uninstall has no binary to compare with, and needs none.
        Kind::Binary => source.is_some_and(|src| (meta.dev(), meta.ino()) == src.id || fs::read(path).is_ok_and(|b| b == src.bytes)),
        Kind::Owned { text } | Kind::Seed { text, .. } => fs::read(path).is_ok_and(|b| b == text.as_bytes()),
        _ => false,
    };
    let in_use = matches!(kind, Kind::Seed { .. }) && enabled_link(path).is_some_and(|l| fs::symlink_metadata(l).is_ok());
    Ok(Seen::File { same, mode: meta.mode() & 0o7777, in_use })
}

/// `monitor.d/enabled/<name>` for a check file in `monitor.d/available`.
fn enabled_link(check: &Path) -> Option<PathBuf> {
    let dir = check.parent()?;
    (dir.file_name()? == "available").then(|| dir.parent().map(|d| d.join("enabled").join(check.file_name().unwrap_or_default())))?
}

fn file_kind(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Decides every step up front, `removed` standing in for what earlier steps remove.
fn decide(items: Vec<Item>, source: Option<&Source>, uninstall: Option<bool>) -> Result<Vec<Step>, String> {
    let mut removed = HashSet::new();
    let mut steps = Vec::new();
    for it in items {
        let seen = observe(&it.path, it.kind, source, &removed)?;
        let action = match uninstall {
            None => plan::install(it.kind, &seen),
            Some(purge) => plan::uninstall(it.kind, &seen, purge),
        };
        if matches!(action, Action::Remove | Action::RemoveAll) {
            removed.insert(it.path.clone());
        }
        steps.push(Step { path: it.path, kind: it.kind, action });
    }
    Ok(steps)
}

/// The paths whose step cannot be done (a read-only file system, no permission), with why.
fn unwritable(steps: &[Step]) -> Vec<String> {
    let mut out = Vec::new();
    for s in steps.iter().filter(|s| s.action.changes()) {
        // Creating or removing writes the directory it is in (the nearest one that exists);
        // a mode change writes the path itself.
        let mut dir =
            if matches!(s.action, Action::Chmod(_)) { s.path.clone() } else { s.path.parent().unwrap_or(Path::new("/")).to_path_buf() };
        while !dir.exists() {
            match dir.parent() {
                Some(p) => dir = p.to_path_buf(),
                None => break,
            }
        }
        if let Err(e) = nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK) {
            out.push(format!("{}: {}: {}", s.path.display(), dir.display(), e.desc()));
        }
    }
    out
}

/// The verb of an action that changes something.
fn verb(a: &Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Replace => "replace",
        Action::Chmod(_) => "chmod",
        Action::Remove | Action::RemoveAll => "remove",
        _ => "leave",
    }
}

/// What a step says, e.g. `created   /usr/bin/lookout`.
fn describe(s: &Step, dry: bool, source: Option<&Source>) -> Option<String> {
    let verb = match &s.action {
        Action::Create => "create",
        Action::Replace => "replace",
        Action::Chmod(_) => "chmod",
        Action::Remove => "remove",
        Action::RemoveAll => "remove",
        Action::Unchanged | Action::Absent if s.kind == Kind::Parent => return None,
        Action::Keep(_) if s.kind == Kind::Parent => return None,
        Action::Unchanged => "unchanged",
        Action::Keep(_) => "kept",
        Action::Absent => "absent",
        Action::Refuse(_) => "cannot",
    };
    let verb = match (dry && s.action.changes(), verb) {
        (true, v) => format!("would {v}"),
        (false, "create") => "created".into(),
        (false, "replace") => "replaced".into(),
        (false, "remove") => "removed".into(),
        (false, v) => v.into(),
    };
    let detail = match (&s.action, s.kind) {
        (Action::Keep(why), _) => format!(" ({why})"),
        (Action::Refuse(why), _) => format!(": {why}"),
        (Action::Chmod(m), _) => format!(" to {m:04o}"),
        (Action::RemoveAll, _) => " (and everything in it)".into(),
        (Action::Create | Action::Replace, Kind::Binary) => source.map(|s| format!(" (from {})", s.path.display())).unwrap_or_default(),
        (_, Kind::Link { target }) => format!(" -> {target}"),
        (Action::Create, Kind::Dir { mode, .. }) => format!(" (directory, {mode:04o})"),
        (Action::Create, Kind::Parent) => " (directory)".into(),
        _ => String::new(),
    };
    Some(format!("{verb:<13} {}{detail}", s.path.display()))
}

/// Writes `bytes` to `path` with `mode`: a temporary file beside it, then a rename, so nothing
/// ever sees half a file (and a running binary being replaced keeps running).
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(".{}.lookout-install.{}", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Carries out one step.
fn apply(s: &Step, source: Option<&Source>) -> io::Result<()> {
    let p = &s.path;
    match (&s.action, s.kind) {
        (Action::Create, Kind::Parent) => fs::DirBuilder::new().recursive(true).mode(0o755).create(p),
        (Action::Create, Kind::Dir { mode, .. }) => {
            fs::DirBuilder::new().mode(mode).create(p)?;
            // The umask narrowed it perhaps; the mode is part of the promise.
            fs::set_permissions(p, fs::Permissions::from_mode(mode))
        }
        (Action::Create | Action::Replace, Kind::Binary) => write_file(p, source.map(|s| s.bytes.as_slice()).unwrap_or_default(), 0o755),
        (Action::Create | Action::Replace, Kind::Link { target }) => {
            let tmp = p.with_file_name(format!(".{}.lookout-install", p.file_name().unwrap_or_default().to_string_lossy()));
            let _ = fs::remove_file(&tmp);
            std::os::unix::fs::symlink(target, &tmp)?;
            fs::rename(&tmp, p)
        }
        (Action::Create | Action::Replace, Kind::Owned { text }) => write_file(p, text.as_bytes(), 0o644),
        (Action::Create, Kind::Seed { text, mode }) => write_file(p, text.as_bytes(), mode),
        (Action::Chmod(mode), _) => fs::set_permissions(p, fs::Permissions::from_mode(*mode)),
        (Action::Remove, Kind::Parent | Kind::Dir { .. }) if !fs::symlink_metadata(p)?.is_symlink() => fs::remove_dir(p),
        (Action::Remove, _) => fs::remove_file(p),
        (Action::RemoveAll, _) if fs::symlink_metadata(p)?.is_symlink() => fs::remove_file(p),
        (Action::RemoveAll, _) => fs::remove_dir_all(p),
        _ => Ok(()),
    }
}

/// Runs `systemctl args`; `Err` with what it said.
fn systemctl(args: &[&str]) -> Result<String, String> {
    let args: Vec<&str> = args.iter().copied().filter(|a| !a.is_empty()).collect();
    let out = Command::new("systemctl").args(&args).output().map_err(|e| format!("cannot run systemctl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("systemctl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// What systemd says about the unit now (asking changes nothing, so a dry run asks too).
fn unit_state() -> UnitState {
    let said = |verb: &str, want: &str| systemctl(&[verb, UNIT_NAME]).is_ok_and(|s| s == want);
    UnitState { enabled: said("is-enabled", "enabled"), active: said("is-active", "active") }
}

/// Whether to talk to systemd: asked, on the real root, and systemd is running there.
fn systemd_here(opts: &Options) -> bool {
    opts.systemd && opts.root == Path::new("/") && Path::new("/run/systemd/system").is_dir()
}

/// Prints `calls` and runs them unless dry.
fn run_systemctl(calls: &[[&str; 2]], dry: bool, out: &mut impl Write) -> Result<(), String> {
    for call in calls {
        let shown = call.iter().copied().filter(|a| !a.is_empty()).collect::<Vec<_>>().join(" ");
        let _ = writeln!(out, "{:<13} systemctl {shown}", if dry { "would run" } else { "run" });
        if !dry {
            systemctl(call)?;
        }
    }
    Ok(())
}

/// Prints each step and carries it out unless dry; refuses everything if any step is refused
/// or cannot be written.
fn carry_out(steps: &[Step], source: Option<&Source>, dry: bool, out: &mut impl Write) -> Result<usize, String> {
    let refused: Vec<String> = steps
        .iter()
        .filter_map(|s| if let Action::Refuse(why) = &s.action { Some(format!("{}: {why}", s.path.display())) } else { None })
        .collect();
    if !refused.is_empty() {
        return Err(format!("nothing was changed:\n  {}", refused.join("\n  ")));
    }
    let blocked = unwritable(steps);
    if !blocked.is_empty() && !dry {
        return Err(format!("cannot write these paths, so nothing was changed:\n  {}", blocked.join("\n  ")));
    }
    let mut changes = 0;
    for s in steps {
        if let Some(line) = describe(s, dry, source) {
            let _ = writeln!(out, "{line}");
        }
        if s.action.changes() {
            changes += 1;
            if !dry {
                apply(s, source).map_err(|e| format!("could not {} {}: {e}", verb(&s.action), s.path.display()))?;
            }
        }
    }
    Ok(changes)
}

/// `lookout install`; returns the exit code after printing every step to `out`.
pub fn install(opts: &Options, out: &mut impl Write) -> Result<i32, String> {
    let source = Source::read(opts.bin.as_deref())?;
    let steps = decide(items(&opts.root, opts.demo_checks), Some(&source), None)?;
    let systemd = systemd_here(opts);
    let before = if systemd { unit_state() } else { UnitState::default() };
    let changes = carry_out(&steps, Some(&source), opts.dry_run, out)?;
    let changed = |kind: fn(&Kind) -> bool| steps.iter().any(|s| kind(&s.kind) && s.action.changes());
    let mut calls = Vec::new();
    if systemd {
        calls = plan::install_systemctl(changed(|k| matches!(k, Kind::Owned { .. })), changed(|k| *k == Kind::Binary), before, UNIT_NAME);
        run_systemctl(&calls, opts.dry_run, out)?;
    }
    let total = changes + calls.len();
    let _ = match (total, opts.dry_run) {
        (0, _) => writeln!(out, "nothing to change: lookout is installed"),
        (n, true) => writeln!(out, "dry run: {n} changes, none made"),
        (n, false) => writeln!(out, "installed ({n} changes)"),
    };
    if opts.root == Path::new("/") && !systemd {
        let _ = writeln!(out, "no systemd here (or --no-systemd): start the agent with `mender-monitord` (or `lookout run`)");
    }
    if total > 0 && !opts.dry_run {
        let _ = writeln!(
            out,
            "next: mender-monitorctl create log crasher_app ERROR /root/crasher.log 5; mender-monitorctl enable log crasher_app"
        );
    }
    Ok(0)
}

/// `lookout uninstall`; returns the exit code after printing every step to `out`.
pub fn uninstall(opts: &Options, out: &mut impl Write) -> Result<i32, String> {
    let mut list = items(&opts.root, true);
    list.reverse();
    let steps = decide(list, None, Some(opts.purge))?;
    let systemd = systemd_here(opts);
    let mut calls = Vec::new();
    if systemd {
        calls = plan::uninstall_systemctl(unit_state(), UNIT_NAME);
        run_systemctl(&calls, opts.dry_run, out)?;
    }
    let changes = carry_out(&steps, None, opts.dry_run, out)?;
    let unit_removed = steps.iter().any(|s| matches!(s.kind, Kind::Owned { .. }) && s.action.changes());
    if systemd && unit_removed {
        run_systemctl(&[["daemon-reload", ""]], opts.dry_run, out)?;
        calls.push(["daemon-reload", ""]);
    }
    let total = changes + calls.len();
    let _ = match (total, opts.dry_run) {
        (0, _) => writeln!(out, "nothing to remove"),
        (n, true) => writeln!(out, "dry run: {n} changes, none made"),
        (n, false) => writeln!(out, "uninstalled ({n} changes)"),
    };
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_unit_is_the_yocto_layers() {
        let on_disk = fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/yocto-layer/meta-lookout/recipes-monitoring/lookout/files/mender-monitor.service"
        ))
        .unwrap();
        assert_eq!(on_disk, UNIT);
        assert!(UNIT.contains("ExecStart=/usr/bin/mender-monitord\n"), "the unit runs the link install makes");
    }

    #[test]
    fn demo_checks_are_valid_built_in_checks() {
        use crate::config::check::{BUILT_IN_SUBSYSTEMS, CheckId, parse_check};
        let in_dir: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/install/demo"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(in_dir.len(), DEMO_CHECKS.len(), "every demo/*.sh (the Yocto layer ships them all) is in DEMO_CHECKS");
        for (name, text) in DEMO_CHECKS {
            assert!(in_dir.iter().any(|f| f == name), "{name}");
            let id = CheckId::from_file_name(name).unwrap();
            assert!(BUILT_IN_SUBSYSTEMS.contains(&id.subsystem.as_str()), "{name}");
            let loaded = parse_check(&id, name, text);
            assert!(loaded.def.is_ok() && loaded.warnings.is_empty(), "{name}: {:?} {:?}", loaded.def.err(), loaded.warnings);
        }
    }

    /// Every long option the demo checks give journalctl is one it has (`--kernel` is not: the
    /// USB check's command exited at once, forever, on Debian 12). Checked against the
    /// journalctl on this machine, where there is one.
    #[test]
    fn demo_journalctl_options_are_journalctl_s() {
        let Ok(out) = std::process::Command::new("journalctl").arg("--help").output() else {
            eprintln!("skipped: no journalctl here");
            return;
        };
        let help = String::from_utf8_lossy(&out.stdout);
        for (name, text) in DEMO_CHECKS {
            let Some(line) = text.lines().find(|l| l.starts_with("LOG_FILE=\"@journalctl ")) else { continue };
            for opt in line.split_whitespace().filter(|w| w.starts_with("--")) {
                let opt = opt.split('=').next().unwrap_or(opt).trim_end_matches('"');
                let known = [' ', '=', '['].iter().any(|end| help.contains(&format!("{opt}{end}")));
                assert!(known, "{name}: journalctl has no {opt}");
            }
        }
    }

    #[test]
    fn the_enabled_link_of_an_available_check() {
        let p = Path::new("/r/etc/mender-monitor/monitor.d/available/log_x.sh");
        assert_eq!(enabled_link(p), Some(PathBuf::from("/r/etc/mender-monitor/monitor.d/enabled/log_x.sh")));
        assert_eq!(enabled_link(Path::new("/r/usr/share/mender-monitor/config/config.sh")), None);
    }
}
