//! Encoding: write the envelope, copy raw payloads through or transcode them.

use bytes::Bytes;

use super::{EncodeError, RawValue, Serializer};
use crate::message::{Message, Payload};
use crate::value::{Dict, Value};

pub(super) fn write_value(
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
            // The same rule as for values (see `json_unrepresentable`): a string field starting
            // with NUL would be read back as binary, so it has no JSON form.
            Serializer::Json if s.starts_with('\0') => Err(EncodeError::Unconvertible(
                "a text string starting with NUL reads as binary in JSON (WAMP binary rule)".into(),
            )),
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
