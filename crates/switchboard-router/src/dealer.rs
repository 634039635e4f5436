//! The dealer: procedure registrations and call routing (spec, "Remote Procedure Calls").
//!
//! CALL runs on the caller's task: a read lock finds the registration, the pending invocation is
//! recorded on the callee's [`Peer`], and the INVOCATION goes into the callee's outbox. YIELD and
//! ERROR run on the callee's task: it takes the pending invocation from its own table and queues the
//! RESULT or ERROR into the caller's outbox. No dealer task sits in between.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use switchboard_proto::ids::IdSequence;
use switchboard_proto::{Dict, Id, Message, MessageType, Payload, Uri, UriMatch, codec, errors};

use crate::matcher::PatternIndex;

use crate::realm::{read, write};
use crate::session::peer::{Peer, PendingInvocation, SendError, SessionId};

#[derive(Debug)]
struct Registration {
    id: Id,
    procedure: Uri,
    policy: UriMatch,
    callee: Peer,
}

#[derive(Debug, Default)]
struct DealerState {
    registrations: PatternIndex<Arc<Registration>>,
    by_id: HashMap<Id, Arc<Registration>>,
}

/// A realm's dealer.
#[derive(Debug)]
pub struct Dealer {
    state: RwLock<DealerState>,
    ids: Arc<IdSequence>,
}

/// An error for the caller: URI and a human-readable message (sent as the single argument, as
/// Crossbar does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The error URI.
    pub uri: &'static str,
    /// Explanation.
    pub message: String,
}

impl CallError {
    fn new(uri: &'static str, message: impl Into<String>) -> Self {
        Self {
            uri,
            message: message.into(),
        }
    }

    /// The ERROR message answering CALL `request`, in `serializer`.
    pub fn to_message(&self, request: Id, serializer: switchboard_proto::Serializer) -> Message {
        error_with_text(
            MessageType::Call,
            request,
            self.uri,
            &self.message,
            serializer,
        )
    }
}

/// An ERROR with one string argument explaining it.
pub(crate) fn error_with_text(
    request_type: MessageType,
    request: Id,
    uri: &str,
    text: &str,
    serializer: switchboard_proto::Serializer,
) -> Message {
    let args = switchboard_proto::Value::List(vec![text.into()]);
    let payload = Payload {
        args: codec::RawValue::from_value(serializer, &args).ok(),
        kwargs: None,
    };
    Message::Error {
        request_type: request_type.code(),
        request,
        details: Dict::new(),
        error: uri.to_owned(),
        payload,
    }
}

impl Dealer {
    /// An empty dealer drawing registration ids from `ids`.
    pub fn new(ids: Arc<IdSequence>) -> Self {
        Self {
            state: RwLock::new(DealerState::default()),
            ids,
        }
    }

    /// Registers `procedure` under `policy` for `callee`; fails with `procedure_already_exists`
    /// when that pattern and policy are taken.
    pub fn register(
        &self,
        callee: &Peer,
        procedure: Uri,
        policy: UriMatch,
    ) -> Result<Id, CallError> {
        let mut state = write(&self.state);
        if state.registrations.get(&procedure, policy).is_some() {
            return Err(CallError::new(
                errors::PROCEDURE_ALREADY_EXISTS,
                format!(
                    "procedure {procedure} ({}) is already registered",
                    policy.as_str()
                ),
            ));
        }
        let reg = Arc::new(Registration {
            id: self.ids.next_id(),
            procedure: procedure.clone(),
            policy,
            callee: callee.clone(),
        });
        state.by_id.insert(reg.id, reg.clone());
        state.registrations.insert(procedure, policy, reg.clone());
        Ok(reg.id)
    }

    /// Removes registration `id` if `callee` holds it.
    pub fn unregister(&self, callee: SessionId, id: Id) -> bool {
        let mut state = write(&self.state);
        match state.by_id.get(&id) {
            Some(reg) if reg.callee.id() == callee => {
                let (procedure, policy) = (reg.procedure.clone(), reg.policy);
                state.by_id.remove(&id);
                state.registrations.remove(&procedure, policy);
                true
            }
            _ => false,
        }
    }

    /// Routes a CALL to its callee; with `disclose`, INVOCATION.Details carry the caller's identity
    /// (the role's `disclose.caller`). On error the caller gets the returned ERROR.
    pub fn call(
        &self,
        caller: &Peer,
        request: Id,
        procedure: &str,
        payload: &Payload,
        disclose: bool,
    ) -> Result<(), CallError> {
        // spec, "Pattern-based Registration": exact beats the longest prefix beats wildcard.
        let reg = read(&self.state)
            .registrations
            .best_match(procedure)
            .map(|(_, _, reg)| Arc::clone(reg));
        let Some(reg) = reg else {
            return Err(CallError::new(
                errors::NO_SUCH_PROCEDURE,
                format!("no callee registered procedure {procedure}"),
            ));
        };
        let callee = &reg.callee;
        let invocation_id = callee.add_pending_invocation(PendingInvocation {
            caller: caller.clone(),
            call_request: request,
        });
        let mut details = if disclose {
            crate::broker::identity_details(caller, "caller")
        } else {
            Dict::new()
        };
        // The callee of a pattern-based registration learns which procedure was called.
        if reg.policy != UriMatch::Exact {
            details.insert("procedure".into(), procedure.into());
        }
        let invocation = Message::Invocation {
            request: invocation_id,
            registration: reg.id,
            details,
            payload: payload.clone(),
        };
        let failed = |e: CallError| {
            callee.take_pending_invocation(invocation_id);
            Err(e)
        };
        let bytes = match codec::encode(callee.serializer(), &invocation) {
            Ok(b) => b,
            Err(e) => {
                return failed(CallError::new(
                    errors::INVALID_ARGUMENT,
                    format!("the call's payload cannot be converted for the callee: {e}"),
                ));
            }
        };
        if !callee.accepts_len(bytes.len()) {
            return failed(CallError::new(
                errors::PAYLOAD_SIZE_EXCEEDED,
                "the invocation is larger than the callee accepts",
            ));
        }
        match callee.send(bytes) {
            Ok(()) => Ok(()),
            Err(SendError::Closed | SendError::Full) => failed(CallError::new(
                errors::CANCELED,
                "the callee cannot take the call (it left or cannot keep up)",
            )),
        }
    }

    /// Handles YIELD from `callee`: the result goes to the caller.
    pub fn handle_yield(&self, callee: &Peer, request: Id, payload: Payload) {
        let Some(pending) = callee.take_pending_invocation(request) else {
            // The caller left (or the call otherwise ended) before the callee answered.
            tracing::debug!(
                session = callee.id().0,
                request,
                "YIELD for no pending invocation"
            );
            return;
        };
        let caller = &pending.caller;
        let result = Message::Result {
            request: pending.call_request,
            details: Dict::new(),
            payload,
        };
        let reply = match codec::encode(caller.serializer(), &result) {
            Ok(b) if caller.accepts_len(b.len()) => Some(b),
            Ok(_) => encode_or_log(
                caller,
                CallError::new(
                    errors::PAYLOAD_SIZE_EXCEEDED,
                    "the result is larger than the caller accepts",
                )
                .to_message(pending.call_request, caller.serializer()),
            ),
            Err(e) => encode_or_log(
                caller,
                CallError::new(
                    errors::INVALID_ARGUMENT,
                    format!("the result cannot be converted for the caller: {e}"),
                )
                .to_message(pending.call_request, caller.serializer()),
            ),
        };
        if let Some(reply) = reply {
            let _ = caller.send(reply);
        }
    }

    /// Handles ERROR answering an INVOCATION: passed on to the caller.
    pub fn handle_invocation_error(
        &self,
        callee: &Peer,
        request: Id,
        details: Dict,
        error: String,
        payload: Payload,
    ) {
        let Some(pending) = callee.take_pending_invocation(request) else {
            tracing::debug!(
                session = callee.id().0,
                request,
                "ERROR for no pending invocation"
            );
            return;
        };
        let caller = &pending.caller;
        let msg = Message::Error {
            request_type: MessageType::Call.code(),
            request: pending.call_request,
            details,
            error,
            payload,
        };
        let reply = match codec::encode(caller.serializer(), &msg) {
            Ok(b) => Some(b),
            Err(e) => encode_or_log(
                caller,
                CallError::new(
                    errors::INVALID_ARGUMENT,
                    format!("the error's payload cannot be converted for the caller: {e}"),
                )
                .to_message(pending.call_request, caller.serializer()),
            ),
        };
        if let Some(reply) = reply {
            let _ = caller.send(reply);
        }
    }

    /// A callee left: drop its registrations and fail the calls it still owed an answer to.
    pub fn callee_left(&self, callee: &Peer, registrations: impl IntoIterator<Item = Id>) {
        for id in registrations {
            self.unregister(callee.id(), id);
        }
        for pending in callee.drain_pending_invocations() {
            let caller = &pending.caller;
            let msg = CallError::new(errors::CANCELED, "callee disconnected from in-flight call")
                .to_message(pending.call_request, caller.serializer());
            if let Some(bytes) = encode_or_log(caller, msg) {
                let _ = caller.send(bytes);
            }
        }
    }

    /// How many registrations exist.
    pub fn registration_count(&self) -> usize {
        read(&self.state).by_id.len()
    }
}

/// Encodes a router-made message. These carry only strings we wrote, so encoding cannot fail in
/// practice; if it ever does, that is logged as an internal fault instead of panicking.
pub(crate) fn encode_or_log(peer: &Peer, msg: Message) -> Option<bytes::Bytes> {
    codec::encode(peer.serializer(), &msg)
        .inspect_err(|e| {
            tracing::error!(session = peer.id().0, "cannot encode router message: {e}")
        })
        .ok()
}
