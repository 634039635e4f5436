//! WAMP over HTTP long-poll (the WAMP spec's Advanced Profile transport; Crossbar's `longpoll`
//! web path): a browser without WebSocket runs a session over plain HTTP POSTs.
//!
//! `POST <path>/open` with `{"protocols": [...]}` creates a transport and answers
//! `{"protocol", "transport": <id>}`; then `<path>/<id>/send` carries a message (or a batch) to
//! the router, `<path>/<id>/receive` waits up to `request_timeout` for what the router sends
//! (200 with the message or batch, or empty when nothing came, where Crossbar holds the request
//! until something comes), and `<path>/<id>/close` ends it. `send` and `close` answer 204 No
//! Content, as Crossbar does and Autobahn|JS requires (the spec's text says "202 (no content)",
//! and Autobahn|JS refuses a 202). Behind that, the session runs exactly as over a socket ([`session::run`]) on a
//! [`Transport`] made of two channels. A transport without requests for `session_timeout` is
//! closed like a lost connection (its testaments fire). Sessions are anonymous, as on Crossbar's
//! long-poll path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rand::Rng as _;
use switchboard_proto::Serializer;
use switchboard_transport::{Transport, TransportError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{ConnectionInfo, EndpointAuth};
use crate::config::LongPollPathConfig;
use crate::session::{self, SessionConfig};
use crate::web::{self, HttpBody};

/// The largest request body read (a batch of messages).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Messages from the client not yet read by its session.
const INCOMING_CAPACITY: usize = 256;

/// One long-poll path.
pub struct LongPoll {
    /// `None`: hold a `receive` until a message comes.
    request_timeout: Option<Duration>,
    /// `None`: never close an idle transport.
    session_timeout: Option<Duration>,
    debug_transport_id: Option<String>,
    queue_limit: usize,
    auth: Arc<EndpointAuth>,
    transports: Mutex<HashMap<String, Arc<Channel>>>,
}

impl std::fmt::Debug for LongPoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LongPoll")
            .field("request_timeout", &self.request_timeout)
            .field("session_timeout", &self.session_timeout)
            .finish_non_exhaustive()
    }
}

/// The HTTP side of one transport.
struct Channel {
    serializer: Serializer,
    batched: bool,
    to_session: mpsc::Sender<Bytes>,
    from_session: tokio::sync::Mutex<mpsc::Receiver<Bytes>>,
    closed: CancellationToken,
    last_request: Mutex<Instant>,
    /// `receive` requests waiting now: a client waiting for a message is not idle.
    receiving: std::sync::atomic::AtomicUsize,
}

impl Channel {
    fn touch(&self) {
        *self
            .last_request
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_request
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed()
    }
}

/// The session's side of one transport.
struct LongPollTransport {
    serializer: Serializer,
    incoming: mpsc::Receiver<Bytes>,
    outgoing: mpsc::Sender<Bytes>,
    closed: CancellationToken,
}

fn gone() -> TransportError {
    TransportError::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the long-poll transport is closed",
    ))
}

impl Transport for LongPollTransport {
    fn serializer(&self) -> Serializer {
        self.serializer
    }

    fn peer_max_message_bytes(&self) -> Option<usize> {
        None
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        // Both branches are cancel-safe, as the session's select! needs.
        tokio::select! {
            msg = self.incoming.recv() => Ok(msg),
            () = self.closed.cancelled() => Ok(None),
        }
    }

    async fn feed(&mut self, msg: Bytes) -> Result<(), TransportError> {
        tokio::select! {
            sent = self.outgoing.send(msg) => sent.map_err(|_| gone()),
            () = self.closed.cancelled() => Err(gone()),
        }
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    async fn close(&mut self) {
        self.closed.cancel();
    }
}

/// The subprotocols offered, each with its serializer and whether it batches.
const PROTOCOLS: [(&str, Serializer, bool); 6] = [
    ("wamp.2.json", Serializer::Json, false),
    ("wamp.2.json.batched", Serializer::Json, true),
    ("wamp.2.msgpack", Serializer::MsgPack, false),
    ("wamp.2.msgpack.batched", Serializer::MsgPack, true),
    ("wamp.2.cbor", Serializer::Cbor, false),
    ("wamp.2.cbor.batched", Serializer::Cbor, true),
];

impl LongPoll {
    /// The path's transports, from its config.
    pub fn new(config: &LongPollPathConfig) -> Self {
        let o = &config.options;
        Self {
            request_timeout: Some(o.request_timeout.unwrap_or(10))
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            session_timeout: Some(o.session_timeout.unwrap_or(30))
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            debug_transport_id: o.debug_transport_id.clone().filter(|id| !id.is_empty()),
            queue_limit: o
                .queue_limit_messages
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(100)
                .max(1),
            auth: Arc::new(EndpointAuth::default()),
            transports: Mutex::new(HashMap::new()),
        }
    }

    /// Answers one request below the path (`rel` is what follows it: `/open`, `/<id>/send`, ...).
    pub async fn serve(
        self: &Arc<Self>,
        req: Request<Incoming>,
        rel: &str,
        conn: ConnectionInfo,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Response<HttpBody> {
        let cors = web::CorsNoCache::of(req.headers());
        let mut response = if req.method() == Method::OPTIONS {
            let mut r = web::text(StatusCode::OK, "");
            r.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST,OPTIONS"),
            );
            r
        } else if req.method() != Method::POST {
            web::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "long-poll requests are POSTs\n",
            )
        } else {
            let parts: Vec<&str> = rel.trim_matches('/').split('/').collect();
            match parts.as_slice() {
                ["open"] => self.open(req, conn, sessions, tracker).await,
                [id, action] => match self.channel(id) {
                    None => web::text(StatusCode::NOT_FOUND, "no such long-poll transport\n"),
                    Some(channel) => {
                        channel.touch();
                        match *action {
                            "send" => send(&channel, req).await,
                            "receive" => self.receive(id, &channel).await,
                            "close" => {
                                channel.closed.cancel();
                                self.forget(id, &channel);
                                web::text(StatusCode::NO_CONTENT, "")
                            }
                            _ => web::text(StatusCode::NOT_FOUND, "not found\n"),
                        }
                    }
                },
                _ => web::text(StatusCode::NOT_FOUND, "not found\n"),
            }
        };
        cors.apply(&mut response);
        response
    }

    fn channel(&self, id: &str) -> Option<Arc<Channel>> {
        self.transports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Forgets the transport `id` if it is still `channel` (a debug id may name a newer one).
    fn forget(&self, id: &str, channel: &Arc<Channel>) {
        let mut transports = self
            .transports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if transports.get(id).is_some_and(|c| Arc::ptr_eq(c, channel)) {
            transports.remove(id);
        }
    }

    /// `open`: the first protocol of the client's list that is served here, a transport, and its
    /// session.
    async fn open(
        self: &Arc<Self>,
        req: Request<Incoming>,
        mut conn: ConnectionInfo,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Response<HttpBody> {
        let body = match read_body(req).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let asked: Vec<String> = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("protocols").cloned())
            .and_then(|p| serde_json::from_value(p).ok())
            .unwrap_or_default();
        let Some((protocol, serializer, batched)) = asked
            .iter()
            .find_map(|p| PROTOCOLS.iter().find(|(name, _, _)| name == p))
        else {
            let offered: Vec<&str> = PROTOCOLS.iter().map(|(n, _, _)| *n).collect();
            return web::text(
                StatusCode::BAD_REQUEST,
                &format!(
                    "expected a JSON body {{\"protocols\": [...]}} naming one of {offered:?}\n"
                ),
            );
        };
        let id: String = match &self.debug_transport_id {
            Some(fixed) => {
                // The transport before it with this id ends.
                if let Some(old) = self.channel(fixed) {
                    old.closed.cancel();
                }
                fixed.clone()
            }
            None => rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(16)
                .map(char::from)
                .collect(),
        };
        let (to_session, incoming) = mpsc::channel(INCOMING_CAPACITY);
        let (outgoing, from_session) = mpsc::channel(self.queue_limit);
        let closed = CancellationToken::new();
        let channel = Arc::new(Channel {
            serializer: *serializer,
            batched: *batched,
            to_session,
            from_session: tokio::sync::Mutex::new(from_session),
            closed: closed.clone(),
            last_request: Mutex::new(Instant::now()),
            receiving: std::sync::atomic::AtomicUsize::new(0),
        });
        self.transports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.clone(), channel.clone());
        let transport = LongPollTransport {
            serializer: *serializer,
            incoming,
            outgoing,
            closed: closed.clone(),
        };
        conn.transport = "longpoll";
        tracker.spawn(session::run(
            transport,
            sessions.clone(),
            self.auth.clone(),
            Box::new(conn),
        ));
        // A client that stops asking is gone: its transport closes as a lost connection would.
        // (Not tracked with the sessions: it owns none, and must not hold the node's exit up.)
        let path = Arc::clone(self);
        let watched = id.clone();
        let shutdown = sessions.shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = closed.cancelled() => break,
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                let waiting = channel.receiving.load(std::sync::atomic::Ordering::Relaxed) > 0;
                let idle = !waiting && path.session_timeout.is_some_and(|t| channel.idle_for() > t);
                if idle || channel.to_session.is_closed() {
                    closed.cancel();
                    break;
                }
            }
            // Answers still queued stay readable a little longer (a GOODBYE for the client).
            let linger = path
                .request_timeout
                .unwrap_or(Duration::MAX)
                .min(Duration::from_secs(5));
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                () = shutdown.cancelled() => {}
            }
            // (A debug id may name a newer transport by now.)
            let mut transports = path
                .transports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if transports
                .get(&watched)
                .is_some_and(|c| Arc::ptr_eq(c, &channel))
            {
                transports.remove(&watched);
            }
        });
        tracing::debug!(transport = %id, protocol, "long-poll transport opened");
        web::response(
            StatusCode::OK,
            "application/json",
            serde_json::json!({"protocol": protocol, "transport": id}).to_string(),
        )
    }

    /// `receive`: the next message (or all pending, batched), waiting up to `request_timeout`.
    async fn receive(&self, id: &str, channel: &Arc<Channel>) -> Response<HttpBody> {
        let content_type = match channel.serializer {
            Serializer::Json => "application/json; charset=utf-8",
            Serializer::MsgPack => "application/x-msgpack",
            Serializer::Cbor => "application/cbor",
        };
        channel
            .receiving
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let waited = timeout_or_not(self.request_timeout, async {
            let mut rx = channel.from_session.lock().await;
            let first = rx.recv().await?;
            if !channel.batched {
                return Some(first);
            }
            let mut batch = BytesMut::new();
            frame(&mut batch, channel.serializer, &first);
            while let Ok(more) = rx.try_recv() {
                frame(&mut batch, channel.serializer, &more);
            }
            Some(batch.freeze())
        })
        .await;
        channel
            .receiving
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        channel.touch();
        match waited {
            Ok(Some(body)) => web::response(StatusCode::OK, content_type, body),
            // The session ended and everything it sent was read.
            Ok(None) => {
                self.forget(id, channel);
                web::text(StatusCode::NOT_FOUND, "the long-poll transport is closed\n")
            }
            Err(_) => web::response(StatusCode::OK, content_type, Bytes::new()),
        }
    }
}

/// `future` bounded by `limit` (no bound where there is none); `Err` when it ran out.
async fn timeout_or_not<T>(
    limit: Option<Duration>,
    future: impl std::future::Future<Output = T>,
) -> Result<T, tokio::time::error::Elapsed> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, future).await,
        None => Ok(future.await),
    }
}

/// `send`: the body's message (or batch) for the session.
async fn send(channel: &Channel, req: Request<Incoming>) -> Response<HttpBody> {
    let body = match read_body(req).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let messages = if channel.batched {
        match unbatch(channel.serializer, body) {
            Some(messages) => messages,
            None => return web::text(StatusCode::BAD_REQUEST, "malformed batch\n"),
        }
    } else {
        vec![body]
    };
    if messages
        .iter()
        .any(|m| m.len() > switchboard_transport::DEFAULT_MAX_MESSAGE_BYTES)
    {
        return web::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a message over the limit of one WAMP message (1 MiB)\n",
        );
    }
    for msg in messages {
        if channel.to_session.send(msg).await.is_err() {
            return web::text(StatusCode::NOT_FOUND, "the long-poll transport is closed\n");
        }
    }
    web::text(StatusCode::NO_CONTENT, "")
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<HttpBody>> {
    match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes()),
        Err(_) => Err(web::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large or broken\n",
        )),
    }
}

/// Appends one message to a batch: JSON and CBOR text end each message with `\x1e`, MessagePack
/// prefixes it with its length (4 bytes, big-endian), as the batched WebSocket subprotocols do.
fn frame(batch: &mut BytesMut, serializer: Serializer, msg: &[u8]) {
    match serializer {
        Serializer::Json => {
            batch.put_slice(msg);
            batch.put_u8(0x1e);
        }
        Serializer::MsgPack | Serializer::Cbor => {
            batch.put_u32(u32::try_from(msg.len()).unwrap_or(u32::MAX));
            batch.put_slice(msg);
        }
    }
}

/// The messages of a batch (see [`frame`]); `None` when its framing is broken.
fn unbatch(serializer: Serializer, mut body: Bytes) -> Option<Vec<Bytes>> {
    let mut messages = Vec::new();
    match serializer {
        Serializer::Json => {
            while !body.is_empty() {
                let end = body.iter().position(|b| *b == 0x1e).unwrap_or(body.len());
                let msg = body.split_to(end);
                if !body.is_empty() {
                    let _separator = body.split_to(1);
                }
                if !msg.is_empty() {
                    messages.push(msg);
                }
            }
        }
        Serializer::MsgPack | Serializer::Cbor => {
            while !body.is_empty() {
                if body.len() < 4 {
                    return None;
                }
                let len = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
                let _length = body.split_to(4);
                if body.len() < len {
                    return None;
                }
                messages.push(body.split_to(len));
            }
        }
    }
    Some(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_frame_and_unframe_each_serializer() {
        for serializer in [Serializer::Json, Serializer::MsgPack, Serializer::Cbor] {
            let msgs: [&[u8]; 3] = [b"[1,\"a\"]", b"[2]", b"[3,{}]"];
            let mut batch = BytesMut::new();
            for m in msgs {
                frame(&mut batch, serializer, m);
            }
            let back = unbatch(serializer, batch.freeze()).expect("unbatch");
            assert_eq!(
                back,
                msgs.map(Bytes::from_static).to_vec(),
                "{serializer:?}"
            );
        }
        assert!(unbatch(Serializer::MsgPack, Bytes::from_static(&[0, 0, 0, 9, 1])).is_none());
    }
}
