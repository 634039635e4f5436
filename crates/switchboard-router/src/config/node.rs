//! The top of a config file: the node, its controller and its workers.

use serde::Deserialize;

use super::{RealmConfig, TransportConfig};

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
    pub options: Option<TitleOptions>,
}

/// Options that only carry a title (controller and worker `options`).
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
}

tagged!(WorkerConfig, "worker", {
    "router" => Router(RouterWorkerConfig),
});

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
