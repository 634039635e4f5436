//! The broker: topic subscriptions and event routing (spec, "Publish and Subscribe").
//!
//! Subscriptions live in a read-mostly table behind a short `RwLock`. PUBLISH runs on the
//! publisher's own task: one read lock to take a snapshot (an `Arc`) of the subscriber list, then the
//! lock is released and the EVENT is encoded once per serializer and queued into each subscriber's
//! outbox. No central broker task, so publishing scales with cores.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use switchboard_proto::codec::{self, EncodeError};
use switchboard_proto::ids::{IdSequence, random_global_id};
use switchboard_proto::{Dict, Id, Message, Payload, Serializer, Uri};

use crate::realm::{read, write};
use crate::session::peer::{Peer, SessionId};

/// One subscription: all sessions subscribed to one topic share it and its id (spec: the router
/// returns the same subscription id to every subscriber of a topic).
#[derive(Debug, Clone)]
struct Subscription {
    id: Id,
    topic: Uri,
    /// Copy-on-write so that publishers can hold a snapshot without the lock.
    subscribers: Arc<Vec<Peer>>,
}

#[derive(Debug, Default)]
struct BrokerState {
    by_topic: HashMap<Uri, Subscription>,
    topic_by_id: HashMap<Id, Uri>,
}

/// A realm's broker.
#[derive(Debug)]
pub struct Broker {
    state: RwLock<BrokerState>,
    ids: Arc<IdSequence>,
}

/// What a PUBLISH led to, for the publisher's reply.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Delivered (to zero or more subscribers) under this publication id.
    Published(Id),
    /// The payload could not be converted for subscribers using another serializer; those did not get
    /// the event. The publisher must get an ERROR.
    Unconvertible(Id, String),
}

impl Broker {
    /// An empty broker drawing subscription ids from `ids`.
    pub fn new(ids: Arc<IdSequence>) -> Self {
        Self {
            state: RwLock::new(BrokerState::default()),
            ids,
        }
    }

    /// Subscribes `peer` to `topic`; returns the subscription id (the existing one if the topic
    /// already has subscribers, including `peer` itself).
    pub fn subscribe(&self, peer: &Peer, topic: Uri) -> Id {
        let mut state = write(&self.state);
        let state = &mut *state;
        if let Some(sub) = state.by_topic.get_mut(&topic) {
            if !sub.subscribers.contains(peer) {
                Arc::make_mut(&mut sub.subscribers).push(peer.clone());
            }
            return sub.id;
        }
        let id = self.ids.next_id();
        state.topic_by_id.insert(id, topic.clone());
        state.by_topic.insert(
            topic.clone(),
            Subscription {
                id,
                topic,
                subscribers: Arc::new(vec![peer.clone()]),
            },
        );
        id
    }

    /// Removes `session` from subscription `id`; deletes the subscription when it was the last
    /// subscriber. Returns whether the session was subscribed.
    pub fn unsubscribe(&self, session: SessionId, id: Id) -> bool {
        let mut state = write(&self.state);
        let state = &mut *state;
        let Some(topic) = state.topic_by_id.get(&id) else {
            return false;
        };
        let Some(sub) = state.by_topic.get_mut(topic) else {
            return false;
        };
        let Some(pos) = sub.subscribers.iter().position(|p| p.id() == session) else {
            return false;
        };
        Arc::make_mut(&mut sub.subscribers).swap_remove(pos);
        if sub.subscribers.is_empty() {
            let topic = sub.topic.clone();
            state.by_topic.remove(&topic);
            state.topic_by_id.remove(&id);
        }
        true
    }

    /// Routes a PUBLISH from `publisher` to the subscribers of `topic`; with `disclose`, EVENT.Details
    /// carry the publisher's identity (the role's `disclose.publisher`).
    pub fn publish(
        &self,
        publisher: &Peer,
        options: &Dict,
        topic: &str,
        payload: &Payload,
        disclose: bool,
    ) -> PublishOutcome {
        let publication = random_global_id();
        // Snapshot under the read lock, route without it.
        let snapshot = {
            let state = read(&self.state);
            state
                .by_topic
                .get(topic)
                .map(|s| (s.id, Arc::clone(&s.subscribers)))
        };
        let Some((subscription, subscribers)) = snapshot else {
            return PublishOutcome::Published(publication);
        };
        // spec, "Publisher Exclusion": the publisher is excluded unless exclude_me is false.
        let exclude_me = options
            .get("exclude_me")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);

        let details = if disclose {
            identity_details(publisher, "publisher")
        } else {
            Dict::new()
        };
        let event = Message::Event {
            subscription,
            publication,
            details,
            payload: payload.clone(),
        };
        let mut encoded = EncodedOnce::new(&event);
        let mut unconvertible = None;
        for subscriber in subscribers.iter() {
            if exclude_me && subscriber == publisher {
                continue;
            }
            match encoded.get(subscriber.serializer()) {
                Ok(bytes) => {
                    if subscriber.accepts_len(bytes.len()) {
                        // A full outbox marks the subscriber as a slow consumer; it is closed, and
                        // nobody else waits for it.
                        let _ = subscriber.send(bytes);
                    } else {
                        tracing::debug!(
                            session = subscriber.id().0,
                            "event larger than the subscriber accepts; not sent"
                        );
                    }
                }
                Err(e) => unconvertible = Some(e.to_string()),
            }
        }
        match unconvertible {
            Some(reason) => PublishOutcome::Unconvertible(publication, reason),
            None => PublishOutcome::Published(publication),
        }
    }

    /// How many subscriptions exist (for tests and the meta API).
    pub fn subscription_count(&self) -> usize {
        read(&self.state).by_topic.len()
    }
}

/// The disclosed identity of `peer` under `prefix` (spec, "Publisher Identification" and "Caller
/// Identification"): `{prefix}`, `{prefix}_authid`, `{prefix}_authrole`.
pub(crate) fn identity_details(peer: &Peer, prefix: &str) -> Dict {
    let identity = peer.identity();
    let mut d = Dict::new();
    d.insert(prefix.to_owned(), identity.session.0.into());
    d.insert(format!("{prefix}_authid"), identity.authid.as_str().into());
    d.insert(
        format!("{prefix}_authrole"),
        identity.authrole.as_str().into(),
    );
    d
}

/// A message encoded lazily, at most once per serializer.
pub(crate) struct EncodedOnce<'a> {
    msg: &'a Message,
    cache: [Option<Result<Bytes, EncodeError>>; 3],
}

impl<'a> EncodedOnce<'a> {
    pub(crate) fn new(msg: &'a Message) -> Self {
        Self {
            msg,
            cache: [None, None, None],
        }
    }

    pub(crate) fn get(&mut self, serializer: Serializer) -> Result<Bytes, EncodeError> {
        let slot = match serializer {
            Serializer::Json => 0,
            Serializer::MsgPack => 1,
            Serializer::Cbor => 2,
        };
        self.cache[slot]
            .get_or_insert_with(|| codec::encode(serializer, self.msg))
            .clone()
    }
}
