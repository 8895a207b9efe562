//! The command line: argh types, and dispatch on the name the binary was started as
//! (`lookout`, `mender-monitorctl` or `mender-monitord`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use argh::FromArgs;

use std::time::Duration;

use crate::config::layout::Layout;
use crate::control::{self, client};
use crate::ctl;
use crate::reactor::{self, Destination, Destinations};

#[derive(FromArgs, Debug)]
/// lookout: a monitoring agent for embedded Linux, compatible with Mender Monitor.
#[argh(
    example = "lookout install\nmender-monitorctl create log crasher_app ERROR /root/crasher.log 5\nmender-monitorctl enable log crasher_app\nmender-monitorctl list --json\nlookout --root /tmp/demo run --stdout",
    note = "Invoked as mender-monitorctl it takes the same verbs; invoked as mender-monitord it is the daemon (`lookout run`).\nDevice paths (/etc/mender-monitor, /usr/share/mender-monitor, /var/lib/mender-monitor) take the --root prefix, or LOOKOUT_ROOT.",
    error_code(1, "an error (the message names the argument, file or line)"),
    error_code(2, "the command line could not be parsed"),
    error_code(3, "status, reload: no daemon answers on the control socket")
)]
pub struct Cli {
    /// prefix for every device path (default: $LOOKOUT_ROOT, else /)
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    /// the verb
    #[argh(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
/// The verbs.
pub enum Cmd {
    /// create
    Create(CreateCmd),
    /// enable
    Enable(EnableCmd),
    /// disable
    Disable(DisableCmd),
    /// delete
    Delete(DeleteCmd),
    /// list
    List(ListCmd),
    /// version
    Version(VersionCmd),
    /// run
    Run(RunCmd),
    /// status
    Status(StatusCmd),
    /// reload
    Reload(ReloadCmd),
    /// test-pattern
    TestPattern(TestPatternCmd),
    /// check-config
    CheckConfig(CheckConfigCmd),
    /// send-alert
    SendAlert(SendAlertCmd),
    /// install
    Install(InstallCmd),
    /// uninstall
    Uninstall(UninstallCmd),
}

#[derive(FromArgs, Debug)]
/// define a check (writes monitor.d/available/<subsystem>_<check>.sh):
///   create log <check> <pattern> <file|@command> [expiration]
///   create service <name> <systemd|sysV>
///   create dbus <check> <dbus-name> <pattern> <watch-expression> [expiration]
///   create dockerevents <check> <container> <action> [expiration]
///   create program <check> <command line> <interval> [timeout]
///   create connectivity <check> <http://URL | host:port> [interval] [timeout]
///   create diskusage <check> <mount point> <threshold %> [interval]
/// expiration, interval, timeout: seconds, or with a unit (90s, 10m, 1h, 1d). A pattern that
/// starts with '-' goes after `--`. A program's exit status 0/1/2/3 is OK/WARNING/CRITICAL/
/// UNKNOWN; WARNING and UNKNOWN raise CRITICAL unless the check file sets
/// PROGRAM_WARNING_LEVEL or PROGRAM_UNKNOWN_LEVEL (CRITICAL, WARNING or OK). A dbus check sees
/// what dbus-monitor sees: as root, messages between other peers too (`status` shows its mode:
/// monitor, eavesdrop or broadcast only). A connectivity check sends an HTTP HEAD (a status
/// below 500 answers; https:// is a TCP connect to the port, no TLS) or connects to host:port
/// every interval (default 60 s, timeout 10 s); CRITICAL after CONNECTIVITY_FAILURES (3) failures
/// in a row, or at once when a link, route or address goes away and the probe then fails. A
/// diskusage check raises a CRITICAL when space or inode use of the mount point is above the
/// threshold, its OK at or below the threshold minus DISKUSAGE_MARGIN (default 5); it samples
/// every 60 s unless an interval is given.
#[argh(subcommand, name = "create", help_triggers("-h", "--help"))]
pub struct CreateCmd {
    /// log, service, dbus, dockerevents, program, connectivity or diskusage
    #[argh(positional)]
    pub subsystem: String,
    /// the check's name (for service: the service's name)
    #[argh(positional)]
    pub check: String,
    /// the subsystem's arguments
    #[argh(positional, greedy)]
    pub args: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// enable a check: links monitor.d/enabled/<file> to monitor.d/available/<file>
#[argh(subcommand, name = "enable", help_triggers("-h", "--help"))]
pub struct EnableCmd {
    /// the check's subsystem
    #[argh(positional)]
    pub subsystem: String,
    /// the check's name
    #[argh(positional)]
    pub check: String,
    /// ignored (accepted as Mender does)
    #[argh(positional, greedy)]
    pub extra: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// disable a check: removes its link in monitor.d/enabled
#[argh(subcommand, name = "disable", help_triggers("-h", "--help"))]
pub struct DisableCmd {
    /// the check's subsystem
    #[argh(positional)]
    pub subsystem: String,
    /// the check's name
    #[argh(positional)]
    pub check: String,
    /// ignored (accepted as Mender does)
    #[argh(positional, greedy)]
    pub extra: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// delete a check: removes its file (and its link if enabled)
#[argh(subcommand, name = "delete", help_triggers("-h", "--help"))]
pub struct DeleteCmd {
    /// the check's subsystem
    #[argh(positional)]
    pub subsystem: String,
    /// the check's name
    #[argh(positional)]
    pub check: String,
    /// ignored (accepted as Mender does: `delete service countdown systemd`)
    #[argh(positional, greedy)]
    pub extra: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// list every check: subsystem, name, enabled or not, settings
#[argh(subcommand, name = "list")]
pub struct ListCmd {
    /// print JSON instead of a table
    #[argh(switch)]
    pub json: bool,
}

#[derive(FromArgs, Debug)]
/// print the version
#[argh(subcommand, name = "version")]
pub struct VersionCmd {}

#[derive(FromArgs, Debug)]
/// run the daemon (what mender-monitord does): follow the enabled checks, send alerts
#[argh(
    subcommand,
    name = "run",
    note = "Without --server, --stdout or --alertmanager, alerts go to the server the Mender client names, with its JWT (io.mender.AuthenticationManager on the system bus). --alertmanager adds Prometheus Alertmanager (each URL a peer of one cluster, each gets every alert) to --server or --stdout; alone, alerts go to Alertmanager only. Without --alertmanager, config.sh's ALERTMANAGER_URL adds its peers. Every destination has its own cursor over the one spool: one that is down holds up no other. Alerts are spooled in the state directory (/var/lib/mender-monitor/spool) until delivered."
)]
pub struct RunCmd {
    /// server base URL for alerts (e.g. http://127.0.0.1:8080), instead of the Mender client's
    #[argh(option)]
    pub server: Option<String>,
    /// device JWT sent as `Authorization: Bearer` with --server
    #[argh(option)]
    pub token: Option<String>,
    /// print alerts on stdout as JSON lines (a local sink: no server)
    #[argh(switch)]
    pub stdout: bool,
    /// a Prometheus Alertmanager base URL (e.g. http://alertmanager:9093); repeat for the peers
    /// of a cluster
    #[argh(option)]
    pub alertmanager: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// show what the running daemon is doing: every check (source, position, level, last match,
/// expiry, counters), the uplink (queue, last delivery, last error, backoff) and the agent's
/// counters. Exit status 3 if no daemon answers.
#[argh(subcommand, name = "status")]
pub struct StatusCmd {
    /// print JSON instead of a table
    #[argh(switch)]
    pub json: bool,
}

#[derive(FromArgs, Debug)]
/// send one alert by hand, as Mender's monitor_send_alert does (e.g. the OK that cleans an
/// alert nobody else clears):
///   send-alert OK "Log file contains USB disconnect" "cleared by hand" log_usb LOGCONTAINS log
/// LEVEL is OK, CRITICAL or WARNING. The optional LOG_PATTERN LOG_FILE LINES_BEFORE
/// LINE_MATCHING LINES_AFTER are log context: lines separated by newlines, each optionally
/// `<number>:<text>` as `grep -n` prints them. The alert goes into the daemon's inbox under the
/// state directory; a running daemon spools it at once (exit 0 when it is on disk), otherwise
/// it leaves when the daemon starts (a note on stderr, exit 0).
#[argh(subcommand, name = "send-alert", help_triggers("-h", "--help"))]
pub struct SendAlertCmd {
    /// OK, CRITICAL or WARNING
    #[argh(positional)]
    pub level: String,
    /// the alert's name (the OK must repeat the CRITICAL's)
    #[argh(positional)]
    pub name: String,
    /// the description (details.description)
    #[argh(positional)]
    pub description: String,
    /// subject.name
    #[argh(positional)]
    pub subject_name: String,
    /// subject.status
    #[argh(positional)]
    pub status: String,
    /// subject.type
    #[argh(positional, arg_name = "type")]
    pub kind: String,
    /// LOG_PATTERN LOG_FILE LINES_BEFORE LINE_MATCHING LINES_AFTER (all optional)
    #[argh(positional, greedy)]
    pub log: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// make the running daemon re-read config.sh and every check now (as SIGHUP does); prints the
/// problems it found. Unchanged checks keep their state; a broken file leaves the previous
/// version running. Exit status 3 if no daemon answers, 1 if there are problems.
#[argh(subcommand, name = "reload")]
pub struct ReloadCmd {}

#[derive(FromArgs, Debug)]
/// run a pattern over a file (or - for stdin) as a log check would, without a daemon: prints the
/// matching lines as NUMBER:LINE and the alert the check would send. Exit status 1 if no line
/// matches.
#[argh(subcommand, name = "test-pattern", help_triggers("-h", "--help"))]
pub struct TestPatternCmd {
    /// the check name to put in the alert (default: test-pattern)
    #[argh(option)]
    pub name: Option<String>,
    /// the check's expiration (as create takes it)
    #[argh(option)]
    pub expiry: Option<String>,
    /// the pattern
    #[argh(positional)]
    pub pattern: String,
    /// a log file, or - for stdin
    #[argh(positional)]
    pub input: String,
}

#[derive(FromArgs, Debug)]
/// validate config.sh and every check file without a daemon; prints every problem with file and
/// line. Exit status 1 if there are errors.
#[argh(subcommand, name = "check-config")]
pub struct CheckConfigCmd {}

#[derive(FromArgs, Debug)]
/// put this binary in place on a device, as the Yocto layer does: /usr/bin/lookout, the links
/// mender-monitorctl and mender-monitord, the mender-monitor.service unit (in
/// /etc/systemd/system), monitor.d/{available,enabled}, the state directory (0700),
/// monitor-lib.sh (monitor_send_alert) and a documented config.sh if there is none; then, with a running systemd, daemon-reload, enable and
/// start the unit. Running it again changes nothing; an existing config.sh or check is never
/// overwritten. Every step is printed.
#[argh(
    subcommand,
    name = "install",
    example = "cp lookout-aarch64 /tmp/lookout && chmod +x /tmp/lookout && /tmp/lookout install\nlookout install --dry-run\nlookout install --root /tmp/image --bin ./lookout-aarch64"
)]
pub struct InstallCmd {
    /// install into this tree instead of / (no systemd calls)
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// the binary to install (default: this one)
    #[argh(option)]
    pub bin: Option<PathBuf>,
    /// do not call systemctl
    #[argh(switch)]
    pub no_systemd: bool,
    /// also write the demo checks (log_usb_disconnect, log_mender_client,
    /// log_mender_connect, connectivity_example) to monitor.d/available, not enabled
    #[argh(switch)]
    pub demo_checks: bool,
    /// print what would be done, do nothing
    #[argh(switch)]
    pub dry_run: bool,
}

#[derive(FromArgs, Debug)]
/// remove what install made: stop and disable the unit (with a running systemd), remove it, the
/// binary and its links, and the default config.sh and demo checks while unchanged. Your checks,
/// an edited config.sh and the state (read positions, alerts not yet delivered) are kept, unless
/// --purge. Every step is printed.
#[argh(subcommand, name = "uninstall")]
pub struct UninstallCmd {
    /// remove from this tree instead of / (no systemd calls)
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// also remove the checks, config.sh and the state directory
    #[argh(switch)]
    pub purge: bool,
    /// do not call systemctl
    #[argh(switch)]
    pub no_systemd: bool,
    /// print what would be done, do nothing
    #[argh(switch)]
    pub dry_run: bool,
}

#[derive(FromArgs, Debug)]
/// mender-monitord: the lookout daemon under Mender Monitor's name.
pub struct DaemonCli {
    /// prefix for every device path (default: $LOOKOUT_ROOT, else /)
    #[argh(option)]
    pub root: Option<PathBuf>,
    /// server base URL for alerts, instead of the one the Mender client names
    #[argh(option)]
    pub server: Option<String>,
    /// device JWT sent as `Authorization: Bearer` with --server
    #[argh(option)]
    pub token: Option<String>,
    /// print alerts on stdout as JSON lines (a local sink: no server)
    #[argh(switch)]
    pub stdout: bool,
    /// a Prometheus Alertmanager base URL (e.g. http://alertmanager:9093); repeat for the peers
    /// of a cluster
    #[argh(option)]
    pub alertmanager: Vec<String>,
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}

/// The version line.
pub fn version() -> String {
    format!("lookout {}", env!("CARGO_PKG_VERSION"))
}

/// argh takes a lone `-` for an option and refuses it; `test-pattern PATTERN -` (stdin) means it
/// as an operand, so a `--` is put before it when none was given.
fn stdin_operand(args: &mut Vec<&str>) {
    if args.contains(&"test-pattern") && !args.contains(&"--") {
        if let Some(i) = args.iter().rposition(|a| *a == "-") {
            args.insert(i, "--");
        }
    }
}

/// The command line as the kernel gives it: bytes. argh reads text, so an argument that is not
/// UTF-8 is handed to it as a placeholder made with NUL bytes (no real argument can hold one) and
/// turned back into its bytes where bytes are wanted (paths), or into an error naming the
/// argument where text is needed.
struct Argv {
    raw: Vec<OsString>,
}

impl Argv {
    /// Splits `args` (without argv[0]) into this table and the text argh reads.
    fn new(args: impl Iterator<Item = OsString>) -> (Argv, Vec<String>) {
        let raw: Vec<OsString> = args.collect();
        let text = raw.iter().enumerate().map(|(i, a)| a.to_str().map_or_else(|| format!("\0{i}\0"), String::from)).collect();
        (Argv { raw }, text)
    }

    /// The bytes `arg` (as argh gave it) stands for.
    fn os(&self, arg: &str) -> OsString {
        let index = arg.strip_prefix('\0').and_then(|r| r.strip_suffix('\0')).and_then(|n| n.parse::<usize>().ok());
        match index.and_then(|i| self.raw.get(i)) {
            Some(raw) => raw.clone(),
            None => OsString::from(arg),
        }
    }

    /// `arg` as text, or an error naming it as `what`.
    fn text(&self, arg: &str, what: &str) -> Result<String, String> {
        ctl::text(&self.os(arg), what).map(String::from)
    }

    /// A path argument (argh made it from the placeholder, if any).
    fn path(&self, arg: Option<PathBuf>) -> Option<PathBuf> {
        arg.map(|p| p.to_str().map_or(p.clone(), |s| PathBuf::from(self.os(s))))
    }

    /// argh's message with the arguments it quotes shown as they were typed.
    fn shown(&self, message: &str) -> String {
        let mut out = message.to_string();
        for (i, raw) in self.raw.iter().enumerate() {
            if raw.to_str().is_none() {
                out = out.replace(&format!("\0{i}\0"), &crate::config::shell::quote(raw.as_bytes()));
            }
        }
        out
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let mut os_args = std::env::args_os();
    let argv0 = os_args.next().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
    let prog = match argv0.rsplit('/').next() {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => "lookout".to_string(),
    };
    let (argv, text) = Argv::new(os_args);
    let mut rest: Vec<&str> = text.iter().map(String::as_str).collect();
    stdin_operand(&mut rest);
    if prog.starts_with("mender-monitord") {
        let cli = match DaemonCli::from_args(&[&prog], &rest) {
            Ok(c) => c,
            Err(e) => return early_exit(&prog, e, &argv),
        };
        if cli.version {
            println!("{}", version());
            return 0;
        }
        return run_daemon(root(argv.path(cli.root)), &argv, cli.server, cli.token, cli.stdout, cli.alertmanager);
    }
    let cli = match Cli::from_args(&[&prog], &rest) {
        Ok(c) => c,
        Err(e) => return early_exit(&prog, e, &argv),
    };
    if cli.version {
        println!("{}", version());
        return 0;
    }
    let root = root(argv.path(cli.root));
    let Some(cmd) = cli.cmd else {
        eprintln!("{prog}: no command given; run `{prog} help`");
        return 1;
    };
    match dispatch(&prog, &root, &argv, cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{prog}: {e}");
            1
        }
    }
}

/// Runs one verb; `Ok` carries the exit code, `Err` the one message to print (exit 1).
/// `install`'s options from its command line.
fn install_options(root: &Path, argv: &Argv, c: InstallCmd) -> crate::install::Options {
    crate::install::Options {
        root: argv.path(c.root).unwrap_or_else(|| root.to_path_buf()),
        bin: argv.path(c.bin),
        systemd: !c.no_systemd,
        demo_checks: c.demo_checks,
        purge: false,
        dry_run: c.dry_run,
    }
}

/// `uninstall`'s options from its command line.
fn uninstall_options(root: &Path, argv: &Argv, c: UninstallCmd) -> crate::install::Options {
    crate::install::Options {
        root: argv.path(c.root).unwrap_or_else(|| root.to_path_buf()),
        bin: None,
        systemd: !c.no_systemd,
        demo_checks: false,
        purge: c.purge,
        dry_run: c.dry_run,
    }
}

fn dispatch(prog: &str, root: &Path, argv: &Argv, cmd: Cmd) -> Result<i32, String> {
    let edited = |r: Result<(), String>| {
        // A running daemon applies the change at once, even where inotify is unavailable; no
        // daemon is fine too.
        if r.is_ok() {
            let _ = client::ask(&control::socket_path(root), "reload", Duration::from_secs(2));
        }
        r.map(|()| 0)
    };
    let id = |subsystem: &str, check: &str| Ok::<_, String>((argv.text(subsystem, "subsystem")?, argv.text(check, "check name")?));
    match cmd {
        Cmd::Version(_) => {
            println!("{}", version());
            Ok(0)
        }
        Cmd::Run(r) => Ok(run_daemon(root.to_path_buf(), argv, r.server, r.token, r.stdout, r.alertmanager)),
        Cmd::Create(c) => {
            let (subsystem, check) = id(&c.subsystem, &c.check)?;
            let args: Vec<OsString> = c.args.iter().map(|a| argv.os(a)).collect();
            edited(ctl::create(&ctl::layout(root), &subsystem, &check, &args))
        }
        Cmd::Enable(c) => edited(id(&c.subsystem, &c.check).and_then(|(s, n)| ctl::enable(&ctl::layout(root), &s, &n))),
        Cmd::Disable(c) => edited(id(&c.subsystem, &c.check).and_then(|(s, n)| ctl::disable(&ctl::layout(root), &s, &n))),
        Cmd::Delete(c) => edited(id(&c.subsystem, &c.check).and_then(|(s, n)| ctl::delete(&ctl::layout(root), &s, &n))),
        Cmd::List(c) => ctl::list(&ctl::layout(root), c.json).map(|text| {
            print!("{text}");
            0
        }),
        Cmd::Status(c) => Ok(status(prog, root, c.json)),
        Cmd::Reload(_) => Ok(reload(prog, root)),
        Cmd::SendAlert(c) => {
            let text = |v: &str, what: &str| argv.text(v, what);
            let args = ctl::send_alert::Args {
                level: text(&c.level, "LEVEL")?,
                name: text(&c.name, "NAME")?,
                description: text(&c.description, "DESCRIPTION")?,
                subject_name: text(&c.subject_name, "SUBJECT_NAME")?,
                status: text(&c.status, "STATUS")?,
                kind: text(&c.kind, "TYPE")?,
                log: c.log.iter().map(|v| text(v, "log context argument")).collect::<Result<_, _>>()?,
            };
            ctl::send_alert::run(root, &args)
        }
        Cmd::Install(c) => crate::install::install(&install_options(root, argv, c), &mut std::io::stdout().lock()),
        Cmd::Uninstall(c) => crate::install::uninstall(&uninstall_options(root, argv, c), &mut std::io::stdout().lock()),
        Cmd::CheckConfig(_) => ctl::check_config::run(&ctl::layout(root), &mut std::io::stdout().lock()).map(|ok| i32::from(!ok)),
        Cmd::TestPattern(c) => {
            let t = ctl::test_pattern::TestPattern {
                pattern: argv.text(&c.pattern, "pattern")?,
                input: argv.os(&c.input),
                name: c.name.map(|n| argv.text(&n, "--name")).transpose()?,
                expiry: c.expiry.map(|e| argv.text(&e, "--expiry")).transpose()?,
            };
            let matched = ctl::test_pattern::run(&ctl::layout(root), &t, &mut std::io::stdout().lock())?;
            if !matched {
                eprintln!("{prog}: no line matches");
            }
            Ok(i32::from(!matched))
        }
    }
}

/// Asks the running daemon; on failure says why and gives the exit status (3: no daemon).
fn ask_daemon(prog: &str, root: &Path, cmd: &str) -> Result<control::protocol::Response, i32> {
    match client::ask(&control::socket_path(root), cmd, client::TIMEOUT) {
        Ok(resp) if resp.ok => Ok(resp),
        Ok(resp) => {
            eprintln!("{prog}: the daemon refused: {}", resp.error.unwrap_or_default());
            Err(1)
        }
        Err(e) => {
            eprintln!("{prog}: {e}");
            if matches!(e, client::ClientError::NotRunning(_)) {
                eprintln!("{prog}: start it with `systemctl start mender-monitor`, or in the foreground with `lookout run`");
            }
            Err(e.exit_code())
        }
    }
}

fn status(prog: &str, root: &Path, json: bool) -> i32 {
    let resp = match ask_daemon(prog, root, "status") {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some(status) = resp.status else {
        eprintln!("{prog}: the daemon's answer has no status");
        return 1;
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
    } else {
        print!("{}", status.render());
    }
    0
}

fn reload(prog: &str, root: &Path) -> i32 {
    match ask_daemon(prog, root, "reload") {
        Ok(resp) => {
            let problems = resp.problems.unwrap_or_default();
            for p in &problems {
                eprintln!("{p}");
            }
            i32::from(!problems.is_empty())
        }
        Err(code) => code,
    }
}

fn early_exit(prog: &str, e: argh::EarlyExit, argv: &Argv) -> i32 {
    match e.status {
        Ok(()) => {
            println!("{}", e.output);
            0
        }
        Err(()) => {
            eprintln!("{}\nRun `{prog} help` for usage.", argv.shown(&e.output));
            2
        }
    }
}

fn root(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("LOOKOUT_ROOT").filter(|v| !v.is_empty()).map(PathBuf::from)).unwrap_or_else(|| PathBuf::from("/"))
}

fn run_daemon(root: PathBuf, argv: &Argv, server: Option<String>, token: Option<String>, stdout: bool, am: Vec<String>) -> i32 {
    let text = |v: Option<String>, what: &str| v.map(|v| argv.text(&v, what)).transpose();
    let (server, token) = match (text(server, "--server"), text(token, "--token")) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("lookout: {e}");
            return 2;
        }
    };
    if token.is_some() && server.is_none() {
        eprintln!("lookout: --token is only used with --server");
        return 2;
    }
    let mut ams = Vec::with_capacity(am.len());
    for u in am {
        match argv.text(&u, "--alertmanager") {
            Ok(u) => ams.push(u),
            Err(e) => {
                eprintln!("lookout: {e}");
                return 2;
            }
        }
    }
    let alertmanagers = match crate::config::settings::alertmanager_urls(ams.iter().map(String::as_str)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("lookout: --alertmanager {e}");
            return 2;
        }
    };
    let main = match server {
        Some(_) if stdout => {
            eprintln!("lookout: --server and --stdout exclude each other");
            return 2;
        }
        Some(url) => {
            if let Some(why) = crate::url::unusable_url(&url) {
                eprintln!("lookout: --server {url}: {why}");
                return 2;
            }
            Some(Destination::Server { url, token: token.unwrap_or_default() })
        }
        None if stdout => Some(Destination::Stdout),
        None if !alertmanagers.is_empty() => None,
        None => Some(Destination::MenderClient),
    };
    match reactor::run(Layout::new(root), Destinations { main, alertmanagers }) {
        Ok(()) => 0,
        Err(e) => {
            crate::logging::write(crate::logging::Level::Fatal, format_args!("{e}"));
            1
        }
    }
}
