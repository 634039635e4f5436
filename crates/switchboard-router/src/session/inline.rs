//! An in-process session driven by its own client: the router's side of the session runs inline,
//! on the task of whoever holds this transport (a hosted component's session task), instead of
//! on a task of its own. It is the in-process counterpart of a socket and of [`super::run`].
//!
//! What the client writes is handled at once, by the same code a socket session runs: HELLO by
//! the handshake's `read_hello` and `admit` (with the identity the embedder vouched for instead of
//! authentication), then every message by `Established::decode` and `Established::handle`, so it
//! is authorized, routed and answered exactly as a socket client's. What the client reads is the
//! session's outbox (what the router and other sessions queued for it, already encoded) and the
//! session's last words when the router ends it ([`End::last_words`]: GOODBYE on shutdown or kill,
//! ABORT as a slow consumer). When the session ends for any reason, or the transport is dropped
//! (a client task that panicked), `Established::leave` cleans up as for a socket session.
//!
//! Routing on the sender's task is the router's rule for every session (ARCHITECTURE.md); for an
//! in-process session the sender's task is the client's own, so a call between two in-process
//! sessions crosses one task boundary each way instead of three.

use std::collections::VecDeque;
use std::pin::Pin;

use bytes::Bytes;
use futures::FutureExt as _;
use switchboard_proto::{Message, Serializer, codec};
use switchboard_transport::{Transport, TransportError};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::debug;

use super::established::{End, Established, Flow};
use super::handshake::{Newcomer, admit, read_hello, vouched};
use super::{SessionConfig, TrustedIdentity};
use crate::peer::{Outbox, SessionId};

/// The router's end of an in-process session, handed to the client as its transport.
pub struct InlineSession {
    cfg: SessionConfig,
    serializer: Serializer,
    /// The node's shutdown, waited for across reads (made once: setting up a new wait on every
    /// read costs a lock and a waker registration).
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    state: State,
    /// What the client reads before anything else: WELCOME or ABORT, the session's last words.
    pending: VecDeque<Bytes>,
    /// Makes the node's shutdown wait for this session, as for a session task, until the client
    /// has read the session's last words.
    tracked: Option<TaskTrackerToken>,
}

enum State {
    /// Waiting for HELLO, with the identity the embedder vouched for.
    Hello(Box<TrustedIdentity>),
    /// Joined.
    Established {
        session: Box<Established>,
        outbox: Outbox,
    },
    /// The router said GOODBYE (shutdown, kill) and waits for the client's reply.
    Closing,
    /// Over: the client reads what is pending, then the end of the stream.
    Closed,
}

impl std::fmt::Debug for InlineSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Hello(_) => "hello",
            State::Established { .. } => "established",
            State::Closing => "closing",
            State::Closed => "closed",
        };
        f.debug_struct("InlineSession")
            .field("state", &state)
            .field("pending", &self.pending.len())
            .finish()
    }
}

fn closed() -> TransportError {
    TransportError::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the in-process session is over",
    ))
}

impl InlineSession {
    /// A session to be joined as `identity`, counted by `tracked` among the node's sessions.
    pub fn new(
        cfg: SessionConfig,
        identity: TrustedIdentity,
        serializer: Serializer,
        tracked: TaskTrackerToken,
    ) -> Self {
        Self {
            shutdown: Box::pin(cfg.shutdown.clone().cancelled_owned()),
            cfg,
            serializer,
            state: State::Hello(Box::new(identity)),
            pending: VecDeque::new(),
            tracked: Some(tracked),
        }
    }

    fn queue(&mut self, msg: &Message) {
        match codec::encode(self.serializer, msg) {
            Ok(bytes) => self.pending.push_back(bytes),
            Err(e) => tracing::error!("cannot encode router message: {e}"),
        }
    }

    /// HELLO: joins the realm as the vouched identity, or ABORTs.
    fn hello(&mut self, identity: &TrustedIdentity, bytes: &Bytes) {
        let admitted =
            read_hello(&self.cfg, self.serializer, bytes).and_then(|(realm, details)| {
                let who = vouched(identity, realm.name())?;
                let visibility = identity.visibility;
                admit(
                    &self.cfg,
                    Newcomer {
                        realm,
                        details,
                        session: SessionId(switchboard_proto::ids::random_global_id()),
                        who,
                        conn: None,
                        visibility,
                        serializer: self.serializer,
                        peer_max_message_bytes: None,
                        sees_callers: identity.sees_callers,
                        link: identity.link.clone(),
                    },
                )
            });
        match admitted {
            Ok((joined, welcome)) => {
                self.queue(&welcome);
                let (session, outbox) = Established::new(joined);
                debug!(session = session.peer.id().0, "in-process session joined");
                self.state = State::Established {
                    session: Box::new(session),
                    outbox,
                };
            }
            Err(refusal) => {
                self.queue(&refusal.abort());
                self.state = State::Closed;
            }
        }
    }

    /// Ends the established session: cleans up, and queues its last words for the client.
    fn end(&mut self, end: End) {
        let State::Established {
            mut session,
            mut outbox,
        } = std::mem::replace(&mut self.state, State::Closed)
        else {
            return;
        };
        // Leave the realm first, so nothing new is routed to the session while it closes.
        session.leave();
        if end.delivers_what_is_queued() {
            // What was routed to the session before it left, then its GOODBYE (spec: nothing
            // follows GOODBYE).
            while let Some(m) = outbox.try_recv() {
                if !m.is_empty() {
                    self.pending.push_back(m);
                }
            }
        }
        if let Some(words) = end.last_words() {
            self.queue(&words);
        }
        if matches!(end, End::Shutdown | End::Killed(..)) {
            self.state = State::Closing;
        }
        debug!(
            session = session.peer.id().0,
            "in-process session ended: {end}"
        );
    }
}

impl Transport for InlineSession {
    fn serializer(&self) -> Serializer {
        self.serializer
    }

    fn peer_max_message_bytes(&self) -> Option<usize> {
        None
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                return Ok(Some(bytes));
            }
            let Self {
                state,
                cfg,
                tracked,
                shutdown,
                ..
            } = self;
            let end = match state {
                // Another task ended the session (kill, slow consumer): `ended` says how at once.
                State::Established { session, .. } if session.peer.is_ended() => {
                    match session.peer.ended().now_or_never() {
                        Some(why) => End::from_peer(why),
                        None => End::Dropped,
                    }
                }
                State::Established { outbox, .. } => {
                    // Under load the next message is usually queued already: take it without
                    // setting up the waits below.
                    if !cfg.shutdown.is_cancelled()
                        && let Some(bytes) = outbox.try_recv()
                    {
                        if bytes.is_empty() {
                            continue;
                        }
                        return Ok(Some(bytes));
                    }
                    // Cancel-safe, as `Transport::recv` must be: every branch is, and nothing
                    // awaits after one completes. A kill wakes this wait with an empty message
                    // (`Peer::kill`); a slow consumer's outbox is full, so it never waits here.
                    tokio::select! {
                        biased;
                        _ = shutdown.as_mut() => End::Shutdown,
                        bytes = outbox.recv() => {
                            if bytes.is_empty() {
                                continue;
                            }
                            return Ok(Some(bytes));
                        }
                    }
                }
                // The last words are read: the node need not wait for this session any more.
                State::Closing => {
                    tracked.take();
                    std::future::pending::<()>().await;
                    continue;
                }
                State::Closed => {
                    tracked.take();
                    return Ok(None);
                }
                // Nothing to read before the client's HELLO.
                State::Hello(_) => {
                    std::future::pending::<()>().await;
                    continue;
                }
            };
            self.end(end);
        }
    }

    async fn feed(&mut self, bytes: Bytes) -> Result<(), TransportError> {
        match &mut self.state {
            State::Hello(identity) => {
                let identity = identity.clone();
                self.hello(&identity, &bytes);
            }
            State::Established { session, .. } => {
                let flow = match session.decode(&bytes) {
                    Ok(msg) => Ok(session.handle(msg).await),
                    Err(end) => Err(end),
                };
                match flow {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Goodbye) => self.end(End::Goodbye),
                    Ok(Flow::Violation(text)) => self.end(End::Violation(text)),
                    Err(end) => self.end(end),
                }
            }
            // The client's GOODBYE reply ends the closing handshake; anything else is ignored.
            State::Closing => {
                if let Ok(Message::Goodbye { .. }) = codec::decode(self.serializer, &bytes) {
                    self.state = State::Closed;
                }
            }
            State::Closed => return Err(closed()),
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    async fn close(&mut self) {
        self.end(End::Dropped);
        self.state = State::Closed;
        self.pending.clear();
        self.tracked = None;
    }
}

impl Drop for InlineSession {
    /// A client that goes away without closing (its task panicked, or it was dropped) still leaves
    /// the realm with everything the session held.
    fn drop(&mut self) {
        if let State::Established { session, .. } = &mut self.state {
            session.leave();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use switchboard_proto::ids::IdSequence;
    use switchboard_proto::{Dict, Value, errors};
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::config::RealmConfig;
    use crate::realm::{Realm, RealmRegistry};

    const SERIALIZER: Serializer = Serializer::MsgPack;

    fn realm() -> (Arc<Realm>, SessionConfig) {
        let cfg: RealmConfig = serde_json::from_str(
            r#"{"name": "realm1", "roles": [{"name": "backend", "permissions": [
                {"uri": "com.example.", "match": "prefix", "allow": {"subscribe": true}}]}]}"#,
        )
        .expect("realm config");
        let realm = Arc::new(Realm::new(&cfg, Arc::new(IdSequence::new())));
        let registry = Arc::new(RealmRegistry::new(vec![realm.clone()]));
        (
            realm,
            SessionConfig::new(registry, CancellationToken::new()),
        )
    }

    fn encode(msg: &Message) -> Bytes {
        codec::encode(SERIALIZER, msg).expect("encode")
    }

    async fn read(session: &mut InlineSession) -> Message {
        let bytes = session.recv().await.expect("recv").expect("a message");
        codec::decode(SERIALIZER, &bytes).expect("decode")
    }

    fn hello() -> Message {
        let mut roles = Dict::new();
        roles.insert("subscriber".into(), Value::Dict(Dict::new()));
        let mut details = Dict::new();
        details.insert("roles".into(), Value::Dict(roles));
        Message::Hello {
            realm: "realm1".into(),
            details,
        }
    }

    async fn joined(cfg: SessionConfig, tracker: &TaskTracker) -> InlineSession {
        let identity = TrustedIdentity::new("realm1", "component", "backend");
        let mut session = InlineSession::new(cfg, identity, SERIALIZER, tracker.token());
        session.feed(encode(&hello())).await.expect("hello");
        assert!(matches!(read(&mut session).await, Message::Welcome { .. }));
        session
    }

    #[tokio::test]
    async fn a_dropped_in_process_session_leaves_with_what_it_held() {
        let (realm, cfg) = realm();
        let tracker = TaskTracker::new();
        let mut session = joined(cfg, &tracker).await;
        let subscribe = Message::Subscribe {
            request: 1,
            options: Dict::new(),
            topic: "com.example.news".into(),
        };
        session.feed(encode(&subscribe)).await.expect("subscribe");
        assert!(matches!(
            read(&mut session).await,
            Message::Subscribed { .. }
        ));
        assert_eq!(realm.subscription_count(), 1);
        assert_eq!(realm.session_count(), 1);
        // As when the client's task panics: no GOODBYE, no close.
        drop(session);
        assert_eq!(realm.subscription_count(), 0);
        assert_eq!(realm.session_count(), 0);
        tracker.close();
        assert!(tracker.is_empty(), "the node no longer waits for it");
    }

    #[tokio::test]
    async fn a_denied_action_is_denied_and_a_wrong_realm_is_refused() {
        let (_realm, cfg) = realm();
        let tracker = TaskTracker::new();
        let mut session = joined(cfg.clone(), &tracker).await;
        let register = Message::Register {
            request: 7,
            options: Dict::new(),
            procedure: "com.example.add".into(),
        };
        session.feed(encode(&register)).await.expect("register");
        match read(&mut session).await {
            Message::Error { request, error, .. } => {
                assert_eq!(request, 7);
                assert_eq!(error, errors::NOT_AUTHORIZED);
            }
            other => panic!("expected ERROR, got {other:?}"),
        }

        let identity = TrustedIdentity::new("elsewhere", "component", "backend");
        let mut refused = InlineSession::new(cfg, identity, SERIALIZER, tracker.token());
        refused.feed(encode(&hello())).await.expect("hello");
        assert!(
            matches!(read(&mut refused).await, Message::Abort { reason, .. } if reason == errors::NO_SUCH_REALM)
        );
        assert!(refused.recv().await.expect("recv").is_none());
    }

    #[tokio::test]
    async fn shutdown_says_goodbye_and_waits_for_the_reply() {
        let (realm, cfg) = realm();
        let tracker = TaskTracker::new();
        let shutdown = cfg.shutdown.clone();
        let mut session = joined(cfg, &tracker).await;
        shutdown.cancel();
        match read(&mut session).await {
            Message::Goodbye { reason, .. } => assert_eq!(reason, errors::SYSTEM_SHUTDOWN),
            other => panic!("expected GOODBYE, got {other:?}"),
        }
        assert_eq!(
            realm.session_count(),
            0,
            "it left the realm before saying so"
        );
        let reply = Message::goodbye(errors::GOODBYE_AND_OUT);
        session.feed(encode(&reply)).await.expect("reply");
        assert!(session.recv().await.expect("recv").is_none());
        tracker.close();
        assert!(tracker.is_empty());
    }
}
