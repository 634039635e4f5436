//! Hosted application components (a router worker's `components`, Crossbar's `"type": "class"`):
//! each is a Python class the node runs in a supervised Python process (the runner script
//! `component_runner.py`, shipped in the binary), which joins the router over a private Unix
//! socket of the node with the component's realm and role.
//!
//! Like everything that plugs into the router, a component is an ordinary session: it joins
//! through a RawSocket transport with ticket authentication whose principals (one per component,
//! authid `component:<id>`, a random ticket per node start) grant exactly the configured realm and
//! role, so authorization, meta events and testaments apply to it as to any client. The socket
//! lives in a directory only the node's user can enter, created at start and removed at shutdown.

use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom as _, SystemRandom};
use serde_json::json;

use super::guest::PreparedGuest;
use crate::config::{
    ClientTransportConfig, ClientTransportKind, ConfigError, ContainerComponentConfig,
    LoadedConfig, SerializerName, TransportConfig, WorkerConfig, builtin_component,
};

/// The runner every component process runs.
const RUNNER: &str = include_str!("component_runner.py");

/// The private transport's socket in the node's private directory.
const SOCKET_FILE: &str = "components.sock";

/// The runner's file name in the node's private directory.
const RUNNER_FILE: &str = "switchboard_component_runner.py";

/// The Python the components run under: `SWITCHBOARD_PYTHON`, else `python3` on `PATH`.
pub fn python() -> PathBuf {
    std::env::var_os("SWITCHBOARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// The components of a node, ready to run.
#[derive(Debug)]
pub struct PreparedComponents {
    /// The private directory: the socket and the runner.
    pub(super) dir: PathBuf,
    /// The private transport router components join through (none without router components).
    pub(super) transport: Option<TransportConfig>,
    /// One supervised process per component.
    pub(super) processes: Vec<PreparedGuest>,
    /// The ticket principals of the private transport, one per router worker's component.
    pub(super) principals: serde_json::Map<String, serde_json::Value>,
}

impl PreparedComponents {
    /// The private directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The components of every router and container worker of `loaded`, or `None` when there are
    /// none. Problems (no usable Python with Autobahn) carry their paths in the config.
    pub fn prepare(loaded: &LoadedConfig) -> Result<Option<Self>, Vec<ConfigError>> {
        // Absolute: the component's process runs in another working directory than the node's
        // (`switchboard start .` gives a relative base).
        let base =
            std::path::absolute(&loaded.base_dir).unwrap_or_else(|_| loaded.base_dir.clone());
        let pythonpath_of = |paths: Option<&Vec<String>>| -> Vec<PathBuf> {
            match paths {
                Some(paths) => paths.iter().map(|p| base.join(p)).collect(),
                None => vec![base.clone()],
            }
        };
        let mut router_components = Vec::new();
        let mut container_components = Vec::new();
        let ids = crate::config::process_ids(&loaded.config);
        for (w, worker) in loaded.config.workers.iter().enumerate() {
            match worker {
                WorkerConfig::Router(router) => {
                    let pythonpath =
                        pythonpath_of(router.options.as_ref().and_then(|o| o.pythonpath.as_ref()));
                    for (c, component) in router
                        .components
                        .iter()
                        .enumerate()
                        .filter_map(|(c, k)| k.as_class().map(|k| (c, k)))
                    {
                        // Crossbar's built-ins run in the node's process (`rest_components`).
                        if builtin_component(&component.classname, component.extra.as_ref())
                            .is_some()
                        {
                            continue;
                        }
                        router_components.push((
                            format!("workers[{w}].components[{c}]"),
                            ids[&(w, c)].clone(),
                            component,
                            pythonpath.clone(),
                        ));
                    }
                }
                WorkerConfig::Container(container) => {
                    let pythonpath = pythonpath_of(container.options.pythonpath.as_ref());
                    for (c, ContainerComponentConfig::Class(component)) in
                        container.components.iter().enumerate()
                    {
                        if builtin_component(&component.classname, component.extra.as_ref())
                            .is_some()
                        {
                            continue;
                        }
                        container_components.push((
                            format!("workers[{w}].components[{c}]"),
                            ids[&(w, c)].clone(),
                            component,
                            pythonpath.clone(),
                            container.options.restart,
                        ));
                    }
                }
                WorkerConfig::Guest(_) => {}
            }
        }
        let first_at = match (router_components.first(), container_components.first()) {
            (Some((at, ..)), _) | (None, Some((at, ..))) => at.clone(),
            (None, None) => return Ok(None),
        };
        check_python(&first_at, "components")?;

        let dir = std::env::temp_dir().join(format!("switchboard-{}", random_hex(8)));
        let socket = socket_in(&dir);
        let runner = dir.join(RUNNER_FILE);
        let process = |id: String, spec: serde_json::Value| {
            PreparedGuest::supervised(
                id,
                python(),
                vec!["-u".into(), runner.display().to_string()],
                base.clone(),
                vec![("SWITCHBOARD_COMPONENT".into(), spec.to_string())],
            )
        };
        let mut principals = serde_json::Map::new();
        let mut processes = Vec::new();
        for (_, id, component, pythonpath) in &router_components {
            let authid = format!("component:{id}");
            let ticket = random_hex(32);
            principals.insert(
                authid.clone(),
                json!({"ticket": ticket, "role": component.role(), "realm": component.realm}),
            );
            processes.push(process(
                id.clone(),
                json!({
                    "classname": component.classname,
                    "realm": component.realm,
                    "extra": component.extra,
                    "pythonpath": pythonpath,
                    "transport": {
                        "type": "rawsocket",
                        "endpoint": {"type": "unix", "path": socket},
                        "serializer": "json",
                    },
                    "authid": authid,
                    "ticket": ticket,
                }),
            ));
        }
        for (_, id, component, pythonpath, restart) in &container_components {
            let mut p = process(
                id.clone(),
                json!({
                    "classname": component.classname,
                    "realm": component.realm,
                    "extra": component.extra,
                    "pythonpath": pythonpath,
                    "transport": autobahn_transport(&component.transport, &base),
                }),
            );
            if let Some(restart) = restart {
                p.restart = *restart;
            }
            processes.push(p);
        }
        let transport = private_transport(&socket, &principals).map_err(|e| {
            vec![ConfigError::at(
                first_at.clone(),
                format!("internal: the components' private transport: {e}"),
            )]
        })?;
        Ok(Some(Self {
            dir,
            transport: (!router_components.is_empty()).then_some(transport),
            processes,
            principals,
        }))
    }
}

/// The private transport router workers' components join through: RawSocket on `socket`, each
/// component a ticket principal of `principals`.
pub(super) fn private_transport(
    socket: &Path,
    principals: &serde_json::Map<String, serde_json::Value>,
) -> Result<TransportConfig, serde_json::Error> {
    serde_json::from_value(json!({
        "type": "rawsocket",
        "endpoint": {"type": "unix", "path": socket},
        "serializers": ["json"],
        "auth": {"ticket": {"type": "static", "principals": principals}},
    }))
}

/// The socket of the private transport in a component directory.
pub(super) fn socket_in(dir: &Path) -> PathBuf {
    dir.join(SOCKET_FILE)
}

/// A container component's transport in the form Autobahn|Python's `Component` takes, its files
/// and socket paths resolved against the node directory.
fn autobahn_transport(t: &ClientTransportConfig, base: &Path) -> serde_json::Value {
    let e = &t.endpoint;
    let mut endpoint = json!({"type": e.kind});
    if let Some(host) = &e.host {
        endpoint["host"] = json!(host);
    }
    if let Some(port) = e.port {
        endpoint["port"] = json!(port);
    }
    if let Some(path) = &e.path {
        endpoint["path"] = json!(base.join(path));
    }
    if let Some(serde_json::Value::Object(tls)) = &e.tls {
        let mut tls = tls.clone();
        for key in ["certificate", "key"] {
            if let Some(serde_json::Value::String(file)) = tls.get(key) {
                let resolved = json!(base.join(file));
                tls.insert(key.into(), resolved);
            }
        }
        if let Some(serde_json::Value::Array(cas)) = tls.get("ca_certificates") {
            let resolved: Vec<serde_json::Value> = cas
                .iter()
                .filter_map(|c| c.as_str().map(|c| json!(base.join(c))))
                .collect();
            tls.insert("ca_certificates".into(), json!(resolved));
        }
        endpoint["tls"] = serde_json::Value::Object(tls);
    }
    let name = |s: SerializerName| match s {
        SerializerName::Json => "json",
        SerializerName::Msgpack => "msgpack",
        SerializerName::Cbor => "cbor",
    };
    match t.kind {
        ClientTransportKind::Websocket => {
            let mut transport = json!({"type": "websocket", "url": t.url, "endpoint": endpoint});
            if let Some(serializers) = &t.serializers {
                transport["serializers"] =
                    json!(serializers.iter().map(|s| name(*s)).collect::<Vec<_>>());
            }
            transport
        }
        ClientTransportKind::Rawsocket => json!({
            "type": "rawsocket",
            "url": t.url,
            "endpoint": endpoint,
            "serializer": name(t.serializer.unwrap_or(SerializerName::Json)),
        }),
    }
}

/// Creates a node's private component directory (only the node's user may enter it) with the
/// runner in it.
pub(super) fn create_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)?;
    std::fs::write(dir.join(RUNNER_FILE), RUNNER)
}

/// Removes a node's private component directory (at shutdown).
pub(super) fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), "cannot remove the components' directory: {e}");
    }
}

/// Checks that the Python that `what` (components, function authenticators) need is there and has
/// Autobahn.
pub(super) fn check_python(at: &str, what: &str) -> Result<(), Vec<ConfigError>> {
    let python = python();
    let problem = |message: String| Err(vec![ConfigError::at(at, message)]);
    match std::process::Command::new(&python)
        .args(["-c", "import autobahn"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        Ok(_) => problem(format!(
            "{what} run under Python `{}`, which cannot import Autobahn: install it \
             (`{} -m pip install autobahn`, and `twisted` for Twisted components) or point \
             SWITCHBOARD_PYTHON at a Python that has it",
            python.display(),
            python.display()
        )),
        Err(e) => problem(format!(
            "{what} run under Python `{}`, which cannot be started ({e}): install Python 3 \
             with Autobahn, or point SWITCHBOARD_PYTHON at one",
            python.display()
        )),
    }
}

/// `bytes` random bytes as hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the system random number generator failed");
    hex::encode(buf)
}
