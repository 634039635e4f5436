//! Building what one transport serves from its config: the TLS acceptor, each WAMP endpoint's
//! compiled `auth` and cookie jar, static directories. Every problem is reported with its path in
//! the transport's section, for the node's preparation to place in the file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use switchboard_transport::DEFAULT_MAX_MESSAGE_BYTES;
use switchboard_transport::Keepalive;
use switchboard_transport::websocket::{Deflate, WebSocketSettings};

use super::{
    HttpRoutes, OPENING_HANDSHAKE_TIMEOUT, PathTree, Protocols, RawSocketEndpoint, Resource,
    WsEndpoint,
};
use crate::auth::EndpointAuth;
use crate::auth::cookie::CookieJar;
use crate::auth::limiter::FailureLimiter;
use crate::config::{
    self, AuthConfig, AuthKind, TransportConfig, WebPathConfig, WebSocketOptions,
    WebSocketPathConfig,
};
use crate::web::StaticDir;

/// Why a transport could not be set up: unusable TLS material, static directory, authentication
/// material (a JWKS file, a credential, a key) or cookie store, and where in the transport's config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SetupError {
    /// Where, relative to the transport's section (`endpoint.tls.key`, `web.paths./.directory`).
    pub path: String,
    /// What is wrong, worded for the config's author.
    pub message: String,
}

impl SetupError {
    fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// `field` of the section at `prefix` (relative to the transport; empty for the transport itself).
fn field(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// The value of `result`, or `None` with its problems added to `problems`.
fn keep<T>(result: Result<T, Vec<SetupError>>, problems: &mut Vec<SetupError>) -> Option<T> {
    result.map_err(|p| problems.extend(p)).ok()
}

impl WsEndpoint {
    /// The endpoint at `at` (relative to its transport) from its settings.
    fn from_options(
        o: &WebSocketOptions,
        setup: &AuthSetup,
        at: &str,
    ) -> Result<Self, Vec<SetupError>> {
        let opts = &o.options;
        let compression = opts.compression_enabled().then(|| {
            let d = opts
                .compression
                .as_ref()
                .and_then(|c| c.deflate.clone())
                .unwrap_or_default();
            Deflate {
                own_max_window_bits: d.max_window_bits,
                peer_max_window_bits: d.request_max_window_bits,
                own_no_context_takeover: d.no_context_takeover,
                peer_no_context_takeover: d.request_no_context_takeover,
            }
        });
        let keepalive = keepalive(
            opts.auto_ping_interval,
            opts.auto_ping_timeout,
            opts.auto_ping_size.map(|size| size.min(125)),
        );
        let mut problems = Vec::new();
        let auth = keep(endpoint_auth(o.auth.as_ref(), setup, at), &mut problems);
        let cookies = match &o.cookie {
            Some(c) => match CookieJar::from_config(c, setup.base) {
                Ok(jar) => Some(Arc::new(jar)),
                Err(message) => {
                    // Only a file store can fail: its `filename` is missing or unusable.
                    problems.push(SetupError::at(field(at, "cookie.store.filename"), message));
                    None
                }
            },
            None => None,
        };
        let Some(auth) = auth.filter(|_| problems.is_empty()) else {
            return Err(problems);
        };
        Ok(Self {
            serializers: config::serializers(&o.serializers),
            settings: WebSocketSettings {
                max_message_bytes: opts.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
                max_frame_bytes: opts.max_frame_size,
                fragment_bytes: opts.auto_fragment_size,
                compression,
                keepalive,
                require_subprotocol: opts.require_websocket_subprotocol.unwrap_or(false),
            },
            allowed_origins: opts.allowed_origins.clone(),
            allow_null_origin: opts.allow_null_origin.unwrap_or(true),
            webstatus: opts.enable_webstatus.unwrap_or(true),
            auth,
            cookies,
        })
    }
}

/// Router-sent pings from the `auto_ping_*` options (milliseconds): none when the interval is 0
/// or absent; the timeout defaults to the interval, as Crossbar's does, and the payload to 4 bytes.
fn keepalive(
    interval: Option<u64>,
    timeout: Option<u64>,
    size: Option<usize>,
) -> Option<Keepalive> {
    let interval = interval.filter(|ms| *ms > 0)?;
    Some(Keepalive {
        interval: Duration::from_millis(interval),
        timeout: Duration::from_millis(timeout.filter(|t| *t > 0).unwrap_or(interval)),
        payload_bytes: size.unwrap_or(4),
    })
}

/// What compiling an endpoint's `auth` needs from its transport.
struct AuthSetup<'a> {
    base: &'a Path,
    limiter: Option<Arc<FailureLimiter>>,
}

/// Compiles the `auth` section of the endpoint at `at` (relative to its transport).
fn endpoint_auth(
    cfg: Option<&AuthConfig>,
    setup: &AuthSetup,
    at: &str,
) -> Result<Arc<EndpointAuth>, Vec<SetupError>> {
    let mut problems = cfg
        .map(|c| credential_problems(c, &field(at, "auth")))
        .unwrap_or_default();
    match EndpointAuth::from_config(cfg, setup.base, setup.limiter.clone()) {
        Ok(auth) if problems.is_empty() => Ok(Arc::new(auth)),
        Ok(_) => Err(problems),
        Err(message) => {
            // What compiling can fail at is loading a JWT ticket's key set.
            let jwt = cfg
                .and_then(|c| c.ticket.as_ref())
                .is_some_and(|t| t.kind == AuthKind::Jwt);
            let section = if jwt { "auth.ticket.jwks" } else { "auth" };
            problems.push(SetupError::at(field(at, section), message));
            Err(problems)
        }
    }
}

/// Problems with the credentials of an `auth` section at `at` that [`EndpointAuth`] keeps as
/// configured and reads per HELLO: read here, a malformed one is a config error instead of a
/// principal that can never log in.
fn credential_problems(cfg: &AuthConfig, at: &str) -> Vec<SetupError> {
    let mut problems = Vec::new();
    for (authid, p) in cfg.scram.iter().flat_map(|c| &c.principals) {
        if let Err(message) = crate::auth::scram_credential(p) {
            problems.push(SetupError::at(
                format!("{at}.scram.principals.{authid}"),
                message,
            ));
        }
    }
    for (authid, p) in cfg.cryptosign.iter().flat_map(|c| &c.principals) {
        for (k, key) in p.authorized_keys.iter().enumerate() {
            if crate::auth::cryptosign::parse_public_key(key).is_none() {
                problems.push(SetupError::at(
                    format!("{at}.cryptosign.principals.{authid}.authorized_keys[{k}]"),
                    "expected an Ed25519 public key: 64 hex digits",
                ));
            }
        }
    }
    problems
}

/// The resource of the web path at `at` (relative to its transport).
fn resource(
    path: &WebPathConfig,
    base: &Path,
    setup: &AuthSetup,
    at: &str,
    warnings: &mut Vec<SetupError>,
) -> Result<Resource, Vec<SetupError>> {
    Ok(match path {
        WebPathConfig::Static(s) => {
            let dir = base.join(&s.directory);
            // Crossbar starts without a directory that does not exist and answers 404 there; a
            // path that exists and cannot be served is a mistake worth stopping for.
            if std::fs::symlink_metadata(&dir)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            {
                warnings.push(SetupError::at(
                    field(at, "directory"),
                    format!(
                        "`{}` does not exist ({}): this path answers 404 until it does and the \
                         node is restarted",
                        s.directory.display(),
                        dir.display()
                    ),
                ));
                return Ok(Resource::Missing);
            }
            // Listing it first: a path that exists but is no readable directory is refused too.
            let served = std::fs::read_dir(&dir).and_then(|_| StaticDir::new(&dir, &s.options));
            Resource::Static(served.map_err(|e| {
                vec![SetupError::at(
                    field(at, "directory"),
                    format!("cannot read `{}`: {e}", s.directory.display()),
                )]
            })?)
        }
        WebPathConfig::WebSocket(o) => Resource::WebSocket(WsEndpoint::from_options(o, setup, at)?),
        WebPathConfig::Redirect(r) => Resource::Redirect(r.url.clone()),
        WebPathConfig::NodeInfo(_) => Resource::NodeInfo,
        WebPathConfig::Health(_) => Resource::Health,
        WebPathConfig::Metrics(_) => Resource::Metrics,
        WebPathConfig::Console(c) => {
            Resource::Console(Arc::new(crate::ops::console::Console::new(&c.options)))
        }
        WebPathConfig::Json(j) => Resource::Json(crate::web::JsonDocument::new(j)),
        WebPathConfig::ReverseProxy(c) => Resource::ReverseProxy(std::sync::Arc::new(
            super::reverse_proxy::ReverseProxy::new(c),
        )),
        WebPathConfig::LongPoll(c) => {
            Resource::LongPoll(std::sync::Arc::new(super::longpoll::LongPoll::new(c)))
        }
        WebPathConfig::WebSocketReverseProxy(c) => Resource::WebSocketProxy(Arc::new(
            super::websocket_proxy::WebSocketProxy::new(c, base),
        )),
        WebPathConfig::Path(nested) => {
            let mut problems = Vec::new();
            let mut resources = Vec::new();
            for (name, p) in &nested.paths {
                let here = field(at, &format!("paths.{name}"));
                if let Some(r) = keep(resource(p, base, setup, &here, warnings), &mut problems) {
                    resources.push((name, r));
                }
            }
            if !problems.is_empty() {
                return Err(problems);
            }
            Resource::Path(Arc::new(path_tree(resources.into_iter())))
        }
        WebPathConfig::Upload(c) => Resource::Upload(Arc::new(
            super::upload::Upload::new(c, base, at.rsplit('.').next().unwrap_or(at))
                .map_err(|(key, message)| vec![SetupError::at(field(at, key), message)])?,
        )),
        WebPathConfig::Archive(c) => Resource::Archive(Arc::new(
            super::archive::Archive::open(c, base)
                .map_err(|(key, message)| vec![SetupError::at(field(at, key), message)])?,
        )),
        WebPathConfig::Publisher(c) | WebPathConfig::Caller(c) | WebPathConfig::Webhook(c) => {
            let (kind, _) = path.http_bridge().expect("an HTTP bridge path");
            let name = at.rsplit('.').next().unwrap_or(at);
            Resource::HttpBridge(std::sync::Arc::new(crate::http_bridge::HttpBridge::new(
                kind, c, name,
            )))
        }
    })
}

fn path_tree<'a>(paths: impl Iterator<Item = (&'a String, Resource)>) -> PathTree {
    let paths: Vec<(&String, Resource)> = paths.collect();
    // A console connects to the transport's first WebSocket path unless it names a URL.
    let websocket = paths
        .iter()
        .find(|(_, r)| matches!(r, Resource::WebSocket(_)))
        .map(|(name, _)| format!("/{}", name.trim_matches('/')));
    let mut tree = PathTree::default();
    for (name, mut res) in paths {
        if let (Resource::Console(console), Some(ws)) = (&mut res, &websocket) {
            *console = Arc::new(console.with_websocket_path(ws));
        }
        if name == "/" {
            tree.root = Some(res);
        } else {
            tree.children.insert(name.trim_matches('/').to_owned(), res);
        }
    }
    tree
}

impl Protocols {
    /// The protocols of a transport config; paths resolve against `base`. Every problem is
    /// reported, each with its path in the transport's section.
    pub fn from_config(
        t: &TransportConfig,
        base: &Path,
        realms: Arc<Vec<String>>,
    ) -> Result<Self, Vec<SetupError>> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let setup = AuthSetup {
            base,
            limiter: t.auth_rate_limit().map(|l| {
                Arc::new(FailureLimiter::new(
                    l.failures,
                    Duration::from_secs(l.window),
                ))
            }),
        };
        let rawsocket = |o: &config::RawSocketOptions, at: &str| -> Result<_, Vec<SetupError>> {
            let auth = endpoint_auth(o.auth.as_ref(), &setup, at)?;
            let opts = &o.options;
            Ok(RawSocketEndpoint {
                serializers: config::serializers(&o.serializers),
                max_message_bytes: o.max_message_bytes().unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
                keepalive: keepalive(
                    opts.auto_ping_interval,
                    opts.auto_ping_timeout,
                    opts.auto_ping_size,
                ),
                auth,
            })
        };
        let server_end_point = t
            .endpoint()
            .tls()
            .and_then(|cfg| crate::tls::server_end_point(cfg, base));
        let tls =
            match t.endpoint().tls() {
                Some(cfg) => match crate::tls::server_config(cfg, base) {
                    Ok(server) => Some(tokio_rustls::TlsAcceptor::from(server)),
                    Err(tls_problems) => {
                        problems.extend(tls_problems.into_iter().map(|p| {
                            SetupError::at(format!("endpoint.tls.{}", p.field), p.message)
                        }));
                        None
                    }
                },
                None => None,
            };
        let mut websockets: Vec<&WebSocketOptions> = Vec::new();
        let (rawsocket, http) = match t {
            TransportConfig::Universal(u) => {
                let mut resources: Vec<(&String, Resource)> = Vec::new();
                for (path, WebSocketPathConfig::WebSocket(o)) in &u.websocket {
                    websockets.push(o);
                    let at = format!("websocket.{path}");
                    if let Some(ws) = keep(WsEndpoint::from_options(o, &setup, &at), &mut problems)
                    {
                        resources.push((path, Resource::WebSocket(ws)));
                    }
                }
                if let Some(webcfg) = &u.web {
                    for (path, p) in &webcfg.paths {
                        let at = format!("web.paths.{path}");
                        if let Some(r) =
                            keep(resource(p, base, &setup, &at, &mut warnings), &mut problems)
                        {
                            resources.push((path, r));
                        }
                    }
                }
                let http = (!resources.is_empty())
                    .then(|| HttpRoutes::Paths(path_tree(resources.into_iter())));
                let rawsocket = u
                    .rawsocket
                    .as_ref()
                    .and_then(|o| keep(rawsocket(o, "rawsocket"), &mut problems));
                (rawsocket, http)
            }
            TransportConfig::WebSocket(ws) => (
                None,
                keep(
                    WsEndpoint::from_options(&ws.websocket(), &setup, ""),
                    &mut problems,
                )
                .map(HttpRoutes::AnyPath),
            ),
            TransportConfig::RawSocket(rs) => {
                (keep(rawsocket(&rs.rawsocket(), ""), &mut problems), None)
            }
            TransportConfig::Web(w) => {
                let mut resources = Vec::new();
                for (path, p) in &w.paths {
                    let at = format!("paths.{path}");
                    if let Some(r) =
                        keep(resource(p, base, &setup, &at, &mut warnings), &mut problems)
                    {
                        resources.push((path, r));
                    }
                }
                (
                    None,
                    Some(HttpRoutes::Paths(path_tree(resources.into_iter()))),
                )
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        websockets.extend(t.web_paths().into_iter().filter_map(|(_, p)| match p {
            WebPathConfig::WebSocket(o) => Some(o),
            _ => None,
        }));
        let opening_timeout = match t {
            TransportConfig::WebSocket(ws) => ws.options.open_handshake_timeout,
            _ => websockets
                .iter()
                .find_map(|o| o.options.open_handshake_timeout),
        }
        .filter(|ms| *ms > 0)
        .map_or(OPENING_HANDSHAKE_TIMEOUT, Duration::from_millis);
        let close_timeout = match t {
            TransportConfig::WebSocket(ws) => ws.options.close_handshake_timeout,
            _ => websockets
                .iter()
                .find_map(|o| o.options.close_handshake_timeout),
        }
        .map(Duration::from_millis);
        Ok(Self {
            tls,
            rawsocket,
            server_end_point,
            http,
            opening_timeout,
            close_timeout,
            realms,
            warnings,
        })
    }
}
