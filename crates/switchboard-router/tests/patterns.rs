//! Pattern-based subscriptions and registrations (spec, Advanced Profile): prefix and wildcard
//! matching, the topic or procedure named in EVENT and INVOCATION details, and the precedence of
//! exact over longest prefix over wildcard for calls.

mod common;

use common::{RawPeer, Via, start_router};
use switchboard_client::{Args, Error, PublishOptions, RegisterOptions};
use switchboard_proto::{Dict, Message, Payload, Serializer, Value};

fn with_match(policy: &str) -> Dict {
    let mut d = Dict::new();
    d.insert("match".into(), policy.into());
    d
}

async fn subscribe(peer: &mut RawPeer, request: u64, topic: &str, policy: &str) -> u64 {
    peer.send(&Message::Subscribe {
        request,
        options: with_match(policy),
        topic: topic.into(),
    })
    .await;
    match peer.recv().await {
        Some(Message::Subscribed { subscription, .. }) => subscription,
        other => panic!("expected SUBSCRIBED, got {other:?}"),
    }
}

#[tokio::test]
async fn prefix_and_wildcard_subscriptions_get_events_naming_their_topic() {
    let router = start_router().await;
    let mut sub = RawPeer::join(&router, Via::RawSocketTcp, Serializer::Json).await;
    let exact = subscribe(&mut sub, 1, "com.app.sensor.temp", "exact").await;
    let prefix = subscribe(&mut sub, 2, "com.app.", "prefix").await;
    let wildcard = subscribe(&mut sub, 3, "com.app..temp", "wildcard").await;
    assert!(exact != prefix && prefix != wildcard);
    let publisher = router.connect(Via::WebSocketTcp, Serializer::Cbor).await;
    publisher
        .publish(
            "com.app.sensor.temp",
            Args::positional(vec![21u64.into()]),
            PublishOptions::default(),
        )
        .await
        .expect("publish");
    // One EVENT per matching subscription.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let Some(Message::Event {
            subscription,
            details,
            ..
        }) = sub.recv().await
        else {
            panic!("EVENT")
        };
        let topic = details
            .get("topic")
            .and_then(Value::as_str)
            .map(str::to_owned);
        seen.push((subscription, topic));
    }
    seen.sort();
    let mut expected = vec![
        (exact, None),
        (prefix, Some("com.app.sensor.temp".to_owned())),
        (wildcard, Some("com.app.sensor.temp".to_owned())),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    // A topic only the prefix matches.
    publisher
        .publish(
            "com.app.sensor.humidity.x",
            Args::default(),
            PublishOptions::default(),
        )
        .await
        .expect("publish");
    let Some(Message::Event { subscription, .. }) = sub.recv().await else {
        panic!("EVENT")
    };
    assert_eq!(subscription, prefix);
    // The same pattern subscribed by another session shares the subscription id.
    let mut other = RawPeer::join(&router, Via::WebSocketUnix, Serializer::MsgPack).await;
    assert_eq!(subscribe(&mut other, 1, "com.app.", "prefix").await, prefix);
    router.shutdown().await;
}

#[tokio::test]
async fn calls_go_to_the_exact_then_longest_prefix_then_wildcard_registration() {
    let router = start_router().await;
    let mut callee = RawPeer::join(&router, Via::RawSocketTcp, Serializer::Cbor).await;
    let mut registrations = std::collections::HashMap::new();
    for (request, (procedure, policy)) in [
        ("com.app.admin.reset", "exact"),
        ("com.app.", "prefix"),
        ("com.app.admin.", "prefix"),
        ("com..ping", "wildcard"),
    ]
    .into_iter()
    .enumerate()
    {
        callee
            .send(&Message::Register {
                request: request as u64 + 1,
                options: with_match(policy),
                procedure: procedure.into(),
            })
            .await;
        let Some(Message::Registered { registration, .. }) = callee.recv().await else {
            panic!("REGISTERED")
        };
        registrations.insert(registration, procedure);
    }
    let caller = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    for (called, expected_registration, procedure_in_details) in [
        ("com.app.admin.reset", "com.app.admin.reset", false),
        ("com.app.admin.stop", "com.app.admin.", true),
        ("com.app.other", "com.app.", true),
        ("com.x.ping", "com..ping", true),
    ] {
        let call = tokio::spawn({
            let caller_opts = router.options(Via::WebSocketTcp, Serializer::Json);
            let called = called.to_owned();
            async move {
                let c = switchboard_client::Session::connect(&caller_opts)
                    .await
                    .expect("join");
                c.call(&called, Args::default()).await
            }
        });
        let Some(Message::Invocation {
            request,
            registration,
            details,
            ..
        }) = callee.recv().await
        else {
            panic!("INVOCATION")
        };
        assert_eq!(
            registrations[&registration], expected_registration,
            "{called}"
        );
        let named = details.get("procedure").and_then(Value::as_str);
        assert_eq!(named, procedure_in_details.then_some(called), "{called}");
        callee
            .send(&Message::Yield {
                request,
                options: Dict::new(),
                payload: Payload::EMPTY,
            })
            .await;
        call.await.expect("task").expect("result");
    }
    let err = caller
        .call("org.nothing", Args::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.no_such_procedure"));
    router.shutdown().await;
}

#[tokio::test]
async fn one_pattern_per_policy_can_be_registered_and_invalid_patterns_are_refused() {
    let router = start_router().await;
    let a = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let b = router.connect(Via::RawSocketTcp, Serializer::Json).await;
    let mut raw = RawPeer::join(&router, Via::WebSocketTcp, Serializer::Json).await;
    a.register("com.app.x", RegisterOptions::default(), common::echo)
        .await
        .expect("exact");
    // The same URI under another policy is another registration.
    raw.send(&Message::Register {
        request: 1,
        options: with_match("prefix"),
        procedure: "com.app.x".into(),
    })
    .await;
    assert!(matches!(raw.recv().await, Some(Message::Registered { .. })));
    raw.send(&Message::Register {
        request: 2,
        options: with_match("prefix"),
        procedure: "com.app.x".into(),
    })
    .await;
    match raw.recv().await {
        Some(Message::Error { error, .. }) => {
            assert_eq!(error, "wamp.error.procedure_already_exists")
        }
        other => panic!("expected ERROR, got {other:?}"),
    }
    let err = b
        .register("com.app.x", RegisterOptions::default(), common::echo)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.procedure_already_exists")
    );
    // Empty components are only for wildcards; whitespace never.
    for (pattern, policy) in [
        ("com..x", "exact"),
        ("com. x", "wildcard"),
        ("com x", "prefix"),
    ] {
        raw.send(&Message::Subscribe {
            request: 9,
            options: with_match(policy),
            topic: pattern.into(),
        })
        .await;
        match raw.recv().await {
            Some(Message::Error { error, .. }) => {
                assert_eq!(error, "wamp.error.invalid_uri", "{pattern} {policy}")
            }
            other => panic!("expected ERROR for {pattern}, got {other:?}"),
        }
    }
    router.shutdown().await;
}

#[tokio::test]
async fn welcome_announces_pattern_based_features() {
    let router = start_router().await;
    let s = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let roles = s
        .welcome_details()
        .get("roles")
        .and_then(Value::as_dict)
        .expect("roles");
    let feature = |role: &str, name: &str| {
        roles
            .get(role)
            .and_then(Value::as_dict)
            .and_then(|r| r.get("features"))
            .and_then(Value::as_dict)
            .and_then(|f| f.get(name))
            .and_then(Value::as_bool)
    };
    assert_eq!(feature("broker", "pattern_based_subscription"), Some(true));
    assert_eq!(feature("dealer", "pattern_based_registration"), Some(true));
    assert_eq!(feature("broker", "publisher_exclusion"), Some(true));
    router.shutdown().await;
}
