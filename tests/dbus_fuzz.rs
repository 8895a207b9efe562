//! A property-based fuzz harness for the D-Bus decoder (stable Rust, runs with the tests): no
//! byte sequence makes it panic, and whatever the encoder writes decodes back to the same value.
//! Also the text a `dbus` check sees (every message renders to bounded lines) and match rules
//! (any text parses or is refused, never panics; what is sent to `AddMatch` means the same).
//! More cases: `PROPTEST_CASES=100000 cargo test --release --test dbus_fuzz`.

use lookout::dbus::message::{Message, decode, message_len};
use lookout::dbus::render::{MAX_LINES, message_lines};
use lookout::dbus::rule::MatchRule;
use lookout::dbus::wire::{Decoder, Encoder, Type, Value, parse_signature};
use proptest::prelude::*;

fn basic() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u8>().prop_map(Value::Byte),
        any::<bool>().prop_map(Value::Bool),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<i64>().prop_map(Value::I64),
        any::<u64>().prop_map(Value::U64),
        "[a-zA-Z0-9 ._/é-]{0,20}".prop_map(Value::Str),
        "(/[a-z_]{1,5}){0,4}".prop_map(|p| Value::ObjectPath(if p.is_empty() { "/".into() } else { p })),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    basic().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            inner.clone().prop_map(|v| Value::Variant(Box::new(v))),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Value::Struct),
            prop::collection::vec(any::<u32>(), 0..5).prop_map(|v| Value::Array(Type::U32, v.into_iter().map(Value::U32).collect())),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..4).prop_map(|kv| Value::Array(
                Type::DictEntry(Box::new(Type::Str), Box::new(Type::Variant)),
                kv.into_iter().map(|(k, v)| Value::DictEntry(Box::new(Value::Str(k)), Box::new(Value::Variant(Box::new(v))))).collect()
            )),
        ]
    })
}

/// Match-rule text: mostly known keys, values with commas, apostrophes and backslashes, quoted
/// or not, so that many parse and the rest exercise the errors.
fn rule_text() -> impl Strategy<Value = String> {
    let key =
        prop::sample::select(vec!["type", "sender", "interface", "member", "arg0", "arg3path", "destination", "eavesdrop", "bogus", ""]);
    let pair = (key, "[a-z.,/\\\\' ]{0,6}", any::<bool>())
        .prop_map(|(k, v, quoted)| if quoted { format!("{k}='{v}'") } else { format!("{k}={}", v.replace(',', "")) });
    prop::collection::vec(pair, 0..4).prop_map(|ps| ps.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000), ..ProptestConfig::default() })]

    #[test]
    fn values_round_trip(v in value(), base in 0usize..9, big in any::<bool>()) {
        let mut e = Encoder::new(base, big);
        e.value(&v).unwrap();
        let mut buf = vec![0u8; base];
        buf.extend_from_slice(&e.buf);
        let mut d = Decoder::new(&buf, base, big);
        prop_assert_eq!(d.value(&v.type_of()).unwrap(), v);
        prop_assert_eq!(d.pos(), buf.len());
    }

    #[test]
    fn any_bytes_under_any_signature_never_panic(sig in "[ybnqiuxtdsogva(){}]{1,12}", bytes in prop::collection::vec(any::<u8>(), 0..200), big in any::<bool>()) {
        if let Ok(types) = parse_signature(&sig) {
            let mut d = Decoder::new(&bytes, 0, big);
            for t in &types {
                if d.value(t).is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn any_bytes_as_a_message_never_panic(bytes in prop::collection::vec(any::<u8>(), 16..400)) {
        let head: [u8; 16] = bytes[..16].try_into().unwrap();
        if let Ok(n) = message_len(&head) {
            if n <= bytes.len() {
                let _ = decode(&bytes[..n]);
            }
        }
        let _ = decode(&bytes);
    }

    #[test]
    fn corrupted_messages_never_panic(v in value(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let m = Message::call(Some("org.freedesktop.systemd1"), "/org/freedesktop/systemd1", "org.freedesktop.DBus.Properties", "GetAll", vec![v]);
        let mut bytes = m.encode(7).unwrap();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= b;
        }
        let head: [u8; 16] = bytes[..16].try_into().unwrap();
        if let Ok(n) = message_len(&head) {
            if n <= bytes.len() {
                if let Ok(m) = decode(&bytes[..n]) {
                    let mut out = Vec::new();
                    message_lines(&m, lookout::time::Wall::default(), &mut out);
                }
            }
        }
    }

    #[test]
    fn every_message_renders_to_bounded_lines(vs in prop::collection::vec(value(), 0..4), wall_ms in any::<u64>()) {
        let m = Message::call(None, "/a", "a.b", "C", vs);
        let mut out = Vec::new();
        message_lines(&m, lookout::time::Wall::from_unix_ms(wall_ms), &mut out);
        prop_assert_eq!(out.last(), Some(&b'\n'));
        let lines = out.iter().filter(|b| **b == b'\n').count();
        prop_assert!((1..=MAX_LINES).contains(&lines));
    }

    #[test]
    fn match_rules_parse_or_are_refused_and_keep_their_meaning(text in rule_text()) {
        if let Ok(r) = MatchRule::parse(&text) {
            let again = MatchRule::parse(&r.to_add_match()).unwrap();
            let mut expected = r.pairs.clone();
            if r.get("type").is_none() {
                expected.insert(0, ("type".into(), "signal".into()));
            }
            prop_assert_eq!(again.pairs, expected);
        }
    }
}
