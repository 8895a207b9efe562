//! The CLI's end of the control socket.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::protocol::{MAX_RESPONSE, Request, Response};

/// How long the CLI waits for the daemon.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why the daemon could not be asked.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon listens on the socket.
    NotRunning(String),
    /// Something listens but did not answer in time (a daemon stopped, hung or still starting).
    NoAnswer(String),
    /// The socket is not ours to use (it is root's, mode 0600).
    Denied(String),
    /// It answered something unusable.
    Failed(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning(m) | ClientError::NoAnswer(m) | ClientError::Denied(m) | ClientError::Failed(m) => f.write_str(m),
        }
    }
}

impl ClientError {
    /// The exit status for the CLI: 3 when no daemon answers (none, or none in time), else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::NotRunning(_) | ClientError::NoAnswer(_) => 3,
            ClientError::Denied(_) | ClientError::Failed(_) => 1,
        }
    }
}

/// What a failed `connect` means.
fn connect_error(socket: &Path, e: &io::Error) -> ClientError {
    let at = socket.display();
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            ClientError::Denied(format!("permission denied on {at}: the control socket is root's (mode 0600); run this as root"))
        }
        io::ErrorKind::NotFound => ClientError::NotRunning(format!("no lookout daemon answers on {at}: the socket does not exist")),
        io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning(format!("no lookout daemon answers on {at}: nothing listens on it (a daemon that stopped left it)"))
        }
        _ => ClientError::NotRunning(format!("no lookout daemon answers on {at}: {e}")),
    }
}

/// What a failed read or write on the connection means.
fn io_error(socket: &Path, what: &str, timeout: Duration, e: &io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::NoAnswer(format!(
            "no answer from the lookout daemon on {} within {} s ({what}): it is stopped, hung or still starting",
            socket.display(),
            timeout.as_secs_f32()
        )),
        _ => ClientError::Failed(format!("{}: {what}: {e}", socket.display())),
    }
}

/// Connects within `timeout`. A connect to a listener whose backlog is full (a daemon that is
/// stopped) blocks, and std has no connect timeout for Unix sockets: the connect runs on a
/// thread that is left behind if it does not finish in time (the CLI exits soon after).
fn connect(socket: &Path, timeout: Duration) -> Result<UnixStream, ClientError> {
    let (tx, rx) = mpsc::channel();
    let path = socket.to_path_buf();
    std::thread::Builder::new()
        .name("connect".into())
        .spawn(move || {
            let _ = tx.send(UnixStream::connect(&path));
        })
        .map_err(|e| ClientError::Failed(format!("cannot start a thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(connect_error(socket, &e)),
        Err(_) => Err(io_error(socket, "connecting", timeout, &io::Error::from(io::ErrorKind::TimedOut))),
    }
}

/// Sends `cmd` to the daemon listening on `socket` and returns its answer.
pub fn ask(socket: &Path, cmd: &str, timeout: Duration) -> Result<Response, ClientError> {
    let stream = connect(socket, timeout)?;
    let fail = |what: &str, e: io::Error| io_error(socket, what, timeout, &e);
    stream.set_read_timeout(Some(timeout)).map_err(|e| fail("setting a timeout", e))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| fail("setting a timeout", e))?;
    let mut line = serde_json::to_vec(&Request::new(cmd)).map_err(|e| ClientError::Failed(e.to_string()))?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(|e| fail("sending the request", e))?;
    let mut answer = Vec::new();
    BufReader::new((&stream).take(MAX_RESPONSE as u64)).read_until(b'\n', &mut answer).map_err(|e| fail("reading the answer", e))?;
    if answer.is_empty() {
        return Err(ClientError::Failed(format!(
            "{}: the daemon closed the connection without answering (too many clients?)",
            socket.display()
        )));
    }
    super::protocol::parse_response(&answer).map_err(|e| ClientError::Failed(format!("{}: {e}", socket.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_why_no_daemon_answers() {
        let tmp = crate::testutil::TempDir::new("client");
        let sock = tmp.path().join("lookout.sock");
        let e = ask(&sock, "status", Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, ClientError::NotRunning(_)) && e.to_string().contains("does not exist"), "{e}");
        // A stale socket: bound, then the listener gone.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let e = ask(&sock, "status", Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, ClientError::NotRunning(_)) && e.to_string().contains("nothing listens"), "{e}");
        std::fs::remove_file(&sock).unwrap();
        // A listener that never answers (a daemon stopped or still starting).
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = ask(&sock, "status", Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().starts_with("no answer from the lookout daemon on ") && e.to_string().contains("within 0.2 s"), "{e}");
    }
}
