//! Realms: each is a routing domain with its own broker, dealer, roles and sessions. The
//! [`RealmRegistry`] maps names to realms and can be swapped whole at runtime (the hook hot reload and
//! the management API will use).

pub mod authz;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use switchboard_proto::ids::IdSequence;

use crate::broker::Broker;
use crate::config::RealmConfig;
use crate::dealer::Dealer;
use crate::router_call::{CallFailure, RouterCaller};
use crate::session::peer::{Peer, SessionId};
use authz::Role;

/// One realm.
#[derive(Debug)]
pub struct Realm {
    name: String,
    /// Topic subscriptions and event routing.
    pub broker: Broker,
    /// Procedure registrations and call routing.
    pub dealer: Dealer,
    roles: HashMap<String, Arc<Role>>,
    /// Joined sessions. Written on join/leave only.
    sessions: RwLock<HashMap<SessionId, Peer>>,
    /// The router's own caller session, made on first use.
    caller: OnceLock<RouterCaller>,
}

impl Realm {
    /// A realm from its config; `ids` is the router-scope id sequence shared by all realms.
    pub fn new(cfg: &RealmConfig, ids: Arc<IdSequence>) -> Self {
        Self {
            name: cfg.name.clone(),
            broker: Broker::new(ids.clone(), cfg.store.as_ref()),
            dealer: Dealer::new(ids),
            roles: cfg
                .roles
                .iter()
                .map(|r| (r.name.clone(), Arc::new(Role::from_config(r))))
                .collect(),
            sessions: RwLock::new(HashMap::new()),
            caller: OnceLock::new(),
        }
    }

    /// The realm's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role named `name`, if the realm defines it.
    pub fn role(&self, name: &str) -> Option<Arc<Role>> {
        self.roles.get(name).cloned()
    }

    /// Adds a session.
    pub fn join(&self, peer: Peer) {
        write(&self.sessions).insert(peer.id(), peer);
    }

    /// Removes a session from the realm's session table. The caller (the session's task) removes
    /// its subscriptions and registrations itself, since it knows which it holds.
    pub fn leave(&self, id: SessionId) {
        write(&self.sessions).remove(&id);
    }

    /// The joined sessions.
    pub fn sessions(&self) -> Vec<Peer> {
        read(&self.sessions).values().cloned().collect()
    }

    /// The joined session `id`.
    pub fn session(&self, id: SessionId) -> Option<Peer> {
        read(&self.sessions).get(&id).cloned()
    }

    /// Publishes a meta event (`wamp.session.on_join`, ...) from the router itself.
    pub fn publish_meta(&self, topic: &str, args: Vec<switchboard_proto::Value>) {
        let payload = switchboard_proto::Payload {
            args: switchboard_proto::RawValue::from_value(
                switchboard_proto::Serializer::Json,
                &switchboard_proto::Value::List(args),
            )
            .ok(),
            kwargs: None,
        };
        let _ = self.broker.publish(
            None,
            &switchboard_proto::Dict::new(),
            topic,
            &payload,
            false,
        );
    }

    /// Calls `procedure` on this realm as the router itself (dynamic authenticators and
    /// authorizers), waiting at most `timeout`.
    pub async fn router_call(
        &self,
        procedure: &str,
        args: Vec<switchboard_proto::Value>,
        timeout: std::time::Duration,
    ) -> Result<switchboard_proto::Value, CallFailure> {
        self.caller
            .get_or_init(RouterCaller::new)
            .call(&self.dealer, procedure, args, timeout)
            .await
    }

    /// How many sessions are joined.
    pub fn session_count(&self) -> usize {
        read(&self.sessions).len()
    }
}

/// Realms by name; a read-mostly snapshot that can be replaced whole.
#[derive(Debug, Default)]
pub struct RealmRegistry {
    realms: RwLock<Arc<HashMap<String, Arc<Realm>>>>,
}

impl RealmRegistry {
    /// A registry holding `realms`.
    pub fn new(realms: Vec<Arc<Realm>>) -> Self {
        let map = realms
            .into_iter()
            .map(|r| (r.name().to_owned(), r))
            .collect();
        Self {
            realms: RwLock::new(Arc::new(map)),
        }
    }

    /// The realm named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Realm>> {
        read(&self.realms).get(name).cloned()
    }

    /// Replaces the whole table (hot reload). Sessions already joined keep their realm.
    pub fn replace(&self, realms: Vec<Arc<Realm>>) {
        let map = realms
            .into_iter()
            .map(|r| (r.name().to_owned(), r))
            .collect();
        *write(&self.realms) = Arc::new(map);
    }
}

/// Locks for reading; a poisoned lock (a panic elsewhere while writing) still holds a consistent
/// table because every write is a single insert, remove or replace.
pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Locks for writing; see [`read`] on poisoning.
pub(crate) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
