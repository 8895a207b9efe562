//! Where alerts go: the Mender devicemonitor API over HTTP, or JSON lines on stdout (the
//! embedded default, no server needed). Sinks block; they run on the worker thread only. What
//! a server's reply means is decided by [`interpret`], a pure function of the reply's bytes
//! (status, `Retry-After`, the start of the body): any reply gives a bounded [`Outcome`],
//! never a panic.

use std::io::{Read, Write};
use std::time::Duration;

use super::backoff::{RetryAfter, parse_retry_after};

/// Connect timeout for the server (usually the Mender client's local proxy).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The alert endpoint, joined to the server URL when `ALERT_URL` is a path.
pub const ALERT_PATH: &str = "/api/devices/v1/devicemonitor/alert";
/// The configuration endpoint, joined to the server URL.
pub const CONFIG_PATH: &str = "/api/devices/v1/devicemonitor/config";
/// Bytes of a reply's body read (the rest is not waited for).
pub const BODY_READ: u64 = 2048;
/// Bytes of a reply's body quoted in the log and `status`.
pub const BODY_QUOTED: usize = 512;

// Where a URL is checked and joined is `crate::url`; the uplink uses both.
pub use crate::url::{join, unusable_url};

/// What a POST came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// 400, 413 or 422: something in this body is refused; the same body will be refused again.
    Refused(String),
    /// 401: the token is not (or no longer) accepted.
    Unauthorized(String),
    /// Anything else (network, timeout, 408, 429, 5xx, other 4xx, redirects): try again later,
    /// not before `after` if the server said so.
    Retry {
        /// What happened.
        why: String,
        /// The server's `Retry-After`.
        after: Option<RetryAfter>,
    },
}

/// A reply as received, before it means anything.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// The status code.
    pub status: u16,
    /// The `Retry-After` header's bytes, if there was one.
    pub retry_after: Option<&'a [u8]>,
    /// The start of the body (at most [`BODY_READ`] bytes are read).
    pub body: &'a [u8],
}

/// What a reply to a POST to `url` means. `why` quotes at most [`BODY_QUOTED`] bytes of the
/// body, with control characters blanked (it goes to the log on one line).
pub fn interpret(url: &str, reply: Reply) -> Outcome {
    if (200..300).contains(&reply.status) {
        return Outcome::Delivered;
    }
    let after = reply.retry_after.and_then(parse_retry_after);
    let head = &reply.body[..reply.body.len().min(BODY_QUOTED)];
    let text: String = String::from_utf8_lossy(head).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let why = format!("POST {url}: HTTP {} {}", reply.status, text.trim()).trim_end().to_string();
    classify(reply.status, why, after)
}

/// The HTTP client: one ureq agent (keeps the connection to the proxy open between requests).
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    /// A client with the connect timeout set; redirects are not followed (a POST redirected
    /// is a misconfiguration to report, not to chase).
    pub fn new() -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Http { agent }
    }

    /// POSTs `body` (JSON) to `url` with `Authorization: Bearer <token>` (none if the token is
    /// empty), within `timeout` for the whole request.
    pub fn post(&self, url: &str, token: &str, body: &[u8], timeout: Duration) -> Outcome {
        let mut req = self.agent.post(url).config().timeout_global(Some(timeout)).build().content_type("application/json");
        if !token.is_empty() {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        let resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => return Outcome::Retry { why: format!("POST {url}: {e}"), after: None },
        };
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Outcome::Delivered;
        }
        let retry_after = resp.headers().get("retry-after").map(|v| v.as_bytes().to_vec());
        let mut body = Vec::new();
        // A body cut short (timeout, reset) still says what came of it.
        let _ = resp.into_body().into_reader().take(BODY_READ).read_to_end(&mut body);
        interpret(url, Reply { status, retry_after: retry_after.as_deref(), body: &body })
    }
}

/// The worker's next step for a non-2xx `status`.
pub fn classify(status: u16, why: String, after: Option<RetryAfter>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        400 | 413 | 422 => Outcome::Refused(why),
        401 => Outcome::Unauthorized(why),
        _ => Outcome::Retry { why, after },
    }
}

/// Writes alert payloads to stdout, one per line.
pub fn print(payloads: &[Vec<u8>]) -> Outcome {
    let mut out = std::io::stdout().lock();
    let written = payloads.iter().try_for_each(|p| out.write_all(p).and_then(|()| out.write_all(b"\n"))).and_then(|()| out.flush());
    match written {
        Ok(()) => Outcome::Delivered,
        Err(e) => Outcome::Retry { why: format!("stdout: {e}"), after: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_sort_into_next_steps() {
        let w = || "x".to_string();
        assert_eq!(classify(204, w(), None), Outcome::Delivered);
        assert_eq!(classify(400, w(), None), Outcome::Refused(w()));
        assert_eq!(classify(413, w(), None), Outcome::Refused(w()));
        assert_eq!(classify(401, w(), None), Outcome::Unauthorized(w()));
        let later = Some(RetryAfter::Delay(Duration::from_secs(3)));
        for s in [403, 404, 408, 429, 500, 502, 503, 302, 100, 999] {
            assert_eq!(classify(s, w(), later), Outcome::Retry { why: w(), after: later }, "{s}");
        }
    }

    #[test]
    fn a_reply_is_quoted_on_one_line_and_cut() {
        let body = format!("{{\"error\":\"bad\nthing\"}}{}", "é".repeat(600));
        let o = interpret("http://s/a", Reply { status: 400, retry_after: None, body: body.as_bytes() });
        let Outcome::Refused(why) = o else { panic!("{o:?}") };
        assert!(why.starts_with("POST http://s/a: HTTP 400 {\"error\":\"bad thing\"}é"), "{why}");
        assert!(why.len() < 600 && !why.contains('\n'), "{why}");
        let o = interpret("u", Reply { status: 503, retry_after: Some(b"7"), body: b"" });
        assert_eq!(o, Outcome::Retry { why: "POST u: HTTP 503".into(), after: Some(RetryAfter::Delay(Duration::from_secs(7))) });
        assert_eq!(interpret("u", Reply { status: 201, retry_after: Some(b"\xff"), body: b"\x00" }), Outcome::Delivered);
    }
}
