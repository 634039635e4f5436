//! Application components (Crossbar's `components` of router and container workers): Python
//! classes, each run by the node in a supervised Python process that joins a router: a router
//! worker's through the node's private socket, a container worker's through its `transport`.

use serde::Deserialize;

/// A component of a router worker.
#[derive(Debug, Clone)]
// Read once at start; boxing the bridge's variant would buy nothing but indirection.
#[allow(clippy::large_enum_variant)]
pub enum ComponentConfig {
    /// A Python class deriving from Autobahn's `ApplicationSession` (asyncio or Twisted).
    Class(ClassComponentConfig),
    /// The PostgreSQL bridge: SQL functions as procedures, events published from SQL.
    Postgresql(switchboard_postgres::config::PostgresComponentConfig),
}

tagged!(ComponentConfig, "component", {
    "class" => Class(ClassComponentConfig),
    "postgresql" => Postgresql(switchboard_postgres::config::PostgresComponentConfig),
});

/// A router worker's `connections` entry: a database the worker's components use.
#[derive(Debug, Clone)]
pub enum ConnectionConfig {
    /// A PostgreSQL database.
    Postgres(switchboard_postgres::config::PostgresConnectionConfig),
}

tagged!(ConnectionConfig, "connection", {
    "postgres" => Postgres(switchboard_postgres::config::PostgresConnectionConfig),
});

impl ConnectionConfig {
    /// The id components name it by.
    pub fn id(&self) -> &str {
        match self {
            ConnectionConfig::Postgres(c) => &c.id,
        }
    }
}

/// `{"type": "class"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassComponentConfig {
    /// Component id (default `component001`, ... by position).
    #[serde(default)]
    pub id: Option<String>,
    /// The class, `package.module.Class`, importable from the worker's `options.pythonpath`.
    pub classname: String,
    /// The realm it joins (one of this router worker's realms).
    pub realm: String,
    /// The role it joins with (default `anonymous`); it must be a role of the realm.
    #[serde(default)]
    pub role: Option<String>,
    /// Handed to the component as `config.extra`.
    #[serde(default)]
    pub extra: Option<serde_json::Value>,
    /// Crossbar's references to other components: accepted, unused.
    #[serde(default)]
    pub references: Option<serde_json::Value>,
}

impl ComponentConfig {
    /// The Python class component this is, if it is one.
    pub fn as_class(&self) -> Option<&ClassComponentConfig> {
        match self {
            ComponentConfig::Class(c) => Some(c),
            ComponentConfig::Postgresql(_) => None,
        }
    }
}

impl ClassComponentConfig {
    /// The role the component joins with.
    pub fn role(&self) -> &str {
        self.role.as_deref().unwrap_or("anonymous")
    }
}

/// A `container` worker: components that connect to a router through their own transport (this
/// node's or another's), as Crossbar's container workers host them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerWorkerConfig {
    /// Worker id.
    #[serde(default)]
    pub id: Option<String>,
    /// Worker options.
    #[serde(default)]
    pub options: ContainerOptions,
    /// The components.
    #[serde(default)]
    pub components: Vec<ContainerComponentConfig>,
}

/// A container worker's `options`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerOptions {
    /// A title shown in logs.
    #[serde(default)]
    pub title: Option<String>,
    /// Where the components are imported from, relative to the node directory (default: the node
    /// directory).
    #[serde(default)]
    pub pythonpath: Option<Vec<String>>,
    /// When a component's process is started again (default `restart-on-failed`).
    #[serde(default)]
    pub restart: Option<super::RestartPolicy>,
    /// Crossbar's container shutdown mode: accepted with a warning, it has no effect.
    #[serde(default)]
    pub shutdown: Option<serde_json::Value>,
    /// CPUs of Crossbar's worker process: accepted with a warning.
    #[serde(default)]
    pub cpu_affinity: Option<serde_json::Value>,
    /// Environment of Crossbar's worker process: accepted with a warning.
    #[serde(default)]
    pub env: Option<serde_json::Value>,
    /// Twisted reactor of Crossbar's worker process: accepted with a warning.
    #[serde(default)]
    pub reactor: Option<serde_json::Value>,
    /// Crossbar's controller API exposure: accepted with a warning.
    #[serde(default)]
    pub expose_controller: Option<serde_json::Value>,
    /// Crossbar's shared state exposure: accepted with a warning.
    #[serde(default)]
    pub expose_shared: Option<serde_json::Value>,
}

impl ContainerOptions {
    /// The options present that have no effect in Switchboard, by key.
    pub fn without_effect(&self) -> Vec<&'static str> {
        [
            ("shutdown", self.shutdown.is_some()),
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

/// A component of a container worker.
#[derive(Debug, Clone)]
pub enum ContainerComponentConfig {
    /// A Python class deriving from Autobahn's `ApplicationSession`.
    Class(ContainerClassComponentConfig),
}

tagged!(ContainerComponentConfig, "component", {
    "class" => Class(ContainerClassComponentConfig),
});

/// `{"type": "class"}` in a container worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerClassComponentConfig {
    /// Component id (default `component001`, ... by position).
    #[serde(default)]
    pub id: Option<String>,
    /// The class, `package.module.Class`, importable from the worker's `options.pythonpath`.
    pub classname: String,
    /// The realm it joins.
    pub realm: String,
    /// Handed to the component as `config.extra`.
    #[serde(default)]
    pub extra: Option<serde_json::Value>,
    /// How it connects.
    pub transport: ClientTransportConfig,
    /// Crossbar's references to other components: accepted, unused.
    #[serde(default)]
    pub references: Option<serde_json::Value>,
}

/// How a container component connects to its router (Crossbar's client transport).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTransportConfig {
    /// `websocket` or `rawsocket`.
    #[serde(rename = "type")]
    pub kind: ClientTransportKind,
    /// Where the router listens.
    pub endpoint: ClientEndpointConfig,
    /// The WebSocket URL (`ws://host:port/path`).
    #[serde(default)]
    pub url: Option<String>,
    /// WebSocket serializers offered.
    #[serde(default)]
    pub serializers: Option<Vec<super::SerializerName>>,
    /// The RawSocket serializer.
    #[serde(default)]
    pub serializer: Option<super::SerializerName>,
    /// Protocol options (`max_message_size`): accepted, Autobahn's defaults apply.
    #[serde(default)]
    pub options: Option<serde_json::Value>,
    /// Crossbar's debug flag: accepted.
    #[serde(default)]
    pub debug: Option<bool>,
}

/// The kind of a client transport.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientTransportKind {
    /// WebSocket.
    Websocket,
    /// RawSocket.
    Rawsocket,
}

/// Where a client transport connects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEndpointConfig {
    /// `tcp` or `unix`.
    #[serde(rename = "type")]
    pub kind: String,
    /// TCP host.
    #[serde(default)]
    pub host: Option<String>,
    /// TCP port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Unix socket path, relative to the node directory.
    #[serde(default)]
    pub path: Option<String>,
    /// TLS: `{hostname, ca_certificates, certificate, key}` (files relative to the node directory).
    #[serde(default)]
    pub tls: Option<serde_json::Value>,
    /// IP version: accepted.
    #[serde(default)]
    pub version: Option<u8>,
    /// Connect timeout in seconds: accepted.
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// A component's id: the configured one, else `component001`, ... by its position in `components`.
pub fn component_id(configured: Option<&String>, index: usize) -> String {
    configured
        .cloned()
        .unwrap_or_else(|| format!("component{:03}", index + 1))
}

/// The id of each component that runs as a process of its own (a class that is not one of
/// Crossbar's built-ins), by (worker index, component index): its component id, or, where that
/// is also the id of another such component or of a guest worker (component ids are unique
/// within a worker only, and unnamed ones are `component001`, ... in every worker),
/// `<worker id>.<component id>`. The node supervises processes, the management API acts on them
/// and a reload matches them, by this id.
pub fn process_ids(
    config: &super::NodeConfig,
) -> std::collections::HashMap<(usize, usize), String> {
    use super::{ContainerComponentConfig, WorkerConfig};
    let mut components = Vec::new();
    let mut taken: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (w, worker) in config.workers.iter().enumerate() {
        let classes: Vec<(usize, &Option<String>, &str, Option<&serde_json::Value>)> = match worker
        {
            WorkerConfig::Guest(_) => {
                *taken.entry(worker.id(w)).or_default() += 1;
                continue;
            }
            WorkerConfig::Router(router) => router
                .components
                .iter()
                .enumerate()
                .filter_map(|(c, k)| {
                    k.as_class()
                        .map(|k| (c, &k.id, k.classname.as_str(), k.extra.as_ref()))
                })
                .collect(),
            WorkerConfig::Container(container) => container
                .components
                .iter()
                .enumerate()
                .map(|(c, ContainerComponentConfig::Class(k))| {
                    (c, &k.id, k.classname.as_str(), k.extra.as_ref())
                })
                .collect(),
        };
        for (c, id, classname, extra) in classes {
            if builtin_component(classname, extra).is_none() {
                let id = component_id(id.as_ref(), c);
                *taken.entry(id.clone()).or_default() += 1;
                components.push(((w, c), worker.id(w), id));
            }
        }
    }
    components
        .into_iter()
        .map(|(at, worker, id)| {
            let unique = taken.get(&id) == Some(&1);
            (at, if unique { id } else { format!("{worker}.{id}") })
        })
        .collect()
}

/// The prefixes of Crossbar's own built-in components, which are not Python classes to import.
pub const CROSSBAR_BUILTIN_COMPONENTS: &[&str] = &["crossbar.bridge.", "crossbar.adapter."];

/// Crossbar's built-in components that Switchboard runs in its own process, as sessions of the
/// component's realm and role: the outbound half of the HTTP bridge.
#[derive(Debug, Clone, PartialEq)]
pub enum BuiltinComponent {
    /// `crossbar.bridge.rest.RESTCallee`: calls of `procedure` become HTTP requests to URLs
    /// relative to `baseurl`.
    RestCallee {
        /// The procedure registered.
        procedure: String,
        /// The base of the requests' URLs.
        baseurl: url::Url,
    },
    /// `crossbar.bridge.rest.MessageForwarder`: events on the topics become HTTP requests (a JSON
    /// body `{"args", "kwargs"}`) to the topics' URLs.
    MessageForwarder {
        /// Topic, match and URL of each subscription.
        subscriptions: Vec<ForwardedTopic>,
        /// The HTTP method (default POST).
        method: String,
        /// The status an answer must have, where one is expected (else it is logged).
        expected_code: Option<u16>,
    },
    /// `crossbar.adapter.postgres.PostgreSQLPublisher` (Crossbar 2015-16): events published in
    /// the database with `crossbar.publish(...)`, run by the PostgreSQL bridge (a publisher on
    /// the channel `crossbar_publish`).
    PostgresPublisher {
        /// `extra.database`.
        database: CrossbarDatabase,
    },
}

/// The `extra.database` of Crossbar's PostgreSQL publisher.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossbarDatabase {
    /// Host name or address (default 127.0.0.1).
    #[serde(default)]
    pub host: Option<String>,
    /// Port (default 5432).
    #[serde(default)]
    pub port: Option<u16>,
    /// The database.
    pub database: String,
    /// The login role.
    pub user: String,
    /// Its password.
    #[serde(default)]
    pub password: Option<String>,
}

impl CrossbarDatabase {
    /// The bridge's connection and component for a Crossbar PostgreSQL publisher of `realm`
    /// and `role`.
    pub fn bridge(
        &self,
        id: &str,
        realm: &str,
        role: &str,
    ) -> (
        switchboard_postgres::config::PostgresConnectionConfig,
        switchboard_postgres::config::PostgresComponentConfig,
    ) {
        let connection = serde_json::json!({
            "id": id, "host": self.host, "port": self.port,
            "database": self.database, "user": self.user, "password": self.password,
        });
        let component = serde_json::json!({
            "id": id, "realm": realm, "role": role, "connection": id,
            "publisher": {"mode": "notify", "channel": switchboard_postgres::CROSSBAR_PUBLISH_CHANNEL},
        });
        let connection = serde_json::from_value(connection)
            .expect("a connection of a host, a port, a database, a user and a password reads");
        let mut component: switchboard_postgres::config::PostgresComponentConfig =
            serde_json::from_value(component).expect("a notify publisher reads");
        component.crossbar_publisher = true;
        (connection, component)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresPublisherExtra {
    database: CrossbarDatabase,
}

/// One subscription of a `MessageForwarder`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedTopic {
    /// The topic (pattern).
    pub topic: String,
    /// Where its events go.
    pub url: url::Url,
    /// How `topic` matches (default exact).
    #[serde(rename = "match", default)]
    pub match_policy: Option<super::MatchPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestCalleeExtra {
    procedure: String,
    baseurl: url::Url,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageForwarderExtra {
    subscriptions: Vec<ForwardedTopic>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    expectedcode: Option<u16>,
    /// Crossbar logs each answer's body at debug level; Switchboard logs it at debug level too.
    #[serde(default)]
    #[allow(dead_code)]
    debug: Option<bool>,
}

/// The built-in component a classname names (its `extra` read), `None` for a Python class, and an
/// error for one of Crossbar's built-ins Switchboard does not run, or an `extra` it cannot use.
pub fn builtin_component(
    classname: &str,
    extra: Option<&serde_json::Value>,
) -> Option<Result<BuiltinComponent, String>> {
    if !CROSSBAR_BUILTIN_COMPONENTS
        .iter()
        .any(|prefix| classname.starts_with(prefix))
    {
        return None;
    }
    let class = classname
        .strip_prefix("crossbar.bridge.rest.")
        .or_else(|| classname.strip_prefix("crossbar.adapter.rest."));
    let extra = extra.cloned().unwrap_or(serde_json::Value::Null);
    let read = |what: &str, e: serde_json::Error| format!("`extra` of a {what}: {e}");
    Some(match class {
        Some("RESTCallee") => serde_json::from_value::<RestCalleeExtra>(extra)
            .map_err(|e| read("RESTCallee", e))
            .map(|e| BuiltinComponent::RestCallee {
                procedure: e.procedure,
                baseurl: e.baseurl,
            }),
        Some("MessageForwarder") => serde_json::from_value::<MessageForwarderExtra>(extra)
            .map_err(|e| read("MessageForwarder", e))
            .map(|e| BuiltinComponent::MessageForwarder {
                subscriptions: e.subscriptions,
                method: e.method.unwrap_or_else(|| "POST".into()),
                expected_code: e.expectedcode,
            }),
        None if classname == "crossbar.adapter.postgres.PostgreSQLPublisher" => {
            serde_json::from_value::<PostgresPublisherExtra>(extra)
                .map_err(|e| read("PostgreSQLPublisher", e))
                .map(|e| BuiltinComponent::PostgresPublisher {
                    database: e.database,
                })
        }
        _ => Err(format!(
            "unsupported: `{classname}` is not one of the Crossbar built-in components \
             Switchboard runs (`crossbar.bridge.rest.RESTCallee` and `MessageForwarder`, \
             `crossbar.adapter.postgres.PostgreSQLPublisher`; the PostgreSQL bridge is the \
             `postgresql` component)"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossbars_postgresql_publisher_becomes_a_bridge_publishing_crossbar_publish() {
        let extra = serde_json::json!({"database": {
            "host": "db.example", "port": 5433, "database": "cdc", "user": "crossbar", "password": "pw"
        }});
        let Some(Ok(BuiltinComponent::PostgresPublisher { database })) = builtin_component(
            "crossbar.adapter.postgres.PostgreSQLPublisher",
            Some(&extra),
        ) else {
            panic!("not read as Crossbar's PostgreSQL publisher");
        };
        let (connection, component) = database.bridge("component001", "realm1", "anonymous");
        assert_eq!(
            (
                connection.host.as_deref(),
                connection.port,
                connection.database.as_str()
            ),
            (Some("db.example"), Some(5433), "cdc")
        );
        assert_eq!(connection.password.as_deref(), Some("pw"));
        assert_eq!(component.connection, connection.id);
        assert!(component.crossbar_publisher && component.callee.is_none());
        let publisher = component.publisher.expect("a publisher");
        assert_eq!(publisher.channel(), "crossbar_publish");
        // Without a host and port: Crossbar's defaults.
        let bare = serde_json::json!({"database": {"database": "cdc", "user": "crossbar"}});
        assert!(matches!(
            builtin_component("crossbar.adapter.postgres.PostgreSQLPublisher", Some(&bare)),
            Some(Ok(BuiltinComponent::PostgresPublisher { .. }))
        ));
    }

    #[test]
    fn process_ids_are_component_ids_unless_two_processes_would_share_one() {
        let config: crate::config::NodeConfig = serde_json::from_str(
            r#"{"version": 2, "workers": [
                {"type": "router", "realms": [{"name": "r", "roles": [{"name": "anonymous"}]}],
                 "components": [
                    {"type": "class", "classname": "m.A", "realm": "r"},
                    {"type": "class", "id": "named", "classname": "m.B", "realm": "r"},
                    {"type": "class", "id": "echo", "classname": "m.C", "realm": "r"},
                    {"type": "class", "classname": "crossbar.bridge.rest.RESTCallee", "realm": "r",
                     "extra": {"procedure": "p", "baseurl": "http://x/"}}]},
                {"type": "container", "id": "box", "components": [
                    {"type": "class", "classname": "m.D", "realm": "r",
                     "transport": {"type": "websocket", "url": "ws://x", "endpoint": {"type": "tcp", "host": "x", "port": 1}}}]},
                {"type": "guest", "id": "echo", "executable": "/bin/true"}
            ]}"#,
        )
        .expect("a config");
        let ids = process_ids(&config);
        assert_eq!(ids[&(0, 0)], "worker001.component001");
        assert_eq!(ids[&(0, 1)], "named");
        // The guest worker `echo` keeps its id; the component is told apart by its worker's.
        assert_eq!(ids[&(0, 2)], "worker001.echo");
        assert_eq!(ids[&(1, 0)], "box.component001");
        // The built-in runs in the node's process: no process id.
        assert!(!ids.contains_key(&(0, 3)));
    }
}
