//! The node's control socket: how `switchboard status` and `switchboard stop` reach a node
//! running in a directory.
//!
//! `switchboard start` opens a Unix socket in the node directory ([`SOCKET_FILE`], mode 0600:
//! the file system decides who may control the node, as for Crossbar's `node.pid`), and writes
//! [`PID_FILE`] beside it. The socket serves WAMP over RawSocket on the internal realm
//! [`CONTROL_REALM`], whose sessions get the role `control`. There an in-process session of the
//! node serves the management API (`super::management`): the control channel is a WAMP session
//! like any other, authorized by a role, and it goes through the same session API as
//! everything else.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchboard_client::{Args, ConnectOptions, Endpoint, Session};
use switchboard_proto::{Dict, Serializer, Value};

use super::{RunningNode, StartError};
use crate::config::{RealmConfig, TransportConfig};
use crate::embed::TrustedIdentity;
use crate::listener::{self, Listener, Protocols};
pub use crate::realm::CONTROL_REALM;
use crate::realm::Realm;
use crate::realm::authz::TRUSTED_ROLE;

/// The control socket's file name in the node directory.
pub const SOCKET_FILE: &str = "switchboard.sock";

/// The pid file's name in the node directory (Crossbar's name and JSON shape: `{"pid": N}`).
pub const PID_FILE: &str = "node.pid";

/// The role of the control socket's sessions.
const CONTROL_ROLE: &str = "control";

pub use super::management::{CONFIG_RELOAD, GET_STATUS, SHUTDOWN};

/// What the control socket keeps open: dropped with the node.
pub(super) struct Control {
    /// The node's own session on the control realm (its procedures live as long as it does).
    _session: Session,
    socket: PathBuf,
    pid_file: PathBuf,
}

impl Control {
    /// Removes the socket and the pid file.
    pub(super) fn remove_files(&self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// Connection options for the control socket of the node in `node_dir`.
pub fn connect_options(node_dir: &Path) -> ConnectOptions {
    ConnectOptions::new(
        Endpoint::Unix(node_dir.join(SOCKET_FILE)),
        switchboard_client::TransportKind::RawSocket,
        Serializer::Json,
        CONTROL_REALM,
    )
}

/// A control session to the node running in `node_dir`, if its control socket answers.
pub async fn running_node(node_dir: &Path) -> Option<Session> {
    let socket = node_dir.join(SOCKET_FILE);
    if !socket.exists() {
        return None;
    }
    tokio::time::timeout(
        Duration::from_secs(5),
        Session::connect(&connect_options(node_dir)),
    )
    .await
    .ok()?
    .ok()
}

impl RunningNode {
    /// Opens the control socket and writes the pid file in `node_dir` (what `switchboard start`
    /// does; nodes started by tests and embedders have none). Fails when a node already runs
    /// there. Where the directory is not writable (a read-only mount) the node runs without
    /// them, and says so.
    pub async fn open_control(&mut self, node_dir: &Path) -> Result<(), StartError> {
        let in_use = |reason: String| StartError::Control {
            dir: node_dir.to_path_buf(),
            reason,
        };
        let node_dir = &std::path::absolute(node_dir).map_err(|e| in_use(e.to_string()))?;
        if let Some(other) = running_node(node_dir).await {
            let pid = status_of(&other)
                .await
                .and_then(|s| s.get("pid").and_then(Value::as_u64))
                .map_or_else(String::new, |pid| format!(" (pid {pid})"));
            let _ = other.leave().await;
            return Err(in_use(format!(
                "a node is already running in this directory{pid}: `switchboard stop` it first"
            )));
        }
        let socket = node_dir.join(SOCKET_FILE);
        let listener = match bind_private(&socket) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(
                    "no control socket at {}: {e}; `switchboard status` and `switchboard stop` \
                     will not find this node",
                    socket.display()
                );
                return Ok(());
            }
        };
        let realm = control_realm().map_err(in_use)?;
        self.realms.insert(realm.clone());
        let protocols = control_protocols(&socket, node_dir).map_err(in_use)?;
        let mut sessions =
            crate::session::SessionConfig::new(self.realms.clone(), self.shutdown.clone());
        sessions.status = self.status.clone();
        tokio::spawn(listener::serve(
            listener,
            listener::shared(protocols),
            sessions,
            self.tracker.clone(),
            self.stop_accepting.clone(),
        ));
        let identity = TrustedIdentity::new(CONTROL_REALM, "node", TRUSTED_ROLE)
            .hidden()
            .seeing_callers();
        let join_error = |source| StartError::Join {
            realm: CONTROL_REALM.to_owned(),
            authid: "node".to_owned(),
            source,
        };
        let router_caller = self
            .in_process
            .join(
                TrustedIdentity::new(
                    CONTROL_REALM,
                    crate::realm::router_caller::ROUTER_AUTHID,
                    TRUSTED_ROLE,
                )
                .hidden(),
            )
            .await
            .map_err(join_error)?;
        realm.set_router_caller(router_caller);
        let session = self.in_process.join(identity).await.map_err(join_error)?;
        super::management::serve(&session, CONTROL_REALM, self.management_node(), false)
            .await
            .map_err(join_error)?;
        let pid_file = node_dir.join(PID_FILE);
        let pid = serde_json::json!({
            "pid": std::process::id(),
            "argv": std::env::args().collect::<Vec<_>>(),
        });
        if let Err(e) = std::fs::write(&pid_file, format!("{pid}\n")) {
            tracing::warn!("cannot write {}: {e}", pid_file.display());
        }
        self.control = Some(Control {
            _session: session,
            socket,
            pid_file,
        });
        Ok(())
    }
}

/// The internal realm: the `control` role may call the management API, nothing else.
fn control_realm() -> Result<Arc<Realm>, String> {
    let config: RealmConfig = serde_json::from_value(serde_json::json!({
        "name": CONTROL_REALM,
        "roles": [{"name": CONTROL_ROLE, "permissions": [{
            "uri": "switchboard.", "match": "prefix",
            "allow": {"call": true, "register": false, "publish": false, "subscribe": false}
        }]}]
    }))
    .map_err(|e| format!("internal: the control realm: {e}"))?;
    Ok(Arc::new(Realm::new(
        &config,
        Arc::new(switchboard_proto::ids::IdSequence::new()),
    )))
}

/// RawSocket on the socket, every session anonymous with the role `control`.
fn control_protocols(socket: &Path, base: &Path) -> Result<Protocols, String> {
    let config: TransportConfig = serde_json::from_value(serde_json::json!({
        "type": "rawsocket",
        "endpoint": {"type": "unix", "path": socket},
        "serializers": ["json", "msgpack", "cbor"],
        "auth": {"anonymous": {"type": "static", "role": CONTROL_ROLE}},
    }))
    .map_err(|e| format!("internal: the control transport: {e}"))?;
    Protocols::from_config(&config, base, Arc::new(vec![CONTROL_REALM.to_owned()])).map_err(
        |problems| {
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            format!("internal: the control transport: {}", text.join("; "))
        },
    )
}

/// Binds `socket` readable and writable by this user only: bound under a temporary name, its
/// mode set, then renamed into place, so that no one else can connect in between.
fn bind_private(socket: &Path) -> std::io::Result<Listener> {
    use std::os::unix::fs::PermissionsExt;
    let temporary = socket.with_file_name(format!(".{SOCKET_FILE}.{}", std::process::id()));
    let endpoint: crate::config::EndpointConfig =
        serde_json::from_value(serde_json::json!({"type": "unix", "path": temporary}))
            .map_err(std::io::Error::other)?;
    let (listener, _) = listener::bind(&endpoint, Path::new("/"))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&temporary, socket)?;
    match listener {
        Listener::Unix(l, _) => Ok(Listener::Unix(l, socket.to_path_buf())),
        Listener::Tcp(_) => Err(std::io::Error::other("internal: not a Unix socket")),
    }
}

/// Asks a control session for the node's status.
pub async fn status_of(session: &Session) -> Option<Dict> {
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        session.call(GET_STATUS, Args::default()),
    )
    .await
    .ok()?
    .ok()?;
    Some(answer.kwargs)
}
