//! Conformance against the WAMP spec's machine-readable test suite (`wamp-proto/testsuite`).
//!
//! The vectors are test data in this crate, `tests/data/wamp-testsuite` (origin and licence in its
//! README), read at test time (or from `$WAMP_TESTSUITE_DIR`), so a new vector is picked up without
//! touching this file. Only the
//! serializers we implement are checked: json, msgpack and cbor. Every problem is collected and
//! reported together at the end, so one run shows the whole picture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value as Json, json};
use switchboard_proto::codec::{self, RawValue, Serializer};
use switchboard_proto::{Dict, Message, MessageType, Payload, Value, options};

const SERIALIZERS: [Serializer; 3] = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];

// ---------------------------------------------------------------------------------------------
// Finding and reading the vectors.

/// The test suite's root. A missing suite is a failure, never a silent pass: the point of this file
/// is that the vectors are checked.
fn suite_dir() -> PathBuf {
    let dir = match std::env::var_os("WAMP_TESTSUITE_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wamp-testsuite"),
    };
    assert!(
        dir.join("SCHEMA.json").is_file(),
        "WAMP test suite not found at {} (expected SCHEMA.json there); restore \
         tests/data/wamp-testsuite from wamp-proto/wamp-proto's testsuite/ or point \
         WAMP_TESTSUITE_DIR at a copy",
        dir.display()
    );
    dir
}

/// Every `*.json` file under `suite/<sub>`, sorted, parsed, with its path relative to the suite.
fn vector_files(sub: &str) -> Vec<(String, Json)> {
    let root = suite_dir();
    let mut paths = Vec::new();
    let mut todo = vec![root.join(sub)];
    while let Some(dir) = todo.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "json") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no vector files under {}",
        root.join(sub).display()
    );
    paths
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let json =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let name = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            (name, json)
        })
        .collect()
}

/// The samples of a single-message vector file; an empty or missing list is itself a failure.
fn samples(file: &str, doc: &Json) -> Vec<Json> {
    let samples = doc["samples"].as_array().cloned().unwrap_or_default();
    assert!(!samples.is_empty(), "{file}: no samples");
    samples
}

/// The problems found so far, each prefixed with where: file, sample or step, serializer.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn add<D: std::fmt::Display>(&mut self, at: &str, problems: impl IntoIterator<Item = D>) {
        self.0
            .extend(problems.into_iter().map(|p| format!("{at}: {p}")));
    }

    fn assert_none(self, checked: &BTreeMap<&str, usize>) {
        // Shown with `--nocapture`: how much of the suite a green run actually covered.
        println!("checked per serializer: {checked:?}");
        assert!(
            self.0.is_empty(),
            "{} failure(s) (checked per serializer: {checked:?}):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex string {s:?}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("bad hex {s:?}: {e}")))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The bytes of one listed representation. When it gives several forms they must agree, so a
/// typo in a vector shows up rather than one form being silently preferred.
fn representation_bytes(rep: &Json) -> Result<Bytes, String> {
    let mut forms = Vec::new();
    if let Some(h) = rep["bytes_hex"].as_str() {
        forms.push(hex_decode(h)?);
    }
    if let Some(b) = rep["bytes_base64"].as_str() {
        let b64 = base64::engine::general_purpose::STANDARD;
        forms.push(b64.decode(b).map_err(|e| format!("bad base64: {e}"))?);
    }
    if let Some(s) = rep["bytes"].as_str() {
        forms.push(s.as_bytes().to_vec());
    }
    match forms.split_first() {
        None => Err("representation has none of bytes, bytes_hex, bytes_base64".into()),
        Some((first, rest)) if rest.iter().all(|f| f == first) => Ok(Bytes::from(first.clone())),
        Some(_) => Err("the representation's bytes/bytes_hex/bytes_base64 disagree".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Our Message <-> the vectors' attribute names.

fn to_json(v: &Value) -> Json {
    serde_json::to_value(v).unwrap_or_else(|e| json!(format!("<unrepresentable: {e}>")))
}

fn dict_json(d: &Dict) -> Json {
    to_json(&Value::Dict(d.clone()))
}

fn raw_json(r: &Option<RawValue>) -> Json {
    match r.as_ref().map(RawValue::to_value) {
        None => Json::Null,
        Some(Ok(v)) => to_json(&v),
        Some(Err(e)) => json!(format!("<undecodable: {e}>")),
    }
}

/// A message's payload with the dictionary that decides whether it is in passthru mode.
type PayloadOf<'a> = Option<(&'a Dict, &'a Payload)>;

/// A message's attributes under the names the vectors use. Ids appear under both the `_id` and the
/// short name because the vectors use both (`publication` in EVENT, `publication_id` in PUBLISHED).
fn attributes(msg: &Message) -> Map<String, Json> {
    use Message as M;
    let (s, n, d) = (|x: &str| json!(x), |x: &u64| json!(x), dict_json);
    let od = |x: &Option<Dict>| x.as_ref().map_or(Json::Null, dict_json);
    let no_details = Dict::new();
    // The message's own elements, and the dictionary that decides passthru mode with the payload.
    let (fields, payload): (Vec<(&str, Json)>, PayloadOf) = match msg {
        M::Hello { realm, details } => (vec![("realm", s(realm)), ("details", d(details))], None),
        M::Welcome { session, details } => (
            vec![("session_id", n(session)), ("details", d(details))],
            None,
        ),
        M::Abort { details, reason } | M::Goodbye { details, reason } => {
            (vec![("details", d(details)), ("reason", s(reason))], None)
        }
        M::Challenge { method, extra } => (vec![("method", s(method)), ("extra", d(extra))], None),
        M::Authenticate { signature, extra } => {
            (vec![("signature", s(signature)), ("extra", d(extra))], None)
        }
        M::Error {
            request_type,
            request,
            details,
            error,
            payload,
        } => (
            vec![
                ("request_type", n(request_type)),
                ("request_id", n(request)),
                ("details", d(details)),
                ("error", s(error)),
            ],
            Some((details, payload)),
        ),
        M::Publish {
            request,
            options,
            topic,
            payload,
        } => (
            vec![
                ("request_id", n(request)),
                ("options", d(options)),
                ("topic", s(topic)),
            ],
            Some((options, payload)),
        ),
        M::Call {
            request,
            options,
            procedure,
            payload,
        } => (
            vec![
                ("request_id", n(request)),
                ("options", d(options)),
                ("procedure", s(procedure)),
            ],
            Some((options, payload)),
        ),
        M::Subscribe {
            request,
            options,
            topic,
        } => (
            vec![
                ("request_id", n(request)),
                ("options", d(options)),
                ("topic", s(topic)),
            ],
            None,
        ),
        M::Register {
            request,
            options,
            procedure,
        } => (
            vec![
                ("request_id", n(request)),
                ("options", d(options)),
                ("procedure", s(procedure)),
            ],
            None,
        ),
        M::Published {
            request,
            publication,
        } => (
            vec![
                ("request_id", n(request)),
                ("publication_id", n(publication)),
            ],
            None,
        ),
        M::Subscribed {
            request,
            subscription,
        }
        | M::Unsubscribe {
            request,
            subscription,
        } => (
            vec![
                ("request_id", n(request)),
                ("subscription_id", n(subscription)),
            ],
            None,
        ),
        M::Registered {
            request,
            registration,
        }
        | M::Unregister {
            request,
            registration,
        } => (
            vec![
                ("request_id", n(request)),
                ("registration_id", n(registration)),
            ],
            None,
        ),
        M::Unsubscribed { request, details } | M::Unregistered { request, details } => (
            vec![("request_id", n(request)), ("details", od(details))],
            None,
        ),
        M::Event {
            subscription,
            publication,
            details,
            payload,
        } => (
            vec![
                ("subscription_id", n(subscription)),
                ("publication_id", n(publication)),
                ("details", d(details)),
            ],
            Some((details, payload)),
        ),
        M::EventReceived {
            publication,
            details,
            payload,
        } => (
            vec![("publication_id", n(publication)), ("details", od(details))],
            Some((details.as_ref().unwrap_or(&no_details), payload)),
        ),
        M::Cancel { request, options } | M::Interrupt { request, options } => (
            vec![("request_id", n(request)), ("options", d(options))],
            None,
        ),
        M::Result {
            request,
            details: dict,
            payload,
        } => (
            vec![("request_id", n(request)), ("details", d(dict))],
            Some((dict, payload)),
        ),
        M::Yield {
            request,
            options: dict,
            payload,
        } => (
            vec![("request_id", n(request)), ("options", d(dict))],
            Some((dict, payload)),
        ),
        M::Invocation {
            request,
            registration,
            details,
            payload,
        } => (
            vec![
                ("request_id", n(request)),
                ("registration_id", n(registration)),
                ("details", d(details)),
            ],
            Some((details, payload)),
        ),
    };
    let mut a = Map::new();
    a.insert("message_type".into(), json!(msg.message_type().code()));
    a.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
    for short in [
        "request",
        "session",
        "publication",
        "subscription",
        "registration",
    ] {
        if let Some(v) = a.get(&format!("{short}_id")).cloned() {
            a.insert(short.into(), v);
        }
    }
    if matches!(msg, M::Hello { .. } | M::Welcome { .. }) {
        a.insert(
            "roles".into(),
            a["details"].get("roles").cloned().unwrap_or_default(),
        );
    }
    // Messages without a payload have no args/kwargs/payload attribute at all. With one, passthru
    // mode makes the single element opaque: `payload` (hex of its bytes) instead of args/kwargs.
    if let Some((dict, p)) = payload {
        let (args, kwargs, opaque) = if options::is_passthru(dict) {
            let opaque = match p.args.as_ref().map(RawValue::to_value) {
                Some(Ok(Value::Bytes(b))) => json!(hex(&b)),
                _ => raw_json(&p.args),
            };
            (Json::Null, Json::Null, opaque)
        } else {
            (raw_json(&p.args), raw_json(&p.kwargs), Json::Null)
        };
        a.insert("args".into(), args);
        a.insert("kwargs".into(), kwargs);
        a.insert("payload".into(), opaque);
    }
    a
}

/// The expected attributes our message does not have, or has with another value.
fn attribute_mismatches(expected: &Map<String, Json>, msg: &Message) -> Vec<String> {
    let got = attributes(msg);
    expected
        .iter()
        .filter(|(k, _)| k.as_str() != "type") // the multisession step's message name
        .filter_map(|(k, want)| match got.get(k) {
            None => Some(format!(
                "attribute {k:?} has no counterpart in our {}",
                msg.message_type().name()
            )),
            Some(have) if have != want => {
                Some(format!("attribute {k:?}: expected {want}, got {have}"))
            }
            Some(_) => None,
        })
        .collect()
}

/// Builds our message from a multisession step's attributes (the inverse of [`attributes`]), with
/// the payload encoded in `ser`.
fn build(a: &Map<String, Json>, ser: Serializer) -> Result<Message, String> {
    let name = a
        .get("type")
        .and_then(Json::as_str)
        .ok_or("step message has no type")?;
    let kind = (0..1024)
        .filter_map(MessageType::from_code)
        .find(|t| t.name() == name)
        .ok_or_else(|| format!("unknown message type {name:?}"))?;
    let id = |k: &str| {
        a.get(k)
            .or_else(|| a.get(&format!("{k}_id")))
            .and_then(Json::as_u64)
            .ok_or_else(|| format!("{name} step has no integer {k}"))
    };
    let text = |k: &str| {
        a.get(k)
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{name} step has no {k}"))
    };
    let dict = |k: &str| match a.get(k) {
        None => Ok(Dict::new()),
        Some(v) => serde_json::from_value::<Dict>(v.clone()).map_err(|e| format!("{k}: {e}")),
    };
    let raw = |k: &str| -> Result<Option<RawValue>, String> {
        match a.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => {
                let v: Value =
                    serde_json::from_value(v.clone()).map_err(|e| format!("{k}: {e}"))?;
                RawValue::from_value(ser, &v)
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
        }
    };
    let payload = || -> Result<Payload, String> {
        Ok(match a.get("payload").and_then(Json::as_str) {
            Some(h) => Payload {
                args: Some(opaque(ser, h)?),
                kwargs: None,
            },
            None => Payload {
                args: raw("args")?,
                kwargs: raw("kwargs")?,
            },
        })
    };
    use MessageType as T;
    Ok(match kind {
        T::Subscribe => Message::Subscribe {
            request: id("request")?,
            options: dict("options")?,
            topic: text("topic")?,
        },
        T::Subscribed => Message::Subscribed {
            request: id("request")?,
            subscription: id("subscription")?,
        },
        T::Publish => Message::Publish {
            request: id("request")?,
            options: dict("options")?,
            topic: text("topic")?,
            payload: payload()?,
        },
        T::Event => Message::Event {
            subscription: id("subscription")?,
            publication: id("publication")?,
            details: dict("details")?,
            payload: payload()?,
        },
        T::Published => Message::Published {
            request: id("request")?,
            publication: id("publication")?,
        },
        // The multisession vectors use only the pub/sub messages above so far; a new one fails here
        // loudly and is one line to add.
        other => {
            return Err(format!(
                "building {} from attributes is not implemented here",
                other.name()
            ));
        }
    })
}

/// A passthru payload (hex of opaque bytes) as a raw value of `ser`.
fn opaque(ser: Serializer, hex_str: &str) -> Result<RawValue, String> {
    let bytes = Bytes::from(hex_decode(hex_str)?);
    RawValue::from_value(ser, &Value::Bytes(bytes)).map_err(|e| e.to_string())
}

/// A `wmsg` (the message as a JSON array) as wire bytes of `ser`, through our [`Value`].
fn wire_bytes(wmsg: &Json, ser: Serializer) -> Result<Bytes, String> {
    let v: Value = serde_json::from_value(wmsg.clone()).map_err(|e| e.to_string())?;
    let bytes = match ser {
        Serializer::Json => serde_json::to_vec(&v).map_err(|e| e.to_string())?,
        Serializer::MsgPack => rmp_serde::to_vec(&v).map_err(|e| e.to_string())?,
        Serializer::Cbor => {
            let mut buf = Vec::new();
            ciborium::into_writer(&v, &mut buf).map_err(|e| e.to_string())?;
            buf
        }
    };
    Ok(Bytes::from(bytes))
}

// ---------------------------------------------------------------------------------------------
// The checks of one sample or step.

/// One listed representation must decode to the expected attributes, and the message must
/// re-encode, in every serializer, to one of the representations listed for that serializer. In
/// the same serializer that tests our envelope encoding; in the others it also tests transcoding
/// of the raw payload.
fn check_representation(
    ser: Serializer,
    bytes: &Bytes,
    expected: &Map<String, Json>,
    listed: &BTreeMap<&str, Vec<Bytes>>,
) -> Vec<String> {
    let msg = match codec::decode(ser, bytes) {
        Ok(m) => m,
        Err(e) => return vec![format!("decode failed: {e}")],
    };
    let mut problems = attribute_mismatches(expected, &msg);
    // A serializer with nothing listed is reported once by the caller.
    for (target, listed) in SERIALIZERS
        .iter()
        .filter_map(|t| Some((t, listed.get(t.name())?)))
    {
        match codec::encode(*target, &msg) {
            Ok(out) if listed.contains(&out) => {}
            Ok(out) => problems.push(format!(
                "re-encoded as {}: {} matches none of the {} listed",
                target.name(),
                hex(&out),
                listed.len()
            )),
            Err(e) => problems.push(format!("re-encoding as {} failed: {e}", target.name())),
        }
    }
    problems
}

/// A `wmsg` must be accepted, or refused with an error whose text contains `contains`.
fn check_validation(wmsg: &Json, contains: Option<&str>, ser: Serializer) -> Result<(), String> {
    let bytes = wire_bytes(wmsg, ser).map_err(|e| format!("harness cannot encode wmsg: {e}"))?;
    match (codec::decode(ser, &bytes), contains) {
        (Ok(_), None) => Ok(()),
        (Err(e), None) => Err(format!("valid message refused: {e}")),
        (Ok(m), Some(want)) => Err(format!("accepted {m:?}, must be refused with {want:?}")),
        (Err(e), Some(want)) if e.to_string().contains(want) => Ok(()),
        (Err(e), Some(want)) => Err(format!(
            "refused with {:?}, lacking {want:?}",
            e.to_string()
        )),
    }
}

/// A multisession step's message must be buildable as ours and survive encode -> decode.
fn check_step(attrs: &Map<String, Json>, ser: Serializer) -> Result<(), String> {
    let msg = build(attrs, ser)?;
    let bytes = codec::encode(ser, &msg).map_err(|e| format!("encode failed: {e}"))?;
    let back = codec::decode(ser, &bytes).map_err(|e| format!("decode failed: {e}"))?;
    let mut problems = attribute_mismatches(attrs, &back);
    if back != msg {
        problems.push(format!("decoded {back:?} differs from encoded {msg:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn every_serialization_vector_decodes_and_reencodes() {
    let mut failures = Failures::default();
    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, doc) in vector_files("singlemessage") {
        let mut per_file = 0;
        for (i, sample) in samples(&file, &doc).iter().enumerate() {
            let at = |ser: &str| format!("{file} sample {i} [{ser}]");
            let Some(expected) = sample["expected_attributes"].as_object() else {
                if sample.get("wmsg").is_some() {
                    per_file += 1; // a validation sample, checked by the test below
                } else {
                    failures.add(
                        &at("-"),
                        ["neither a serialization nor a validation sample"],
                    );
                }
                continue;
            };
            // Representations listed per serializer ("at least one must match", says the schema).
            let mut listed: BTreeMap<&str, Vec<Bytes>> = BTreeMap::new();
            for ser in SERIALIZERS {
                let reps = sample["serializers"][ser.name()]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if reps.is_empty() {
                    failures.add(&at(ser.name()), ["no representation listed"]);
                }
                for rep in reps {
                    match representation_bytes(&rep) {
                        Ok(b) => listed.entry(ser.name()).or_default().push(b),
                        Err(e) => failures.add(&at(ser.name()), [e]),
                    }
                }
            }
            for ser in SERIALIZERS {
                for (r, bytes) in listed.get(ser.name()).into_iter().flatten().enumerate() {
                    *checked.entry(ser.name()).or_default() += 1;
                    per_file += 1;
                    let problems = check_representation(ser, bytes, expected, &listed);
                    failures.add(&format!("{} representation {r}", at(ser.name())), problems);
                }
            }
        }
        if per_file == 0 {
            failures.add(&file, ["no sample in this file could be checked"]);
        }
    }
    failures.assert_none(&checked);
}

#[test]
fn every_validation_vector_is_accepted_or_refused_as_specified() {
    let mut failures = Failures::default();
    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, doc) in vector_files("singlemessage") {
        for (i, sample) in samples(&file, &doc).iter().enumerate() {
            let Some(wmsg) = sample.get("wmsg") else {
                continue; // a serialization sample
            };
            // `expected_error` without `contains` asks only for a refusal.
            let contains = sample
                .get("expected_error")
                .map(|e| e["contains"].as_str().unwrap_or(""));
            for ser in SERIALIZERS {
                *checked.entry(ser.name()).or_default() += 1;
                if let Err(e) = check_validation(wmsg, contains, ser) {
                    failures.add(&format!("{file} sample {i} [{}]", ser.name()), [e]);
                }
            }
        }
    }
    assert!(
        !checked.is_empty(),
        "no validation sample found in the whole suite"
    );
    failures.assert_none(&checked);
}

#[test]
fn every_multisession_message_survives_encode_and_decode_in_every_serializer() {
    let mut failures = Failures::default();
    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, doc) in vector_files("multisession") {
        let steps = doc["sequence"].as_array().cloned().unwrap_or_default();
        if steps.is_empty() {
            failures.add(&file, ["no steps in the sequence"]);
        }
        for (i, step) in steps.iter().enumerate() {
            let Some(attrs) = step["message"].as_object() else {
                failures.add(&format!("{file} step {i}"), ["step has no message object"]);
                continue;
            };
            for ser in SERIALIZERS {
                *checked.entry(ser.name()).or_default() += 1;
                if let Err(e) = check_step(attrs, ser) {
                    failures.add(&format!("{file} step {i} [{}]", ser.name()), [e]);
                }
            }
        }
    }
    failures.assert_none(&checked);
}
