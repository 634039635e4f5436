//! The node's readiness, for the `health` web path: `<path>/live` answers 200 while the process
//! serves HTTP at all; `<path>/ready` answers 200 once the node has started (every transport
//! listens, every bridge and link was started) and nothing it waits for is missing (a guest
//! worker with a readiness rule that has not become ready), else 503 with what is not ready.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hyper::StatusCode;

use crate::locks::lock;
use crate::realm::stats::{CallBuckets, DurationHistogram, HistogramSnapshot};
use crate::web::{self, HttpBody};

/// What the node still waits for before it is ready, and what the metrics read of the node
/// beside its realms.
pub struct NodeStatus {
    started: AtomicBool,
    /// What is not ready yet, by name (`worker <id>`), with what it waits for.
    waiting: Mutex<BTreeMap<String, String>>,
    /// When the process started serving, for `process_start_time_seconds`.
    pub started_at: SystemTime,
    /// Config reloads that applied their config, and those that changed nothing for a problem.
    reloads: [AtomicU64; 2],
    /// When the last reload that applied its config ended.
    last_reload: Mutex<Option<SystemTime>>,
    /// Reads the workers' state for the metrics (set by the node once its guests started).
    workers: Mutex<Option<WorkerSource>>,
    /// Open connections per transport (where it listens), counted by the listeners.
    connections: Mutex<BTreeMap<String, Arc<AtomicI64>>>,
    /// The certificate file of each TLS transport, by where it listens (set at start and by
    /// each reload).
    certificates: Mutex<Vec<(String, std::path::PathBuf)>>,
    /// The HTTP bridge's requests, by path.
    rest: Mutex<BTreeMap<String, Arc<RestStats>>>,
    /// Reads the cluster's state for the metrics (set by the node in cluster mode).
    cluster: Mutex<Option<ClusterSource>>,
}

/// What the metrics show of the cluster a node is in.
#[derive(Debug, Clone, Default)]
pub struct ClusterSample {
    /// The cluster's name.
    pub name: String,
    /// The live nodes this node sees, itself included.
    pub nodes: usize,
    /// Whether this node is cut off (fenced).
    pub fenced: bool,
    /// Per realm: events sent to and received from other nodes, calls sent to and received
    /// from them.
    pub realms: Vec<ClusterRealmSample>,
}

/// One realm's traffic across the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterRealmSample {
    /// The realm.
    pub realm: String,
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
}

/// Reads the cluster's state.
pub type ClusterSource = Box<dyn Fn() -> ClusterSample + Send + Sync>;

/// The requests of one HTTP bridge path: by status code (a lock per request: a request costs
/// far more) and how long they took.
#[derive(Debug, Default)]
pub struct RestStats {
    by_code: Mutex<BTreeMap<u16, u64>>,
    durations: DurationHistogram<CallBuckets>,
}

impl RestStats {
    /// Counts a request answered with `code` after `took`.
    pub fn answered(&self, code: u16, took: std::time::Duration) {
        *lock(&self.by_code).entry(code).or_default() += 1;
        self.durations.observe(took);
    }

    /// Requests by status code.
    pub fn by_code(&self) -> Vec<(u16, u64)> {
        lock(&self.by_code).iter().map(|(c, n)| (*c, *n)).collect()
    }

    /// How long requests took.
    pub fn durations(&self) -> HistogramSnapshot {
        self.durations.snapshot()
    }
}

/// What the metrics show of one worker.
#[derive(Debug, Clone)]
pub struct WorkerSample {
    /// Its id.
    pub id: String,
    /// `router`, `guest` or `component`.
    pub kind: &'static str,
    /// Whether its process runs.
    pub up: bool,
    /// How often it was started again.
    pub restarts: u64,
}

/// Reads the workers' state.
pub type WorkerSource = Box<dyn Fn() -> Vec<WorkerSample> + Send + Sync>;

impl std::fmt::Debug for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeStatus")
            .field("started", &self.started)
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

impl Default for NodeStatus {
    fn default() -> Self {
        Self::starting()
    }
}

impl NodeStatus {
    /// A node still starting: not ready until [`Self::mark_started`].
    pub fn starting() -> Self {
        Self {
            started: AtomicBool::new(false),
            waiting: Mutex::new(BTreeMap::new()),
            started_at: SystemTime::now(),
            reloads: [AtomicU64::new(0), AtomicU64::new(0)],
            last_reload: Mutex::new(None),
            workers: Mutex::new(None),
            cluster: Mutex::new(None),
            connections: Mutex::new(BTreeMap::new()),
            certificates: Mutex::new(Vec::new()),
            rest: Mutex::new(BTreeMap::new()),
        }
    }

    /// A node that is ready as it is (sessions served without a node around them).
    pub fn ready() -> Self {
        let status = Self::starting();
        status.mark_started();
        status
    }

    /// Every transport listens and every part of the node was started.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// `name` is not ready until [`Self::done`]: `what` says what it waits for.
    pub fn wait_for(&self, name: impl Into<String>, what: impl Into<String>) {
        lock(&self.waiting).insert(name.into(), what.into());
    }

    /// `name` is ready.
    pub fn done(&self, name: &str) {
        lock(&self.waiting).remove(name);
    }

    /// What is not ready, each as "name: what it waits for"; empty when the node is ready.
    pub fn not_ready(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if !self.started.load(Ordering::Acquire) {
            missing.push("node: starting (transports, bridges and links)".to_owned());
        }
        missing.extend(
            lock(&self.waiting)
                .iter()
                .map(|(name, what)| format!("{name}: {what}")),
        );
        missing
    }

    /// A config reload ended: it applied its config (`ok`), or changed nothing.
    pub fn reloaded(&self, ok: bool) {
        self.reloads[usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
        if ok {
            *lock(&self.last_reload) = Some(SystemTime::now());
        }
    }

    /// How many reloads applied their config, and how many failed.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloads[0].load(Ordering::Relaxed),
            self.reloads[1].load(Ordering::Relaxed),
        )
    }

    /// When the last reload that applied its config ended.
    pub fn last_reload(&self) -> Option<SystemTime> {
        *lock(&self.last_reload)
    }

    /// Sets how the metrics read the workers' state.
    pub fn set_workers(&self, source: WorkerSource) {
        *lock(&self.workers) = Some(source);
    }

    /// The workers' state now.
    pub fn workers(&self) -> Vec<WorkerSample> {
        lock(&self.workers)
            .as_ref()
            .map(|f| f())
            .unwrap_or_default()
    }

    /// Sets how the metrics read the cluster's state.
    pub fn set_cluster(&self, source: ClusterSource) {
        *lock(&self.cluster) = Some(source);
    }

    /// The cluster's state now, in cluster mode.
    pub fn cluster(&self) -> Option<ClusterSample> {
        lock(&self.cluster).as_ref().map(|f| f())
    }

    /// The counter of open connections of the transport listening at `transport`.
    pub fn connection_counter(&self, transport: &str) -> Arc<AtomicI64> {
        lock(&self.connections)
            .entry(transport.to_owned())
            .or_default()
            .clone()
    }

    /// Open connections per transport.
    pub fn connections(&self) -> Vec<(String, i64)> {
        lock(&self.connections)
            .iter()
            .map(|(t, n)| (t.clone(), n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Sets the certificate file of each TLS transport, by where it listens.
    pub fn set_certificates(&self, files: Vec<(String, std::path::PathBuf)>) {
        *lock(&self.certificates) = files;
    }

    /// The certificate file of each TLS transport, by where it listens.
    pub fn certificates(&self) -> Vec<(String, std::path::PathBuf)> {
        lock(&self.certificates).clone()
    }

    /// The counters of the HTTP bridge path `path` (kept across reloads that rebuild it).
    pub fn rest_stats(&self, path: &str) -> Arc<RestStats> {
        lock(&self.rest).entry(path.to_owned()).or_default().clone()
    }

    /// Every HTTP bridge path that had a request, with its counters.
    pub fn rest(&self) -> Vec<(String, Arc<RestStats>)> {
        lock(&self.rest)
            .iter()
            .map(|(p, s)| (p.clone(), s.clone()))
            .collect()
    }

    /// Whether the node is ready.
    pub fn is_ready(&self) -> bool {
        self.not_ready().is_empty()
    }
}

/// Answers a request for `<path>` + `rel` of a `health` path.
pub fn serve(status: &NodeStatus, rel: &str) -> hyper::Response<HttpBody> {
    match rel.trim_end_matches('/') {
        "/live" => web::json(StatusCode::OK, &serde_json::json!({"status": "live"})),
        "/ready" => {
            let missing = status.not_ready();
            if missing.is_empty() {
                web::json(StatusCode::OK, &serde_json::json!({"status": "ready"}))
            } else {
                web::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"status": "not ready", "not_ready": missing}),
                )
            }
        }
        _ => web::text(
            StatusCode::NOT_FOUND,
            "not found: this health path answers <path>/live and <path>/ready\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_started_and_nothing_is_waited_for() {
        let status = NodeStatus::starting();
        assert!(!status.is_ready());
        status.mark_started();
        assert!(status.is_ready());
        status.wait_for("worker backend", "a log line matching \"ready\"");
        assert_eq!(
            status.not_ready(),
            ["worker backend: a log line matching \"ready\""]
        );
        status.done("worker backend");
        assert!(status.is_ready());
    }
}
