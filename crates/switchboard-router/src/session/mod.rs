//! One task per peer: the opening handshake (HELLO -> WELCOME or ABORT), then the established
//! session, which routes the peer's PUBLISH and CALL on this task and writes what other sessions
//! queued into its outbox, until GOODBYE, a protocol violation, a dropped connection or shutdown.

pub mod peer;

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_proto::ids::random_global_id;
use switchboard_proto::{Dict, Id, Message, MessageType, Uri, UriMatch, Value, codec, errors};
use switchboard_transport::{Transport, TransportError};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span};

use crate::broker::PublishOutcome;
use crate::dealer::{encode_or_log, error_with_text};
use crate::realm::authz::{Action, Role};
use crate::realm::{Realm, RealmRegistry};
use peer::{Identity, OUTBOX_CAPACITY_MESSAGES, Peer, SessionId};

/// How long a new connection has to send HELLO.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the router waits for the peer's GOODBYE reply when it closes a session.
pub const GOODBYE_REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How many queued messages are written before one flush.
const WRITE_BATCH_MESSAGES: usize = 64;
/// How long the router tries to deliver a session's last words (GOODBYE or ABORT) to a peer that may
/// have stopped reading.
pub const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a session needs from the router and its transport's config.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The realms sessions can join.
    pub realms: Arc<RealmRegistry>,
    /// Cancelled when the router shuts down.
    pub shutdown: CancellationToken,
    /// The role anonymous sessions of this transport get.
    pub anonymous_role: String,
    /// Outbox capacity per session.
    pub outbox_capacity: usize,
}

impl SessionConfig {
    /// A session config with the default anonymous role and outbox size.
    pub fn new(realms: Arc<RealmRegistry>, shutdown: CancellationToken) -> Self {
        Self {
            realms,
            shutdown,
            anonymous_role: "anonymous".into(),
            outbox_capacity: OUTBOX_CAPACITY_MESSAGES,
        }
    }
}

/// Runs a session on `transport` until it ends.
pub async fn run<T: Transport>(mut transport: T, cfg: SessionConfig) {
    let serializer = transport.serializer();
    let Some(joined) = handshake(&mut transport, &cfg).await else {
        transport.close().await;
        return;
    };
    let Joined {
        realm,
        role,
        peer,
        outbox,
    } = joined;
    let span = info_span!(
        "session",
        id = peer.id().0,
        realm = realm.name(),
        authid = %peer.identity().authid,
        authrole = %peer.identity().authrole,
        serializer = serializer.name(),
    );
    let mut session = Established {
        realm,
        role,
        peer,
        subscriptions: HashMap::new(),
        registrations: HashSet::new(),
    };
    session.run(transport, outbox, &cfg).instrument(span).await;
}

struct Joined {
    realm: Arc<Realm>,
    role: Arc<Role>,
    peer: Peer,
    outbox: peer::Outbox,
}

/// Sends one router message directly on the transport (used before the outbox exists and for the
/// last words of a session).
async fn send_now<T: Transport>(transport: &mut T, msg: &Message) {
    match codec::encode(transport.serializer(), msg) {
        Ok(bytes) => {
            if transport.feed(bytes).await.is_ok() {
                let _ = transport.flush().await;
            }
        }
        Err(e) => tracing::error!("cannot encode router message: {e}"),
    }
}

/// The opening handshake. Returns `None` after sending ABORT (or when the peer went away).
async fn handshake<T: Transport>(transport: &mut T, cfg: &SessionConfig) -> Option<Joined> {
    let first = tokio::select! {
        r = tokio::time::timeout(HELLO_TIMEOUT, transport.recv()) => r,
        _ = cfg.shutdown.cancelled() => return None,
    };
    let bytes = match first {
        Ok(Ok(Some(bytes))) => bytes,
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            debug!("connection failed before HELLO: {e}");
            return None;
        }
        Err(_) => {
            send_now(
                transport,
                &Message::abort(
                    errors::PROTOCOL_VIOLATION,
                    "no HELLO within the handshake timeout",
                ),
            )
            .await;
            return None;
        }
    };
    let abort = |reason: &str, text: String| Message::abort(reason, text);
    let (realm_name, details) = match codec::decode(transport.serializer(), &bytes) {
        Ok(Message::Hello { realm, details }) => (realm, details),
        Ok(other) => {
            let text = format!("expected HELLO, got {}", other.message_type().name());
            send_now(transport, &abort(errors::PROTOCOL_VIOLATION, text)).await;
            return None;
        }
        Err(e) => {
            send_now(transport, &abort(errors::PROTOCOL_VIOLATION, e.to_string())).await;
            return None;
        }
    };
    // spec, "HELLO": Details.roles announces at least one client role.
    let announces_a_role = details
        .get("roles")
        .and_then(Value::as_dict)
        .is_some_and(|roles| !roles.is_empty());
    if !announces_a_role {
        let text = "HELLO.Details.roles must announce at least one role".to_owned();
        send_now(transport, &abort(errors::PROTOCOL_VIOLATION, text)).await;
        return None;
    }
    if Uri::parse_loose(&realm_name, UriMatch::Exact).is_err() {
        let text = format!("{realm_name:?} is not a valid realm URI");
        send_now(transport, &abort(errors::INVALID_URI, text)).await;
        return None;
    }
    let Some(realm) = cfg.realms.get(&realm_name) else {
        let text = format!("no realm named {realm_name:?} on this router");
        send_now(transport, &abort(errors::NO_SUCH_REALM, text)).await;
        return None;
    };
    // spec, "Authentication": HELLO.Details.authmethods lists what the client can do; without it,
    // anonymous is implied.
    if let Some(methods) = details.get("authmethods") {
        let offers_anonymous = methods
            .as_list()
            .is_some_and(|l| l.iter().any(|m| m.as_str() == Some("anonymous")));
        if !offers_anonymous {
            let text = "this transport offers only anonymous authentication".to_owned();
            send_now(transport, &abort(errors::NO_AUTH_METHOD, text)).await;
            return None;
        }
    }
    let Some(role) = realm.role(&cfg.anonymous_role) else {
        let text = format!(
            "realm {realm_name:?} has no role {:?} for anonymous sessions",
            cfg.anonymous_role
        );
        send_now(transport, &abort(errors::NOT_AUTHORIZED, text)).await;
        return None;
    };
    let session = SessionId(random_global_id());
    let authid = details
        .get("authid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("anonymous-{:x}", session.0));
    let identity = Identity {
        session,
        authid: authid.clone(),
        authrole: role.name().to_owned(),
    };
    let (peer, outbox) = Peer::new(
        identity,
        transport.serializer(),
        transport.peer_max_message_bytes(),
        cfg.outbox_capacity,
    );
    realm.join(peer.clone());
    send_now(
        transport,
        &welcome(session, &realm_name, &authid, role.name()),
    )
    .await;
    Some(Joined {
        realm,
        role,
        peer,
        outbox,
    })
}

/// WELCOME, announcing exactly the features this router implements.
fn welcome(session: SessionId, realm: &str, authid: &str, authrole: &str) -> Message {
    let features = |list: &[&str]| {
        let mut f = Dict::new();
        for name in list {
            f.insert((*name).to_owned(), Value::Bool(true));
        }
        let mut role = Dict::new();
        role.insert("features".into(), Value::Dict(f));
        Value::Dict(role)
    };
    let mut roles = Dict::new();
    roles.insert("broker".into(), features(&["publisher_exclusion"]));
    roles.insert("dealer".into(), features(&[]));
    let mut details = Dict::new();
    details.insert("realm".into(), realm.into());
    details.insert("authid".into(), authid.into());
    details.insert("authrole".into(), authrole.into());
    details.insert("authmethod".into(), "anonymous".into());
    details.insert("authprovider".into(), "static".into());
    details.insert("roles".into(), Value::Dict(roles));
    Message::Welcome {
        session: session.0,
        details,
    }
}

/// How the established loop goes on after a message.
enum Flow {
    Continue,
    /// The peer said GOODBYE: answer it and close.
    Goodbye,
    /// The peer broke the protocol: ABORT with this text, then close.
    Violation(String),
}

struct Established {
    realm: Arc<Realm>,
    role: Arc<Role>,
    peer: Peer,
    /// Subscriptions this session holds, by id (owned by this task).
    subscriptions: HashMap<Id, Uri>,
    /// Registrations this session holds (owned by this task).
    registrations: HashSet<Id>,
}

impl Established {
    async fn run<T: Transport>(
        &mut self,
        mut transport: T,
        mut outbox: peer::Outbox,
        cfg: &SessionConfig,
    ) {
        debug!("joined");
        let end = loop {
            tokio::select! {
                biased;
                _ = cfg.shutdown.cancelled() => break End::Shutdown,
                _ = self.peer.slow_marked() => break End::SlowConsumer,
                Some(first) = outbox.rx.recv() => {
                    // A peer that stops reading blocks this write; its outbox then fills up and
                    // marks it slow, which must end the session even mid-write.
                    tokio::select! {
                        written = write_batch(&mut transport, &mut outbox, first) => {
                            if written.is_err() {
                                break End::Dropped;
                            }
                        }
                        _ = self.peer.slow_marked() => break End::SlowConsumerMidWrite,
                    }
                }
                incoming = transport.recv() => match incoming {
                    Ok(Some(bytes)) => match self.handle(&bytes) {
                        Flow::Continue => {}
                        Flow::Goodbye => break End::Goodbye,
                        Flow::Violation(text) => break End::Violation(text),
                    },
                    Ok(None) => break End::Dropped,
                    Err(e) => break End::TransportError(e),
                },
            }
        };
        // Leave the realm first, so nothing new is routed to us while we close.
        self.leave();
        let last_words = self.say_last_words(&mut transport, &mut outbox, end);
        if tokio::time::timeout(FINAL_WRITE_TIMEOUT + GOODBYE_REPLY_TIMEOUT, last_words)
            .await
            .is_err()
        {
            debug!("peer did not take the session's last words in time");
        }
        let _ = tokio::time::timeout(FINAL_WRITE_TIMEOUT, transport.close()).await;
    }

    /// Sends what the way the session ended calls for: the GOODBYE reply, GOODBYE on shutdown, or
    /// ABORT.
    async fn say_last_words<T: Transport>(
        &self,
        transport: &mut T,
        outbox: &mut peer::Outbox,
        end: End,
    ) {
        match end {
            End::Goodbye => {
                // Deliver what was routed to us before we left, then answer the GOODBYE last
                // (spec: nothing follows GOODBYE).
                while let Ok(m) = outbox.rx.try_recv() {
                    if transport.feed(m).await.is_err() {
                        break;
                    }
                }
                send_now(transport, &Message::goodbye(errors::GOODBYE_AND_OUT)).await;
                debug!("left with GOODBYE");
            }
            End::Shutdown => {
                send_now(transport, &Message::goodbye(errors::SYSTEM_SHUTDOWN)).await;
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
                debug!("closed by router shutdown");
            }
            End::SlowConsumer => {
                send_now(
                    transport,
                    &Message::abort(
                        errors::SLOW_CONSUMER,
                        "the session could not keep up with its messages",
                    ),
                )
                .await;
            }
            // A frame may be half written: anything more would be garbage to the peer.
            End::SlowConsumerMidWrite => debug!("closed as a slow consumer"),
            End::Violation(text) => {
                debug!("protocol violation: {text}");
                send_now(transport, &Message::abort(errors::PROTOCOL_VIOLATION, text)).await;
            }
            End::TransportError(e) => {
                debug!("transport error: {e}");
                if matches!(e, TransportError::TooLarge { .. }) {
                    send_now(
                        transport,
                        &Message::abort(errors::PROTOCOL_VIOLATION, e.to_string()),
                    )
                    .await;
                }
            }
            End::Dropped => debug!("connection dropped"),
        }
    }

    /// Removes everything the session holds from the realm, and fails the calls it owed answers to.
    fn leave(&mut self) {
        for id in self.subscriptions.keys() {
            self.realm.broker.unsubscribe(self.peer.id(), *id);
        }
        self.realm
            .dealer
            .callee_left(&self.peer, self.registrations.drain());
        self.realm.leave(self.peer.id());
    }

    /// Queues a reply to this session's own request.
    fn reply(&self, msg: Message) {
        if let Some(bytes) = encode_or_log(&self.peer, msg) {
            let _ = self.peer.send(bytes);
        }
    }

    fn reply_error(&self, request_type: MessageType, request: Id, uri: &str, text: &str) {
        self.reply(error_with_text(
            request_type,
            request,
            uri,
            text,
            self.peer.serializer(),
        ));
    }

    /// Checks an exact URI and the role's permission; on failure answers with ERROR and returns
    /// `None`.
    fn checked_uri(
        &self,
        kind: MessageType,
        request: Id,
        uri: &str,
        action: Action,
    ) -> Option<Uri> {
        let uri = match Uri::parse_loose(uri, UriMatch::Exact) {
            Ok(u) => u,
            Err(e) => {
                self.reply_error(kind, request, errors::INVALID_URI, &e.to_string());
                return None;
            }
        };
        if !self.role.may(action, &uri) {
            let text =
                format!("role {:?} may not {action:?} {uri}", self.role.name()).to_lowercase();
            self.reply_error(kind, request, errors::NOT_AUTHORIZED, &text);
            return None;
        }
        Some(uri)
    }

    fn handle(&mut self, bytes: &Bytes) -> Flow {
        let msg = match codec::decode(self.peer.serializer(), bytes) {
            Ok(m) => m,
            Err(e) => return Flow::Violation(e.to_string()),
        };
        match msg {
            Message::Subscribe {
                request,
                options,
                topic,
            } => {
                if options
                    .get("match")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m != "exact")
                {
                    self.reply_error(
                        MessageType::Subscribe,
                        request,
                        errors::INVALID_ARGUMENT,
                        "pattern-based subscriptions are not supported yet",
                    );
                    return Flow::Continue;
                }
                let Some(topic) =
                    self.checked_uri(MessageType::Subscribe, request, &topic, Action::Subscribe)
                else {
                    return Flow::Continue;
                };
                let subscription = self.realm.broker.subscribe(&self.peer, topic.clone());
                self.subscriptions.insert(subscription, topic);
                self.reply(Message::Subscribed {
                    request,
                    subscription,
                });
            }
            Message::Unsubscribe {
                request,
                subscription,
            } => {
                if self.subscriptions.remove(&subscription).is_some()
                    && self.realm.broker.unsubscribe(self.peer.id(), subscription)
                {
                    self.reply(Message::Unsubscribed {
                        request,
                        details: None,
                    });
                } else {
                    self.reply_error(
                        MessageType::Unsubscribe,
                        request,
                        errors::NO_SUCH_SUBSCRIPTION,
                        "this session holds no such subscription",
                    );
                }
            }
            Message::Publish {
                request,
                options,
                topic,
                payload,
            } => {
                let acknowledge = options
                    .get("acknowledge")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let Some(topic) =
                    self.checked_uri(MessageType::Publish, request, &topic, Action::Publish)
                else {
                    return Flow::Continue;
                };
                match self
                    .realm
                    .broker
                    .publish(&self.peer, &options, &topic, &payload)
                {
                    PublishOutcome::Published(publication) => {
                        if acknowledge {
                            self.reply(Message::Published {
                                request,
                                publication,
                            });
                        }
                    }
                    // spec conversion rules: the publisher hears about a payload some subscribers
                    // could not receive, acknowledged or not.
                    PublishOutcome::Unconvertible(_, reason) => {
                        self.reply_error(
                            MessageType::Publish,
                            request,
                            errors::INVALID_ARGUMENT,
                            &format!(
                                "the payload cannot be converted for some subscribers: {reason}"
                            ),
                        );
                    }
                }
            }
            Message::Register {
                request,
                options,
                procedure,
            } => {
                if options
                    .get("match")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m != "exact")
                {
                    self.reply_error(
                        MessageType::Register,
                        request,
                        errors::INVALID_ARGUMENT,
                        "pattern-based registrations are not supported yet",
                    );
                    return Flow::Continue;
                }
                if options
                    .get("invoke")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m != "single")
                {
                    self.reply_error(
                        MessageType::Register,
                        request,
                        errors::INVALID_ARGUMENT,
                        "shared registrations are not supported yet",
                    );
                    return Flow::Continue;
                }
                let Some(procedure) =
                    self.checked_uri(MessageType::Register, request, &procedure, Action::Register)
                else {
                    return Flow::Continue;
                };
                match self.realm.dealer.register(&self.peer, procedure) {
                    Ok(registration) => {
                        self.registrations.insert(registration);
                        self.reply(Message::Registered {
                            request,
                            registration,
                        });
                    }
                    Err(e) => self.reply_error(MessageType::Register, request, e.uri, &e.message),
                }
            }
            Message::Unregister {
                request,
                registration,
            } => {
                if self.registrations.remove(&registration)
                    && self.realm.dealer.unregister(self.peer.id(), registration)
                {
                    self.reply(Message::Unregistered {
                        request,
                        details: None,
                    });
                } else {
                    self.reply_error(
                        MessageType::Unregister,
                        request,
                        errors::NO_SUCH_REGISTRATION,
                        "this session holds no such registration",
                    );
                }
            }
            Message::Call {
                request,
                procedure,
                payload,
                ..
            } => {
                let Some(procedure) =
                    self.checked_uri(MessageType::Call, request, &procedure, Action::Call)
                else {
                    return Flow::Continue;
                };
                if let Err(e) = self
                    .realm
                    .dealer
                    .call(&self.peer, request, &procedure, &payload)
                {
                    self.reply(e.to_message(request, self.peer.serializer()));
                }
            }
            Message::Yield {
                request, payload, ..
            } => {
                self.realm.dealer.handle_yield(&self.peer, request, payload);
            }
            Message::Error {
                request_type,
                request,
                details,
                error,
                payload,
            } => {
                if request_type != MessageType::Invocation.code() {
                    return Flow::Violation(format!(
                        "ERROR for request type {request_type}; a client may only answer INVOCATION with ERROR"
                    ));
                }
                self.realm
                    .dealer
                    .handle_invocation_error(&self.peer, request, details, error, payload);
            }
            Message::Goodbye { .. } => return Flow::Goodbye,
            // Call canceling is not announced in WELCOME, so a client should not send CANCEL; one
            // that does loses nothing: the call completes normally.
            Message::Cancel { request, .. } => {
                debug!(request, "CANCEL ignored: call canceling is not implemented")
            }
            other => {
                return Flow::Violation(format!(
                    "{} is not a message a client sends to a router in an established session",
                    other.message_type().name()
                ));
            }
        }
        Flow::Continue
    }
}

enum End {
    Goodbye,
    Shutdown,
    SlowConsumer,
    SlowConsumerMidWrite,
    Violation(String),
    TransportError(TransportError),
    Dropped,
}

/// Writes `first` and whatever else is already queued (up to a batch), then flushes once.
async fn write_batch<T: Transport>(
    transport: &mut T,
    outbox: &mut peer::Outbox,
    first: Bytes,
) -> Result<(), TransportError> {
    transport.feed(first).await?;
    for _ in 1..WRITE_BATCH_MESSAGES {
        match outbox.rx.try_recv() {
            Ok(m) => transport.feed(m).await?,
            Err(_) => break,
        }
    }
    transport.flush().await
}
