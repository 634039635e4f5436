//! Bytes <-> [`Message`](crate::Message) for the three WAMP serializers, with payloads kept raw.
//!
//! Decoding first splits the top-level array into the byte ranges of its elements (zero-copy slices
//! of the input), then decodes the envelope elements (ids, URIs, dictionaries) and keeps
//! `Arguments`/`ArgumentsKw` as [`RawValue`]s. Encoding writes the envelope and copies a raw payload
//! through untouched when it is already in the target serializer; otherwise it transcodes it through
//! [`Value`] by the spec's conversion rules, and fails with [`EncodeError::Unconvertible`] when the
//! payload has no equivalent in the target format (a CBOR tag, a MessagePack extension, ...).

mod decode;
mod depth;
mod encode;

use bytes::Bytes;

use crate::value::Value;

pub use decode::decode;
use decode::decode_value;
pub use depth::{MAX_PAYLOAD_DEPTH, check_depth};
pub use encode::encode;
use encode::write_value;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, Payload};
    use crate::value::Dict;

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

    /// Found by the `decode_msgpack` fuzz target in its long run: a WELCOME whose details nest 260
    /// lists deep decoded (the limit covered payloads only) but, converted to CBOR, did not decode
    /// again (ciborium's own recursion limit). Options and details now have the payloads' limit.
    #[test]
    fn options_and_details_have_the_payload_nesting_limit_in_every_serializer() {
        let crash = format!(
            "9302cf00000002202395b481a5726f6c657382a622726f61657256a66465616c657293{}02cf00000002ff0b202380",
            "91".repeat(260)
        );
        let crash = Bytes::from(hex_bytes(&crash));
        let err = decode(Serializer::MsgPack, &crash).expect_err("too deep");
        assert!(err.to_string().contains("nests deeper than 100"), "{err}");

        let nested = |depth: usize| {
            let mut v = Value::List(Vec::new());
            for _ in 1..depth {
                v = Value::List(vec![v]);
            }
            v
        };
        for serializer in Serializer::ALL {
            for (depth, ok) in [
                (MAX_PAYLOAD_DEPTH - 1, true),
                (MAX_PAYLOAD_DEPTH + 1, false),
            ] {
                // The details dict itself is one level: its value nests `depth` deep below it.
                let mut details = Dict::new();
                details.insert("roles".into(), nested(depth));
                let msg = Message::Welcome {
                    session: 1,
                    details,
                };
                let bytes = encode(serializer, &msg).expect("encodes");
                match decode(serializer, &bytes) {
                    Ok(decoded) => {
                        assert!(ok, "{serializer:?}: {depth} deep decoded");
                        for other in Serializer::ALL {
                            let again = encode(other, &decoded).expect("encodes");
                            decode(other, &again).expect("converts to every serializer");
                        }
                    }
                    Err(e) => {
                        assert!(!ok, "{serializer:?}: {depth} deep refused: {e}");
                        assert!(e.to_string().contains("nests deeper than 100"), "{e}");
                    }
                }
            }
        }
    }

    fn hex_bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// Found by the `decode_msgpack` and `decode_cbor` fuzz targets: a CHALLENGE whose method is a
    /// text string starting with NUL was encoded to JSON as a string that reads back as binary.
    #[test]
    fn a_string_field_starting_with_nul_has_no_json_form() {
        let crashes: [(Serializer, &[u8]); 2] = [
            (
                Serializer::MsgPack,
                &[
                    0x93, 0x04, 0xac, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0x61, 0x0d, 0x80,
                ],
            ),
            (
                Serializer::Cbor,
                &[0x83, 0x04, 0x67, 0, 0, 0, 0, 0, 0, 0, 0xa0],
            ),
        ];
        for (serializer, bytes) in crashes {
            let msg = decode(serializer, &Bytes::copy_from_slice(bytes)).expect("decodes");
            assert!(
                matches!(
                    encode(Serializer::Json, &msg),
                    Err(EncodeError::Unconvertible(_))
                ),
                "{serializer:?}"
            );
            for other in [Serializer::MsgPack, Serializer::Cbor] {
                let again = encode(other, &msg).expect("encodes");
                assert_eq!(decode(other, &again).expect("decodes"), msg);
            }
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
