//! Register/call and subscribe/publish through a real router over real sockets, for every
//! transport, endpoint type and serializer, including mixed serializers.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{ALL_VIAS, Via, start_router};
use switchboard_client::{
    Args, CallError, CloseReason, Error, PublishOptions, RegisterOptions, SubscribeOptions,
};
use switchboard_proto::{Dict, Serializer, Value};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

fn sample_args() -> Args {
    let mut kwargs = Dict::new();
    kwargs.insert(
        "blob".into(),
        Value::Bytes(Bytes::from_static(&[0, 1, 254, 255])),
    );
    kwargs.insert("big".into(), Value::UInt(1 << 53));
    kwargs.insert("neg".into(), Value::Int(-42));
    kwargs.insert("pi".into(), Value::Float(3.25));
    Args {
        args: vec!["hello".into(), Value::List(vec![1u64.into(), Value::Null])],
        kwargs,
    }
}

#[tokio::test]
async fn call_reaches_callee_and_result_echoes_payload_on_every_transport_and_serializer() {
    let router = start_router().await;
    for via in ALL_VIAS {
        for s in Serializer::ALL {
            let callee = router.connect(via, s).await;
            let caller = router.connect(via, s).await;
            let proc_name = format!("com.example.echo.{}", callee.id());
            callee
                .register(&proc_name, RegisterOptions::default(), common::echo)
                .await
                .expect("register");
            let result = timeout(WAIT, caller.call(&proc_name, sample_args()))
                .await
                .expect("in time")
                .expect("call");
            assert_eq!(result, sample_args(), "{via:?} {s:?}");
            callee.leave().await.expect("leave");
            caller.leave().await.expect("leave");
        }
    }
    router.shutdown().await;
}

#[tokio::test]
async fn payload_crosses_serializers_with_binary_intact() {
    let router = start_router().await;
    for callee_s in Serializer::ALL {
        for caller_s in Serializer::ALL {
            let callee = router.connect(Via::RawSocketTcp, callee_s).await;
            let caller = router.connect(Via::WebSocketTcp, caller_s).await;
            let name = format!("com.example.cross.{}", callee.id());
            callee
                .register(&name, RegisterOptions::default(), common::echo)
                .await
                .expect("register");
            let result = timeout(WAIT, caller.call(&name, sample_args()))
                .await
                .expect("in time")
                .expect("call");
            assert_eq!(result, sample_args(), "{caller_s:?} -> {callee_s:?}");
        }
    }
    router.shutdown().await;
}

#[tokio::test]
async fn acknowledged_publish_reaches_every_subscriber_but_not_the_publisher() {
    let router = start_router().await;
    let publisher = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let mut subscribers = Vec::new();
    for (i, s) in Serializer::ALL.into_iter().enumerate() {
        let session = router.connect(ALL_VIAS[i % 4], s).await;
        let events = session
            .subscribe("com.example.topic", SubscribeOptions::default())
            .await
            .expect("subscribe");
        subscribers.push((session, events.id(), events));
    }
    // One subscription id shared by all subscribers of a topic.
    assert!(subscribers.windows(2).all(|w| w[0].1 == w[1].1));
    let mut own_events = publisher
        .subscribe("com.example.topic", SubscribeOptions::default())
        .await
        .expect("subscribe");

    let publication = publisher
        .publish(
            "com.example.topic",
            sample_args(),
            PublishOptions::acknowledged(),
        )
        .await
        .expect("publish");
    let publication = publication.expect("acknowledged");
    for (_, _, events) in &mut subscribers {
        let event = timeout(WAIT, events.next())
            .await
            .expect("in time")
            .expect("event")
            .expect("no events lost");
        assert_eq!(event.publication, publication);
        assert_eq!(event.args, sample_args());
    }
    // Publisher exclusion is the default.
    publisher
        .publish(
            "com.example.other",
            Args::default(),
            PublishOptions::acknowledged(),
        )
        .await
        .expect("publish");
    assert!(own_events.try_next().is_none());
    router.shutdown().await;
}

#[tokio::test]
async fn publisher_receives_its_own_event_when_exclude_me_is_false() {
    let router = start_router().await;
    let session = router.connect(Via::RawSocketTcp, Serializer::Cbor).await;
    let mut events = session
        .subscribe("com.myapp.topic1", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let opts = PublishOptions {
        exclude_me: Some(false),
        ..PublishOptions::acknowledged()
    };
    session
        .publish(
            "com.myapp.topic1",
            Args::positional(vec!["Hello, world!".into()]),
            opts,
        )
        .await
        .expect("publish");
    let event = timeout(WAIT, events.next())
        .await
        .expect("in time")
        .expect("event")
        .expect("no events lost");
    assert_eq!(event.args.args, vec![Value::from("Hello, world!")]);
    router.shutdown().await;
}

#[tokio::test]
async fn calling_an_unregistered_procedure_gives_no_such_procedure() {
    let router = start_router().await;
    let caller = router.connect(Via::WebSocketTcp, Serializer::MsgPack).await;
    let err = caller
        .call("com.example.nobody", Args::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.no_such_procedure"),
        "{err}"
    );
    router.shutdown().await;
}

#[tokio::test]
async fn registering_a_taken_procedure_gives_procedure_already_exists() {
    let router = start_router().await;
    let a = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let b = router.connect(Via::RawSocketTcp, Serializer::Json).await;
    a.register("com.example.once", RegisterOptions::default(), common::echo)
        .await
        .expect("first register");
    let err = b
        .register("com.example.once", RegisterOptions::default(), common::echo)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.procedure_already_exists"),
        "{err}"
    );
    router.shutdown().await;
}

#[tokio::test]
async fn unregister_and_unsubscribe_of_unknown_ids_give_the_spec_errors() {
    let router = start_router().await;
    let s = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let err = s.unregister(12345).await.unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.no_such_registration"),
        "{err}"
    );
    let err = s.unsubscribe(12345).await.unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.no_such_subscription"),
        "{err}"
    );
    // After unregistering, the procedure is gone.
    let reg = s
        .register("com.example.temp", RegisterOptions::default(), common::echo)
        .await
        .expect("register");
    s.unregister(reg).await.expect("unregister");
    let err = s
        .call("com.example.temp", Args::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.no_such_procedure"),
        "{err}"
    );
    router.shutdown().await;
}

#[tokio::test]
async fn callee_error_reaches_the_caller_with_uri_and_args() {
    let router = start_router().await;
    let callee = router.connect(Via::RawSocketUnix, Serializer::Cbor).await;
    let caller = router.connect(Via::WebSocketUnix, Serializer::Json).await;
    callee
        .register("com.example.fail", RegisterOptions::default(), |_| async {
            Err(CallError::new("com.example.error.oops")
                .with_args(Args::positional(vec!["bad".into()])))
        })
        .await
        .expect("register");
    let err = caller
        .call("com.example.fail", Args::default())
        .await
        .unwrap_err();
    match err {
        Error::Wamp { uri, args, .. } => {
            assert_eq!(uri, "com.example.error.oops");
            assert_eq!(args, vec![Value::from("bad")]);
        }
        other => panic!("unexpected {other}"),
    }
    router.shutdown().await;
}

#[tokio::test]
async fn unknown_realm_is_aborted_with_no_such_realm() {
    let router = start_router().await;
    let mut opts = router.options(Via::WebSocketTcp, Serializer::Json);
    opts.join.realm = "nope".into();
    let err = switchboard_client::Session::connect(&opts)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, Error::Aborted { ref reason, .. } if reason == "wamp.error.no_such_realm"),
        "{err}"
    );
    router.shutdown().await;
}

#[tokio::test]
async fn router_shutdown_says_goodbye_to_every_session() {
    let router = start_router().await;
    let a = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let b = router
        .connect(Via::RawSocketUnix, Serializer::MsgPack)
        .await;
    let shutdown = tokio::spawn(router.shutdown());
    for s in [&a, &b] {
        let CloseReason::Goodbye { reason, .. } = timeout(WAIT, s.closed()).await.expect("in time")
        else {
            panic!("expected GOODBYE")
        };
        assert_eq!(reason, "wamp.close.system_shutdown");
    }
    shutdown.await.expect("shutdown completes");
}

#[tokio::test]
async fn every_realm_is_reachable_through_every_transport_and_realms_are_isolated() {
    let realms = r#"[
        {"name": "realm1", "roles": [{"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]},
        {"name": "com.example.second", "roles": [{"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}
    ]"#;
    let router = common::start_router_with(Some(realms)).await;
    // Callees stay joined, so both realms hold the same procedure URI at once: no clash.
    let mut callees = Vec::new();
    for realm in ["realm1", "com.example.second"] {
        let mut opts = router.options(Via::WebSocketTcp, Serializer::Json);
        opts.join.realm = realm.into();
        let callee = switchboard_client::Session::connect(&opts)
            .await
            .expect("join");
        callee
            .register(
                "com.example.where",
                RegisterOptions::default(),
                move |_| async move { Ok(Args::positional(vec![realm.into()])) },
            )
            .await
            .expect("register");
        for via in ALL_VIAS {
            let mut opts = router.options(via, Serializer::Cbor);
            opts.join.realm = realm.into();
            let caller = switchboard_client::Session::connect(&opts)
                .await
                .expect("join");
            let r = caller
                .call("com.example.where", Args::default())
                .await
                .expect("call");
            assert_eq!(r.args, vec![realm.into()], "{via:?}");
        }
        callees.push(callee);
    }
    router.shutdown().await;
}

/// Sessions that keep calling or publishing in the background until dropped (also when the
/// test fails, so that its runtime can end).
struct Busy {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Busy {
    /// `tasks` sessions, each running `step` over and over: a call that reaches the callee of
    /// the moment or fails with no_such_procedure or canceled, or an acknowledged publish (paced
    /// by the router's answers).
    fn start<F>(
        router: &common::TestRouter,
        tasks: usize,
        step: fn(switchboard_client::Session) -> F,
    ) -> Busy
    where
        F: std::future::Future<Output = switchboard_client::Session> + Send + 'static,
    {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..tasks)
            .map(|_| {
                let opts = router.options(Via::RawSocketTcp, Serializer::MsgPack);
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut session = switchboard_client::Session::connect(&opts)
                        .await
                        .expect("joins");
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        session = step(session).await;
                    }
                    let _ = session.leave().await;
                })
            })
            .collect();
        Busy { stop, tasks }
    }

    async fn finish(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks.drain(..) {
            timeout(WAIT, task).await.expect("stops").expect("task");
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A callee must hear REGISTERED before the first INVOCATION of the registration: Autobahn|JS
/// fails its session ("INVOCATION received for non-registered registration ID") otherwise, and
/// the calls in flight to it fail with `canceled`. Calls routed right after the registry changed
/// once overtook the REGISTERED still to be queued; here callers call the procedure all the
/// while a callee registers and unregisters it, over and over, on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registered_reaches_the_callee_before_any_invocation_for_it() {
    use common::raw_wamp::{args, opts};
    use switchboard_proto::Message;
    const PROCEDURE: &str = "com.example.race.register";
    let router = start_router().await;
    let callers = Busy::start(&router, 3, |caller| async move {
        let _ = caller.call(PROCEDURE, Args::default()).await;
        caller
    });
    let mut callee = common::RawPeer::join(&router, Via::RawSocketTcp, Serializer::Json).await;
    let mut invocations = 0usize;
    for round in 0..300u64 {
        callee
            .send(&Message::Register {
                request: 2 * round + 1,
                options: Dict::new(),
                procedure: PROCEDURE.into(),
            })
            .await;
        let registration = match callee.recv().await {
            Some(Message::Registered {
                request,
                registration,
            }) if request == 2 * round + 1 => registration,
            other => panic!("round {round}: expected REGISTERED first, got {other:?}"),
        };
        callee
            .send(&Message::Unregister {
                request: 2 * round + 2,
                registration,
            })
            .await;
        // Answer what arrived meanwhile, up to the UNREGISTERED.
        loop {
            match callee.recv().await {
                Some(Message::Invocation { request, .. }) => {
                    invocations += 1;
                    callee
                        .send(&Message::Yield {
                            request,
                            options: opts(&[]),
                            payload: args(vec![]),
                        })
                        .await;
                }
                Some(Message::Unregistered { request, .. }) if request == 2 * round + 2 => break,
                other => {
                    panic!("round {round}: expected INVOCATION or UNREGISTERED, got {other:?}")
                }
            }
        }
    }
    callers.finish().await;
    assert!(invocations > 0, "the callers' calls reached the callee");
    router.shutdown().await;
}

/// A subscriber must hear SUBSCRIBED before the first EVENT of the subscription (Autobahn|JS
/// fails its session on an EVENT for a subscription it does not know): publishers publish all
/// the while a subscriber subscribes and unsubscribes, over and over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribed_reaches_the_subscriber_before_any_event_for_it() {
    use switchboard_proto::Message;
    const TOPIC: &str = "com.example.race.subscribe";
    let router = start_router().await;
    let publishers = Busy::start(&router, 3, |publisher| async move {
        let _ = publisher
            .publish(TOPIC, Args::default(), PublishOptions::acknowledged())
            .await;
        publisher
    });
    let mut subscriber = common::RawPeer::join(&router, Via::RawSocketTcp, Serializer::Json).await;
    let mut events = 0usize;
    for round in 0..300u64 {
        subscriber
            .send(&Message::Subscribe {
                request: 2 * round + 1,
                options: Dict::new(),
                topic: TOPIC.into(),
            })
            .await;
        let subscription = match subscriber.recv().await {
            Some(Message::Subscribed {
                request,
                subscription,
            }) if request == 2 * round + 1 => subscription,
            other => panic!("round {round}: expected SUBSCRIBED first, got {other:?}"),
        };
        subscriber
            .send(&Message::Unsubscribe {
                request: 2 * round + 2,
                subscription,
            })
            .await;
        loop {
            match subscriber.recv().await {
                Some(Message::Event {
                    subscription: of, ..
                }) => {
                    assert_eq!(
                        of, subscription,
                        "round {round}: EVENT of this subscription"
                    );
                    events += 1;
                }
                Some(Message::Unsubscribed { request, .. }) if request == 2 * round + 2 => break,
                other => panic!("round {round}: expected EVENT or UNSUBSCRIBED, got {other:?}"),
            }
        }
    }
    publishers.finish().await;
    assert!(events > 0, "the publishers' events reached the subscriber");
    router.shutdown().await;
}
