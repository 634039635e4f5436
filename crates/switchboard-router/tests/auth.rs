//! The authentication handshake on the wire, driven by hand: what WELCOME says, which ABORT each
//! failure gets, protocol violations in the middle of a challenge, and the failure rate limit.
//! (The methods themselves are tested with real third-party clients in tests/interop.)

mod common;

use common::{RawPeer, TestRouter, Via, start_router_custom};
use switchboard_proto::{Dict, Message, Serializer, Value, errors};

const REALMS: &str = r#"[{"name": "realm1", "roles": [
    {"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": {"call": true}}]},
    {"name": "frontend", "permissions": [{"uri": "com.example.", "match": "prefix", "allow": {"call": true}}]}]},
    {"name": "realm2", "roles": [{"name": "anonymous"}]}]"#;

const AUTH: &str = r#""auth": {
    "anonymous": {"type": "static", "role": "anonymous"},
    "ticket": {"type": "static", "principals": {"joe": {"ticket": "secret-ticket", "role": "frontend"},
                                                "ghost": {"ticket": "boo", "role": "anonymous", "realm": "realm2"}}}}"#;

async fn router(transport_extra: &str) -> TestRouter {
    start_router_custom(Some(REALMS), AUTH, transport_extra).await
}

fn hello(methods: Option<Value>, authid: Option<&str>) -> Message {
    let Message::Hello { realm, mut details } = common::hello("realm1") else {
        unreachable!("common::hello makes a HELLO")
    };
    if let Some(m) = methods {
        details.insert("authmethods".into(), m);
    }
    if let Some(a) = authid {
        details.insert("authid".into(), a.into());
    }
    Message::Hello { realm, details }
}

fn methods(names: &[&str]) -> Option<Value> {
    Some(Value::List(names.iter().map(|n| (*n).into()).collect()))
}

/// Sends a ticket HELLO for `authid` and answers the CHALLENGE with `ticket`.
async fn ticket_login(router: &TestRouter, via: Via, authid: &str, ticket: &str) -> RawPeer {
    let mut peer = RawPeer::open(router, via, Serializer::Json).await;
    peer.send(&hello(methods(&["ticket"]), Some(authid))).await;
    match peer.recv().await {
        Some(Message::Challenge { method, extra }) => {
            assert_eq!(method, "ticket");
            assert!(extra.is_empty());
        }
        other => panic!("expected CHALLENGE, got {other:?}"),
    }
    peer.send(&Message::Authenticate {
        signature: ticket.into(),
        extra: Dict::new(),
    })
    .await;
    peer
}

#[tokio::test]
async fn a_ticket_login_is_welcomed_with_its_identity() {
    let router = router("").await;
    for via in [Via::RawSocketTcp, Via::WebSocketTcp, Via::RawSocketUnix] {
        let mut peer = ticket_login(&router, via, "joe", "secret-ticket").await;
        match peer.recv().await {
            Some(Message::Welcome { details, .. }) => {
                let field = |k: &str| details.get(k).and_then(Value::as_str).map(str::to_owned);
                assert_eq!(field("authid").as_deref(), Some("joe"));
                assert_eq!(field("authrole").as_deref(), Some("frontend"));
                assert_eq!(field("authmethod").as_deref(), Some("ticket"));
                assert_eq!(field("authprovider").as_deref(), Some("static"));
            }
            other => panic!("expected WELCOME over {via:?}, got {other:?}"),
        }
    }
    router.shutdown().await;
}

#[tokio::test]
async fn each_failure_gets_the_abort_the_spec_names() {
    let router = router("").await;
    let via = Via::RawSocketTcp;
    ticket_login(&router, via, "joe", "wrong")
        .await
        .expect_abort(errors::AUTHENTICATION_DENIED)
        .await;

    let mut unknown = RawPeer::open(&router, via, Serializer::Cbor).await;
    unknown
        .send(&hello(methods(&["ticket"]), Some("nobody")))
        .await;
    unknown.expect_abort(errors::NO_SUCH_PRINCIPAL).await;

    let mut no_method = RawPeer::open(&router, via, Serializer::MsgPack).await;
    no_method
        .send(&hello(methods(&["wampcra", "scram"]), Some("joe")))
        .await;
    no_method.expect_abort(errors::NO_AUTH_METHOD).await;

    router.shutdown().await;
}

#[tokio::test]
async fn a_principal_with_a_realm_joins_that_realm_and_anonymous_authids_are_generated() {
    let router = router("").await;
    // As Crossbar: the principal's realm wins over the one HELLO asked for.
    let mut ghost = ticket_login(&router, Via::RawSocketTcp, "ghost", "boo").await;
    match ghost.recv().await {
        Some(Message::Welcome { details, .. }) => {
            assert_eq!(details.get("realm").and_then(Value::as_str), Some("realm2"));
            assert_eq!(details.get("authid").and_then(Value::as_str), Some("ghost"));
        }
        other => panic!("expected WELCOME, got {other:?}"),
    }
    // An anonymous client cannot choose its authid: it could pose as a principal.
    let mut anon = RawPeer::open(&router, Via::WebSocketTcp, Serializer::Json).await;
    anon.send(&hello(methods(&["anonymous"]), Some("joe")))
        .await;
    match anon.recv().await {
        Some(Message::Welcome { details, .. }) => {
            let authid = details.get("authid").and_then(Value::as_str).unwrap_or("");
            assert!(authid.starts_with("anonymous-"), "{authid}");
        }
        other => panic!("expected WELCOME, got {other:?}"),
    }
    router.shutdown().await;
}

#[tokio::test]
async fn the_first_method_the_client_lists_that_applies_is_used() {
    let router = router("").await;
    let mut peer = RawPeer::open(&router, Via::WebSocketTcp, Serializer::Json).await;
    // cryptosign is not offered here, so anonymous (listed next) applies before ticket.
    peer.send(&hello(
        methods(&["cryptosign", "anonymous", "ticket"]),
        None,
    ))
    .await;
    match peer.recv().await {
        Some(Message::Welcome { details, .. }) => {
            assert_eq!(
                details.get("authmethod").and_then(Value::as_str),
                Some("anonymous")
            );
        }
        other => panic!("expected WELCOME, got {other:?}"),
    }
    router.shutdown().await;
}

#[tokio::test]
async fn breaking_the_protocol_mid_challenge_ends_in_protocol_violation() {
    let router = router("").await;
    let via = Via::RawSocketTcp;

    let mut malformed = RawPeer::open(&router, via, Serializer::Json).await;
    malformed
        .send(&hello(Some(Value::Str("ticket".into())), Some("joe")))
        .await;
    malformed.expect_abort(errors::PROTOCOL_VIOLATION).await;

    let mut wrong_answer = RawPeer::open(&router, via, Serializer::Json).await;
    wrong_answer
        .send(&hello(methods(&["ticket"]), Some("joe")))
        .await;
    assert!(matches!(
        wrong_answer.recv().await,
        Some(Message::Challenge { .. })
    ));
    wrong_answer
        .send(&Message::Call {
            request: 1,
            options: Dict::new(),
            procedure: "com.example.add".into(),
            payload: switchboard_proto::Payload::EMPTY,
        })
        .await;
    wrong_answer.expect_abort(errors::PROTOCOL_VIOLATION).await;

    let mut garbage = RawPeer::open(&router, via, Serializer::Json).await;
    garbage
        .send(&hello(methods(&["ticket"]), Some("joe")))
        .await;
    assert!(matches!(
        garbage.recv().await,
        Some(Message::Challenge { .. })
    ));
    garbage.send_raw(b"[5, \"not a signature\"").await;
    garbage.expect_abort(errors::PROTOCOL_VIOLATION).await;
    router.shutdown().await;
}

#[tokio::test]
async fn failures_from_one_address_are_rate_limited() {
    let router = router(r#""auth_rate_limit": {"failures": 2, "window": 60},"#).await;
    let via = Via::RawSocketTcp;
    for _ in 0..2 {
        ticket_login(&router, via, "joe", "wrong")
            .await
            .expect_abort(errors::AUTHENTICATION_DENIED)
            .await;
    }
    // Now even the right ticket is refused before it is asked for.
    let mut blocked = RawPeer::open(&router, via, Serializer::Json).await;
    blocked
        .send(&hello(methods(&["ticket"]), Some("joe")))
        .await;
    match blocked.recv().await {
        Some(Message::Abort { reason, details }) => {
            assert_eq!(reason, errors::AUTHENTICATION_DENIED);
            let message = details.get("message").and_then(Value::as_str);
            assert!(
                message.is_some_and(|m| m.contains("too many failed")),
                "{message:?}"
            );
        }
        other => panic!("expected ABORT, got {other:?}"),
    }
    // Unix socket clients have no address and are not limited.
    let mut local = ticket_login(&router, Via::RawSocketUnix, "joe", "secret-ticket").await;
    assert!(matches!(local.recv().await, Some(Message::Welcome { .. })));
    router.shutdown().await;
}

/// Sends a ticket HELLO for joe and waits for the CHALLENGE.
async fn challenged(router: &TestRouter) -> RawPeer {
    let mut peer = RawPeer::open(router, Via::RawSocketTcp, Serializer::Json).await;
    peer.send(&hello(methods(&["ticket"]), Some("joe"))).await;
    assert!(matches!(peer.recv().await, Some(Message::Challenge { .. })));
    peer
}

#[tokio::test]
async fn a_client_that_gives_up_mid_challenge_gets_authentication_failed() {
    let router = router("").await;
    let mut peer = challenged(&router).await;
    peer.send(&Message::abort("com.example.changed_mind", "bye"))
        .await;
    match peer.recv().await {
        Some(Message::Abort { reason, details }) => {
            assert_eq!(reason, errors::AUTHENTICATION_FAILED);
            assert_eq!(
                details.get("message").and_then(Value::as_str),
                Some("the client gave up authenticating (com.example.changed_mind)")
            );
        }
        other => panic!("expected ABORT, got {other:?}"),
    }
    assert!(peer.recv().await.is_none(), "connection closes after ABORT");
    router.shutdown().await;
}

#[tokio::test]
async fn giving_up_or_breaking_the_protocol_mid_challenge_is_not_a_failed_login() {
    let router = router(r#""auth_rate_limit": {"failures": 1, "window": 60},"#).await;
    for _ in 0..3 {
        let mut peer = challenged(&router).await;
        peer.send(&Message::abort("com.example.changed_mind", "bye"))
            .await;
        peer.expect_abort(errors::AUTHENTICATION_FAILED).await;
        let mut peer = challenged(&router).await;
        peer.send(&hello(None, None)).await;
        peer.expect_abort(errors::PROTOCOL_VIOLATION).await;
    }
    let mut welcome = ticket_login(&router, Via::RawSocketTcp, "joe", "secret-ticket").await;
    assert!(matches!(
        welcome.recv().await,
        Some(Message::Welcome { .. })
    ));
    router.shutdown().await;
}
