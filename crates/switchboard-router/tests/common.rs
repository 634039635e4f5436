//! Shared test setup: a router started through the same entry point as the binary, on port 0 and
//! a Unix socket in a temp dir, and clients for every transport and serializer.

#![allow(dead_code)]

use std::path::PathBuf;

use switchboard_client::{ConnectOptions, Endpoint, Session, TransportKind};
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
                "rawsocket": {{}}, "websocket": {{"ws": {{"type": "websocket"}}}}}},
              {{"type": "universal", "endpoint": {{"type": "unix", "path": "{}"}},
                "rawsocket": {{}}, "websocket": {{"ws": {{"type": "websocket"}}}}}}
            ]}}]}}"#,
        unix.display()
    );
    let file = dir.path().join("config.json");
    std::fs::write(&file, config).expect("write config");
    let loaded = LoadedConfig::from_file(&file).expect("valid config");
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
        ConnectOptions {
            endpoint,
            transport,
            serializer,
            realm: "realm1".into(),
        }
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

fn ws() -> TransportKind {
    TransportKind::WebSocket {
        path: "/ws".into(),
        compression: false,
    }
}
