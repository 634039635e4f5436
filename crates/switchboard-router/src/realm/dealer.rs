//! The dealer: procedure registrations and call routing (spec, "Remote Procedure Calls"), with
//! the Advanced Profile's pattern-based and shared registrations, progressive call results, call
//! timeouts, call canceling and caller identification.
//!
//! CALL runs on the caller's task: a read lock finds the registration, the pending invocation is
//! recorded on the callee's [`Peer`], and the INVOCATION goes into the callee's outbox. YIELD and
//! ERROR run on the callee's task: it takes the pending invocation from its own table and queues the
//! RESULT or ERROR into the caller's outbox. No dealer task sits in between.

use super::stats::{CallOutcome, RealmStats};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use switchboard_proto::ids::IdSequence;
use switchboard_proto::options::{CancelMode, InvokePolicy};
use switchboard_proto::{Dict, Id, Message, MessageType, Payload, Uri, UriMatch, codec, errors};

use crate::delivery::{
    Forwarded, copy_passthru, encode_or_log, error_with_text, identity_details, link_details,
    send_to,
};
use crate::locks::{read, write};
use crate::matcher::{PatternIndex, policy_index};
use crate::peer::{CallInFlight, Peer, PendingInvocation, SendError, SessionId};

#[derive(Debug, Clone)]
struct Registration {
    id: Id,
    procedure: Uri,
    policy: UriMatch,
    invoke: InvokePolicy,
    /// In registration order. Copy-on-write: a change replaces the whole `Arc<Registration>`.
    callees: Vec<Peer>,
    /// Shared by every version of this registration, so round robin survives joins and leaves.
    next: Arc<AtomicUsize>,
}

impl Registration {
    /// The callee of the next call among those `eligible`: what [`Self::pick`] would choose, or
    /// the next one in the policy's order when that one may not take the call.
    fn pick_eligible(&self, eligible: impl Fn(&Peer) -> bool) -> Option<&Peer> {
        match self.invoke {
            InvokePolicy::Single | InvokePolicy::First => self.callees.iter().find(|c| eligible(c)),
            InvokePolicy::Last => self.callees.iter().rev().find(|c| eligible(c)),
            InvokePolicy::RoundRobin => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let len = self.callees.len();
                (0..len)
                    .map(|i| &self.callees[(n + i) % len])
                    .find(|c| eligible(c))
            }
            InvokePolicy::Random => {
                let candidates: Vec<&Peer> = self.callees.iter().filter(|c| eligible(c)).collect();
                if candidates.is_empty() {
                    return None;
                }
                Some(candidates[rand::random_range(0..candidates.len())])
            }
        }
    }

    fn pick(&self) -> Option<&Peer> {
        match self.invoke {
            InvokePolicy::Single | InvokePolicy::First => self.callees.first(),
            InvokePolicy::Last => self.callees.last(),
            InvokePolicy::RoundRobin => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                self.callees.get(n % self.callees.len().max(1))
            }
            InvokePolicy::Random => {
                let n = rand::random_range(0..self.callees.len().max(1));
                self.callees.get(n)
            }
        }
    }
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
    /// The realm's counters.
    stats: Arc<RealmStats>,
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

    /// An error with `uri` and an explanation.
    pub fn from_uri(uri: &'static str, message: impl Into<String>) -> Self {
        Self::new(uri, message)
    }

    /// `wamp.error.invalid_argument` with an explanation.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(errors::INVALID_ARGUMENT, message)
    }

    /// `wamp.error.not_authorized` with an explanation.
    pub fn not_authorized(message: impl Into<String>) -> Self {
        Self::new(errors::NOT_AUTHORIZED, message)
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

/// Ends the invocation `invocation` of `callee` for its caller: ERROR `reason` to the caller, and
/// (unless the mode is skip or the callee cannot take it) INTERRUPT to the callee. For `Kill`, the
/// invocation stays pending and the callee's answer goes to the caller.
fn cancel_invocation(
    callee: &Peer,
    invocation: Id,
    mode: CancelMode,
    reason: &'static str,
    stats: &RealmStats,
) {
    let mode = if callee.features().callee_call_canceling {
        mode
    } else {
        CancelMode::Skip
    };
    if mode != CancelMode::Skip {
        let mut options = Dict::new();
        options.insert("mode".into(), mode.as_str().into());
        options.insert("reason".into(), reason.into());
        send_to(
            callee,
            Message::Interrupt {
                request: invocation,
                options,
            },
        );
    }
    if mode == CancelMode::Kill {
        return;
    }
    if let Some(pending) = callee.take_pending_invocation(invocation) {
        let caller = &pending.caller;
        caller.untrack_call(pending.call_request);
        let outcome = if reason == errors::TIMEOUT {
            CallOutcome::Timeout
        } else {
            CallOutcome::Canceled
        };
        stats.call_ended(outcome, pending.started);
        let text = if reason == errors::TIMEOUT {
            "the call timed out"
        } else {
            "the call was canceled"
        };
        send_to(
            caller,
            CallError::new(reason, text).to_message(pending.call_request, caller.serializer()),
        );
    }
}

impl Dealer {
    /// An empty dealer drawing registration ids from `ids`.
    pub fn new(ids: Arc<IdSequence>, stats: Arc<RealmStats>) -> Self {
        Self {
            state: RwLock::new(DealerState::default()),
            ids,
            stats,
        }
    }

    /// Registers `procedure` under `policy` for `callee`. With `invoke` other than single, later
    /// callees asking for the same policy join the registration (same id); anything else fails
    /// with `procedure_already_exists`.
    ///
    /// `confirm` runs with the new registration id before any caller can reach it (the registry
    /// stays locked): a callee must get REGISTERED before the first INVOCATION for it, and a
    /// call routed right after the change would otherwise overtake the confirmation in the
    /// callee's outbox (clients such as Autobahn|JS fail the session on an INVOCATION for a
    /// registration they do not know yet). It must not block: queue the message and return.
    pub(super) fn register(
        &self,
        callee: &Peer,
        procedure: Uri,
        policy: UriMatch,
        invoke: InvokePolicy,
        confirm: impl FnOnce(Id),
    ) -> Result<(Id, bool), CallError> {
        let mut state = write(&self.state);
        if let Some(existing) = state.registrations.get(&procedure, policy).cloned() {
            if existing.invoke == InvokePolicy::Single || existing.invoke != invoke {
                let uri = if existing.invoke != invoke {
                    errors::PROCEDURE_EXISTS_WITH_DIFFERENT_INVOCATION_POLICY
                } else {
                    errors::PROCEDURE_ALREADY_EXISTS
                };
                return Err(CallError::new(
                    uri,
                    format!(
                        "procedure {procedure} ({}) is already registered",
                        policy.as_str()
                    ),
                ));
            }
            if existing.callees.contains(callee) {
                return Err(CallError::new(
                    errors::PROCEDURE_ALREADY_EXISTS,
                    format!("this session already registered {procedure}"),
                ));
            }
            let mut joined = (*existing).clone();
            joined.callees.push(callee.clone());
            let joined = Arc::new(joined);
            state.by_id.insert(joined.id, joined.clone());
            state
                .registrations
                .insert(procedure, policy, joined.clone());
            confirm(joined.id);
            return Ok((joined.id, false));
        }
        let reg = Arc::new(Registration {
            id: self.ids.next_id(),
            procedure: procedure.clone(),
            policy,
            invoke,
            callees: vec![callee.clone()],
            next: Arc::new(AtomicUsize::new(0)),
        });
        state.by_id.insert(reg.id, reg.clone());
        state.registrations.insert(procedure, policy, reg.clone());
        confirm(reg.id);
        Ok((reg.id, true))
    }

    /// Removes `callee` from registration `id`; deletes the registration with its last callee.
    /// Returns the removed callee and whether the registration was deleted, or `None` when the
    /// session did not hold it.
    ///
    /// `confirm` runs with the removed callee while the registry is still locked: every
    /// INVOCATION routed to it before is queued by then (calls queue under the read lock), so
    /// the UNREGISTERED it queues comes after them. It must not block.
    pub(super) fn unregister(
        &self,
        callee: SessionId,
        id: Id,
        confirm: impl FnOnce(&Peer),
    ) -> Option<(Peer, bool)> {
        let mut state = write(&self.state);
        let reg = state.by_id.get(&id).cloned()?;
        let pos = reg.callees.iter().position(|c| c.id() == callee)?;
        let removed = reg.callees[pos].clone();
        let deleted = reg.callees.len() == 1;
        if deleted {
            state.by_id.remove(&id);
            state.registrations.remove(&reg.procedure, reg.policy);
        } else {
            let mut left = (*reg).clone();
            left.callees.remove(pos);
            let left = Arc::new(left);
            state.by_id.insert(id, left.clone());
            state
                .registrations
                .insert(left.procedure.clone(), left.policy, left);
        }
        confirm(&removed);
        Some((removed, deleted))
    }

    /// Registration ids by match policy (`wamp.registration.list`).
    pub fn ids_by_policy(&self) -> [Vec<Id>; 3] {
        let state = read(&self.state);
        let mut out: [Vec<Id>; 3] = Default::default();
        for reg in state.by_id.values() {
            out[policy_index(reg.policy)].push(reg.id);
        }
        out
    }

    /// The registration of exactly this pattern and policy (`wamp.registration.lookup`).
    pub fn lookup(&self, procedure: &str, policy: UriMatch) -> Option<Id> {
        read(&self.state)
            .registrations
            .get(procedure, policy)
            .map(|r| r.id)
    }

    /// The registration a call to `procedure` would go to (`wamp.registration.match`).
    pub fn matching(&self, procedure: &str) -> Option<Id> {
        read(&self.state)
            .registrations
            .best_match(procedure)
            .map(|(_, _, r)| r.id)
    }

    /// Pattern, policy and invocation policy of registration `id` (`wamp.registration.get`).
    pub fn get(&self, id: Id) -> Option<(Uri, UriMatch, InvokePolicy)> {
        read(&self.state)
            .by_id
            .get(&id)
            .map(|r| (r.procedure.clone(), r.policy, r.invoke))
    }

    /// The callees of registration `id` (`wamp.registration.list_callees`).
    pub fn callees(&self, id: Id) -> Option<Vec<Peer>> {
        read(&self.state).by_id.get(&id).map(|r| r.callees.clone())
    }

    /// Routes a CALL, which came in at `started`, to its callee. `disclose` (the role's
    /// `disclose.caller`, or the caller's `disclose_me`) puts the caller's identity into
    /// INVOCATION.Details. On error the caller gets the returned ERROR.
    #[allow(clippy::too_many_arguments)] // The CALL's fields, and what the session decided.
    pub fn call(
        &self,
        caller: &Peer,
        request: Id,
        options: &Dict,
        procedure: &str,
        payload: &Payload,
        disclose: bool,
        started: Instant,
    ) -> Result<(), CallError> {
        let routed = self.route_call(
            caller, request, options, procedure, payload, disclose, started,
        );
        if routed.is_err() {
            self.stats.call_ended(CallOutcome::Refused, Some(started));
        }
        routed
    }

    #[allow(clippy::too_many_arguments)] // As `call`.
    fn route_call(
        &self,
        caller: &Peer,
        request: Id,
        options: &Dict,
        procedure: &str,
        payload: &Payload,
        disclose: bool,
        started: Instant,
    ) -> Result<(), CallError> {
        // The read lock is held until the INVOCATION is queued: a register or unregister (write
        // lock) queues its REGISTERED or UNREGISTERED either before or after it, so a callee
        // never gets an INVOCATION for a registration it has not heard of or has left.
        let state = read(&self.state);
        // spec, "Pattern-based Registration": exact beats the longest prefix beats wildcard.
        let reg = state
            .registrations
            .best_match(procedure)
            .map(|(_, _, reg)| reg);
        let Some(reg) = reg else {
            return Err(CallError::new(
                errors::NO_SUCH_PROCEDURE,
                format!("no callee registered procedure {procedure}"),
            ));
        };
        // A link's CALL for a session of another router never goes back to where it came from.
        let forwarded = Forwarded::of(options, caller);
        let callee = match &forwarded {
            None => reg.pick(),
            Some(f) => reg.pick_eligible(|c| c != caller && f.may_reach(c)),
        };
        let Some(callee) = callee else {
            return Err(CallError::new(
                errors::NO_SUCH_PROCEDURE,
                format!("no callee for {procedure}"),
            ));
        };
        let flag = |name: &str| {
            options
                .get(name)
                .and_then(switchboard_proto::Value::as_bool)
                .unwrap_or(false)
        };
        // Progressive results only when both ends can take part (spec, "Progressive Call Results").
        let progressive =
            flag("receive_progress") && callee.features().callee_progressive_call_results;
        let invocation_id = callee.add_pending_invocation(PendingInvocation {
            caller: caller.clone(),
            call_request: request,
            progressive,
            started: Some(started),
        });
        let timeout = options
            .get("timeout")
            .and_then(switchboard_proto::Value::as_u64)
            .unwrap_or(0);
        let mut details = if callee.link().is_some() {
            // A link passes the call on, with who called and what is left of its timeout.
            let mut d = link_details(Some(caller), forwarded.as_ref(), "caller", disclose);
            if timeout > 0 {
                d.insert("timeout".into(), timeout.into());
            }
            d
        } else if let Some(f) = forwarded.as_ref().filter(|_| disclose) {
            let mut d = f.identity_details("caller");
            d.insert("forward_for".into(), f.hops());
            d
        } else if disclose || callee.identity().sees_callers {
            identity_details(caller, "caller")
        } else {
            Dict::new()
        };
        // The callee of a pattern-based registration learns which procedure was called.
        if reg.policy != UriMatch::Exact {
            details.insert("procedure".into(), procedure.into());
        }
        if progressive {
            details.insert("receive_progress".into(), true.into());
        }
        copy_passthru(options, &mut details);
        // spec, "Progressive Call Invocations": later chunks carry the first CALL's details.
        let frozen_details = details.clone();
        if flag("progress") {
            details.insert("progress".into(), true.into());
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
        let progressive_invocation = flag("progress");
        if progressive_invocation && !callee.features().callee_progressive_call_invocations {
            return failed(CallError::new(
                errors::FEATURE_NOT_SUPPORTED,
                "the callee does not support progressive call invocations",
            ));
        }
        caller.track_call(
            request,
            CallInFlight {
                callee: callee.clone(),
                invocation: invocation_id,
                registration: reg.id,
                open_progressive: progressive_invocation.then(|| frozen_details.clone()),
            },
        );
        if let Err(SendError::Closed | SendError::Full) = callee.send(bytes) {
            caller.untrack_call(request);
            return failed(CallError::new(
                errors::CANCELED,
                "the callee cannot take the call (it left or cannot keep up)",
            ));
        }
        // spec, "Call Timeouts": the dealer cancels the call when `timeout` ms pass first.
        let timed = (timeout > 0).then(|| (callee.clone(), self.stats.clone()));
        drop(state);
        if let Some((callee, stats)) = timed {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(timeout)).await;
                if callee.has_pending_invocation(invocation_id) {
                    cancel_invocation(
                        &callee,
                        invocation_id,
                        CancelMode::KillNoWait,
                        errors::TIMEOUT,
                        &stats,
                    );
                }
            });
        }
        Ok(())
    }

    /// Handles CANCEL from `caller` for its CALL `request`. A call that already ended is ignored.
    pub fn cancel(&self, caller: &Peer, request: Id, mode: CancelMode) {
        let Some(call) = caller.untrack_call(request) else {
            return;
        };
        let (callee, invocation) = (call.callee.clone(), call.invocation);
        if mode == CancelMode::Kill {
            // The call stays tracked: the callee's answer still ends it.
            caller.track_call(request, call);
        }
        cancel_invocation(&callee, invocation, mode, errors::CANCELED, &self.stats);
    }

    /// Routes a later chunk of an open progressive call invocation (a CALL whose request id names
    /// a call in flight) to the same callee and invocation. `Err` when there is nothing open under
    /// that request id (a protocol violation by the caller).
    pub fn continue_call(
        &self,
        caller: &Peer,
        request: Id,
        options: &Dict,
        payload: &Payload,
    ) -> Result<(), String> {
        let Some(call) = caller.call_in_flight(request) else {
            return Err(format!("CALL {request} continues no call in flight"));
        };
        let Some(frozen) = call.open_progressive.clone() else {
            return Err(format!(
                "CALL {request} reuses the request id of a call in flight"
            ));
        };
        let more = options
            .get("progress")
            .and_then(switchboard_proto::Value::as_bool)
            .unwrap_or(false);
        let mut details = frozen;
        if more {
            details.insert("progress".into(), true.into());
        } else {
            // The final chunk: the call stays in flight until its result, but is closed to chunks.
            caller.track_call(
                request,
                CallInFlight {
                    open_progressive: None,
                    ..call.clone()
                },
            );
        }
        send_to(
            &call.callee,
            Message::Invocation {
                request: call.invocation,
                registration: call.registration,
                details,
                payload: payload.clone(),
            },
        );
        Ok(())
    }

    /// Handles YIELD from `callee`: the result goes to the caller; a progressive one
    /// (`progress: true`, when the caller asked for it) leaves the call open.
    pub fn handle_yield(&self, callee: &Peer, request: Id, options: &Dict, payload: Payload) {
        let progress = options
            .get("progress")
            .and_then(switchboard_proto::Value::as_bool)
            .unwrap_or(false);
        // A progressive result leaves the call open, when its caller asked for them; any other
        // ends it.
        let open = if progress {
            callee.progress_pending_invocation(request)
        } else {
            None
        };
        let (caller, call_request, progressive_result) = match open {
            Some((caller, call_request, started)) => {
                if let Some(started) = started {
                    self.stats.call_answered(started);
                }
                (caller, call_request, true)
            }
            None => match callee.take_pending_invocation(request) {
                Some(p) => {
                    p.caller.untrack_call(p.call_request);
                    self.stats.call_ended(CallOutcome::Ok, p.started);
                    (p.caller, p.call_request, false)
                }
                None => {
                    // The call ended first (canceled, timed out, or its caller left).
                    tracing::debug!(
                        session = callee.id().0,
                        request,
                        "YIELD for no pending invocation"
                    );
                    return;
                }
            },
        };
        let mut details = Dict::new();
        if progressive_result {
            details.insert("progress".into(), true.into());
        }
        copy_passthru(options, &mut details);
        let result = Message::Result {
            request: call_request,
            details,
            payload,
        };
        let reply = match codec::encode(caller.serializer(), &result) {
            Ok(b) if caller.accepts_len(b.len()) => Some(b),
            Ok(_) => encode_or_log(
                &caller,
                CallError::new(
                    errors::PAYLOAD_SIZE_EXCEEDED,
                    "the result is larger than the caller accepts",
                )
                .to_message(call_request, caller.serializer()),
            ),
            Err(e) => encode_or_log(
                &caller,
                CallError::new(
                    errors::INVALID_ARGUMENT,
                    format!("the result cannot be converted for the caller: {e}"),
                )
                .to_message(call_request, caller.serializer()),
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
        caller.untrack_call(pending.call_request);
        self.stats.call_ended(CallOutcome::Error, pending.started);
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

    /// A session left (its registrations are already gone): fail the calls it owed an answer to
    /// (as callee), and withdraw the calls it was waiting for (as caller).
    pub(super) fn session_left(&self, peer: &Peer) {
        for (_, pending) in peer.drain_pending_invocations() {
            let caller = &pending.caller;
            caller.untrack_call(pending.call_request);
            self.stats
                .call_ended(CallOutcome::Canceled, pending.started);
            send_to(
                caller,
                CallError::new(errors::CANCELED, "callee disconnected from in-flight call")
                    .to_message(pending.call_request, caller.serializer()),
            );
        }
        for CallInFlight {
            callee, invocation, ..
        } in peer.drain_calls()
        {
            if callee.take_pending_invocation(invocation).is_some()
                && callee.features().callee_call_canceling
            {
                let mut options = Dict::new();
                options.insert("mode".into(), "killnowait".into());
                options.insert("reason".into(), errors::CANCELED.into());
                send_to(
                    &callee,
                    Message::Interrupt {
                        request: invocation,
                        options,
                    },
                );
            }
        }
    }

    /// The router is shutting down and `callee` did not answer in time: each call it owes an answer
    /// to fails for its caller with ERROR `wamp.error.canceled`, and the callee gets INTERRUPT
    /// (when it handles them). Returns how many calls were cut off.
    pub(super) fn cut_off(&self, callee: &Peer) -> usize {
        let pending = callee.drain_pending_invocations();
        for (invocation, p) in &pending {
            p.caller.untrack_call(p.call_request);
            self.stats.call_ended(CallOutcome::Canceled, p.started);
            send_to(
                &p.caller,
                CallError::new(
                    errors::CANCELED,
                    "the router shut down before the callee answered",
                )
                .to_message(p.call_request, p.caller.serializer()),
            );
            if callee.features().callee_call_canceling {
                let mut options = Dict::new();
                options.insert("mode".into(), CancelMode::KillNoWait.as_str().into());
                options.insert("reason".into(), errors::CANCELED.into());
                send_to(
                    callee,
                    Message::Interrupt {
                        request: *invocation,
                        options,
                    },
                );
            }
        }
        pending.len()
    }

    /// How many registrations exist.
    pub fn registration_count(&self) -> usize {
        read(&self.state).by_id.len()
    }
}
