//! HTTP replies that lie (issue 11, fuzzing): a peer on a real socket answers the agent's POST
//! with whatever proptest makes — any status, `Retry-After` of any bytes, header lines up to
//! beyond 64 KiB, bodies that are longer, shorter or other than they say, garbage instead of
//! HTTP. The client never panics, returns within its timeout, and what it reports is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use lookout::uplink::backoff::MAX_RETRY_AFTER;
use lookout::uplink::sink::{BODY_QUOTED, Http, Outcome};
use proptest::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(3);

/// Serves one connection: reads the request, answers `reply`, closes.
fn serve_once(reply: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/devices/v1/devicemonitor/alert", listener.local_addr().unwrap());
    thread::spawn(move || {
        let Ok((conn, _)) = listener.accept() else { return };
        let _ = conn.set_read_timeout(Some(TIMEOUT));
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
        let mut conn = conn;
        let _ = conn.write_all(&reply);
        // Closing ends a body that has no length.
    });
    url
}

/// A reply: a status line (or garbage), headers, a body, and what `Content-Length` claims.
fn reply() -> impl Strategy<Value = Vec<u8>> {
    let status_line = prop_oneof![
        (0u16..1000).prop_map(|s| format!("HTTP/1.1 {s} Whatever\r\n").into_bytes()),
        Just(b"HTTP/1.1 429 Too Many Requests\r\n".to_vec()),
        Just(b"HTTP/1.1 503 Service Unavailable\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    let retry_after = prop_oneof![
        Just(Vec::new()),
        "[0-9]{1,25}".prop_map(|v| format!("Retry-After: {v}\r\n").into_bytes()),
        Just(b"Retry-After: Sun, 06 Nov 2094 08:49:37 GMT\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| [b"Retry-After: ".to_vec(), v, b"\r\n".to_vec()].concat()),
    ];
    let extra = prop_oneof![Just(0usize), 1usize..2000, 60_000usize..70_000];
    let body = proptest::collection::vec(any::<u8>(), 0..4000);
    let length = prop_oneof![Just(None), Just(Some(0usize)), (0usize..10_000).prop_map(Some)];
    (status_line, retry_after, extra, body, length, any::<bool>()).prop_map(|(status, retry, extra, body, length, chunked)| {
        let mut r = status;
        r.extend(retry);
        if extra > 0 {
            r.extend(format!("X-Padding: {}\r\n", "p".repeat(extra)).into_bytes());
        }
        match (chunked, length) {
            (true, _) => r.extend(b"Transfer-Encoding: chunked\r\n"),
            (false, Some(n)) => r.extend(format!("Content-Length: {n}\r\n").into_bytes()),
            (false, None) => {}
        }
        r.extend(b"\r\n");
        r.extend(body);
        r
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_reply_comes_back_as_a_bounded_outcome_in_time(reply in reply()) {
        let url = serve_once(reply);
        let started = Instant::now();
        let outcome = Http::new().post(&url, "TOKEN", b"[]", TIMEOUT);
        let took = started.elapsed();
        prop_assert!(took < TIMEOUT + Duration::from_secs(2), "took {:?}", took);
        let why = match &outcome {
            Outcome::Delivered => String::new(),
            Outcome::Refused(w) | Outcome::Unauthorized(w) => w.clone(),
            Outcome::Retry { why, after } => {
                let delay = after.map(|a| a.delay(lookout::time::Wall::default()));
                prop_assert!(delay.is_none_or(|d| d <= MAX_RETRY_AFTER));
                why.clone()
            }
        };
        // The URL, the status, at most BODY_QUOTED quoted bytes (3 each once made valid), or
        // the client's own error message.
        prop_assert!(why.len() <= url.len() + 3 * BODY_QUOTED + 200, "{} bytes: {}", why.len(), why);
        let one_line = !why.chars().any(char::is_control);
        prop_assert!(one_line, "{:?}", why);
    }
}
