//! The option and detail dictionaries: their type checks, and the enumerated option values both
//! ends of a session use ([`InvokePolicy`], [`CancelMode`]; the `match` option is
//! [`crate::UriMatch`]).
//!
//! A known option with a value of the wrong type is a protocol violation (the WAMP test vectors name
//! each one); unknown options are ignored, as the spec requires for extensibility.

use crate::value::{Dict, Value};

/// `enc_algo` values autobahn accepts for payload passthru (end-to-end encryption) mode.
const ENC_ALGOS: [&str; 4] = ["null", "cryptobox", "mqtt", "xbr"];

/// How calls to a shared registration pick their callee (spec, "Shared Registration";
/// REGISTER.Options.invoke).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InvokePolicy {
    /// One callee only: registering a taken procedure fails.
    #[default]
    Single,
    /// The callees in turn, in registration order.
    RoundRobin,
    /// A callee picked at random per call.
    Random,
    /// The callee that registered first (hot standby).
    First,
    /// The callee that registered last.
    Last,
}

impl InvokePolicy {
    /// The option value as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::RoundRobin => "roundrobin",
            Self::Random => "random",
            Self::First => "first",
            Self::Last => "last",
        }
    }

    /// The policy a REGISTER's options ask for (their types already checked); single when absent.
    pub fn from_options(options: &Dict) -> Self {
        match options.get("invoke").and_then(Value::as_str) {
            Some("roundrobin") => Self::RoundRobin,
            Some("random") => Self::Random,
            Some("first") => Self::First,
            Some("last") => Self::Last,
            _ => Self::Single,
        }
    }
}

/// How a call is canceled (spec, "Call Canceling"; CANCEL.Options.mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelMode {
    /// ERROR to the caller now; the callee is not told, and its answer is dropped.
    Skip,
    /// INTERRUPT to the callee; its answer (ERROR or RESULT) goes to the caller.
    Kill,
    /// ERROR to the caller now and INTERRUPT to the callee, whose answer is dropped.
    KillNoWait,
}

impl CancelMode {
    /// The option value as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Kill => "kill",
            Self::KillNoWait => "killnowait",
        }
    }

    /// The mode a CANCEL's options ask for; `killnowait` (Crossbar's default) when absent or
    /// unknown.
    pub fn from_options(options: &Dict) -> Self {
        match options.get("mode").and_then(Value::as_str) {
            Some("skip") => Self::Skip,
            Some("kill") => Self::Kill,
            _ => Self::KillNoWait,
        }
    }
}

type Check = fn(&Value) -> bool;

fn is_bool(v: &Value) -> bool {
    matches!(v, Value::Bool(_))
}
fn is_str(v: &Value) -> bool {
    matches!(v, Value::Str(_))
}
fn is_id(v: &Value) -> bool {
    matches!(v, Value::UInt(_))
}
fn is_uint(v: &Value) -> bool {
    matches!(v, Value::UInt(_))
}
fn is_id_list(v: &Value) -> bool {
    v.as_list().is_some_and(|l| l.iter().all(is_id))
}
fn is_str_list(v: &Value) -> bool {
    v.as_list().is_some_and(|l| l.iter().all(is_str))
}
fn is_forward_for(v: &Value) -> bool {
    v.as_list().is_some_and(|l| {
        l.iter().all(|hop| {
            hop.as_dict().is_some_and(|d| {
                d.get("session").is_none_or(is_id)
                    && d.get("authid").is_none_or(is_str)
                    && d.get("authrole").is_none_or(is_str)
            })
        })
    })
}
fn is_enc_algo(v: &Value) -> bool {
    v.as_str().is_some_and(|s| ENC_ALGOS.contains(&s))
}
fn is_match(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| crate::uri::UriMatch::parse(s).is_some())
}
fn is_invoke(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| matches!(s, "single" | "roundrobin" | "random" | "first" | "last"))
}

fn check(dict: &Dict, rules: &[(&str, Check, &str)]) -> Result<(), String> {
    for (key, ok, expected) in rules {
        if let Some(v) = dict.get(*key)
            && !ok(v)
        {
            return Err(format!("option {key} must be {expected}, got {}", v.kind()));
        }
    }
    Ok(())
}

const PASSTHRU_RULES: [(&str, Check, &str); 5] = [
    ("enc_algo", is_enc_algo, "one of null, cryptobox, mqtt, xbr"),
    ("enc_serializer", is_str, "a string"),
    ("enc_key", is_str, "a string"),
    ("ppt_scheme", is_str, "a string"),
    ("ppt_serializer", is_str, "a string"),
];

/// Whether the options or details put the payload into passthru mode (spec, "Payload Passthru
/// Mode"; autobahn's older `enc_algo` name is accepted too).
pub fn is_passthru(dict: &Dict) -> bool {
    dict.contains_key("ppt_scheme") || dict.contains_key("enc_algo")
}

/// Checks PUBLISH.Options.
pub fn check_publish(o: &Dict) -> Result<(), String> {
    check(
        o,
        &[
            ("acknowledge", is_bool, "a bool"),
            ("exclude_me", is_bool, "a bool"),
            ("exclude", is_id_list, "a list of session ids"),
            ("exclude_authid", is_str_list, "a list of strings"),
            ("exclude_authrole", is_str_list, "a list of strings"),
            ("eligible", is_id_list, "a list of session ids"),
            ("eligible_authid", is_str_list, "a list of strings"),
            ("eligible_authrole", is_str_list, "a list of strings"),
            ("retain", is_bool, "a bool"),
            ("disclose_me", is_bool, "a bool"),
            ("transaction_hash", is_str, "a string"),
            (
                "forward_for",
                is_forward_for,
                "a list of {session, authid, authrole}",
            ),
        ],
    )?;
    check(o, &PASSTHRU_RULES)
}

/// Checks SUBSCRIBE.Options.
pub fn check_subscribe(o: &Dict) -> Result<(), String> {
    check(
        o,
        &[
            ("match", is_match, "one of exact, prefix, wildcard"),
            ("get_retained", is_bool, "a bool"),
            (
                "forward_for",
                is_forward_for,
                "a list of {session, authid, authrole}",
            ),
        ],
    )
}

/// Checks EVENT.Details.
pub fn check_event_details(d: &Dict) -> Result<(), String> {
    check(
        d,
        &[
            ("publisher", is_id, "a session id"),
            ("publisher_authid", is_str, "a string"),
            ("publisher_authrole", is_str, "a string"),
            ("topic", is_str, "a URI string"),
            ("retained", is_bool, "a bool"),
            ("transaction_hash", is_str, "a string"),
            ("x_acknowledged_delivery", is_bool, "a bool"),
            (
                "forward_for",
                is_forward_for,
                "a list of {session, authid, authrole}",
            ),
        ],
    )?;
    check(d, &PASSTHRU_RULES)
}

/// Checks CALL.Options.
pub fn check_call(o: &Dict) -> Result<(), String> {
    check(
        o,
        &[
            ("timeout", is_uint, "a non-negative integer (milliseconds)"),
            ("receive_progress", is_bool, "a bool"),
            ("progress", is_bool, "a bool"),
            ("disclose_me", is_bool, "a bool"),
            (
                "forward_for",
                is_forward_for,
                "a list of {session, authid, authrole}",
            ),
        ],
    )?;
    check(o, &PASSTHRU_RULES)
}

/// Checks REGISTER.Options.
pub fn check_register(o: &Dict) -> Result<(), String> {
    check(
        o,
        &[
            ("match", is_match, "one of exact, prefix, wildcard"),
            (
                "invoke",
                is_invoke,
                "one of single, roundrobin, random, first, last",
            ),
            ("disclose_caller", is_bool, "a bool"),
            ("force_reregister", is_bool, "a bool"),
            (
                "forward_for",
                is_forward_for,
                "a list of {session, authid, authrole}",
            ),
        ],
    )
}
