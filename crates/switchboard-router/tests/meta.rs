//! The meta API: session, registration and subscription procedures and events, kill and
//! revocation, and meta procedures authorized like any other procedure.

mod common;

use std::time::Duration;

use common::{RawPeer, Via, start_router, start_router_with};
use switchboard_client::{
    Args, CloseReason, Error, PublishOptions, Session, SubscribeOptions, Subscription,
};
use switchboard_proto::{Dict, Message, Serializer, Value};

async fn meta(s: &Session, procedure: &str, args: Vec<Value>) -> Value {
    let r = s
        .call(procedure, Args::positional(args))
        .await
        .unwrap_or_else(|e| panic!("{procedure}: {e}"));
    r.args.into_iter().next().unwrap_or(Value::Null)
}

fn as_ids(v: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = v
        .as_list()
        .expect("list")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn session_meta_procedures_and_events_describe_the_realm() {
    let router = start_router().await;
    let watcher = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let mut joins = watcher
        .subscribe("wamp.session.on_join", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut leaves = watcher
        .subscribe("wamp.session.on_leave", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let other = router.connect(Via::RawSocketTcp, Serializer::Cbor).await;
    let join = tokio::time::timeout(Duration::from_secs(10), joins.next())
        .await
        .expect("in time")
        .expect("on_join")
        .expect("no events lost");
    let details = join.args.args[0].as_dict().expect("details");
    assert_eq!(
        details.get("session").and_then(Value::as_u64),
        Some(other.id())
    );

    assert_eq!(
        meta(&watcher, "wamp.session.count", vec![]).await,
        Value::UInt(2)
    );
    assert_eq!(
        as_ids(&meta(&watcher, "wamp.session.list", vec![]).await),
        {
            let mut v = vec![watcher.id(), other.id()];
            v.sort();
            v
        }
    );
    let got = meta(&watcher, "wamp.session.get", vec![other.id().into()]).await;
    assert_eq!(
        got.as_dict()
            .and_then(|d| d.get("authrole"))
            .and_then(Value::as_str),
        Some("anonymous")
    );
    let err = watcher
        .call("wamp.session.get", Args::positional(vec![12345u64.into()]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.no_such_session"),
        "{err}"
    );

    let other_id = other.id();
    other.leave().await.expect("leave");
    let leave = tokio::time::timeout(Duration::from_secs(10), leaves.next())
        .await
        .expect("in time")
        .expect("on_leave")
        .expect("no events lost");
    assert_eq!(leave.args.args[0], Value::UInt(other_id));
    router.shutdown().await;
}

#[tokio::test]
async fn kill_ends_other_sessions_with_goodbye_but_never_the_caller() {
    let router = start_router().await;
    let admin = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let victim = router.connect(Via::RawSocketTcp, Serializer::MsgPack).await;
    let mut kwargs = Dict::new();
    kwargs.insert("reason".into(), "com.example.maintenance".into());
    kwargs.insert("message".into(), "bye".into());
    admin
        .call(
            "wamp.session.kill",
            Args {
                args: vec![victim.id().into()],
                kwargs,
            },
        )
        .await
        .expect("kill");
    let CloseReason::Goodbye { reason, details } =
        tokio::time::timeout(Duration::from_secs(10), victim.closed())
            .await
            .expect("in time")
    else {
        panic!("expected GOODBYE")
    };
    assert_eq!(reason, "com.example.maintenance");
    assert_eq!(details.get("message").and_then(Value::as_str), Some("bye"));
    let err = admin
        .call(
            "wamp.session.kill",
            Args::positional(vec![admin.id().into()]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.invalid_argument"),
        "{err}"
    );
    let others: Vec<Session> = futures_join(&router, 3).await;
    let killed = meta(
        &admin,
        "wamp.session.kill_by_authrole",
        vec!["anonymous".into()],
    )
    .await;
    assert_eq!(
        killed,
        Value::UInt(3),
        "everyone with the role except the caller"
    );
    for s in &others {
        let closed = tokio::time::timeout(Duration::from_secs(10), s.closed())
            .await
            .expect("in time");
        assert_eq!(
            closed.router_reason(),
            Some("wamp.close.killed"),
            "{closed:?}"
        );
    }
    assert_eq!(
        meta(&admin, "wamp.session.count", vec![]).await,
        Value::UInt(1)
    );
    router.shutdown().await;
}

async fn futures_join(router: &common::TestRouter, n: usize) -> Vec<Session> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(router.connect(Via::WebSocketUnix, Serializer::Cbor).await);
    }
    out
}

#[tokio::test]
async fn registration_meta_api_lists_looks_up_and_revokes() {
    let router = start_router().await;
    let observer = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let mut topics: Vec<Subscription> = Vec::new();
    for t in ["on_create", "on_register", "on_unregister", "on_delete"] {
        topics.push(
            observer
                .subscribe(
                    &format!("wamp.registration.{t}"),
                    SubscribeOptions::default(),
                )
                .await
                .expect("subscribe"),
        );
    }
    let mut callee = RawPeer::join(&router, Via::RawSocketTcp, Serializer::Json).await;
    let mut prefix = Dict::new();
    prefix.insert("match".into(), "prefix".into());
    callee
        .send(&Message::Register {
            request: 1,
            options: prefix,
            procedure: "com.meta.".into(),
        })
        .await;
    let Some(Message::Registered { registration, .. }) = callee.recv().await else {
        panic!("REGISTERED")
    };
    for events in topics.iter_mut().take(2) {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("in time")
            .expect("event")
            .expect("no events lost");
        assert_eq!(
            e.args.args[0].as_u64(),
            Some(callee_session(&observer, registration).await)
        );
    }
    let list = meta(&observer, "wamp.registration.list", vec![]).await;
    assert_eq!(
        list.as_dict().and_then(|d| d.get("prefix")).map(as_ids),
        Some(vec![registration])
    );
    let mut m = Dict::new();
    m.insert("match".into(), "prefix".into());
    assert_eq!(
        meta(
            &observer,
            "wamp.registration.lookup",
            vec!["com.meta.".into(), Value::Dict(m)]
        )
        .await,
        Value::UInt(registration)
    );
    assert_eq!(
        meta(
            &observer,
            "wamp.registration.lookup",
            vec!["com.meta.".into()]
        )
        .await,
        Value::Null
    );
    assert_eq!(
        meta(
            &observer,
            "wamp.registration.match",
            vec!["com.meta.x".into()]
        )
        .await,
        Value::UInt(registration)
    );
    let got = meta(
        &observer,
        "wamp.registration.get",
        vec![registration.into()],
    )
    .await;
    assert_eq!(
        got.as_dict()
            .and_then(|d| d.get("match"))
            .and_then(Value::as_str),
        Some("prefix")
    );
    assert_eq!(
        meta(
            &observer,
            "wamp.registration.count_callees",
            vec![registration.into()]
        )
        .await,
        Value::UInt(1)
    );
    // Revocation: the callee hears UNREGISTERED with the registration; calls then fail.
    let callee_id = callee_session(&observer, registration).await;
    meta(
        &observer,
        "wamp.registration.remove_callee",
        vec![registration.into(), callee_id.into()],
    )
    .await;
    match callee.recv().await {
        Some(Message::Unregistered {
            request: 0,
            details: Some(d),
        }) => {
            assert_eq!(
                d.get("registration").and_then(Value::as_u64),
                Some(registration)
            );
        }
        other => panic!("expected router-initiated UNREGISTERED, got {other:?}"),
    }
    for events in topics.iter_mut().skip(2) {
        tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("in time")
            .expect("event")
            .expect("no events lost");
    }
    let err = observer
        .call("com.meta.x", Args::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.no_such_procedure"),
        "{err}"
    );
    router.shutdown().await;
}

async fn callee_session(observer: &Session, registration: u64) -> u64 {
    let callees = meta(
        observer,
        "wamp.registration.list_callees",
        vec![registration.into()],
    )
    .await;
    as_ids(&callees)[0]
}

#[tokio::test]
async fn subscription_meta_api_lists_matches_and_revokes() {
    let router = start_router().await;
    let observer = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let mut sub = RawPeer::join(&router, Via::WebSocketUnix, Serializer::MsgPack).await;
    let mut wildcard = Dict::new();
    wildcard.insert("match".into(), "wildcard".into());
    sub.send(&Message::Subscribe {
        request: 1,
        options: wildcard,
        topic: "com..temp".into(),
    })
    .await;
    let Some(Message::Subscribed { subscription, .. }) = sub.recv().await else {
        panic!("SUBSCRIBED")
    };
    let exact_subscription = observer
        .subscribe("com.room1.temp", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let exact = exact_subscription.id();
    assert_eq!(
        as_ids(
            &meta(
                &observer,
                "wamp.subscription.match",
                vec!["com.room1.temp".into()]
            )
            .await
        ),
        {
            let mut v = vec![subscription, exact];
            v.sort();
            v
        }
    );
    assert_eq!(
        meta(
            &observer,
            "wamp.subscription.count_subscribers",
            vec![subscription.into()]
        )
        .await,
        Value::UInt(1)
    );
    let subscribers = meta(
        &observer,
        "wamp.subscription.list_subscribers",
        vec![subscription.into()],
    )
    .await;
    let sub_session = as_ids(&subscribers)[0];
    meta(
        &observer,
        "wamp.subscription.remove_subscriber",
        vec![subscription.into(), sub_session.into()],
    )
    .await;
    match sub.recv().await {
        Some(Message::Unsubscribed {
            request: 0,
            details: Some(d),
        }) => {
            assert_eq!(
                d.get("subscription").and_then(Value::as_u64),
                Some(subscription)
            );
        }
        other => panic!("expected router-initiated UNSUBSCRIBED, got {other:?}"),
    }
    let err = observer
        .call(
            "wamp.subscription.get",
            Args::positional(vec![subscription.into()]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.no_such_subscription"),
        "{err}"
    );
    router.shutdown().await;
}

#[tokio::test]
async fn meta_procedures_are_authorized_like_any_other() {
    let realms = r#"[{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
        {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}},
        {"uri": "wamp.session.kill", "match": "prefix", "allow": {}}]}]}]"#;
    let router = start_router_with(Some(realms)).await;
    let s = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    assert_eq!(meta(&s, "wamp.session.count", vec![]).await, Value::UInt(1));
    let err = s
        .call("wamp.session.kill_all", Args::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.not_authorized"),
        "{err}"
    );
    router.shutdown().await;
}

#[tokio::test]
async fn event_history_keeps_the_configured_number_of_events_per_topic() {
    let realms = r#"[{"name": "realm1",
        "roles": [{"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}],
        "store": {"type": "memory", "event-history": [{"uri": "com.example.oncounter", "limit": 3}]}}]"#;
    let router = start_router_with(Some(realms)).await;
    let publisher = router.connect(Via::RawSocketTcp, Serializer::MsgPack).await;
    for n in 0..5u64 {
        publisher
            .publish(
                "com.example.oncounter",
                Args::positional(vec![n.into()]),
                PublishOptions::acknowledged(),
            )
            .await
            .expect("publish");
        publisher
            .publish(
                "com.example.other",
                Args::positional(vec![n.into()]),
                PublishOptions::acknowledged(),
            )
            .await
            .expect("publish");
    }
    let reader = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let counter_subscription = reader
        .subscribe("com.example.oncounter", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let subscription = counter_subscription.id();
    let events = meta(
        &reader,
        "wamp.subscription.get_events",
        vec![subscription.into(), 10u64.into()],
    )
    .await;
    let counters: Vec<Value> = events
        .as_list()
        .expect("list")
        .iter()
        .map(|e| {
            e.as_dict()
                .and_then(|d| d.get("args"))
                .and_then(|a| a.as_list())
                .expect("args")[0]
                .clone()
        })
        .collect();
    assert_eq!(
        counters,
        vec![Value::UInt(2), Value::UInt(3), Value::UInt(4)],
        "the last 3, oldest first"
    );
    let two = meta(
        &reader,
        "wamp.subscription.get_events",
        vec![subscription.into(), 2u64.into()],
    )
    .await;
    assert_eq!(two.as_list().map(<[Value]>::len), Some(2));
    // A topic without history has none.
    let other_subscription = reader
        .subscribe("com.example.other", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let other = other_subscription.id();
    assert_eq!(
        meta(&reader, "wamp.subscription.get_events", vec![other.into()]).await,
        Value::List(Vec::new())
    );
    router.shutdown().await;
}

#[tokio::test]
async fn event_history_entries_without_a_limit_keep_the_stores_limit() {
    // Crossbar's memory store: `limit` on the store is the default of its event-history entries.
    let realms = r#"[{"name": "realm1",
        "roles": [{"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}],
        "store": {"type": "memory", "limit": 2, "event-history": [{"uri": "com.example.a"}, {"uri": "com.example.b", "limit": 4}]}}]"#;
    let router = start_router_with(Some(realms)).await;
    let publisher = router.connect(Via::RawSocketTcp, Serializer::MsgPack).await;
    for n in 0..5u64 {
        for topic in ["com.example.a", "com.example.b"] {
            publisher
                .publish(
                    topic,
                    Args::positional(vec![n.into()]),
                    PublishOptions::acknowledged(),
                )
                .await
                .expect("publish");
        }
    }
    let reader = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    for (topic, kept) in [("com.example.a", 2), ("com.example.b", 4)] {
        let subscription = reader
            .subscribe(topic, SubscribeOptions::default())
            .await
            .expect("subscribe");
        let events = meta(
            &reader,
            "wamp.subscription.get_events",
            vec![subscription.id().into(), 10u64.into()],
        )
        .await;
        assert_eq!(events.as_list().map(<[Value]>::len), Some(kept), "{topic}");
    }
    router.shutdown().await;
}
