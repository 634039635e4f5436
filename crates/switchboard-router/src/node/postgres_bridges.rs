//! The PostgreSQL bridges of the node's router workers (`{"type": "postgresql"}` components,
//! and Crossbar's `crossbar.adapter.postgres.PostgreSQLPublisher` class components):
//! each joins its own in-process session (its realm and role, told who calls whatever the
//! callers' roles disclose, as part of the router's trusted base) and runs until the node stops.
//! A database that is down at start does not stop the node: the bridge keeps trying.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::StartError;
use crate::config::{
    BuiltinComponent, ComponentConfig, ConfigError, ConfigErrors, ConnectionConfig, LoadedConfig,
    WorkerConfig, builtin_component, component_id,
};
use crate::embed::InProcess;
use crate::session::TrustedIdentity;

/// The running bridges.
pub(super) struct PostgresBridges {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl PostgresBridges {
    /// Joins each bridge's session and starts it.
    pub(super) async fn start(
        loaded: &LoadedConfig,
        in_process: &InProcess,
    ) -> Result<Self, StartError> {
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        for worker in &loaded.config.workers {
            let WorkerConfig::Router(router) = worker else {
                continue;
            };
            for (c, component) in router.components.iter().enumerate() {
                let id = component_id(
                    match component {
                        ComponentConfig::Postgresql(bridge) => bridge.id.as_ref(),
                        ComponentConfig::Class(class) => class.id.as_ref(),
                    },
                    c,
                );
                let (connection, bridge) = match component {
                    ComponentConfig::Postgresql(bridge) => {
                        // Validation made sure the connection exists.
                        let Some(ConnectionConfig::Postgres(connection)) = router
                            .connections
                            .iter()
                            .find(|k| k.id() == bridge.connection)
                        else {
                            continue;
                        };
                        (connection.clone(), bridge.clone())
                    }
                    // Crossbar's PostgreSQL publisher: a bridge with a connection of its own.
                    ComponentConfig::Class(class) => {
                        match builtin_component(&class.classname, class.extra.as_ref()) {
                            Some(Ok(BuiltinComponent::PostgresPublisher { database })) => {
                                database.bridge(&id, &class.realm, class.role())
                            }
                            _ => continue,
                        }
                    }
                };
                let authid = format!("postgresql:{id}");
                let identity =
                    TrustedIdentity::new(&bridge.realm, &authid, &bridge.role).seeing_callers();
                let session = match in_process.join(identity).await {
                    Ok(session) => session,
                    Err(source) => {
                        // The bridges already started stop with the failed start.
                        stop.cancel();
                        return Err(StartError::Join {
                            realm: bridge.realm.clone(),
                            authid: authid.clone(),
                            source,
                        });
                    }
                };
                let mut connection = connection;
                connection.options =
                    switchboard_postgres::tls::resolve(&connection.options, &loaded.base_dir);
                let running =
                    match switchboard_postgres::Bridge::new(id, &connection, bridge, session) {
                        Ok(running) => running,
                        Err((key, why)) => {
                            // `check` builds the same TLS configuration: only a file that changed
                            // since gets here.
                            stop.cancel();
                            return Err(StartError::Config(ConfigErrors(vec![ConfigError::at(
                                format!("connections[{}].options.{key}", connection.id),
                                why,
                            )])));
                        }
                    };
                tasks.push(tokio::spawn(running.run(stop.clone())));
            }
        }
        Ok(Self { stop, tasks })
    }

    /// Stops the bridges (their sessions end with the node's).
    pub(super) async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
