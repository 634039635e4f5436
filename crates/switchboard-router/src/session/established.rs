//! The established session's message loop: reads the peer's messages and hands each to its
//! handler (`handlers`), writes what other sessions queued into its outbox, and ends the session
//! (GOODBYE, ABORT, shutdown, slow consumer, kill) cleaning up everything it held.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt as _;
use switchboard_proto::{Id, Message, MessageType, Uri, codec, errors};
use switchboard_transport::{Transport, TransportError};
use tracing::debug;

use super::authorize::DynamicAuthorization;
use super::handshake::Joined;
use super::procedures::Testament;
use super::{GOODBYE_REPLY_TIMEOUT, SessionConfig, WRITE_BATCH_MESSAGES, send_now};
use crate::delivery::{encode_or_log, error_with_text};
use crate::peer::{self, Peer, PeerEnd};
use crate::realm::authz::{Decision, Role};
use crate::realm::{Realm, Visibility};

/// How the established loop goes on after a message.
pub(super) enum Flow {
    Continue,
    /// The peer said GOODBYE: answer it and close.
    Goodbye,
    /// The peer broke the protocol: ABORT with this text, then close.
    Violation(String),
}

pub(super) struct Established {
    pub(super) realm: Arc<Realm>,
    pub(super) role: Arc<Role>,
    /// The realm's roles epoch `role` was looked up under (see `Realm::replace_roles`).
    pub(super) role_epoch: u64,
    pub(super) peer: Peer,
    /// Whether the realm lists the session (see `Visibility`).
    pub(super) visibility: Visibility,
    /// Subscriptions this session holds, by id (owned by this task).
    pub(super) subscriptions: HashMap<Id, Uri>,
    /// Registrations this session holds (owned by this task).
    pub(super) registrations: HashSet<Id>,
    /// Events to publish when the session ends (`wamp.session.add_testament`).
    pub(super) testaments: Vec<Testament>,
    /// Authorization decisions of this session's role, by URI (owned by this task, so no lock).
    pub(super) authz_cache: HashMap<Uri, Decision>,
    /// What a session whose role has a dynamic authorizer keeps; `None` for every other session,
    /// so they pay one pointer for it.
    pub(super) dynamic: Option<Box<DynamicAuthorization>>,
    /// When the message being handled came in (read once per message: the session's last
    /// activity, and the start of a call's duration).
    pub(super) received_at: Instant,
    /// Whether the message being handled may wait (false while a socket session polls a
    /// statically authorized message once): a cluster-wide meta procedure is then answered by
    /// this node alone rather than ending the session.
    pub(super) may_await: bool,
}

impl Established {
    /// The established state of a session that passed the handshake, and its outbox.
    pub(super) fn new(joined: Joined) -> (Self, peer::Outbox) {
        let Joined {
            realm,
            role,
            role_epoch,
            peer,
            outbox,
            visibility,
            dynamic,
        } = joined;
        let session = Established {
            realm,
            role,
            role_epoch,
            peer,
            visibility,
            subscriptions: HashMap::new(),
            registrations: HashSet::new(),
            authz_cache: HashMap::new(),
            dynamic,
            testaments: Vec::new(),
            received_at: Instant::now(),
            may_await: true,
        };
        (session, outbox)
    }

    /// The socket session's loop: reads and handles the peer's messages, writes its outbox, and
    /// ends the session.
    pub(super) async fn run<T: Transport>(
        &mut self,
        transport: &mut T,
        mut outbox: peer::Outbox,
        cfg: &SessionConfig,
    ) {
        debug!("joined");
        let end = loop {
            tokio::select! {
                biased;
                _ = cfg.shutdown.cancelled() => break End::Shutdown,
                why = self.peer.ended() => break End::from_peer(why),
                first = outbox.recv() => {
                    // A peer that stops reading blocks this write; its outbox then fills up and
                    // marks it slow, which must end the session even mid-write.
                    tokio::select! {
                        written = write_batch(transport, &mut outbox, first) => {
                            if written.is_err() {
                                break End::Dropped;
                            }
                        }
                        _ = self.peer.ended() => break End::SlowConsumerMidWrite,
                    }
                }
                incoming = transport.recv() => match incoming {
                    Ok(Some(bytes)) => {
                        let msg = match self.decode(&bytes) {
                            Ok(m) => m,
                            Err(end) => break end,
                        };
                        // Before the role decides how the message is handled: a reload may have
                        // given it a dynamic authorizer.
                        self.follow_role_changes();
                        let flow = if self.role.authorizer().is_none() && !self.may_wait(&msg) {
                            // A statically authorized message never waits: every await in
                            // `handle` is behind a dynamic authorizer or a session meta
                            // procedure a cluster answers (`may_wait`). Polling it once here, on
                            // the stack, keeps its state out of every session's task (about 400
                            // bytes per session).
                            self.may_await = false;
                            let handled = self.handle(msg).now_or_never();
                            self.may_await = true;
                            match handled {
                                Some(flow) => Ok(flow),
                                None => {
                                    tracing::error!("a statically authorized message waited");
                                    Ok(Flow::Violation("internal error".into()))
                                }
                            }
                        } else {
                            // Boxed: dynamically authorized sessions (and cluster-wide meta
                            // calls) pay for its state, with one allocation per message.
                            Box::pin(self.handle_while_writing(msg, transport, &mut outbox))
                                .await
                        };
                        match flow {
                            Ok(Flow::Continue) => {}
                            Ok(Flow::Goodbye) => break End::Goodbye,
                            Ok(Flow::Violation(text)) => break End::Violation(text),
                            Err(end) => break end,
                        }
                    }
                    Ok(None) => break End::Dropped,
                    Err(e) => break End::TransportError(e),
                },
            }
        };
        // Leave the realm first, so nothing new is routed to us while we close.
        self.leave();
        // Boxed: the last words' state is needed once, at the end, and would otherwise size
        // every session's task for its whole life.
        let last_words = Box::pin(self.say_last_words(transport, &mut outbox, end));
        if tokio::time::timeout(cfg.final_write_timeout + GOODBYE_REPLY_TIMEOUT, last_words)
            .await
            .is_err()
        {
            debug!("peer did not take the session's last words in time");
        }
        let _ = tokio::time::timeout(cfg.final_write_timeout, transport.close()).await;
    }

    /// [`Self::handle`] for a session whose role has a dynamic authorizer: while the message
    /// waits for the authorizer, the session goes on writing what others queued for it, so its
    /// outbox does not fill up (and close it as a slow consumer) behind a slow authorizer. The
    /// session reads nothing meanwhile, which keeps its own messages in order. `Err` when the
    /// connection failed meanwhile.
    async fn handle_while_writing<T: Transport>(
        &mut self,
        msg: Message,
        transport: &mut T,
        outbox: &mut peer::Outbox,
    ) -> Result<Flow, End> {
        let peer = self.peer.clone();
        let handling = self.handle(msg);
        tokio::pin!(handling);
        loop {
            tokio::select! {
                biased;
                flow = &mut handling => return Ok(flow),
                first = outbox.recv() => {
                    tokio::select! {
                        written = write_batch(transport, outbox, first) => {
                            if written.is_err() {
                                return Err(End::Dropped);
                            }
                        }
                        _ = peer.ended() => return Err(End::SlowConsumerMidWrite),
                    }
                }
            }
        }
    }

    /// Sends what the way the session ended calls for ([`End::last_words`]); after GOODBYE on
    /// shutdown, waits (bounded) for the peer's reply.
    async fn say_last_words<T: Transport>(
        &self,
        transport: &mut T,
        outbox: &mut peer::Outbox,
        end: End,
    ) {
        if end.delivers_what_is_queued() {
            // Deliver what was routed to us before we left (results of calls cut off by a
            // shutdown among them), then say GOODBYE last (spec: nothing follows GOODBYE).
            while let Some(m) = outbox.try_recv() {
                if !m.is_empty() && transport.feed(m).await.is_err() {
                    break;
                }
            }
        }
        if let Some(words) = end.last_words() {
            send_now(transport, &words).await;
        }
        if matches!(end, End::Shutdown) {
            // Wait (bounded) for the peer's GOODBYE reply, ignoring anything else it sends.
            let _ = tokio::time::timeout(GOODBYE_REPLY_TIMEOUT, async {
                while let Ok(Some(bytes)) = transport.recv().await {
                    if let Ok(Message::Goodbye { .. }) =
                        codec::decode(transport.serializer(), &bytes)
                    {
                        break;
                    }
                }
            })
            .await;
        }
        debug!("session ended: {end}");
    }

    /// Counts and decodes a message from the peer; one that does not decode ends the session.
    /// Every message of an established session, from a socket or in-process, comes through here.
    pub(super) fn decode(&mut self, bytes: &Bytes) -> Result<Message, End> {
        self.received_at = Instant::now();
        self.peer.count_received(bytes.len(), self.received_at);
        codec::decode(self.peer.serializer(), bytes).map_err(|e| End::Violation(e.to_string()))
    }

    /// Publishes the session's testaments (spec, "Testament": on any end of the session), then
    /// removes everything it holds from the realm, which fails the calls it owed answers to.
    pub(super) fn leave(&mut self) {
        self.publish_testaments();
        self.realm.leave(
            &self.peer,
            self.visibility,
            std::mem::take(&mut self.subscriptions).into_keys(),
            std::mem::take(&mut self.registrations),
        );
    }

    /// Queues a reply to this session's own request.
    pub(super) fn reply(&self, msg: Message) {
        if let Some(bytes) = encode_or_log(&self.peer, msg) {
            let _ = self.peer.send(bytes);
        }
    }

    pub(super) fn reply_error(
        &self,
        request_type: MessageType,
        request: Id,
        uri: &str,
        text: &str,
    ) {
        self.reply(error_with_text(
            request_type,
            request,
            uri,
            text,
            self.peer.serializer(),
        ));
    }
}

/// Why a session ended.
#[derive(Debug)]
pub(super) enum End {
    /// The peer said GOODBYE.
    Goodbye,
    /// The router is shutting down.
    Shutdown,
    /// Its outbox overflowed.
    SlowConsumer,
    /// Its outbox overflowed while a frame was being written: nothing more can be sent.
    SlowConsumerMidWrite,
    /// Killed through the meta API: GOODBYE with this reason and message.
    Killed(String, Option<String>),
    /// The peer broke the protocol.
    Violation(String),
    /// The transport failed.
    TransportError(TransportError),
    /// The connection closed without GOODBYE.
    Dropped,
}

impl End {
    /// Why another task ended the session.
    pub(super) fn from_peer(why: PeerEnd) -> Self {
        match why {
            PeerEnd::SlowConsumer => End::SlowConsumer,
            PeerEnd::Killed { reason, message } => End::Killed(reason, message),
        }
    }

    /// Whether the session still delivers what was queued for it before its last words: when it
    /// ends with GOODBYE (its own, a shutdown, a kill), but not as a slow consumer or a broken
    /// connection.
    pub(super) fn delivers_what_is_queued(&self) -> bool {
        matches!(self, End::Goodbye | End::Shutdown | End::Killed(..))
    }

    /// How a session that ended this way says so, if it can: the GOODBYE reply, GOODBYE on
    /// shutdown or kill, or ABORT (spec, "Session Closing").
    pub(super) fn last_words(&self) -> Option<Message> {
        match self {
            End::Goodbye => Some(Message::goodbye(errors::GOODBYE_AND_OUT)),
            End::Shutdown => Some(Message::goodbye(errors::SYSTEM_SHUTDOWN)),
            End::SlowConsumer => Some(Message::abort(
                errors::SLOW_CONSUMER,
                "the session could not keep up with its messages",
            )),
            // A frame may be half written: anything more would be garbage to the peer.
            End::SlowConsumerMidWrite => None,
            End::Killed(reason, message) => {
                let mut details = switchboard_proto::Dict::new();
                if let Some(m) = message {
                    details.insert("message".into(), m.as_str().into());
                }
                Some(Message::Goodbye {
                    details,
                    reason: reason.clone(),
                })
            }
            End::Violation(text) => Some(Message::abort(errors::PROTOCOL_VIOLATION, text.clone())),
            End::TransportError(e @ TransportError::TooLarge { .. }) => {
                Some(Message::abort(errors::PROTOCOL_VIOLATION, e.to_string()))
            }
            End::TransportError(_) | End::Dropped => None,
        }
    }
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Goodbye => write!(f, "left with GOODBYE"),
            End::Shutdown => write!(f, "closed by router shutdown"),
            End::SlowConsumer | End::SlowConsumerMidWrite => write!(f, "closed as a slow consumer"),
            End::Killed(reason, _) => write!(f, "killed through the meta API ({reason})"),
            End::Violation(text) => write!(f, "protocol violation: {text}"),
            End::TransportError(e) => write!(f, "transport error: {e}"),
            End::Dropped => write!(f, "connection dropped"),
        }
    }
}

/// Writes `first` and whatever else is already queued (up to a batch), then flushes once.
async fn write_batch<T: Transport>(
    transport: &mut T,
    outbox: &mut peer::Outbox,
    first: Bytes,
) -> Result<(), TransportError> {
    // Empty messages are `Peer::kill`'s wake-up calls, not for the peer.
    if !first.is_empty() {
        transport.feed(first).await?;
    }
    for _ in 1..WRITE_BATCH_MESSAGES {
        match outbox.try_recv() {
            Some(m) if m.is_empty() => {}
            Some(m) => transport.feed(m).await?,
            None => break,
        }
    }
    transport.flush().await
}
