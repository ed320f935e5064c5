//! The D-Bus wire format: values, their marshalling with the specification's alignment
//! rules (https://dbus.freedesktop.org/doc/dbus-specification.html#message-protocol),
//! and message headers. Only what talking to systemd needs: we write little-endian and
//! read either byte order; `d` (double) and unix fds are not supported.
//!
//! Everything read comes from a peer, so every read is bounds-checked and every size
//! is capped: a broken or hostile peer gets an error, never a panic or a huge allocation.

use crate::bail;
use crate::error::{Error, Result};

/// The specification's limits: a whole message, one array's data, one signature.
pub const MAX_MESSAGE: usize = 128 << 20;
const MAX_ARRAY: usize = 64 << 20;
const MAX_SIGNATURE: usize = 255;
/// Nesting of arrays, structs and variants together (the spec allows 32 + 32).
const MAX_DEPTH: usize = 64;
/// Values decoded from one message. A `Value` takes tens of bytes where a byte array
/// element takes one on the wire; systemd's biggest replies hold far fewer than this.
const MAX_VALUES: usize = 1 << 20;

pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;
/// Header flag: the caller wants no reply.
pub const NO_REPLY_EXPECTED: u8 = 1;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Str(String),
    Path(String),
    Sig(String),
    /// An array: the signature of its element type (e.g. "s", "(sv)", "y"), then the elements.
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    /// The D-Bus signature of this value: "as", "a(sv)", "(ss)", "v", ...
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => format!(
                "({})",
                fields.iter().map(Value::signature).collect::<String>()
            ),
            Value::Variant(_) => "v".into(),
        }
    }

    /// A string, object path or signature.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer that fits in a u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Byte(n) => Some(n.into()),
            Value::U32(n) => Some(n.into()),
            Value::U64(n) => Some(n),
            Value::I32(n) => u64::try_from(n).ok(),
            Value::I64(n) => u64::try_from(n).ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(_, items) => Some(items),
            _ => None,
        }
    }

    pub fn as_struct(&self) -> Option<&[Value]> {
        match self {
            Value::Struct(fields) => Some(fields),
            _ => None,
        }
    }

    /// The value inside a Variant; any other value is itself.
    pub fn variant(&self) -> &Value {
        match self {
            Value::Variant(inner) => inner,
            other => other,
        }
    }
}

/// A property for systemd's StartTransientUnit and SetUnitProperties: "(sv)".
pub fn prop(name: &str, value: Value) -> Value {
    Value::Struct(vec![
        Value::Str(name.into()),
        Value::Variant(Box::new(value)),
    ])
}

/// A message's header; the body's signature is derived from (or read into) its values.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Header {
    pub kind: u8,
    pub flags: u8,
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub destination: Option<String>,
    pub sender: Option<String>,
}

/// A whole message, little-endian.
pub fn encode(h: &Header, body: &[Value]) -> Result<Vec<u8>> {
    let sig: String = body.iter().map(Value::signature).collect();
    if sig.len() > MAX_SIGNATURE {
        bail!("D-Bus message body signature longer than {MAX_SIGNATURE}: {sig}");
    }
    let text =
        |code: u8, s: &Option<String>, f: fn(String) -> Value| s.clone().map(|s| (code, f(s)));
    let fields = [
        text(1, &h.path, Value::Path),
        text(2, &h.interface, Value::Str),
        text(3, &h.member, Value::Str),
        text(4, &h.error_name, Value::Str),
        h.reply_serial.map(|n| (5, Value::U32(n))),
        text(6, &h.destination, Value::Str),
        text(7, &h.sender, Value::Str),
        (!sig.is_empty()).then_some((8, Value::Sig(sig))),
    ];
    let fields = fields
        .into_iter()
        .flatten()
        .map(|(code, v)| Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))]));
    let fixed = [
        Value::Byte(b'l'),
        Value::Byte(h.kind),
        Value::Byte(h.flags),
        Value::Byte(1),
        Value::U32(0), // the body's length, filled in below
        Value::U32(h.serial),
        Value::Array("(yv)".into(), fields.collect()),
    ];
    let mut buf = Vec::new();
    for v in &fixed {
        put(&mut buf, v)?;
    }
    pad(&mut buf, 8);
    let start = buf.len();
    for v in body {
        put(&mut buf, v)?;
    }
    if buf.len() > MAX_MESSAGE {
        bail!(
            "D-Bus message of {} bytes is over the limit of {MAX_MESSAGE}",
            buf.len()
        );
    }
    let body_len = (buf.len() - start) as u32; // below MAX_MESSAGE
    buf[4..8].copy_from_slice(&body_len.to_le_bytes());
    Ok(buf)
}

fn pad(buf: &mut Vec<u8>, align: usize) {
    buf.resize(buf.len().next_multiple_of(align), 0);
}

/// The alignment of the type whose signature starts with `code`.
fn align_of(code: u8) -> usize {
    match code {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b'h' | b's' | b'o' | b'a' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

fn put_fixed(buf: &mut Vec<u8>, bytes: &[u8]) {
    pad(buf, bytes.len());
    buf.extend_from_slice(bytes);
}

/// Marshal `v` at the end of `buf`, which starts at the message's first byte (alignment
/// is relative to it).
fn put(buf: &mut Vec<u8>, v: &Value) -> Result<()> {
    match v {
        Value::Byte(b) => buf.push(*b),
        Value::Bool(b) => put_fixed(buf, &u32::from(*b).to_le_bytes()),
        Value::I32(n) => put_fixed(buf, &n.to_le_bytes()),
        Value::U32(n) => put_fixed(buf, &n.to_le_bytes()),
        Value::I64(n) => put_fixed(buf, &n.to_le_bytes()),
        Value::U64(n) => put_fixed(buf, &n.to_le_bytes()),
        Value::Str(s) | Value::Path(s) => {
            if s.contains('\0') || s.len() > MAX_ARRAY {
                bail!("D-Bus string {s:?}: holds a NUL or is too long");
            }
            put_fixed(buf, &(s.len() as u32).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
            buf.push(0);
        }
        Value::Sig(s) => {
            check_signature(s)?;
            buf.push(s.len() as u8); // at most MAX_SIGNATURE
            buf.extend_from_slice(s.as_bytes());
            buf.push(0);
        }
        Value::Array(elem, items) => {
            if type_len(elem.as_bytes(), 1)? != elem.len() {
                bail!("D-Bus array element signature {elem:?} is not one complete type");
            }
            pad(buf, 4);
            let at = buf.len();
            buf.extend_from_slice(&[0; 4]);
            // The padding to the first element is there even when there is none.
            pad(buf, align_of(elem.as_bytes()[0]));
            let start = buf.len();
            for item in items {
                let sig = item.signature();
                if sig != *elem {
                    bail!("D-Bus array of {elem:?} holds a {sig:?}");
                }
                put(buf, item)?;
            }
            let len = buf.len() - start;
            if len > MAX_ARRAY {
                bail!("D-Bus array of {elem:?}: {len} bytes, over the limit of {MAX_ARRAY}");
            }
            buf[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
        }
        Value::Struct(fields) => {
            if fields.is_empty() {
                bail!("D-Bus struct without fields");
            }
            pad(buf, 8);
            for f in fields {
                put(buf, f)?;
            }
        }
        Value::Variant(inner) => {
            put(buf, &Value::Sig(inner.signature()))?;
            put(buf, inner)?;
        }
    }
    Ok(())
}

/// The length of the single complete type at the start of `sig`.
fn type_len(sig: &[u8], depth: usize) -> Result<usize> {
    if depth > MAX_DEPTH {
        bail!("D-Bus signature nested deeper than {MAX_DEPTH}");
    }
    match sig.first() {
        Some(b'a') => Ok(1 + type_len(&sig[1..], depth + 1)?),
        Some(&open @ (b'(' | b'{')) => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut i = 1;
            while sig.get(i) != Some(&close) {
                i += type_len(&sig[i..], depth + 1)?;
            }
            if i == 1 {
                bail!("D-Bus signature has an empty struct");
            }
            Ok(i + 1)
        }
        Some(c) if b"ybnqiuxtsogvh".contains(c) => Ok(1),
        Some(&c) => bail!("D-Bus type {:?} is not supported", c as char),
        None => bail!("D-Bus signature ends in the middle of a type"),
    }
}

/// A signature: complete types, one after another.
fn check_signature(sig: &str) -> Result<()> {
    if sig.len() > MAX_SIGNATURE {
        bail!("D-Bus signature longer than {MAX_SIGNATURE}: {sig}");
    }
    let mut rest = sig.as_bytes();
    while !rest.is_empty() {
        rest = &rest[type_len(rest, 0)?..];
    }
    Ok(())
}

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::msg(format!("malformed D-Bus message: {what}"))
}

/// Return early: the peer sent something that is not valid D-Bus.
macro_rules! bad {
    ($($arg:tt)*) => { return Err(malformed(format!($($arg)*))) };
}

/// The length of the whole message that `buf` starts with (at least its first 16 bytes).
pub fn message_len(buf: &[u8]) -> Result<usize> {
    let mut r = Reader::new(buf)?;
    r.pos = 4;
    let body = u64::from(r.u32()?);
    r.u32()?; // serial
    let fields = u64::from(r.u32()?);
    let total = 16 + fields.next_multiple_of(8) + body;
    if fields > MAX_ARRAY as u64 || total > MAX_MESSAGE as u64 {
        bad!("length {total} over the limit of {MAX_MESSAGE}");
    }
    Ok(total as usize)
}

/// A whole message: exactly `buf`.
pub fn decode(buf: &[u8]) -> Result<(Header, Vec<Value>)> {
    if buf.len() < 16 || message_len(buf)? != buf.len() {
        bad!("{} bytes, not the length its header says", buf.len());
    }
    let mut r = Reader::new(buf)?;
    r.pos = 1;
    let mut h = Header {
        kind: r.byte()?,
        flags: r.byte()?,
        ..Header::default()
    };
    if r.byte()? != 1 {
        bad!("protocol version is not 1");
    }
    r.u32()?; // the body's length: message_len checked it
    h.serial = r.u32()?;
    let Value::Array(_, fields) = r.value(b"a(yv)", 0)? else {
        bad!("no header fields");
    };
    let mut sig = String::new();
    for field in fields {
        let Value::Struct(field) = field else {
            continue;
        };
        let mut it = field.into_iter();
        let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (it.next(), it.next()) else {
            continue;
        };
        match (code, *v) {
            (1, Value::Path(s)) => h.path = Some(s),
            (2, Value::Str(s)) => h.interface = Some(s),
            (3, Value::Str(s)) => h.member = Some(s),
            (4, Value::Str(s)) => h.error_name = Some(s),
            (5, Value::U32(n)) => h.reply_serial = Some(n),
            (6, Value::Str(s)) => h.destination = Some(s),
            (7, Value::Str(s)) => h.sender = Some(s),
            (8, Value::Sig(s)) => sig = s,
            (1..=8, v) => bad!("header field {code} of type {}", v.signature()),
            _ => {} // UNIX_FDS and fields unknown to us: nothing we need
        }
    }
    r.align(8)?;
    let body = r.values(sig.as_bytes())?;
    if r.pos != buf.len() {
        bad!("body longer than its signature {sig:?}");
    }
    let required = match h.kind {
        METHOD_CALL => h.path.is_some() && h.member.is_some(),
        METHOD_RETURN => h.reply_serial.is_some(),
        ERROR => h.error_name.is_some() && h.reply_serial.is_some(),
        SIGNAL => h.path.is_some() && h.interface.is_some() && h.member.is_some(),
        _ => true, // unknown types are to be ignored, by the caller
    };
    if h.serial == 0 || !required {
        bad!(
            "type {} with serial {} lacks a required header field",
            h.kind,
            h.serial
        );
    }
    Ok((h, body))
}

/// Unmarshals from a whole message (alignment is relative to its first byte).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
    /// Values left to decode before the message counts as too big.
    budget: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Result<Self> {
        let big_endian = match buf.first() {
            Some(b'l') => false,
            Some(b'B') => true,
            other => bad!("endianness byte {other:?}"),
        };
        Ok(Reader {
            buf,
            pos: 0,
            big_endian,
            budget: MAX_VALUES,
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let end = end.ok_or_else(|| {
            malformed(format!("{n} bytes at offset {} run past its end", self.pos))
        })?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn align(&mut self, align: usize) -> Result<()> {
        let n = self.pos.next_multiple_of(align) - self.pos;
        if self.take(n)?.iter().any(|&b| b != 0) {
            bad!("nonzero padding before offset {}", self.pos);
        }
        Ok(())
    }

    /// N bytes aligned to N, as little-endian.
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.align(N)?;
        let mut bytes = [0; N];
        bytes.copy_from_slice(self.take(N)?);
        if self.big_endian {
            bytes.reverse();
        }
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.fixed::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    /// `len` bytes of UTF-8 and a NUL.
    fn text(&mut self, len: usize) -> Result<String> {
        let at = self.pos;
        let bytes = self.take(len)?;
        if self.take(1)? != [0] || bytes.contains(&0) {
            bad!("string at offset {at} is not NUL-terminated or holds a NUL");
        }
        String::from_utf8(bytes.to_vec())
            .map_err(|_| malformed(format!("string at offset {at} is not UTF-8")))
    }

    fn signature(&mut self) -> Result<String> {
        let len = self.byte()?.into();
        let sig = self.text(len)?;
        check_signature(&sig).map_err(malformed)?;
        Ok(sig)
    }

    /// Values of the complete types of `sig`, one after another.
    fn values(&mut self, mut sig: &[u8]) -> Result<Vec<Value>> {
        let mut values = Vec::new();
        while !sig.is_empty() {
            let n = type_len(sig, 0).map_err(malformed)?;
            values.push(self.value(&sig[..n], 0)?);
            sig = &sig[n..];
        }
        Ok(values)
    }

    /// A value of `sig`, a single complete type.
    fn value(&mut self, sig: &[u8], depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            bad!("values nested deeper than {MAX_DEPTH}");
        }
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or_else(|| malformed(format!("more than {MAX_VALUES} values")))?;
        let code = sig.first().copied().unwrap_or(0);
        Ok(match code {
            b'y' => Value::Byte(self.byte()?),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => bad!("boolean {n}"),
            },
            // Read-only types: widened to the nearest type we have.
            b'n' => Value::I32(i16::from_le_bytes(self.fixed()?).into()),
            b'q' => Value::U32(u16::from_le_bytes(self.fixed()?).into()),
            b'i' => Value::I32(i32::from_le_bytes(self.fixed()?)),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'x' => Value::I64(i64::from_le_bytes(self.fixed()?)),
            b't' => Value::U64(u64::from_le_bytes(self.fixed()?)),
            b's' | b'o' => {
                let len = self.u32()? as usize;
                let s = self.text(len)?;
                if code == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => Value::Sig(self.signature()?),
            b'v' => {
                let inner = self.signature()?;
                if type_len(inner.as_bytes(), depth + 1).map_err(malformed)? != inner.len() {
                    bad!("variant signature {inner:?} is not one complete type");
                }
                Value::Variant(Box::new(self.value(inner.as_bytes(), depth + 1)?))
            }
            b'a' => {
                let elem = &sig[1..];
                let len = self.u32()? as usize;
                if len > MAX_ARRAY {
                    bad!("array of {len} bytes");
                }
                self.align(align_of(elem.first().copied().unwrap_or(0)))?;
                let end = self.pos + len;
                if end > self.buf.len() {
                    bad!("array at offset {} runs past its end", self.pos);
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem, depth + 1)?);
                }
                if self.pos != end {
                    bad!("array elements overrun its length at offset {end}");
                }
                // Dict entries are read as structs: a{sv} becomes an array of (sv).
                let elem = String::from_utf8_lossy(elem)
                    .replace('{', "(")
                    .replace('}', ")");
                Value::Array(elem, items)
            }
            b'(' | b'{' => {
                self.align(8)?;
                let mut rest = sig.get(1..sig.len() - 1).unwrap_or_default();
                let mut fields = Vec::new();
                while !rest.is_empty() {
                    let n = type_len(rest, depth + 1).map_err(malformed)?;
                    fields.push(self.value(&rest[..n], depth + 1)?);
                    rest = &rest[n..];
                }
                if fields.is_empty() {
                    bad!("struct without fields");
                }
                Value::Struct(fields)
            }
            _ => bad!("type {:?} is not supported", code as char),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Value::*;

    fn call(body: Vec<Value>) -> (Header, Vec<Value>) {
        let h = Header {
            kind: METHOD_CALL,
            serial: 7,
            path: Some("/org/x".into()),
            interface: Some("org.x.I".into()),
            member: Some("M".into()),
            destination: Some("org.x".into()),
            ..Header::default()
        };
        (h, body)
    }

    fn every_type() -> Vec<Value> {
        vec![
            Byte(0xfe),
            Bool(true),
            I32(-5),
            U32(0xdead_beef),
            I64(i64::MIN),
            U64(u64::MAX),
            Str("héllo".into()),
            Path("/a/b".into()),
            Sig("a(sv)".into()),
            Array("s".into(), vec![Str("x".into()), Str(String::new())]),
            Array("t".into(), vec![]),
            Array(
                "(sv)".into(),
                vec![
                    prop("A", U64(1)),
                    prop("B", Array("y".into(), vec![Byte(1)])),
                ],
            ),
            Struct(vec![Byte(1), U64(2), Struct(vec![Bool(false)])]),
            Variant(Box::new(Variant(Box::new(Array(
                "ay".into(),
                vec![Array("y".into(), vec![])],
            ))))),
        ]
    }

    fn sample() -> Vec<u8> {
        let (h, body) = call(every_type());
        encode(&h, &body).unwrap()
    }

    #[test]
    fn round_trip_every_type() {
        let (h, body) = call(every_type());
        let buf = encode(&h, &body).unwrap();
        assert_eq!(buf.len(), message_len(&buf).unwrap());
        assert_eq!(decode(&buf).unwrap(), (h, body));
        let sigs: Vec<String> = every_type().iter().map(Value::signature).collect();
        assert_eq!(sigs.concat(), "ybiuxtsogasata(sv)(yt(b))v");
    }

    #[test]
    fn alignment() {
        let enc = |vals: &[Value]| {
            let mut buf = Vec::new();
            vals.iter().for_each(|v| put(&mut buf, v).unwrap());
            buf
        };
        // A struct starts on 8, a u64 inside it too.
        assert_eq!(
            enc(&[Byte(1), Struct(vec![Byte(2), U64(3)])]),
            [
                &[1, 0, 0, 0, 0, 0, 0, 0, 2][..],
                &[0; 7],
                &[3, 0, 0, 0, 0, 0, 0, 0]
            ]
            .concat()
        );
        // An empty array of 8-aligned elements still pads to 8; its length excludes that.
        assert_eq!(enc(&[Array("t".into(), vec![])]), [0; 8]);
        assert_eq!(
            enc(&[U32(9), Array("(y)".into(), vec![])]),
            [9, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            enc(&[Byte(1), Array("t".into(), vec![U64(2)])]),
            [1, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
        );
        // Variant: signature, then the value aligned from the message start.
        assert_eq!(
            enc(&[Variant(Box::new(U32(5)))]),
            [1, b'u', 0, 0, 5, 0, 0, 0]
        );
    }

    #[test]
    fn known_encoding() {
        // Derived by hand from the specification: call "/a" member "M" to "d", body u32 7.
        let h = Header {
            kind: METHOD_CALL,
            serial: 1,
            path: Some("/a".into()),
            member: Some("M".into()),
            destination: Some("d".into()),
            ..Header::default()
        };
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &b"l\x01\x00\x01"[..], &[4, 0, 0, 0], &[1, 0, 0, 0], &[55, 0, 0, 0], // fields: 16..71
            &[1, 1, b'o', 0], &[2, 0, 0, 0], b"/a\0",   // PATH
            &[0; 5], &[3, 1, b's', 0], &[1, 0, 0, 0], b"M\0", // MEMBER at 32
            &[0; 6], &[6, 1, b's', 0], &[1, 0, 0, 0], b"d\0", // DESTINATION at 48
            &[0; 6], &[8, 1, b'g', 0], &[1], b"u\0",           // SIGNATURE at 64
            &[0], &[7, 0, 0, 0],                               // body at 72
        ].concat();
        assert_eq!(encode(&h, &[U32(7)]).unwrap(), want);
        assert_eq!(decode(&want).unwrap(), (h, vec![U32(7)]));
    }

    #[test]
    fn big_endian_and_dict() {
        // A big-endian reply with an a{sv} body, written by hand.
        #[rustfmt::skip]
        let msg: Vec<u8> = [
            &b"B\x02\x00\x01"[..], &[0, 0, 0, 20], &[0, 0, 0, 9], &[0, 0, 0, 19],
            &[5, 1, b'u', 0], &[0, 0, 0, 3],                       // REPLY_SERIAL 3
            &[8, 1, b'g', 0], &[5], b"a{sv}\0", &[0; 5],           // SIGNATURE, pad to 40
            &[0, 0, 0, 12], &[0; 4],                                // array length, pad to 48
            &[0, 0, 0, 1], b"k\0", &[1], b"q\0", &[0], &[0, 7],    // {"k", <uint16 7>}
        ].concat();
        let (h, body) = decode(&msg).unwrap();
        assert_eq!(
            (h.kind, h.serial, h.reply_serial),
            (METHOD_RETURN, 9, Some(3))
        );
        assert_eq!(body, [Array("(sv)".into(), vec![prop("k", U32(7))])]);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let buf = sample();
        for n in 0..buf.len() {
            assert!(decode(&buf[..n]).is_err(), "prefix of {n} bytes");
        }
        // Also a shorter body with a header that agrees with it, to reach the body's parser.
        let body_start = buf.len() - u32::from_le_bytes(buf[4..8].try_into().unwrap()) as usize;
        for n in body_start..buf.len() {
            let mut short = buf[..n].to_vec();
            short[4..8].copy_from_slice(&((n - body_start) as u32).to_le_bytes());
            assert!(decode(&short).is_err(), "body cut at {n}");
        }
    }

    #[test]
    fn random_corruption_never_panics() {
        let buf = sample();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move || {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bad = buf.clone();
            for _ in 0..1 + rand() % 4 {
                let at = (rand() % bad.len() as u64) as usize;
                bad[at] = rand() as u8;
            }
            let _ = decode(&bad);
            if let Ok(n) = message_len(&bad) {
                let _ = decode(&bad[..n.min(bad.len())]);
            }
        }
    }

    #[test]
    fn hostile_values_are_errors() {
        let msg = |body_sig: &str, body: &[u8]| {
            // A placeholder body with a signature of the same length keeps the header
            // valid when the signature and then the body are replaced.
            let (h, _) = call(vec![]);
            let placeholder = vec![Byte(0); body_sig.len()];
            let mut buf = encode(&h, &placeholder).unwrap();
            buf.truncate(buf.len() - placeholder.len());
            let at = buf.windows(4).position(|w| w == [8, 1, b'g', 0]).unwrap() + 5;
            buf[at..at + body_sig.len()].copy_from_slice(body_sig.as_bytes());
            buf.extend_from_slice(body);
            buf[4..8].copy_from_slice(&(body.len() as u32).to_le_bytes());
            buf
        };
        assert_eq!(decode(&msg("u", &[7, 0, 0, 0])).unwrap().1, [U32(7)]);
        assert!(decode(&msg("b", &[2, 0, 0, 0])).is_err());
        assert!(decode(&msg("s", &[1, 0, 0, 0, b'x', 1])).is_err());
        assert!(decode(&msg("s", &[1, 0, 0, 0, 0xff, 0])).is_err());
        assert!(decode(&msg("u", &[7, 0, 0, 0, 0])).is_err());
        assert!(decode(&msg("d", &[0; 8])).is_err());
        assert!(decode(&msg("au", &[0xff, 0xff, 0xff, 0xff])).is_err());
        assert!(decode(&msg("au", &[2, 0, 0, 0, 7, 0, 0, 0])).is_err());
        // Nesting past the limit, whichever way it is built.
        let mut deep = U32(1);
        for _ in 0..70 {
            deep = Variant(Box::new(deep));
        }
        let (h, _) = call(vec![]);
        assert!(decode(&encode(&h, &[deep]).unwrap())
            .unwrap_err()
            .to_string()
            .contains("deeper"));
        let mut deep = Array("u".into(), vec![]);
        for _ in 0..70 {
            deep = Array(deep.signature(), vec![]);
        }
        assert!(encode(&h, &[deep]).is_err());
        // Writing checks the array's element types.
        assert!(encode(&h, &[Array("s".into(), vec![U32(1)])]).is_err());
    }
}
