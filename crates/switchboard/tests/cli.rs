//! The `switchboard` command as a user runs it: init, check, start (from a node directory and with
//! the built-in default), version, and graceful shutdown on SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use switchboard_client::{
    Args, CloseReason, ConnectOptions, Endpoint, RegisterOptions, Session, TransportKind,
};
use switchboard_proto::Serializer;

#[test]
fn version_prints_the_crate_version() {
    let out = Command::new(common::bin())
        .arg("version")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!("switchboard {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn init_writes_a_node_directory_that_check_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = dir.path().join("mynode");
    let out = Command::new(common::bin())
        .arg("init")
        .arg(&node)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(node.join("config.json").is_file());
    assert!(node.join("web").join("index.html").is_file());
    let out = Command::new(common::bin())
        .arg("check")
        .arg(&node)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The node serves its web/ folder and WAMP on one port (port 0 here, so tests don't clash).
    let config = std::fs::read_to_string(node.join("config.json")).expect("read");
    std::fs::write(
        node.join("config.json"),
        config.replace("\"port\": 8080", "\"port\": 0"),
    )
    .expect("write");
    let router = common::start(Some(&node), 1);
    let mut tcp = std::net::TcpStream::connect(&router.tcp).expect("connect");
    std::io::Write::write_all(
        &mut tcp,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut page = String::new();
    std::io::Read::read_to_string(&mut tcp, &mut page).expect("read");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("Switchboard node"),
        "{page}"
    );
    drop(router);
    // A second init refuses to overwrite.
    let out = Command::new(common::bin())
        .arg("init")
        .arg(&node)
        .output()
        .expect("run");
    assert!(!out.status.success());
}

#[test]
fn check_names_the_file_and_position_of_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.json"),
        "{\"version\": 2,\n \"workers\": [{\"type\": \"router\", \"components\": []}]}",
    )
    .expect("write");
    let out = Command::new(common::bin())
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.json:2:") && err.contains("workers[0].components"),
        "{err}"
    );
    assert!(err.contains("unsupported: `components`"), "{err}");
}

#[tokio::test]
async fn start_from_a_node_directory_serves_both_transports_and_sigterm_says_goodbye() {
    let dir = common::node_dir();
    let router = common::start(Some(dir.path()), 2);
    let unix = router.unix.clone().expect("unix listener");
    let callee = Session::connect(&ConnectOptions::rawsocket(
        &router.tcp,
        Serializer::MsgPack,
        "realm1",
    ))
    .await
    .expect("join");
    callee
        .register(
            "com.example.add2",
            RegisterOptions::default(),
            |i| async move {
                let sum: u64 = i.positional().iter().filter_map(|v| v.as_u64()).sum();
                Ok(Args::positional(vec![sum.into()]))
            },
        )
        .await
        .expect("register");
    let caller = Session::connect(&ConnectOptions::new(
        Endpoint::Unix(unix),
        TransportKind::WebSocket {
            path: "/ws".into(),
            compression: true,
        },
        Serializer::Json,
        "realm1",
    ))
    .await
    .expect("join");
    let r = caller
        .call(
            "com.example.add2",
            Args::positional(vec![2u64.into(), 3u64.into()]),
        )
        .await
        .expect("call");
    assert_eq!(r.args, vec![5u64.into()]);

    let status = tokio::task::spawn_blocking(move || router.terminate())
        .await
        .expect("join");
    assert!(status.success(), "exit status {status:?}");
    for s in [&callee, &caller] {
        let CloseReason::Goodbye { reason, .. } =
            tokio::time::timeout(Duration::from_secs(10), s.closed())
                .await
                .expect("closed")
        else {
            panic!("expected GOODBYE")
        };
        assert_eq!(reason, "wamp.close.system_shutdown");
    }
}

#[tokio::test]
async fn start_without_a_config_runs_the_builtin_default_on_port_8080() {
    let empty = tempfile::tempdir().expect("tempdir");
    let router = common::start(Some(empty.path()), 1);
    assert_eq!(router.tcp, "127.0.0.1:8080");
    for via_ws in [true, false] {
        let opts = if via_ws {
            ConnectOptions::websocket("127.0.0.1:8080", "/ws", Serializer::Cbor, "realm1")
        } else {
            ConnectOptions::rawsocket("127.0.0.1:8080", Serializer::Json, "realm1")
        };
        let s = Session::connect(&opts).await.expect("join realm1");
        assert_eq!(
            s.welcome_details().get("authrole").and_then(|v| v.as_str()),
            Some("anonymous")
        );
        s.leave().await.expect("leave");
    }
    let status = tokio::task::spawn_blocking(move || router.terminate())
        .await
        .expect("join");
    assert!(status.success());
}
