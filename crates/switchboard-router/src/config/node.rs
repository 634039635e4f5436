//! The top of a config file: the node, its controller and its workers.

use serde::Deserialize;

use super::{
    ComponentConfig, ContainerWorkerConfig, GuestWorkerConfig, RealmConfig, TransportConfig,
};

/// A node configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Editor hint; ignored.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// Config format version; only 2 is supported.
    #[serde(default)]
    pub version: Option<u32>,
    /// Node controller settings.
    #[serde(default)]
    pub controller: Option<ControllerConfig>,
    /// The worker processes of the node.
    #[serde(default)]
    pub workers: Vec<WorkerConfig>,
}

/// The node controller section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// Node id.
    #[serde(default)]
    pub id: Option<String>,
    /// Controller options.
    #[serde(default)]
    pub options: Option<ControllerOptions>,
    /// Crossbar.io FX's management uplink: accepted with a warning, it has no effect.
    #[serde(default)]
    pub fabric: Option<serde_json::Value>,
    /// Switchboard's management API on one of the router's realms (see `ManagementConfig`).
    #[serde(default)]
    pub management: Option<ManagementConfig>,
}

/// `controller.management`: the management API (`switchboard.*` procedures and events) on a realm
/// of the router worker, whose roles decide who may read and who may act. No role gets it by
/// default: the realm's roles must allow the calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementConfig {
    /// Whether the API is served (default: true once the section is there).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The realm it is served on (default: `crossbar`, the name Crossbar gives its management
    /// realm); it must be one of the router worker's realms.
    #[serde(default = "default_management_realm")]
    pub realm: String,
}

fn yes() -> bool {
    true
}

fn default_management_realm() -> String {
    "crossbar".to_owned()
}

impl NodeConfig {
    /// The management API's realm, when the API is enabled.
    pub fn management_realm(&self) -> Option<&str> {
        self.controller
            .as_ref()
            .and_then(|c| c.management.as_ref())
            .filter(|m| m.enabled)
            .map(|m| m.realm.as_str())
    }
}

impl NodeConfig {
    /// The URIs with series of their own (`controller.options.metrics.uris`).
    pub fn metrics_uris(&self) -> &[String] {
        self.controller
            .as_ref()
            .and_then(|c| c.options.as_ref())
            .and_then(|o| o.metrics.as_ref())
            .map_or(&[], |m| m.uris.as_slice())
    }

    /// How long a shutdown waits for calls in flight to finish (`controller.options.shutdown_grace`).
    pub fn shutdown_grace(&self) -> std::time::Duration {
        let seconds = self
            .controller
            .as_ref()
            .and_then(|c| c.options.as_ref())
            .and_then(|o| o.shutdown_grace)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECONDS);
        std::time::Duration::from_secs_f64(seconds)
    }
}

/// The default of `controller.options.shutdown_grace`, in seconds.
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: f64 = 5.0;

/// The controller's `options`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ControllerOptions {
    /// A title shown in logs.
    #[serde(default)]
    pub title: Option<String>,
    /// Seconds a shutdown gives calls in flight to finish before their callers get
    /// `wamp.error.canceled` (Switchboard's key; `switchboard start --shutdown-grace` overrides it).
    #[serde(default)]
    pub shutdown_grace: Option<f64>,
    /// Crossbar's node shutdown triggers (`shutdown_on_worker_exit`, ...): accepted with a
    /// warning, they have no effect (Switchboard's router never exits on its own).
    #[serde(default)]
    pub shutdown: Option<serde_json::Value>,
    /// Crossbar's parallel worker start: accepted with a warning, it has no effect.
    #[serde(default)]
    pub enable_parallel_worker_start: Option<serde_json::Value>,
    /// The node's metrics (Switchboard's key).
    #[serde(default)]
    pub metrics: Option<MetricsOptions>,
}

/// `controller.options.metrics`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsOptions {
    /// URIs (exact) whose calls and publications get series of their own, labelled with the URI:
    /// only these, so that no client can make the number of series grow.
    #[serde(default)]
    pub uris: Vec<String>,
}

/// A router worker's `options`: Crossbar's native worker options. `title`, and `pythonpath` where
/// the worker hosts components, mean something here; the others set up a Python worker process,
/// which Switchboard does not have, and are accepted with a warning.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NativeWorkerOptions {
    /// A title shown in logs.
    #[serde(default)]
    pub title: Option<String>,
    /// Where the worker's components are imported from, relative to the node directory (default:
    /// the node directory).
    #[serde(default)]
    pub pythonpath: Option<Vec<String>>,
    /// CPUs the worker process is pinned to.
    #[serde(default)]
    pub cpu_affinity: Option<serde_json::Value>,
    /// Environment of the worker process.
    #[serde(default)]
    pub env: Option<serde_json::Value>,
    /// Twisted reactor of the worker process.
    #[serde(default)]
    pub reactor: Option<serde_json::Value>,
    /// Crossbar's controller API exposure to the worker.
    #[serde(default)]
    pub expose_controller: Option<serde_json::Value>,
    /// Crossbar's shared state exposure to the worker.
    #[serde(default)]
    pub expose_shared: Option<serde_json::Value>,
}

impl NativeWorkerOptions {
    /// The options present that have no effect in Switchboard, by key (`pythonpath` has one for a
    /// worker that runs Python: components or function authenticators).
    pub fn without_effect(&self, runs_python: bool) -> Vec<&'static str> {
        [
            ("pythonpath", self.pythonpath.is_some() && !runs_python),
            ("cpu_affinity", self.cpu_affinity.is_some()),
            ("env", self.env.is_some()),
            ("reactor", self.reactor.is_some()),
            ("expose_controller", self.expose_controller.is_some()),
            ("expose_shared", self.expose_shared.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, present)| present.then_some(key))
        .collect()
    }
}

/// A worker.
#[derive(Debug, Clone)]
// Read once at start: the size difference costs nothing worth an indirection.
#[allow(clippy::large_enum_variant)]
pub enum WorkerConfig {
    /// A router worker.
    Router(RouterWorkerConfig),
    /// A guest worker: a program the node starts and supervises.
    Guest(GuestWorkerConfig),
    /// A container worker: Python components connecting through their own transports.
    Container(ContainerWorkerConfig),
}

tagged!(WorkerConfig, "worker", {
    "router" => Router(RouterWorkerConfig),
    "guest" => Guest(GuestWorkerConfig),
    "container" => Container(ContainerWorkerConfig),
});

impl WorkerConfig {
    /// The router worker, if this is one.
    pub fn as_router(&self) -> Option<&RouterWorkerConfig> {
        match self {
            Self::Router(w) => Some(w),
            Self::Guest(_) | Self::Container(_) => None,
        }
    }

    /// The worker's id: the configured one, else Crossbar's default by position (`worker001` for
    /// the first worker).
    pub fn id(&self, index: usize) -> String {
        let configured = match self {
            Self::Router(w) => w.id.as_ref(),
            Self::Guest(w) => w.id.as_ref(),
            Self::Container(w) => w.id.as_ref(),
        };
        configured
            .cloned()
            .unwrap_or_else(|| format!("worker{:03}", index + 1))
    }
}

impl NodeConfig {
    /// The router workers, with their positions in `workers`.
    pub fn router_workers(&self) -> impl Iterator<Item = (usize, &RouterWorkerConfig)> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.as_router().map(|r| (i, r)))
    }
}

/// A router worker: realms and the transports clients reach them through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterWorkerConfig {
    /// Worker id.
    #[serde(default)]
    pub id: Option<String>,
    /// Worker options.
    #[serde(default)]
    pub options: Option<NativeWorkerOptions>,
    /// Realms hosted.
    #[serde(default)]
    pub realms: Vec<RealmConfig>,
    /// Listening transports.
    #[serde(default)]
    pub transports: Vec<TransportConfig>,
    /// Application components the node runs for this router (Python classes, the PostgreSQL
    /// bridge).
    #[serde(default)]
    pub components: Vec<ComponentConfig>,
    /// Databases the components use.
    #[serde(default)]
    pub connections: Vec<super::ConnectionConfig>,
    /// Links to other routers (the seed's form; Crossbar's `rlinks` sit in each realm).
    #[serde(default)]
    pub links: Vec<super::SeedLinkConfig>,
    /// This node's part in a cluster of nodes serving the same realms (on NATS).
    #[serde(default)]
    pub cluster: Option<super::ClusterConfig>,
}
