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
use crate::config::{ComponentConfig, ConfigError, LoadedConfig, TransportConfig};

/// The runner every component process runs.
const RUNNER: &str = include_str!("component_runner.py");

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
    /// The private transport the components join through.
    pub(super) transport: TransportConfig,
    /// One supervised process per component.
    pub(super) processes: Vec<PreparedGuest>,
}

impl PreparedComponents {
    /// The private directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The components of every router worker of `loaded`, or `None` when there are none.
    /// Problems (no usable Python with Autobahn) carry their paths in the config.
    pub fn prepare(loaded: &LoadedConfig) -> Result<Option<Self>, Vec<ConfigError>> {
        let components: Vec<(String, usize, &ComponentConfig, Vec<PathBuf>)> = loaded
            .config
            .router_workers()
            .flat_map(|(w, worker)| {
                let pythonpath: Vec<PathBuf> =
                    match worker.options.as_ref().and_then(|o| o.pythonpath.as_ref()) {
                        Some(paths) => paths.iter().map(|p| loaded.base_dir.join(p)).collect(),
                        None => vec![loaded.base_dir.clone()],
                    };
                worker
                    .components
                    .iter()
                    .enumerate()
                    .map(move |(c, component)| {
                        (
                            format!("workers[{w}].components[{c}]"),
                            c,
                            component,
                            pythonpath.clone(),
                        )
                    })
            })
            .collect();
        let Some((first_at, _, _, _)) = components.first() else {
            return Ok(None);
        };
        check_python(first_at)?;

        let dir = std::env::temp_dir().join(format!("switchboard-{}", random_hex(8)));
        let socket = dir.join("components.sock");
        let runner = dir.join(RUNNER_FILE);
        let mut principals = serde_json::Map::new();
        let mut processes = Vec::new();
        for (_, c, ComponentConfig::Class(component), pythonpath) in &components {
            let id = component
                .id
                .clone()
                .unwrap_or_else(|| format!("component{:03}", c + 1));
            let authid = format!("component:{id}");
            let ticket = random_hex(32);
            principals.insert(
                authid.clone(),
                json!({"ticket": ticket, "role": component.role(), "realm": component.realm}),
            );
            let spec = json!({
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
            });
            processes.push(PreparedGuest::supervised(
                id,
                python(),
                vec!["-u".into(), runner.display().to_string()],
                loaded.base_dir.clone(),
                vec![("SWITCHBOARD_COMPONENT".into(), spec.to_string())],
            ));
        }
        let transport = serde_json::from_value(json!({
            "type": "rawsocket",
            "endpoint": {"type": "unix", "path": socket},
            "serializers": ["json"],
            "auth": {"ticket": {"type": "static", "principals": principals}},
        }))
        .map_err(|e| {
            vec![ConfigError::at(
                first_at.clone(),
                format!("internal: the components' private transport: {e}"),
            )]
        })?;
        Ok(Some(Self {
            dir,
            transport,
            processes,
        }))
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

/// Checks that the Python the components need is there and has Autobahn.
fn check_python(at: &str) -> Result<(), Vec<ConfigError>> {
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
            "components run under Python `{}`, which cannot import Autobahn: install it \
             (`{} -m pip install autobahn`, and `twisted` for Twisted components) or point \
             SWITCHBOARD_PYTHON at a Python that has it",
            python.display(),
            python.display()
        )),
        Err(e) => problem(format!(
            "components run under Python `{}`, which cannot be started ({e}): install Python 3 \
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
