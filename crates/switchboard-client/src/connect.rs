//! Opening a connection to a router: TCP or Unix socket, optionally TLS, then the WebSocket or
//! RawSocket handshake in one serializer. [`Session::connect`](crate::Session::connect) then joins
//! over it as [`Session::join`](crate::Session::join) does over any transport.

use std::path::PathBuf;
use std::sync::Arc;

use switchboard_proto::Serializer;
use switchboard_transport::{BoxedIo, DEFAULT_MAX_MESSAGE_BYTES, rawsocket, websocket};

use crate::auth::Credential;
use crate::{Error, JoinOptions, Session};

/// Where the router is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address, `host:port`.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// Which WAMP transport to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportKind {
    /// WebSocket, upgrading on this URL path (e.g. `/ws`).
    WebSocket {
        /// URL path.
        path: String,
        /// Offer permessage-deflate.
        compression: bool,
    },
    /// RawSocket.
    RawSocket,
}

/// How to connect, and what to join.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Router endpoint.
    pub endpoint: Endpoint,
    /// TLS: the client config (trusted roots, and the client certificate for
    /// [`Credential::Tls`]) and the server name to verify; `None` for a plain connection.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// Transport.
    pub transport: TransportKind,
    /// Serializer.
    pub serializer: Serializer,
    /// The largest message we accept from the router, in bytes (RawSocket announces it).
    pub max_message_bytes: usize,
    /// The realm and the credentials.
    pub join: JoinOptions,
}

impl ConnectOptions {
    /// WebSocket at `ws://{addr}{path}`, joining `realm` anonymously.
    pub fn websocket(addr: impl ToString, path: &str, serializer: Serializer, realm: &str) -> Self {
        Self::new(
            Endpoint::Tcp(addr.to_string()),
            TransportKind::WebSocket {
                path: path.into(),
                compression: false,
            },
            serializer,
            realm,
        )
    }

    /// RawSocket over TCP at `addr`, joining `realm` anonymously.
    pub fn rawsocket(addr: impl ToString, serializer: Serializer, realm: &str) -> Self {
        Self::new(
            Endpoint::Tcp(addr.to_string()),
            TransportKind::RawSocket,
            serializer,
            realm,
        )
    }

    /// A plain connection to `endpoint`, joining `realm` anonymously.
    pub fn new(
        endpoint: Endpoint,
        transport: TransportKind,
        serializer: Serializer,
        realm: &str,
    ) -> Self {
        Self {
            endpoint,
            tls: None,
            transport,
            serializer,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            join: JoinOptions::new(realm),
        }
    }

    /// The same options over TLS, verifying the router as `server_name`.
    pub fn with_tls(self, config: Arc<rustls::ClientConfig>, server_name: &str) -> Self {
        Self {
            tls: Some((config, server_name.into())),
            ..self
        }
    }

    /// The same options, offering one more credential (see [`JoinOptions::with_credential`]).
    pub fn with_credential(self, credential: Credential) -> Self {
        Self {
            join: self.join.with_credential(credential),
            ..self
        }
    }

    /// The same options with ticket authentication as `authid`.
    pub fn with_ticket(self, authid: impl Into<String>, ticket: impl Into<String>) -> Self {
        Self {
            join: self.join.with_ticket(authid, ticket),
            ..self
        }
    }

    /// The same options with WAMP-CRA authentication as `authid`.
    pub fn with_wampcra(self, authid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            join: self.join.with_wampcra(authid, secret),
            ..self
        }
    }

    /// The same options with Cryptosign authentication (see [`JoinOptions::with_cryptosign`]).
    pub fn with_cryptosign(self, secret_key: [u8; 32]) -> Self {
        Self {
            join: self.join.with_cryptosign(secret_key),
            ..self
        }
    }
}

/// Opens the socket, TLS and the WAMP transport, then joins.
pub(crate) async fn connect(opts: &ConnectOptions) -> Result<Session, Error> {
    let io: BoxedIo = match &opts.endpoint {
        Endpoint::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr).await?;
            // WAMP messages are small and latency-bound; Nagle would hold them back.
            s.set_nodelay(true)?;
            Box::new(s)
        }
        Endpoint::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
    };
    let io: BoxedIo = match &opts.tls {
        Some((config, server_name)) => {
            let name =
                rustls_pki_types::ServerName::try_from(server_name.clone()).map_err(|e| {
                    Error::InvalidOptions(format!("bad TLS server name {server_name:?}: {e}"))
                })?;
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            Box::new(connector.connect(name, io).await?)
        }
        None => io,
    };
    match &opts.transport {
        TransportKind::RawSocket => {
            let t = rawsocket::connect(io, opts.serializer, opts.max_message_bytes).await?;
            Session::join(t, &opts.join).await
        }
        TransportKind::WebSocket { path, compression } => {
            // The Host header: the TCP address, or a placeholder for a Unix socket (which has no
            // host name; routers do not route WAMP by Host).
            let host = match &opts.endpoint {
                Endpoint::Tcp(a) => a.as_str(),
                Endpoint::Unix(_) => "localhost",
            };
            let scheme = if opts.tls.is_some() { "wss" } else { "ws" };
            let url = format!("{scheme}://{host}{path}");
            let settings = websocket::WebSocketSettings::new(opts.max_message_bytes, *compression);
            let t = websocket::connect(&url, io, opts.serializer, &settings).await?;
            Session::join(t, &opts.join).await
        }
    }
}
