//! Bad input ends the offending session with ABORT `wamp.error.protocol_violation` and never
//! harms the router or other sessions: garbage in every serializer over both transports,
//! out-of-order messages, ids out of range, truncated and oversized frames.

mod common;

use std::time::Duration;

use common::{ALL_VIAS, RawPeer, Via, start_router};
use switchboard_client::{Args, RegisterOptions};
use switchboard_proto::{Dict, Message, Serializer};
use tokio::io::AsyncWriteExt;

const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";

/// Bytes that are not a WAMP message in the given serializer.
fn garbage(s: Serializer) -> Vec<Vec<u8>> {
    let mut g: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff, 0xfe, 0x00, 0x13],
        b"\xc1\xc1\xc1".to_vec(),
    ];
    match s {
        Serializer::Json => g.extend([
            b"[1, \"realm1\"".to_vec(),
            b"{\"not\": \"an array\"}".to_vec(),
            b"[\"1\", \"realm1\", {}]".to_vec(),
            b"[999, {}]".to_vec(),
            b"[48, 1, {}, 7]".to_vec(),
        ]),
        Serializer::MsgPack => g.extend([
            vec![0x93, 0x01],
            vec![0x81, 0xa1, b'a', 0x01],
            vec![0x92, 0xcd, 0x03, 0xe7, 0x80],
        ]),
        Serializer::Cbor => g.extend([
            vec![0x83, 0x01],
            vec![0xa1, 0x61, b'a', 0x01],
            vec![0x82, 0x19, 0x03, 0xe7, 0xa0],
        ]),
    }
    g
}

/// Proves the router is still serving: a fresh session can register and call.
async fn router_still_serves(router: &common::TestRouter) {
    let s = router.connect(Via::WebSocketTcp, Serializer::Json).await;
    let name = format!("com.example.alive.{}", s.id());
    s.register(&name, RegisterOptions::default(), common::echo)
        .await
        .expect("register");
    let r = s
        .call(&name, Args::positional(vec![1u64.into()]))
        .await
        .expect("call");
    assert_eq!(r.args, vec![1u64.into()]);
}

#[tokio::test]
async fn garbage_before_hello_is_aborted_in_every_serializer_and_transport() {
    let router = start_router().await;
    for via in ALL_VIAS {
        for s in Serializer::ALL {
            for g in garbage(s) {
                let mut peer = RawPeer::open(&router, via, s).await;
                peer.send_raw(&g).await;
                peer.expect_abort(PROTOCOL_VIOLATION).await;
            }
        }
    }
    router_still_serves(&router).await;
    router.shutdown().await;
}

#[tokio::test]
async fn garbage_in_an_established_session_ends_only_that_session() {
    let router = start_router().await;
    let bystander = router.connect(Via::RawSocketTcp, Serializer::MsgPack).await;
    let name = "com.example.bystander";
    bystander
        .register(name, RegisterOptions::default(), common::echo)
        .await
        .expect("register");
    for via in ALL_VIAS {
        for s in Serializer::ALL {
            for g in garbage(s) {
                let mut peer = RawPeer::join(&router, via, s).await;
                peer.send_raw(&g).await;
                peer.expect_abort(PROTOCOL_VIOLATION).await;
            }
        }
    }
    let caller = router.connect(Via::WebSocketUnix, Serializer::Cbor).await;
    let r = caller
        .call(name, Args::positional(vec!["still here".into()]))
        .await
        .expect("bystander alive");
    assert_eq!(r.args, vec!["still here".into()]);
    router.shutdown().await;
}

#[tokio::test]
async fn messages_out_of_order_are_protocol_violations() {
    let router = start_router().await;
    let call = Message::Call {
        request: 1,
        options: Dict::new(),
        procedure: "com.x".into(),
        payload: Default::default(),
    };
    // CALL before HELLO.
    let mut peer = RawPeer::open(&router, Via::RawSocketTcp, Serializer::Json).await;
    peer.send(&call).await;
    peer.expect_abort(PROTOCOL_VIOLATION).await;
    // HELLO without roles.
    let mut peer = RawPeer::open(&router, Via::WebSocketTcp, Serializer::Json).await;
    peer.send(&Message::Hello {
        realm: "realm1".into(),
        details: Dict::new(),
    })
    .await;
    peer.expect_abort(PROTOCOL_VIOLATION).await;
    // A second HELLO, and router-to-client messages sent by a client.
    let router_only = [
        common::hello("realm1"),
        Message::Welcome {
            session: 1,
            details: Dict::new(),
        },
        Message::Published {
            request: 1,
            publication: 2,
        },
        Message::Event {
            subscription: 1,
            publication: 2,
            details: Dict::new(),
            payload: Default::default(),
        },
        Message::Result {
            request: 1,
            details: Dict::new(),
            payload: Default::default(),
        },
        Message::Invocation {
            request: 1,
            registration: 2,
            details: Dict::new(),
            payload: Default::default(),
        },
        Message::error(switchboard_proto::MessageType::Call, 1, "com.x.error"),
    ];
    for msg in router_only {
        let mut peer = RawPeer::join(&router, Via::WebSocketTcp, Serializer::Cbor).await;
        peer.send(&msg).await;
        peer.expect_abort(PROTOCOL_VIOLATION).await;
    }
    router_still_serves(&router).await;
    router.shutdown().await;
}

/// Spec, "Identifiers": ids run from 1 to 2^53. A client message with a 0 in any id field ends
/// the session with ABORT `protocol_violation`, over both transports.
#[tokio::test]
async fn an_id_of_zero_in_any_client_message_is_a_protocol_violation() {
    let router = start_router().await;
    let zero_ids = [
        r#"[16, 0, {"acknowledge": true}, "com.x.topic"]"#,
        r#"[32, 0, {}, "com.x.topic"]"#,
        r#"[34, 0, 1]"#,
        r#"[34, 1, 0]"#,
        r#"[48, 0, {}, "com.x.procedure"]"#,
        r#"[49, 0, {}]"#,
        r#"[64, 0, {}, "com.x.procedure"]"#,
        r#"[66, 0, 1]"#,
        r#"[66, 1, 0]"#,
        r#"[70, 0, {}]"#,
        r#"[8, 68, 0, {}, "com.x.error"]"#,
    ];
    for (i, text) in zero_ids.iter().enumerate() {
        let via = [Via::WebSocketTcp, Via::RawSocketTcp][i % 2];
        let mut peer = RawPeer::join(&router, via, Serializer::Json).await;
        peer.send_raw(text.as_bytes()).await;
        match peer.recv().await {
            Some(Message::Abort { reason, details }) => {
                assert_eq!(reason, PROTOCOL_VIOLATION, "{text}");
                let why = details.get("message").and_then(|m| m.as_str());
                assert!(
                    why.is_some_and(|w| w.contains("[1, 2^53]")),
                    "{text}: {why:?}"
                );
            }
            other => panic!("{text}: expected ABORT, got {other:?}"),
        }
        assert!(peer.recv().await.is_none(), "{text}: the connection closes");
    }
    // A request id of 1 is fine.
    let mut peer = RawPeer::join(&router, Via::WebSocketTcp, Serializer::Json).await;
    peer.send_raw(br#"[16, 1, {"acknowledge": true}, "com.x.topic"]"#)
        .await;
    assert!(matches!(
        peer.recv().await,
        Some(Message::Published { request: 1, .. })
    ));
    router_still_serves(&router).await;
    router.shutdown().await;
}

#[tokio::test]
async fn truncated_rawsocket_frames_and_handshakes_do_not_hurt_the_router() {
    let router = start_router().await;
    // A frame header announcing 100 bytes, then 10 bytes and EOF.
    let mut tcp = tokio::net::TcpStream::connect(router.tcp)
        .await
        .expect("connect");
    tcp.write_all(&[0x7f, 0xf1, 0, 0]).await.expect("handshake");
    let mut reply = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut reply)
        .await
        .expect("handshake reply");
    assert_eq!(reply[0], 0x7f);
    tcp.write_all(&[0, 0, 0, 100]).await.expect("header");
    tcp.write_all(&[b'['; 10]).await.expect("partial");
    drop(tcp);
    // A handshake cut after two octets.
    let mut tcp = tokio::net::TcpStream::connect(router.tcp)
        .await
        .expect("connect");
    tcp.write_all(&[0x7f, 0xf1])
        .await
        .expect("partial handshake");
    drop(tcp);
    // An HTTP request cut mid-header.
    let mut tcp = tokio::net::TcpStream::connect(router.tcp)
        .await
        .expect("connect");
    tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgr")
        .await
        .expect("partial http");
    drop(tcp);
    router_still_serves(&router).await;
    router.shutdown().await;
}

#[tokio::test]
async fn rawsocket_handshake_with_unknown_serializer_gets_the_spec_error_reply() {
    let router = start_router().await;
    let mut tcp = tokio::net::TcpStream::connect(router.tcp)
        .await
        .expect("connect");
    tcp.write_all(&[0x7f, 0xf9, 0, 0]).await.expect("handshake");
    let mut reply = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut reply)
        .await
        .expect("reply");
    // Error 1: serializer unsupported (spec, "RawSocket Transport").
    assert_eq!(reply, [0x7f, 0x10, 0, 0]);
    router.shutdown().await;
}

#[tokio::test]
async fn oversized_rawsocket_frame_is_refused_and_the_connection_closed() {
    let router = start_router().await;
    let mut tcp = tokio::net::TcpStream::connect(router.tcp)
        .await
        .expect("connect");
    tcp.write_all(&[0x7f, 0xf1, 0, 0]).await.expect("handshake");
    let mut reply = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut reply)
        .await
        .expect("reply");
    // The router announced its limit in the handshake reply; send a header one byte over it.
    let limit = 1usize << (9 + (reply[1] >> 4));
    assert!(limit <= 1 << 20, "router limit {limit}");
    let too_big = (limit + 1) as u32;
    tcp.write_all(&[
        0,
        (too_big >> 16) as u8,
        (too_big >> 8) as u8,
        too_big as u8,
    ])
    .await
    .expect("header");
    // The router closes without reading the body: read until EOF.
    let mut sink = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut sink),
    )
    .await;
    assert!(read.is_ok(), "router closed the connection");
    router_still_serves(&router).await;
    router.shutdown().await;
}

#[tokio::test]
async fn oversized_websocket_message_closes_the_connection() {
    let router = start_router().await;
    let mut peer = RawPeer::join(&router, Via::WebSocketTcp, Serializer::Json).await;
    let mut big = b"[16,1,{},\"com.x\",[\"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    big.extend(b"\"]]");
    peer.send_raw(&big).await;
    assert!(peer.recv().await.is_none(), "connection closed");
    router_still_serves(&router).await;
    router.shutdown().await;
}

#[tokio::test]
async fn websocket_upgrade_with_only_foreign_subprotocols_is_refused() {
    let router = start_router().await;
    let mut tcp = tokio::net::TcpStream::connect(router.tcp)
        .await
        .expect("connect");
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: mqtt\r\n\r\n",
    )
    .await
    .expect("request");
    let mut buf = vec![0u8; 256];
    let n = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf)
        .await
        .expect("response");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    router.shutdown().await;
}
