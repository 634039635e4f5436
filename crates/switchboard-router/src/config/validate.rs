//! The checks the types cannot express: versions, URIs, duplicate names, roles and realms that auth
//! sections refer to, endpoints used twice, and what each auth method needs of its endpoint. Every
//! problem is collected; nothing stops at the first. Whether the files a config names can be used
//! (TLS material, JWKS, static directories) and whether credentials parse is found by building them:
//! the node's preparation step, which reports in the same form.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use switchboard_proto::{Uri, UriMatch};

use super::{
    AuthConfig, AuthKind, ConfigError, CryptosignPrincipal, DynamicAuthConfig, EndpointConfig,
    MethodAuthConfig, NodeConfig, RealmConfig, ScramPrincipal, TicketAuthConfig, TicketPrincipal,
    TlsPrincipal, TransportConfig, WampCraPrincipal, WebPathConfig, WebSocketOptions,
    WebSocketPathConfig, WorkerConfig, effective_match,
};
use super::{
    ClientTransportKind, ComponentConfig, ContainerComponentConfig, ContainerWorkerConfig,
    GUEST_STOP_SIGNALS, GuestReady, GuestWorkerConfig, HttpBridgeKind, RouterWorkerConfig,
    component_id,
};

/// Runs every check; relative paths resolve against `base`.
pub(super) fn validate(config: &NodeConfig, base: &Path) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Some(v) = config.version
        && v != 2
    {
        errors.push(ConfigError::at(
            "version",
            format!("unsupported: config version {v} (expected 2)"),
        ));
    }
    if config.workers.is_empty() {
        errors.push(ConfigError::at(
            "workers",
            "expected at least one worker (a `router`, `guest` or `container`)",
        ));
    }
    if let Some(realm) = config.management_realm() {
        let known = config.workers.iter().any(|w| match w {
            WorkerConfig::Router(r) => r.realms.iter().any(|r| r.name == realm),
            _ => false,
        });
        if !known {
            errors.push(ConfigError::at(
                "controller.management.realm",
                format!(
                    "expected a realm of the router worker: the management API is served on `{realm}`,                      whose roles decide who may use it, and there is no such realm"
                ),
            ));
        }
    }
    if let Some(grace) = config
        .controller
        .as_ref()
        .and_then(|c| c.options.as_ref())
        .and_then(|o| o.shutdown_grace)
        && !(grace.is_finite() && grace >= 0.0)
    {
        errors.push(ConfigError::at(
            "controller.options.shutdown_grace",
            format!("expected a number of seconds, 0 or more; got {grace}"),
        ));
    }
    let mut endpoints: HashMap<String, String> = HashMap::new();
    let mut clustered: Option<usize> = None;
    for (w, worker) in config.router_workers() {
        let mut realm_names = HashSet::new();
        let mut roles_defined = HashSet::new();
        for (r, realm) in worker.realms.iter().enumerate() {
            let at = format!("workers[{w}].realms[{r}]");
            let name_policy = match realm.template.as_ref().map(|t| t.policy) {
                None | Some(super::TemplateMatch::Exact) => Some(UriMatch::Exact),
                Some(super::TemplateMatch::Prefix) => Some(UriMatch::Prefix),
                Some(super::TemplateMatch::Any) => None,
            };
            if let Some(policy) = name_policy
                && Uri::parse_loose(&realm.name, policy).is_err()
            {
                errors.push(ConfigError::at(
                    format!("{at}.name"),
                    format!("`{}` is not a valid realm URI", realm.name),
                ));
            }
            if let Some(template) = &realm.template {
                check_template(realm, template, &at, config.management_realm(), &mut errors);
            }
            if !realm_names.insert(realm.name.clone()) {
                errors.push(ConfigError::at(
                    format!("{at}.name"),
                    format!("realm `{}` is defined twice", realm.name),
                ));
            }
            roles_defined.extend(realm.roles.iter().map(|role| role.name.clone()));
            check_realm(realm, &at, &mut errors);
        }
        let known = Known {
            roles: &roles_defined,
            realms: &realm_names,
        };
        for (t, transport) in worker.transports.iter().enumerate() {
            let at = format!("workers[{w}].transports[{t}]");
            check_endpoint(
                transport.endpoint(),
                &format!("{at}.endpoint"),
                base,
                &mut endpoints,
                &mut errors,
            );
            check_transport(transport, &at, &known, &mut errors);
        }
        check_components(worker, base, &format!("workers[{w}]"), &mut errors);
        check_http_bridges(worker, w, &mut errors);
        check_links(worker, w, &realm_names, &mut errors);
        if let Some(cluster) = &worker.cluster {
            let names: Vec<&str> = worker.realms.iter().map(|r| r.name.as_str()).collect();
            cluster.check(&format!("workers[{w}].cluster"), &names, &mut errors);
            if clustered.replace(w).is_some() {
                errors.push(ConfigError::at(
                    format!("workers[{w}].cluster"),
                    "only one router worker of a node may be in a cluster",
                ));
            }
        }
    }
    for (w, worker) in config.router_workers() {
        for (t, transport) in worker.transports.iter().enumerate() {
            if let TransportConfig::RawSocket(rs) = transport
                && rs.serializer.is_some()
                && rs.serializers.is_some()
            {
                errors.push(ConfigError::at(
                    format!("workers[{w}].transports[{t}].serializer"),
                    "expected `serializers` or its older form `serializer`, not both",
                ));
            }
        }
    }
    let realm_names: Vec<&str> = config
        .router_workers()
        .flat_map(|(_, w)| w.realms.iter().map(|r| r.name.as_str()))
        .collect();
    let mut worker_ids: HashSet<String> = HashSet::new();
    for (w, worker) in config.workers.iter().enumerate() {
        let id = worker.id(w);
        // (The message names no index: a draft with an unreadable worker is validated without it,
        // and only paths are mapped back to the file.)
        if !worker_ids.insert(id.clone()) {
            errors.push(ConfigError::at(
                format!("workers[{w}].id"),
                format!("worker id `{id}` is already the id of an earlier worker"),
            ));
        }
        match worker {
            WorkerConfig::Guest(guest) => {
                check_guest(guest, &format!("workers[{w}]"), &mut errors);
                if let Some(ready) = &guest.options.ready {
                    check_ready(
                        ready,
                        &format!("workers[{w}].options.ready"),
                        &realm_names,
                        &mut errors,
                    );
                }
            }
            WorkerConfig::Container(container) => {
                check_container(container, &format!("workers[{w}]"), &mut errors)
            }
            WorkerConfig::Router(_) => {}
        }
    }
    errors
}

/// A router worker's `connections`: unique ids, connection options the bridge can honour.
fn check_connections(
    worker: &RouterWorkerConfig,
    base: &Path,
    at: &str,
    errors: &mut Vec<ConfigError>,
) {
    let mut ids = HashSet::new();
    for (i, connection) in worker.connections.iter().enumerate() {
        let here = format!("{at}.connections[{i}]");
        if !ids.insert(connection.id()) {
            errors.push(ConfigError::at(
                format!("{here}.id"),
                format!("connection id `{}` is used twice", connection.id()),
            ));
        }
        let super::ConnectionConfig::Postgres(pg) = connection;
        let o = &pg.options;
        // The TLS configuration the bridge will use, built now: an unknown mode or a file that
        // cannot be used is named here rather than when the bridge connects.
        if let Err((key, why)) =
            switchboard_postgres::tls::client_config(&switchboard_postgres::tls::resolve(o, base))
        {
            errors.push(ConfigError::at(format!("{here}.options.{key}"), why));
        }
        match o.target_session_attrs.as_deref() {
            None | Some("any" | "read-write") => {}
            Some(other) => errors.push(ConfigError::at(
                format!("{here}.options.target_session_attrs"),
                format!("expected `any` or `read-write`; got `{other}`"),
            )),
        }
        if o.max_connections == Some(0) {
            errors.push(ConfigError::at(
                format!("{here}.options.max_connections"),
                "expected at least 1",
            ));
        }
    }
}

/// A `postgresql` component: its realm, role and connection are the worker's; what it
/// registers and publishes is well formed; the parts not built yet are named.
fn check_postgres_bridge(
    worker: &RouterWorkerConfig,
    bridge: &switchboard_postgres::config::PostgresComponentConfig,
    at: &str,
    errors: &mut Vec<ConfigError>,
) {
    use switchboard_postgres::config::{PublishMode, RoleMode};
    check_path_realm_role(worker, at, &bridge.realm, &bridge.role, errors);
    if !worker
        .connections
        .iter()
        .any(|c| c.id() == bridge.connection && matches!(c, super::ConnectionConfig::Postgres(_)))
    {
        errors.push(ConfigError::at(
            format!("{at}.connection"),
            format!(
                "no `postgres` connection `{}` in this worker's `connections`",
                bridge.connection
            ),
        ));
    }
    if bridge.callee.is_none() && bridge.publisher.is_none() && bridge.subscriber.is_none() {
        errors.push(ConfigError::at(
            at,
            "a PostgreSQL bridge needs a `callee` or a `publisher` section",
        ));
    }
    if let Some(subscriber) = &bridge.subscriber {
        if subscriber.subscriptions.is_empty() {
            errors.push(ConfigError::at(
                format!("{at}.subscriber.subscriptions"),
                "expected at least one subscription",
            ));
        }
        for (i, sink) in subscriber.subscriptions.iter().enumerate() {
            let here = format!("{at}.subscriber.subscriptions[{i}]");
            let policy = match sink.match_policy.as_deref() {
                None | Some("exact") => Some(UriMatch::Exact),
                Some("prefix") => Some(UriMatch::Prefix),
                Some("wildcard") => Some(UriMatch::Wildcard),
                Some(other) => {
                    errors.push(ConfigError::at(
                        format!("{here}.match"),
                        format!("expected `exact`, `prefix` or `wildcard`; got `{other}`"),
                    ));
                    None
                }
            };
            if let Some(policy) = policy
                && Uri::parse_loose(&sink.topic, policy).is_err()
            {
                errors.push(ConfigError::at(
                    format!("{here}.topic"),
                    format!(
                        "`{}` is not a valid topic for match `{}`",
                        sink.topic,
                        policy.as_str()
                    ),
                ));
            }
            match (&sink.function, &sink.insert) {
                (Some(_), Some(_)) | (None, None) => errors.push(ConfigError::at(
                    here.clone(),
                    "expected one of `function` (called per event) and `insert` (a table)",
                )),
                _ => {}
            }
            for (key, name) in [("function", &sink.function), ("insert", &sink.insert)] {
                if let Some(name) = name
                    && (name.is_empty() || name.split('.').count() > 2 || name.contains(['(', '"']))
                {
                    errors.push(ConfigError::at(
                        format!("{here}.{key}"),
                        format!("expected `schema.name` or `name`; got `{name}`"),
                    ));
                }
            }
        }
        if subscriber.queue == Some(0) {
            errors.push(ConfigError::at(
                format!("{at}.subscriber.queue"),
                "expected at least 1",
            ));
        }
        if let Some(policy) = subscriber.on_overflow.as_deref()
            && policy != "drop_oldest"
        {
            errors.push(ConfigError::at(
                format!("{at}.subscriber.on_overflow"),
                format!(
                    "unsupported: `{policy}`; the bridge drops the oldest events (`drop_oldest`) \
                     and counts them"
                ),
            ));
        }
    }
    if let Some(callee) = &bridge.callee {
        for (i, schema) in callee.schemas.iter().enumerate() {
            if Uri::parse_loose(schema.prefix.trim_end_matches('.'), UriMatch::Prefix).is_err()
                || schema.prefix.is_empty()
            {
                errors.push(ConfigError::at(
                    format!("{at}.callee.schemas[{i}].prefix"),
                    format!("`{}` is not a URI prefix", schema.prefix),
                ));
            }
            if schema.schema.is_empty() {
                errors.push(ConfigError::at(
                    format!("{at}.callee.schemas[{i}].schema"),
                    "expected a schema name",
                ));
            }
        }
        for (i, p) in callee.procedures.iter().enumerate() {
            if Uri::parse_loose(&p.uri, UriMatch::Exact).is_err() {
                errors.push(ConfigError::at(
                    format!("{at}.callee.procedures[{i}].uri"),
                    format!("`{}` is not a valid procedure URI", p.uri),
                ));
            }
            if p.function.is_empty() {
                errors.push(ConfigError::at(
                    format!("{at}.callee.procedures[{i}].function"),
                    "expected a function: `schema.name` or `schema.name(type, ...)`",
                ));
            }
        }
        if callee.schemas.is_empty() && callee.procedures.is_empty() {
            errors.push(ConfigError::at(
                format!("{at}.callee"),
                "expected `schemas` or `procedures` to register",
            ));
        }
        for (key, value) in [
            ("max_timeout", callee.max_timeout),
            ("acquire_timeout", callee.acquire_timeout),
        ] {
            if value == Some(0) {
                errors.push(ConfigError::at(
                    format!("{at}.callee.{key}"),
                    "expected at least 1 millisecond (PostgreSQL reads 0 as no limit)",
                ));
            }
        }
        for (i, p) in callee.procedures.iter().enumerate() {
            if p.timeout == Some(0) {
                errors.push(ConfigError::at(
                    format!("{at}.callee.procedures[{i}].timeout"),
                    "expected at least 1 millisecond (PostgreSQL reads 0 as no limit)",
                ));
            }
        }
        let channel = callee.reload_channel();
        if channel.is_empty() || channel.len() > 63 {
            errors.push(ConfigError::at(
                format!("{at}.callee.reload_channel"),
                "expected a channel name of 1 to 63 bytes",
            ));
        }
        let roles = &callee.roles;
        if roles.mode == RoleMode::Map && roles.map.is_empty() && roles.default.is_none() {
            errors.push(ConfigError::at(
                format!("{at}.callee.roles.map"),
                "mode `map` needs a `map` (WAMP role -> database role) or a `default`",
            ));
        }
        if roles.mode != RoleMode::Map && (!roles.map.is_empty() || roles.default.is_some()) {
            errors.push(ConfigError::at(
                format!("{at}.callee.roles.mode"),
                "`map` and `default` apply with mode `map` only",
            ));
        }
    }
    if let Some(publisher) = &bridge.publisher {
        let connection = worker.connections.iter().find_map(|c| match c {
            super::ConnectionConfig::Postgres(c) if c.id == bridge.connection => Some(c),
            _ => None,
        });
        if let Some(c) = connection
            && publisher.mode == PublishMode::Durable
            && matches!(
                c.options.sslmode.as_deref(),
                Some("require" | "verify-ca" | "verify-full")
            )
        {
            errors.push(ConfigError::at(
                format!("{at}.publisher.mode"),
                format!(
                    "unsupported yet: the durable tier's replication connection runs without \
                     TLS, and connection `{}` requires TLS (sslmode `{}`): use the outbox tier, \
                     which needs no replication connection, or a database on a private network \
                     with sslmode `prefer`",
                    c.id,
                    c.options.sslmode.as_deref().unwrap_or_default()
                ),
            ));
        }
        // A slot's reader confirms all it read: a slot shared by two channels loses the
        // events of the one its reader does not publish.
        if publisher.mode == PublishMode::Durable
            && publisher.slot.is_none()
            && publisher.channel() != switchboard_postgres::DEFAULT_PUBLISH_CHANNEL
        {
            errors.push(ConfigError::at(
                format!("{at}.publisher.slot"),
                format!(
                    "a durable publisher of channel `{}` needs a `slot` of its own (the default \
                     slot `switchboard` belongs to the channel `{}`)",
                    publisher.channel(),
                    switchboard_postgres::DEFAULT_PUBLISH_CHANNEL
                ),
            ));
        }
        // Names as PostgreSQL writes them unquoted (pgoutput lowercases the publication's).
        for (key, value) in [
            ("slot", &publisher.slot),
            ("publication", &publisher.publication),
        ] {
            let Some(name) = value else { continue };
            let valid = !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                errors.push(ConfigError::at(
                    format!("{at}.publisher.{key}"),
                    format!(
                        "expected a {key} name of 1 to 63 lowercase letters, digits and `_`, not \
                         `{name}`"
                    ),
                ));
            }
            if publisher.mode != PublishMode::Durable {
                errors.push(ConfigError::at(
                    format!("{at}.publisher.{key}"),
                    "applies with mode `durable` only",
                ));
            }
        }
        if let Some(table) = &publisher.outbox_table {
            let parts: Vec<&str> = table.split('.').collect();
            if parts.len() > 2 || parts.iter().any(|p| p.is_empty() || p.len() > 63) {
                errors.push(ConfigError::at(
                    format!("{at}.publisher.outbox_table"),
                    format!("expected a table name, `table` or `schema.table`, not `{table}`"),
                ));
            }
            if publisher.mode != PublishMode::Outbox {
                errors.push(ConfigError::at(
                    format!("{at}.publisher.outbox_table"),
                    "applies with mode `outbox` only",
                ));
            }
        }
        if publisher.channel().is_empty() || publisher.channel().len() > 63 {
            errors.push(ConfigError::at(
                format!("{at}.publisher.channel"),
                "expected a channel name of 1 to 63 bytes",
            ));
        }
    }
}

/// A router worker's components: importable names, realms and roles of this worker, unique ids.
fn check_components(
    worker: &RouterWorkerConfig,
    base: &Path,
    at: &str,
    errors: &mut Vec<ConfigError>,
) {
    check_connections(worker, base, at, errors);
    let mut ids = HashSet::new();
    for (c, component) in worker.components.iter().enumerate() {
        let here = format!("{at}.components[{c}]");
        let component = match component {
            ComponentConfig::Class(class) => class,
            ComponentConfig::Postgresql(bridge) => {
                check_component_id(&mut ids, component_id(bridge.id.as_ref(), c), &here, errors);
                check_postgres_bridge(worker, bridge, &here, errors);
                continue;
            }
        };
        check_component_id(
            &mut ids,
            component_id(component.id.as_ref(), c),
            &here,
            errors,
        );
        check_classname(
            &component.classname,
            component.extra.as_ref(),
            &here,
            errors,
        );
        match worker.realms.iter().find(|r| r.name == component.realm) {
            None => errors.push(ConfigError::at(
                format!("{here}.realm"),
                format!(
                    "realm `{}` is not a realm of this router worker",
                    component.realm
                ),
            )),
            Some(realm) if !realm.roles.iter().any(|r| r.name == component.role()) => {
                errors.push(ConfigError::at(
                    format!("{here}.role"),
                    format!(
                        "role `{}` is not a role of realm `{}`",
                        component.role(),
                        realm.name
                    ),
                ));
            }
            Some(_) => {}
        }
    }
}

/// A component's id, which must differ from the earlier components' of its worker.
fn check_component_id(
    ids: &mut HashSet<String>,
    id: String,
    here: &str,
    errors: &mut Vec<ConfigError>,
) {
    if ids.contains(&id) {
        errors.push(ConfigError::at(
            format!("{here}.id"),
            format!("component id `{id}` is already the id of an earlier component"),
        ));
    }
    ids.insert(id);
}

/// A component's `classname`: one of Crossbar's built-in components that Switchboard runs (with
/// an `extra` it can use), or an importable name.
fn check_classname(
    classname: &str,
    extra: Option<&serde_json::Value>,
    at: &str,
    errors: &mut Vec<ConfigError>,
) {
    match super::builtin_component(classname, extra) {
        Some(Ok(super::BuiltinComponent::RestCallee { procedure, .. })) => {
            check_procedure(errors, format!("{at}.extra.procedure"), &procedure);
        }
        Some(Ok(super::BuiltinComponent::MessageForwarder {
            subscriptions,
            method,
            ..
        })) => {
            for (i, s) in subscriptions.iter().enumerate() {
                let policy = s.match_policy.map_or(UriMatch::Exact, UriMatch::from);
                let topic = s.topic.strip_suffix('*').unwrap_or(&s.topic);
                check_pattern(
                    errors,
                    format!("{at}.extra.subscriptions[{i}].topic"),
                    &s.topic,
                    topic,
                    policy,
                );
            }
            if hyper::Method::from_bytes(method.as_bytes()).is_err() {
                errors.push(ConfigError::at(
                    format!("{at}.extra.method"),
                    format!("expected an HTTP method; got {method:?}"),
                ));
            }
        }
        // Its `extra` read: the bridge connects at start, and tries again while it cannot.
        Some(Ok(super::BuiltinComponent::PostgresPublisher { .. })) => {}
        Some(Err(why)) => {
            let path = if why.starts_with("unsupported") {
                "classname"
            } else {
                "extra"
            };
            errors.push(ConfigError::at(format!("{at}.{path}"), why));
        }
        None if !classname.contains('.') || classname.split('.').any(str::is_empty) => {
            errors.push(ConfigError::at(
                format!("{at}.classname"),
                format!("expected `package.module.Class`; got {classname:?}"),
            ));
        }
        None => {}
    }
}

/// A container worker's components: importable names, unique ids, transports that say where to
/// connect.
fn check_container(container: &ContainerWorkerConfig, at: &str, errors: &mut Vec<ConfigError>) {
    let mut ids = HashSet::new();
    for (c, ContainerComponentConfig::Class(component)) in container.components.iter().enumerate() {
        let here = format!("{at}.components[{c}]");
        if let Some(Ok(super::BuiltinComponent::PostgresPublisher { .. })) =
            super::builtin_component(&component.classname, component.extra.as_ref())
        {
            errors.push(ConfigError::at(
                format!("{here}.classname"),
                "Crossbar's PostgreSQL publisher runs as a component of a router worker",
            ));
        }
        check_component_id(
            &mut ids,
            component_id(component.id.as_ref(), c),
            &here,
            errors,
        );
        check_classname(
            &component.classname,
            component.extra.as_ref(),
            &here,
            errors,
        );
        let t = &component.transport;
        let endpoint = &t.endpoint;
        let missing = match endpoint.kind.as_str() {
            "tcp" if endpoint.host.is_none() => Some("host"),
            "tcp" if endpoint.port.is_none() => Some("port"),
            "unix" if endpoint.path.is_none() => Some("path"),
            "tcp" | "unix" => None,
            other => {
                errors.push(ConfigError::at(
                    format!("{here}.transport.endpoint.type"),
                    format!("expected `tcp` or `unix`; got {other:?}"),
                ));
                None
            }
        };
        if let Some(key) = missing {
            errors.push(ConfigError::at(
                format!("{here}.transport.endpoint.{key}"),
                format!("a `{}` endpoint needs `{key}`", endpoint.kind),
            ));
        }
        if t.kind == ClientTransportKind::Websocket && t.url.is_none() {
            errors.push(ConfigError::at(
                format!("{here}.transport.url"),
                "a websocket transport needs its `url` (ws://host:port/path)",
            ));
        }
    }
}

/// Keys Crossbar accepts that have no effect in Switchboard: each is accepted and named in one
/// warning (`switchboard check` prints them, `switchboard start` logs them).
pub(super) fn warnings(config: &NodeConfig) -> Vec<ConfigError> {
    let mut warnings = Vec::new();
    if let Some(controller) = &config.controller {
        if controller.fabric.is_some() {
            warnings.push(ConfigError::at(
                "controller.fabric",
                "has no effect: Crossbar.io FX's management uplink; Switchboard has none",
            ));
        }
        if let Some(options) = &controller.options {
            if options.shutdown.is_some() {
                warnings.push(ConfigError::at(
                    "controller.options.shutdown",
                    "has no effect: Switchboard's router runs in the node's own process and never \
                     exits on its own; the node stops on SIGTERM or Ctrl-C",
                ));
            }
            if options.enable_parallel_worker_start.is_some() {
                warnings.push(ConfigError::at(
                    "controller.options.enable_parallel_worker_start",
                    "has no effect: workers start one after the other, in config order",
                ));
            }
        }
    }
    for (w, worker) in config.workers.iter().enumerate() {
        if let WorkerConfig::Container(container) = worker {
            for key in container.options.without_effect() {
                warnings.push(ConfigError::at(
                    format!("workers[{w}].options.{key}"),
                    "has no effect: it sets up Crossbar's container process; each component runs \
                     in a Python process of its own",
                ));
            }
        }
    }
    for (w, worker) in config.router_workers() {
        for (r, realm) in worker.realms.iter().enumerate() {
            let at = format!("workers[{w}].realms[{r}]");
            if realm.trace.is_some() {
                warnings.push(ConfigError::at(
                    format!("{at}.trace"),
                    "has no effect: Crossbar.io FX's message tracing through its management API; \
                     Switchboard has none (the session meta API and --loglevel trace show traffic)",
                ));
            }
            for (i, role) in realm.roles.iter().enumerate() {
                if role.allow_by_default.is_some()
                    && !role.allows_by_default()
                    && role.allow_by_default != Some(false)
                {
                    warnings.push(ConfigError::at(
                        format!("{at}.roles[{i}].allow-by-default"),
                        "has no effect: this role's `permissions` or `authorizer` decide its \
                         actions (as in Crossbar, where `allow-by-default` only applies to a role \
                         with neither)",
                    ));
                }
            }
        }
        if let Some(options) = &worker.options {
            let functions = worker.transports.iter().any(|t| {
                t.auth_sections().iter().any(|(_, auth)| {
                    auth.dynamic_sections()
                        .iter()
                        .any(|(_, d)| d.function().is_some())
                })
            });
            for key in options.without_effect(!worker.components.is_empty() || functions) {
                warnings.push(ConfigError::at(
                    format!("workers[{w}].options.{key}"),
                    "has no effect: it sets up a Python worker process, and Switchboard's router \
                     runs in the node's own process",
                ));
            }
        }
        for (t, transport) in worker.transports.iter().enumerate() {
            for (section, auth) in transport.auth_sections() {
                let at = format!("workers[{w}].transports[{t}].{section}");
                auth_warnings(&at, auth, &mut warnings);
            }
            for (rel, path) in transport.web_paths() {
                if let WebPathConfig::LongPoll(lp) = path
                    && lp.options.queue_limit_bytes.is_some()
                {
                    warnings.push(ConfigError::at(
                        format!("workers[{w}].transports[{t}].{rel}.options.queue_limit_bytes"),
                        "has no effect: the queue is bounded by queue_limit_messages",
                    ));
                }
            }
        }
        for (t, transport) in worker.transports.iter().enumerate() {
            let at = format!("workers[{w}].transports[{t}]");
            let mut debug_keys = Vec::new();
            let transport_debug = match transport {
                TransportConfig::Universal(u) => {
                    for (path, WebSocketPathConfig::WebSocket(o)) in &u.websocket {
                        if o.debug.is_some() {
                            debug_keys.push(format!("{at}.websocket.{path}.debug"));
                        }
                    }
                    if let Some(web) = &u.web {
                        web_debug_keys(&web.paths, &format!("{at}.web.paths"), &mut debug_keys);
                    }
                    u.debug
                }
                TransportConfig::WebSocket(ws) => ws.debug,
                TransportConfig::RawSocket(rs) => rs.debug,
                TransportConfig::Web(web) => {
                    web_debug_keys(&web.paths, &format!("{at}.paths"), &mut debug_keys);
                    web.debug
                }
            };
            if transport_debug.is_some() {
                debug_keys.insert(0, format!("{at}.debug"));
            }
            warnings.extend(debug_keys.into_iter().map(|path| {
                ConfigError::at(
                    path,
                    "has no effect: Switchboard's log level is one for the node (--loglevel debug)",
                )
            }));
        }
    }
    warnings
}

/// The keys of an `auth` section at `at` that Switchboard accepts without effect.
fn auth_warnings(at: &str, auth: &AuthConfig, warnings: &mut Vec<ConfigError>) {
    if auth.anonymous.as_ref().is_some_and(|a| a.realm.is_some()) {
        warnings.push(ConfigError::at(
            format!("{at}.anonymous.realm"),
            "has no effect (nor has it in Crossbar): an anonymous session joins the realm its \
             HELLO names",
        ));
    }
    for (method, dynamic) in auth.dynamic_sections() {
        if dynamic.authenticator_role.is_some() {
            warnings.push(ConfigError::at(
                format!("{at}.{method}.authenticator-role"),
                "has no effect: the router calls authenticators from its own trusted session on \
                 the authenticator's realm",
            ));
        }
        if dynamic.expose_controller == Some(true) {
            warnings.push(ConfigError::at(
                format!("{at}.{method}.expose_controller"),
                "has no effect: Switchboard has no Crossbar worker controller to give `create`, \
                 which gets None as its `controller`",
            ));
        }
    }
}

fn web_debug_keys(paths: &BTreeMap<String, WebPathConfig>, at: &str, keys: &mut Vec<String>) {
    for (here, resource) in crate::config::all_web_paths(paths, at) {
        if let WebPathConfig::WebSocket(o) = resource
            && o.debug.is_some()
        {
            keys.push(format!("{here}.debug"));
        }
        if let Some((_, bridge)) = resource.http_bridge()
            && bridge.options.debug.is_some()
        {
            keys.push(format!("{here}.options.debug"));
        }
        if let WebPathConfig::LongPoll(lp) = resource
            && lp.options.debug.is_some()
        {
            keys.push(format!("{here}.options.debug"));
        }
    }
}

/// A guest's `options.ready`: one condition (a log text or a procedure on one of the node's
/// realms) and a timeout.
fn check_ready(ready: &GuestReady, at: &str, realms: &[&str], errors: &mut Vec<ConfigError>) {
    match (&ready.log, &ready.procedure) {
        (Some(_), Some(_)) | (None, None) => errors.push(ConfigError::at(
            at,
            "expected one condition: `log` (a text the guest prints) or `procedure` (a URI \
             someone registers)",
        )),
        (Some(text), None) => {
            if text.is_empty() {
                errors.push(ConfigError::at(
                    format!("{at}.log"),
                    "expected a text to wait for",
                ));
            }
            if ready.realm.is_some() {
                errors.push(ConfigError::at(
                    format!("{at}.realm"),
                    "`realm` goes with `procedure`",
                ));
            }
        }
        (None, Some(procedure)) => {
            check_procedure(errors, format!("{at}.procedure"), procedure);
            match (&ready.realm, realms) {
                (Some(realm), _) if !realms.contains(&realm.as_str()) => {
                    errors.push(ConfigError::at(
                        format!("{at}.realm"),
                        format!("realm `{realm}` is not defined"),
                    ))
                }
                (None, [_]) | (Some(_), _) => {}
                (None, _) => errors.push(ConfigError::at(
                    format!("{at}.realm"),
                    format!(
                        "the node has {} realms: say on which one `procedure` is registered",
                        realms.len()
                    ),
                )),
            }
        }
    }
    if let Some(timeout) = ready.timeout
        && !(timeout.is_finite() && timeout > 0.0)
    {
        errors.push(ConfigError::at(
            format!("{at}.timeout"),
            format!("expected a number of seconds above 0; got {timeout}"),
        ));
    }
}

/// A guest worker's values (its executable and working directory are checked when the node is
/// prepared).
fn check_guest(guest: &GuestWorkerConfig, at: &str, errors: &mut Vec<ConfigError>) {
    let options = &guest.options;
    let mut require = |ok: bool, key: &str, expected: &str, got: String| {
        if !ok {
            errors.push(ConfigError::at(
                format!("{at}.options.{key}"),
                format!("expected {expected}; got {got}"),
            ));
        }
    };
    if let Some(signal) = &options.stop_signal {
        let name = signal.strip_prefix("SIG").unwrap_or(signal);
        require(
            GUEST_STOP_SIGNALS.contains(&name),
            "stop_signal",
            &format!("one of {}", GUEST_STOP_SIGNALS.join(", ")),
            format!("{signal:?}"),
        );
    }
    let seconds = |s: f64| s.is_finite() && s >= 0.0;
    if let Some(timeout) = options.stop_timeout {
        require(
            seconds(timeout),
            "stop_timeout",
            "a number of seconds, 0 or more",
            timeout.to_string(),
        );
    }
    let b = &options.restart_backoff;
    require(
        seconds(b.initial) && b.initial > 0.0,
        "restart_backoff.initial",
        "a number of seconds above 0",
        b.initial.to_string(),
    );
    require(
        seconds(b.max) && b.max >= b.initial,
        "restart_backoff.max",
        "a number of seconds, at least restart_backoff.initial",
        b.max.to_string(),
    );
    require(
        b.factor.is_finite() && b.factor >= 1.0,
        "restart_backoff.factor",
        "a number, 1 or more",
        b.factor.to_string(),
    );
    require(
        b.jitter.is_finite() && (0.0..1.0).contains(&b.jitter),
        "restart_backoff.jitter",
        "a fraction from 0 up to (not including) 1",
        b.jitter.to_string(),
    );
    require(
        seconds(b.reset_after),
        "restart_backoff.reset_after",
        "a number of seconds, 0 or more",
        b.reset_after.to_string(),
    );
    require(
        seconds(options.max_restarts.window) && options.max_restarts.window > 0.0,
        "max_restarts.window",
        "a number of seconds above 0",
        options.max_restarts.window.to_string(),
    );
    if let Some(watch) = &options.watch {
        if let Some(action) = watch.action.as_deref()
            && action != "restart"
        {
            errors.push(ConfigError::at(
                format!("{at}.options.watch.action"),
                format!("expected `restart` (the only action); got {action:?}"),
            ));
        }
        if let Some(timeout) = watch.timeout
            && !seconds(timeout)
        {
            errors.push(ConfigError::at(
                format!("{at}.options.watch.timeout"),
                format!("expected a number of seconds, 0 or more; got {timeout}"),
            ));
        }
        if watch.directories.is_empty() {
            errors.push(ConfigError::at(
                format!("{at}.options.watch.directories"),
                "expected at least one directory to watch",
            ));
        }
    }
}

/// Checks a realm template: the realms it creates come and go, so nothing may depend on one
/// being there.
fn check_template(
    realm: &RealmConfig,
    template: &super::RealmTemplateConfig,
    at: &str,
    management_realm: Option<&str>,
    errors: &mut Vec<ConfigError>,
) {
    if !(template.linger.is_finite() && template.linger >= 0.0) {
        errors.push(ConfigError::at(
            format!("{at}.template.linger"),
            format!(
                "expected a number of seconds, 0 or more; got {}",
                template.linger
            ),
        ));
    }
    if !realm.rlinks.is_empty() {
        errors.push(ConfigError::at(
            format!("{at}.rlinks"),
            "a realm template cannot have links: the realms it creates come and go",
        ));
    }
    if management_realm == Some(realm.name.as_str()) {
        errors.push(ConfigError::at(
            format!("{at}.template"),
            "the management realm cannot be a template: the management API lives on it",
        ));
    }
}

/// A realm's event history patterns and its roles (whose names are unique within the realm).
fn check_realm(realm: &RealmConfig, at: &str, errors: &mut Vec<ConfigError>) {
    for (h, entry) in realm
        .store
        .iter()
        .flat_map(|s| s.event_history.iter().enumerate())
    {
        let policy = entry.match_policy.map_or(UriMatch::Exact, UriMatch::from);
        let path = format!("{at}.store.event-history[{h}].uri");
        check_pattern(errors, path, &entry.uri, &entry.uri, policy);
    }
    let mut role_names = HashSet::new();
    for (i, role) in realm.roles.iter().enumerate() {
        if !role_names.insert(role.name.clone()) {
            errors.push(ConfigError::at(
                format!("{at}.roles[{i}].name"),
                format!("role `{}` is defined twice in this realm", role.name),
            ));
        }
        if let Some(authorizer) = &role.authorizer {
            if !role.permissions().is_empty() {
                errors.push(ConfigError::at(
                    format!("{at}.roles[{i}]"),
                    "a role has either `permissions` or an `authorizer`, not both",
                ));
            }
            check_procedure(errors, format!("{at}.roles[{i}].authorizer"), authorizer);
        }
        for (p, perm) in role.permissions().iter().enumerate() {
            let uri = perm.uri.strip_suffix('*').unwrap_or(&perm.uri);
            let path = format!("{at}.roles[{i}].permissions[{p}].uri");
            check_pattern(errors, path, &perm.uri, uri, effective_match(perm));
        }
    }
}

/// `uri` (`written` so in the config) must be a URI pattern for `policy`.
fn check_pattern(
    errors: &mut Vec<ConfigError>,
    path: String,
    written: &str,
    uri: &str,
    policy: UriMatch,
) {
    if Uri::parse_loose(uri, policy).is_err() {
        errors.push(ConfigError::at(
            path,
            format!(
                "`{written}` is not a valid URI pattern for match `{}`",
                policy.as_str()
            ),
        ));
    }
}

/// `uri` (an authorizer's or an authenticator's) must be a procedure URI.
fn check_procedure(errors: &mut Vec<ConfigError>, path: String, uri: &str) {
    if Uri::parse_loose(uri, UriMatch::Exact).is_err() {
        errors.push(ConfigError::at(
            path,
            format!("`{uri}` is not a valid procedure URI"),
        ));
    }
}

/// A transport's own settings, and the settings and `auth` of each of its WAMP endpoints.
fn check_transport(
    transport: &TransportConfig,
    at: &str,
    known: &Known,
    errors: &mut Vec<ConfigError>,
) {
    if let Some(limit) = transport.auth_rate_limit()
        && (limit.failures == 0 || limit.window == 0)
    {
        errors.push(ConfigError::at(
            format!("{at}.auth_rate_limit"),
            "`failures` and `window` must both be at least 1",
        ));
    }
    // Each endpoint's auth, and whether it is a WebSocket endpoint with cookie tracking.
    let mut auths: Vec<(String, &AuthConfig, Endpoint)> = Vec::new();
    let mut websockets: Vec<(String, &WebSocketOptions)> = Vec::new();
    match transport {
        TransportConfig::Universal(u) => {
            if u.rawsocket.is_none() && u.websocket.is_empty() && u.web.is_none() {
                errors.push(ConfigError::at(
                    at,
                    "a universal transport needs at least one of `rawsocket`, `websocket`, `web`",
                ));
            }
            if let Some(a) = u.rawsocket.as_ref().and_then(|r| r.auth.as_ref()) {
                auths.push((format!("{at}.rawsocket.auth"), a, Endpoint::RawSocket));
            }
            for (path, WebSocketPathConfig::WebSocket(ws)) in &u.websocket {
                websockets.push((format!("{at}.websocket.{path}"), ws));
            }
            if let Some(web) = &u.web {
                check_web_paths(
                    &web.paths,
                    &format!("{at}.web.paths"),
                    &mut websockets,
                    errors,
                );
                for p in web.paths.keys().filter(|p| u.websocket.contains_key(*p)) {
                    errors.push(ConfigError::at(
                        format!("{at}.web.paths.{p}"),
                        format!("path `{p}` is also a `websocket` path of this transport"),
                    ));
                }
            }
        }
        TransportConfig::WebSocket(ws) => {
            if let Some(a) = &ws.auth {
                let kind = Endpoint::WebSocket {
                    cookies: ws.cookie.is_some(),
                };
                auths.push((format!("{at}.auth"), a, kind));
            }
            check_websocket_options(&ws.websocket(), at, errors);
        }
        TransportConfig::RawSocket(rs) => {
            if let Some(a) = &rs.auth {
                auths.push((format!("{at}.auth"), a, Endpoint::RawSocket));
            }
            if rs.max_message_size.is_some_and(|m| m < 512) {
                errors.push(ConfigError::at(
                    format!("{at}.max_message_size"),
                    "must be at least 512 bytes",
                ));
            }
        }
        TransportConfig::Web(web) => {
            check_web_paths(&web.paths, &format!("{at}.paths"), &mut websockets, errors);
        }
    }
    for (path, ws) in websockets {
        if let Some(a) = &ws.auth {
            let kind = Endpoint::WebSocket {
                cookies: ws.cookie.is_some(),
            };
            auths.push((format!("{path}.auth"), a, kind));
        }
        check_websocket_options(ws, &path, errors);
    }
    let client_certificates = transport
        .endpoint()
        .tls()
        .is_some_and(|t| !t.ca_certificates.is_empty());
    for (path, auth, kind) in auths {
        check_auth(&path, auth, kind, client_certificates, known, errors);
    }
}

/// What validation reads of every principal: the role it grants and the realm it joins.
trait Principal {
    fn role(&self) -> &String;
    fn realm(&self) -> Option<&String>;
}

macro_rules! principal {
    ($($t:ty),*) => {$(
        impl Principal for $t {
            fn role(&self) -> &String {
                &self.role
            }
            fn realm(&self) -> Option<&String> {
                self.realm.as_ref()
            }
        }
    )*};
}
principal!(
    TicketPrincipal,
    WampCraPrincipal,
    ScramPrincipal,
    CryptosignPrincipal,
    TlsPrincipal
);

/// What validation reads of every method section (`ticket`, `wampcra`, `scram`, `cryptosign`,
/// `tls`): its type, its authenticator, and the role and realm of each principal.
trait MethodSection {
    fn dynamic(&self) -> DynamicAuthConfig<'_>;
    /// (authid, role, realm) of each principal.
    fn principals(&self) -> Vec<(&String, &String, Option<&String>)>;
}

/// (authid, role, realm) of each principal of a section.
fn principals_of<P: Principal>(
    principals: &BTreeMap<String, P>,
) -> Vec<(&String, &String, Option<&String>)> {
    principals
        .iter()
        .map(|(authid, p)| (authid, p.role(), p.realm()))
        .collect()
}

macro_rules! method_section {
    ($($t:ty),*) => {$(
        impl MethodSection for $t {
            fn dynamic(&self) -> DynamicAuthConfig<'_> {
                <$t>::dynamic(self)
            }
            fn principals(&self) -> Vec<(&String, &String, Option<&String>)> {
                principals_of(&self.principals)
            }
        }
    )*};
}
method_section!(
    TicketAuthConfig,
    MethodAuthConfig<WampCraPrincipal>,
    MethodAuthConfig<ScramPrincipal>,
    MethodAuthConfig<CryptosignPrincipal>,
    MethodAuthConfig<TlsPrincipal>
);

/// What kind of endpoint an `auth` section belongs to.
#[derive(Clone, Copy)]
enum Endpoint {
    RawSocket,
    WebSocket { cookies: bool },
}

/// The roles and realms of a worker, which its `auth` sections may refer to.
struct Known<'a> {
    roles: &'a HashSet<String>,
    realms: &'a HashSet<String>,
}

impl Known<'_> {
    fn check_role(&self, errors: &mut Vec<ConfigError>, path: String, role: &str) {
        if !self.roles.contains(role) {
            errors.push(ConfigError::at(
                path,
                format!("role `{role}` is not defined in any realm"),
            ));
        }
    }

    fn check_realm(&self, errors: &mut Vec<ConfigError>, path: String, realm: Option<&String>) {
        if let Some(r) = realm
            && !self.realms.contains(r)
        {
            errors.push(ConfigError::at(path, format!("realm `{r}` is not defined")));
        }
    }
}

/// Checks one endpoint's `auth` section: roles and realms exist, dynamic methods name an
/// authenticator, and each method can work on this endpoint. `client_certificates`: whether the
/// transport's TLS asks for client certificates (has `ca_certificates`).
fn check_auth(
    at: &str,
    auth: &AuthConfig,
    endpoint: Endpoint,
    client_certificates: bool,
    known: &Known,
    errors: &mut Vec<ConfigError>,
) {
    if let Some(anon) = &auth.anonymous {
        let path = format!("{at}.anonymous");
        match anon.kind {
            AuthKind::Static => known.check_role(
                errors,
                format!("{path}.role"),
                anon.role.as_deref().unwrap_or("anonymous"),
            ),
            AuthKind::Jwt => errors.push(ConfigError::at(
                format!("{path}.type"),
                "type `jwt` exists for `ticket` only (expected `static`, `dynamic` or `function`)",
            )),
            AuthKind::Dynamic | AuthKind::Function => {}
        }
        check_dynamic(&path, anon.dynamic(), known, errors);
    }
    let methods: [(&str, Option<&dyn MethodSection>); 5] = [
        ("ticket", auth.ticket.as_ref().map(|c| c as _)),
        ("wampcra", auth.wampcra.as_ref().map(|c| c as _)),
        ("scram", auth.scram.as_ref().map(|c| c as _)),
        ("cryptosign", auth.cryptosign.as_ref().map(|c| c as _)),
        ("tls", auth.tls.as_ref().map(|c| c as _)),
    ];
    for (name, section) in methods {
        if let Some(section) = section {
            check_method(&format!("{at}.{name}"), name, section, known, errors);
        }
    }
    if let Some(t) = &auth.ticket {
        if t.kind == AuthKind::Jwt && t.jwks.is_none() {
            errors.push(ConfigError::at(
                format!("{at}.ticket.jwks"),
                "type `jwt` needs `jwks`, the identity provider's public keys (a JWKS file)",
            ));
        } else if t.kind != AuthKind::Jwt
            && (t.jwks.is_some() || t.issuer.is_some() || t.audience.is_some())
        {
            errors.push(ConfigError::at(
                format!("{at}.ticket"),
                "`jwks`, `issuer` and `audience` are only used by type `jwt`",
            ));
        }
    }
    if auth.tls.is_some() && !client_certificates {
        errors.push(ConfigError::at(
            format!("{at}.tls"),
            "TLS client certificate authentication needs the transport's endpoint `tls` to \
             have `ca_certificates` (the CAs client certificates are verified against)",
        ));
    }
    if auth.cookie.is_some() && !matches!(endpoint, Endpoint::WebSocket { cookies: true }) {
        errors.push(ConfigError::at(
            format!("{at}.cookie"),
            "cookie authentication needs a WebSocket endpoint with a `cookie` section",
        ));
    }
}

/// The parts every method section at `path` has: its type, its authenticator, and the role and
/// realm of each principal.
fn check_method(
    path: &str,
    name: &str,
    section: &dyn MethodSection,
    known: &Known,
    errors: &mut Vec<ConfigError>,
) {
    let dynamic = section.dynamic();
    if dynamic.kind == AuthKind::Jwt && name != "ticket" {
        errors.push(ConfigError::at(
            format!("{path}.type"),
            "type `jwt` exists for `ticket` only (expected `static`, `dynamic` or `function`)",
        ));
    }
    check_dynamic(path, dynamic, known, errors);
    for (authid, role, realm) in section.principals() {
        known.check_role(errors, format!("{path}.principals.{authid}.role"), role);
        known.check_realm(errors, format!("{path}.principals.{authid}.realm"), realm);
    }
}

/// The `dynamic` and `function` keys of the method section at `path`: a dynamic section names
/// its authenticator, a function section its `create`, and neither key appears elsewhere.
fn check_dynamic(
    path: &str,
    dynamic: DynamicAuthConfig<'_>,
    known: &Known,
    errors: &mut Vec<ConfigError>,
) {
    let kind = dynamic.kind;
    match (kind, dynamic.authenticator) {
        (AuthKind::Dynamic, None) => errors.push(ConfigError::at(
            format!("{path}.authenticator"),
            "a dynamic method needs the procedure URI of its `authenticator`",
        )),
        (AuthKind::Dynamic, Some(uri)) => {
            check_procedure(errors, format!("{path}.authenticator"), uri);
        }
        (_, Some(_)) => errors.push(ConfigError::at(
            format!("{path}.authenticator"),
            format!(
                "an authenticator is only used by type `dynamic`, not `{}`",
                kind.as_str()
            ),
        )),
        (_, None) => {}
    }
    match (kind, dynamic.create) {
        (AuthKind::Function, None) => errors.push(ConfigError::at(
            format!("{path}.create"),
            "a function method needs `create`: the Python function (`module.function`) that \
             returns the authenticate function",
        )),
        (AuthKind::Function, Some(create)) => {
            let (module, function) = create.rsplit_once('.').unwrap_or_default();
            let identifier = |s: &str| {
                s.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && s.chars().all(|c| c.is_alphanumeric() || c == '_')
            };
            if !(module.split('.').all(identifier) && identifier(function)) {
                errors.push(ConfigError::at(
                    format!("{path}.create"),
                    format!(
                        "expected `module.function` (a Python function to import), got {create:?}"
                    ),
                ));
            }
        }
        (_, Some(_)) => errors.push(ConfigError::at(
            format!("{path}.create"),
            format!(
                "`create` is only used by type `function`, not `{}`",
                kind.as_str()
            ),
        )),
        (_, None) => {}
    }
    if matches!(kind, AuthKind::Dynamic | AuthKind::Function) {
        known.check_realm(
            errors,
            format!("{path}.authenticator-realm"),
            dynamic.authenticator_realm,
        );
    }
}

fn check_endpoint(
    endpoint: &EndpointConfig,
    at: &str,
    base: &Path,
    used: &mut HashMap<String, String>,
    errors: &mut Vec<ConfigError>,
) {
    let (key, key_path) = match endpoint {
        EndpointConfig::Tcp(t) => {
            if let Some(v) = t.version
                && v != 4
                && v != 6
            {
                errors.push(ConfigError::at(
                    format!("{at}.version"),
                    format!("expected 4 or 6, got {v}"),
                ));
            }
            if let Some(i) = &t.interface
                && i.parse::<std::net::IpAddr>().is_err()
            {
                errors.push(ConfigError::at(
                    format!("{at}.interface"),
                    format!("`{i}` is not an IP address"),
                ));
            }
            let key = (t.port != 0).then(|| {
                format!(
                    "tcp:{}:{}",
                    t.interface.as_deref().unwrap_or("0.0.0.0"),
                    t.port
                )
            });
            (key, format!("{at}.port"))
        }
        EndpointConfig::Unix(u) => (
            Some(format!("unix:{}", base.join(&u.path).display())),
            format!("{at}.path"),
        ),
    };
    if let Some(key) = key {
        if let Some(first) = used.get(&key) {
            let transport = first.trim_end_matches(".endpoint");
            errors.push(ConfigError::at(
                key_path,
                format!("{key} is already used by {transport}"),
            ));
        } else {
            used.insert(key, at.to_owned());
        }
    }
}

fn check_web_paths<'a>(
    paths: &'a BTreeMap<String, WebPathConfig>,
    at: &str,
    websockets: &mut Vec<(String, &'a WebSocketOptions)>,
    errors: &mut Vec<ConfigError>,
) {
    for (name, path) in paths {
        let here = format!("{at}.{name}");
        if name != "/" && (name.is_empty() || name.contains('/')) {
            errors.push(ConfigError::at(
                here.clone(),
                format!("path `{name}` must be `/` or a single path segment without `/`"),
            ));
        }
        match path {
            WebPathConfig::WebSocket(ws) => websockets.push((here, ws)),
            WebPathConfig::Redirect(r) => {
                if r.url.is_empty() {
                    errors.push(ConfigError::at(
                        format!("{here}.url"),
                        "expected a URL to redirect to",
                    ));
                }
            }
            WebPathConfig::Static(_)
            | WebPathConfig::NodeInfo(_)
            | WebPathConfig::Health(_)
            | WebPathConfig::Metrics(_)
            | WebPathConfig::Console(_)
            | WebPathConfig::Json(_)
            | WebPathConfig::Publisher(_)
            | WebPathConfig::Caller(_)
            | WebPathConfig::Webhook(_) => {}
            WebPathConfig::ReverseProxy(rp) => {
                if let Some(proto) = rp.forwarded_proto.as_deref()
                    && proto != "http"
                    && proto != "https"
                {
                    errors.push(ConfigError::at(
                        format!("{here}.forwarded_proto"),
                        format!("expected `http` or `https`; got {proto:?}"),
                    ));
                }
                if rp.host.is_empty() {
                    errors.push(ConfigError::at(
                        format!("{here}.host"),
                        "expected a host name or address",
                    ));
                }
            }
            WebPathConfig::LongPoll(lp) => {
                if lp.options.queue_limit_messages == Some(0) {
                    errors.push(ConfigError::at(
                        format!("{here}.options.queue_limit_messages"),
                        "expected a number above 0",
                    ));
                }
            }
            WebPathConfig::Path(nested) => {
                check_web_paths(&nested.paths, &format!("{here}.paths"), websockets, errors);
            }
            WebPathConfig::WebSocketReverseProxy(proxy) => {
                check_websocket_backend(&proxy.backend, &format!("{here}.backend"), errors);
            }
            WebPathConfig::Upload(upload) => check_upload(upload, &here, errors),
            WebPathConfig::Archive(archive) => check_archive(archive, &here, errors),
        }
    }
}

/// A `websocket-reverseproxy` path's backend: a WebSocket transport, a TCP endpoint with host and
/// port or a Unix socket's path, and a `ws://` URL.
fn check_websocket_backend(
    backend: &crate::config::ClientTransportConfig,
    at: &str,
    errors: &mut Vec<ConfigError>,
) {
    if backend.kind != ClientTransportKind::Websocket {
        errors.push(ConfigError::at(
            format!("{at}.type"),
            "expected `websocket`: the backend of a WebSocket proxy is a WebSocket server",
        ));
    }
    let e = &backend.endpoint;
    match e.kind.as_str() {
        "tcp" => {
            for (key, missing) in [("host", e.host.is_none()), ("port", e.port.is_none())] {
                if missing {
                    errors.push(ConfigError::at(
                        format!("{at}.endpoint.{key}"),
                        "a TCP backend needs `host` and `port`",
                    ));
                }
            }
        }
        "unix" if e.path.is_none() => errors.push(ConfigError::at(
            format!("{at}.endpoint.path"),
            "a Unix socket backend needs the socket's `path`",
        )),
        "unix" => {}
        other => errors.push(ConfigError::at(
            format!("{at}.endpoint.type"),
            format!("expected `tcp` or `unix`; got `{other}`"),
        )),
    }
    if e.tls.is_some() {
        errors.push(ConfigError::at(
            format!("{at}.endpoint.tls"),
            "unsupported: the WebSocket proxy connects to its backend without TLS (use `ws://` to \
             a backend on this host or network)",
        ));
    }
    match backend.url.as_deref().map(url::Url::parse) {
        None => errors.push(ConfigError::at(
            format!("{at}.url"),
            "expected the backend's WebSocket URL (`ws://host:port/path`)",
        )),
        Some(Ok(u)) if u.scheme() == "ws" => {}
        Some(Ok(u)) => errors.push(ConfigError::at(
            format!("{at}.url"),
            format!("expected a `ws://` URL; got scheme `{}`", u.scheme()),
        )),
        Some(Err(e)) => errors.push(ConfigError::at(
            format!("{at}.url"),
            format!("not a URL: {e}"),
        )),
    }
}

/// An `upload` path: the form fields are distinct, the progress field names no URI itself, the
/// permissions are octal and the size limit is above 0.
fn check_upload(upload: &crate::config::UploadPathConfig, at: &str, errors: &mut Vec<ConfigError>) {
    let f = &upload.form_fields;
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let named = [
        ("file_name", Some(&f.file_name)),
        ("mime_type", Some(&f.mime_type)),
        ("total_size", Some(&f.total_size)),
        ("chunk_number", Some(&f.chunk_number)),
        ("chunk_size", Some(&f.chunk_size)),
        ("total_chunks", Some(&f.total_chunks)),
        ("content", Some(&f.content)),
        ("on_progress", f.on_progress.as_ref()),
        ("session", f.session.as_ref()),
        ("chunk_extra", f.chunk_extra.as_ref()),
        ("finish_extra", f.finish_extra.as_ref()),
    ];
    for (key, name) in named {
        let Some(name) = name else { continue };
        if name.is_empty() {
            errors.push(ConfigError::at(
                format!("{at}.form_fields.{key}"),
                "expected a form field name",
            ));
        } else if let Some(other) = seen.insert(name, key) {
            errors.push(ConfigError::at(
                format!("{at}.form_fields.{key}"),
                format!("`{name}` is already the `{other}` field"),
            ));
        }
    }
    if upload.temp_directory.as_ref() == Some(&upload.directory) {
        errors.push(ConfigError::at(
            format!("{at}.temp_directory"),
            "must not be the upload `directory` itself (leave it out for a hidden folder inside)",
        ));
    }
    let o = &upload.options;
    if o.max_file_size == Some(0) {
        errors.push(ConfigError::at(
            format!("{at}.options.max_file_size"),
            "expected a number of bytes above 0",
        ));
    }
    if let Some(mode) = &o.file_permissions
        && crate::config::parse_file_mode(mode).is_none()
    {
        errors.push(ConfigError::at(
            format!("{at}.options.file_permissions"),
            format!("expected an octal file mode such as \"0644\"; got {mode:?}"),
        ));
    }
    for (i, ext) in o.file_types.iter().flatten().enumerate() {
        if !ext.starts_with('.') {
            errors.push(ConfigError::at(
                format!("{at}.options.file_types[{i}]"),
                format!("expected an extension with its dot (\".{ext}\")"),
            ));
        }
    }
}

/// An `archive` path: an `http(s)` origin where it downloads, hex SHA-256 fingerprints.
fn check_archive(
    archive: &crate::config::ArchivePathConfig,
    at: &str,
    errors: &mut Vec<ConfigError>,
) {
    if let Some(origin) = &archive.origin {
        match url::Url::parse(origin) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => errors.push(ConfigError::at(
                format!("{at}.origin"),
                format!(
                    "expected an `http` or `https` URL; got scheme `{}`",
                    u.scheme()
                ),
            )),
            Err(e) => errors.push(ConfigError::at(
                format!("{at}.origin"),
                format!("not a URL: {e}"),
            )),
        }
    }
    if archive.download && archive.origin.is_none() {
        errors.push(ConfigError::at(
            format!("{at}.download"),
            "downloading needs the `origin` URL to download from",
        ));
    }
    for (i, hash) in archive.hashes.iter().flatten().enumerate() {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            errors.push(ConfigError::at(
                format!("{at}.hashes[{i}]"),
                "expected a SHA-256 fingerprint: 64 hex digits",
            ));
        }
    }
}

/// The realm and role of a web path that joins a session (an HTTP bridge or upload path at `at`)
/// must be the worker's.
fn check_path_realm_role(
    worker: &RouterWorkerConfig,
    at: &str,
    realm: &str,
    role: &str,
    errors: &mut Vec<ConfigError>,
) {
    match worker.realms.iter().find(|r| r.name == realm) {
        None => errors.push(ConfigError::at(
            format!("{at}.realm"),
            format!("realm `{realm}` is not defined in this worker"),
        )),
        Some(r) if !r.roles.iter().any(|r| r.name == role) => {
            errors.push(ConfigError::at(
                format!("{at}.role"),
                format!("role `{role}` is not defined in realm `{realm}`"),
            ));
        }
        Some(_) => {}
    }
}

/// The web paths of a router worker's transports that join a session: HTTP bridge paths (the
/// realm and a role of it, both or neither of `key` and `secret`, a webhook's topic, the
/// `require_ip` networks) and upload paths (realm and role).
fn check_http_bridges(worker: &RouterWorkerConfig, w: usize, errors: &mut Vec<ConfigError>) {
    for (t, transport) in worker.transports.iter().enumerate() {
        for (rel, path) in transport.web_paths() {
            let at = format!("workers[{w}].transports[{t}].{rel}");
            if let WebPathConfig::Upload(upload) = path {
                check_path_realm_role(worker, &at, &upload.realm, &upload.role, errors);
            }
            let Some((kind, bridge)) = path.http_bridge() else {
                continue;
            };
            check_path_realm_role(worker, &at, &bridge.realm, &bridge.role, errors);
            let o = &bridge.options;
            if o.key.is_some() != o.secret.is_some() {
                errors.push(ConfigError::at(
                    format!("{at}.options"),
                    "signed requests need both `key` and `secret`",
                ));
            }
            match (kind, &o.topic) {
                (HttpBridgeKind::Webhook, None) => errors.push(ConfigError::at(
                    format!("{at}.options.topic"),
                    "a webhook needs the `topic` its requests are published to",
                )),
                (HttpBridgeKind::Webhook, Some(topic)) => {
                    if Uri::parse_loose(topic, UriMatch::Exact).is_err() {
                        errors.push(ConfigError::at(
                            format!("{at}.options.topic"),
                            format!("`{topic}` is not a valid topic URI"),
                        ));
                    }
                }
                (_, Some(_)) => errors.push(ConfigError::at(
                    format!("{at}.options.topic"),
                    format!("`topic` is a webhook's, not a {}'s", kind.as_str()),
                )),
                (_, None) => {}
            }
            if kind != HttpBridgeKind::Webhook {
                for (key, present) in [
                    ("success_response", o.success_response.is_some()),
                    ("error_response", o.error_response.is_some()),
                ] {
                    if present {
                        errors.push(ConfigError::at(
                            format!("{at}.options.{key}"),
                            format!("`{key}` is a webhook's, not a {}'s", kind.as_str()),
                        ));
                    }
                }
            }
            for (i, net) in o.require_ip.iter().flatten().enumerate() {
                if let Err(why) = crate::config::IpNetwork::parse(net) {
                    errors.push(ConfigError::at(
                        format!("{at}.options.require_ip[{i}]"),
                        why,
                    ));
                }
            }
        }
    }
}

fn check_websocket_options(ws: &WebSocketOptions, at: &str, errors: &mut Vec<ConfigError>) {
    if ws.serializers.as_ref().is_some_and(Vec::is_empty) {
        errors.push(ConfigError::at(
            format!("{at}.serializers"),
            "expected at least one serializer",
        ));
    }
    let o = &ws.options;
    if let Some(size) = o.auto_ping_size
        && !(4..=125).contains(&size)
    {
        errors.push(ConfigError::at(
            format!("{at}.options.auto_ping_size"),
            format!("expected 4 to 125 bytes, got {size}"),
        ));
    }
    if let Some(deflate) = o.compression.as_ref().and_then(|c| c.deflate.as_ref()) {
        for (name, bits) in [
            ("max_window_bits", deflate.max_window_bits),
            ("request_max_window_bits", deflate.request_max_window_bits),
        ] {
            if let Some(b) = bits
                && !(9..=15).contains(&b)
            {
                errors.push(ConfigError::at(
                    format!("{at}.options.compression.deflate.{name}"),
                    format!("expected 9 to 15, got {b} (zlib cannot use a window of 8 bits)"),
                ));
            }
        }
    }
    if o.max_message_size == Some(0) {
        errors.push(ConfigError::at(
            format!("{at}.options.max_message_size"),
            "must be greater than 0",
        ));
    }
}

/// The links of a router worker, in both forms: endpoints, realms, auth, allow-lists, timings,
/// and unique ids (their TLS and key files are checked by the node's preparation).
fn check_links(
    worker: &RouterWorkerConfig,
    w: usize,
    realms: &HashSet<String>,
    errors: &mut Vec<ConfigError>,
) {
    use super::{LinkConfig, LinkExtras, parse_endpoint, seed_realms};
    let mut ids: HashSet<String> = HashSet::new();
    let mut check_id = |at: &str, id: &str, errors: &mut Vec<ConfigError>| {
        if !ids.insert(id.to_owned()) {
            errors.push(ConfigError::at(
                format!("{at}.id"),
                format!("link id `{id}` is already the id of another link"),
            ));
        }
    };
    let check_extras = |at: &str, extra: &LinkExtras, errors: &mut Vec<ConfigError>| {
        if let Some(auth) = &extra.auth {
            let given = [
                auth.ticket.is_some(),
                auth.wampcra.is_some(),
                auth.cryptosign.is_some(),
                auth.tls.is_some(),
            ];
            if given.iter().filter(|g| **g).count() != 1 {
                errors.push(ConfigError::at(
                    format!("{at}.auth"),
                    "expected exactly one of `ticket`, `wampcra`, `cryptosign`, `tls`",
                ));
            }
        }
        for (name, list) in [("topics", &extra.topics), ("procedures", &extra.procedures)] {
            for (i, entry) in list.iter().flatten().enumerate() {
                let policy = entry.match_policy.map_or(UriMatch::Exact, Into::into);
                let pattern = entry.uri.strip_suffix('*').unwrap_or(&entry.uri);
                if Uri::parse_loose(pattern, policy).is_err() {
                    errors.push(ConfigError::at(
                        format!("{at}.{name}[{i}].uri"),
                        format!(
                            "`{}` is not a valid URI pattern for match {}",
                            entry.uri,
                            policy.as_str()
                        ),
                    ));
                }
            }
        }
        if let Some(r) = &extra.reconnect {
            if r.initial_ms == Some(0) {
                errors.push(ConfigError::at(
                    format!("{at}.reconnect.initial_ms"),
                    "expected 1 or more",
                ));
            }
            if let (Some(i), Some(m)) = (r.initial_ms, r.max_ms)
                && m < i
            {
                errors.push(ConfigError::at(
                    format!("{at}.reconnect.max_ms"),
                    format!("expected at least initial_ms ({i})"),
                ));
            }
            if let Some(g) = r.growth
                && !(g.is_finite() && g >= 1.0)
            {
                errors.push(ConfigError::at(
                    format!("{at}.reconnect.growth"),
                    "expected a number, 1 or more",
                ));
            }
        }
        if let Some(p) = &extra.ping {
            for (key, v) in [("interval", p.interval), ("timeout", p.timeout)] {
                if let Some(v) = v
                    && !((0.0..=86_400.0).contains(&v))
                {
                    errors.push(ConfigError::at(
                        format!("{at}.ping.{key}"),
                        "expected seconds, from 0 to 86400",
                    ));
                }
            }
        }
    };
    for (i, link) in worker.links.iter().enumerate() {
        let at = format!("workers[{w}].links[{i}]");
        check_id(
            &at,
            &link
                .id
                .clone()
                .unwrap_or_else(|| format!("link{:03}", i + 1)),
            errors,
        );
        if let Err(e) = parse_endpoint(&link.endpoint) {
            errors.push(ConfigError::at(format!("{at}.endpoint"), e));
        }
        match seed_realms(&link.realms) {
            Err(e) => errors.push(ConfigError::at(format!("{at}.realms"), e)),
            Ok(super::LinkRealmSet::Listed(list)) => {
                for (j, (name, _)) in list.iter().enumerate() {
                    if !realms.contains(name) {
                        errors.push(ConfigError::at(
                            format!("{at}.realms[{j}]"),
                            format!("this router has no realm `{name}`"),
                        ));
                    }
                }
            }
            Ok(super::LinkRealmSet::Any) => {}
        }
        check_extras(&at, &link.extra, errors);
    }
    let mut n = 0;
    for (r, realm) in worker.realms.iter().enumerate() {
        for (i, link) in realm.rlinks.iter().enumerate() {
            n += 1;
            let at = format!("workers[{w}].realms[{r}].rlinks[{i}]");
            check_id(
                &at,
                &link.id.clone().unwrap_or_else(|| format!("rlink{n:03}")),
                errors,
            );
            if let Err(e) = LinkConfig::endpoint_of(&link.transport) {
                errors.push(ConfigError::at(format!("{at}.transport"), e));
            }
            check_extras(&at, &link.extra, errors);
        }
    }
}
