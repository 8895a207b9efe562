//! The control protocol: the client sends one JSON line, the daemon answers one JSON line and
//! closes. Both carry the protocol version `v`; a daemon refuses a version it does not speak.

use serde::{Deserialize, Serialize};

use super::status::Status;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// Longest request line the daemon reads.
pub const MAX_REQUEST: usize = 4096;
/// Longest answer line the CLI reads (a `status` of thousands of checks fits many times).
pub const MAX_RESPONSE: usize = 16 << 20;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version.
    pub v: u32,
    /// `status` or `reload`.
    pub cmd: String,
}

impl Request {
    /// A request of this build's version.
    pub fn new(cmd: &str) -> Self {
        Request { v: VERSION, cmd: cmd.into() }
    }
}

/// The daemon's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// Protocol version.
    pub v: u32,
    /// Whether the request was understood and done.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<Status>>,
    /// For `reload`: every problem found in the configuration (empty: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
}

impl Response {
    /// A refusal.
    pub fn error(message: impl Into<String>) -> Self {
        Response { v: VERSION, ok: false, error: Some(message.into()), status: None, problems: None }
    }

    /// The answer to `status`.
    pub fn status(status: Status) -> Self {
        Response { v: VERSION, ok: true, error: None, status: Some(Box::new(status)), problems: None }
    }

    /// The answer to `reload`.
    pub fn reloaded(problems: Vec<String>) -> Self {
        Response { v: VERSION, ok: true, error: None, status: None, problems: Some(problems) }
    }

    /// The response as one line.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_else(|_| br#"{"v":1,"ok":false,"error":"cannot encode"}"#.to_vec());
        v.push(b'\n');
        v
    }
}

/// Reads the daemon's answer line: JSON of this protocol version, at most [`MAX_RESPONSE`]
/// bytes. The error says what is wrong with it.
pub fn parse_response(line: &[u8]) -> Result<Response, String> {
    if line.len() >= MAX_RESPONSE && !line.ends_with(b"\n") {
        return Err(format!("the answer is longer than {MAX_RESPONSE} bytes"));
    }
    let resp: Response = serde_json::from_slice(line).map_err(|e| bounded(format!("unreadable answer: {e}")))?;
    if resp.v != VERSION {
        return Err(format!("the daemon speaks protocol version {}, this CLI {VERSION}", resp.v));
    }
    Ok(resp)
}

/// What the daemon makes of a request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// `status`.
    Status,
    /// `reload`: re-read the configuration now.
    Reload,
    /// `take-inbox`: spool the alerts waiting in the inbox now (`lookout send-alert`).
    TakeInbox,
    /// Not a request this daemon serves; the message says why.
    Bad(String),
}

/// The longest message a refusal carries: whatever was sent, the answer stays small.
pub const MAX_ERROR: usize = 200;

/// `message`, cut to at most [`MAX_ERROR`] bytes (at a character boundary) and marked if cut.
fn bounded(message: String) -> String {
    if message.len() <= MAX_ERROR {
        return message;
    }
    let mut end = MAX_ERROR - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// Reads a request line (without its newline). A refusal's message is bounded: serde's errors
/// may quote what was sent.
pub fn parse_request(line: &[u8]) -> Parsed {
    let req: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => return Parsed::Bad(bounded(format!("not a request: {e}"))),
    };
    if req.v != VERSION {
        return Parsed::Bad(format!("protocol version {} is not supported (this daemon speaks {VERSION})", req.v));
    }
    match req.cmd.as_str() {
        "status" => Parsed::Status,
        "reload" => Parsed::Reload,
        "take-inbox" => Parsed::TakeInbox,
        other => Parsed::Bad(bounded(format!("unknown command {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_versioned() {
        assert_eq!(parse_request(br#"{"v":1,"cmd":"status"}"#), Parsed::Status);
        assert_eq!(parse_request(br#"{"v":1,"cmd":"reload"}"#), Parsed::Reload);
        assert!(matches!(parse_request(br#"{"v":2,"cmd":"status"}"#), Parsed::Bad(m) if m.contains("version 2")));
        assert!(matches!(parse_request(br#"{"v":1,"cmd":"reboot"}"#), Parsed::Bad(m) if m.contains("reboot")));
        assert!(matches!(parse_request(b"\xff garbage"), Parsed::Bad(_)));
        let long = format!(r#"{{"v":1,"cmd":"{}"}}"#, "x".repeat(4000));
        assert!(matches!(parse_request(long.as_bytes()), Parsed::Bad(m) if m.len() <= MAX_ERROR && m.ends_with("...")));
        let quoted = format!(r#"{{"v":"{}","cmd":"status"}}"#, "é".repeat(2000));
        assert!(matches!(parse_request(quoted.as_bytes()), Parsed::Bad(m) if m.len() <= MAX_ERROR && m.starts_with("not a request")));
        assert_eq!(serde_json::to_string(&Request::new("status")).unwrap(), r#"{"v":1,"cmd":"status"}"#);
    }

    #[test]
    fn responses_are_versioned_and_bounded() {
        let ok = Response::reloaded(vec!["a problem".into()]).to_line();
        assert_eq!(parse_response(&ok).unwrap().problems, Some(vec!["a problem".to_string()]));
        assert!(parse_response(br#"{"v":2,"ok":true}"#).unwrap_err().contains("protocol version 2"));
        assert!(parse_response(b"\xff{").unwrap_err().starts_with("unreadable answer"));
        assert!(parse_response(&vec![b' '; MAX_RESPONSE]).unwrap_err().contains("longer than"));
    }
}
