//! Static role permissions from the config, enforced over real sockets.

mod common;

use common::{Via, start_router_with};
use switchboard_client::{Args, Error, PublishOptions, RegisterOptions, SubscribeOptions};
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
    let e = s
        .register("com.example.proc", RegisterOptions::default(), common::echo)
        .await
        .unwrap_err();
    assert!(is_not_authorized(&e), "{e}");
    s.register(
        "com.example.admin.ping",
        RegisterOptions::default(),
        common::echo,
    )
    .await
    .expect("exact permission allows register");
    s.register(
        "com.example.own.proc",
        RegisterOptions::default(),
        common::echo,
    )
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
    let e = s
        .publish(
            "com.example.news",
            Args::default(),
            PublishOptions::acknowledged(),
        )
        .await
        .unwrap_err();
    assert!(is_not_authorized(&e), "{e}");
    s.publish(
        "com.example.own.news",
        Args::default(),
        PublishOptions::acknowledged(),
    )
    .await
    .expect("publish allowed");
    s.subscribe("com.example.news", SubscribeOptions::default())
        .await
        .expect("subscribe allowed");
    let e = s
        .subscribe("com.example.admin.log", SubscribeOptions::default())
        .await
        .unwrap_err();
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
            .expect_err("refused");
    assert!(
        matches!(err, Error::Aborted { ref reason, .. } if reason == "wamp.error.no_such_role"),
        "{err}"
    );
    router.shutdown().await;
}

const MATRIX: &str = r#"[{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
    {"uri": "com.exact.allowed", "match": "exact", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}},
    {"uri": "com.exact.denied", "match": "exact", "allow": {}},
    {"uri": "com.prefix.allowed.", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}},
    {"uri": "com.prefix.denied.", "match": "prefix", "allow": {}},
    {"uri": "com.wild..allowed", "match": "wildcard", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}},
    {"uri": "com.wild..denied", "match": "wildcard", "allow": {}},
    {"uri": "com.wild.special.", "match": "prefix", "allow": {}}
]}]}]"#;

/// Runs one action on `uri` and reports whether the router authorized it.
async fn authorized(s: &switchboard_client::Session, action: &str, uri: &str) -> bool {
    let result = match action {
        "call" => match s.call(uri, Args::default()).await {
            // Authorized but nobody registered it: the dealer answered, not the authorizer.
            Err(Error::Wamp { ref uri, .. }) if uri == "wamp.error.no_such_procedure" => Ok(()),
            other => other.map(|_| ()),
        },
        "register" => match s
            .register(uri, RegisterOptions::default(), common::echo)
            .await
        {
            Ok(id) => s.unregister(id).await,
            Err(e) => Err(e),
        },
        "publish" => s
            .publish(uri, Args::default(), PublishOptions::acknowledged())
            .await
            .map(|_| ()),
        "subscribe" => match s.subscribe(uri, SubscribeOptions::default()).await {
            Ok(subscription) => subscription.unsubscribe().await,
            Err(e) => Err(e),
        },
        other => panic!("unknown action {other}"),
    };
    match result {
        Ok(()) => true,
        Err(e) if is_not_authorized(&e) => false,
        Err(e) => panic!("{action} {uri}: unexpected {e}"),
    }
}

#[tokio::test]
async fn authorization_matrix_over_every_action_match_mode_and_precedence_case() {
    let router = start_router_with(Some(MATRIX)).await;
    let s = router.connect(Via::RawSocketTcp, Serializer::Json).await;
    let cases: &[(&str, bool)] = &[
        ("com.exact.allowed", true),
        ("com.exact.denied", false),
        ("com.exact.allowed.below", false), // exact does not match longer URIs
        ("com.prefix.allowed.x", true),
        ("com.prefix.allowed.x.y", true),
        ("com.prefix.denied.x", false),
        ("com.wild.any.allowed", true),
        ("com.wild.any.denied", false),
        ("com.wild.any.more.allowed", false), // a wildcard matches one component per slot
        ("com.wild.special.allowed", false),  // prefix beats wildcard
        ("org.unlisted", false),
    ];
    // Twice: the second round is answered from the session's decision cache.
    for round in 0..2 {
        for action in ["call", "register", "publish", "subscribe"] {
            for (uri, allowed) in cases {
                assert_eq!(
                    authorized(&s, action, uri).await,
                    *allowed,
                    "round {round}: {action} {uri}"
                );
            }
        }
    }
    router.shutdown().await;
}

const DISCLOSING: &str = r#"[{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
    {"uri": "com.open.", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true},
     "disclose": {"caller": true, "publisher": true}},
    {"uri": "com.quiet.", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}
]}]}]"#;

#[tokio::test]
async fn disclose_rules_reveal_caller_and_publisher_only_where_the_role_says_so() {
    use common::RawPeer;
    use switchboard_proto::{Message, Payload, Value};
    let router = start_router_with(Some(DISCLOSING)).await;
    let mut peer = RawPeer::join(&router, Via::WebSocketTcp, Serializer::Cbor).await;
    let other = router.connect(Via::RawSocketTcp, Serializer::Json).await;
    for (i, topic) in ["com.open.t", "com.quiet.t"].into_iter().enumerate() {
        peer.send(&Message::Subscribe {
            request: 10 + i as u64,
            options: Dict::new(),
            topic: topic.into(),
        })
        .await;
        assert!(matches!(
            peer.recv().await,
            Some(Message::Subscribed { .. })
        ));
        peer.send(&Message::Register {
            request: 20 + i as u64,
            options: Dict::new(),
            procedure: topic.into(),
        })
        .await;
        assert!(matches!(
            peer.recv().await,
            Some(Message::Registered { .. })
        ));
    }
    for topic in ["com.open.t", "com.quiet.t"] {
        other
            .publish(topic, Args::default(), PublishOptions::default())
            .await
            .expect("publish");
        let Some(Message::Event { details, .. }) = peer.recv().await else {
            panic!("EVENT")
        };
        if topic == "com.open.t" {
            assert_eq!(details.get("publisher"), Some(&Value::UInt(other.id())));
            assert_eq!(
                details.get("publisher_authrole").and_then(Value::as_str),
                Some("anonymous")
            );
            assert!(details.get("publisher_authid").is_some());
        } else {
            assert!(details.is_empty(), "{details:?}");
        }
        let caller = tokio::spawn({
            let topic = topic.to_owned();
            let opts = router.options(Via::WebSocketUnix, Serializer::MsgPack);
            async move {
                let c = switchboard_client::Session::connect(&opts)
                    .await
                    .expect("join");
                let id = c.id();
                c.call(&topic, Args::default()).await.expect("call");
                id
            }
        });
        let Some(Message::Invocation {
            request, details, ..
        }) = peer.recv().await
        else {
            panic!("INVOCATION")
        };
        peer.send(&Message::Yield {
            request,
            options: Dict::new(),
            payload: Payload::EMPTY,
        })
        .await;
        let caller_id = caller.await.expect("caller");
        if topic == "com.open.t" {
            assert_eq!(details.get("caller"), Some(&Value::UInt(caller_id)));
            assert_eq!(
                details.get("caller_authrole").and_then(Value::as_str),
                Some("anonymous")
            );
        } else {
            assert!(details.is_empty(), "{details:?}");
        }
    }
    router.shutdown().await;
}
