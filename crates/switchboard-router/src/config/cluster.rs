//! A router worker's `cluster` section: this node serves its realms together with the other
//! nodes of the same cluster, coordinated through NATS with JetStream (`node::cluster`).

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// The `cluster` section of a router worker. Only `name` and `nats.servers` are required.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The cluster's name: every node of one cluster names the same, and it is a token of every
    /// NATS subject and key-value bucket the cluster uses.
    pub name: String,
    /// This node's id in the cluster: `"auto"` (the default) is the node id kept in the node
    /// directory (`key.priv`, as links use).
    #[serde(default)]
    pub node_id: Option<String>,
    /// How to reach NATS.
    pub nats: NatsConfig,
    /// The realms served across the cluster: a list, or `"all"` (the default; also `"any"`).
    #[serde(default)]
    pub realms: Option<super::LinkRealms>,
    /// `interest` (default: a node receives only the events its subscribers want) or
    /// `broadcast` (every node receives every event of the realm).
    #[serde(default)]
    pub fanout: Option<Fanout>,
    /// Replicas of the key-value buckets (default: as many servers as NATS has, at most 3).
    #[serde(default)]
    pub kv_replicas: Option<usize>,
    /// How often this node says it is alive (default 1000 ms).
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// How long a node that stopped saying so counts as alive (default 5000 ms).
    #[serde(default)]
    pub node_ttl_ms: Option<u64>,
    /// What a node cut off from NATS does (only `fence`, the default: it stops routing across
    /// nodes, its health says 503, and it closes its sessions after `node_ttl_ms`).
    #[serde(default)]
    pub partition_policy: Option<String>,
    /// How session ids are drawn (only `random`, the default: random in [1, 2^53]).
    #[serde(default)]
    pub session_ids: Option<String>,
}

/// How events reach other nodes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fanout {
    /// Only to nodes with a matching subscription.
    #[default]
    Interest,
    /// To every node of the realm.
    Broadcast,
}

/// The NATS servers and how to authenticate to them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://host:port` (or `tls://`, or `host:port`); the client picks one and fails over to
    /// the others, and learns the rest of the NATS cluster from the server.
    pub servers: Vec<String>,
    /// A NATS credentials file (JWT and NKey seed).
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// User and password.
    #[serde(default)]
    pub user: Option<String>,
    /// The user's password.
    #[serde(default)]
    pub password: Option<String>,
    /// A token.
    #[serde(default)]
    pub token: Option<String>,
    /// TLS to the servers.
    #[serde(default)]
    pub tls: Option<NatsTlsConfig>,
}

/// TLS to NATS.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct NatsTlsConfig {
    /// CAs the servers' certificates must chain to (default: the system's roots).
    #[serde(default)]
    pub ca_certificates: Vec<PathBuf>,
    /// A client certificate, for servers that ask for one.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// Its private key.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// The heartbeat interval when not configured.
pub const DEFAULT_HEARTBEAT_MS: u64 = 1000;
/// How long a silent node counts as alive when not configured.
pub const DEFAULT_NODE_TTL_MS: u64 = 5000;

impl ClusterConfig {
    /// The heartbeat interval.
    pub fn heartbeat_ms(&self) -> u64 {
        self.heartbeat_ms.unwrap_or(DEFAULT_HEARTBEAT_MS)
    }

    /// How long a silent node counts as alive.
    pub fn node_ttl_ms(&self) -> u64 {
        self.node_ttl_ms.unwrap_or(DEFAULT_NODE_TTL_MS)
    }

    /// The configured node id, unless it is `auto`.
    pub fn fixed_node_id(&self) -> Option<&str> {
        self.node_id.as_deref().filter(|id| *id != "auto")
    }

    /// Whether `realm` is served across the cluster.
    pub fn covers(&self, realm: &str) -> bool {
        match &self.realms {
            None | Some(super::LinkRealms::Keyword(_)) => true,
            Some(super::LinkRealms::Listed(list)) => list.iter().any(|r| r == realm),
        }
    }

    /// Every problem of the section, at `at` (`workers[0].cluster`); `realms` are the worker's.
    pub fn check(&self, at: &str, realms: &[&str], errors: &mut Vec<ConfigError>) {
        let token_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !token_ok(&self.name) {
            errors.push(ConfigError::at(
                format!("{at}.name"),
                format!(
                    "expected a cluster name of 1 to 64 letters, digits, `_` or `-`, got `{}`",
                    self.name
                ),
            ));
        }
        if let Some(id) = self.fixed_node_id()
            && !token_ok(id)
        {
            errors.push(ConfigError::at(
                format!("{at}.node_id"),
                format!(
                    "expected `auto` or a node id of 1 to 64 letters, digits, `_` or `-`, got `{id}`"
                ),
            ));
        }
        if self.nats.servers.is_empty() {
            errors.push(ConfigError::at(
                format!("{at}.nats.servers"),
                "expected at least one NATS server, such as `nats://127.0.0.1:4222`",
            ));
        }
        for (i, server) in self.nats.servers.iter().enumerate() {
            if let Err(why) = server_address(server) {
                errors.push(ConfigError::at(format!("{at}.nats.servers[{i}]"), why));
            }
        }
        let given = [
            self.nats.credentials.is_some(),
            self.nats.user.is_some() || self.nats.password.is_some(),
            self.nats.token.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            errors.push(ConfigError::at(
                format!("{at}.nats"),
                "expected at most one of `credentials`, `user` with `password`, `token`",
            ));
        }
        if self.nats.user.is_some() != self.nats.password.is_some() {
            errors.push(ConfigError::at(
                format!("{at}.nats"),
                "`user` and `password` go together",
            ));
        }
        if let Some(tls) = &self.nats.tls
            && tls.certificate.is_some() != tls.key.is_some()
        {
            errors.push(ConfigError::at(
                format!("{at}.nats.tls"),
                "`certificate` and `key` go together",
            ));
        }
        match &self.realms {
            None => {}
            Some(super::LinkRealms::Keyword(k)) if k == "all" || k == "any" => {}
            Some(super::LinkRealms::Keyword(k)) => errors.push(ConfigError::at(
                format!("{at}.realms"),
                format!("expected a list of realms or `all`, got `{k}`"),
            )),
            Some(super::LinkRealms::Listed(list)) => {
                for (i, realm) in list.iter().enumerate() {
                    if !realms.contains(&realm.as_str()) {
                        errors.push(ConfigError::at(
                            format!("{at}.realms[{i}]"),
                            format!("realm `{realm}` is not a realm of this router worker"),
                        ));
                    }
                }
            }
        }
        if let Some(n) = self.kv_replicas
            && !(1..=5).contains(&n)
        {
            errors.push(ConfigError::at(
                format!("{at}.kv_replicas"),
                format!("expected 1 to 5 replicas, got {n}"),
            ));
        }
        if self.heartbeat_ms() == 0 {
            errors.push(ConfigError::at(
                format!("{at}.heartbeat_ms"),
                "expected a positive interval",
            ));
        }
        if self.node_ttl_ms() < 2 * self.heartbeat_ms() {
            errors.push(ConfigError::at(
                format!("{at}.node_ttl_ms"),
                format!(
                    "expected at least twice `heartbeat_ms` ({} ms), got {} ms: a node would count as \
                     dead between two heartbeats",
                    2 * self.heartbeat_ms(),
                    self.node_ttl_ms()
                ),
            ));
        }
        match self.partition_policy.as_deref() {
            None | Some("fence") => {}
            Some("serve_local") => errors.push(ConfigError::at(
                format!("{at}.partition_policy"),
                "`serve_local` is not supported yet; `fence` is",
            )),
            Some(other) => errors.push(ConfigError::at(
                format!("{at}.partition_policy"),
                format!("expected `fence`, got `{other}`"),
            )),
        }
        match self.session_ids.as_deref() {
            None | Some("random") => {}
            Some("kv_unique") => errors.push(ConfigError::at(
                format!("{at}.session_ids"),
                "`kv_unique` is not supported yet; `random` is",
            )),
            Some(other) => errors.push(ConfigError::at(
                format!("{at}.session_ids"),
                format!("expected `random`, got `{other}`"),
            )),
        }
    }
}

/// The `host:port` of a configured server, or why it is not one.
pub fn server_address(server: &str) -> Result<String, String> {
    let rest = ["nats://", "tls://"]
        .iter()
        .find_map(|scheme| server.strip_prefix(scheme))
        .unwrap_or(server);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(rest.into()),
        _ => Err(format!(
            "expected a NATS server as `nats://host:port`, `tls://host:port` or `host:port`, got `{server}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ClusterConfig {
        serde_json::from_str(json).unwrap()
    }

    fn problems(c: &ClusterConfig) -> Vec<String> {
        let mut errors = Vec::new();
        c.check("workers[0].cluster", &["realm1"], &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn name_and_servers_are_enough() {
        let c = parse(r#"{"name": "prod", "nats": {"servers": ["nats://127.0.0.1:4222"]}}"#);
        assert!(problems(&c).is_empty(), "{:?}", problems(&c));
        assert_eq!(c.heartbeat_ms(), 1000);
        assert_eq!(c.node_ttl_ms(), 5000);
        assert!(c.covers("anything"));
        assert_eq!(c.fixed_node_id(), None);
    }

    #[test]
    fn each_problem_is_named_at_its_key() {
        let c = parse(
            r#"{"name": "a.b", "node_id": "x y", "nats": {"servers": ["nats://h", "h:1"], "token": "t", "user": "u"},
                "realms": ["realm1", "nope"], "heartbeat_ms": 1000, "node_ttl_ms": 1500,
                "partition_policy": "serve_local", "session_ids": "sequential", "kv_replicas": 7}"#,
        );
        let p = problems(&c).join("\n");
        for expected in [
            "workers[0].cluster.name",
            "workers[0].cluster.node_id",
            "workers[0].cluster.nats.servers[0]",
            "at most one of `credentials`",
            "`user` and `password` go together",
            "workers[0].cluster.realms[1]: realm `nope`",
            "workers[0].cluster.node_ttl_ms",
            "`serve_local` is not supported yet",
            "expected `random`, got `sequential`",
            "expected 1 to 5 replicas, got 7",
        ] {
            assert!(p.contains(expected), "{expected:?} missing from:\n{p}");
        }
        assert!(!p.contains("servers[1]"), "{p}");
    }
}
