//! One realm across the cluster, on this node, for the node's whole life: share this node's
//! interest (the distinct subscription and registration patterns of its own clients) in the
//! key-value bucket `SW_<cluster>_INTEREST`, hold the other live nodes' interest through the
//! realm's ends, and carry the traffic: events on `sw.<C>.e.<realm>.<topic>` (one NATS message
//! per publication, to the nodes that listen), calls on the callee node's `rpc` subject with
//! their answers on the caller node's `res` subject and cancellations on `ctl`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{StatusCode, Subscriber};
use futures::StreamExt as _;
use switchboard_client::{
    Args, CallError, CallOptions, CancelMode, Error, Event, EventFeed, Invocation, InvokePolicy,
    Lagged, RegisterOptions, Session, SubscribeOptions,
};
use switchboard_proto::{Dict, Id, UriMatch, Value};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamMap;
use tokio_util::sync::CancellationToken;

use super::subjects::digest_key;
use super::wire::{self, Answer};
use super::{ClusterContext, Members};
use crate::delivery::{
    DISCLOSE_KEY, HOP_NODE_KEY, HOP_PUBLICATION_KEY, PASSED_ON_TO_LINKS, hop_from_details,
};
use crate::embed::TrustedIdentity;
use crate::locks::lock;
use crate::peer::LinkPeer;
use crate::realm::authz::{CLUSTER_META_PROCEDURE, TRUSTED_ROLE};
use crate::realm::{InterestChange, Realm};

/// Events buffered for other nodes before the oldest are dropped.
const FEED_CAPACITY: usize = 65_536;
/// How many publications the event end remembers, to send one that matched several of its
/// subscriptions only once.
const RECENT_PUBLICATIONS: usize = 4096;
/// How often refused registrations are tried again and the figures refreshed.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Messages waiting for the NATS connection (events, calls and cancels, in order) before events
/// are dropped and calls fail.
const QUEUE_CAPACITY: usize = 65_536;
/// How often a node compares what it holds of the other nodes' interest with the bucket.
const RESYNC_EVERY: Duration = Duration::from_secs(5);
/// How long leaving the realm may take.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a node revokes its client's registration of a `single` procedure another node holds.
const REVOKED_REASON: &str = "wamp.error.procedure_already_exists";

/// Who holds a `single` procedure in the cluster.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Claim {
    node: String,
    incarnation: String,
    uri: String,
}

/// A pattern shared across the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Pattern {
    subscription: bool,
    uri: String,
    policy: UriMatch,
}

/// How a pattern is written in the interest bucket.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Stored {
    subscription: bool,
    uri: String,
    #[serde(rename = "match")]
    policy: String,
    invoke: String,
}

impl Pattern {
    fn digest(&self) -> String {
        digest_key(&[
            if self.subscription { "s" } else { "r" },
            self.policy.as_str(),
            &self.uri,
        ])
    }

    fn stored(&self, invoke: InvokePolicy) -> Stored {
        Stored {
            subscription: self.subscription,
            uri: self.uri.clone(),
            policy: self.policy.as_str().into(),
            invoke: invoke.as_str().into(),
        }
    }

    fn from_stored(s: Stored) -> Option<(Self, InvokePolicy)> {
        let policy = match s.policy.as_str() {
            "exact" => UriMatch::Exact,
            "prefix" => UriMatch::Prefix,
            "wildcard" => UriMatch::Wildcard,
            _ => return None,
        };
        let mut options = Dict::new();
        options.insert("invoke".into(), s.invoke.as_str().into());
        let invoke = InvokePolicy::from_options(&options);
        Some((
            Self {
                subscription: s.subscription,
                uri: s.uri,
                policy,
            },
            invoke,
        ))
    }
}

/// Whether a change of this node's interest is shared: interest of this node's own clients
/// only (listed sessions that are not links: not the router's own hidden sessions, such as the
/// management API's and this cluster's ends), and no `wamp.` procedure, which every node answers
/// itself. Subscriptions to meta events are shared: a node's meta events reach subscribers on
/// the others.
fn shared(change: &InterestChange) -> bool {
    let i = &change.interest;
    change.listed && change.link.is_none() && (i.subscription || !i.uri.starts_with("wamp."))
}

/// Runs `realm` across the cluster until `stop`, starting over after a failure.
pub(super) async fn run(
    ctx: Arc<ClusterContext>,
    realm: Arc<Realm>,
    members: watch::Receiver<Members>,
    stop: CancellationToken,
) {
    loop {
        let why = serve(&ctx, &realm, members.clone(), &stop).await;
        if stop.is_cancelled() {
            break;
        }
        // A reload that removed the realm ends its part in the cluster.
        if !ctx
            .realms
            .get(realm.name())
            .is_some_and(|r| Arc::ptr_eq(&r, &realm))
        {
            tracing::info!(realm = %realm.name(), "cluster: the realm is gone: no longer served across the cluster");
            break;
        }
        tracing::warn!(realm = %realm.name(), "cluster: {why}; starting the realm's ends again");
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The subjects and keys of one realm on this node.
struct Names {
    realm: String,
    /// The realm in keys and node subjects.
    tag: String,
}

/// Calls this node's callers make to other nodes' callees, awaiting their answers.
struct Outbound {
    next: AtomicU64,
    pending: Mutex<HashMap<u64, (String, mpsc::UnboundedSender<Answer>)>>,
    /// Messages to publish, in order (one connection keeps a caller's invocations in order).
    queue: mpsc::Sender<(String, Option<String>, bytes::Bytes)>,
    /// `sw.<C>.n.<this>.res.<realm>`.
    results: String,
    subjects: super::subjects::Subjects,
    /// The realm in node subjects.
    tag: String,
    calls_out: AtomicU64,
}

/// One other node's end here: the session that holds its registrations and makes its callers'
/// calls.
struct PeerEnd {
    session: Session,
    mirrored: HashMap<Pattern, Id>,
    conflicts: HashMap<Pattern, (InvokePolicy, String)>,
}

/// One node incarnation's stored patterns, by key, with when each was last written.
type RemoteKeys = HashMap<String, (Pattern, InvokePolicy, Instant)>;

/// Everything one serving of a realm holds.
struct State {
    ctx: Arc<ClusterContext>,
    names: Names,
    event_end: Session,
    feed: EventFeed,
    /// This node's shared patterns: how many of its sessions hold each, and the invocation
    /// policy of a registration.
    local: HashMap<Pattern, (usize, InvokePolicy)>,
    /// This node's shared patterns by their key in the interest bucket.
    own_keys: HashMap<String, Pattern>,
    /// This node's patterns whose write to the interest bucket failed, retried.
    unstored: HashSet<Pattern>,
    /// This node's keys whose removal from the interest bucket failed, retried.
    unpurged: HashSet<String>,
    /// NATS subscriptions for events, by subject, with how many patterns need each.
    listening: HashMap<String, usize>,
    subs: StreamMap<String, Subscriber>,
    /// Interest stored by other nodes, by (node, incarnation), by key.
    /// (When its latest write was seen, for the resync.)
    remote: HashMap<(String, String), RemoteKeys>,
    /// The live incarnation of each other node whose interest is held here.
    live: HashMap<String, String>,
    /// The live nodes, as the membership last said.
    members: Members,
    /// Other nodes' subscription patterns held by the event end: by how many nodes, and the
    /// subscription id.
    union: HashMap<Pattern, (usize, Id)>,
    peers: HashMap<String, PeerEnd>,
    /// Publications sent lately (one that matched several of the event end's subscriptions
    /// is sent once).
    recent: (HashSet<Id>, VecDeque<Id>),
    /// Publications received lately from other nodes (one that came on several subjects is
    /// published here once).
    received: (HashSet<Id>, VecDeque<Id>),
    outbound: Arc<Outbound>,
    /// Calls of other nodes' callers running here, by their reply subject.
    inbound: Arc<Mutex<HashMap<String, CancellationToken>>>,
    events_out: u64,
    events_in: u64,
    /// Events for other nodes dropped because the queue to NATS was full.
    events_dropped: u64,
    calls_in: u64,
}

async fn join_end(
    ctx: &ClusterContext,
    realm: &str,
    authid: String,
    node: String,
) -> Result<Session, String> {
    let identity = TrustedIdentity::new(realm, authid, TRUSTED_ROLE)
        .as_link(LinkPeer {
            node,
            relay: false,
            shares_session_ids: true,
        })
        .hidden();
    ctx.in_process
        .join(identity)
        .await
        .map_err(|e| format!("an end cannot join: {e}"))
}

async fn serve(
    ctx: &Arc<ClusterContext>,
    realm: &Arc<Realm>,
    mut members: watch::Receiver<Members>,
    stop: &CancellationToken,
) -> String {
    let names = Names {
        realm: realm.name().to_owned(),
        tag: digest_key(&[realm.name()])[..16].to_owned(),
    };
    let event_end = match join_end(
        ctx,
        &names.realm,
        format!("cluster:{}", ctx.config.name),
        format!("cluster:{}", ctx.config.name),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return e,
    };
    let subjects = ctx.subjects.clone();
    let (queue_tx, mut queue_rx) = mpsc::channel(QUEUE_CAPACITY);
    let outbound = Arc::new(Outbound {
        next: AtomicU64::new(1),
        pending: Mutex::default(),
        queue: queue_tx,
        results: format!("{}.{}", subjects.results(&ctx.node_id), names.tag),
        subjects,
        tag: names.tag.clone(),
        calls_out: AtomicU64::new(0),
    });
    let nats = ctx.nats.clone();
    let sender = async move {
        while let Some((subject, reply, payload)) = queue_rx.recv().await {
            let sent = match reply {
                Some(reply) => nats.publish_with_reply(subject, reply, payload).await,
                None => nats.publish(subject, payload).await,
            };
            if let Err(e) = sent {
                return format!("cannot publish on NATS: {e}");
            }
        }
        "the realm's ends are gone".to_owned()
    };
    let subscribe = |subject: String| {
        let nats = ctx.nats.clone();
        async move {
            nats.subscribe(subject.clone())
                .await
                .map_err(|e| format!("cannot subscribe to {subject} on NATS: {e}"))
        }
    };
    let mut rpc_in =
        match subscribe(format!("{}.{}", ctx.subjects.rpc(&ctx.node_id), names.tag)).await {
            Ok(s) => s,
            Err(e) => return e,
        };
    let mut results = match subscribe(format!("{}.>", outbound.results)).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut control = match subscribe(format!(
        "{}.{}",
        ctx.subjects.control(&ctx.node_id),
        names.tag
    ))
    .await
    {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut meta_in = match subscribe(ctx.subjects.meta(&names.tag)).await {
        Ok(s) => s,
        Err(e) => return e,
    };
    if let Err(e) = serve_meta(ctx, &names, &event_end, members.clone()).await {
        return e;
    }
    let mut watch_remote = match ctx
        .interest
        .watch_with_history(format!("{}.>", names.tag))
        .await
    {
        Ok(w) => w,
        Err(e) => return format!("cannot watch the other nodes' interest: {e}"),
    };
    let mut state = State {
        ctx: ctx.clone(),
        names,
        event_end,
        feed: EventFeed::new(FEED_CAPACITY),
        local: HashMap::new(),
        own_keys: HashMap::new(),
        unstored: HashSet::new(),
        unpurged: HashSet::new(),
        listening: HashMap::new(),
        subs: StreamMap::new(),
        remote: HashMap::new(),
        live: HashMap::new(),
        members: Members::default(),
        union: HashMap::new(),
        peers: HashMap::new(),
        recent: Default::default(),
        received: Default::default(),
        outbound,
        inbound: Arc::default(),
        events_out: 0,
        events_in: 0,
        events_dropped: 0,
        calls_in: 0,
    };
    // Every node listens for events too long for a subject (and, broadcasting, for all).
    let always = match ctx.config.fanout.unwrap_or_default() {
        crate::config::Fanout::Interest => ctx.subjects.overflow(&state.names.realm),
        crate::config::Fanout::Broadcast => ctx.subjects.all_events(&state.names.realm),
    };
    if let Err(e) = state.listen(always).await {
        return e;
    }
    let (snapshot, mut changes) = realm.watch_interest();
    let event_end = state.event_end.clone();
    let work = async {
        for change in &snapshot {
            state.local_change(change).await?;
        }
        let now = members.borrow_and_update().clone();
        state.reconcile(&now).await?;
        let mut retry = tokio::time::interval(RETRY_EVERY);
        let mut resync = tokio::time::interval(RESYNC_EVERY);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        let feed = state.feed.clone();
        loop {
            tokio::select! {
                change = changes.recv() => {
                    let Some(change) = change else { return Err::<(), String>("the realm is gone".to_owned()) };
                    state.local_change(&change).await?;
                }
                entry = watch_remote.next() => match entry {
                    Some(Ok(entry)) => state.remote_entry(entry).await?,
                    Some(Err(e)) => return Err(format!("the interest watch failed: {e}")),
                    None => return Err("the interest watch ended".to_owned()),
                },
                changed = members.changed() => {
                    if changed.is_err() {
                        return Err("the membership ended".to_owned());
                    }
                    let now = members.borrow_and_update().clone();
                    state.reconcile(&now).await?;
                }
                Some((_, message)) = state.subs.next() => state.event_in(message).await?,
                item = feed.next() => match item {
                    Some(Ok(event)) => state.event_out(event),
                    Some(Err(Lagged(n))) => tracing::warn!(
                        realm = %state.names.realm,
                        "cluster: {n} events for other nodes dropped: NATS did not keep up"
                    ),
                    None => return Err("the event end ended".to_owned()),
                },
                Some(message) = rpc_in.next() => state.call_in(message).await,
                Some(message) = results.next() => state.answer(message),
                Some(message) = control.next() => state.cancel_in(&message.payload),
                Some(message) = meta_in.next() => state.meta_in(message),
                _ = retry.tick() => {
                    state.retry().await?;
                    state.publish_figures();
                }
                _ = resync.tick() => state.resync().await?,
            }
        }
    };
    let why = tokio::select! {
        () = stop.cancelled() => "stopped".to_owned(),
        Err(why) = work => why,
        why = sender => why,
        reason = event_end.closed() => format!("the event end closed: {reason}"),
    };
    state.leave(stop.is_cancelled()).await;
    why
}

impl State {
    fn key(&self, pattern: &Pattern) -> String {
        format!(
            "{}.{}.{}.{}",
            self.names.tag,
            self.ctx.node_id,
            self.ctx.incarnation,
            pattern.digest()
        )
    }

    /// Listens for events on `subject` (once however many patterns need it).
    async fn listen(&mut self, subject: String) -> Result<(), String> {
        let n = self.listening.entry(subject.clone()).or_default();
        *n += 1;
        if *n == 1 {
            let sub = self
                .ctx
                .nats
                .subscribe(subject.clone())
                .await
                .map_err(|e| format!("cannot subscribe to {subject} on NATS: {e}"))?;
            self.subs.insert(subject, sub);
        }
        Ok(())
    }

    fn unlisten(&mut self, subject: &str) {
        if let Some(n) = self.listening.get_mut(subject) {
            *n -= 1;
            if *n == 0 {
                self.listening.remove(subject);
                // Dropping the subscriber unsubscribes.
                self.subs.remove(subject);
            }
        }
    }

    /// A session of this node took up or gave up a pattern.
    async fn local_change(&mut self, change: &InterestChange) -> Result<(), String> {
        if !shared(change) {
            return Ok(());
        }
        let i = &change.interest;
        let pattern = Pattern {
            subscription: i.subscription,
            uri: i.uri.clone(),
            policy: i.policy,
        };
        let entry = self.local.entry(pattern.clone()).or_insert((0, i.invoke));
        tracing::debug!(
            realm = %self.names.realm, uri = %pattern.uri, added = change.added,
            session = change.session.0, held = entry.0,
            "cluster: a pattern of this node's"
        );
        if change.added {
            entry.0 += 1;
            if entry.0 > 1 {
                return Ok(());
            }
            if pattern.subscription {
                let subject =
                    self.ctx
                        .subjects
                        .interest(&self.names.realm, &pattern.uri, pattern.policy);
                self.listen(subject).await?;
                // Published after the NATS subscription is flushed, so an event from another
                // node that learns of this pattern already finds the interest at the servers.
                let _ = self.ctx.nats.flush().await;
            }
            if !pattern.subscription
                && i.invoke == InvokePolicy::Single
                && !self.claim(&pattern).await?
            {
                // Another live node holds it: ours is revoked, which removes it here again.
                return self.revoke(&pattern).await;
            }
            let key = self.key(&pattern);
            self.unpurged.remove(&key);
            self.own_keys.insert(key, pattern.clone());
            self.store(&pattern, i.invoke).await;
        } else {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 > 0 {
                return Ok(());
            }
            let invoke = self.local.remove(&pattern).map(|(_, i)| i);
            self.unstored.remove(&pattern);
            let key = self.key(&pattern);
            self.own_keys.remove(&key);
            self.purge_own(key).await;
            if invoke == Some(InvokePolicy::Single) {
                self.unclaim(&pattern).await;
            }
            if pattern.subscription {
                let subject =
                    self.ctx
                        .subjects
                        .interest(&self.names.realm, &pattern.uri, pattern.policy);
                self.unlisten(&subject);
            }
        }
        Ok(())
    }

    /// Stores this node's `pattern` in the interest bucket; where that fails (JetStream busy or
    /// out of reach), it is tried again every [`RETRY_EVERY`].
    async fn store(&mut self, pattern: &Pattern, invoke: InvokePolicy) {
        let value = serde_json::to_vec(&pattern.stored(invoke)).unwrap_or_default();
        match self.ctx.interest.put(self.key(pattern), value.into()).await {
            Ok(_) => {
                self.unstored.remove(pattern);
            }
            Err(e) => {
                tracing::warn!(realm = %self.names.realm, uri = %pattern.uri, "cluster: cannot store this node's interest yet: {e}");
                self.unstored.insert(pattern.clone());
            }
        }
    }

    /// Removes one of this node's keys from the interest bucket; where that fails, it is tried
    /// again every [`RETRY_EVERY`] (a key left there would keep the other nodes holding a
    /// pattern this node no longer has).
    async fn purge_own(&mut self, key: String) {
        match self.ctx.interest.purge(&key).await {
            Ok(()) => {
                self.unpurged.remove(&key);
            }
            Err(e) => {
                tracing::warn!(realm = %self.names.realm, key = %key, "cluster: cannot remove this node's interest yet: {e}");
                self.unpurged.insert(key);
            }
        }
    }

    /// The key of the claim on a `single` procedure pattern: whichever node creates it first
    /// holds the procedure in the whole cluster (a key-value `create`, which JetStream orders).
    fn claim_key(&self, pattern: &Pattern) -> String {
        format!("{}.claim.{}", self.names.tag, pattern.digest())
    }

    /// Claims `pattern` (a `single` registration of this node's client) for this node; `false`
    /// when another live node holds it. A claim left by a node that is gone is taken over.
    async fn claim(&mut self, pattern: &Pattern) -> Result<bool, String> {
        use async_nats::jetstream::kv::CreateErrorKind;
        let key = self.claim_key(pattern);
        let mine = serde_json::to_vec(&Claim {
            node: self.ctx.node_id.clone(),
            incarnation: self.ctx.incarnation.clone(),
            uri: pattern.uri.clone(),
        })
        .unwrap_or_default();
        for _ in 0..5 {
            match self.ctx.interest.create(&key, mine.clone().into()).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot claim {} in the cluster: {e}", pattern.uri)),
            }
            let Ok(Some(entry)) = self.ctx.interest.entry(key.clone()).await else {
                continue;
            };
            let holder: Option<Claim> = serde_json::from_slice(&entry.value).ok();
            match holder {
                Some(h) if h.node == self.ctx.node_id && h.incarnation == self.ctx.incarnation => {
                    return Ok(true);
                }
                Some(h)
                    if self
                        .members
                        .get(&h.node)
                        .is_some_and(|m| m.incarnation == h.incarnation) =>
                {
                    return Ok(false);
                }
                // Held by a node that is gone (or an earlier run of this one): taken over, unless
                // someone else takes it over first.
                _ => {
                    let _ = self
                        .ctx
                        .interest
                        .purge_expect_revision(&key, Some(entry.revision))
                        .await;
                }
            }
        }
        Err(format!(
            "cannot claim {} in the cluster: it keeps changing hands",
            pattern.uri
        ))
    }

    /// Gives up this node's claim on `pattern`, if it holds it.
    async fn unclaim(&mut self, pattern: &Pattern) {
        let key = self.claim_key(pattern);
        if let Ok(Some(entry)) = self.ctx.interest.entry(key.clone()).await
            && serde_json::from_slice::<Claim>(&entry.value)
                .is_ok_and(|h| h.node == self.ctx.node_id && h.incarnation == self.ctx.incarnation)
        {
            let _ = self
                .ctx
                .interest
                .purge_expect_revision(&key, Some(entry.revision))
                .await;
        }
    }

    /// Revokes this node's registration of `pattern` (the spec's registration revocation: its
    /// callee gets UNREGISTERED with a reason), through the meta API, as a `single` procedure
    /// that another node holds.
    async fn revoke(&mut self, pattern: &Pattern) -> Result<(), String> {
        let mut options = Dict::new();
        options.insert("match".into(), pattern.policy.as_str().into());
        let lookup = self
            .event_end
            .call(
                "wamp.registration.lookup",
                Args::positional(vec![pattern.uri.as_str().into(), Value::Dict(options)]),
            )
            .await;
        let Some(id) = lookup
            .ok()
            .and_then(|a| a.args.into_iter().next())
            .and_then(|v| v.as_u64())
        else {
            return Ok(());
        };
        let callees = self
            .event_end
            .call(
                "wamp.registration.list_callees",
                Args::positional(vec![id.into()]),
            )
            .await
            .ok()
            .and_then(|a| a.args.into_iter().next());
        for session in callees
            .as_ref()
            .and_then(Value::as_list)
            .unwrap_or_default()
        {
            tracing::warn!(
                realm = %self.names.realm, uri = %pattern.uri,
                "cluster: another node holds the single procedure {}: the registration of session {} here is revoked",
                pattern.uri, session.as_u64().unwrap_or_default()
            );
            let mut kwargs = Dict::new();
            kwargs.insert("reason".into(), REVOKED_REASON.into());
            let _ = self
                .event_end
                .call(
                    "wamp.registration.remove_callee",
                    Args::new(vec![id.into(), session.clone()], kwargs),
                )
                .await;
        }
        Ok(())
    }

    /// A change of some node's stored interest.
    async fn remote_entry(
        &mut self,
        entry: async_nats::jetstream::kv::Entry,
    ) -> Result<(), String> {
        use async_nats::jetstream::kv::Operation;
        let mut parts = entry.key.splitn(4, '.');
        let (Some(_), Some(node), Some(incarnation), Some(_)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(());
        };
        let (node, incarnation) = (node.to_owned(), incarnation.to_owned());
        if node == self.ctx.node_id {
            if incarnation != self.ctx.incarnation {
                let written_ms = (entry.created.unix_timestamp_nanos() / 1_000_000) as u64;
                if entry.operation == Operation::Put && written_ms < self.ctx.started {
                    // Left behind by an earlier run of this node. (Written since this one
                    // started, it is another process with this node id, which membership
                    // reports.)
                    let _ = self.ctx.interest.purge(&entry.key).await;
                }
            } else if entry.operation == Operation::Put {
                // Stored by an earlier serving of this realm (before a restart of its ends) for
                // a pattern this node no longer has.
                if !self.own_keys.contains_key(&entry.key) {
                    self.purge_own(entry.key.clone()).await;
                }
            } else {
                // Swept while this node was cut off and counted as gone: stored again.
                let held = self.own_keys.get(&entry.key).cloned().and_then(|p| {
                    let invoke = self.local.get(&p)?.1;
                    Some((p, invoke))
                });
                if let Some((pattern, invoke)) = held {
                    self.store(&pattern, invoke).await;
                }
            }
            return Ok(());
        }
        let live = self.live.get(&node) == Some(&incarnation);
        tracing::debug!(
            realm = %self.names.realm, key = %entry.key, operation = ?entry.operation, live,
            "cluster: interest of node {node}"
        );
        match entry.operation {
            Operation::Put => {
                let Some((pattern, invoke)) = serde_json::from_slice::<Stored>(&entry.value)
                    .ok()
                    .and_then(Pattern::from_stored)
                else {
                    return Ok(());
                };
                let known = self
                    .remote
                    .entry((node.clone(), incarnation))
                    .or_default()
                    .insert(entry.key.clone(), (pattern.clone(), invoke, Instant::now()))
                    .is_some();
                if live && !known {
                    self.hold(&node, pattern, invoke).await?;
                }
            }
            Operation::Delete | Operation::Purge => {
                self.forget(&node, &incarnation, &entry.key).await?;
            }
        }
        Ok(())
    }

    /// Another node's key is gone from the bucket: its pattern is released here.
    async fn forget(&mut self, node: &str, incarnation: &str, key: &str) -> Result<(), String> {
        let live = self.live.get(node).is_some_and(|i| i == incarnation);
        let removed = self
            .remote
            .get_mut(&(node.to_owned(), incarnation.to_owned()))
            .and_then(|m| m.remove(key));
        if let (true, Some((pattern, _, _))) = (live, removed) {
            self.release(node, &pattern).await?;
        }
        Ok(())
    }

    /// Compares what this node knows of the realm's keys with the bucket, and mends the
    /// difference: a change the watch did not hand over (seen under load: a purge that reached
    /// the stream but not the watch) is applied now, and this node's own keys that are missing
    /// are stored again.
    async fn resync(&mut self) -> Result<(), String> {
        let Ok(mut keys) = self.ctx.interest.keys().await else {
            return Ok(());
        };
        let prefix = format!("{}.", self.names.tag);
        let mut present = HashSet::new();
        while let Some(key) = keys.next().await {
            match key {
                Ok(key) if key.starts_with(&prefix) => {
                    present.insert(key);
                }
                Ok(_) => {}
                // Listing was cut short: the next round mends what this one could not.
                Err(_) => return Ok(()),
            }
        }
        let missing: Vec<(String, String, String)> = self
            .remote
            .iter()
            .flat_map(|((node, inc), keys)| {
                // Written since the listing may have begun: not in it yet.
                keys.iter()
                    .filter(|(k, (_, _, seen))| {
                        !present.contains(*k) && seen.elapsed() > RESYNC_EVERY
                    })
                    .map(move |(k, _)| (node.clone(), inc.clone(), k.clone()))
            })
            .collect();
        for (node, inc, key) in missing {
            tracing::info!(realm = %self.names.realm, key = %key, "cluster: resync: a key the watch did not report gone is gone from the bucket");
            self.forget(&node, &inc, &key).await?;
        }
        let known: HashSet<&String> = self.remote.values().flat_map(|m| m.keys()).collect();
        let own_tag = format!("{prefix}{}.", self.ctx.node_id);
        let new: Vec<String> = present
            .iter()
            .filter(|k| !known.contains(k) && !k.starts_with(&own_tag))
            .filter(|k| k.split('.').nth(1) != Some("claim"))
            .cloned()
            .collect();
        for key in new {
            if let Ok(Some(entry)) = self.ctx.interest.entry(key.clone()).await {
                tracing::info!(realm = %self.names.realm, key = %key, "cluster: resync: a key the watch did not report is in the bucket");
                self.remote_entry(entry).await?;
            }
        }
        let own: Vec<(String, Pattern)> = self
            .own_keys
            .iter()
            .filter(|(k, _)| !present.contains(*k))
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        for (_, pattern) in own {
            if let Some((_, invoke)) = self.local.get(&pattern).copied() {
                self.store(&pattern, invoke).await;
            }
        }
        Ok(())
    }

    /// Holds a pattern of live node `node` here.
    async fn hold(
        &mut self,
        node: &str,
        pattern: Pattern,
        invoke: InvokePolicy,
    ) -> Result<(), String> {
        if pattern.subscription {
            if let Some((n, _)) = self.union.get_mut(&pattern) {
                *n += 1;
                return Ok(());
            }
            let options = SubscribeOptions::matching(pattern.policy);
            match self
                .event_end
                .subscribe_into(&pattern.uri, options, &self.feed)
                .await
            {
                Ok(id) => {
                    self.union.insert(pattern, (1, id));
                }
                Err(Error::Wamp { uri, .. }) => {
                    tracing::warn!(uri = %pattern.uri, "cluster: cannot hold a subscription: {uri}");
                }
                Err(e) => return Err(format!("the event end failed: {e}")),
            }
            return Ok(());
        }
        self.peer(node).await?;
        self.register(node, pattern, invoke).await
    }

    async fn register(
        &mut self,
        node: &str,
        pattern: Pattern,
        invoke: InvokePolicy,
    ) -> Result<(), String> {
        let outbound = self.outbound.clone();
        let target = node.to_owned();
        let Some(peer) = self.peers.get_mut(node) else {
            return Ok(());
        };
        if peer.mirrored.contains_key(&pattern) {
            return Ok(());
        }
        let options = RegisterOptions {
            match_policy: pattern.policy,
            invoke,
            ..RegisterOptions::default()
        };
        let registered = peer
            .session
            .register(&pattern.uri, options, move |inv| {
                call_out(&outbound, &target, inv)
            })
            .await;
        match registered {
            Ok(id) => {
                peer.conflicts.remove(&pattern);
                peer.mirrored.insert(pattern, id);
                Ok(())
            }
            Err(Error::Wamp { uri, .. }) => {
                if !peer.conflicts.contains_key(&pattern) {
                    tracing::warn!(
                        realm = %self.names.realm, uri = %pattern.uri,
                        "cluster: node {node} registered a procedure this node's dealer refuses ({uri}); retrying"
                    );
                }
                peer.conflicts.insert(pattern, (invoke, uri));
                Ok(())
            }
            Err(e) => Err(format!("the end of node {node} failed: {e}")),
        }
    }

    /// Releases a pattern of node `node`.
    async fn release(&mut self, node: &str, pattern: &Pattern) -> Result<(), String> {
        if pattern.subscription {
            if let Some((n, id)) = self.union.get_mut(pattern) {
                *n -= 1;
                if *n == 0 {
                    let id = *id;
                    self.union.remove(pattern);
                    let _ = self.event_end.unsubscribe(id).await;
                }
            }
            return Ok(());
        }
        if let Some(peer) = self.peers.get_mut(node) {
            peer.conflicts.remove(pattern);
            if let Some(id) = peer.mirrored.remove(pattern) {
                let _ = peer.session.unregister(id).await;
            }
        }
        Ok(())
    }

    /// The end of node `node`, joined where it is not yet.
    async fn peer(&mut self, node: &str) -> Result<&mut PeerEnd, String> {
        if !self.peers.contains_key(node) || self.peers[node].session.is_closed() {
            let session = join_end(
                &self.ctx,
                &self.names.realm,
                format!("cluster:{node}"),
                node.to_owned(),
            )
            .await?;
            self.peers.insert(
                node.to_owned(),
                PeerEnd {
                    session,
                    mirrored: HashMap::new(),
                    conflicts: HashMap::new(),
                },
            );
        }
        Ok(self.peers.get_mut(node).expect("inserted above"))
    }

    /// Holds the interest of the nodes that are live now, and lets go of the others'.
    async fn reconcile(&mut self, members: &Members) -> Result<(), String> {
        self.members = members.clone();
        let gone: Vec<String> = self
            .live
            .iter()
            .filter(|(node, inc)| members.get(*node).is_none_or(|m| &m.incarnation != *inc))
            .map(|(node, _)| node.clone())
            .collect();
        for node in gone {
            let inc = self.live.remove(&node).unwrap_or_default();
            tracing::debug!(realm = %self.names.realm, "cluster: node {node} ({inc}) is gone");
            tracing::info!(realm = %self.names.realm, "cluster: letting go of node {node}'s interest");
            let patterns: Vec<Pattern> = self
                .remote
                .get(&(node.clone(), inc.clone()))
                .map(|m| m.values().map(|(p, _, _)| p.clone()).collect())
                .unwrap_or_default();
            for p in patterns.iter().filter(|p| p.subscription) {
                self.release(&node, p).await?;
            }
            // Its end leaves: calls in flight to its callees fail for their callers with
            // `wamp.error.canceled`, and nothing routes there any more.
            if let Some(peer) = self.peers.remove(&node) {
                let _ = tokio::time::timeout(LEAVE_TIMEOUT, peer.session.leave()).await;
            }
            lock(&self.outbound.pending).retain(|_, (to, _)| to != &node);
            // Its stored interest stays known: a node that was only cut off for a while comes
            // back with it (the bucket does not send it again); the sweeper's purges remove it.
        }
        for (node, beat) in members.iter() {
            if node == &self.ctx.node_id || self.live.contains_key(node) {
                continue;
            }
            if !beat.realms.iter().any(|r| r == &self.names.realm) {
                continue;
            }
            self.live.insert(node.clone(), beat.incarnation.clone());
            tracing::debug!(realm = %self.names.realm, "cluster: node {node} ({}) is live", beat.incarnation);
            let held: Vec<(Pattern, InvokePolicy)> = self
                .remote
                .get(&(node.clone(), beat.incarnation.clone()))
                .map(|m| m.values().map(|(p, i, _)| (p.clone(), *i)).collect())
                .unwrap_or_default();
            for (pattern, invoke) in held {
                self.hold(node, pattern, invoke).await?;
            }
        }
        // Interest of incarnations that are gone for good.
        self.remote
            .retain(|(n, i), _| members.get(n).is_none_or(|m| &m.incarnation == i));
        Ok(())
    }

    /// Tries the refused registrations again, and the writes of this node's interest that
    /// failed.
    async fn retry(&mut self) -> Result<(), String> {
        let unstored: Vec<Pattern> = self.unstored.iter().cloned().collect();
        for pattern in unstored {
            if let Some((_, invoke)) = self.local.get(&pattern).copied() {
                self.store(&pattern, invoke).await;
            } else {
                self.unstored.remove(&pattern);
            }
        }
        let unpurged: Vec<String> = self.unpurged.iter().cloned().collect();
        for key in unpurged {
            self.purge_own(key).await;
        }
        let refused: Vec<(String, Pattern, InvokePolicy)> = self
            .peers
            .iter()
            .flat_map(|(node, p)| {
                p.conflicts
                    .iter()
                    .map(|(k, (i, _))| (node.clone(), k.clone(), *i))
            })
            .collect();
        for (node, pattern, invoke) in refused {
            self.register(&node, pattern, invoke).await?;
        }
        Ok(())
    }

    fn publish_figures(&self) {
        let local_subs = self.local.keys().filter(|p| p.subscription).count();
        let conflicts = self
            .peers
            .iter()
            .flat_map(|(node, p)| {
                p.conflicts.iter().map(move |(k, (_, why))| {
                    format!("{} ({}) of node {node}: {why}", k.uri, k.policy.as_str())
                })
            })
            .collect();
        self.ctx.table.update_realm(&self.names.realm, |v| {
            v.local_subscriptions = local_subs;
            v.local_registrations = self.local.len() - local_subs;
            v.remote_subscriptions = self.union.len();
            v.remote_registrations = self.peers.values().map(|p| p.mirrored.len()).sum();
            v.nats_subscriptions = self.listening.len();
            v.events_out = self.events_out;
            v.events_in = self.events_in;
            v.events_dropped = self.events_dropped;
            v.calls_out = self.outbound.calls_out.load(Ordering::Relaxed);
            v.calls_in = self.calls_in;
            v.conflicts = conflicts;
        });
    }

    /// An event this node's broker handed the event end: sent once to the nodes that want it.
    fn event_out(&mut self, event: Event) {
        if !remember(&mut self.recent, event.publication) {
            return;
        }
        let d = &event.details;
        let mut hop = hop_from_details(d, "publisher");
        hop.insert(HOP_NODE_KEY.into(), self.ctx.node_id.as_str().into());
        hop.insert(HOP_PUBLICATION_KEY.into(), event.publication.into());
        let mut options = Dict::new();
        options.insert("forward_for".into(), Value::List(vec![Value::Dict(hop)]));
        options.insert(
            "disclose".into(),
            d.get(DISCLOSE_KEY)
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .into(),
        );
        for key in PASSED_ON_TO_LINKS {
            if let Some(v) = d.get(key) {
                options.insert(key.into(), v.clone());
            }
        }
        let subject = self.ctx.subjects.event(&self.names.realm, &event.topic);
        let payload = wire::event(&event.topic, event.args, options);
        if self
            .outbound
            .queue
            .try_send((subject, None, payload))
            .is_ok()
        {
            self.events_out += 1;
        } else {
            // NATS does not take them as fast as they come: dropped (at most once), counted.
            self.events_dropped += 1;
            if self.events_dropped.is_power_of_two() {
                tracing::warn!(
                    realm = %self.names.realm,
                    "cluster: {} event(s) for other nodes dropped so far: NATS does not keep up",
                    self.events_dropped
                );
            }
        }
    }

    /// An event from another node, published here by the event end (never handed back to it).
    async fn event_in(&mut self, message: async_nats::Message) -> Result<(), String> {
        let Some((topic, args, options)) = wire::read_event(&message.payload) else {
            tracing::debug!(subject = %message.subject, "cluster: an event that cannot be read");
            return Ok(());
        };
        // NATS hands a message over once per matching subscription of this node (`a.b.c` and
        // `a.b.>`, say): the publication is published here once. (Publication ids are random
        // in the global scope.)
        let publication = options
            .extra
            .get("forward_for")
            .and_then(Value::as_list)
            .and_then(|hops| hops.first())
            .and_then(Value::as_dict)
            .and_then(|hop| hop.get(HOP_PUBLICATION_KEY))
            .and_then(Value::as_u64);
        if let Some(id) = publication
            && !remember(&mut self.received, id)
        {
            return Ok(());
        }
        self.events_in += 1;
        match self.event_end.publish(&topic, args, options).await {
            Ok(_) | Err(Error::Wamp { .. }) => Ok(()),
            Err(e) => Err(format!("the event end cannot publish: {e}")),
        }
    }

    /// A call from another node's caller to a callee here.
    async fn call_in(&mut self, message: async_nats::Message) {
        let Some(reply) = message.reply.as_ref().map(ToString::to_string) else {
            return;
        };
        let Some(mut m) = wire::decode(&message.payload) else {
            return;
        };
        self.calls_in += 1;
        let from = wire::text(&m, "from").to_owned();
        let procedure = wire::text(&m, "procedure").to_owned();
        let args = wire::take_args(&mut m);
        let nats = self.ctx.nats.clone();
        let refuse = |why: String| {
            let nats = nats.clone();
            let reply = reply.clone();
            async move {
                let e = CallError::new(switchboard_proto::errors::CANCELED)
                    .with_args(Args::positional(vec![why.into()]));
                let _ = nats.publish(reply, Answer::Error(e).encode()).await;
            }
        };
        if from.is_empty() || from == self.ctx.node_id {
            return refuse("a call without its caller's node".into()).await;
        }
        let session = match self.peer(&from).await {
            Ok(p) => p.session.clone(),
            Err(why) => return refuse(why).await,
        };
        let mut extra = Dict::new();
        let mut hop = match m.shift_remove("caller") {
            Some(Value::Dict(d)) => d,
            _ => Dict::new(),
        };
        hop.insert(HOP_NODE_KEY.into(), from.as_str().into());
        extra.insert("forward_for".into(), Value::List(vec![Value::Dict(hop)]));
        let options = CallOptions {
            timeout: m
                .get("timeout")
                .and_then(Value::as_u64)
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis),
            receive_progress: m.get("progress").and_then(Value::as_bool).unwrap_or(false),
            disclose_me: m.get("disclose").and_then(Value::as_bool).unwrap_or(false),
            extra,
            ..CallOptions::default()
        };
        let handle = match session.call_handle(&procedure, args, options).await {
            Ok(h) => h,
            Err(e) => {
                let _ = nats
                    .publish(reply, Answer::Error(to_call_error(e)).encode())
                    .await;
                return;
            }
        };
        let cancel = CancellationToken::new();
        lock(&self.inbound).insert(reply.clone(), cancel.clone());
        let inbound = self.inbound.clone();
        tokio::spawn(async move {
            let mut handle = handle;
            let mut canceled = false;
            loop {
                tokio::select! {
                    () = cancel.cancelled(), if !canceled => {
                        canceled = true;
                        let _ = handle.cancel(CancelMode::Kill).await;
                    }
                    progress = handle.progress() => match progress {
                        Some(Ok(args)) => {
                            let _ = nats.publish(reply.clone(), Answer::Progress(args).encode()).await;
                        }
                        Some(Err(_)) => {}
                        None => break,
                    }
                }
            }
            let answer = match handle.result().await {
                Ok(args) => Answer::Result(args),
                Err(e) => Answer::Error(to_call_error(e)),
            };
            let _ = nats.publish(reply.clone(), answer.encode()).await;
            lock(&inbound).remove(&reply);
        });
    }

    /// Another node asks for this node's part of a session meta procedure's answer: the event
    /// end calls it here (as a cluster end, it gets this node's answer alone).
    fn meta_in(&self, message: async_nats::Message) {
        let Some(reply) = message.reply.as_ref().map(ToString::to_string) else {
            return;
        };
        let Some(mut m) = wire::decode(&message.payload) else {
            return;
        };
        let procedure = wire::text(&m, "procedure").to_owned();
        if !crate::realm::meta_api::CLUSTER_WIDE.contains(&procedure.as_str()) {
            return;
        }
        let args = wire::take_args(&mut m);
        let (end, nats) = (self.event_end.clone(), self.ctx.nats.clone());
        tokio::spawn(async move {
            let value = match end.call(&procedure, args).await {
                Ok(answer) => answer.args.into_iter().next().unwrap_or_default(),
                Err(_) => Value::Null,
            };
            let mut m = Dict::new();
            m.insert("value".into(), value);
            let _ = nats.publish(reply, wire::encode(m)).await;
        });
    }

    /// A caller's node canceled a call running here.
    fn cancel_in(&self, payload: &bytes::Bytes) {
        let Some(m) = wire::decode(payload) else {
            return;
        };
        if let Some(token) = lock(&self.inbound).get(wire::text(&m, "reply")) {
            token.cancel();
        }
    }

    /// An answer for a call of this node's caller.
    fn answer(&self, message: async_nats::Message) {
        let Some(id) = message
            .subject
            .rsplit('.')
            .next()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            return;
        };
        let answer = if message.status == Some(StatusCode::NO_RESPONDERS) {
            Answer::Error(
                CallError::new(switchboard_proto::errors::CANCELED).with_args(Args::positional(
                    vec!["the callee's node is not reachable".into()],
                )),
            )
        } else {
            match Answer::decode(&message.payload) {
                Some(a) => a,
                None => return,
            }
        };
        let done = !matches!(answer, Answer::Progress(_));
        let mut pending = lock(&self.outbound.pending);
        if let Some((_, tx)) = pending.get(&id) {
            let _ = tx.send(answer);
        }
        if done {
            pending.remove(&id);
        }
    }

    /// Leaves: every end leaves, and when stopping this node's interest is removed from the bucket.
    async fn leave(&mut self, stopping: bool) {
        // Stopping, the other nodes let go of this node's interest at once. Starting the ends
        // again, the keys stay: the next serving stores what it holds then and removes the rest.
        if stopping {
            let keys: Vec<String> = self.own_keys.keys().cloned().collect();
            let purges = async {
                for key in keys {
                    let _ = self.ctx.interest.purge(key).await;
                }
            };
            let _ = tokio::time::timeout(LEAVE_TIMEOUT, purges).await;
        }
        for (_, peer) in self.peers.drain() {
            let _ = tokio::time::timeout(LEAVE_TIMEOUT, peer.session.leave()).await;
        }
        let _ = tokio::time::timeout(LEAVE_TIMEOUT, self.event_end.leave()).await;
        lock(&self.outbound.pending).clear();
        self.ctx
            .table
            .update_realm(&self.names.realm, |v| *v = Default::default());
    }
}

/// Remembers publication `id` among the last [`RECENT_PUBLICATIONS`]; `false` when it was there.
fn remember((seen, order): &mut (HashSet<Id>, VecDeque<Id>), id: Id) -> bool {
    if !seen.insert(id) {
        return false;
    }
    order.push_back(id);
    if order.len() > RECENT_PUBLICATIONS
        && let Some(old) = order.pop_front()
    {
        seen.remove(&old);
    }
    true
}

/// Registers [`CLUSTER_META_PROCEDURE`] on the event end: the router calls it with a session meta
/// procedure, its arguments and the caller, and gets the other live nodes' answers merged,
/// gathered on the realm's meta subject (those that answer within [`META_TIMEOUT`]).
async fn serve_meta(
    ctx: &Arc<ClusterContext>,
    names: &Names,
    event_end: &Session,
    members: watch::Receiver<Members>,
) -> Result<(), String> {
    let (nats, subject) = (ctx.nats.clone(), ctx.subjects.meta(&names.tag));
    let (me, realm) = (ctx.node_id.clone(), names.realm.clone());
    event_end
        .register(
            CLUSTER_META_PROCEDURE,
            RegisterOptions::default(),
            move |inv| {
                let expected = members
                    .borrow()
                    .values()
                    .filter(|m| m.node != me && m.realms.contains(&realm))
                    .count();
                let (nats, subject) = (nats.clone(), subject.clone());
                let asked = inv.positional().to_vec();
                async move {
                    let procedure = asked
                        .first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let mut m = Dict::new();
                    m.insert("procedure".into(), procedure.as_str().into());
                    let (args, kwargs) = match (asked.get(1), asked.get(2)) {
                        (Some(Value::List(a)), Some(Value::Dict(k))) => (a.clone(), k.clone()),
                        (Some(Value::List(a)), _) => (a.clone(), Dict::new()),
                        _ => (Vec::new(), Dict::new()),
                    };
                    wire::put_args(&mut m, Args::new(args, kwargs));
                    let answers = gather(&nats, subject, wire::encode(m), expected).await;
                    Ok(Args::positional(vec![merge_remote(&procedure, answers)]))
                }
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot register {CLUSTER_META_PROCEDURE}: {e}"))
}

/// How long a node waits for the others' part of a meta procedure's answer.
const META_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks every node on `subject` and collects up to `expected` answers within [`META_TIMEOUT`].
async fn gather(
    nats: &async_nats::Client,
    subject: String,
    payload: bytes::Bytes,
    expected: usize,
) -> Vec<Value> {
    if expected == 0 {
        return Vec::new();
    }
    let inbox = nats.new_inbox();
    let Ok(mut answers) = nats.subscribe(inbox.clone()).await else {
        return Vec::new();
    };
    if nats
        .publish_with_reply(subject, inbox, payload)
        .await
        .is_err()
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + META_TIMEOUT;
    while out.len() < expected {
        match tokio::time::timeout_at(deadline, answers.next()).await {
            Ok(Some(m)) if m.status.is_none() => {
                if let Some(mut d) = wire::decode(&m.payload) {
                    out.push(d.shift_remove("value").unwrap_or_default());
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    out
}

/// The other nodes' answers to one meta procedure as one: lists joined, counts added, the first
/// session details found.
fn merge_remote(procedure: &str, answers: Vec<Value>) -> Value {
    match procedure {
        "wamp.session.list" => Value::List(
            answers
                .into_iter()
                .filter_map(|v| match v {
                    Value::List(l) => Some(l),
                    _ => None,
                })
                .flatten()
                .collect(),
        ),
        "wamp.session.get" => answers
            .into_iter()
            .find(|v| matches!(v, Value::Dict(_)))
            .unwrap_or_default(),
        _ => answers.iter().filter_map(Value::as_u64).sum::<u64>().into(),
    }
}

/// The handler of another node's registration: sends the call to that node (in order, on the
/// one connection), relays its progressive results, and returns its result or error; cancels
/// it there when the call ends here first (CANCEL, timeout, the caller leaving).
fn call_out(
    outbound: &Arc<Outbound>,
    node: &str,
    inv: Invocation,
) -> impl std::future::Future<Output = Result<Args, CallError>> + Send + use<> {
    let details = inv.details();
    let id = outbound.next.fetch_add(1, Ordering::Relaxed);
    let reply = format!("{}.{id}", outbound.results);
    let (tx, mut rx) = mpsc::unbounded_channel();
    lock(&outbound.pending).insert(id, (node.to_owned(), tx));
    let mut m = Dict::new();
    m.insert("from".into(), outbound_node(outbound).into());
    m.insert("procedure".into(), inv.procedure().into());
    m.insert(
        "caller".into(),
        Value::Dict(hop_from_details(details, "caller")),
    );
    m.insert(
        "disclose".into(),
        details
            .get(DISCLOSE_KEY)
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .into(),
    );
    if let Some(t) = details.get("timeout").and_then(Value::as_u64) {
        m.insert("timeout".into(), t.into());
    }
    m.insert("progress".into(), inv.receive_progress().into());
    wire::put_args(&mut m, inv.args.clone());
    let rpc = format!("{}.{}", outbound.subjects.rpc(node), outbound.tag);
    let ctl = format!("{}.{}", outbound.subjects.control(node), outbound.tag);
    outbound.calls_out.fetch_add(1, Ordering::Relaxed);
    let queued = outbound
        .queue
        .try_send((rpc, Some(reply.clone()), wire::encode(m)))
        .map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "the cluster's queue to NATS is full",
            mpsc::error::TrySendError::Closed(_) => "the cluster is stopping",
        });
    let guard = CancelThere {
        outbound: outbound.clone(),
        id,
        ctl,
        reply,
        done: false,
    };
    async move {
        let mut guard = guard;
        let lost = |why: &str| {
            CallError::new(switchboard_proto::errors::CANCELED)
                .with_args(Args::positional(vec![why.into()]))
        };
        if let Err(why) = queued {
            guard.done = true;
            return Err(lost(why));
        }
        while let Some(answer) = rx.recv().await {
            match answer {
                Answer::Progress(args) => {
                    let _ = inv.progress(args).await;
                }
                Answer::Result(args) => {
                    guard.done = true;
                    return Ok(args);
                }
                Answer::Error(e) => {
                    guard.done = true;
                    return Err(e);
                }
            }
        }
        guard.done = true;
        Err(lost("the callee's node left the cluster"))
    }
}

/// This node's id, as the outbound results subject names it.
fn outbound_node(outbound: &Outbound) -> String {
    // `sw.<C>.n.<node>.res.<realm>`
    outbound
        .results
        .split('.')
        .nth(3)
        .unwrap_or_default()
        .to_owned()
}

/// A call sent to another node, canceled there if it ends here first.
struct CancelThere {
    outbound: Arc<Outbound>,
    id: u64,
    ctl: String,
    reply: String,
    done: bool,
}

impl Drop for CancelThere {
    fn drop(&mut self) {
        lock(&self.outbound.pending).remove(&self.id);
        if !self.done {
            let mut m = Dict::new();
            m.insert("reply".into(), self.reply.as_str().into());
            let _ = self
                .outbound
                .queue
                .try_send((self.ctl.clone(), None, wire::encode(m)));
        }
    }
}

/// A failure of a call made here as the other node's caller gets it.
fn to_call_error(e: Error) -> CallError {
    crate::node::relayed_call_error(e, "the call was lost")
}

/// Removes the stored interest of nodes that are gone: run by the live node with the lowest id,
/// for keys of incarnations that are not live and were written more than three TTLs ago (a node
/// that has just started writes its heartbeat before its interest).
pub(super) async fn sweep(
    ctx: Arc<ClusterContext>,
    members: watch::Receiver<Members>,
    stop: CancellationToken,
) {
    let ttl = Duration::from_millis(ctx.config.node_ttl_ms());
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(ttl) => {}
        }
        let live = members.borrow().clone();
        if live.keys().next() != Some(&ctx.node_id) {
            continue;
        }
        let Ok(mut keys) = ctx.interest.keys().await else {
            continue;
        };
        let mut stale = Vec::new();
        while let Some(Ok(key)) = keys.next().await {
            stale.push(key);
        }
        let holder_live =
            |node: &str, inc: &str| live.get(node).is_some_and(|m| m.incarnation == inc);
        for key in stale {
            // `<realm>.<node>.<incarnation>.<pattern>`, or `<realm>.claim.<pattern>` naming its
            // holder in its value.
            let mut parts = key.split('.');
            let (Some(_), Some(node), Some(inc)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let claim = node == "claim";
            if !claim && holder_live(node, inc) {
                continue;
            }
            let Ok(Some(entry)) = ctx.interest.entry(key.clone()).await else {
                continue;
            };
            if claim
                && serde_json::from_slice::<Claim>(&entry.value)
                    .is_ok_and(|c| holder_live(&c.node, &c.incarnation))
            {
                continue;
            }
            let age = time::OffsetDateTime::now_utc() - entry.created;
            if age > ttl * 3 {
                tracing::debug!(key = %key, "cluster: removing the interest of a node that is gone");
                let _ = ctx.interest.purge(key).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::SessionId;
    use crate::realm::Interest;

    fn change(uri: &str, subscription: bool, listed: bool, link: bool) -> InterestChange {
        InterestChange {
            added: true,
            interest: Interest {
                subscription,
                uri: uri.into(),
                policy: UriMatch::Exact,
                invoke: InvokePolicy::Single,
            },
            session: SessionId(1),
            link: link.then(|| {
                Arc::new(LinkPeer {
                    node: "n".into(),
                    relay: false,
                    shares_session_ids: true,
                })
            }),
            listed,
        }
    }

    #[test]
    fn only_clients_interest_is_shared_and_no_meta_procedure() {
        assert!(shared(&change("com.example.a", true, true, false)));
        assert!(shared(&change("com.example.a", false, true, false)));
        // a client's `switchboard.` URI is the client's
        assert!(shared(&change("switchboard.load.echo", false, true, false)));
        // meta events reach subscribers on other nodes; meta procedures are each node's
        assert!(shared(&change("wamp.session.on_join", true, true, false)));
        assert!(!shared(&change("wamp.session.count", false, true, false)));
        // the router's own hidden sessions (management API, link services, the cluster's ends)
        assert!(!shared(&change(
            "switchboard.node.get_status",
            false,
            false,
            false
        )));
        // links: their interest belongs to other routers
        assert!(!shared(&change("com.example.a", true, true, true)));
    }

    #[test]
    fn a_publication_is_remembered_until_it_is_among_the_oldest() {
        let mut recent = Default::default();
        assert!(remember(&mut recent, 1));
        assert!(!remember(&mut recent, 1));
        for id in 2..=(RECENT_PUBLICATIONS as u64 + 1) {
            assert!(remember(&mut recent, id));
        }
        assert!(
            remember(&mut recent, 1),
            "forgotten once RECENT_PUBLICATIONS came after it"
        );
    }
}
