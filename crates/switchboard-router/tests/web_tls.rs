//! The web transport (static files, listings, redirects, traversal) and TLS on every endpoint
//! type, with certificates generated at test time.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use switchboard_client::{Args, ConnectOptions, Endpoint, RegisterOptions, Session, TransportKind};
use switchboard_proto::Serializer;
use switchboard_router::{LoadedConfig, RunningNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA and a server certificate for localhost/127.0.0.1, written as PEM into `dir/keys/`.
/// Returns the CA certificate (DER) for clients to trust.
fn make_pki(dir: &Path) -> rustls_pki_types::CertificateDer<'static> {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    std::fs::create_dir_all(dir.join("keys")).expect("mkdir");
    std::fs::write(dir.join("keys/server.key"), key.serialize_pem()).expect("write");
    std::fs::write(dir.join("keys/server.crt"), cert.pem()).expect("write");
    std::fs::write(dir.join("keys/ca.crt"), ca_cert.pem()).expect("write");
    ca_cert.der().clone()
}

fn client_tls(ca: &rustls_pki_types::CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

struct Node {
    node: RunningNode,
    dir: tempfile::TempDir,
    ca: rustls_pki_types::CertificateDer<'static>,
}

const REALMS: &str = r#"[{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
    {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}]"#;

/// Transport 0: universal, plain TCP, web + ws + rawsocket. 1: web over TLS. 2: universal over
/// TLS on a Unix socket (rawsocket + ws).
async fn start() -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_pki(dir.path());
    let web = dir.path().join("web");
    std::fs::create_dir_all(web.join("sub/deeper")).expect("mkdir");
    std::fs::write(web.join("index.html"), "<h1>home</h1>").expect("write");
    std::fs::write(web.join("style.css"), "body {}").expect("write");
    std::fs::write(
        web.join("data.bin"),
        (0..=255u8).cycle().take(4096).collect::<Vec<u8>>(),
    )
    .expect("write");
    std::fs::write(web.join("sub/a.txt"), "a").expect("write");
    std::fs::write(dir.path().join("secret.txt"), "TOP SECRET").expect("write");
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), web.join("sneaky")).expect("symlink");
    let tls = r#""tls": {"key": "keys/server.key", "certificate": "keys/server.crt"}"#;
    let config = format!(
        r#"{{"version": 2, "workers": [{{"type": "router", "realms": {REALMS}, "transports": [
          {{"type": "universal", "endpoint": {{"type": "tcp", "port": 0, "interface": "127.0.0.1"}},
            "rawsocket": {{}},
            "websocket": {{"ws": {{"type": "websocket"}}}},
            "web": {{"paths": {{"/": {{"type": "static", "directory": "web", "options": {{"enable_directory_listing": true}}}},
                              "old": {{"type": "redirect", "url": "/index.html"}},
                              "info": {{"type": "nodeinfo"}}}}}}}},
          {{"type": "web", "endpoint": {{"type": "tcp", "port": 0, "interface": "127.0.0.1", {tls}}},
            "paths": {{"/": {{"type": "static", "directory": "web"}}, "ws": {{"type": "websocket"}}}}}},
          {{"type": "universal", "endpoint": {{"type": "unix", "path": "tls.sock", {tls}}},
            "rawsocket": {{}}, "websocket": {{"ws": {{"type": "websocket"}}}}}}
        ]}}]}}"#
    );
    std::fs::write(dir.path().join("config.json"), config).expect("write");
    let loaded = LoadedConfig::from_file(&dir.path().join("config.json")).expect("valid config");
    let node = switchboard_router::start(&loaded).await.expect("starts");
    Node { node, dir, ca }
}

fn tcp_addr(node: &Node, index: usize) -> std::net::SocketAddr {
    match &node.node.listeners[index] {
        switchboard_router::listener::ListenAddr::Tcp(a) => *a,
        other => panic!("not tcp: {other}"),
    }
}

/// A raw HTTP/1.1 GET (the path sent exactly as given) over `io`; returns status, headers, body.
async fn get<IO>(io: IO, path: &str, headers: &[(&str, &str)]) -> (u16, hyper::HeaderMap, Bytes)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("http");
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = sender
        .send_request(req.body(Empty::<Bytes>::new()).expect("req"))
        .await
        .expect("response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, body)
}

async fn plain_get(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, hyper::HeaderMap, Bytes) {
    get(
        tokio::net::TcpStream::connect(addr).await.expect("connect"),
        path,
        headers,
    )
    .await
}

#[tokio::test]
async fn static_files_are_served_with_types_ranges_and_conditional_requests() {
    let node = start().await;
    let addr = tcp_addr(&node, 0);
    let (status, headers, body) = plain_get(addr, "/", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"<h1>home</h1>");
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let (status, headers, _) = plain_get(addr, "/style.css", &[]).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/css")
    );
    let (status, headers, body) = plain_get(addr, "/data.bin", &[("range", "bytes=100-199")]).await;
    assert_eq!(status, 206);
    assert_eq!(body.len(), 100);
    assert_eq!(body[0], 100);
    assert_eq!(headers["content-range"], "bytes 100-199/4096");
    let (_, headers, _) = plain_get(addr, "/style.css", &[]).await;
    let modified = headers["last-modified"].to_str().expect("ascii").to_owned();
    let (status, _, body) =
        plain_get(addr, "/style.css", &[("if-modified-since", &modified)]).await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(plain_get(addr, "/missing.txt", &[]).await.0, 404);
    node.node.shutdown().await;
}

#[tokio::test]
async fn listings_redirects_and_node_info() {
    let node = start().await;
    let addr = tcp_addr(&node, 0);
    let (status, _, body) = plain_get(addr, "/sub/", &[]).await;
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("a.txt") && page.contains("deeper/"), "{page}");
    let (status, headers, _) = plain_get(addr, "/sub", &[]).await;
    assert_eq!(status, 302);
    assert_eq!(headers["location"], "/sub/");
    let (status, headers, _) = plain_get(addr, "/old", &[]).await;
    assert_eq!(status, 302);
    assert_eq!(headers["location"], "/index.html");
    let (status, _, body) = plain_get(addr, "/info", &[]).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("realm1"));
    node.node.shutdown().await;
}

#[tokio::test]
async fn directory_traversal_never_escapes_the_web_directory() {
    let node = start().await;
    let addr = tcp_addr(&node, 0);
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/sneaky",
        "/sub/..%5c..%5csecret.txt",
    ] {
        let (status, _, body) = plain_get(addr, path, &[]).await;
        assert!(
            !String::from_utf8_lossy(&body).contains("TOP SECRET"),
            "{path} leaked the secret"
        );
        assert!(
            !String::from_utf8_lossy(&body).contains("root:"),
            "{path} leaked /etc/passwd"
        );
        assert!(status >= 400, "{path}: {status}");
    }
    // The same over a raw socket, bytes exactly as written.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET /../../../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("root:"), "{text}");
    node.node.shutdown().await;
}

#[tokio::test]
async fn wamp_works_over_tls_on_tcp_and_unix_sockets_and_https_serves_files() {
    let node = start().await;
    let tls = Some((client_tls(&node.ca), "localhost".to_owned()));
    let tcp = tcp_addr(&node, 1);
    let callee = Session::connect(&ConnectOptions {
        tls: tls.clone(),
        ..ConnectOptions::new(
            Endpoint::Tcp(tcp.to_string()),
            TransportKind::WebSocket {
                path: "/ws".into(),
                compression: true,
            },
            Serializer::Cbor,
            "realm1",
        )
    })
    .await
    .expect("wss join");
    callee
        .register("com.example.tls", RegisterOptions::default(), common::echo)
        .await
        .expect("register");
    for transport in [
        TransportKind::RawSocket,
        TransportKind::WebSocket {
            path: "/ws".into(),
            compression: false,
        },
    ] {
        let caller = Session::connect(&ConnectOptions {
            tls: tls.clone(),
            ..ConnectOptions::new(
                Endpoint::Unix(node.dir.path().join("tls.sock")),
                transport,
                Serializer::MsgPack,
                "realm1",
            )
        })
        .await
        .expect("join over TLS on a unix socket");
        let r = caller
            .call("com.example.tls", Args::positional(vec!["secure".into()]))
            .await
            .expect("call");
        assert_eq!(r.args, vec!["secure".into()]);
    }
    // HTTPS static file.
    let connector = tokio_rustls::TlsConnector::from(client_tls(&node.ca));
    let stream = tokio::net::TcpStream::connect(tcp).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls_stream = connector.connect(name, stream).await.expect("handshake");
    let (status, _, body) = get(tls_stream, "/index.html", &[]).await;
    assert_eq!((status, &body[..]), (200, &b"<h1>home</h1>"[..]));
    node.node.shutdown().await;
}

#[tokio::test]
async fn tls_ports_refuse_untrusting_and_plain_clients() {
    let node = start().await;
    let tcp = tcp_addr(&node, 1);
    // A client that does not trust the test CA fails the handshake.
    let other_ca = make_pki(tempfile::tempdir().expect("tmp").path());
    let connector = tokio_rustls::TlsConnector::from(client_tls(&other_ca));
    let stream = tokio::net::TcpStream::connect(tcp).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    assert!(connector.connect(name, stream).await.is_err());
    // A plain WAMP client gets no session.
    let plain = Session::connect(&ConnectOptions::rawsocket(tcp, Serializer::Json, "realm1")).await;
    assert!(plain.is_err());
    node.node.shutdown().await;
}

#[tokio::test]
async fn bad_tls_material_is_reported_with_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    make_pki(dir.path());
    // A second key that does not belong to the certificate.
    std::fs::write(
        dir.path().join("keys/other.key"),
        rcgen::KeyPair::generate().expect("key").serialize_pem(),
    )
    .expect("write");
    // An expired certificate.
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    std::fs::write(
        dir.path().join("keys/expired.crt"),
        params.self_signed(&key).expect("cert").pem(),
    )
    .expect("write");
    std::fs::write(dir.path().join("keys/expired.key"), key.serialize_pem()).expect("write");
    let endpoint = |key: &str, cert: &str, port: u16| {
        format!(
            r#"{{"type": "rawsocket", "endpoint": {{"type": "tcp", "port": {port}, "tls": {{"key": "{key}", "certificate": "{cert}"}}}}}}"#
        )
    };
    let config = format!(
        r#"{{"version": 2, "workers": [{{"type": "router", "realms": {REALMS}, "transports": [{}, {}, {}]}}]}}"#,
        endpoint("keys/missing.key", "keys/server.crt", 40001),
        endpoint("keys/other.key", "keys/server.crt", 40002),
        endpoint("keys/expired.key", "keys/expired.crt", 40003),
    );
    std::fs::write(dir.path().join("config.json"), config).expect("write");
    // TLS material is read when the node is prepared, which `check` and `start` both run.
    let errors = switchboard_router::node::prepare_dir(dir.path())
        .expect_err("invalid")
        .to_string();
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 3, "{errors}");
    assert!(
        lines[0].contains("transports[0].endpoint.tls.key")
            && lines[0].contains("cannot read `keys/missing.key`"),
        "{errors}"
    );
    assert!(
        lines[1].contains("transports[1].endpoint.tls.key") && lines[1].contains("does not match"),
        "{errors}"
    );
    assert!(
        lines[2].contains("transports[2].endpoint.tls.certificate") && lines[2].contains("expired"),
        "{errors}"
    );
}
