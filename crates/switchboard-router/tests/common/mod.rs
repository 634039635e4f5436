//! Shared test setup: a router started through the same entry point as the binary, on port 0 and
//! a Unix socket in a temp dir, and clients for every transport and serializer.

#![allow(dead_code)] // each test file uses a different part of this module

pub mod raw_wamp;

use std::path::PathBuf;

use switchboard_client::{
    Args, CallError, ConnectOptions, Endpoint, Invocation, Session, TransportKind,
};
use switchboard_proto::Serializer;
use switchboard_router::{LoadedConfig, RunningNode};

pub struct TestRouter {
    pub node: Option<RunningNode>,
    pub tcp: std::net::SocketAddr,
    pub unix: PathBuf,
    _dir: tempfile::TempDir,
}

/// A node with one universal transport on 127.0.0.1:0 and one on a Unix socket, realm `realm1`.
pub async fn start_router() -> TestRouter {
    start_router_with(None).await
}

/// Same, with an extra JSON snippet replacing the realms array.
pub async fn start_router_with(realms: Option<&str>) -> TestRouter {
    start_router_custom(realms, "", "").await
}

/// Same, with JSON members added to both endpoints of each transport (`endpoint_extra`, such as
/// `"auth": {...}`) and to each transport (`transport_extra`, such as `"auth_rate_limit": {...},`
/// with its trailing comma).
pub async fn start_router_custom(
    realms: Option<&str>,
    endpoint_extra: &str,
    transport_extra: &str,
) -> TestRouter {
    let dir = tempfile::tempdir().expect("tempdir");
    let unix = dir.path().join("router.sock");
    let realms = realms.unwrap_or(
        r#"[{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
            {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}]"#,
    );
    let config = format!(
        r#"{{"version": 2, "workers": [{{"type": "router", "realms": {realms},
            "transports": [
              {{"type": "universal", "endpoint": {{"type": "tcp", "port": 0, "interface": "127.0.0.1"}},
                {transport_extra}
                "rawsocket": {{{endpoint_extra}}}, "websocket": {{"ws": {{"type": "websocket"{ws_extra}}}}}}},
              {{"type": "universal", "endpoint": {{"type": "unix", "path": "{}"}},
                {transport_extra}
                "rawsocket": {{{endpoint_extra}}}, "websocket": {{"ws": {{"type": "websocket"{ws_extra}}}}}}}
            ]}}]}}"#,
        unix.display(),
        ws_extra = if endpoint_extra.is_empty() {
            String::new()
        } else {
            format!(", {endpoint_extra}")
        },
    );
    let loaded = LoadedConfig::from_json(&config, dir.path()).expect("valid config");
    let node = switchboard_router::start(&loaded)
        .await
        .expect("router starts");
    let tcp = node.tcp_addr().expect("tcp listener");
    TestRouter {
        node: Some(node),
        tcp,
        unix,
        _dir: dir,
    }
}

/// Every (transport, endpoint) combination a client can use.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    WebSocketTcp,
    RawSocketTcp,
    WebSocketUnix,
    RawSocketUnix,
}

pub const ALL_VIAS: [Via; 4] = [
    Via::WebSocketTcp,
    Via::RawSocketTcp,
    Via::WebSocketUnix,
    Via::RawSocketUnix,
];

impl TestRouter {
    pub fn options(&self, via: Via, serializer: Serializer) -> ConnectOptions {
        let (endpoint, transport) = match via {
            Via::WebSocketTcp => (Endpoint::Tcp(self.tcp.to_string()), ws()),
            Via::RawSocketTcp => (
                Endpoint::Tcp(self.tcp.to_string()),
                TransportKind::RawSocket,
            ),
            Via::WebSocketUnix => (Endpoint::Unix(self.unix.clone()), ws()),
            Via::RawSocketUnix => (Endpoint::Unix(self.unix.clone()), TransportKind::RawSocket),
        };
        ConnectOptions::new(endpoint, transport, serializer, "realm1")
    }

    pub async fn connect(&self, via: Via, serializer: Serializer) -> Session {
        Session::connect(&self.options(via, serializer))
            .await
            .expect("session joins")
    }

    pub async fn shutdown(mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
    }
}

/// A procedure handler that answers with the call's own arguments.
pub async fn echo(invocation: Invocation) -> Result<Args, CallError> {
    Ok(invocation.into_args())
}

fn ws() -> TransportKind {
    TransportKind::WebSocket {
        path: "/ws".into(),
        compression: false,
    }
}

/// A hand-driven WAMP peer on our transport crate: sends and receives whole messages or raw bytes,
/// for tests that must break the rules or stop mid-conversation.
pub struct RawPeer {
    pub transport: Box<dyn RawTransport>,
    pub serializer: Serializer,
}

pub trait RawTransport: Send {
    fn send_bytes(
        &mut self,
        b: bytes::Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
    fn recv_bytes(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<bytes::Bytes>> + Send + '_>>;
}

impl<T: switchboard_transport::Transport> RawTransport for T {
    fn send_bytes(
        &mut self,
        b: bytes::Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let _ = self.feed(b).await;
            let _ = self.flush().await;
        })
    }
    fn recv_bytes(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<bytes::Bytes>> + Send + '_>>
    {
        Box::pin(async move { self.recv().await.ok().flatten() })
    }
}

impl RawPeer {
    /// Opens the transport without joining.
    pub async fn open(router: &TestRouter, via: Via, serializer: Serializer) -> RawPeer {
        use switchboard_transport::{BoxedIo, rawsocket, websocket};
        let tcp = || async {
            Box::new(
                tokio::net::TcpStream::connect(router.tcp)
                    .await
                    .expect("tcp"),
            ) as BoxedIo
        };
        let unix = || async {
            Box::new(
                tokio::net::UnixStream::connect(&router.unix)
                    .await
                    .expect("unix"),
            ) as BoxedIo
        };
        let max = switchboard_transport::DEFAULT_MAX_MESSAGE_BYTES;
        let url = "ws://127.0.0.1/ws";
        let transport: Box<dyn RawTransport> = match via {
            Via::WebSocketTcp => Box::new(
                websocket::connect(
                    url,
                    tcp().await,
                    serializer,
                    &websocket::WebSocketSettings::new(max, false),
                )
                .await
                .expect("ws"),
            ),
            Via::WebSocketUnix => Box::new(
                websocket::connect(
                    url,
                    unix().await,
                    serializer,
                    &websocket::WebSocketSettings::new(max, false),
                )
                .await
                .expect("ws"),
            ),
            Via::RawSocketTcp => Box::new(
                rawsocket::connect(tcp().await, serializer, max)
                    .await
                    .expect("rs"),
            ),
            Via::RawSocketUnix => Box::new(
                rawsocket::connect(unix().await, serializer, max)
                    .await
                    .expect("rs"),
            ),
        };
        RawPeer {
            transport,
            serializer,
        }
    }

    /// Opens the transport and joins `realm1`.
    pub async fn join(router: &TestRouter, via: Via, serializer: Serializer) -> RawPeer {
        let mut peer = Self::open(router, via, serializer).await;
        peer.send(&hello("realm1")).await;
        match peer.recv().await {
            Some(switchboard_proto::Message::Welcome { .. }) => peer,
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }

    pub async fn send(&mut self, msg: &switchboard_proto::Message) {
        let bytes = switchboard_proto::codec::encode(self.serializer, msg).expect("encode");
        self.transport.send_bytes(bytes).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.transport
            .send_bytes(bytes::Bytes::copy_from_slice(bytes))
            .await;
    }

    /// The next message, or `None` when the router closed the connection (10 s at most).
    pub async fn recv(&mut self) -> Option<switchboard_proto::Message> {
        let bytes = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.transport.recv_bytes(),
        )
        .await
        .expect("router answers within 10 s")?;
        Some(
            switchboard_proto::codec::decode(self.serializer, &bytes)
                .expect("router sends valid messages"),
        )
    }

    /// Expects ABORT with `reason`, then the connection closing.
    pub async fn expect_abort(&mut self, reason: &str) {
        match self.recv().await {
            Some(switchboard_proto::Message::Abort { reason: r, .. }) => assert_eq!(r, reason),
            other => panic!("expected ABORT {reason}, got {other:?}"),
        }
        assert!(self.recv().await.is_none(), "connection closes after ABORT");
    }
}

/// Waits until `cond` holds, polling; fails the test after 10 s.
pub async fn eventually(cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A HELLO announcing all four client roles.
pub fn hello(realm: &str) -> switchboard_proto::Message {
    let mut roles = switchboard_proto::Dict::new();
    for role in ["caller", "callee", "publisher", "subscriber"] {
        roles.insert(
            role.into(),
            switchboard_proto::Value::Dict(Default::default()),
        );
    }
    let mut details = switchboard_proto::Dict::new();
    details.insert("roles".into(), switchboard_proto::Value::Dict(roles));
    switchboard_proto::Message::Hello {
        realm: realm.into(),
        details,
    }
}

/// A RawSocket session over an in-memory pipe of `pipe_bytes` bytes, served by `session::run` with
/// `cfg` (a test can shrink the outbox), as the listener would serve a connection: the client
/// side of the RawSocket, speaking `serializer`, and the server task.
pub async fn session_over_pipe(
    cfg: switchboard_router::session::SessionConfig,
    pipe_bytes: usize,
    serializer: Serializer,
) -> (
    switchboard_transport::rawsocket::RawSocket,
    tokio::task::JoinHandle<()>,
) {
    use switchboard_transport::rawsocket;
    let (client_io, server_io) = tokio::io::duplex(pipe_bytes);
    let server = tokio::spawn(async move {
        let mut io: switchboard_transport::BoxedIo = Box::new(server_io);
        // The listener reads RawSocket's first octet to tell it from HTTP; so must we.
        let mut magic = [0u8; 1];
        tokio::io::AsyncReadExt::read_exact(&mut io, &mut magic)
            .await
            .expect("magic");
        let t = rawsocket::accept(io, 1 << 20, &Serializer::ALL)
            .await
            .expect("handshake");
        switchboard_router::session::run(t, cfg, Default::default(), Default::default()).await;
    });
    let client = rawsocket::connect(Box::new(client_io), serializer, 1 << 20)
        .await
        .expect("rawsocket");
    (client, server)
}
