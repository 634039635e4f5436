//! The node configuration: Crossbar.io's node config format (version 2), as typed serde structs.
//!
//! Every struct rejects unknown fields, so a key we do not support yet is an error that names it
//! instead of being silently ignored. [`NodeConfig::validate`] then checks what serde cannot see
//! (cross-references, duplicate listeners) and reports every problem at once.
//!
//! Supported so far: `workers[]` of type `router` with `realms[]` (`name`, `roles[]` with
//! `permissions[]`) and `transports[]` of type `universal`, `websocket` and `rawsocket` on `tcp` and
//! `unix` endpoints, with `serializers`, `max_message_size` and WebSocket `compression`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use switchboard_proto::{Serializer, UriMatch};

/// The built-in configuration `switchboard start` runs without a node directory, and the one
/// `switchboard init` writes: a universal listener on 127.0.0.1:8080 (WebSocket at `/ws`, RawSocket
/// on the same port), realm `realm1`, the `anonymous` role allowed everything.
pub const DEFAULT_CONFIG_JSON: &str = r#"{
    "version": 2,
    "controller": {},
    "workers": [
        {
            "type": "router",
            "realms": [
                {
                    "name": "realm1",
                    "roles": [
                        {
                            "name": "anonymous",
                            "permissions": [
                                {
                                    "uri": "",
                                    "match": "prefix",
                                    "allow": {
                                        "call": true,
                                        "register": true,
                                        "publish": true,
                                        "subscribe": true
                                    },
                                    "disclose": {
                                        "caller": false,
                                        "publisher": false
                                    },
                                    "cache": true
                                }
                            ]
                        }
                    ]
                }
            ],
            "transports": [
                {
                    "type": "universal",
                    "endpoint": {
                        "type": "tcp",
                        "interface": "127.0.0.1",
                        "port": 8080,
                        "backlog": 1024
                    },
                    "rawsocket": {
                        "serializers": ["cbor", "msgpack", "json"]
                    },
                    "websocket": {
                        "ws": {
                            "type": "websocket",
                            "serializers": ["cbor", "msgpack", "json"]
                        }
                    }
                }
            ]
        }
    ]
}
"#;

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
}

/// A worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum WorkerConfig {
    /// A router worker.
    #[serde(rename = "router")]
    Router(RouterWorkerConfig),
}

/// A router worker: realms and the transports clients reach them through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterWorkerConfig {
    /// Worker id.
    #[serde(default)]
    pub id: Option<String>,
    /// Realms hosted.
    #[serde(default)]
    pub realms: Vec<RealmConfig>,
    /// Listening transports.
    #[serde(default)]
    pub transports: Vec<TransportConfig>,
}

/// A realm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmConfig {
    /// The realm's URI.
    pub name: String,
    /// Roles sessions may join with.
    #[serde(default)]
    pub roles: Vec<RoleConfig>,
}

/// A role and its permissions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Role name (the authrole).
    pub name: String,
    /// Permissions on URI patterns.
    #[serde(default)]
    pub permissions: Vec<PermissionConfig>,
}

/// One permission: which actions a role may take on URIs matching a pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionConfig {
    /// The URI pattern.
    pub uri: String,
    /// How `uri` matches (Crossbar's default: exact, or prefix for a pattern ending in `*`).
    #[serde(rename = "match", default)]
    pub match_policy: Option<MatchPolicy>,
    /// Allowed actions.
    #[serde(default)]
    pub allow: AllowConfig,
    /// Identity disclosure to receivers.
    #[serde(default)]
    pub disclose: DiscloseConfig,
    /// Whether the decision may be cached (always true for static permissions).
    #[serde(default)]
    pub cache: Option<bool>,
}

/// The `match` values.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum MatchPolicy {
    Exact,
    Prefix,
    Wildcard,
}

impl From<MatchPolicy> for UriMatch {
    fn from(m: MatchPolicy) -> Self {
        match m {
            MatchPolicy::Exact => UriMatch::Exact,
            MatchPolicy::Prefix => UriMatch::Prefix,
            MatchPolicy::Wildcard => UriMatch::Wildcard,
        }
    }
}

/// The four actions of a permission.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct AllowConfig {
    #[serde(default)]
    pub call: bool,
    #[serde(default)]
    pub register: bool,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub subscribe: bool,
}

/// Identity disclosure settings of a permission.
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct DiscloseConfig {
    #[serde(default)]
    pub caller: bool,
    #[serde(default)]
    pub publisher: bool,
}

/// A listening transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum TransportConfig {
    /// WebSocket and RawSocket on one endpoint.
    #[serde(rename = "universal")]
    Universal(UniversalTransportConfig),
    /// WebSocket only.
    #[serde(rename = "websocket")]
    WebSocket(WebSocketTransportConfig),
    /// RawSocket only.
    #[serde(rename = "rawsocket")]
    RawSocket(RawSocketTransportConfig),
}

/// A `universal` transport: RawSocket is told from HTTP by its first octet; WebSocket endpoints
/// live on the paths of `websocket`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniversalTransportConfig {
    /// Transport id.
    #[serde(default)]
    pub id: Option<String>,
    /// Where to listen.
    pub endpoint: EndpointConfig,
    /// RawSocket settings; absent means RawSocket is not served.
    #[serde(default)]
    pub rawsocket: Option<RawSocketOptions>,
    /// WebSocket endpoints by URL path (`"ws"` is `/ws`).
    #[serde(default)]
    pub websocket: BTreeMap<String, WebSocketPathConfig>,
}

/// A WebSocket endpoint on a path of a universal transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum WebSocketPathConfig {
    /// A WAMP WebSocket endpoint.
    #[serde(rename = "websocket")]
    WebSocket(WebSocketOptions),
}

/// A `websocket` transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketTransportConfig {
    /// Transport id.
    #[serde(default)]
    pub id: Option<String>,
    /// Where to listen.
    pub endpoint: EndpointConfig,
    /// Public URL (informational).
    #[serde(default)]
    pub url: Option<String>,
    /// Serializers offered; all three when absent.
    #[serde(default)]
    pub serializers: Option<Vec<SerializerName>>,
    /// Protocol options.
    #[serde(default)]
    pub options: WebSocketProtocolOptions,
    /// Authentication methods.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

impl WebSocketTransportConfig {
    /// The WebSocket settings, as for a path of a universal transport.
    pub fn websocket(&self) -> WebSocketOptions {
        WebSocketOptions {
            serializers: self.serializers.clone(),
            options: self.options.clone(),
            auth: self.auth.clone(),
        }
    }
}

/// A `rawsocket` transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSocketTransportConfig {
    /// Transport id.
    #[serde(default)]
    pub id: Option<String>,
    /// Where to listen.
    pub endpoint: EndpointConfig,
    /// Serializers offered; all three when absent.
    #[serde(default)]
    pub serializers: Option<Vec<SerializerName>>,
    /// Largest accepted message, in bytes.
    #[serde(default)]
    pub max_message_size: Option<usize>,
    /// Authentication methods.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

impl RawSocketTransportConfig {
    /// The RawSocket settings, as for a universal transport.
    pub fn rawsocket(&self) -> RawSocketOptions {
        RawSocketOptions {
            serializers: self.serializers.clone(),
            max_message_size: self.max_message_size,
            auth: self.auth.clone(),
        }
    }
}

/// Settings of a WebSocket endpoint.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebSocketOptions {
    /// Serializers offered; all three when absent.
    #[serde(default)]
    pub serializers: Option<Vec<SerializerName>>,
    /// Protocol options.
    #[serde(default)]
    pub options: WebSocketProtocolOptions,
    /// Authentication methods.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

/// WebSocket protocol options (Crossbar names).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebSocketProtocolOptions {
    /// Largest accepted message, in bytes.
    #[serde(default)]
    pub max_message_size: Option<usize>,
    /// permessage-deflate settings (see [`WebSocketProtocolOptions::compression_enabled`]).
    #[serde(default)]
    pub compression: Option<CompressionConfig>,
    /// Seconds allowed for the opening handshake (Crossbar's `open_handshake_timeout`, the seed's
    /// `opening_timeout`).
    #[serde(default)]
    pub open_handshake_timeout: Option<u64>,
}

impl WebSocketProtocolOptions {
    /// Whether permessage-deflate is accepted: yes unless the config has a `compression` section
    /// without `deflate`.
    pub fn compression_enabled(&self) -> bool {
        self.compression
            .as_ref()
            .is_none_or(|c| c.deflate.is_some())
    }
}

/// `compression` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    /// permessage-deflate; present means enabled.
    #[serde(default)]
    pub deflate: Option<serde_json::Value>,
}

/// Settings of a RawSocket endpoint.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSocketOptions {
    /// Serializers offered; all three when absent.
    #[serde(default)]
    pub serializers: Option<Vec<SerializerName>>,
    /// Largest accepted message, in bytes (rounded down to a power of two by the handshake).
    #[serde(default)]
    pub max_message_size: Option<usize>,
    /// Authentication methods.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

/// Authentication methods of a transport (only `anonymous` so far).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Anonymous authentication.
    #[serde(default)]
    pub anonymous: Option<AnonymousAuthConfig>,
}

/// `auth.anonymous`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousAuthConfig {
    /// Only `static` is supported.
    #[serde(rename = "type")]
    pub kind: String,
    /// The role anonymous sessions get.
    #[serde(default)]
    pub role: Option<String>,
}

/// A serializer name in a config.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum SerializerName {
    Json,
    Msgpack,
    Cbor,
}

impl From<SerializerName> for Serializer {
    fn from(s: SerializerName) -> Self {
        match s {
            SerializerName::Json => Serializer::Json,
            SerializerName::Msgpack => Serializer::MsgPack,
            SerializerName::Cbor => Serializer::Cbor,
        }
    }
}

/// Converts an optional serializer list; absent means all.
pub fn serializers(list: &Option<Vec<SerializerName>>) -> Vec<Serializer> {
    match list {
        Some(l) => l.iter().map(|s| Serializer::from(*s)).collect(),
        None => Serializer::ALL.to_vec(),
    }
}

/// Where a transport listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum EndpointConfig {
    /// A TCP port.
    #[serde(rename = "tcp")]
    Tcp {
        /// Port; 0 picks a free one.
        port: u16,
        /// Address to bind; all IPv4 interfaces when absent.
        #[serde(default)]
        interface: Option<String>,
        /// Listen backlog.
        #[serde(default)]
        backlog: Option<u32>,
        /// IP version (4 or 6).
        #[serde(default)]
        version: Option<u8>,
    },
    /// A Unix domain socket.
    #[serde(rename = "unix")]
    Unix {
        /// Socket path; relative paths resolve against the config's directory.
        path: PathBuf,
    },
}

/// A configuration problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, if the config came from one.
    pub file: Option<PathBuf>,
    /// Where in the file (`line:column` or a path like `workers[0].realms[1].name`).
    pub location: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}: {}: {}", file.display(), self.location, self.message),
            None => write!(f, "{}: {}", self.location, self.message),
        }
    }
}

/// Every problem found in one config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A loaded configuration and the directory relative paths resolve against.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed config.
    pub config: NodeConfig,
    /// The config file, if any.
    pub file: Option<PathBuf>,
    /// The directory relative paths in the config resolve against.
    pub base_dir: PathBuf,
}

impl LoadedConfig {
    /// The built-in default configuration.
    pub fn builtin() -> Self {
        // The constant is tested to parse and validate (see the tests below).
        let config =
            parse_json(DEFAULT_CONFIG_JSON, None).expect("the built-in default config is valid");
        Self {
            config,
            file: None,
            base_dir: PathBuf::from("."),
        }
    }

    /// Loads `dir/config.json`, or `dir/.crossbar/config.json` (a Crossbar node directory); `None`
    /// when neither exists.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>, ConfigErrors> {
        for candidate in [
            dir.join("config.json"),
            dir.join(".crossbar").join("config.json"),
        ] {
            if candidate.is_file() {
                return Self::from_file(&candidate).map(Some);
            }
        }
        Ok(None)
    }

    /// Loads and validates one config file.
    pub fn from_file(file: &Path) -> Result<Self, ConfigErrors> {
        let one = |location: &str, message: String| {
            ConfigErrors(vec![ConfigError {
                file: Some(file.to_path_buf()),
                location: location.to_owned(),
                message,
            }])
        };
        let text =
            std::fs::read_to_string(file).map_err(|e| one("-", format!("cannot read: {e}")))?;
        let config = parse_json(&text, Some(file))?;
        let base_dir = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let loaded = Self {
            config,
            file: Some(file.to_path_buf()),
            base_dir,
        };
        loaded.config.validate(loaded.file.as_deref())?;
        Ok(loaded)
    }
}

fn parse_json(text: &str, file: Option<&Path>) -> Result<NodeConfig, ConfigErrors> {
    serde_json::from_str(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.map(Path::to_path_buf),
            location: format!("line {} column {}", e.line(), e.column()),
            message: e.to_string(),
        }])
    })
}

impl NodeConfig {
    /// Checks what the types cannot: version, realm names, roles, listener clashes. Returns every
    /// problem found.
    pub fn validate(&self, file: Option<&Path>) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        let mut err = |location: String, message: String| {
            errors.push(ConfigError {
                file: file.map(Path::to_path_buf),
                location,
                message,
            })
        };
        if let Some(v) = self.version
            && v != 2
        {
            err("version".into(), format!("expected 2, got {v}"));
        }
        if self.workers.is_empty() {
            err(
                "workers".into(),
                "expected at least one worker of type router".into(),
            );
        }
        let mut endpoints = HashSet::new();
        for (w, WorkerConfig::Router(worker)) in self.workers.iter().enumerate() {
            let mut realm_names = HashSet::new();
            for (r, realm) in worker.realms.iter().enumerate() {
                let at = format!("workers[{w}].realms[{r}]");
                if switchboard_proto::Uri::parse_loose(&realm.name, UriMatch::Exact).is_err() {
                    err(
                        format!("{at}.name"),
                        format!("{:?} is not a valid realm URI", realm.name),
                    );
                }
                if !realm_names.insert(realm.name.clone()) {
                    err(
                        format!("{at}.name"),
                        format!("realm {:?} is defined twice", realm.name),
                    );
                }
                let mut role_names = HashSet::new();
                for (i, role) in realm.roles.iter().enumerate() {
                    if !role_names.insert(role.name.clone()) {
                        err(
                            format!("{at}.roles[{i}].name"),
                            format!("role {:?} is defined twice", role.name),
                        );
                    }
                    for (p, perm) in role.permissions.iter().enumerate() {
                        if perm.disclose.caller || perm.disclose.publisher {
                            err(
                                format!("{at}.roles[{i}].permissions[{p}].disclose"),
                                "unsupported: caller/publisher disclosure is not implemented yet; set both to false".into(),
                            );
                        }
                        let policy = effective_match(perm);
                        let uri = perm.uri.trim_end_matches('*');
                        if switchboard_proto::Uri::parse_loose(uri, policy).is_err() {
                            err(
                                format!("{at}.roles[{i}].permissions[{p}].uri"),
                                format!(
                                    "{:?} is not a valid URI pattern for match {}",
                                    perm.uri,
                                    policy.as_str()
                                ),
                            );
                        }
                    }
                }
            }
            for (t, transport) in worker.transports.iter().enumerate() {
                let at = format!("workers[{w}].transports[{t}]");
                let endpoint = match transport {
                    TransportConfig::Universal(u) => {
                        if u.rawsocket.is_none() && u.websocket.is_empty() {
                            err(
                                at.clone(),
                                "a universal transport needs `rawsocket` or `websocket`".into(),
                            );
                        }
                        &u.endpoint
                    }
                    TransportConfig::WebSocket(ws) => &ws.endpoint,
                    TransportConfig::RawSocket(rs) => &rs.endpoint,
                };
                let key = match endpoint {
                    EndpointConfig::Tcp { port: 0, .. } => None,
                    EndpointConfig::Tcp {
                        port, interface, ..
                    } => Some(format!(
                        "tcp:{}:{port}",
                        interface.as_deref().unwrap_or("0.0.0.0")
                    )),
                    EndpointConfig::Unix { path } => Some(format!("unix:{}", path.display())),
                };
                if let Some(key) = key
                    && !endpoints.insert(key.clone())
                {
                    err(
                        format!("{at}.endpoint"),
                        format!("{key} is used by another transport"),
                    );
                }
                for (name, auth) in transport_auths(transport) {
                    if let Some(anon) = &auth.anonymous {
                        if anon.kind != "static" {
                            err(
                                format!("{at}.{name}auth.anonymous.type"),
                                format!(
                                    "expected \"static\", got {:?} (dynamic authentication is not supported yet)",
                                    anon.kind
                                ),
                            );
                        }
                        let role = anon.role.as_deref().unwrap_or("anonymous");
                        let known = worker
                            .realms
                            .iter()
                            .any(|r| r.roles.iter().any(|x| x.name == role));
                        if !known {
                            err(
                                format!("{at}.{name}auth.anonymous.role"),
                                format!("role {role:?} is not defined in any realm"),
                            );
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

fn transport_auths(t: &TransportConfig) -> Vec<(String, &AuthConfig)> {
    match t {
        TransportConfig::Universal(u) => {
            let mut v: Vec<(String, &AuthConfig)> = Vec::new();
            if let Some(a) = u.rawsocket.as_ref().and_then(|r| r.auth.as_ref()) {
                v.push(("rawsocket.".into(), a));
            }
            for (path, WebSocketPathConfig::WebSocket(ws)) in &u.websocket {
                if let Some(a) = &ws.auth {
                    v.push((format!("websocket.{path}."), a));
                }
            }
            v
        }
        TransportConfig::WebSocket(ws) => ws.auth.iter().map(|a| (String::new(), a)).collect(),
        TransportConfig::RawSocket(rs) => rs.auth.iter().map(|a| (String::new(), a)).collect(),
    }
}

/// The match policy of a permission: explicit `match`, else Crossbar's legacy rule (a trailing `*`
/// means prefix), else exact.
pub fn effective_match(p: &PermissionConfig) -> UriMatch {
    match p.match_policy {
        Some(m) => m.into(),
        None if p.uri.ends_with('*') || p.uri.is_empty() => UriMatch::Prefix,
        None => UriMatch::Exact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_default_parses_and_validates() {
        let loaded = LoadedConfig::builtin();
        assert!(loaded.config.validate(None).is_ok());
    }

    #[test]
    fn unsupported_worker_type_is_named() {
        let e = parse_json(r#"{"version":2,"workers":[{"type":"container"}]}"#, None).unwrap_err();
        assert!(e.to_string().contains("container"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_position() {
        let e = parse_json(
            r#"{"version":2,"workers":[{"type":"router","components":[]}]}"#,
            None,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("components") && text.contains("line 1"),
            "{text}"
        );
    }

    #[test]
    fn disclosure_is_refused_until_it_is_implemented() {
        let cfg: NodeConfig = serde_json::from_str(
            r#"{"workers":[{"type":"router","realms":[{"name":"r","roles":[{"name":"x","permissions":[
                {"uri":"","match":"prefix","disclose":{"caller":true}}]}]}]}]}"#,
        )
        .expect("parses");
        let errors = cfg.validate(None).unwrap_err().0;
        assert_eq!(
            errors[0].location,
            "workers[0].realms[0].roles[0].permissions[0].disclose"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let cfg: NodeConfig = serde_json::from_str(
            r#"{"version":3,"workers":[{"type":"router","realms":[{"name":"bad realm"},{"name":"r"},{"name":"r"}]}]}"#,
        )
        .expect("parses");
        let errors = cfg.validate(None).unwrap_err().0;
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(errors[1].location, "workers[0].realms[0].name");
    }
}
