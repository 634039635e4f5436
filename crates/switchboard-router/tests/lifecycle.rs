//! Sessions that leave at awkward moments, slow consumers, and transport negotiation details.

mod common;

use std::time::Duration;

use common::{RawPeer, Via, start_router};
use switchboard_client::{
    Args, Error, PublishOptions, RegisterOptions, Session, SubscribeOptions, TransportKind,
};
use switchboard_proto::{Dict, Message, Payload, Serializer};
use switchboard_router::session::SessionConfig;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn callee_that_leaves_mid_call_makes_its_caller_get_an_error() {
    let router = start_router().await;
    let mut callee = RawPeer::join(&router, Via::RawSocketTcp, Serializer::Json).await;
    common::raw_wamp::register(&mut callee, 1, "com.example.slow", Default::default())
        .await
        .expect("registered");
    let caller = router.connect(Via::WebSocketTcp, Serializer::Cbor).await;
    let call = tokio::spawn(async move { caller.call("com.example.slow", Args::default()).await });
    // The callee gets the INVOCATION and vanishes without answering.
    assert!(matches!(
        callee.recv().await,
        Some(Message::Invocation { .. })
    ));
    drop(callee);
    let err = timeout(WAIT, call)
        .await
        .expect("caller answered in time")
        .expect("task")
        .unwrap_err();
    assert!(
        matches!(err, Error::Wamp { ref uri, .. } if uri == "wamp.error.canceled"),
        "{err}"
    );
    router.shutdown().await;
}

#[tokio::test]
async fn caller_that_leaves_mid_call_does_not_disturb_the_callee() {
    let router = start_router().await;
    let mut callee = RawPeer::join(&router, Via::RawSocketTcp, Serializer::MsgPack).await;
    common::raw_wamp::register(&mut callee, 1, "com.example.p", Default::default())
        .await
        .expect("registered");
    let mut caller = RawPeer::join(&router, Via::WebSocketTcp, Serializer::Json).await;
    caller
        .send(&Message::Call {
            request: 7,
            options: Dict::new(),
            procedure: "com.example.p".into(),
            payload: Payload::EMPTY,
        })
        .await;
    let Some(Message::Invocation { request, .. }) = callee.recv().await else {
        panic!("no INVOCATION")
    };
    drop(caller);
    let realm = router
        .node
        .as_ref()
        .expect("node")
        .realms()
        .get("realm1")
        .expect("realm");
    common::eventually(|| realm.session_count() == 1).await;
    callee
        .send(&Message::Yield {
            request,
            options: Dict::new(),
            payload: Payload::EMPTY,
        })
        .await;
    // The callee's session goes on: another call still reaches it.
    let other = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let pending = tokio::spawn(async move { other.call("com.example.p", Args::default()).await });
    let Some(Message::Invocation { request, .. }) = callee.recv().await else {
        panic!("no INVOCATION")
    };
    callee
        .send(&Message::Yield {
            request,
            options: Dict::new(),
            payload: Payload::EMPTY,
        })
        .await;
    timeout(WAIT, pending)
        .await
        .expect("in time")
        .expect("task")
        .expect("result");
    router.shutdown().await;
}

#[tokio::test]
async fn registrations_and_subscriptions_of_a_leaving_session_are_removed() {
    let router = start_router().await;
    let s = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    s.register("com.example.gone", RegisterOptions::default(), common::echo)
        .await
        .expect("register");
    let _subscription = s
        .subscribe("com.example.topic", SubscribeOptions::default())
        .await
        .expect("subscribe");
    let realm = router
        .node
        .as_ref()
        .expect("node")
        .realms()
        .get("realm1")
        .expect("realm");
    assert_eq!(realm.registration_count(), 1);
    assert_eq!(realm.subscription_count(), 1);
    s.leave().await.expect("leave");
    common::eventually(|| realm.session_count() == 0).await;
    assert_eq!(realm.registration_count(), 0);
    assert_eq!(realm.subscription_count(), 0);
    assert_eq!(realm.session_count(), 0);
    router.shutdown().await;
}

#[tokio::test]
async fn goodbye_is_answered_with_goodbye_and_out() {
    let router = start_router().await;
    let mut peer = RawPeer::join(&router, Via::WebSocketUnix, Serializer::Cbor).await;
    peer.send(&Message::goodbye("wamp.close.normal")).await;
    match peer.recv().await {
        Some(Message::Goodbye { reason, .. }) => assert_eq!(reason, "wamp.close.goodbye_and_out"),
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    assert!(
        peer.recv().await.is_none(),
        "connection closed after GOODBYE"
    );
    router.shutdown().await;
}

/// The outbox policy (see `peer`): a subscriber that stops reading is closed as a slow
/// consumer; the publisher is never blocked and nothing else is affected.
#[tokio::test]
async fn subscriber_that_stops_reading_is_closed_as_a_slow_consumer() {
    let router = start_router().await;
    let node = router.node.as_ref().expect("node");
    // The slow subscriber runs over RawSocket on an in-memory pipe with a 4 KiB buffer and an
    // outbox of 8 messages, so that it fills up after a handful of events.
    let mut cfg = SessionConfig::new(node.realms().clone(), CancellationToken::new());
    cfg.outbox_capacity = 8;
    let (client, server) = common::session_over_pipe(cfg, 4096, Serializer::Json).await;
    let mut slow = common::RawPeer {
        transport: Box::new(client),
        serializer: Serializer::Json,
    };
    slow.send(&common::hello("realm1")).await;
    assert!(matches!(slow.recv().await, Some(Message::Welcome { .. })));
    slow.send(&Message::Subscribe {
        request: 1,
        options: Dict::new(),
        topic: "com.example.firehose".into(),
    })
    .await;
    assert!(matches!(
        slow.recv().await,
        Some(Message::Subscribed { .. })
    ));

    let publisher = router.connect(Via::RawSocketTcp, Serializer::Json).await;
    let payload = Args::positional(vec!["x".repeat(1000).into()]);
    for _ in 0..200 {
        // Every publish is acknowledged: the publisher never waits for the slow subscriber.
        timeout(
            WAIT,
            publisher.publish(
                "com.example.firehose",
                payload.clone(),
                PublishOptions::acknowledged(),
            ),
        )
        .await
        .expect("publish not blocked")
        .expect("published");
    }
    timeout(WAIT, server)
        .await
        .expect("slow session closed")
        .expect("task");
    let realm = node.realms().get("realm1").expect("realm");
    assert_eq!(realm.subscription_count(), 0, "slow subscriber removed");
    drop(slow);
    router.shutdown().await;
}

#[tokio::test]
async fn websocket_negotiates_permessage_deflate_when_offered() {
    let router = start_router().await;
    // Our client offers permessage-deflate; a payload above the compression threshold round-trips.
    let mut opts = router.options(Via::WebSocketTcp, Serializer::Json);
    opts.transport = TransportKind::WebSocket {
        path: "/ws".into(),
        compression: true,
    };
    let callee = Session::connect(&opts).await.expect("join");
    let caller = Session::connect(&opts).await.expect("join");
    callee
        .register("com.example.big", RegisterOptions::default(), common::echo)
        .await
        .expect("register");
    let big = Args::positional(vec!["abc".repeat(10_000).into()]);
    let r = caller
        .call("com.example.big", big.clone())
        .await
        .expect("call");
    assert_eq!(r, big);
    // And the handshake answer really carries the extension.
    let mut tcp = tokio::net::TcpStream::connect(router.tcp)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: wamp.2.msgpack\r\n\
          Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    )
    .await
    .expect("request");
    let mut buf = vec![0u8; 1024];
    let n = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf)
        .await
        .expect("response");
    let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-protocol: wamp.2.msgpack"),
        "{head}"
    );
    assert!(
        head.contains("sec-websocket-extensions: permessage-deflate"),
        "{head}"
    );
    router.shutdown().await;
}

#[tokio::test]
async fn plain_http_get_on_the_websocket_path_explains_itself() {
    let router = start_router().await;
    let mut tcp = tokio::net::TcpStream::connect(router.tcp)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("request");
    let mut buf = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut buf)
        .await
        .expect("response");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 426"), "{text}");
    assert!(text.contains("WAMP WebSocket endpoint"), "{text}");
    router.shutdown().await;
}

#[tokio::test]
async fn rawsocket_ping_is_answered_with_a_pong_carrying_the_same_payload() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let router = start_router().await;
    let mut tcp = tokio::net::TcpStream::connect(router.tcp)
        .await
        .expect("connect");
    tcp.write_all(&[0x7f, 0xf2, 0, 0])
        .await
        .expect("handshake (msgpack)");
    let mut reply = [0u8; 4];
    tcp.read_exact(&mut reply).await.expect("handshake reply");
    assert_eq!(reply[1] & 0x0f, 2, "msgpack accepted");
    // Frame type 1 = PING (spec, "RawSocket Transport"), 4-byte payload.
    tcp.write_all(&[0x01, 0, 0, 4, b'p', b'i', b'n', b'g'])
        .await
        .expect("ping");
    let mut pong = [0u8; 8];
    timeout(WAIT, tcp.read_exact(&mut pong))
        .await
        .expect("in time")
        .expect("pong");
    assert_eq!(pong, [0x02, 0, 0, 4, b'p', b'i', b'n', b'g']);
    router.shutdown().await;
}

/// Dead-peer detection: a peer that stops answering the router's pings (a laptop that closed its
/// lid, a NAT that dropped the connection) is closed as a lost connection, and its testament is
/// published, over WebSocket and RawSocket alike.
#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed_and_its_testament_published() {
    let router = common::start_router_custom(
        None,
        r#""options": {"auto_ping_interval": 100, "auto_ping_timeout": 100}"#,
        "",
    )
    .await;
    let observer = router.connect(Via::RawSocketTcp, Serializer::Cbor).await;
    let mut wills = observer
        .subscribe("com.example.will", SubscribeOptions::default())
        .await
        .expect("subscribe");
    for via in [Via::WebSocketTcp, Via::RawSocketTcp] {
        let mut silent = RawPeer::join(&router, via, Serializer::Json).await;
        let testament = Message::Call {
            request: 1,
            options: Dict::new(),
            procedure: "wamp.session.add_testament".into(),
            payload: Payload {
                args: Some(
                    switchboard_proto::RawValue::from_value(
                        Serializer::Json,
                        &switchboard_proto::Value::List(vec![
                            "com.example.will".into(),
                            switchboard_proto::Value::List(vec![format!("{via:?}").into()]),
                            switchboard_proto::Value::Dict(Dict::new()),
                        ]),
                    )
                    .expect("encode"),
                ),
                kwargs: None,
            },
        };
        silent.send(&testament).await;
        assert!(matches!(silent.recv().await, Some(Message::Result { .. })));
        // From now on the peer reads nothing, so it answers no ping: the router gives up after
        // one interval and one timeout.
        let will = timeout(WAIT, wills.next())
            .await
            .expect("the testament within the patience")
            .expect("an event")
            .expect("not lagged");
        assert_eq!(
            will.args.args,
            vec![switchboard_proto::Value::from(format!("{via:?}"))]
        );
        drop(silent);
    }
    router.shutdown().await;
}
