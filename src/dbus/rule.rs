//! Match rules (`DBUS_WATCH_EXPRESSION`): checked here, so that a typo is an error naming the
//! check file's line at `check-config` time, not a refusal from the bus at run time; and turned
//! into what is sent to `AddMatch`.
//!
//! The syntax is the specification's: comma-separated `key=value` pairs; a value may be quoted
//! with apostrophes (inside quotes nothing is an escape; outside, `\'` is an apostrophe).

use super::wire::valid_object_path;

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

    /// The rule for `AddMatch`: every pair quoted, and `type='signal'` first when no type is
    /// given (only signals are watched; without it the bus would also route calls to us).
    pub fn to_add_match(&self) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\'', "'\\''"));
        let typed = self.get("type").is_none().then(|| "type='signal'".to_string());
        typed.into_iter().chain(self.pairs.iter().map(|(k, v)| format!("{k}={}", quote(v)))).collect::<Vec<_>>().join(",")
    }
}

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
