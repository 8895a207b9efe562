//! Match rules (`DBUS_WATCH_EXPRESSION`): checked here, so that a typo is an error naming the
//! check file's line at `check-config` time, not a refusal from the bus at run time; and turned
//! into what is sent to `AddMatch`.
//!
//! The syntax is the specification's: comma-separated `key=value` pairs; a value may be quoted
//! with apostrophes (inside quotes nothing is an escape; outside, `\'` is an apostrophe).

use super::message::{Kind, Message};
use super::wire::{Value, valid_object_path};

/// Keys a match rule may have, besides `argN`, `argNpath` (N up to 63) and `arg0namespace`.
const KEYS: &[&str] = &["type", "sender", "interface", "member", "path", "path_namespace", "destination", "eavesdrop"];
/// Message types a rule may name.
const TYPES: &[&str] = &["signal", "method_call", "method_return", "error"];

/// A parsed match rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRule {
    /// The pairs, in order, values unquoted.
    pub pairs: Vec<(String, String)>,
}

impl MatchRule {
    /// Parses and checks `text`; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<MatchRule, String> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut chars = text.trim().chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            let key = key.trim().to_string();
            if key.is_empty() {
                return Err(format!("a key is missing before `=` in {text:?}"));
            }
            let mut value = String::new();
            let mut quoted = false;
            loop {
                match chars.next() {
                    None => {
                        if quoted {
                            return Err(format!("the value of {key} has no closing apostrophe"));
                        }
                        break;
                    }
                    Some('\'') => quoted = !quoted,
                    Some('\\') if !quoted && chars.peek() == Some(&'\'') => {
                        chars.next();
                        value.push('\'');
                    }
                    Some(',') if !quoted => break,
                    Some(c) => value.push(c),
                }
            }
            check_pair(&key, &value)?;
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(format!("{key} is given twice"));
            }
            pairs.push((key, value));
        }
        if pairs.iter().any(|(k, _)| k == "path") && pairs.iter().any(|(k, _)| k == "path_namespace") {
            return Err("path and path_namespace cannot both be given".into());
        }
        Ok(MatchRule { pairs })
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The rule for `AddMatch` and `BecomeMonitor`: every pair quoted, and `type='signal'`
    /// first when no type is given (as Mender Monitor's checks meant signals). An `eavesdrop`
    /// pair is left out: how much the connection sees is lookout's choice (monitor, then
    /// eavesdropping, then broadcasts only), as it was `dbus-monitor`'s.
    pub fn to_add_match(&self) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\'', "'\\''"));
        let typed = self.get("type").is_none().then(|| "type='signal'".to_string());
        let pairs = self.pairs.iter().filter(|(k, _)| k != "eavesdrop").map(|(k, v)| format!("{k}={}", quote(v)));
        typed.into_iter().chain(pairs).collect::<Vec<_>>().join(",")
    }

    /// Whether `m` is what the rule selects, as far as the message alone can tell: the bus did
    /// the matching already, and this drops what it sends a monitor besides (its own messages
    /// to us). A `sender` or `destination` that is a well-known name is the bus's to resolve
    /// (the message names the unique owner): it is taken as matching unless both are unique
    /// names that differ.
    pub fn matches(&self, m: &Message) -> bool {
        self.pairs.iter().all(|(k, v)| pair_matches(k, v, m))
    }
}

fn pair_matches(key: &str, value: &str, m: &Message) -> bool {
    // A unique name, or the bus driver's: names only one peer, never resolved.
    let definite = |name: &str| name.starts_with(':') || name == super::message::bus::NAME;
    let same_peer = |field: &Option<String>| match field.as_deref() {
        Some(f) => f == value || !(definite(f) && definite(value)),
        None => false,
    };
    match key {
        "type" => kind_name(m.kind) == value,
        "interface" => m.interface.as_deref() == Some(value),
        "member" => m.member.as_deref() == Some(value),
        "path" => m.path.as_deref() == Some(value),
        "path_namespace" => m.path.as_deref().is_some_and(|p| in_namespace(p, value, '/')),
        "sender" => same_peer(&m.sender),
        "destination" => same_peer(&m.destination),
        "arg0namespace" => matches!(m.body.first(), Some(Value::Str(s)) if in_namespace(s, value, '.')),
        "eavesdrop" => true,
        _ => arg_matches(key, value, m),
    }
}

/// `argN` (a string argument equal to the value) and `argNpath` (a string or object path
/// argument equal to it, or one a prefix of the other ending in `/`), as the specification has
/// them; a key that is neither does not match.
fn arg_matches(key: &str, value: &str, m: &Message) -> bool {
    let Some(n) = arg_index(key) else { return false };
    let arg = m.body.get(usize::from(n));
    if key.ends_with("path") {
        let text = match arg {
            Some(Value::Str(s) | Value::ObjectPath(s)) => s.as_str(),
            _ => return false,
        };
        let prefix = |a: &str, b: &str| a.ends_with('/') && b.starts_with(a);
        text == value || prefix(text, value) || prefix(value, text)
    } else {
        matches!(arg, Some(Value::Str(s)) if s == value)
    }
}

/// Whether `name` is `space` or below it (`space` followed by `sep`); `/` holds every path.
fn in_namespace(name: &str, space: &str, sep: char) -> bool {
    name == space || (sep == '/' && space == "/") || name.strip_prefix(space).is_some_and(|rest| rest.starts_with(sep))
}

/// A message type as match rules name it.
fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Signal => "signal",
        Kind::Call => "method_call",
        Kind::Return => "method_return",
        Kind::Error => "error",
    }
}

impl MatchRule {}

fn check_pair(key: &str, value: &str) -> Result<(), String> {
    let known = KEYS.contains(&key) || key == "arg0namespace" || arg_index(key).is_some();
    if !known {
        return Err(format!(
            "unknown key {key:?} (type, sender, interface, member, path, path_namespace, destination, argN, argNpath, arg0namespace)"
        ));
    }
    match key {
        "type" if !TYPES.contains(&value) => Err(format!("type={value:?} is not one of signal, method_call, method_return, error")),
        "path" | "path_namespace" if !valid_object_path(value) => Err(format!("{key}={value:?} is not an object path")),
        "eavesdrop" if value != "true" && value != "false" => Err(format!("eavesdrop={value:?} is not true or false")),
        "interface" | "member" | "sender" | "destination" if value.is_empty() => Err(format!("{key} is empty")),
        _ => Ok(()),
    }
}

/// N of `argN` or `argNpath`, if N is 0..=63.
fn arg_index(key: &str) -> Option<u8> {
    let digits = key.strip_prefix("arg")?;
    let digits = digits.strip_suffix("path").unwrap_or(digits);
    if digits.is_empty()
        || digits.len() > 2
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() == 2 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse::<u8>().ok().filter(|n| *n <= 63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_rules_parse() {
        let r = MatchRule::parse(
            "type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',path=/org/freedesktop/UPower/devices/battery_BAT0",
        )
        .unwrap();
        assert_eq!(r.get("type"), Some("signal"));
        assert_eq!(r.get("path"), Some("/org/freedesktop/UPower/devices/battery_BAT0"));
        let r = MatchRule::parse("type='signal',interface='io.mender.Authentication1'").unwrap();
        assert_eq!(r.to_add_match(), "type='signal',interface='io.mender.Authentication1'");
    }

    #[test]
    fn a_rule_without_a_type_watches_signals() {
        let r = MatchRule::parse("interface=a.b,arg0='x,y'").unwrap();
        assert_eq!(r.get("arg0"), Some("x,y"));
        assert_eq!(r.to_add_match(), "type='signal',interface='a.b',arg0='x,y'");
        assert_eq!(MatchRule::parse("").unwrap().to_add_match(), "type='signal'");
    }

    #[test]
    fn apostrophes_survive_the_round_trip() {
        let r = MatchRule::parse(r"arg0=it\'s,arg1='a''b'").unwrap();
        assert_eq!(r.get("arg0"), Some("it's"));
        assert_eq!(r.get("arg1"), Some("ab"));
        assert_eq!(r.to_add_match(), r"type='signal',arg0='it'\''s',arg1='ab'");
    }

    #[test]
    fn eavesdrop_is_lookouts_choice_not_the_rules() {
        let r = MatchRule::parse("eavesdrop=true,interface=a.b").unwrap();
        assert_eq!(r.to_add_match(), "type='signal',interface='a.b'");
    }

    fn call(path: &str, body: Vec<Value>) -> Message {
        let mut m = Message::call(Some(":1.4"), path, "io.mender.Authentication1", "FetchJwtToken", body);
        m.sender = Some(":1.9".into());
        m
    }

    #[test]
    fn the_rule_is_checked_against_the_message_alone() {
        let is = |rule: &str, m: &Message| MatchRule::parse(rule).unwrap().matches(m);
        let m = call("/io/mender/AuthenticationManager", vec![Value::Str("a.b.c".into()), Value::ObjectPath("/x/y".into())]);
        assert!(is("type=method_call,interface=io.mender.Authentication1,member=FetchJwtToken", &m));
        assert!(!is("type=signal,interface=io.mender.Authentication1", &m));
        assert!(!is("member=GetJwtToken", &m));
        assert!(is("path=/io/mender/AuthenticationManager", &m) && !is("path=/io/mender", &m));
        assert!(is("path_namespace=/io/mender", &m) && is("path_namespace=/", &m) && !is("path_namespace=/io/mend", &m));
        assert!(is("sender=:1.9", &m) && !is("sender=:1.8", &m));
        assert!(is("sender=io.mender.AuthenticationManager", &m), "a well-known name is the bus's to resolve");
        assert!(!is("sender=org.freedesktop.DBus", &m), "only the bus is the bus");
        assert!(is("destination=:1.4", &m) && !is("destination=:1.5", &m));
        assert!(is("arg0=a.b.c", &m) && !is("arg0=a.b", &m) && !is("arg1=/x/y", &m), "argN: strings only");
        assert!(is("arg0namespace=a.b", &m) && !is("arg0namespace=a.b.c.d", &m) && !is("arg0namespace=a.bc", &m));
        assert!(
            is("arg1path=/x/", &m) && is("arg1path=/x/y", &m) && !is("arg1path=/x/y/z", &m) && !is("arg1path=/x", &m) && !is("arg2=x", &m)
        );
        let mut bus_to_us = Message::signal("/org/freedesktop/DBus", "org.freedesktop.DBus", "NameLost", vec![]);
        bus_to_us.sender = Some("org.freedesktop.DBus".into());
        assert!(!is("type=signal,interface=io.mender.Authentication1", &bus_to_us));
        assert!(!is("path=/a", &Message::reply(1, Ok(vec![]))), "no path, no match");
    }

    #[test]
    fn mistakes_are_named() {
        for (rule, says) in [
            ("type=signal,interfce=x", "unknown key \"interfce\""),
            ("type=sgnal", "type=\"sgnal\""),
            ("path=relative", "not an object path"),
            ("member='open", "no closing apostrophe"),
            ("type=signal,type=error", "given twice"),
            ("=x", "key is missing"),
            ("arg64=x", "unknown key"),
            ("arg07=x", "unknown key"),
            ("path=/a,path_namespace=/b", "cannot both"),
            ("eavesdrop=yes", "not true or false"),
        ] {
            let e = MatchRule::parse(rule).unwrap_err();
            assert!(e.contains(says), "{rule}: {e}");
        }
        assert!(MatchRule::parse("arg63path=/x/,arg0namespace=a.b").is_ok());
    }
}
