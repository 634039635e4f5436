//! Starting and stopping a router node: the one entry point the binary and the tests share.
//!
//! [`prepare`] builds everything the node needs from its config and reports every unusable part
//! (`switchboard check` stops there); [`start_prepared`] builds the realms, binds every transport
//! (so that bind errors surface before anything runs) and spawns the accept loops; [`start`] does
//! both, then starts the guest workers (`guest`). [`NodeBuilder`] starts a node with components hosted in its process (`crate::embed`).
//! [`RunningNode::shutdown`] drains: it stops accepting connections, sessions and new calls, gives
//! calls in flight the shutdown grace to finish (the rest fail with `wamp.error.canceled` and
//! their callees are interrupted), then tells every session GOODBYE
//! (`wamp.close.system_shutdown`), in-process ones included, while it stops the guest workers, and
//! waits for both.

use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::ids::IdSequence;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod cluster;
mod component;
pub mod control;
mod function_auth;
mod guest;
pub mod links;
mod management;
mod meta_republish;
mod postgres_bridges;
mod prepare;
pub mod reload;
mod rest_components;

pub use guest::{GuestSupervisor, PreparedGuest};
pub use prepare::{PreparedNode, prepare, prepare_dir, prepare_draft};
pub use reload::{ReloadReport, Reloader};

use crate::config::{ConfigErrors, LoadedConfig};
use crate::embed::{Component, InProcess, TrustedIdentity};
use crate::listener::{self, ListenAddr};
use crate::ops::NodeStatus;
use crate::realm::authz::TRUSTED_ROLE;
use crate::realm::router_caller::ROUTER_AUTHID;
use crate::realm::{Realm, RealmRegistry};
use crate::session::SessionConfig;

/// How long shutdown waits for sessions to say GOODBYE before giving up on them (after the calls in
/// flight had their own grace).
pub const GOODBYE_GRACE: Duration = Duration::from_secs(5);

/// How often a draining node looks whether its calls in flight are done.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config describes material that cannot be used (a TLS key, a JWKS file, a static
    /// directory): every problem, placed in the file as `switchboard check` reports them.
    #[error("invalid configuration:\n{0}")]
    Config(ConfigErrors),
    /// A transport could not bind its endpoint.
    #[error("transport {index}: cannot listen on {endpoint}: {source}")]
    Bind {
        /// Position in `workers[0].transports`.
        index: usize,
        /// The endpoint as configured.
        endpoint: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The control socket could not be opened in the node directory (`switchboard start`).
    #[error("{dir}: {reason}")]
    Control {
        /// The node directory.
        dir: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// An in-process session could not join: the router's own caller of a realm, or a hosted
    /// component (its realm or role does not exist).
    #[error("in-process session {authid:?} on realm {realm:?} cannot join: {source}")]
    Join {
        /// The session's realm.
        realm: String,
        /// The session's authid.
        authid: String,
        /// Why.
        source: switchboard_client::Error,
    },
    /// The router worker's `cluster` could not be joined (NATS unreachable, no JetStream).
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
}

/// A call relayed to another router (over a link or a cluster) as its caller here gets the
/// outcome: an ERROR keeps its URI and payload; losing the call there is `wamp.error.canceled`
/// with `lost` and why.
pub(crate) fn relayed_call_error(
    e: switchboard_client::Error,
    lost: &str,
) -> switchboard_client::CallError {
    match e {
        switchboard_client::Error::Wamp { uri, args, kwargs } => {
            switchboard_client::CallError { uri, args, kwargs }
        }
        other => switchboard_client::CallError::new(switchboard_proto::errors::CANCELED).with_args(
            switchboard_client::Args::positional(vec![format!("{lost}: {other}").into()]),
        ),
    }
}

/// A started node.
pub struct RunningNode {
    /// Where each transport listens, in config order.
    pub listeners: Vec<ListenAddr>,
    realms: Arc<RealmRegistry>,
    in_process: InProcess,
    /// How long a shutdown gives calls in flight to finish.
    shutdown_grace: Duration,
    /// Cancelled when the node starts shutting down: listeners stop accepting.
    stop_accepting: CancellationToken,
    /// Cancelled once calls in flight are done or cut off: sessions say GOODBYE.
    shutdown: CancellationToken,
    tracker: TaskTracker,
    guests: GuestSupervisor,
    /// The private directory of hosted components, removed at shutdown.
    /// (Shared with the reload, which creates it when the first component comes with one.)
    component_dir: Arc<std::sync::Mutex<Option<std::path::PathBuf>>>,
    /// The helpers of the function authenticators.
    functions: function_auth::FunctionHosts,
    /// Crossbar's built-in REST components.
    rest_components: Arc<rest_components::RestComponents>,
    /// The PostgreSQL bridges.
    postgres_bridges: Arc<postgres_bridges::PostgresBridges>,
    /// Links to other routers, and each realm's link service.
    links: Arc<links::Links>,
    /// The node's part in a cluster, where the config has one.
    cluster: Option<Arc<cluster::Cluster>>,
    /// The node's readiness (the `health` and `metrics` web paths).
    status: Arc<NodeStatus>,
    /// Cancelled when a client of the control socket asks the node to stop.
    stop_requested: CancellationToken,
    /// The control socket and pid file, where `switchboard start` opened them.
    control: Option<control::Control>,
    /// The management API's session, where the config serves it.
    _management: Option<switchboard_client::Session>,
    /// Applies config changes while the node runs.
    reloader: Arc<Reloader>,
    /// The ids of the config's router workers.
    router_ids: Vec<String>,
}

impl RunningNode {
    /// Joins in-process sessions to this node (see `crate::embed`).
    pub fn in_process(&self) -> &InProcess {
        &self.in_process
    }

    /// Resolves once the node was asked over its control socket to shut down
    /// (`switchboard stop`); the caller then runs [`Self::shutdown`].
    pub async fn stop_requested(&self) {
        self.stop_requested.cancelled().await;
    }

    /// The node's readiness.
    pub fn status(&self) -> &Arc<NodeStatus> {
        &self.status
    }

    /// What the management API reads and acts on.
    fn management_node(&self) -> management::Node {
        management::Node {
            realms: self.realms.clone(),
            status: self.status.clone(),
            stop_requested: self.stop_requested.clone(),
            reloader: self.reloader.clone(),
            workers: self.guests.clone(),
            router_ids: self.router_ids.clone(),
            links: self.links.table(),
            cluster: self.cluster.as_ref().map(|c| c.table()),
        }
    }

    /// Reads the config file again and applies what changed while the node runs (SIGHUP,
    /// `switchboard reload`): see [`reload`].
    pub async fn reload(&self) -> ReloadReport {
        self.reloader.reload().await
    }

    /// The node's reload pipeline, to run a reload on a task of its own.
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    /// The realm registry (for embedding and tests).
    pub fn realms(&self) -> &Arc<RealmRegistry> {
        &self.realms
    }

    /// The first TCP address the node listens on.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.listeners.iter().find_map(|l| match l {
            ListenAddr::Tcp(a) => Some(*a),
            ListenAddr::Unix(_) => None,
        })
    }

    /// How long a shutdown gives calls in flight to finish (`controller.options.shutdown_grace`,
    /// 5 s by default).
    pub fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }

    /// Overrides the config's shutdown grace (`switchboard start --shutdown-grace`).
    pub fn set_shutdown_grace(&mut self, grace: Duration) {
        self.shutdown_grace = grace;
    }

    /// Shuts the node down gracefully: stops accepting connections, new sessions and new calls;
    /// waits up to the shutdown grace for the calls in flight; fails those still pending for their
    /// callers (`wamp.error.canceled`) and interrupts their callees; then closes every session with
    /// GOODBYE `wamp.close.system_shutdown` and waits (at most [`GOODBYE_GRACE`]) for them to end.
    pub async fn shutdown(self) {
        let realms = self.realms.all();
        for realm in &realms {
            realm.start_draining();
        }
        self.stop_accepting.cancel();
        let deadline = tokio::time::Instant::now() + self.shutdown_grace;
        let mut announced = false;
        loop {
            let in_flight: usize = realms.iter().map(|r| r.calls_in_flight()).sum();
            if in_flight == 0 {
                break;
            }
            if !announced {
                tracing::info!(
                    "shutdown: waiting up to {:?} for {in_flight} call(s) in flight",
                    self.shutdown_grace
                );
                announced = true;
            }
            if tokio::time::Instant::now() >= deadline {
                for realm in &realms {
                    let cut = realm.cut_off_calls();
                    if cut > 0 {
                        tracing::warn!(
                            realm = realm.name(),
                            "shutdown: {cut} call(s) in flight did not finish within {:?}: \
                             their callers got wamp.error.canceled, their callees INTERRUPT",
                            self.shutdown_grace
                        );
                    }
                }
                break;
            }
            tokio::time::sleep(DRAIN_POLL.min(deadline - tokio::time::Instant::now())).await;
        }
        // The other nodes stop routing here before this node's sessions go.
        if let Some(cluster) = &self.cluster {
            cluster.stop().await;
        }
        self.shutdown.cancel();
        self.tracker.close();
        let sessions = async {
            if tokio::time::timeout(GOODBYE_GRACE, self.tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!("some sessions did not close within {GOODBYE_GRACE:?}");
            }
        };
        self.rest_components.stop().await;
        self.links.stop().await;
        tokio::join!(
            sessions,
            self.guests.stop(),
            self.functions.stop(),
            self.postgres_bridges.stop()
        );
        if let Some(dir) = &*crate::locks::lock(&self.component_dir) {
            component::remove_dir(dir);
        }
        if let Some(control) = &self.control {
            control.remove_files();
        }
    }

    /// The ids of the guest workers the node supervises, in start order.
    pub fn guest_ids(&self) -> Vec<String> {
        self.guests.ids()
    }
}

/// Starts a node from a loaded config: [`prepare`], then [`start_prepared`].
pub async fn start(loaded: &LoadedConfig) -> Result<RunningNode, StartError> {
    let node = prepare(loaded).map_err(StartError::Config)?;
    start_prepared(node).await
}

/// Starts a prepared node: builds the realms, binds every transport (so that bind errors surface
/// before anything runs) and spawns the accept loops.
pub async fn start_prepared(node: PreparedNode) -> Result<RunningNode, StartError> {
    let ids = Arc::new(IdSequence::new());
    let realms = node
        .realms()
        .map(|realm| Arc::new(Realm::new(realm, ids.clone())))
        .collect::<Vec<_>>();
    // The URIs the config gives series of their own, counted from the first message on.
    let metrics_uris = Arc::new(node.config().config.metrics_uris().to_vec());
    for realm in &realms {
        realm.stats.count_uris(&metrics_uris);
    }
    let realms = Arc::new(RealmRegistry::new(realms));
    let templates: Vec<_> = node.templates().cloned().collect();
    let shutdown = CancellationToken::new();
    let stop_accepting = CancellationToken::new();
    let tracker = TaskTracker::new();
    let shutdown_grace = node.config().config.shutdown_grace();
    // Not ready (the `health` path's `ready`) until everything below has started.
    let status = Arc::new(NodeStatus::starting());
    let sessions_of = |realms: &Arc<RealmRegistry>| {
        let mut sessions = SessionConfig::new(realms.clone(), shutdown.clone());
        sessions.status = status.clone();
        sessions
    };
    let in_process = InProcess::new(sessions_of(&realms), tracker.clone());
    // The management API's session, once it runs: realms created later republish their meta
    // events through it.
    let management_session: Arc<std::sync::OnceLock<switchboard_client::Session>> =
        Default::default();
    let on_create = realm_companions(
        in_process.clone(),
        management_session.clone(),
        metrics_uris.clone(),
    );
    realms.set_templates(templates, ids.clone(), on_create.clone());
    tokio::spawn(retire_empty_realms(realms.clone(), shutdown.clone()));
    // Each realm's caller joins before any listener accepts, so dynamic authenticators and
    // authorizers are reachable from the first HELLO on.
    for realm in realms.all() {
        let identity = TrustedIdentity::new(realm.name(), ROUTER_AUTHID, TRUSTED_ROLE).hidden();
        let caller = in_process
            .join(identity)
            .await
            .map_err(|source| StartError::Join {
                realm: realm.name().to_owned(),
                authid: ROUTER_AUTHID.to_owned(),
                source,
            })?;
        realm.set_router_caller(caller);
    }

    let PreparedNode {
        loaded,
        transports,
        guests,
        component_dir,
        component_principals,
        functions,
        builtins,
        ..
    } = node;
    // Registered before any listener accepts, so that no client can take their procedures.
    let functions = function_auth::FunctionHosts::start(functions, &in_process, &realms).await?;
    if let Some(dir) = &component_dir {
        component::create_dir(dir).map_err(|source| StartError::Bind {
            index: transports.len().saturating_sub(1),
            endpoint: format!("unix:{}", dir.display()),
            source,
        })?;
    }
    let component_dir = Arc::new(std::sync::Mutex::new(component_dir));
    let mut bound = Vec::new();
    for (index, transport) in transports.into_iter().enumerate() {
        let endpoint = &transport.endpoint;
        let (listener, addr) =
            listener::bind(endpoint, &loaded.base_dir).map_err(|source| StartError::Bind {
                index,
                endpoint: endpoint.to_string(),
                source,
            })?;
        bound.push((listener, addr, transport.protocols, transport.private));
    }

    let mut listeners = Vec::new();
    let mut running = Vec::new();
    // What the private transport of router workers' components serves.
    let mut private_protocols = None;
    let mut sections = reload::transport_sections(&loaded.raw).into_iter();
    for (listener, addr, protocols, private) in bound {
        if !private {
            tracing::info!(transport = %addr, "listening");
        }
        let mut sessions = sessions_of(&realms);
        if let Some(timeout) = protocols.close_timeout {
            sessions.final_write_timeout = timeout;
        }
        let protocols = listener::shared(protocols);
        // Each transport stops on its own when a reload removes it, and with the node.
        let stop = stop_accepting.child_token();
        tokio::spawn(listener::serve(
            listener,
            protocols.clone(),
            sessions,
            tracker.clone(),
            stop.clone(),
        ));
        if private {
            private_protocols = Some(protocols.clone());
        } else {
            listeners.push(addr.clone());
            if let Some(section) = sections.next() {
                running.push(reload::RunningTransport::new(
                    &section,
                    &loaded.base_dir,
                    protocols,
                    stop,
                    addr,
                ));
            }
        }
    }
    // Guests start once the router listens: most of them connect to it.
    let guests = GuestSupervisor::start(guests, realms.clone(), status.clone());
    let supervisor = guests.clone();
    status.set_workers(Box::new(move || {
        supervisor
            .handles()
            .iter()
            .map(|h| {
                let view = h.view();
                crate::ops::health::WorkerSample {
                    id: h.id.clone(),
                    kind: h.kind,
                    up: view.pid.is_some(),
                    restarts: view.restarts,
                }
            })
            .collect()
    }));
    let rest_components =
        Arc::new(rest_components::RestComponents::start(builtins, &in_process).await?);
    let postgres_bridges =
        Arc::new(postgres_bridges::PostgresBridges::start(&loaded, &in_process).await?);
    let links = Arc::new(
        links::Links::start(&loaded.config, &loaded.base_dir, &in_process, &realms).await?,
    );
    let cluster = cluster::Cluster::start(&loaded, &links.node_id(), &in_process, &realms, &status)
        .await?
        .map(Arc::new);
    let stop_requested = CancellationToken::new();
    let router_ids: Vec<String> = loaded
        .config
        .workers
        .iter()
        .enumerate()
        .filter(|(_, w)| w.as_router().is_some())
        .map(|(i, w)| w.id(i))
        .collect();
    let reloader = Arc::new(Reloader::new(
        reload::Parts {
            loaded: loaded.clone(),
            realms: realms.clone(),
            ids: ids.clone(),
            in_process: in_process.clone(),
            sessions: sessions_of(&realms),
            tracker: tracker.clone(),
            stop_accepting: stop_accepting.clone(),
            on_create,
            guests: guests.clone(),
            links: links.clone(),
            cluster: cluster.clone(),
            component_dir: component_dir.clone(),
            components: reload::RunningComponents {
                private: private_protocols,
                principals: component_principals,
            },
            rest_components: rest_components.clone(),
            postgres_bridges: postgres_bridges.clone(),
            metrics_uris: metrics_uris.clone(),
        },
        running,
        status.clone(),
    ));
    // The management API, where the config asks for it: an in-process session of the node, a
    // callee like any other on that realm, whose roles decide who may call it.
    let management = match loaded.config.management_realm() {
        Some(realm) => {
            // It sees who calls: `switchboard.access.get` answers about the caller's role.
            let identity = TrustedIdentity::new(realm, "management", TRUSTED_ROLE)
                .hidden()
                .seeing_callers();
            let join_error = |source| StartError::Join {
                realm: realm.to_owned(),
                authid: "management".to_owned(),
                source,
            };
            let session = in_process.join(identity).await.map_err(join_error)?;
            let node = management::Node {
                realms: realms.clone(),
                status: status.clone(),
                stop_requested: stop_requested.clone(),
                reloader: reloader.clone(),
                workers: guests.clone(),
                router_ids: router_ids.clone(),
                links: links.table(),
                cluster: cluster.as_ref().map(|c| c.table()),
            };
            management::serve(&session, realm, node, true)
                .await
                .map_err(join_error)?;
            let watchers = meta_republish::republish_meta_events(&session, &realms, &in_process)
                .await
                .map_err(|(realm, source)| StartError::Join {
                    realm,
                    authid: "management".to_owned(),
                    source,
                })?;
            reloader.set_management(session.clone(), watchers).await;
            let _ = management_session.set(session.clone());
            tracing::info!(realm, "management API served");
            Some(session)
        }
        None => None,
    };
    status.mark_started();
    Ok(RunningNode {
        listeners,
        realms,
        in_process,
        shutdown_grace,
        stop_accepting,
        shutdown,
        tracker,
        guests,
        component_dir,
        functions,
        rest_components,
        postgres_bridges,
        links,
        cluster,
        status,
        stop_requested,
        control: None,
        _management: management,
        reloader,
        router_ids,
    })
}

/// What the node does for a realm a template created: joins the realm's own caller (dynamic
/// authentication and authorization) and, where the management API runs, the watcher that
/// republishes its meta events there. Both join in the background: the realm serves its first
/// session meanwhile (its router calls wait a moment for the caller).
fn realm_companions(
    in_process: InProcess,
    management: Arc<std::sync::OnceLock<switchboard_client::Session>>,
    metrics_uris: Arc<Vec<String>>,
) -> crate::realm::OnCreate {
    Arc::new(move |realm: Arc<Realm>| {
        realm.stats.count_uris(&metrics_uris);
        let (in_process, management) = (in_process.clone(), management.clone());
        tokio::spawn(async move {
            let name = realm.name().to_owned();
            let caller = TrustedIdentity::new(&name, ROUTER_AUTHID, TRUSTED_ROLE).hidden();
            match in_process.join(caller).await {
                Ok(session) => realm.set_router_caller(session),
                Err(e) => tracing::error!(realm = name, "the realm's caller cannot join: {e}"),
            }
            if let Some(management) = management.get() {
                match meta_republish::republish_realm(management, &name, &in_process).await {
                    Ok(watcher) => realm.hold(watcher),
                    Err(e) => tracing::warn!(
                        realm = name,
                        "the realm's meta events are not republished: {e}"
                    ),
                }
            }
        });
    })
}

/// How often the node looks for realms a template created that have had no session for their
/// linger time.
const RETIRE_EVERY: Duration = Duration::from_millis(250);

/// Removes each realm a template created once it has had no session for its linger time.
async fn retire_empty_realms(realms: Arc<RealmRegistry>, shutdown: CancellationToken) {
    let mut empty_since: std::collections::HashMap<String, tokio::time::Instant> =
        Default::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETIRE_EVERY) => {}
        }
        let now = tokio::time::Instant::now();
        let created: Vec<_> = realms
            .all()
            .into_iter()
            .filter_map(|r| r.linger().map(|linger| (r, linger)))
            .collect();
        empty_since.retain(|name, _| created.iter().any(|(r, _)| r.name() == name));
        for (realm, linger) in created {
            if realm.session_count() > 0 {
                empty_since.remove(realm.name());
                continue;
            }
            let since = *empty_since.entry(realm.name().to_owned()).or_insert(now);
            if now.duration_since(since) >= linger && realms.retire(&realm) {
                empty_since.remove(realm.name());
                tracing::info!(
                    realm = realm.name(),
                    "realm removed: no session for {linger:?} (it was created from a template)"
                );
            }
        }
    }
}

type HostFn = Box<
    dyn FnOnce(InProcess) -> futures::future::BoxFuture<'static, Result<(), StartError>> + Send,
>;

/// Starts a node with application components hosted in its process: the entry point for a Rust
/// program that embeds Switchboard.
///
/// ```no_run
/// # async fn run(config: switchboard_router::LoadedConfig) -> Result<(), Box<dyn std::error::Error>> {
/// use switchboard_client::Session;
/// use switchboard_router::embed::{Component, ComponentError, TrustedIdentity};
/// use switchboard_router::node::{self, NodeBuilder};
///
/// struct Hello;
/// impl Component for Hello {
///     async fn on_join(&self, session: Session) -> Result<(), ComponentError> {
///         session.publish("com.example.hello", Default::default(), Default::default()).await?;
///         Ok(())
///     }
/// }
///
/// let prepared = node::prepare(&config)?; // every config problem at once, as `check` reports them
/// let node = NodeBuilder::new(prepared)
///     .component(TrustedIdentity::new("realm1", "hello", "backend"), Hello)
///     .start()
///     .await?;
/// node.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct NodeBuilder {
    prepared: PreparedNode,
    components: Vec<HostFn>,
}

impl NodeBuilder {
    /// A node from its prepared config ([`prepare`]), with no components yet.
    pub fn new(prepared: PreparedNode) -> Self {
        Self {
            prepared,
            components: Vec::new(),
        }
    }

    /// Hosts `component` in a session joined as `identity`, started in the order added.
    pub fn component<C: Component>(mut self, identity: TrustedIdentity, component: C) -> Self {
        self.components.push(Box::new(move |in_process: InProcess| {
            Box::pin(async move {
                let (realm, authid) = (identity.realm.clone(), identity.authid.clone());
                in_process
                    .host(identity, component)
                    .await
                    .map(drop)
                    .map_err(|source| StartError::Join {
                        realm,
                        authid,
                        source,
                    })
            })
        }));
        self
    }

    /// Starts the node ([`start_prepared`]), then joins each component's session and runs its
    /// `on_join`. A component that cannot join stops the node and is the error.
    pub async fn start(self) -> Result<RunningNode, StartError> {
        let node = start_prepared(self.prepared).await?;
        for host in self.components {
            if let Err(e) = host(node.in_process.clone()).await {
                node.shutdown().await;
                return Err(e);
            }
        }
        Ok(node)
    }
}
