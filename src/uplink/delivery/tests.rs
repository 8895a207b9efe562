//! The delivery machine as a dialogue at exact times: what it does at `t`, what the server
//! answers, what it does next. Jitter is seeded; the expected waits come from a second
//! generator with the same seed.

use crate::time::Wall;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::uplink::backoff::{Backoff, FLOOR, Jitter, MAX_RETRY_AFTER, RetryAfter};
use crate::uplink::index::{Bounds, Index, Location, Meta};
use crate::uplink::sink::ALERT_PATH;
use crate::uplink::spool::Fsync;
use crate::uplink::{Credentials, Inner, SHUTDOWN_FLUSH, TOKEN_WAIT, UplinkSettings};

/// Wall-clock ms at monotonic 0.
const W0: u64 = 1_800_000_000_000;

/// The wall clock `ms` after [`W0`].
fn w(ms: u64) -> Wall {
    Wall::from_unix_ms(W0 + ms)
}
const SEED: u64 = 0x5eed;
const S: fn(u64) -> Duration = Duration::from_secs;

fn at(ms: u64) -> Now {
    Now { mono: Instant::from_millis(ms), wall: w(ms) }
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn settings() -> UplinkSettings {
    UplinkSettings {
        alert_url: ALERT_PATH.into(),
        max_interval: S(300),
        resend_interval: S(60),
        confpush_interval: S(3600),
        timeout: S(30),
        bounds: Bounds { max_count: 100_000, max_bytes: 1 << 40, max_age_ms: 0 },
        fsync: Fsync::Never,
        labels: Vec::new(),
        device: None,
        lease: S(300),
    }
}

fn server(token: &str, generation: u64) -> Credentials {
    Credentials { server: "http://proxy".into(), token: token.into(), generation, problem: None }
}

/// A delivery machine and the state it shares with the reactor.
struct Rig {
    d: Delivery,
    g: Inner,
}

impl Rig {
    fn new(http: bool, mender: bool, creds: Credentials) -> Rig {
        Rig { d: Delivery::new(http, mender, Jitter::seeded(SEED)), g: Inner::new(Index::new(0), settings(), creds) }
    }

    fn to_server() -> Rig {
        Rig::new(true, false, server("T", 1))
    }

    /// `n` alerts of `bytes` payload bytes each, accepted now (held in memory: no disk needed).
    fn alerts(&mut self, n: usize, bytes: usize) {
        for _ in 0..n {
            let seq = self.g.index.next_seq();
            let payload: Arc<[u8]> = format!("{{\"n\":{seq},\"p\":\"{}\"}}", "x".repeat(bytes.saturating_sub(20))).into_bytes().into();
            self.g.index.insert(Meta {
                seq,
                key: seq,
                label: format!("#{seq}").into(),
                bytes: payload.len() as u64 + 20,
                at: w(0),
                loc: Location::Memory(payload),
                superseded: false,
                in_flight: 0,
                pending: 0,
            });
        }
    }

    fn step(&mut self, ms: u64) -> Action {
        self.d.step(at(ms), &mut self.g)
    }

    /// Insists the next step at `ms` sends alerts; returns their seqs and the request.
    fn send(&mut self, ms: u64) -> (Vec<u64>, Option<Request>) {
        match self.step(ms) {
            Action::Send { batch, request } => (batch.iter().map(|b| b.seq).collect(), request),
            other => panic!("at {ms}: expected a batch, got {other:?}"),
        }
    }

    fn seqs(&mut self, ms: u64) -> Vec<u64> {
        self.send(ms).0
    }

    fn reply(&mut self, ms: u64, o: Outcome) {
        self.d.on_outcome(at(ms), &mut self.g, o);
    }

    fn waiting(&self) -> usize {
        self.g.index.len()
    }
}

fn retry(why: &str) -> Outcome {
    Outcome::Retry { why: why.into(), after: None }
}

fn refused() -> Outcome {
    Outcome::Refused("HTTP 400".into())
}

/// The waits a fresh backoff with the test seed gives for these failures in a row.
fn expected_waits(cap: Duration, n: usize) -> Vec<u64> {
    let mut b = Backoff::new(Jitter::seeded(SEED));
    (0..n).map(|_| ms(b.next(cap, S(60), None))).collect()
}

#[test]
fn batches_go_oldest_first_within_count_and_bytes_then_the_worker_sleeps() {
    let mut r = Rig::to_server();
    assert_eq!(r.step(0), Action::Wait(None), "nothing to do: no timeout, no wake-ups");
    r.alerts(250, 50);
    let (first, request) = r.send(0);
    assert_eq!(first, (1..=100).collect::<Vec<_>>(), "at most MAX_BATCH alerts, in order");
    assert_eq!(request, Some(Request { url: "http://proxy/api/devices/v1/devicemonitor/alert".into(), token: "T".into(), timeout: S(30) }));
    assert_eq!(r.g.dests[0].worker.in_flight, 100);
    r.reply(10, Outcome::Delivered);
    assert_eq!(r.g.dests[0].worker.last_delivery, Some(w(10)));
    assert_eq!(r.seqs(10), (101..=200).collect::<Vec<_>>());
    r.reply(20, Outcome::Delivered);
    assert_eq!(r.seqs(20), (201..=250).collect::<Vec<_>>());
    r.reply(30, Outcome::Delivered);
    assert_eq!(r.step(30), Action::Wait(None));
    assert_eq!((r.waiting(), r.g.index.counters.delivered, r.g.dests[0].requests.requests), (0, 250, 3));

    // Bytes: 200 KiB alerts go two at a time (512 KiB); one bigger than that goes alone.
    r.alerts(3, 200 * 1024);
    r.alerts(1, 600 * 1024);
    assert_eq!(r.seqs(40), vec![251, 252]);
    r.reply(40, Outcome::Delivered);
    assert_eq!(r.seqs(40), vec![253]);
    r.reply(40, Outcome::Delivered);
    assert_eq!(r.seqs(40), vec![254], "a bigger alert alone");
}

#[test]
fn a_refused_record_is_found_by_halving_and_only_it_is_dropped() {
    let mut r = Rig::to_server();
    r.alerts(8, 10);
    // Record 6 is the one the server refuses: every batch holding it gets a 400.
    let answer = |seqs: &[u64]| if seqs.contains(&6) { refused() } else { Outcome::Delivered };
    let mut sent = Vec::new();
    for _ in 0..7 {
        let seqs = r.seqs(0);
        let o = answer(&seqs);
        sent.push(seqs);
        r.reply(0, o);
    }
    assert_eq!(sent, vec![vec![1, 2, 3, 4, 5, 6, 7, 8], vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![5, 6], vec![5], vec![6], vec![7, 8]]);
    assert_eq!(r.step(0), Action::Wait(None));
    let c = r.g.index.counters;
    assert_eq!(
        (c.delivered, c.rejected, r.g.dests[0].requests.bisections, r.g.dests[0].requests.failures),
        (7, 1, 3, 0),
        "no backoff while bisecting"
    );
    assert!(r.g.dests[0].worker.last_error.as_ref().is_some_and(|(at, why)| *at == w(0) && why == "HTTP 400"));
}

#[test]
fn records_refused_alone_three_times_in_a_row_make_the_server_suspect() {
    let mut r = Rig::to_server();
    r.alerts(4, 10);
    let mut sent = Vec::new();
    while r.g.index.counters.rejected < MAX_REFUSED_IN_A_ROW as u64 {
        sent.push(r.seqs(0));
        r.reply(0, refused());
    }
    assert_eq!(sent, vec![vec![1, 2, 3, 4], vec![1, 2], vec![1], vec![2, 3, 4], vec![2], vec![3, 4], vec![3]]);
    // The fourth refused alone: the server, not the record. Kept, and retried after a backoff.
    assert_eq!(r.seqs(0), vec![4]);
    r.reply(0, refused());
    assert_eq!(r.waiting(), 1, "kept");
    let wait = expected_waits(S(300), 1)[0];
    assert_eq!(r.step(0), Action::Wait(Some(t(wait))));
    assert_eq!(r.seqs(wait), vec![4]);
    r.reply(wait, Outcome::Delivered);
    assert_eq!(r.g.index.counters.rejected, 3);
}

#[test]
fn a_refused_token_asks_the_mender_client_and_waits_for_a_newer_one() {
    let mut r = Rig::new(true, true, server("T1", 1));
    r.alerts(2, 10);
    assert_eq!(r.send(0).1.map(|q| q.token).as_deref(), Some("T1"));
    r.reply(100, Outcome::Unauthorized("HTTP 401".into()));
    assert_eq!(r.step(100), Action::AskToken);
    assert!(std::mem::take(&mut r.g.refresh_wanted), "the reactor is asked");
    let backoff = expected_waits(S(300), 1)[0];
    assert_eq!(r.step(100), Action::Wait(Some(t(100 + backoff))));
    // The backoff is over but no new token came: wait for it, at most TOKEN_WAIT.
    let token_by = 100 + ms(TOKEN_WAIT);
    assert_eq!(r.step(100 + backoff), Action::Wait(Some(t(token_by))));
    assert!(r.g.dests[0].worker.waiting_for.as_deref().is_some_and(|w| w.contains("a new token")));
    assert_eq!(r.g.dests[0].requests.unauthorized, 1);
    // It comes: sent at once with it.
    r.g.creds = server("T2", 2);
    let (seqs, request) = r.send(5_000);
    assert_eq!((seqs, request.map(|q| q.token)), (vec![1, 2], Some("T2".to_string())));
    assert_eq!(r.g.dests[0].worker.waiting_for, None);

    // Another 401, and no new token within TOKEN_WAIT: the old one is tried again.
    r.reply(6_000, Outcome::Unauthorized("HTTP 401".into()));
    assert_eq!(r.step(6_000), Action::AskToken);
    assert_eq!(r.step(6_000 + ms(TOKEN_WAIT) - 1), Action::Wait(Some(t(6_000 + ms(TOKEN_WAIT)))));
    assert_eq!(r.send(6_000 + ms(TOKEN_WAIT)).1.map(|q| q.token).as_deref(), Some("T2"));
}

#[test]
fn a_refused_command_line_token_only_backs_off() {
    let mut r = Rig::to_server();
    r.alerts(1, 10);
    r.seqs(0);
    r.reply(0, Outcome::Unauthorized("HTTP 401".into()));
    let wait = expected_waits(S(300), 1)[0];
    assert_eq!(r.step(0), Action::Wait(Some(t(wait))), "no Mender client to ask");
    assert!(!r.g.refresh_wanted);
    assert_eq!(r.seqs(wait), vec![1]);
}

#[test]
fn without_a_token_alerts_wait_and_a_token_is_asked_for_every_resend_interval() {
    let mut r = Rig::new(true, true, Credentials { problem: Some("no token yet".into()), ..Credentials::default() });
    assert_eq!(r.step(0), Action::Wait(None), "nothing waits: nothing to ask for, no wake-ups");
    assert_eq!(r.g.dests[0].worker.waiting_for.as_deref(), Some("no token yet"));
    r.alerts(1, 10);
    assert_eq!(r.step(1_000), Action::AskToken);
    assert_eq!(r.step(1_000), Action::Wait(Some(t(61_000))));
    assert_eq!(r.step(60_999), Action::Wait(Some(t(120_999))), "not asked again before the interval");
    assert_eq!(r.step(61_000), Action::AskToken);
    r.g.creds = server("T1", 1);
    assert_eq!(r.seqs(61_500), vec![1]);
}

#[test]
fn retry_after_in_seconds_is_a_floor_for_the_next_attempt() {
    let mut r = Rig::to_server();
    r.alerts(1, 10);
    r.seqs(0);
    let after = Some(RetryAfter::Delay(S(120)));
    r.reply(500, Outcome::Retry { why: "HTTP 429".into(), after });
    assert_eq!(r.step(500), Action::Wait(Some(t(120_500))));
    assert_eq!(r.g.dests[0].worker.retry_at, Some(w(120_500)), "status shows the next try");
    assert_eq!(r.step(120_499), Action::Wait(Some(t(120_500))));
    assert_eq!(r.seqs(120_500), vec![1]);
    assert_eq!(r.g.dests[0].worker.retry_at, None);
}

#[test]
fn retry_after_as_an_http_date_counts_from_the_wall_clock() {
    let mut r = Rig::to_server();
    r.alerts(1, 10);
    r.seqs(0);
    // The date is 45 s after the wall-clock time of the reply.
    r.reply(2_000, Outcome::Retry { why: "HTTP 503".into(), after: Some(RetryAfter::At(w(2_000 + 45_000))) });
    assert_eq!(r.step(2_000), Action::Wait(Some(t(47_000))));
    r.seqs(47_000);
    // A date in the past is no floor: the jittered backoff alone.
    r.reply(48_000, Outcome::Retry { why: "HTTP 503".into(), after: Some(RetryAfter::At(w(0))) });
    let waits = expected_waits(S(300), 2);
    assert_eq!(r.step(48_000), Action::Wait(Some(t(48_000 + waits[1]))));
    // And a date a day ahead waits at most an hour.
    r.seqs(48_000 + waits[1]);
    r.reply(50_000, Outcome::Retry { why: "HTTP 503".into(), after: Some(RetryAfter::At(w(86_400_000))) });
    assert_eq!(r.step(50_000), Action::Wait(Some(t(50_000 + ms(MAX_RETRY_AFTER)))));
}

#[test]
fn server_errors_back_off_with_full_jitter_up_to_the_cap() {
    let mut r = Rig::to_server();
    r.g.settings.max_interval = S(5);
    r.alerts(1, 10);
    let expected = expected_waits(S(5), 10);
    let mut now = 0;
    for (i, wait) in expected.iter().enumerate() {
        assert_eq!(r.seqs(now), vec![1], "attempt {i} at {now}");
        r.reply(now, retry("HTTP 503"));
        let ceiling = (1_000u64 << i.min(20)).min(5_000);
        assert!(*wait >= ms(FLOOR) && *wait <= ceiling, "failure {i}: {wait} ms over a ceiling of {ceiling} ms");
        assert_eq!(r.step(now), Action::Wait(Some(t(now + wait))));
        now += wait;
    }
    assert_eq!(r.g.dests[0].requests.failures, 10);
    assert!(expected.windows(2).any(|w| w[1] < w[0]), "jittered, not monotonic: {expected:?}");
    // A delivery starts the ceilings over.
    r.seqs(now);
    r.reply(now, Outcome::Delivered);
    r.alerts(1, 10);
    r.seqs(now);
    r.reply(now, retry("HTTP 503"));
    let Action::Wait(Some(next)) = r.step(now) else { panic!() };
    assert!(t(now).until(next) <= 1_000, "back to the first ceiling");

    // SEND_ALERT_MAX_INTERVAL_S=0: no backoff, every DEFAULT_ALERT_STORE_RESEND_INTERVAL_S.
    r.g.settings.max_interval = Duration::ZERO;
    let now = next.as_millis();
    r.seqs(now);
    r.reply(now, retry("HTTP 503"));
    assert_eq!(r.step(now), Action::Wait(Some(t(now + 60_000))));
}

#[test]
fn a_stop_during_a_request_makes_one_last_attempt_then_exits() {
    let mut r = Rig::to_server();
    r.alerts(3, 10);
    r.seqs(0);
    r.g.stop = true; // SIGTERM while the request is under way
    r.reply(1_000, retry("connection refused"));
    // One last attempt at once (the backoff is dropped), within the flush's time.
    let (seqs, request) = r.send(1_000);
    assert_eq!((seqs, request.map(|q| q.timeout)), (vec![1, 2, 3], Some(SHUTDOWN_FLUSH)));
    r.reply(1_200, retry("connection refused"));
    assert_eq!(r.step(1_200), Action::Exit);
    assert_eq!(r.g.dests[0].requests.left_at_exit, 3);

    // Delivered during the stop: the rest goes too, then exit; nothing waits past the flush.
    let mut r = Rig::to_server();
    r.alerts(150, 10);
    r.g.stop = true;
    let (first, request) = r.send(0);
    assert_eq!((first.len(), request.map(|q| q.timeout)), (100, Some(SHUTDOWN_FLUSH)));
    r.reply(4_950, Outcome::Delivered);
    let (rest, request) = r.send(4_950);
    assert_eq!((rest.len(), request.map(|q| q.timeout)), (50, Some(Duration::from_millis(100))), "the least a request gets");
    r.reply(5_050, retry("timeout"));
    assert_eq!(r.step(5_050), Action::Exit);
    assert_eq!(r.g.dests[0].requests.left_at_exit, 50);

    // A stop while backing off: the attempt is made now, not at the retry time.
    let mut r = Rig::to_server();
    r.alerts(1, 10);
    r.seqs(0);
    r.reply(0, Outcome::Retry { why: "HTTP 429".into(), after: Some(RetryAfter::Delay(S(600))) });
    r.g.stop = true;
    assert_eq!(r.seqs(10), vec![1]);
    r.reply(20, Outcome::Delivered);
    assert_eq!(r.step(20), Action::Exit);
    assert_eq!(r.g.dests[0].requests.left_at_exit, 0);

    // The flush's time runs out while waiting for a token: exit at the deadline.
    let mut r = Rig::new(true, true, server("T1", 1));
    r.alerts(1, 10);
    r.seqs(0);
    r.reply(0, Outcome::Unauthorized("HTTP 401".into()));
    r.g.stop = true;
    assert_eq!(r.seqs(100), vec![1], "the stop drops the wait for a token: one last try");
    r.reply(200, Outcome::Unauthorized("HTTP 401".into()));
    assert_eq!(r.step(200), Action::Exit);
}

#[test]
fn stdout_gets_every_batch_and_no_configuration() {
    let mut r = Rig::new(false, false, Credentials::default());
    r.g.config = Some((Arc::from(&b"[]"[..]), 1));
    r.alerts(2, 10);
    assert_eq!(r.send(0), (vec![1, 2], None));
    r.reply(0, Outcome::Delivered);
    assert_eq!(r.step(0), Action::Wait(None), "no configuration push without a server");
    r.alerts(1, 10);
    r.seqs(5);
    r.reply(5, retry("stdout: Broken pipe"));
    let wait = expected_waits(S(300), 1)[0];
    assert_eq!(r.step(5), Action::Wait(Some(t(5 + wait))));
    r.g.stop = true;
    assert_eq!(r.seqs(6), vec![3]);
    r.reply(6, Outcome::Delivered);
    assert_eq!(r.step(6), Action::Exit);
}

#[test]
fn the_configuration_is_pushed_at_start_on_change_and_every_interval() {
    let mut r = Rig::to_server();
    let body: Arc<[u8]> = Arc::from(&b"[1]"[..]);
    r.g.config = Some((Arc::clone(&body), 1));
    let push = |r: &mut Rig, ms: u64| match r.step(ms) {
        Action::PushConfig { body, request } => {
            assert_eq!(request.url, "http://proxy/api/devices/v1/devicemonitor/config");
            body
        }
        other => panic!("at {ms}: expected a push, got {other:?}"),
    };
    assert_eq!(push(&mut r, 0), body);
    r.reply(50, Outcome::Delivered);
    assert_eq!(r.g.dests[0].requests.config_pushes, 1);
    assert_eq!(r.step(50), Action::Wait(Some(t(3_600_050))), "the next periodic push, nothing else");
    push(&mut r, 3_600_050);
    r.reply(3_600_060, Outcome::Delivered);
    // A change: pushed at once.
    r.g.config = Some((Arc::from(&b"[2]"[..]), 2));
    assert_eq!(&*push(&mut r, 3_700_000), b"[2]");
    // A failed push waits for the resend interval (or Retry-After, if longer) and does not hold
    // alerts up.
    r.reply(3_700_000, Outcome::Retry { why: "HTTP 404".into(), after: Some(RetryAfter::Delay(S(5))) });
    r.alerts(1, 10);
    assert_eq!(r.seqs(3_700_001), vec![1]);
    r.reply(3_700_002, Outcome::Delivered);
    assert_eq!(r.step(3_700_002), Action::Wait(Some(t(3_760_000))));
    push(&mut r, 3_760_000);
    // Refused: not again until it changes or the interval passes (and no spinning on the
    // retry time that has passed: that was a busy loop before).
    r.reply(3_760_000, refused());
    assert_eq!(r.step(3_760_000), Action::Wait(Some(t(7_360_000))));
    // CONFPUSH_INTERVAL=0: only on change.
    r.g.settings.confpush_interval = Duration::ZERO;
    assert_eq!(r.step(3_760_001), Action::Wait(None));
    // A 401 on the push asks for a token like an alert's would.
    let mut m = Rig::new(true, true, server("T1", 1));
    m.g.config = Some((body, 1));
    push(&mut m, 0);
    m.reply(0, Outcome::Unauthorized("HTTP 401".into()));
    assert_eq!(m.step(0), Action::AskToken);
}

#[test]
fn an_unreadable_record_is_dropped_and_the_batch_goes_on() {
    let mut r = Rig::to_server();
    r.alerts(3, 10);
    assert_eq!(r.seqs(0), vec![1, 2, 3]);
    r.d.on_unreadable(&mut r.g, 2, "seg at 40: record 2 does not check out");
    assert_eq!(r.g.dests[0].worker.in_flight, 2);
    r.reply(0, Outcome::Delivered);
    assert_eq!((r.g.index.counters.delivered, r.g.index.counters.read_errors, r.waiting()), (2, 1, 0));
    // All unreadable: nothing is sent, nothing is counted as a request.
    r.alerts(1, 10);
    assert_eq!(r.seqs(1), vec![4]);
    r.d.on_unreadable(&mut r.g, 4, "gone");
    assert_eq!((r.g.dests[0].worker.in_flight, r.g.dests[0].requests.requests), (0, 1));
    assert_eq!(r.step(1), Action::Wait(None));
}

mod replies_that_lie {
    //! Any reply a server (or something posing as one) can give: status, `Retry-After` of any
    //! bytes, any body. Parsing never panics, what is logged stays short, and the machine's
    //! next attempt is never later than the longest wait it allows.
    use proptest::prelude::*;

    use super::*;
    use crate::uplink::sink::{BODY_QUOTED, Reply, interpret};

    fn retry_after() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Some),
            "[0-9]{0,30}".prop_map(|s| Some(s.into_bytes())),
            "(Mon|Sun|Xyz), [0-9]{1,3} (Jan|Feb|Nov|Foo) [0-9]{1,5} [0-9]{2}:[0-9]{2}:[0-9]{2} (GMT|UTC)"
                .prop_map(|s| Some(s.into_bytes())),
            proptest::collection::vec(any::<u8>(), 4096..8192).prop_map(Some),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_reply_gives_a_bounded_outcome_and_a_bounded_wait(
            status in any::<u16>(),
            after in retry_after(),
            body in proptest::collection::vec(any::<u8>(), 0..3000),
            wall_offset in any::<u64>(),
            batch in 1usize..5,
        ) {
            let url = "http://proxy/api/devices/v1/devicemonitor/alert";
            let outcome = interpret(url, Reply { status, retry_after: after.as_deref(), body: &body });
            let why = match &outcome {
                Outcome::Delivered => String::new(),
                Outcome::Refused(w) | Outcome::Unauthorized(w) => w.clone(),
                Outcome::Retry { why, after } => {
                    let delay = after.map(|a| a.delay(Wall::from_unix_ms(wall_offset)));
                    prop_assert!(delay.is_none_or(|d| d <= MAX_RETRY_AFTER));
                    why.clone()
                }
            };
            // Every quoted byte becomes at most one replacement character (3 bytes); one line.
            prop_assert!(why.len() <= url.len() + 20 + 3 * BODY_QUOTED, "{}", why.len());
            let one_line = !why.chars().any(char::is_control);
            prop_assert!(one_line);

            let mut r = Rig::new(true, true, server("T", 1));
            r.alerts(batch, 10);
            let now = Now { mono: t(1_000), wall: Wall::from_unix_ms(wall_offset) };
            let sends = matches!(r.d.step(now, &mut r.g), Action::Send { .. });
            prop_assert!(sends);
            r.d.on_outcome(now, &mut r.g, outcome);
            prop_assert!(r.waiting() <= batch, "nothing appears");
            prop_assert_eq!(r.g.dests[0].worker.in_flight, 0);
            let longest = ms(MAX_RETRY_AFTER).max(ms(TOKEN_WAIT)).max(ms(settings().max_interval));
            for _ in 0..3 {
                match r.d.step(now, &mut r.g) {
                    Action::Wait(Some(w)) => {
                        let wait = t(1_000).until(w);
                        prop_assert!(wait <= longest, "waits {} ms", wait);
                    }
                    Action::Wait(None) => prop_assert_eq!(r.waiting(), 0, "sleeps only with nothing to send"),
                    Action::AskToken | Action::Send { .. } => {}
                    Action::PushConfig { .. } | Action::Resend { .. } | Action::Exit => prop_assert!(false, "neither a push nor an exit is due"),
                }
            }
        }
    }
}

fn firing(level: crate::alert::Level) -> crate::alert::Alert {
    crate::alert::Alert {
        name: "Service crasher not running".into(),
        level,
        timestamp: "2026-11-29T10:00:00.000Z".into(),
        subject: crate::alert::Subject { name: "crasher".into(), kind: "service".into(), status: "STOPPED".into(), details: None },
    }
}

#[test]
fn alertmanager_renews_the_lease_while_firing_and_sleeps_when_nothing_fires() {
    use crate::alert::Level;
    let mut r = Rig::new(true, false, Credentials::default());
    r.d = Delivery::new(true, false, Jitter::seeded(SEED)).alertmanager("http://am:9093/", Vec::new(), t(0));
    assert_eq!(r.step(0), Action::Wait(None), "nothing fires: no wake-ups");
    r.alerts(1, 10);
    let (seqs, request) = r.send(0);
    assert_eq!(seqs, vec![1]);
    assert_eq!(request.map(|q| (q.url, q.token)), Some(("http://am:9093/api/v2/alerts".into(), String::new())));
    assert!(r.d.on_delivered_alerts(t(100), &mut r.g, &[firing(Level::Critical)]));
    r.reply(100, Outcome::Delivered);
    assert_eq!(r.g.dests[0].firing, Some((1, 0)));
    // The lease is 300 s: re-sent when half of it has passed, and not before.
    assert_eq!(r.step(200), Action::Wait(Some(t(150_100))));
    let Action::Resend { alerts, request } = r.step(150_100) else { panic!("a re-send is due") };
    assert_eq!((alerts, request.url.as_str()), (vec![firing(Level::Critical)], "http://am:9093/api/v2/alerts"));
    // Alertmanager is down: tried again after the resend interval (60 s, under a quarter lease).
    r.reply(150_200, retry("connection refused"));
    assert_eq!(r.step(150_200), Action::Wait(Some(t(210_200))));
    assert!(matches!(r.step(210_200), Action::Resend { .. }));
    r.reply(210_300, Outcome::Delivered);
    assert_eq!(r.step(210_300), Action::Wait(Some(t(360_300))));
    // The OK ends it: nothing fires, nothing to wake up for.
    r.alerts(1, 10);
    assert_eq!(r.seqs(220_000), vec![2]);
    assert!(r.d.on_delivered_alerts(t(220_100), &mut r.g, &[firing(Level::Ok)]));
    r.reply(220_100, Outcome::Delivered);
    assert_eq!(r.step(220_200), Action::Wait(None));
    assert_eq!(r.g.dests[0].firing, Some((0, 0)));
}

#[test]
fn alertmanager_firing_alerts_from_before_a_restart_are_renewed_at_once() {
    let mut r = Rig::new(true, false, Credentials::default());
    r.d = Delivery::new(true, false, Jitter::seeded(SEED)).alertmanager("http://am", vec![firing(crate::alert::Level::Warning)], t(5));
    assert!(matches!(r.step(5), Action::Resend { .. }));
}
