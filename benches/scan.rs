//! Micro-benchmark of the catch-up path without the daemon around it: a tailer reads a file from
//! the start into a log detector, as a first-enabled check does. Run with
//! `cargo bench --bench scan -- FILE PATTERN`; prints seconds and MB/s for the best of 3 runs.

use std::time::Instant;

use lookout::alert::{Alert, Level};
use lookout::detect::log::{LogDetector, LogSettings};
use lookout::detect::matcher::Matcher;
use lookout::sources::tail::{LineSink, Progress, Scratch, Tailer};
use lookout::sources::watch::{Listener, Watches};
use lookout::time::Now;

struct Feed<'a> {
    detector: &'a mut LogDetector,
    alerts: &'a mut Vec<Alert>,
}

impl LineSink for Feed<'_> {
    fn lines(&mut self, buf: &[u8], first_line: u64, count: u64) {
        let alerts = &mut *self.alerts;
        self.detector.on_lines(Now::at(0), buf, first_line, count, &mut |a| alerts.push(a));
    }
    fn line(&mut self, line: &[u8], number: u64) {
        let alerts = &mut *self.alerts;
        self.detector.on_line(Now::at(0), line, number, &mut |a| alerts.push(a));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let (Some(file), Some(pattern)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: cargo bench --bench scan -- FILE PATTERN");
        return;
    };
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let mut best = f64::MAX;
    for _ in 0..3 {
        let settings = LogSettings {
            alert_name: "bench".into(),
            subject_name: "bench".into(),
            subject_type: "log".into(),
            subject_status: "LOGCONTAINS".into(),
            details_template: None,
            default_description: "bench".into(),
            expired_description: "bench".into(),
            level: Level::Critical,
            expiration_ms: None,
            lines_before: 30,
            lines_after: 0,
            after_window_ms: 0,
            max_line_bytes: 16 * 1024,
        };
        let mut detector = LogDetector::new(settings, Matcher::new(pattern).expect("pattern"));
        let mut watches = Watches::new().expect("inotify");
        let mut scratch = Scratch::new(16 * 1024);
        let mut tailer = Tailer::new(file.into(), Listener::Check(1), None);
        let mut alerts = Vec::new();
        let start = Instant::now();
        loop {
            let mut budget = 1 << 20;
            let mut feed = Feed { detector: &mut detector, alerts: &mut alerts };
            if tailer.sync(Now::at(0).mono, &mut watches, &mut scratch, &mut budget, &mut feed) == Progress::Done {
                break;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        best = best.min(secs);
        let line = alerts.first().and_then(|a| a.subject.details.as_ref()).and_then(|d| d.line_matching.as_ref()).map(|l| l.line_number);
        eprintln!("{secs:.3} s, first match on line {line:?}, {} lines", detector.counters().lines);
    }
    println!("best {best:.3} s, {:.0} MB/s over {size} bytes", size as f64 / best / 1e6);
}
