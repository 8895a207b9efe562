//! Property-based fuzzing of the control protocol: any request line and any answer line is read
//! without a panic into a request, an answer, or a refusal whose message is bounded (serde's
//! errors quote what was sent); what this build writes reads back the same. Then a running
//! daemon is fed such lines on its socket: each gets one bounded answer, and the daemon keeps
//! serving `status`.
//!
//! Cases: a modest number by default so `cargo test` stays fast; more with
//! `PROPTEST_CASES=100000 cargo test --release --test fuzz_control`.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use common::*;
use lookout::control::protocol::{MAX_ERROR, MAX_REQUEST, Parsed, Request, Response, parse_request, parse_response};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn cases(default: u32) -> Config {
    let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    Config { cases: n, failure_persistence: None, ..Config::default() }
}

/// Lines that look like requests: JSON objects with the right keys and wrong values, wrong
/// keys, deep nesting, long strings, and raw bytes.
fn request_line() -> impl Strategy<Value = Vec<u8>> {
    let json_value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        "\\PC{0,300}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("null".to_string()),
        Just("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]".to_string()),
        Just("1e999".to_string()),
        Just("\"status\"".to_string()),
        Just("\"reload\"".to_string()),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        (json_value.clone(), json_value, "[a-z]{0,4}")
            .prop_map(|(v, c, extra)| format!(r#"{{"v":{v},"cmd":{c},"{extra}":1}}"#).into_bytes()),
        (any::<u32>(), "\\PC{0,5000}").prop_map(|(v, cmd)| serde_json::to_vec(&Request { v, cmd }).unwrap()),
    ]
}

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn any_request_line_is_read_or_refused_briefly(line in request_line()) {
        match parse_request(&line) {
            Parsed::Status | Parsed::Reload | Parsed::TakeInbox => {}
            Parsed::Bad(why) => prop_assert!(why.len() <= MAX_ERROR, "{} bytes: {why}", why.len()),
        }
    }

    #[test]
    fn requests_this_build_writes_read_back(cmd in prop_oneof![Just("status".to_string()), Just("reload".to_string()), "\\PC{0,40}"]) {
        let line = serde_json::to_vec(&Request::new(&cmd)).unwrap();
        let got = parse_request(&line);
        match cmd.as_str() {
            "status" => prop_assert_eq!(got, Parsed::Status),
            "reload" => prop_assert_eq!(got, Parsed::Reload),
            "take-inbox" => prop_assert_eq!(got, Parsed::TakeInbox),
            _ => prop_assert!(matches!(got, Parsed::Bad(m) if m.starts_with("unknown command"))),
        }
    }

    #[test]
    fn any_answer_line_is_read_or_refused_briefly(line in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Err(why) = parse_response(&line) {
            prop_assert!(why.len() <= MAX_ERROR, "{why}");
        }
    }

    #[test]
    fn answers_this_build_writes_read_back(error in "\\PC{0,200}", problems in prop::collection::vec("\\PC{0,50}", 0..5)) {
        let got = parse_response(&Response::error(error.clone()).to_line()).unwrap();
        prop_assert_eq!((got.ok, got.error), (false, Some(error)));
        let got = parse_response(&Response::reloaded(problems.clone()).to_line()).unwrap();
        prop_assert_eq!(got.problems, Some(problems));
    }
}

/// One exchange on the daemon's socket: send `line` and a newline, read the answer.
fn exchange(socket: &std::path::Path, line: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(PATIENCE))?;
    // The daemon may answer a line longer than it reads and close before all of it is written.
    let _ = s.write_all(line).and_then(|()| s.write_all(b"\n"));
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    Ok(answer)
}

#[test]
fn a_running_daemon_answers_any_line_briefly_and_keeps_serving() {
    let root = Root::new("fuzz-control");
    let daemon = Daemon::start(&root, None);
    let socket = root.path().join("run/lookout.sock");
    let mut runner = proptest::test_runner::TestRunner::new(cases(48));
    runner
        .run(&request_line().prop_filter("one line", |l| !l.contains(&b'\n')), |line| {
            let answer = match exchange(&socket, &line) {
                Ok(a) => a,
                // Answered and closed with the rest of a too-long line unread: the kernel resets
                // the connection, and the client may lose the answer.
                Err(e) if line.len() > MAX_REQUEST && e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(TestCaseError::fail(format!("no answer: {e}"))),
            };
            let resp = parse_response(&answer).map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&answer))))?;
            if !resp.ok {
                let error = resp.error.unwrap_or_default();
                prop_assert!(error.len() <= MAX_ERROR, "{error}");
            }
            Ok(())
        })
        .unwrap();
    // Still serving, and it counted what it refused.
    let status = parse_response(&exchange(&socket, br#"{"v":1,"cmd":"status"}"#).unwrap()).unwrap();
    assert!(status.ok);
    let status = serde_json::to_value(status.status.unwrap()).unwrap();
    assert!(status["agent"]["control_bad_requests"].as_u64().unwrap() > 0, "{status}");
    assert!(daemon.terminate().success());
}
