//! A message as text lines, in the layout `dbus-monitor` prints, because `DBUS_PATTERN` was
//! written against that output in Mender Monitor (which grepped `dbus-monitor`): a header line
//! (`signal time=… sender=… -> destination=… serial=… path=…; interface=…; member=…`; a method
//! call, a method return or an error has its own), then one
//! line per value, indented three spaces per level, containers opening and closing on lines of
//! their own.
//!
//! Differences, chosen for line-based matching: a newline inside a string is written `\n`, so a
//! value stays on its line; byte arrays are one line of hex; and at most [`MAX_LINES`] lines are
//! written per message (a last line says how many values were left out).

use crate::time::Wall;
use std::fmt::Write;

use super::message::{Kind, Message};
use super::wire::Value;

/// Most lines written for one message.
pub const MAX_LINES: usize = 256;
/// Most bytes of a byte array written (as hex).
const MAX_BYTES_SHOWN: usize = 64;

/// Appends `m` (a message of any type: a monitor sees calls, replies and errors too) to `out`
/// as `\n`-terminated lines; `wall` is the time of arrival. Returns whether values were left
/// out to keep within [`MAX_LINES`].
pub fn message_lines(m: &Message, wall: Wall, out: &mut Vec<u8>) -> bool {
    let mut text = String::new();
    let kind = match m.kind {
        Kind::Signal => "signal",
        Kind::Call => "method call",
        Kind::Return => "method return",
        Kind::Error => "error",
    };
    let _ = write!(
        text,
        "{kind} time={}.{:06} sender={} -> destination={}",
        wall.as_unix_ms() / 1000,
        (wall.as_unix_ms() % 1000) * 1000,
        m.sender.as_deref().unwrap_or("(null sender)"),
        m.destination.as_deref().unwrap_or("(null destination)"),
    );
    // The rest of the header line as dbus-monitor writes it for each type.
    let reply_serial = m.reply_serial.unwrap_or(0);
    let _ = match m.kind {
        Kind::Signal | Kind::Call => writeln!(
            text,
            " serial={} path={}; interface={}; member={}",
            m.serial,
            m.path.as_deref().unwrap_or("(null path)"),
            m.interface.as_deref().unwrap_or("(null interface)"),
            m.member.as_deref().unwrap_or("(null member)"),
        ),
        Kind::Return => writeln!(text, " serial={} reply_serial={reply_serial}", m.serial),
        Kind::Error => writeln!(text, " error_name={} reply_serial={reply_serial}", m.error_name.as_deref().unwrap_or("(null error name)")),
    };
    let mut w = Writer { text, lines: 1, left_out: 0 };
    for v in &m.body {
        w.value(v, 1);
    }
    let cut = w.left_out > 0;
    if cut {
        let _ = writeln!(w.text, "   ... {} more values not shown", w.left_out);
    }
    out.extend_from_slice(w.text.as_bytes());
    cut
}

struct Writer {
    text: String,
    lines: usize,
    left_out: usize,
}

impl Writer {
    /// Starts a line at `depth`, or counts a value left out when the budget is spent (one line
    /// is kept for saying so).
    fn line(&mut self, depth: usize) -> bool {
        if self.lines >= MAX_LINES - 1 {
            self.left_out += 1;
            return false;
        }
        self.lines += 1;
        self.text.extend(std::iter::repeat_n(' ', depth * 3));
        true
    }

    fn value(&mut self, v: &Value, depth: usize) {
        if !self.line(depth) {
            return;
        }
        self.inline(v, depth);
    }

    /// Writes `v` from the current position of the current line.
    fn inline(&mut self, v: &Value, depth: usize) {
        let t = &mut self.text;
        match v {
            Value::Byte(b) => writeln!(t, "byte {b}"),
            Value::Bool(b) => writeln!(t, "boolean {b}"),
            Value::I16(n) => writeln!(t, "int16 {n}"),
            Value::U16(n) => writeln!(t, "uint16 {n}"),
            Value::I32(n) => writeln!(t, "int32 {n}"),
            Value::U32(n) => writeln!(t, "uint32 {n}"),
            Value::I64(n) => writeln!(t, "int64 {n}"),
            Value::U64(n) => writeln!(t, "uint64 {n}"),
            Value::Double(d) => writeln!(t, "double {d}"),
            Value::Str(s) => writeln!(t, "string \"{}\"", s.replace('\n', "\\n")),
            Value::ObjectPath(s) => writeln!(t, "object path \"{s}\""),
            Value::Signature(s) => writeln!(t, "signature \"{s}\""),
            Value::Variant(inner) => {
                t.push_str("variant ");
                t.extend(std::iter::repeat_n(' ', (depth + 1) * 3));
                return self.inline(inner, depth + 1);
            }
            Value::Array(_, items) if items.iter().all(|i| matches!(i, Value::Byte(_))) && !items.is_empty() => {
                t.push_str("array of bytes [");
                for i in items.iter().take(MAX_BYTES_SHOWN) {
                    if let Value::Byte(b) = i {
                        let _ = write!(t, " {b:02x}");
                    }
                }
                if items.len() > MAX_BYTES_SHOWN {
                    let _ = write!(t, " ... ({} bytes)", items.len());
                }
                writeln!(t, " ]")
            }
            Value::Array(_, items) => return self.container("array [", items, "]", depth),
            Value::Struct(items) => return self.container("struct {", items, "}", depth),
            Value::DictEntry(k, v) => {
                t.push_str("dict entry(\n");
                self.value(k, depth + 1);
                self.value(v, depth + 1);
                if self.line(depth) {
                    self.text.push_str(")\n");
                }
                return;
            }
        }
        .unwrap_or(());
    }

    fn container(&mut self, open: &str, items: &[Value], close: &str, depth: usize) {
        self.text.push_str(open);
        self.text.push('\n');
        for i in items {
            self.value(i, depth + 1);
        }
        if self.line(depth) {
            self.text.push_str(close);
            self.text.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dbus::wire::Type;

    fn signal(body: Vec<Value>) -> Message {
        Message {
            kind: Kind::Signal,
            flags: 0,
            serial: 7,
            path: Some("/io/mender/AuthenticationManager".into()),
            interface: Some("io.mender.Authentication1".into()),
            member: Some("JwtTokenStateChange".into()),
            error_name: None,
            reply_serial: None,
            destination: None,
            sender: Some(":1.5".into()),
            body,
        }
    }

    fn text(m: &Message) -> String {
        let mut out = Vec::new();
        message_lines(m, Wall::from_unix_ms(1_764_420_000_123), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_signal_reads_like_dbus_monitor() {
        let m = signal(vec![Value::Str("tok\nen".into()), Value::Str("http://127.0.0.1:8080".into())]);
        assert_eq!(
            text(&m),
            "signal time=1764420000.123000 sender=:1.5 -> destination=(null destination) serial=7 \
             path=/io/mender/AuthenticationManager; interface=io.mender.Authentication1; member=JwtTokenStateChange\n   \
             string \"tok\\nen\"\n   string \"http://127.0.0.1:8080\"\n"
        );
    }

    #[test]
    fn calls_replies_and_errors_read_like_dbus_monitor_too() {
        let mut call = signal(vec![]);
        call.kind = Kind::Call;
        call.member = Some("FetchJwtToken".into());
        call.destination = Some("io.mender.AuthenticationManager".into());
        assert_eq!(
            text(&call),
            "method call time=1764420000.123000 sender=:1.5 -> destination=io.mender.AuthenticationManager serial=7 \
             path=/io/mender/AuthenticationManager; interface=io.mender.Authentication1; member=FetchJwtToken\n"
        );
        let mut ret = Message::reply(7, Ok(vec![Value::Bool(true)]));
        (ret.serial, ret.sender, ret.destination) = (9, Some(":1.6".into()), Some(":1.5".into()));
        assert_eq!(
            text(&ret),
            "method return time=1764420000.123000 sender=:1.6 -> destination=:1.5 serial=9 reply_serial=7\n   boolean true\n"
        );
        let mut err = Message::reply(7, Err(("org.example.Failed", "no")));
        err.sender = Some(":1.6".into());
        assert_eq!(
            text(&err),
            "error time=1764420000.123000 sender=:1.6 -> destination=(null destination) error_name=org.example.Failed reply_serial=7\n   \
             string \"no\"\n"
        );
    }

    #[test]
    fn containers_open_and_close_on_their_own_lines() {
        let dict = Value::Array(
            Type::DictEntry(Box::new(Type::Str), Box::new(Type::Variant)),
            vec![Value::DictEntry(Box::new(Value::Str("Percentage".into())), Box::new(Value::Variant(Box::new(Value::Double(42.5)))))],
        );
        let m = signal(vec![
            Value::Str("org.freedesktop.UPower.Device".into()),
            dict,
            Value::Array(Type::Str, vec![]),
            Value::Struct(vec![Value::U32(1), Value::Bool(true)]),
            Value::Array(Type::Byte, vec![Value::Byte(0), Value::Byte(255)]),
        ]);
        let t = text(&m);
        let body: Vec<&str> = t.lines().skip(1).collect();
        assert_eq!(
            body,
            [
                "   string \"org.freedesktop.UPower.Device\"",
                "   array [",
                "      dict entry(",
                "         string \"Percentage\"",
                "         variant             double 42.5",
                "      )",
                "   ]",
                "   array [",
                "   ]",
                "   struct {",
                "      uint32 1",
                "      boolean true",
                "   }",
                "   array of bytes [ 00 ff ]",
            ]
        );
    }

    #[test]
    fn a_huge_message_is_cut_and_says_so() {
        let m = signal(vec![Value::Array(Type::U32, (0..10_000).map(Value::U32).collect())]);
        let mut out = Vec::new();
        assert!(message_lines(&m, Wall::default(), &mut out));
        let t = String::from_utf8(out).unwrap();
        assert_eq!(t.lines().count(), MAX_LINES);
        assert!(t.ends_with("more values not shown\n"), "{}", &t[t.len() - 80..]);
        assert!(t.ends_with(&format!("   ... {} more values not shown\n", 10_002 - (MAX_LINES - 2))));
    }
}
