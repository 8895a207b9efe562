//! Global settings from `config.sh`, with lookout's defaults where Mender documents none.
//!
//! Every variable Mender Monitor reads is accepted. Values that cannot be used are reported with
//! file and line and the default stays in force; unknown variables are reported as warnings (they
//! are usually typos). The table of defaults is in the README and must stay in step with
//! [`Settings::default`].

use std::fmt;
use std::path::Path;

use super::shell;
use crate::alert::Level;

/// Every variable config.sh may set, in the order the shipped default file has them
/// ([`DEFAULT_CONFIG_SH`] sets each exactly once).
pub const VARIABLES: &[&str] = &[
    "ALERT_URL",
    "SEND_ALERT_MAX_INTERVAL_S",
    "DEFAULT_ALERT_STORE_RESEND_INTERVAL_S",
    "ALERT_OFFLINE_STORE_MAX_COUNT",
    "ALERT_STORE_MAX_RECORD_AGE_S",
    "CONFPUSH_INTERVAL",
    "ALERT_STORE_MAX_BYTES",
    "ALERT_STORE_FSYNC",
    "SEND_ALERT_TIMEOUT_S",
    "DEFAULT_ALERT_LEVEL",
    "DEFAULT_LOG_ALERT_LEVEL",
    "DEFAULT_SERVICE_ALERT_LEVEL",
    "DEFAULT_DBUS_ALERT_LEVEL",
    "DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS",
    "DEFAULT_LOG_LINES_BEFORE",
    "DEFAULT_LOG_LINES_AFTER",
    "LOG_LINES_AFTER_WINDOW_MS",
    "LOG_MAX_LINE_BYTES",
    "MONITOR_D_DIRECTORY",
    "DEFAULT_DBUS_ALERT_EXPIRATION_SECONDS",
    "FLAPPING_INTERVAL",
    "FLAPPING_COUNT_THRESHOLD",
    "ALERT_LOG_MAX_AGE",
    "CONFIG_LOG_LEVEL",
    "DAEMON_LOG_FILE",
    "STATE_SAVE_INTERVAL_S",
];

/// The default config.sh: every variable with its default and what it does. The same file the
/// Yocto layer installs (one source) and `lookout install` writes.
pub const DEFAULT_CONFIG_SH: &str = include_str!("../../yocto-layer/meta-lookout/recipes-monitoring/lookout/files/config.sh");

/// When spool records are forced to disk (`ALERT_STORE_FSYNC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// `fdatasync` before an alert counts as accepted.
    Always,
    /// The kernel's writeback decides.
    Never,
}

impl Fsync {
    /// Reads `ALERT_STORE_FSYNC`.
    pub fn parse(s: &str) -> Option<Fsync> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Some(Fsync::Always),
            "never" => Some(Fsync::Never),
            _ => None,
        }
    }
}

/// The global settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `ALERT_URL`: the alert endpoint; a path is joined to the server URL, a full URL replaces it.
    pub alert_url: String,
    /// `MONITOR_D_DIRECTORY`: device path of monitor.d.
    pub monitor_d: String,
    /// `CONFIG_LOG_LEVEL`.
    pub log_level: crate::logging::Level,
    /// `FLAPPING_INTERVAL` (s).
    pub flapping_interval_s: u64,
    /// `FLAPPING_COUNT_THRESHOLD`.
    pub flapping_count_threshold: u64,
    /// `ALERT_LOG_MAX_AGE` (s): how long service-state history is kept for flapping.
    pub alert_log_max_age_s: u64,
    /// `DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS`; 0 means a log alert never expires on its own.
    pub default_log_pattern_expiration_s: u64,
    /// `DEFAULT_LOG_LINES_BEFORE`.
    pub log_lines_before: usize,
    /// `DEFAULT_LOG_LINES_AFTER`.
    pub log_lines_after: usize,
    /// `ALERT_OFFLINE_STORE_MAX_COUNT`.
    pub alert_offline_store_max_count: u64,
    /// `ALERT_STORE_MAX_RECORD_AGE_S`.
    pub alert_store_max_record_age_s: u64,
    /// `DEFAULT_ALERT_STORE_RESEND_INTERVAL_S`.
    pub alert_store_resend_interval_s: u64,
    /// `SEND_ALERT_MAX_INTERVAL_S`: cap of the delivery backoff; 0 turns backoff off.
    pub send_alert_max_interval_s: u64,
    /// `CONFPUSH_INTERVAL` (s).
    pub confpush_interval_s: u64,
    /// `DEFAULT_ALERT_LEVEL`.
    pub default_alert_level: Level,
    /// `DEFAULT_LOG_ALERT_LEVEL` (else `DEFAULT_ALERT_LEVEL`).
    pub default_log_alert_level: Level,
    /// `DEFAULT_SERVICE_ALERT_LEVEL` (else `DEFAULT_ALERT_LEVEL`).
    pub default_service_alert_level: Level,
    /// `DEFAULT_DBUS_ALERT_LEVEL` (else `DEFAULT_ALERT_LEVEL`).
    pub default_dbus_alert_level: Level,
    /// `DEFAULT_DBUS_ALERT_EXPIRATION_SECONDS`; 0 means never.
    pub default_dbus_alert_expiration_s: u64,
    /// lookout: `LOG_LINES_AFTER_WINDOW_MS`, how long a CRITICAL waits for "after" context lines.
    pub log_lines_after_window_ms: u64,
    /// lookout: `LOG_MAX_LINE_BYTES`, the longest line kept whole; longer ones are truncated.
    pub log_max_line_bytes: usize,
    /// lookout: `STATE_SAVE_INTERVAL_S`, how long read positions may stay unsaved (flash wear vs
    /// lines re-read after a power cut).
    pub state_save_interval_s: u64,
    /// lookout: `ALERT_STORE_MAX_BYTES`, the most bytes of alerts the spool keeps waiting.
    pub alert_store_max_bytes: u64,
    /// lookout: `ALERT_STORE_FSYNC`, `always` (an accepted alert survives a power cut) or
    /// `never` (the kernel writes it back; flash wear).
    pub alert_store_fsync: Fsync,
    /// lookout: `SEND_ALERT_TIMEOUT_S`, the most one request to the server may take.
    pub send_alert_timeout_s: u64,
    /// lookout: `ALERTMANAGER_URL`, Prometheus Alertmanager base URLs (the peers of one
    /// cluster, each gets every alert); read at start.
    pub alertmanager_urls: Vec<String>,
    /// lookout: `ALERT_LABELS`, `name=value` labels added to every alert sent to Alertmanager.
    pub alert_labels: Vec<(String, String)>,
    /// lookout: `ALERTMANAGER_LEASE_S`, how long a firing alert lasts on Alertmanager unless
    /// renewed (it is, while it fires, every half lease).
    pub alertmanager_lease_s: u64,
}

/// Most Alertmanager peers (with the Mender destination, within the spool's destinations).
pub const MAX_ALERTMANAGERS: usize = 7;
/// The shortest `ALERTMANAGER_LEASE_S`.
pub const MIN_LEASE_S: u64 = 2;

/// Reads a blank-separated list of Alertmanager base URLs (`ALERTMANAGER_URL`, `--alertmanager`).
///
/// # Errors
/// Which URL this build cannot post to, or too many.
pub fn alertmanager_urls<'a>(urls: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for u in urls {
        if let Some(why) = crate::url::unusable_url(u) {
            return Err(format!("{u}: {why}"));
        }
        if !out.iter().any(|o| o == u) {
            out.push(u.to_string());
        }
    }
    if out.len() > MAX_ALERTMANAGERS {
        return Err(format!("at most {MAX_ALERTMANAGERS} Alertmanager peers"));
    }
    Ok(out)
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            alert_url: "/api/devices/v1/devicemonitor/alert".into(),
            monitor_d: super::layout::MONITOR_D.into(),
            log_level: crate::logging::Level::Info,
            flapping_interval_s: 600,
            flapping_count_threshold: 6,
            alert_log_max_age_s: 3600,
            default_log_pattern_expiration_s: 0,
            log_lines_before: 30,
            log_lines_after: 30,
            alert_offline_store_max_count: 1000,
            alert_store_max_record_age_s: 7 * 24 * 3600,
            alert_store_resend_interval_s: 60,
            send_alert_max_interval_s: 300,
            confpush_interval_s: 3600,
            default_alert_level: Level::Critical,
            default_log_alert_level: Level::Critical,
            default_service_alert_level: Level::Critical,
            default_dbus_alert_level: Level::Critical,
            default_dbus_alert_expiration_s: 0,
            log_lines_after_window_ms: 200,
            log_max_line_bytes: 16 * 1024,
            state_save_interval_s: 5,
            alert_store_max_bytes: 4 << 20,
            alert_store_fsync: Fsync::Always,
            send_alert_timeout_s: 30,
            alertmanager_urls: Vec::new(),
            alert_labels: Vec::new(),
            alertmanager_lease_s: 300,
        }
    }
}

/// A problem in a configuration file, naming the file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line, when the problem is on one line.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Which per-subsystem alert levels config.sh sets (the others follow `DEFAULT_ALERT_LEVEL`).
#[derive(Default)]
struct LevelsSet {
    log: bool,
    service: bool,
    dbus: bool,
}

/// Upper bounds that keep memory bounded whatever the file says.
const MAX_CONTEXT_LINES: usize = 1000;
const MAX_LINE_BYTES: usize = 1 << 20;

impl Settings {
    /// Reads `config.sh`. A missing file means all defaults; problems are returned beside the
    /// settings, which always come back usable.
    pub fn load(path: &Path) -> (Settings, Vec<ConfigError>) {
        // A config.sh linked to a data partition is usual; a FIFO or a device is refused.
        match super::file::read(path, super::file::Links::Follow) {
            Ok(bytes) => Settings::from_text(&path.display().to_string(), &bytes),
            Err(super::file::ReadError::NotFound) => (Settings::default(), Vec::new()),
            Err(e) => {
                let err = ConfigError { file: path.display().to_string(), line: None, message: format!("{e}; using defaults") };
                (Settings::default(), vec![err])
            }
        }
    }

    /// Reads settings from the text of a `config.sh` named `file` (for messages).
    pub fn from_text(file: &str, text: impl AsRef<[u8]>) -> (Settings, Vec<ConfigError>) {
        let parsed = shell::parse(text);
        let mut errors: Vec<ConfigError> =
            parsed.diagnostics.iter().map(|d| ConfigError { file: file.into(), line: Some(d.line), message: d.message.clone() }).collect();
        let mut s = Settings::default();
        let mut levels = LevelsSet::default();
        // Later assignments win, as with `source`; read in order.
        for a in &parsed.assignments {
            let error = |message: String| ConfigError { file: file.into(), line: Some(a.line), message };
            let result = match a.text() {
                Some(v) => s.assign(&a.key, v.trim(), &mut levels),
                None => Err("not valid UTF-8".to_string()),
            };
            match result {
                Ok(true) => {}
                Ok(false) => errors.push(error(format!("unknown variable {} (ignored)", a.key))),
                Err(what) => errors.push(error(format!("{}={}: {what}; the default stays in force", a.key, shell::quote(&a.value)))),
            }
        }
        if !levels.log {
            s.default_log_alert_level = s.default_alert_level;
        }
        if !levels.service {
            s.default_service_alert_level = s.default_alert_level;
        }
        if !levels.dbus {
            s.default_dbus_alert_level = s.default_alert_level;
        }
        s.clamp(file, &mut errors);
        (s, errors)
    }

    /// Sets variable `key` to `v`: `Ok(false)` for a variable lookout does not know, `Err` (why)
    /// for a value it cannot use, which leaves the setting as it was.
    fn assign(&mut self, key: &str, v: &str, levels: &mut LevelsSet) -> Result<bool, String> {
        fn num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
            v.parse().map_err(|_| "not a non-negative whole number".to_string())
        }
        fn level(v: &str) -> Result<Level, String> {
            Level::parse_configured(v).ok_or_else(|| "not an alert level (CRITICAL or WARNING)".to_string())
        }
        match key {
            "ALERT_URL" if !v.is_empty() => match v.contains("://").then(|| crate::url::unusable_url(v)).flatten() {
                Some(why) => return Err(why),
                None => self.alert_url = v.into(),
            },
            "MONITOR_D_DIRECTORY" if !v.is_empty() => self.monitor_d = v.into(),
            "CONFIG_LOG_LEVEL" => {
                self.log_level = crate::logging::Level::parse(v).ok_or("not one of FATAL, ERROR, WARN, INFO, DEBUG, TRACE")?;
            }
            "FLAPPING_INTERVAL" => self.flapping_interval_s = num(v)?,
            "FLAPPING_COUNT_THRESHOLD" => self.flapping_count_threshold = num(v)?,
            "ALERT_LOG_MAX_AGE" => self.alert_log_max_age_s = num(v)?,
            "DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS" => self.default_log_pattern_expiration_s = num(v)?,
            "DEFAULT_LOG_LINES_BEFORE" => self.log_lines_before = num(v)?,
            "DEFAULT_LOG_LINES_AFTER" => self.log_lines_after = num(v)?,
            "ALERT_OFFLINE_STORE_MAX_COUNT" => self.alert_offline_store_max_count = num(v)?,
            "ALERT_STORE_MAX_RECORD_AGE_S" => self.alert_store_max_record_age_s = num(v)?,
            "DEFAULT_ALERT_STORE_RESEND_INTERVAL_S" => self.alert_store_resend_interval_s = num(v)?,
            "SEND_ALERT_MAX_INTERVAL_S" => self.send_alert_max_interval_s = num(v)?,
            "CONFPUSH_INTERVAL" => self.confpush_interval_s = num(v)?,
            "DEFAULT_ALERT_LEVEL" => self.default_alert_level = level(v)?,
            // Empty: follow DEFAULT_ALERT_LEVEL (the shipped config.sh has these lines empty, so
            // that a `sed` on either variable works).
            "DEFAULT_LOG_ALERT_LEVEL" if v.is_empty() => levels.log = false,
            "DEFAULT_SERVICE_ALERT_LEVEL" if v.is_empty() => levels.service = false,
            "DEFAULT_DBUS_ALERT_LEVEL" if v.is_empty() => levels.dbus = false,
            "DEFAULT_LOG_ALERT_LEVEL" => {
                self.default_log_alert_level = level(v)?;
                levels.log = true;
            }
            "DEFAULT_SERVICE_ALERT_LEVEL" => {
                self.default_service_alert_level = level(v)?;
                levels.service = true;
            }
            "DEFAULT_DBUS_ALERT_LEVEL" => {
                self.default_dbus_alert_level = level(v)?;
                levels.dbus = true;
            }
            "DEFAULT_DBUS_ALERT_EXPIRATION_SECONDS" => self.default_dbus_alert_expiration_s = num(v)?,
            "LOG_LINES_AFTER_WINDOW_MS" => self.log_lines_after_window_ms = num(v)?,
            "LOG_MAX_LINE_BYTES" => self.log_max_line_bytes = num(v)?,
            "STATE_SAVE_INTERVAL_S" => self.state_save_interval_s = num(v)?,
            "ALERT_STORE_MAX_BYTES" => self.alert_store_max_bytes = num(v)?,
            "SEND_ALERT_TIMEOUT_S" => self.send_alert_timeout_s = num(v)?,
            "ALERT_STORE_FSYNC" => self.alert_store_fsync = Fsync::parse(v).ok_or("not always or never")?,
            "ALERTMANAGER_URL" => self.alertmanager_urls = alertmanager_urls(v.split_ascii_whitespace())?,
            "ALERT_LABELS" => self.alert_labels = crate::uplink::alertmanager::parse_labels(v)?,
            "ALERTMANAGER_LEASE_S" => {
                let n: u64 = num(v)?;
                if n < MIN_LEASE_S {
                    return Err(format!("at least {MIN_LEASE_S}"));
                }
                self.alertmanager_lease_s = n;
            }
            // Read by Mender Monitor, not needed by lookout (it logs to the journal).
            "DAEMON_LOG_FILE" | "ALERT_URL" | "MONITOR_D_DIRECTORY" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn clamp(&mut self, file: &str, errors: &mut Vec<ConfigError>) {
        let mut over = |name: &str, max: usize| {
            errors.push(ConfigError { file: file.into(), line: None, message: format!("{name} is capped at {max}") })
        };
        if self.log_lines_before > MAX_CONTEXT_LINES {
            over("DEFAULT_LOG_LINES_BEFORE", MAX_CONTEXT_LINES);
            self.log_lines_before = MAX_CONTEXT_LINES;
        }
        if self.log_lines_after > MAX_CONTEXT_LINES {
            over("DEFAULT_LOG_LINES_AFTER", MAX_CONTEXT_LINES);
            self.log_lines_after = MAX_CONTEXT_LINES;
        }
        if self.log_max_line_bytes > MAX_LINE_BYTES {
            over("LOG_MAX_LINE_BYTES", MAX_LINE_BYTES);
            self.log_max_line_bytes = MAX_LINE_BYTES;
        }
        let ring = crate::detect::flapping::RING as u64;
        if self.flapping_count_threshold > ring {
            errors.push(ConfigError {
                file: file.into(),
                line: None,
                message: format!("FLAPPING_COUNT_THRESHOLD is capped at {ring} (the flap history kept per service)"),
            });
            self.flapping_count_threshold = ring;
        }
        if self.log_max_line_bytes < 64 {
            errors.push(ConfigError { file: file.into(), line: None, message: "LOG_MAX_LINE_BYTES is at least 64".into() });
            self.log_max_line_bytes = 64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_documented_defaults() {
        let (s, errs) = Settings::from_text("config.sh", "");
        assert!(errs.is_empty());
        assert_eq!(s, Settings::default());
        assert_eq!(s.log_lines_before, 30);
        assert_eq!(s.log_lines_after, 30);
    }

    #[test]
    fn reads_mender_variables_as_sed_leaves_them() {
        let text = "FLAPPING_INTERVAL=150\nFLAPPING_COUNT_THRESHOLD=3\nexport DEFAULT_ALERT_LEVEL=\"WARNING\"\nCONFIG_LOG_LEVEL=DEBUG\nALERT_STORE_MAX_RECORD_AGE_S=16\n";
        let (s, errs) = Settings::from_text("config.sh", text);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(s.flapping_interval_s, 150);
        assert_eq!(s.flapping_count_threshold, 3);
        assert_eq!(s.default_alert_level, Level::Warning);
        assert_eq!(s.default_log_alert_level, Level::Warning, "per-subsystem level follows DEFAULT_ALERT_LEVEL");
        assert_eq!(s.log_level, crate::logging::Level::Debug);
        assert_eq!(s.alert_store_max_record_age_s, 16);
    }

    #[test]
    fn the_shipped_config_sh_parses_cleanly_to_the_built_in_defaults() {
        let (s, errs) = Settings::from_text("config.sh", DEFAULT_CONFIG_SH);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(s, Settings::default());
        // The Yocto layer's file on disk is the one built in.
        let on_disk = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/yocto-layer/meta-lookout/recipes-monitoring/lookout/files/config.sh"
        ))
        .unwrap();
        assert_eq!(on_disk, DEFAULT_CONFIG_SH);
    }

    #[test]
    fn the_shipped_config_sh_sets_every_variable_once_in_sed_form() {
        let parsed = shell::parse(DEFAULT_CONFIG_SH);
        let keys: Vec<&str> = parsed.assignments.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, VARIABLES);
        // `sed -i 's/VAR=.*/VAR=x/'` touches exactly the line that assigns VAR, and a number
        // written that way is read.
        for var in VARIABLES {
            let hits: Vec<&str> = DEFAULT_CONFIG_SH.lines().filter(|l| l.contains(&format!("{var}="))).collect();
            assert_eq!(hits.len(), 1, "{var}: {hits:?}");
            assert!(hits[0].starts_with(&format!("{var}=")), "{var}: {hits:?}");
        }
        let edited = DEFAULT_CONFIG_SH
            .replace("FLAPPING_INTERVAL=600", "FLAPPING_INTERVAL=150")
            .replace("FLAPPING_COUNT_THRESHOLD=6", "FLAPPING_COUNT_THRESHOLD=3")
            .replace("DEFAULT_ALERT_LEVEL=CRITICAL", "DEFAULT_ALERT_LEVEL=WARNING");
        let (s, errs) = Settings::from_text("config.sh", edited);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!((s.flapping_interval_s, s.flapping_count_threshold), (150, 3));
        assert_eq!(s.default_log_alert_level, Level::Warning, "an empty per-subsystem level follows DEFAULT_ALERT_LEVEL");
    }

    #[test]
    fn an_empty_level_after_a_set_one_follows_the_default_again() {
        let (s, errs) =
            Settings::from_text("c", "DEFAULT_LOG_ALERT_LEVEL=CRITICAL\nDEFAULT_LOG_ALERT_LEVEL=\nDEFAULT_ALERT_LEVEL=WARNING\n");
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(s.default_log_alert_level, Level::Warning);
    }

    #[test]
    fn alertmanager_settings_are_read_and_checked() {
        let text =
            "ALERTMANAGER_URL=\"http://am1:9093  http://am2:9093/\"\nALERT_LABELS='site=plant-4 device=gw-1'\nALERTMANAGER_LEASE_S=120\n";
        let (s, errs) = Settings::from_text("/x/config.sh", text);
        assert_eq!(errs, vec![]);
        assert_eq!(s.alertmanager_urls, vec!["http://am1:9093", "http://am2:9093/"]);
        assert_eq!(s.alert_labels, vec![("site".into(), "plant-4".into()), ("device".into(), "gw-1".into())]);
        assert_eq!(s.alertmanager_lease_s, 120);
        let (s, errs) = Settings::from_text("/x/config.sh", "ALERTMANAGER_URL=am:9093\nALERT_LABELS=check=x\nALERTMANAGER_LEASE_S=1\n");
        assert_eq!(s.alertmanager_urls, Vec::<String>::new());
        let errs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errs,
            vec![
                "/x/config.sh:1: ALERTMANAGER_URL=\"am:9093\": am:9093: not an http:// URL; the default stays in force",
                "/x/config.sh:2: ALERT_LABELS=\"check=x\": check is set by lookout itself; the default stays in force",
                "/x/config.sh:3: ALERTMANAGER_LEASE_S=1: at least 2; the default stays in force",
            ]
        );
    }

    #[test]
    fn an_alert_url_this_build_cannot_post_to_keeps_the_default() {
        let (s, errs) = Settings::from_text("/x/config.sh", "ALERT_URL=ftp://server/alert\n");
        assert_eq!(s.alert_url, Settings::default().alert_url);
        assert!(errs[0].to_string().starts_with("/x/config.sh:1: ALERT_URL=\"ftp://server/alert\": not an http:// URL"), "{errs:?}");
        let (s, errs) = Settings::from_text("/x/config.sh", "ALERT_URL=http://proxy/alert\n");
        assert_eq!((s.alert_url.as_str(), errs.len()), ("http://proxy/alert", 0));
    }

    #[test]
    fn bad_values_name_file_and_line_and_keep_defaults() {
        let (s, errs) = Settings::from_text("/x/config.sh", "FLAPPING_INTERVAL=ten\nTYPO_VAR=1\nDEFAULT_LOG_LINES_AFTER=5000\n");
        assert_eq!(s.flapping_interval_s, 600);
        assert_eq!(s.log_lines_after, MAX_CONTEXT_LINES);
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(msgs[0].starts_with("/x/config.sh:1: FLAPPING_INTERVAL"), "{msgs:?}");
        assert!(msgs[1].starts_with("/x/config.sh:2: unknown variable TYPO_VAR"), "{msgs:?}");
        assert!(msgs[2].contains("capped"), "{msgs:?}");
    }
}
