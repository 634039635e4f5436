//! How deep a value nests, found by walking its bytes without building values: the check that
//! keeps one nesting limit ([`MAX_PAYLOAD_DEPTH`]) for all three serializers, on payloads and on
//! every other element of a message (options, details).
//!
//! Payloads pass through the router as the sender's bytes, so nothing else would look inside them
//! on the way; but a payload converted for a peer of another serializer is decoded into a
//! [`crate::Value`], and every decoder has its own recursion limit (serde_json 128, ciborium a few
//! hundred, rmp 1024). A payload that nests deeper than all of them can convert is refused when the
//! message is decoded, whatever its serializer, so a publication never reaches the subscribers of
//! one serializer and fails for those of another.

use super::{DecodeError, Serializer};

/// How deep lists and dicts may nest in a payload (`Arguments` or `ArgumentsKw`) or in any other
/// element of a message (an options or details dict), the element's own list or dict counting as 1.
/// Below every decoder's recursion limit, so anything that passes converts to every serializer.
pub const MAX_PAYLOAD_DEPTH: usize = 100;

/// Checks that `bytes`, one value in `serializer`, nests at most `limit` deep.
pub fn check_depth(serializer: Serializer, bytes: &[u8], limit: usize) -> Result<(), DecodeError> {
    let too_deep = || {
        DecodeError::Syntax(
            serializer.name(),
            format!("the value nests deeper than {limit} levels"),
        )
    };
    let truncated = || DecodeError::Syntax(serializer.name(), "truncated value".into());
    match serializer {
        Serializer::Json => json_within(bytes, limit).then_some(()).ok_or_else(too_deep),
        Serializer::MsgPack => match msgpack_depth(bytes, limit) {
            Some(true) => Ok(()),
            Some(false) => Err(too_deep()),
            None => Err(truncated()),
        },
        Serializer::Cbor => match cbor_depth(bytes, limit) {
            Some(true) => Ok(()),
            Some(false) => Err(too_deep()),
            None => Err(truncated()),
        },
    }
}

/// JSON: counts unclosed `[` and `{` outside strings. The syntax was already checked when the
/// message was split, so brackets balance.
fn json_within(bytes: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// Walks containers with a stack of "items still to read" per open container; scalars are skipped
/// by their length, so the walk costs the number of items, not the number of bytes.
struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Items left in each open container, innermost last (`None`: an indefinite-length CBOR
    /// container, closed by a break byte).
    open: Vec<Option<u64>>,
    limit: usize,
}

impl<'a> Walk<'a> {
    fn new(bytes: &'a [u8], limit: usize) -> Self {
        Self {
            bytes,
            at: 0,
            open: Vec::new(),
            limit,
        }
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// A big-endian unsigned integer of `n` bytes.
    fn uint(&mut self, n: usize) -> Option<u64> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        let n = usize::try_from(n).ok()?;
        let end = self.at.checked_add(n)?;
        (end <= self.bytes.len()).then(|| self.at = end)
    }

    /// Opens a container of `items` items (`None`: indefinite); `Some(false)` when too deep.
    fn open(&mut self, items: Option<u64>) -> Option<bool> {
        if self.open.len() >= self.limit {
            return Some(false);
        }
        if items != Some(0) {
            self.open.push(items);
        }
        Some(true)
    }

    /// One item of the innermost container was read: closes the containers it completes.
    fn item_done(&mut self) {
        while let Some(Some(left)) = self.open.last_mut() {
            *left -= 1;
            if *left > 0 {
                return;
            }
            self.open.pop();
        }
    }
}

/// MessagePack: `Some(true)` within the limit, `Some(false)` too deep, `None` truncated.
fn msgpack_depth(bytes: &[u8], limit: usize) -> Option<bool> {
    let mut w = Walk::new(bytes, limit);
    loop {
        let marker = w.byte()?;
        let container = match marker {
            0x90..=0x9f => Some(u64::from(marker & 0x0f)),
            0x80..=0x8f => Some(u64::from(marker & 0x0f) * 2),
            0xdc => Some(w.uint(2)?),
            0xdd => Some(w.uint(4)?),
            0xde => Some(w.uint(2)? * 2),
            0xdf => Some(w.uint(4)? * 2),
            _ => None,
        };
        match container {
            Some(items) => {
                if !w.open(Some(items))? {
                    return Some(false);
                }
                if items > 0 {
                    continue;
                }
            }
            None => {
                let len = match marker {
                    0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
                    0xa0..=0xbf => u64::from(marker & 0x1f),
                    0xcc | 0xd0 => 1,
                    0xcd | 0xd1 => 2,
                    0xca | 0xce | 0xd2 => 4,
                    0xcb | 0xcf | 0xd3 => 8,
                    0xd9 | 0xc4 => w.uint(1)?,
                    0xda | 0xc5 => w.uint(2)?,
                    0xdb | 0xc6 => w.uint(4)?,
                    0xd4 => 2,
                    0xd5 => 3,
                    0xd6 => 5,
                    0xd7 => 9,
                    0xd8 => 17,
                    0xc7 => w.uint(1)? + 1,
                    0xc8 => w.uint(2)? + 1,
                    0xc9 => w.uint(4)? + 1,
                    // 0xc1 is never used; the split already refused it.
                    _ => return None,
                };
                w.skip(len)?;
            }
        }
        w.item_done();
        if w.open.is_empty() {
            return Some(true);
        }
    }
}

/// CBOR: `Some(true)` within the limit, `Some(false)` too deep, `None` truncated.
fn cbor_depth(bytes: &[u8], limit: usize) -> Option<bool> {
    let mut w = Walk::new(bytes, limit);
    loop {
        let first = w.byte()?;
        if first == 0xff {
            // The break byte closes the innermost indefinite container.
            if w.open.pop() != Some(None) {
                return None;
            }
            w.item_done();
            if w.open.is_empty() {
                return Some(true);
            }
            continue;
        }
        let major = first >> 5;
        let info = first & 0x1f;
        let argument = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(w.uint(1)?),
            25 => Some(w.uint(2)?),
            26 => Some(w.uint(4)?),
            27 => Some(w.uint(8)?),
            31 => None,
            _ => return None,
        };
        match (major, argument) {
            // Arrays and maps (a map's items are its keys and values).
            (4, items) | (5, items) => {
                let items = match (major, items) {
                    (5, Some(n)) => Some(n.checked_mul(2)?),
                    (_, n) => n,
                };
                if !w.open(items)? {
                    return Some(false);
                }
                if items != Some(0) {
                    continue;
                }
            }
            // Byte and text strings: definite ones are skipped; indefinite ones are chunks up to
            // a break, walked like a container that does not count towards the depth.
            (2, Some(len)) | (3, Some(len)) => w.skip(len)?,
            (2, None) | (3, None) => loop {
                match w.byte()? {
                    0xff => break,
                    chunk => {
                        let len = match chunk & 0x1f {
                            n @ 0..=23 => u64::from(n),
                            24 => w.uint(1)?,
                            25 => w.uint(2)?,
                            26 => w.uint(4)?,
                            27 => w.uint(8)?,
                            _ => return None,
                        };
                        w.skip(len)?;
                    }
                }
            },
            // A tag applies to the item that follows: not an item of its own.
            (6, Some(_)) => continue,
            // Integers, simple values and floats carry their argument only.
            (0 | 1 | 7, _) => {}
            _ => return None,
        }
        w.item_done();
        if w.open.is_empty() {
            return Some(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;
    use crate::codec::RawValue;

    fn nested(depth: usize) -> Value {
        let mut v = Value::UInt(1);
        for _ in 0..depth {
            v = Value::List(vec![v, "x".into()]);
        }
        v
    }

    #[test]
    fn every_serializer_allows_the_limit_and_refuses_one_more() {
        for serializer in Serializer::ALL {
            let ok = RawValue::from_value(serializer, &nested(MAX_PAYLOAD_DEPTH)).expect("encode");
            assert!(
                check_depth(serializer, ok.bytes(), MAX_PAYLOAD_DEPTH).is_ok(),
                "{serializer:?}"
            );
            let deep =
                RawValue::from_value(serializer, &nested(MAX_PAYLOAD_DEPTH + 1)).expect("encode");
            assert!(
                check_depth(serializer, deep.bytes(), MAX_PAYLOAD_DEPTH).is_err(),
                "{serializer:?}"
            );
        }
    }

    #[test]
    fn dicts_strings_and_binary_count_as_they_should() {
        let mut inner = crate::Dict::new();
        inner.insert(
            "k".into(),
            Value::List(vec![Value::Bytes(vec![0; 300].into())]),
        );
        inner.insert("s".into(), "[[[[{{{{ not structure".into());
        let value = Value::List(vec![Value::Dict(inner), Value::List(vec![])]);
        for serializer in Serializer::ALL {
            let raw = RawValue::from_value(serializer, &value).expect("encode");
            assert!(
                check_depth(serializer, raw.bytes(), 3).is_ok(),
                "{serializer:?}"
            );
            assert!(
                check_depth(serializer, raw.bytes(), 2).is_err(),
                "{serializer:?}"
            );
        }
    }

    #[test]
    fn a_json_string_with_escaped_quotes_and_brackets_is_not_structure() {
        assert!(json_within(br#"["\"[[[[", "\\", [1]]"#, 2));
        assert!(!json_within(br#"["\"[[[[", "\\", [[1]]]"#, 2));
    }

    #[test]
    fn cbor_indefinite_lengths_and_tags_are_walked() {
        // [_ [_ 1, 2], "ab" (indefinite text), tag 1 (epoch) 5]
        let bytes = [
            0x9f, 0x9f, 0x01, 0x02, 0xff, 0x7f, 0x61, b'a', 0x61, b'b', 0xff, 0xc1, 0x05, 0xff,
        ];
        assert_eq!(cbor_depth(&bytes, 2), Some(true));
        assert_eq!(cbor_depth(&bytes, 1), Some(false));
        assert_eq!(cbor_depth(&bytes[..5], 2), None, "truncated");
    }
}
