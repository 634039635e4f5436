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

/// Realm, role and auth keys of Crossbar's examples: `trace` and `authenticator-role` have no
/// effect; `allow-by-default` decides for a role with neither `permissions` nor an `authorizer`
/// (and is ignored, with a warning, where it has one, as in Crossbar).
fn realm_keys_node_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{
    "version": 2,
    "workers": [{
        "type": "router",
        "realms": [
            {"name": "realm1", "trace": true,
             "roles": [{"name": "anonymous", "allow-by-default": true}]},
            {"name": "realm2",
             "roles": [{"name": "anonymous", "allow-by-default": true,
                        "permissions": []}]}
        ],
        "transports": [{"type": "websocket",
            "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
            "auth": {"anonymous": {"type": "static", "realm": "realm1"},
                     "ticket": {"type": "dynamic", "authenticator": "com.example.authenticate",
                                "authenticator-role": "authenticator"}}}]
    }]
}"#;
    std::fs::write(dir.path().join("config.json"), config).expect("write");
    dir
}

#[test]
fn check_warns_about_realm_role_and_auth_keys_without_effect() {
    let dir = realm_keys_node_dir();
    let out = Command::new(common::bin())
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for (line, text) in [
        (6, "workers[0].realms[0].trace: has no effect"),
        (
            9,
            "workers[0].realms[1].roles[0].allow-by-default: has no effect",
        ),
        (
            14,
            "workers[0].transports[0].auth.anonymous.realm: has no effect",
        ),
        (
            16,
            "workers[0].transports[0].auth.ticket.authenticator-role: has no effect",
        ),
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with("warning: ")
                && l.contains(&format!(":{line}:"))
                && l.contains(text)),
            "no warning on line {line} with {text:?}:\n{stdout}"
        );
    }
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("warning: "))
            .count(),
        4,
        "{stdout}"
    );
}

#[tokio::test]
async fn allow_by_default_allows_everything_only_to_a_role_without_permissions() {
    use switchboard_client::{Args, RegisterOptions};
    let dir = realm_keys_node_dir();
    let router = common::start(Some(dir.path()), 1);
    let connect = |realm: &'static str| {
        let addr = router.tcp.clone();
        async move {
            Session::connect(&ConnectOptions::new(
                Endpoint::Tcp(addr),
                TransportKind::WebSocket {
                    path: "/".into(),
                    compression: false,
                },
                Serializer::Json,
                realm,
            ))
            .await
            .expect("join")
        }
    };
    let open = connect("realm1").await;
    open.register(
        "com.example.add2",
        RegisterOptions::default(),
        |inv| async move {
            let sum: u64 = inv.args.args.iter().filter_map(|v| v.as_u64()).sum();
            Ok(Args::positional(vec![sum.into()]))
        },
    )
    .await
    .expect("register: allow-by-default allows it");
    let result = open
        .call(
            "com.example.add2",
            Args::positional(vec![2u64.into(), 3u64.into()]),
        )
        .await
        .expect("call");
    assert_eq!(result.args, vec![5u64.into()]);
    // realm2's role has `permissions` (none): they decide, and allow nothing.
    let closed = connect("realm2").await;
    let refused = closed
        .register(
            "com.example.add2",
            RegisterOptions::default(),
            |_| async move { Ok(Args::default()) },
        )
        .await
        .expect_err("a role with empty permissions may not register");
    assert!(refused.to_string().contains("not_authorized"), "{refused}");
}
