//! RFC 6455 §5.5.1 and §7: each side sends one Close frame, then the TCP connection closes. Seen
//! on the wire (a WebSocket peer written out here, so that every frame the router sends is
//! visible) for each way a WebSocket session ends.

mod common;

use std::time::Duration;

use common::start_router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;

/// A WebSocket connection after the upgrade to `wamp.2.json`, seen frame by frame.
struct Wire {
    tcp: TcpStream,
}

impl Wire {
    async fn open(addr: std::net::SocketAddr) -> Wire {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let request = "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wamp.2.json\r\n\r\n";
        tcp.write_all(request.as_bytes()).await.expect("upgrade");
        let mut response = Vec::new();
        while !response.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tcp.read_exact(&mut byte).await.expect("response");
            response.push(byte[0]);
        }
        assert!(
            response.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&response)
        );
        Wire { tcp }
    }

    /// Sends one masked frame (clients mask, RFC 6455 §5.3).
    async fn send(&mut self, first_octet: u8, payload: &[u8]) {
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut frame = vec![first_octet];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend((n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend((n as u64).to_be_bytes());
            }
        }
        frame.extend(mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&frame).await.expect("send frame");
    }

    async fn send_text(&mut self, text: &str) {
        self.send(0x80 | OP_TEXT, text.as_bytes()).await;
    }

    /// Every frame the router sends until it closes the TCP connection: opcode and, for Close
    /// frames, the status code.
    async fn frames_until_eof(&mut self) -> Vec<(u8, Option<u16>)> {
        let mut bytes = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), self.tcp.read_to_end(&mut bytes))
            .await
            .expect("the router closes the connection")
            .expect("read");
        let mut frames = Vec::new();
        let mut rest = &bytes[..];
        while rest.len() >= 2 {
            let opcode = rest[0] & 0x0f;
            let (len, header) = match rest[1] & 0x7f {
                126 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
                127 => (
                    u64::from_be_bytes(rest[2..10].try_into().expect("8 bytes")) as usize,
                    10,
                ),
                n => (usize::from(n), 2),
            };
            let payload = &rest[header..header + len];
            let code = (opcode == OP_CLOSE && payload.len() >= 2)
                .then(|| u16::from_be_bytes([payload[0], payload[1]]));
            frames.push((opcode, code));
            rest = &rest[header + len..];
        }
        frames
    }
}

fn closes(frames: &[(u8, Option<u16>)]) -> Vec<Option<u16>> {
    frames
        .iter()
        .filter(|(op, _)| *op == OP_CLOSE)
        .map(|(_, code)| *code)
        .collect()
}

const HELLO: &str = r#"[1, "realm1", {"roles": {"caller": {}}}]"#;

#[tokio::test]
async fn every_way_a_websocket_session_ends_sends_exactly_one_close_frame() {
    let router = start_router().await;

    // The client closes: the router answers with one Close 1000.
    let mut wire = Wire::open(router.tcp).await;
    wire.send(0x80 | OP_CLOSE, &1000u16.to_be_bytes()).await;
    assert_eq!(closes(&wire.frames_until_eof().await), vec![Some(1000)]);

    // A framing error (a reserved opcode): one Close 1003, not a second one after it.
    let mut wire = Wire::open(router.tcp).await;
    wire.send(0x80 | 0x3, b"").await;
    assert_eq!(closes(&wire.frames_until_eof().await), vec![Some(1003)]);

    // A message over the size limit: one Close 1009.
    let mut wire = Wire::open(router.tcp).await;
    wire.send_text(&"x".repeat(2 * 1024 * 1024)).await;
    assert_eq!(closes(&wire.frames_until_eof().await), vec![Some(1009)]);

    // A WAMP protocol violation: ABORT, then one Close.
    let mut wire = Wire::open(router.tcp).await;
    wire.send_text("[\"not a message\"]").await;
    let frames = wire.frames_until_eof().await;
    assert_eq!(frames.first().map(|f| f.0), Some(OP_TEXT), "{frames:?}");
    assert_eq!(closes(&frames), vec![Some(1000)]);

    // GOODBYE from the client: the GOODBYE reply, then one Close.
    let mut wire = Wire::open(router.tcp).await;
    wire.send_text(HELLO).await;
    wire.send_text(r#"[6, {}, "wamp.close.close_realm"]"#).await;
    let frames = wire.frames_until_eof().await;
    assert_eq!(closes(&frames), vec![Some(1000)], "{frames:?}");

    // The router shuts down: GOODBYE, then one Close.
    let mut wire = Wire::open(router.tcp).await;
    wire.send_text(HELLO).await;
    let shutdown = tokio::spawn(router.shutdown());
    let frames = wire.frames_until_eof().await;
    assert_eq!(closes(&frames), vec![Some(1000)], "{frames:?}");
    shutdown.await.expect("shutdown");
}
