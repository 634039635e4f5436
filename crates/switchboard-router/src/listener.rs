//! Accepting connections: binds each configured transport's endpoint (TCP or Unix socket), and per
//! connection decides what it speaks. A `universal` listener reads the first octet: 0x7F starts a
//! RawSocket handshake, anything else is HTTP, where configured paths upgrade to WebSocket.

use std::convert::Infallible;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchboard_proto::Serializer;
use switchboard_transport::{BoxedIo, DEFAULT_MAX_MESSAGE_BYTES, rawsocket, websocket};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio_util::task::TaskTracker;

use crate::config::{self, EndpointConfig, TransportConfig, WebSocketOptions, WebSocketPathConfig};
use crate::session::{self, SessionConfig};

/// How long a new connection has for its first octet, RawSocket handshake or HTTP upgrade.
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

/// What one transport serves, resolved from its config.
#[derive(Debug, Clone)]
pub struct Protocols {
    /// RawSocket serializers and size limit, if RawSocket is served.
    rawsocket: Option<(Vec<Serializer>, usize)>,
    /// WebSocket endpoints by path (`None` path = any path, for a plain `websocket` transport).
    websocket: Vec<(Option<String>, WsEndpoint)>,
}

#[derive(Debug, Clone)]
struct WsEndpoint {
    serializers: Vec<Serializer>,
    max_message_bytes: usize,
    compression: bool,
}

impl WsEndpoint {
    fn from_options(o: &WebSocketOptions) -> Self {
        Self {
            serializers: config::serializers(&o.serializers),
            max_message_bytes: o
                .options
                .max_message_size
                .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            compression: o.options.compression_enabled(),
        }
    }
}

impl Protocols {
    /// The protocols of a transport config.
    pub fn from_config(t: &TransportConfig) -> Self {
        let rawsocket = |o: &config::RawSocketOptions| {
            (
                config::serializers(&o.serializers),
                o.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            )
        };
        match t {
            TransportConfig::Universal(u) => Self {
                rawsocket: u.rawsocket.as_ref().map(rawsocket),
                websocket: u
                    .websocket
                    .iter()
                    .map(|(path, WebSocketPathConfig::WebSocket(o))| {
                        let path = format!("/{}", path.trim_start_matches('/'));
                        (Some(path), WsEndpoint::from_options(o))
                    })
                    .collect(),
            },
            TransportConfig::WebSocket(ws) => Self {
                rawsocket: None,
                websocket: vec![(None, WsEndpoint::from_options(&ws.websocket()))],
            },
            TransportConfig::RawSocket(rs) => Self {
                rawsocket: Some(rawsocket(&rs.rawsocket())),
                websocket: Vec::new(),
            },
        }
    }

    fn websocket_for(&self, path: &str) -> Option<&WsEndpoint> {
        self.websocket
            .iter()
            .find(|(p, _)| p.as_deref().is_none_or(|p| p == path))
            .map(|(_, e)| e)
    }
}

/// A bound listener, ready to accept.
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix socket (the path is removed when the listener is dropped at shutdown).
    Unix(UnixListener, PathBuf),
}

/// Binds an endpoint. Relative Unix socket paths resolve against `base_dir`.
pub fn bind(
    endpoint: &EndpointConfig,
    base_dir: &std::path::Path,
) -> io::Result<(Listener, ListenAddr)> {
    match endpoint {
        EndpointConfig::Tcp {
            port,
            interface,
            backlog,
            version,
        } => {
            let host = interface.clone().unwrap_or_else(|| {
                if *version == Some(6) {
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
            let addr = std::net::SocketAddr::new(ip, *port);
            let socket = if addr.is_ipv6() {
                TcpSocket::new_v6()?
            } else {
                TcpSocket::new_v4()?
            };
            socket.set_reuseaddr(true)?;
            socket.set_nodelay(true)?;
            socket.bind(addr)?;
            let listener = socket.listen(backlog.unwrap_or(1024))?;
            let local = listener.local_addr()?;
            Ok((Listener::Tcp(listener), ListenAddr::Tcp(local)))
        }
        EndpointConfig::Unix { path } => {
            let path = base_dir.join(path);
            // A socket file left behind by a previous run would make bind fail.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                std::fs::remove_file(&path)?;
            }
            let listener = UnixListener::bind(&path)?;
            Ok((
                Listener::Unix(listener, path.clone()),
                ListenAddr::Unix(path),
            ))
        }
    }
}

/// Accepts connections until shutdown; each connection runs on its own tracked task.
pub async fn serve(
    listener: Listener,
    protocols: Arc<Protocols>,
    sessions: SessionConfig,
    tracker: TaskTracker,
) {
    let shutdown = sessions.shutdown.clone();
    loop {
        let accepted: io::Result<BoxedIo> = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = accept(&listener) => r,
        };
        match accepted {
            Ok(io) => {
                let protocols = protocols.clone();
                let sessions = sessions.clone();
                let tracker2 = tracker.clone();
                tracker.spawn(async move { connection(io, protocols, sessions, tracker2).await });
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

async fn accept(listener: &Listener) -> io::Result<BoxedIo> {
    match listener {
        Listener::Tcp(l) => {
            let (stream, _) = l.accept().await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream))
        }
        Listener::Unix(l, _) => {
            let (stream, _) = l.accept().await?;
            Ok(Box::new(stream))
        }
    }
}

/// Serves one connection: sniff, then RawSocket or HTTP/WebSocket.
async fn connection(
    mut io: BoxedIo,
    protocols: Arc<Protocols>,
    sessions: SessionConfig,
    tracker: TaskTracker,
) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(OPENING_HANDSHAKE_TIMEOUT, io.read_exact(&mut first)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    if first[0] == rawsocket::MAGIC {
        let Some((serializers, max)) = &protocols.rawsocket else {
            return;
        };
        match tokio::time::timeout(
            OPENING_HANDSHAKE_TIMEOUT,
            rawsocket::accept(io, *max, serializers),
        )
        .await
        {
            Ok(Ok(transport)) => session::run(transport, sessions).await,
            Ok(Err(e)) => tracing::debug!("RawSocket handshake failed: {e}"),
            Err(_) => tracing::debug!("RawSocket handshake timed out"),
        }
        return;
    }
    if protocols.websocket.is_empty() {
        return;
    }
    let io = TokioIo::new(Prefixed {
        prefix: Some(first[0]),
        inner: io,
    });
    let service = service_fn(move |req| {
        let protocols = protocols.clone();
        let sessions = sessions.clone();
        let tracker = tracker.clone();
        async move { Ok::<_, Infallible>(http_request(req, &protocols, sessions, &tracker)) }
    });
    let conn = http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(OPENING_HANDSHAKE_TIMEOUT)
        .serve_connection(io, service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("HTTP connection ended: {e}");
    }
}

fn text_response(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::copy_from_slice(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn http_request(
    mut req: Request<Incoming>,
    protocols: &Protocols,
    sessions: SessionConfig,
    tracker: &TaskTracker,
) -> Response<Full<Bytes>> {
    let Some(endpoint) = protocols.websocket_for(req.uri().path()) else {
        return text_response(StatusCode::NOT_FOUND, "not found\n");
    };
    let is_upgrade = req
        .headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return text_response(
            StatusCode::UPGRADE_REQUIRED,
            "This is a WAMP WebSocket endpoint: connect with a WAMP client (subprotocols wamp.2.json, wamp.2.msgpack, wamp.2.cbor).\n",
        );
    }
    match websocket::accept(
        &mut req,
        &endpoint.serializers,
        endpoint.max_message_bytes,
        endpoint.compression,
    ) {
        Ok(websocket::Accepted {
            response,
            transport,
        }) => {
            tracker.spawn(async move {
                match transport.await {
                    Ok(t) => session::run(t, sessions).await,
                    Err(e) => tracing::debug!("{e}"),
                }
            });
            let (parts, _) = response.into_parts();
            Response::from_parts(parts, Full::new(Bytes::new()))
        }
        Err(e) => text_response(StatusCode::BAD_REQUEST, &format!("{e}\n")),
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
