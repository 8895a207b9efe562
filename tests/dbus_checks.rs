//! `dbus` checks against a real dbus-daemon: signals sent with the real `dbus-send`, the alerts
//! that arrive at the recording server, a bus that goes away and comes back, and rules that are
//! wrong in the file or refused by the bus.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

const POWER_RULE: &str = "type='signal',interface='com.example.Power',member='Changed'";

/// Sends a signal on `bus` with the real `dbus-send`.
fn send(bus: &Bus, member: &str, args: &[&str]) {
    let status = Command::new("dbus-send")
        .arg(format!("--bus={}", bus.address()))
        .args(["--type=signal", "/com/example/Power", member])
        .args(args)
        .status()
        .expect("dbus-send is installed (scripts/test installs dbus-daemon, which brings it)");
    assert!(status.success(), "dbus-send {member} failed");
}

fn status(root: &Root) -> Value {
    let out = root.ctl(&["status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The status entry of check `name`.
fn check_status(root: &Root, name: &str) -> Value {
    status(root)["checks"].as_array().into_iter().flatten().find(|c| c["name"] == name).cloned().unwrap_or_default()
}

/// Waits until check `name` has its match rule in place on the bus.
fn wait_watching(root: &Root, name: &str) {
    wait_until(&format!("check {name} to watch the bus"), || check_status(root, name)["source"]["state"] == "watching");
}

/// The agent, with the test's bus as the system bus.
fn agent(root: &Root, server: &AlertServer, bus: &Bus) -> Daemon {
    let mut cmd = Daemon::command(root, Some(server));
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", bus.address());
    Daemon::spawn(root, cmd)
}

fn matching(a: &Value) -> String {
    a["subject"]["details"]["line_matching"]["data"].as_str().unwrap_or_default().to_string()
}

fn context(a: &Value, key: &str) -> Vec<String> {
    a["subject"]["details"][key].as_array().into_iter().flatten().map(|l| l["data"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn a_watched_signal_raises_a_critical_and_silence_the_ok() {
    let root = Root::new("dbus-signal");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    root.ctl_ok(&["create", "dbus", "power", "upower", "", POWER_RULE, "2"]);
    root.ctl_ok(&["enable", "dbus", "power"]);
    let daemon = agent(&root, &server, &bus);
    wait_watching(&root, "power");
    // Not selected by the rule: the bus does not send it to the agent.
    send(&bus, "com.example.Power.Other", &["string:ignored"]);
    send(&bus, "com.example.Power.Changed", &["string:battery-low", "uint32:7"]);
    let alerts = server.wait_alerts(2);
    let (crit, ok) = (&alerts[0], &alerts[1]);
    let name = "D-Bus signal arrived on bus type=signal,interface=com.example.Power,member=Changed";
    assert_eq!(level_name(crit), ("CRITICAL".into(), name.into()));
    assert_eq!(crit["subject"]["name"], "upower");
    assert_eq!(crit["subject"]["type"], "dbus");
    let header = matching(crit);
    assert!(header.starts_with("signal time="), "{header}");
    assert!(header.ends_with("path=/com/example/Power; interface=com.example.Power; member=Changed"), "{header}");
    assert_eq!(context(crit, "lines_after"), ["   string \"battery-low\"", "   uint32 7"]);
    assert!(!serde_json::to_string(&alerts).unwrap().contains("ignored"), "{alerts:?}");
    // Two seconds without another such signal: the OK, under the same name.
    assert_eq!(level_name(ok), ("OK".into(), name.into()));
    let quiet = timestamp_ms(ok) - timestamp_ms(crit);
    assert!(quiet >= 1900, "the OK came {quiet} ms after the CRITICAL, before the 2 s expiry");
    let desc = ok["subject"]["details"]["description"].as_str().unwrap_or_default();
    assert!(desc.starts_with("no D-Bus signal matching type='signal',interface='com.example.Power'"), "{desc}");
    let s = check_status(&root, "power");
    assert_eq!(s["counters"]["signals"], 1, "{s}");
    drop(daemon);
}

#[test]
fn a_pattern_picks_signals_by_their_values_and_disabling_clears() {
    let root = Root::new("dbus-pattern");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    root.ctl_ok(&["create", "dbus", "battery", "upower", "level=(critical|low)", "type='signal',interface='com.example.Power'"]);
    root.ctl_ok(&["enable", "dbus", "battery"]);
    let daemon = agent(&root, &server, &bus);
    wait_watching(&root, "battery");
    send(&bus, "com.example.Power.Changed", &["string:level=normal"]);
    send(&bus, "com.example.Power.Changed", &["string:level=critical"]);
    let crit = server.wait_alerts(1)[0].clone();
    assert_eq!(crit["level"], "CRITICAL");
    assert_eq!(matching(&crit), "   string \"level=critical\"");
    // The lines before are the signals before, as `dbus-monitor | grep -B` would show them.
    let before = context(&crit, "lines_before");
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before[0].ends_with("member=Changed") && before[2].ends_with("member=Changed"), "{before:?}");
    assert_eq!(before[1], "   string \"level=normal\"");
    // No expiry (DEFAULT_DBUS_ALERT_EXPIRATION_SECONDS is 0): disabling the check clears it.
    root.ctl_ok(&["disable", "dbus", "battery"]);
    let alerts = server.wait_alerts(2);
    assert_eq!(alerts[1]["level"], "OK");
    assert_eq!(alerts[1]["name"], crit["name"]);
    assert!(alerts[1]["subject"]["details"]["description"].as_str().unwrap_or_default().ends_with("(check disabled)"));
    drop(daemon);
}

#[test]
fn without_a_rule_every_signal_counts_but_not_the_agents_own_name() {
    let root = Root::new("dbus-all");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    let out = root.ctl(&["create", "dbus", "all", "anything", "", ""]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("every D-Bus signal will raise an alert"));
    root.ctl_ok(&["enable", "dbus", "all"]);
    let daemon = agent(&root, &server, &bus);
    daemon.wait_log("every signal on the system bus will alert");
    wait_watching(&root, "all");
    send(&bus, "com.example.Power.Changed", &["string:x"]);
    let crit = server.wait_alerts(1)[0].clone();
    assert_eq!(crit["name"], "D-Bus signal arrived on bus system bus");
    // The bus tells every new connection its name (`NameAcquired`, sent to it alone): the one
    // about the agent's own connection is not news. What comes first is dbus-send's arrival
    // (`NameOwnerChanged`, broadcast before a monitor sees dbus-send's `NameAcquired`) or its
    // signal.
    let first = matching(&crit);
    assert!(!first.contains("NameAcquired"), "{first}");
    assert!(first.contains("member=NameOwnerChanged") || first.contains("member=Changed"), "{first}");
    drop(daemon);
}

#[test]
fn the_agent_follows_the_bus_through_a_restart() {
    let root = Root::new("dbus-restart");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    root.ctl_ok(&["create", "dbus", "power", "upower", "", POWER_RULE, "1"]);
    root.ctl_ok(&["enable", "dbus", "power"]);
    let daemon = agent(&root, &server, &bus);
    wait_watching(&root, "power");
    let socket = bus.socket.clone();
    drop(bus); // killed by its PID
    let _ = std::fs::remove_file(&socket);
    wait_until("the agent to notice", || check_status(&root, "power")["counters"]["disconnects"] == 1);
    let bus = Bus::start(&root);
    wait_watching(&root, "power");
    daemon.wait_log("watching D-Bus signals again");
    send(&bus, "com.example.Power.Changed", &["string:after-restart"]);
    let alerts = server.wait_alerts(1);
    assert_eq!(context(&alerts[0], "lines_after"), ["   string \"after-restart\""]);
    let s = check_status(&root, "power");
    assert!(s["counters"]["connects"].as_u64().unwrap_or(0) >= 2, "{s}");
    drop(daemon);
}

#[test]
fn a_wrong_rule_is_named_and_a_refused_one_does_not_stop_the_agent() {
    let root = Root::new("dbus-bad");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    // A typo: refused by the CLI, and a file with it is not enabled; both say where.
    let out = root.ctl(&["create", "dbus", "typo", "x", "", "type='signal',membr='Changed'"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key \"membr\""), "{}", String::from_utf8_lossy(&out.stderr));
    let file = root.available().join("dbus_typo.sh");
    std::fs::create_dir_all(root.available()).unwrap();
    std::fs::write(&file, "DBUS_NAME=x\nDBUS_PATTERN=\nDBUS_WATCH_EXPRESSION=\"type='signal',membr='Changed'\"\n").unwrap();
    let out = root.ctl(&["enable", "dbus", "typo"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("dbus_typo.sh:3: DBUS_WATCH_EXPRESSION: unknown key \"membr\""), "{said}");
    // Well-formed, but the bus refuses it (a sender that is no bus name): said, not retried.
    root.ctl_ok(&["create", "dbus", "refused", "x", "", "type='signal',sender='not a name'"]);
    root.ctl_ok(&["enable", "dbus", "refused"]);
    root.ctl_ok(&["create", "dbus", "power", "upower", "", POWER_RULE]);
    root.ctl_ok(&["enable", "dbus", "power"]);
    let daemon = agent(&root, &server, &bus);
    daemon.wait_log("check dbus refused: the bus refuses the match rule");
    wait_watching(&root, "power");
    let s = check_status(&root, "refused");
    assert!(s["source"]["state"].as_str().unwrap_or_default().contains("MatchRuleInvalid"), "{s}");
    assert_eq!(s["counters"]["connects"], 1, "{s}");
    send(&bus, "com.example.Power.Changed", &["string:still-working"]);
    let alerts = server.wait_alerts(1);
    assert_eq!(alerts[0]["subject"]["name"], "upower");
    drop(daemon);
}

#[test]
fn a_critical_and_its_expiry_survive_an_agent_restart() {
    let root = Root::new("dbus-restart-agent");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    root.ctl_ok(&["create", "dbus", "power", "upower", "", POWER_RULE, "3"]);
    root.ctl_ok(&["enable", "dbus", "power"]);
    let daemon = agent(&root, &server, &bus);
    wait_watching(&root, "power");
    send(&bus, "com.example.Power.Changed", &["string:low"]);
    let crit = server.wait_alerts(1)[0].clone();
    assert!(daemon.terminate().success());
    let daemon = agent(&root, &server, &bus);
    // Still CRITICAL after the restart: the OK comes 3 s after the signal, not never, and no
    // second CRITICAL is raised.
    let alerts = server.wait_alerts(2);
    assert_eq!(level_name(&alerts[1]), ("OK".into(), crit["name"].as_str().unwrap_or_default().to_string()));
    let quiet = timestamp_ms(&alerts[1]) - timestamp_ms(&crit);
    assert!(quiet >= 2900, "the OK came {quiet} ms after the CRITICAL");
    assert_eq!(check_status(&root, "power")["level"], "OK");
    drop(daemon);
}

/// Runs the real `dbus-send` on `bus` as the system bus, as Mender's tests do (`--system`).
fn dbus_send(bus: &Bus, args: &[&str]) -> String {
    let out = Command::new("dbus-send")
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .arg("--system")
        .args(args)
        .output()
        .expect("dbus-send is installed (scripts/test installs dbus-bin)");
    assert!(out.status.success(), "dbus-send {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a check sees once watching: its `mode` in `status`.
fn wait_mode(root: &Root, name: &str) -> String {
    wait_watching(root, name);
    check_status(root, name)["source"]["mode"].as_str().unwrap_or_default().to_string()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Mender's `test_dbus_bus_filter`: a signal addressed to one peer (`dbus-send --dest=...`) is
/// not broadcast, yet `dbus-monitor` sees it, and so must the check. So do method calls and
/// their returns, for rules that ask for them.
#[test]
fn a_monitor_sees_unicast_signals_calls_and_returns_like_dbus_monitor() {
    let root = Root::new("dbus-monitor");
    let server = AlertServer::start();
    let bus = Bus::start(&root);
    let _client = MenderClient::start(&root, &bus, Some(("jwt-1", "http://127.0.0.1:1")));
    let checks = [
        ("filter", "type='signal',interface='io.mender.Authentication1'"),
        ("calls", "type='method_call',interface='io.mender.Authentication1',member='GetJwtToken'"),
        ("returns", "type='method_return',sender='io.mender.AuthenticationManager'"),
    ];
    for (name, rule) in checks {
        root.ctl_ok(&["create", "dbus", name, name, "", rule]);
        root.ctl_ok(&["enable", "dbus", name]);
    }
    let daemon = agent(&root, &server, &bus);
    // The test runs as root in CI (the bus lets root monitor); as another user the open test
    // policy still lets it eavesdrop.
    let want = if is_root() { "monitor: " } else { "eavesdrop (BecomeMonitor refused: " };
    for (name, _) in checks {
        let mode = wait_mode(&root, name);
        assert!(mode.starts_with(want), "{name}: {mode}");
    }
    if is_root() {
        daemon.wait_log("check dbus filter: watching the bus as a monitor");
    }
    dbus_send(
        &bus,
        &["--dest=io.mender.AuthenticationManager", "/io/mender/AuthenticationManager", "io.mender.Authentication1.FetchJwtToken"],
    );
    let alert = |alerts: &[Value], check: &str| alerts.iter().find(|a| a["subject"]["name"] == check).cloned();
    let alerts = server.wait_for("the unicast signal's CRITICAL", |a| alert(a, "filter").is_some());
    let header = matching(&alert(&alerts, "filter").unwrap_or_default());
    assert!(header.starts_with("signal time="), "{header}");
    assert!(header.contains(" -> destination=io.mender.AuthenticationManager serial="), "{header}");
    assert!(header.ends_with("path=/io/mender/AuthenticationManager; interface=io.mender.Authentication1; member=FetchJwtToken"));
    let reply = dbus_send(
        &bus,
        &[
            "--print-reply",
            "--dest=io.mender.AuthenticationManager",
            "/io/mender/AuthenticationManager",
            "io.mender.Authentication1.GetJwtToken",
        ],
    );
    assert!(reply.contains("jwt-1"), "{reply}");
    let alerts = server.wait_for("the call's and the return's CRITICALs", |a| alert(a, "calls").is_some() && alert(a, "returns").is_some());
    let call = alert(&alerts, "calls").unwrap_or_default();
    let header = matching(&call);
    assert!(header.starts_with("method call time="), "{header}");
    assert!(header.ends_with("interface=io.mender.Authentication1; member=GetJwtToken"), "{header}");
    assert_eq!(call["name"], "D-Bus signal arrived on bus type=method_call,interface=io.mender.Authentication1,member=GetJwtToken");
    let ret = alert(&alerts, "returns").unwrap_or_default();
    assert!(matching(&ret).starts_with("method return time="), "{}", matching(&ret));
    assert!(matching(&ret).contains(" reply_serial="), "{}", matching(&ret));
    assert_eq!(context(&ret, "lines_after"), ["   string \"jwt-1\"", "   string \"http://127.0.0.1:1\""]);
    let s = check_status(&root, "calls");
    assert_eq!(s["counters"]["other_messages"], 1, "{s}");
    assert_eq!(server.wait_alerts(3).len(), 3, "one CRITICAL per check, nothing else");
    drop(daemon);
}

/// A bus whose policy refuses `BecomeMonitor`: the check falls back to an eavesdropping rule,
/// says so once in the log and in `status`, and still sees unicast signals where the policy
/// lets it eavesdrop; where it does not, broadcasts still arrive.
#[test]
fn a_refused_monitor_falls_back_to_eavesdropping_and_says_so() {
    for eavesdrop_allowed in [true, false] {
        let root = Root::new("dbus-no-monitor");
        let server = AlertServer::start();
        let deny = "<deny send_interface=\"org.freedesktop.DBus.Monitoring\"/>";
        let policy = if eavesdrop_allowed {
            format!("{}{deny}", Bus::OPEN_POLICY)
        } else {
            format!("<allow user=\"*\"/><allow own=\"*\"/><allow send_destination=\"*\"/><allow receive_sender=\"*\"/>{deny}")
        };
        let bus = Bus::start_with_policy(&root, &policy);
        root.ctl_ok(&["create", "dbus", "power", "upower", "member=Changed", "type='signal',interface='com.example.Power'"]);
        root.ctl_ok(&["enable", "dbus", "power"]);
        let daemon = agent(&root, &server, &bus);
        let mode = wait_mode(&root, "power");
        assert!(mode.starts_with("eavesdrop (BecomeMonitor refused: org.freedesktop.DBus.Error.AccessDenied"), "{mode}");
        assert!(mode.ends_with("messages between other peers arrive only where the bus's policy allows eavesdropping"), "{mode}");
        daemon.wait_log("check dbus power: watching in mode eavesdrop (BecomeMonitor refused");
        let table = String::from_utf8_lossy(&root.ctl(&["status"]).stdout).into_owned();
        assert!(table.contains("(watching, eavesdrop)"), "{table}");
        // A signal to the bus driver (a destination that always exists), then a broadcast.
        dbus_send(&bus, &["--dest=org.freedesktop.DBus", "/com/example/Power", "com.example.Power.Changed", "string:unicast"]);
        dbus_send(&bus, &["/com/example/Power", "com.example.Power.Changed", "string:broadcast"]);
        let crit = server.wait_alerts(1)[0].clone();
        // The match's own argument; the other signal may follow it among the after-lines (under
        // qemu both are often read at once).
        let after = context(&crit, "lines_after");
        let first = &after[..after.len().min(1)];
        if eavesdrop_allowed {
            assert_eq!(first, ["   string \"unicast\""], "{crit}");
            assert!(matching(&crit).contains("-> destination=org.freedesktop.DBus serial="), "{crit}");
        } else {
            assert_eq!(first, ["   string \"broadcast\""], "the policy keeps the unicast one from us: {crit}");
        }
        drop(daemon);
    }
}
