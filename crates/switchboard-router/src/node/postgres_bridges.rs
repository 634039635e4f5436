//! The PostgreSQL bridges of the node's router workers (`{"type": "postgresql"}` components,
//! and Crossbar's `crossbar.adapter.postgres.PostgreSQLPublisher` class components):
//! each joins its own in-process session (its realm and role, told who calls whatever the
//! callers' roles disclose, as part of the router's trusted base) and runs until the node stops.
//! A database that is down at start does not stop the node: the bridge keeps trying.

use std::collections::BTreeMap;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::StartError;
use crate::config::{
    BuiltinComponent, ComponentConfig, ConfigError, ConfigErrors, ConnectionConfig, LoadedConfig,
    WorkerConfig, builtin_component, component_id,
};
use crate::embed::InProcess;
use crate::session::TrustedIdentity;

/// The running bridges, by id.
pub(super) struct PostgresBridges {
    in_process: InProcess,
    /// The parent of each bridge's own token: cancelled at shutdown.
    stop: CancellationToken,
    /// By worker id and bridge id (ids are unique within a worker only).
    running: tokio::sync::Mutex<BTreeMap<(String, String), RunningBridge>>,
}

/// One running bridge.
struct RunningBridge {
    /// Its component's and connection's sections of the config: what tells a change.
    fingerprint: String,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// A bridge of the config, ready to start.
struct WantedBridge {
    worker: String,
    id: String,
    fingerprint: String,
    connection: switchboard_postgres::config::PostgresConnectionConfig,
    bridge: switchboard_postgres::config::PostgresComponentConfig,
}

impl WantedBridge {
    /// What tells it from the others: its worker's id and its own.
    fn key(&self) -> (String, String) {
        (self.worker.clone(), self.id.clone())
    }
}

/// The bridges of `loaded`'s router workers, in order.
fn wanted(loaded: &LoadedConfig) -> Vec<WantedBridge> {
    let mut out = Vec::new();
    for (w, worker) in loaded.config.workers.iter().enumerate() {
        let WorkerConfig::Router(router) = worker else {
            continue;
        };
        let raw_worker = &loaded.raw["workers"][w];
        for (c, component) in router.components.iter().enumerate() {
            let id = component_id(
                match component {
                    ComponentConfig::Postgresql(bridge) => bridge.id.as_ref(),
                    ComponentConfig::Class(class) => class.id.as_ref(),
                },
                c,
            );
            let (connection, bridge, connection_raw) = match component {
                ComponentConfig::Postgresql(bridge) => {
                    // Validation made sure the connection exists.
                    let Some(ConnectionConfig::Postgres(connection)) = router
                        .connections
                        .iter()
                        .find(|k| k.id() == bridge.connection)
                    else {
                        continue;
                    };
                    let raw = raw_worker["connections"]
                        .as_array()
                        .and_then(|all| {
                            all.iter()
                                .find(|k| k["id"].as_str() == Some(bridge.connection.as_str()))
                        })
                        .cloned()
                        .unwrap_or_default();
                    (connection.clone(), bridge.clone(), raw)
                }
                // Crossbar's PostgreSQL publisher: a bridge with a connection of its own.
                ComponentConfig::Class(class) => {
                    match builtin_component(&class.classname, class.extra.as_ref()) {
                        Some(Ok(BuiltinComponent::PostgresPublisher { database })) => {
                            let (connection, bridge) =
                                database.bridge(&id, &class.realm, class.role());
                            (connection, bridge, serde_json::Value::Null)
                        }
                        _ => continue,
                    }
                }
            };
            let fingerprint =
                serde_json::json!([raw_worker["components"][c], connection_raw]).to_string();
            out.push(WantedBridge {
                worker: worker.id(w),
                id,
                fingerprint,
                connection,
                bridge,
            });
        }
    }
    out
}

impl PostgresBridges {
    /// Joins each bridge's session and starts it.
    pub(super) async fn start(
        loaded: &LoadedConfig,
        in_process: &InProcess,
    ) -> Result<Self, StartError> {
        let this = Self {
            in_process: in_process.clone(),
            stop: CancellationToken::new(),
            running: Default::default(),
        };
        let mut running = BTreeMap::new();
        for wanted in wanted(loaded) {
            let key = (wanted.worker.clone(), wanted.id.clone());
            match this.start_one(wanted, &loaded.base_dir).await {
                Ok(bridge) => {
                    running.insert(key, bridge);
                }
                Err(e) => {
                    // The bridges already started stop with the failed start.
                    this.stop.cancel();
                    return Err(e);
                }
            }
        }
        *this.running.lock().await = running;
        Ok(this)
    }

    /// Runs the bridges of `loaded` (a reloaded config): those removed stop, those added start,
    /// those changed (their component or their connection) do both, the others run on. Returns
    /// what changed, in words, and what failed.
    pub(super) async fn apply(&self, loaded: &LoadedConfig) -> (Vec<String>, Vec<String>) {
        let mut running = self.running.lock().await;
        let wanted = wanted(loaded);
        let (mut applied, mut failed) = (Vec::new(), Vec::new());
        let gone: Vec<(String, String)> = running
            .keys()
            .filter(|key| !wanted.iter().any(|b| b.key() == **key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(bridge) = running.remove(&key) {
                bridge.stop().await;
                let id = &key.1;
                applied.push(format!("PostgreSQL bridge {id:?} removed: stopped"));
            }
        }
        for bridge in wanted {
            let (key, id) = (bridge.key(), bridge.id.clone());
            let restarted = match running.get(&key) {
                Some(r) if r.fingerprint == bridge.fingerprint => continue,
                Some(_) => {
                    if let Some(old) = running.remove(&key) {
                        old.stop().await;
                    }
                    true
                }
                None => false,
            };
            match self.start_one(bridge, &loaded.base_dir).await {
                Ok(started) => {
                    running.insert(key, started);
                    applied.push(if restarted {
                        format!("PostgreSQL bridge {id:?} restarted with its new config")
                    } else {
                        format!("PostgreSQL bridge {id:?} added: started")
                    });
                }
                Err(e) => failed.push(format!(
                    "PostgreSQL bridge {id:?} could not start ({e}): it runs at the next \
                     reload or restart that can start it"
                )),
            }
        }
        (applied, failed)
    }

    /// What [`Self::apply`] would change, in words.
    pub(super) async fn changes(&self, loaded: &LoadedConfig) -> Vec<String> {
        let running = self.running.lock().await;
        let wanted = wanted(loaded);
        let mut lines: Vec<String> = running
            .keys()
            .filter(|key| !wanted.iter().any(|b| b.key() == **key))
            .map(|(_, id)| format!("PostgreSQL bridge {id:?} removed"))
            .collect();
        for bridge in &wanted {
            match running.get(&bridge.key()) {
                Some(r) if r.fingerprint == bridge.fingerprint => {}
                Some(_) => lines.push(format!(
                    "PostgreSQL bridge {:?} restarted with its new config",
                    bridge.id
                )),
                None => lines.push(format!("PostgreSQL bridge {:?} added", bridge.id)),
            }
        }
        lines
    }

    /// Joins the session of one bridge and starts it.
    async fn start_one(
        &self,
        wanted: WantedBridge,
        base_dir: &std::path::Path,
    ) -> Result<RunningBridge, StartError> {
        let WantedBridge {
            worker: _,
            id,
            fingerprint,
            mut connection,
            bridge,
        } = wanted;
        let authid = format!("postgresql:{id}");
        let identity = TrustedIdentity::new(&bridge.realm, &authid, &bridge.role).seeing_callers();
        let session = self
            .in_process
            .join(identity)
            .await
            .map_err(|source| StartError::Join {
                realm: bridge.realm.clone(),
                authid: authid.clone(),
                source,
            })?;
        connection.options = switchboard_postgres::tls::resolve(&connection.options, base_dir);
        let running = switchboard_postgres::Bridge::new(id.clone(), &connection, bridge, session)
            .map_err(|(key, why)| {
            // `check` builds the same TLS configuration: only a file that changed since
            // gets here.
            StartError::Config(ConfigErrors(vec![ConfigError::at(
                format!("connections[{}].options.{key}", connection.id),
                why,
            )]))
        })?;
        let stop = self.stop.child_token();
        let task = tokio::spawn(running.run(stop.clone()));
        Ok(RunningBridge {
            fingerprint,
            stop,
            task,
        })
    }

    /// Stops the bridges (their sessions end with the node's).
    pub(super) async fn stop(&self) {
        self.stop.cancel();
        for (_, bridge) in std::mem::take(&mut *self.running.lock().await) {
            let _ = bridge.task.await;
        }
    }
}

impl RunningBridge {
    /// Stops the bridge: it leaves its realm.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
