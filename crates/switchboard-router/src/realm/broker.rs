//! The broker: topic subscriptions and event routing (spec, "Publish and Subscribe").
//!
//! Subscriptions (exact, prefix and wildcard, in one [`PatternIndex`]) live in a read-mostly table
//! behind a short `RwLock`. PUBLISH runs on the publisher's own task: one read lock to take
//! snapshots (`Arc`s) of the matching subscriber lists, then the lock is released and each EVENT is
//! encoded once per subscription and serializer and queued into each subscriber's
//! outbox. No central broker task, so publishing scales with cores.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use switchboard_proto::ids::{IdSequence, random_global_id};
use switchboard_proto::{Dict, Id, Message, Payload, Serializer, Uri, UriMatch};

use super::stats::{Dropped, RealmStats};
use crate::delivery::{
    EncodedEvent, Forwarded, PayloadPerSerializer, copy_passthru, identity_details, link_details,
};
use crate::locks::{read, write};
use crate::matcher::{PatternIndex, policy_index};
use crate::peer::{Peer, SendError, SessionId};

/// One subscription: all sessions subscribed to one topic pattern under one match policy share it
/// and its id (spec: the router returns the same subscription id to every subscriber).
#[derive(Debug, Clone)]
struct Subscription {
    id: Id,
    /// Copy-on-write so that publishers can hold a snapshot without the lock.
    subscribers: Arc<Vec<Peer>>,
}

#[derive(Debug, Default)]
struct BrokerState {
    subscriptions: PatternIndex<Subscription>,
    pattern_by_id: HashMap<Id, (Uri, UriMatch)>,
    /// The last event published with `retain: true`, by topic (spec, "Event Retention").
    retained: HashMap<String, RetainedEvent>,
}

/// An event kept for subscribers that ask for it with `get_retained`.
#[derive(Debug, Clone)]
pub struct RetainedEvent {
    /// The publication id.
    pub publication: Id,
    /// The publisher's identity details, if it was disclosed.
    pub details: Dict,
    /// The payload as published.
    pub payload: Payload,
}

/// A realm's broker.
#[derive(Debug)]
pub struct Broker {
    state: RwLock<BrokerState>,
    ids: Arc<IdSequence>,
    /// Event history logs (the realm's `store`); empty unless configured, so publishing pays
    /// nothing for them.
    history: Vec<HistoryLog>,
    /// The publications that links brought in lately, by origin: one that comes in again over
    /// another path of a cycle of links is not delivered twice.
    forwarded_seen: std::sync::Mutex<RecentOrigins>,
    /// The realm's counters.
    stats: Arc<RealmStats>,
}

/// How many forwarded publications a broker remembers for dropping duplicates.
const RECENT_ORIGINS: usize = 65_536;

/// A bounded set of (origin router, origin publication), oldest forgotten first.
#[derive(Debug, Default)]
struct RecentOrigins {
    set: std::collections::HashSet<(String, Id)>,
    order: std::collections::VecDeque<(String, Id)>,
}

impl RecentOrigins {
    /// Remembers `origin`; `false` when it was already there.
    fn first_time(&mut self, origin: (String, Id)) -> bool {
        if !self.set.insert(origin.clone()) {
            return false;
        }
        self.order.push_back(origin);
        if self.order.len() > RECENT_ORIGINS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// One `event-history` log: the last `limit` events on topics matching a pattern.
#[derive(Debug)]
struct HistoryLog {
    pattern: Uri,
    policy: UriMatch,
    limit: usize,
    /// Locked by publishers of matching topics for one push; never across an await.
    events: std::sync::Mutex<std::collections::VecDeque<StoredEvent>>,
}

/// An event kept in a history log.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Order of publication across the realm's logs.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The publication id.
    pub publication: Id,
    /// The concrete topic.
    pub topic: String,
    /// The payload as published.
    pub payload: Payload,
}

static HISTORY_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What a PUBLISH led to, for the publisher's reply.
#[derive(Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Delivered (to zero or more subscribers) under this publication id.
    Published(Id),
    /// The payload could not be converted for subscribers using another serializer: nobody got the
    /// event. The publisher must get an ERROR.
    Unconvertible(Id, String),
}

/// PUBLISH.Options black- and whitelists (spec, "Subscriber Black- and Whitelisting"): a receiver
/// must be on every `eligible*` list that is present and on none of the `exclude*` lists.
#[derive(Debug, Default)]
struct Receivers {
    /// The `eligible`, `eligible_authid` and `eligible_authrole` lists, each only if present.
    eligible: Option<Whitelist>,
    exclude: (Vec<u64>, Vec<String>, Vec<String>),
}

impl Receivers {
    /// The lists of `options`; `None` when there are none (the common case costs nothing).
    fn from_options(options: &Dict) -> Option<Self> {
        let ids = |key: &str| -> Option<Vec<u64>> {
            options
                .get(key)?
                .as_list()
                .map(|l| l.iter().filter_map(|v| v.as_u64()).collect())
        };
        let strs = |key: &str| -> Option<Vec<String>> {
            options.get(key)?.as_list().map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
        };
        let (e, ea, er) = (
            ids("eligible"),
            strs("eligible_authid"),
            strs("eligible_authrole"),
        );
        let (x, xa, xr) = (
            ids("exclude"),
            strs("exclude_authid"),
            strs("exclude_authrole"),
        );
        if e.is_none()
            && ea.is_none()
            && er.is_none()
            && x.is_none()
            && xa.is_none()
            && xr.is_none()
        {
            return None;
        }
        let eligible = (e.is_some() || ea.is_some() || er.is_some()).then_some(Whitelist {
            sessions: e,
            authids: ea,
            authroles: er,
        });
        Some(Self {
            eligible,
            exclude: (
                x.unwrap_or_default(),
                xa.unwrap_or_default(),
                xr.unwrap_or_default(),
            ),
        })
    }

    fn admits(&self, peer: &Peer) -> bool {
        let who = peer.identity();
        let (x, xa, xr) = &self.exclude;
        if let Some(link) = peer.link() {
            // A link is not the receiver the authid and authrole lists mean: it passes them on
            // (`link_details`), and the other router applies them to its own sessions. Session
            // ids are this router's: an `eligible` list never names a session over there, unless
            // it is a node of the same cluster, which shares them.
            return !x.contains(&who.session.0)
                && (link.shares_session_ids
                    || self.eligible.as_ref().is_none_or(|w| w.sessions.is_none()));
        }
        let excluded =
            x.contains(&who.session.0) || xa.contains(&who.authid) || xr.contains(&who.authrole);
        let eligible = self.eligible.as_ref().is_none_or(|w| {
            w.sessions
                .as_ref()
                .is_none_or(|l| l.contains(&who.session.0))
                && w.authids.as_ref().is_none_or(|l| l.contains(&who.authid))
                && w.authroles
                    .as_ref()
                    .is_none_or(|l| l.contains(&who.authrole))
        });
        eligible && !excluded
    }
}

/// The `eligible*` lists of a PUBLISH; `None` for a list that is absent.
#[derive(Debug, Default)]
struct Whitelist {
    sessions: Option<Vec<u64>>,
    authids: Option<Vec<String>>,
    authroles: Option<Vec<String>>,
}

/// A subscription a publication goes to, snapshotted under the read lock.
struct Target {
    id: Id,
    pattern_based: bool,
    subscribers: Arc<Vec<Peer>>,
}

impl Broker {
    /// An empty broker drawing subscription ids from `ids`, keeping the event history `store`
    /// configures.
    pub fn new(
        ids: Arc<IdSequence>,
        store: Option<&crate::config::StoreConfig>,
        stats: Arc<RealmStats>,
    ) -> Self {
        let history = store
            .into_iter()
            .flat_map(|s| s.event_history.iter().map(move |h| (s, h)))
            .filter_map(|(store, h)| {
                let policy = h.match_policy.map_or(UriMatch::Exact, UriMatch::from);
                Some(HistoryLog {
                    pattern: Uri::parse_loose(&h.uri, policy).ok()?,
                    policy,
                    limit: store.limit_of(h),
                    events: std::sync::Mutex::new(std::collections::VecDeque::new()),
                })
            })
            .collect();
        Self {
            state: RwLock::new(BrokerState::default()),
            ids,
            history,
            forwarded_seen: std::sync::Mutex::new(RecentOrigins::default()),
            stats,
        }
    }

    /// The stored events matching subscription `id`'s pattern, the most recent `limit` of them in
    /// publication order (`wamp.subscription.get_events`); `None` for an unknown subscription.
    pub fn history(&self, id: Id, limit: usize) -> Option<Vec<StoredEvent>> {
        let (pattern, policy) = self.get(id)?;
        let mut events: Vec<StoredEvent> = Vec::new();
        for log in &self.history {
            let log = log
                .events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            events.extend(
                log.iter()
                    .filter(|e| pattern.matches(policy, &e.topic))
                    .cloned(),
            );
        }
        events.sort_by_key(|e| e.seq);
        events.dedup_by_key(|e| e.seq);
        let skip = events.len().saturating_sub(limit);
        Some(events.split_off(skip))
    }

    /// Subscribes `peer` to `topic` under `policy`; returns the subscription id (the existing one
    /// if the pattern already has subscribers, including `peer` itself) and whether it is new.
    ///
    /// `confirm` runs with the subscription id before any publisher can reach the new
    /// subscriber (the registry stays locked), so that SUBSCRIBED is queued ahead of the first
    /// EVENT: clients such as Autobahn|JS fail the session on an EVENT for a subscription they do
    /// not know yet. It must not block: queue the message and return.
    pub(super) fn subscribe(
        &self,
        peer: &Peer,
        topic: Uri,
        policy: UriMatch,
        confirm: impl FnOnce(Id),
    ) -> (Id, bool) {
        let mut state = write(&self.state);
        let state = &mut *state;
        if let Some(sub) = state.subscriptions.get_mut(&topic, policy) {
            if !sub.subscribers.contains(peer) {
                Arc::make_mut(&mut sub.subscribers).push(peer.clone());
            }
            confirm(sub.id);
            return (sub.id, false);
        }
        let id = self.ids.next_id();
        state.pattern_by_id.insert(id, (topic.clone(), policy));
        state.subscriptions.insert(
            topic,
            policy,
            Subscription {
                id,
                subscribers: Arc::new(vec![peer.clone()]),
            },
        );
        confirm(id);
        (id, true)
    }

    /// Removes `session` from subscription `id`; deletes the subscription when it was the last
    /// subscriber. Returns the removed subscriber and whether the subscription was deleted, or
    /// `None` when the session was not subscribed.
    ///
    /// `confirm` runs with the removed subscriber while the registry is still locked: every
    /// EVENT routed to it before is queued by then (publishers queue under the read lock), so the
    /// UNSUBSCRIBED it queues is the last word on the subscription. It must not block.
    pub(super) fn unsubscribe(
        &self,
        session: SessionId,
        id: Id,
        confirm: impl FnOnce(&Peer),
    ) -> Option<(Peer, bool)> {
        let mut state = write(&self.state);
        let state = &mut *state;
        let (topic, policy) = state.pattern_by_id.get(&id).cloned()?;
        let sub = state.subscriptions.get_mut(&topic, policy)?;
        let pos = sub.subscribers.iter().position(|p| p.id() == session)?;
        let removed = Arc::make_mut(&mut sub.subscribers).remove(pos);
        let deleted = sub.subscribers.is_empty();
        if deleted {
            state.subscriptions.remove(&topic, policy);
            state.pattern_by_id.remove(&id);
        }
        confirm(&removed);
        Some((removed, deleted))
    }

    /// Subscription ids by match policy (`wamp.subscription.list`).
    pub fn ids_by_policy(&self) -> [Vec<Id>; 3] {
        let state = read(&self.state);
        let mut out: [Vec<Id>; 3] = Default::default();
        for (id, (_, policy)) in &state.pattern_by_id {
            out[policy_index(*policy)].push(*id);
        }
        out
    }

    /// The subscription of exactly this pattern and policy (`wamp.subscription.lookup`).
    pub fn lookup(&self, topic: &str, policy: UriMatch) -> Option<Id> {
        read(&self.state)
            .subscriptions
            .get(topic, policy)
            .map(|s| s.id)
    }

    /// Every subscription an event to `topic` would reach (`wamp.subscription.match`).
    pub fn matching(&self, topic: &str) -> Vec<Id> {
        let mut ids = Vec::new();
        read(&self.state)
            .subscriptions
            .for_each_match(topic, |_, _, s| ids.push(s.id));
        ids
    }

    /// The pattern and policy of subscription `id` (`wamp.subscription.get`).
    pub fn get(&self, id: Id) -> Option<(Uri, UriMatch)> {
        read(&self.state).pattern_by_id.get(&id).cloned()
    }

    /// The subscribers of subscription `id` (`wamp.subscription.list_subscribers`).
    pub fn subscribers(&self, id: Id) -> Option<Vec<Peer>> {
        let state = read(&self.state);
        let (topic, policy) = state.pattern_by_id.get(&id)?;
        state
            .subscriptions
            .get(topic, *policy)
            .map(|s| s.subscribers.to_vec())
    }

    /// Routes a PUBLISH from `publisher` to the subscriptions matching `topic` (exact, prefix and
    /// wildcard alike); with `disclose`, EVENT.Details carry the publisher's identity (the role's
    /// `disclose.publisher`).
    pub fn publish(
        &self,
        publisher: Option<&Peer>,
        options: &Dict,
        topic: &str,
        payload: &Payload,
        disclose: bool,
    ) -> PublishOutcome {
        let publication = random_global_id();
        // The read lock is held until every EVENT is queued: a subscribe or unsubscribe (write
        // lock) queues its SUBSCRIBED or UNSUBSCRIBED either before this publication's EVENTs
        // or after all of them, never in between (see `subscribe`).
        let state = read(&self.state);
        let mut targets: Vec<Target> = Vec::new();
        state.subscriptions.for_each_match(topic, |_, policy, sub| {
            targets.push(Target {
                id: sub.id,
                pattern_based: policy != UriMatch::Exact,
                subscribers: Arc::clone(&sub.subscribers),
            });
        });
        // spec, "Publisher Exclusion": the publisher is excluded unless exclude_me is false.
        let exclude_me = options
            .get("exclude_me")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        let receivers = Receivers::from_options(options);
        // A link's PUBLISH for a session of another router: never back to where it came from.
        let forwarded = publisher.and_then(|p| Forwarded::of(options, p));
        // The same publication over a second path of a cycle of `tree` links: already delivered.
        if let Some(origin) = forwarded.as_ref().and_then(Forwarded::origin)
            && !crate::locks::lock(&self.forwarded_seen).first_time(origin)
        {
            tracing::debug!(
                topic,
                "a forwarded event came in again over another path; dropped"
            );
            return PublishOutcome::Published(publication);
        }
        let receives = |subscriber: &Peer| {
            !(exclude_me && Some(subscriber) == publisher)
                && receivers.as_ref().is_none_or(|r| r.admits(subscriber))
                && forwarded.as_ref().is_none_or(|f| f.may_reach(subscriber))
        };
        let disclosed = |publisher: Option<&Peer>| match (publisher, &forwarded) {
            (Some(_), Some(f)) if disclose => {
                let mut d = f.identity_details("publisher");
                d.insert("forward_for".into(), f.hops());
                d
            }
            (Some(p), None) if disclose => identity_details(p, "publisher"),
            _ => Dict::new(),
        };
        // spec, serializer conversion: the payload is converted once for each serializer among the
        // receivers, before anyone gets the event; a payload that does not convert for some refuses
        // the publication for all (the decoders' nesting limit is checked on the way in, so this
        // is rare).
        let mut serializers: [Option<Serializer>; 3] = [None; 3];
        if !payload.is_empty() {
            let mut found = 0;
            for subscriber in targets.iter().flat_map(|t| t.subscribers.iter()) {
                let serializer = Some(subscriber.serializer());
                if !serializers.contains(&serializer) && receives(subscriber) {
                    serializers[found] = serializer;
                    found += 1;
                    if found == serializers.len() {
                        break;
                    }
                }
            }
        }
        let payloads =
            match PayloadPerSerializer::convert(payload, serializers.into_iter().flatten()) {
                Ok(p) => p,
                Err(e) => return PublishOutcome::Unconvertible(publication, e.to_string()),
            };
        let event_with = |target: &Target, mut details: Dict| {
            copy_passthru(options, &mut details);
            // spec, "Pattern-based Subscription": events of a pattern subscription name their topic.
            if target.pattern_based {
                details.insert("topic".into(), topic.into());
            }
            Message::Event {
                subscription: target.id,
                publication,
                details,
                payload: payload.clone(),
            }
        };
        let mut delivered = 0u64;
        for target in &targets {
            let event = event_with(target, disclosed(publisher));
            let mut encoded = EncodedEvent::new(&event, &payloads);
            // Links get other details (always who published), so their EVENT is encoded apart.
            let mut links: Vec<&Peer> = Vec::new();
            for subscriber in target.subscribers.iter() {
                if !receives(subscriber) {
                    continue;
                }
                if subscriber.link().is_some() {
                    links.push(subscriber);
                    continue;
                }
                delivered += deliver_event(&mut encoded, subscriber, false, &self.stats);
            }
            if !links.is_empty() {
                let mut details =
                    link_details(publisher, forwarded.as_ref(), "publisher", disclose);
                for key in crate::delivery::PASSED_ON_TO_LINKS {
                    if let Some(list) = options.get(key) {
                        details.insert(key.to_owned(), list.clone());
                    }
                }
                let event = event_with(target, details);
                let mut encoded = EncodedEvent::new(&event, &payloads);
                for subscriber in links {
                    delivered += deliver_event(&mut encoded, subscriber, true, &self.stats);
                }
            }
        }
        drop(state);
        self.stats.published(publisher.is_some(), delivered);
        if !self.history.is_empty() {
            let stored = StoredEvent {
                seq: HISTORY_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                timestamp_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                publication,
                topic: topic.to_owned(),
                payload: payload.clone(),
            };
            for log in self
                .history
                .iter()
                .filter(|l| l.pattern.matches(l.policy, topic))
            {
                let mut events = log
                    .events
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                events.push_back(stored.clone());
                while events.len() > log.limit {
                    events.pop_front();
                }
            }
        }
        if options.get("retain").and_then(|v| v.as_bool()) == Some(true) {
            let details = disclosed(publisher);
            write(&self.state).retained.insert(
                topic.to_owned(),
                RetainedEvent {
                    publication,
                    details,
                    payload: payload.clone(),
                },
            );
        }
        PublishOutcome::Published(publication)
    }
}

/// Queues an EVENT for `subscriber` (a router link when `link`) in its serializer: 1 when it
/// was queued, else 0 (a drop is counted in `stats`).
#[inline]
fn deliver_event(
    encoded: &mut EncodedEvent<'_>,
    subscriber: &Peer,
    link: bool,
    stats: &RealmStats,
) -> u64 {
    let Some(bytes) = encoded.get(subscriber.serializer()) else {
        return 0;
    };
    if !subscriber.accepts_len(bytes.len()) {
        tracing::debug!(
            session = subscriber.id().0,
            "event larger than the subscriber accepts; not sent"
        );
        return 0;
    }
    if link {
        return match subscriber.send_event_to_link(bytes) {
            Ok(()) => 1,
            Err(SendError::Full) => {
                stats.dropped(Dropped::Link);
                0
            }
            Err(SendError::Closed) => 0,
        };
    }
    // A full outbox marks the subscriber as a slow consumer; it is closed, and nobody else
    // waits for it.
    match subscriber.send(bytes) {
        Ok(()) => 1,
        Err(SendError::Full) => {
            stats.dropped(Dropped::SlowConsumer);
            0
        }
        Err(SendError::Closed) => 0,
    }
}

impl Broker {
    /// The retained events whose topics match `pattern` under `policy`, for a new subscription
    /// with `get_retained`.
    pub fn retained(&self, pattern: &Uri, policy: UriMatch) -> Vec<(String, RetainedEvent)> {
        let state = read(&self.state);
        if policy == UriMatch::Exact {
            return state
                .retained
                .get(pattern.as_str())
                .map(|e| vec![(pattern.to_string(), e.clone())])
                .unwrap_or_default();
        }
        state
            .retained
            .iter()
            .filter(|(topic, _)| pattern.matches(policy, topic))
            .map(|(t, e)| (t.clone(), e.clone()))
            .collect()
    }

    /// How many subscriptions exist (for tests and the meta API).
    pub fn subscription_count(&self) -> usize {
        read(&self.state).subscriptions.len()
    }
}
