//! The local control verbs of `mender-monitorctl`: edit monitor.d the Mender way, validating
//! before writing, silent on success, one clear message on error.
//!
//! A running daemon follows monitor.d through inotify, so every change here applies at once.

pub mod check_config;
pub mod send_alert;
pub mod test_pattern;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::check::{self, CheckId, LogSource, ServiceType, parse_expiration, validate_check_name, validate_subsystem};
use crate::config::layout::Layout;
use crate::config::settings::Settings;
use crate::config::shell;
use crate::config::store;
use crate::detect::matcher::validate_pattern;

/// The layout under `root`, with `MONITOR_D_DIRECTORY` from its config.sh.
pub fn layout(root: &Path) -> Layout {
    let base = Layout::new(root);
    let (settings, _) = Settings::load(&base.config_sh());
    base.with_monitor_d(&settings.monitor_d)
}

/// The check a verb names on the command line: the subsystem and the name are validated here,
/// for every verb, before any path is made of them (`dockerevents` checks are `log` checks).
pub fn check_id(subsystem: &str, name: &str) -> Result<CheckId, String> {
    validate_subsystem(subsystem)?;
    validate_check_name(name)?;
    Ok(CheckId::new(if subsystem == "dockerevents" { "log" } else { subsystem }, name))
}

/// `arg` as text; a command-line argument that is not UTF-8 is an error naming it by `what`.
pub fn text<'a>(arg: &'a OsStr, what: &str) -> Result<&'a str, String> {
    arg.to_str().ok_or_else(|| format!("{what} {} is not valid UTF-8", shell::quote(arg.as_bytes())))
}

fn usage(subsystem: &str) -> &'static str {
    match subsystem {
        "log" => "create log <check> <pattern> <file|@command> [expiration]",
        "service" => "create service <name> <systemd|sysV>",
        "dbus" => "create dbus <check> <dbus-name> <pattern> <watch-expression> [expiration]",
        "dockerevents" => "create dockerevents <check> <container> <action> [expiration]",
        "program" => "create program <check> <command line> <interval> [timeout]",
        "connectivity" => "create connectivity <check> <http://URL | host:port> [interval] [timeout]",
        "diskusage" => "create diskusage <check> <mount point> <threshold %> [interval]",
        _ => "create <log|service|dbus|dockerevents|program|connectivity|diskusage> <check> ...",
    }
}

/// Takes the subsystem's arguments: `required` of them, then up to `optional` more.
fn take_args<'a>(subsystem: &str, args: &'a [OsString], required: usize, optional: usize) -> Result<&'a [OsString], String> {
    if args.len() < required {
        return Err(format!("missing argument; usage: {}", usage(subsystem)));
    }
    if args.len() > required + optional {
        let extra = shell::quote(args[required + optional].as_bytes());
        return Err(format!("unexpected argument {extra}; usage: {}", usage(subsystem)));
    }
    Ok(args)
}

fn expiration_arg(arg: Option<&OsString>) -> Result<Option<Vec<u8>>, String> {
    arg.map(|a| parse_expiration(text(a, "expiration")?).map(|s| s.to_string().into_bytes())).transpose()
}

/// A pattern argument: text that compiles.
fn pattern_arg(arg: &OsStr) -> Result<Vec<u8>, String> {
    let p = text(arg, "pattern")?;
    validate_pattern(p)?;
    Ok(p.as_bytes().to_vec())
}

/// `create <subsystem> <check> <args...>`. Arguments are bytes: a log file's path need not be
/// UTF-8; everything else must be text.
pub fn create(layout: &Layout, subsystem: &str, name: &str, args: &[OsString]) -> Result<(), String> {
    let id = check_id(subsystem, name)?;
    let vars = match subsystem {
        "log" => log_vars(name, take_args(subsystem, args, 2, 1)?)?,
        "service" => {
            let a = take_args(subsystem, args, 1, 0)?;
            let t = text(&a[0], "service type")?;
            let kind = ServiceType::parse(t).ok_or_else(|| format!("service type {t:?} is not systemd or sysV"))?;
            vec![("SERVICE_NAME", name.into()), ("SERVICE_TYPE", kind.as_str().into())]
        }
        "dbus" => dbus_vars(take_args(subsystem, args, 3, 1)?)?,
        "dockerevents" => docker_vars(name, take_args(subsystem, args, 2, 1)?)?,
        "program" => program_vars(take_args(subsystem, args, 2, 1)?)?,
        "connectivity" => connectivity_vars(take_args(subsystem, args, 1, 2)?)?,
        "diskusage" => diskusage_vars(take_args(subsystem, args, 2, 1)?)?,
        other => {
            return Err(format!(
                "cannot create checks of subsystem {other:?} (log, service, dbus, dockerevents, program, connectivity, diskusage); write monitor.d/available/{other}_{name}.sh by hand and enable it"
            ));
        }
    };
    let dir = layout.available();
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(id.file_name());
    store::write_atomically(&path, check::render(&vars).as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

type Vars = Vec<(&'static str, Vec<u8>)>;

fn log_vars(name: &str, a: &[OsString]) -> Result<Vars, String> {
    let pattern = pattern_arg(&a[0])?;
    let file = a[1].as_bytes();
    LogSource::parse(file)?;
    let mut vars = vec![("SERVICE_NAME", name.into()), ("LOG_PATTERN", pattern), ("LOG_FILE", file.to_vec())];
    if let Some(e) = expiration_arg(a.get(2))? {
        vars.push(("LOG_PATTERN_EXPIRATION", e));
    }
    Ok(vars)
}

fn dbus_vars(a: &[OsString]) -> Result<Vars, String> {
    let dbus_name = text(&a[0], "D-Bus name")?;
    let pattern = if a[1].is_empty() { Vec::new() } else { pattern_arg(&a[1])? };
    let watch = text(&a[2], "watch expression")?;
    if !watch.is_empty() {
        crate::dbus::rule::MatchRule::parse(watch).map_err(|e| format!("watch expression: {e}"))?;
    }
    if pattern.is_empty() && watch.is_empty() {
        eprintln!("warning: neither a pattern nor a watch expression: every D-Bus signal will raise an alert");
    }
    let mut vars = vec![("DBUS_NAME", dbus_name.into()), ("DBUS_PATTERN", pattern), ("DBUS_WATCH_EXPRESSION", watch.into())];
    if let Some(e) = expiration_arg(a.get(3))? {
        vars.push(("DBUS_ALERT_EXPIRATION", e));
    }
    Ok(vars)
}

fn docker_vars(name: &str, a: &[OsString]) -> Result<Vars, String> {
    let (container, action) = (text(&a[0], "container")?, text(&a[1], "action")?);
    let pattern = format!(".*container {action}.*name={container}.*");
    validate_pattern(&pattern).map_err(|e| format!("container or action makes {e}"))?;
    let mut vars = vec![("SERVICE_NAME", name.into()), ("LOG_PATTERN", pattern.into_bytes()), ("LOG_FILE", b"@docker events".to_vec())];
    if let Some(e) = expiration_arg(a.get(2))? {
        vars.push(("LOG_PATTERN_EXPIRATION", e));
    }
    vars.push(("LOG_ALERT_DESCRIPTION", format!("Docker container {container} {action}").into_bytes()));
    vars.push(("LOG_ALERT_DETAILS", b"Alert was raised due to:%line_matching".to_vec()));
    vars.push(("LOG_ALERT_STATUS", b"DOCKEREVENTS_CONTAINER_EVENT".to_vec()));
    vars.push(("LOG_ALERT_TYPE", b"docker_event".to_vec()));
    Ok(vars)
}

fn program_vars(a: &[OsString]) -> Result<Vars, String> {
    let command = text(&a[0], "command line")?;
    if command.trim().is_empty() {
        return Err("the command line is empty".into());
    }
    let seconds = |arg: &OsString, what: &str| -> Result<Vec<u8>, String> {
        let s = parse_expiration(text(arg, what)?).map_err(|e| format!("{what}: {e}"))?;
        if s == 0 {
            return Err(format!("{what} must be at least 1 second"));
        }
        Ok(s.to_string().into_bytes())
    };
    let mut vars = vec![("PROGRAM_COMMAND", command.into()), ("PROGRAM_INTERVAL", seconds(&a[1], "interval")?)];
    if let Some(t) = a.get(2) {
        vars.push(("PROGRAM_TIMEOUT", seconds(t, "timeout")?));
    }
    Ok(vars)
}

fn connectivity_vars(a: &[OsString]) -> Result<Vars, String> {
    let address = text(&a[0], "address")?.trim();
    crate::detect::connectivity::Target::parse(address)?;
    let mut vars = vec![("CONNECTIVITY_ADDRESS", address.into())];
    for (arg, what, key) in [(a.get(1), "interval", "CONNECTIVITY_INTERVAL"), (a.get(2), "timeout", "CONNECTIVITY_TIMEOUT")] {
        if let Some(arg) = arg {
            let s = parse_expiration(text(arg, what)?).map_err(|e| format!("{what}: {e}"))?;
            if s == 0 {
                return Err(format!("{what} must be at least 1 second"));
            }
            vars.push((key, s.to_string().into_bytes()));
        }
    }
    Ok(vars)
}

/// `<mount point> <threshold %> [interval]`: an absolute path (one that does not exist yet is
/// only a warning: a card may be mounted later), a percentage from 1 to 100, seconds.
fn diskusage_vars(a: &[OsString]) -> Result<Vars, String> {
    let path = text(&a[0], "mount point")?;
    if !path.starts_with('/') {
        return Err(format!("mount point {path:?} is not an absolute path"));
    }
    if !Path::new(path).exists() {
        eprintln!("warning: mount point {path} does not exist (yet): the check cannot measure it until it does");
    }
    let threshold = check::parse_percent(text(&a[1], "threshold")?).map_err(|e| format!("threshold: {e}"))?;
    let mut vars = vec![("DISKUSAGE_NAME", path.into()), ("DISKUSAGE_THRESHOLD", threshold.to_string().into_bytes())];
    if let Some(i) = a.get(2) {
        let s = parse_expiration(text(i, "interval")?).map_err(|e| format!("interval: {e}"))?;
        if s == 0 {
            return Err("interval must be at least 1 second".into());
        }
        vars.push(("DISKUSAGE_INTERVAL", s.to_string().into_bytes()));
    }
    Ok(vars)
}

fn absolute(p: &Path) -> io::Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()?.join(p))
}

/// `enable <subsystem> <check>`: validates the file, then links it into `enabled/` with an
/// absolute link as Mender does.
pub fn enable(layout: &Layout, subsystem: &str, name: &str) -> Result<(), String> {
    let id = check_id(subsystem, name)?;
    let available = absolute(&layout.available().join(id.file_name())).map_err(|e| e.to_string())?;
    if available.symlink_metadata().is_err() {
        return Err(format!("no such check: {subsystem} {name} ({} does not exist)", available.display()));
    }
    // Custom subsystems are not ours to judge, but their file is read as any other: a FIFO or
    // a device is refused here, not linked.
    if let Err(errors) = store::load(&id, &available).def {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(format!("not enabled, the check file has errors:\n{}", lines.join("\n")));
    }
    let dir = layout.enabled();
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let link = dir.join(id.file_name());
    if fs::read_link(&link).is_ok_and(|t| t == available) {
        return Ok(());
    }
    if link.symlink_metadata().is_ok() {
        fs::remove_file(&link).map_err(|e| format!("cannot replace {}: {e}", link.display()))?;
    }
    std::os::unix::fs::symlink(&available, &link).map_err(|e| format!("cannot create {}: {e}", link.display()))
}

/// `disable <subsystem> <check>`: removes the link; an error only if the check does not exist.
pub fn disable(layout: &Layout, subsystem: &str, name: &str) -> Result<(), String> {
    let id = check_id(subsystem, name)?;
    let link = layout.enabled().join(id.file_name());
    if link.symlink_metadata().is_ok() {
        return fs::remove_file(&link).map_err(|e| format!("cannot remove {}: {e}", link.display()));
    }
    if layout.available().join(id.file_name()).is_file() {
        return Ok(());
    }
    Err(format!("no such check: {subsystem} {name}"))
}

/// `delete <subsystem> <check>`: removes the file and, if enabled, its link.
pub fn delete(layout: &Layout, subsystem: &str, name: &str) -> Result<(), String> {
    let id = check_id(subsystem, name)?;
    let link = layout.enabled().join(id.file_name());
    let file = layout.available().join(id.file_name());
    let mut found = false;
    for p in [&link, &file] {
        if p.symlink_metadata().is_ok() {
            found = true;
            fs::remove_file(p).map_err(|e| format!("cannot remove {}: {e}", p.display()))?;
        }
    }
    if !found {
        return Err(format!("no such check: {subsystem} {name}"));
    }
    Ok(())
}

#[derive(Serialize)]
struct ListedCheck {
    subsystem: String,
    check: String,
    enabled: bool,
    file: String,
    /// Every variable's value as text (U+FFFD for bytes that are not UTF-8).
    settings: serde_json::Map<String, serde_json::Value>,
    /// The variables whose value is not UTF-8 (a log file's path), exactly, as bash quotes
    /// them (`$'\xff'`); absent when there are none.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    settings_quoted: serde_json::Map<String, serde_json::Value>,
    errors: Vec<String>,
    /// The settings in file order, for the table.
    #[serde(skip)]
    vars: Vec<(String, Vec<u8>)>,
}

/// What `list` says on a system with no checks: where it looked, and how to make one.
fn no_checks(layout: &Layout) -> String {
    format!(
        "no checks in {}\n\
         create one, then enable it (a running agent picks it up at once):\n  \
         mender-monitorctl create log crasher_app ERROR /root/crasher.log 5\n  \
         mender-monitorctl enable log crasher_app\n",
        layout.available().display()
    )
}

/// `list [--json]`: every check, enabled or not, with its settings and any problems.
pub fn list(layout: &Layout, json: bool) -> Result<String, String> {
    let entries = store::list(layout).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for e in entries {
        let loaded = store::load_entry(layout, &e);
        let mut errors: Vec<String> = match &loaded.def {
            Err(errs) => errs.iter().map(|x| x.to_string()).collect(),
            Ok(_) => Vec::new(),
        };
        errors.extend(loaded.warnings.iter().map(|w| format!("warning: {w}")));
        let text = |v: &[u8]| serde_json::Value::String(String::from_utf8_lossy(v).into_owned());
        let quoted = loaded.vars.iter().filter(|(_, v)| std::str::from_utf8(v).is_err());
        rows.push(ListedCheck {
            subsystem: e.id.subsystem.clone(),
            check: e.id.name.clone(),
            enabled: e.is_enabled,
            file: e.available.display().to_string(),
            settings: loaded.vars.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
            settings_quoted: quoted.map(|(k, v)| (k.clone(), serde_json::Value::String(shell::quote(v)))).collect(),
            errors,
            vars: loaded.vars,
        });
    }
    if json {
        let mut s = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        s.push('\n');
        return Ok(s);
    }
    let mut out = String::new();
    if rows.is_empty() {
        return Ok(no_checks(layout));
    }
    let w_sub = rows.iter().map(|r| r.subsystem.len()).max().unwrap_or(0).max("SUBSYSTEM".len());
    let w_chk = rows.iter().map(|r| r.check.len()).max().unwrap_or(0).max("CHECK".len());
    out.push_str(&format!("{:w_sub$}  {:w_chk$}  {:7}  SETTINGS\n", "SUBSYSTEM", "CHECK", "ENABLED"));
    for r in &rows {
        let settings: Vec<String> = r
            .vars
            .iter()
            .filter(|(k, v)| !(k == "SERVICE_NAME" && *v == r.check.as_bytes()))
            .map(|(k, v)| format!("{k}={}", shell::quote(v)))
            .collect();
        let enabled = if r.enabled { "yes" } else { "no" };
        out.push_str(&format!("{:w_sub$}  {:w_chk$}  {enabled:7}  {}\n", r.subsystem, r.check, settings.join(" ")));
        for e in &r.errors {
            out.push_str(&format!("{:w_sub$}  {:w_chk$}  {:7}  ! {e}\n", "", "", ""));
        }
    }
    out.push_str(&destinations_line(layout));
    Ok(out)
}

/// Where alerts go by config.sh: the Mender client's server (the default of
/// `mender-monitord`), and Alertmanager peers with the labels they get. The command line can
/// change it; a running agent's own `status` says what it does.
fn destinations_line(layout: &Layout) -> String {
    let (settings, _) = crate::config::settings::Settings::load(&layout.config_sh());
    let mut line = String::from("alerts go to: the Mender client's server");
    if !settings.alertmanager_urls.is_empty() {
        line.push_str(&format!(" and Alertmanager {} (ALERTMANAGER_URL)", settings.alertmanager_urls.join(" ")));
        if !settings.alert_labels.is_empty() {
            let labels: Vec<String> = settings.alert_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            line.push_str(&format!(", labels {}", labels.join(" ")));
        }
    }
    line.push_str(" (unless mender-monitord is given --server, --stdout or --alertmanager; `status` shows a running agent's)\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn create_enable_disable_delete() {
        let tmp = crate::testutil::TempDir::new("ctl");
        let l = layout(tmp.path());
        create(&l, "log", "crasher_app", &s(&["ERROR", "/root/crasher.log", "5"])).unwrap();
        let text = fs::read_to_string(l.available().join("log_crasher_app.sh")).unwrap();
        assert!(text.starts_with(check::HEADER));
        assert!(text.contains("LOG_PATTERN_EXPIRATION=5\n"));
        enable(&l, "log", "crasher_app").unwrap();
        let target = fs::read_link(l.enabled().join("log_crasher_app.sh")).unwrap();
        assert!(target.is_absolute() && target.ends_with("available/log_crasher_app.sh"));
        enable(&l, "log", "crasher_app").unwrap();
        let listed = list(&l, false).unwrap();
        assert!(listed.contains("log        crasher_app  yes      LOG_PATTERN=\"ERROR\""), "{listed}");
        disable(&l, "log", "crasher_app").unwrap();
        disable(&l, "log", "crasher_app").unwrap();
        assert!(disable(&l, "log", "nope").unwrap_err().contains("no such check"));
        enable(&l, "log", "crasher_app").unwrap();
        delete(&l, "log", "crasher_app").unwrap();
        assert!(!l.enabled().join("log_crasher_app.sh").exists());
        assert!(delete(&l, "log", "crasher_app").is_err());
        let empty = list(&l, false).unwrap();
        assert!(empty.starts_with(&format!("no checks in {}\n", l.available().display())), "{empty}");
        assert!(empty.contains("mender-monitorctl create log "), "{empty}");
        assert_eq!(list(&l, true).unwrap(), "[]\n");
    }

    #[test]
    fn list_says_where_alerts_go_by_config_sh() {
        let tmp = crate::testutil::TempDir::new("ctl");
        let l = layout(tmp.path());
        create(&l, "log", "x", &s(&["ERROR", "/f"])).unwrap();
        let table = list(&l, false).unwrap();
        assert!(table.ends_with("alerts go to: the Mender client's server (unless mender-monitord is given --server, --stdout or --alertmanager; `status` shows a running agent's)\n"), "{table}");
        std::fs::create_dir_all(l.config_sh().parent().unwrap()).unwrap();
        std::fs::write(l.config_sh(), "ALERTMANAGER_URL=\"http://a:9093 http://b:9093\"\nALERT_LABELS=\"site=plant-4\"\n").unwrap();
        let table = list(&l, false).unwrap();
        assert!(
            table.contains(
                "the Mender client's server and Alertmanager http://a:9093 http://b:9093 (ALERTMANAGER_URL), labels site=plant-4 ("
            ),
            "{table}"
        );
        // JSON stays the list of checks alone.
        let json: serde_json::Value = serde_json::from_str(&list(&l, true).unwrap()).unwrap();
        assert_eq!(json.as_array().map(|a| a.len()), Some(1));
    }

    #[test]
    fn create_rejects_bad_input_with_a_reason() {
        let tmp = crate::testutil::TempDir::new("ctl");
        let l = layout(tmp.path());
        let e = create(&l, "log", "x", &s(&["([bad", "/f"])).unwrap_err();
        assert!(e.contains("invalid pattern"), "{e}");
        assert!(create(&l, "log", "x", &s(&["ERROR"])).unwrap_err().contains("missing argument"));
        assert!(create(&l, "log", "x", &s(&["ERROR", "/f", "soon"])).unwrap_err().contains("expiration"));
        assert!(create(&l, "log", "x", &s(&["ERROR", "/f", "5", "extra"])).unwrap_err().contains("unexpected argument"));
        assert!(create(&l, "log", "x", &s(&["ERROR", "relative.log"])).unwrap_err().contains("absolute"));
        assert!(create(&l, "service", "x", &s(&["upstart"])).unwrap_err().contains("systemd or sysV"));
        assert!(create(&l, "log", "a/b", &s(&["E", "/f"])).is_err());
        assert!(create(&l, "nosuch", "x", &s(&[])).is_err());
        assert!(enable(&l, "log", "x").unwrap_err().contains("no such check"));
        assert!(!l.available().join("log_x.sh").exists());
    }

    #[test]
    fn dockerevents_is_a_log_check() {
        let tmp = crate::testutil::TempDir::new("ctl");
        let l = layout(tmp.path());
        create(&l, "dockerevents", "scanner_kill", &s(&["scanner", "kill", "16"])).unwrap();
        let text = fs::read_to_string(l.available().join("log_scanner_kill.sh")).unwrap();
        assert!(text.contains("LOG_PATTERN=\".*container kill.*name=scanner.*\"\n"), "{text}");
        assert!(text.contains("LOG_FILE=\"@docker events\"\n"));
        assert!(text.contains("LOG_ALERT_DESCRIPTION=\"Docker container scanner kill\"\n"));
        enable(&l, "dockerevents", "scanner_kill").unwrap();
        assert!(l.enabled().join("log_scanner_kill.sh").exists());
    }

    #[test]
    fn create_diskusage_validates_its_arguments() {
        let tmp = crate::testutil::TempDir::new("ctl");
        let l = layout(tmp.path());
        create(&l, "diskusage", "root_space", &s(&["/", "75%", "5m"])).unwrap();
        let text = fs::read_to_string(l.available().join("diskusage_root_space.sh")).unwrap();
        assert!(text.ends_with("DISKUSAGE_NAME=\"/\"\nDISKUSAGE_THRESHOLD=75\nDISKUSAGE_INTERVAL=300\n"), "{text}");
        enable(&l, "diskusage", "root_space").unwrap();
        let err = |args: &[&str]| create(&l, "diskusage", "x", &s(args)).unwrap_err();
        assert!(err(&["/"]).starts_with("missing argument; usage: create diskusage <check> <mount point> <threshold %>"));
        assert_eq!(err(&["data", "75"]), "mount point \"data\" is not an absolute path");
        assert_eq!(err(&["/", "0"]), "threshold: \"0\" is not a percentage from 1 to 100");
        assert_eq!(err(&["/", "lots"]), "threshold: \"lots\" is not a percentage from 1 to 100");
        assert!(err(&["/", "75", "0"]).starts_with("interval must be at least 1 second"));
        assert!(err(&["/", "75", "soon"]).starts_with("interval: "));
        assert!(err(&["/", "75", "1", "x"]).starts_with("unexpected argument"));
        assert!(!l.available().join("diskusage_x.sh").exists());
    }

    #[test]
    fn enable_refuses_a_broken_file_and_names_the_line() {
        let tmp = crate::testutil::TempDir::new("ctl");
        let l = layout(tmp.path());
        fs::create_dir_all(l.available()).unwrap();
        fs::write(l.available().join("log_hand.sh"), "LOG_PATTERN=\"ok\"\nLOG_FILE=\n").unwrap();
        let e = enable(&l, "log", "hand").unwrap_err();
        assert!(e.contains("LOG_FILE is missing or empty"), "{e}");
        // Custom subsystems are not ours to judge.
        fs::write(l.available().join("backup_root.sh"), "BACKUP_THRESHOLD=75\n").unwrap();
        enable(&l, "backup", "root").unwrap();
        let json = list(&l, true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["subsystem"], "backup");
        assert_eq!(v[0]["enabled"], true);
        assert_eq!(v[0]["settings"]["BACKUP_THRESHOLD"], "75");
        assert_eq!(v[1]["enabled"], false);
        assert!(v[1]["errors"][0].as_str().unwrap().contains("log_hand.sh"));
    }
}
