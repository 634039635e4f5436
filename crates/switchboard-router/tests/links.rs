//! Router-to-router links between two nodes in one process: what an embedded component registers
//! with the built-in `trusted` role is mirrored like any client's (such a session is not itself a
//! link), and a session that is not a link cannot send `forward_for`.

mod common;

use std::time::Duration;

use common::{Via, start_router_custom};
use switchboard_client::{Args, CallOptions, Error, RegisterOptions};
use switchboard_proto::{Dict, Serializer, Value};
use switchboard_router::embed::TrustedIdentity;
use switchboard_router::{LoadedConfig, RunningNode};

const REALMS: &str = r#"[{"name": "realm1", "roles": [
    {"name": "anonymous", "permissions": [{"uri": "", "match": "prefix",
      "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]},
    {"name": "peer", "link": true, "permissions": [{"uri": "", "match": "prefix",
      "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}]"#;

const AUTH: &str = r#""auth": {"anonymous": {"type": "static", "role": "anonymous"},
    "ticket": {"type": "static", "principals": {"router-a": {"ticket": "t0ps3cret", "role": "peer"}}}}"#;

/// A node linked to `to` with the seed's form.
async fn linked_node(dir: &std::path::Path, to: std::net::SocketAddr) -> RunningNode {
    let config = format!(
        r#"{{"version": 2, "workers": [{{"type": "router", "realms": {REALMS},
            "transports": [{{"type": "rawsocket", "endpoint": {{"type": "tcp", "port": 0, "interface": "127.0.0.1"}}}}],
            "links": [{{"type": "rawsocket", "endpoint": "tcp:{to}", "realms": ["realm1"],
              "authid": "router-a", "auth": {{"ticket": "t0ps3cret"}},
              "reconnect": {{"initial_ms": 50, "max_ms": 200}}}}]}}]}}"#
    );
    let loaded = LoadedConfig::from_json(&config, dir).expect("valid config");
    switchboard_router::start(&loaded).await.expect("starts")
}

#[tokio::test]
async fn a_trusted_components_registration_crosses_the_link() {
    let b = start_router_custom(Some(REALMS), AUTH, "").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = linked_node(dir.path(), b.tcp).await;
    // The node's key went into its directory, as the node's stable identity.
    assert!(dir.path().join("key.priv").exists());

    let component = a
        .in_process()
        .join(TrustedIdentity::new("realm1", "backend", "trusted"))
        .await
        .expect("joins");
    component
        .register(
            "com.example.inside",
            RegisterOptions::default(),
            |_| async { Ok(Args::positional(vec!["from a".into()])) },
        )
        .await
        .expect("registers");

    let caller = b.connect(Via::RawSocketTcp, Serializer::MsgPack).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let answer = loop {
        match caller.call("com.example.inside", Args::default()).await {
            Ok(answer) => break answer,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert_eq!(e.uri(), Some("wamp.error.no_such_procedure"), "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the registration never crossed the link: {e}"),
        }
    };
    assert_eq!(answer.args, vec![Value::from("from a")]);

    // A trusted session that is not a link's end may not act for another router's session.
    let mut options = Dict::new();
    options.insert(
        "forward_for".into(),
        Value::List(vec![Value::Dict(Dict::from_iter([(
            "session".to_owned(),
            Value::UInt(1),
        )]))]),
    );
    let spoofed = component
        .call_with(
            "com.example.inside",
            Args::default(),
            CallOptions {
                extra: options,
                ..CallOptions::default()
            },
        )
        .await;
    assert!(matches!(spoofed, Err(Error::Closed)), "{spoofed:?}");
    a.shutdown().await;
    b.shutdown().await;
}
