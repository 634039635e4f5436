//! The meta events a realm publishes about itself (spec, "Session Meta API", "Registration Meta
//! API", "Subscription Meta API"): their topics and payloads. Only [`super::Realm`] emits them, from
//! the one method that makes each change, so every entry path (a socket session, an in-process
//! session, the meta API's revocations) produces the same events exactly once.

use switchboard_proto::{Dict, Id, Payload, RawValue, Serializer, UriMatch, Value};

use super::Realm;
use crate::peer::{Peer, SessionId};

/// Meta event topics.
pub mod topics {
    /// A session joined: `[details]`.
    pub const SESSION_ON_JOIN: &str = "wamp.session.on_join";
    /// A session left: `[session, authid, authrole]`.
    pub const SESSION_ON_LEAVE: &str = "wamp.session.on_leave";
    /// A registration was created: `[session, details]`.
    pub const REGISTRATION_ON_CREATE: &str = "wamp.registration.on_create";
    /// A callee was added to a registration: `[session, registration]`.
    pub const REGISTRATION_ON_REGISTER: &str = "wamp.registration.on_register";
    /// A callee was removed from a registration: `[session, registration]`.
    pub const REGISTRATION_ON_UNREGISTER: &str = "wamp.registration.on_unregister";
    /// A registration was deleted: `[session, registration]`.
    pub const REGISTRATION_ON_DELETE: &str = "wamp.registration.on_delete";
    /// A subscription was created: `[session, details]`.
    pub const SUBSCRIPTION_ON_CREATE: &str = "wamp.subscription.on_create";
    /// A subscriber was added: `[session, subscription]`.
    pub const SUBSCRIPTION_ON_SUBSCRIBE: &str = "wamp.subscription.on_subscribe";
    /// A subscriber was removed: `[session, subscription]`.
    pub const SUBSCRIPTION_ON_UNSUBSCRIBE: &str = "wamp.subscription.on_unsubscribe";
    /// A subscription was deleted: `[session, subscription]`.
    pub const SUBSCRIPTION_ON_DELETE: &str = "wamp.subscription.on_delete";
}

/// The details of a session, as `wamp.session.get` and `on_join` give them.
pub fn session_details(peer: &Peer) -> Value {
    let who = peer.identity();
    let mut d = Dict::new();
    d.insert("session".into(), who.session.0.into());
    d.insert("authid".into(), who.authid.as_str().into());
    d.insert("authrole".into(), who.authrole.as_str().into());
    d.insert("authmethod".into(), who.authmethod.into());
    d.insert("authprovider".into(), who.authprovider.into());
    d.insert("serializer".into(), peer.serializer().name().into());
    Value::Dict(d)
}

/// Which kind of entry a meta event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Subscription,
    Registration,
}

impl Kind {
    fn topics(self) -> [&'static str; 4] {
        use topics::*;
        match self {
            Kind::Subscription => [
                SUBSCRIPTION_ON_CREATE,
                SUBSCRIPTION_ON_SUBSCRIBE,
                SUBSCRIPTION_ON_UNSUBSCRIBE,
                SUBSCRIPTION_ON_DELETE,
            ],
            Kind::Registration => [
                REGISTRATION_ON_CREATE,
                REGISTRATION_ON_REGISTER,
                REGISTRATION_ON_UNREGISTER,
                REGISTRATION_ON_DELETE,
            ],
        }
    }
}

impl Realm {
    /// Publishes a meta event from the router itself (no publisher, nothing disclosed).
    fn publish_meta(&self, topic: &str, args: Vec<Value>) {
        let payload = Payload {
            args: RawValue::from_value(Serializer::Json, &Value::List(args)).ok(),
            kwargs: None,
        };
        let _ = self
            .broker
            .publish(None, &Dict::new(), topic, &payload, false);
    }

    pub(super) fn emit_joined(&self, peer: &Peer) {
        self.publish_meta(topics::SESSION_ON_JOIN, vec![session_details(peer)]);
    }

    pub(super) fn emit_left(&self, peer: &Peer) {
        let who = peer.identity();
        self.publish_meta(
            topics::SESSION_ON_LEAVE,
            vec![
                who.session.0.into(),
                who.authid.as_str().into(),
                who.authrole.as_str().into(),
            ],
        );
    }

    /// `on_create` when the subscription or registration is new, then `on_subscribe` /
    /// `on_register`.
    pub(super) fn emit_added(
        &self,
        kind: Kind,
        session: SessionId,
        id: Id,
        (uri, policy): (&str, UriMatch),
        created: bool,
    ) {
        let [on_create, on_add, _, _] = kind.topics();
        if created {
            let mut d = Dict::new();
            d.insert("id".into(), id.into());
            d.insert("uri".into(), uri.into());
            d.insert("match".into(), policy.as_str().into());
            self.publish_meta(on_create, vec![session.0.into(), Value::Dict(d)]);
        }
        self.publish_meta(on_add, vec![session.0.into(), id.into()]);
    }

    /// `on_unsubscribe` / `on_unregister`, then `on_delete` when it was the last one.
    pub(super) fn emit_removed(&self, kind: Kind, session: SessionId, id: Id, deleted: bool) {
        let [_, _, on_remove, on_delete] = kind.topics();
        self.publish_meta(on_remove, vec![session.0.into(), id.into()]);
        if deleted {
            self.publish_meta(on_delete, vec![session.0.into(), id.into()]);
        }
    }
}
