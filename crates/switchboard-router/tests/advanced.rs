//! Advanced Profile RPC and PubSub features over real sockets: shared registrations, progressive
//! call results, call timeouts, call canceling (skip, kill, killnowait), caller and publisher
//! (the PubSub half and identification are in `advanced_pubsub.rs`).

mod common;

use common::raw_wamp::{args, call, invocation, join_with, opts, register, yield_};
use common::{Via, start_router};
use switchboard_proto::{Dict, Message, Serializer, Value};

#[tokio::test]
async fn shared_registrations_spread_calls_by_their_invocation_policy() {
    let router = start_router().await;
    let mut callees = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut c = join_with(&router, &[]).await;
        ids.push(
            register(
                &mut c,
                1,
                "com.shared.rr",
                opts(&[("invoke", "roundrobin".into())]),
            )
            .await
            .expect("register"),
        );
        callees.push(c);
    }
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one registration id for all callees"
    );
    let mut caller = join_with(&router, &[]).await;
    for round in 0..2u64 {
        for (i, callee) in callees.iter_mut().enumerate() {
            call(
                &mut caller,
                10 + round * 3 + i as u64,
                "com.shared.rr",
                Dict::new(),
            )
            .await;
            let (request, _) = invocation(callee).await;
            yield_(callee, request, Dict::new(), Value::UInt(i as u64)).await;
            assert!(matches!(caller.recv().await, Some(Message::Result { .. })));
        }
    }
    // Other policies: a different one is refused; single refuses any second callee.
    let mut other = join_with(&router, &[]).await;
    assert_eq!(
        register(
            &mut other,
            2,
            "com.shared.rr",
            opts(&[("invoke", "random".into())])
        )
        .await,
        Err("wamp.error.procedure_exists_with_different_invocation_policy".into())
    );
    register(&mut other, 3, "com.single", Dict::new())
        .await
        .expect("register");
    assert_eq!(
        register(&mut callees[0], 4, "com.single", Dict::new()).await,
        Err("wamp.error.procedure_already_exists".into())
    );
    // first/last: hot standby; when the first leaves, the next one takes over.
    let (mut a, mut b) = (join_with(&router, &[]).await, join_with(&router, &[]).await);
    register(
        &mut a,
        5,
        "com.standby",
        opts(&[("invoke", "first".into())]),
    )
    .await
    .expect("first");
    register(
        &mut b,
        5,
        "com.standby",
        opts(&[("invoke", "first".into())]),
    )
    .await
    .expect("second");
    call(&mut caller, 50, "com.standby", Dict::new()).await;
    let (request, _) = invocation(&mut a).await;
    yield_(&mut a, request, Dict::new(), Value::Null).await;
    assert!(matches!(caller.recv().await, Some(Message::Result { .. })));
    drop(a);
    let realm = router
        .node
        .as_ref()
        .expect("node")
        .realms()
        .get("realm1")
        .expect("realm");
    common::eventually(|| realm.session_count() == 6).await;
    call(&mut caller, 51, "com.standby", Dict::new()).await;
    let (request, _) = invocation(&mut b).await;
    yield_(&mut b, request, Dict::new(), Value::Null).await;
    assert!(matches!(
        caller.recv().await,
        Some(Message::Result { request: 51, .. })
    ));
    router.shutdown().await;
}

#[tokio::test]
async fn progressive_results_flow_until_the_final_result_and_a_dying_callee_fails_the_call() {
    let router = start_router().await;
    let mut callee = join_with(&router, &["progressive_call_results"]).await;
    register(&mut callee, 1, "com.progress", Dict::new())
        .await
        .expect("register");
    let mut caller = join_with(&router, &["progressive_call_results"]).await;
    call(
        &mut caller,
        7,
        "com.progress",
        opts(&[("receive_progress", true.into())]),
    )
    .await;
    let (request, details) = invocation(&mut callee).await;
    assert_eq!(details.get("receive_progress"), Some(&Value::Bool(true)));
    for i in 0..3u64 {
        yield_(
            &mut callee,
            request,
            opts(&[("progress", true.into())]),
            i.into(),
        )
        .await;
        match caller.recv().await {
            Some(Message::Result {
                request: 7,
                details,
                payload,
            }) => {
                assert_eq!(details.get("progress"), Some(&Value::Bool(true)));
                assert_eq!(
                    payload.args.expect("args").to_value().expect("value"),
                    Value::List(vec![i.into()])
                );
            }
            other => panic!("expected progressive RESULT, got {other:?}"),
        }
    }
    yield_(&mut callee, request, Dict::new(), "done".into()).await;
    match caller.recv().await {
        Some(Message::Result {
            request: 7,
            details,
            ..
        }) => assert!(details.get("progress").is_none()),
        other => panic!("expected final RESULT, got {other:?}"),
    }
    // A callee that dies during a progressive call: the caller gets an ERROR, never silence.
    call(
        &mut caller,
        8,
        "com.progress",
        opts(&[("receive_progress", true.into())]),
    )
    .await;
    let (request, _) = invocation(&mut callee).await;
    yield_(
        &mut callee,
        request,
        opts(&[("progress", true.into())]),
        1u64.into(),
    )
    .await;
    assert!(matches!(
        caller.recv().await,
        Some(Message::Result { request: 8, .. })
    ));
    drop(callee);
    match caller.recv().await {
        Some(Message::Error {
            request: 8, error, ..
        }) => assert_eq!(error, "wamp.error.canceled"),
        other => panic!("expected ERROR, got {other:?}"),
    }
    router.shutdown().await;
}

#[tokio::test]
async fn call_timeout_errors_the_caller_and_interrupts_the_callee_and_a_late_result_is_dropped() {
    let router = start_router().await;
    let mut callee = join_with(&router, &["call_canceling"]).await;
    register(&mut callee, 1, "com.slow", Dict::new())
        .await
        .expect("register");
    let mut caller = join_with(&router, &[]).await;
    call(
        &mut caller,
        9,
        "com.slow",
        opts(&[("timeout", 100u64.into())]),
    )
    .await;
    let (request, _) = invocation(&mut callee).await;
    match caller.recv().await {
        Some(Message::Error {
            request: 9, error, ..
        }) => assert_eq!(error, "wamp.error.timeout"),
        other => panic!("expected ERROR timeout, got {other:?}"),
    }
    match callee.recv().await {
        Some(Message::Interrupt {
            request: r,
            options,
        }) => {
            assert_eq!(r, request);
            assert_eq!(
                options.get("mode").and_then(Value::as_str),
                Some("killnowait")
            );
        }
        other => panic!("expected INTERRUPT, got {other:?}"),
    }
    // The result racing the timeout loses: the caller hears nothing more for request 9.
    yield_(&mut callee, request, Dict::new(), "late".into()).await;
    call(&mut caller, 10, "com.slow", Dict::new()).await;
    let (request, _) = invocation(&mut callee).await;
    yield_(&mut callee, request, Dict::new(), "on time".into()).await;
    assert!(matches!(
        caller.recv().await,
        Some(Message::Result { request: 10, .. })
    ));
    router.shutdown().await;
}

#[tokio::test]
async fn cancel_modes_skip_kill_and_killnowait_behave_as_the_spec_says() {
    let router = start_router().await;
    let mut callee = join_with(&router, &["call_canceling"]).await;
    register(&mut callee, 1, "com.cancelable", Dict::new())
        .await
        .expect("register");
    let mut caller = join_with(&router, &["call_canceling"]).await;

    // skip: ERROR now, no INTERRUPT, the callee's later answer is dropped.
    call(&mut caller, 1, "com.cancelable", Dict::new()).await;
    let (inv, _) = invocation(&mut callee).await;
    caller
        .send(&Message::Cancel {
            request: 1,
            options: opts(&[("mode", "skip".into())]),
        })
        .await;
    assert!(
        matches!(caller.recv().await, Some(Message::Error { request: 1, ref error, .. }) if error == "wamp.error.canceled")
    );
    yield_(&mut callee, inv, Dict::new(), Value::Null).await;

    // killnowait: ERROR now and INTERRUPT.
    call(&mut caller, 2, "com.cancelable", Dict::new()).await;
    let (inv, _) = invocation(&mut callee).await;
    caller
        .send(&Message::Cancel {
            request: 2,
            options: opts(&[("mode", "killnowait".into())]),
        })
        .await;
    assert!(
        matches!(caller.recv().await, Some(Message::Error { request: 2, ref error, .. }) if error == "wamp.error.canceled")
    );
    assert!(
        matches!(callee.recv().await, Some(Message::Interrupt { request, .. }) if request == inv)
    );

    // kill: INTERRUPT; the callee's ERROR is what the caller gets.
    call(&mut caller, 3, "com.cancelable", Dict::new()).await;
    let (inv, _) = invocation(&mut callee).await;
    caller
        .send(&Message::Cancel {
            request: 3,
            options: opts(&[("mode", "kill".into())]),
        })
        .await;
    assert!(
        matches!(callee.recv().await, Some(Message::Interrupt { request, .. }) if request == inv)
    );
    callee
        .send(&Message::error(
            switchboard_proto::MessageType::Invocation,
            inv,
            "wamp.error.canceled",
        ))
        .await;
    assert!(
        matches!(caller.recv().await, Some(Message::Error { request: 3, ref error, .. }) if error == "wamp.error.canceled")
    );

    // A cancel racing a result that already went out changes nothing.
    call(&mut caller, 4, "com.cancelable", Dict::new()).await;
    let (inv, _) = invocation(&mut callee).await;
    yield_(&mut callee, inv, Dict::new(), "won".into()).await;
    assert!(matches!(
        caller.recv().await,
        Some(Message::Result { request: 4, .. })
    ));
    caller
        .send(&Message::Cancel {
            request: 4,
            options: Dict::new(),
        })
        .await;
    call(&mut caller, 5, "com.cancelable", Dict::new()).await;
    let (inv, _) = invocation(&mut callee).await;
    yield_(&mut callee, inv, Dict::new(), Value::Null).await;
    assert!(matches!(
        caller.recv().await,
        Some(Message::Result { request: 5, .. })
    ));

    // A callee without call_canceling only ever gets skip: no INTERRUPT.
    let mut plain = join_with(&router, &[]).await;
    register(&mut plain, 1, "com.plain", Dict::new())
        .await
        .expect("register");
    call(&mut caller, 6, "com.plain", Dict::new()).await;
    let (inv, _) = invocation(&mut plain).await;
    caller
        .send(&Message::Cancel {
            request: 6,
            options: opts(&[("mode", "kill".into())]),
        })
        .await;
    assert!(matches!(
        caller.recv().await,
        Some(Message::Error { request: 6, .. })
    ));
    yield_(&mut plain, inv, Dict::new(), Value::Null).await;
    call(&mut caller, 7, "com.plain", Dict::new()).await;
    let (inv, _) = invocation(&mut plain).await; // not an INTERRUPT
    yield_(&mut plain, inv, Dict::new(), Value::Null).await;
    assert!(matches!(
        caller.recv().await,
        Some(Message::Result { request: 7, .. })
    ));
    router.shutdown().await;
}

#[tokio::test]
async fn progressive_call_invocations_stream_chunks_to_one_callee() {
    let router = start_router().await;
    let features = [
        "progressive_call_invocations",
        "call_canceling",
        "progressive_call_results",
    ];
    // Two callees on a shared round-robin registration: every chunk must reach the first one.
    let mut a = join_with(&router, &features).await;
    let mut b = join_with(&router, &features).await;
    for c in [&mut a, &mut b] {
        register(c, 1, "com.upload", opts(&[("invoke", "roundrobin".into())]))
            .await
            .expect("register");
    }
    let mut caller = join_with(&router, &features).await;
    let mut invocation_ids = Vec::new();
    for chunk in 0..3u64 {
        let progress = chunk < 2;
        caller
            .send(&Message::Call {
                request: 77,
                options: opts(&[("progress", progress.into())]),
                procedure: "com.upload".into(),
                payload: args(vec![chunk.into()]),
            })
            .await;
        match a.recv().await {
            Some(Message::Invocation {
                request,
                details,
                payload,
                ..
            }) => {
                invocation_ids.push(request);
                let expected = progress.then_some(true);
                assert_eq!(
                    details.get("progress").and_then(Value::as_bool),
                    expected,
                    "chunk {chunk}"
                );
                let value = payload.args.expect("args").to_value().expect("value");
                assert_eq!(value, Value::List(vec![chunk.into()]));
            }
            other => {
                panic!("chunk {chunk}: expected INVOCATION on the first callee, got {other:?}")
            }
        }
    }
    // Every chunk is one invocation (spec: the same request id throughout).
    assert!(
        invocation_ids.windows(2).all(|w| w[0] == w[1]),
        "{invocation_ids:?}"
    );
    // The callee answers once; the caller gets one final RESULT for the whole call.
    yield_(&mut a, invocation_ids[0], Dict::new(), "stored".into()).await;
    assert!(matches!(
        caller.recv().await,
        Some(Message::Result { request: 77, .. })
    ));
    // After the final chunk, the request id is free again; round robin now picks the second callee.
    call(&mut caller, 77, "com.upload", Dict::new()).await;
    let (inv, _) = invocation(&mut b).await;
    yield_(&mut b, inv, Dict::new(), Value::Null).await;
    assert!(matches!(
        caller.recv().await,
        Some(Message::Result { request: 77, .. })
    ));
    router.shutdown().await;
}

#[tokio::test]
async fn progressive_call_invocations_need_a_callee_that_supports_them() {
    let router = start_router().await;
    let mut callee = join_with(&router, &["call_canceling"]).await;
    register(&mut callee, 1, "com.plain", Dict::new())
        .await
        .expect("register");
    let mut caller = join_with(&router, &["progressive_call_invocations"]).await;
    call(
        &mut caller,
        5,
        "com.plain",
        opts(&[("progress", true.into())]),
    )
    .await;
    match caller.recv().await {
        Some(Message::Error {
            request: 5, error, ..
        }) => assert_eq!(error, "wamp.error.feature_not_supported"),
        other => panic!("expected ERROR, got {other:?}"),
    }
    // A caller that did not announce the feature breaks the protocol.
    let mut rude = join_with(&router, &[]).await;
    call(
        &mut rude,
        1,
        "com.plain",
        opts(&[("progress", true.into())]),
    )
    .await;
    rude.expect_abort("wamp.error.protocol_violation").await;
    router.shutdown().await;
}

#[tokio::test]
async fn killing_a_session_that_holds_a_shared_registration_moves_calls_to_the_others() {
    let router = start_router().await;
    let mut a = join_with(&router, &[]).await;
    let mut b = join_with(&router, &[]).await;
    for c in [&mut a, &mut b] {
        register(c, 1, "com.ha", opts(&[("invoke", "first".into())]))
            .await
            .expect("register");
    }
    let admin = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let callees = admin
        .call(
            "wamp.registration.list_callees",
            switchboard_client::Args::positional(vec![
                admin
                    .call(
                        "wamp.registration.match",
                        switchboard_client::Args::positional(vec!["com.ha".into()]),
                    )
                    .await
                    .expect("match")
                    .args[0]
                    .clone(),
            ]),
        )
        .await
        .expect("callees");
    let first = callees.args[0].as_list().expect("list")[0].clone();
    admin
        .call(
            "wamp.session.kill",
            switchboard_client::Args::positional(vec![first]),
        )
        .await
        .expect("kill");
    assert!(matches!(a.recv().await, Some(Message::Goodbye { .. })));
    // The registration lives on with the other callee.
    let mut caller = join_with(&router, &[]).await;
    call(&mut caller, 3, "com.ha", Dict::new()).await;
    let (inv, _) = invocation(&mut b).await;
    yield_(&mut b, inv, Dict::new(), Value::Null).await;
    assert!(matches!(
        caller.recv().await,
        Some(Message::Result { request: 3, .. })
    ));
    router.shutdown().await;
}
