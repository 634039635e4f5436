//! [`Peer`]: the handle through which other tasks reach a session, and its bounded outbox. The
//! ground floor of the router: broker, dealer, realm and sessions all hold peers, and this module
//! imports none of them.
//!
//! A session's own task owns its socket and its private state. Everything another task may do to it
//! goes through this handle: enqueue an already-encoded message into its outbox, or (for the dealer)
//! record an invocation the session owes an answer to.
//!
//! # Outbox policy
//! The outbox holds [`OUTBOX_CAPACITY_MESSAGES`] messages. A session whose outbox is full is not
//! keeping up with what it asked for (events of its subscriptions, invocations of its registrations,
//! results of its calls). The router then treats it as a slow consumer: the message is not queued, the
//! session is marked, and its task closes it with ABORT `wamp.close.slow_consumer` as soon as it runs.
//! Its pending calls fail as for any callee that leaves (a router link is the one exception: events
//! to it are dropped and counted, `Peer::send_event_to_link`). Nothing is dropped silently from a session
//! that stays connected, and one slow session never blocks the publisher or anyone else.
//!
//! # Traffic counters
//! Each session counts its messages and bytes both ways, for the management API's session list.
//! What it receives is counted by its own task, the only writer, with a plain load and store (no
//! locked read-modify-write); what it is sent is counted in [`Peer::send`], where many tasks may
//! write, with a relaxed atomic add. Neither takes a lock or allocates.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures::task::AtomicWaker;
use switchboard_proto::ids::IdSequence;
use switchboard_proto::{Id, Serializer};
use tokio::sync::Notify;

use crate::locks::lock;

/// How many encoded messages a session's outbox holds before the session counts as a slow consumer.
pub const OUTBOX_CAPACITY_MESSAGES: usize = 4096;

/// A session id (global scope, random).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub Id);

/// Why a message could not be queued for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The session is gone.
    Closed,
    /// The outbox is full: the session is now marked as a slow consumer and will be closed.
    Full,
}

/// Why another task ended a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEnd {
    /// Its outbox overflowed.
    SlowConsumer,
    /// The meta API killed it.
    Killed {
        /// GOODBYE reason.
        reason: String,
        /// Message for GOODBYE.Details.
        message: Option<String>,
    },
}

/// A call this session (as callee) has been invoked for and not yet answered.
#[derive(Debug)]
pub struct PendingInvocation {
    /// The calling session.
    pub caller: Peer,
    /// The caller's CALL.Request id.
    pub call_request: Id,
    /// Whether the caller asked for progressive results (`receive_progress`).
    pub progressive: bool,
    /// When the CALL came in, until the caller has its first answer (for the call duration
    /// metric: a progressive result takes it, so later ones do not count again).
    pub started: Option<Instant>,
}

/// The Advanced Profile features a client announced in HELLO that the router acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientFeatures {
    /// The callee handles INTERRUPT (`roles.callee.features.call_canceling`).
    pub callee_call_canceling: bool,
    /// The callee can send progressive results (`roles.callee.features.progressive_call_results`).
    pub callee_progressive_call_results: bool,
    /// The callee takes progressive call invocations (and call canceling, which they require).
    pub callee_progressive_call_invocations: bool,
    /// The caller may send progressive call invocations.
    pub caller_progressive_call_invocations: bool,
}

/// A call this session (as caller) has in flight, and where it went.
#[derive(Debug, Clone)]
pub struct CallInFlight {
    /// The callee.
    pub callee: Peer,
    /// INVOCATION.Request id on the callee.
    pub invocation: Id,
    /// The registration it went to.
    pub registration: Id,
    /// While a progressive call invocation is open: the INVOCATION.Details of the initiating CALL,
    /// which every later chunk carries too (spec: options are frozen by the first CALL).
    pub open_progressive: Option<switchboard_proto::Dict>,
}

/// Who a session is, as other sessions see it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The session id.
    pub session: SessionId,
    /// The authenticated id (for anonymous sessions, a random string).
    pub authid: String,
    /// The role the session was admitted with.
    pub authrole: String,
    /// How it authenticated (`anonymous`, `ticket`, `wampcra`, ...).
    pub authmethod: &'static str,
    /// Who vouched for it (`static`, `dynamic`, `jwt`, `cookie`).
    pub authprovider: &'static str,
    /// Whether INVOCATIONs to it always name the caller: a trusted in-process bridge, or a link.
    pub sees_callers: bool,
    /// Whether it is a listed session (`realm::Visibility::Listed`): not one of the router's
    /// own hidden sessions.
    pub listed: bool,
    /// Set when the session is one end of a router link (its role may link): it may send
    /// `forward_for`, and it always learns who published or called.
    pub link: Option<Arc<LinkPeer>>,
}

/// What the router knows of a session that is one end of a router-to-router link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkPeer {
    /// The node id of the router at the other end of the link (empty when it did not say): what
    /// the router tags the link's `forward_for` hops with, and never sends a message back to.
    pub node: String,
    /// Whether the link carries traffic that came over other links (`tree` mode); a `mesh` link
    /// carries only its own router's clients' traffic.
    pub relay: bool,
    /// Whether the other side shares this router's session ids (a node of the same cluster),
    /// so that an `eligible` list of session ids may name sessions there.
    pub shares_session_ids: bool,
}

/// Where a session's messages come from: the connection, or the router's own process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// `websocket`, `rawsocket`, `longpoll`, or `inprocess` for a session in the router's process.
    pub transport: &'static str,
    /// The client's address (TCP only).
    pub peer_addr: Option<SocketAddr>,
}

impl Connection {
    /// A session in the router's own process (a component, a bridge, a link's local end).
    pub const IN_PROCESS: Connection = Connection {
        transport: "inprocess",
        peer_addr: None,
    };
}

/// What a session received: written by its own task only (see the module docs).
#[derive(Debug, Default)]
struct Received {
    messages: AtomicU64,
    bytes: AtomicU64,
    /// When the last one came, in nanoseconds since the session joined.
    last_nanos: AtomicU64,
}

/// What other tasks queued for a session: written by any task.
#[derive(Debug, Default)]
struct Sent {
    messages: AtomicU64,
    bytes: AtomicU64,
}

/// A session's traffic and times, for the session list (read at any time, a field at a time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Messages the session sent to the router (HELLO and AUTHENTICATE not counted).
    pub messages_in: u64,
    /// Messages queued for the session (WELCOME and a session's last words not counted).
    pub messages_out: u64,
    /// Bytes of `messages_in`, as encoded on the wire (without transport framing).
    pub bytes_in: u64,
    /// Bytes of `messages_out`, as encoded.
    pub bytes_out: u64,
    /// Messages in the session's outbox now, not yet written to it.
    pub outbox: usize,
    /// When the session joined.
    pub joined: SystemTime,
    /// When its last message came in (when it joined, before the first).
    pub last_activity: SystemTime,
}

#[derive(Debug)]
struct PeerInner {
    identity: Identity,
    connection: Connection,
    /// When the session joined, by the wall clock (shown) and the monotonic one (the base of
    /// `received.last_nanos`).
    joined: (SystemTime, Instant),
    received: Received,
    sent: Sent,
    features: ClientFeatures,
    /// Calls this session (as caller) has in flight: CALL.Request id -> (callee, INVOCATION.Request
    /// id), for CANCEL. Inserted by this session's task, removed by whoever ends the call.
    calls_in_flight: Mutex<HashMap<Id, CallInFlight>>,
    serializer: Serializer,
    max_message_bytes: Option<usize>,
    outbox: OutboxQueue,
    slow: AtomicBool,
    /// Set by `kill`: the GOODBYE reason and message the session ends with.
    killed: Mutex<Option<(String, Option<String>)>>,
    /// Set with `killed`, so that a lock-free check can tell (see [`Peer::is_ended`]).
    kill_requested: AtomicBool,
    wake: Notify,
    invocation_ids: IdSequence,
    /// Invocations sent to this session, by INVOCATION.Request id. Locked briefly by the caller's
    /// task (insert) and this session's task (remove on YIELD/ERROR); never across an await.
    pending_invocations: Mutex<HashMap<Id, PendingInvocation>>,
    dropped: AtomicU64,
    /// Bumped to invalidate the session's cached dynamic authorization decisions.
    authorization_epoch: AtomicU64,
}

/// A cheap, clonable handle to a session. Equality is by session id.
#[derive(Debug, Clone)]
pub struct Peer {
    inner: Arc<PeerInner>,
}

impl PartialEq for Peer {
    fn eq(&self, other: &Self) -> bool {
        self.inner.identity.session == other.inner.identity.session
    }
}
impl Eq for Peer {}

/// A queue of at most this many messages that was emptied gives its memory back (one that grew
/// in a burst would otherwise keep it for as long as the session lasts).
const OUTBOX_SHRINK_ABOVE_MESSAGES: usize = 256;

/// The queue between a peer's handles (any task may push) and its session's task (the one
/// reader): a locked `VecDeque` and the reader's waker.
///
/// Not a tokio channel: a bounded tokio channel allocates a block of 32 slots (1 KiB of `Bytes`)
/// when it is made, most of an idle session's outbox, while an empty `VecDeque` allocates
/// nothing. Each lock is held for one push or pop, by the one sending task and the reader.
#[derive(Debug)]
struct OutboxQueue {
    queued: Mutex<Queued>,
    /// How many messages `queued` holds, stored under its lock: the reader looks at it without
    /// locking, which makes finding the outbox empty (every poll of an idle outbox, and the end
    /// of every written batch) cost one atomic load.
    len: AtomicUsize,
    reader: AtomicWaker,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Queued {
    messages: VecDeque<Bytes>,
    /// The reader is gone: nothing is queued any more.
    closed: bool,
}

impl OutboxQueue {
    fn new(capacity: usize) -> Self {
        Self {
            queued: Mutex::new(Queued::default()),
            len: AtomicUsize::new(0),
            reader: AtomicWaker::new(),
            capacity,
        }
    }

    fn push(&self, msg: Bytes) -> Result<(), SendError> {
        {
            let mut queued = lock(&self.queued);
            if queued.closed {
                return Err(SendError::Closed);
            }
            if queued.messages.len() >= self.capacity {
                return Err(SendError::Full);
            }
            queued.messages.push_back(msg);
            self.len.store(queued.messages.len(), Ordering::Release);
        }
        // After the length is stored: a reader that found the outbox empty has registered its
        // waker by now, or will see the length when it looks again after registering.
        self.reader.wake();
        Ok(())
    }

    fn pop(&self) -> Option<Bytes> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut queued = lock(&self.queued);
        let msg = queued.messages.pop_front();
        self.len.store(queued.messages.len(), Ordering::Release);
        if queued.messages.is_empty() && queued.messages.capacity() > OUTBOX_SHRINK_ABOVE_MESSAGES {
            queued.messages = VecDeque::new();
        }
        msg
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

/// The reading side of a peer's outbox, held by the session's own task. Dropping it closes the
/// outbox: what was queued is dropped, and sending fails with [`SendError::Closed`].
pub struct Outbox {
    peer: Arc<PeerInner>,
}

impl Outbox {
    /// The next queued message, without waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.peer.outbox.pop()
    }

    /// The next queued message. Cancel-safe: nothing is taken unless it returns.
    pub async fn recv(&mut self) -> Bytes {
        std::future::poll_fn(|cx| {
            if let Some(msg) = self.try_recv() {
                return std::task::Poll::Ready(msg);
            }
            self.peer.outbox.reader.register(cx.waker());
            // A message pushed after the first look found no waker to wake: look again.
            match self.try_recv() {
                Some(msg) => std::task::Poll::Ready(msg),
                None => std::task::Poll::Pending,
            }
        })
        .await
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut queued = lock(&self.peer.outbox.queued);
        queued.closed = true;
        queued.messages = VecDeque::new();
        self.peer.outbox.len.store(0, Ordering::Release);
    }
}

impl Peer {
    /// A handle and its outbox for a newly established session.
    pub fn new(
        identity: Identity,
        connection: Connection,
        features: ClientFeatures,
        serializer: Serializer,
        max_message_bytes: Option<usize>,
        capacity: usize,
    ) -> (Peer, Outbox) {
        let peer = Peer {
            inner: Arc::new(PeerInner {
                identity,
                connection,
                joined: (SystemTime::now(), Instant::now()),
                received: Received::default(),
                sent: Sent::default(),
                features,
                calls_in_flight: Mutex::new(HashMap::new()),
                serializer,
                max_message_bytes,
                outbox: OutboxQueue::new(capacity),
                slow: AtomicBool::new(false),
                killed: Mutex::new(None),
                kill_requested: AtomicBool::new(false),
                wake: Notify::new(),
                invocation_ids: IdSequence::new(),
                pending_invocations: Mutex::new(HashMap::new()),
                authorization_epoch: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }),
        };
        let outbox = Outbox {
            peer: peer.inner.clone(),
        };
        (peer, outbox)
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        self.inner.identity.session
    }

    /// Who the session is.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// Where the session's messages come from.
    pub fn connection(&self) -> Connection {
        self.inner.connection
    }

    /// Counts a message of `len` bytes the session sent, which came in at `at`. Called by the
    /// session's own task only: the counters have no other writer, so a plain load and store do
    /// (see the module docs).
    #[inline]
    pub fn count_received(&self, len: usize, at: Instant) {
        let received = &self.inner.received;
        let add = |counter: &AtomicU64, n: u64| {
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        };
        add(&received.messages, 1);
        add(&received.bytes, len as u64);
        let since_joined = at.saturating_duration_since(self.inner.joined.1);
        received.last_nanos.store(
            u64::try_from(since_joined.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// How long the session has been joined.
    pub fn lasted(&self) -> std::time::Duration {
        self.inner.joined.1.elapsed()
    }

    /// The session's traffic so far.
    pub fn traffic(&self) -> Traffic {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (joined, _) = self.inner.joined;
        Traffic {
            messages_in: load(&self.inner.received.messages),
            messages_out: load(&self.inner.sent.messages),
            bytes_in: load(&self.inner.received.bytes),
            bytes_out: load(&self.inner.sent.bytes),
            outbox: self.inner.outbox.len(),
            joined,
            last_activity: joined
                + std::time::Duration::from_nanos(load(&self.inner.received.last_nanos)),
        }
    }

    /// Counts a message queued for the session.
    #[inline]
    fn count_sent(&self, len: usize) {
        let sent = &self.inner.sent;
        sent.messages.fetch_add(1, Ordering::Relaxed);
        sent.bytes.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// The link this session is one end of, if it is a link.
    pub fn link(&self) -> Option<&LinkPeer> {
        self.inner.identity.link.as_deref()
    }

    /// The serializer the session speaks.
    pub fn serializer(&self) -> Serializer {
        self.inner.serializer
    }

    /// Whether a message of `len` bytes fits what the peer accepts.
    pub fn accepts_len(&self, len: usize) -> bool {
        self.inner.max_message_bytes.is_none_or(|max| len <= max)
    }

    /// Queues an encoded message without waiting. On a full outbox, applies the slow-consumer policy
    /// (see the module docs).
    pub fn send(&self, msg: Bytes) -> Result<(), SendError> {
        let len = msg.len();
        match self.inner.outbox.push(msg) {
            Ok(()) => {
                self.count_sent(len);
                Ok(())
            }
            Err(SendError::Closed) => Err(SendError::Closed),
            Err(SendError::Full) => {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                if !self.inner.slow.swap(true, Ordering::AcqRel) {
                    tracing::warn!(session = self.id().0, "outbox full: closing slow consumer");
                }
                self.inner.wake.notify_one();
                Err(SendError::Full)
            }
        }
    }

    /// Queues an EVENT for a router link: where the outbox is full the event is dropped and
    /// counted, and the link stays (a link is many subscribers' route: closing it would lose
    /// every route through it, not one event; WAMP events are at most once anyway).
    /// [`SendError::Full`] when the event was dropped, [`SendError::Closed`] when the session is
    /// gone.
    pub fn send_event_to_link(&self, msg: Bytes) -> Result<(), SendError> {
        let len = msg.len();
        match self.inner.outbox.push(msg) {
            Ok(()) => {
                self.count_sent(len);
                Ok(())
            }
            Err(SendError::Closed) => Err(SendError::Closed),
            Err(SendError::Full) => {
                let before = self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                if before.is_power_of_two() || before == 0 {
                    tracing::warn!(
                        session = self.id().0,
                        dropped = before + 1,
                        "the link does not keep up: events to it dropped"
                    );
                }
                Err(SendError::Full)
            }
        }
    }

    /// Whether the session was marked as a slow consumer.
    pub fn is_slow(&self) -> bool {
        self.inner.slow.load(Ordering::Acquire)
    }

    /// Ends the session from outside (`wamp.session.kill`): its task says GOODBYE with `reason`.
    ///
    /// Besides waking [`Self::ended`], this queues an empty message: a reader that waits on the
    /// outbox alone (an in-process session) wakes up and checks [`Self::is_ended`]. Readers of the
    /// outbox skip empty messages. (A full outbox needs no wake-up call: its reader has work.)
    pub fn kill(&self, reason: &str, message: Option<String>) {
        *lock(&self.inner.killed) = Some((reason.to_owned(), message));
        self.inner.kill_requested.store(true, Ordering::Release);
        self.inner.wake.notify_one();
        let _ = self.inner.outbox.push(Bytes::new());
    }

    /// Whether another task ended the session (slow consumer or kill), without waiting or locking:
    /// [`Self::ended`] then completes at once and says how.
    pub fn is_ended(&self) -> bool {
        self.is_slow() || self.inner.kill_requested.load(Ordering::Acquire)
    }

    /// Completes when another task ended the session: marked as a slow consumer, or killed (used by
    /// the session's own task).
    pub async fn ended(&self) -> PeerEnd {
        loop {
            let notified = self.inner.wake.notified();
            if self.is_slow() {
                return PeerEnd::SlowConsumer;
            }
            if let Some((reason, message)) = lock(&self.inner.killed).take() {
                return PeerEnd::Killed { reason, message };
            }
            notified.await;
        }
    }

    /// Records an invocation this session must answer and returns its INVOCATION.Request id.
    pub fn add_pending_invocation(&self, pending: PendingInvocation) -> Id {
        let id = self.inner.invocation_ids.next_id();
        self.pending_invocations().insert(id, pending);
        id
    }

    /// Takes the pending invocation `id`, if this session owes an answer to it.
    pub fn take_pending_invocation(&self, id: Id) -> Option<PendingInvocation> {
        self.pending_invocations().remove(&id)
    }

    /// Whether the invocation `id` is still pending.
    pub fn has_pending_invocation(&self, id: Id) -> bool {
        self.pending_invocations().contains_key(&id)
    }

    /// For a progressive result: the pending invocation `id`'s caller, call request and (the
    /// first time) when the CALL came in, leaving it pending. `None` when it is not pending, or
    /// its caller did not ask for progressive results (the result then ends the call).
    pub fn progress_pending_invocation(&self, id: Id) -> Option<(Peer, Id, Option<Instant>)> {
        self.pending_invocations()
            .get_mut(&id)
            .filter(|p| p.progressive)
            .map(|p| (p.caller.clone(), p.call_request, p.started.take()))
    }

    /// The Advanced Profile features the client announced.
    pub fn features(&self) -> ClientFeatures {
        self.inner.features
    }

    /// Records a call this session made, for CANCEL and progressive call invocations.
    pub fn track_call(&self, request: Id, call: CallInFlight) {
        lock(&self.inner.calls_in_flight).insert(request, call);
    }

    /// The call in flight under `request`, if any.
    pub fn call_in_flight(&self, request: Id) -> Option<CallInFlight> {
        lock(&self.inner.calls_in_flight).get(&request).cloned()
    }

    /// Forgets a call this session made (it ended); returns where it went.
    pub fn untrack_call(&self, request: Id) -> Option<CallInFlight> {
        lock(&self.inner.calls_in_flight).remove(&request)
    }

    /// Forgets every call this session made (it is leaving).
    pub fn drain_calls(&self) -> Vec<CallInFlight> {
        lock(&self.inner.calls_in_flight)
            .drain()
            .map(|(_, v)| v)
            .collect()
    }

    /// The current authorization epoch: cached dynamic decisions made in an earlier epoch are stale.
    pub fn authorization_epoch(&self) -> u64 {
        self.inner.authorization_epoch.load(Ordering::Acquire)
    }

    /// Makes every cached dynamic authorization decision of this session stale.
    pub fn invalidate_authorization(&self) {
        self.inner
            .authorization_epoch
            .fetch_add(1, Ordering::AcqRel);
    }

    /// How many invocations this session owes an answer to.
    pub fn pending_invocation_count(&self) -> usize {
        self.pending_invocations().len()
    }

    /// Takes every pending invocation, with its INVOCATION.Request id (the session is leaving, or
    /// the router is shutting down).
    pub fn drain_pending_invocations(&self) -> Vec<(Id, PendingInvocation)> {
        self.pending_invocations().drain().collect()
    }

    fn pending_invocations(&self) -> std::sync::MutexGuard<'_, HashMap<Id, PendingInvocation>> {
        lock(&self.inner.pending_invocations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(capacity: usize) -> (Peer, Outbox) {
        let identity = Identity {
            session: SessionId(1),
            authid: "a".into(),
            authrole: "anonymous".into(),
            authmethod: "anonymous",
            authprovider: "static",
            sees_callers: false,
            listed: true,
            link: None,
        };
        Peer::new(
            identity,
            Connection::IN_PROCESS,
            ClientFeatures::default(),
            Serializer::Json,
            None,
            capacity,
        )
    }

    #[test]
    fn full_outbox_marks_the_session_slow_instead_of_blocking() {
        let (p, _outbox) = peer(2);
        assert_eq!(p.send(Bytes::from_static(b"1")), Ok(()));
        assert_eq!(p.send(Bytes::from_static(b"2")), Ok(()));
        assert!(!p.is_slow());
        assert_eq!(p.send(Bytes::from_static(b"3")), Err(SendError::Full));
        assert!(p.is_slow());
    }

    #[test]
    fn traffic_counts_both_ways_and_the_outbox_depth() {
        let (p, mut outbox) = peer(4);
        let joined = p.traffic().joined;
        assert_eq!(p.traffic().last_activity, joined);
        p.send(Bytes::from_static(b"12345")).unwrap();
        p.send_event_to_link(Bytes::from_static(b"123")).unwrap();
        let later = p.inner.joined.1 + std::time::Duration::from_millis(1500);
        p.count_received(10, later);
        p.count_received(7, later);
        let t = p.traffic();
        assert_eq!((t.messages_out, t.bytes_out, t.outbox), (2, 8, 2));
        assert_eq!((t.messages_in, t.bytes_in), (2, 17));
        assert_eq!(
            t.last_activity.duration_since(joined).unwrap(),
            std::time::Duration::from_millis(1500)
        );
        outbox.try_recv().unwrap();
        assert_eq!(p.traffic().outbox, 1);
    }

    #[test]
    fn a_progressive_result_takes_the_start_of_the_call_once() {
        let (callee, _o1) = peer(2);
        let (caller, _o2) = peer(2);
        let started = Instant::now();
        let id = callee.add_pending_invocation(PendingInvocation {
            caller,
            call_request: 7,
            progressive: true,
            started: Some(started),
        });
        let first = callee
            .progress_pending_invocation(id)
            .map(|(_, r, s)| (r, s));
        assert_eq!(first, Some((7, Some(started))));
        let second = callee
            .progress_pending_invocation(id)
            .map(|(_, r, s)| (r, s));
        assert_eq!(second, Some((7, None)));
        assert!(
            callee
                .take_pending_invocation(id)
                .is_some_and(|p| p.started.is_none())
        );
    }

    #[tokio::test]
    async fn the_outbox_reader_wakes_for_a_message_sent_while_it_waits() {
        let (p, mut outbox) = peer(8);
        let reader = tokio::spawn(async move { outbox.recv().await });
        tokio::task::yield_now().await;
        p.send(Bytes::from_static(b"late")).unwrap();
        assert_eq!(reader.await.unwrap(), Bytes::from_static(b"late"));
    }

    #[test]
    fn an_outbox_keeps_its_order_and_gives_back_a_burst_s_memory() {
        let (p, mut outbox) = peer(4096);
        // An idle session's outbox allocates nothing.
        assert_eq!(lock(&p.inner.outbox.queued).messages.capacity(), 0);
        for i in 0..1000u32 {
            p.send(Bytes::from(i.to_string())).unwrap();
        }
        for i in 0..1000u32 {
            assert_eq!(outbox.try_recv(), Some(Bytes::from(i.to_string())));
        }
        assert_eq!(outbox.try_recv(), None);
        assert_eq!(lock(&p.inner.outbox.queued).messages.capacity(), 0);
    }

    #[test]
    fn a_closed_outbox_drops_what_was_queued() {
        let (p, outbox) = peer(8);
        let msg = Bytes::from(vec![1u8; 100]);
        p.send(msg.clone()).unwrap();
        drop(outbox);
        // Only this test's copy is left: the queue let go of its own.
        assert!(msg.is_unique());
        assert_eq!(p.traffic().outbox, 0);
    }

    #[test]
    fn send_to_a_gone_session_reports_closed() {
        let (p, outbox) = peer(2);
        drop(outbox);
        assert_eq!(p.send(Bytes::from_static(b"1")), Err(SendError::Closed));
    }

    #[test]
    fn pending_invocations_get_distinct_ids_and_are_taken_once() {
        let (callee, _o1) = peer(2);
        let (caller, _o2) = peer(2);
        let a = callee.add_pending_invocation(PendingInvocation {
            caller: caller.clone(),
            call_request: 7,
            progressive: false,
            started: None,
        });
        let b = callee.add_pending_invocation(PendingInvocation {
            caller,
            call_request: 8,
            progressive: false,
            started: None,
        });
        assert_ne!(a, b);
        assert_eq!(
            callee.take_pending_invocation(a).map(|p| p.call_request),
            Some(7)
        );
        assert!(callee.take_pending_invocation(a).is_none());
    }
}
