//! A load smoke test through the built binary (a correctness check, not a benchmark): thousands of
//! calls and events; every result must echo its call's payload, and every subscriber must get every
//! acknowledged event of every publisher exactly once and in order.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use switchboard_client::{
    Args, ConnectOptions, PublishOptions, RegisterOptions, Session, SubscribeOptions,
};
use switchboard_proto::{Serializer, Value};

const CALLERS: usize = 8;
const CALLS_PER_CALLER: u64 = 500;
const CALLS_IN_FLIGHT: usize = 16;
const PUBLISHERS: usize = 4;
const SUBSCRIBERS: usize = 4;
const EVENTS_PER_PUBLISHER: u64 = 1000;
const TOPIC: &str = "com.example.smoke";

fn opts(router: &common::RouterProcess, i: usize) -> ConnectOptions {
    let serializer = Serializer::ALL[i % 3];
    if i.is_multiple_of(2) {
        ConnectOptions::websocket(&router.tcp, "/ws", serializer, "realm1")
    } else {
        ConnectOptions::rawsocket(&router.tcp, serializer, "realm1")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_calls_and_events_arrive_complete_and_in_order() {
    let dir = common::node_dir();
    let router = common::start(Some(dir.path()), 2);

    let callee = Session::connect(&opts(&router, 0))
        .await
        .expect("callee joins");
    callee
        .register(
            "com.example.echo",
            RegisterOptions::default(),
            |i| async move { Ok(i.into_args()) },
        )
        .await
        .expect("register");

    let mut subscribers = Vec::new();
    for i in 0..SUBSCRIBERS {
        let s = Session::connect(&opts(&router, i + 1))
            .await
            .expect("subscriber joins");
        // The events are read only after the load: the buffer holds every one of them, so
        // that the check below sees loss in the router, not in a lagging reader.
        let options = SubscribeOptions {
            capacity: PUBLISHERS * EVENTS_PER_PUBLISHER as usize,
            ..SubscribeOptions::default()
        };
        let events = s.subscribe(TOPIC, options).await.expect("subscribe");
        subscribers.push((s, events));
    }

    let mut tasks = Vec::new();
    for c in 0..CALLERS {
        let o = opts(&router, c);
        tasks.push(tokio::spawn(async move {
            let caller = Session::connect(&o).await.expect("caller joins");
            futures::stream::iter(0..CALLS_PER_CALLER)
                .map(|n| {
                    let caller = &caller;
                    async move {
                        let payload = Args::positional(vec![
                            (c as u64).into(),
                            n.into(),
                            "x".repeat(64).into(),
                        ]);
                        let result = caller
                            .call("com.example.echo", payload.clone())
                            .await
                            .expect("call succeeds");
                        assert_eq!(result, payload, "result echoes the call's payload");
                    }
                })
                .buffer_unordered(CALLS_IN_FLIGHT)
                .collect::<Vec<()>>()
                .await;
        }));
    }
    for p in 0..PUBLISHERS {
        let o = opts(&router, p + 2);
        tasks.push(tokio::spawn(async move {
            let publisher = Session::connect(&o).await.expect("publisher joins");
            for n in 0..EVENTS_PER_PUBLISHER {
                let args = Args::positional(vec![(p as u64).into(), n.into()]);
                publisher
                    .publish(TOPIC, args, PublishOptions::acknowledged())
                    .await
                    .expect("acknowledged");
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("load finishes")
            .expect("task");
    }

    for (_, events) in &mut subscribers {
        let mut next_by_publisher: HashMap<u64, u64> = HashMap::new();
        for _ in 0..(PUBLISHERS as u64 * EVENTS_PER_PUBLISHER) {
            let event = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await
                .expect("every acknowledged event arrives")
                .expect("subscription open")
                .expect("no events dropped by the buffer");
            let (Some(Value::UInt(p)), Some(Value::UInt(n))) =
                (event.args.args.first(), event.args.args.get(1))
            else {
                panic!("unexpected event {:?}", event.args);
            };
            let expected = next_by_publisher.entry(*p).or_insert(0);
            assert_eq!(
                n, expected,
                "publisher {p}: events in order, none lost or duplicated"
            );
            *expected += 1;
        }
        assert!(events.try_next().is_none(), "no extra events");
    }
    let status = tokio::task::spawn_blocking(move || router.terminate())
        .await
        .expect("join");
    assert!(status.success());
}
