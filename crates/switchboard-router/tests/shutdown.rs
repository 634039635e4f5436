//! A graceful shutdown drains: no new connections, sessions or calls; calls in flight get the
//! shutdown grace to finish; those still pending fail with `wamp.error.canceled` for their callers
//! while their callees get INTERRUPT; then every session gets GOODBYE `wamp.close.system_shutdown`.

mod common;

use std::time::{Duration, Instant};

use common::{RawPeer, Via, start_router};
use switchboard_client::{Args, Error, RegisterOptions, Session};
use switchboard_proto::{Dict, Message, Serializer, Value, errors};
use switchboard_router::realm::SHUTTING_DOWN;

const PATIENCE: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_millis(600);

/// A raw callee announcing call canceling, so that it is told with INTERRUPT.
async fn canceling_callee(router: &common::TestRouter) -> RawPeer {
    let mut features = Dict::new();
    features.insert("call_canceling".into(), true.into());
    let mut callee = Dict::new();
    callee.insert("features".into(), Value::Dict(features));
    let mut roles = Dict::new();
    roles.insert("callee".into(), Value::Dict(callee));
    let mut details = Dict::new();
    details.insert("roles".into(), Value::Dict(roles));
    let mut peer = RawPeer::open(router, Via::RawSocketTcp, Serializer::Json).await;
    peer.send(&Message::Hello {
        realm: "realm1".into(),
        details,
    })
    .await;
    assert!(matches!(peer.recv().await, Some(Message::Welcome { .. })));
    peer
}

#[tokio::test]
async fn shutdown_lets_calls_in_flight_finish_and_cuts_off_the_rest_with_errors_and_interrupts() {
    let mut router = start_router().await;
    router
        .node
        .as_mut()
        .expect("node")
        .set_shutdown_grace(GRACE);
    let realm = router
        .node
        .as_ref()
        .and_then(|n| n.realms().get("realm1"))
        .expect("realm1");

    // One callee never answers; the other answers after a while, within the grace.
    let mut stuck = canceling_callee(&router).await;
    common::raw_wamp::register(&mut stuck, 1, "com.example.stuck", Dict::new())
        .await
        .expect("registered");
    let quick = router.connect(Via::WebSocketTcp, Serializer::MsgPack).await;
    quick
        .register(
            "com.example.soon",
            RegisterOptions::default(),
            |call| async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(call.into_args())
            },
        )
        .await
        .expect("register");

    let caller = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let (c1, c2) = (caller.clone(), caller.clone());
    let stuck_call =
        tokio::spawn(async move { c1.call("com.example.stuck", Args::default()).await });
    let soon_call = tokio::spawn(async move {
        c2.call("com.example.soon", Args::positional(vec![7u64.into()]))
            .await
    });
    assert!(matches!(
        stuck.recv().await,
        Some(Message::Invocation { .. })
    ));
    common::eventually(|| realm.calls_in_flight() == 2).await;

    let node = router.node.take().expect("node");
    let started = Instant::now();
    let shutdown = tokio::spawn(node.shutdown());
    common::eventually(|| realm.is_draining()).await;

    // No new call, no new connection.
    let refused = caller
        .call("com.example.soon", Args::positional(vec![1u64.into()]))
        .await;
    assert!(
        matches!(&refused, Err(Error::Wamp { uri, .. }) if uri == SHUTTING_DOWN),
        "{refused:?}"
    );
    let late = tokio::time::timeout(
        PATIENCE,
        Session::connect(&router.options(Via::WebSocketTcp, Serializer::Json)),
    )
    .await
    .expect("the attempt ends");
    assert!(late.is_err(), "a new session during shutdown: {late:?}");

    // The call that finishes within the grace gets its result.
    let soon = tokio::time::timeout(PATIENCE, soon_call)
        .await
        .expect("answered")
        .expect("task");
    assert_eq!(
        soon.expect("the call finished within the grace").args,
        vec![Value::from(7u64)]
    );
    // The other fails when the grace is over, and its callee is interrupted.
    let cut = tokio::time::timeout(PATIENCE, stuck_call)
        .await
        .expect("answered")
        .expect("task");
    match cut {
        Err(Error::Wamp { uri, args, .. }) => {
            assert_eq!(uri, errors::CANCELED);
            let text = args.first().and_then(Value::as_str).unwrap_or_default();
            assert!(text.contains("shut down"), "{text}");
        }
        other => panic!("expected ERROR canceled, got {other:?}"),
    }
    assert!(
        started.elapsed() >= GRACE,
        "the stuck call was cut off only after the grace ({:?})",
        started.elapsed()
    );
    match stuck.recv().await {
        Some(Message::Interrupt { options, .. }) => {
            assert_eq!(
                options.get("reason").and_then(Value::as_str),
                Some(errors::CANCELED)
            );
        }
        other => panic!("expected INTERRUPT, got {other:?}"),
    }
    match stuck.recv().await {
        Some(Message::Goodbye { reason, .. }) => assert_eq!(reason, errors::SYSTEM_SHUTDOWN),
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    stuck.send(&Message::goodbye(errors::GOODBYE_AND_OUT)).await;
    tokio::time::timeout(GRACE + Duration::from_secs(5), shutdown)
        .await
        .expect("the node stops within the grace plus 5 s")
        .expect("task");
    assert_eq!(realm.calls_in_flight(), 0);
}

#[tokio::test]
async fn a_shutdown_without_calls_in_flight_does_not_wait_for_the_grace() {
    let mut router = start_router().await;
    router
        .node
        .as_mut()
        .expect("node")
        .set_shutdown_grace(Duration::from_secs(30));
    let session = router.connect(Via::RawSocketTcp, Serializer::Cbor).await;
    let started = Instant::now();
    router.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no call was in flight, so no wait for the 30 s grace"
    );
    assert_eq!(
        session.closed().await.router_reason(),
        Some(errors::SYSTEM_SHUTDOWN)
    );
}
