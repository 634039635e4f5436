//! The router calling procedures itself (what dynamic authenticators and authorizers rest on):
//! results, errors, missing callees, callees that leave or never answer.

mod common;

use std::time::Duration;

use common::{Via, start_router};
use switchboard_client::{Args, CallError, RegisterOptions};
use switchboard_proto::{Serializer, Value};
use switchboard_router::realm::router_caller::CallFailure;

const PATIENCE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn the_router_gets_a_callees_result_and_its_errors() {
    let router = start_router().await;
    let callee = router.connect(Via::WebSocketTcp, Serializer::Cbor).await;
    callee
        .register(
            "com.example.echo",
            RegisterOptions::default(),
            |i| async move { Ok(Args::positional(vec![Value::List(i.into_args().args)])) },
        )
        .await
        .expect("register");
    callee
        .register("com.example.deny", RegisterOptions::default(), |_| async {
            Err(CallError::new("com.example.denied")
                .with_args(Args::positional(vec!["no entry".into()])))
        })
        .await
        .expect("register");
    let realm = router
        .node
        .as_ref()
        .and_then(|n| n.realms().get("realm1"))
        .expect("realm1");

    let answer = realm
        .router_call(
            "com.example.echo",
            vec!["hello".into(), Value::Bytes(vec![0, 1, 255].into())],
            PATIENCE,
        )
        .await;
    assert_eq!(
        answer,
        Ok(Value::List(vec![
            "hello".into(),
            Value::Bytes(vec![0, 1, 255].into())
        ]))
    );
    let denied = realm
        .router_call("com.example.deny", Vec::new(), PATIENCE)
        .await;
    assert_eq!(
        denied,
        Err(CallFailure::Error {
            uri: "com.example.denied".into(),
            message: Some("no entry".into()),
        })
    );
    // The router's caller session is not a session of the realm.
    assert_eq!(realm.session_count(), 1);
    router.shutdown().await;
}

#[tokio::test]
async fn a_missing_or_silent_callee_makes_the_call_unavailable() {
    let router = start_router().await;
    let realm = router
        .node
        .as_ref()
        .and_then(|n| n.realms().get("realm1"))
        .expect("realm1");
    let missing = realm
        .router_call("com.example.nobody", Vec::new(), PATIENCE)
        .await;
    assert!(
        matches!(&missing, Err(CallFailure::Unavailable(why)) if why.contains("no_such_procedure")),
        "{missing:?}"
    );

    // A callee that never answers: a raw peer registers and then ignores the INVOCATION.
    let mut silent = common::RawPeer::join(&router, Via::RawSocketTcp, Serializer::Json).await;
    common::raw_wamp::register(&mut silent, 1, "com.example.silent", Default::default())
        .await
        .expect("registered");
    let started = std::time::Instant::now();
    let timed_out = realm
        .router_call("com.example.silent", Vec::new(), Duration::from_millis(300))
        .await;
    assert!(
        matches!(&timed_out, Err(CallFailure::Unavailable(_))),
        "{timed_out:?}"
    );
    assert!(started.elapsed() < PATIENCE, "the timeout was not applied");
    router.shutdown().await;
}
