//! Hot config reload: reads the node's config file again, runs the checks `switchboard check`
//! runs, compares it key by key with the running config, applies every change that can be applied
//! while the node runs, all of them or none, and reports those that need a restart.
//!
//! SIGHUP, `switchboard reload DIR` (the control socket) and `switchboard.config.reload` (the
//! management API) all end in [`Reloader::reload`], one at a time. Each key of the config is
//! classified in [`KEYS`] (a unit test fails on a config field that is not):
//!
//! - realms added: served from the next HELLO on; realms removed: their sessions get GOODBYE
//!   `wamp.close.system_shutdown`;
//! - a realm's roles: replaced at once, and every session's next action is checked against the
//!   new permissions (no reconnect); sessions of a removed role are closed with
//!   `wamp.close.killed`;
//! - transports, identified by their endpoint: a new one listens, a removed one stops accepting
//!   (its connections stay until they end), a changed one (auth, TLS files, web paths,
//!   serializers, options) serves new connections with the new settings while those already open
//!   keep theirs. A transport whose TLS files changed on disk counts as changed;
//! - guest workers, by id: a new one starts, a removed one stops, a changed one is stopped and
//!   started with its new config; the others run on untouched. Hosted components likewise (a
//!   container's and a router worker's), by component id: a router worker's join through the
//!   node's private socket, whose ticket principals are swapped (an unchanged component keeps its
//!   ticket) or, for the first component, opened by the reload;
//! - links (`links` and `rlinks`), by id: a new one connects, a removed one leaves both routers, a
//!   changed one does both;
//! - PostgreSQL bridges (with their `connections`) and Crossbar's built-in REST components, by
//!   id, likewise, by their runners in the node's process;
//! - everything else (the controller, a container's options, a realm's store, adding or removing
//!   a router worker) is reported as needing a restart, and stays as it runs.
//!
//! The management API's edits (`edit.rs`: realms, roles and transports added and removed) run
//! through the same pipeline with the running config, edited, in place of the file.
//!
//! A config that fails its checks, or a new transport that cannot bind, changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde_json::Value as Json;
use switchboard_client::{PublishOptions, Session};
use switchboard_proto::ids::IdSequence;
use switchboard_proto::{Dict, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::prepare::PreparedNode;
use crate::config::{ConfigDraft, LoadedConfig, RealmConfig};
use crate::embed::{InProcess, TrustedIdentity};
use crate::listener::{self, ListenAddr, SharedProtocols};
use crate::ops::NodeStatus;
use crate::realm::authz::TRUSTED_ROLE;
use crate::realm::router_caller::ROUTER_AUTHID;
use crate::realm::{Realm, RealmRegistry};
use crate::session::SessionConfig;

mod edit;

/// Published on the management realm after each reload, with the report as kwargs.
pub const ON_RELOAD: &str = "switchboard.config.on_reload";

/// Whether a change to a config key is applied while the node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Applied by a reload.
    Hot,
    /// Reported by a reload, applied at the next start.
    Restart,
}

/// Every key of a config, by its path with list indices left out (`workers[].realms[].roles`),
/// and whether a reload applies a change to it. A key inherits the class of the longest entry it
/// starts with; the unit test below checks that every field of the config types has an entry of
/// its own or under a `Hot` parent that is applied whole.
pub const KEYS: &[(&str, Class)] = &[
    // An editor hint without effect.
    ("$schema", Class::Hot),
    ("version", Class::Restart),
    // The node id, shutdown options, management realm, Crossbar's fabric uplink.
    ("controller", Class::Restart),
    // Looked into worker by worker.
    ("workers", Class::Restart),
    // Any key of a guest worker: the guest is started, stopped, or restarted with its new config.
    // A container worker's components are started, stopped or restarted one by one; any other
    // change of a container needs a restart (the diff reports it).
    ("workers[]", Class::Hot),
    ("workers[].type", Class::Restart),
    ("workers[].id", Class::Restart),
    ("workers[].options", Class::Restart),
    ("workers[].realms", Class::Hot),
    ("workers[].realms[].name", Class::Hot),
    ("workers[].realms[].roles", Class::Hot),
    ("workers[].realms[].store", Class::Restart),
    ("workers[].realms[].trace", Class::Restart),
    ("workers[].realms[].rlinks", Class::Hot),
    // Replaced together with the other templates; realms they created stay until empty.
    ("workers[].realms[].template", Class::Hot),
    ("workers[].transports", Class::Hot),
    // Components, by id: a new one starts, a removed one stops, a changed one restarts with its
    // new config; a container's likewise. Processes here; PostgreSQL bridges and Crossbar's
    // built-in REST components, which run in the node's process, by their own runners.
    ("workers[].components", Class::Hot),
    // A PostgreSQL bridge restarts when its connection changes (`postgres_bridges`).
    ("workers[].connections", Class::Hot),
    // Each link by id: a new one connects, a removed one leaves both routers, a changed one
    // does both; the others run on untouched.
    ("workers[].links", Class::Hot),
    // Joining, leaving or changing a cluster needs a restart: the node's identity there, its
    // NATS connection and the realms it shares are set up once.
    ("workers[].cluster", Class::Restart),
];

/// The class of the key at `path` (list indices written `[]`): that of the longest entry of
/// [`KEYS`] it is, or is under; `None` for a key no entry covers.
pub fn class_of(path: &str) -> Option<Class> {
    KEYS.iter()
        .filter(|(key, _)| {
            path == *key
                || path
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
        .max_by_key(|(key, _)| key.len())
        .map(|(_, class)| *class)
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// The changes applied, in words.
    pub applied: Vec<String>,
    /// The changes that take effect at the next start, each with its place in the config.
    pub restart_required: Vec<String>,
    /// Why nothing was applied: the config's problems, placed in the file, or a transport that
    /// could not bind.
    pub errors: Vec<String>,
}

impl ReloadReport {
    /// The report as WAMP kwargs.
    pub fn to_dict(&self) -> Dict {
        let list =
            |items: &[String]| Value::List(items.iter().map(|s| s.as_str().into()).collect());
        let mut d = Dict::new();
        d.insert("applied".into(), list(&self.applied));
        d.insert("restart_required".into(), list(&self.restart_required));
        d.insert("errors".into(), list(&self.errors));
        d
    }

    /// Whether the config was accepted (changes may still need a restart).
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    fn error(text: impl Into<String>) -> Self {
        Self {
            errors: vec![text.into()],
            ..Self::default()
        }
    }
}

/// A transport the node listens on, as a reload finds it.
pub(super) struct RunningTransport {
    /// Its endpoint, as JSON text: what identifies it from one config to the next.
    key: String,
    /// Its section of the config, with the contents of its TLS files: what tells a change.
    fingerprint: String,
    /// Its section of the config.
    section: Json,
    protocols: SharedProtocols,
    /// Cancelled when a reload removes it.
    stop: CancellationToken,
    /// Where it listens.
    pub(super) addr: ListenAddr,
}

/// What a reload needs of the running node.
pub(super) struct Parts {
    pub loaded: LoadedConfig,
    pub realms: Arc<RealmRegistry>,
    pub ids: Arc<IdSequence>,
    pub in_process: InProcess,
    /// What new listeners serve sessions with.
    pub sessions: SessionConfig,
    pub tracker: TaskTracker,
    /// The node's: cancelled at shutdown (each transport's token is a child of it).
    pub stop_accepting: CancellationToken,
    /// What the node does for a realm a template creates.
    pub on_create: crate::realm::OnCreate,
    /// The guest workers.
    pub guests: super::guest::GuestSupervisor,
    /// The links to other routers.
    pub links: Arc<super::links::Links>,
    /// The node's part in a cluster, where it is in one.
    pub cluster: Option<Arc<super::cluster::Cluster>>,
    /// The private directory of hosted components (their runner, the socket of a router
    /// worker's components), where the node has one.
    pub component_dir: Arc<std::sync::Mutex<Option<std::path::PathBuf>>>,
    /// The private transport of router workers' components.
    pub components: RunningComponents,
    /// Crossbar's built-in REST components, run in the node's process.
    pub rest_components: Arc<super::rest_components::RestComponents>,
    /// The PostgreSQL bridges.
    pub postgres_bridges: Arc<super::postgres_bridges::PostgresBridges>,
    /// The URIs with series of their own, as the node started (`controller` is restart-only).
    pub metrics_uris: Arc<Vec<String>>,
}

/// The private transport router workers' components join through, as it runs.
pub(super) struct RunningComponents {
    /// What it serves; `None` until the node has a router worker's component.
    pub private: Option<SharedProtocols>,
    /// Its ticket principals, by authid (`component:<id>`).
    pub principals: serde_json::Map<String, Json>,
}

/// The reload pipeline of one node, and what it changes.
pub struct Reloader {
    state: tokio::sync::Mutex<State>,
    status: Arc<NodeStatus>,
    /// The management API's session, which publishes [`ON_RELOAD`] and republishes the meta
    /// events of realms a reload adds.
    management: OnceLock<Session>,
}

struct State {
    parts: Parts,
    transports: Vec<RunningTransport>,
    /// Transports stopped through the management API, by where they listened: what
    /// `switchboard.transport.start` starts again (until one listens there again).
    stopped: BTreeMap<String, edit::StoppedTransport>,
    /// The sessions republishing each realm's meta events on the management realm.
    watchers: HashMap<String, Session>,
    /// Changes read by earlier reloads that wait for a restart.
    pending_restart: BTreeSet<String>,
    last_report: Option<(SystemTime, ReloadReport)>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// A transport a reload adds.
struct NewTransport {
    key: String,
    fingerprint: String,
    section: Json,
    protocols: listener::Protocols,
    endpoint: crate::config::EndpointConfig,
    /// Its place in the config.
    at: String,
}

/// What a reload will do, once checked.
struct Plan {
    report: ReloadReport,
    loaded: LoadedConfig,
    /// The new realm templates, when they changed.
    templates: Option<Vec<RealmConfig>>,
    /// Guest workers to start (new, or changed: stopped first).
    guests_add: Vec<super::guest::PreparedGuest>,
    /// Guest workers to stop (removed, or changed).
    guests_remove: Vec<String>,
    /// Which of the processes in `guests_add` and `guests_remove` are container components.
    components: BTreeSet<String>,
    /// The component directory the new config was prepared with.
    component_dir: Option<std::path::PathBuf>,
    /// Crossbar's built-in REST components of the new config.
    builtins: Vec<super::rest_components::PreparedBuiltin>,
    /// The private transport's principals the new config was prepared with, where a router
    /// worker's components changed.
    component_principals: Option<serde_json::Map<String, Json>>,
    add_realms: Vec<RealmConfig>,
    remove_realms: Vec<String>,
    replace_roles: Vec<RealmConfig>,
    /// Transports whose settings change (index into the running ones), with their new ones.
    swap: Vec<(usize, listener::Protocols, String, Json)>,
    /// New transports, bound by the commit before it changes anything.
    add: Vec<NewTransport>,
    /// Transports to stop (indices into the running ones).
    remove: Vec<usize>,
}

impl Plan {
    /// What the process `id` is, in words.
    fn what(&self, id: &str) -> &'static str {
        if self.components.contains(id) {
            "component"
        } else {
            "guest worker"
        }
    }

    /// The plan's report, with the changes it would apply.
    fn summary(mut self, running: &[RunningTransport]) -> ReloadReport {
        let mut report = std::mem::take(&mut self.report);
        let applied = &mut report.applied;
        if self.templates.is_some() {
            applied.push("realm templates replaced".into());
        }
        for id in &self.guests_remove {
            if !self.guests_add.iter().any(|g| &g.id == id) {
                applied.push(format!("{} {id:?} removed", self.what(id)));
            }
        }
        for guest in &self.guests_add {
            applied.push(if self.guests_remove.contains(&guest.id) {
                format!(
                    "{} {:?} restarted with its new config",
                    self.what(&guest.id),
                    guest.id
                )
            } else {
                format!("{} {:?} added", self.what(&guest.id), guest.id)
            });
        }
        applied.extend(
            self.replace_roles
                .iter()
                .map(|r| format!("realm {:?}: roles replaced", r.name)),
        );
        applied.extend(
            self.add_realms
                .iter()
                .map(|r| format!("realm {:?} added", r.name)),
        );
        applied.extend(
            self.remove_realms
                .iter()
                .map(|r| format!("realm {r:?} removed")),
        );
        applied.extend(self.swap.iter().map(|(i, _, _, _)| {
            format!(
                "transport {}: new connections get its new settings",
                running[*i].addr
            )
        }));
        applied.extend(
            self.remove
                .iter()
                .map(|i| format!("transport {} removed", running[*i].addr)),
        );
        applied.extend(
            self.add
                .iter()
                .map(|t| format!("transport {} added", t.endpoint)),
        );
        report
    }
}

impl Reloader {
    /// The reloader of a node that runs `transports` as `parts.loaded` describes.
    pub(super) fn new(
        parts: Parts,
        transports: Vec<RunningTransport>,
        status: Arc<NodeStatus>,
    ) -> Self {
        status.set_certificates(certificate_files(&transports, &parts.loaded.base_dir));
        Self {
            state: tokio::sync::Mutex::new(State {
                parts,
                transports,
                stopped: BTreeMap::new(),
                watchers: HashMap::new(),
                pending_restart: BTreeSet::new(),
                last_report: None,
            }),
            status,
            management: OnceLock::new(),
        }
    }

    /// Sets the management API's session and the watchers of each realm's meta events.
    pub(super) async fn set_management(
        &self,
        session: Session,
        watchers: HashMap<String, Session>,
    ) {
        self.state.lock().await.watchers = watchers;
        let _ = self.management.set(session);
    }

    /// Reads the config file again and applies what changed (see the module's text). One reload
    /// runs at a time.
    pub async fn reload(&self) -> ReloadReport {
        let mut state = self.state.lock().await;
        let report = match state.plan(None) {
            Err(report) => report,
            Ok(plan) => state.commit(plan, self.management.get()).await,
        };
        self.conclude(&mut state, report).await
    }

    /// Counts, logs, keeps and publishes the report of a reload or of an edit of the running
    /// config.
    async fn conclude(&self, state: &mut State, report: ReloadReport) -> ReloadReport {
        // A stopped transport that listens again (started, or brought back by the file) is
        // stopped no more.
        let listening: BTreeSet<String> = state
            .transports
            .iter()
            .map(|t| t.addr.to_string())
            .collect();
        state
            .stopped
            .retain(|listen, _| !listening.contains(listen));
        self.status.reloaded(report.ok());
        self.status.set_certificates(certificate_files(
            &state.transports,
            &state.parts.loaded.base_dir,
        ));
        for line in &report.applied {
            tracing::info!("reload: {line}");
        }
        for line in &report.restart_required {
            tracing::warn!("reload: needs a restart: {line}");
        }
        for line in &report.errors {
            tracing::error!("reload: nothing changed: {line}");
        }
        state
            .pending_restart
            .extend(report.restart_required.iter().cloned());
        state.last_report = Some((SystemTime::now(), report.clone()));
        if let Some(management) = self.management.get() {
            let args = switchboard_client::Args::new(Vec::new(), report.to_dict());
            let _ = management
                .publish(ON_RELOAD, args, PublishOptions::default())
                .await;
        }
        report
    }

    /// What a reload would do with the config file as it is now, or with `text` (JSON or YAML,
    /// read as if it were the config file), without doing it.
    pub async fn check(&self, text: Option<&str>) -> ReloadReport {
        let state = self.state.lock().await;
        match state.plan(text) {
            Err(report) => report,
            Ok(plan) => {
                let mut changes = state.parts.links.changes(&plan.loaded.config).await;
                changes.extend(state.parts.rest_components.changes(&plan.builtins).await);
                changes.extend(state.parts.postgres_bridges.changes(&plan.loaded).await);
                let mut report = plan.summary(&state.transports);
                report.applied.extend(changes);
                report
                    .applied
                    .iter_mut()
                    .for_each(|l| l.insert_str(0, "would be applied: "));
                report
            }
        }
    }

    /// The transports the node listens on: where, of which type, and the certificate of a TLS
    /// one (subject, names, expiry).
    pub async fn transports(&self) -> Vec<Value> {
        let state = self.state.lock().await;
        let base = &state.parts.loaded.base_dir;
        let stopped = state.stopped.iter().map(|(listen, stopped)| {
            let section = &stopped.section;
            let mut d = Dict::new();
            d.insert("listen".into(), listen.as_str().into());
            d.insert("state".into(), "stopped".into());
            d.insert(
                "type".into(),
                section
                    .get("type")
                    .and_then(Json::as_str)
                    .unwrap_or("websocket")
                    .into(),
            );
            d.insert("tls".into(), Value::Null);
            Value::Dict(d)
        });
        state
            .transports
            .iter()
            .map(|t| {
                let mut d = Dict::new();
                d.insert("listen".into(), t.addr.to_string().into());
                d.insert("state".into(), "listening".into());
                d.insert(
                    "type".into(),
                    t.section
                        .get("type")
                        .and_then(Json::as_str)
                        .unwrap_or("websocket")
                        .into(),
                );
                let certificate = t
                    .section
                    .get("endpoint")
                    .and_then(|e| e.get("tls"))
                    .and_then(|tls| tls.get("certificate"))
                    .and_then(Json::as_str);
                d.insert(
                    "tls".into(),
                    certificate.map_or(Value::Null, |file| certificate_info(&base.join(file))),
                );
                Value::Dict(d)
            })
            .chain(stopped)
            .collect()
    }

    /// The running config with its secrets masked, the changes waiting for a restart and the
    /// last reload's report.
    pub async fn config(&self) -> Dict {
        let state = self.state.lock().await;
        let mut config = Json::clone(&state.parts.loaded.raw);
        mask_secrets(&mut config);
        let mut d = Dict::new();
        d.insert(
            "config".into(),
            serde_json::from_value(config).unwrap_or(Value::Null),
        );
        d.insert(
            "file".into(),
            state
                .parts
                .loaded
                .file
                .as_ref()
                .map_or(Value::Null, |f| f.display().to_string().into()),
        );
        d.insert(
            "restart_required".into(),
            Value::List(
                state
                    .pending_restart
                    .iter()
                    .map(|s| s.as_str().into())
                    .collect(),
            ),
        );
        if let Some((at, report)) = &state.last_report {
            let mut last = report.to_dict();
            let seconds = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            last.insert("at".into(), seconds.into());
            d.insert("last_reload".into(), Value::Dict(last));
        }
        d
    }
}

impl State {
    /// Reads and checks the config (the file, or `text` in its place), and works out what
    /// changes; `Err` with the problems when it cannot be applied.
    fn plan(&self, text: Option<&str>) -> Result<Plan, ReloadReport> {
        let Some(file) = self.parts.loaded.file.clone() else {
            return Err(ReloadReport::error(
                "the node was started without a config file: there is nothing to read again",
            ));
        };
        let draft = match text {
            None => ConfigDraft::from_file(&file),
            // A client's text does not read the node's environment: its `${VAR}`s are unset.
            Some(text) => ConfigDraft::from_text_in(text, &file, &|_| None),
        };
        let prepared = super::prepare_draft(draft).map_err(|errors| ReloadReport {
            errors: errors.0.iter().map(ToString::to_string).collect(),
            ..ReloadReport::default()
        })?;
        self.diff(prepared)
    }

    /// Compares a checked config with the running one.
    fn diff(&self, prepared: PreparedNode) -> Result<Plan, ReloadReport> {
        let old = Arc::clone(&self.parts.loaded.raw);
        let new = Arc::clone(&prepared.config().raw);
        let mut report = ReloadReport::default();
        let mut restart = |path: String, what: &str| {
            report.restart_required.push(format!("{path}: {what}"));
        };
        for key in changed_keys(&old, &new) {
            // `workers` is looked into below.
            if key != "workers" && class_of(&key) != Some(Class::Hot) {
                restart(key.clone(), "changed");
            }
        }
        let mut add_realms = Vec::new();
        let mut remove_realms = Vec::new();
        let mut replace_roles = Vec::new();
        let old_workers = list(&old, "workers");
        let new_workers = list(&new, "workers");
        // Guest and container workers, by id: a guest is started, stopped, or restarted with its
        // new config; a container's change needs a restart.
        let is_router = |w: &Json| w.get("type") == Some(&Json::from("router"));
        let others_of = |workers: &[Json]| -> BTreeMap<String, (usize, Json)> {
            workers
                .iter()
                .enumerate()
                .filter(|(_, w)| !is_router(w))
                .map(|(i, w)| {
                    let id = w
                        .get("id")
                        .and_then(Json::as_str)
                        .map_or_else(|| format!("worker{:03}", i + 1), str::to_owned);
                    (id, (i, w.clone()))
                })
                .collect()
        };
        let (old_others, new_others) = (others_of(old_workers), others_of(new_workers));
        let is_guest = |w: &Json| w.get("type") == Some(&Json::from("guest"));
        let mut guests_to_add = Vec::new();
        let mut guests_remove = Vec::new();
        let is_container = |w: &Json| w.get("type") == Some(&Json::from("container"));
        // Which of the processes started and stopped are components (the rest are guests).
        let mut components = BTreeSet::new();
        // Whether a router worker's components changed: their private transport's principals.
        let mut router_components = false;
        let no_container = Json::Object(serde_json::Map::new());
        let (old_pids, new_pids) = (
            crate::config::process_ids(&self.parts.loaded.config),
            crate::config::process_ids(&prepared.config().config),
        );
        let (old_pids, new_pids) = (&old_pids, &new_pids);
        let old_ids = |w: usize| move |c: usize| old_pids.get(&(w, c)).cloned();
        let new_ids = |w: usize| move |c: usize| new_pids.get(&(w, c)).cloned();
        let none = |_: usize| None;
        for (id, (i, n)) in &new_others {
            match old_others.get(id) {
                Some((_, o)) if o == n => {}
                Some((_, o)) if is_guest(o) && is_guest(n) => {
                    guests_remove.push(id.clone());
                    guests_to_add.push(id.clone());
                }
                None if is_guest(n) => guests_to_add.push(id.clone()),
                // A container whose components alone changed, or a new one: its components
                // start and stop one by one.
                Some((oi, o))
                    if is_container(o)
                        && is_container(n)
                        && changed_keys(o, n).iter().all(|k| k == "components") =>
                {
                    let change = container_changes(o, &old_ids(*oi), n, &new_ids(*i));
                    change.apply(&mut guests_remove, &mut guests_to_add, &mut components);
                }
                None if is_container(n) => {
                    let change = container_changes(&no_container, &none, n, &new_ids(*i));
                    change.apply(&mut guests_remove, &mut guests_to_add, &mut components);
                }
                Some(_) => restart(format!("workers[{i}]"), &format!("worker {id:?} changed")),
                None => restart(format!("workers[{i}]"), &format!("worker {id:?} added")),
            }
        }
        for (id, (i, o)) in &old_others {
            if !new_others.contains_key(id) {
                if is_guest(o) {
                    guests_remove.push(id.clone());
                } else if is_container(o) {
                    let change = container_changes(o, &old_ids(*i), &no_container, &none);
                    change.apply(&mut guests_remove, &mut guests_to_add, &mut components);
                } else {
                    restart(format!("workers[{i}]"), &format!("worker {id:?} removed"));
                }
            }
        }
        // Router workers, by their order among the router workers.
        let routers = |workers: &[Json]| -> Vec<(usize, Json)> {
            workers
                .iter()
                .enumerate()
                .filter(|(_, w)| is_router(w))
                .map(|(i, w)| (i, w.clone()))
                .collect()
        };
        let (old_routers, new_routers) = (routers(old_workers), routers(new_workers));
        if old_routers.len() != new_routers.len() {
            restart("workers".into(), "a router worker was added or removed");
        }
        for ((oi, o), (i, n)) in old_routers.iter().zip(&new_routers) {
            let at = format!("workers[{i}]");
            if o == n {
                continue;
            }
            // Realms and transports are looked into below.
            for key in changed_keys(o, n) {
                if class_of(&format!("workers[].{key}")) != Some(Class::Hot) {
                    restart(format!("{at}.{key}"), "changed");
                }
            }
            if o.get("components") != n.get("components") {
                router_components = true;
                container_changes(o, &old_ids(*oi), n, &new_ids(*i)).apply(
                    &mut guests_remove,
                    &mut guests_to_add,
                    &mut components,
                );
            }
            // Realms, by name (templates are compared whole, below).
            let realms_of = |w: &Json| -> BTreeMap<String, (usize, Json)> {
                list(w, "realms")
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.get("template").is_none())
                    .filter_map(|(j, r)| {
                        let name = r.get("name")?.as_str()?.to_owned();
                        Some((name, (j, r.clone())))
                    })
                    .collect()
            };
            let (old_realms, new_realms) = (realms_of(o), realms_of(n));
            let configured = |name: &str| {
                prepared
                    .realms()
                    .find(|r| r.name == name)
                    .cloned()
                    .expect("a realm of the checked config")
            };
            for (name, (j, realm)) in &new_realms {
                match old_realms.get(name) {
                    None => add_realms.push(configured(name)),
                    Some((_, before)) => {
                        let changed = changed_keys(before, realm);
                        if changed.iter().any(|k| k == "roles") {
                            replace_roles.push(configured(name));
                        }
                        for key in changed {
                            if class_of(&format!("workers[].realms[].{key}")) != Some(Class::Hot) {
                                restart(
                                    format!("{at}.realms[{j}].{key}"),
                                    &format!("realm {name:?} changed"),
                                );
                            }
                        }
                    }
                }
            }
            let management = self.parts.loaded.config.management_realm();
            for name in old_realms
                .keys()
                .filter(|name| !new_realms.contains_key(*name))
            {
                if Some(name.as_str()) == management {
                    // The management API lives there until the node restarts with its new realm.
                    restart(
                        format!("{at}.realms"),
                        &format!("realm {name:?} serves the management API: it goes at a restart"),
                    );
                } else {
                    remove_realms.push(name.clone());
                }
            }
        }

        // Realm templates: replaced together when any of them changed.
        let templates_of = |raw: &Json| -> Vec<Json> {
            list(raw, "workers")
                .iter()
                .flat_map(|w| list(w, "realms").to_vec())
                .filter(|r| r.get("template").is_some())
                .collect()
        };
        let templates = (templates_of(&old) != templates_of(&new))
            .then(|| prepared.templates().cloned().collect());

        // Transports, by endpoint.
        let PreparedNode {
            transports: prepared_transports,
            loaded,
            guests: prepared_guests,
            component_dir,
            component_principals,
            builtins,
            ..
        } = prepared;
        let guests_add: Vec<_> = prepared_guests
            .into_iter()
            .filter(|g| guests_to_add.contains(&g.id))
            .collect();
        let new_sections: Vec<Json> = new_workers
            .iter()
            .filter(|w| w.get("type") == Some(&Json::from("router")))
            .flat_map(|w| list(w, "transports").to_vec())
            .collect();
        let mut swap = Vec::new();
        let mut add = Vec::new();
        let mut matched = vec![false; self.transports.len()];
        let public = prepared_transports.into_iter().filter(|t| !t.private);
        for (transport, section) in public.zip(new_sections) {
            let key = endpoint_key(&section);
            let fingerprint = fingerprint(&section, &loaded.base_dir);
            let running = self.transports.iter().position(|t| t.key == key);
            if let Some(index) = running {
                matched[index] = true;
                if self.transports[index].fingerprint == fingerprint {
                    continue;
                }
            }
            if uses_function_authenticators(&section) {
                restart(
                    transport.at.clone(),
                    &format!("transport {key}: its function authenticators start at a restart"),
                );
                continue;
            }
            match running {
                Some(index) => {
                    let mut before = self.transports[index]
                        .section
                        .get("endpoint")
                        .cloned()
                        .unwrap_or_default();
                    let mut after = section.get("endpoint").cloned().unwrap_or_default();
                    for e in [&mut before, &mut after] {
                        if let Some(map) = e.as_object_mut() {
                            map.remove("tls");
                        }
                    }
                    if before != after {
                        restart(
                            format!("{}.endpoint", transport.at),
                            &format!(
                                "transport {key}: endpoint options other than `tls` (backlog, \
                                 shared, ...) apply when it is bound again, at a restart"
                            ),
                        );
                    }
                    swap.push((index, transport.protocols, fingerprint, section));
                }
                None => add.push(NewTransport {
                    key,
                    fingerprint,
                    section,
                    protocols: transport.protocols,
                    endpoint: transport.endpoint,
                    at: transport.at.clone(),
                }),
            }
        }
        let remove = matched
            .iter()
            .enumerate()
            .filter(|(_, m)| !**m)
            .map(|(i, _)| i)
            .collect();
        Ok(Plan {
            report,
            loaded,
            templates,
            guests_add,
            guests_remove,
            components,
            component_dir,
            builtins,
            component_principals: router_components.then_some(component_principals),
            add_realms,
            remove_realms,
            replace_roles,
            swap,
            add,
            remove,
        })
    }

    /// Applies a plan: nothing in it can fail any more but the join of a new realm's own
    /// sessions, which only a bug would make fail.
    async fn commit(&mut self, plan: Plan, management: Option<&Session>) -> ReloadReport {
        let Plan {
            mut report,
            loaded,
            templates,
            mut guests_add,
            guests_remove,
            components,
            component_dir,
            builtins,
            component_principals,
            add_realms,
            remove_realms,
            replace_roles,
            swap,
            add,
            remove,
        } = plan;
        let what = |id: &str| {
            if components.contains(id) {
                "component"
            } else {
                "guest worker"
            }
        };
        // New transports bind before anything changes: one that cannot makes the reload change
        // nothing (the ones bound so far are closed again).
        let mut bound = Vec::with_capacity(add.len());
        for transport in add {
            match listener::bind(&transport.endpoint, &loaded.base_dir) {
                Ok((listener, addr)) => bound.push((transport, listener, addr)),
                Err(e) => {
                    return ReloadReport::error(format!(
                        "{}: cannot listen on {}: {e}",
                        transport.at, transport.endpoint
                    ));
                }
            }
        }
        // New components run from the node's component directory: the running one, or the one
        // their preparation named, created once the transports are bound (a directory
        // made for nothing if the private socket then cannot listen is the node's from then on).
        if let Some(prepared_dir) =
            component_dir.filter(|_| guests_add.iter().any(|g| g.hosted_component))
        {
            let mut running = crate::locks::lock(&self.parts.component_dir);
            match &*running {
                Some(dir) => guests_add
                    .iter_mut()
                    .for_each(|g| g.relocate(&prepared_dir, dir)),
                None => {
                    if let Err(e) = super::component::create_dir(&prepared_dir) {
                        return ReloadReport::error(format!(
                            "the components' directory {} cannot be created: {e}",
                            prepared_dir.display()
                        ));
                    }
                    *running = Some(prepared_dir);
                }
            }
        }
        // Router workers' components: their private transport gets the new principals, except
        // that a component that did not change keeps its ticket (its process runs on).
        let private = match component_principals {
            None => None,
            Some(prepared) => match self.private_transport(&prepared, &guests_add, &loaded) {
                Ok(private) => private,
                Err(e) => return ReloadReport::error(e),
            },
        };
        let parts = &mut self.parts;
        if let Some(private) = private {
            match (&parts.components.private, private.listener) {
                (Some(shared), _) => *crate::locks::write(shared) = Arc::new(private.protocols),
                (None, Some(listener)) => {
                    let shared = listener::shared(private.protocols);
                    tokio::spawn(listener::serve(
                        listener,
                        shared.clone(),
                        parts.sessions.clone(),
                        parts.tracker.clone(),
                        parts.stop_accepting.child_token(),
                    ));
                    parts.components.private = Some(shared);
                }
                (None, None) => {}
            }
            parts.components.principals = private.principals;
        }
        for id in &guests_remove {
            parts.guests.remove(id).await;
            if !guests_add.iter().any(|g| &g.id == id) {
                report
                    .applied
                    .push(format!("{} {id:?} removed: stopped", what(id)));
            }
        }
        for guest in guests_add {
            let line = if guests_remove.contains(&guest.id) {
                format!(
                    "{} {:?} restarted with its new config",
                    what(&guest.id),
                    guest.id
                )
            } else {
                format!("{} {:?} added: started", what(&guest.id), guest.id)
            };
            parts.guests.add(guest);
            report.applied.push(line);
        }
        if let Some(templates) = templates {
            let count = templates.len();
            parts
                .realms
                .set_templates(templates, parts.ids.clone(), parts.on_create.clone());
            report.applied.push(format!(
                "realm templates replaced ({count} now; realms they created stay until empty)"
            ));
        }
        for realm in &replace_roles {
            if let Some(running) = parts.realms.get(&realm.name) {
                let closed = running.replace_roles(&realm.roles);
                let mut line = format!("realm {:?}: roles replaced", realm.name);
                if closed > 0 {
                    line.push_str(&format!(" ({closed} session(s) of removed roles closed)"));
                }
                report.applied.push(line);
            }
        }
        for config in &add_realms {
            let realm = Arc::new(Realm::new(config, parts.ids.clone()));
            // The list the node started with: `controller` changes at a restart.
            realm.stats.count_uris(&parts.metrics_uris);
            // A realm a template created under this name makes way for the configured one.
            if let Some(created) = parts.realms.get(&config.name) {
                created.close_all(
                    switchboard_proto::errors::SYSTEM_SHUTDOWN,
                    "the realm is now configured: join again",
                );
            }
            parts.realms.insert(realm.clone());
            let caller = TrustedIdentity::new(&config.name, ROUTER_AUTHID, TRUSTED_ROLE).hidden();
            match parts.in_process.join(caller).await {
                Ok(session) => realm.set_router_caller(session),
                // Too late to change nothing: the rest was applied.
                Err(e) => report.restart_required.push(format!(
                    "realm {:?}: the router's own session could not join ({e}): dynamic \
                     authentication and authorization there fail until a restart",
                    config.name
                )),
            }
            if let Some(management) = management {
                match super::meta_republish::republish_realm(
                    management,
                    &config.name,
                    &parts.in_process,
                )
                .await
                {
                    Ok(watcher) => {
                        self.watchers.insert(config.name.clone(), watcher);
                    }
                    Err(e) => tracing::warn!(
                        realm = config.name,
                        "reload: the realm's meta events are not republished: {e}"
                    ),
                }
            }
            report
                .applied
                .push(format!("realm {:?} added", config.name));
        }
        for name in &remove_realms {
            if let Some(realm) = parts.realms.remove(name) {
                let closed = realm.close_all(
                    switchboard_proto::errors::SYSTEM_SHUTDOWN,
                    &format!("realm {name:?} was removed from the node's config"),
                );
                self.watchers.remove(name);
                report.applied.push(format!(
                    "realm {name:?} removed ({closed} session(s) closed)"
                ));
            }
        }
        for (index, protocols, fingerprint, section) in swap {
            let running = &mut self.transports[index];
            *crate::locks::write(&running.protocols) = Arc::new(protocols);
            running.fingerprint = fingerprint;
            running.section = section;
            report.applied.push(format!(
                "transport {}: new connections get its new settings",
                running.addr
            ));
        }
        let mut removed: Vec<usize> = remove;
        removed.sort_unstable_by(|a, b| b.cmp(a));
        for index in removed {
            let running = self.transports.remove(index);
            running.stop.cancel();
            report.applied.push(format!(
                "transport {} removed: it accepts no more connections",
                running.addr
            ));
        }
        for (
            NewTransport {
                key,
                fingerprint,
                section,
                protocols,
                ..
            },
            listener,
            addr,
        ) in bound
        {
            let mut sessions = parts.sessions.clone();
            if let Some(timeout) = protocols.close_timeout {
                sessions.final_write_timeout = timeout;
            }
            let protocols = listener::shared(protocols);
            let stop = parts.stop_accepting.child_token();
            tokio::spawn(listener::serve(
                listener,
                protocols.clone(),
                sessions,
                parts.tracker.clone(),
                stop.clone(),
            ));
            tracing::info!(transport = %addr, "listening");
            report
                .applied
                .push(format!("transport {addr} added: listening"));
            self.transports.push(RunningTransport {
                key,
                fingerprint,
                section,
                protocols,
                stop,
                addr,
            });
        }
        // After the realms: a new realm's links, bridges and built-in components run on it.
        report
            .applied
            .extend(parts.links.apply(&loaded.config).await);
        if let Some(cluster) = &parts.cluster {
            report.restart_required.extend(cluster.reloaded(&loaded));
        }
        let (applied, failed) = parts.rest_components.apply(builtins).await;
        report.applied.extend(applied);
        report.restart_required.extend(failed);
        let (applied, failed) = parts.postgres_bridges.apply(&loaded).await;
        report.applied.extend(applied);
        report.restart_required.extend(failed);
        parts.loaded = loaded;
        if report.applied.is_empty() && report.restart_required.is_empty() {
            report.applied.push("nothing changed".into());
        }
        report
    }
}

/// What the private transport of router workers' components serves after a reload.
struct PrivateTransport {
    protocols: listener::Protocols,
    principals: serde_json::Map<String, Json>,
    /// Bound where the node had no such transport yet.
    listener: Option<listener::Listener>,
}

impl State {
    /// The private transport for the components of `loaded`, whose preparation gave them the
    /// principals `prepared`; `guests_add`: the processes the reload starts (the others keep
    /// the tickets they have). `None` where the node has no component directory (no component
    /// was added).
    fn private_transport(
        &self,
        prepared: &serde_json::Map<String, Json>,
        guests_add: &[super::guest::PreparedGuest],
        loaded: &LoadedConfig,
    ) -> Result<Option<PrivateTransport>, String> {
        let Some(dir) = crate::locks::lock(&self.parts.component_dir).clone() else {
            return Ok(None);
        };
        let running = &self.parts.components.principals;
        let principals: serde_json::Map<String, Json> = prepared
            .iter()
            .map(|(authid, principal)| {
                let id = authid.strip_prefix("component:").unwrap_or(authid);
                let restarted = guests_add.iter().any(|g| g.id == id);
                let kept = running.get(authid).filter(|_| !restarted);
                (authid.clone(), kept.unwrap_or(principal).clone())
            })
            .collect();
        let config =
            super::component::private_transport(&super::component::socket_in(&dir), &principals)
                .map_err(|e| format!("internal: the components' private transport: {e}"))?;
        let realm_names = Arc::new(
            loaded
                .config
                .router_workers()
                .flat_map(|(_, w)| w.realms.iter().map(|r| r.name.clone()))
                .collect(),
        );
        let protocols = listener::Protocols::from_config(&config, &loaded.base_dir, realm_names)
            .map_err(|problems| {
                let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                format!(
                    "internal: the components' private transport: {}",
                    text.join("; ")
                )
            })?;
        let listener = match self.parts.components.private {
            Some(_) => None,
            None => Some(
                listener::bind(config.endpoint(), &loaded.base_dir)
                    .map_err(|e| format!("the components' socket cannot listen: {e}"))?
                    .0,
            ),
        };
        Ok(Some(PrivateTransport {
            protocols,
            principals,
            listener,
        }))
    }
}

impl RunningTransport {
    /// A transport the node started listening on, from its config section.
    pub(super) fn new(
        section: &Json,
        base_dir: &std::path::Path,
        protocols: SharedProtocols,
        stop: CancellationToken,
        addr: ListenAddr,
    ) -> Self {
        Self {
            key: endpoint_key(section),
            fingerprint: fingerprint(section, base_dir),
            section: section.clone(),
            protocols,
            stop,
            addr,
        }
    }
}

/// What the management API shows of a certificate file: its subject, names and expiry (the
/// first certificate of the file: the server's own).
fn certificate_info(file: &std::path::Path) -> Value {
    let mut d = Dict::new();
    d.insert("certificate".into(), file.display().to_string().into());
    match crate::tls::certificate_summary(file) {
        Ok(cert) => {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            d.insert("subject".into(), cert.subject.into());
            d.insert(
                "names".into(),
                Value::List(cert.names.into_iter().map(Into::into).collect()),
            );
            d.insert("not_after".into(), cert.not_after.into());
            d.insert(
                "days_left".into(),
                ((cert.not_after - now) as f64 / 86_400.0).into(),
            );
        }
        Err(e) => {
            d.insert("error".into(), e.into());
        }
    }
    Value::Dict(d)
}

/// The certificate file of each TLS transport, by where it listens.
fn certificate_files(
    transports: &[RunningTransport],
    base: &std::path::Path,
) -> Vec<(String, std::path::PathBuf)> {
    transports
        .iter()
        .filter_map(|t| {
            let file = t
                .section
                .get("endpoint")?
                .get("tls")?
                .get("certificate")?
                .as_str()?;
            Some((t.addr.to_string(), base.join(file)))
        })
        .collect()
}

/// What changes among the components of a container worker, by component id.
#[derive(Default)]
struct ContainerChanges {
    /// The processes to stop: components removed or changed.
    stop: Vec<String>,
    /// The processes to start: components added or changed.
    start: Vec<String>,
}

impl ContainerChanges {
    fn apply(
        self,
        stop: &mut Vec<String>,
        start: &mut Vec<String>,
        components: &mut BTreeSet<String>,
    ) {
        components.extend(self.stop.iter().chain(&self.start).cloned());
        stop.extend(self.stop);
        start.extend(self.start);
    }
}

/// The process id of the component at an index of a worker's `components`, where it runs as a
/// process (`crate::config::process_ids`).
type ProcessIds<'a> = &'a dyn Fn(usize) -> Option<String>;

/// The changes from the components of the worker `old` to those of `new` (either an empty object
/// for a container added or removed), each side with its components' process ids.
fn container_changes(
    old: &Json,
    old_ids: ProcessIds<'_>,
    new: &Json,
    new_ids: ProcessIds<'_>,
) -> ContainerChanges {
    let by_id = |worker: &Json, ids: ProcessIds<'_>| -> BTreeMap<String, (usize, Json)> {
        list(worker, "components")
            .iter()
            .enumerate()
            .map(|(c, component)| {
                let id = ids(c).unwrap_or_else(|| {
                    let id = component
                        .get("id")
                        .and_then(Json::as_str)
                        .map(str::to_owned);
                    crate::config::component_id(id.as_ref(), c)
                });
                (id, (c, component.clone()))
            })
            .collect()
    };
    // PostgreSQL bridges and Crossbar's built-in REST components run in the node's process.
    let in_process = |component: &Json| {
        component.get("type").and_then(Json::as_str) != Some("class")
            || component
                .get("classname")
                .and_then(Json::as_str)
                .is_some_and(|class| {
                    crate::config::builtin_component(class, component.get("extra")).is_some()
                })
    };
    let (old, new) = (by_id(old, old_ids), by_id(new, new_ids));
    let mut changes = ContainerChanges::default();
    let ids: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for id in ids {
        let (before, after) = (old.get(id), new.get(id));
        if before.map(|(_, c)| c) == after.map(|(_, c)| c) {
            continue;
        }
        // PostgreSQL bridges and built-in REST components are compared and applied by their
        // own runners (`postgres_bridges`, `rest_components`); one whose kind changes (a class
        // that becomes a bridge) is stopped by one and started by the other.
        if before.is_some_and(|(_, c)| in_process(c)) || after.is_some_and(|(_, c)| in_process(c)) {
            if before.is_some_and(|(_, c)| !in_process(c)) {
                changes.stop.push(id.clone());
            }
            if after.is_some_and(|(_, c)| !in_process(c)) {
                changes.start.push(id.clone());
            }
            continue;
        }
        if before.is_some() {
            changes.stop.push(id.clone());
        }
        if after.is_some() {
            changes.start.push(id.clone());
        }
    }
    changes
}

/// The sections of the transports of the router workers of a config, in order.
pub(super) fn transport_sections(raw: &Json) -> Vec<Json> {
    list(raw, "workers")
        .iter()
        .filter(|w| w.get("type") == Some(&Json::from("router")))
        .flat_map(|w| list(w, "transports").to_vec())
        .collect()
}

/// The list at `key` of an object (empty when there is none).
fn list<'a>(value: &'a Json, key: &str) -> &'a [Json] {
    value
        .get(key)
        .and_then(Json::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The keys whose values differ between two objects, sorted.
fn changed_keys(old: &Json, new: &Json) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    keys.into_iter()
        .filter(|k| o.get(*k) != n.get(*k))
        .cloned()
        .collect()
}

/// Where a transport listens (`tcp 127.0.0.1 8080`, `unix /run/x.sock`): what identifies it from
/// one config to the next, so that a change of its TLS settings or other endpoint options is a
/// change of the transport, not another one (which would have to bind the same port).
fn endpoint_key(section: &Json) -> String {
    let endpoint = section.get("endpoint").unwrap_or(&Json::Null);
    let field = |key: &str| endpoint.get(key).map_or_else(String::new, Json::to_string);
    format!(
        "{} {} {} {}",
        field("type"),
        field("interface"),
        field("port"),
        field("path")
    )
}

/// A transport's section, and the contents of the files its endpoint's `tls` names: a renewed
/// certificate makes the transport change even where its section did not.
fn fingerprint(section: &Json, base_dir: &std::path::Path) -> String {
    let mut text = section.to_string();
    let mut files = Vec::new();
    if let Some(tls) = section.get("endpoint").and_then(|e| e.get("tls")) {
        collect_strings(tls, &mut files);
    }
    for file in files {
        let path = base_dir.join(&file);
        // Regular files of a sensible size only: a FIFO or a device would block or never end.
        let readable =
            std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() <= MAX_TLS_FILE_BYTES);
        if readable && let Ok(bytes) = std::fs::read(&path) {
            text.push('\n');
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

/// The largest TLS file whose contents a reload compares.
const MAX_TLS_FILE_BYTES: u64 = 1 << 20;

fn collect_strings(value: &Json, out: &mut Vec<String>) {
    match value {
        Json::String(s) => out.push(s.clone()),
        Json::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Json::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Whether a transport's section has an authenticator of `"type": "function"` (its helper
/// process is started with the node).
fn uses_function_authenticators(section: &Json) -> bool {
    match section {
        Json::Object(map) => {
            map.get("type") == Some(&Json::from("function")) && map.contains_key("create")
                || map.values().any(uses_function_authenticators)
        }
        Json::Array(items) => items.iter().any(uses_function_authenticators),
        _ => false,
    }
}

/// The keys whose values `switchboard.config.get` never shows.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "password",
    "ticket",
    "token",
    "private_key",
    "privkey",
    "github_secret",
    "stored-key",
    "server-key",
    "stored_key",
    "server_key",
    "salt",
];

/// The keys whose every value is masked: a guest's environment variables.
const SECRET_MAPS: &[&str] = &["vars"];

/// Replaces the value of every secret key (see [`SECRET_KEYS`], [`SECRET_MAPS`]) with `"***"`,
/// and the password in any URL (`postgres://user:password@host`).
fn mask_secrets(value: &mut Json) {
    match value {
        Json::Object(map) => {
            for (key, v) in map.iter_mut() {
                if SECRET_KEYS.contains(&key.as_str()) && !v.is_null() && !v.is_object() {
                    *v = Json::from("***");
                } else if SECRET_MAPS.contains(&key.as_str())
                    && let Json::Object(vars) = v
                {
                    vars.values_mut().for_each(|v| *v = Json::from("***"));
                } else {
                    mask_secrets(v);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(mask_secrets),
        Json::String(text) => {
            if let Some(masked) = mask_url_password(text) {
                *text = masked;
            }
        }
        _ => {}
    }
}

/// `scheme://user:password@rest` with the password masked; `None` for any other text.
fn mask_url_password(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let (userinfo, host) = rest.split_once('@')?;
    let (user, _) = userinfo.split_once(':')?;
    (!userinfo.contains('/')).then(|| format!("{scheme}://{user}:***@{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        ContainerWorkerConfig, ControllerConfig, GuestWorkerConfig, NodeConfig, RealmConfig,
        RoleConfig, RouterWorkerConfig,
    };

    /// The fields of a config type, as serde names them when it refuses an unknown one.
    fn fields_of<T: serde::de::DeserializeOwned>() -> Vec<String> {
        let error = match serde_json::from_value::<T>(serde_json::json!({"\u{1}": 0})) {
            Ok(_) => panic!("a field named \\u{{1}} was accepted"),
            Err(e) => e.to_string(),
        };
        let (_, expected) = error
            .split_once("expected one of ")
            .or_else(|| error.split_once("expected "))
            .unwrap_or_else(|| panic!("not an unknown-field error: {error}"));
        expected
            .split(", ")
            .map(|f| f.trim_matches(|c| c == '`' || c == ' ').to_owned())
            .filter(|f| !f.is_empty())
            .collect()
    }

    #[test]
    fn every_config_key_is_classified_hot_or_restart_only() {
        let types: Vec<(&str, Vec<String>)> = vec![
            ("", fields_of::<NodeConfig>()),
            ("controller.", fields_of::<ControllerConfig>()),
            ("workers[].", fields_of::<RouterWorkerConfig>()),
            ("workers[].", fields_of::<GuestWorkerConfig>()),
            ("workers[].", fields_of::<ContainerWorkerConfig>()),
            ("workers[].realms[].", fields_of::<RealmConfig>()),
            ("workers[].realms[].roles[].", fields_of::<RoleConfig>()),
        ];
        let mut unclassified = Vec::new();
        for (parent, fields) in types {
            assert!(!fields.is_empty(), "no fields found under {parent:?}");
            for field in fields {
                let path = format!("{parent}{field}");
                // A key is classified by an entry of its own, or by a parent entry: a `Hot`
                // parent is applied whole (a role is replaced with all its keys), a `Restart`
                // parent needs a restart for any key under it.
                let own = KEYS.iter().any(|(k, _)| *k == path);
                let parent_entry = KEYS
                    .iter()
                    .filter(|(k, _)| {
                        path.starts_with(&format!("{k}.")) || path.starts_with(&format!("{k}[]."))
                    })
                    .max_by_key(|(k, _)| k.len());
                // The worker entry `workers[]` covers only what a worker type adds (guest and
                // container keys): router keys must each have their own.
                let covered = own
                    || parent_entry.is_some_and(|(k, _)| {
                        *k != "workers[]" || !fields_of::<RouterWorkerConfig>().contains(&field)
                    });
                if !covered {
                    unclassified.push(path);
                }
            }
        }
        assert!(
            unclassified.is_empty(),
            "config keys not classified hot or restart-only in reload::KEYS: {unclassified:?}"
        );
    }

    #[test]
    fn components_change_one_by_one_and_those_in_the_process_are_left_to_their_runners() {
        let class = |id: &str, classname: &str| serde_json::json!({"type": "class", "id": id, "classname": classname, "realm": "r"});
        let bridge = |database: &str| serde_json::json!({"type": "postgresql", "id": "pg", "realm": "r", "database": database});
        let old = serde_json::json!({"components": [
            class("same", "m.Same"), class("changed", "m.Before"), class("gone", "m.Gone"),
            bridge("one"),
        ]});
        let new = serde_json::json!({"components": [
            class("same", "m.Same"), class("changed", "m.After"), class("new", "m.New"),
            bridge("two"), class("rest", "crossbar.bridge.rest.RESTCallee"),
        ]});
        let none = |_: usize| None;
        let changes = container_changes(&old, &none, &new, &none);
        assert_eq!(changes.stop, ["changed", "gone"]);
        assert_eq!(changes.start, ["changed", "new"]);
    }

    #[test]
    fn a_key_takes_the_class_of_the_longest_entry_it_is_under() {
        assert_eq!(class_of("workers[].realms[].roles"), Some(Class::Hot));
        assert_eq!(
            class_of("workers[].realms[].roles[].permissions[].uri"),
            Some(Class::Hot)
        );
        assert_eq!(
            class_of("workers[].realms[].store.type"),
            Some(Class::Restart)
        );
        assert_eq!(
            class_of("workers[].transports[].endpoint.port"),
            Some(Class::Hot)
        );
        assert_eq!(class_of("controller.id"), Some(Class::Restart));
        assert_eq!(class_of("unknown"), None);
    }

    #[test]
    fn secrets_are_masked_and_nothing_else() {
        let mut config = serde_json::json!({
            "auth": {"ticket": {"type": "static", "principals": {"joe": {"ticket": "s3cret", "role": "user"}}},
                     "wampcra": {"users": {"ann": {"secret": "x", "role": "user"}}}},
            "connections": [{"password": "pw", "user": "postgres"}],
        });
        mask_secrets(&mut config);
        assert_eq!(
            config["auth"]["ticket"]["principals"]["joe"]["ticket"],
            "***"
        );
        assert_eq!(config["auth"]["ticket"]["type"], "static");
        assert_eq!(config["auth"]["wampcra"]["users"]["ann"]["secret"], "***");
        assert_eq!(config["connections"][0]["password"], "***");
        assert_eq!(config["connections"][0]["user"], "postgres");
        let mut more = serde_json::json!({
            "options": {"env": {"vars": {"API_KEY": "k", "MODE": "prod"}}},
            "scram": {"principals": {"al": {"stored-key": "s", "server-key": "t", "salt": "u"}}},
            "dsn": "postgres://app:hunter2@db:5432/app",
            "url": "ws://127.0.0.1:8080/ws",
        });
        mask_secrets(&mut more);
        assert_eq!(
            more["options"]["env"]["vars"],
            serde_json::json!({"API_KEY": "***", "MODE": "***"})
        );
        assert_eq!(more["scram"]["principals"]["al"]["stored-key"], "***");
        assert_eq!(more["scram"]["principals"]["al"]["server-key"], "***");
        assert_eq!(more["dsn"], "postgres://app:***@db:5432/app");
        assert_eq!(more["url"], "ws://127.0.0.1:8080/ws");
    }
}
