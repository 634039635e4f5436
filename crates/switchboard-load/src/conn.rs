//! The load tool's own thin client: one connection, driven by the one task that owns it.
//!
//! `switchboard-client` runs a background task per session and hands every reply back through a
//! channel and a oneshot; that costs two task wake-ups and an allocation per message, which would
//! make the load tool, not the router, the bottleneck. Here the scenario task owns the transport
//! itself, encodes and decodes with `switchboard-proto` directly, and batches: it drains every
//! message already buffered ([`Conn::try_recv`]) before one flush.
//!
//! It also owns what a URL names ([`Target`]: WebSocket, WebSocket over TLS, RawSocket, or a
//! NATS server for the bare-broker reference), and the [`Wire`] the sending and receiving loops
//! drive, which a NATS connection implements too.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use futures::FutureExt as _;
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject as _;
use switchboard_proto::errors::{CLOSE_NORMAL, GOODBYE_AND_OUT};
use switchboard_proto::{Dict, Id, Message, RawValue, Serializer, Value, codec};
use switchboard_transport::rawsocket::{self, RawSocket};
use switchboard_transport::websocket::{self, WebSocketSettings, WebSocketTransport};
use switchboard_transport::{DEFAULT_MAX_MESSAGE_BYTES, Transport, TransportError};
use tokio::io::BufReader;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// How long connecting, the transport handshake and HELLO/WELCOME may take together.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long we wait for the router's GOODBYE after ours.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Read buffer in front of a WebSocket connection under load.
const DEFAULT_READ_BUFFER: usize = 16 * 1024;

/// Which transport a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ws://host:port/path`, or `wss://host:port/path` (over TLS).
    WebSocket,
    /// `rs://host:port` (also `rawsocket://` and `tcp://`).
    RawSocket,
    /// `nats://host:port`: no WAMP router but a NATS server, the bare-broker reference of `rpc`
    /// and `pubsub` (`scenario::nats`); [`Target::open`] refuses it.
    Nats,
}

/// The TLS side of a `wss://` target: the client configuration, and the name the router's
/// certificate must carry (the URL's host, a DNS name or an IP address).
#[derive(Clone)]
struct TlsClient {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// A TLS client configuration (rustls on ring, as everywhere in the workspace) that trusts the
/// certificates in the PEM file `ca_file` (a CA, or a router's self-signed certificate), or
/// Mozilla's roots without one.
fn tls_connector(ca_file: Option<&Path>) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let shown = path.display();
            for cert in rustls_pki_types::CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading {shown}"))?
            {
                roots
                    .add(cert.with_context(|| format!("reading {shown}"))?)
                    .with_context(|| format!("a certificate in {shown}"))?;
            }
            if roots.is_empty() {
                bail!("{shown} holds no PEM certificate");
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Where and how to connect: parsed once, so that opening a connection costs no parsing or DNS.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// The transport.
    pub kind: Kind,
    /// The resolved router address.
    pub addr: SocketAddr,
    /// The serializer every connection uses.
    pub serializer: Serializer,
    /// The realm to join.
    pub realm: String,
    /// Local addresses to bind, round robin (empty: let the kernel pick). Each source address has
    /// its own ~28k ephemeral ports towards one router port, so several let one machine open
    /// hundreds of thousands of connections.
    source_addrs: Arc<Vec<IpAddr>>,
    next_source: Arc<AtomicUsize>,
    /// Bytes of read buffer in front of each WebSocket connection.
    read_buffer: usize,
    /// How sessions authenticate; anonymous when `None`.
    credentials: Option<Arc<Credentials>>,
    /// TLS under the WebSocket (`wss://`).
    tls: Option<TlsClient>,
}

/// Credentials every session of a run authenticates with.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// Ticket authentication.
    Ticket {
        /// The principal.
        authid: String,
        /// The ticket.
        ticket: String,
    },
    /// WAMP-CRA.
    WampCra {
        /// The principal.
        authid: String,
        /// The secret (or password a salted key is derived from).
        secret: String,
    },
}

impl Credentials {
    fn method_and_authid(&self) -> (&'static str, &str) {
        match self {
            Credentials::Ticket { authid, .. } => ("ticket", authid),
            Credentials::WampCra { authid, .. } => ("wampcra", authid),
        }
    }

    /// The AUTHENTICATE signature answering a CHALLENGE with `extra`.
    fn answer(&self, extra: &Dict) -> anyhow::Result<String> {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD as BASE64;
        match self {
            Credentials::Ticket { ticket, .. } => Ok(ticket.clone()),
            Credentials::WampCra { secret, .. } => {
                let challenge = extra
                    .get("challenge")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("WAMP-CRA CHALLENGE without a challenge"))?;
                // A salted secret: the key is base64(PBKDF2-HMAC-SHA256(secret, salt)), as
                // Autobahn's derive_key computes it.
                let key = match extra.get("salt").and_then(Value::as_str) {
                    Some(salt) => {
                        let number = |k: &str| extra.get(k).and_then(Value::as_u64);
                        let iterations = number("iterations").unwrap_or(1000);
                        let keylen = number("keylen").unwrap_or(32);
                        let mut derived = vec![0u8; usize::try_from(keylen)?];
                        ring::pbkdf2::derive(
                            ring::pbkdf2::PBKDF2_HMAC_SHA256,
                            std::num::NonZeroU32::new(u32::try_from(iterations)?)
                                .ok_or_else(|| anyhow!("zero PBKDF2 iterations"))?,
                            salt.as_bytes(),
                            secret.as_bytes(),
                            &mut derived,
                        );
                        BASE64.encode(derived).into_bytes()
                    }
                    None => secret.as_bytes().to_vec(),
                };
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
                Ok(BASE64.encode(ring::hmac::sign(&key, challenge.as_bytes())))
            }
        }
    }
}

impl Target {
    /// Parses `url` (`ws://host:port/path`, `wss://host:port/path`, `rs://host:port` or
    /// `nats://host:port`) and resolves its host. A `wss://` target trusts Mozilla's roots until
    /// [`Target::with_ca_file`] says otherwise.
    pub async fn new(
        url: &str,
        serializer: Serializer,
        realm: &str,
        source_addrs: Vec<IpAddr>,
    ) -> anyhow::Result<Self> {
        // (kind, over TLS, the port when the URL has none: 80 and 443 for WebSocket, 8080 as the
        // WAMP examples use for RawSocket, NATS's 4222)
        let (kind, secure, default_port, rest) = if let Some(rest) = url.strip_prefix("ws://") {
            (Kind::WebSocket, false, 80, rest)
        } else if let Some(rest) = url.strip_prefix("wss://") {
            (Kind::WebSocket, true, 443, rest)
        } else if let Some(rest) = ["rs://", "rawsocket://", "tcp://"]
            .iter()
            .find_map(|p| url.strip_prefix(p))
        {
            (Kind::RawSocket, false, 8080, rest)
        } else if let Some(rest) = url.strip_prefix("nats://") {
            (Kind::Nats, false, 4222, rest)
        } else {
            bail!(
                "unsupported URL {url:?}: use ws://host:port/path, wss://host:port/path, \
                 rs://host:port or nats://host:port"
            );
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
        });
        let with_port = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{default_port}")
        };
        let tls = if secure {
            let host = with_port
                .rsplit_once(':')
                .map_or(authority, |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let server_name = ServerName::try_from(host.to_owned())
                .with_context(|| format!("{host:?} is no name a certificate can carry"))?;
            Some(TlsClient {
                connector: tls_connector(None)?,
                server_name,
            })
        } else {
            None
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .with_context(|| format!("resolving {with_port}"))?
            .next()
            .ok_or_else(|| anyhow!("{with_port} resolves to no address"))?;
        Ok(Self {
            url: url.to_owned(),
            kind,
            addr,
            serializer,
            realm: realm.to_owned(),
            source_addrs: Arc::new(source_addrs),
            next_source: Arc::new(AtomicUsize::new(0)),
            read_buffer: DEFAULT_READ_BUFFER,
            credentials: None,
            tls,
        })
    }

    /// The same target, trusting only the certificates in `ca_file` (PEM) over TLS; a target
    /// without TLS, or no file, leaves it as it is.
    pub fn with_ca_file(mut self, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        if let (Some(tls), Some(path)) = (self.tls.as_mut(), ca_file) {
            tls.connector = tls_connector(Some(path))?;
        }
        Ok(self)
    }

    /// The same target, authenticating its sessions with `credentials`.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials.map(Arc::new);
        self
    }

    /// The same target with `bytes` of read buffer per WebSocket connection: `idle` holds
    /// hundreds of thousands of connections that receive nothing, and needs little.
    pub fn with_read_buffer(mut self, bytes: usize) -> Self {
        self.read_buffer = bytes;
        self
    }

    /// `websocket`, `websocket-tls`, `rawsocket` or `nats`, for the report.
    pub fn transport_name(&self) -> &'static str {
        match (self.kind, self.tls.is_some()) {
            (Kind::WebSocket, false) => "websocket",
            (Kind::WebSocket, true) => "websocket-tls",
            (Kind::RawSocket, _) => "rawsocket",
            (Kind::Nats, _) => "nats",
        }
    }

    /// Opens a TCP connection and runs the transport handshake (no WAMP yet).
    pub async fn open(&self) -> anyhow::Result<Conn> {
        if self.kind == Kind::Nats {
            // Before connecting: NATS speaks first, and its INFO line is no handshake reply.
            bail!(
                "{} is a NATS server: only rpc and pubsub run against NATS",
                self.url
            );
        }
        let socket = if self.addr.is_ipv6() {
            TcpSocket::new_v6()?
        } else {
            TcpSocket::new_v4()?
        };
        if !self.source_addrs.is_empty() {
            let i = self.next_source.fetch_add(1, Ordering::Relaxed) % self.source_addrs.len();
            socket
                .bind(SocketAddr::new(self.source_addrs[i], 0))
                .with_context(|| format!("binding source address {}", self.source_addrs[i]))?;
        }
        let stream: TcpStream = socket
            .connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        // Small WAMP messages must not wait for Nagle's algorithm.
        stream.set_nodelay(true)?;
        Ok(match (self.kind, &self.tls) {
            (Kind::WebSocket, Some(tls)) => {
                let stream = tls
                    .connector
                    .connect(tls.server_name.clone(), stream)
                    .await
                    .with_context(|| format!("TLS handshake with {}", self.addr))?;
                Conn::Wss(Box::new(self.websocket_over(stream).await?))
            }
            (Kind::WebSocket, None) => Conn::Ws(Box::new(self.websocket_over(stream).await?)),
            (Kind::RawSocket, _) => Conn::Rs(Box::new(
                rawsocket::connect(Box::new(stream), self.serializer, DEFAULT_MAX_MESSAGE_BYTES)
                    .await?,
            )),
            (Kind::Nats, _) => bail!("{} is a NATS server", self.url),
        })
    }

    /// The WebSocket handshake over `stream` (TCP, or TLS over TCP).
    async fn websocket_over<S>(
        &self,
        stream: S,
    ) -> Result<WebSocketTransport<BufReader<S>>, TransportError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        websocket::connect(
            &self.url,
            // yawc's client side reads the socket with only the bytes the current frame still
            // lacks as buffer room (strace shows reads of 1, 13, 21, 42 bytes), a syscall or more
            // per message, which made the load tool more expensive per call than the router; over
            // TLS, each is a trip through both layers' poll functions. A read buffer in front
            // makes it one read per burst.
            BufReader::with_capacity(self.read_buffer, stream),
            self.serializer,
            &WebSocketSettings::new(DEFAULT_MAX_MESSAGE_BYTES, false),
        )
        .await
    }

    /// Opens a connection and joins the realm anonymously, within [`OPEN_TIMEOUT`].
    pub async fn join(&self) -> anyhow::Result<Wamp> {
        tokio::time::timeout(OPEN_TIMEOUT, self.join_inner())
            .await
            .map_err(|_| anyhow!("no WELCOME within {OPEN_TIMEOUT:?}"))?
    }

    async fn join_inner(&self) -> anyhow::Result<Wamp> {
        let mut conn = self.open().await?;
        let s = self.serializer;
        let mut details = hello_details();
        if let Some(c) = &self.credentials {
            let (method, authid) = c.method_and_authid();
            details.insert("authmethods".into(), Value::List(vec![method.into()]));
            details.insert("authid".into(), authid.into());
        }
        let hello = Message::Hello {
            realm: self.realm.clone(),
            details,
        };
        conn.send(codec::encode(s, &hello)?).await?;
        let mut challenged = false;
        loop {
            let reply = conn
                .recv()
                .await?
                .ok_or_else(|| anyhow!("connection closed before WELCOME"))?;
            match codec::decode(s, &reply)? {
                Message::Welcome { session, .. } => {
                    return Ok(Wamp {
                        conn,
                        serializer: s,
                        session,
                        next_request: 0,
                    });
                }
                Message::Challenge { extra, .. } if !challenged => {
                    let Some(c) = &self.credentials else {
                        bail!("CHALLENGE to an anonymous HELLO");
                    };
                    challenged = true;
                    let signature = c.answer(&extra)?;
                    let answer = Message::Authenticate {
                        signature,
                        extra: Dict::new(),
                    };
                    conn.send(codec::encode(s, &answer)?).await?;
                }
                Message::Abort { reason, details } => bail!("ABORT {reason} {details:?}"),
                other => bail!("expected WELCOME, got {}", other.message_type().name()),
            }
        }
    }
}

fn hello_details() -> Dict {
    let mut roles = Dict::new();
    for role in ["caller", "callee", "publisher", "subscriber"] {
        roles.insert(role.into(), Value::Dict(Dict::new()));
    }
    let mut details = Dict::new();
    details.insert("roles".into(), Value::Dict(roles));
    details.insert("agent".into(), "switchboard-load".into());
    details
}

/// One transport connection, statically dispatched (no boxed futures per message).
pub enum Conn {
    /// WebSocket over TCP.
    Ws(Box<WebSocketTransport<BufReader<TcpStream>>>),
    /// WebSocket over TLS over TCP.
    Wss(Box<WebSocketTransport<BufReader<TlsStream<TcpStream>>>>),
    /// RawSocket over TCP.
    Rs(Box<RawSocket>),
}

impl Conn {
    /// The next message, or `None` when the peer closed.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        match self {
            Conn::Ws(t) => t.recv().await,
            Conn::Wss(t) => t.recv().await,
            Conn::Rs(t) => t.recv().await,
        }
    }

    /// A message that is already buffered, without waiting. Both transports' `recv` are
    /// cancel-safe (the router's session loop relies on that too), so dropping the pending future
    /// loses nothing.
    pub fn try_recv(&mut self) -> Option<Result<Option<Bytes>, TransportError>> {
        self.recv().now_or_never()
    }

    /// Queues one message; [`Conn::flush`] writes the batch.
    pub async fn feed(&mut self, msg: Bytes) -> Result<(), TransportError> {
        match self {
            Conn::Ws(t) => t.feed(msg).await,
            Conn::Wss(t) => t.feed(msg).await,
            Conn::Rs(t) => t.feed(msg).await,
        }
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        match self {
            Conn::Ws(t) => t.flush().await,
            Conn::Wss(t) => t.flush().await,
            Conn::Rs(t) => t.flush().await,
        }
    }

    /// Feeds and flushes one message.
    pub async fn send(&mut self, msg: Bytes) -> Result<(), TransportError> {
        self.feed(msg).await?;
        self.flush().await
    }

    /// Closes the connection (WebSocket close frame or socket shutdown).
    pub async fn close(&mut self) {
        match self {
            Conn::Ws(t) => t.close().await,
            Conn::Wss(t) => t.close().await,
            Conn::Rs(t) => t.close().await,
        }
    }
}

/// What the scenarios' sending and receiving loops (`scenario::requester`, `scenario::order`)
/// need of a connection: a [`Conn`], or a NATS connection with its subscription
/// (`scenario::nats`), so that the NATS reference goes through the same loops and checks.
pub trait Wire: Send {
    /// The next message, or `None` when the peer closed. Cancel-safe: the loops drop it at
    /// deadlines.
    fn recv(&mut self) -> impl Future<Output = anyhow::Result<Option<Bytes>>> + Send;

    /// A message that is already buffered, without waiting.
    fn try_recv(&mut self) -> Option<anyhow::Result<Option<Bytes>>>;

    /// Queues one message; [`Wire::flush`] writes the batch.
    fn feed(&mut self, msg: Bytes) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Writes everything queued.
    fn flush(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Closes the connection.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

impl Wire for Conn {
    async fn recv(&mut self) -> anyhow::Result<Option<Bytes>> {
        Ok(Conn::recv(self).await?)
    }

    fn try_recv(&mut self) -> Option<anyhow::Result<Option<Bytes>>> {
        Conn::try_recv(self).map(|r| r.map_err(anyhow::Error::from))
    }

    async fn feed(&mut self, msg: Bytes) -> anyhow::Result<()> {
        Ok(Conn::feed(self, msg).await?)
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        Ok(Conn::flush(self).await?)
    }

    async fn close(&mut self) {
        Conn::close(self).await;
    }
}

/// A joined WAMP session on a [`Conn`].
pub struct Wamp {
    /// The connection; scenarios drive it directly.
    pub conn: Conn,
    /// The serializer.
    pub serializer: Serializer,
    /// The session id the router gave in WELCOME.
    pub session: Id,
    next_request: Id,
}

impl Wamp {
    /// The next request id of this session (1, 2, 3, ...).
    pub fn next_request(&mut self) -> Id {
        self.next_request += 1;
        self.next_request
    }

    /// Encodes a message in the session's serializer.
    pub fn encode(&self, msg: &Message) -> anyhow::Result<Bytes> {
        Ok(codec::encode(self.serializer, msg)?)
    }

    /// Decodes a message in the session's serializer.
    pub fn decode(&self, bytes: &Bytes) -> anyhow::Result<Message> {
        Ok(codec::decode(self.serializer, bytes)?)
    }

    /// Sends a set-up request (REGISTER, SUBSCRIBE, a CALL of the meta API) and waits for the reply to `request`: the
    /// first message carrying that request id, an ERROR being a failure.
    pub async fn request(&mut self, msg: Message, request: Id) -> anyhow::Result<Message> {
        let bytes = self.encode(&msg)?;
        self.conn.send(bytes).await?;
        let wait = async {
            loop {
                let bytes = self
                    .conn
                    .recv()
                    .await?
                    .ok_or_else(|| anyhow!("connection closed"))?;
                match self.decode(&bytes)? {
                    Message::Error {
                        request: r, error, ..
                    } if r == request => bail!("ERROR {error}"),
                    Message::Abort { reason, .. } | Message::Goodbye { reason, .. } => {
                        bail!("session closed by the router: {reason}")
                    }
                    reply @ (Message::Registered { request: r, .. }
                    | Message::Subscribed { request: r, .. }
                    | Message::Result { request: r, .. })
                        if r == request =>
                    {
                        return Ok(reply);
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(OPEN_TIMEOUT, wait)
            .await
            .map_err(|_| anyhow!("no reply within {OPEN_TIMEOUT:?}"))?
    }

    /// Says GOODBYE, waits (briefly) for the router's, and closes the connection. Anything still
    /// arriving meanwhile (late events) is discarded.
    pub async fn leave(self) -> anyhow::Result<()> {
        self.leave_within(LEAVE_TIMEOUT).await
    }

    /// [`Wamp::leave`], waiting at most `patience` for the router's GOODBYE.
    pub async fn leave_within(mut self, patience: Duration) -> anyhow::Result<()> {
        let goodbye = self.encode(&Message::goodbye(CLOSE_NORMAL))?;
        let result = async {
            self.conn.send(goodbye).await?;
            let wait = async {
                loop {
                    let Some(bytes) = self.conn.recv().await? else {
                        bail!("connection closed before the router's GOODBYE");
                    };
                    if let Message::Goodbye { reason, .. } = self.decode(&bytes)? {
                        if reason != GOODBYE_AND_OUT && reason != CLOSE_NORMAL {
                            bail!("router said GOODBYE {reason}");
                        }
                        return Ok(());
                    }
                }
            };
            tokio::time::timeout(patience, wait)
                .await
                .map_err(|_| anyhow!("no GOODBYE within {patience:?}"))?
        }
        .await;
        self.conn.close().await;
        result
    }
}

/// Encodes a WAMP `Arguments|list`.
pub fn list_args(serializer: Serializer, items: Vec<Value>) -> anyhow::Result<RawValue> {
    Ok(RawValue::from_value(serializer, &Value::List(items))?)
}
