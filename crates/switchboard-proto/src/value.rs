//! The dynamic value of WAMP dictionaries and payloads, and its one serde implementation for all
//! three serializers.
//!
//! Binary data is the only thing the formats disagree on. MessagePack (`bin`) and CBOR (major type 2)
//! carry it natively; JSON carries it as a string that starts with `\0` followed by the Base64 of the
//! bytes (WAMP spec, "Binary conversion of JSON Strings"). serde tells us which case we are in through
//! `is_human_readable()`: true for serde_json, false for rmp-serde and ciborium.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use indexmap::IndexMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A WAMP dictionary: string keys, insertion order kept (so re-encoding is deterministic).
pub type Dict = IndexMap<String, Value>;

/// Any value a WAMP message can carry.
///
/// Integers are normalised on decode: a non-negative integer is always [`Value::UInt`], a negative one
/// [`Value::Int`], so two decodes of the same number compare equal whatever the wire width was.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// JSON `null`, MessagePack nil, CBOR null/undefined.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    /// A floating point number (CBOR half and single precision are widened).
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// Binary data.
    Bytes(Bytes),
    /// A list.
    List(Vec<Value>),
    /// A dictionary with string keys.
    Dict(Dict),
}

impl Value {
    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The unsigned integer inside, if this is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UInt(n) => Some(*n),
            _ => None,
        }
    }

    /// The integer inside as an `i64`, if this is an integer that fits one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::UInt(n) => i64::try_from(*n).ok(),
            _ => None,
        }
    }

    /// The number inside as an `f64`, if this is a number (integers are converted).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(x) => Some(*x),
            Value::Int(n) => Some(*n as f64),
            Value::UInt(n) => Some(*n as f64),
            _ => None,
        }
    }

    /// The boolean inside, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The dictionary inside, if this is a dictionary.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The list inside, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "binary",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::UInt(n)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        if n >= 0 {
            Value::UInt(n as u64)
        } else {
            Value::Int(n)
        }
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Bytes(b)
    }
}
impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Self {
        Value::List(l)
    }
}
impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Value::Dict(d)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(n) => serializer.serialize_i64(*n),
            Value::UInt(n) => serializer.serialize_u64(*n),
            Value::Float(f) => serializer.serialize_f64(*f),
            Value::Str(s) => serializer.serialize_str(s),
            Value::Bytes(b) => {
                if serializer.is_human_readable() {
                    let mut s = String::with_capacity(1 + b.len().div_ceil(3) * 4);
                    s.push('\0');
                    BASE64.encode_string(b, &mut s);
                    serializer.serialize_str(&s)
                } else {
                    serializer.serialize_bytes(b)
                }
            }
            Value::List(l) => {
                let mut seq = serializer.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Dict(d) => {
                let mut map = serializer.serialize_map(Some(d.len()))?;
                for (k, v) in d {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Decodes a JSON string per the WAMP binary rule: a leading NUL means "Base64 of binary follows".
fn string_to_value<E: de::Error>(s: &str) -> Result<Value, E> {
    match s.strip_prefix('\0') {
        Some(b64) => BASE64
            .decode(b64)
            .map(|b| Value::Bytes(Bytes::from(b)))
            .map_err(|e| E::custom(format!("invalid Base64 after \\0 in a JSON string: {e}"))),
        None => Ok(Value::Str(s.to_owned())),
    }
}

/// Visits one value; `json_binary_rule` says whether a string starting with NUL is Base64 binary,
/// which is true only for JSON (a human-readable format): in MessagePack and CBOR such a string is
/// just text.
struct ValueVisitor {
    json_binary_rule: bool,
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a WAMP value (null, bool, integer, float, string, binary, list or dict)")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::UInt(n))
    }
    fn visit_i128<E: de::Error>(self, n: i128) -> Result<Value, E> {
        if let Ok(u) = u64::try_from(n) {
            Ok(Value::UInt(u))
        } else if let Ok(i) = i64::try_from(n) {
            Ok(Value::Int(i))
        } else {
            Err(E::custom("integer outside the 64-bit range"))
        }
    }
    fn visit_u128<E: de::Error>(self, n: u128) -> Result<Value, E> {
        u64::try_from(n)
            .map(Value::UInt)
            .map_err(|_| E::custom("integer outside the 64-bit range"))
    }
    fn visit_f32<E>(self, f: f32) -> Result<Value, E> {
        Ok(Value::Float(f64::from(f)))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        if self.json_binary_rule {
            string_to_value(s)
        } else {
            Ok(Value::Str(s.to_owned()))
        }
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        if self.json_binary_rule && s.starts_with('\0') {
            string_to_value(&s)
        } else {
            Ok(Value::Str(s))
        }
    }
    fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::copy_from_slice(b)))
    }
    fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(Bytes::from(b)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            list.push(v);
        }
        Ok(Value::List(list))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut dict = Dict::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            dict.insert(k, v);
        }
        Ok(Value::Dict(dict))
    }
    // rmp-serde hands MessagePack extension types over as a newtype struct; WAMP has no such type.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, _d: D) -> Result<Value, D::Error> {
        Err(de::Error::custom(
            "a MessagePack extension type has no WAMP representation",
        ))
    }
    // ciborium hands CBOR tags (other than bignums) over as an enum; WAMP has no such type.
    fn visit_enum<A: de::EnumAccess<'de>>(self, _a: A) -> Result<Value, A::Error> {
        Err(de::Error::custom("a CBOR tag has no WAMP representation"))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json_binary_rule = d.is_human_readable();
        d.deserialize_any(ValueVisitor { json_binary_rule })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_binary_rule_round_trips() {
        let v: Value = serde_json::from_str(r#""\u0000AAEC//4=""#).expect("valid");
        assert_eq!(v, Value::Bytes(Bytes::from_static(&[0, 1, 2, 255, 254])));
        assert_eq!(
            serde_json::to_string(&v).expect("ser"),
            r#""\u0000AAEC//4=""#
        );
    }

    #[test]
    fn msgpack_bin_decodes_to_bytes_and_encodes_back() {
        let v = Value::Bytes(Bytes::from_static(b"\x01\x02"));
        let enc = rmp_serde::to_vec(&v).expect("ser");
        assert_eq!(enc, vec![0xc4, 2, 1, 2]);
        let back: Value = rmp_serde::from_slice(&enc).expect("de");
        assert_eq!(back, v);
    }

    #[test]
    fn nul_prefixed_text_stays_text_in_msgpack_and_cbor() {
        let text = Value::Str("\0AAEC".into());
        let msgpack: Value =
            rmp_serde::from_slice(&rmp_serde::to_vec(&text).expect("ser")).expect("de");
        assert_eq!(msgpack, text);
        let mut cbor = Vec::new();
        ciborium::into_writer(&text, &mut cbor).expect("ser");
        let cbor: Value = ciborium::from_reader(&cbor[..]).expect("de");
        assert_eq!(cbor, text);
    }

    #[test]
    fn cbor_half_precision_float_is_accepted() {
        // f9 3e00 = half-precision 1.5
        let v: Value = ciborium::from_reader(&[0xf9u8, 0x3e, 0x00][..]).expect("de");
        assert_eq!(v, Value::Float(1.5));
    }

    #[test]
    fn cbor_tag_is_refused_as_a_value() {
        // tag 1 (epoch time) around 0
        let r: Result<Value, _> = ciborium::from_reader(&[0xc1u8, 0x00][..]);
        assert!(r.is_err());
    }

    #[test]
    fn non_string_map_keys_are_refused() {
        let r: Result<Value, _> = rmp_serde::from_slice(&[0x81, 0x01, 0x02]);
        assert!(r.is_err());
    }
}
