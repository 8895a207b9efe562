//! The CLI's end of the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{Request, Response, VERSION};

/// How long the CLI waits for the daemon.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why the daemon could not be asked.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon listens on the socket.
    NotRunning(String),
    /// It answered something unusable, or not in time.
    Failed(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning(m) | ClientError::Failed(m) => f.write_str(m),
        }
    }
}

/// Sends `cmd` to the daemon listening on `socket` and returns its answer.
pub fn ask(socket: &Path, cmd: &str, timeout: Duration) -> Result<Response, ClientError> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| ClientError::NotRunning(format!("no lookout daemon answers on {}: {e}", socket.display())))?;
    let fail = |what: &str, e: std::io::Error| ClientError::Failed(format!("{}: {what}: {e}", socket.display()));
    stream.set_read_timeout(Some(timeout)).map_err(|e| fail("setting a timeout", e))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| fail("setting a timeout", e))?;
    let mut line = serde_json::to_vec(&Request::new(cmd)).map_err(|e| ClientError::Failed(e.to_string()))?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(|e| fail("sending the request", e))?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(|e| fail("reading the answer", e))?;
    if answer.is_empty() {
        return Err(ClientError::Failed(format!(
            "{}: the daemon closed the connection without answering (too many clients?)",
            socket.display()
        )));
    }
    let resp: Response =
        serde_json::from_str(&answer).map_err(|e| ClientError::Failed(format!("{}: unreadable answer: {e}", socket.display())))?;
    if resp.v != VERSION {
        return Err(ClientError::Failed(format!("the daemon speaks protocol version {}, this CLI {VERSION}", resp.v)));
    }
    Ok(resp)
}
