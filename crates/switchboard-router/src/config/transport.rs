//! Listening transports (`universal`, `websocket`, `rawsocket`, `web`) and the resources a web
//! transport serves on its URL paths.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{
    AuthConfig, AuthRateLimitConfig, CookieConfig, EndpointConfig, HttpBridgeKind,
    HttpBridgePathConfig, RawSocketOptions, RawSocketProtocolOptions, SerializerName,
    WebSocketOptions, WebSocketProtocolOptions,
};

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

    /// Every endpoint's `auth` section, with its path below the transport (`auth`,
    /// `rawsocket.auth`, `websocket.ws.auth`, `paths.ws.auth`, ...).
    pub fn auth_sections(&self) -> Vec<(String, &AuthConfig)> {
        let mut sections = Vec::new();
        match self {
            TransportConfig::Universal(u) => {
                if let Some(a) = u.rawsocket.as_ref().and_then(|r| r.auth.as_ref()) {
                    sections.push(("rawsocket.auth".to_owned(), a));
                }
                for (name, WebSocketPathConfig::WebSocket(ws)) in &u.websocket {
                    if let Some(a) = &ws.auth {
                        sections.push((format!("websocket.{name}.auth"), a));
                    }
                }
            }
            TransportConfig::WebSocket(ws) => {
                sections.extend(ws.auth.as_ref().map(|a| ("auth".to_owned(), a)))
            }
            TransportConfig::RawSocket(rs) => {
                sections.extend(rs.auth.as_ref().map(|a| ("auth".to_owned(), a)))
            }
            TransportConfig::Web(_) => {}
        }
        for (at, path) in self.web_paths() {
            if let WebPathConfig::WebSocket(ws) = path
                && let Some(a) = &ws.auth
            {
                sections.push((format!("{at}.auth"), a));
            }
        }
        sections
    }

    /// The transport's web paths, nested ones included, each with where it is below the
    /// transport (`web.paths.ws` of a universal transport, `paths.ws` or
    /// `paths.folder.paths.ws` of a web transport).
    pub fn web_paths(&self) -> Vec<(String, &WebPathConfig)> {
        match self {
            TransportConfig::Universal(u) => u
                .web
                .as_ref()
                .map(|w| all_web_paths(&w.paths, "web.paths"))
                .unwrap_or_default(),
            TransportConfig::Web(w) => all_web_paths(&w.paths, "paths"),
            TransportConfig::WebSocket(_) | TransportConfig::RawSocket(_) => Vec::new(),
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
    /// Crossbar's per-transport debug logging: accepted with a warning (use `--loglevel debug`).
    #[serde(default)]
    pub debug: Option<bool>,
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
    /// Crossbar's per-transport debug logging: accepted with a warning (use `--loglevel debug`).
    #[serde(default)]
    pub debug: Option<bool>,
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
            debug: self.debug,
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
    /// Crossbar's per-transport debug logging: accepted with a warning (use `--loglevel debug`).
    #[serde(default)]
    pub debug: Option<bool>,
    /// Where to listen.
    pub endpoint: EndpointConfig,
    /// Limits failed authentications per client address.
    #[serde(default)]
    pub auth_rate_limit: Option<AuthRateLimitConfig>,
    /// Serializers offered; all three when absent.
    #[serde(default)]
    pub serializers: Option<Vec<SerializerName>>,
    /// One serializer: the older form of `serializers` (Crossbar still reads it).
    #[serde(default)]
    pub serializer: Option<SerializerName>,
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
            serializers: self
                .serializers
                .clone()
                .or_else(|| self.serializer.map(|s| vec![s])),
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
    /// Crossbar's per-transport debug logging: accepted with a warning (use `--loglevel debug`).
    #[serde(default)]
    pub debug: Option<bool>,
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
    /// `<path>/live` and `<path>/ready` for load balancers and orchestrators.
    Health(HealthPathConfig),
    /// The node's counters in the Prometheus text format.
    Metrics(MetricsPathConfig),
    /// The live web console of the node.
    Console(ConsolePathConfig),
    /// A fixed JSON document.
    Json(JsonPathConfig),
    /// The HTTP bridge: a POST publishes an event.
    Publisher(HttpBridgePathConfig),
    /// The HTTP bridge: a POST calls a procedure.
    Caller(HttpBridgePathConfig),
    /// The HTTP bridge: a POST becomes an event on the configured topic.
    Webhook(HttpBridgePathConfig),
    /// WAMP over HTTP long-poll.
    LongPoll(LongPollPathConfig),
    /// Requests passed on to another HTTP server.
    ReverseProxy(ReverseProxyPathConfig),
    /// WebSocket connections passed on to another WebSocket server.
    WebSocketReverseProxy(WebSocketReverseProxyPathConfig),
    /// Resources on the path's own sub-paths (Crossbar's path service).
    Path(PathServiceConfig),
    /// Chunked, resumable file uploads into a directory.
    Upload(UploadPathConfig),
    /// Files served from a ZIP archive.
    Archive(ArchivePathConfig),
}

tagged!(WebPathConfig, "web path", {
    "static" => Static(StaticPathConfig),
    "websocket" => WebSocket(WebSocketOptions),
    "redirect" => Redirect(RedirectPathConfig),
    "nodeinfo" => NodeInfo(NodeInfoPathConfig),
    "health" => Health(HealthPathConfig),
    "metrics" => Metrics(MetricsPathConfig),
    "console" => Console(ConsolePathConfig),
    "json" => Json(JsonPathConfig),
    "publisher" => Publisher(HttpBridgePathConfig),
    "caller" => Caller(HttpBridgePathConfig),
    "webhook" => Webhook(HttpBridgePathConfig),
    "longpoll" => LongPoll(LongPollPathConfig),
    "reverseproxy" => ReverseProxy(ReverseProxyPathConfig),
    "websocket-reverseproxy" => WebSocketReverseProxy(WebSocketReverseProxyPathConfig),
    "path" => Path(PathServiceConfig),
    "upload" => Upload(UploadPathConfig),
    "archive" => Archive(ArchivePathConfig),
});

/// `{"type": "path"}`: a folder of resources below the path, Crossbar's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathServiceConfig {
    /// Crossbar's id of the service (unused).
    #[serde(default)]
    pub id: Option<String>,
    /// Resources by path segment below this path; `"/"` answers for the path itself and for
    /// every segment without a resource of its own.
    pub paths: BTreeMap<String, WebPathConfig>,
}

/// `{"type": "websocket-reverseproxy"}`: WebSocket connections to the path are passed on to a
/// backend WebSocket server, Crossbar's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketReverseProxyPathConfig {
    /// Crossbar's id of the service (unused).
    #[serde(default)]
    pub id: Option<String>,
    /// The public URL of the path (informational, as in Crossbar).
    #[serde(default)]
    pub url: Option<String>,
    /// The frontend's WebSocket options: `allowed_origins` and `allow_null_origin` apply; the
    /// WebSocket itself (subprotocol, compression, sizes) is negotiated with the backend.
    #[serde(default)]
    pub options: WebSocketProtocolOptions,
    /// The backend: a connecting WebSocket transport (`endpoint` and `url`).
    pub backend: super::ClientTransportConfig,
}

/// `{"type": "upload"}`: Crossbar's file upload service (Resumable.js's protocol).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadPathConfig {
    /// Crossbar's id of the service (unused).
    #[serde(default)]
    pub id: Option<String>,
    /// The realm of the session that publishes progress events.
    pub realm: String,
    /// Its role.
    pub role: String,
    /// Where finished files go, relative to the node directory.
    pub directory: PathBuf,
    /// Where chunks wait until their file is complete (default: `directory`'s
    /// `.switchboard-upload` folder), relative to the node directory.
    #[serde(default)]
    pub temp_directory: Option<PathBuf>,
    /// The names of the form fields the client sends.
    pub form_fields: UploadFormFields,
    /// Limits and permissions.
    #[serde(default)]
    pub options: UploadOptions,
}

/// The form field names of an upload path (Crossbar's `form_fields`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadFormFields {
    /// The file's name (also its name in `directory`).
    pub file_name: String,
    /// Its MIME type.
    pub mime_type: String,
    /// Its size in bytes.
    pub total_size: String,
    /// This chunk's number, from 1.
    pub chunk_number: String,
    /// The chunk size the client uses.
    pub chunk_size: String,
    /// The number of chunks of the file.
    pub total_chunks: String,
    /// The chunk's content.
    pub content: String,
    /// The field naming the topic progress events go to (none: no events).
    #[serde(default)]
    pub on_progress: Option<String>,
    /// The field naming the one session the events go to.
    #[serde(default)]
    pub session: Option<String>,
    /// The field with a JSON object passed on in every progress event.
    #[serde(default)]
    pub chunk_extra: Option<String>,
    /// The field with a JSON object passed on in the `finished` event.
    #[serde(default)]
    pub finish_extra: Option<String>,
}

/// The `options` of an upload path.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadOptions {
    /// The largest file accepted, in bytes (default 10 MiB, as Crossbar).
    #[serde(default)]
    pub max_file_size: Option<u64>,
    /// The file name extensions accepted (`[".csv", ".txt"]`); any when absent.
    #[serde(default)]
    pub file_types: Option<Vec<String>>,
    /// The mode of finished files, octal (`"0644"`).
    #[serde(default)]
    pub file_permissions: Option<String>,
}

/// `{"type": "archive"}`: files served from a ZIP archive, Crossbar's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivePathConfig {
    /// Crossbar's id of the service (unused).
    #[serde(default)]
    pub id: Option<String>,
    /// The archive file, relative to the node directory.
    pub archive: PathBuf,
    /// Where to download the archive from when the file does not exist (`http` or `https`).
    #[serde(default)]
    pub origin: Option<String>,
    /// Whether to download it from `origin` (default false, as Crossbar).
    #[serde(default)]
    pub download: bool,
    /// Keep files read from the archive in memory.
    #[serde(default)]
    pub cache: bool,
    /// The file served for the path itself and for paths ending in `/`.
    #[serde(default)]
    pub default_object: Option<String>,
    /// Prefixed to every request path inside the archive (a folder of the archive).
    #[serde(default)]
    pub object_prefix: Option<String>,
    /// Extra MIME types by file name ending (`{".min.js": "text/javascript"}`).
    #[serde(default)]
    pub mime_types: BTreeMap<String, String>,
    /// SHA-256 fingerprints (hex) of which the archive must match one.
    #[serde(default)]
    pub hashes: Option<Vec<String>>,
    /// `default_file`: served for paths the archive does not have.
    #[serde(default)]
    pub options: ArchiveOptions,
}

/// The `options` of an archive path.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveOptions {
    /// The file served (with 200) for paths the archive does not have, as a single-page
    /// application needs.
    #[serde(default)]
    pub default_file: Option<String>,
}

/// `{"type": "reverseproxy"}`: requests below the path go to an HTTP server, Crossbar's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReverseProxyPathConfig {
    /// Crossbar's id of the service (unused).
    #[serde(default)]
    pub id: Option<String>,
    /// The upstream server's host.
    pub host: String,
    /// Its port (default 80).
    #[serde(default)]
    pub port: Option<u16>,
    /// The path on the upstream server that this path maps to (default: its root).
    #[serde(default)]
    pub path: Option<String>,
    /// `X-Forwarded-Port` (default 80, as Crossbar).
    #[serde(default)]
    pub forwarded_port: Option<u16>,
    /// `X-Forwarded-Proto`: `http` (default) or `https`.
    #[serde(default)]
    pub forwarded_proto: Option<String>,
}

/// `{"type": "longpoll"}`: WAMP over HTTP long-poll, Crossbar's keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongPollPathConfig {
    /// Crossbar's id of the service (unused).
    #[serde(default)]
    pub id: Option<String>,
    /// Timeouts and queue limits.
    #[serde(default)]
    pub options: LongPollOptions,
}

/// A long-poll path's `options`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongPollOptions {
    /// Seconds a `receive` request waits for a message before it answers empty (default 10; 0:
    /// until a message comes, as Crossbar holds it).
    #[serde(default)]
    pub request_timeout: Option<u64>,
    /// Seconds without any request of a transport after which its session is closed (default 30;
    /// 0: never, as in Crossbar).
    #[serde(default)]
    pub session_timeout: Option<u64>,
    /// Messages waiting for a `receive` before the session is held back (default 100).
    #[serde(default)]
    pub queue_limit_messages: Option<u64>,
    /// Accepted, without effect: Switchboard bounds the queue by messages.
    #[serde(default)]
    pub queue_limit_bytes: Option<u64>,
    /// Accepted with a warning: the node has one log level.
    #[serde(default)]
    pub debug: Option<bool>,
    /// Crossbar's debugging aid: every transport opened gets this id (replacing the one before),
    /// so that a script can use a known URL.
    #[serde(default)]
    pub debug_transport_id: Option<String>,
}

/// Every web path of `paths` (at `at`), with the paths nested in `path` services, each with its
/// place in the config (`paths.myfolder.paths.download1`).
pub fn all_web_paths<'a>(
    paths: &'a BTreeMap<String, WebPathConfig>,
    at: &str,
) -> Vec<(String, &'a WebPathConfig)> {
    let mut all = Vec::new();
    for (name, path) in paths {
        let here = format!("{at}.{name}");
        if let WebPathConfig::Path(nested) = path {
            all.extend(all_web_paths(&nested.paths, &format!("{here}.paths")));
        }
        all.push((here, path));
    }
    all
}

impl WebPathConfig {
    /// The HTTP bridge path this is, if it is one.
    pub fn http_bridge(&self) -> Option<(HttpBridgeKind, &HttpBridgePathConfig)> {
        match self {
            WebPathConfig::Publisher(c) => Some((HttpBridgeKind::Publisher, c)),
            WebPathConfig::Caller(c) => Some((HttpBridgeKind::Caller, c)),
            WebPathConfig::Webhook(c) => Some((HttpBridgeKind::Webhook, c)),
            _ => None,
        }
    }
}

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

/// `{"type": "json"}`: the `value` served as a JSON document (Crossbar's JSON value service).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonPathConfig {
    /// Service id.
    #[serde(default)]
    pub id: Option<String>,
    /// The document.
    pub value: serde_json::Value,
    /// How it is served.
    #[serde(default)]
    pub options: JsonPathOptions,
}

/// Options of a JSON value path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonPathOptions {
    /// Indent the document (three spaces, as Crossbar) instead of the compact form.
    pub prettify: bool,
    /// Answer requests from any origin (CORS); on by default, as in Crossbar.
    pub allow_cross_origin: bool,
    /// `Cache-Control: no-store, no-cache, must-revalidate, max-age=0`.
    pub discourage_caching: bool,
}

impl Default for JsonPathOptions {
    fn default() -> Self {
        Self {
            prettify: false,
            allow_cross_origin: true,
            discourage_caching: false,
        }
    }
}

/// `{"type": "nodeinfo"}`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NodeInfoPathConfig {}

/// `{"type": "health"}` (Switchboard's): `<path>/live` answers 200 while the node serves,
/// `<path>/ready` 200 once it is ready, else 503 with what is not.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HealthPathConfig {}

/// `{"type": "metrics"}` (Switchboard's): the node's counters for Prometheus to scrape.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsPathConfig {}

/// `{"type": "console"}` (Switchboard's): the live web console, a page that logs in to the
/// management realm over WAMP and shows the node (its management API).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConsolePathConfig {
    /// What the page connects to.
    #[serde(default)]
    pub options: ConsoleOptions,
}

/// The `options` of a `console` path.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConsoleOptions {
    /// The management realm the page joins (default: `crossbar`, the default of
    /// `controller.management.realm`).
    #[serde(default)]
    pub realm: Option<String>,
    /// The WebSocket URL the page connects to (default: the first `websocket` path of the same
    /// transport, on the host the page was loaded from).
    #[serde(default)]
    pub url: Option<String>,
}

/// A file mode written in octal (`"0644"`, `"644"`), as Crossbar's `file_permissions`.
pub fn parse_file_mode(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || digits.len() > 4 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_file_mode;

    #[test]
    fn file_modes_are_octal() {
        assert_eq!(parse_file_mode("0644"), Some(0o644));
        assert_eq!(parse_file_mode("640"), Some(0o640));
        assert_eq!(parse_file_mode("0o600"), Some(0o600));
        for bad in ["", "0648", "rw-r--r--", "06444", "-1"] {
            assert_eq!(parse_file_mode(bad), None, "{bad}");
        }
    }
}
