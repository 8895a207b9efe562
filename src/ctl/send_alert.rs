//! `send-alert`: one alert by hand, the way Mender's `monitor_send_alert` sends one (the shim
//! `monitor-lib.sh` calls this). The alert is put in the daemon's inbox
//! ([`crate::uplink::inbox`]), then a running daemon is asked to spool it at once; without a
//! daemon it waits there until one starts.

use std::path::Path;
use std::time::Duration;

use crate::alert::{Alert, Details, Level, LineDescriptor, Subject};
use crate::config::layout::Layout;
use crate::control::client::{self, ClientError};
use crate::time::{rfc3339, wall_now};

/// How long to wait for a running daemon's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// The arguments as given, in `monitor_send_alert`'s order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// OK, CRITICAL or WARNING.
    pub level: String,
    /// The alert's name.
    pub name: String,
    /// `details.description`.
    pub description: String,
    /// `subject.name`.
    pub subject_name: String,
    /// `subject.status`.
    pub status: String,
    /// `subject.type`.
    pub kind: String,
    /// Up to five: log pattern, log file, lines before, the matching line, lines after.
    pub log: Vec<String>,
}

/// Lines given as text: one per line, `<number>:<text>` taking its number, the others numbered
/// on from `first`.
fn lines(text: &str, first: u64) -> Vec<LineDescriptor> {
    let mut next = first;
    text.lines()
        .map(|l| {
            let (number, data) = match l.split_once(':') {
                Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => match n.parse::<u64>() {
                    Ok(n) => (n, rest),
                    Err(_) => (next, l),
                },
                _ => (next, l),
            };
            next = number.saturating_add(1);
            LineDescriptor { line_number: number, data: data.to_string() }
        })
        .collect()
}

/// The alert the arguments describe, at `timestamp`.
///
/// # Errors
/// A level that is not OK, CRITICAL or WARNING; an empty name, subject name or type; more than
/// five log arguments.
pub fn alert(a: &Args, timestamp: String) -> Result<Alert, String> {
    let level = match a.level.to_ascii_uppercase().as_str() {
        "OK" => Level::Ok,
        other => Level::parse_configured(other).ok_or_else(|| format!("LEVEL {:?} is not OK, CRITICAL or WARNING", a.level))?,
    };
    if a.log.len() > 5 {
        return Err(format!(
            "{} arguments after TYPE; at most 5: LOG_PATTERN LOG_FILE LINES_BEFORE LINE_MATCHING LINES_AFTER",
            a.log.len()
        ));
    }
    let arg = |i: usize| a.log.get(i).map(String::as_str).filter(|s| !s.is_empty());
    let before = arg(2).map(|t| lines(t, 1));
    let next = before.as_ref().and_then(|b| b.last()).map_or(1, |l| l.line_number + 1);
    let matching = arg(3).and_then(|t| lines(t, next).into_iter().next());
    let after_first = matching.as_ref().map_or(next, |l| l.line_number + 1);
    let after = arg(4).map(|t| lines(t, after_first));
    let alert = Alert {
        name: a.name.clone(),
        level,
        timestamp,
        subject: Subject {
            name: a.subject_name.clone(),
            kind: a.kind.clone(),
            status: a.status.clone(),
            details: Some(Details {
                description: a.description.clone(),
                lines_before: before,
                line_matching: matching,
                lines_after: after,
            }),
        },
    };
    crate::uplink::inbox::check(&alert)?;
    Ok(alert)
}

/// Puts the alert in the inbox and asks a running daemon to take it; the exit code.
///
/// # Errors
/// Bad arguments, an inbox that cannot be written, a daemon that refuses.
pub fn run(root: &Path, a: &Args) -> Result<i32, String> {
    let wall = wall_now();
    let alert = alert(a, rfc3339(wall))?;
    let inbox = crate::uplink::inbox::dir(&Layout::new(root).state_dir());
    let file = crate::uplink::inbox::put(&inbox, &alert, u128::from(wall.as_unix_ms()) * 1_000_000)?;
    match client::ask(&crate::control::socket_path(root), "take-inbox", ASK_TIMEOUT) {
        Ok(r) if r.ok => Ok(0),
        Ok(r) => Err(format!("the daemon took the alert but says: {}", r.error.unwrap_or_default())),
        Err(ClientError::NotRunning(_)) => {
            eprintln!("no daemon is running: the alert waits in {} and is sent when the daemon starts", file.display());
            Ok(0)
        }
        Err(e) => {
            eprintln!("the alert waits in {}; the daemon did not confirm it: {e}", file.display());
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(level: &str, log: &[&str]) -> Args {
        Args {
            level: level.into(),
            name: "Log file contains USB disconnect".into(),
            description: "cleared by hand".into(),
            subject_name: "log_usb".into(),
            status: "LOGCONTAINS".into(),
            kind: "log".into(),
            log: log.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_mender_order_of_arguments() {
        let a = alert(&args("ok", &[]), "T".into()).unwrap();
        assert_eq!(
            a.to_json(),
            r#"{"name":"Log file contains USB disconnect","level":"OK","timestamp":"T","subject":{"name":"log_usb","type":"log","status":"LOGCONTAINS","details":{"description":"cleared by hand"}}}"#
        );
        assert!(alert(&args("PANIC", &[]), "T".into()).is_err());
        assert!(alert(&args("OK", &["a", "b", "c", "d", "e", "f"]), "T".into()).is_err());
    }

    #[test]
    fn log_context_lines_keep_grep_numbers() {
        let a =
            alert(&args("CRITICAL", &["USB", "/var/log/kern.log", "10:one\n11:two", "12:USB disconnect", "after"]), "T".into()).unwrap();
        let d = a.subject.details.unwrap();
        assert_eq!(d.lines_before.unwrap().iter().map(|l| l.line_number).collect::<Vec<_>>(), vec![10, 11]);
        assert_eq!(d.line_matching.unwrap(), LineDescriptor { line_number: 12, data: "USB disconnect".into() });
        assert_eq!(d.lines_after.unwrap(), vec![LineDescriptor { line_number: 13, data: "after".into() }]);
    }
}
