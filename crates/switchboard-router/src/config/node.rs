//! The top of a config file: the node, its controller and its workers.

use serde::Deserialize;

use super::{GuestWorkerConfig, RealmConfig, TransportConfig};

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
}

impl NodeConfig {
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
}

/// Options that only carry a title (a worker's `options`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TitleOptions {
    /// A title shown in logs.
    #[serde(default)]
    pub title: Option<String>,
}

/// A worker.
#[derive(Debug, Clone)]
pub enum WorkerConfig {
    /// A router worker.
    Router(RouterWorkerConfig),
    /// A guest worker: a program the node starts and supervises.
    Guest(Box<GuestWorkerConfig>),
}

tagged!(WorkerConfig, "worker", {
    "router" => Router(RouterWorkerConfig),
    "guest" => Guest(Box<GuestWorkerConfig>),
});

impl WorkerConfig {
    /// The router worker, if this is one.
    pub fn as_router(&self) -> Option<&RouterWorkerConfig> {
        match self {
            Self::Router(w) => Some(w),
            Self::Guest(_) => None,
        }
    }

    /// The worker's id: the configured one, else Crossbar's default by position (`worker001` for
    /// the first worker).
    pub fn id(&self, index: usize) -> String {
        let configured = match self {
            Self::Router(w) => w.id.as_ref(),
            Self::Guest(w) => w.id.as_ref(),
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
    pub options: Option<TitleOptions>,
    /// Realms hosted.
    #[serde(default)]
    pub realms: Vec<RealmConfig>,
    /// Listening transports.
    #[serde(default)]
    pub transports: Vec<TransportConfig>,
}
