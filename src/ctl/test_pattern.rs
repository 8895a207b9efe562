//! `lookout test-pattern`: run a pattern over a file (or stdin) exactly as a log check would,
//! without a daemon, and show the matching lines and the alert the daemon would send.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use crate::alert::Alert;
use crate::checks::LogCheckConfig;
use crate::config::check::{LogCheckDef, LogSource, parse_expiration};
use crate::config::layout::Layout;
use crate::config::settings::Settings;
use crate::detect::log::LogDetector;
use crate::detect::matcher::Matcher;
use crate::sources::lines::{LineAssembler, LineSink, Pumped, ReadCounters, Scratch};
use crate::time::{Clock, Now};

/// Options of `test-pattern`.
#[derive(Debug, Clone, Default)]
pub struct TestPattern {
    /// The pattern.
    pub pattern: String,
    /// A file path (bytes), or `-` for stdin.
    pub input: OsString,
    /// The check name (subject name) to put in the alert.
    pub name: Option<String>,
    /// `LOG_PATTERN_EXPIRATION`.
    pub expiry: Option<String>,
}

/// Feeds the detector and prints every matching line as `number:line`, from the detector's
/// own search: one pass over the input, the daemon's.
struct Show<'a, W: Write> {
    detector: &'a mut LogDetector,
    now: Now,
    alerts: &'a mut Vec<Alert>,
    out: &'a mut W,
    matched: u64,
}

impl<W: Write> LineSink for Show<'_, W> {
    fn lines(&mut self, buf: &[u8], first_line: u64, count: u64) {
        let (alerts, out, matched) = (&mut *self.alerts, &mut *self.out, &mut self.matched);
        let mut print = |number: u64, line: &[u8]| {
            let _ = writeln!(out, "{number}:{}", String::from_utf8_lossy(line));
            *matched += 1;
        };
        self.detector.on_lines_showing(self.now, buf, first_line, count, &mut |a| alerts.push(a), Some(&mut print));
    }

    fn line(&mut self, line: &[u8], number: u64) {
        let mut buf = line.to_vec();
        buf.push(b'\n');
        self.lines(&buf, number, 1);
    }
}

/// Runs the test and writes its report to `out`; `Ok(true)` if a line matched.
pub fn run(layout: &Layout, t: &TestPattern, out: &mut impl Write) -> Result<bool, String> {
    let matcher = Matcher::new(&t.pattern)?;
    let (settings, _) = Settings::load(&layout.config_sh());
    let stdin = t.input == "-";
    let path = if stdin { PathBuf::from("/dev/stdin") } else { PathBuf::from(&t.input) };
    let def = LogCheckDef {
        service_name: t.name.clone().unwrap_or_else(|| "test-pattern".into()),
        pattern: t.pattern.clone(),
        source: LogSource::File(path.clone()),
        expiration_s: t.expiry.as_deref().map(parse_expiration).transpose()?,
        level: None,
        description: None,
        details: None,
        status: None,
        alert_type: None,
    };
    let config = LogCheckConfig::resolve(&def, &settings);
    let mut detector = LogDetector::new(config.detector.clone(), matcher.clone());
    let mut reader: Box<dyn Read> =
        if stdin { Box::new(io::stdin().lock()) } else { Box::new(File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?) };
    let now = Clock::default().now();
    let mut alerts = Vec::new();
    let mut scratch = Scratch::new(settings.log_max_line_bytes);
    let mut asm = LineAssembler::new(0, 1);
    let mut counters = ReadCounters::default();
    let mut show = Show { detector: &mut detector, now, alerts: &mut alerts, out, matched: 0 };
    loop {
        let mut budget = usize::MAX;
        let mut read = |buf: &mut [u8], _at: u64| reader.read(buf);
        match asm.pump(&mut scratch, &mut budget, &mut counters, &mut show, &mut read) {
            Ok(Pumped::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    asm.finish(&mut show);
    let matched = show.matched;
    // The daemon would send the CRITICAL once its after-window has passed.
    let later = Now { mono: now.mono.plus_ms(config.detector.after_window_ms), wall: now.wall };
    detector.on_tick(later, &mut |a| alerts.push(a));
    if let Some(a) = alerts.first() {
        let _ = writeln!(out, "--- the alert a check with this pattern sends ({} lines read):", detector.counters().lines);
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(a).unwrap_or_default());
    }
    if !matcher.has_prefilter() {
        let _ = writeln!(
            out,
            "note: the pattern has no literal to search for, so the daemon runs the regex on every line (slow on large files)"
        );
    }
    Ok(matched > 0)
}
