//! A realm's counters for the node's metrics: plain atomics bumped where the routing happens (no
//! registry, label lookup or lock per message), read when the metrics are scraped.
//!
//! Relaxed ordering throughout: each counter only ever grows and is read on its own.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use switchboard_proto::{Message, Serializer};

use super::authz::Action;
use crate::locks::lock;

/// The messages a client sends in an established session, as counted (`type` label).
pub const INBOUND_TYPES: [&str; 10] = [
    "publish",
    "subscribe",
    "unsubscribe",
    "call",
    "cancel",
    "register",
    "unregister",
    "yield",
    "error",
    "goodbye",
];

/// How a call ended, for its caller (`outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The callee's final RESULT.
    Ok,
    /// An ERROR from the callee.
    Error,
    /// Refused by the router: no callee, not authorized, a payload it could not pass on.
    Refused,
    /// Canceled by the caller, or its callee left or could not take it.
    Canceled,
    /// The dealer's timeout passed first.
    Timeout,
}

impl CallOutcome {
    /// Every outcome, in label order.
    pub const ALL: [CallOutcome; 5] = [
        CallOutcome::Ok,
        CallOutcome::Error,
        CallOutcome::Refused,
        CallOutcome::Canceled,
        CallOutcome::Timeout,
    ];

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Error => "error",
            CallOutcome::Refused => "refused",
            CallOutcome::Canceled => "canceled",
            CallOutcome::Timeout => "timeout",
        }
    }
}

/// Why the router dropped a message for a session (`reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A subscriber's outbox was full: it is closed as a slow consumer.
    SlowConsumer,
    /// A router link's outbox was full: the event is dropped, the link stays.
    Link,
}

/// A realm's counters.
#[derive(Debug, Default)]
pub struct RealmStats {
    messages_in: [AtomicU64; INBOUND_TYPES.len()],
    events_published: AtomicU64,
    events_delivered: AtomicU64,
    dropped: [AtomicU64; 2],
    calls: [AtomicU64; CallOutcome::ALL.len()],
    denied: [AtomicU64; Action::ALL.len()],
    /// Sessions joined, by authmethod and serializer (a join is rare next to messages: a lock is
    /// fine here, and it keeps the label set to what actually occurs).
    opened: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// HELLOs for the realm whose credentials (or identity) were refused.
    auth_failures: AtomicU64,
}

/// A snapshot of [`RealmStats`], for the metrics page.
#[derive(Debug, Clone, Default)]
pub struct StatsSnapshot {
    /// Inbound messages by [`INBOUND_TYPES`].
    pub messages_in: [u64; INBOUND_TYPES.len()],
    /// PUBLISH messages routed.
    pub events_published: u64,
    /// EVENT messages queued to subscribers.
    pub events_delivered: u64,
    /// Messages dropped: slow consumers, router links.
    pub dropped: [(&'static str, u64); 2],
    /// Calls by [`CallOutcome::ALL`].
    pub calls: [u64; CallOutcome::ALL.len()],
    /// Actions denied by [`Action::ALL`].
    pub denied: [u64; Action::ALL.len()],
    /// Sessions joined by (authmethod, serializer).
    pub opened: Vec<((String, &'static str), u64)>,
    /// HELLOs whose credentials were refused.
    pub auth_failures: u64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl RealmStats {
    /// Counts a message a client sent in an established session (others are not counted).
    #[inline]
    pub fn message_in(&self, msg: &Message) {
        let index = match msg {
            Message::Publish { .. } => 0,
            Message::Subscribe { .. } => 1,
            Message::Unsubscribe { .. } => 2,
            Message::Call { .. } => 3,
            Message::Cancel { .. } => 4,
            Message::Register { .. } => 5,
            Message::Unregister { .. } => 6,
            Message::Yield { .. } => 7,
            Message::Error { .. } => 8,
            Message::Goodbye { .. } => 9,
            _ => return,
        };
        bump(&self.messages_in[index], 1);
    }

    /// Counts one routed publication (a session's, unless `by_session` is false: the router's
    /// own meta events) and the `delivered` EVENTs it queued.
    #[inline]
    pub fn published(&self, by_session: bool, delivered: u64) {
        if by_session {
            bump(&self.events_published, 1);
        }
        if delivered > 0 {
            bump(&self.events_delivered, delivered);
        }
    }

    /// Counts a message dropped for `why`.
    pub fn dropped(&self, why: Dropped) {
        bump(&self.dropped[why as usize], 1);
    }

    /// Counts a call that ended with `outcome`.
    #[inline]
    pub fn call_ended(&self, outcome: CallOutcome) {
        bump(&self.calls[outcome as usize], 1);
    }

    /// Counts an action the session's role was denied.
    pub fn denied(&self, action: Action) {
        bump(&self.denied[action as usize], 1);
    }

    /// Counts a session that joined with `authmethod` over `serializer`.
    pub fn session_opened(&self, authmethod: &str, serializer: Serializer) {
        *lock(&self.opened)
            .entry((authmethod.to_owned(), serializer.name()))
            .or_default() += 1;
    }

    /// Counts a HELLO for the realm whose credentials (or identity) were refused.
    pub fn auth_failed(&self) {
        bump(&self.auth_failures, 1);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            messages_in: self.messages_in.each_ref().map(load),
            events_published: load(&self.events_published),
            events_delivered: load(&self.events_delivered),
            dropped: [
                (
                    "slow_consumer",
                    load(&self.dropped[Dropped::SlowConsumer as usize]),
                ),
                ("link", load(&self.dropped[Dropped::Link as usize])),
            ],
            calls: self.calls.each_ref().map(load),
            denied: self.denied.each_ref().map(load),
            opened: lock(&self.opened)
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            auth_failures: load(&self.auth_failures),
        }
    }
}
