//! Keys of Crossbar's config that `check` used to refuse, through the binary: the ones without
//! effect are accepted with one warning each (file, line, path); a static directory that does not
//! exist is a warning and answers 404; the `json` path type serves its value;
//! `require_websocket_subprotocol`, a Unix endpoint's `backlog` and RawSocket's older `serializer`
//! work.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use switchboard_client::{ConnectOptions, Endpoint, Session, TransportKind};
use switchboard_proto::Serializer;

/// A Crossbar-style node directory (`.crossbar/config.json`) using the keys under test; lines are
/// numbered in the comments for the assertions below.
fn crossbar_node_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join(".crossbar")).expect("mkdir .crossbar");
    let config = r#"{
    "version": 2,
    "controller": {"fabric": {"url": "wss://master.example.com/ws"},
                   "options": {"shutdown": ["shutdown_on_shutdown_requested"]}},
    "workers": [{
        "type": "router",
        "options": {"pythonpath": [".."], "cpu_affinity": [0]},
        "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
            {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}],
        "transports": [
            {"type": "web", "debug": true,
             "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
             "paths": {"/": {"type": "static", "directory": "../web"},
                       "strict": {"type": "websocket", "debug": false, "options": {"require_websocket_subprotocol": true}},
                       "ws": {"type": "websocket"},
                       "info": {"type": "json", "value": {"param1": "foobar", "param2": [1, 2, 3]}, "options": {"discourage_caching": true}}}},
            {"type": "rawsocket", "serializer": "msgpack",
             "endpoint": {"type": "unix", "path": "router.sock", "backlog": 64}}
        ]
    }]
}"#;
    std::fs::write(dir.path().join(".crossbar").join("config.json"), config).expect("write");
    dir
}

#[test]
fn check_accepts_crossbar_keys_without_effect_with_one_warning_each() {
    let dir = crossbar_node_dir();
    let out = Command::new(common::bin())
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let file = dir.path().join(".crossbar").join("config.json");
    let file = file.display();
    for (line, text) in [
        (3, "controller.fabric: has no effect"),
        (4, "controller.options.shutdown: has no effect"),
        (7, "workers[0].options.pythonpath: has no effect"),
        (7, "workers[0].options.cpu_affinity: has no effect"),
        (11, "workers[0].transports[0].debug: has no effect"),
        (
            13,
            "workers[0].transports[0].paths./.directory: `../web` does not exist",
        ),
        (
            14,
            "workers[0].transports[0].paths.strict.debug: has no effect",
        ),
    ] {
        let at = format!("warning: {file}:{line}:");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&at) && l.contains(text)),
            "no line starting {at:?} with {text:?}:\n{stdout}"
        );
    }
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("warning: "))
            .count(),
        7,
        "{stdout}"
    );
    assert!(stdout.contains("configuration is valid"), "{stdout}");
}

/// Sends one HTTP request (which asks to close the connection) and returns the whole response.
fn http_request(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

/// Sends a WebSocket upgrade for `path` (with `protocol` as the offered subprotocol, if any) and
/// returns the status line.
fn upgrade_status(addr: &str, path: &str, protocol: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let offer = protocol
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    )
    .expect("write request");
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).expect("read response");
        assert!(n > 0, "connection closed before the response headers");
        response.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_crossbar_node_with_those_keys_starts_and_serves() {
    let dir = crossbar_node_dir();
    let router = common::start(Some(dir.path()), 2);
    let addr = router.tcp.clone();

    // The static directory that does not exist answers 404; the node still serves WebSocket.
    let response = http_request(
        &addr,
        "GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");

    // The JSON value service: the value, compact, with CORS for the asking origin; GET only.
    let response = http_request(
        &addr,
        "GET /info HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/json; charset=utf-8"),
        "{response}"
    );
    assert!(
        lower.contains("access-control-allow-origin: https://app.example.com"),
        "{response}"
    );
    assert!(
        lower.contains("cache-control: no-store, no-cache, must-revalidate, max-age=0"),
        "{response}"
    );
    assert!(
        response.ends_with("\r\n\r\n{\"param1\":\"foobar\",\"param2\":[1,2,3]}"),
        "{response}"
    );
    let response = http_request(
        &addr,
        "POST /info HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");

    // require_websocket_subprotocol: a client offering none is refused there, and only there.
    let strict = upgrade_status(&addr, "strict", None);
    assert!(strict.contains(" 400 "), "{strict}");
    let strict_json = upgrade_status(&addr, "strict", Some("wamp.2.json"));
    assert!(strict_json.contains(" 101 "), "{strict_json}");
    let lenient = upgrade_status(&addr, "ws", None);
    assert!(lenient.contains(" 101 "), "{lenient}");

    // The Unix endpoint with a backlog serves RawSocket with the one serializer it names.
    let unix = router.unix.clone().expect("unix listener");
    let session = Session::connect(&ConnectOptions::new(
        Endpoint::Unix(unix.clone()),
        TransportKind::RawSocket,
        Serializer::MsgPack,
        "realm1",
    ))
    .await
    .expect("join over RawSocket with MessagePack");
    session.leave().await.expect("leave");
    let json = Session::connect(&ConnectOptions::new(
        Endpoint::Unix(unix),
        TransportKind::RawSocket,
        Serializer::Json,
        "realm1",
    ))
    .await;
    assert!(
        json.is_err(),
        "RawSocket with JSON joined although `serializer` is msgpack"
    );
    let status = router.terminate();
    assert!(status.success(), "{status:?}");
}
