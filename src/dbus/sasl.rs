//! The SASL EXTERNAL handshake a D-Bus client does before its first message: a NUL byte,
//! `AUTH EXTERNAL <uid in hex>`, the server's `OK <guid>`, then `BEGIN`. Pure: bytes in, bytes
//! out.

/// Longest server line accepted.
const MAX_LINE: usize = 512;

/// The first bytes the client sends.
pub fn hello(uid: u32) -> Vec<u8> {
    let hex: String = uid.to_string().bytes().map(|b| format!("{b:02x}")).collect();
    format!("\0AUTH EXTERNAL {hex}\r\n").into_bytes()
}

/// What the handshake needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// More bytes from the server.
    NeedMore,
    /// Authenticated: send `BEGIN\r\n`; `leftover` bytes already belong to the message stream.
    Done {
        /// Bytes after the server's OK line.
        leftover: Vec<u8>,
    },
}

/// Reads the server's answer from `buf` (everything received so far).
pub fn on_bytes(buf: &[u8]) -> Result<Step, String> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() > MAX_LINE {
            return Err("the server's authentication line is too long".into());
        }
        return Ok(Step::NeedMore);
    };
    let line = String::from_utf8_lossy(&buf[..end]);
    if line.starts_with("OK ") || line == "OK" {
        return Ok(Step::Done { leftover: buf[end + 2..].to_vec() });
    }
    Err(format!("authentication refused: {}", line.chars().take(120).collect::<String>()))
}

/// The line that ends the handshake.
pub const BEGIN: &[u8] = b"BEGIN\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake() {
        assert_eq!(hello(0), b"\0AUTH EXTERNAL 30\r\n");
        assert_eq!(hello(1000), b"\0AUTH EXTERNAL 31303030\r\n");
        assert_eq!(on_bytes(b"OK 1234"), Ok(Step::NeedMore));
        assert_eq!(on_bytes(b"OK 1234\r\nl\x01"), Ok(Step::Done { leftover: b"l\x01".to_vec() }));
        assert!(on_bytes(b"REJECTED EXTERNAL\r\n").unwrap_err().contains("REJECTED"));
        assert!(on_bytes(&[b'x'; 600]).is_err());
    }
}
