//! Crossbar's `websocket-reverseproxy` web path: a WebSocket opening handshake on the path is
//! passed on to the backend WebSocket server (`backend.endpoint`, at `backend.url`'s path), and
//! once the backend accepts it (101) the two connections are joined byte for byte until either
//! side closes. The WebSocket is the client's and the backend's: its subprotocol, its extensions
//! (permessage-deflate) and its frames pass through untouched, so anything the backend speaks
//! over WebSocket (WAMP or not) works through the proxy. The frontend's `allowed_origins` apply;
//! the backend hears who the client is from `X-Forwarded-For`, `X-Forwarded-Host` and
//! `X-Forwarded-Proto`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchboard_transport::BoxedIo;
use tokio_util::task::TaskTracker;

use crate::auth::ConnectionInfo;
use crate::config::WebSocketReverseProxyPathConfig;
use crate::session::SessionConfig;
use crate::web::{self, HttpBody};

/// How long the backend has to accept the connection and answer the opening handshake.
const BACKEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the backend listens.
#[derive(Debug, Clone)]
enum Backend {
    Tcp(String, u16),
    Unix(PathBuf),
}

/// One WebSocket proxy path.
#[derive(Debug, Clone)]
pub struct WebSocketProxy {
    backend: Backend,
    /// The path and query of the backend URL.
    target: String,
    /// `Host` for the backend (from its URL).
    host: HeaderValue,
    allowed_origins: Option<Vec<String>>,
    allow_null_origin: bool,
}

/// Headers of the client's handshake that belong to its connection (or that the proxy sets
/// itself, so that a client cannot forge them), not passed to the backend.
const NOT_PASSED_ON: [&str; 14] = [
    "connection",
    "keep-alive",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-real-ip",
];

impl WebSocketProxy {
    /// The proxy of a (validated) `websocket-reverseproxy` path; a Unix socket path resolves
    /// against `base`.
    pub fn new(config: &WebSocketReverseProxyPathConfig, base: &Path) -> Self {
        let e = &config.backend.endpoint;
        let backend = match e.path.as_deref() {
            Some(path) if e.kind == "unix" => Backend::Unix(base.join(path)),
            _ => Backend::Tcp(
                e.host.clone().unwrap_or_else(|| "127.0.0.1".into()),
                e.port.unwrap_or(80),
            ),
        };
        let url = config
            .backend
            .url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok());
        let target = url.as_ref().map_or_else(
            || "/".to_owned(),
            |u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            },
        );
        let host = url
            .as_ref()
            .and_then(|u| {
                let host = u.host_str()?;
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_owned(),
                })
            })
            .and_then(|h| HeaderValue::from_str(&h).ok())
            .unwrap_or(HeaderValue::from_static("localhost"));
        Self {
            backend,
            target,
            host,
            allowed_origins: config.options.allowed_origins.clone(),
            allow_null_origin: config.options.allow_null_origin.unwrap_or(true),
        }
    }

    fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match (origin, &self.allowed_origins) {
            (None, _) => true,
            (Some("null"), _) => self.allow_null_origin,
            (Some(_), None) => true,
            (Some(o), Some(patterns)) => patterns.iter().any(|p| super::wildcard_match(p, o)),
        }
    }

    async fn connect(&self) -> std::io::Result<BoxedIo> {
        Ok(match &self.backend {
            Backend::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                Box::new(stream)
            }
            Backend::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        })
    }

    /// Answers a request to the path: a WebSocket handshake goes to the backend, anything else
    /// gets 426.
    pub async fn serve(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnectionInfo,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Response<HttpBody> {
        let upgrade = req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        // A WebSocket handshake is an HTTP/1.1 GET without a body (RFC 6455, 4.1).
        let handshake = upgrade
            && req.method() == hyper::Method::GET
            && req.version() == hyper::Version::HTTP_11
            && !req.headers().contains_key(header::CONTENT_LENGTH)
            && !req.headers().contains_key(header::TRANSFER_ENCODING);
        if !handshake {
            return web::text(
                StatusCode::UPGRADE_REQUIRED,
                "This is a WebSocket proxy: connect with a WebSocket client.\n",
            );
        }
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        if !self.origin_allowed(origin) {
            return web::text(StatusCode::FORBIDDEN, "origin not allowed\n");
        }
        let mut forwarded = Request::get(self.target.as_str())
            .body(Empty::<Bytes>::new())
            .expect("a GET with a parsed path is a valid request");
        // Headers the client's `Connection` names are its connection's too.
        let named: Vec<String> = req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|name| name.trim().to_ascii_lowercase())
            .filter(|name| name != "upgrade")
            .collect();
        let h = forwarded.headers_mut();
        for (name, value) in req.headers() {
            if !NOT_PASSED_ON.contains(&name.as_str()) && !named.iter().any(|n| n == name.as_str())
            {
                h.append(name.clone(), value.clone());
            }
        }
        if let Some(requested) = req.headers().get(header::HOST) {
            h.insert(
                HeaderName::from_static("x-forwarded-host"),
                requested.clone(),
            );
        }
        h.insert(header::HOST, self.host.clone());
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Some(ip) = conn
            .peer_addr
            .and_then(|a| HeaderValue::from_str(&a.ip().to_string()).ok())
        {
            h.insert(HeaderName::from_static("x-forwarded-for"), ip);
        }
        let proto = if conn.channel_binding.is_some() {
            "https"
        } else {
            "http"
        };
        h.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static(proto),
        );
        let client_upgrade = hyper::upgrade::on(&mut req);

        let handshake = async {
            let io = self.connect().await.map_err(|e| e.to_string())?;
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(|e| e.to_string())?;
            // Drives the backend connection through the handshake and hands it over at the upgrade.
            tracker.spawn(async move {
                if let Err(e) = connection.with_upgrades().await {
                    tracing::debug!("WebSocket proxy backend connection: {e}");
                }
            });
            sender
                .send_request(forwarded)
                .await
                .map_err(|e| e.to_string())
        };
        let mut answer = match tokio::time::timeout(BACKEND_TIMEOUT, handshake).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                tracing::warn!(backend = ?self.backend, "WebSocket proxy: {e}");
                return web::text(
                    StatusCode::BAD_GATEWAY,
                    "the WebSocket backend did not answer\n",
                );
            }
            Err(_) => {
                tracing::warn!(backend = ?self.backend, "WebSocket proxy: no answer within {BACKEND_TIMEOUT:?}");
                return web::text(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the WebSocket backend did not answer in time\n",
                );
            }
        };
        if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
            // The backend refused the handshake: the client gets its answer.
            let (mut parts, body) = answer.into_parts();
            super::reverse_proxy::without_hop_by_hop(&mut parts.headers);
            return Response::from_parts(parts, body.map_err(std::io::Error::other).boxed_unsync());
        }
        let backend_upgrade = hyper::upgrade::on(&mut answer);
        let shutdown = sessions.shutdown.clone();
        tracker.spawn(async move {
            let (client, backend) = tokio::join!(client_upgrade, backend_upgrade);
            let (Ok(client), Ok(backend)) = (client, backend) else {
                return;
            };
            let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
            tokio::select! {
                joined = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
                    if let Err(e) = joined {
                        tracing::debug!("WebSocket proxy connection ended: {e}");
                    }
                }
                // At shutdown both connections close with the node.
                () = shutdown.cancelled() => {}
            }
        });
        let (parts, _) = answer.into_parts();
        let (_, body) = web::text(StatusCode::SWITCHING_PROTOCOLS, "").into_parts();
        let mut response = Response::from_parts(parts, body);
        response.headers_mut().remove(header::CONTENT_TYPE);
        response
    }
}
