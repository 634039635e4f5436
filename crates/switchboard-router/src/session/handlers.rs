//! One handler per message a client sends in an established session (spec, "Publish and
//! Subscribe", "Remote Procedure Calls"): each authorizes the action (`authorize`), asks the realm
//! to carry it out and queues the reply into the session's own outbox.

use switchboard_proto::{Dict, Id, Message, MessageType, Payload, UriMatch, Value, errors};

use super::established::{Established, Flow};
use crate::realm::authz::Action;
use crate::realm::broker::PublishOutcome;
use crate::realm::stats::CallOutcome;
use crate::realm::{SHUTTING_DOWN, Visibility};
use switchboard_proto::options::{CancelMode, InvokePolicy};

/// A boolean option, false when absent (the codec already checked its type).
fn flag(options: &Dict, name: &str) -> bool {
    options.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// The `match` option of SUBSCRIBE or REGISTER (already type-checked by the codec); exact when absent.
fn match_policy(options: &Dict) -> UriMatch {
    options
        .get("match")
        .and_then(Value::as_str)
        .and_then(UriMatch::parse)
        .unwrap_or(UriMatch::Exact)
}

impl Established {
    /// Hands a message from the peer to its handler.
    pub(super) async fn handle(&mut self, msg: Message) -> Flow {
        // Every action (testaments included) is judged by the role as the config has it now.
        self.follow_role_changes();
        // Only a router link may act for sessions of another router (Crossbar's `forward_for`);
        // from anyone else it would spoof who published or called.
        if let Message::Subscribe { options, .. }
        | Message::Publish { options, .. }
        | Message::Register { options, .. }
        | Message::Call { options, .. } = &msg
            // (A scan, not a hash lookup: options hold a few keys, and this runs per message.)
            && options.keys().any(|k| k == "forward_for")
            && self.peer.link().is_none()
        {
            return Flow::Violation(format!(
                "{} with forward_for from a session whose role {:?} may not link",
                msg.message_type().name(),
                self.peer.identity().authrole
            ));
        }
        self.realm.stats.message_in(&msg);
        match msg {
            Message::Subscribe {
                request,
                options,
                topic,
            } => self.handle_subscribe(request, options, &topic).await,
            Message::Unsubscribe {
                request,
                subscription,
            } => self.handle_unsubscribe(request, subscription),
            Message::Publish {
                request,
                options,
                topic,
                payload,
            } => self.handle_publish(request, options, &topic, payload).await,
            Message::Register {
                request,
                options,
                procedure,
            } => self.handle_register(request, options, &procedure).await,
            Message::Unregister {
                request,
                registration,
            } => self.handle_unregister(request, registration),
            Message::Call {
                request,
                options,
                procedure,
                payload,
            } => {
                return self
                    .handle_call(request, options, &procedure, payload)
                    .await;
            }
            Message::Yield {
                request,
                options,
                payload,
            } => self
                .realm
                .dealer
                .handle_yield(&self.peer, request, &options, payload),
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

    async fn handle_subscribe(&mut self, request: Id, options: Dict, topic: &str) {
        let policy = match_policy(&options);
        let Some(topic) = self
            .authorize_pattern(
                MessageType::Subscribe,
                request,
                topic,
                policy,
                Action::Subscribe,
                &options,
            )
            .await
        else {
            return;
        };
        let subscription =
            self.realm
                .subscribe(&self.peer, topic.clone(), policy, |subscription| {
                    self.reply(Message::Subscribed {
                        request,
                        subscription,
                    })
                });
        let retained = if flag(&options, "get_retained") {
            self.realm.broker.retained(&topic, policy)
        } else {
            Vec::new()
        };
        self.subscriptions.insert(subscription, topic);
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

    fn handle_unsubscribe(&mut self, request: Id, subscription: Id) {
        let held = self.subscriptions.remove(&subscription).is_some();
        let confirm = || {
            self.reply(Message::Unsubscribed {
                request,
                details: None,
            })
        };
        if !(held
            && self
                .realm
                .unsubscribe(self.peer.id(), subscription, confirm))
        {
            self.reply_error(
                MessageType::Unsubscribe,
                request,
                errors::NO_SUCH_SUBSCRIPTION,
                "this session holds no such subscription",
            );
        }
    }

    async fn handle_publish(&mut self, request: Id, options: Dict, topic: &str, payload: Payload) {
        let acknowledge = flag(&options, "acknowledge");
        let Some((topic, decision)) = self
            .authorize(
                MessageType::Publish,
                request,
                topic,
                Action::Publish,
                &options,
            )
            .await
        else {
            return;
        };
        // spec, "Publisher Identification": the role's config or the publisher's request.
        let disclose = decision.disclose_publisher || flag(&options, "disclose_me");
        match self
            .realm
            .broker
            .publish(Some(&self.peer), &options, &topic, &payload, disclose)
        {
            PublishOutcome::Published(publication) => {
                if acknowledge {
                    self.reply(Message::Published {
                        request,
                        publication,
                    });
                }
            }
            // spec conversion rules: the publisher hears about a payload some subscribers could
            // not receive, acknowledged or not.
            PublishOutcome::Unconvertible(_, reason) => {
                self.reply_error(
                    MessageType::Publish,
                    request,
                    errors::INVALID_ARGUMENT,
                    &format!("the payload cannot be converted for some subscribers: {reason}"),
                );
            }
        }
    }

    async fn handle_register(&mut self, request: Id, options: Dict, procedure: &str) {
        let policy = match_policy(&options);
        let invoke = InvokePolicy::from_options(&options);
        let Some(procedure) = self
            .authorize_pattern(
                MessageType::Register,
                request,
                procedure,
                policy,
                Action::Register,
                &options,
            )
            .await
        else {
            return;
        };
        let registered =
            self.realm
                .register(&self.peer, procedure, policy, invoke, |registration| {
                    self.reply(Message::Registered {
                        request,
                        registration,
                    })
                });
        match registered {
            Ok(registration) => {
                self.registrations.insert(registration);
            }
            Err(e) => self.reply_error(MessageType::Register, request, e.uri, &e.message),
        }
    }

    fn handle_unregister(&mut self, request: Id, registration: Id) {
        let held = self.registrations.remove(&registration);
        let confirm = || {
            self.reply(Message::Unregistered {
                request,
                details: None,
            })
        };
        if !(held && self.realm.unregister(self.peer.id(), registration, confirm)) {
            self.reply_error(
                MessageType::Unregister,
                request,
                errors::NO_SUCH_REGISTRATION,
                "this session holds no such registration",
            );
        }
    }

    async fn handle_call(
        &mut self,
        request: Id,
        options: Dict,
        procedure: &str,
        payload: Payload,
    ) -> Flow {
        // Before any await: a dynamic authorizer's answer is part of the call's duration.
        let started = self.received_at;
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
                procedure,
                Action::Call,
                &options,
            )
            .await
        else {
            self.realm
                .stats
                .call_ended(CallOutcome::Refused, Some(started));
            return Flow::Continue;
        };
        if let Some(result) = self.router_procedure(&procedure, &payload).await {
            match result {
                Ok(payload) => {
                    self.realm.stats.call_ended(CallOutcome::Ok, Some(started));
                    self.reply(Message::Result {
                        request,
                        details: Dict::new(),
                        payload,
                    })
                }
                Err(e) => {
                    self.realm
                        .stats
                        .call_ended(CallOutcome::Error, Some(started));
                    self.reply(e.to_message(request, self.peer.serializer()))
                }
            }
            return Flow::Continue;
        }
        // A shutting-down node finishes the calls in flight but takes no new ones, except from its
        // own hidden sessions (the router's caller answers authorization questions until the end).
        if self.realm.is_draining() && self.visibility == Visibility::Listed {
            self.realm
                .stats
                .call_ended(CallOutcome::Refused, Some(started));
            self.reply_error(
                MessageType::Call,
                request,
                SHUTTING_DOWN,
                "the router is shutting down and takes no new calls",
            );
            return Flow::Continue;
        }
        // spec, "Caller Identification": the role's config or the caller's own request.
        let disclose = decision.disclose_caller || flag(&options, "disclose_me");
        if let Err(e) = self.realm.dealer.call(
            &self.peer, request, &options, &procedure, &payload, disclose, started,
        ) {
            self.reply(e.to_message(request, self.peer.serializer()));
        }
        Flow::Continue
    }
}
