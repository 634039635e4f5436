//! Starting and stopping a router node: the one entry point the binary and the tests share.
//!
//! [`start`] builds the realms from the config, binds every transport (so that bind errors surface
//! before anything runs) and spawns the accept loops. [`RunningNode::shutdown`] stops accepting,
//! tells every session GOODBYE (`wamp.close.system_shutdown`) and waits for them to finish.

use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::ids::IdSequence;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{LoadedConfig, TransportConfig, WorkerConfig};
use crate::listener::{self, ListenAddr, Protocols};
use crate::realm::{Realm, RealmRegistry};
use crate::session::SessionConfig;

/// How long shutdown waits for sessions to say GOODBYE before giving up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A transport's TLS material or static directory is unusable.
    #[error("transport {index}: {source}")]
    Setup {
        /// Position in `workers[0].transports`.
        index: usize,
        /// What is wrong.
        source: crate::listener::SetupError,
    },
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
}

/// A started node.
pub struct RunningNode {
    /// Where each transport listens, in config order.
    pub listeners: Vec<ListenAddr>,
    realms: Arc<RealmRegistry>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl RunningNode {
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

    /// Stops accepting, closes every session with GOODBYE and waits (bounded) for them to end.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not close within {SHUTDOWN_GRACE:?}");
        }
    }
}

/// Starts a node from a loaded config.
pub async fn start(loaded: &LoadedConfig) -> Result<RunningNode, StartError> {
    let ids = Arc::new(IdSequence::new());
    let mut realms = Vec::new();
    let mut transports: Vec<&TransportConfig> = Vec::new();
    for WorkerConfig::Router(worker) in &loaded.config.workers {
        for realm in &worker.realms {
            realms.push(Arc::new(Realm::new(realm, ids.clone())));
        }
        transports.extend(worker.transports.iter());
    }
    let realms = Arc::new(RealmRegistry::new(realms));
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();

    let realm_names: Arc<Vec<String>> = Arc::new(
        loaded
            .config
            .workers
            .iter()
            .flat_map(|WorkerConfig::Router(w)| w.realms.iter().map(|r| r.name.clone()))
            .collect(),
    );
    let mut bound = Vec::new();
    for (index, t) in transports.iter().enumerate() {
        let protocols = Protocols::from_config(t, &loaded.base_dir, realm_names.clone())
            .map_err(|source| StartError::Setup { index, source })?;
        let endpoint = t.endpoint();
        let (listener, addr) =
            listener::bind(endpoint, &loaded.base_dir).map_err(|source| StartError::Bind {
                index,
                endpoint: endpoint.to_string(),
                source,
            })?;
        bound.push((listener, addr, protocols));
    }

    let mut listeners = Vec::new();
    for (listener, addr, protocols) in bound {
        tracing::info!(transport = %addr, "listening");
        let mut sessions = SessionConfig::new(realms.clone(), shutdown.clone());
        if let Some(timeout) = protocols.close_timeout {
            sessions.final_write_timeout = timeout;
        }
        let protocols = Arc::new(protocols);
        tokio::spawn(listener::serve(
            listener,
            protocols,
            sessions,
            tracker.clone(),
        ));
        listeners.push(addr);
    }
    Ok(RunningNode {
        listeners,
        realms,
        shutdown,
        tracker,
    })
}
