//! Advanced Profile PubSub features and identification over real sockets: caller and publisher
//! identification, subscriber black- and whitelisting, event retention, testaments.

mod common;

use std::time::Duration;

use common::raw_wamp::{call, invocation, join_with, opts, register, yield_};
use common::{Via, start_router};
use switchboard_client::{PublishOptions, SubscribeOptions};
use switchboard_proto::{Dict, Message, Payload, RawValue, Serializer, Value};

#[tokio::test]
async fn disclose_me_reveals_callers_and_publishers() {
    let router = start_router().await;
    let mut peer = join_with(&router, &[]).await;
    register(&mut peer, 1, "com.who", Dict::new())
        .await
        .expect("register");
    peer.send(&Message::Subscribe {
        request: 2,
        options: Dict::new(),
        topic: "com.news".into(),
    })
    .await;
    assert!(matches!(
        peer.recv().await,
        Some(Message::Subscribed { .. })
    ));
    let other = router.connect(Via::WebSocketTcp, Serializer::Cbor).await;
    let disclose = PublishOptions {
        disclose_me: true,
        ..PublishOptions::default()
    };
    other
        .publish("com.news", switchboard_client::Args::default(), disclose)
        .await
        .expect("publish");
    match peer.recv().await {
        Some(Message::Event { details, .. }) => {
            assert_eq!(details.get("publisher"), Some(&Value::UInt(other.id())))
        }
        got => panic!("expected EVENT, got {got:?}"),
    }
    let mut caller = join_with(&router, &[]).await;
    call(
        &mut caller,
        3,
        "com.who",
        opts(&[("disclose_me", true.into())]),
    )
    .await;
    let (inv, details) = invocation(&mut peer).await;
    assert!(
        details.get("caller").and_then(Value::as_u64).is_some(),
        "{details:?}"
    );
    yield_(&mut peer, inv, Dict::new(), Value::Null).await;
    router.shutdown().await;
}

#[tokio::test]
async fn black_and_whitelists_choose_the_receivers_of_an_event() {
    let router = start_router().await;
    let publisher = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let mut subs = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let s = router.connect(Via::RawSocketTcp, Serializer::MsgPack).await;
        let events = s
            .subscribe("com.list", SubscribeOptions::default())
            .await
            .expect("subscribe");
        ids.push(s.id());
        subs.push((s, events));
    }
    let publish = |n: u64, options: PublishOptions| {
        let p = &publisher;
        async move {
            let o = PublishOptions {
                acknowledge: true,
                ..options
            };
            let args = switchboard_client::Args::positional(vec![n.into()]);
            p.publish("com.list", args, o).await.expect("publish");
        }
    };
    publish(
        1,
        PublishOptions {
            exclude: vec![ids[0]],
            ..PublishOptions::default()
        },
    )
    .await;
    publish(
        2,
        PublishOptions {
            eligible: Some(vec![ids[1]]),
            ..PublishOptions::default()
        },
    )
    .await;
    publish(
        3,
        PublishOptions {
            eligible_authrole: Some(vec!["anonymous".into()]),
            exclude: vec![ids[2]],
            ..PublishOptions::default()
        },
    )
    .await;
    publish(
        4,
        PublishOptions {
            exclude_authrole: vec!["anonymous".into()],
            ..PublishOptions::default()
        },
    )
    .await;
    // A marker everybody gets: what arrived before it is all that will arrive.
    publish(5, PublishOptions::default()).await;
    let expected: [&[u64]; 3] = [&[3, 5], &[1, 2, 3, 5], &[1, 5]];
    for (i, (_, events)) in subs.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.last() != Some(&5) {
            let e = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("in time")
                .expect("event")
                .expect("no events lost");
            got.push(e.args.args[0].as_u64().expect("number"));
        }
        assert_eq!(got, expected[i], "subscriber {i}");
    }
    router.shutdown().await;
}

#[tokio::test]
async fn retained_events_reach_late_subscribers_that_ask_for_them() {
    let router = start_router().await;
    let publisher = router.connect(Via::WebSocketTcp, Serializer::Cbor).await;
    let retain = PublishOptions {
        retain: true,
        ..PublishOptions::acknowledged()
    };
    for n in [1u64, 2] {
        let a = switchboard_client::Args::positional(vec![n.into()]);
        publisher
            .publish("com.state.door", a, retain.clone())
            .await
            .expect("publish");
    }
    let mut late = join_with(&router, &[]).await;
    late.send(&Message::Subscribe {
        request: 1,
        options: opts(&[("get_retained", true.into())]),
        topic: "com.state.door".into(),
    })
    .await;
    assert!(matches!(
        late.recv().await,
        Some(Message::Subscribed { .. })
    ));
    match late.recv().await {
        Some(Message::Event {
            details, payload, ..
        }) => {
            assert_eq!(details.get("retained"), Some(&Value::Bool(true)));
            assert_eq!(
                payload.args.expect("args").to_value().expect("value"),
                Value::List(vec![2u64.into()])
            );
        }
        other => panic!("expected the retained EVENT, got {other:?}"),
    }
    // A prefix subscription gets it too, naming the topic; without get_retained, nothing.
    late.send(&Message::Subscribe {
        request: 2,
        options: opts(&[("get_retained", true.into()), ("match", "prefix".into())]),
        topic: "com.state.".into(),
    })
    .await;
    assert!(matches!(
        late.recv().await,
        Some(Message::Subscribed { .. })
    ));
    match late.recv().await {
        Some(Message::Event { details, .. }) => {
            assert_eq!(
                details.get("topic").and_then(Value::as_str),
                Some("com.state.door")
            );
        }
        other => panic!("expected the retained EVENT, got {other:?}"),
    }
    router.shutdown().await;
}

#[tokio::test]
async fn testaments_are_published_when_the_session_ends_however_it_ends() {
    let router = start_router().await;
    let watcher = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let mut events = watcher
        .subscribe("com.last.words", SubscribeOptions::default())
        .await
        .expect("subscribe");
    for graceful in [true, false] {
        let mut dying = join_with(&router, &[]).await;
        let testament = Value::List(vec![
            "com.last.words".into(),
            Value::List(vec![graceful.into()]),
            Value::Dict(Dict::new()),
        ]);
        dying
            .send(&Message::Call {
                request: 1,
                options: Dict::new(),
                procedure: "wamp.session.add_testament".into(),
                payload: Payload {
                    args: Some(RawValue::from_value(Serializer::Json, &testament).expect("encode")),
                    kwargs: None,
                },
            })
            .await;
        assert!(matches!(
            dying.recv().await,
            Some(Message::Result { request: 1, .. })
        ));
        if graceful {
            dying.send(&Message::goodbye("wamp.close.normal")).await;
            assert!(matches!(dying.recv().await, Some(Message::Goodbye { .. })));
        }
        drop(dying); // the socket just drops when not graceful
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("in time")
            .expect("event")
            .expect("no events lost");
        assert_eq!(event.args.args, vec![Value::Bool(graceful)]);
    }
    // flush_testaments withdraws them.
    let mut flushed = join_with(&router, &[]).await;
    let testament = Value::List(vec!["com.last.words".into()]);
    for (request, procedure) in [
        (1u64, "wamp.session.add_testament"),
        (2, "wamp.session.flush_testaments"),
    ] {
        flushed
            .send(&Message::Call {
                request,
                options: Dict::new(),
                procedure: procedure.into(),
                payload: Payload {
                    args: Some(RawValue::from_value(Serializer::Json, &testament).expect("encode")),
                    kwargs: None,
                },
            })
            .await;
        assert!(matches!(flushed.recv().await, Some(Message::Result { .. })));
    }
    drop(flushed);
    let realm = router
        .node
        .as_ref()
        .expect("node")
        .realms()
        .get("realm1")
        .expect("realm");
    common::eventually(|| realm.session_count() == 1).await;
    let probe = router.connect(Via::RawSocketTcp, Serializer::Json).await;
    probe
        .publish(
            "com.last.words",
            switchboard_client::Args::positional(vec!["probe".into()]),
            PublishOptions::acknowledged(),
        )
        .await
        .expect("publish");
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("in time")
        .expect("event")
        .expect("no events lost");
    assert_eq!(
        event.args.args,
        vec![Value::from("probe")],
        "no testament after a flush"
    );
    router.shutdown().await;
}
