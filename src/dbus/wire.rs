//! D-Bus values and their wire format: signatures, marshalling with alignment, and an
//! unmarshaller that checks every length, alignment, padding byte and nesting depth against the
//! buffer and the specification, so that malformed or hostile bytes are an error, never a panic.
//!
//! Alignment counts from the start of the message; the encoder and decoder both carry the
//! absolute position. Unix fds (`h`) are not supported (lookout never passes fds).

use std::fmt;

/// Longest signature the specification allows.
pub const MAX_SIGNATURE: usize = 255;
/// Deepest nesting of arrays, and of structs, the specification allows (each).
pub const MAX_DEPTH: usize = 32;
/// Longest array the specification allows (64 MiB).
pub const MAX_ARRAY: usize = 64 << 20;

/// Why bytes are not a valid D-Bus value or message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The buffer ends before the value does.
    Truncated,
    /// A padding byte is not zero.
    PaddingNotZero,
    /// A signature that does not parse, or is too long or too deep.
    BadSignature(String),
    /// A string that is not UTF-8, contains NUL, or is not NUL-terminated.
    BadString,
    /// An object path that is not one.
    BadObjectPath,
    /// A boolean that is neither 0 nor 1.
    BadBool(u32),
    /// An array longer than the specification allows, or whose elements overrun it.
    BadArrayLength(u32),
    /// Nesting deeper than allowed.
    TooDeep,
    /// The header is invalid (the message says what).
    BadHeader(String),
    /// The message is larger than this connection accepts.
    TooLarge(usize),
    /// A value does not have the type its signature says (encoding).
    TypeMismatch(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "message truncated"),
            WireError::PaddingNotZero => write!(f, "non-zero padding"),
            WireError::BadSignature(s) => write!(f, "bad signature {s:?}"),
            WireError::BadString => write!(f, "bad string (not UTF-8, embedded NUL, or unterminated)"),
            WireError::BadObjectPath => write!(f, "bad object path"),
            WireError::BadBool(v) => write!(f, "boolean with value {v}"),
            WireError::BadArrayLength(n) => write!(f, "bad array length {n}"),
            WireError::TooDeep => write!(f, "nesting too deep"),
            WireError::BadHeader(m) => write!(f, "bad header: {m}"),
            WireError::TooLarge(n) => write!(f, "message of {n} bytes is too large"),
            WireError::TypeMismatch(m) => write!(f, "value does not match its signature: {m}"),
        }
    }
}

/// A D-Bus type, parsed from a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// `y`
    Byte,
    /// `b`
    Bool,
    /// `n`
    I16,
    /// `q`
    U16,
    /// `i`
    I32,
    /// `u`
    U32,
    /// `x`
    I64,
    /// `t`
    U64,
    /// `d`
    Double,
    /// `s`
    Str,
    /// `o`
    ObjectPath,
    /// `g`
    Signature,
    /// `v`
    Variant,
    /// `a<T>`
    Array(Box<Type>),
    /// `(...)`
    Struct(Vec<Type>),
    /// `{KV}` (only as an array element)
    DictEntry(Box<Type>, Box<Type>),
}

impl Type {
    /// The alignment of this type on the wire.
    pub fn alignment(&self) -> usize {
        match self {
            Type::Byte | Type::Signature | Type::Variant => 1,
            Type::I16 | Type::U16 => 2,
            Type::Bool | Type::I32 | Type::U32 | Type::Str | Type::ObjectPath | Type::Array(_) => 4,
            Type::I64 | Type::U64 | Type::Double | Type::Struct(_) | Type::DictEntry(..) => 8,
        }
    }

    /// The signature of this type.
    pub fn signature(&self) -> String {
        let mut s = String::new();
        self.write_signature(&mut s);
        s
    }

    fn write_signature(&self, s: &mut String) {
        match self {
            Type::Byte => s.push('y'),
            Type::Bool => s.push('b'),
            Type::I16 => s.push('n'),
            Type::U16 => s.push('q'),
            Type::I32 => s.push('i'),
            Type::U32 => s.push('u'),
            Type::I64 => s.push('x'),
            Type::U64 => s.push('t'),
            Type::Double => s.push('d'),
            Type::Str => s.push('s'),
            Type::ObjectPath => s.push('o'),
            Type::Signature => s.push('g'),
            Type::Variant => s.push('v'),
            Type::Array(t) => {
                s.push('a');
                t.write_signature(s);
            }
            Type::Struct(ts) => {
                s.push('(');
                for t in ts {
                    t.write_signature(s);
                }
                s.push(')');
            }
            Type::DictEntry(k, v) => {
                s.push('{');
                k.write_signature(s);
                v.write_signature(s);
                s.push('}');
            }
        }
    }
}

/// Parses a signature into its complete types.
pub fn parse_signature(sig: &str) -> Result<Vec<Type>, WireError> {
    if sig.len() > MAX_SIGNATURE {
        return Err(WireError::BadSignature(sig.chars().take(40).collect()));
    }
    let bytes = sig.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < bytes.len() {
        out.push(parse_one(bytes, &mut pos, 0, 0).map_err(|_| WireError::BadSignature(sig.into()))?);
    }
    Ok(out)
}

/// Parses a signature that must be exactly one complete type (a variant's).
pub fn parse_single(sig: &str) -> Result<Type, WireError> {
    let mut ts = parse_signature(sig)?;
    if ts.len() != 1 {
        return Err(WireError::BadSignature(sig.into()));
    }
    Ok(ts.remove(0))
}

fn parse_one(b: &[u8], pos: &mut usize, arrays: usize, structs: usize) -> Result<Type, ()> {
    let c = *b.get(*pos).ok_or(())?;
    *pos += 1;
    Ok(match c {
        b'y' => Type::Byte,
        b'b' => Type::Bool,
        b'n' => Type::I16,
        b'q' => Type::U16,
        b'i' => Type::I32,
        b'u' => Type::U32,
        b'x' => Type::I64,
        b't' => Type::U64,
        b'd' => Type::Double,
        b's' => Type::Str,
        b'o' => Type::ObjectPath,
        b'g' => Type::Signature,
        b'v' => Type::Variant,
        b'a' => {
            if arrays >= MAX_DEPTH {
                return Err(());
            }
            if b.get(*pos) == Some(&b'{') {
                *pos += 1;
                let k = parse_one(b, pos, arrays + 1, structs)?;
                if !is_basic(&k) {
                    return Err(());
                }
                let v = parse_one(b, pos, arrays + 1, structs)?;
                if b.get(*pos) != Some(&b'}') {
                    return Err(());
                }
                *pos += 1;
                Type::Array(Box::new(Type::DictEntry(Box::new(k), Box::new(v))))
            } else {
                Type::Array(Box::new(parse_one(b, pos, arrays + 1, structs)?))
            }
        }
        b'(' => {
            if structs >= MAX_DEPTH {
                return Err(());
            }
            let mut fields = Vec::new();
            while b.get(*pos) != Some(&b')') {
                fields.push(parse_one(b, pos, arrays, structs + 1)?);
            }
            *pos += 1;
            if fields.is_empty() {
                return Err(());
            }
            Type::Struct(fields)
        }
        _ => return Err(()),
    })
}

fn is_basic(t: &Type) -> bool {
    !matches!(t, Type::Variant | Type::Array(_) | Type::Struct(_) | Type::DictEntry(..))
}

/// A D-Bus value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `y`
    Byte(u8),
    /// `b`
    Bool(bool),
    /// `n`
    I16(i16),
    /// `q`
    U16(u16),
    /// `i`
    I32(i32),
    /// `u`
    U32(u32),
    /// `x`
    I64(i64),
    /// `t`
    U64(u64),
    /// `d`
    Double(f64),
    /// `s`
    Str(String),
    /// `o`
    ObjectPath(String),
    /// `g`
    Signature(String),
    /// `v`: the contained value.
    Variant(Box<Value>),
    /// `a<T>`: the element type and the elements.
    Array(Type, Vec<Value>),
    /// `(...)`
    Struct(Vec<Value>),
    /// `{KV}`
    DictEntry(Box<Value>, Box<Value>),
}

impl Value {
    /// The value's type.
    pub fn type_of(&self) -> Type {
        match self {
            Value::Byte(_) => Type::Byte,
            Value::Bool(_) => Type::Bool,
            Value::I16(_) => Type::I16,
            Value::U16(_) => Type::U16,
            Value::I32(_) => Type::I32,
            Value::U32(_) => Type::U32,
            Value::I64(_) => Type::I64,
            Value::U64(_) => Type::U64,
            Value::Double(_) => Type::Double,
            Value::Str(_) => Type::Str,
            Value::ObjectPath(_) => Type::ObjectPath,
            Value::Signature(_) => Type::Signature,
            Value::Variant(_) => Type::Variant,
            Value::Array(t, _) => Type::Array(Box::new(t.clone())),
            Value::Struct(vs) => Type::Struct(vs.iter().map(Value::type_of).collect()),
            Value::DictEntry(k, v) => Type::DictEntry(Box::new(k.type_of()), Box::new(v.type_of())),
        }
    }

    /// The string inside a `s`, `o` or `g` value (through variants).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            Value::Variant(v) => v.as_str(),
            _ => None,
        }
    }

    /// An unsigned integer value (through variants).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Byte(v) => Some(u64::from(*v)),
            Value::U16(v) => Some(u64::from(*v)),
            Value::U32(v) => Some(u64::from(*v)),
            Value::U64(v) => Some(*v),
            Value::Variant(v) => v.as_u64(),
            _ => None,
        }
    }

    /// The boolean inside a `b` value (through variants).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Variant(v) => v.as_bool(),
            _ => None,
        }
    }

    /// Looks `key` up in an `a{sv}` (or any `a{s*}`) dictionary; variants are unwrapped.
    pub fn dict_get(&self, key: &str) -> Option<&Value> {
        let Value::Array(_, entries) = self else { return None };
        entries.iter().find_map(|e| match e {
            Value::DictEntry(k, v) if k.as_str() == Some(key) => Some(match &**v {
                Value::Variant(inner) => &**inner,
                other => other,
            }),
            _ => None,
        })
    }
}

fn pad_len(pos: usize, align: usize) -> usize {
    (align - pos % align) % align
}

/// Writes values at a known absolute position in the message, in one byte order.
#[derive(Debug)]
pub struct Encoder {
    /// The bytes written so far.
    pub buf: Vec<u8>,
    /// Absolute position of `buf[0]` in the message.
    base: usize,
    big_endian: bool,
}

impl Encoder {
    /// An encoder whose first byte is at absolute position `base`.
    pub fn new(base: usize, big_endian: bool) -> Self {
        Encoder { buf: Vec::new(), base, big_endian }
    }

    fn pos(&self) -> usize {
        self.base + self.buf.len()
    }

    /// Pads with zeros to `align`.
    pub fn align(&mut self, align: usize) {
        let n = pad_len(self.pos(), align);
        self.buf.extend(std::iter::repeat_n(0u8, n));
    }

    fn put_u32(&mut self, v: u32) {
        self.align(4);
        let b = if self.big_endian { v.to_be_bytes() } else { v.to_le_bytes() };
        self.buf.extend_from_slice(&b);
    }

    fn put_bytes<const N: usize>(&mut self, le: [u8; N], be: [u8; N]) {
        self.align(N);
        self.buf.extend_from_slice(if self.big_endian { &be } else { &le });
    }

    fn put_str(&mut self, s: &str) {
        self.put_u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn put_sig(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    /// Writes one value.
    pub fn value(&mut self, v: &Value) -> Result<(), WireError> {
        match v {
            Value::Byte(x) => self.buf.push(*x),
            Value::Bool(b) => self.put_u32(u32::from(*b)),
            Value::I16(x) => self.put_bytes(x.to_le_bytes(), x.to_be_bytes()),
            Value::U16(x) => self.put_bytes(x.to_le_bytes(), x.to_be_bytes()),
            Value::I32(x) => self.put_bytes(x.to_le_bytes(), x.to_be_bytes()),
            Value::U32(x) => self.put_u32(*x),
            Value::I64(x) => self.put_bytes(x.to_le_bytes(), x.to_be_bytes()),
            Value::U64(x) => self.put_bytes(x.to_le_bytes(), x.to_be_bytes()),
            Value::Double(x) => self.put_bytes(x.to_le_bytes(), x.to_be_bytes()),
            Value::Str(s) => {
                if s.contains('\0') {
                    return Err(WireError::BadString);
                }
                self.put_str(s)
            }
            Value::ObjectPath(s) => {
                if !valid_object_path(s) {
                    return Err(WireError::BadObjectPath);
                }
                self.put_str(s)
            }
            Value::Signature(s) => {
                parse_signature(s)?;
                self.put_sig(s)
            }
            Value::Variant(inner) => {
                let sig = inner.type_of().signature();
                if sig.len() > MAX_SIGNATURE {
                    return Err(WireError::BadSignature(sig));
                }
                self.put_sig(&sig);
                self.value(inner)?;
            }
            Value::Array(t, items) => {
                self.put_u32(0);
                let len_at = self.buf.len() - 4;
                // The padding to the element alignment comes even for an empty array and does
                // not count in the length.
                self.align(t.alignment());
                let start = self.buf.len();
                for item in items {
                    if item.type_of() != *t {
                        return Err(WireError::TypeMismatch(format!("{} in a{}", item.type_of().signature(), t.signature())));
                    }
                    self.value(item)?;
                }
                let len = (self.buf.len() - start) as u32;
                let b = if self.big_endian { len.to_be_bytes() } else { len.to_le_bytes() };
                self.buf[len_at..len_at + 4].copy_from_slice(&b);
            }
            Value::Struct(fields) => {
                self.align(8);
                for f in fields {
                    self.value(f)?;
                }
            }
            Value::DictEntry(k, v) => {
                self.align(8);
                self.value(k)?;
                self.value(v)?;
            }
        }
        Ok(())
    }
}

/// Reads values from a buffer holding a whole message, checking everything.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
    depth: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf` (a whole message: alignment counts from `buf[0]`), starting at `pos`.
    pub fn new(buf: &'a [u8], pos: usize, big_endian: bool) -> Self {
        Decoder { buf, pos, big_endian, depth: 0 }
    }

    /// The read position.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Skips padding to `align`, which must be zero bytes within the buffer.
    pub fn align(&mut self, align: usize) -> Result<(), WireError> {
        let n = pad_len(self.pos, align);
        let pad = self.buf.get(self.pos..self.pos + n).ok_or(WireError::Truncated)?;
        if pad.iter().any(|&b| b != 0) {
            return Err(WireError::PaddingNotZero);
        }
        self.pos += n;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        self.align(N)?;
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        if self.big_endian {
            a.reverse();
        }
        // `a` is now little-endian.
        Ok(a)
    }

    /// Reads a `u32`.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.fixed::<4>()?))
    }

    fn string(&mut self) -> Result<String, WireError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        if self.take(1)? != [0] || bytes.contains(&0) {
            return Err(WireError::BadString);
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError::BadString)
    }

    fn signature(&mut self) -> Result<String, WireError> {
        let len = usize::from(self.take(1)?[0]);
        let bytes = self.take(len)?;
        if self.take(1)? != [0] {
            return Err(WireError::BadString);
        }
        let s = std::str::from_utf8(bytes).map_err(|_| WireError::BadString)?;
        parse_signature(s)?;
        Ok(s.to_string())
    }

    /// Reads one value of type `t`.
    pub fn value(&mut self, t: &Type) -> Result<Value, WireError> {
        self.depth += 1;
        if self.depth > 2 * MAX_DEPTH + 2 {
            return Err(WireError::TooDeep);
        }
        let v = self.value_inner(t);
        self.depth -= 1;
        v
    }

    fn value_inner(&mut self, t: &Type) -> Result<Value, WireError> {
        Ok(match t {
            Type::Byte => Value::Byte(self.take(1)?[0]),
            Type::Bool => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => return Err(WireError::BadBool(n)),
            },
            Type::I16 => Value::I16(i16::from_le_bytes(self.fixed::<2>()?)),
            Type::U16 => Value::U16(u16::from_le_bytes(self.fixed::<2>()?)),
            Type::I32 => Value::I32(i32::from_le_bytes(self.fixed::<4>()?)),
            Type::U32 => Value::U32(u32::from_le_bytes(self.fixed::<4>()?)),
            Type::I64 => Value::I64(i64::from_le_bytes(self.fixed::<8>()?)),
            Type::U64 => Value::U64(u64::from_le_bytes(self.fixed::<8>()?)),
            Type::Double => Value::Double(f64::from_le_bytes(self.fixed::<8>()?)),
            Type::Str => Value::Str(self.string()?),
            Type::ObjectPath => {
                let s = self.string()?;
                if !valid_object_path(&s) {
                    return Err(WireError::BadObjectPath);
                }
                Value::ObjectPath(s)
            }
            Type::Signature => Value::Signature(self.signature()?),
            Type::Variant => {
                let sig = self.signature()?;
                let inner = parse_single(&sig)?;
                Value::Variant(Box::new(self.value(&inner)?))
            }
            Type::Array(elem) => {
                let len = self.u32()?;
                if len as usize > MAX_ARRAY {
                    return Err(WireError::BadArrayLength(len));
                }
                self.align(elem.alignment())?;
                let end = self.pos.checked_add(len as usize).ok_or(WireError::BadArrayLength(len))?;
                if end > self.buf.len() {
                    return Err(WireError::Truncated);
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem)?);
                }
                if self.pos != end {
                    return Err(WireError::BadArrayLength(len));
                }
                Value::Array((**elem).clone(), items)
            }
            Type::Struct(fields) => {
                self.align(8)?;
                let mut vs = Vec::with_capacity(fields.len());
                for f in fields {
                    vs.push(self.value(f)?);
                }
                Value::Struct(vs)
            }
            Type::DictEntry(k, v) => {
                self.align(8)?;
                let k = self.value(k)?;
                let v = self.value(v)?;
                Value::DictEntry(Box::new(k), Box::new(v))
            }
        })
    }
}

/// Whether `s` is a valid object path (`/`, or `/`-separated non-empty `[A-Za-z0-9_]` elements).
pub fn valid_object_path(s: &str) -> bool {
    if s == "/" {
        return true;
    }
    s.starts_with('/')
        && !s.ends_with('/')
        && s[1..].split('/').all(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value, base: usize, be: bool) -> Vec<u8> {
        let mut e = Encoder::new(base, be);
        e.value(v).unwrap();
        e.buf
    }

    /// Every type encodes and decodes back, at an aligned start and one byte off, in both byte
    /// orders (zvariant's trick: the offset start exercises the padding).
    #[test]
    fn round_trips_at_every_offset_and_byte_order() {
        let dict = Value::Array(
            Type::DictEntry(Box::new(Type::Str), Box::new(Type::Variant)),
            vec![
                Value::DictEntry(
                    Box::new(Value::Str("ActiveState".into())),
                    Box::new(Value::Variant(Box::new(Value::Str("active".into())))),
                ),
                Value::DictEntry(Box::new(Value::Str("NRestarts".into())), Box::new(Value::Variant(Box::new(Value::U32(3))))),
            ],
        );
        let values = vec![
            Value::Byte(7),
            Value::Bool(true),
            Value::I16(-2),
            Value::U16(65000),
            Value::I32(-70000),
            Value::U32(4_000_000_000),
            Value::I64(-5),
            Value::U64(u64::MAX - 1),
            Value::Double(1.5),
            Value::Str("héllo".into()),
            Value::ObjectPath("/org/freedesktop/systemd1/unit/crasher_2eservice".into()),
            Value::Signature("a{sv}".into()),
            Value::Variant(Box::new(Value::U64(9))),
            Value::Array(Type::U64, vec![]),
            Value::Array(Type::Str, vec![Value::Str("a".into()), Value::Str("bc".into())]),
            Value::Struct(vec![Value::Byte(1), Value::U64(2), Value::Str("x".into())]),
            dict,
        ];
        for v in values {
            for base in [0usize, 1, 3, 8] {
                for be in [false, true] {
                    let bytes = enc(&v, base, be);
                    // Decode from a buffer that has `base` bytes before the value.
                    let mut buf = vec![0u8; base];
                    buf.extend_from_slice(&bytes);
                    let mut d = Decoder::new(&buf, base, be);
                    let back = d.value(&v.type_of()).unwrap_or_else(|e| panic!("{v:?} at {base} be={be}: {e}"));
                    assert_eq!(back, v, "at {base} be={be}");
                    assert_eq!(d.pos(), buf.len());
                }
            }
        }
    }

    #[test]
    fn exact_bytes_from_the_specification() {
        // u32 at offset 1: three padding bytes, then little-endian.
        assert_eq!(enc(&Value::U32(0x0102_0304), 1, false), vec![0, 0, 0, 4, 3, 2, 1]);
        assert_eq!(enc(&Value::U32(0x0102_0304), 0, true), vec![1, 2, 3, 4]);
        // A string: length, bytes, NUL.
        assert_eq!(enc(&Value::Str("ab".into()), 0, false), vec![2, 0, 0, 0, b'a', b'b', 0]);
        // A signature: one length byte, bytes, NUL.
        assert_eq!(enc(&Value::Signature("as".into()), 0, false), vec![2, b'a', b's', 0]);
        // An empty array of u64 at offset 0: length 0, then padding to 8 that is not counted.
        assert_eq!(enc(&Value::Array(Type::U64, vec![]), 0, false), vec![0, 0, 0, 0, 0, 0, 0, 0]);
        // An array of one u64: the length (8) excludes the 4 padding bytes.
        assert_eq!(enc(&Value::Array(Type::U64, vec![Value::U64(1)]), 0, false), vec![8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        // A variant holding a u32: signature "u", padding, value.
        assert_eq!(enc(&Value::Variant(Box::new(Value::U32(5))), 0, false), vec![1, b'u', 0, 0, 5, 0, 0, 0]);
    }

    #[test]
    fn malformed_bytes_are_errors() {
        let t = |ty: &str, bytes: &[u8]| {
            let ty = parse_single(ty).unwrap();
            Decoder::new(bytes, 0, false).value(&ty)
        };
        assert_eq!(t("u", &[1, 2]), Err(WireError::Truncated));
        assert_eq!(t("b", &[2, 0, 0, 0]), Err(WireError::BadBool(2)));
        assert_eq!(t("s", &[2, 0, 0, 0, b'a', b'b', 1]), Err(WireError::BadString));
        assert_eq!(t("s", &[2, 0, 0, 0, b'a', 0, 0]), Err(WireError::BadString));
        assert_eq!(t("s", &[2, 0, 0, 0, 0xff, 0xfe, 0]), Err(WireError::BadString));
        assert_eq!(t("s", &[0xff, 0xff, 0xff, 0xff, b'a']), Err(WireError::Truncated));
        assert_eq!(t("o", &[3, 0, 0, 0, b'a', b'/', b'b', 0]), Err(WireError::BadObjectPath));
        assert_eq!(t("(yu)", &[1, 9, 0, 0, 1, 0, 0, 0]), Err(WireError::PaddingNotZero));
        assert_eq!(t("at", &[0, 0, 0, 0, 1, 0, 0, 0]), Err(WireError::PaddingNotZero));
        assert_eq!(t("ai", &[0xff, 0xff, 0xff, 0x7f]), Err(WireError::BadArrayLength(0x7fff_ffff)));
        assert_eq!(t("ai", &[3, 0, 0, 0, 1, 0, 0, 0]), Err(WireError::BadArrayLength(3)), "a length that cuts an element");
        assert_eq!(t("ay", &[8, 0, 0, 0, 1]), Err(WireError::Truncated));
        assert!(matches!(t("v", &[1, b'(', 0]), Err(WireError::BadSignature(_))));
        assert!(matches!(t("v", &[2, b'a', b'{', 0]), Err(WireError::BadSignature(_))));
    }

    #[test]
    fn nesting_is_bounded() {
        // A variant holding a variant holding ... 200 deep.
        let mut bytes = Vec::new();
        for _ in 0..200 {
            bytes.extend_from_slice(&[1, b'v', 0]);
        }
        let err = Decoder::new(&bytes, 0, false).value(&Type::Variant).unwrap_err();
        assert!(matches!(err, WireError::TooDeep | WireError::Truncated), "{err:?}");
        assert!(parse_signature(&"a".repeat(33).to_string().chars().chain(['y']).collect::<String>()).is_err());
        assert!(parse_signature(&"(".repeat(33).chars().chain(['y']).chain(")".repeat(33).chars()).collect::<String>()).is_err());
    }

    #[test]
    fn signatures() {
        assert_eq!(parse_signature("a{sv}as(ub)").unwrap().len(), 3);
        assert_eq!(parse_signature("").unwrap(), vec![]);
        for bad in ["a", "{sv}", "a{vs}", "()", "(", "a{sss}", "z", "a{s}"] {
            assert!(parse_signature(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_single("a{sv}").unwrap().signature(), "a{sv}");
        assert!(parse_single("ss").is_err());
    }

    #[test]
    fn object_paths() {
        assert!(valid_object_path("/"));
        assert!(valid_object_path("/org/freedesktop/systemd1"));
        for bad in ["", "org", "/a/", "//a", "/a-b", "/a/./b"] {
            assert!(!valid_object_path(bad), "{bad}");
        }
    }
}
