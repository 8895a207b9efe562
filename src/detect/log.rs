//! The log check as a pure state machine: fed buffers of complete lines and an injected clock,
//! it raises one CRITICAL per check (with the lines around the match) and the OK after
//! `LOG_PATTERN_EXPIRATION` seconds without a new match.
//!
//! No I/O and no clock here. The source hands over `\n`-terminated lines with the number of the
//! first one; [`LogDetector::on_tick`] is called when [`LogDetector::next_deadline`] has passed.
//!
//! Context: "before" lines are the last `lines_before` lines seen before the match (from this
//! buffer and a small ring of earlier ones); "after" lines are those that arrive with the match
//! or within `after_window_ms`, so the alert waits at most that long.

use super::matcher::Matcher;
use super::recent::Recent;
use crate::alert::{Alert, Details, Level, LineDescriptor, Subject};
use crate::time::{Instant, Now, Wall, rfc3339};

/// What a log check needs to know, resolved from its file and the global defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The alert name: `LOG_ALERT_DESCRIPTION` or `Log file contains <pattern>`.
    pub alert_name: String,
    /// Subject name (`SERVICE_NAME`).
    pub subject_name: String,
    /// Subject type (`LOG_ALERT_TYPE`, else `log`).
    pub subject_type: String,
    /// Subject status (`LOG_ALERT_STATUS`, else `LOGCONTAINS`).
    pub subject_status: String,
    /// `LOG_ALERT_DETAILS` with `%line_matching`, if set.
    pub details_template: Option<String>,
    /// The default details text, `<pattern> present in <file>`.
    pub default_description: String,
    /// The details of the OK after the expiry, before ` for N s`: `<pattern> not present in <file>`.
    pub expired_description: String,
    /// Level of the raised alert.
    pub level: Level,
    /// Silence after the last match before the OK, in ms; `None`: never.
    pub expiration_ms: Option<u64>,
    /// Context lines before the match.
    pub lines_before: usize,
    /// Context lines after the match.
    pub lines_after: usize,
    /// How long to wait for "after" lines.
    pub after_window_ms: u64,
    /// Longest line kept whole in an alert.
    pub max_line_bytes: usize,
}

/// What a restarted agent needs to carry a CRITICAL across the restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriticalState {
    /// Wall-clock time of the last match, Unix ms.
    pub last_match_wall: Wall,
}

/// Counters of one detector, for the agent's log and `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCounters {
    /// Lines read.
    pub lines: u64,
    /// Lines that matched while the check was not yet CRITICAL, or first in a buffer.
    pub matches: u64,
    /// Alerts raised (CRITICAL and OK).
    pub alerts: u64,
    /// Lines cut to `max_line_bytes` in alerts.
    pub truncated_lines: u64,
    /// Lines in alerts that were not valid UTF-8 (sent with U+FFFD).
    pub invalid_utf8_lines: u64,
}

/// What `status` shows of a detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogView {
    /// The check is CRITICAL (its alert is out, or about to be).
    pub critical: bool,
    /// A CRITICAL waits for its "after" lines.
    pub collecting_context: bool,
    /// Wall-clock time of the last match, Unix ms (while CRITICAL).
    pub last_match_wall: Option<Wall>,
    /// When the OK is due, wall clock, Unix ms (the last match plus the expiration).
    pub expires_wall: Option<Wall>,
}

#[derive(Debug)]
struct Pending {
    alert: Alert,
    after: Vec<LineDescriptor>,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Critical {
    last_match: Instant,
    last_match_wall: Wall,
}

/// Called with each matching line and its number (see [`LogDetector::on_lines_showing`]).
pub type ShowMatch<'a> = dyn FnMut(u64, &[u8]) + 'a;

/// One log check's detection state.
#[derive(Debug)]
pub struct LogDetector {
    settings: LogSettings,
    matcher: Matcher,
    /// The last `lines_before` lines of earlier buffers, oldest first, as raw bytes cut to
    /// `max_line_bytes + 1` (so that [`describe`](Self::describe) still sees the cut).
    ring: Recent,
    pending: Option<Pending>,
    critical: Option<Critical>,
    counters: LogCounters,
}

impl LogDetector {
    /// A detector in the OK state.
    pub fn new(settings: LogSettings, matcher: Matcher) -> Self {
        LogDetector { settings, matcher, ring: Recent::default(), pending: None, critical: None, counters: LogCounters::default() }
    }

    /// The settings in force.
    pub fn settings(&self) -> &LogSettings {
        &self.settings
    }

    /// Whether the pattern has a literal to search for (see [`Matcher::has_prefilter`]).
    pub fn matcher_has_prefilter(&self) -> bool {
        self.matcher.has_prefilter()
    }

    /// Counters so far.
    pub fn counters(&self) -> LogCounters {
        self.counters
    }

    /// Takes over the recent lines of `old` (a detector of the same file being replaced by a
    /// reload), so the first alert after a reload still has its "before" context.
    pub fn inherit_context(&mut self, old: &mut LogDetector) {
        self.ring = std::mem::take(&mut old.ring);
        self.ring.keep_last(self.settings.lines_before);
    }

    /// The state as `status` shows it.
    pub fn view(&self) -> LogView {
        LogView {
            critical: self.critical.is_some(),
            collecting_context: self.pending.is_some(),
            last_match_wall: self.critical.map(|c| c.last_match_wall),
            expires_wall: self.critical.and_then(|c| Some(c.last_match_wall.plus_ms(self.settings.expiration_ms?))),
        }
    }

    /// The CRITICAL state to persist, if the check is CRITICAL.
    pub fn critical_state(&self) -> Option<CriticalState> {
        self.critical.map(|c| CriticalState { last_match_wall: c.last_match_wall })
    }

    /// Resumes a CRITICAL carried over from before a restart: its expiry counts from the last
    /// match's wall-clock time, so the OK comes when it would have.
    pub fn restore(&mut self, now: Now, state: CriticalState) {
        let elapsed = now.wall.since(state.last_match_wall);
        let last_match = Instant::from_millis(now.mono.as_millis().saturating_sub(elapsed));
        self.critical = Some(Critical { last_match, last_match_wall: state.last_match_wall });
    }

    /// The earliest time [`on_tick`](Self::on_tick) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let pending = self.pending.as_ref().map(|p| p.deadline);
        let expiry = self.expiry();
        match (pending, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn expiry(&self) -> Option<Instant> {
        let c = self.critical?;
        Some(c.last_match.plus_ms(self.settings.expiration_ms?))
    }

    /// Sends what is due at `now`: a CRITICAL whose after-window has closed, an OK whose
    /// expiry has passed.
    pub fn on_tick(&mut self, now: Now, emit: &mut impl FnMut(Alert)) {
        if self.pending.as_ref().is_some_and(|p| p.deadline <= now.mono) {
            self.flush_pending(emit);
        }
        if self.expiry().is_some_and(|e| e <= now.mono) {
            self.flush_pending(emit);
            // The OK is dated no earlier than the expiry after the last match, whatever the
            // wall clock did meanwhile (steps, or the two clocks read a millisecond apart).
            let expired_at =
                self.critical.take().map(|c| c.last_match_wall.plus_ms(self.settings.expiration_ms.unwrap_or(0))).unwrap_or_default();
            self.emit_ok(Now { wall: now.wall.max(expired_at), ..now }, "expired", emit);
        }
    }

    /// Clears a CRITICAL because the check goes away (disabled, deleted, or its alert renamed),
    /// so that the server does not keep an alert nobody can clear.
    pub fn clear(&mut self, now: Now, why: &str, emit: &mut impl FnMut(Alert)) {
        self.flush_pending(emit);
        if self.critical.take().is_some() {
            self.emit_ok(now, why, emit);
        }
    }

    fn emit_ok(&mut self, now: Now, why: &str, emit: &mut impl FnMut(Alert)) {
        let s = &self.settings;
        let description = match (why, s.expiration_ms) {
            ("expired", Some(ms)) => format!("{} for {} s", s.expired_description, ms / 1000),
            (why, _) => format!("{} ({why})", s.default_description),
        };
        self.counters.alerts += 1;
        emit(Alert {
            name: s.alert_name.clone(),
            level: Level::Ok,
            timestamp: rfc3339(now.wall),
            subject: Subject {
                name: s.subject_name.clone(),
                kind: s.subject_type.clone(),
                status: s.subject_status.clone(),
                details: Some(Details { description, lines_before: None, line_matching: None, lines_after: None }),
            },
        });
    }

    /// Sends a CRITICAL that waits for its "after" lines as it stands (the agent stops, or the
    /// detector is replaced by a reload).
    pub fn flush(&mut self, emit: &mut impl FnMut(Alert)) {
        self.flush_pending(emit);
    }

    /// The CRITICAL that waits for its "after" lines, as it would leave now.
    pub fn pending_alert(&self) -> Option<Alert> {
        let p = self.pending.as_ref()?;
        let mut alert = p.alert.clone();
        if let Some(d) = alert.subject.details.as_mut() {
            d.lines_after = Some(p.after.clone());
        }
        Some(alert)
    }

    /// Bytes of line text the waiting CRITICAL holds (before, matching and after lines).
    pub fn pending_bytes(&self) -> usize {
        let Some(p) = self.pending.as_ref() else { return 0 };
        let d = p.alert.subject.details.as_ref();
        let lines =
            d.and_then(|d| d.lines_before.as_ref()).into_iter().flatten().chain(d.and_then(|d| d.line_matching.as_ref())).chain(&p.after);
        lines.map(|l| l.data.len()).sum()
    }

    fn flush_pending(&mut self, emit: &mut impl FnMut(Alert)) {
        if let Some(mut p) = self.pending.take() {
            if let Some(d) = p.alert.subject.details.as_mut() {
                d.lines_after = Some(std::mem::take(&mut p.after));
            }
            self.counters.alerts += 1;
            emit(p.alert);
        }
    }

    /// A single line without its `\n` (a line cut at the length bound, or the unterminated last
    /// line of a rotated file), numbered `number`.
    pub fn on_line(&mut self, now: Now, line: &[u8], number: u64, emit: &mut impl FnMut(Alert)) {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        self.on_lines(now, &buf, number, 1, emit);
    }

    /// A buffer of `count` complete lines (`buf` ends with `\n`), the first numbered
    /// `first_line` (the source counted them).
    pub fn on_lines(&mut self, now: Now, buf: &[u8], first_line: u64, count: u64, emit: &mut impl FnMut(Alert)) {
        self.on_lines_showing(now, buf, first_line, count, emit, None);
    }

    /// [`on_lines`](Self::on_lines), also handing every matching line with its number to
    /// `each` (`test-pattern` prints them): the same single search, which then does not stop
    /// at a CRITICAL's first match in a buffer.
    pub fn on_lines_showing(
        &mut self,
        now: Now,
        buf: &[u8],
        first_line: u64,
        count: u64,
        emit: &mut impl FnMut(Alert),
        mut each: Option<&mut ShowMatch<'_>>,
    ) {
        debug_assert!(buf.last() == Some(&b'\n'));
        debug_assert_eq!(count, count_lines(buf));
        let end_line = first_line + count;
        let mut pos = 0;
        let mut line_no = first_line;
        while pos < buf.len() {
            if self.pending.is_some() {
                let end = memchr::memchr(b'\n', &buf[pos..]).map_or(buf.len(), |i| pos + i);
                let line = &buf[pos..end];
                if self.matcher.is_match(line) {
                    self.touch(now);
                    if let Some(f) = each.as_mut() {
                        f(line_no, line);
                    }
                }
                let desc = self.describe(line_no, line);
                if let Some(p) = self.pending.as_mut() {
                    p.after.push(desc);
                    if p.after.len() >= self.settings.lines_after {
                        self.flush_pending(emit);
                    }
                }
                pos = end + 1;
                line_no += 1;
                continue;
            }
            let hay = &buf[pos..];
            let Some((start, end)) = self.matcher.find_line(hay) else {
                line_no = end_line;
                break;
            };
            let match_no = line_no + count_lines(&hay[..start]);
            self.counters.matches += 1;
            if let Some(f) = each.as_mut() {
                f(match_no, &hay[start..end]);
                if self.critical.is_some() {
                    self.touch(now);
                    pos += end + 1;
                    line_no = match_no + 1;
                    continue;
                }
            }
            if self.critical.is_some() {
                // Already CRITICAL: the match only restarts the expiry, and every line of this
                // buffer arrived at the same `now`, so the rest need not be searched.
                self.touch(now);
                line_no = end_line;
                break;
            }
            self.raise(now, buf, pos + start, pos + end, match_no, emit);
            pos += end + 1;
            line_no = match_no + 1;
        }
        debug_assert_eq!(line_no, end_line);
        self.counters.lines += count;
        self.remember_tail(buf, end_line);
    }

    fn touch(&mut self, now: Now) {
        if let Some(c) = self.critical.as_mut() {
            c.last_match = now.mono;
            c.last_match_wall = now.wall;
        }
    }

    fn raise(&mut self, now: Now, buf: &[u8], start: usize, end: usize, number: u64, emit: &mut impl FnMut(Alert)) {
        self.critical = Some(Critical { last_match: now.mono, last_match_wall: now.wall });
        let lines_before = self.lines_before(buf, start, number);
        let matching = self.describe(number, &buf[start..end]);
        let s = &self.settings;
        let description = match &s.details_template {
            Some(t) => t.replace("%line_matching", &matching.data),
            None => s.default_description.clone(),
        };
        let alert = Alert {
            name: s.alert_name.clone(),
            level: s.level,
            timestamp: rfc3339(now.wall),
            subject: Subject {
                name: s.subject_name.clone(),
                kind: s.subject_type.clone(),
                status: s.subject_status.clone(),
                details: Some(Details {
                    description,
                    lines_before: Some(lines_before),
                    line_matching: Some(matching),
                    lines_after: Some(Vec::new()),
                }),
            },
        };
        self.pending = Some(Pending { alert, after: Vec::new(), deadline: now.mono.plus_ms(s.after_window_ms) });
        if s.lines_after == 0 {
            self.flush_pending(emit);
        }
    }

    /// Up to `lines_before` lines ending just before `buf[start]` (line `number`): from `buf`
    /// first, then from the ring of earlier buffers.
    fn lines_before(&mut self, buf: &[u8], start: usize, number: u64) -> Vec<LineDescriptor> {
        let want = self.settings.lines_before;
        let mut from_buf: Vec<LineDescriptor> = Vec::new();
        let mut end = start; // exclusive end of the region still to walk, at a line start
        while from_buf.len() < want && end > 0 {
            let line_end = end - 1; // the '\n' of the previous line
            let line_start = memchr::memrchr(b'\n', &buf[..line_end]).map_or(0, |i| i + 1);
            let n = number - 1 - from_buf.len() as u64;
            let d = self.describe(n, &buf[line_start..line_end]);
            from_buf.push(d);
            end = line_start;
        }
        let from_ring = if end == 0 { want - from_buf.len() } else { 0 };
        let ring = std::mem::take(&mut self.ring);
        let mut out: Vec<LineDescriptor> = ring.last(from_ring).map(|(n, l)| self.describe(n, l)).collect();
        self.ring = ring;
        out.extend(from_buf.into_iter().rev());
        out
    }

    /// Keeps the last `lines_before` lines of `buf` (which ends at line `next_line - 1`).
    fn remember_tail(&mut self, buf: &[u8], next_line: u64) {
        self.ring.remember(buf, next_line, self.settings.lines_before, self.settings.max_line_bytes + 1);
    }

    /// A line as it goes into an alert: cut to `max_line_bytes` (at a character boundary) and
    /// decoded with U+FFFD for invalid UTF-8; both are counted.
    fn describe(&mut self, number: u64, line: &[u8]) -> LineDescriptor {
        let max = self.settings.max_line_bytes;
        let line = if line.len() > max {
            self.counters.truncated_lines += 1;
            &line[..max]
        } else {
            line
        };
        let data = match std::str::from_utf8(line) {
            Ok(s) => s.to_string(),
            Err(e) if e.error_len().is_none() && line.len() == max => {
                // The cut fell inside a character: drop the partial character, not the line.
                String::from_utf8_lossy(&line[..e.valid_up_to()]).into_owned()
            }
            Err(_) => {
                self.counters.invalid_utf8_lines += 1;
                String::from_utf8_lossy(line).into_owned()
            }
        };
        LineDescriptor { line_number: number, data }
    }
}

/// Newlines in `bytes`.
pub fn count_lines(bytes: &[u8]) -> u64 {
    bytecount::count(bytes, b'\n') as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LogSettings {
        LogSettings {
            alert_name: "Log file contains ERROR".into(),
            subject_name: "crasher_app".into(),
            subject_type: "log".into(),
            subject_status: "LOGCONTAINS".into(),
            details_template: None,
            default_description: "ERROR present in /root/crasher.log".into(),
            expired_description: "ERROR not present in /root/crasher.log".into(),
            level: Level::Critical,
            expiration_ms: Some(5000),
            lines_before: 30,
            lines_after: 30,
            after_window_ms: 200,
            max_line_bytes: 100,
        }
    }

    fn detector(s: LogSettings) -> LogDetector {
        LogDetector::new(s, Matcher::new("ERROR").unwrap())
    }

    /// Feeds `text` at `at` ms, returns the alerts.
    fn feed(d: &mut LogDetector, at: u64, text: &str, first: u64) -> Vec<Alert> {
        let mut out = Vec::new();
        d.on_lines(Now::at(at), text.as_bytes(), first, count_lines(text.as_bytes()), &mut |a| out.push(a));
        out
    }

    fn tick(d: &mut LogDetector, at: u64) -> Vec<Alert> {
        let mut out = Vec::new();
        d.on_tick(Now::at(at), &mut |a| out.push(a));
        out
    }

    fn numbers(v: &Option<Vec<LineDescriptor>>) -> Vec<(u64, String)> {
        v.as_ref().unwrap().iter().map(|l| (l.line_number, l.data.clone())).collect()
    }

    #[test]
    fn showing_reports_every_match_of_the_same_single_search() {
        let mut s = settings();
        s.lines_after = 2;
        s.lines_before = 2;
        let mut d = detector(s);
        let mut shown = Vec::new();
        let mut alerts = Vec::new();
        let mut feed_showing = |d: &mut LogDetector, at: u64, text: &str, first: u64| {
            let mut show = |n: u64, l: &[u8]| shown.push((n, String::from_utf8_lossy(l).into_owned()));
            let b = text.as_bytes();
            d.on_lines_showing(Now::at(at), b, first, count_lines(b), &mut |a| alerts.push(a), Some(&mut show));
        };
        // A match, one after-line that matches too, the CRITICAL out, then two more matches
        // in one buffer while CRITICAL (the daemon would stop at the first).
        feed_showing(&mut d, 0, "a\nERROR 1\nERROR 2\nb\nc\n", 10);
        feed_showing(&mut d, 50, "d\nERROR 3\ne\nERROR 4\n", 15);
        let want: Vec<(u64, String)> =
            [(11, "ERROR 1"), (12, "ERROR 2"), (16, "ERROR 3"), (18, "ERROR 4")].iter().map(|(n, l)| (*n, l.to_string())).collect();
        assert_eq!(shown, want);
        assert_eq!(alerts.len(), 1);
        let details = alerts[0].subject.details.as_ref().unwrap();
        assert_eq!(details.line_matching.as_ref().unwrap().line_number, 11);
        assert_eq!(numbers(&details.lines_before), vec![(10, "a".to_string())]);
        assert_eq!(numbers(&details.lines_after), vec![(12, "ERROR 2".to_string()), (13, "b".to_string())]);
        // The last match moved the expiry: no OK 5 s after the first.
        assert!(tick(&mut d, 5_010).is_empty());
        assert_eq!(tick(&mut d, 5_050).len(), 1);
    }

    #[test]
    fn the_ring_keeps_the_last_lines_across_buffers_without_growing() {
        let mut s = settings();
        s.lines_before = 3;
        s.lines_after = 0;
        let mut d = detector(s);
        feed(&mut d, 0, "l1\nl2\nl3\nl4\n", 1);
        feed(&mut d, 0, "l5\n", 5);
        assert_eq!(d.ring.len(), 3);
        let a = feed(&mut d, 0, "ERROR\n", 6);
        let details = a[0].subject.details.as_ref().unwrap();
        assert_eq!(numbers(&details.lines_before), vec![(3, "l3".into()), (4, "l4".into()), (5, "l5".into())]);
    }

    #[test]
    fn context_from_one_write_gives_before_and_after() {
        let mut d = detector(settings());
        assert!(feed(&mut d, 0, "one\ntwo\n", 1).is_empty());
        assert!(feed(&mut d, 10, "ERROR x\nafter\n", 3).is_empty(), "waits for more after-lines");
        assert_eq!(d.next_deadline(), Some(Instant::from_millis(210)));
        let alerts = tick(&mut d, 210);
        assert_eq!(alerts.len(), 1);
        let det = alerts[0].subject.details.as_ref().unwrap();
        assert_eq!(numbers(&det.lines_before), vec![(1, "one".into()), (2, "two".into())]);
        assert_eq!(det.line_matching.as_ref().map(|l| (l.line_number, l.data.as_str())), Some((3, "ERROR x")));
        assert_eq!(numbers(&det.lines_after), vec![(4, "after".into())]);
        assert_eq!(alerts[0].level, Level::Critical);
        assert_eq!(alerts[0].timestamp, rfc3339(Now::at(10).wall));
    }

    #[test]
    fn after_lines_in_the_window_are_included_later_ones_are_not() {
        let mut d = detector(settings());
        assert!(feed(&mut d, 0, "ERROR\n", 1).is_empty());
        assert!(feed(&mut d, 150, "a1\n", 2).is_empty());
        let alerts = tick(&mut d, 200);
        assert_eq!(numbers(&alerts[0].subject.details.as_ref().unwrap().lines_after), vec![(2, "a1".into())]);
        assert!(feed(&mut d, 300, "late\n", 3).is_empty());
    }

    #[test]
    fn full_after_context_sends_at_once() {
        let mut s = settings();
        s.lines_after = 2;
        let mut d = detector(s);
        let alerts = feed(&mut d, 0, "ERROR\na\nb\nc\n", 1);
        assert_eq!(alerts.len(), 1);
        assert_eq!(numbers(&alerts[0].subject.details.as_ref().unwrap().lines_after), vec![(2, "a".into()), (3, "b".into())]);
        let mut s = settings();
        s.lines_after = 0;
        let mut d = detector(s);
        assert_eq!(feed(&mut d, 0, "ERROR\n", 1).len(), 1, "no after-lines wanted: no wait");
    }

    #[test]
    fn before_context_spans_buffers_and_is_bounded() {
        let mut s = settings();
        s.lines_before = 3;
        s.lines_after = 0;
        let mut d = detector(s);
        feed(&mut d, 0, "l1\nl2\n", 1);
        feed(&mut d, 0, "l3\n", 3);
        let alerts = feed(&mut d, 0, "l4\nERROR\n", 4);
        assert_eq!(
            numbers(&alerts[0].subject.details.as_ref().unwrap().lines_before),
            vec![(2, "l2".into()), (3, "l3".into()), (4, "l4".into())]
        );
    }

    #[test]
    fn sixty_four_lines_each_side_give_thirty() {
        let mut text = String::new();
        for i in 1..=64 {
            text.push_str(&format!("before {i}\n"));
        }
        text.push_str("ERROR here\n");
        for i in 1..=64 {
            text.push_str(&format!("after {i}\n"));
        }
        let mut d = detector(settings());
        let alerts = feed(&mut d, 0, &text, 1);
        assert_eq!(alerts.len(), 1, "30 after-lines arrived with the match");
        let det = alerts[0].subject.details.as_ref().unwrap();
        let before = numbers(&det.lines_before);
        assert_eq!(before.len(), 30);
        assert_eq!(before[0], (35, "before 35".into()));
        assert_eq!(det.line_matching.as_ref().unwrap().line_number, 65);
        let after = numbers(&det.lines_after);
        assert_eq!((after.len(), after[29].0), (30, 95));
        assert_eq!(d.counters().lines, 129);
    }

    #[test]
    fn one_critical_until_ok_and_matches_restart_expiry() {
        let mut s = settings();
        s.lines_after = 0;
        let mut d = detector(s);
        assert_eq!(feed(&mut d, 1_000, "ERROR 1\n", 1).len(), 1);
        assert!(feed(&mut d, 3_000, "x\nERROR 2\n", 2).is_empty(), "still CRITICAL: no second alert");
        assert_eq!(d.next_deadline(), Some(Instant::from_millis(8_000)));
        assert!(tick(&mut d, 7_999).is_empty());
        let ok = tick(&mut d, 8_000);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].timestamp, rfc3339(Now::at(8_000).wall));
        assert_eq!(ok[0].level, Level::Ok);
        assert_eq!(ok[0].name, "Log file contains ERROR");
        assert_eq!(ok[0].subject.details.as_ref().unwrap().description, "ERROR not present in /root/crasher.log for 5 s");
        assert_eq!(d.next_deadline(), None);
        assert_eq!(feed(&mut d, 9_000, "ERROR 3\n", 4).len(), 1, "a new match after the OK raises again");
    }

    #[test]
    fn match_among_after_lines_restarts_expiry() {
        let mut d = detector(settings());
        feed(&mut d, 0, "ERROR a\n", 1);
        feed(&mut d, 100, "ERROR b\n", 2);
        let alerts = tick(&mut d, 200);
        assert_eq!(alerts.len(), 1);
        assert_eq!(d.next_deadline(), Some(Instant::from_millis(5_100)));
    }

    #[test]
    fn ok_is_never_dated_before_the_expiry() {
        let mut s = settings();
        s.lines_after = 0;
        let mut d = detector(s);
        feed(&mut d, 1_000, "ERROR\n", 1);
        // The wall clock stepped back 3 s while the monotonic clock ran on.
        let stepped = Now { mono: Instant::from_millis(6_000), wall: Now::at(3_000).wall };
        let mut out = Vec::new();
        d.on_tick(stepped, &mut |a| out.push(a));
        assert_eq!(out[0].timestamp, rfc3339(Now::at(6_000).wall));
    }

    #[test]
    fn without_expiration_it_stays_critical() {
        let mut s = settings();
        s.expiration_ms = None;
        s.lines_after = 0;
        let mut d = detector(s);
        feed(&mut d, 0, "ERROR\n", 1);
        assert_eq!(d.next_deadline(), None);
        assert!(tick(&mut d, u64::MAX / 2).is_empty());
    }

    #[test]
    fn details_template_and_overrides() {
        let mut s = settings();
        s.details_template = Some("Alert was raised due to:%line_matching".into());
        s.lines_after = 0;
        let mut d = detector(s);
        let a = feed(&mut d, 0, "ERROR boom\n", 1);
        assert_eq!(a[0].subject.details.as_ref().unwrap().description, "Alert was raised due to:ERROR boom");
    }

    #[test]
    fn long_and_invalid_lines_are_cut_and_counted() {
        let mut s = settings();
        s.lines_after = 0;
        s.max_line_bytes = 10;
        let mut d = detector(s);
        let mut buf = b"\xff\xfebad\n".to_vec();
        buf.extend_from_slice("ERROR ééééé\n".as_bytes());
        let mut out = Vec::new();
        d.on_lines(Now::at(0), &buf, 1, count_lines(&buf), &mut |a| out.push(a));
        let det = out[0].subject.details.as_ref().unwrap();
        assert_eq!(det.lines_before.as_ref().unwrap()[0].data, "\u{fffd}\u{fffd}bad");
        assert_eq!(det.line_matching.as_ref().unwrap().data, "ERROR éé", "cut at a character boundary");
        let c = d.counters();
        assert_eq!((c.truncated_lines, c.invalid_utf8_lines), (1, 1));
    }

    #[test]
    fn restored_critical_expires_on_wall_time() {
        let mut d = detector(settings());
        let now = Now::at(100_000);
        d.restore(now, CriticalState { last_match_wall: Wall::from_unix_ms(now.wall.as_unix_ms() - 3_000) });
        assert_eq!(d.next_deadline(), Some(Instant::from_millis(102_000)));
        assert!(feed(&mut d, 100_500, "ERROR again\n", 7).is_empty(), "restored CRITICAL does not re-alert");
        assert_eq!(tick(&mut d, 105_500).len(), 1);
    }

    #[test]
    fn clear_sends_ok_only_when_critical() {
        let mut s = settings();
        s.lines_after = 0;
        let mut d = detector(s);
        let mut out = Vec::new();
        d.clear(Now::at(0), "check disabled", &mut |a| out.push(a));
        assert!(out.is_empty());
        feed(&mut d, 0, "ERROR\n", 1);
        d.clear(Now::at(1), "check disabled", &mut |a| out.push(a));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].level, Level::Ok);
        assert!(out[0].subject.details.as_ref().unwrap().description.ends_with("(check disabled)"));
    }

    /// The same text cut into buffers at every place gives the same alerts.
    #[test]
    fn buffer_boundaries_do_not_change_the_result() {
        let text = "a\nb\nc\nERROR one\nd\ne\nf\nERROR two\ng\n";
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let mut reference: Option<Vec<Alert>> = None;
        for cut in 0..=lines.len() {
            let mut s = settings();
            s.lines_before = 2;
            s.lines_after = 2;
            let mut d = detector(s);
            let mut out = Vec::new();
            let (first, second) = lines.split_at(cut);
            for (part, start) in [(first.concat(), 1u64), (second.concat(), 1 + cut as u64)] {
                if !part.is_empty() {
                    d.on_lines(Now::at(0), part.as_bytes(), start, count_lines(part.as_bytes()), &mut |a| out.push(a));
                }
            }
            d.on_tick(Now::at(1_000), &mut |a| out.push(a));
            match &reference {
                None => reference = Some(out),
                Some(r) => assert_eq!(&out, r, "cut at line {cut}"),
            }
        }
        let r = reference.unwrap();
        assert_eq!(r.len(), 1);
        let det = r[0].subject.details.as_ref().unwrap();
        assert_eq!(numbers(&det.lines_before), vec![(2, "b".into()), (3, "c".into())]);
        assert_eq!(numbers(&det.lines_after), vec![(5, "d".into()), (6, "e".into())]);
    }
}
