//! What nodes send each other on NATS: each message one MessagePack map, built and read here.

use bytes::Bytes;
use switchboard_client::{Args, CallError, PublishOptions};
use switchboard_proto::{Dict, Id, RawValue, Serializer, Value};

/// Encodes one message.
pub fn encode(message: Dict) -> Bytes {
    RawValue::from_value(Serializer::MsgPack, &Value::Dict(message))
        .map(|r| r.bytes().clone())
        .unwrap_or_default()
}

/// Decodes one message; `None` for anything that is not a map.
pub fn decode(payload: &Bytes) -> Option<Dict> {
    match RawValue::from_encoded(Serializer::MsgPack, payload.clone()).to_value() {
        Ok(Value::Dict(d)) => Some(d),
        _ => None,
    }
}

/// A string field.
pub fn text<'a>(m: &'a Dict, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Puts `args` into a message.
pub fn put_args(m: &mut Dict, args: Args) {
    if !args.args.is_empty() {
        m.insert("args".into(), Value::List(args.args));
    }
    if !args.kwargs.is_empty() {
        m.insert("kwargs".into(), Value::Dict(args.kwargs));
    }
}

/// The arguments a message carries.
pub fn take_args(m: &mut Dict) -> Args {
    let args = match m.shift_remove("args") {
        Some(Value::List(l)) => l,
        _ => Vec::new(),
    };
    let kwargs = match m.shift_remove("kwargs") {
        Some(Value::Dict(d)) => d,
        _ => Dict::new(),
    };
    Args::new(args, kwargs)
}

/// An event for other nodes: its topic, its payload, and the options the receiving node
/// publishes it with (`forward_for` naming the publisher and its node, disclosure, the black-
/// and whitelists).
pub fn event(topic: &str, args: Args, options: Dict) -> Bytes {
    let mut m = Dict::new();
    m.insert("topic".into(), topic.into());
    m.insert("options".into(), Value::Dict(options));
    put_args(&mut m, args);
    encode(m)
}

/// An event as the receiving node publishes it.
pub fn read_event(payload: &Bytes) -> Option<(String, Args, PublishOptions)> {
    let mut m = decode(payload)?;
    let topic = text(&m, "topic").to_owned();
    let args = take_args(&mut m);
    let Some(Value::Dict(o)) = m.shift_remove("options") else {
        return None;
    };
    let ids = |key: &str| -> Option<Vec<Id>> {
        o.get(key)
            .and_then(Value::as_list)
            .map(|l| l.iter().filter_map(Value::as_u64).collect())
    };
    let strs = |key: &str| -> Option<Vec<String>> {
        o.get(key).and_then(Value::as_list).map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
    };
    let mut extra = Dict::new();
    extra.insert("forward_for".into(), o.get("forward_for")?.clone());
    let options = PublishOptions {
        exclude: ids("exclude").unwrap_or_default(),
        eligible: ids("eligible"),
        exclude_authid: strs("exclude_authid").unwrap_or_default(),
        exclude_authrole: strs("exclude_authrole").unwrap_or_default(),
        eligible_authid: strs("eligible_authid"),
        eligible_authrole: strs("eligible_authrole"),
        disclose_me: o.get("disclose").and_then(Value::as_bool).unwrap_or(false),
        extra,
        ..PublishOptions::default()
    };
    Some((topic, args, options))
}

/// What a callee's node sends back for a call: a progressive result, the result, or an error.
#[derive(Debug)]
pub enum Answer {
    /// A progressive result.
    Progress(Args),
    /// The result.
    Result(Args),
    /// The error, as the caller gets it.
    Error(CallError),
}

impl Answer {
    /// Encodes the answer.
    pub fn encode(self) -> Bytes {
        let mut m = Dict::new();
        match self {
            Self::Progress(args) => {
                m.insert("kind".into(), "progress".into());
                put_args(&mut m, args);
            }
            Self::Result(args) => {
                m.insert("kind".into(), "result".into());
                put_args(&mut m, args);
            }
            Self::Error(e) => {
                m.insert("kind".into(), "error".into());
                m.insert("uri".into(), e.uri.into());
                put_args(&mut m, Args::new(e.args, e.kwargs));
            }
        }
        encode(m)
    }

    /// Decodes an answer.
    pub fn decode(payload: &Bytes) -> Option<Self> {
        let mut m = decode(payload)?;
        let kind = text(&m, "kind").to_owned();
        let uri = text(&m, "uri").to_owned();
        let args = take_args(&mut m);
        match kind.as_str() {
            "progress" => Some(Self::Progress(args)),
            "result" => Some(Self::Result(args)),
            "error" => Some(Self::Error(CallError {
                uri,
                args: args.args,
                kwargs: args.kwargs,
            })),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_keeps_its_payload_and_lists() {
        let mut options = Dict::new();
        options.insert(
            "forward_for".into(),
            Value::List(vec![Value::Dict(Dict::new())]),
        );
        options.insert("exclude".into(), Value::List(vec![7u64.into()]));
        options.insert("eligible_authid".into(), Value::List(vec!["bob".into()]));
        options.insert("disclose".into(), true.into());
        let bytes = event(
            "com.a",
            Args::positional(vec![1u64.into(), "x".into()]),
            options,
        );
        let (topic, args, o) = read_event(&bytes).unwrap();
        assert_eq!(topic, "com.a");
        assert_eq!(args.args, vec![Value::from(1u64), Value::from("x")]);
        assert_eq!(o.exclude, vec![7]);
        assert_eq!(o.eligible, None);
        assert_eq!(o.eligible_authid, Some(vec!["bob".to_owned()]));
        assert!(o.disclose_me);
        assert!(o.extra.contains_key("forward_for"));
    }

    #[test]
    fn answers_round_trip() {
        let e = CallError::new("com.error.x").with_args(Args::positional(vec!["why".into()]));
        match Answer::decode(&Answer::Error(e).encode()) {
            Some(Answer::Error(e)) => {
                assert_eq!(e.uri, "com.error.x");
                assert_eq!(e.args, vec![Value::from("why")]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Answer::decode(&Answer::Progress(Args::default()).encode()),
            Some(Answer::Progress(_))
        ));
        assert!(Answer::decode(&Bytes::from_static(b"\x01")).is_none());
    }
}
