//! Raw WAMP peers for the Advanced Profile tests: joining with chosen features, and sending and
//! expecting single messages.

use switchboard_proto::{Dict, Message, Payload, RawValue, Serializer, Value};

use super::{RawPeer, TestRouter, Via};

/// Joins `realm1` over RawSocket (JSON) announcing the callee features `features` (e.g. `call_canceling`).
pub async fn join_with(router: &TestRouter, features: &[&str]) -> RawPeer {
    let mut peer = RawPeer::open(router, Via::RawSocketTcp, Serializer::Json).await;
    let mut f = Dict::new();
    for name in features {
        f.insert((*name).to_owned(), true.into());
    }
    let mut callee = Dict::new();
    callee.insert("features".into(), Value::Dict(f.clone()));
    let mut caller = Dict::new();
    caller.insert("features".into(), Value::Dict(f));
    let mut roles = Dict::new();
    roles.insert("callee".into(), Value::Dict(callee));
    roles.insert("caller".into(), Value::Dict(caller));
    roles.insert("publisher".into(), Value::Dict(Dict::new()));
    roles.insert("subscriber".into(), Value::Dict(Dict::new()));
    let mut details = Dict::new();
    details.insert("roles".into(), Value::Dict(roles));
    peer.send(&Message::Hello {
        realm: "realm1".into(),
        details,
    })
    .await;
    assert!(matches!(peer.recv().await, Some(Message::Welcome { .. })));
    peer
}

/// An options dict from pairs.
pub fn opts(pairs: &[(&str, Value)]) -> Dict {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// A JSON payload of positional arguments.
pub fn args(v: Vec<Value>) -> Payload {
    Payload {
        args: Some(RawValue::from_value(Serializer::Json, &Value::List(v)).expect("encode")),
        kwargs: None,
    }
}

/// REGISTER; the registration id, or the ERROR's URI.
pub async fn register(
    peer: &mut RawPeer,
    request: u64,
    procedure: &str,
    options: Dict,
) -> Result<u64, String> {
    peer.send(&Message::Register {
        request,
        options,
        procedure: procedure.into(),
    })
    .await;
    match peer.recv().await {
        Some(Message::Registered { registration, .. }) => Ok(registration),
        Some(Message::Error { error, .. }) => Err(error),
        other => panic!("expected REGISTERED or ERROR, got {other:?}"),
    }
}

/// CALL with the request id as its only argument.
pub async fn call(peer: &mut RawPeer, request: u64, procedure: &str, options: Dict) {
    peer.send(&Message::Call {
        request,
        options,
        procedure: procedure.into(),
        payload: args(vec![request.into()]),
    })
    .await;
}

/// The next message, which must be an INVOCATION: its request id and details.
pub async fn invocation(peer: &mut RawPeer) -> (u64, Dict) {
    match peer.recv().await {
        Some(Message::Invocation {
            request, details, ..
        }) => (request, details),
        other => panic!("expected INVOCATION, got {other:?}"),
    }
}

/// YIELD with one value.
pub async fn yield_(peer: &mut RawPeer, request: u64, options: Dict, value: Value) {
    peer.send(&Message::Yield {
        request,
        options,
        payload: args(vec![value]),
    })
    .await;
}
