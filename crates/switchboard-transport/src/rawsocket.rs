//! WAMP RawSocket (spec, "RawSocket Transport"): a 4-byte handshake that picks the serializer and
//! each side's maximum message length, then frames with a 4-byte header (message type, 24-bit
//! length), including PING/PONG: the peer's PINGs are answered, and with a [`Keepalive`] the
//! router sends its own and ends a connection whose peer stops answering.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use switchboard_proto::Serializer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder, Framed};

use super::{BoxedIo, Keepalive, Transport, TransportError};

/// The magic first octet of a RawSocket handshake; also how the universal listener tells RawSocket
/// from HTTP.
pub const MAGIC: u8 = 0x7f;

/// The largest message RawSocket can express: 2^24 - 1 bytes (the frame length is 24 bits).
pub const MAX_FRAME_BYTES: usize = (1 << 24) - 1;

/// Handshake error codes (spec, "RawSocket Transport", handshake error reply).
mod handshake_error {
    pub const SERIALIZER_UNSUPPORTED: u8 = 1;
    pub const MAX_LENGTH_UNACCEPTABLE: u8 = 2;
    pub const RESERVED_BITS_USED: u8 = 3;
}

/// Frame types in the first header octet.
const FRAME_REGULAR: u8 = 0;
const FRAME_PING: u8 = 1;
const FRAME_PONG: u8 = 2;

/// Converts a maximum message length to the handshake's exponent: the largest `n` with
/// `2^(9+n) <= limit`, clamped to `0..=15`.
fn length_exponent(limit: usize) -> u8 {
    let mut n = 0u8;
    while n < 15 && (1usize << (9 + n + 1)) <= limit {
        n += 1;
    }
    n
}

/// Runs the router side of the handshake on `io`, whose first octet (the magic 0x7F) has already been
/// read. Unsupported serializers and reserved bits get the spec's error reply and an error.
pub async fn accept(
    mut io: BoxedIo,
    max_message_bytes: usize,
    serializers: &[Serializer],
) -> Result<RawSocket, TransportError> {
    let mut rest = [0u8; 3];
    io.read_exact(&mut rest).await?;
    let [client_octet, reserved1, reserved2] = rest;
    let refuse = |code: u8| [MAGIC, code << 4, 0, 0];
    if reserved1 != 0 || reserved2 != 0 {
        io.write_all(&refuse(handshake_error::RESERVED_BITS_USED))
            .await?;
        return Err(TransportError::Protocol(
            "RawSocket handshake uses reserved octets".into(),
        ));
    }
    let serializer = match Serializer::from_rawsocket_id(client_octet & 0x0f) {
        Some(s) if serializers.contains(&s) => s,
        _ => {
            io.write_all(&refuse(handshake_error::SERIALIZER_UNSUPPORTED))
                .await?;
            return Err(TransportError::Protocol(format!(
                "RawSocket serializer {} not supported",
                client_octet & 0x0f
            )));
        }
    };
    let client_max = 1usize << (9 + (client_octet >> 4));
    if client_max < 512 {
        io.write_all(&refuse(handshake_error::MAX_LENGTH_UNACCEPTABLE))
            .await?;
        return Err(TransportError::Protocol(
            "RawSocket max length unacceptable".into(),
        ));
    }
    let our_max = max_message_bytes.min(MAX_FRAME_BYTES);
    let exponent = length_exponent(our_max);
    io.write_all(&[MAGIC, (exponent << 4) | serializer.rawsocket_id(), 0, 0])
        .await?;
    // We promised the peer 2^(9+exponent); enforce exactly that so both sides agree.
    let accept_limit = (1usize << (9 + exponent)).min(MAX_FRAME_BYTES);
    let mut framed = Framed::new(
        io,
        FrameCodec {
            limit: accept_limit,
        },
    );
    // tokio-util starts both buffers at 8 KiB; a router holds many mostly idle connections.
    *framed.read_buffer_mut() = BytesMut::with_capacity(SERVER_READ_BUFFER_BYTES);
    *framed.write_buffer_mut() = BytesMut::with_capacity(SERVER_WRITE_BUFFER_BYTES);
    Ok(RawSocket {
        framed,
        serializer,
        peer_max: client_max.min(MAX_FRAME_BYTES),
        keepalive: None,
        buffers: Some(BufferSizes {
            read: SERVER_READ_BUFFER_BYTES,
            write: SERVER_WRITE_BUFFER_BYTES,
        }),
    })
}

/// Initial read buffer of a router's connection: room for a burst of small messages; it grows
/// for larger bursts and frames, and shrinks back after a frame larger than this (see
/// [`RawSocket::release_buffers`]).
const SERVER_READ_BUFFER_BYTES: usize = 1024;
/// Initial write buffer of a router's connection: none until the first message, then what the
/// largest batch so far needed, until one outgrows [`SERVER_WRITE_BUFFER_KEEP_BYTES`].
const SERVER_WRITE_BUFFER_BYTES: usize = 0;
/// A write buffer that grew past this in a burst is replaced by an empty one once written out.
const SERVER_WRITE_BUFFER_KEEP_BYTES: usize = 16 * 1024;

/// The buffer sizes a router's connection returns to after bursts.
struct BufferSizes {
    read: usize,
    write: usize,
}

/// Runs the client side of the handshake (used by our client library and tests).
pub async fn connect(
    mut io: BoxedIo,
    serializer: Serializer,
    max_message_bytes: usize,
) -> Result<RawSocket, TransportError> {
    let exponent = length_exponent(max_message_bytes.min(MAX_FRAME_BYTES));
    io.write_all(&[MAGIC, (exponent << 4) | serializer.rawsocket_id(), 0, 0])
        .await?;
    let mut reply = [0u8; 4];
    io.read_exact(&mut reply).await?;
    if reply[0] != MAGIC {
        return Err(TransportError::Protocol("not a RawSocket peer".into()));
    }
    if reply[1] & 0x0f == 0 {
        return Err(TransportError::Protocol(format!(
            "RawSocket handshake refused with error {}",
            reply[1] >> 4
        )));
    }
    if reply[1] & 0x0f != serializer.rawsocket_id() {
        return Err(TransportError::Protocol(
            "RawSocket serializer mismatch".into(),
        ));
    }
    let peer_max = (1usize << (9 + (reply[1] >> 4))).min(MAX_FRAME_BYTES);
    let accept_limit = (1usize << (9 + exponent)).min(MAX_FRAME_BYTES);
    Ok(RawSocket {
        framed: Framed::new(
            io,
            FrameCodec {
                limit: accept_limit,
            },
        ),
        serializer,
        peer_max,
        keepalive: None,
        buffers: None,
    })
}

/// One RawSocket frame.
#[derive(Debug)]
enum Frame {
    Message(Bytes),
    Ping(Bytes),
    Pong,
}

/// The RawSocket frame codec: 1 octet type (5 reserved bits must be zero), 3 octets length.
struct FrameCodec {
    /// The largest frame we accept.
    limit: usize,
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = TransportError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, TransportError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let kind = src[0];
        let len = (usize::from(src[1]) << 16) | (usize::from(src[2]) << 8) | usize::from(src[3]);
        if kind & 0xf8 != 0 {
            return Err(TransportError::Protocol(
                "RawSocket frame uses reserved bits".into(),
            ));
        }
        if len > self.limit {
            return Err(TransportError::TooLarge {
                size: len,
                limit: self.limit,
            });
        }
        if src.len() < 4 + len {
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let payload = src.split_to(len).freeze();
        match kind & 0x07 {
            FRAME_REGULAR => Ok(Some(Frame::Message(payload))),
            FRAME_PING => Ok(Some(Frame::Ping(payload))),
            FRAME_PONG => Ok(Some(Frame::Pong)),
            other => Err(TransportError::Protocol(format!(
                "RawSocket frame type {other} is reserved"
            ))),
        }
    }
}

/// What we write: a message, a PONG answering a PING, or a keepalive PING of ours.
enum OutFrame {
    Message(Bytes),
    Pong(Bytes),
    Ping(Bytes),
}

impl Encoder<OutFrame> for FrameCodec {
    type Error = TransportError;

    fn encode(&mut self, item: OutFrame, dst: &mut BytesMut) -> Result<(), TransportError> {
        let (kind, payload) = match item {
            OutFrame::Message(p) => (FRAME_REGULAR, p),
            OutFrame::Pong(p) => (FRAME_PONG, p),
            OutFrame::Ping(p) => (FRAME_PING, p),
        };
        if payload.len() > MAX_FRAME_BYTES {
            return Err(TransportError::TooLarge {
                size: payload.len(),
                limit: MAX_FRAME_BYTES,
            });
        }
        let len = payload.len() as u32;
        dst.reserve(4 + payload.len());
        dst.put_u8(kind);
        dst.put_slice(&len.to_be_bytes()[1..]);
        dst.put_slice(&payload);
        Ok(())
    }
}

/// A WAMP connection over RawSocket.
pub struct RawSocket {
    framed: Framed<BoxedIo, FrameCodec>,
    serializer: Serializer,
    peer_max: usize,
    keepalive: Option<KeepaliveState>,
    /// The sizes the buffers of a router's connection shrink back to; `None` on a client's
    /// connection, which keeps tokio-util's buffers.
    buffers: Option<BufferSizes>,
}

/// Keepalive bookkeeping, owned by the connection's task.
struct KeepaliveState {
    settings: Keepalive,
    /// When the next PING is due, or (while one is outstanding) when its PONG is overdue.
    next: tokio::time::Instant,
    awaiting_pong: bool,
}

impl RawSocket {
    /// The same connection, sending a PING every `keepalive.interval` and failing when one is not
    /// answered within `keepalive.timeout` (spec, "RawSocket Transport": a peer must answer PING
    /// with PONG).
    pub fn with_keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive.map(|settings| KeepaliveState {
            next: tokio::time::Instant::now() + settings.interval,
            settings,
            awaiting_pong: false,
        });
        self
    }

    /// Sends the next PING, or fails the connection when the last one went unanswered.
    async fn keepalive_due(&mut self) -> Result<(), TransportError> {
        let Some(k) = &mut self.keepalive else {
            return Ok(());
        };
        if k.awaiting_pong {
            return Err(TransportError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no PONG within {:?} (auto_ping_timeout)",
                    k.settings.timeout
                ),
            )));
        }
        k.awaiting_pong = true;
        k.next = tokio::time::Instant::now() + k.settings.timeout;
        let payload = Bytes::from(vec![b'p'; k.settings.payload_bytes]);
        self.framed.send(OutFrame::Ping(payload)).await
    }

    /// Gives back what a burst made the buffers grow to: the read buffer after a frame of
    /// `frame_len` bytes larger than its usual size (the frame shared its allocation), the write
    /// buffer once written out.
    fn release_buffers(&mut self, frame_len: usize) {
        let Some(sizes) = &self.buffers else {
            return;
        };
        let read = self.framed.read_buffer_mut();
        if frame_len > sizes.read && read.len() <= sizes.read {
            let mut fresh = BytesMut::with_capacity(sizes.read);
            fresh.extend_from_slice(read);
            *read = fresh;
        }
        let write = self.framed.write_buffer_mut();
        if write.is_empty() && write.capacity() > SERVER_WRITE_BUFFER_KEEP_BYTES {
            *write = BytesMut::with_capacity(sizes.write);
        }
    }
}

impl Transport for RawSocket {
    fn serializer(&self) -> Serializer {
        self.serializer
    }

    fn peer_max_message_bytes(&self) -> Option<usize> {
        Some(self.peer_max)
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        loop {
            // Cancel-safe: the codec keeps partial frames, and the keepalive deadline lives in
            // `self`, so a dropped `recv` loses nothing.
            let frame = match &self.keepalive {
                Some(k) => {
                    let due = k.next;
                    tokio::select! {
                        frame = self.framed.next() => frame,
                        _ = tokio::time::sleep_until(due) => {
                            self.keepalive_due().await?;
                            continue;
                        }
                    }
                }
                None => self.framed.next().await,
            };
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(Frame::Message(m))) => {
                    self.release_buffers(m.len());
                    return Ok(Some(m));
                }
                Some(Ok(Frame::Ping(p))) => self.framed.send(OutFrame::Pong(p)).await?,
                Some(Ok(Frame::Pong)) => {
                    if let Some(k) = &mut self.keepalive
                        && k.awaiting_pong
                    {
                        k.awaiting_pong = false;
                        k.next = tokio::time::Instant::now() + k.settings.interval;
                    }
                }
            }
        }
    }

    async fn feed(&mut self, msg: Bytes) -> Result<(), TransportError> {
        self.framed.feed(OutFrame::Message(msg)).await
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        SinkExt::<OutFrame>::flush(&mut self.framed).await?;
        self.release_buffers(0);
        Ok(())
    }

    async fn close(&mut self) {
        let _ = SinkExt::<OutFrame>::flush(&mut self.framed).await;
        let _ = self.framed.get_mut().shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_exponent_picks_the_largest_power_not_above_the_limit() {
        assert_eq!(length_exponent(512), 0);
        assert_eq!(length_exponent(1024 * 1024), 11);
        assert_eq!(length_exponent(usize::MAX), 15);
        assert_eq!(length_exponent(100), 0);
    }

    #[test]
    fn frames_over_the_limit_are_refused_before_buffering() {
        let mut codec = FrameCodec { limit: 1024 };
        let mut buf = BytesMut::from(&[0u8, 0x01, 0x00, 0x00][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(TransportError::TooLarge { size: 65536, .. })
        ));
    }

    #[tokio::test]
    async fn a_router_connection_starts_small_and_shrinks_back_after_a_large_message() {
        let (router_io, client_io) = tokio::io::duplex(256 * 1024);
        let client = tokio::spawn(connect(Box::new(client_io), Serializer::Json, 1024 * 1024));
        let mut router_io: BoxedIo = Box::new(router_io);
        let mut magic = [0u8; 1];
        router_io.read_exact(&mut magic).await.unwrap();
        let mut router = accept(router_io, 1024 * 1024, &[Serializer::Json])
            .await
            .unwrap();
        let mut client = client.await.unwrap().unwrap();
        assert!(router.framed.read_buffer().capacity() <= SERVER_READ_BUFFER_BYTES);
        assert_eq!(router.framed.write_buffer().capacity(), 0);

        let large = Bytes::from(vec![b'x'; 64 * 1024]);
        client.feed(large.clone()).await.unwrap();
        client.flush().await.unwrap();
        assert_eq!(router.recv().await.unwrap(), Some(large.clone()));
        assert!(router.framed.read_buffer().capacity() <= SERVER_READ_BUFFER_BYTES);

        router.feed(large.clone()).await.unwrap();
        router.flush().await.unwrap();
        assert_eq!(client.recv().await.unwrap(), Some(large));
        assert_eq!(router.framed.write_buffer().capacity(), 0);

        // Small messages still flow both ways after the shrink.
        client.feed(Bytes::from_static(b"[1]")).await.unwrap();
        client.flush().await.unwrap();
        assert_eq!(
            router.recv().await.unwrap(),
            Some(Bytes::from_static(b"[1]"))
        );
    }

    #[test]
    fn reserved_frame_bits_are_a_protocol_error() {
        let mut codec = FrameCodec { limit: 1024 };
        let mut buf = BytesMut::from(&[0x08u8, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(TransportError::Protocol(_))
        ));
    }
}
