//! Bytes <-> [`Message`] for the three WAMP serializers, with payloads kept raw.
//!
//! Decoding first splits the top-level array into the byte ranges of its elements (zero-copy slices
//! of the input), then decodes the envelope elements (ids, URIs, dictionaries) and keeps
//! `Arguments`/`ArgumentsKw` as [`RawValue`]s. Encoding writes the envelope and copies a raw payload
//! through untouched when it is already in the target serializer; otherwise it transcodes it through
//! [`Value`] by the spec's conversion rules, and fails with [`EncodeError::Unconvertible`] when the
//! payload has no equivalent in the target format (a CBOR tag, a MessagePack extension, ...).

use bytes::Bytes;
use serde::de::IgnoredAny;

use crate::message::{Message, MessageType, Payload};
use crate::options;
use crate::value::{Dict, Value};

/// A WAMP serializer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// JSON, with the `\0`+Base64 rule for binary.
    Json,
    /// MessagePack.
    MsgPack,
    /// CBOR.
    Cbor,
}

impl Serializer {
    /// All serializers, in the router's order of preference.
    pub const ALL: [Serializer; 3] = [Serializer::Cbor, Serializer::MsgPack, Serializer::Json];

    /// The name used in configs and by autobahn (`json`, `msgpack`, `cbor`).
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
            Serializer::Cbor => "cbor",
        }
    }

    /// Parses a serializer name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Serializer::Json),
            "msgpack" => Some(Serializer::MsgPack),
            "cbor" => Some(Serializer::Cbor),
            _ => None,
        }
    }

    /// The WebSocket subprotocol, `wamp.2.<name>`.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
            Serializer::Cbor => "wamp.2.cbor",
        }
    }

    /// Parses a WebSocket subprotocol.
    pub fn from_subprotocol(p: &str) -> Option<Self> {
        p.strip_prefix("wamp.2.").and_then(Self::from_name)
    }

    /// The RawSocket serializer id (spec, "RawSocket Transport": 1 = JSON, 2 = MessagePack, 3 = CBOR).
    pub fn rawsocket_id(self) -> u8 {
        match self {
            Serializer::Json => 1,
            Serializer::MsgPack => 2,
            Serializer::Cbor => 3,
        }
    }

    /// Parses a RawSocket serializer id.
    pub fn from_rawsocket_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Serializer::Json),
            2 => Some(Serializer::MsgPack),
            3 => Some(Serializer::Cbor),
            _ => None,
        }
    }

    /// Whether a WebSocket carrying this serializer uses text frames.
    pub fn is_text(self) -> bool {
        self == Serializer::Json
    }
}

/// One value exactly as a peer serialized it, tagged with its serializer.
#[derive(Clone, Debug, PartialEq)]
pub struct RawValue {
    serializer: Serializer,
    bytes: Bytes,
}

impl RawValue {
    /// Wraps bytes that hold exactly one value in `serializer`'s format. The caller vouches for that;
    /// decoding does it through [`decode`].
    pub fn from_encoded(serializer: Serializer, bytes: Bytes) -> Self {
        Self { serializer, bytes }
    }

    /// Encodes a [`Value`].
    pub fn from_value(serializer: Serializer, value: &Value) -> Result<Self, EncodeError> {
        let mut buf = Vec::new();
        write_value(serializer, &mut buf, value)?;
        Ok(Self {
            serializer,
            bytes: Bytes::from(buf),
        })
    }

    /// The serializer the bytes are in.
    pub fn serializer(&self) -> Serializer {
        self.serializer
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Decodes the value.
    pub fn to_value(&self) -> Result<Value, DecodeError> {
        decode_value(self.serializer, &self.bytes)
    }

    /// The same value in another serializer: the bytes themselves when `target` is ours.
    pub fn to_serializer(&self, target: Serializer) -> Result<RawValue, EncodeError> {
        if target == self.serializer {
            return Ok(self.clone());
        }
        let value = self
            .to_value()
            .map_err(|e| EncodeError::Unconvertible(e.to_string()))?;
        RawValue::from_value(target, &value)
    }

    /// Whether the value is a list, judged from its first byte(s) without decoding it.
    fn is_list(&self) -> bool {
        match self.serializer {
            Serializer::Json => first_json_byte(&self.bytes) == Some(b'['),
            Serializer::MsgPack => matches!(self.bytes.first(), Some(0x90..=0x9f | 0xdc | 0xdd)),
            Serializer::Cbor => matches!(self.bytes.first(), Some(b) if b >> 5 == 4),
        }
    }

    /// Whether the value is a dictionary, judged from its first byte(s) without decoding it.
    fn is_dict(&self) -> bool {
        match self.serializer {
            Serializer::Json => first_json_byte(&self.bytes) == Some(b'{'),
            Serializer::MsgPack => matches!(self.bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf)),
            Serializer::Cbor => matches!(self.bytes.first(), Some(b) if b >> 5 == 5),
        }
    }
}

fn first_json_byte(b: &[u8]) -> Option<u8> {
    b.iter().copied().find(|c| !c.is_ascii_whitespace())
}

/// Why bytes could not be decoded into a message. Every case is a protocol violation by the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a valid document of the serializer.
    #[error("invalid {0}: {1}")]
    Syntax(&'static str, String),
    /// The document is not a WAMP message array.
    #[error("not a WAMP message: {0}")]
    NotAMessage(String),
    /// The message type code is unknown.
    #[error("unknown message type {0}")]
    UnknownType(u64),
    /// An element of a known message type is missing, extra, or of the wrong kind.
    #[error("{0}: {1}")]
    BadElement(&'static str, String),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A payload has no equivalent in the target serializer.
    #[error("payload cannot be converted: {0}")]
    Unconvertible(String),
}

// ---------------------------------------------------------------------------------------------
// Splitting the top-level array into element slices.

/// Splits a serialized WAMP message into the byte slices of its array elements.
fn split_elements(serializer: Serializer, input: &Bytes) -> Result<Vec<Bytes>, DecodeError> {
    match serializer {
        Serializer::Json => {
            let raw: Vec<&serde_json::value::RawValue> = serde_json::from_slice(input)
                .map_err(|e| DecodeError::Syntax("json", e.to_string()))?;
            Ok(raw
                .into_iter()
                .map(|r| input.slice_ref(r.get().as_bytes()))
                .collect())
        }
        Serializer::MsgPack => {
            let mut cursor: &[u8] = input;
            let len = rmp::decode::read_array_len(&mut cursor)
                .map_err(|e| DecodeError::NotAMessage(format!("msgpack: {e}")))?;
            let mut elements = Vec::with_capacity((len as usize).min(8));
            for _ in 0..len {
                let before = cursor;
                rmp_serde::from_read::<_, IgnoredAny>(&mut cursor)
                    .map_err(|e| DecodeError::Syntax("msgpack", e.to_string()))?;
                let used = before.len() - cursor.len();
                elements.push(input.slice_ref(&before[..used]));
            }
            if !cursor.is_empty() {
                return Err(DecodeError::Syntax(
                    "msgpack",
                    "trailing bytes after the message".into(),
                ));
            }
            Ok(elements)
        }
        Serializer::Cbor => {
            let mut cursor: &[u8] = input;
            let len = read_cbor_array_header(&mut cursor)?;
            let mut elements = Vec::with_capacity(len.unwrap_or(4).min(8));
            let mut remaining = len;
            loop {
                match remaining {
                    Some(0) => break,
                    Some(ref mut n) => *n -= 1,
                    None => {
                        if cursor.first() == Some(&0xff) {
                            cursor = &cursor[1..];
                            break;
                        }
                    }
                }
                if cursor.is_empty() {
                    return Err(DecodeError::Syntax("cbor", "truncated array".into()));
                }
                let before = cursor;
                ciborium::from_reader::<IgnoredAny, _>(&mut cursor)
                    .map_err(|e| DecodeError::Syntax("cbor", e.to_string()))?;
                let used = before.len() - cursor.len();
                elements.push(input.slice_ref(&before[..used]));
            }
            if !cursor.is_empty() {
                return Err(DecodeError::Syntax(
                    "cbor",
                    "trailing bytes after the message".into(),
                ));
            }
            Ok(elements)
        }
    }
}

/// Reads a CBOR array header (RFC 8949 §3): `Some(len)` for a definite length, `None` for an
/// indefinite one.
fn read_cbor_array_header(cursor: &mut &[u8]) -> Result<Option<usize>, DecodeError> {
    let not_array = || DecodeError::NotAMessage("cbor: the message is not an array".into());
    let (&first, rest) = cursor.split_first().ok_or_else(not_array)?;
    if first >> 5 != 4 {
        return Err(not_array());
    }
    let info = first & 0x1f;
    let (len, rest) = match info {
        0..=23 => (u64::from(info), rest),
        24..=27 => {
            let n = 1usize << (info - 24);
            if rest.len() < n {
                return Err(not_array());
            }
            let len = rest[..n]
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            (len, &rest[n..])
        }
        31 => {
            *cursor = rest;
            return Ok(None);
        }
        _ => return Err(not_array()),
    };
    *cursor = rest;
    usize::try_from(len).map(Some).map_err(|_| not_array())
}

/// Decodes one serialized value.
fn decode_value(serializer: Serializer, bytes: &[u8]) -> Result<Value, DecodeError> {
    match serializer {
        Serializer::Json => {
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Syntax("json", e.to_string()))
        }
        Serializer::MsgPack => {
            rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Syntax("msgpack", e.to_string()))
        }
        Serializer::Cbor => {
            ciborium::from_reader(bytes).map_err(|e| DecodeError::Syntax("cbor", e.to_string()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding messages.

/// The elements of one message being decoded, with the message's name for error texts.
struct Elements {
    serializer: Serializer,
    kind: MessageType,
    items: Vec<Bytes>,
}

impl Elements {
    fn bad(&self, what: impl Into<String>) -> DecodeError {
        DecodeError::BadElement(self.kind.name(), what.into())
    }

    fn expect_len(&self, min: usize, max: usize) -> Result<(), DecodeError> {
        let n = self.items.len();
        if n < min || n > max {
            let want = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(self.bad(format!("expected {want} elements, got {n}")));
        }
        Ok(())
    }

    fn value(&self, i: usize, name: &str) -> Result<Value, DecodeError> {
        decode_value(self.serializer, &self.items[i]).map_err(|e| self.bad(format!("{name}: {e}")))
    }

    fn id(&self, i: usize, name: &str) -> Result<u64, DecodeError> {
        match self.value(i, name)? {
            Value::UInt(n) if n <= crate::ids::MAX_ID => Ok(n),
            other => Err(self.bad(format!(
                "{name} must be an integer in [0, 2^53], got {}",
                other.kind()
            ))),
        }
    }

    fn string(&self, i: usize, name: &str) -> Result<String, DecodeError> {
        match self.value(i, name)? {
            Value::Str(s) => Ok(s),
            other => Err(self.bad(format!("{name} must be a string, got {}", other.kind()))),
        }
    }

    fn dict(&self, i: usize, name: &str) -> Result<Dict, DecodeError> {
        match self.value(i, name)? {
            Value::Dict(d) => Ok(d),
            other => Err(self.bad(format!("{name} must be a dict, got {}", other.kind()))),
        }
    }

    /// The payload elements starting at `i`. `passthru` says whether the options/details ask for
    /// payload passthru mode, where the single payload element is opaque.
    fn payload(&self, i: usize, passthru: bool) -> Result<Payload, DecodeError> {
        let raw = |j: usize| {
            self.items
                .get(j)
                .map(|b| RawValue::from_encoded(self.serializer, b.clone()))
        };
        let payload = Payload {
            args: raw(i),
            kwargs: raw(i + 1),
        };
        if passthru {
            if payload.kwargs.is_some() {
                return Err(self.bad("a payload passthru message has a single payload element"));
            }
            return Ok(payload);
        }
        if let Some(args) = &payload.args
            && !args.is_list()
        {
            return Err(self.bad("Arguments must be a list"));
        }
        if let Some(kwargs) = &payload.kwargs
            && !kwargs.is_dict()
        {
            return Err(self.bad("ArgumentsKw must be a dict"));
        }
        Ok(payload)
    }
}

/// Decodes one message. Every error is a protocol violation by the peer that sent the bytes.
pub fn decode(serializer: Serializer, input: &Bytes) -> Result<Message, DecodeError> {
    let items = split_elements(serializer, input)?;
    let first = items
        .first()
        .ok_or_else(|| DecodeError::NotAMessage("empty array".into()))?;
    let code = match decode_value(serializer, first)? {
        Value::UInt(code) => code,
        other => {
            return Err(DecodeError::NotAMessage(format!(
                "the message type must be an integer, got {}",
                other.kind()
            )));
        }
    };
    let kind = MessageType::from_code(code).ok_or(DecodeError::UnknownType(code))?;
    let e = Elements {
        serializer,
        kind,
        items,
    };
    use MessageType as T;
    let msg = match kind {
        T::Hello => {
            e.expect_len(3, 3)?;
            Message::Hello {
                realm: e.string(1, "Realm")?,
                details: e.dict(2, "Details")?,
            }
        }
        T::Welcome => {
            e.expect_len(3, 3)?;
            Message::Welcome {
                session: e.id(1, "Session")?,
                details: e.dict(2, "Details")?,
            }
        }
        T::Abort => {
            e.expect_len(3, 3)?;
            Message::Abort {
                details: e.dict(1, "Details")?,
                reason: e.string(2, "Reason")?,
            }
        }
        T::Challenge => {
            e.expect_len(3, 3)?;
            Message::Challenge {
                method: e.string(1, "AuthMethod")?,
                extra: e.dict(2, "Extra")?,
            }
        }
        T::Authenticate => {
            e.expect_len(3, 3)?;
            Message::Authenticate {
                signature: e.string(1, "Signature")?,
                extra: e.dict(2, "Extra")?,
            }
        }
        T::Goodbye => {
            e.expect_len(3, 3)?;
            Message::Goodbye {
                details: e.dict(1, "Details")?,
                reason: e.string(2, "Reason")?,
            }
        }
        T::Error => {
            e.expect_len(5, 7)?;
            let details = e.dict(3, "Details")?;
            Message::Error {
                request_type: e.id(1, "REQUEST.Type")?,
                request: e.id(2, "REQUEST.Request")?,
                error: e.string(4, "Error")?,
                payload: e.payload(5, options::is_passthru(&details))?,
                details,
            }
        }
        T::Publish => {
            e.expect_len(4, 6)?;
            let opts = e.dict(2, "Options")?;
            options::check_publish(&opts).map_err(|m| e.bad(m))?;
            Message::Publish {
                request: e.id(1, "Request")?,
                topic: e.string(3, "Topic")?,
                payload: e.payload(4, options::is_passthru(&opts))?,
                options: opts,
            }
        }
        T::Published => {
            e.expect_len(3, 3)?;
            Message::Published {
                request: e.id(1, "PUBLISH.Request")?,
                publication: e.id(2, "Publication")?,
            }
        }
        T::Subscribe => {
            e.expect_len(4, 4)?;
            let opts = e.dict(2, "Options")?;
            options::check_subscribe(&opts).map_err(|m| e.bad(m))?;
            Message::Subscribe {
                request: e.id(1, "Request")?,
                topic: e.string(3, "Topic")?,
                options: opts,
            }
        }
        T::Subscribed => {
            e.expect_len(3, 3)?;
            Message::Subscribed {
                request: e.id(1, "SUBSCRIBE.Request")?,
                subscription: e.id(2, "Subscription")?,
            }
        }
        T::Unsubscribe => {
            e.expect_len(3, 3)?;
            Message::Unsubscribe {
                request: e.id(1, "Request")?,
                subscription: e.id(2, "SUBSCRIBED.Subscription")?,
            }
        }
        T::Unsubscribed => {
            e.expect_len(2, 3)?;
            Message::Unsubscribed {
                request: e.id(1, "UNSUBSCRIBE.Request")?,
                details: if e.items.len() == 3 {
                    Some(e.dict(2, "Details")?)
                } else {
                    None
                },
            }
        }
        T::Event => {
            e.expect_len(4, 6)?;
            let details = e.dict(3, "Details")?;
            options::check_event_details(&details).map_err(|m| e.bad(m))?;
            Message::Event {
                subscription: e.id(1, "SUBSCRIBED.Subscription")?,
                publication: e.id(2, "PUBLISHED.Publication")?,
                payload: e.payload(4, options::is_passthru(&details))?,
                details,
            }
        }
        T::EventReceived => {
            e.expect_len(2, 5)?;
            let details = if e.items.len() >= 3 {
                Some(e.dict(2, "Details")?)
            } else {
                None
            };
            let passthru = details.as_ref().is_some_and(options::is_passthru);
            Message::EventReceived {
                publication: e.id(1, "Publication")?,
                payload: e.payload(3, passthru)?,
                details,
            }
        }
        T::Call => {
            e.expect_len(4, 6)?;
            let opts = e.dict(2, "Options")?;
            options::check_call(&opts).map_err(|m| e.bad(m))?;
            Message::Call {
                request: e.id(1, "Request")?,
                procedure: e.string(3, "Procedure")?,
                payload: e.payload(4, options::is_passthru(&opts))?,
                options: opts,
            }
        }
        T::Cancel => {
            e.expect_len(3, 3)?;
            Message::Cancel {
                request: e.id(1, "CALL.Request")?,
                options: e.dict(2, "Options")?,
            }
        }
        T::Result => {
            e.expect_len(3, 5)?;
            let details = e.dict(2, "Details")?;
            Message::Result {
                request: e.id(1, "CALL.Request")?,
                payload: e.payload(3, options::is_passthru(&details))?,
                details,
            }
        }
        T::Register => {
            e.expect_len(4, 4)?;
            let opts = e.dict(2, "Options")?;
            options::check_register(&opts).map_err(|m| e.bad(m))?;
            Message::Register {
                request: e.id(1, "Request")?,
                procedure: e.string(3, "Procedure")?,
                options: opts,
            }
        }
        T::Registered => {
            e.expect_len(3, 3)?;
            Message::Registered {
                request: e.id(1, "REGISTER.Request")?,
                registration: e.id(2, "Registration")?,
            }
        }
        T::Unregister => {
            e.expect_len(3, 3)?;
            Message::Unregister {
                request: e.id(1, "Request")?,
                registration: e.id(2, "REGISTERED.Registration")?,
            }
        }
        T::Unregistered => {
            e.expect_len(2, 3)?;
            Message::Unregistered {
                request: e.id(1, "UNREGISTER.Request")?,
                details: if e.items.len() == 3 {
                    Some(e.dict(2, "Details")?)
                } else {
                    None
                },
            }
        }
        T::Invocation => {
            e.expect_len(4, 6)?;
            let details = e.dict(3, "Details")?;
            Message::Invocation {
                request: e.id(1, "Request")?,
                registration: e.id(2, "REGISTERED.Registration")?,
                payload: e.payload(4, options::is_passthru(&details))?,
                details,
            }
        }
        T::Interrupt => {
            e.expect_len(3, 3)?;
            Message::Interrupt {
                request: e.id(1, "INVOCATION.Request")?,
                options: e.dict(2, "Options")?,
            }
        }
        T::Yield => {
            e.expect_len(3, 5)?;
            let opts = e.dict(2, "Options")?;
            Message::Yield {
                request: e.id(1, "INVOCATION.Request")?,
                payload: e.payload(3, options::is_passthru(&opts))?,
                options: opts,
            }
        }
    };
    Ok(msg)
}

// ---------------------------------------------------------------------------------------------
// Encoding messages.

fn write_value(
    serializer: Serializer,
    buf: &mut Vec<u8>,
    value: &Value,
) -> Result<(), EncodeError> {
    match serializer {
        Serializer::Json => {
            if let Some(why) = json_unrepresentable(value) {
                return Err(EncodeError::Unconvertible(why.into()));
            }
            serde_json::to_writer(buf, value).map_err(|e| EncodeError::Unconvertible(e.to_string()))
        }
        Serializer::MsgPack => rmp_serde::encode::write(buf, value)
            .map_err(|e| EncodeError::Unconvertible(e.to_string())),
        Serializer::Cbor => {
            ciborium::into_writer(value, buf).map_err(|e| EncodeError::Unconvertible(e.to_string()))
        }
    }
}

/// Why `value` has no faithful JSON form, if it has none: JSON has no NaN or infinities, and a text
/// string starting with NUL would read back as binary under the WAMP binary rule.
fn json_unrepresentable(value: &Value) -> Option<&'static str> {
    match value {
        Value::Float(f) if !f.is_finite() => Some("JSON has no NaN or infinite numbers"),
        Value::Str(s) if s.starts_with('\0') => {
            Some("a text string starting with NUL reads as binary in JSON (WAMP binary rule)")
        }
        Value::List(l) => l.iter().find_map(json_unrepresentable),
        Value::Dict(d) => d.values().find_map(json_unrepresentable),
        _ => None,
    }
}

/// Writes the elements of one message array in one serializer.
struct ArrayWriter {
    serializer: Serializer,
    buf: Vec<u8>,
    first: bool,
}

impl ArrayWriter {
    fn new(serializer: Serializer, len: usize) -> Self {
        let mut buf = Vec::with_capacity(128);
        match serializer {
            Serializer::Json => buf.push(b'['),
            Serializer::MsgPack => {
                // Writing into a Vec cannot fail.
                let _ = rmp::encode::write_array_len(&mut buf, len as u32);
            }
            // Message arrays have at most 7 elements: a one-byte header (major type 4).
            Serializer::Cbor => buf.push(0x80 | len as u8),
        }
        Self {
            serializer,
            buf,
            first: true,
        }
    }

    fn sep(&mut self) {
        if self.serializer == Serializer::Json && !std::mem::replace(&mut self.first, false) {
            self.buf.push(b',');
        }
    }

    fn uint(&mut self, n: u64) {
        self.sep();
        match self.serializer {
            Serializer::Json => {
                let mut b = itoa_buf(n);
                self.buf.append(&mut b);
            }
            Serializer::MsgPack => {
                let _ = rmp::encode::write_uint(&mut self.buf, n);
            }
            Serializer::Cbor => write_cbor_head(&mut self.buf, 0, n),
        }
    }

    fn str(&mut self, s: &str) -> Result<(), EncodeError> {
        self.sep();
        match self.serializer {
            Serializer::Json => serde_json::to_writer(&mut self.buf, s)
                .map_err(|e| EncodeError::Unconvertible(e.to_string())),
            Serializer::MsgPack => {
                let _ = rmp::encode::write_str(&mut self.buf, s);
                Ok(())
            }
            Serializer::Cbor => {
                write_cbor_head(&mut self.buf, 3, s.len() as u64);
                self.buf.extend_from_slice(s.as_bytes());
                Ok(())
            }
        }
    }

    fn dict(&mut self, d: &Dict) -> Result<(), EncodeError> {
        self.sep();
        // Dict serializes as a map through Value's impl; avoid cloning by serializing the IndexMap.
        match self.serializer {
            Serializer::Json => {
                if let Some(why) = d.values().find_map(json_unrepresentable) {
                    return Err(EncodeError::Unconvertible(why.into()));
                }
                serde_json::to_writer(&mut self.buf, d)
                    .map_err(|e| EncodeError::Unconvertible(e.to_string()))
            }
            Serializer::MsgPack => rmp_serde::encode::write(&mut self.buf, d)
                .map_err(|e| EncodeError::Unconvertible(e.to_string())),
            Serializer::Cbor => ciborium::into_writer(d, &mut self.buf)
                .map_err(|e| EncodeError::Unconvertible(e.to_string())),
        }
    }

    fn raw(&mut self, raw: &RawValue) -> Result<(), EncodeError> {
        self.sep();
        if raw.serializer == self.serializer {
            self.buf.extend_from_slice(&raw.bytes);
        } else {
            let converted = raw.to_serializer(self.serializer)?;
            self.buf.extend_from_slice(&converted.bytes);
        }
        Ok(())
    }

    fn payload(&mut self, p: &Payload) -> Result<(), EncodeError> {
        match (&p.args, &p.kwargs) {
            (Some(a), Some(k)) => {
                self.raw(a)?;
                self.raw(k)
            }
            (Some(a), None) => self.raw(a),
            // ArgumentsKw without Arguments: the spec requires an empty Arguments list before it.
            (None, Some(k)) => {
                self.sep();
                match self.serializer {
                    Serializer::Json => self.buf.extend_from_slice(b"[]"),
                    Serializer::MsgPack => self.buf.push(0x90),
                    Serializer::Cbor => self.buf.push(0x80),
                }
                self.raw(k)
            }
            (None, None) => Ok(()),
        }
    }

    fn finish(mut self) -> Bytes {
        if self.serializer == Serializer::Json {
            self.buf.push(b']');
        }
        Bytes::from(self.buf)
    }
}

fn itoa_buf(n: u64) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// Writes a CBOR head (RFC 8949 §3) in its shortest form.
fn write_cbor_head(buf: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        buf.push(m | n as u8);
    } else if n <= u64::from(u8::MAX) {
        buf.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u64::from(u16::MAX) {
        buf.push(m | 25);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u64::from(u32::MAX) {
        buf.push(m | 26);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        buf.push(m | 27);
        buf.extend_from_slice(&n.to_be_bytes());
    }
}

fn payload_len(p: &Payload) -> usize {
    match (&p.args, &p.kwargs) {
        (_, Some(_)) => 2,
        (Some(_), None) => 1,
        (None, None) => 0,
    }
}

/// Encodes one message.
pub fn encode(serializer: Serializer, msg: &Message) -> Result<Bytes, EncodeError> {
    let code = msg.message_type().code();
    let mut w;
    match msg {
        Message::Hello { realm, details } => {
            w = ArrayWriter::new(serializer, 3);
            w.uint(code);
            w.str(realm)?;
            w.dict(details)?;
        }
        Message::Welcome { session, details } => {
            w = ArrayWriter::new(serializer, 3);
            w.uint(code);
            w.uint(*session);
            w.dict(details)?;
        }
        Message::Abort { details, reason } | Message::Goodbye { details, reason } => {
            w = ArrayWriter::new(serializer, 3);
            w.uint(code);
            w.dict(details)?;
            w.str(reason)?;
        }
        Message::Challenge { method: s, extra }
        | Message::Authenticate {
            signature: s,
            extra,
        } => {
            w = ArrayWriter::new(serializer, 3);
            w.uint(code);
            w.str(s)?;
            w.dict(extra)?;
        }
        Message::Error {
            request_type,
            request,
            details,
            error,
            payload,
        } => {
            w = ArrayWriter::new(serializer, 5 + payload_len(payload));
            w.uint(code);
            w.uint(*request_type);
            w.uint(*request);
            w.dict(details)?;
            w.str(error)?;
            w.payload(payload)?;
        }
        Message::Publish {
            request,
            options: d,
            topic: uri,
            payload,
        }
        | Message::Call {
            request,
            options: d,
            procedure: uri,
            payload,
        } => {
            w = ArrayWriter::new(serializer, 4 + payload_len(payload));
            w.uint(code);
            w.uint(*request);
            w.dict(d)?;
            w.str(uri)?;
            w.payload(payload)?;
        }
        Message::Subscribe {
            request,
            options: d,
            topic: uri,
        }
        | Message::Register {
            request,
            options: d,
            procedure: uri,
        } => {
            w = ArrayWriter::new(serializer, 4);
            w.uint(code);
            w.uint(*request);
            w.dict(d)?;
            w.str(uri)?;
        }
        Message::Published {
            request: a,
            publication: b,
        }
        | Message::Subscribed {
            request: a,
            subscription: b,
        }
        | Message::Unsubscribe {
            request: a,
            subscription: b,
        }
        | Message::Registered {
            request: a,
            registration: b,
        }
        | Message::Unregister {
            request: a,
            registration: b,
        } => {
            w = ArrayWriter::new(serializer, 3);
            w.uint(code);
            w.uint(*a);
            w.uint(*b);
        }
        Message::Unsubscribed { request, details } | Message::Unregistered { request, details } => {
            w = ArrayWriter::new(serializer, if details.is_some() { 3 } else { 2 });
            w.uint(code);
            w.uint(*request);
            if let Some(d) = details {
                w.dict(d)?;
            }
        }
        Message::Event {
            subscription,
            publication,
            details,
            payload,
        } => {
            w = ArrayWriter::new(serializer, 4 + payload_len(payload));
            w.uint(code);
            w.uint(*subscription);
            w.uint(*publication);
            w.dict(details)?;
            w.payload(payload)?;
        }
        Message::EventReceived {
            publication,
            details,
            payload,
        } => {
            let n = match (details, payload_len(payload)) {
                (None, 0) => 2,
                (_, p) => 3 + p,
            };
            w = ArrayWriter::new(serializer, n);
            w.uint(code);
            w.uint(*publication);
            if n > 2 {
                w.dict(details.as_ref().unwrap_or(&Dict::new()))?;
                w.payload(payload)?;
            }
        }
        Message::Cancel { request, options } | Message::Interrupt { request, options } => {
            w = ArrayWriter::new(serializer, 3);
            w.uint(code);
            w.uint(*request);
            w.dict(options)?;
        }
        Message::Result {
            request,
            details: d,
            payload,
        }
        | Message::Yield {
            request,
            options: d,
            payload,
        } => {
            w = ArrayWriter::new(serializer, 3 + payload_len(payload));
            w.uint(code);
            w.uint(*request);
            w.dict(d)?;
            w.payload(payload)?;
        }
        Message::Invocation {
            request,
            registration,
            details,
            payload,
        } => {
            w = ArrayWriter::new(serializer, 4 + payload_len(payload));
            w.uint(code);
            w.uint(*request);
            w.uint(*registration);
            w.dict(details)?;
            w.payload(payload)?;
        }
    }
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(serializer: Serializer, msg: &Message) {
        let bytes = encode(serializer, msg).expect("encode");
        let back = decode(serializer, &bytes).expect("decode");
        assert_eq!(&back, msg, "{serializer:?}");
    }

    fn payload(serializer: Serializer, args: Value, kwargs: Option<Value>) -> Payload {
        Payload {
            args: Some(RawValue::from_value(serializer, &args).expect("enc")),
            kwargs: kwargs.map(|k| RawValue::from_value(serializer, &k).expect("enc")),
        }
    }

    #[test]
    fn every_serializer_round_trips_a_publish_with_binary_and_big_integers() {
        for s in Serializer::ALL {
            let mut kw = Dict::new();
            kw.insert("blob".into(), Value::Bytes(Bytes::from_static(&[0, 255])));
            kw.insert("big".into(), Value::UInt(u64::MAX));
            kw.insert("neg".into(), Value::Int(-5));
            let msg = Message::Publish {
                request: 1,
                options: Dict::new(),
                topic: "com.example.topic".into(),
                payload: payload(
                    s,
                    Value::List(vec![1.5f64.into(), "x".into()]),
                    Some(Value::Dict(kw)),
                ),
            };
            round_trip(s, &msg);
        }
    }

    #[test]
    fn payload_passes_through_byte_for_byte_in_the_same_serializer() {
        // A JSON float with more digits than f64 holds survives untouched.
        let input = Bytes::from_static(
            b"[16,1,{},\"t\",[1.00000000000000000001,123456789012345678901234567890]]",
        );
        let msg = decode(Serializer::Json, &input).expect("decode");
        assert_eq!(encode(Serializer::Json, &msg).expect("encode"), input);
    }

    #[test]
    fn cbor_tags_survive_cbor_to_cbor_and_refuse_conversion_to_json() {
        // [16, 1, {}, "t", [tag 1 (0)]]
        let input = Bytes::from_static(&[0x85, 0x10, 0x01, 0xa0, 0x61, b't', 0x81, 0xc1, 0x00]);
        let msg = decode(Serializer::Cbor, &input).expect("decode");
        assert_eq!(encode(Serializer::Cbor, &msg).expect("encode"), input);
        assert!(matches!(
            encode(Serializer::Json, &msg),
            Err(EncodeError::Unconvertible(_))
        ));
    }

    #[test]
    fn msgpack_binary_becomes_a_json_nul_string() {
        let bin = Value::List(vec![Value::Bytes(Bytes::from_static(&[1, 2, 3]))]);
        let msg = Message::Event {
            subscription: 5,
            publication: 6,
            details: Dict::new(),
            payload: payload(Serializer::MsgPack, bin, None),
        };
        let json = encode(Serializer::Json, &msg).expect("encode");
        assert_eq!(&json[..], br#"[36,5,6,{},["\u0000AQID"]]"#);
    }

    #[test]
    fn nul_prefixed_msgpack_text_cannot_become_json() {
        let text = Value::List(vec![Value::Str("\0AAEC".into())]);
        let msg = Message::Event {
            subscription: 1,
            publication: 2,
            details: Dict::new(),
            payload: payload(Serializer::MsgPack, text, None),
        };
        assert!(matches!(
            encode(Serializer::Json, &msg),
            Err(EncodeError::Unconvertible(_))
        ));
        let cbor = encode(Serializer::Cbor, &msg).expect("text stays text in CBOR");
        let back = decode(Serializer::Cbor, &cbor).expect("decode");
        let Message::Event { payload, .. } = back else {
            panic!("EVENT")
        };
        assert_eq!(
            payload.args.expect("args").to_value().expect("value"),
            Value::List(vec![Value::Str("\0AAEC".into())])
        );
    }

    #[test]
    fn garbage_is_a_decode_error_in_every_serializer() {
        for s in Serializer::ALL {
            for g in [&b""[..], b"\xff\xfe", b"[", b"{}", b"[\"x\"]", b"[999]"] {
                assert!(
                    decode(s, &Bytes::copy_from_slice(g)).is_err(),
                    "{s:?} {g:?}"
                );
            }
        }
    }

    #[test]
    fn unknown_message_type_is_reported() {
        assert_eq!(
            decode(Serializer::Json, &Bytes::from_static(b"[999, 1]")),
            Err(DecodeError::UnknownType(999))
        );
    }

    #[test]
    fn indefinite_length_cbor_arrays_are_accepted() {
        // [_ 6, {}, "wamp.close.normal"]
        let mut input = vec![0x9f, 0x06, 0xa0, 0x71];
        input.extend_from_slice(b"wamp.close.normal");
        input.push(0xff);
        let msg = decode(Serializer::Cbor, &Bytes::from(input)).expect("decode");
        assert_eq!(msg, Message::goodbye("wamp.close.normal"));
    }

    #[test]
    fn arguments_that_are_not_a_list_are_refused() {
        let r = decode(
            Serializer::Json,
            &Bytes::from_static(b"[48,1,{},\"p\",{\"a\":1}]"),
        );
        assert!(r.is_err());
    }
}
