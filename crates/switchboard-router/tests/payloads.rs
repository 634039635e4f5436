//! Payload transparency through the router: byte-for-byte between peers of one serializer, the
//! spec's conversion between serializers, and an ERROR to the sender when no conversion exists.

mod common;

use bytes::Bytes;
use common::{RawPeer, Via, start_router};
use switchboard_proto::{Dict, Message, Payload, RawValue, Serializer, Value};

fn ack() -> Dict {
    let mut d = Dict::new();
    d.insert("acknowledge".into(), true.into());
    d
}

async fn subscribe(peer: &mut RawPeer, topic: &str) {
    peer.send(&Message::Subscribe {
        request: 1,
        options: Dict::new(),
        topic: topic.into(),
    })
    .await;
    assert!(matches!(
        peer.recv().await,
        Some(Message::Subscribed { .. })
    ));
}

#[tokio::test]
async fn json_payload_with_more_precision_than_f64_arrives_byte_for_byte() {
    let router = start_router().await;
    let mut sub = RawPeer::join(&router, Via::WebSocketTcp, Serializer::Json).await;
    subscribe(&mut sub, "com.example.exact").await;
    let mut publisher = RawPeer::join(&router, Via::RawSocketTcp, Serializer::Json).await;
    let args = Bytes::from_static(
        b"[1.00000000000000000001,123456789012345678901234567890,\"\\u0000AAEC\"]",
    );
    publisher
        .send(&Message::Publish {
            request: 1,
            options: ack(),
            topic: "com.example.exact".into(),
            payload: Payload {
                args: Some(RawValue::from_encoded(Serializer::Json, args.clone())),
                kwargs: None,
            },
        })
        .await;
    assert!(matches!(
        publisher.recv().await,
        Some(Message::Published { .. })
    ));
    match sub.recv().await {
        Some(Message::Event { payload, .. }) => {
            assert_eq!(payload.args.expect("args").bytes(), &args);
        }
        other => panic!("expected EVENT, got {other:?}"),
    }
    router.shutdown().await;
}

/// A CBOR tag has no JSON form. Subscribers that all speak CBOR get the tagged value byte for
/// byte; with a JSON subscriber too, the publication is refused before anyone gets it (all or
/// nothing), and the publisher hears why.
#[tokio::test]
async fn cbor_tag_reaches_cbor_subscribers_and_with_a_json_subscriber_nobody_gets_it() {
    let router = start_router().await;
    let mut cbor_sub = RawPeer::join(&router, Via::RawSocketTcp, Serializer::Cbor).await;
    subscribe(&mut cbor_sub, "com.example.tagged").await;
    let mut publisher = RawPeer::join(&router, Via::RawSocketUnix, Serializer::Cbor).await;
    // [tag 1 (epoch time) 1700000000]
    let args = Bytes::from_static(&[0x81, 0xc1, 0x1a, 0x65, 0x53, 0xf1, 0x00]);
    let publish = |request| Message::Publish {
        request,
        options: ack(),
        topic: "com.example.tagged".into(),
        payload: Payload {
            args: Some(RawValue::from_encoded(Serializer::Cbor, args.clone())),
            kwargs: None,
        },
    };
    publisher.send(&publish(8)).await;
    assert!(matches!(
        publisher.recv().await,
        Some(Message::Published { request: 8, .. })
    ));
    match cbor_sub.recv().await {
        Some(Message::Event { payload, .. }) => {
            assert_eq!(payload.args.expect("args").bytes(), &args)
        }
        other => panic!("expected EVENT, got {other:?}"),
    }

    let mut json_sub = RawPeer::join(&router, Via::WebSocketTcp, Serializer::Json).await;
    subscribe(&mut json_sub, "com.example.tagged").await;
    publisher.send(&publish(9)).await;
    match publisher.recv().await {
        Some(Message::Error { request, error, .. }) => {
            assert_eq!(request, 9);
            assert_eq!(error, "wamp.error.invalid_argument");
        }
        other => panic!("expected ERROR for the publisher, got {other:?}"),
    }
    // Neither subscriber got the refused publication: the next thing each gets is a later event.
    publisher
        .send(&Message::Publish {
            request: 10,
            options: ack(),
            topic: "com.example.tagged".into(),
            payload: Payload::EMPTY,
        })
        .await;
    assert!(matches!(
        publisher.recv().await,
        Some(Message::Published { request: 10, .. })
    ));
    for sub in [&mut cbor_sub, &mut json_sub] {
        match sub.recv().await {
            Some(Message::Event { payload, .. }) => assert!(payload.is_empty(), "{payload:?}"),
            other => panic!("expected the later EVENT, got {other:?}"),
        }
    }
    router.shutdown().await;
}

#[tokio::test]
async fn msgpack_binary_reaches_a_json_caller_as_a_nul_base64_string() {
    let router = start_router().await;
    let mut callee = RawPeer::join(&router, Via::RawSocketTcp, Serializer::MsgPack).await;
    common::raw_wamp::register(&mut callee, 1, "com.example.bin", Default::default())
        .await
        .expect("registered");
    let mut caller = RawPeer::join(&router, Via::WebSocketTcp, Serializer::Json).await;
    caller
        .send(&Message::Call {
            request: 5,
            options: Dict::new(),
            procedure: "com.example.bin".into(),
            payload: Payload::EMPTY,
        })
        .await;
    let Some(Message::Invocation { request, .. }) = callee.recv().await else {
        panic!("no INVOCATION")
    };
    let result = Value::List(vec![Value::Bytes(Bytes::from_static(&[1, 2, 3]))]);
    let payload = Payload {
        args: Some(RawValue::from_value(Serializer::MsgPack, &result).expect("encode")),
        kwargs: None,
    };
    callee
        .send(&Message::Yield {
            request,
            options: Dict::new(),
            payload,
        })
        .await;
    match caller.recv().await {
        Some(Message::Result {
            request, payload, ..
        }) => {
            assert_eq!(request, 5);
            assert_eq!(
                &payload.args.expect("args").bytes()[..],
                br#"["\u0000AQID"]"#
            );
        }
        other => panic!("expected RESULT, got {other:?}"),
    }
    router.shutdown().await;
}

#[tokio::test]
async fn invalid_uris_get_invalid_uri_errors() {
    let router = start_router().await;
    let mut peer = RawPeer::join(&router, Via::WebSocketTcp, Serializer::Json).await;
    for (msg, bad) in [
        (
            Message::Publish {
                request: 1,
                options: ack(),
                topic: "com.bad uri".into(),
                payload: Payload::EMPTY,
            },
            "publish",
        ),
        (
            Message::Subscribe {
                request: 2,
                options: Dict::new(),
                topic: "com..empty".into(),
            },
            "subscribe",
        ),
        (
            Message::Register {
                request: 3,
                options: Dict::new(),
                procedure: "".into(),
            },
            "register",
        ),
        (
            Message::Call {
                request: 4,
                options: Dict::new(),
                procedure: "com.#hash".into(),
                payload: Payload::EMPTY,
            },
            "call",
        ),
    ] {
        peer.send(&msg).await;
        match peer.recv().await {
            Some(Message::Error { error, .. }) => {
                assert_eq!(error, "wamp.error.invalid_uri", "{bad}")
            }
            other => panic!("{bad}: expected ERROR, got {other:?}"),
        }
    }
    router.shutdown().await;
}

#[tokio::test]
async fn passthru_payloads_and_their_options_reach_subscribers_and_callees_untouched() {
    let router = start_router().await;
    let mut json_sub = RawPeer::join(&router, Via::WebSocketTcp, Serializer::Json).await;
    subscribe(&mut json_sub, "com.e2e").await;
    let mut msgpack_sub = RawPeer::join(&router, Via::RawSocketTcp, Serializer::MsgPack).await;
    subscribe(&mut msgpack_sub, "com.e2e").await;
    let mut publisher = RawPeer::join(&router, Via::RawSocketUnix, Serializer::MsgPack).await;
    let mut options = ack();
    options.insert("ppt_scheme".into(), "x_test".into());
    options.insert("ppt_serializer".into(), "cbor".into());
    // The opaque payload: msgpack bin 0x01 0x02 0xff.
    let opaque = Bytes::from_static(&[0xc4, 0x03, 0x01, 0x02, 0xff]);
    publisher
        .send(&Message::Publish {
            request: 1,
            options,
            topic: "com.e2e".into(),
            payload: Payload {
                args: Some(RawValue::from_encoded(Serializer::MsgPack, opaque.clone())),
                kwargs: None,
            },
        })
        .await;
    assert!(matches!(
        publisher.recv().await,
        Some(Message::Published { .. })
    ));
    for (peer, expected) in [
        (&mut msgpack_sub, opaque.clone()),
        (&mut json_sub, Bytes::from_static(b"\"\\u0000AQL/\"")),
    ] {
        match peer.recv().await {
            Some(Message::Event {
                details, payload, ..
            }) => {
                assert_eq!(
                    details.get("ppt_scheme").and_then(Value::as_str),
                    Some("x_test")
                );
                assert_eq!(
                    details.get("ppt_serializer").and_then(Value::as_str),
                    Some("cbor")
                );
                assert_eq!(payload.args.expect("payload").bytes(), &expected);
                assert!(payload.kwargs.is_none());
            }
            other => panic!("expected EVENT, got {other:?}"),
        }
    }
    router.shutdown().await;
}

/// One nesting limit for all three serializers (`codec::MAX_PAYLOAD_DEPTH`): a payload at the limit
/// reaches subscribers of every serializer, converted; one level deeper ends the publisher's
/// session with ABORT `protocol_violation`, whatever it speaks.
#[tokio::test]
async fn payloads_nest_up_to_the_one_limit_in_every_serializer() {
    use switchboard_proto::codec::MAX_PAYLOAD_DEPTH;
    fn nested(depth: usize) -> Value {
        let mut v = Value::Str("core".into());
        for _ in 1..depth {
            v = Value::List(vec![v]);
        }
        Value::List(vec![v])
    }
    let router = start_router().await;
    let mut subscribers = Vec::new();
    for (via, serializer) in [
        (Via::WebSocketTcp, Serializer::Json),
        (Via::RawSocketTcp, Serializer::MsgPack),
        (Via::WebSocketUnix, Serializer::Cbor),
    ] {
        let mut sub = RawPeer::join(&router, via, serializer).await;
        subscribe(&mut sub, "com.example.deep").await;
        subscribers.push((sub, serializer));
    }
    for serializer in Serializer::ALL {
        let mut publisher = RawPeer::join(&router, Via::RawSocketTcp, serializer).await;
        let at_limit =
            RawValue::from_value(serializer, &nested(MAX_PAYLOAD_DEPTH)).expect("encode");
        publisher
            .send(&Message::Publish {
                request: 1,
                options: ack(),
                topic: "com.example.deep".into(),
                payload: Payload {
                    args: Some(at_limit),
                    kwargs: None,
                },
            })
            .await;
        assert!(
            matches!(publisher.recv().await, Some(Message::Published { .. })),
            "{serializer:?} at the limit"
        );
        for (sub, theirs) in &mut subscribers {
            match sub.recv().await {
                Some(Message::Event { payload, .. }) => assert_eq!(
                    payload.args.expect("args").to_value().expect("decode"),
                    nested(MAX_PAYLOAD_DEPTH),
                    "{serializer:?} -> {theirs:?}"
                ),
                other => panic!("{serializer:?} -> {theirs:?}: expected EVENT, got {other:?}"),
            }
        }
        let too_deep =
            RawValue::from_value(serializer, &nested(MAX_PAYLOAD_DEPTH + 1)).expect("encode");
        publisher
            .send(&Message::Publish {
                request: 2,
                options: ack(),
                topic: "com.example.deep".into(),
                payload: Payload {
                    args: Some(too_deep),
                    kwargs: None,
                },
            })
            .await;
        publisher
            .expect_abort("wamp.error.protocol_violation")
            .await;
    }
    router.shutdown().await;
}
