//! Bytes <-> WAMP messages: the transports a WAMP session runs over, for routers and clients alike.
//!
//! A session sees a transport only through [`Transport`]: whole WAMP messages in and out, already
//! framed, in one serializer fixed at connection time. The WebSocket ([`websocket`]) and RawSocket
//! ([`rawsocket`]) implementations hide their libraries and framing behind it; the router's side of
//! an in-process session implements it too (the router's `session::InlineSession`). Accepting
//! connections (and telling the two apart on one port) is the router's job; see its `listener`
//! module.

pub mod rawsocket;
pub mod websocket;

use std::future::Future;

use bytes::Bytes;
use switchboard_proto::Serializer;
use tokio::io::{AsyncRead, AsyncWrite};

/// The default limit on one WAMP message, in bytes, for both transports (Crossbar's default for
/// `max_message_size` is 1 MiB as well).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Pings the router sends to find dead peers: one every `interval`; no answer within `timeout`
/// ends the connection (WebSocket ping/pong frames, RawSocket PING/PONG frames).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keepalive {
    /// Time between pings.
    pub interval: std::time::Duration,
    /// Time allowed for the answer.
    pub timeout: std::time::Duration,
    /// Ping payload size in bytes (at most 125 on WebSocket).
    pub payload_bytes: usize,
}

/// Why a transport stopped working.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the framing rules of the transport.
    #[error("transport protocol error: {0}")]
    Protocol(String),
    /// The peer sent a message larger than the negotiated maximum.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The size the peer announced or sent.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
}

/// A connection that carries whole WAMP messages in one serializer.
///
/// `recv` must be cancel-safe: the session task races it against its outbox in `select!`.
pub trait Transport: Send + 'static {
    /// The serializer negotiated for this connection.
    fn serializer(&self) -> Serializer;

    /// The largest message the peer accepts from us, if it told us (RawSocket does).
    fn peer_max_message_bytes(&self) -> Option<usize>;

    /// The next message, or `None` when the peer closed the connection.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Bytes>, TransportError>> + Send;

    /// Queues one message for sending; [`Transport::flush`] pushes it to the socket.
    fn feed(&mut self, msg: Bytes) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Writes everything queued to the socket.
    fn flush(&mut self) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Closes the connection (WebSocket close handshake, or shutting the socket down).
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// Any byte stream a transport can run over: TCP, Unix, (later) TLS, or a sniffed prefix of one.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed byte stream, so that one transport implementation serves every socket type.
pub type BoxedIo = Box<dyn Io>;
