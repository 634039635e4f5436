//! WAMP over WebSocket (spec, "WebSocket Transport"): subprotocols `wamp.2.json` (text frames),
//! `wamp.2.msgpack` and `wamp.2.cbor` (binary frames), with permessage-deflate (RFC 7692) when the
//! client offers it. Framing, masking, ping/pong and compression are yawc's; we only negotiate the
//! subprotocol and map frames to messages.

use std::future::Future;

use bytes::Bytes;
use futures::SinkExt;
use hyper::Request;
use hyper::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use switchboard_proto::Serializer;
use tokio::io::{AsyncRead, AsyncWrite};
use yawc::close::CloseCode;
use yawc::{Frame, OpCode, Options, WebSocket};

use super::{Keepalive, Transport, TransportError};

/// Read buffer of a client connection.
const CLIENT_READ_BUFFER_BYTES: usize = 16 * 1024;
/// Initial read buffer of a server connection: room for a few small messages. It grows for
/// bursts and large frames (and stays at a burst's size while the connection is busy), and
/// shrinks back after a frame larger than this.
const SERVER_READ_BUFFER_BYTES: usize = 1024;
/// Initial write buffer of a server connection: none, so that it holds what the largest batch
/// written so far needed (for an idle session, its WELCOME) rather than a fixed size.
const SERVER_WRITE_BUFFER_BYTES: usize = 0;

/// permessage-deflate parameters (RFC 7692 §7.1), seen from the side that configures them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deflate {
    /// The largest window we compress with (9..=15); `None` for zlib's 15.
    pub own_max_window_bits: Option<u8>,
    /// The largest window we ask the peer to compress with.
    pub peer_max_window_bits: Option<u8>,
    /// Reset our compression context after every message.
    pub own_no_context_takeover: bool,
    /// Ask the peer to reset its context after every message.
    pub peer_no_context_takeover: bool,
}

/// Everything configurable about one WebSocket endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketSettings {
    /// The largest message accepted, in bytes.
    pub max_message_bytes: usize,
    /// The largest single frame accepted, in bytes; `None` means `max_message_bytes`.
    pub max_frame_bytes: Option<usize>,
    /// Split outgoing messages into frames of at most this many bytes.
    pub fragment_bytes: Option<usize>,
    /// permessage-deflate, when the peer offers (server) or to offer (client); `None` disables it.
    pub compression: Option<Deflate>,
    /// Keepalive pings.
    pub keepalive: Option<Keepalive>,
    /// Refuse an upgrade that offers no subprotocol (server side; else such a client gets JSON).
    pub require_subprotocol: bool,
}

impl WebSocketSettings {
    /// Default settings: the size limit, permessage-deflate with zlib's defaults, no keepalive.
    pub fn new(max_message_bytes: usize, compression: bool) -> Self {
        Self {
            max_message_bytes,
            max_frame_bytes: None,
            fragment_bytes: None,
            compression: compression.then(Deflate::default),
            keepalive: None,
            require_subprotocol: false,
        }
    }

    /// The yawc options for these settings. Messages below 256 bytes are sent uncompressed:
    /// deflating them costs more CPU than the bytes saved.
    fn options(&self, role: yawc::Role) -> Options {
        // yawc's limits are exclusive: one more than the largest size allowed.
        let message = self.max_message_bytes.saturating_add(1);
        let frame = self
            .max_frame_bytes
            .map_or(message, |f| f.min(self.max_message_bytes).saturating_add(1));
        let mut options = Options::default()
            .with_max_payload_read(frame)
            .with_max_read_buffer(message)
            .with_no_delay();
        if let Some(size) = self.fragment_bytes.filter(|s| *s > 0) {
            options = options.with_max_fragment_size(size);
        }
        options = match role {
            // A client's connection starts from the handshake's leftover bytes; without an
            // explicit capacity its reads stay tiny (one frame or less per syscall, seen with strace).
            yawc::Role::Client => options.with_read_buffer_capacity(CLIENT_READ_BUFFER_BYTES),
            // A router holds many mostly idle connections: small buffers that grow for bursts and
            // large frames and shrink back (yawc's default of 8 KiB each made up most of an idle
            // session's memory; `bench/results/2026-12-08-idle-memory.md` measures the sizes).
            yawc::Role::Server => options
                .with_read_buffer_capacity(SERVER_READ_BUFFER_BYTES)
                .with_write_buffer_capacity(SERVER_WRITE_BUFFER_BYTES),
        };
        let Some(deflate) = &self.compression else {
            return options.without_compression();
        };
        let mut options = options
            .with_low_latency_compression()
            .with_compression_threshold(256);
        let (server_bits, client_bits, server_reset, client_reset) = match role {
            yawc::Role::Server => (
                deflate.own_max_window_bits,
                deflate.peer_max_window_bits,
                deflate.own_no_context_takeover,
                deflate.peer_no_context_takeover,
            ),
            yawc::Role::Client => (
                deflate.peer_max_window_bits,
                deflate.own_max_window_bits,
                deflate.peer_no_context_takeover,
                deflate.own_no_context_takeover,
            ),
        };
        if let Some(bits) = server_bits {
            options = options.with_server_max_window_bits(bits);
        }
        if let Some(bits) = client_bits {
            options = options.with_client_max_window_bits(bits);
        }
        if server_reset {
            options = options.server_no_context_takeover();
        }
        if client_reset {
            options = options.client_no_context_takeover();
        }
        options
    }
}

/// Picks the serializer for a WebSocket upgrade from the client's `Sec-WebSocket-Protocol` offer: the
/// first `wamp.2.*` protocol the client lists that `allowed` contains.
///
/// `Ok(None)` means the client offered no subprotocol at all; such a client gets JSON without a
/// `Sec-WebSocket-Protocol` header in the response (what plain WebSocket tools expect). `Err` means
/// it offered only protocols we do not speak.
pub fn negotiate_subprotocol<'a>(
    offers: impl Iterator<Item = &'a HeaderValue>,
    allowed: &[Serializer],
) -> Result<Option<Serializer>, String> {
    let mut offered_any = false;
    for value in offers {
        let Ok(value) = value.to_str() else { continue };
        for proto in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            offered_any = true;
            if let Some(s) = Serializer::from_subprotocol(proto)
                && allowed.contains(&s)
            {
                return Ok(Some(s));
            }
        }
    }
    if offered_any {
        Err(
            "none of the offered WebSocket subprotocols is a WAMP serializer this transport speaks"
                .into(),
        )
    } else {
        Ok(None)
    }
}

/// Why an HTTP request could not be upgraded.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The client offered no subprotocol we speak.
    #[error("{0}")]
    NoSubprotocol(String),
    /// The request is not a valid WebSocket upgrade.
    #[error("invalid WebSocket upgrade: {0}")]
    Handshake(String),
}

/// A WebSocket transport on a connection hyper upgraded (the server side).
pub type ServerTransport = WebSocketTransport<yawc::HttpStream>;

/// An accepted upgrade: the `101 Switching Protocols` response to send, and a future that yields
/// the transport once hyper hands the connection over.
pub struct Accepted<F> {
    /// The response to send.
    pub response: hyper::Response<http_body_util::Empty<Bytes>>,
    /// Completes after the response went out.
    pub transport: F,
}

/// The server side of an upgrade: answers `request`, negotiating the WAMP subprotocol and
/// permessage-deflate.
pub fn accept<B>(
    request: &mut Request<B>,
    allowed: &[Serializer],
    settings: &WebSocketSettings,
) -> Result<
    Accepted<impl Future<Output = Result<ServerTransport, TransportError>> + Send + 'static>,
    UpgradeError,
> {
    let negotiated = negotiate_subprotocol(
        request.headers().get_all(SEC_WEBSOCKET_PROTOCOL).iter(),
        allowed,
    )
    .map_err(UpgradeError::NoSubprotocol)?;
    if negotiated.is_none() && settings.require_subprotocol {
        return Err(UpgradeError::NoSubprotocol(
            "the client offered no WebSocket subprotocol, and this endpoint requires one of \
             wamp.2.json, wamp.2.msgpack, wamp.2.cbor"
                .into(),
        ));
    }
    let serializer = negotiated.unwrap_or(Serializer::Json);
    let (mut response, upgrade) =
        WebSocket::upgrade_with_options(request, settings.options(yawc::Role::Server))
            .map_err(|e| UpgradeError::Handshake(e.to_string()))?;
    if let Some(s) = negotiated {
        response.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(s.subprotocol()),
        );
    }
    let keepalive = settings.keepalive.clone();
    let transport = async move {
        let ws = upgrade
            .await
            .map_err(|e| TransportError::Protocol(format!("WebSocket upgrade failed: {e}")))?;
        Ok(WebSocketTransport::new(ws, serializer, keepalive))
    };
    Ok(Accepted {
        response,
        transport,
    })
}

/// The server side over a connection whose HTTP upgrade happened elsewhere (a proxy in front of
/// the router, a fuzzer feeding raw frames): no handshake here; `extensions` is the
/// `Sec-WebSocket-Extensions` value both sides agreed on (permessage-deflate), if any.
pub fn server_over<S>(
    io: S,
    serializer: Serializer,
    extensions: Option<&str>,
    settings: &WebSocketSettings,
) -> Result<WebSocketTransport<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let ws = WebSocket::from_stream_with_extensions(
        io,
        yawc::Role::Server,
        extensions,
        settings.options(yawc::Role::Server),
    )
    .map_err(|e| TransportError::Protocol(format!("WebSocket setup failed: {e}")))?;
    Ok(WebSocketTransport::new(
        ws,
        serializer,
        settings.keepalive.clone(),
    ))
}

/// The client side: runs the opening handshake on `io` for `url`, offering exactly one WAMP
/// subprotocol (yawc does not report which one a server picked, so we never offer a choice).
pub async fn connect<S>(
    url: &str,
    io: S,
    serializer: Serializer,
    settings: &WebSocketSettings,
) -> Result<WebSocketTransport<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let url: url::Url = url
        .parse()
        .map_err(|e| TransportError::Protocol(format!("bad WebSocket URL {url:?}: {e}")))?;
    let request =
        yawc::HttpRequest::builder().header(SEC_WEBSOCKET_PROTOCOL, serializer.subprotocol());
    let ws =
        WebSocket::handshake_with_request(url, io, settings.options(yawc::Role::Client), request)
            .await
            .map_err(|e| TransportError::Protocol(format!("WebSocket handshake failed: {e}")))?;
    Ok(WebSocketTransport::new(
        ws,
        serializer,
        settings.keepalive.clone(),
    ))
}

/// A WAMP connection over WebSocket.
pub struct WebSocketTransport<S> {
    ws: WebSocket<S>,
    serializer: Serializer,
    /// The close code our closing handshake will carry: 1000, or 1001 when the peer stopped
    /// answering pings.
    close_code: CloseCode,
    /// Whether our side's Close frame is already on its way: yawc answers the peer's Close with
    /// one, and sends one with the RFC 6455 §7.4.1 code when reading fails. RFC 6455 §5.5.1: one
    /// Close frame per side, so [`Transport::close`] then only closes the connection.
    close_sent: bool,
    keepalive: Option<KeepaliveState>,
}

/// Keepalive bookkeeping, owned by the connection's task.
struct KeepaliveState {
    settings: Keepalive,
    /// When the next ping is due, or (while one is outstanding) when its pong is overdue.
    next: tokio::time::Instant,
    awaiting_pong: bool,
}

impl<S> WebSocketTransport<S> {
    fn new(ws: WebSocket<S>, serializer: Serializer, keepalive: Option<Keepalive>) -> Self {
        Self {
            ws,
            serializer,
            close_code: CloseCode::Normal,
            close_sent: false,
            keepalive: keepalive.map(|settings| KeepaliveState {
                next: tokio::time::Instant::now() + settings.interval,
                settings,
                awaiting_pong: false,
            }),
        }
    }
}

/// What woke the receive loop.
enum Woken {
    Frame(Result<Frame, yawc::WebSocketError>),
    KeepaliveDue,
}

fn ws_error(e: yawc::WebSocketError) -> TransportError {
    match e {
        yawc::WebSocketError::FrameTooLarge => {
            TransportError::Protocol("WebSocket message exceeds the maximum message size".into())
        }
        other => match other.as_io_error() {
            Some(io) => TransportError::Io(std::io::Error::new(io.kind(), io.to_string())),
            None => TransportError::Protocol(other.to_string()),
        },
    }
}

impl<S> WebSocketTransport<S>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    /// Sends the next ping, or fails the connection when the last one went unanswered.
    async fn keepalive_due(&mut self) -> Result<(), TransportError> {
        let Some(k) = &mut self.keepalive else {
            return Ok(());
        };
        if k.awaiting_pong {
            self.close_code = CloseCode::Away;
            return Err(TransportError::Protocol(format!(
                "no pong within {:?} (auto_ping_timeout)",
                k.settings.timeout
            )));
        }
        k.awaiting_pong = true;
        k.next = tokio::time::Instant::now() + k.settings.timeout;
        let payload = vec![b'p'; k.settings.payload_bytes.min(125)];
        self.ws.send(Frame::ping(payload)).await.map_err(ws_error)
    }
}

impl<S> Transport for WebSocketTransport<S>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    fn serializer(&self) -> Serializer {
        self.serializer
    }

    fn peer_max_message_bytes(&self) -> Option<usize> {
        None
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        loop {
            // Cancel-safe: yawc keeps partial frames in the connection, and the keepalive deadline
            // lives in `self`, so a dropped `recv` loses nothing.
            let woken = match &self.keepalive {
                Some(k) => {
                    let due = k.next;
                    tokio::select! {
                        frame = self.ws.next_frame() => Woken::Frame(frame),
                        _ = tokio::time::sleep_until(due) => Woken::KeepaliveDue,
                    }
                }
                None => Woken::Frame(self.ws.next_frame().await),
            };
            let next = match woken {
                Woken::Frame(frame) => frame,
                Woken::KeepaliveDue => {
                    self.keepalive_due().await?;
                    continue;
                }
            };
            let frame = match next {
                Ok(frame) => frame,
                Err(yawc::WebSocketError::ConnectionClosed) => return Ok(None),
                Err(e) => {
                    // yawc has queued a Close frame with the code RFC 6455 §7.4.1 names for it.
                    self.close_sent = true;
                    return Err(ws_error(e));
                }
            };
            match frame.opcode() {
                OpCode::Text | OpCode::Binary => return Ok(Some(frame.into_payload())),
                OpCode::Close => {
                    // yawc has queued the answering Close frame.
                    self.close_sent = true;
                    return Ok(None);
                }
                OpCode::Pong => {
                    if let Some(k) = &mut self.keepalive
                        && k.awaiting_pong
                    {
                        k.awaiting_pong = false;
                        k.next = tokio::time::Instant::now() + k.settings.interval;
                    }
                }
                // yawc answers pings itself.
                _ => {}
            }
        }
    }

    async fn feed(&mut self, msg: Bytes) -> Result<(), TransportError> {
        let frame = if self.serializer.is_text() {
            Frame::text(msg)
        } else {
            Frame::binary(msg)
        };
        self.ws.feed(frame).await.map_err(ws_error)
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        SinkExt::<Frame>::flush(&mut self.ws)
            .await
            .map_err(ws_error)
    }

    async fn close(&mut self) {
        if self.close_sent {
            // Get yawc's queued Close frame out (readiness writes the frames yawc owes the peer),
            // then close the connection without a second one.
            let _ = futures::future::poll_fn(|cx| {
                futures::Sink::<Frame>::poll_ready(std::pin::Pin::new(&mut self.ws), cx)
            })
            .await;
        } else {
            let reason: &[u8] = match self.close_code {
                CloseCode::Away => b"no pong within the ping timeout",
                _ => b"",
            };
            let _ = self.ws.send(Frame::close(self.close_code, reason)).await;
        }
        let _ = SinkExt::<Frame>::close(&mut self.ws).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn first_supported_offer_wins() {
        let offers = [hv("wamp.2.msgpack.batched, wamp.2.cbor, wamp.2.json")];
        let got = negotiate_subprotocol(offers.iter(), &Serializer::ALL);
        assert_eq!(got, Ok(Some(Serializer::Cbor)));
    }

    #[test]
    fn no_offer_means_json_without_header() {
        assert_eq!(negotiate_subprotocol([].iter(), &Serializer::ALL), Ok(None));
    }

    #[test]
    fn only_foreign_offers_are_refused() {
        let offers = [hv("mqtt")];
        assert!(negotiate_subprotocol(offers.iter(), &Serializer::ALL).is_err());
    }
}
