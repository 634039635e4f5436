//! A WAMP client on the Switchboard protocol and transport crates: connect over WebSocket or
//! RawSocket (TCP or Unix socket) in any serializer, then call, register, publish and subscribe.
//!
//! One background task per session owns the connection; the [`Session`] handle talks to it over a
//! channel. Used by the router's tests, and later by router links, bridges and the load tool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use switchboard_proto::ids::IdSequence;
use switchboard_proto::{
    Dict, Id, Message, MessageType, Payload, RawValue, Serializer, Value, codec,
};
use switchboard_transport::{
    BoxedIo, DEFAULT_MAX_MESSAGE_BYTES, Transport, TransportError, rawsocket, websocket,
};
use tokio::sync::{mpsc, oneshot};

/// Where the router is.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A TCP address, `host:port`.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// Which WAMP transport to speak.
#[derive(Debug, Clone)]
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

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Router endpoint.
    pub endpoint: Endpoint,
    /// TLS: the client config (trusted roots, client certificate) and the server name to verify;
    /// `None` for a plain connection.
    pub tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// Transport.
    pub transport: TransportKind,
    /// Serializer.
    pub serializer: Serializer,
    /// Realm to join.
    pub realm: String,
}

impl ConnectOptions {
    /// WebSocket at `ws://{addr}{path}`.
    pub fn websocket(addr: impl ToString, path: &str, serializer: Serializer, realm: &str) -> Self {
        Self {
            endpoint: Endpoint::Tcp(addr.to_string()),
            tls: None,
            transport: TransportKind::WebSocket {
                path: path.into(),
                compression: false,
            },
            serializer,
            realm: realm.into(),
        }
    }

    /// RawSocket over TCP at `addr`.
    pub fn rawsocket(addr: impl ToString, serializer: Serializer, realm: &str) -> Self {
        Self {
            endpoint: Endpoint::Tcp(addr.to_string()),
            tls: None,
            transport: TransportKind::RawSocket,
            serializer,
            realm: realm.into(),
        }
    }
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting or the transport failed.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The socket could not be opened.
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    /// The router refused the session.
    #[error("aborted: {reason} {details:?}")]
    Aborted {
        /// ABORT reason URI.
        reason: String,
        /// ABORT details.
        details: Dict,
    },
    /// The router answered a request with ERROR.
    #[error("WAMP error {uri}: {args:?}")]
    Wamp {
        /// Error URI.
        uri: String,
        /// Error arguments.
        args: Vec<Value>,
        /// Error keyword arguments.
        kwargs: Dict,
    },
    /// The session is closed.
    #[error("session closed")]
    Closed,
    /// The peer sent something we could not understand.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Positional and keyword arguments, decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Dict,
}

impl Args {
    /// Positional arguments only.
    pub fn positional(args: Vec<Value>) -> Self {
        Self {
            args,
            kwargs: Dict::new(),
        }
    }

    fn to_payload(&self, s: Serializer) -> Result<Payload, Error> {
        let enc =
            |v: &Value| RawValue::from_value(s, v).map_err(|e| Error::Protocol(e.to_string()));
        Ok(match (self.args.is_empty(), self.kwargs.is_empty()) {
            (true, true) => Payload::EMPTY,
            (false, true) => Payload {
                args: Some(enc(&Value::List(self.args.clone()))?),
                kwargs: None,
            },
            _ => Payload {
                args: Some(enc(&Value::List(self.args.clone()))?),
                kwargs: Some(enc(&Value::Dict(self.kwargs.clone()))?),
            },
        })
    }

    fn from_payload(p: &Payload) -> Result<Self, Error> {
        let dec = |r: &RawValue| r.to_value().map_err(|e| Error::Protocol(e.to_string()));
        let args = match &p.args {
            Some(r) => match dec(r)? {
                Value::List(l) => l,
                other => vec![other],
            },
            None => Vec::new(),
        };
        let kwargs = match &p.kwargs {
            Some(r) => match dec(r)? {
                Value::Dict(d) => d,
                _ => Dict::new(),
            },
            None => Dict::new(),
        };
        Ok(Self { args, kwargs })
    }
}

/// An event received on a subscription.
#[derive(Debug, Clone)]
pub struct Event {
    /// Publication id.
    pub publication: Id,
    /// EVENT.Details.
    pub details: Dict,
    /// Payload.
    pub args: Args,
}

/// What a procedure handler returns: a result, or an error URI with arguments.
pub type HandlerResult = Result<Args, (String, Args)>;

type Handler = Arc<dyn Fn(Args) -> HandlerResult + Send + Sync>;

/// The events of one subscription.
pub type Events = mpsc::UnboundedReceiver<Event>;

type SubscribeReply = oneshot::Sender<Result<(Id, Events), Error>>;

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

enum Command {
    Send(Message, Option<(Id, oneshot::Sender<Message>)>),
    Subscribe(
        Id,
        Message,
        oneshot::Sender<Result<(Id, mpsc::UnboundedReceiver<Event>), Error>>,
    ),
    Register(Id, Message, Handler, oneshot::Sender<Result<Id, Error>>),
    Leave(oneshot::Sender<()>),
}

/// A joined WAMP session.
pub struct Session {
    id: Id,
    welcome: Dict,
    serializer: Serializer,
    requests: Arc<IdSequence>,
    tx: mpsc::UnboundedSender<Command>,
    closed: Arc<tokio::sync::Notify>,
    close_reason: Arc<std::sync::Mutex<Option<(String, Dict)>>>,
}

async fn open(opts: &ConnectOptions) -> Result<Box<dyn DynTransport>, Error> {
    let io: BoxedIo = match &opts.endpoint {
        Endpoint::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Box::new(s)
        }
        Endpoint::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
    };
    let io: BoxedIo = match &opts.tls {
        Some((config, server_name)) => {
            let name =
                rustls_pki_types::ServerName::try_from(server_name.clone()).map_err(|e| {
                    Error::Protocol(format!("bad TLS server name {server_name:?}: {e}"))
                })?;
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            Box::new(connector.connect(name, io).await?)
        }
        None => io,
    };
    Ok(match &opts.transport {
        TransportKind::RawSocket => {
            Box::new(rawsocket::connect(io, opts.serializer, DEFAULT_MAX_MESSAGE_BYTES).await?)
        }
        TransportKind::WebSocket { path, compression } => {
            let host = match &opts.endpoint {
                Endpoint::Tcp(a) => a.clone(),
                Endpoint::Unix(_) => "localhost".into(),
            };
            let url = format!("ws://{host}{path}");
            Box::new(
                websocket::connect(
                    &url,
                    io,
                    opts.serializer,
                    &websocket::WebSocketSettings::new(DEFAULT_MAX_MESSAGE_BYTES, *compression),
                )
                .await?,
            )
        }
    })
}

/// Object-safe wrapper over [`Transport`], so one client task serves every transport.
trait DynTransport: Send {
    fn serializer(&self) -> Serializer;
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, TransportError>>;
    fn send(&mut self, b: Bytes) -> BoxFuture<'_, Result<(), TransportError>>;
    fn close(&mut self) -> BoxFuture<'_, ()>;
}

impl<T: Transport> DynTransport for T {
    fn serializer(&self) -> Serializer {
        Transport::serializer(self)
    }
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, TransportError>> {
        Box::pin(Transport::recv(self))
    }
    fn send(&mut self, b: Bytes) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.feed(b).await?;
            self.flush().await
        })
    }
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(Transport::close(self))
    }
}

fn hello_details() -> Dict {
    let mut roles = Dict::new();
    for r in ["caller", "callee", "publisher", "subscriber"] {
        roles.insert(r.into(), Value::Dict(Dict::new()));
    }
    let mut d = Dict::new();
    d.insert("roles".into(), Value::Dict(roles));
    d
}

impl Session {
    /// Connects and joins `opts.realm` anonymously.
    pub async fn connect(opts: &ConnectOptions) -> Result<Session, Error> {
        let mut t = open(opts).await?;
        let s = t.serializer();
        let hello = Message::Hello {
            realm: opts.realm.clone(),
            details: hello_details(),
        };
        t.send(codec::encode(s, &hello).map_err(|e| Error::Protocol(e.to_string()))?)
            .await?;
        let reply = t.recv().await?.ok_or(Error::Closed)?;
        let (id, welcome) = match codec::decode(s, &reply)
            .map_err(|e| Error::Protocol(e.to_string()))?
        {
            Message::Welcome { session, details } => (session, details),
            Message::Abort { details, reason } => return Err(Error::Aborted { reason, details }),
            other => {
                return Err(Error::Protocol(format!(
                    "expected WELCOME, got {:?}",
                    other.message_type()
                )));
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let closed = Arc::new(tokio::sync::Notify::new());
        let close_reason = Arc::new(std::sync::Mutex::new(None));
        tokio::spawn(run(t, rx, closed.clone(), close_reason.clone()));
        Ok(Session {
            id,
            welcome,
            serializer: s,
            requests: Arc::new(IdSequence::new()),
            tx,
            closed,
            close_reason,
        })
    }

    /// The session id the router assigned.
    pub fn id(&self) -> Id {
        self.id
    }

    /// WELCOME.Details.
    pub fn welcome_details(&self) -> &Dict {
        &self.welcome
    }

    async fn request(&self, msg: Message, request: Id) -> Result<Message, Error> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Send(msg, Some((request, tx))))
            .map_err(|_| Error::Closed)?;
        let reply = rx.await.map_err(|_| Error::Closed)?;
        if let Message::Error { error, payload, .. } = reply {
            let a = Args::from_payload(&payload)?;
            return Err(Error::Wamp {
                uri: error,
                args: a.args,
                kwargs: a.kwargs,
            });
        }
        Ok(reply)
    }

    /// Calls `procedure`.
    pub async fn call(&self, procedure: &str, args: Args) -> Result<Args, Error> {
        let request = self.requests.next_id();
        let msg = Message::Call {
            request,
            options: Dict::new(),
            procedure: procedure.into(),
            payload: args.to_payload(self.serializer)?,
        };
        match self.request(msg, request).await? {
            Message::Result { payload, .. } => Args::from_payload(&payload),
            other => Err(Error::Protocol(format!(
                "unexpected {:?}",
                other.message_type()
            ))),
        }
    }

    /// Publishes to `topic`; with `acknowledge`, waits for PUBLISHED and returns the publication id.
    pub async fn publish(
        &self,
        topic: &str,
        args: Args,
        options: Dict,
    ) -> Result<Option<Id>, Error> {
        let request = self.requests.next_id();
        let acknowledge = options
            .get("acknowledge")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let msg = Message::Publish {
            request,
            options,
            topic: topic.into(),
            payload: args.to_payload(self.serializer)?,
        };
        if !acknowledge {
            self.tx
                .send(Command::Send(msg, None))
                .map_err(|_| Error::Closed)?;
            return Ok(None);
        }
        match self.request(msg, request).await? {
            Message::Published { publication, .. } => Ok(Some(publication)),
            other => Err(Error::Protocol(format!(
                "unexpected {:?}",
                other.message_type()
            ))),
        }
    }

    /// Subscribes to `topic`; events arrive on the returned receiver.
    pub async fn subscribe(
        &self,
        topic: &str,
    ) -> Result<(Id, mpsc::UnboundedReceiver<Event>), Error> {
        let request = self.requests.next_id();
        let msg = Message::Subscribe {
            request,
            options: Dict::new(),
            topic: topic.into(),
        };
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Subscribe(request, msg, tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Unsubscribes.
    pub async fn unsubscribe(&self, subscription: Id) -> Result<(), Error> {
        let request = self.requests.next_id();
        self.request(
            Message::Unsubscribe {
                request,
                subscription,
            },
            request,
        )
        .await
        .map(|_| ())
    }

    /// Registers `procedure`, answered by `handler` on the session's task.
    pub async fn register(
        &self,
        procedure: &str,
        handler: impl Fn(Args) -> HandlerResult + Send + Sync + 'static,
    ) -> Result<Id, Error> {
        let request = self.requests.next_id();
        let msg = Message::Register {
            request,
            options: Dict::new(),
            procedure: procedure.into(),
        };
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Register(request, msg, Arc::new(handler), tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Unregisters.
    pub async fn unregister(&self, registration: Id) -> Result<(), Error> {
        let request = self.requests.next_id();
        self.request(
            Message::Unregister {
                request,
                registration,
            },
            request,
        )
        .await
        .map(|_| ())
    }

    /// Says GOODBYE and waits for the router's reply.
    pub async fn leave(self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Leave(tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Waits until the router closes the session, and returns its GOODBYE or ABORT reason (or
    /// `None` if the connection just dropped).
    pub async fn closed(&self) -> Option<(String, Dict)> {
        loop {
            let notified = self.closed.notified();
            if self.tx.is_closed() {
                break;
            }
            notified.await;
        }
        self.close_reason.lock().ok().and_then(|g| g.clone())
    }
}

struct State {
    pending: HashMap<Id, oneshot::Sender<Message>>,
    subscribing: HashMap<Id, SubscribeReply>,
    registering: HashMap<Id, (Handler, oneshot::Sender<Result<Id, Error>>)>,
    subscriptions: HashMap<Id, Vec<mpsc::UnboundedSender<Event>>>,
    registrations: HashMap<Id, Handler>,
    leaving: Option<oneshot::Sender<()>>,
}

async fn run(
    mut t: Box<dyn DynTransport>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    closed: Arc<tokio::sync::Notify>,
    close_reason: Arc<std::sync::Mutex<Option<(String, Dict)>>>,
) {
    let s = t.serializer();
    let mut st = State {
        pending: HashMap::new(),
        subscribing: HashMap::new(),
        registering: HashMap::new(),
        subscriptions: HashMap::new(),
        registrations: HashMap::new(),
        leaving: None,
    };
    loop {
        let out: Option<Message> = tokio::select! {
            cmd = rx.recv() => match cmd {
                None => None,
                Some(Command::Send(m, reply)) => {
                    if let Some((id, tx)) = reply { st.pending.insert(id, tx); }
                    Some(m)
                }
                Some(Command::Subscribe(id, m, tx)) => { st.subscribing.insert(id, tx); Some(m) }
                Some(Command::Register(id, m, h, tx)) => { st.registering.insert(id, (h, tx)); Some(m) }
                Some(Command::Leave(tx)) => { st.leaving = Some(tx); Some(Message::goodbye(switchboard_proto::errors::CLOSE_NORMAL)) }
            },
            incoming = t.recv() => {
                let Ok(Some(bytes)) = incoming else { break };
                let Ok(msg) = codec::decode(s, &bytes) else { break };
                match handle(&mut st, msg, s) {
                    Handled::Reply(m) => Some(m),
                    Handled::Nothing => continue,
                    Handled::Closed(reason, details) => {
                        if let Ok(mut g) = close_reason.lock() { *g = Some((reason.clone(), details)); }
                        if st.leaving.is_none() && reason != switchboard_proto::errors::GOODBYE_AND_OUT {
                            // The router initiated GOODBYE: answer it (spec, "Session Closing").
                            if let Ok(b) = codec::encode(s, &Message::goodbye(switchboard_proto::errors::GOODBYE_AND_OUT)) {
                                let _ = t.send(b).await;
                            }
                        }
                        break;
                    }
                }
            }
        };
        let Some(out) = out else { break };
        let Ok(bytes) = codec::encode(s, &out) else {
            continue;
        };
        if t.send(bytes).await.is_err() {
            break;
        }
    }
    if let Some(tx) = st.leaving.take() {
        let _ = tx.send(());
    }
    t.close().await;
    rx.close();
    drop(rx);
    closed.notify_waiters();
}

enum Handled {
    Reply(Message),
    Nothing,
    Closed(String, Dict),
}

fn handle(st: &mut State, msg: Message, s: Serializer) -> Handled {
    match msg {
        Message::Event {
            subscription,
            publication,
            details,
            payload,
        } => {
            if let (Some(subs), Ok(args)) = (
                st.subscriptions.get(&subscription),
                Args::from_payload(&payload),
            ) {
                for tx in subs {
                    let _ = tx.send(Event {
                        publication,
                        details: details.clone(),
                        args: args.clone(),
                    });
                }
            }
        }
        Message::Invocation {
            request,
            registration,
            payload,
            ..
        } => {
            let reply = match (
                st.registrations.get(&registration),
                Args::from_payload(&payload),
            ) {
                (Some(h), Ok(args)) => match h(args) {
                    Ok(result) => match result.to_payload(s) {
                        Ok(payload) => Message::Yield {
                            request,
                            options: Dict::new(),
                            payload,
                        },
                        Err(_) => Message::error(
                            MessageType::Invocation,
                            request,
                            "wamp.error.invalid_argument",
                        ),
                    },
                    Err((uri, a)) => Message::Error {
                        request_type: MessageType::Invocation.code(),
                        request,
                        details: Dict::new(),
                        error: uri,
                        payload: a.to_payload(s).unwrap_or_default(),
                    },
                },
                _ => Message::error(
                    MessageType::Invocation,
                    request,
                    "wamp.error.no_such_registration",
                ),
            };
            return Handled::Reply(reply);
        }
        Message::Subscribed {
            request,
            subscription,
        } => {
            if let Some(tx) = st.subscribing.remove(&request) {
                let (etx, erx) = mpsc::unbounded_channel();
                st.subscriptions.entry(subscription).or_default().push(etx);
                let _ = tx.send(Ok((subscription, erx)));
            }
        }
        Message::Registered {
            request,
            registration,
        } => {
            if let Some((h, tx)) = st.registering.remove(&request) {
                st.registrations.insert(registration, h);
                let _ = tx.send(Ok(registration));
            }
        }
        Message::Error {
            request_type,
            request,
            error,
            payload,
            ..
        } => {
            let a = Args::from_payload(&payload).unwrap_or_default();
            let err = || Error::Wamp {
                uri: error.clone(),
                args: a.args.clone(),
                kwargs: a.kwargs.clone(),
            };
            if request_type == MessageType::Subscribe.code() {
                if let Some(tx) = st.subscribing.remove(&request) {
                    let _ = tx.send(Err(err()));
                }
            } else if request_type == MessageType::Register.code() {
                if let Some((_, tx)) = st.registering.remove(&request) {
                    let _ = tx.send(Err(err()));
                }
            } else if let Some(tx) = st.pending.remove(&request) {
                let _ = tx.send(Message::Error {
                    request_type,
                    request,
                    details: Dict::new(),
                    error,
                    payload,
                });
            }
        }
        Message::Result { request, .. }
        | Message::Published { request, .. }
        | Message::Unsubscribed { request, .. }
        | Message::Unregistered { request, .. } => {
            if let Some(tx) = st.pending.remove(&request) {
                let _ = tx.send(msg);
            }
        }
        Message::Goodbye { reason, details } | Message::Abort { reason, details } => {
            return Handled::Closed(reason, details);
        }
        _ => {}
    }
    Handled::Nothing
}
