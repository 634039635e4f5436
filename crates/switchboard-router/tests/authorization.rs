//! Static role permissions from the config, enforced over real sockets.

mod common;

use common::{Via, start_router_with};
use switchboard_client::{Args, Error};
use switchboard_proto::{Dict, Serializer};

const REALMS: &str = r#"[{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
    {"uri": "com.example.", "match": "prefix", "allow": {"call": true, "subscribe": true}},
    {"uri": "com.example.admin.", "match": "prefix", "allow": {}},
    {"uri": "com.example.admin.ping", "match": "exact", "allow": {"call": true, "register": true}},
    {"uri": "com.example.own.", "match": "prefix", "allow": {"register": true, "publish": true, "subscribe": true}}
]}]}]"#;

fn is_not_authorized(e: &Error) -> bool {
    matches!(e, Error::Wamp { uri, .. } if uri == "wamp.error.not_authorized")
}

#[tokio::test]
async fn each_action_is_allowed_or_denied_by_the_role_with_exact_before_longer_prefix_before_prefix()
 {
    let router = start_router_with(Some(REALMS)).await;
    let s = router.connect(Via::WebSocketTcp, Serializer::Json).await;

    // register: denied under com.example. (prefix allows only call/subscribe), allowed by exact.
    let e = s.register("com.example.proc", Ok).await.unwrap_err();
    assert!(is_not_authorized(&e), "{e}");
    s.register("com.example.admin.ping", Ok)
        .await
        .expect("exact permission allows register");
    s.register("com.example.own.proc", Ok)
        .await
        .expect("own prefix allows register");

    // call: allowed by the short prefix (so the dealer answers no_such_procedure), denied by a
    // longer prefix without call (even though the shorter one allows it), allowed again by exact.
    let e = s
        .call("com.example.nobody", Args::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Wamp { ref uri, .. } if uri == "wamp.error.no_such_procedure"),
        "{e}"
    );
    let e = s
        .call("com.example.own.proc", Args::default())
        .await
        .unwrap_err();
    assert!(is_not_authorized(&e), "{e}");
    let e = s
        .call("com.example.admin.reset", Args::default())
        .await
        .unwrap_err();
    assert!(is_not_authorized(&e), "{e}");
    s.call("com.example.admin.ping", Args::default())
        .await
        .expect("exact beats longer prefix");

    // publish and subscribe.
    let mut ack = Dict::new();
    ack.insert("acknowledge".into(), true.into());
    let e = s
        .publish("com.example.news", Args::default(), ack.clone())
        .await
        .unwrap_err();
    assert!(is_not_authorized(&e), "{e}");
    s.publish("com.example.own.news", Args::default(), ack)
        .await
        .expect("publish allowed");
    s.subscribe("com.example.news")
        .await
        .expect("subscribe allowed");
    let e = s.subscribe("com.example.admin.log").await.unwrap_err();
    assert!(is_not_authorized(&e), "{e}");

    // Nothing is allowed outside the patterns.
    let e = s.call("org.other.proc", Args::default()).await.unwrap_err();
    assert!(is_not_authorized(&e), "{e}");
    router.shutdown().await;
}

#[tokio::test]
async fn a_realm_without_the_anonymous_role_refuses_anonymous_sessions() {
    let router = start_router_with(Some(
        r#"[{"name": "realm1", "roles": [{"name": "admin"}]}]"#,
    ))
    .await;
    let err =
        switchboard_client::Session::connect(&router.options(Via::RawSocketTcp, Serializer::Cbor))
            .await
            .err()
            .expect("refused");
    assert!(
        matches!(err, Error::Aborted { ref reason, .. } if reason == "wamp.error.not_authorized"),
        "{err}"
    );
    router.shutdown().await;
}
