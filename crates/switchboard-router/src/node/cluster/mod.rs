//! Cluster mode: this node serves its realms together with the other nodes of one cluster, so
//! that clients connected to different nodes see one router. The coordination runs on NATS with
//! JetStream: core subjects carry events and calls between nodes, key-value buckets hold the
//! membership (`membership.rs`) and each node's interest (`realm.rs`).
//!
//! As everything that plugs into the router, the cluster reaches it only through in-process WAMP
//! sessions (`crate::embed`): per realm, an *event end* that holds the other nodes'
//! subscriptions (so the broker hands it exactly the events they want) and publishes what
//! arrives from them, and per other node a *peer end* that registers that node's procedures
//! (so the dealer routes calls for them to it, with every invocation policy) and makes the
//! calls that node's callers send here. Both are links (`forward_for`, never handed a message
//! that came from another router) of the built-in `trusted` role.

mod membership;
mod realm;
mod subjects;
mod wire;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use switchboard_proto::{Dict, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterConfig, LoadedConfig};
use crate::embed::InProcess;
use crate::locks::lock;
use crate::ops::health::NodeStatus;
use crate::realm::RealmRegistry;
pub use membership::{Heartbeat, Members};
use subjects::Subjects;

/// What the node's health lists while this node is cut off from the cluster.
const HEALTH_ITEM: &str = "cluster";
/// How long connecting to NATS and setting up the buckets may take at start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One live node as `switchboard.cluster.status` shows it.
#[derive(Debug, Clone, Default)]
pub struct MemberView {
    /// Its node id.
    pub node: String,
    /// The realms it serves across the cluster.
    pub realms: Vec<String>,
    /// Its sessions per realm.
    pub sessions: BTreeMap<String, u64>,
    /// When it started (ms since the epoch).
    pub started: u64,
    /// Its version.
    pub version: String,
    /// Since its last heartbeat (ms; 0 for this node).
    pub last_seen_ms: u64,
}

/// One realm's figures.
#[derive(Debug, Clone, Default)]
pub struct RealmView {
    /// Distinct subscription patterns of this node's clients, shared with the others.
    pub local_subscriptions: usize,
    /// Distinct registration patterns of this node's clients, shared with the others.
    pub local_registrations: usize,
    /// Subscription patterns of other nodes held here.
    pub remote_subscriptions: usize,
    /// Registrations of other nodes held here.
    pub remote_registrations: usize,
    /// NATS subscriptions for events.
    pub nats_subscriptions: usize,
    /// Events sent to other nodes.
    pub events_out: u64,
    /// Events received from other nodes.
    pub events_in: u64,
    /// Events for other nodes dropped because NATS did not keep up.
    pub events_dropped: u64,
    /// Calls sent to other nodes.
    pub calls_out: u64,
    /// Calls received from other nodes.
    pub calls_in: u64,
    /// Registrations of other nodes that this node's dealer refused (a `single` procedure held
    /// here too), retried.
    pub conflicts: Vec<String>,
}

/// The cluster's state as this node sees it.
#[derive(Debug, Default)]
pub struct ClusterTable {
    inner: Mutex<TableInner>,
}

#[derive(Debug, Default)]
struct TableInner {
    name: String,
    node: String,
    state: &'static str,
    /// The connection, for the server it is on now.
    nats: Option<async_nats::Client>,
    members: Vec<MemberView>,
    mismatches: BTreeMap<String, Vec<String>>,
    realms: BTreeMap<String, RealmView>,
}

impl ClusterTable {
    fn set_state(&self, state: &'static str) {
        lock(&self.inner).state = state;
    }

    fn set_members(&self, members: Vec<MemberView>) {
        let mut inner = lock(&self.inner);
        inner
            .mismatches
            .retain(|node, _| members.iter().any(|m| &m.node == node));
        inner.members = members;
    }

    fn set_mismatches(&self, node: &str, parts: Vec<String>) {
        let mut inner = lock(&self.inner);
        if parts.is_empty() {
            inner.mismatches.remove(node);
        } else {
            inner.mismatches.insert(node.to_owned(), parts);
        }
    }

    fn update_realm(&self, realm: &str, change: impl FnOnce(&mut RealmView)) {
        change(
            lock(&self.inner)
                .realms
                .entry(realm.to_owned())
                .or_default(),
        );
    }

    /// The state as `switchboard.cluster.status` returns it.
    pub fn to_value(&self) -> Value {
        let inner = lock(&self.inner);
        let mut d = Dict::new();
        d.insert("name".into(), inner.name.as_str().into());
        d.insert("node".into(), inner.node.as_str().into());
        d.insert("state".into(), inner.state.into());
        let server = inner.nats.as_ref().map(|c| {
            let info = c.server_info();
            format!("{} ({}:{})", info.server_name, info.host, info.port)
        });
        d.insert("nats_server".into(), server.unwrap_or_default().into());
        let members = inner
            .members
            .iter()
            .map(|m| {
                let mut n = Dict::new();
                n.insert("node".into(), m.node.as_str().into());
                n.insert("this".into(), (m.node == inner.node).into());
                n.insert(
                    "realms".into(),
                    Value::List(m.realms.iter().map(|r| r.as_str().into()).collect()),
                );
                n.insert(
                    "sessions".into(),
                    Value::Dict(
                        m.sessions
                            .iter()
                            .map(|(r, c)| (r.clone(), (*c).into()))
                            .collect(),
                    ),
                );
                n.insert("started".into(), m.started.into());
                n.insert("version".into(), m.version.as_str().into());
                n.insert("last_seen_ms".into(), m.last_seen_ms.into());
                n.insert(
                    "config_differs".into(),
                    Value::List(
                        inner
                            .mismatches
                            .get(&m.node)
                            .into_iter()
                            .flatten()
                            .map(|p| p.as_str().into())
                            .collect(),
                    ),
                );
                Value::Dict(n)
            })
            .collect();
        d.insert("nodes".into(), Value::List(members));
        let realms = inner
            .realms
            .iter()
            .map(|(name, r)| {
                let mut v = Dict::new();
                let mut put = |k: &str, n: u64| {
                    v.insert(k.into(), n.into());
                };
                put("local_subscriptions", r.local_subscriptions as u64);
                put("local_registrations", r.local_registrations as u64);
                put("remote_subscriptions", r.remote_subscriptions as u64);
                put("remote_registrations", r.remote_registrations as u64);
                put("nats_subscriptions", r.nats_subscriptions as u64);
                put("events_out", r.events_out);
                put("events_in", r.events_in);
                put("events_dropped", r.events_dropped);
                put("calls_out", r.calls_out);
                put("calls_in", r.calls_in);
                v.insert(
                    "conflicts".into(),
                    Value::List(r.conflicts.iter().map(|c| c.as_str().into()).collect()),
                );
                (name.clone(), Value::Dict(v))
            })
            .collect();
        d.insert("realms".into(), Value::Dict(realms));
        Value::Dict(d)
    }

    /// The live nodes.
    pub fn members(&self) -> Vec<MemberView> {
        lock(&self.inner).members.clone()
    }

    /// What the metrics show.
    pub fn sample(&self) -> crate::ops::health::ClusterSample {
        let inner = lock(&self.inner);
        crate::ops::health::ClusterSample {
            name: inner.name.clone(),
            nodes: inner.members.len(),
            fenced: inner.state == "fenced",
            realms: inner
                .realms
                .iter()
                .map(|(realm, r)| crate::ops::health::ClusterRealmSample {
                    realm: realm.clone(),
                    events_out: r.events_out,
                    events_in: r.events_in,
                    events_dropped: r.events_dropped,
                    calls_out: r.calls_out,
                    calls_in: r.calls_in,
                })
                .collect(),
        }
    }
}

/// What every part of the cluster shares.
pub(crate) struct ClusterContext {
    config: ClusterConfig,
    node_id: String,
    incarnation: String,
    started: u64,
    subjects: Subjects,
    nats: async_nats::Client,
    interest: jetstream::kv::Store,
    in_process: InProcess,
    realms: Arc<RealmRegistry>,
    /// The realms served across the cluster.
    served: Vec<String>,
    /// Digests of the config every node must share, as this node runs it (a reload changes
    /// them).
    hashes: Mutex<BTreeMap<String, String>>,
    status: Arc<NodeStatus>,
    table: Arc<ClusterTable>,
}

impl std::fmt::Debug for ClusterContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterContext")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ClusterContext {
    /// This node's heartbeat now.
    fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            node: self.node_id.clone(),
            incarnation: self.incarnation.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            realms: self.served.clone(),
            hashes: lock(&self.hashes).clone(),
            sessions: self
                .served
                .iter()
                .filter_map(|r| {
                    self.realms
                        .get(r)
                        .map(|realm| (r.clone(), realm.session_count() as u64))
                })
                .collect(),
            started: self.started,
        }
    }
}

/// The running cluster mode of a node.
#[derive(Debug)]
pub struct Cluster {
    ctx: Arc<ClusterContext>,
    stop: CancellationToken,
    tasks: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    table: Arc<ClusterTable>,
}

/// Why the cluster mode could not start.
#[derive(Debug, thiserror::Error)]
#[error("cluster `{cluster}`: {message}")]
pub struct ClusterError {
    cluster: String,
    message: String,
}

impl Cluster {
    /// Joins the cluster the config's router worker names, if any: connects to NATS, sets up the
    /// buckets, and starts the heartbeat and every served realm's ends.
    pub(crate) async fn start(
        loaded: &LoadedConfig,
        node_id: &str,
        in_process: &InProcess,
        realms: &Arc<RealmRegistry>,
        status: &Arc<NodeStatus>,
    ) -> Result<Option<Self>, ClusterError> {
        let Some((w, config, served)) = clustered(loaded) else {
            return Ok(None);
        };
        let config = config.clone();
        let fail = |message: String| ClusterError {
            cluster: config.name.clone(),
            message,
        };
        let node_id = config.fixed_node_id().unwrap_or(node_id).to_owned();
        let nats =
            tokio::time::timeout(START_TIMEOUT, connect(&config, &loaded.base_dir, &node_id))
                .await
                .map_err(|_| {
                    fail(format!(
                        "cannot reach NATS at {:?} within {START_TIMEOUT:?}",
                        config.nats.servers
                    ))
                })?
                .map_err(fail)?;
        let server = nats.server_info();
        let replicas = config.kv_replicas.unwrap_or_else(|| {
            // As many as the NATS cluster has servers, at most 3.
            let urls: std::collections::HashSet<&String> = server.connect_urls.iter().collect();
            urls.len().clamp(1, 3)
        });
        let js = jetstream::new(nats.clone());
        let bucket = |suffix: &str, max_age: Duration| jetstream::kv::Config {
            bucket: format!("SW_{}_{suffix}", config.name),
            description: format!("Switchboard cluster {}: {suffix}", config.name),
            history: 1,
            max_age,
            num_replicas: replicas,
            ..Default::default()
        };
        let ttl = Duration::from_millis(config.node_ttl_ms());
        let nodes = tokio::time::timeout(START_TIMEOUT, open_bucket(&js, bucket("NODES", ttl)))
            .await
            .map_err(|_| fail(format!("JetStream did not answer within {START_TIMEOUT:?}")))?
            .map_err(fail)?;
        let interest = tokio::time::timeout(
            START_TIMEOUT,
            open_bucket(&js, bucket("INTEREST", Duration::ZERO)),
        )
        .await
        .map_err(|_| fail(format!("JetStream did not answer within {START_TIMEOUT:?}")))?
        .map_err(fail)?;
        let table = Arc::new(ClusterTable::default());
        {
            let mut inner = lock(&table.inner);
            inner.name = config.name.clone();
            inner.node = node_id.clone();
            inner.state = "up";
            inner.nats = Some(nats.clone());
        }
        let ctx = Arc::new(ClusterContext {
            hashes: Mutex::new(config_hashes(loaded, w, &served)),
            subjects: Subjects::new(&config.name),
            incarnation: format!("{:016x}", rand::random::<u64>()),
            started: now_ms(),
            config,
            node_id,
            nats,
            interest,
            in_process: in_process.clone(),
            realms: realms.clone(),
            served,
            status: status.clone(),
            table: table.clone(),
        });
        tracing::info!(
            cluster = %ctx.config.name, node = %ctx.node_id, nats = %server.server_name,
            "cluster: joined as node {} ({} key-value replica(s); realms {:?})",
            ctx.node_id, replicas, ctx.served
        );
        let sampled = table.clone();
        status.set_cluster(Box::new(move || sampled.sample()));
        let stop = CancellationToken::new();
        let (members_tx, members_rx) = watch::channel(Members::default());
        let mut tasks = vec![tokio::spawn(membership::run(
            ctx.clone(),
            nodes,
            members_tx,
            stop.clone(),
        ))];
        tasks.push(tokio::spawn(realm::sweep(
            ctx.clone(),
            members_rx.clone(),
            stop.clone(),
        )));
        for name in &ctx.served {
            if let Some(r) = realms.get(name) {
                tasks.push(tokio::spawn(realm::run(
                    ctx.clone(),
                    r,
                    members_rx.clone(),
                    stop.clone(),
                )));
            }
        }
        Ok(Some(Self {
            ctx,
            stop,
            tasks: tokio::sync::Mutex::new(tasks),
            table,
        }))
    }

    /// Takes in a config a reload applied: the digests every node compares are this node's new
    /// ones. Returns the changes that wait for a restart: realms the reload added are not served
    /// across the cluster until then.
    pub(crate) fn reloaded(&self, loaded: &LoadedConfig) -> Vec<String> {
        let Some((w, _, served)) = clustered(loaded) else {
            return Vec::new();
        };
        *lock(&self.ctx.hashes) = config_hashes(loaded, w, &served);
        served
            .iter()
            .filter(|r| !self.ctx.served.contains(r))
            .map(|r| format!("realm {r:?}: served across the cluster from the next start"))
            .collect()
    }

    /// The cluster's state.
    pub(crate) fn table(&self) -> Arc<ClusterTable> {
        self.table.clone()
    }

    /// Leaves the cluster: every end leaves its realm, this node's interest and heartbeat are
    /// removed, so the other nodes stop routing here at once.
    pub(crate) async fn stop(&self) {
        self.stop.cancel();
        for task in self.tasks.lock().await.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// The router worker in a cluster (its position), its `cluster` section, and the realms it
/// serves across the cluster; `None` when no worker is in one.
fn clustered(loaded: &LoadedConfig) -> Option<(usize, &ClusterConfig, Vec<String>)> {
    let (w, worker) = loaded
        .config
        .router_workers()
        .find(|(_, w)| w.cluster.is_some())?;
    let config = worker.cluster.as_ref()?;
    let served = worker
        .realms
        .iter()
        .map(|r| r.name.clone())
        .filter(|r| config.covers(r))
        .collect();
    Some((w, config, served))
}

/// Connects to NATS as the config says.
async fn connect(
    config: &ClusterConfig,
    base: &std::path::Path,
    node_id: &str,
) -> Result<async_nats::Client, String> {
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("switchboard {} node {node_id}", config.name))
        .max_reconnects(None)
        // This node delivers its own publications itself: NATS must not hand them back.
        .no_echo()
        // The first server listed is the one tried first (operators spread nodes over servers
        // that way); the others, and those NATS tells of, when it fails.
        .retain_servers_order()
        .ping_interval(Duration::from_millis(config.heartbeat_ms().max(1000)))
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("cluster: NATS connected"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("cluster: NATS connection lost; reconnecting")
                }
                other => tracing::info!("cluster: NATS: {other}"),
            }
        });
    let nats = &config.nats;
    if let Some(file) = &nats.credentials {
        let file = base.join(file);
        options = options
            .credentials_file(&file)
            .await
            .map_err(|e| format!("cannot read the credentials file {}: {e}", file.display()))?;
    }
    if let (Some(user), Some(password)) = (&nats.user, &nats.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &nats.token {
        options = options.token(token.clone());
    }
    if let Some(tls) = &nats.tls {
        options = options.require_tls(true);
        for ca in &tls.ca_certificates {
            options = options.add_root_certificates(base.join(ca));
        }
        if let (Some(cert), Some(key)) = (&tls.certificate, &tls.key) {
            options = options.add_client_certificate(base.join(cert), base.join(key));
        }
    }
    let servers: Vec<async_nats::ServerAddr> = nats
        .servers
        .iter()
        .map(|s| {
            let url = if s.contains("://") {
                s.clone()
            } else {
                format!("nats://{s}")
            };
            url.parse()
                .map_err(|e| format!("`{s}` is not a NATS server address: {e}"))
        })
        .collect::<Result<_, _>>()?;
    options
        .connect(servers)
        .await
        .map_err(|e| format!("cannot connect to NATS {:?}: {e}", nats.servers))
}

/// The key-value bucket `config` describes, created where it does not exist yet; retried while
/// JetStream has no leader yet (a NATS cluster that has just started).
///
/// The bucket's stream is created as the client's `create_key_value` would, without the account
/// query it starts with: the client cannot read the answer of nats-server 2.9 to that query.
async fn open_bucket(
    js: &jetstream::Context,
    config: jetstream::kv::Config,
) -> Result<jetstream::kv::Store, String> {
    let stream = jetstream::stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some(config.description.clone()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: config.history.max(1),
        max_age: config.max_age,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: config.num_replicas.max(1),
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    let mut last = String::new();
    for _ in 0..60 {
        if let Ok(store) = js.get_key_value(config.bucket.clone()).await {
            return Ok(store);
        }
        match js.create_stream(stream.clone()).await {
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(bucket = %config.bucket, "cluster: cannot create the bucket yet: {e}");
                last = e.to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "cannot open the key-value bucket {}: {last} (is JetStream enabled on the NATS servers?)",
        config.bucket
    ))
}

/// Digests of the parts of the config every node must share: each served realm (its roles and
/// permissions) and the transports' authentication.
fn config_hashes(
    loaded: &LoadedConfig,
    worker: usize,
    served: &[String],
) -> BTreeMap<String, String> {
    let w = &loaded.raw["workers"][worker];
    let mut out = BTreeMap::new();
    for realm in w["realms"].as_array().into_iter().flatten() {
        let Some(name) = realm["name"].as_str() else {
            continue;
        };
        if served.iter().any(|s| s == name) {
            out.insert(
                format!("realm {name}"),
                subjects::digest_key(&[&realm.to_string()]),
            );
        }
    }
    // Every `auth` section under the transports (a universal transport nests them), in order;
    // not the endpoints, which differ from node to node.
    fn auth_sections(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if k == "auth" {
                        out.push(v.to_string());
                    } else {
                        auth_sections(v, out);
                    }
                }
            }
            serde_json::Value::Array(list) => list.iter().for_each(|v| auth_sections(v, out)),
            _ => {}
        }
    }
    let mut auth = Vec::new();
    auth_sections(&w["transports"], &mut auth);
    out.insert(
        "transports' authentication".into(),
        subjects::digest_key(&auth.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    out
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
