//! Every scenario, briefly, through the built binaries: against an in-process router (started
//! through the same entry point as the `switchboard` binary) and against `switchboard-echo`. A
//! correctness check, not a benchmark: each run must exit 0 with no errors and some operations.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use switchboard_router::LoadedConfig;

const LOAD: &str = env!("CARGO_BIN_EXE_switchboard-load");
const ECHO: &str = env!("CARGO_BIN_EXE_switchboard-echo");

/// Runs `switchboard-load` with `args` plus short timings; returns its JSON line.
fn run_load(args: &[&str]) -> serde_json::Value {
    let out = Command::new(LOAD)
        .args(args)
        .args([
            "--duration",
            "0.4",
            "--warmup",
            "0.1",
            "--drain",
            "3",
            "--quiet",
        ])
        .output()
        .expect("switchboard-load runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{args:?} exited with {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    for key in ["errors", "lost", "duplicated", "reordered"] {
        assert_eq!(report[key], 0, "{args:?}: {key} in {report}");
    }
    assert!(
        report["ops"].as_u64().unwrap_or(0) > 0,
        "{args:?}: no ops in {report}"
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wamp_scenario_runs_clean_against_the_router() {
    let config = r#"{"version": 2, "workers": [{"type": "router",
        "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
            {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}],
        "transports": [{"type": "universal", "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
            "rawsocket": {"auth": {"anonymous": {"type": "static"},
                "ticket": {"type": "static", "principals": {"joe": {"ticket": "t1", "role": "anonymous"}}},
                "wampcra": {"type": "static", "users": {"peter": {"secret": "s1", "role": "anonymous",
                    "salt": "salt", "iterations": 10, "keylen": 16}}}}},
            "websocket": {"ws": {"type": "websocket", "auth": {"anonymous": {"type": "static"},
                "ticket": {"type": "static", "principals": {"joe": {"ticket": "t1", "role": "anonymous"}}},
                "wampcra": {"type": "static", "users": {"peter": {"secret": "s1", "role": "anonymous"}}}}}}}]}]}"#;
    let loaded = LoadedConfig::from_json(config, std::path::Path::new(".")).expect("valid config");
    let node = switchboard_router::start(&loaded)
        .await
        .expect("router starts");
    let addr = node.tcp_addr().expect("tcp listener");
    let pid = std::process::id().to_string();
    let urls = [
        (format!("ws://{addr}/ws"), "json"),
        (format!("rs://{addr}"), "cbor"),
        (format!("ws://{addr}/ws"), "msgpack"),
    ];
    tokio::task::spawn_blocking(move || {
        for (url, serializer) in &urls {
            let common = [
                "--url",
                url,
                "--serializer",
                serializer,
                "--router-pid",
                &pid,
            ];
            let rpc = run_load(&[&["rpc", "--callers", "2"][..], &common].concat());
            assert!(rpc["router"]["cpu_s"].is_number(), "router figures: {rpc}");
            let pubsub = run_load(
                &[
                    &["pubsub", "--publishers", "2", "--subscribers", "5"][..],
                    &common,
                ]
                .concat(),
            );
            assert!(pubsub["publishes"].as_u64().unwrap_or(0) > 0, "{pubsub}");
            run_load(&[&["connect", "--concurrency", "4"][..], &common].concat());
            // Authenticated sessions: ticket, and WAMP-CRA (salted on RawSocket).
            run_load(
                &[
                    &["connect", "--concurrency", "4", "--ticket", "joe:t1"][..],
                    &common,
                ]
                .concat(),
            );
            run_load(
                &[
                    &["rpc", "--callers", "2", "--wampcra", "peter:s1"][..],
                    &common,
                ]
                .concat(),
            );
            let idle = run_load(&[&["idle", "--sessions", "20"][..], &common].concat());
            assert_eq!(idle["ops"], 20, "{idle}");
        }
    })
    .await
    .expect("scenarios");
    node.shutdown().await;
}

/// Runs `switchboard-load` with `args` plus short timings; returns its exit code and stderr.
fn run_load_failing(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(LOAD)
        .args(args)
        .args(["--duration", "0.2", "--warmup", "0.1", "--quiet"])
        .output()
        .expect("switchboard-load runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--spread-url` and `--sample-pid`, against one router reached by two URLs (WebSocket and
/// RawSocket): pubsub subscribers spread over both after the probe wait, and rpc registers a
/// `roundrobin` callee at each and waits for both; the sampled process is reported in `others`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_and_sampled_processes_run_clean_against_the_router() {
    let config = r#"{"version": 2, "workers": [{"type": "router",
        "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
            {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}],
        "transports": [{"type": "universal", "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
            "rawsocket": {"auth": {"anonymous": {"type": "static"}}},
            "websocket": {"ws": {"type": "websocket", "auth": {"anonymous": {"type": "static"}}}}}]}]}"#;
    let loaded = LoadedConfig::from_json(config, std::path::Path::new(".")).expect("valid config");
    let node = switchboard_router::start(&loaded)
        .await
        .expect("router starts");
    let addr = node.tcp_addr().expect("tcp listener");
    let pid = std::process::id().to_string();
    tokio::task::spawn_blocking(move || {
        let ws = format!("ws://{addr}/ws");
        let rs = format!("rs://{addr}");
        let common = [
            "--url",
            &ws,
            "--spread-url",
            &rs,
            "--serializer",
            "msgpack",
            "--sample-pid",
            &pid,
        ];
        for scenario in [
            &["rpc", "--callers", "2"][..],
            &["pubsub", "--publishers", "2", "--subscribers", "5"][..],
        ] {
            let report = run_load(&[scenario, &common].concat());
            assert_eq!(report["spread_urls"], serde_json::json!([rs]), "{report}");
            let others = report["others"].as_array().expect("others");
            assert_eq!(others.len(), 1, "{report}");
            assert_eq!(others[0]["pid"].to_string(), pid, "{report}");
            assert!(others[0]["cpu_us_per_op"].is_number(), "{report}");
        }
        // With an origin as well: rpc callees on the origin and the spread URL.
        let report =
            run_load(&[&["rpc", "--callers", "2", "--origin-url", &rs][..], &common].concat());
        assert!(report["ops"].as_u64().unwrap_or(0) > 0, "{report}");
        // Spreading means nothing to the other scenarios, and to calls of someone else's
        // procedure: refused.
        for scenario in [&["connect"][..], &["rpc", "--procedure", "p"][..]] {
            let (code, stderr) = run_load_failing(&[scenario, &common].concat());
            assert_eq!(code, Some(2), "{scenario:?}: {stderr}");
            assert!(stderr.contains("--spread-url"), "{scenario:?}: {stderr}");
        }
    })
    .await
    .expect("scenarios");
    node.shutdown().await;
}

/// A server child listening on a free port of 127.0.0.1, killed on drop.
struct ServerChild(Child, SocketAddr);

impl ServerChild {
    /// Takes a free port from the kernel, starts `program` with the arguments `args` makes of
    /// it, and waits until the child listens there.
    fn start(program: &std::path::Path, args: impl FnOnce(SocketAddr) -> Vec<String>) -> Self {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let name = program.display();
        let child = Command::new(program)
            .args(args(addr))
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "{name} listens on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self(child, addr)
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `switchboard-echo` child (a fan-out hub with `fanout`).
fn echo_server(fanout: bool) -> ServerChild {
    ServerChild::start(std::path::Path::new(ECHO), |addr| {
        let mut args = vec![
            "--listen".into(),
            addr.to_string(),
            "--threads".into(),
            "1".into(),
        ];
        if fanout {
            args.push("--fanout".into());
        }
        args
    })
}

#[test]
fn echo_and_fanout_run_clean_against_switchboard_echo() {
    let echo = echo_server(false);
    let hub = echo_server(true);
    for (scheme, serializer) in [("ws", "json"), ("rs", "msgpack"), ("ws", "cbor")] {
        let path = if scheme == "ws" { "/" } else { "" };
        let url = format!("{scheme}://{}{path}", echo.1);
        run_load(&[
            "echo",
            "--url",
            &url,
            "--serializer",
            serializer,
            "--connections",
            "2",
        ]);
        let url = format!("{scheme}://{}{path}", hub.1);
        let fanout = run_load(&[
            "fanout",
            "--url",
            &url,
            "--serializer",
            serializer,
            "--publishers",
            "2",
            "--subscribers",
            "4",
        ]);
        // Each of 2 publishers' messages reaches 4 subscribers.
        assert!(fanout["publishes"].as_u64().unwrap_or(0) > 0, "{fanout}");
    }
}

/// `wss://` with `--ca-file`: a router with a TLS endpoint whose self-signed certificate (for
/// 127.0.0.1) is the one the load tool trusts; rpc and connect run clean and report
/// `websocket-tls`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wamp_over_tls_runs_clean_against_the_router() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    std::fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("key file");
    std::fs::write(dir.path().join("server.crt"), cert.pem()).expect("certificate file");
    let config = r#"{"version": 2, "workers": [{"type": "router",
        "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
            {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}],
        "transports": [{"type": "universal", "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1",
                "tls": {"key": "server.key", "certificate": "server.crt"}},
            "websocket": {"ws": {"type": "websocket", "auth": {"anonymous": {"type": "static"}}}}}]}]}"#;
    let loaded = LoadedConfig::from_json(config, dir.path()).expect("valid config");
    let node = switchboard_router::start(&loaded)
        .await
        .expect("router starts");
    let addr = node.tcp_addr().expect("tcp listener");
    let ca_file = dir.path().join("server.crt");
    tokio::task::spawn_blocking(move || {
        let url = format!("wss://{addr}/ws");
        let ca = ca_file.to_str().expect("UTF-8 path");
        let common = ["--url", &url, "--ca-file", ca, "--serializer", "msgpack"];
        let rpc = run_load(&[&["rpc", "--callers", "2"][..], &common].concat());
        assert_eq!(rpc["transport"], "websocket-tls", "{rpc}");
        run_load(&[&["connect", "--concurrency", "2"][..], &common].concat());
        // Without the certificate to trust, the handshake fails: nothing runs.
        let (code, stderr) = run_load_failing(&["rpc", "--url", &url]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("TLS"), "{stderr}");
    })
    .await
    .expect("scenarios");
    node.shutdown().await;
}

/// A `nats-server` child on a free port; `None` when no `nats-server` is installed (on PATH or
/// in /usr/sbin: the test command installs it, `scripts/test.sh`).
fn nats_server() -> Option<ServerChild> {
    let binary = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())?;
    Some(ServerChild::start(&binary, |addr| {
        vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            addr.port().to_string(),
        ]
    }))
}

#[test]
fn rpc_and_pubsub_run_clean_against_nats() {
    let nats = nats_server()
        .expect("nats-server is needed (apt-get install nats-server; scripts/test.sh installs it)");
    let url = format!("nats://{}", nats.1);
    let pid = nats.0.id().to_string();
    for payload in ["64", "4096"] {
        let common = ["--url", &url, "--router-pid", &pid, "--payload", payload];
        let rpc = run_load(&[&["rpc", "--callers", "2"][..], &common].concat());
        assert_eq!(rpc["transport"], "nats", "{rpc}");
        assert_eq!(rpc["serializer"], "none", "{rpc}");
        assert!(rpc["router"]["cpu_s"].is_number(), "{rpc}");
        let pubsub = run_load(
            &[
                &["pubsub", "--publishers", "2", "--subscribers", "4"][..],
                &common,
            ]
            .concat(),
        );
        assert!(pubsub["publishes"].as_u64().unwrap_or(0) > 0, "{pubsub}");
    }
    // What NATS cannot stand in for is refused before anything runs.
    let (code, stderr) = run_load_failing(&["connect", "--url", &url]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("NATS"), "{stderr}");
}
