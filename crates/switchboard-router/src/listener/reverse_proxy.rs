//! Crossbar's `reverseproxy` web path: requests below the path go to another HTTP server, their
//! bodies and the answers' bodies streamed (never held whole), with the headers Crossbar sets:
//! `Host` (the upstream's), `X-Forwarded-Host`, `X-Forwarded-For`, `X-Real-IP`,
//! `X-Forwarded-Port` (default 80) and `X-Forwarded-Proto` (default `http`). Hop-by-hop headers
//! are not passed on, either way. An upstream that cannot be reached answers 502, one that sends
//! no answer within a minute 504; a path with a `.` or `..` segment is refused (400) rather than
//! passed on, so a request cannot climb out of the proxied `path` on an upstream that resolves
//! them.

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use std::time::Duration;

use crate::auth::ConnectionInfo;
use crate::config::ReverseProxyPathConfig;
use crate::web::{self, HttpBody};

/// One reverse proxy path.
#[derive(Debug, Clone)]
pub struct ReverseProxy {
    /// `http://host:port`.
    origin: String,
    /// `Host` for the upstream (the port only where it is not 80).
    host: HeaderValue,
    base_path: String,
    forwarded_port: HeaderValue,
    forwarded_proto: HeaderValue,
    client: Client<HttpConnector, Incoming>,
}

/// How long the upstream has to start its answer (its body may then stream for as long as it
/// takes).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Headers that belong to one connection, not to the request or response (RFC 9110, 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(super) fn without_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the `Connection` header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

impl ReverseProxy {
    /// The proxy of a (validated) `reverseproxy` path.
    pub fn new(config: &ReverseProxyPathConfig) -> Self {
        let port = config.port.unwrap_or(80);
        let host = if port == 80 {
            config.host.clone()
        } else {
            format!("{}:{port}", config.host)
        };
        Self {
            origin: format!("http://{host}"),
            host: HeaderValue::from_str(&host).unwrap_or(HeaderValue::from_static("localhost")),
            base_path: config.path.clone().unwrap_or_default(),
            forwarded_port: HeaderValue::from(config.forwarded_port.unwrap_or(80)),
            forwarded_proto: HeaderValue::from_str(
                config.forwarded_proto.as_deref().unwrap_or("http"),
            )
            .unwrap_or(HeaderValue::from_static("http")),
            client: Client::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
        }
    }

    /// Passes `req` on; `rel` is its path below the proxy's own.
    pub async fn serve(
        &self,
        req: Request<Incoming>,
        rel: &str,
        conn: &ConnectionInfo,
    ) -> Response<HttpBody> {
        let dot_segment = rel.split('/').any(|segment| {
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            decoded == "." || decoded == ".."
        });
        if dot_segment {
            return web::text(
                StatusCode::BAD_REQUEST,
                "no `.` or `..` segments through the proxy\n",
            );
        }
        let (mut parts, body) = req.into_parts();
        let path = match (self.base_path.ends_with('/'), rel.strip_prefix('/')) {
            (true, Some(rest)) => format!("{}{rest}", self.base_path),
            _ => format!("{}{rel}", self.base_path),
        };
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        let uri = match parts.uri.query() {
            Some(q) => format!("{}{path}?{q}", self.origin),
            None => format!("{}{path}", self.origin),
        };
        let Ok(uri) = uri.parse() else {
            return web::text(StatusCode::BAD_REQUEST, "cannot build the upstream URL\n");
        };
        let requested_host = parts.headers.get(header::HOST).cloned();
        let h = &mut parts.headers;
        without_hop_by_hop(h);
        h.insert(header::HOST, self.host.clone());
        if let Some(requested) = requested_host {
            h.insert("x-forwarded-host", requested);
        }
        if let Some(ip) = conn
            .peer_addr
            .and_then(|a| HeaderValue::from_str(&a.ip().to_string()).ok())
        {
            h.insert("x-forwarded-for", ip.clone());
            h.insert("x-real-ip", ip);
        }
        h.insert("x-forwarded-port", self.forwarded_port.clone());
        h.insert("x-forwarded-proto", self.forwarded_proto.clone());
        parts.uri = uri;
        parts.version = hyper::Version::HTTP_11;
        let answer = tokio::time::timeout(
            ANSWER_TIMEOUT,
            self.client.request(Request::from_parts(parts, body)),
        );
        let Ok(answer) = answer.await else {
            tracing::warn!(upstream = %self.origin, "reverse proxy: no answer within {ANSWER_TIMEOUT:?}");
            return web::text(
                StatusCode::GATEWAY_TIMEOUT,
                "the upstream server did not answer in time\n",
            );
        };
        match answer {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                without_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.map_err(std::io::Error::other).boxed_unsync())
            }
            Err(e) => {
                tracing::warn!(upstream = %self.origin, "reverse proxy: {e}");
                web::text(
                    StatusCode::BAD_GATEWAY,
                    "the upstream server did not answer\n",
                )
            }
        }
    }
}
