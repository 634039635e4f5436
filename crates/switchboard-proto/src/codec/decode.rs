//! Decoding: split the message array into element slices, then build the [`Message`].

use bytes::Bytes;
use serde::de::IgnoredAny;

use super::{DecodeError, RawValue, Serializer};
use crate::message::{Message, MessageType, Payload};
use crate::options;
use crate::value::{Dict, Value};

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
pub(super) fn decode_value(serializer: Serializer, bytes: &[u8]) -> Result<Value, DecodeError> {
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
        // The nesting limit holds for options and details too: a dict that decodes here must
        // encode for a peer of any serializer and decode there again.
        super::check_depth(self.serializer, &self.items[i], super::MAX_PAYLOAD_DEPTH)
            .and_then(|()| decode_value(self.serializer, &self.items[i]))
            .map_err(|e| self.bad(format!("{name}: {e}")))
    }

    /// An id (spec, "Identifiers": integers in [1, 2^53]).
    fn id(&self, i: usize, name: &str) -> Result<u64, DecodeError> {
        match self.value(i, name)? {
            Value::UInt(n) if (1..=crate::ids::MAX_ID).contains(&n) => Ok(n),
            Value::UInt(n) => {
                Err(self.bad(format!("{name} must be an integer in [1, 2^53], got {n}")))
            }
            other => Err(self.bad(format!(
                "{name} must be an integer in [1, 2^53], got {}",
                other.kind()
            ))),
        }
    }

    /// The request id of UNSUBSCRIBED and UNREGISTERED: an id, or 0 when the router revokes a
    /// subscription or registration on its own (spec, "Subscription Revocation", "Registration
    /// Revocation").
    fn request_or_revocation(&self, i: usize, name: &str) -> Result<u64, DecodeError> {
        match self.value(i, name)? {
            Value::UInt(0) => Ok(0),
            _ => self.id(i, name),
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
        // One nesting limit for every serializer, so that whatever passes converts to any other.
        for element in [&payload.args, &payload.kwargs].into_iter().flatten() {
            super::check_depth(self.serializer, element.bytes(), super::MAX_PAYLOAD_DEPTH)?;
        }
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
                request: e.request_or_revocation(1, "UNSUBSCRIBE.Request")?,
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
                request: e.request_or_revocation(1, "UNREGISTER.Request")?,
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
