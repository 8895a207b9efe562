//! Hostile input on the command line: check names and patterns with quotes, `$(...)`,
//! backticks, newlines, `../`, bytes that are not UTF-8, a leading `-`, and the two bytes bash
//! mangles after a backslash. Each either round-trips exactly through `create` → file → bash →
//! `list --json` → the daemon's alert, or is refused with a message naming the argument; nothing
//! is ever executed. Also: verbs that take a name never reach outside monitor.d, verbs never
//! block on a FIFO, and the CLI says why no daemon answers.

mod common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Runs `cmd` and returns its output; a run longer than `PATIENCE` (a verb blocked on a FIFO)
/// is killed and fails the test instead of hanging it.
fn within_patience(cmd: &mut Command, dir: &Path) -> Output {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (out, err) = (dir.join(format!("cli-{n}.out")), dir.join(format!("cli-{n}.err")));
    let mut child =
        cmd.stdin(Stdio::null()).stdout(fs::File::create(&out).unwrap()).stderr(fs::File::create(&err).unwrap()).spawn().unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: fs::read(out).unwrap(), stderr: fs::read(err).unwrap() }
}

/// `lookout --root ROOT ARGS...` with arguments as bytes.
fn ctl(root: &Root, args: &[&OsStr]) -> Output {
    let mut cmd = command_for(&bin());
    cmd.arg("--root").arg(root.path()).args(args);
    within_patience(&mut cmd, root.path())
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn bytes(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fails_naming(out: &Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    assert!(stderr(out).contains(needle), "expected {needle:?} in: {}", stderr(out));
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
}

/// What bash makes of `var` in `file`: `source` it, print the variable.
fn bash_value(file: &Path, var: &str) -> Vec<u8> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source \"$1\" && printf %s \"${var}\""))
        .arg("bash")
        .arg(file)
        .env_clear()
        .output()
        .expect("bash");
    assert!(out.status.success(), "bash: {}", stderr(&out));
    out.stdout
}

fn list_json(root: &Root) -> Vec<Value> {
    let out = ctl(root, &[os("list"), os("--json")]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

#[test]
fn enable_disable_delete_validate_names_as_create_does() {
    let root = Root::new("hostile-names");
    // monitor.d/available is four levels below the root: this "subsystem" leads back out.
    let victim = root.path().join("victim/victim_x.sh");
    fs::create_dir_all(victim.parent().unwrap()).unwrap();
    fs::write(&victim, "precious\n").unwrap();
    root.ctl_ok(&["create", "log", "x", "ERROR", "/var/log/x.log"]);
    for verb in ["enable", "disable", "delete"] {
        fails_naming(
            &ctl(&root, &[os(verb), os("../../../../victim/victim"), os("x")]),
            1,
            "the subsystem \"../../../../victim/victim\" contains '.'",
        );
        assert_eq!(fs::read(&victim).unwrap(), b"precious\n", "{verb} left the file outside monitor.d alone");
        for (name, why) in
            [("../x", "may not start with '.'"), ("a/b", "contains '/'"), ("", "the check name is empty"), ("a b", "contains ' '")]
        {
            fails_naming(&ctl(&root, &[os(verb), os("log"), os("--"), os(name)]), 1, why);
        }
        fails_naming(&ctl(&root, &[os(verb), os("my_sub"), os("x")]), 1, "the subsystem \"my_sub\" contains '_'");
        fails_naming(&ctl(&root, &[os(verb), os("log"), os("--"), os("-x")]), 1, "the check name \"-x\" may not start with '.' or '-'");
    }
    assert!(root.available().join("log_x.sh").exists());
}

#[test]
fn arguments_that_are_not_utf8_are_errors_naming_them() {
    let root = Root::new("hostile-utf8");
    let ff = bytes(b"\xff");
    fails_naming(&ctl(&root, &[os("list"), ff]), 2, "Unrecognized argument: $'\\xff'");
    fails_naming(&ctl(&root, &[os("create"), os("log"), ff, os("ERROR"), os("/x.log")]), 1, "check name $'\\xff' is not valid UTF-8");
    fails_naming(
        &ctl(&root, &[os("create"), os("log"), os("x"), bytes(b"ERR\xffOR"), os("/x.log")]),
        1,
        "pattern \"ERR\"$'\\xff'\"OR\" is not valid UTF-8",
    );
    fails_naming(&ctl(&root, &[os("create"), os("log"), os("x"), os("E"), os("/x.log"), ff]), 1, "expiration $'\\xff' is not valid UTF-8");
    fails_naming(&ctl(&root, &[os("create"), os("service"), os("x"), ff]), 1, "service type $'\\xff' is not valid UTF-8");
    fails_naming(&ctl(&root, &[os("create"), os("log"), os("x"), os("E"), bytes(b"@cmd \xff")]), 1, "is a command that is not valid UTF-8");
    fails_naming(&ctl(&root, &[os("enable"), ff, os("x")]), 1, "subsystem $'\\xff' is not valid UTF-8");
    fails_naming(&ctl(&root, &[os("delete"), os("log"), ff]), 1, "check name $'\\xff' is not valid UTF-8");
    fails_naming(&ctl(&root, &[os("test-pattern"), ff, os("-")]), 1, "pattern $'\\xff' is not valid UTF-8");
    fails_naming(&ctl(&root, &[os("run"), os("--server"), ff]), 2, "--server $'\\xff' is not valid UTF-8");
    assert!(!root.available().exists(), "nothing was written");
    // A root prefix is a path: bytes are fine.
    let odd = root.path().join(OsStr::from_bytes(b"r\xfe"));
    let mut cmd = command_for(&bin());
    cmd.arg("--root").arg(&odd).args(["create", "log", "x", "E", "/x.log"]);
    let out = within_patience(&mut cmd, root.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(odd.join("etc/mender-monitor/monitor.d/available/log_x.sh").exists());
}

#[test]
fn a_log_path_that_is_not_utf8_round_trips_to_the_file_watched() {
    let root = Root::new("hostile-path");
    let server = AlertServer::start();
    let mut raw = root.log("app-").into_os_string().into_vec();
    raw.extend_from_slice(b"\xff\xfe.log");
    let log = PathBuf::from(OsString::from_vec(raw.clone()));
    // The name a lossy conversion would watch instead.
    let decoy = root.log("app-\u{fffd}\u{fffd}.log");
    let out = ctl(&root, &[os("create"), os("log"), os("bin"), os("ERROR"), log.as_os_str(), os("5")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = root.available().join("log_bin.sh");
    let text = fs::read_to_string(&file).expect("the check file is text");
    let quoted = format!("\"{}/logs/app-\"$'\\xff\\xfe'\".log\"", root.path().display());
    assert!(text.contains(&format!("\nLOG_FILE={quoted}\n")), "{text}");
    assert_eq!(bash_value(&file, "LOG_FILE"), raw, "bash reads the path back exactly");
    let listed = &list_json(&root)[0];
    assert_eq!(listed["settings_quoted"]["LOG_FILE"], quoted.as_str());
    assert_eq!(listed["settings"]["LOG_FILE"], decoy.to_str().unwrap());
    assert!(listed["errors"].as_array().unwrap().is_empty(), "{listed}");
    let table = ctl(&root, &[os("list")]);
    assert!(String::from_utf8_lossy(&table.stdout).contains(&format!("LOG_FILE={quoted}")));
    root.ctl_ok(&["enable", "log", "bin"]);
    let daemon = Daemon::start(&root, Some(&server));
    append(&decoy, b"ERROR in the decoy\n");
    append(&log, b"ERROR in the real one\n");
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["subject"]["details"]["line_matching"]["data"], "ERROR in the real one");
    assert!(daemon.terminate().success());
}

/// Patterns that compile, each with a line only it matches. Together they hold quotes, `$(...)`,
/// backticks, a newline, `../`, a leading `-`, a trailing backslash, and backslash-DEL and
/// backslash-0x01, which bash read back wrongly from the double quotes `create` wrote.
fn hostile_patterns(proof: &Path) -> Vec<(String, String)> {
    let p = proof.display();
    vec![
        ("it's \"quoted\" ERRA".into(), "it's \"quoted\" ERRA".into()),
        (format!("\\$\\(touch {p}\\)"), format!("$(touch {p})")),
        (format!("ERRB|$(touch {p})"), "ERRB".into()),
        (format!("ERRC|`touch {p}`"), "ERRC".into()),
        ("ERRD|a\nb".into(), "ERRD".into()),
        ("../../ERRE".into(), "../../ERRE".into()),
        ("-ERRF".into(), "-ERRF".into()),
        ("ERRG\\\\".into(), "ERRG\\".into()),
        ("ERRH;rm -rf x;\\$\\{HOME\\}\\$HOME '\"'\"'".into(), "ERRH;rm -rf x;${HOME}$HOME '\"'\"'".into()),
        ("\\\\\u{7f}\u{7f} ERRI".into(), "\\\u{7f}\u{7f} ERRI".into()),
        ("ERRJ\u{1}\\\\\u{1}".into(), "ERRJ\u{1}\\\u{1}".into()),
        ("ERRK é ü \t tab".into(), "ERRK é ü \t tab".into()),
    ]
}

#[test]
fn hostile_patterns_round_trip_exactly_and_nothing_runs() {
    let root = Root::new("hostile-patterns");
    let server = AlertServer::start();
    let log = root.log("app.log");
    let proof = root.path().join("proof");
    let patterns = hostile_patterns(&proof);
    for (i, (pattern, _)) in patterns.iter().enumerate() {
        let check = format!("c{i}");
        let out = ctl(&root, &[os("create"), os("log"), os(&check), os("--"), os(pattern), log.as_os_str()]);
        assert!(out.status.success(), "{pattern:?}: {}", stderr(&out));
        let file = root.available().join(format!("log_{check}.sh"));
        assert_eq!(String::from_utf8_lossy(&bash_value(&file, "LOG_PATTERN")), *pattern, "bash reads {file:?} back");
        root.ctl_ok(&["enable", "log", &check]);
    }
    let listed = list_json(&root);
    for (i, (pattern, _)) in patterns.iter().enumerate() {
        let row = listed.iter().find(|r| r["check"] == format!("c{i}")).unwrap();
        assert_eq!(row["settings"]["LOG_PATTERN"], pattern.as_str());
        assert!(row["errors"].as_array().unwrap().is_empty(), "{row}");
    }
    let daemon = Daemon::start(&root, Some(&server));
    let text: String = patterns.iter().map(|(_, line)| format!("{line}\n")).collect();
    append(&log, text.as_bytes());
    let alerts = server.wait_for("a CRITICAL from every check", |a| a.len() >= patterns.len());
    for (i, (pattern, line)) in patterns.iter().enumerate() {
        let a = alerts.iter().find(|a| a["subject"]["name"] == format!("c{i}")).unwrap_or_else(|| panic!("no alert for {pattern:?}"));
        assert_eq!(a["name"], format!("Log file contains {pattern}"));
        assert_eq!(a["subject"]["details"]["description"], format!("{pattern} present in {}", log.display()));
        assert_eq!(a["subject"]["details"]["line_matching"]["data"], line.as_str(), "{pattern:?}");
    }
    assert!(daemon.terminate().success());
    assert!(!proof.exists(), "a payload ran");
}

#[test]
fn hostile_check_names_are_refused_naming_the_argument() {
    let root = Root::new("hostile-check-names");
    let proof = root.path().join("proof");
    let p = proof.display();
    for name in [
        "it's".to_string(),
        "a\"b".into(),
        format!("$(touch {p})"),
        format!("`touch {p}`"),
        "a\nb".into(),
        "../../x".into(),
        "-x".into(),
        "x;y".into(),
    ] {
        let out = ctl(&root, &[os("create"), os("log"), os("--"), os(&name), os("ERROR"), os("/x.log")]);
        fails_naming(&out, 1, "the check name ");
    }
    fails_naming(&ctl(&root, &[os("create"), os("log"), bytes(b"n\xff"), os("ERROR"), os("/x.log")]), 1, "check name \"n\"$'\\xff'");
    assert!(!root.available().exists() || fs::read_dir(root.available()).unwrap().next().is_none(), "nothing was written");
    assert!(!proof.exists());
}

#[test]
fn verbs_never_block_on_a_fifo_or_read_a_device() {
    let root = Root::new("hostile-verbs");
    root.ctl_ok(&["create", "log", "ok", "ERROR", "/x.log"]);
    let fifo = root.available().join("log_fifo.sh");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.available().join("log_zero.sh")).unwrap();
    let out = ctl(&root, &[os("list")]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("log_fifo.sh: is a FIFO, not a regular file; not read"), "{table}");
    assert!(table.contains("log_zero.sh: is a symbolic link, not a regular file; not read"), "{table}");
    fails_naming(&ctl(&root, &[os("enable"), os("log"), os("fifo")]), 1, "log_fifo.sh: is a FIFO");
    let out = ctl(&root, &[os("check-config")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("log_fifo.sh: is a FIFO"));
    // config.sh, read by every verb for MONITOR_D_DIRECTORY.
    fs::create_dir_all(root.config_sh().parent().unwrap()).unwrap();
    nix::unistd::mkfifo(&root.config_sh(), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let out = ctl(&root, &[os("check-config")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("config.sh: is a FIFO, not a regular file; not read; using defaults"));
    let out = ctl(&root, &[os("list"), os("--json")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // test-pattern reads a FIFO or stdin on purpose.
    let mut cmd = command_for(&bin());
    cmd.args(["--root"]).arg(root.path()).args(["test-pattern", "ERROR", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"a\nERROR b\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("2:ERROR b\n"));
}

#[test]
fn the_cli_says_why_no_daemon_answers() {
    let root = Root::new("hostile-no-daemon");
    let out = ctl(&root, &[os("status")]);
    fails_naming(&out, 3, "no lookout daemon answers on ");
    assert!(stderr(&out).contains("the socket does not exist"), "{}", stderr(&out));
    let daemon = Daemon::start(&root, None);
    // Not root: the socket is 0600, and that is what the user must be told.
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    if let Some(r) = runner() {
        cmd.arg(r);
    }
    cmd.arg(bin()).arg("--root").arg(root.path()).arg("status");
    fails_naming(&within_patience(&mut cmd, root.path()), 1, "permission denied on ");
    // A daemon that does not answer (stopped here; also one blocked at start) is a timeout.
    daemon.signal(nix::sys::signal::Signal::SIGSTOP);
    let out = ctl(&root, &[os("status")]);
    daemon.signal(nix::sys::signal::Signal::SIGCONT);
    fails_naming(&out, 3, "no answer from the lookout daemon on ");
    assert!(stderr(&out).contains("within 10 s"), "{}", stderr(&out));
    assert!(daemon.terminate().success());
}
