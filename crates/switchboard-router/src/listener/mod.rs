//! Accepting connections: binds each configured transport's endpoint (TCP or Unix socket, with
//! or without TLS), and per connection decides what it speaks. A `universal` listener reads the
//! first octet: 0x7F starts a RawSocket handshake, anything else is HTTP, where configured paths
//! upgrade to WebSocket or serve web resources ([`crate::web`]). What a transport serves
//! ([`Protocols`]) is built from its config by `setup`, before anything binds.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchboard_proto::Serializer;
use switchboard_transport::websocket::WebSocketSettings;
use switchboard_transport::{BoxedIo, rawsocket, websocket};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::cookie::CookieJar;
use crate::auth::{
    ChannelBinding, ClientCertificate, ConnectionInfo, EndpointAuth, TLS_SERVER_END_POINT,
    TrackingCookie,
};
use crate::config::EndpointConfig;
use crate::session::{self, SessionConfig};
use crate::web::{self, HttpBody, StaticDir};

mod archive;
mod longpoll;
mod reverse_proxy;
mod setup;
mod upload;
mod websocket_proxy;

pub use setup::SetupError;

/// How long a new connection has for its TLS handshake, first octet, RawSocket handshake or HTTP
/// upgrade, unless the transport configures `open_handshake_timeout`.
pub const OPENING_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a listener ended up listening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address (the real port when the config said 0).
    Tcp(std::net::SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "tcp:{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A WebSocket endpoint's settings.
#[derive(Debug, Clone)]
struct WsEndpoint {
    serializers: Vec<Serializer>,
    settings: WebSocketSettings,
    /// Origin patterns allowed to connect; `None` allows every origin.
    allowed_origins: Option<Vec<String>>,
    allow_null_origin: bool,
    webstatus: bool,
    auth: Arc<EndpointAuth>,
    /// Cookie tracking, when the endpoint has a `cookie` section.
    cookies: Option<Arc<CookieJar>>,
}

impl WsEndpoint {
    /// Whether a browser at `origin` may open this WebSocket (Crossbar's `allowed_origins`,
    /// where `*` matches any run of characters). Requests without Origin (non-browser clients)
    /// are always allowed: the header is what browsers send.
    fn origin_allowed(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if origin == "null" {
            return self.allow_null_origin;
        }
        match &self.allowed_origins {
            None => true,
            Some(patterns) => patterns.iter().any(|p| wildcard_match(p, origin)),
        }
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// A resource on a URL path.
#[derive(Debug, Clone)]
enum Resource {
    WebSocket(WsEndpoint),
    Static(StaticDir),
    Redirect(String),
    NodeInfo,
    /// The node's liveness and readiness.
    Health,
    /// The node's counters for Prometheus.
    Metrics,
    /// The live web console.
    Console(Arc<crate::ops::console::Console>),
    /// A static directory that did not exist when the node started.
    Missing,
    /// A fixed JSON document.
    Json(web::JsonDocument),
    /// The HTTP bridge: publisher, caller or webhook.
    HttpBridge(Arc<crate::http_bridge::HttpBridge>),
    /// WAMP over HTTP long-poll.
    LongPoll(Arc<longpoll::LongPoll>),
    /// Another HTTP server's resources.
    ReverseProxy(Arc<reverse_proxy::ReverseProxy>),
    /// Another WebSocket server's connections.
    WebSocketProxy(Arc<websocket_proxy::WebSocketProxy>),
    /// Resources on sub-paths (a `path` service).
    Path(Arc<PathTree>),
    /// Chunked file uploads.
    Upload(Arc<upload::Upload>),
    /// Files from a ZIP archive.
    Archive(Arc<archive::Archive>),
}

/// Resources by first path segment, and the root resource for everything else.
#[derive(Debug, Clone, Default)]
struct PathTree {
    root: Option<Resource>,
    children: HashMap<String, Resource>,
}

impl PathTree {
    /// The resource that answers for `path` (empty or starting with `/`) and the rest of the path
    /// below it, descending into nested `path` services.
    fn route(&self, path: &str) -> Option<(&Resource, String)> {
        let mut tree = self;
        let mut path = path.to_owned();
        loop {
            let trimmed = path.trim_start_matches('/');
            let (first, rest) = trimmed
                .split_once('/')
                .map_or((trimmed, None), |(f, r)| (f, Some(r)));
            let (resource, rel) = match tree.children.get(first) {
                Some(child) => (child, rest.map_or(String::new(), |r| format!("/{r}"))),
                None => (tree.root.as_ref()?, path.clone()),
            };
            match resource {
                // Each step goes one tree down, so this ends.
                Resource::Path(nested) => {
                    tree = nested;
                    path = rel;
                }
                _ => return Some((resource, rel)),
            }
        }
    }
}

/// How HTTP requests of one transport are answered.
#[derive(Debug, Clone)]
enum HttpRoutes {
    /// A `websocket` transport: every path upgrades.
    AnyPath(WsEndpoint),
    /// Resources by path.
    Paths(PathTree),
}

/// A RawSocket endpoint, resolved from its config.
#[derive(Clone)]
struct RawSocketEndpoint {
    serializers: Vec<Serializer>,
    max_message_bytes: usize,
    keepalive: Option<switchboard_transport::Keepalive>,
    auth: Arc<EndpointAuth>,
}

/// What one transport serves, resolved from its config.
#[derive(Clone)]
pub struct Protocols {
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The RawSocket endpoint, if RawSocket is served.
    rawsocket: Option<RawSocketEndpoint>,
    /// `tls-server-end-point` channel binding data, on TLS transports.
    server_end_point: Option<Vec<u8>>,
    http: Option<HttpRoutes>,
    opening_timeout: Duration,
    /// The transport's `close_handshake_timeout`, if it sets one.
    pub close_timeout: Option<Duration>,
    /// Realm names, for the node info page.
    realms: Arc<Vec<String>>,
    /// What the transport serves differently from what its config asks (a static directory that
    /// does not exist), relative to the transport's section.
    pub warnings: Vec<SetupError>,
}

/// What a transport serves, replaceable while it listens (a config reload): each connection takes
/// the one current when it is accepted and keeps it.
pub type SharedProtocols = Arc<std::sync::RwLock<Arc<Protocols>>>;

/// What a transport serves, shared with a later reload.
pub fn shared(protocols: Protocols) -> SharedProtocols {
    Arc::new(std::sync::RwLock::new(Arc::new(protocols)))
}

/// A bound listener, ready to accept.
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket (the path is removed when the listener stops).
    Unix(UnixListener, PathBuf),
}

/// Binds an endpoint. Relative Unix socket paths resolve against `base_dir`.
pub fn bind(endpoint: &EndpointConfig, base_dir: &Path) -> io::Result<(Listener, ListenAddr)> {
    match endpoint {
        EndpointConfig::Tcp(t) => {
            let host = t.interface.clone().unwrap_or_else(|| {
                if t.version == Some(6) {
                    "::".into()
                } else {
                    "0.0.0.0".into()
                }
            });
            let ip: std::net::IpAddr = host.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("interface {host:?} is not an IP address"),
                )
            })?;
            let addr = std::net::SocketAddr::new(ip, t.port);
            let socket = if addr.is_ipv6() {
                TcpSocket::new_v6()?
            } else {
                TcpSocket::new_v4()?
            };
            socket.set_reuseaddr(true)?;
            // Crossbar's `shared`: several processes accept on one port (Linux SO_REUSEPORT).
            if t.shared {
                socket.set_reuseport(true)?;
            }
            socket.set_nodelay(true)?;
            socket.bind(addr)?;
            let listener = socket.listen(t.backlog.unwrap_or(1024))?;
            let local = listener.local_addr()?;
            Ok((Listener::Tcp(listener), ListenAddr::Tcp(local)))
        }
        EndpointConfig::Unix(u) => {
            let path = base_dir.join(&u.path);
            // A socket file left behind by a previous run would make bind fail.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                std::fs::remove_file(&path)?;
            }
            let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
            socket.bind(&socket2::SockAddr::unix(&path)?)?;
            let backlog = u.backlog.unwrap_or(1024).min(i32::MAX as u32) as i32;
            socket.listen(backlog)?;
            socket.set_nonblocking(true)?;
            let listener = UnixListener::from_std(std::os::unix::net::UnixListener::from(socket))?;
            Ok((
                Listener::Unix(listener, path.clone()),
                ListenAddr::Unix(path),
            ))
        }
    }
}

/// Accepts connections until `stop_accepting` (the node is shutting down, or a reload removed the
/// transport), then closes the listener; each connection runs on its own tracked task, with what
/// `protocols` held when it was accepted.
pub async fn serve(
    listener: Listener,
    protocols: SharedProtocols,
    sessions: SessionConfig,
    tracker: TaskTracker,
    stop_accepting: CancellationToken,
) {
    let open = sessions.status.connection_counter(&listener.addr_label());
    loop {
        let accepted: io::Result<(BoxedIo, Option<std::net::SocketAddr>)> = tokio::select! {
            _ = stop_accepting.cancelled() => break,
            r = accept(&listener) => r,
        };
        match accepted {
            Ok((io, peer_addr)) => {
                let protocols = crate::locks::read(&protocols).clone();
                let sessions = sessions.clone();
                let tracker2 = tracker.clone();
                let open: Arc<dyn std::any::Any + Send + Sync> =
                    Arc::new(OpenConnection::new(open.clone()));
                tracker.spawn(async move {
                    connection(io, peer_addr, open, protocols, sessions, tracker2).await;
                });
            }
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if let Listener::Unix(_, path) = &listener {
        let _ = std::fs::remove_file(path);
    }
}

/// One open connection in its transport's count, for as long as it is held.
struct OpenConnection(Arc<std::sync::atomic::AtomicI64>);

impl OpenConnection {
    fn new(count: Arc<std::sync::atomic::AtomicI64>) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Listener {
    /// Where it listens, as the metrics label a transport (`tcp:127.0.0.1:8080`).
    fn addr_label(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp:?".to_owned(), |a| format!("tcp:{a}")),
            Listener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }
}

async fn accept(listener: &Listener) -> io::Result<(BoxedIo, Option<std::net::SocketAddr>)> {
    match listener {
        Listener::Tcp(l) => {
            let (stream, addr) = l.accept().await?;
            stream.set_nodelay(true)?;
            Ok((Box::new(stream), Some(addr)))
        }
        Listener::Unix(l, _) => {
            let (stream, _) = l.accept().await?;
            Ok((Box::new(stream), None))
        }
    }
}

/// Serves one connection: TLS if configured, sniff, then RawSocket or HTTP/WebSocket.
async fn connection(
    io: BoxedIo,
    peer_addr: Option<std::net::SocketAddr>,
    open: Arc<dyn std::any::Any + Send + Sync>,
    protocols: Arc<Protocols>,
    sessions: SessionConfig,
    tracker: TaskTracker,
) {
    let deadline = tokio::time::Instant::now() + protocols.opening_timeout;
    let mut conn = ConnectionInfo {
        peer_addr,
        open: Some(open),
        ..ConnectionInfo::default()
    };
    let mut io: BoxedIo = match &protocols.tls {
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(io)).await {
            Ok(Ok(tls)) => {
                // The verifier already checked a presented certificate against the CAs.
                conn.client_certificate = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .map(|der| ClientCertificate::from_der(der.as_ref()));
                conn.channel_binding =
                    protocols
                        .server_end_point
                        .as_ref()
                        .map(|data| ChannelBinding {
                            kind: TLS_SERVER_END_POINT,
                            data: data.clone(),
                        });
                Box::new(tls)
            }
            Ok(Err(e)) => {
                tracing::debug!("TLS handshake failed: {e}");
                return;
            }
            Err(_) => return,
        },
        None => io,
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, io.read_exact(&mut first)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    if first[0] == rawsocket::MAGIC {
        let Some(endpoint) = &protocols.rawsocket else {
            return;
        };
        conn.transport = "rawsocket";
        let handshake = rawsocket::accept(io, endpoint.max_message_bytes, &endpoint.serializers);
        match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(transport)) => {
                let transport = transport.with_keepalive(endpoint.keepalive.clone());
                // The session gets a task of its own, sized for it: this one is sized for its
                // largest state, serving HTTP, which a RawSocket session would carry for its whole
                // life.
                tracker.spawn(session::run(
                    transport,
                    sessions,
                    endpoint.auth.clone(),
                    Box::new(conn),
                ));
            }
            Ok(Err(e)) => tracing::debug!("RawSocket handshake failed: {e}"),
            Err(_) => tracing::debug!("RawSocket handshake timed out"),
        }
        return;
    }
    if protocols.http.is_none() {
        return;
    }
    let io = TokioIo::new(Prefixed {
        prefix: Some(first[0]),
        inner: io,
    });
    conn.transport = "websocket";
    let shutdown = sessions.shutdown.clone();
    let service = service_fn(move |req| {
        let protocols = protocols.clone();
        let sessions = sessions.clone();
        let tracker = tracker.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(http_request(req, &protocols, sessions, conn, &tracker).await) }
    });
    let conn = http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(OPENING_HANDSHAKE_TIMEOUT)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = shutdown.cancelled() => {
            // At shutdown an idle keep-alive connection closes now, and one with a request in
            // flight after answering it: neither holds the node's exit up.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!("HTTP connection ended: {e}");
    }
}

async fn http_request(
    req: Request<Incoming>,
    protocols: &Protocols,
    sessions: SessionConfig,
    conn: ConnectionInfo,
    tracker: &TaskTracker,
) -> Response<HttpBody> {
    let Some(routes) = &protocols.http else {
        return web::text(StatusCode::NOT_FOUND, "not found\n");
    };
    match routes {
        HttpRoutes::AnyPath(ws) => websocket_request(req, ws, sessions, conn, tracker),
        HttpRoutes::Paths(tree) => match tree.route(req.uri().path()) {
            Some((res, rel)) => {
                serve_resource(res, req, &rel, protocols, sessions, conn, tracker).await
            }
            None => web::text(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

async fn serve_resource(
    res: &Resource,
    req: Request<Incoming>,
    rel: &str,
    protocols: &Protocols,
    sessions: SessionConfig,
    conn: ConnectionInfo,
    tracker: &TaskTracker,
) -> Response<HttpBody> {
    match res {
        // A WebSocket endpoint lives exactly at its path (with or without a trailing slash).
        Resource::WebSocket(ws) if rel.is_empty() || rel == "/" => {
            websocket_request(req, ws, sessions, conn, tracker)
        }
        Resource::WebSocket(_) => web::text(StatusCode::NOT_FOUND, "not found\n"),
        Resource::Static(dir) => {
            // A mounted directory asked for without the trailing slash: redirect so relative links work.
            if rel.is_empty() {
                return web::redirect(&format!("{}/", req.uri().path()));
            }
            dir.serve(req, rel).await
        }
        Resource::Redirect(url) => web::redirect(url),
        Resource::NodeInfo => web::node_info(&protocols.realms),
        Resource::Health => crate::ops::health::serve(&sessions.status, rel),
        Resource::Metrics if rel.is_empty() || rel == "/" => {
            crate::ops::metrics::serve(&sessions.realms, &sessions.status)
        }
        Resource::Metrics => web::text(StatusCode::NOT_FOUND, "not found\n"),
        Resource::Console(console) => console.serve(&req, rel),
        Resource::Missing => web::text(StatusCode::NOT_FOUND, "not found\n"),
        Resource::Json(doc) if rel.is_empty() || rel == "/" => doc.serve(&req),
        Resource::Json(_) => web::text(StatusCode::NOT_FOUND, "not found\n"),
        Resource::HttpBridge(bridge) if rel.is_empty() || rel == "/" => {
            bridge.serve(req, &conn, &sessions, tracker).await
        }
        Resource::HttpBridge(_) => web::text(StatusCode::NOT_FOUND, "not found\n"),
        Resource::LongPoll(lp) => lp.serve(req, rel, conn, &sessions, tracker).await,
        Resource::ReverseProxy(proxy) => proxy.serve(req, rel, &conn).await,
        Resource::WebSocketProxy(proxy) if rel.is_empty() || rel == "/" => {
            proxy.serve(req, &conn, &sessions, tracker).await
        }
        Resource::WebSocketProxy(_) => web::text(StatusCode::NOT_FOUND, "not found\n"),
        // Routing descends into nested trees; one is never the resource of a request.
        Resource::Path(_) => web::text(StatusCode::NOT_FOUND, "not found\n"),
        Resource::Upload(upload) if rel.is_empty() || rel == "/" => {
            upload.serve(req, &sessions, tracker).await
        }
        Resource::Upload(_) => web::text(StatusCode::NOT_FOUND, "not found\n"),
        Resource::Archive(archive) => archive.serve(&req, rel).await,
    }
}

fn websocket_request(
    mut req: Request<Incoming>,
    endpoint: &WsEndpoint,
    sessions: SessionConfig,
    mut conn: ConnectionInfo,
    tracker: &TaskTracker,
) -> Response<HttpBody> {
    let is_upgrade = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let origin = req
        .headers()
        .get(hyper::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if !endpoint.origin_allowed(origin) {
        return web::text(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    if !is_upgrade {
        if !endpoint.webstatus {
            return web::text(StatusCode::NOT_FOUND, "not found\n");
        }
        return web::text(
            StatusCode::UPGRADE_REQUIRED,
            "This is a WAMP WebSocket endpoint: connect with a WAMP client (subprotocols wamp.2.json, wamp.2.msgpack, wamp.2.cbor).\n",
        );
    }
    let mut set_cookie = None;
    if let Some(jar) = &endpoint.cookies {
        let (id, new_cookie) = jar.for_request(req.headers(), conn.channel_binding.is_some());
        let fresh = new_cookie.is_some();
        set_cookie = new_cookie;
        conn.cookie = Some(TrackingCookie {
            jar: jar.clone(),
            id,
            fresh,
        });
    }
    match websocket::accept(&mut req, &endpoint.serializers, &endpoint.settings) {
        Ok(websocket::Accepted {
            response,
            transport,
        }) => {
            let auth = endpoint.auth.clone();
            let conn = Box::new(conn);
            // Boxed: what the upgrade needs would otherwise stay in the session's task for as
            // long as the session lasts.
            let upgrade = Box::pin(transport);
            tracker.spawn(async move {
                let transport = match upgrade.await {
                    Ok(transport) => transport,
                    Err(e) => {
                        tracing::debug!("{e}");
                        return;
                    }
                };
                session::run(transport, sessions, auth, conn).await;
            });
            let (mut parts, _) = response.into_parts();
            if let Some(value) = set_cookie.and_then(|v| v.parse().ok()) {
                parts.headers.append(hyper::header::SET_COOKIE, value);
            }
            let (_, body) = web::text(StatusCode::OK, "").into_parts();
            Response::from_parts(parts, body)
        }
        Err(e) => web::text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
    }
}

/// A stream with bytes already read from it put back in front.
struct Prefixed {
    prefix: Option<u8>,
    inner: BoxedIo,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(b) = self.prefix.take() {
            if buf.remaining() > 0 {
                buf.put_slice(&[b]);
                return Poll::Ready(Ok(()));
            }
            self.prefix = Some(b);
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::{PathTree, Resource, wildcard_match};
    use std::sync::Arc;

    fn json(tag: &str) -> Resource {
        Resource::Redirect(tag.to_owned())
    }

    fn tag(found: Option<(&Resource, String)>) -> Option<(String, String)> {
        found.map(|(r, rel)| match r {
            Resource::Redirect(t) => (t.clone(), rel),
            other => panic!("unexpected resource {other:?}"),
        })
    }

    #[test]
    fn nested_path_services_route_to_their_own_children() {
        let mut deeper = PathTree::default();
        deeper.children.insert("info".into(), json("deeper-info"));
        let mut folder = PathTree {
            root: Some(json("folder-root")),
            ..PathTree::default()
        };
        folder.children.insert("files".into(), json("folder-files"));
        folder
            .children
            .insert("deeper".into(), Resource::Path(Arc::new(deeper)));
        let mut top = PathTree {
            root: Some(json("root")),
            ..PathTree::default()
        };
        top.children
            .insert("folder".into(), Resource::Path(Arc::new(folder)));
        let at = |path: &str| tag(top.route(path));
        let some = |t: &str, rel: &str| Some((t.to_owned(), rel.to_owned()));
        assert_eq!(at("/"), some("root", "/"));
        assert_eq!(at("/other/x"), some("root", "/other/x"));
        assert_eq!(at("/folder"), some("folder-root", ""));
        assert_eq!(at("/folder/"), some("folder-root", "/"));
        assert_eq!(
            at("/folder/files/a/b.txt"),
            some("folder-files", "/a/b.txt")
        );
        assert_eq!(at("/folder/unknown"), some("folder-root", "/unknown"));
        assert_eq!(at("/folder/deeper/info"), some("deeper-info", ""));
        // A nested tree without a root answers nothing for what it lacks.
        assert_eq!(at("/folder/deeper/nothing"), None);
    }

    #[test]
    fn origin_patterns_use_star_wildcards() {
        assert!(wildcard_match("*", "https://example.com"));
        assert!(wildcard_match(
            "https://*.example.com",
            "https://app.example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://example.org"
        ));
        assert!(wildcard_match(
            "http://localhost:*",
            "http://localhost:8080"
        ));
        assert!(wildcard_match("https://example.com", "https://example.com"));
        assert!(!wildcard_match(
            "https://example.com",
            "https://example.com.evil"
        ));
    }
}
