//! The alert as the Mender devicemonitor API takes it, and its JSON.
//!
//! `POST /api/devices/v1/devicemonitor/alert` takes a JSON array of these. The OK that clears a
//! CRITICAL carries the same `name`; the server keys its "latest state" on it.

use serde::{Deserialize, Serialize};

/// Alert level. The published schema has OK and CRITICAL; WARNING is accepted by the GUI and can
/// be configured as a check's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    /// The condition has cleared.
    #[serde(rename = "OK")]
    Ok,
    /// The condition holds.
    #[serde(rename = "CRITICAL")]
    Critical,
    /// The condition holds, at a lower severity.
    #[serde(rename = "WARNING")]
    Warning,
}

impl Level {
    /// Parses a configured level (`LOG_ALERT_LEVEL`, `DEFAULT_*_ALERT_LEVEL`): the levels a
    /// problem can be raised at. OK is not one of them.
    pub fn parse_configured(s: &str) -> Option<Level> {
        match s.to_ascii_uppercase().as_str() {
            "CRITICAL" => Some(Level::Critical),
            "WARNING" | "WARN" => Some(Level::Warning),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Critical => "CRITICAL",
            Level::Warning => "WARNING",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// What is wrong, e.g. `Log file contains ERROR`; the same for the CRITICAL and its OK.
    pub name: String,
    /// CRITICAL (or WARNING) when raised, OK when cleared.
    pub level: Level,
    /// RFC 3339 UTC time on the device.
    pub timestamp: String,
    /// What caused it.
    pub subject: Subject,
}

/// The entity an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The check's SERVICE_NAME (log), unit (service), ...
    pub name: String,
    /// `log`, `service`, `dbus`, `docker_event`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// e.g. `LOGCONTAINS`.
    pub status: String,
    /// Description and log context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
}

/// The human-readable part of an alert, with the log lines around a match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    /// One sentence.
    pub description: String,
    /// Up to `DEFAULT_LOG_LINES_BEFORE` lines before the match, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines_before: Option<Vec<LineDescriptor>>,
    /// The line that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_matching: Option<LineDescriptor>,
    /// Up to `DEFAULT_LOG_LINES_AFTER` lines after the match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines_after: Option<Vec<LineDescriptor>>,
}

/// A log line with its 1-based number in its file (or command output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineDescriptor {
    /// 1-based line number.
    pub line_number: u64,
    /// The line without its newline; invalid UTF-8 replaced by U+FFFD; at most
    /// `LOG_MAX_LINE_BYTES` bytes.
    pub data: String,
}

impl Alert {
    /// The JSON array of `alerts`, the body of one POST.
    pub fn to_json_array(alerts: &[Alert]) -> Vec<u8> {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_vec(alerts).unwrap_or_else(|_| b"[]".to_vec())
    }

    /// One alert as a JSON line (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_the_mender_shape() {
        let a = Alert {
            name: "Log file contains ERROR".into(),
            level: Level::Critical,
            timestamp: "2026-11-29T10:00:00.000Z".into(),
            subject: Subject {
                name: "crasher_app".into(),
                kind: "log".into(),
                status: "LOGCONTAINS".into(),
                details: Some(Details {
                    description: "ERROR present in /root/crasher.log".into(),
                    lines_before: Some(vec![LineDescriptor { line_number: 1, data: "a \"quoted\"\tline".into() }]),
                    line_matching: Some(LineDescriptor { line_number: 2, data: "ERROR:root:Crashing...".into() }),
                    lines_after: Some(vec![]),
                }),
            },
        };
        let json = String::from_utf8(Alert::to_json_array(std::slice::from_ref(&a))).unwrap();
        assert_eq!(
            json,
            r#"[{"name":"Log file contains ERROR","level":"CRITICAL","timestamp":"2026-11-29T10:00:00.000Z","subject":{"name":"crasher_app","type":"log","status":"LOGCONTAINS","details":{"description":"ERROR present in /root/crasher.log","lines_before":[{"line_number":1,"data":"a \"quoted\"\tline"}],"line_matching":{"line_number":2,"data":"ERROR:root:Crashing..."},"lines_after":[]}}}]"#
        );
        let ok = Alert { level: Level::Ok, subject: Subject { details: None, ..a.subject.clone() }, ..a };
        assert_eq!(
            ok.to_json(),
            r#"{"name":"Log file contains ERROR","level":"OK","timestamp":"2026-11-29T10:00:00.000Z","subject":{"name":"crasher_app","type":"log","status":"LOGCONTAINS"}}"#
        );
    }
}
