//! Router-to-router links, in both config forms: Crossbar's `rlinks` of a realm and the seed's
//! `links` of a router worker, with Switchboard's optional keys (`mode`, `auth`, `topics`,
//! `procedures`, `reconnect`, `ping`, `on_slow`). [`LinkConfig::all`] maps both onto one
//! [`LinkConfig`], which the node runs.

use std::path::PathBuf;

use serde::Deserialize;

use super::{
    ClientTransportConfig, ClientTransportKind, MatchPolicy, NodeConfig, RouterWorkerConfig,
    SerializerName,
};

/// Crossbar's `rlinks` entry of a realm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RLinkConfig {
    /// The link's id (default: `rlink001`, ... by position).
    #[serde(default)]
    pub id: Option<String>,
    /// The realm joined on the other router (default: this realm's name).
    #[serde(default)]
    pub realm: Option<String>,
    /// How to reach the other router (Crossbar's connecting transport).
    pub transport: ClientTransportConfig,
    /// The authid the link asks for on the other router.
    #[serde(default)]
    pub authid: Option<String>,
    /// Sessions with these authids do not receive events the link brings in.
    #[serde(default)]
    pub exclude_authid: Vec<String>,
    /// Our subscriptions are subscribed on the other router; its events come here.
    #[serde(default)]
    pub forward_local_events: Option<bool>,
    /// Its subscriptions are subscribed here; our events go there.
    #[serde(default)]
    pub forward_remote_events: Option<bool>,
    /// Our registrations are registered there; its callers reach our callees.
    #[serde(default)]
    pub forward_local_invocations: Option<bool>,
    /// Its registrations are registered here; our callers reach its callees.
    #[serde(default)]
    pub forward_remote_invocations: Option<bool>,
    /// Switchboard's additions.
    #[serde(flatten)]
    pub extra: LinkExtras,
}

/// The seed's `links` entry of a router worker: one link carrying the listed realms (or every
/// realm of this router) in all four directions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedLinkConfig {
    /// The link's id (default: `link001`, ... by position).
    #[serde(default)]
    pub id: Option<String>,
    /// `websocket` or `rawsocket`.
    #[serde(rename = "type")]
    pub kind: ClientTransportKind,
    /// `tcp:host:port` or `unix:/path` (relative paths against the node directory).
    pub endpoint: String,
    /// The realms it carries: a list, or `"any"` (also `"all"`) for every realm of this router.
    pub realms: LinkRealms,
    /// Client TLS: the client certificate and key, and the CA the other router's certificate is
    /// checked against.
    #[serde(default)]
    pub tls: Option<LinkTlsConfig>,
    /// The WebSocket path (default `/ws`).
    #[serde(default)]
    pub path: Option<String>,
    /// The serializer (default `cbor` for RawSocket, JSON for WebSocket).
    #[serde(default)]
    pub serializer: Option<SerializerName>,
    /// The authid the link asks for on the other router.
    #[serde(default)]
    pub authid: Option<String>,
    /// Switchboard's additions.
    #[serde(flatten)]
    pub extra: LinkExtras,
}

/// The realms of a seed link.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum LinkRealms {
    /// Named realms.
    Listed(Vec<String>),
    /// `"any"` or `"all"`.
    Keyword(String),
}

/// A link's client TLS, in the seed's keys (Crossbar's names accepted too).
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkTlsConfig {
    /// The client's private key.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// The client certificate (`certificate` in Crossbar's form).
    #[serde(default, alias = "certificate")]
    pub cert: Option<PathBuf>,
    /// The CA the other router's certificate must chain to (`ca_certificates` in Crossbar's form;
    /// default: the system's roots).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Crossbar's list of CA files.
    #[serde(default)]
    pub ca_certificates: Vec<PathBuf>,
    /// The name the other router's certificate must carry (default: the host connected to).
    #[serde(default)]
    pub hostname: Option<String>,
}

/// Switchboard's optional link keys, the same in both forms.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct LinkExtras {
    /// `mesh` (default) or `tree`.
    #[serde(default)]
    pub mode: Option<LinkMode>,
    /// How the link authenticates to the other router.
    #[serde(default)]
    pub auth: Option<LinkAuthConfig>,
    /// Which topics may cross (default: every topic but `wamp.*`).
    #[serde(default)]
    pub topics: Option<Vec<LinkFilterEntry>>,
    /// Which procedures may cross (default: every procedure but `wamp.*`).
    #[serde(default)]
    pub procedures: Option<Vec<LinkFilterEntry>>,
    /// Reconnect backoff.
    #[serde(default)]
    pub reconnect: Option<ReconnectConfig>,
    /// Liveness check of the other router.
    #[serde(default)]
    pub ping: Option<PingConfig>,
    /// What to do when the other router does not keep up with our events.
    #[serde(default)]
    pub on_slow: Option<OnSlow>,
}

/// How a link routes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// Only this router's own clients' interest and traffic cross; a full mesh of links makes
    /// every router one hop from every other.
    #[default]
    Mesh,
    /// Interest and traffic learned from other links cross too (split horizon), for chains and
    /// trees of routers; a message never goes back to a router it has been through.
    Tree,
}

impl LinkMode {
    /// The mode's config name.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMode::Mesh => "mesh",
            LinkMode::Tree => "tree",
        }
    }
}

/// `auth` of a link: exactly one method.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkAuthConfig {
    /// WAMP-Ticket with this ticket.
    #[serde(default)]
    pub ticket: Option<String>,
    /// WAMP-CRA with this secret.
    #[serde(default)]
    pub wampcra: Option<LinkSecret>,
    /// WAMP-Cryptosign with a key file (default: the node's key).
    #[serde(default)]
    pub cryptosign: Option<LinkCryptosign>,
    /// The TLS client certificate (`tls` in the link's transport).
    #[serde(default)]
    pub tls: Option<serde_json::Value>,
}

/// `{"secret": ...}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkSecret {
    /// The shared secret.
    pub secret: String,
}

/// `{"key": "file"}`: an Ed25519 private key, as 64 hex digits or in Crossbar's `key.priv`
/// format; without `key`, the node's own key.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkCryptosign {
    /// The key file, relative to the node directory.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// One `topics` or `procedures` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkFilterEntry {
    /// The URI pattern.
    pub uri: String,
    /// How it matches (default exact).
    #[serde(rename = "match", default)]
    pub match_policy: Option<MatchPolicy>,
    /// Which way (default both): `out` lets our interest be mirrored on the other router (so
    /// its traffic comes here), `in` lets its interest be mirrored here.
    #[serde(default)]
    pub direction: Option<LinkDirection>,
}

/// The direction of a filter entry.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum LinkDirection {
    In,
    Out,
    Both,
}

/// `reconnect`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReconnectConfig {
    /// First delay, in ms (default 1000).
    #[serde(default)]
    pub initial_ms: Option<u64>,
    /// Longest delay, in ms (default 60000).
    #[serde(default)]
    pub max_ms: Option<u64>,
    /// Growth per failed try (default 1.5).
    #[serde(default)]
    pub growth: Option<f64>,
    /// `full` (default: a random delay up to the computed one) or `none`.
    #[serde(default)]
    pub jitter: Option<Jitter>,
    /// Tries before giving up (default: never give up).
    #[serde(default)]
    pub max_retries: Option<u32>,
}

/// Reconnect jitter.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Jitter {
    Full,
    None,
}

/// `ping`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PingConfig {
    /// Seconds between checks (default 10; 0 turns them off).
    #[serde(default)]
    pub interval: Option<f64>,
    /// Seconds an answer may take before the link counts as lost (default 5).
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// `on_slow`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnSlow {
    /// Drop the oldest events waiting for the other router, and count them.
    #[default]
    DropEvents,
    /// Close the link (it reconnects and resyncs).
    Disconnect,
}

/// Where a link connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEndpoint {
    /// A TCP host and port.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix socket path, as configured (relative to the node directory).
    Unix(PathBuf),
}

/// Which realms a link carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRealmSet {
    /// Every realm of this router; on the other router, the realm of the same name.
    Any,
    /// These realms: (local realm, realm on the other router).
    Listed(Vec<(String, String)>),
}

/// Which way the four kinds of traffic cross (Crossbar's four flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkForwarding {
    /// Our subscriptions are subscribed there; its events come here.
    pub local_events: bool,
    /// Its subscriptions are subscribed here; our events go there.
    pub remote_events: bool,
    /// Our registrations are registered there; its callers reach our callees.
    pub local_invocations: bool,
    /// Its registrations are registered here; our callers reach its callees.
    pub remote_invocations: bool,
}

/// One link, whichever form configured it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Its id.
    pub id: String,
    /// Where in the config it is (`workers[0].links[1]`, `workers[0].realms[0].rlinks[0]`).
    pub place: String,
    /// `websocket` or `rawsocket`.
    pub kind: ClientTransportKind,
    /// Where it connects.
    pub endpoint: LinkEndpoint,
    /// The WebSocket path.
    pub path: String,
    /// The serializer.
    pub serializer: SerializerName,
    /// Client TLS, if the link uses TLS.
    pub tls: Option<LinkTlsConfig>,
    /// Realms carried.
    pub realms: LinkRealmSet,
    /// The authid asked for.
    pub authid: Option<String>,
    /// Authids that do not receive events the link brings in.
    pub exclude_authid: Vec<String>,
    /// What crosses.
    pub forwarding: LinkForwarding,
    /// Switchboard's additions.
    pub extra: LinkExtras,
}

impl LinkConfig {
    /// Every link of the config, in both forms, in order: each router worker's `links`, then the
    /// `rlinks` of its realms. Endpoints or URLs that do not parse are left to validation
    /// ([`LinkConfig::endpoint_of`] says what is wrong) and skipped here.
    pub fn all(config: &NodeConfig) -> Vec<LinkConfig> {
        let mut out = Vec::new();
        for (w, worker) in config.router_workers() {
            out.extend(Self::of_worker(w, worker));
        }
        out
    }

    fn of_worker(w: usize, worker: &RouterWorkerConfig) -> Vec<LinkConfig> {
        let mut out = Vec::new();
        for (i, link) in worker.links.iter().enumerate() {
            let Ok(endpoint) = parse_endpoint(&link.endpoint) else {
                continue;
            };
            let Ok(realms) = seed_realms(&link.realms) else {
                continue;
            };
            let serializer = link.serializer.unwrap_or(match link.kind {
                ClientTransportKind::Rawsocket => SerializerName::Cbor,
                ClientTransportKind::Websocket => SerializerName::Json,
            });
            out.push(LinkConfig {
                id: link
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("link{:03}", i + 1)),
                place: format!("workers[{w}].links[{i}]"),
                kind: link.kind,
                endpoint,
                path: link.path.clone().unwrap_or_else(|| "/ws".into()),
                serializer,
                tls: link.tls.clone(),
                realms,
                authid: link.authid.clone(),
                exclude_authid: Vec::new(),
                forwarding: LinkForwarding {
                    local_events: true,
                    remote_events: true,
                    local_invocations: true,
                    remote_invocations: true,
                },
                extra: link.extra.clone(),
            });
        }
        let mut n = 0;
        for (r, realm) in worker.realms.iter().enumerate() {
            for (i, link) in realm.rlinks.iter().enumerate() {
                n += 1;
                let Ok((endpoint, path, tls)) = Self::endpoint_of(&link.transport) else {
                    continue;
                };
                let t = &link.transport;
                let serializer = t
                    .serializer
                    .or_else(|| t.serializers.as_ref().and_then(|s| s.first().copied()))
                    .unwrap_or(match t.kind {
                        ClientTransportKind::Rawsocket => SerializerName::Cbor,
                        ClientTransportKind::Websocket => SerializerName::Json,
                    });
                let remote = link.realm.clone().unwrap_or_else(|| realm.name.clone());
                out.push(LinkConfig {
                    id: link.id.clone().unwrap_or_else(|| format!("rlink{n:03}")),
                    place: format!("workers[{w}].realms[{r}].rlinks[{i}]"),
                    kind: t.kind,
                    endpoint,
                    path,
                    serializer,
                    tls,
                    realms: LinkRealmSet::Listed(vec![(realm.name.clone(), remote)]),
                    authid: link.authid.clone(),
                    exclude_authid: link.exclude_authid.clone(),
                    // Crossbar's defaults: all four true.
                    forwarding: LinkForwarding {
                        local_events: link.forward_local_events.unwrap_or(true),
                        remote_events: link.forward_remote_events.unwrap_or(true),
                        local_invocations: link.forward_local_invocations.unwrap_or(true),
                        remote_invocations: link.forward_remote_invocations.unwrap_or(true),
                    },
                    extra: link.extra.clone(),
                });
            }
        }
        out
    }

    /// Where Crossbar's connecting transport leads: endpoint, WebSocket path (from `url`) and
    /// TLS, or what is wrong with it.
    pub fn endpoint_of(
        t: &ClientTransportConfig,
    ) -> Result<(LinkEndpoint, String, Option<LinkTlsConfig>), String> {
        let e = &t.endpoint;
        let endpoint = match e.kind.as_str() {
            "tcp" => LinkEndpoint::Tcp {
                host: e.host.clone().ok_or("a tcp endpoint needs `host`")?,
                port: e.port.ok_or("a tcp endpoint needs `port`")?,
            },
            "unix" => {
                LinkEndpoint::Unix(e.path.clone().ok_or("a unix endpoint needs `path`")?.into())
            }
            other => return Err(format!("endpoint type {other:?}: expected tcp or unix")),
        };
        let path = match &t.url {
            None => "/ws".to_owned(),
            Some(url) => {
                let rest = url
                    .strip_prefix("ws://")
                    .or_else(|| url.strip_prefix("wss://"))
                    .ok_or_else(|| format!("url {url:?}: expected ws:// or wss://"))?;
                match rest.find('/') {
                    Some(i) => rest[i..].to_owned(),
                    None => "/".to_owned(),
                }
            }
        };
        let tls = match &e.tls {
            None => None,
            Some(v) => Some(
                serde_json::from_value::<LinkTlsConfig>(v.clone())
                    .map_err(|err| format!("endpoint.tls: {err}"))?,
            ),
        };
        Ok((endpoint, path, tls))
    }

    /// The four directions where one of them crosses, for the log.
    pub fn describe(&self) -> String {
        let f = self.forwarding;
        let flags = [
            (f.local_events, "local events"),
            (f.remote_events, "remote events"),
            (f.local_invocations, "local invocations"),
            (f.remote_invocations, "remote invocations"),
        ];
        flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Parses a seed endpoint: `tcp:host:port` or `unix:/path`.
pub fn parse_endpoint(text: &str) -> Result<LinkEndpoint, String> {
    if let Some(rest) = text.strip_prefix("tcp:") {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("endpoint {text:?}: expected tcp:host:port"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("endpoint {text:?}: the port must be a number from 1 to 65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(format!("endpoint {text:?}: expected tcp:host:port"));
        }
        return Ok(LinkEndpoint::Tcp {
            host: host.to_owned(),
            port,
        });
    }
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(format!("endpoint {text:?}: expected unix:/path"));
        }
        return Ok(LinkEndpoint::Unix(path.into()));
    }
    Err(format!(
        "endpoint {text:?}: expected tcp:host:port or unix:/path"
    ))
}

/// The realms of a seed link.
pub fn seed_realms(realms: &LinkRealms) -> Result<LinkRealmSet, String> {
    match realms {
        LinkRealms::Keyword(k) if k == "any" || k == "all" => Ok(LinkRealmSet::Any),
        LinkRealms::Keyword(k) => Err(format!(
            "realms {k:?}: expected a list of realm names, or \"any\""
        )),
        LinkRealms::Listed(list) => Ok(LinkRealmSet::Listed(
            list.iter().map(|r| (r.clone(), r.clone())).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_endpoints_parse_and_errors_say_what_was_expected() {
        assert_eq!(
            parse_endpoint("tcp:somehost.net:8080"),
            Ok(LinkEndpoint::Tcp {
                host: "somehost.net".into(),
                port: 8080
            })
        );
        assert_eq!(
            parse_endpoint("unix:/tmp/myrouter1"),
            Ok(LinkEndpoint::Unix("/tmp/myrouter1".into()))
        );
        assert!(
            parse_endpoint("tcp:host")
                .unwrap_err()
                .contains("tcp:host:port")
        );
        assert!(parse_endpoint("udp:x:1").unwrap_err().contains("expected"));
        assert!(parse_endpoint("tcp:h:99999").unwrap_err().contains("port"));
    }

    #[test]
    fn both_forms_map_to_one_link_type_with_crossbars_defaults() {
        let cfg: NodeConfig = serde_json::from_str(
            r#"{"version": 2, "workers": [{"type": "router",
              "realms": [{"name": "realm1", "roles": [],
                "rlinks": [{"id": "to-core", "realm": "core1", "authid": "edge",
                  "forward_remote_events": false,
                  "transport": {"type": "rawsocket", "serializer": "cbor",
                    "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": 9000}}}]}],
              "links": [{"type": "websocket", "endpoint": "unix:/tmp/r1",
                "realms": "any", "mode": "tree", "auth": {"ticket": "s3cret"}}]}]}"#,
        )
        .expect("config");
        let links = LinkConfig::all(&cfg);
        assert_eq!(links.len(), 2);
        let seed = &links[0];
        assert_eq!(seed.id, "link001");
        assert_eq!(seed.realms, LinkRealmSet::Any);
        assert_eq!(seed.extra.mode, Some(LinkMode::Tree));
        assert_eq!(seed.path, "/ws");
        let rlink = &links[1];
        assert_eq!(rlink.id, "to-core");
        assert_eq!(
            rlink.realms,
            LinkRealmSet::Listed(vec![("realm1".into(), "core1".into())])
        );
        assert!(rlink.forwarding.local_events && !rlink.forwarding.remote_events);
        assert!(rlink.forwarding.local_invocations && rlink.forwarding.remote_invocations);
        assert_eq!(rlink.serializer, SerializerName::Cbor);
    }
}
