//! The node configuration: Crossbar.io's node config format (version 2), as typed serde structs.
//!
//! The types mirror the file. Every struct rejects unknown fields, so a key we do not support yet is
//! an error that names it instead of being silently ignored; `type`-tagged sections (workers,
//! transports, endpoints, web paths) are dispatched by `tagged!` so that errors inside them keep
//! their full path. `load` reads JSON with comments or YAML and attaches file, line and column to
//! every error; `validate` checks what the types cannot see (cross-references, clashing
//! endpoints, files that must exist) and reports every problem at once. `switchboard check` and
//! `switchboard start` run exactly the same code: [`LoadedConfig::from_dir`].

#[macro_use]
mod load;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use switchboard_proto::{Serializer, UriMatch};

pub use load::{ConfigError, ConfigErrors, LoadedConfig};

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

/// The configuration `switchboard init` writes: the built-in default plus the node's `web/` folder
/// served at `/` (with listings) and a node info page at `/info`, as Crossbar's `init` template does.
pub fn init_config_json() -> String {
    let mut config: serde_json::Value =
        serde_json::from_str(DEFAULT_CONFIG_JSON).expect("the built-in default config is JSON");
    let web = serde_json::json!({
        "paths": {
            "/": {"type": "static", "directory": "web", "options": {"enable_directory_listing": true}},
            "info": {"type": "nodeinfo"}
        }
    });
    if let Some(transport) = config.pointer_mut("/workers/0/transports/0") {
        transport["web"] = web;
    }
    // Serializing a JSON value cannot fail.
    serde_json::to_string_pretty(&config).unwrap_or_default() + "\n"
}

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
    /// Controller options.
    #[serde(default)]
    pub options: Option<TitleOptions>,
}

/// Options that only carry a title (controller and worker `options`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TitleOptions {
    /// A title shown in logs.
    #[serde(default)]
    pub title: Option<String>,
}

/// A worker.
#[derive(Debug, Clone)]
pub enum WorkerConfig {
    /// A router worker.
    Router(RouterWorkerConfig),
}

tagged!(WorkerConfig, "worker", {
    "router" => Router(RouterWorkerConfig),
});

/// A router worker: realms and the transports clients reach them through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterWorkerConfig {
    /// Worker id.
    #[serde(default)]
    pub id: Option<String>,
    /// Worker options.
    #[serde(default)]
    pub options: Option<TitleOptions>,
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
    /// The realm's event store (event history).
    #[serde(default)]
    pub store: Option<StoreConfig>,
}

/// A realm's `store`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Only `memory` so far.
    #[serde(rename = "type")]
    pub kind: StoreKind,
    /// Topics whose events are kept for `wamp.subscription.get_events`.
    #[serde(rename = "event-history", default)]
    pub event_history: Vec<EventHistoryConfig>,
}

/// Kinds of event store.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Kept in memory; gone when the router stops.
    Memory,
}

/// One `event-history` entry: events on topics matching `uri`, the last `limit` of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHistoryConfig {
    /// Topic pattern.
    pub uri: String,
    /// How `uri` matches (exact by default).
    #[serde(rename = "match", default)]
    pub match_policy: Option<MatchPolicy>,
    /// How many events are kept.
    pub limit: usize,
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
    /// A procedure that decides every action of the role (a dynamic authorizer) instead of
    /// `permissions`.
    #[serde(default)]
    pub authorizer: Option<String>,
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
    /// Whether the decision may be cached (static permissions always are).
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

/// Identity disclosure settings of a permission: whether receivers learn who called or published.
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
#[derive(Debug, Clone)]
pub enum TransportConfig {
    /// WebSocket and RawSocket (and Web) on one endpoint.
    Universal(UniversalTransportConfig),
    /// WebSocket only.
    WebSocket(WebSocketTransportConfig),
    /// RawSocket only.
    RawSocket(RawSocketTransportConfig),
    /// Web resources (static files, redirects) and WebSocket endpoints on URL paths.
    Web(WebTransportConfig),
}

tagged!(TransportConfig, "transport", {
    "universal" => Universal(UniversalTransportConfig),
    "websocket" => WebSocket(WebSocketTransportConfig),
    "rawsocket" => RawSocket(RawSocketTransportConfig),
    "web" => Web(WebTransportConfig),
});

impl TransportConfig {
    /// Where the transport listens.
    pub fn endpoint(&self) -> &EndpointConfig {
        match self {
            TransportConfig::Universal(t) => &t.endpoint,
            TransportConfig::WebSocket(t) => &t.endpoint,
            TransportConfig::RawSocket(t) => &t.endpoint,
            TransportConfig::Web(t) => &t.endpoint,
        }
    }

    /// The transport's `auth_rate_limit`.
    pub fn auth_rate_limit(&self) -> Option<AuthRateLimitConfig> {
        match self {
            TransportConfig::Universal(t) => t.auth_rate_limit,
            TransportConfig::WebSocket(t) => t.auth_rate_limit,
            TransportConfig::RawSocket(t) => t.auth_rate_limit,
            TransportConfig::Web(t) => t.auth_rate_limit,
        }
    }
}

/// A `universal` transport: RawSocket is told from HTTP by its first octet; HTTP requests go to
/// the WebSocket endpoints of `websocket` or the resources of `web`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniversalTransportConfig {
    /// Transport id.
    #[serde(default)]
    pub id: Option<String>,
    /// Where to listen.
    pub endpoint: EndpointConfig,
    /// Limits failed authentications per client address.
    #[serde(default)]
    pub auth_rate_limit: Option<AuthRateLimitConfig>,
    /// RawSocket settings; absent means RawSocket is not served.
    #[serde(default)]
    pub rawsocket: Option<RawSocketOptions>,
    /// WebSocket endpoints by URL path (`"ws"` is `/ws`).
    #[serde(default)]
    pub websocket: BTreeMap<String, WebSocketPathConfig>,
    /// Web resources.
    #[serde(default)]
    pub web: Option<WebConfig>,
}

/// A WebSocket endpoint on a path of a universal transport.
#[derive(Debug, Clone)]
pub enum WebSocketPathConfig {
    /// A WAMP WebSocket endpoint.
    WebSocket(WebSocketOptions),
}

tagged!(WebSocketPathConfig, "websocket path", {
    "websocket" => WebSocket(WebSocketOptions),
});

/// A `websocket` transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketTransportConfig {
    /// Transport id.
    #[serde(default)]
    pub id: Option<String>,
    /// Where to listen.
    pub endpoint: EndpointConfig,
    /// Limits failed authentications per client address.
    #[serde(default)]
    pub auth_rate_limit: Option<AuthRateLimitConfig>,
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
    /// Cookie tracking.
    #[serde(default)]
    pub cookie: Option<CookieConfig>,
}

impl WebSocketTransportConfig {
    /// The WebSocket settings, as for a path of a universal or web transport.
    pub fn websocket(&self) -> WebSocketOptions {
        WebSocketOptions {
            url: self.url.clone(),
            serializers: self.serializers.clone(),
            options: self.options.clone(),
            auth: self.auth.clone(),
            cookie: self.cookie.clone(),
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
    /// Limits failed authentications per client address.
    #[serde(default)]
    pub auth_rate_limit: Option<AuthRateLimitConfig>,
    /// Serializers offered; all three when absent.
    #[serde(default)]
    pub serializers: Option<Vec<SerializerName>>,
    /// Largest accepted message, in bytes.
    #[serde(default)]
    pub max_message_size: Option<usize>,
    /// Protocol options (`max_message_size`).
    #[serde(default)]
    pub options: RawSocketProtocolOptions,
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
            options: self.options.clone(),
            auth: self.auth.clone(),
        }
    }
}

/// A `web` transport: resources on URL paths.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebTransportConfig {
    /// Transport id.
    #[serde(default)]
    pub id: Option<String>,
    /// Where to listen.
    pub endpoint: EndpointConfig,
    /// Limits failed authentications per client address.
    #[serde(default)]
    pub auth_rate_limit: Option<AuthRateLimitConfig>,
    /// Resources by path segment; `"/"` is the root.
    pub paths: BTreeMap<String, WebPathConfig>,
}

/// The `web` section of a universal transport.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Resources by path segment; `"/"` is the root.
    pub paths: BTreeMap<String, WebPathConfig>,
}

/// A resource on a path of a web transport.
#[derive(Debug, Clone)]
// Read once at start; boxing the WebSocket variant would buy nothing but indirection.
#[allow(clippy::large_enum_variant)]
pub enum WebPathConfig {
    /// Static files from a directory.
    Static(StaticPathConfig),
    /// A WAMP WebSocket endpoint.
    WebSocket(WebSocketOptions),
    /// An HTTP redirect.
    Redirect(RedirectPathConfig),
    /// A page describing the node.
    NodeInfo(NodeInfoPathConfig),
}

tagged!(WebPathConfig, "web path", {
    "static" => Static(StaticPathConfig),
    "websocket" => WebSocket(WebSocketOptions),
    "redirect" => Redirect(RedirectPathConfig),
    "nodeinfo" => NodeInfo(NodeInfoPathConfig),
});

/// `{"type": "static"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPathConfig {
    /// The directory served; relative to the config file's directory.
    pub directory: PathBuf,
    /// Options.
    #[serde(default)]
    pub options: StaticOptions,
}

/// Options of a static path.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StaticOptions {
    /// Serve an HTML listing for directories without index.html.
    #[serde(default)]
    pub enable_directory_listing: bool,
    /// `Cache-Control: max-age` in seconds.
    #[serde(default)]
    pub cache_timeout: Option<u64>,
    /// Extra MIME types by file extension (`{".wasm": "application/wasm"}`).
    #[serde(default)]
    pub mime_types: BTreeMap<String, String>,
}

/// `{"type": "redirect"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectPathConfig {
    /// Where to send the client.
    pub url: String,
}

/// `{"type": "nodeinfo"}`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NodeInfoPathConfig {}

/// Settings of a WebSocket endpoint.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebSocketOptions {
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
    /// Cookie tracking.
    #[serde(default)]
    pub cookie: Option<CookieConfig>,
}

/// WebSocket protocol options (Crossbar's names; times in milliseconds).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebSocketProtocolOptions {
    /// Largest accepted message, in bytes.
    #[serde(default)]
    pub max_message_size: Option<usize>,
    /// permessage-deflate; accepted when the client offers it unless `compression` is present
    /// without `deflate`.
    #[serde(default)]
    pub compression: Option<CompressionConfig>,
    /// Milliseconds allowed for the opening handshake (the seed's `opening_timeout`).
    #[serde(default)]
    pub open_handshake_timeout: Option<u64>,
    /// Milliseconds between router-sent pings; 0 or absent disables them.
    #[serde(default)]
    pub auto_ping_interval: Option<u64>,
    /// Milliseconds to wait for the pong before dropping the connection.
    #[serde(default)]
    pub auto_ping_timeout: Option<u64>,
    /// Bytes of payload in each ping (4 to 125).
    #[serde(default)]
    pub auto_ping_size: Option<usize>,
    /// Whether the seed's `enable_compression` is on: an alias of `compression.deflate`.
    #[serde(default)]
    pub enable_compression: Option<bool>,
    /// Largest accepted frame, in bytes (a message may span several frames).
    #[serde(default)]
    pub max_frame_size: Option<usize>,
    /// Split outgoing messages into frames of at most this many bytes.
    #[serde(default)]
    pub auto_fragment_size: Option<usize>,
    /// Browser origins allowed to open the WebSocket (`*` wildcards); all when absent.
    #[serde(default)]
    pub allowed_origins: Option<Vec<String>>,
    /// Whether the origin `null` (file:// pages, sandboxed frames) is allowed.
    #[serde(default)]
    pub allow_null_origin: Option<bool>,
    /// Whether a plain HTTP GET on the WebSocket path gets a status page (default) or 404.
    #[serde(default)]
    pub enable_webstatus: Option<bool>,
    /// Drop the TCP connection instead of a closing handshake on failures: accepted; Switchboard
    /// always attempts the closing handshake, bounded by `close_handshake_timeout`.
    #[serde(default)]
    pub fail_by_drop: Option<bool>,
    /// Milliseconds allowed for a session's last words and the closing handshake.
    #[serde(default)]
    pub close_handshake_timeout: Option<u64>,
}

impl WebSocketProtocolOptions {
    /// Whether permessage-deflate is accepted.
    pub fn compression_enabled(&self) -> bool {
        match (&self.compression, self.enable_compression) {
            (_, Some(false)) => false,
            (Some(c), _) => c.deflate.is_some(),
            (None, _) => true,
        }
    }
}

/// `compression` section.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    /// permessage-deflate; present means enabled.
    #[serde(default)]
    pub deflate: Option<DeflateConfig>,
}

/// permessage-deflate parameters (RFC 7692), Crossbar's names.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeflateConfig {
    /// Ask the client not to keep its compression context between messages.
    #[serde(default)]
    pub request_no_context_takeover: bool,
    /// The window the client should compress with (9..15).
    #[serde(default)]
    pub request_max_window_bits: Option<u8>,
    /// Do not keep our compression context between messages.
    #[serde(default)]
    pub no_context_takeover: bool,
    /// Our compression window (9..15).
    #[serde(default)]
    pub max_window_bits: Option<u8>,
    /// zlib memory level (1..9); accepted for compatibility, zlib's default is used.
    #[serde(default)]
    pub memory_level: Option<u8>,
}

/// Settings of a RawSocket endpoint.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSocketOptions {
    /// Serializers offered; all three when absent.
    #[serde(default)]
    pub serializers: Option<Vec<SerializerName>>,
    /// Largest accepted message, in bytes (rounded down to a power of two by the handshake); the
    /// form Crossbar's documentation shows.
    #[serde(default)]
    pub max_message_size: Option<usize>,
    /// Protocol options; `options.max_message_size` is the form Crossbar itself reads.
    #[serde(default)]
    pub options: RawSocketProtocolOptions,
    /// Authentication methods.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

impl RawSocketOptions {
    /// The message size limit, from either place Crossbar users put it.
    pub fn max_message_bytes(&self) -> Option<usize> {
        self.max_message_size.or(self.options.max_message_size)
    }
}

/// RawSocket `options`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSocketProtocolOptions {
    /// Largest accepted message, in bytes.
    #[serde(default)]
    pub max_message_size: Option<usize>,
}

/// Authentication methods of a WebSocket or RawSocket endpoint, as Crossbar's `auth`. Without an
/// `auth` section an endpoint admits anonymous sessions with role `anonymous`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Anonymous authentication.
    #[serde(default)]
    pub anonymous: Option<AnonymousAuthConfig>,
    /// Ticket (a shared secret or a JWT sent in the clear, over TLS).
    #[serde(default)]
    pub ticket: Option<TicketAuthConfig>,
    /// WAMP-CRA challenge-response.
    #[serde(default)]
    pub wampcra: Option<MethodAuthConfig<WampCraPrincipal>>,
    /// WAMP-SCRAM.
    #[serde(default)]
    pub scram: Option<MethodAuthConfig<ScramPrincipal>>,
    /// WAMP-Cryptosign (Ed25519 keys).
    #[serde(default)]
    pub cryptosign: Option<MethodAuthConfig<CryptosignPrincipal>>,
    /// TLS client certificates.
    #[serde(default)]
    pub tls: Option<MethodAuthConfig<TlsPrincipal>>,
    /// Cookies of earlier authenticated WebSocket connections (the endpoint's `cookie` section says
    /// how cookies are kept).
    #[serde(default)]
    pub cookie: Option<CookieAuthConfig>,
}

/// `auth.anonymous`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousAuthConfig {
    /// Only `static` is supported.
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// The role anonymous sessions get.
    #[serde(default)]
    pub role: Option<String>,
}

/// How principals are found.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// In the config (`principals`, or `users` as Crossbar's WAMP-CRA section calls them).
    Static,
    /// By calling an `authenticator` procedure.
    Dynamic,
    /// The ticket is a JWT of an identity provider (ticket only).
    Jwt,
}

impl AuthKind {
    /// The name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Static => "static",
            AuthKind::Dynamic => "dynamic",
            AuthKind::Jwt => "jwt",
        }
    }
}

/// A method's section: static principals by authid, or a dynamic authenticator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
pub struct MethodAuthConfig<P> {
    /// `static` or `dynamic`.
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// Principals by authid.
    #[serde(default, alias = "users")]
    pub principals: BTreeMap<String, P>,
    /// The procedure a dynamic method calls.
    #[serde(default)]
    pub authenticator: Option<String>,
    /// The realm the authenticator is registered on; the realm the client joins when absent.
    #[serde(rename = "authenticator-realm", default)]
    pub authenticator_realm: Option<String>,
}

/// `auth.ticket`: static principals, a dynamic authenticator, or JWTs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketAuthConfig {
    /// `static`, `dynamic` or `jwt`.
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// Principals by authid (`static`).
    #[serde(default, alias = "users")]
    pub principals: BTreeMap<String, TicketPrincipal>,
    /// The procedure a dynamic method calls.
    #[serde(default)]
    pub authenticator: Option<String>,
    /// The realm the authenticator is registered on; the realm the client joins when absent.
    #[serde(rename = "authenticator-realm", default)]
    pub authenticator_realm: Option<String>,
    /// The identity provider's public keys, a JWKS file (`jwt`); relative to the node directory.
    #[serde(default)]
    pub jwks: Option<PathBuf>,
    /// The required `iss` claim (`jwt`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// The required `aud` claim (`jwt`).
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim that becomes the authid (`jwt`; default `sub`).
    #[serde(default)]
    pub authid_claim: Option<String>,
    /// The claim whose value is the role (`jwt`; default `role`).
    #[serde(default)]
    pub role_claim: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf` (`jwt`; default 0).
    #[serde(default)]
    pub leeway: Option<u64>,
}

/// A ticket principal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketPrincipal {
    /// The ticket.
    pub ticket: String,
    /// The role it grants.
    pub role: String,
    /// The realm the principal joins, whatever HELLO asked for (as Crossbar); HELLO's when absent.
    #[serde(default)]
    pub realm: Option<String>,
}

/// A WAMP-CRA principal; salted when `salt` is given (then `iterations` and `keylen` too).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WampCraPrincipal {
    /// The secret (for a salted principal, the password the key is derived from).
    pub secret: String,
    /// The role it grants.
    pub role: String,
    /// PBKDF2 salt.
    #[serde(default)]
    pub salt: Option<String>,
    /// PBKDF2 iterations (default 1000, as Autobahn's).
    #[serde(default)]
    pub iterations: Option<u32>,
    /// Derived key length (default 32, as Autobahn's).
    #[serde(default)]
    pub keylen: Option<usize>,
    /// The realm the principal joins, whatever HELLO asked for (as Crossbar); HELLO's when absent.
    #[serde(default)]
    pub realm: Option<String>,
}

/// A WAMP-SCRAM principal: the stored credential, never the password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScramPrincipal {
    /// `argon2id-13` or `pbkdf2`.
    pub kdf: String,
    /// KDF iterations (Argon2id time cost).
    pub iterations: u32,
    /// Argon2id memory cost in KiB (`argon2id-13` only).
    #[serde(default)]
    pub memory: Option<u32>,
    /// The salt, hex (sent to the client in base64, as Crossbar does).
    pub salt: String,
    /// StoredKey, hex.
    #[serde(rename = "stored-key")]
    pub stored_key: String,
    /// ServerKey, hex.
    #[serde(rename = "server-key")]
    pub server_key: String,
    /// The role it grants.
    pub role: String,
    /// The realm the principal joins, whatever HELLO asked for (as Crossbar); HELLO's when absent.
    #[serde(default)]
    pub realm: Option<String>,
}

/// A WAMP-Cryptosign principal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptosignPrincipal {
    /// Ed25519 public keys (64 hex digits each) that authenticate as this principal.
    pub authorized_keys: Vec<String>,
    /// The role it grants.
    pub role: String,
    /// The realm the principal joins, whatever HELLO asked for (as Crossbar); HELLO's when absent.
    #[serde(default)]
    pub realm: Option<String>,
}

/// A TLS client certificate principal: matched by `certificate-sha1`, or when that is absent by the
/// certificate's subject CN being the principal's authid.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPrincipal {
    /// SHA-1 fingerprint of the DER certificate, colon-separated hex (as Crossbar's).
    #[serde(rename = "certificate-sha1", default)]
    pub certificate_sha1: Option<String>,
    /// The role it grants.
    pub role: String,
    /// The realm the principal joins, whatever HELLO asked for (as Crossbar); HELLO's when absent.
    #[serde(default)]
    pub realm: Option<String>,
}

/// `auth.cookie`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CookieAuthConfig {
    /// Accepted for symmetry with the other methods; only `static` is meaningful.
    #[serde(rename = "type", default)]
    pub kind: Option<AuthKind>,
}

/// A WebSocket endpoint's `cookie` section: connections get a cookie that remembers how they
/// authenticated (Crossbar's cookie tracking).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CookieConfig {
    /// Cookie name (default `cbtid`).
    #[serde(default)]
    pub name: Option<String>,
    /// Random characters in a cookie value (default 24).
    #[serde(default)]
    pub length: Option<usize>,
    /// Seconds a cookie lives (default 864000, ten days).
    #[serde(default)]
    pub max_age: Option<u64>,
    /// Where cookies are kept (default memory).
    #[serde(default)]
    pub store: Option<CookieStoreConfig>,
}

/// `cookie.store`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieStoreConfig {
    /// `memory` or `file`.
    #[serde(rename = "type")]
    pub kind: CookieStoreKind,
    /// The file (`file`); relative to the node directory.
    #[serde(default)]
    pub filename: Option<PathBuf>,
}

/// Cookie store kinds.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CookieStoreKind {
    /// Gone when the router stops.
    Memory,
    /// Kept in a file, one JSON line per cookie, so cookies survive restarts.
    File,
}

/// A transport's `auth_rate_limit`: after `failures` failed authentications from one IP address
/// within `window` seconds, further attempts from it are denied until the window has passed.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRateLimitConfig {
    /// Failures allowed per window.
    pub failures: u32,
    /// The window, in seconds.
    pub window: u64,
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
#[derive(Debug, Clone)]
pub enum EndpointConfig {
    /// A TCP port.
    Tcp(TcpEndpointConfig),
    /// A Unix domain socket.
    Unix(UnixEndpointConfig),
}

tagged!(EndpointConfig, "endpoint", {
    "tcp" => Tcp(TcpEndpointConfig),
    "unix" => Unix(UnixEndpointConfig),
});

impl std::fmt::Display for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tls = if self.tls().is_some() { " (TLS)" } else { "" };
        match self {
            EndpointConfig::Tcp(t) => {
                write!(
                    f,
                    "tcp:{}:{}{tls}",
                    t.interface.as_deref().unwrap_or("0.0.0.0"),
                    t.port
                )
            }
            EndpointConfig::Unix(u) => write!(f, "unix:{}{tls}", u.path.display()),
        }
    }
}

impl EndpointConfig {
    /// The endpoint's TLS settings, if it uses TLS.
    pub fn tls(&self) -> Option<&TlsConfig> {
        match self {
            EndpointConfig::Tcp(t) => t.tls.as_ref(),
            EndpointConfig::Unix(u) => u.tls.as_ref(),
        }
    }
}

/// `{"type": "tcp"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpEndpointConfig {
    /// Port; 0 picks a free one.
    pub port: u16,
    /// Address to bind; all IPv4 interfaces when absent.
    #[serde(default)]
    pub interface: Option<String>,
    /// Listen backlog.
    #[serde(default)]
    pub backlog: Option<u32>,
    /// SO_REUSEPORT, so several processes can share the port.
    #[serde(default)]
    pub shared: bool,
    /// IP version (4 or 6).
    #[serde(default)]
    pub version: Option<u8>,
    /// TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `{"type": "unix"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixEndpointConfig {
    /// Socket path; relative paths resolve against the config's directory.
    pub path: PathBuf,
    /// TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// An endpoint's TLS section (Crossbar's keys). Files are PEM, relative to the config's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The private key.
    pub key: PathBuf,
    /// The server certificate.
    pub certificate: PathBuf,
    /// Intermediate certificates sent after the server certificate.
    #[serde(default)]
    pub chain_certificates: Vec<PathBuf>,
    /// CA certificates (for client certificates; with authentication `tls`).
    #[serde(default)]
    pub ca_certificates: Vec<PathBuf>,
    /// OpenSSL-style cipher list for TLS 1.2 (TLS 1.3 suites are always on).
    #[serde(default)]
    pub ciphers: Option<String>,
    /// Diffie-Hellman parameters: accepted for compatibility; rustls uses only ECDHE key exchange.
    #[serde(default)]
    pub dhparam: Option<PathBuf>,
}

/// The match policy of a permission: explicit `match`, else Crossbar's legacy rule (a trailing `*`
/// or an empty URI means prefix), else exact.
pub fn effective_match(p: &PermissionConfig) -> UriMatch {
    match p.match_policy {
        Some(m) => m.into(),
        None if p.uri.ends_with('*') || p.uri.is_empty() => UriMatch::Prefix,
        None => UriMatch::Exact,
    }
}
