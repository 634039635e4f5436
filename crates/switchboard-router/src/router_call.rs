//! Calls the router makes itself: dynamic authenticators and authorizers are ordinary procedures
//! that components register, and the router calls them through a hidden session of its own.
//!
//! Each realm gets one [`RouterCaller`] the first time the router calls into it. Its session is
//! never joined to the realm's session table (so the meta API does not list it), but to the dealer
//! it is a caller like any other: the dealer routes the CALL and later queues the RESULT or ERROR
//! into the caller's outbox. A small task reads that outbox and hands each answer to the waiting
//! [`RouterCaller::call`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_proto::ids::random_global_id;
use switchboard_proto::{Dict, Message, Payload, RawValue, Serializer, Value, codec, errors};
use tokio::sync::oneshot;

use crate::peer::{ClientFeatures, Identity, Peer, SessionId};
use crate::realm::dealer::Dealer;

/// The authid and authrole of the router's own sessions, as callees see them when they ask for the
/// caller's identity (they never do: the router calls without disclosure).
pub const ROUTER_AUTHID: &str = "switchboard";

/// Why a router call produced no result.
#[derive(Debug, Clone, PartialEq)]
pub enum CallFailure {
    /// The procedure could not be reached or did not answer: not registered, its callee left, or
    /// the call timed out.
    Unavailable(String),
    /// The callee answered with an ERROR.
    Error {
        /// The error URI.
        uri: String,
        /// The first positional argument, as text, when there is one.
        message: Option<String>,
    },
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Unavailable(why) => write!(f, "{why}"),
            CallFailure::Error { uri, message } => match message {
                Some(m) => write!(f, "{uri}: {m}"),
                None => write!(f, "{uri}"),
            },
        }
    }
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, CallFailure>>>>>;

/// The router's caller session on one realm.
#[derive(Debug)]
pub struct RouterCaller {
    peer: Peer,
    waiters: Waiters,
    next_request: AtomicU64,
}

impl RouterCaller {
    /// A caller session whose answers are read by a task spawned on the current runtime.
    pub fn new() -> Self {
        let identity = Identity {
            session: SessionId(random_global_id()),
            authid: ROUTER_AUTHID.into(),
            authrole: ROUTER_AUTHID.into(),
            authmethod: "trusted",
            authprovider: "router",
        };
        // MessagePack keeps binary values as they are, whatever the callee speaks.
        let (peer, mut outbox) = Peer::new(
            identity,
            ClientFeatures::default(),
            Serializer::MsgPack,
            None,
            1024,
        );
        let waiters: Waiters = Arc::default();
        let answers = waiters.clone();
        tokio::spawn(async move {
            while let Some(bytes) = outbox.rx.recv().await {
                let (request, outcome) = match codec::decode(Serializer::MsgPack, &bytes) {
                    // A progressive result is not the answer yet (the router never asks for
                    // progress, but a callee may send it anyway).
                    Ok(Message::Result { details, .. })
                        if details.get("progress").and_then(Value::as_bool) == Some(true) =>
                    {
                        continue;
                    }
                    Ok(Message::Result {
                        request, payload, ..
                    }) => (request, Ok(first_argument(&payload))),
                    Ok(Message::Error {
                        request,
                        error,
                        payload,
                        ..
                    }) => (request, Err(failure(error, &payload))),
                    _ => continue,
                };
                let waiter = lock(&answers).remove(&request);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(outcome);
                }
            }
        });
        Self {
            peer,
            waiters,
            next_request: AtomicU64::new(1),
        }
    }

    /// Calls `procedure` with positional `args` through `dealer`, waiting at most `timeout`. Returns
    /// the result's first positional argument (`Null` when there is none).
    pub async fn call(
        &self,
        dealer: &Dealer,
        procedure: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value, CallFailure> {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let payload = Payload {
            args: RawValue::from_value(Serializer::MsgPack, &Value::List(args)).ok(),
            kwargs: None,
        };
        let mut options = Dict::new();
        // The dealer interrupts the callee when the router stops waiting.
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        options.insert("timeout".into(), Value::UInt(millis));
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(request, tx);
        if let Err(e) = dealer.call(&self.peer, request, &options, procedure, &payload, false) {
            lock(&self.waiters).remove(&request);
            return Err(CallFailure::Unavailable(format!(
                "{}: {}",
                e.uri, e.message
            )));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Err(CallFailure::Error { uri, message })))
                if uri == errors::CANCELED || uri == errors::TIMEOUT =>
            {
                // The dealer's own errors: the callee left or took too long.
                Err(CallFailure::Unavailable(match message {
                    Some(m) => format!("{uri}: {m}"),
                    None => uri,
                }))
            }
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(CallFailure::Unavailable("the call was dropped".into())),
            Err(_) => {
                lock(&self.waiters).remove(&request);
                Err(CallFailure::Unavailable(format!(
                    "{procedure} did not answer within {} ms",
                    timeout.as_millis()
                )))
            }
        }
    }
}

impl Default for RouterCaller {
    fn default() -> Self {
        Self::new()
    }
}

fn first_argument(payload: &Payload) -> Value {
    match payload.args.as_ref().map(RawValue::to_value) {
        Some(Ok(Value::List(mut list))) if !list.is_empty() => list.swap_remove(0),
        _ => Value::Null,
    }
}

fn failure(uri: String, payload: &Payload) -> CallFailure {
    let message = match first_argument(payload) {
        Value::Null => None,
        Value::Str(s) => Some(s),
        other => Some(format!("{other:?}")),
    };
    CallFailure::Error { uri, message }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
