//! The load tool's own thin client: one connection, driven by the one task that owns it.
//!
//! `switchboard-client` runs a background task per session and hands every reply back through a
//! channel and a oneshot; that costs two task wake-ups and an allocation per message, which would
//! make the load tool, not the router, the bottleneck. Here the scenario task owns the transport
//! itself, encodes and decodes with `switchboard-proto` directly, and batches: it drains every
//! message already buffered ([`Conn::try_recv`]) before one flush.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use futures::FutureExt as _;
use switchboard_proto::errors::{CLOSE_NORMAL, GOODBYE_AND_OUT};
use switchboard_proto::{Dict, Id, Message, RawValue, Serializer, Value, codec};
use switchboard_transport::rawsocket::{self, RawSocket};
use switchboard_transport::websocket::{self, WebSocketSettings, WebSocketTransport};
use switchboard_transport::{DEFAULT_MAX_MESSAGE_BYTES, Transport, TransportError};
use tokio::io::BufReader;
use tokio::net::{TcpSocket, TcpStream};

/// How long connecting, the transport handshake and HELLO/WELCOME may take together.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long we wait for the router's GOODBYE after ours.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Read buffer in front of a WebSocket connection under load.
const DEFAULT_READ_BUFFER: usize = 16 * 1024;

/// Which transport a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ws://host:port/path`.
    WebSocket,
    /// `rs://host:port` (also `rawsocket://` and `tcp://`).
    RawSocket,
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
    /// Parses `url` (`ws://host:port/path` or `rs://host:port`) and resolves its host.
    pub async fn new(
        url: &str,
        serializer: Serializer,
        realm: &str,
        source_addrs: Vec<IpAddr>,
    ) -> anyhow::Result<Self> {
        let (kind, rest) = if let Some(rest) = url.strip_prefix("ws://") {
            (Kind::WebSocket, rest)
        } else if let Some(rest) = ["rs://", "rawsocket://", "tcp://"]
            .iter()
            .find_map(|p| url.strip_prefix(p))
        {
            (Kind::RawSocket, rest)
        } else {
            bail!("unsupported URL {url:?}: use ws://host:port/path or rs://host:port");
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let with_port = if authority.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
        }) {
            authority.to_owned()
        } else {
            // No port: the scheme's default (80 for ws, 8080 as the WAMP examples use for rs).
            let port = if kind == Kind::WebSocket { 80 } else { 8080 };
            format!("{authority}:{port}")
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
        })
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

    /// `websocket` or `rawsocket`, for the report.
    pub fn transport_name(&self) -> &'static str {
        match self.kind {
            Kind::WebSocket => "websocket",
            Kind::RawSocket => "rawsocket",
        }
    }

    /// Opens a TCP connection and runs the transport handshake (no WAMP yet).
    pub async fn open(&self) -> anyhow::Result<Conn> {
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
        Ok(match self.kind {
            Kind::WebSocket => Conn::Ws(Box::new(
                websocket::connect(
                    &self.url,
                    // yawc's client side reads the socket with only the bytes the current frame
                    // still lacks as buffer room (strace shows reads of 1, 13, 21, 42 bytes), a
                    // syscall or more per message, which made the load tool more expensive per
                    // call than the router. A read buffer in front makes it one read per burst.
                    BufReader::with_capacity(self.read_buffer, stream),
                    self.serializer,
                    &WebSocketSettings::new(DEFAULT_MAX_MESSAGE_BYTES, false),
                )
                .await?,
            )),
            Kind::RawSocket => Conn::Rs(Box::new(
                rawsocket::connect(Box::new(stream), self.serializer, DEFAULT_MAX_MESSAGE_BYTES)
                    .await?,
            )),
        })
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
    /// RawSocket over TCP.
    Rs(Box<RawSocket>),
}

impl Conn {
    /// The next message, or `None` when the peer closed.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        match self {
            Conn::Ws(t) => t.recv().await,
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
            Conn::Rs(t) => t.feed(msg).await,
        }
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        match self {
            Conn::Ws(t) => t.flush().await,
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
            Conn::Rs(t) => t.close().await,
        }
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
