//! D-Bus messages: the fixed header, the header fields, the body, and framing (how many bytes a
//! message takes, from its first 16), as the specification lays them out.

use super::wire::{Decoder, Encoder, Type, Value, WireError, parse_signature};

/// Bytes of the fixed part of the header, enough to know a message's length.
pub const FIXED_HEADER: usize = 16;
/// Largest message this client accepts (systemd's property sets are a few KiB).
pub const MAX_MESSAGE: usize = 1 << 20;
/// The first header byte of a little-endian message.
pub const LITTLE_ENDIAN: u8 = b'l';
/// The first header byte of a big-endian message.
pub const BIG_ENDIAN: u8 = b'B';
/// The only major protocol version (the fourth header byte).
pub const PROTOCOL_VERSION: u8 = 1;
/// Where the body length sits in the fixed header.
const BODY_LENGTH_AT: usize = 4;
/// Where the length of the header-field array sits in the fixed header.
const FIELDS_LENGTH_AT: usize = 12;

/// The header fields' codes, as the specification numbers them.
pub mod field {
    /// `PATH` (object path).
    pub const PATH: u8 = 1;
    /// `INTERFACE` (string).
    pub const INTERFACE: u8 = 2;
    /// `MEMBER` (string).
    pub const MEMBER: u8 = 3;
    /// `ERROR_NAME` (string).
    pub const ERROR_NAME: u8 = 4;
    /// `REPLY_SERIAL` (u32).
    pub const REPLY_SERIAL: u8 = 5;
    /// `DESTINATION` (string).
    pub const DESTINATION: u8 = 6;
    /// `SENDER` (string).
    pub const SENDER: u8 = 7;
    /// `SIGNATURE` (signature of the body).
    pub const SIGNATURE: u8 = 8;
    /// `UNIX_FDS` (u32; lookout passes no fds and refuses messages that carry them).
    pub const UNIX_FDS: u8 = 9;
}

/// The bus driver: its name (also the sender of its signals), object and interface.
pub mod bus {
    /// The bus driver's name, and the sender of the signals only it can send.
    pub const NAME: &str = "org.freedesktop.DBus";
    /// The bus driver's object.
    pub const PATH: &str = "/org/freedesktop/DBus";
    /// The bus driver's interface.
    pub const INTERFACE: &str = "org.freedesktop.DBus";
    /// The standard properties interface (`Get`, `GetAll`, `PropertiesChanged`).
    pub const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
    /// The error for a call to a name nobody owns (and that cannot be activated).
    pub const SERVICE_UNKNOWN: &str = "org.freedesktop.DBus.Error.ServiceUnknown";
    /// The error of `GetNameOwner` for a name nobody owns.
    pub const NAME_HAS_NO_OWNER: &str = "org.freedesktop.DBus.Error.NameHasNoOwner";
}

/// The four message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A method call.
    Call,
    /// A method's reply.
    Return,
    /// An error reply.
    Error,
    /// A signal.
    Signal,
}

impl Kind {
    /// The message type's code on the wire.
    pub const fn code(self) -> u8 {
        match self {
            Kind::Call => 1,
            Kind::Return => 2,
            Kind::Error => 3,
            Kind::Signal => 4,
        }
    }

    /// The message type with wire code `code`, if there is one.
    pub const fn from_code(code: u8) -> Option<Kind> {
        match code {
            1 => Some(Kind::Call),
            2 => Some(Kind::Return),
            3 => Some(Kind::Error),
            4 => Some(Kind::Signal),
            _ => None,
        }
    }
}

/// Flag: no reply is expected.
pub const NO_REPLY_EXPECTED: u8 = 0x1;

/// One message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// What it is.
    pub kind: Kind,
    /// Header flags.
    pub flags: u8,
    /// Its serial (non-zero).
    pub serial: u32,
    /// PATH.
    pub path: Option<String>,
    /// INTERFACE.
    pub interface: Option<String>,
    /// MEMBER.
    pub member: Option<String>,
    /// ERROR_NAME.
    pub error_name: Option<String>,
    /// REPLY_SERIAL.
    pub reply_serial: Option<u32>,
    /// DESTINATION.
    pub destination: Option<String>,
    /// SENDER.
    pub sender: Option<String>,
    /// The body's values (its signature is derived from them).
    pub body: Vec<Value>,
}

impl Message {
    /// A method call.
    pub fn call(destination: Option<&str>, path: &str, interface: &str, member: &str, body: Vec<Value>) -> Self {
        Message {
            kind: Kind::Call,
            flags: 0,
            serial: 0,
            path: Some(path.into()),
            interface: Some(interface.into()),
            member: Some(member.into()),
            error_name: None,
            reply_serial: None,
            destination: destination.map(Into::into),
            sender: None,
            body,
        }
    }

    /// A signal (broadcast: no destination).
    pub fn signal(path: &str, interface: &str, member: &str, body: Vec<Value>) -> Self {
        Message { kind: Kind::Signal, ..Message::call(None, path, interface, member, body) }
    }

    /// The answer to the call whose serial is `to`: its return values, or an error with a name
    /// and a text.
    pub fn reply(to: u32, result: Result<Vec<Value>, (&str, &str)>) -> Self {
        let (kind, error_name, body) = match result {
            Ok(body) => (Kind::Return, None, body),
            Err((name, text)) => (Kind::Error, Some(name.to_string()), vec![Value::Str(text.to_string())]),
        };
        Message {
            kind,
            flags: 0,
            serial: 0,
            path: None,
            interface: None,
            member: None,
            error_name,
            reply_serial: Some(to),
            destination: None,
            sender: None,
            body,
        }
    }

    /// A call to the bus itself (`org.freedesktop.DBus`).
    pub fn to_bus(member: &str, body: Vec<Value>) -> Self {
        Message::call(Some(bus::NAME), bus::PATH, bus::INTERFACE, member, body)
    }

    /// `AddMatch(rule)`: asks the bus for the signals `rule` selects.
    pub fn add_match(rule: String) -> Self {
        Message::to_bus("AddMatch", vec![Value::Str(rule)])
    }

    /// The body's signature.
    pub fn signature(&self) -> String {
        self.body.iter().map(|v| v.type_of().signature()).collect()
    }

    /// The message as bytes (little-endian), with `serial`.
    pub fn encode(&self, serial: u32) -> Result<Vec<u8>, WireError> {
        let mut body = Encoder::new(0, false);
        for v in &self.body {
            body.value(v)?;
        }
        let mut fields: Vec<Value> = Vec::new();
        let strings = [(field::INTERFACE, &self.interface), (field::MEMBER, &self.member), (field::ERROR_NAME, &self.error_name)];
        if let Some(p) = &self.path {
            fields.push(header_field(field::PATH, Value::ObjectPath(p.clone())));
        }
        for (code, v) in strings {
            if let Some(v) = v {
                fields.push(header_field(code, Value::Str(v.clone())));
            }
        }
        if let Some(r) = self.reply_serial {
            fields.push(header_field(field::REPLY_SERIAL, Value::U32(r)));
        }
        for (code, v) in [(field::DESTINATION, &self.destination), (field::SENDER, &self.sender)] {
            if let Some(v) = v {
                fields.push(header_field(code, Value::Str(v.clone())));
            }
        }
        let sig = self.signature();
        if !sig.is_empty() {
            fields.push(header_field(field::SIGNATURE, Value::Signature(sig)));
        }
        let mut h = Encoder::new(0, false);
        h.value(&Value::Byte(LITTLE_ENDIAN))?;
        h.value(&Value::Byte(self.kind.code()))?;
        h.value(&Value::Byte(self.flags))?;
        h.value(&Value::Byte(PROTOCOL_VERSION))?;
        h.value(&Value::U32(body.buf.len() as u32))?;
        h.value(&Value::U32(serial))?;
        h.value(&Value::Array(header_field_type(), fields))?;
        h.align(8);
        let mut out = h.buf;
        out.extend_from_slice(&body.buf);
        if out.len() > MAX_MESSAGE {
            return Err(WireError::TooLarge(out.len()));
        }
        Ok(out)
    }
}

/// One entry of the header-field array: `(code, variant)`.
fn header_field(code: u8, v: Value) -> Value {
    Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))])
}

/// The type of a header field, `(yv)`.
fn header_field_type() -> Type {
    Type::Struct(vec![Type::Byte, Type::Variant])
}

/// The total length of the message whose first 16 bytes are `head`.
pub fn message_len(head: &[u8; FIXED_HEADER]) -> Result<usize, WireError> {
    let big = match head[0] {
        LITTLE_ENDIAN => false,
        BIG_ENDIAN => true,
        other => return Err(WireError::BadHeader(format!("endianness byte {other:#x}"))),
    };
    let u32_at = |i: usize| {
        let b = [head[i], head[i + 1], head[i + 2], head[i + 3]];
        if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    };
    if head[3] != PROTOCOL_VERSION {
        return Err(WireError::BadHeader(format!("protocol version {}", head[3])));
    }
    let body = u32_at(BODY_LENGTH_AT) as usize;
    let fields = u32_at(FIELDS_LENGTH_AT) as usize;
    let header = FIXED_HEADER.checked_add(fields).ok_or(WireError::TooLarge(usize::MAX))?;
    let header = header + (8 - header % 8) % 8;
    let total = header.checked_add(body).ok_or(WireError::TooLarge(usize::MAX))?;
    if total > MAX_MESSAGE {
        return Err(WireError::TooLarge(total));
    }
    Ok(total)
}

/// Decodes one whole message (exactly `message_len` bytes).
pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
    let head: &[u8; FIXED_HEADER] = buf.get(..FIXED_HEADER).and_then(|h| h.try_into().ok()).ok_or(WireError::Truncated)?;
    let total = message_len(head)?;
    if buf.len() != total {
        return Err(WireError::BadHeader(format!("{} bytes for a message of {total}", buf.len())));
    }
    let big = buf[0] == BIG_ENDIAN;
    let kind = Kind::from_code(buf[1]).ok_or_else(|| WireError::BadHeader(format!("message type {}", buf[1])))?;
    let flags = buf[2];
    let mut d = Decoder::new(buf, BODY_LENGTH_AT, big);
    let body_len = d.u32()? as usize;
    let serial = d.u32()?;
    if serial == 0 {
        return Err(WireError::BadHeader("serial 0".into()));
    }
    let fields = d.value(&Type::Array(Box::new(header_field_type())))?;
    d.align(8)?;
    let body_start = d.pos();
    if body_start + body_len != buf.len() {
        return Err(WireError::BadHeader("body length does not match".into()));
    }
    let mut m = Message {
        kind,
        flags,
        serial,
        path: None,
        interface: None,
        member: None,
        error_name: None,
        reply_serial: None,
        destination: None,
        sender: None,
        body: Vec::new(),
    };
    let mut signature = String::new();
    let Value::Array(_, fields) = fields else { return Err(WireError::BadHeader("header fields".into())) };
    for f in fields {
        let Value::Struct(parts) = f else { continue };
        let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (parts.first(), parts.get(1)) else { continue };
        let wrong = || WireError::BadHeader(format!("header field {code} has the wrong type"));
        match (*code, &**v) {
            (field::PATH, Value::ObjectPath(p)) => m.path = Some(p.clone()),
            (field::INTERFACE, Value::Str(s)) => m.interface = Some(s.clone()),
            (field::MEMBER, Value::Str(s)) => m.member = Some(s.clone()),
            (field::ERROR_NAME, Value::Str(s)) => m.error_name = Some(s.clone()),
            (field::REPLY_SERIAL, Value::U32(r)) => m.reply_serial = Some(*r),
            (field::DESTINATION, Value::Str(s)) => m.destination = Some(s.clone()),
            (field::SENDER, Value::Str(s)) => m.sender = Some(s.clone()),
            (field::SIGNATURE, Value::Signature(s)) => signature = s.clone(),
            (field::UNIX_FDS, _) => return Err(WireError::BadHeader("unix fds are not supported".into())),
            (field::PATH..=field::SIGNATURE, _) => return Err(wrong()),
            _ => {} // unknown fields are ignored, as the specification asks
        }
    }
    match kind {
        Kind::Call if m.path.is_none() || m.member.is_none() => return Err(WireError::BadHeader("call without path or member".into())),
        Kind::Signal if m.path.is_none() || m.member.is_none() || m.interface.is_none() => {
            return Err(WireError::BadHeader("signal without path, interface or member".into()));
        }
        Kind::Return | Kind::Error if m.reply_serial.is_none() => return Err(WireError::BadHeader("reply without reply serial".into())),
        Kind::Error if m.error_name.is_none() => return Err(WireError::BadHeader("error without a name".into())),
        _ => {}
    }
    for t in parse_signature(&signature)? {
        m.body.push(d.value(&t)?);
    }
    if d.pos() != buf.len() {
        return Err(WireError::BadHeader("body longer than its signature".into()));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Hello()` to the bus, as the specification's example lays it out, byte for byte.
    #[test]
    fn hello_bytes() {
        let m = Message::call(Some("org.freedesktop.DBus"), "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", vec![]);
        let bytes = m.encode(1).unwrap();
        let mut want: Vec<u8> = vec![b'l', 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        let mut fields: Vec<u8> = Vec::new();
        // Each field: code, variant signature, padding to 4, string; structs align to 8.
        let push_field = |f: &mut Vec<u8>, code: u8, sig: u8, s: &str| {
            while (16 + f.len()) % 8 != 0 {
                f.push(0);
            }
            f.extend_from_slice(&[code, 1, sig, 0]);
            f.extend_from_slice(&(s.len() as u32).to_le_bytes());
            f.extend_from_slice(s.as_bytes());
            f.push(0);
        };
        push_field(&mut fields, 1, b'o', "/org/freedesktop/DBus");
        push_field(&mut fields, 2, b's', "org.freedesktop.DBus");
        push_field(&mut fields, 3, b's', "Hello");
        push_field(&mut fields, 6, b's', "org.freedesktop.DBus");
        want.extend_from_slice(&(fields.len() as u32).to_le_bytes());
        want.extend_from_slice(&fields);
        while want.len() % 8 != 0 {
            want.push(0);
        }
        assert_eq!(bytes, want);
        assert_eq!(message_len(bytes[..16].try_into().unwrap()).unwrap(), bytes.len());
        let back = decode(&bytes).unwrap();
        assert_eq!(back.member.as_deref(), Some("Hello"));
        assert_eq!(back.serial, 1);
    }

    #[test]
    fn round_trip_with_a_body() {
        let mut m = Message::call(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "LoadUnit",
            vec![Value::Str("crasher.service".into())],
        );
        m.flags = NO_REPLY_EXPECTED;
        let bytes = m.encode(7).unwrap();
        let mut back = decode(&bytes).unwrap();
        back.serial = 0;
        assert_eq!(back, m);
    }

    /// A big-endian message (as a big-endian peer would send) decodes the same.
    #[test]
    fn big_endian_messages() {
        let field = |code: u8, v: Value| Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))]);
        // The header-field array starts at offset 12 (its length), its elements at 16.
        let mut fields = Encoder::new(12, true);
        fields
            .value(&Value::Array(
                Type::Struct(vec![Type::Byte, Type::Variant]),
                vec![
                    field(1, Value::ObjectPath("/a".into())),
                    field(2, Value::Str("x.y".into())),
                    field(3, Value::Str("Z".into())),
                    field(8, Value::Signature("u".into())),
                ],
            ))
            .unwrap();
        let mut out = vec![b'B', 4, 0, 1, 0, 0, 0, 4, 0, 0, 0, 9];
        out.extend_from_slice(&fields.buf);
        while out.len() % 8 != 0 {
            out.push(0);
        }
        out.extend_from_slice(&42u32.to_be_bytes());
        let m = decode(&out).unwrap();
        assert_eq!(m.kind, Kind::Signal);
        assert_eq!(m.serial, 9);
        assert_eq!(m.body, vec![Value::U32(42)]);
        assert_eq!(m.member.as_deref(), Some("Z"));
        // The same bytes read as little-endian are not the same message.
        let mut swapped = out.clone();
        swapped[0] = b'l';
        assert!(decode(&swapped).map(|m| m.body != vec![Value::U32(42)]).unwrap_or(true));
    }

    #[test]
    fn bad_headers_are_errors() {
        let good = Message::call(None, "/a", "x.y", "Z", vec![Value::U32(1)]).encode(3).unwrap();
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(decode(&bad).is_err());
        let mut bad = good.clone();
        bad[3] = 2;
        assert!(decode(&bad).is_err());
        let mut bad = good.clone();
        bad[1] = 9;
        assert!(decode(&bad).is_err());
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert!(decode(&bad).is_err(), "serial 0");
        assert!(decode(&good[..good.len() - 1]).is_err(), "truncated");
        let mut huge = good[..16].to_vec();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(message_len(huge[..16].try_into().unwrap()), Err(WireError::TooLarge(_))));
    }

    /// Whatever the bytes, decoding returns instead of panicking (a cheap, deterministic fuzz;
    /// the proptest harness in tests/dbus_fuzz.rs goes further).
    #[test]
    fn every_single_byte_corruption_is_handled() {
        let m = Message::call(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1/unit/crasher_2eservice",
            "org.freedesktop.DBus.Properties",
            "GetAll",
            vec![Value::Str("org.freedesktop.systemd1.Unit".into())],
        );
        let good = m.encode(5).unwrap();
        for i in 0..good.len() {
            for delta in [1u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = bad[i].wrapping_add(delta);
                if let Ok(h) = bad[..16].try_into() {
                    if let Ok(n) = message_len(h) {
                        if n == bad.len() {
                            let _ = decode(&bad);
                        }
                    }
                }
            }
        }
    }
}
