//! Where alerts go: the Mender devicemonitor API over HTTP, or JSON lines on stdout (the
//! embedded default, no server needed). Sinks block; they run on the worker thread only.

use std::io::Write;
use std::time::Duration;

use crate::alert::Alert;

/// Connect timeout for the server (usually the Mender client's local proxy).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why this build cannot POST to `url`, if it cannot: only `http://`, and `https://` with the
/// `tls` feature (the Mender client's local proxy is plain HTTP; it does TLS for us). Checked
/// up front so that a wrong URL is an error naming the argument or setting, not a retry loop.
pub fn unusable_url(url: &str) -> Option<String> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http") => None,
        Some("https") if cfg!(feature = "tls") => None,
        Some("https") => {
            Some("https needs a build with `--features tls`; or use the Mender client's local proxy (http://127.0.0.1:...)".into())
        }
        _ => Some("not an http:// URL".into()),
    }
}

/// Which sink to use, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    /// One JSON object per line on stdout.
    Stdout,
    /// POST JSON arrays to a Mender server.
    Mender {
        /// Alert endpoint URL.
        url: String,
        /// The device JWT, sent as `Authorization: Bearer`.
        token: String,
    },
}

impl SinkConfig {
    /// The Mender sink for `server` and the `ALERT_URL` setting (a path joined to the server,
    /// or a full URL used as is).
    pub fn mender(server: &str, alert_url: &str, token: &str) -> SinkConfig {
        let url = if alert_url.contains("://") {
            alert_url.to_string()
        } else {
            format!("{}/{}", server.trim_end_matches('/'), alert_url.trim_start_matches('/'))
        };
        SinkConfig::Mender { url, token: token.to_string() }
    }
}

/// Why a batch was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again later (network, timeout, 429, 5xx).
    Retry(String),
    /// The server refused this batch for good (4xx); retrying it would block everything after.
    Rejected(String),
}

/// A sink ready to send.
pub enum Sink {
    /// stdout.
    Stdout,
    /// HTTP.
    Mender {
        /// The ureq agent (connection pool, timeouts).
        agent: ureq::Agent,
        /// Alert endpoint URL.
        url: String,
        /// `Bearer <token>`.
        auth: String,
    },
}

impl Sink {
    /// Builds the sink for `config`.
    pub fn new(config: &SinkConfig) -> Sink {
        match config {
            SinkConfig::Stdout => Sink::Stdout,
            SinkConfig::Mender { url, token } => {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_connect(Some(CONNECT_TIMEOUT))
                    .timeout_global(Some(REQUEST_TIMEOUT))
                    .http_status_as_error(false)
                    .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .into();
                Sink::Mender { agent, url: url.clone(), auth: format!("Bearer {token}") }
            }
        }
    }

    /// Delivers `batch` in order, or says why not.
    pub fn send(&mut self, batch: &[Alert]) -> Result<(), SendError> {
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                for a in batch {
                    writeln!(out, "{}", a.to_json()).map_err(|e| SendError::Retry(format!("stdout: {e}")))?;
                }
                out.flush().map_err(|e| SendError::Retry(format!("stdout: {e}")))
            }
            Sink::Mender { agent, url, auth } => {
                let body = Alert::to_json_array(batch);
                let resp = agent
                    .post(url.as_str())
                    .header("Authorization", auth.as_str())
                    .content_type("application/json")
                    .send(&body[..])
                    .map_err(|e| SendError::Retry(format!("POST {url}: {e}")))?;
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    return Ok(());
                }
                let mut text = resp.into_body().with_config().limit(2048).read_to_string().unwrap_or_default();
                text.truncate(512);
                let what = format!("POST {url}: HTTP {status} {}", text.trim());
                if status == 429 || status >= 500 || status == 401 || status == 408 {
                    Err(SendError::Retry(what))
                } else {
                    Err(SendError::Rejected(what))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_url_joins_or_replaces() {
        let SinkConfig::Mender { url, .. } = SinkConfig::mender("http://127.0.0.1:8080/", "/api/devices/v1/devicemonitor/alert", "t")
        else {
            panic!()
        };
        assert_eq!(url, "http://127.0.0.1:8080/api/devices/v1/devicemonitor/alert");
        let SinkConfig::Mender { url, .. } = SinkConfig::mender("http://x", "https://other/alert", "t") else { panic!() };
        assert_eq!(url, "https://other/alert");
    }

    #[test]
    fn only_urls_this_build_can_post_to_are_usable() {
        assert_eq!(unusable_url("http://127.0.0.1:8080"), None);
        assert_eq!(unusable_url("HTTP://proxy"), None);
        assert_eq!(unusable_url("https://hosted.mender.io").is_none(), cfg!(feature = "tls"));
        assert_eq!(unusable_url("127.0.0.1:8080").as_deref(), Some("not an http:// URL"));
        assert_eq!(unusable_url("ftp://x").as_deref(), Some("not an http:// URL"));
    }
}
