//! The established session: handles the peer's requests on its own task, writes its outbox, and
//! ends it (GOODBYE, ABORT, shutdown, slow consumer) cleaning up everything it held.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt as _;
use switchboard_proto::{Id, Message, MessageType, Uri, UriMatch, Value, codec, errors};
use switchboard_transport::{Transport, TransportError};
use tracing::debug;

use super::{GOODBYE_REPLY_TIMEOUT, SessionConfig, WRITE_BATCH_MESSAGES, send_now};
use crate::delivery::{encode_or_log, error_with_text};
use crate::peer::{self, Peer, PeerEnd};
use crate::realm::authz::{Action, Decision, Role};
use crate::realm::broker::PublishOutcome;
use crate::realm::dealer::{CancelMode, InvokePolicy};
use crate::realm::meta_api;
use crate::realm::{Realm, Visibility};

/// How the established loop goes on after a message.
enum Flow {
    Continue,
    /// The peer said GOODBYE: answer it and close.
    Goodbye,
    /// The peer broke the protocol: ABORT with this text, then close.
    Violation(String),
}

pub(super) struct Established {
    pub(super) realm: Arc<Realm>,
    pub(super) role: Arc<Role>,
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
}

/// The dynamic authorizer's side of a session.
#[derive(Debug, Default)]
pub(super) struct DynamicAuthorization {
    /// Who this session is, as its dynamic authorizer is told.
    pub(super) details: switchboard_proto::Dict,
    /// Decisions that allowed caching, by action and match policy, then URI (looked up by `&str`,
    /// so a cached decision costs no allocation).
    pub(super) cache: HashMap<(Action, UriMatch), HashMap<Uri, CachedDecision>>,
}

/// A dynamic authorizer's decision, kept while it is valid.
#[derive(Debug, Clone, Copy)]
pub(super) struct CachedDecision {
    decision: Decision,
    /// The session's authorization epoch when it was made; invalidation bumps the epoch.
    epoch: u64,
    /// When the decision expires; `None` keeps it for the session's lifetime.
    until: Option<Instant>,
}

/// The longest cache lifetime an authorizer's answer is held to; longer ones last the session.
const MAX_CACHE_SECONDS: u64 = 365 * 24 * 3600;

/// How long the router waits for a dynamic authorizer before refusing the action.
pub const AUTHORIZER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An event a session left to be published when it ends (spec, "Testament").
#[derive(Debug)]
pub(super) struct Testament {
    topic: Uri,
    options: switchboard_proto::Dict,
    payload: switchboard_proto::Payload,
}

/// A boolean option, false when absent (the codec already checked its type).
fn flag(options: &switchboard_proto::Dict, name: &str) -> bool {
    options.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// The `match` option of SUBSCRIBE or REGISTER (already type-checked by the codec); exact when absent.
fn match_policy(options: &switchboard_proto::Dict) -> UriMatch {
    options
        .get("match")
        .and_then(Value::as_str)
        .and_then(UriMatch::parse)
        .unwrap_or(UriMatch::Exact)
}

/// How many URIs a session's authorization cache holds before it starts over.
const AUTHZ_CACHE_ENTRIES: usize = 1024;

impl Established {
    pub(super) async fn run<T: Transport>(
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
                why = self.peer.ended() => break match why {
                    PeerEnd::SlowConsumer => End::SlowConsumer,
                    PeerEnd::Killed { reason, message } => End::Killed(reason, message),
                },
                Some(first) = outbox.rx.recv() => {
                    // A peer that stops reading blocks this write; its outbox then fills up and
                    // marks it slow, which must end the session even mid-write.
                    tokio::select! {
                        written = write_batch(&mut transport, &mut outbox, first) => {
                            if written.is_err() {
                                break End::Dropped;
                            }
                        }
                        _ = self.peer.ended() => break End::SlowConsumerMidWrite,
                    }
                }
                incoming = transport.recv() => match incoming {
                    Ok(Some(bytes)) => {
                        let msg = match codec::decode(self.peer.serializer(), &bytes) {
                            Ok(m) => m,
                            Err(e) => break End::Violation(e.to_string()),
                        };
                        let flow = if self.role.authorizer().is_none() {
                            // A statically authorized message never waits: every await in
                            // `handle` is behind a dynamic authorizer. Polling it once here, on
                            // the stack, keeps its state out of every session's task (about 400
                            // bytes per session).
                            match self.handle(msg).now_or_never() {
                                Some(flow) => Ok(flow),
                                None => {
                                    tracing::error!("a statically authorized message waited");
                                    Ok(Flow::Violation("internal error".into()))
                                }
                            }
                        } else {
                            // Boxed: dynamically authorized sessions pay for its state, with one
                            // allocation per message.
                            Box::pin(self.handle_while_writing(msg, &mut transport, &mut outbox))
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
        let last_words = self.say_last_words(&mut transport, &mut outbox, end);
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
                Some(first) = outbox.rx.recv() => {
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
            End::Killed(reason, message) => {
                let mut details = switchboard_proto::Dict::new();
                if let Some(m) = message {
                    details.insert("message".into(), m.into());
                }
                send_now(transport, &Message::Goodbye { details, reason }).await;
                debug!("killed through the meta API");
            }
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

    /// Publishes the session's testaments (spec, "Testament": on any end of the session), then
    /// removes everything it holds from the realm, which fails the calls it owed answers to.
    fn leave(&mut self) {
        for t in std::mem::take(&mut self.testaments) {
            let _ = self.realm.broker.publish(
                Some(&self.peer),
                &t.options,
                &t.topic,
                &t.payload,
                false,
            );
        }
        self.realm.leave(
            &self.peer,
            self.visibility,
            std::mem::take(&mut self.subscriptions).into_keys(),
            std::mem::take(&mut self.registrations),
        );
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

    /// Checks an exact URI and the role's permission for `action`, through the session's decision
    /// cache; on failure answers with ERROR and returns `None`. A cache hit costs one hash lookup:
    /// no lock, no allocation.
    async fn authorize(
        &mut self,
        kind: MessageType,
        request: Id,
        uri: &str,
        action: Action,
        options: &switchboard_proto::Dict,
    ) -> Option<(Uri, Decision)> {
        if self.role.authorizer().is_some() {
            if let Some((uri, decision)) = self.cached_dynamic(action, UriMatch::Exact, uri) {
                if decision.allows(action) {
                    return Some((uri, decision));
                }
                self.deny_dynamically(kind, request, &uri, action);
                return None;
            }
            let uri = match Uri::parse_loose(uri, UriMatch::Exact) {
                Ok(u) => u,
                Err(e) => {
                    self.reply_error(kind, request, errors::INVALID_URI, &e.to_string());
                    return None;
                }
            };
            // Boxed: the authorizer call's future is large, and inlining it would grow every
            // session's task for the sake of the dynamic roles only.
            let decision = Box::pin(self.authorize_dynamically(
                kind,
                request,
                &uri,
                UriMatch::Exact,
                action,
                options,
            ))
            .await?;
            return Some((uri, decision));
        }
        let cached = self
            .authz_cache
            .get_key_value(uri)
            .map(|(u, d)| (u.clone(), *d));
        let (uri, decision) = match cached {
            Some(hit) => hit,
            None => {
                // Only valid URIs enter the cache, so a hit needs no URI check either.
                let uri = match Uri::parse_loose(uri, UriMatch::Exact) {
                    Ok(u) => u,
                    Err(e) => {
                        self.reply_error(kind, request, errors::INVALID_URI, &e.to_string());
                        return None;
                    }
                };
                let decision = self.role.decide(&uri);
                if self.authz_cache.len() >= AUTHZ_CACHE_ENTRIES {
                    self.authz_cache.clear();
                }
                self.authz_cache.insert(uri.clone(), decision);
                (uri, decision)
            }
        };
        if !decision.allows(action) {
            let text =
                format!("role {:?} may not {action:?} {uri}", self.role.name()).to_lowercase();
            self.reply_error(kind, request, errors::NOT_AUTHORIZED, &text);
            return None;
        }
        Some((uri, decision))
    }

    /// [`Self::authorize`] for SUBSCRIBE and REGISTER, whose URI may be a prefix or wildcard
    /// pattern: the pattern must be valid under its policy, and the role must allow the action on
    /// the pattern itself (as Crossbar checks it). Patterns bypass the decision cache.
    async fn authorize_pattern(
        &mut self,
        kind: MessageType,
        request: Id,
        uri: &str,
        policy: UriMatch,
        action: Action,
        options: &switchboard_proto::Dict,
    ) -> Option<Uri> {
        if policy == UriMatch::Exact {
            return self
                .authorize(kind, request, uri, action, options)
                .await
                .map(|(u, _)| u);
        }
        let pattern = match Uri::parse_loose(uri, policy) {
            Ok(u) => u,
            Err(e) => {
                self.reply_error(kind, request, errors::INVALID_URI, &e.to_string());
                return None;
            }
        };
        if self.role.authorizer().is_some() {
            Box::pin(self.authorize_dynamically(kind, request, &pattern, policy, action, options))
                .await?;
            return Some(pattern);
        }
        if !self.role.decide(&pattern).allows(action) {
            let text =
                format!("role {:?} may not {action:?} {pattern}", self.role.name()).to_lowercase();
            self.reply_error(kind, request, errors::NOT_AUTHORIZED, &text);
            return None;
        }
        Some(pattern)
    }

    /// Asks the role's dynamic authorizer about `action` on `uri` (or serves a cached answer);
    /// on refusal or failure answers with ERROR and returns `None`.
    async fn authorize_dynamically(
        &mut self,
        kind: MessageType,
        request: Id,
        uri: &Uri,
        policy: UriMatch,
        action: Action,
        options: &switchboard_proto::Dict,
    ) -> Option<Decision> {
        match self.dynamic_decision(action, uri, policy, options).await {
            Ok(d) if d.allows(action) => Some(d),
            Ok(_) => {
                self.deny_dynamically(kind, request, uri, action);
                None
            }
            Err(text) => {
                self.reply_error(kind, request, errors::AUTHORIZATION_FAILED, &text);
                None
            }
        }
    }

    fn deny_dynamically(&self, kind: MessageType, request: Id, uri: &Uri, action: Action) {
        let text = format!(
            "the authorizer of role {:?} denied {} on {uri}",
            self.role.name(),
            action.as_str()
        );
        self.reply_error(kind, request, errors::NOT_AUTHORIZED, &text);
    }

    /// A still valid cached decision of the dynamic authorizer about `action` on `uri`, with the
    /// cached (validated) URI.
    fn cached_dynamic(
        &self,
        action: Action,
        policy: UriMatch,
        uri: &str,
    ) -> Option<(Uri, Decision)> {
        let dynamic = self.dynamic.as_ref()?;
        let (cached_uri, hit) = dynamic.cache.get(&(action, policy))?.get_key_value(uri)?;
        let valid = hit.epoch == self.peer.authorization_epoch()
            && hit.until.is_none_or(|t| Instant::now() < t);
        valid.then(|| (cached_uri.clone(), hit.decision))
    }

    /// The dynamic authorizer's decision: from the cache while a cached one is valid, else by
    /// calling the authorizer with `(session, uri, action, options)` as Crossbar does. The answer
    /// is a boolean, or `{"allow", "disclose", "cache"}` where `cache` is `true` (keep it for the
    /// session) or a number of seconds. `Err` says why there is no decision.
    async fn dynamic_decision(
        &mut self,
        action: Action,
        uri: &Uri,
        policy: UriMatch,
        options: &switchboard_proto::Dict,
    ) -> Result<Decision, String> {
        if let Some((_, decision)) = self.cached_dynamic(action, policy, uri.as_str()) {
            return Ok(decision);
        }
        let epoch = self.peer.authorization_epoch();
        let (Some(authorizer), Some(dynamic)) = (
            self.role.authorizer().map(str::to_owned),
            self.dynamic.as_mut(),
        ) else {
            return Err("the role has no authorizer".into());
        };
        let args = vec![
            Value::Dict(dynamic.details.clone()),
            uri.as_str().into(),
            action.as_str().into(),
            Value::Dict(options.clone()),
        ];
        let answer = self
            .realm
            .router_call(&authorizer, args, AUTHORIZER_TIMEOUT)
            .await
            .map_err(|e| format!("authorizer {authorizer} failed: {e}"))?;
        let malformed = || {
            format!(
                "authorizer {authorizer} answered neither a boolean nor {{\"allow\": boolean, ...}}"
            )
        };
        let (allowed, disclose, keep) = match &answer {
            Value::Bool(b) => (*b, false, None),
            Value::Dict(d) => {
                let allowed = d
                    .get("allow")
                    .and_then(Value::as_bool)
                    .ok_or_else(malformed)?;
                let disclose = d.get("disclose").and_then(Value::as_bool).unwrap_or(false);
                let keep = match d.get("cache") {
                    None | Some(Value::Null) | Some(Value::Bool(false)) => None,
                    Some(Value::Bool(true)) => Some(None),
                    // Lifetimes beyond a year are kept for the session: adding them to the clock
                    // could overflow, and no session lives that long.
                    Some(Value::UInt(secs)) if *secs > 0 => Some(
                        (*secs <= MAX_CACHE_SECONDS)
                            .then(|| Instant::now() + std::time::Duration::from_secs(*secs)),
                    ),
                    Some(Value::Float(secs)) if secs.is_finite() && *secs > 0.0 => Some(
                        (*secs <= MAX_CACHE_SECONDS as f64)
                            .then(|| Instant::now() + std::time::Duration::from_secs_f64(*secs)),
                    ),
                    Some(Value::UInt(_)) | Some(Value::Float(_)) => None,
                    Some(_) => return Err(malformed()),
                };
                (allowed, disclose, keep)
            }
            _ => return Err(malformed()),
        };
        let decision = Decision::for_action(action, allowed, disclose);
        if let (Some(until), Some(dynamic)) = (keep, self.dynamic.as_mut()) {
            let cache = dynamic.cache.entry((action, policy)).or_default();
            if cache.len() >= AUTHZ_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(
                uri.clone(),
                CachedDecision {
                    decision,
                    epoch,
                    until,
                },
            );
        }
        Ok(decision)
    }

    /// Calls to the router's own procedures (`wamp.session.add_testament`,
    /// `wamp.session.flush_testaments`); `None` for any other procedure.
    async fn meta_call(
        &mut self,
        procedure: &str,
        payload: &switchboard_proto::Payload,
    ) -> Option<Result<switchboard_proto::Payload, crate::realm::dealer::CallError>> {
        use switchboard_proto::{Dict, Payload, RawValue};
        let serializer = self.peer.serializer();
        let result = |v: Value| {
            Ok(Payload {
                args: RawValue::from_value(serializer, &Value::List(vec![v])).ok(),
                kwargs: None,
            })
        };
        match procedure {
            "wamp.session.add_testament" => {
                let bad = |text: &str| Err(crate::realm::dealer::CallError::invalid_argument(text));
                let args = match payload.args.as_ref().map(RawValue::to_value) {
                    Some(Ok(Value::List(l))) => l,
                    _ => return Some(bad("expected [topic, args, kwargs]")),
                };
                let kwargs = match payload.kwargs.as_ref().map(RawValue::to_value) {
                    Some(Ok(Value::Dict(d))) => d,
                    _ => Dict::new(),
                };
                let Some(topic) = args.first().and_then(Value::as_str) else {
                    return Some(bad("the first argument must be the topic URI"));
                };
                let Ok(topic) = Uri::parse_loose(topic, UriMatch::Exact) else {
                    return Some(bad("the topic is not a valid URI"));
                };
                let options = kwargs
                    .get("publish_options")
                    .and_then(Value::as_dict)
                    .cloned()
                    .unwrap_or_default();
                let may_publish = if self.role.authorizer().is_some() {
                    match Box::pin(self.dynamic_decision(
                        Action::Publish,
                        &topic,
                        UriMatch::Exact,
                        &options,
                    ))
                    .await
                    {
                        Ok(d) => d.allows(Action::Publish),
                        Err(text) => {
                            return Some(Err(crate::realm::dealer::CallError::from_uri(
                                errors::AUTHORIZATION_FAILED,
                                text,
                            )));
                        }
                    }
                } else {
                    self.role.may(Action::Publish, &topic)
                };
                if !may_publish {
                    return Some(Err(crate::realm::dealer::CallError::not_authorized(
                        "the role may not publish to the testament's topic",
                    )));
                }
                let event_args = args.get(1).cloned().unwrap_or(Value::List(Vec::new()));
                let event_kwargs = args.get(2).cloned().unwrap_or(Value::Dict(Dict::new()));
                self.testaments.push(Testament {
                    topic,
                    options,
                    payload: Payload {
                        args: RawValue::from_value(serializer, &event_args).ok(),
                        kwargs: RawValue::from_value(serializer, &event_kwargs).ok(),
                    },
                });
                Some(result(Value::Null))
            }
            "wamp.session.flush_testaments" => {
                let n = self.testaments.len() as u64;
                self.testaments.clear();
                Some(result(n.into()))
            }
            _ if procedure.starts_with("wamp.")
                || procedure == meta_api::INVALIDATE_AUTHORIZATION =>
            {
                let args = match payload.args.as_ref().map(RawValue::to_value) {
                    Some(Ok(Value::List(l))) => l,
                    _ => Vec::new(),
                };
                let kwargs = match payload.kwargs.as_ref().map(RawValue::to_value) {
                    Some(Ok(Value::Dict(d))) => d,
                    _ => Dict::new(),
                };
                meta_api::call(&self.realm, &self.peer, procedure, &args, &kwargs)
                    .map(|r| r.and_then(result))
            }
            _ => None,
        }
    }

    async fn handle(&mut self, msg: Message) -> Flow {
        match msg {
            Message::Subscribe {
                request,
                options,
                topic,
            } => {
                let policy = match_policy(&options);
                let Some(topic) = self
                    .authorize_pattern(
                        MessageType::Subscribe,
                        request,
                        &topic,
                        policy,
                        Action::Subscribe,
                        &options,
                    )
                    .await
                else {
                    return Flow::Continue;
                };
                let subscription = self.realm.subscribe(&self.peer, topic.clone(), policy);
                let retained = if flag(&options, "get_retained") {
                    self.realm.broker.retained(&topic, policy)
                } else {
                    Vec::new()
                };
                self.subscriptions.insert(subscription, topic);
                self.reply(Message::Subscribed {
                    request,
                    subscription,
                });
                // spec, "Event Retention": retained events follow the SUBSCRIBED, marked as such.
                for (retained_topic, event) in retained {
                    let mut details = event.details;
                    details.insert("retained".into(), true.into());
                    if policy != UriMatch::Exact {
                        details.insert("topic".into(), retained_topic.into());
                    }
                    self.reply(Message::Event {
                        subscription,
                        publication: event.publication,
                        details,
                        payload: event.payload,
                    });
                }
            }
            Message::Unsubscribe {
                request,
                subscription,
            } => {
                let removed = self.subscriptions.remove(&subscription).is_some();
                if removed && self.realm.unsubscribe(self.peer.id(), subscription) {
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
                let Some((topic, decision)) = self
                    .authorize(
                        MessageType::Publish,
                        request,
                        &topic,
                        Action::Publish,
                        &options,
                    )
                    .await
                else {
                    return Flow::Continue;
                };
                // spec, "Publisher Identification": the role's config or the publisher's request.
                let disclose = decision.disclose_publisher || flag(&options, "disclose_me");
                match self.realm.broker.publish(
                    Some(&self.peer),
                    &options,
                    &topic,
                    &payload,
                    disclose,
                ) {
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
                let policy = match_policy(&options);
                let invoke = InvokePolicy::from_options(&options);
                let Some(procedure) = self
                    .authorize_pattern(
                        MessageType::Register,
                        request,
                        &procedure,
                        policy,
                        Action::Register,
                        &options,
                    )
                    .await
                else {
                    return Flow::Continue;
                };
                match self.realm.register(&self.peer, procedure, policy, invoke) {
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
                let removed = self.registrations.remove(&registration);
                if removed && self.realm.unregister(self.peer.id(), registration) {
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
                options,
                procedure,
                payload,
            } => {
                let progress = flag(&options, "progress");
                if progress && !self.peer.features().caller_progressive_call_invocations {
                    return Flow::Violation(
                        "CALL with progress without announcing progressive_call_invocations".into(),
                    );
                }
                // A CALL naming a call in flight is the next chunk of a progressive invocation.
                if self.peer.call_in_flight(request).is_some() {
                    return match self
                        .realm
                        .dealer
                        .continue_call(&self.peer, request, &options, &payload)
                    {
                        Ok(()) => Flow::Continue,
                        Err(text) => Flow::Violation(text),
                    };
                }
                let Some((procedure, decision)) = self
                    .authorize(
                        MessageType::Call,
                        request,
                        &procedure,
                        Action::Call,
                        &options,
                    )
                    .await
                else {
                    return Flow::Continue;
                };
                if let Some(result) = self.meta_call(&procedure, &payload).await {
                    match result {
                        Ok(payload) => self.reply(Message::Result {
                            request,
                            details: switchboard_proto::Dict::new(),
                            payload,
                        }),
                        Err(e) => self.reply(e.to_message(request, self.peer.serializer())),
                    }
                    return Flow::Continue;
                }
                // spec, "Caller Identification": the role's config or the caller's own request.
                let disclose = decision.disclose_caller || flag(&options, "disclose_me");
                if let Err(e) = self.realm.dealer.call(
                    &self.peer, request, &options, &procedure, &payload, disclose,
                ) {
                    self.reply(e.to_message(request, self.peer.serializer()));
                }
            }
            Message::Yield {
                request,
                options,
                payload,
            } => {
                self.realm
                    .dealer
                    .handle_yield(&self.peer, request, &options, payload);
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
            Message::Cancel { request, options } => {
                self.realm
                    .dealer
                    .cancel(&self.peer, request, CancelMode::from_options(&options));
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
    /// Killed through the meta API: GOODBYE with this reason and message.
    Killed(String, Option<String>),
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
