//! The `switchboard` command as a user runs it: init, check, start (from a node directory and with
//! the built-in default), version, and graceful shutdown on SIGTERM (GOODBYE, and calls in flight
//! cut off after `--shutdown-grace`).

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
    // It holds the management tickets: only its owner reads it.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(node.join("config.json"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let config = std::fs::read_to_string(node.join("config.json")).expect("read");
    let parsed: serde_json::Value = serde_json::from_str(&config).expect("JSON");
    let principals =
        &parsed["workers"][0]["transports"][1]["paths"]["ws"]["auth"]["ticket"]["principals"];
    assert_eq!(principals["admin"]["role"], "mgmt-admin");
    assert_eq!(
        principals["admin"]["ticket"].as_str().map(str::len),
        Some(36)
    );
    assert_ne!(
        principals["admin"]["ticket"],
        principals["viewer"]["ticket"]
    );
    // The node serves its web/ folder and WAMP on one port, and its operations on another (port
    // 0 here, so tests don't clash).
    std::fs::write(
        node.join("config.json"),
        config
            .replace("\"port\": 8080", "\"port\": 0")
            .replace("\"port\": 8090", "\"port\": 0"),
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
fn init_lists_its_templates_and_writes_each_hello_app_that_check_accepts() {
    let out = Command::new(common::bin())
        .args(["init", "--list"])
        .output()
        .expect("run");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    for name in [
        "default",
        "hello:python",
        "hello:nodejs",
        "hello:browser",
        "rest",
        "postgres",
    ] {
        assert!(
            listing.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{listing}"
        );
    }

    let dir = tempfile::tempdir().expect("tempdir");
    // hello:python's check needs a Python with Autobahn: the Python interop suite runs that one.
    for (template, script) in [
        ("hello:nodejs", "myapp/myapp.js"),
        ("hello:browser", "web/backend.js"),
        ("rest", "README.md"),
        ("postgres", "db/setup.sql"),
    ] {
        let app = dir.path().join(template.replace(':', "_"));
        let out = Command::new(common::bin())
            .args(["init", "--template", template, "--appname", "myapp"])
            .arg(&app)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{template}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for file in [
            ".crossbar/config.json",
            "README.md",
            "web/index.html",
            "web/autobahn.min.js",
            script,
        ] {
            assert!(app.join(file).is_file(), "{template}: {file}");
        }
        let out = Command::new(common::bin())
            .arg("check")
            .arg(&app)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{template}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Nothing is overwritten: a second init into the same directory fails and names a file.
        let out = Command::new(common::bin())
            .args([
                "init",
                "--template",
                template,
                "--appname",
                "myapp",
                "--appdir",
            ])
            .arg(&app)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("README.md"),
            "{template}: {err}"
        );
    }

    let out = Command::new(common::bin())
        .args(["init", "--template", "hello:cobol"])
        .arg(dir.path().join("x"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("hello:python") && err.contains("--list"),
        "{err}"
    );
    assert!(!dir.path().join("x").exists());
}

#[test]
fn check_names_the_file_and_position_of_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("config.json"),
        "{\"version\": 2,\n \"workers\": [{\"type\": \"router\", \"links\": 7}]}",
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
        err.contains("config.json:2:") && err.contains("workers[0].links"),
        "{err}"
    );
    assert!(err.contains("expected a sequence"), "{err}");
}

/// A node directory whose only transport has unusable material: its TLS key names a directory, its
/// JWKS file is no key set, a cryptosign key is malformed. The lines of those keys in config.json.
fn node_dir_with_unusable_material() -> (tempfile::TempDir, [usize; 3]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = r#"{"version": 2, "workers": [{"type": "router",
  "realms": [{"name": "realm1", "roles": [{"name": "anonymous"}]}],
  "transports": [{"type": "websocket",
    "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": 0,
      "tls": {"certificate": "keys/server.crt",
              "key": "keys"}},
    "auth": {
      "ticket": {"type": "jwt", "jwks": "jwks.json"},
      "cryptosign": {"type": "static", "principals": {"alice": {"role": "anonymous",
        "authorized_keys": ["not a key"]}}}}}]}]}
"#;
    std::fs::write(dir.path().join("config.json"), config).expect("write config");
    std::fs::create_dir(dir.path().join("keys")).expect("create keys/");
    std::fs::write(dir.path().join("jwks.json"), r#"{"keys": "none"}"#).expect("write jwks");
    (dir, [6, 8, 10])
}

/// Runs the binary with `args`, killing it if it has not finished within 60 seconds (a `start`
/// that got past preparation would listen until stopped).
fn run_to_exit(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let mut child = Command::new(common::bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn switchboard");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_names_file_line_and_path_of_unusable_tls_key_jwks_and_cryptosign_key() {
    let (dir, [key_line, jwks_line, cryptosign_line]) = node_dir_with_unusable_material();
    let (code, err) = run_to_exit(&["check".as_ref(), dir.path().as_os_str()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.starts_with("error: invalid configuration:\n"), "{err}");
    let at = "workers[0].transports[0]";
    let expected = [
        (
            key_line,
            format!("{at}.endpoint.tls.key: cannot read `keys`"),
        ),
        (
            jwks_line,
            format!(
                "{at}.auth.ticket.jwks: JWKS file {}",
                dir.path().join("jwks.json").display()
            ),
        ),
        (
            cryptosign_line,
            format!(
                "{at}.auth.cryptosign.principals.alice.authorized_keys[0]: expected an Ed25519 \
                 public key: 64 hex digits"
            ),
        ),
    ];
    for (line, text) in expected {
        let file_and_line = format!("{}:{line}:", dir.path().join("config.json").display());
        assert!(
            err.lines()
                .any(|l| l.starts_with(&file_and_line) && l.contains(&text)),
            "no line starting {file_and_line} with {text:?}:\n{err}"
        );
    }
}

#[test]
fn check_and_start_report_the_same_problems_with_unusable_material() {
    let (dir, _) = node_dir_with_unusable_material();
    let (check_code, check_err) = run_to_exit(&["check".as_ref(), dir.path().as_os_str()]);
    let (start_code, start_err) = run_to_exit(&[
        "start".as_ref(),
        "--loglevel".as_ref(),
        "none".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert_eq!(check_code, Some(1), "{check_err}");
    assert_eq!(start_code, Some(1), "{start_err}");
    // Four problems: the two of the TLS section (the key is a directory, the certificate is
    // missing), the JWKS and the cryptosign key.
    assert_eq!(check_err.lines().count(), 5, "{check_err}");
    assert_eq!(check_err, start_err);
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
async fn sigterm_cuts_off_a_call_in_flight_after_the_shutdown_grace_and_exits_zero() {
    let dir = common::node_dir();
    let router = common::start_with(Some(dir.path()), 2, &["--shutdown-grace", "0.5"]);
    let callee = Session::connect(&ConnectOptions::rawsocket(
        &router.tcp,
        Serializer::Cbor,
        "realm1",
    ))
    .await
    .expect("join");
    let (invoked, mut was_invoked) = tokio::sync::mpsc::channel::<()>(1);
    callee
        .register(
            "com.example.forever",
            RegisterOptions::default(),
            move |_| {
                let invoked = invoked.clone();
                async move {
                    let _ = invoked.send(()).await;
                    std::future::pending::<()>().await;
                    Ok(Args::default())
                }
            },
        )
        .await
        .expect("register");
    let caller = Session::connect(&ConnectOptions::websocket(
        &router.tcp,
        "/ws",
        Serializer::Json,
        "realm1",
    ))
    .await
    .expect("join");
    let call = tokio::spawn({
        let caller = caller.clone();
        async move { caller.call("com.example.forever", Args::default()).await }
    });
    tokio::time::timeout(Duration::from_secs(10), was_invoked.recv())
        .await
        .expect("the callee was invoked");

    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || router.terminate())
        .await
        .expect("join");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500) + Duration::from_secs(5),
        "exits within the grace plus 5 s: {:?}",
        started.elapsed()
    );
    let outcome = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the caller got an answer")
        .expect("task");
    assert!(
        matches!(&outcome, Err(switchboard_client::Error::Wamp { uri, .. }) if uri == "wamp.error.canceled"),
        "{outcome:?}"
    );
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

#[test]
fn an_idle_keep_alive_http_connection_does_not_hold_up_shutdown() {
    use std::io::{BufRead as _, Read as _, Write as _};
    let dir = common::node_dir();
    let mut child = Command::new(common::bin())
        .args(["start", "--loglevel", "warn"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let tcp = loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).expect("read") > 0,
            "no listening line"
        );
        if let Some(addr) = line.trim().strip_prefix("switchboard listening on tcp:") {
            break addr.to_owned();
        }
    };
    // One answered request, and the connection kept open (HTTP/1.1 keep-alive).
    let mut http = std::net::TcpStream::connect(&tcp).expect("connect");
    http.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = [0u8; 64];
    let n = http.read(&mut answer).expect("an answer");
    assert!(answer[..n].starts_with(b"HTTP/1.1 "), "{:?}", &answer[..n]);

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let status = child.wait().expect("wait");
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("read log");
    assert!(status.success(), "{status:?}\n{log}");
    // The node closed the idle connection instead of waiting for it to say goodbye.
    assert!(!log.contains("did not close"), "{log}");
    let mut rest = Vec::new();
    assert_eq!(
        http.read_to_end(&mut rest).map(|_| ()).ok(),
        Some(()),
        "the connection was closed by the node"
    );
}
