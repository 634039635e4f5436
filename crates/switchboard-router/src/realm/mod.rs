//! Realms: each is a routing domain with its own broker, dealer, roles and sessions. The
//! [`RealmRegistry`] maps names to realms and can be swapped whole at runtime (the hook hot reload and
//! the management API will use).
//!
//! The realm is the one place where a session's standing in it changes: join and leave, subscribe
//! and unsubscribe, register and unregister, and the meta API's revocations all go through a
//! [`Realm`] method, which publishes the matching meta event right there ([`meta_events`]). The
//! broker and the dealer keep their membership functions private to this module, so no entry path
//! (a socket session, an in-process session, the meta API) can change a table without its event.

pub mod authz;
pub(crate) mod broker;
pub(crate) mod dealer;
pub mod meta_api;
pub mod meta_events;
pub mod router_caller;
pub mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tokio::sync::mpsc;

use switchboard_proto::ids::IdSequence;
use switchboard_proto::{Dict, Id, Message, Uri, UriMatch, Value};

use crate::config::RealmConfig;
use crate::delivery::send_to;
use crate::locks::{lock, read, write};
use crate::peer::{LinkPeer, Peer, SessionId};
use authz::Role;
use broker::Broker;
use dealer::{CallError, Dealer};
use meta_events::Kind;
use switchboard_proto::options::InvokePolicy;

/// The node's internal realm behind its control socket (`switchboard status`, `stop`): not in
/// the config, not counted in the metrics.
pub const CONTROL_REALM: &str = "switchboard.control";

/// The error a listed session's new CALL gets while the node shuts down.
pub const SHUTTING_DOWN: &str = "switchboard.error.shutting_down";

/// Whether a session shows in the realm's meta API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Listed by `wamp.session.list`, announced by `on_join` and `on_leave`, and reachable by
    /// `wamp.session.kill`: every client session.
    Listed,
    /// Not in the session table and without session meta events: the router's own sessions (its
    /// caller for dynamic authenticators and authorizers), and in-process sessions whose embedder
    /// asks for it. Its subscriptions and registrations still have their meta events.
    Hidden,
}

/// One realm.
#[derive(Debug)]
pub struct Realm {
    name: String,
    /// Topic subscriptions and event routing.
    pub(crate) broker: Broker,
    /// Procedure registrations and call routing.
    pub(crate) dealer: Dealer,
    /// Counters for the node's metrics, shared with the broker and the dealer.
    pub stats: Arc<stats::RealmStats>,
    /// The roles, replaced whole when a config reload changes them.
    roles: RwLock<Arc<HashMap<String, Arc<Role>>>>,
    /// Bumped each time the roles are replaced: a session whose role was looked up under an
    /// older epoch looks it up again, and drops the decisions it cached, before its next action.
    roles_epoch: AtomicU64,
    /// Listed sessions. Written on join/leave only.
    sessions: RwLock<HashMap<SessionId, Peer>>,
    /// Hidden sessions: not in the meta API, but still sessions the node drains at shutdown.
    hidden: RwLock<HashMap<SessionId, Peer>>,
    /// Set when the node starts shutting down: new sessions and new calls are refused.
    draining: AtomicBool,
    /// The router's own caller session (`router_caller`), joined by the node at start.
    caller: OnceLock<switchboard_client::Session>,
    /// Who is told of every subscribe, unsubscribe, register and unregister: the node's links.
    /// Unbounded, so routing never waits for a watcher; set only while a link watches.
    watchers: Mutex<Vec<mpsc::UnboundedSender<InterestChange>>>,
    watched: AtomicBool,
    /// Set for a realm a template created: how long it stays once its last session left.
    linger: Option<std::time::Duration>,
    /// Sessions the node runs for this realm beside its caller (the watcher that republishes its
    /// meta events): they last as long as the realm.
    companions: Mutex<Vec<switchboard_client::Session>>,
    /// Handshakes in progress that asked for this realm: a realm a template created is not
    /// removed while a client is still authenticating to join it.
    joining: std::sync::atomic::AtomicUsize,
}

/// A handshake in progress for a realm (see [`Realm::joining`]).
pub struct Joining(Arc<Realm>);

impl Drop for Joining {
    fn drop(&mut self) {
        self.0.joining.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a subscription or registration is about, as a link mirrors it on another router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interest {
    /// A subscription (`true`) or a registration.
    pub subscription: bool,
    /// The topic or procedure pattern.
    pub uri: String,
    /// How it matches.
    pub policy: UriMatch,
    /// How calls are shared among its callees (registrations; `single` for subscriptions).
    pub invoke: InvokePolicy,
}

/// One session taking up or giving up an interest.
#[derive(Debug, Clone)]
pub struct InterestChange {
    /// Taken up (`true`) or given up.
    pub added: bool,
    /// What.
    pub interest: Interest,
    /// By whom.
    pub session: SessionId,
    /// Set when that session is a router link.
    pub link: Option<Arc<LinkPeer>>,
    /// Whether that session is listed (a client's), not one of the router's hidden sessions.
    pub listed: bool,
}

impl Realm {
    /// A realm from its config; `ids` is the router-scope id sequence shared by all realms.
    pub fn new(cfg: &RealmConfig, ids: Arc<IdSequence>) -> Self {
        let stats = Arc::new(stats::RealmStats::default());
        Self {
            name: cfg.name.clone(),
            broker: Broker::new(ids.clone(), cfg.store.as_ref(), stats.clone()),
            dealer: Dealer::new(ids, stats.clone()),
            stats,
            roles: RwLock::new(Arc::new(compile_roles(&cfg.roles))),
            roles_epoch: AtomicU64::new(0),
            sessions: RwLock::new(HashMap::new()),
            hidden: RwLock::new(HashMap::new()),
            draining: AtomicBool::new(false),
            caller: OnceLock::new(),
            watchers: Mutex::new(Vec::new()),
            watched: AtomicBool::new(false),
            linger: None,
            companions: Mutex::new(Vec::new()),
            joining: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Marks a handshake for this realm in progress until the returned guard is dropped.
    pub fn joining(self: &Arc<Self>) -> Joining {
        self.joining.fetch_add(1, Ordering::AcqRel);
        Joining(self.clone())
    }

    /// A realm named `name` created from a template's config (see [`RealmRegistry::get_or_create`]).
    pub fn from_template(template: &RealmConfig, name: &str, ids: Arc<IdSequence>) -> Self {
        let config = RealmConfig {
            name: name.to_owned(),
            template: None,
            ..template.clone()
        };
        let linger = template
            .template
            .as_ref()
            .map_or(0.0, |t| t.linger.max(0.0));
        Self {
            linger: Some(std::time::Duration::from_secs_f64(linger)),
            ..Self::new(&config, ids)
        }
    }

    /// For a realm a template created: how long it stays once its last session left.
    pub fn linger(&self) -> Option<std::time::Duration> {
        self.linger
    }

    /// Keeps `session` (one the node runs for this realm) as long as the realm.
    pub fn hold(&self, session: switchboard_client::Session) {
        lock(&self.companions).push(session);
    }

    /// Every subscription and registration with its sessions, as changes that add them, and a
    /// receiver of every change from now on (the watch is taken before the snapshot, so applying
    /// the snapshot, then the changes, ends in the realm's state). Dropping the receiver ends the
    /// watch.
    pub fn watch_interest(&self) -> (Vec<InterestChange>, mpsc::UnboundedReceiver<InterestChange>) {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut watchers = lock(&self.watchers);
            watchers.retain(|w| !w.is_closed());
            watchers.push(tx);
            self.watched.store(true, Ordering::Release);
        }
        let mut snapshot = Vec::new();
        let change = |interest: &Interest, peer: &Peer| InterestChange {
            added: true,
            interest: interest.clone(),
            session: peer.id(),
            link: peer.identity().link.clone(),
            listed: peer.identity().listed,
        };
        for id in self.broker.ids_by_policy().into_iter().flatten() {
            let (Some((uri, policy)), Some(peers)) =
                (self.broker.get(id), self.broker.subscribers(id))
            else {
                continue;
            };
            let interest = Interest {
                subscription: true,
                uri: uri.to_string(),
                policy,
                invoke: InvokePolicy::Single,
            };
            snapshot.extend(peers.iter().map(|p| change(&interest, p)));
        }
        for id in self.dealer.ids_by_policy().into_iter().flatten() {
            let (Some((uri, policy, invoke)), Some(peers)) =
                (self.dealer.get(id), self.dealer.callees(id))
            else {
                continue;
            };
            let interest = Interest {
                subscription: false,
                uri: uri.to_string(),
                policy,
                invoke,
            };
            snapshot.extend(peers.iter().map(|p| change(&interest, p)));
        }
        (snapshot, rx)
    }

    /// Tells the watchers of a change (nothing to do while nobody watches).
    fn tell_watchers(&self, added: bool, interest: impl FnOnce() -> Option<Interest>, peer: &Peer) {
        if !self.watched.load(Ordering::Acquire) {
            return;
        }
        let Some(interest) = interest() else {
            return;
        };
        let change = InterestChange {
            added,
            interest,
            session: peer.id(),
            link: peer.identity().link.clone(),
            listed: peer.identity().listed,
        };
        let mut watchers = lock(&self.watchers);
        watchers.retain(|w| w.send(change.clone()).is_ok());
        self.watched.store(!watchers.is_empty(), Ordering::Release);
    }

    /// The interest of subscription `id` (before it is gone).
    fn subscription_interest(&self, id: Id) -> Option<Interest> {
        let (uri, policy) = self.broker.get(id)?;
        Some(Interest {
            subscription: true,
            uri: uri.to_string(),
            policy,
            invoke: InvokePolicy::Single,
        })
    }

    /// The interest of registration `id` (before it is gone).
    fn registration_interest(&self, id: Id) -> Option<Interest> {
        let (uri, policy, invoke) = self.dealer.get(id)?;
        Some(Interest {
            subscription: false,
            uri: uri.to_string(),
            policy,
            invoke,
        })
    }

    /// The realm's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role named `name`, if the realm defines it.
    pub fn role(&self, name: &str) -> Option<Arc<Role>> {
        read(&self.roles).get(name).cloned()
    }

    /// The names of the realm's roles, sorted.
    pub fn role_names(&self) -> Vec<String> {
        let mut names: Vec<String> = read(&self.roles).keys().cloned().collect();
        names.sort();
        names
    }

    /// The epoch of the realm's roles (see [`Self::replace_roles`]): read it before looking up a
    /// role, and look the role up again when it has moved on.
    pub fn roles_epoch(&self) -> u64 {
        self.roles_epoch.load(Ordering::Acquire)
    }

    /// Replaces the realm's roles (a config reload): every session's next action is checked
    /// against the new permissions. Sessions whose role is gone are closed with GOODBYE
    /// `wamp.close.killed`; returns how many.
    pub fn replace_roles(&self, roles: &[crate::config::RoleConfig]) -> usize {
        let roles = Arc::new(compile_roles(roles));
        *write(&self.roles) = roles.clone();
        self.roles_epoch.fetch_add(1, Ordering::AcqRel);
        let orphans: Vec<Peer> = self
            .sessions()
            .into_iter()
            .filter(|p| !roles.contains_key(&p.identity().authrole))
            .collect();
        for peer in &orphans {
            let text = format!(
                "role {:?} was removed from realm {:?}",
                peer.identity().authrole,
                self.name
            );
            peer.kill(switchboard_proto::errors::CLOSE_KILLED, Some(text));
        }
        orphans.len()
    }

    /// Ends every session of the realm with GOODBYE `reason` (the realm is being removed): the
    /// listed ones and the hidden ones (the router's own caller of the realm, a watcher of its
    /// meta events); the realm admits no new session from now on. Returns how many listed
    /// sessions were told.
    pub fn close_all(&self, reason: &str, message: &str) -> usize {
        self.start_draining();
        let listed = self.sessions();
        let hidden: Vec<Peer> = read(&self.hidden).values().cloned().collect();
        for peer in listed.iter().chain(&hidden) {
            peer.kill(reason, Some(message.to_owned()));
        }
        listed.len()
    }

    /// Admits a session that passed the handshake (`on_join` for a listed one).
    pub fn join(&self, peer: &Peer, visibility: Visibility) {
        match visibility {
            Visibility::Listed => {
                write(&self.sessions).insert(peer.id(), peer.clone());
                self.stats
                    .session_opened(peer.identity().authmethod, peer.serializer());
                self.emit_joined(peer);
            }
            Visibility::Hidden => {
                write(&self.hidden).insert(peer.id(), peer.clone());
            }
        }
    }

    /// Removes a session that ended and everything it held: its subscriptions and registrations
    /// (with their meta events), the calls it owed answers to (their callers get ERROR
    /// `wamp.error.canceled`) and the calls it was waiting for; then `on_leave` for a listed one.
    /// The session's own task passes the ids it holds, since it owns that list.
    pub fn leave(
        &self,
        peer: &Peer,
        visibility: Visibility,
        subscriptions: impl IntoIterator<Item = Id>,
        registrations: impl IntoIterator<Item = Id>,
    ) {
        for id in subscriptions {
            self.unsubscribe(peer.id(), id, || {});
        }
        for id in registrations {
            self.unregister(peer.id(), id, || {});
        }
        self.dealer.session_left(peer);
        match visibility {
            Visibility::Listed => {
                {
                    // Its bytes move to the realm's total while no scrape reads the sessions
                    // (`Self::message_bytes`), so that the total never goes down.
                    let mut sessions = write(&self.sessions);
                    sessions.remove(&peer.id());
                    let traffic = peer.traffic();
                    self.stats
                        .session_left(peer.lasted(), traffic.bytes_in, traffic.bytes_out);
                }
                self.emit_left(peer);
            }
            Visibility::Hidden => {
                write(&self.hidden).remove(&peer.id());
            }
        }
    }

    /// The node is shutting down: from now on the realm admits no session and routes no new call
    /// from a listed session (`SHUTTING_DOWN`); calls in flight go on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the node is shutting down (see [`Self::start_draining`]).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// How many calls the realm's sessions still owe an answer to.
    pub fn calls_in_flight(&self) -> usize {
        let count = |table: &RwLock<HashMap<SessionId, Peer>>| -> usize {
            read(table)
                .values()
                .map(Peer::pending_invocation_count)
                .sum()
        };
        count(&self.sessions) + count(&self.hidden)
    }

    /// The node's shutdown grace is over: every call still in flight fails for its caller with
    /// `wamp.error.canceled` and its callee is interrupted. Returns how many were cut off.
    pub fn cut_off_calls(&self) -> usize {
        let mut callees = self.sessions();
        callees.extend(read(&self.hidden).values().cloned());
        callees
            .iter()
            .map(|callee| self.dealer.cut_off(callee))
            .sum()
    }

    /// Subscribes `peer` to `topic` under `policy`; returns the subscription id (shared by every
    /// subscriber of the same pattern and policy). `confirm` queues the SUBSCRIBED: it runs
    /// before any EVENT of the subscription can be queued (see `Broker::subscribe`).
    pub fn subscribe(
        &self,
        peer: &Peer,
        topic: Uri,
        policy: UriMatch,
        confirm: impl FnOnce(Id),
    ) -> Id {
        let (id, created) = self.broker.subscribe(peer, topic.clone(), policy, confirm);
        self.tell_watchers(true, || self.subscription_interest(id), peer);
        self.emit_added(
            Kind::Subscription,
            peer.id(),
            id,
            (topic.as_str(), policy),
            created,
        );
        id
    }

    /// Removes `session` from subscription `id`; `false` when it was not subscribed. `confirm`
    /// queues the UNSUBSCRIBED: it runs after every EVENT of the subscription is queued to the
    /// session (see `Broker::unsubscribe`).
    pub fn unsubscribe(&self, session: SessionId, id: Id, confirm: impl FnOnce()) -> bool {
        // Read before the change, whether or not anyone watches yet: a watch taken meanwhile
        // must hear of it.
        let interest = self.subscription_interest(id);
        let Some((peer, deleted)) = self.broker.unsubscribe(session, id, |_| confirm()) else {
            return false;
        };
        self.tell_watchers(false, || interest, &peer);
        self.emit_removed(Kind::Subscription, session, id, deleted);
        true
    }

    /// Registers `procedure` under `policy` for `peer`, joining a shared registration when
    /// `invoke` allows it. `confirm` queues the REGISTERED: it runs before any INVOCATION of the
    /// registration can be queued (see `Dealer::register`).
    pub fn register(
        &self,
        peer: &Peer,
        procedure: Uri,
        policy: UriMatch,
        invoke: InvokePolicy,
        confirm: impl FnOnce(Id),
    ) -> Result<Id, CallError> {
        let (id, created) =
            self.dealer
                .register(peer, procedure.clone(), policy, invoke, confirm)?;
        self.tell_watchers(true, || self.registration_interest(id), peer);
        self.emit_added(
            Kind::Registration,
            peer.id(),
            id,
            (procedure.as_str(), policy),
            created,
        );
        Ok(id)
    }

    /// Removes `session` as a callee of registration `id`; `false` when it was not one.
    /// `confirm` queues the UNREGISTERED: it runs after every INVOCATION of the registration is
    /// queued to the session (see `Dealer::unregister`).
    pub fn unregister(&self, session: SessionId, id: Id, confirm: impl FnOnce()) -> bool {
        let interest = self.registration_interest(id);
        let Some((peer, deleted)) = self.dealer.unregister(session, id, |_| confirm()) else {
            return false;
        };
        self.tell_watchers(false, || interest, &peer);
        self.emit_removed(Kind::Registration, session, id, deleted);
        true
    }

    /// Takes subscription `id` away from `session` (spec, "Subscription Revocation"): the
    /// subscriber gets UNSUBSCRIBED with the subscription and `reason` in its details. `false`
    /// when the session was not subscribed.
    pub fn revoke_subscription(&self, id: Id, session: SessionId, reason: Option<&Value>) -> bool {
        // Read before the change, whether or not anyone watches yet: a watch taken meanwhile
        // must hear of it.
        let interest = self.subscription_interest(id);
        let revoked = |subscriber: &Peer| {
            let details = revocation_details("subscription", id, reason);
            send_to(
                subscriber,
                Message::Unsubscribed {
                    request: 0,
                    details: Some(details),
                },
            );
        };
        let Some((subscriber, deleted)) = self.broker.unsubscribe(session, id, revoked) else {
            return false;
        };
        self.tell_watchers(false, || interest, &subscriber);
        self.emit_removed(Kind::Subscription, session, id, deleted);
        true
    }

    /// Takes registration `id` away from callee `session` (spec, "Registration Revocation"),
    /// telling the callee with UNREGISTERED. `false` when the session was not a callee of it.
    pub fn revoke_registration(&self, id: Id, session: SessionId, reason: Option<&Value>) -> bool {
        let interest = self.registration_interest(id);
        let revoked = |callee: &Peer| {
            let details = revocation_details("registration", id, reason);
            send_to(
                callee,
                Message::Unregistered {
                    request: 0,
                    details: Some(details),
                },
            );
        };
        let Some((callee, deleted)) = self.dealer.unregister(session, id, revoked) else {
            return false;
        };
        self.tell_watchers(false, || interest, &callee);
        self.emit_removed(Kind::Registration, session, id, deleted);
        true
    }

    /// The listed sessions.
    pub fn sessions(&self) -> Vec<Peer> {
        read(&self.sessions).values().cloned().collect()
    }

    /// The bytes of the messages the realm's sessions sent (`[0]`) and were sent (`[1]`): those
    /// of the sessions that left and those still there, read together.
    pub fn message_bytes(&self) -> [u64; 2] {
        let sessions = read(&self.sessions);
        let left = self.stats.bytes_of_left_sessions();
        sessions
            .values()
            .map(Peer::traffic)
            .fold(left, |[i, o], t| {
                [i.wrapping_add(t.bytes_in), o.wrapping_add(t.bytes_out)]
            })
    }

    /// The listed session `id`.
    pub fn session(&self, id: SessionId) -> Option<Peer> {
        read(&self.sessions).get(&id).cloned()
    }

    /// How many sessions are listed.
    pub fn session_count(&self) -> usize {
        read(&self.sessions).len()
    }

    /// How many subscriptions exist.
    pub fn subscription_count(&self) -> usize {
        self.broker.subscription_count()
    }

    /// How many registrations exist.
    pub fn registration_count(&self) -> usize {
        self.dealer.registration_count()
    }
}

/// Roles by name, compiled from their config.
fn compile_roles(roles: &[crate::config::RoleConfig]) -> HashMap<String, Arc<Role>> {
    roles
        .iter()
        .map(|r| (r.name.clone(), Arc::new(Role::from_config(r))))
        .collect()
}

/// The details of a router-initiated UNREGISTERED/UNSUBSCRIBED.
fn revocation_details(kind: &str, id: Id, reason: Option<&Value>) -> Dict {
    let mut d = Dict::new();
    d.insert(kind.into(), id.into());
    if let Some(reason) = reason {
        d.insert("reason".into(), reason.clone());
    }
    d
}

/// Realms by name; a read-mostly snapshot that can be replaced whole. With realm templates, a
/// realm a template covers is created when a client first asks for it ([`Self::get_or_create`]).
#[derive(Default)]
pub struct RealmRegistry {
    realms: RwLock<Arc<HashMap<String, Arc<Realm>>>>,
    on_demand: RwLock<Option<OnDemand>>,
}

impl std::fmt::Debug for RealmRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealmRegistry")
            .field("realms", &read(&self.realms).keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What the node does for a realm a template created, once it is in the registry: join its own
/// sessions to it (its caller for dynamic authorization, the management API's watcher).
pub type OnCreate = Arc<dyn Fn(Arc<Realm>) + Send + Sync>;

/// The realm templates, and what creating a realm takes.
struct OnDemand {
    templates: Vec<RealmConfig>,
    ids: Arc<IdSequence>,
    on_create: OnCreate,
}

/// The longest realm name a template creates a realm for.
const MAX_CREATED_REALM_NAME: usize = 255;

/// How many realms templates may have created at once: a bound on what clients that only say
/// HELLO can make the node hold.
pub const MAX_CREATED_REALMS: usize = 10_000;

impl RealmRegistry {
    /// A registry holding `realms`.
    pub fn new(realms: Vec<Arc<Realm>>) -> Self {
        let map = realms
            .into_iter()
            .map(|r| (r.name().to_owned(), r))
            .collect();
        Self {
            realms: RwLock::new(Arc::new(map)),
            on_demand: RwLock::new(None),
        }
    }

    /// The realm named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Realm>> {
        read(&self.realms).get(name).cloned()
    }

    /// Every realm.
    pub fn all(&self) -> Vec<Arc<Realm>> {
        read(&self.realms).values().cloned().collect()
    }

    /// Replaces the whole table (hot reload). Sessions already joined keep their realm.
    pub fn replace(&self, realms: Vec<Arc<Realm>>) {
        let map = realms
            .into_iter()
            .map(|r| (r.name().to_owned(), r))
            .collect();
        *write(&self.realms) = Arc::new(map);
    }

    /// Sets the realm templates (at start and on a config reload): `ids` is the node's id
    /// sequence, `on_create` what the node does for each realm created.
    pub fn set_templates(
        &self,
        templates: Vec<RealmConfig>,
        ids: Arc<IdSequence>,
        on_create: OnCreate,
    ) {
        *write(&self.on_demand) = (!templates.is_empty()).then_some(OnDemand {
            templates,
            ids,
            on_create,
        });
    }

    /// The realm named `name`; where there is none, one created from the most specific template
    /// that covers the name, if any.
    pub fn get_or_create(&self, name: &str) -> Option<Arc<Realm>> {
        if let Some(realm) = self.get(name) {
            return Some(realm);
        }
        if name.len() > MAX_CREATED_REALM_NAME || name == CONTROL_REALM {
            return None;
        }
        let (realm, on_create) = {
            let on_demand = read(&self.on_demand);
            let on_demand = on_demand.as_ref()?;
            let template = on_demand
                .templates
                .iter()
                .filter_map(|t| t.covers(name).map(|rank| (rank, t)))
                .max_by_key(|(rank, _)| *rank)
                .map(|(_, t)| t)?;
            let realm = Arc::new(Realm::from_template(template, name, on_demand.ids.clone()));
            (realm, on_demand.on_create.clone())
        };
        {
            let mut table = write(&self.realms);
            // Another session may have created it meanwhile: that one counts.
            if let Some(existing) = table.get(name) {
                return Some(existing.clone());
            }
            if table.values().filter(|r| r.linger.is_some()).count() >= MAX_CREATED_REALMS {
                tracing::warn!(
                    realm = name,
                    "not created: templates have created {MAX_CREATED_REALMS} realms already"
                );
                return None;
            }
            let mut map = HashMap::clone(&table);
            map.insert(name.to_owned(), realm.clone());
            *table = Arc::new(map);
        }
        tracing::info!(realm = name, "realm created from its template");
        on_create(realm.clone());
        Some(realm)
    }

    /// Removes realm `realm` (one a template created) if it still has no session, closing the
    /// node's own sessions on it; `true` when it was removed.
    pub fn retire(&self, realm: &Arc<Realm>) -> bool {
        {
            let mut table = write(&self.realms);
            // Holding the table: no new session finds the realm while it is checked.
            if realm.session_count() > 0
                || !table
                    .get(realm.name())
                    .is_some_and(|r| Arc::ptr_eq(r, realm))
            {
                return false;
            }
            let mut map = HashMap::clone(&table);
            map.remove(realm.name());
            *table = Arc::new(map);
        }
        realm.close_all(
            switchboard_proto::errors::SYSTEM_SHUTDOWN,
            "the realm had no session left and was removed",
        );
        lock(&realm.companions).clear();
        true
    }

    /// Adds a realm (a config reload); an existing realm of the same name is replaced.
    pub fn insert(&self, realm: Arc<Realm>) {
        let mut table = write(&self.realms);
        let mut map = HashMap::clone(&table);
        map.insert(realm.name().to_owned(), realm);
        *table = Arc::new(map);
    }

    /// Takes realm `name` out of the table (a config reload): no new session can join it.
    pub fn remove(&self, name: &str) -> Option<Arc<Realm>> {
        let mut table = write(&self.realms);
        let mut map = HashMap::clone(&table);
        let removed = map.remove(name);
        *table = Arc::new(map);
        removed
    }
}
