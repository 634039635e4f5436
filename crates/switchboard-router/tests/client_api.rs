//! The client library against a real router: async handlers, progressive results, cancellation,
//! timeouts, publish and subscribe options, patterns, lagging subscribers, panicking handlers, the
//! ways a session ends, and joining over any transport (an in-memory pipe). (Client authentication is in
//! `client_auth.rs`.)

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::{Via, start_router};
use switchboard_client::{
    Args, CallError, CallOptions, CancelMode, CloseReason, Error, Event, Invocation, InvokePolicy,
    JoinOptions, Lagged, PublishOptions, RegisterOptions, Session, SubscribeOptions, Subscription,
    UriMatch,
};
use switchboard_proto::{Serializer, Value, errors};
use tokio::sync::{mpsc, oneshot};

const WAIT: Duration = Duration::from_secs(10);

/// `f`, or a test failure after 10 s.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .expect("finished within 10 s")
}

async fn next_event(subscription: &mut Subscription) -> Event {
    within(subscription.next())
        .await
        .expect("subscription open")
        .expect("no events lost")
}

fn number(n: u64) -> Args {
    Args::positional(vec![n.into()])
}

fn first_number(args: &Args) -> u64 {
    args.args.first().and_then(Value::as_u64).expect("a number")
}

fn is_wamp_error(e: &Error, uri: &str) -> bool {
    e.uri() == Some(uri)
}

/// Registers `procedure` with a handler that never answers. For each invocation the returned
/// channel yields a receiver that fails once the handler's future is dropped.
async fn park(session: &Session, procedure: &str) -> mpsc::Receiver<oneshot::Receiver<()>> {
    let (started, invocations) = mpsc::channel(16);
    session
        .register(procedure, RegisterOptions::default(), move |_| {
            let started = started.clone();
            async move {
                let (alive, watch) = oneshot::channel::<()>();
                let _ = started.send(watch).await;
                std::future::pending::<()>().await;
                drop(alive);
                Ok(Args::default())
            }
        })
        .await
        .expect("register");
    invocations
}

#[tokio::test]
async fn a_handler_awaiting_a_timer_does_not_hold_up_other_calls_of_its_session() {
    let router = start_router().await;
    let callee = router.connect(Via::RawSocketTcp, Serializer::Cbor).await;
    let caller = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let release = Arc::new(tokio::sync::Notify::new());
    callee
        .register("com.example.slow", RegisterOptions::default(), {
            let release = release.clone();
            move |_| {
                let release = release.clone();
                async move {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(3600)) => {}
                        () = release.notified() => {}
                    }
                    Ok(Args::positional(vec!["slow".into()]))
                }
            }
        })
        .await
        .expect("register");
    callee
        .register("com.example.fast", RegisterOptions::default(), common::echo)
        .await
        .expect("register");
    let slow = tokio::spawn({
        let caller = caller.clone();
        async move { caller.call("com.example.slow", Args::default()).await }
    });
    // While the slow handler waits on its timer, the same session answers another call.
    let fast = within(caller.call("com.example.fast", number(7)))
        .await
        .expect("fast call");
    assert_eq!(first_number(&fast), 7);
    assert!(!slow.is_finished());
    release.notify_one();
    let slow = within(slow).await.expect("task").expect("slow call");
    assert_eq!(slow.args, vec![Value::from("slow")]);
    router.shutdown().await;
}

#[tokio::test]
async fn progressive_results_flow_from_a_client_callee_to_a_client_caller() {
    let router = start_router().await;
    let callee = router
        .connect(Via::WebSocketUnix, Serializer::MsgPack)
        .await;
    let caller = router.connect(Via::RawSocketUnix, Serializer::Json).await;
    callee
        .register(
            "com.example.countdown",
            RegisterOptions::default(),
            |inv: Invocation| async move {
                for n in (1..=first_number(&inv.args)).rev() {
                    inv.progress(number(n))
                        .await
                        .map_err(|_| CallError::new("com.example.error.progress"))?;
                }
                let progressive = inv.receive_progress();
                Ok(Args::positional(vec!["liftoff".into(), progressive.into()]))
            },
        )
        .await
        .expect("register");
    let mut call = caller
        .call_streaming("com.example.countdown", number(3), CallOptions::default())
        .await
        .expect("call");
    let mut progress = Vec::new();
    while let Some(p) = within(call.progress()).await {
        progress.push(first_number(&p.expect("no results lost")));
    }
    assert_eq!(progress, [3, 2, 1]);
    let result = within(call.result()).await.expect("final result");
    assert_eq!(result.args, vec![Value::from("liftoff"), true.into()]);
    // A caller that did not ask gets no progressive results, only the final one.
    let plain = within(caller.call("com.example.countdown", number(2)))
        .await
        .expect("call");
    assert_eq!(plain.args, vec![Value::from("liftoff"), false.into()]);
    router.shutdown().await;
}

#[tokio::test]
async fn cancel_interrupts_the_callee_in_kill_modes_and_the_caller_gets_canceled_in_every_mode() {
    let router = start_router().await;
    let callee = router.connect(Via::WebSocketTcp, Serializer::Cbor).await;
    let caller = router.connect(Via::RawSocketTcp, Serializer::MsgPack).await;
    let mut invocations = park(&callee, "com.example.park").await;
    callee
        .register("com.example.ping", RegisterOptions::default(), common::echo)
        .await
        .expect("register");
    for mode in [CancelMode::Kill, CancelMode::KillNoWait, CancelMode::Skip] {
        let mut call = caller
            .call_streaming("com.example.park", Args::default(), CallOptions::default())
            .await
            .expect("call");
        let mut handler_alive = within(invocations.recv()).await.expect("invoked");
        call.cancel(mode).await.expect("cancel");
        let err = within(call.result()).await.unwrap_err();
        assert!(is_wamp_error(&err, errors::CANCELED), "{mode:?}: {err}");
        // A round trip through the callee: whatever the router sent it before is handled.
        within(caller.call("com.example.ping", Args::default()))
            .await
            .expect("ping");
        if mode == CancelMode::Skip {
            // Skip does not tell the callee: its handler still runs.
            assert_eq!(
                handler_alive.try_recv(),
                Err(oneshot::error::TryRecvError::Empty),
                "{mode:?}"
            );
        } else {
            // INTERRUPT dropped the handler's future.
            assert!(within(handler_alive).await.is_err(), "{mode:?}");
        }
    }
    router.shutdown().await;
}

#[tokio::test]
async fn a_call_timeout_fails_the_call_and_interrupts_the_callee() {
    let router = start_router().await;
    let callee = router.connect(Via::RawSocketTcp, Serializer::Json).await;
    let caller = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let mut invocations = park(&callee, "com.example.park").await;
    let options = CallOptions::default().with_timeout(Duration::from_millis(100));
    let err = within(caller.call_with("com.example.park", Args::default(), options))
        .await
        .unwrap_err();
    assert!(is_wamp_error(&err, errors::TIMEOUT), "{err}");
    let handler_alive = within(invocations.recv()).await.expect("invoked");
    assert!(within(handler_alive).await.is_err(), "handler dropped");
    router.shutdown().await;
}

/// The first numbers of `subscription`'s events up to and including `marker`.
async fn numbers_until(subscription: &mut Subscription, marker: u64) -> Vec<u64> {
    let mut got = Vec::new();
    while got.last() != Some(&marker) {
        got.push(first_number(&next_event(subscription).await.args));
    }
    got
}

#[tokio::test]
async fn publish_options_choose_receivers_acknowledge_and_retain() {
    let router = start_router().await;
    let a = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let b = router.connect(Via::RawSocketUnix, Serializer::Cbor).await;
    let publisher = router.connect(Via::RawSocketTcp, Serializer::MsgPack).await;
    let topic = "com.example.news";
    let mut to_a = a
        .subscribe(topic, SubscribeOptions::default())
        .await
        .expect("sub");
    let mut to_b = b
        .subscribe(topic, SubscribeOptions::default())
        .await
        .expect("sub");
    let mut own = publisher
        .subscribe(topic, SubscribeOptions::default())
        .await
        .expect("sub");
    let publish = |n: u64, options: PublishOptions| publisher.publish(topic, number(n), options);

    let acknowledged = within(publish(1, PublishOptions::acknowledged()))
        .await
        .expect("publish")
        .expect("a publication id");
    assert_eq!(next_event(&mut to_a).await.publication, acknowledged);
    assert_eq!(next_event(&mut to_b).await.publication, acknowledged);
    let unacknowledged = publish(2, PublishOptions::default())
        .await
        .expect("publish");
    assert_eq!(unacknowledged, None);
    let me_too = PublishOptions {
        exclude_me: Some(false),
        ..PublishOptions::acknowledged()
    };
    publish(3, me_too.clone()).await.expect("publish");
    let only_a = PublishOptions {
        eligible: Some(vec![a.id()]),
        ..PublishOptions::acknowledged()
    };
    publish(4, only_a).await.expect("publish");
    let not_a = PublishOptions {
        exclude: vec![a.id()],
        ..PublishOptions::acknowledged()
    };
    publish(5, not_a).await.expect("publish");
    // A marker for everyone: what arrived before it is all that will arrive.
    publish(6, me_too).await.expect("publish");
    assert_eq!(numbers_until(&mut to_a, 6).await, [2, 3, 4, 6]);
    assert_eq!(numbers_until(&mut to_b, 6).await, [2, 3, 5, 6]);
    assert_eq!(numbers_until(&mut own, 6).await, [3, 6]);

    let retained = PublishOptions {
        retain: true,
        ..PublishOptions::acknowledged()
    };
    let door = "com.example.door";
    publisher
        .publish(door, Args::positional(vec!["open".into()]), retained)
        .await
        .expect("publish");
    let late = router.connect(Via::WebSocketUnix, Serializer::Json).await;
    let get_retained = SubscribeOptions {
        get_retained: true,
        ..SubscribeOptions::default()
    };
    let mut state = late.subscribe(door, get_retained).await.expect("sub");
    let event = next_event(&mut state).await;
    assert_eq!(event.args.args, vec![Value::from("open")]);
    assert_eq!(event.details.get("retained"), Some(&Value::Bool(true)));
    assert_eq!(event.topic, door);
    router.shutdown().await;
}

#[tokio::test]
async fn pattern_subscriptions_and_registrations_name_the_actual_uri() {
    let router = start_router().await;
    let s = router.connect(Via::WebSocketTcp, Serializer::Cbor).await;
    let publisher = router.connect(Via::RawSocketTcp, Serializer::Json).await;
    let mut prefix = s
        .subscribe("com.app.", SubscribeOptions::matching(UriMatch::Prefix))
        .await
        .expect("prefix");
    let mut wildcard = s
        .subscribe("com..temp", SubscribeOptions::matching(UriMatch::Wildcard))
        .await
        .expect("wildcard");
    for topic in ["com.app.sensor.1", "com.room.temp"] {
        publisher
            .publish(topic, Args::default(), PublishOptions::acknowledged())
            .await
            .expect("publish");
    }
    assert_eq!(next_event(&mut prefix).await.topic, "com.app.sensor.1");
    assert_eq!(next_event(&mut wildcard).await.topic, "com.room.temp");

    s.register(
        "com..ping",
        RegisterOptions::matching(UriMatch::Wildcard),
        |inv: Invocation| async move {
            let caller = inv.caller().map_or(Value::Null, Value::UInt);
            Ok(Args::positional(vec![inv.procedure().into(), caller]))
        },
    )
    .await
    .expect("register");
    let disclosed = CallOptions {
        disclose_me: true,
        ..CallOptions::default()
    };
    let r = within(publisher.call_with("com.x.ping", Args::default(), disclosed))
        .await
        .expect("call");
    assert_eq!(
        r.args,
        vec![Value::from("com.x.ping"), Value::UInt(publisher.id())]
    );

    // A shared registration: round robin reaches both callees.
    let other = router
        .connect(Via::RawSocketUnix, Serializer::MsgPack)
        .await;
    for callee in [&s, &other] {
        let id = callee.id();
        callee
            .register(
                "com.example.shared",
                RegisterOptions::invoking(InvokePolicy::RoundRobin),
                move |_| async move { Ok(number(id)) },
            )
            .await
            .expect("register");
    }
    let mut answered = HashSet::new();
    for _ in 0..4 {
        let r = within(publisher.call("com.example.shared", Args::default()))
            .await
            .expect("call");
        answered.insert(first_number(&r));
    }
    assert_eq!(answered, HashSet::from([s.id(), other.id()]));
    router.shutdown().await;
}

#[tokio::test]
async fn subscription_streams_end_when_unsubscribed_locally_by_id_or_by_the_router() {
    let router = start_router().await;
    let realm = router
        .node
        .as_ref()
        .and_then(|n| n.realms().get("realm1"))
        .expect("realm1");
    let s = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let publisher = router.connect(Via::RawSocketTcp, Serializer::Cbor).await;
    let topic = "com.example.t";
    let a = s
        .subscribe(topic, SubscribeOptions::default())
        .await
        .expect("a");
    let mut b = s
        .subscribe(topic, SubscribeOptions::default())
        .await
        .expect("b");
    assert_eq!(a.id(), b.id(), "the router's subscription is shared");
    // The first unsubscribe is local: the other subscription still gets events.
    a.unsubscribe().await.expect("unsubscribe a");
    publisher
        .publish(topic, number(1), PublishOptions::acknowledged())
        .await
        .expect("publish");
    assert_eq!(first_number(&next_event(&mut b).await.args), 1);
    assert_eq!(realm.subscription_count(), 1);
    // By id: the router forgets it and the local stream ends.
    s.unsubscribe(b.id()).await.expect("unsubscribe by id");
    assert!(within(b.next()).await.is_none());
    assert_eq!(realm.subscription_count(), 0);
    // Revoked by the router (spec, "Subscription Revocation"): the stream ends too.
    let mut c = s
        .subscribe(topic, SubscribeOptions::default())
        .await
        .expect("c");
    publisher
        .call(
            "wamp.subscription.remove_subscriber",
            Args::positional(vec![c.id().into(), s.id().into()]),
        )
        .await
        .expect("revoke");
    assert!(within(c.next()).await.is_none());
    router.shutdown().await;
}

#[tokio::test]
async fn a_lagging_subscriber_loses_the_oldest_events_is_told_how_many_and_stays_up() {
    let router = start_router().await;
    let subscriber = router.connect(Via::RawSocketTcp, Serializer::Cbor).await;
    let publisher = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let small = SubscribeOptions {
        capacity: 4,
        ..SubscribeOptions::default()
    };
    let mut events = subscriber
        .subscribe("com.example.firehose", small)
        .await
        .expect("subscribe");
    for n in 0..100 {
        publisher
            .publish(
                "com.example.firehose",
                number(n),
                PublishOptions::acknowledged(),
            )
            .await
            .expect("publish");
    }
    // The router queued every event for the subscriber before it acknowledged the publication,
    // and answers this call after them: once it returns, all 100 have reached the buffer.
    within(subscriber.call("wamp.session.count", Args::default()))
        .await
        .expect("call");
    assert_eq!(events.try_next(), Some(Err(Lagged(96))));
    let kept: Vec<u64> = std::iter::from_fn(|| events.try_next())
        .map(|e| first_number(&e.expect("no further loss").args))
        .collect();
    assert_eq!(kept, [96, 97, 98, 99]);
    // The session is unharmed and the stream goes on.
    assert!(!subscriber.is_closed());
    publisher
        .publish(
            "com.example.firehose",
            number(100),
            PublishOptions::acknowledged(),
        )
        .await
        .expect("publish");
    assert_eq!(first_number(&next_event(&mut events).await.args), 100);
    router.shutdown().await;
}

/// The session ids `wamp.session.list` reports.
async fn session_list(s: &Session) -> Vec<u64> {
    let r = within(s.call("wamp.session.list", Args::default()))
        .await
        .expect("session list");
    r.args[0]
        .as_list()
        .expect("list")
        .iter()
        .filter_map(Value::as_u64)
        .collect()
}

#[tokio::test]
async fn a_panicking_handler_ends_only_its_own_session() {
    let router = start_router().await;
    let bystander = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let mut doomed = Vec::new();
    // One handler panics while its future is polled, the other while it is being called.
    let async_panic = router.connect(Via::RawSocketTcp, Serializer::Cbor).await;
    async_panic
        .register(
            "com.example.boom",
            RegisterOptions::default(),
            |inv: Invocation| async move {
                assert!(inv.positional().is_empty(), "boom: no arguments expected");
                Ok(Args::default())
            },
        )
        .await
        .expect("register");
    doomed.push((async_panic, "com.example.boom"));
    let sync_panic = router
        .connect(Via::WebSocketUnix, Serializer::MsgPack)
        .await;
    sync_panic
        .register(
            "com.example.bang",
            RegisterOptions::default(),
            |inv: Invocation| {
                assert!(inv.positional().is_empty(), "bang: no arguments expected");
                async { Ok(Args::default()) }
            },
        )
        .await
        .expect("register");
    doomed.push((sync_panic, "com.example.bang"));
    for (session, procedure) in doomed {
        let err = within(bystander.call(procedure, number(1)))
            .await
            .unwrap_err();
        assert!(is_wamp_error(&err, errors::CANCELED), "{err}");
        match within(session.closed()).await {
            CloseReason::HandlerPanicked {
                procedure: p,
                message,
            } => {
                assert_eq!(p, procedure);
                assert!(message.contains("no arguments expected"), "{message}");
            }
            other => panic!("expected HandlerPanicked, got {other:?}"),
        }
        let gone = session.id();
        let deadline = tokio::time::Instant::now() + WAIT;
        while session_list(&bystander).await.contains(&gone) {
            assert!(tokio::time::Instant::now() < deadline, "still listed");
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            session.call("wamp.session.count", Args::default()).await,
            Err(Error::Closed)
        ));
    }
    // The bystander is unaffected.
    assert_eq!(session_list(&bystander).await, [bystander.id()]);
    router.shutdown().await;
}

#[tokio::test]
async fn a_router_goodbye_is_answered_reported_and_fails_pending_calls() {
    let router = start_router().await;
    let admin = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let victim = router.connect(Via::RawSocketTcp, Serializer::MsgPack).await;
    let mut invocations = park(&admin, "com.example.park").await;
    let pending = tokio::spawn({
        let victim = victim.clone();
        async move { victim.call("com.example.park", Args::default()).await }
    });
    within(invocations.recv()).await.expect("invoked");
    let mut kwargs = switchboard_proto::Dict::new();
    kwargs.insert("reason".into(), "com.example.maintenance".into());
    admin
        .call(
            "wamp.session.kill",
            Args::new(vec![victim.id().into()], kwargs),
        )
        .await
        .expect("kill");
    let closed = within(victim.closed()).await;
    assert_eq!(
        closed.router_reason(),
        Some("com.example.maintenance"),
        "{closed:?}"
    );
    assert!(matches!(closed, CloseReason::Goodbye { .. }));
    assert!(matches!(
        within(pending).await.expect("task"),
        Err(Error::Closed)
    ));
    assert!(victim.is_closed());
    assert!(matches!(victim.leave().await, Err(Error::Closed)));
    router.shutdown().await;
}

#[tokio::test]
async fn leaving_or_dropping_every_handle_ends_the_session_cleanly() {
    let router = start_router().await;
    let realm = router
        .node
        .as_ref()
        .and_then(|n| n.realms().get("realm1"))
        .expect("realm1");
    let s = router.connect(Via::WebSocketTcp, Serializer::Cbor).await;
    within(s.leave()).await.expect("leave");
    assert_eq!(s.closed().await, CloseReason::Left);
    assert!(matches!(s.leave().await, Err(Error::Closed)));

    let publisher = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let dropped = router.connect(Via::RawSocketUnix, Serializer::Json).await;
    let mut subscription = dropped
        .subscribe("com.example.t", SubscribeOptions::default())
        .await
        .expect("subscribe");
    drop(dropped);
    // The subscription is a handle too: the session lives on and delivers.
    publisher
        .publish("com.example.t", number(1), PublishOptions::acknowledged())
        .await
        .expect("publish");
    assert_eq!(first_number(&next_event(&mut subscription).await.args), 1);
    drop(subscription);
    common::eventually(|| realm.session_count() == 1).await;
    router.shutdown().await;
}

#[tokio::test]
async fn a_session_joins_over_an_in_memory_transport() {
    use switchboard_router::session::SessionConfig;
    let router = start_router().await;
    let node = router.node.as_ref().expect("node");
    let cfg = SessionConfig::new(
        node.realms().clone(),
        tokio_util::sync::CancellationToken::new(),
    );
    let (transport, _server) = common::session_over_pipe(cfg, 64 * 1024, Serializer::Cbor).await;
    let s = Session::join(transport, &JoinOptions::new("realm1"))
        .await
        .expect("join");
    assert_eq!(s.realm(), "realm1");
    assert_eq!(s.authrole(), Some("anonymous"));
    let network = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    s.register(
        "com.example.inproc",
        RegisterOptions::default(),
        common::echo,
    )
    .await
    .expect("register");
    let r = within(network.call("com.example.inproc", number(5)))
        .await
        .expect("call");
    assert_eq!(first_number(&r), 5);
    router.shutdown().await;
}
