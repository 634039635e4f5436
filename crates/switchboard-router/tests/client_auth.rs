//! The client side of authentication against the router's own checks: ticket, WAMP-CRA (salted
//! and not), Cryptosign and TLS client certificates welcome the client with its identity; wrong
//! credentials end in `Error::Aborted` with the router's reason.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{TestRouter, Via, start_router_custom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use switchboard_client::{Args, ConnectOptions, Credential, Error, RegisterOptions, Session};
use switchboard_proto::{Serializer, errors};
use switchboard_router::LoadedConfig;

const REALMS: &str = r#"[{"name": "realm1", "roles": [{"name": "frontend", "permissions": [
    {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}]"#;

/// The Cryptosign key of principal `alice`: the first seed of the spec's test vectors.
const ALICE_SEED: &str = "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510";

fn alice_seed() -> [u8; 32] {
    hex::decode(ALICE_SEED)
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

async fn router() -> TestRouter {
    let alice = Ed25519KeyPair::from_seed_unchecked(&alice_seed()).expect("seed");
    let pubkey = hex::encode(alice.public_key().as_ref());
    let auth = format!(
        r#""auth": {{
        "ticket": {{"type": "static", "principals": {{"joe": {{"ticket": "secret-ticket", "role": "frontend"}}}}}},
        "wampcra": {{"type": "static", "principals": {{
            "joe": {{"secret": "joes-secret", "role": "frontend"}},
            "peter": {{"secret": "secret1", "role": "frontend"}},
            "salty": {{"secret": "secret2", "role": "frontend", "salt": "salt123", "iterations": 100, "keylen": 32}}}}}},
        "cryptosign": {{"type": "static", "principals": {{"alice": {{"authorized_keys": ["{pubkey}"], "role": "frontend"}}}}}}}}"#
    );
    start_router_custom(Some(REALMS), &auth, "").await
}

/// Joins and checks WELCOME's identity; the session then works.
async fn expect_welcome(opts: &ConnectOptions, authid: &str, authmethod: &str) {
    let s = Session::connect(opts)
        .await
        .unwrap_or_else(|e| panic!("{authmethod} login as {authid}: {e}"));
    assert_eq!(s.authid(), Some(authid));
    assert_eq!(s.authrole(), Some("frontend"));
    assert_eq!(s.authmethod(), Some(authmethod));
    s.register("com.example.me", RegisterOptions::default(), common::echo)
        .await
        .expect("register");
    s.leave().await.expect("leave");
}

async fn expect_abort(opts: &ConnectOptions, reason: &str) {
    match Session::connect(opts).await {
        Err(Error::Aborted { reason: r, .. }) => assert_eq!(r, reason),
        other => panic!("expected ABORT {reason}, got {:?}", other.map(|s| s.id())),
    }
}

#[tokio::test]
async fn ticket_wampcra_and_cryptosign_logins_are_welcomed_with_their_identity() {
    let router = router().await;
    for (i, via) in [Via::RawSocketTcp, Via::WebSocketTcp, Via::WebSocketUnix]
        .into_iter()
        .enumerate()
    {
        let base = router.options(via, Serializer::ALL[i]);
        expect_welcome(
            &base.clone().with_ticket("joe", "secret-ticket"),
            "joe",
            "ticket",
        )
        .await;
        expect_welcome(
            &base.clone().with_wampcra("peter", "secret1"),
            "peter",
            "wampcra",
        )
        .await;
        expect_welcome(
            &base.clone().with_wampcra("salty", "secret2"),
            "salty",
            "wampcra",
        )
        .await;
        // Cryptosign principals are found by their key, or named.
        expect_welcome(
            &base.clone().with_cryptosign(alice_seed()),
            "alice",
            "cryptosign",
        )
        .await;
        let mut named = base.clone().with_cryptosign(alice_seed());
        named.join.authid = Some("alice".into());
        expect_welcome(&named, "alice", "cryptosign").await;
    }
    router.shutdown().await;
}

#[tokio::test]
async fn credentials_are_offered_in_order_and_the_router_takes_the_first_it_accepts() {
    let router = router().await;
    let base = router.options(Via::RawSocketTcp, Serializer::Json);
    let ticket = Credential::Ticket("secret-ticket".into());
    let wampcra = Credential::WampCra {
        secret: "joes-secret".into(),
    };
    let mut ticket_first = base
        .clone()
        .with_credential(ticket.clone())
        .with_credential(wampcra.clone());
    ticket_first.join.authid = Some("joe".into());
    expect_welcome(&ticket_first, "joe", "ticket").await;
    let mut wampcra_first = base.with_credential(wampcra).with_credential(ticket);
    wampcra_first.join.authid = Some("joe".into());
    expect_welcome(&wampcra_first, "joe", "wampcra").await;
    router.shutdown().await;
}

#[tokio::test]
async fn wrong_credentials_are_aborted_with_the_routers_reason() {
    let router = router().await;
    let base = router.options(Via::WebSocketTcp, Serializer::Cbor);
    expect_abort(
        &base.clone().with_ticket("joe", "wrong-ticket"),
        errors::AUTHENTICATION_DENIED,
    )
    .await;
    expect_abort(
        &base.clone().with_wampcra("salty", "wrong-secret"),
        errors::AUTHENTICATION_DENIED,
    )
    .await;
    expect_abort(
        &base.clone().with_cryptosign([9; 32]),
        errors::NO_SUCH_PRINCIPAL,
    )
    .await;
    expect_abort(
        &base.clone().with_ticket("nobody", "x"),
        errors::NO_SUCH_PRINCIPAL,
    )
    .await;
    // Anonymous is not offered on these endpoints.
    expect_abort(&base, errors::NO_AUTH_METHOD).await;
    router.shutdown().await;
}

/// A CA, a server certificate for `localhost` and a client certificate with CN `client-cn`, the
/// server's files written under `dir/keys/`. Returns the client's TLS config, which trusts the CA
/// and presents the client certificate.
fn make_pki(dir: &Path) -> Arc<rustls::ClientConfig> {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().expect("key");
    let server = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&server_key, &issuer)
        .expect("server cert");
    let client_key = rcgen::KeyPair::generate().expect("key");
    let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "client-cn");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params
        .signed_by(&client_key, &issuer)
        .expect("client cert");
    std::fs::create_dir_all(dir.join("keys")).expect("mkdir");
    std::fs::write(dir.join("keys/server.key"), server_key.serialize_pem()).expect("write");
    std::fs::write(dir.join("keys/server.crt"), server.pem()).expect("write");
    std::fs::write(dir.join("keys/ca.crt"), ca_cert.pem()).expect("write");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).expect("root");
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        client_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![client.der().clone()], key)
            .expect("client certificate"),
    )
}

#[tokio::test]
async fn a_tls_client_certificate_authenticates_the_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = make_pki(dir.path());
    let auth =
        r#""auth": {"tls": {"type": "static", "principals": {"client-cn": {"role": "frontend"}}}}"#;
    let config = format!(
        r#"{{"version": 2, "workers": [{{"type": "router", "realms": {REALMS}, "transports": [
          {{"type": "universal",
            "endpoint": {{"type": "tcp", "port": 0, "interface": "127.0.0.1",
              "tls": {{"key": "keys/server.key", "certificate": "keys/server.crt", "ca_certificates": ["keys/ca.crt"]}}}},
            "rawsocket": {{{auth}}}, "websocket": {{"ws": {{"type": "websocket", {auth}}}}}}}]}}]}}"#
    );
    std::fs::write(dir.path().join("config.json"), config).expect("write");
    let loaded = LoadedConfig::from_file(&dir.path().join("config.json")).expect("valid config");
    let node = switchboard_router::start(&loaded).await.expect("starts");
    let addr = node.tcp_addr().expect("tcp listener");
    for opts in [
        ConnectOptions::rawsocket(addr, Serializer::MsgPack, "realm1"),
        ConnectOptions::websocket(addr, "/ws", Serializer::Json, "realm1"),
    ] {
        let opts = opts
            .with_tls(tls.clone(), "localhost")
            .with_credential(Credential::Tls);
        expect_welcome(&opts, "client-cn", "tls").await;
        let s = Session::connect(&opts).await.expect("join");
        let r = s
            .call("wamp.session.count", Args::default())
            .await
            .expect("call");
        assert_eq!(r.args.len(), 1);
    }
    node.shutdown().await;
}
