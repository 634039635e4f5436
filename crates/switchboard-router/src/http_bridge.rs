//! The HTTP bridge: Crossbar's `publisher`, `caller` and `webhook` web paths. An HTTP POST
//! publishes an event, calls a procedure, or (a webhook) becomes an event on one topic, through a
//! WAMP session of the path (joined in the router's process with the path's realm and role, on
//! the first request), so the role's permissions, the meta API and meta events apply to HTTP
//! clients as to any session.
//!
//! Requests are checked as Crossbar checks them, in its order and with its status codes and
//! error bodies (`{"error", "args", "kwargs"}`): method, content type and charset, body size,
//! GitHub's `X-Hub-Signature`, the signed-request query parameters (`key`, `timestamp`, `seq`,
//! `nonce`, `signature`: base64url of HMAC-SHA256(secret, key | timestamp | seq | nonce | body),
//! compared in constant time), the timestamp window, the client address and TLS. Unlike Crossbar,
//! a signed request is accepted once: the same signature again within the timestamp window is a
//! replay and refused.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use ring::hmac;
use serde_json::{Map, Value as Json, json};
use switchboard_client::{Args, CallOptions, Error as ClientError, PublishOptions, Session};
use switchboard_proto::{Dict, Id, Value};
use tokio_util::task::TaskTracker;

use crate::auth::ConnectionInfo;
use crate::config::{HttpBridgeKind, HttpBridgePathConfig, IpNetwork};
use crate::embed::SessionOnDemand;
use crate::session::{SessionConfig, TrustedIdentity};
use crate::web::{self, HttpBody};

/// The largest body a path without `post_body_limit` reads (Crossbar has no limit; reading any
/// size into memory would let one request exhaust it).
pub const DEFAULT_BODY_LIMIT: u64 = 16 * 1024 * 1024;

/// Crossbar's default `timestamp_delta_limit`, in seconds.
const DEFAULT_TIMESTAMP_DELTA: u64 = 300;

/// How long signatures are remembered against replays where `timestamp_delta_limit` is 0 (any
/// timestamp goes), and how many at most.
const REPLAY_MEMORY: Duration = Duration::from_secs(300);
const REPLAY_MEMORY_ENTRIES: usize = 1 << 20;

/// One bridge path.
pub struct HttpBridge {
    kind: HttpBridgeKind,
    realm: String,
    role: String,
    /// The authid of the path's session: `http-<kind>:<path>`.
    authid: String,
    /// The path's name, as the metrics label it.
    name: String,
    signing: Option<Signing>,
    post_body_limit: Option<u64>,
    timestamp_delta: u64,
    require_ip: Option<Vec<IpNetwork>>,
    require_tls: bool,
    github_secret: Option<hmac::Key>,
    webhook: Option<Webhook>,
    session: SessionOnDemand,
    replays: std::sync::Mutex<ReplayLog>,
}

impl std::fmt::Debug for HttpBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No secrets in debug output.
        f.debug_struct("HttpBridge")
            .field("kind", &self.kind)
            .field("realm", &self.realm)
            .field("role", &self.role)
            .field("signed", &self.signing.is_some())
            .finish_non_exhaustive()
    }
}

/// `key` and the HMAC key made of `secret`.
struct Signing {
    key: String,
    secret: hmac::Key,
}

/// A webhook's topic and answers.
struct Webhook {
    topic: String,
    success: String,
    error: String,
}

/// Signatures of signed requests already accepted, until they leave the timestamp window.
#[derive(Default)]
struct ReplayLog {
    seen: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl ReplayLog {
    /// Records `signature` until `expires`; false if it is there already and not expired.
    fn first_time(&mut self, signature: &str, expires: Instant) -> bool {
        let now = Instant::now();
        // Expiries grow with insertion (one window per path), so the expired ones are in front.
        while let Some((at, _)) = self.order.front() {
            if *at > now && self.order.len() < REPLAY_MEMORY_ENTRIES {
                break;
            }
            if let Some((at, old)) = self.order.pop_front()
                && self.seen.get(&old) == Some(&at)
            {
                self.seen.remove(&old);
            }
        }
        if self.seen.get(signature).is_some_and(|until| *until > now) {
            return false;
        }
        self.seen.insert(signature.to_owned(), expires);
        self.order.push_back((expires, signature.to_owned()));
        true
    }
}

/// A refused request: its status and the `error` text of its body.
struct Denied(StatusCode, String);

impl Denied {
    fn bad(text: impl Into<String>) -> Self {
        Denied(StatusCode::BAD_REQUEST, text.into())
    }
}

impl HttpBridge {
    /// The bridge of the path `name`, from its (validated) config.
    pub fn new(kind: HttpBridgeKind, config: &HttpBridgePathConfig, name: &str) -> Self {
        let o = &config.options;
        let signing = match (&o.key, &o.secret) {
            (Some(key), Some(secret)) => Some(Signing {
                key: key.clone(),
                secret: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            }),
            _ => None,
        };
        Self {
            kind,
            realm: config.realm.clone(),
            role: config.role.clone(),
            authid: format!("http-{}:{}", kind.as_str(), name),
            name: name.to_owned(),
            signing,
            post_body_limit: o.post_body_limit.filter(|l| *l > 0),
            timestamp_delta: o.timestamp_delta_limit.unwrap_or(DEFAULT_TIMESTAMP_DELTA),
            require_ip: o.require_ip.as_ref().map(|nets| {
                // Validation refused entries that do not parse.
                nets.iter()
                    .filter_map(|n| IpNetwork::parse(n).ok())
                    .collect()
            }),
            require_tls: o.require_tls.unwrap_or(false),
            github_secret: o
                .github_secret
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes())),
            webhook: (kind == HttpBridgeKind::Webhook).then(|| Webhook {
                topic: o.topic.clone().unwrap_or_default(),
                success: o.success_response.clone().unwrap_or_else(|| "OK".into()),
                error: o.error_response.clone().unwrap_or_else(|| "NOT OK".into()),
            }),
            session: SessionOnDemand::new(TrustedIdentity::new(
                &config.realm,
                format!("http-{}:{}", kind.as_str(), name),
                &config.role,
            )),
            replays: std::sync::Mutex::new(ReplayLog::default()),
        }
    }

    /// Answers one request, with Crossbar's CORS and caching headers.
    pub async fn serve(
        &self,
        req: Request<Incoming>,
        conn: &ConnectionInfo,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Response<HttpBody> {
        let started = std::time::Instant::now();
        let cors = web::CorsNoCache::of(req.headers());
        let mut response = match self.handle(req, conn, sessions, tracker).await {
            Ok(response) => response,
            Err(Denied(status, text)) => {
                tracing::debug!(path = %self.authid, %status, "HTTP bridge request refused: {text}");
                error_body(status, &text, &[], &Dict::new())
            }
        };
        cors.apply(&mut response);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        sessions
            .status
            .rest_stats(&format!("{} {}", self.kind.as_str(), self.name))
            .answered(response.status().as_u16(), started.elapsed());
        response
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        conn: &ConnectionInfo,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Result<Response<HttpBody>, Denied> {
        match *req.method() {
            Method::POST | Method::PUT => {}
            Method::OPTIONS => {
                let mut r = web::response(StatusCode::OK, "application/json", Bytes::new());
                for name in [header::ALLOW, header::ACCESS_CONTROL_ALLOW_METHODS] {
                    r.headers_mut()
                        .insert(name, HeaderValue::from_static("POST,PUT,OPTIONS"));
                }
                return Ok(r);
            }
            ref other => {
                return Err(Denied(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!(
                        "Method not accepted by the REST bridge. ({other} not allowed, only POST, PUT)"
                    ),
                ));
            }
        }
        let (parts, body) = req.into_parts();
        self.check_content_type(&parts.headers)?;
        let body = self.read_body(&parts.headers, body).await?;
        if let Some(secret) = &self.github_secret {
            check_github_signature(&parts.headers, secret, &body)?;
        }
        let query = query_params(parts.uri.query().unwrap_or(""));
        self.check_signature(&query, &body)?;
        if let Some(nets) = &self.require_ip {
            let ip = conn.peer_addr.map(|a| a.ip());
            if !ip.is_some_and(|ip: IpAddr| nets.iter().any(|n| n.contains(ip))) {
                return Err(Denied::bad("Request denied based on IP address."));
            }
        }
        if self.require_tls && conn.channel_binding.is_none() {
            return Err(Denied::bad(
                "Malformed request to the REST bridge. (request denied because not using TLS)",
            ));
        }
        let Ok(text) = String::from_utf8(body.to_vec()) else {
            return Err(Denied::bad("Non-decodable request body, was not UTF-8."));
        };
        if let Some(webhook) = &self.webhook {
            return Ok(self
                .deliver_webhook(webhook, &parts.headers, text, sessions, tracker)
                .await);
        }
        let event = match serde_json::from_str::<Json>(&text) {
            Ok(Json::Object(event)) => event,
            Ok(_) => {
                return Err(Denied::bad(
                    "Request body was valid JSON, but not well formed (must be a dict).",
                ));
            }
            Err(_) => return Err(Denied::bad("Request body was invalid JSON.")),
        };
        match self.kind {
            HttpBridgeKind::Publisher => self.publish(event, sessions, tracker).await,
            HttpBridgeKind::Caller => self.call(event, sessions, tracker).await,
            HttpBridgeKind::Webhook => unreachable!("handled above"),
        }
    }

    /// A JSON path takes `application/json` (or no content type); every path takes UTF-8 only.
    fn check_content_type(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let Some(value) = headers.get(header::CONTENT_TYPE) else {
            return Ok(());
        };
        let value = String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase();
        let mut elements = value.split(';').map(str::trim);
        let mime = elements.next().unwrap_or_default();
        if self.webhook.is_none() && mime != "application/json" {
            return Err(Denied::bad(format!(
                "Non-accepted content type. (must be one of '[b'application/json']', not '{mime}')"
            )));
        }
        for param in elements {
            if let Some((name, value)) = param.split_once('=')
                && name.trim() == "charset"
                && !matches!(value.trim(), "utf-8" | "utf8")
            {
                return Err(Denied::bad("Non-accepted request encoding, must be UTF-8."));
            }
        }
        Ok(())
    }

    /// The whole body, refused with 413 when longer than `post_body_limit` (or the default cap).
    async fn read_body(&self, headers: &HeaderMap, body: Incoming) -> Result<Bytes, Denied> {
        let limit = self.post_body_limit.unwrap_or(DEFAULT_BODY_LIMIT);
        let too_long = |length: u64| {
            Denied(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request too long. ({length} is longer than accepted {limit})"),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(length) = declared
            && length > limit
        {
            return Err(too_long(length));
        }
        let read = usize::try_from(limit).unwrap_or(usize::MAX);
        match Limited::new(body, read).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_long(limit + 1)),
            Err(_) => Err(Denied::bad("Malformed request to the REST bridge.")),
        }
    }

    /// The query parameters of a signed request (required where the path has a secret), the
    /// timestamp window (also for unsigned requests that send a timestamp), and the signature.
    fn check_signature(&self, query: &HashMap<String, String>, body: &[u8]) -> Result<(), Denied> {
        let missing = |what: &str| {
            Denied::bad(format!(
                "REST bridge signature was invalid (missing mandatory field - {what})."
            ))
        };
        let signed = self.signing.is_some();
        let key = query.get("key");
        if signed && key.is_none() {
            return Err(missing("'key' field missing"));
        }
        let timestamp = query.get("timestamp");
        match timestamp {
            Some(ts) => {
                let Some(at) = parse_timestamp(ts) else {
                    return Err(Denied::bad(format!(
                        "REST bridge signature was invalid (invalid timestamp '{ts}' (must be UTC/ISO-8601, e.g. '2011-10-14T16:59:51.123Z'))."
                    )));
                };
                let delta = (time::OffsetDateTime::now_utc() - at).abs();
                if self.timestamp_delta > 0
                    && delta
                        > time::Duration::seconds(
                            i64::try_from(self.timestamp_delta).unwrap_or(i64::MAX),
                        )
                {
                    return Err(Denied::bad("Request expired, too old timestamp."));
                }
            }
            None if signed => {
                return Err(missing(
                    "signed request required, but mandatory 'timestamp' field missing",
                ));
            }
            None => {}
        }
        for (name, what) in [("seq", "sequence number"), ("nonce", "nonce")] {
            match query.get(name) {
                Some(v) if v.parse::<i64>().is_err() => {
                    return Err(Denied::bad(format!(
                        "REST bridge signature was invalid (invalid {what} '{v}' (must be an integer))."
                    )));
                }
                None if signed => return Err(missing(&format!("'{name}' field missing"))),
                _ => {}
            }
        }
        let Some(signing) = &self.signing else {
            return Ok(());
        };
        let Some(signature) = query.get("signature") else {
            return Err(missing("'signature' field missing"));
        };
        let key = key.map(String::as_str).unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            key.as_bytes(),
            signing.key.as_bytes(),
        )) {
            return Err(Denied(
                StatusCode::UNAUTHORIZED,
                "REST bridge signature key not valid.".into(),
            ));
        }
        let mut ctx = hmac::Context::with_key(&signing.secret);
        for part in [
            key,
            timestamp.map(String::as_str).unwrap_or_default(),
            query.get("seq").map(String::as_str).unwrap_or_default(),
            query.get("nonce").map(String::as_str).unwrap_or_default(),
        ] {
            ctx.update(part.as_bytes());
        }
        ctx.update(body);
        let expected = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE,
            ctx.sign().as_ref(),
        );
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            signature.as_bytes(),
        )) {
            return Err(Denied(
                StatusCode::UNAUTHORIZED,
                "REST bridge signature secret not valid.".into(),
            ));
        }
        let window = match self.timestamp_delta {
            0 => REPLAY_MEMORY,
            // Both sides of now: a timestamp up to the window ahead stays valid that much longer.
            seconds => Duration::from_secs(seconds.saturating_mul(2)),
        };
        let first = self
            .replays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .first_time(
                signature,
                Instant::now()
                    .checked_add(window)
                    .unwrap_or_else(|| Instant::now() + REPLAY_MEMORY),
            );
        if !first {
            return Err(Denied(
                StatusCode::UNAUTHORIZED,
                "REST bridge signature was invalid (this signed request was received before: a replay)."
                    .into(),
            ));
        }
        Ok(())
    }

    /// The path's session, joined on first use (and again after it was closed).
    async fn session(
        &self,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Result<Session, ClientError> {
        self.session.get(sessions, tracker).await
    }

    async fn publish(
        &self,
        mut event: Map<String, Json>,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Result<Response<HttpBody>, Denied> {
        let Some(topic) = event.remove("topic") else {
            return Err(missing_key("topic"));
        };
        let Json::String(topic) = topic else {
            return Err(Denied::bad(
                "Request body was valid JSON, but not well formed ('topic' must be a string).",
            ));
        };
        let args = payload(&mut event)?;
        let options = match event.remove("options") {
            Some(Json::Object(o)) => publish_options(&o)?,
            None | Some(Json::Null) => PublishOptions {
                acknowledge: true,
                ..PublishOptions::default()
            },
            Some(_) => {
                return Err(Denied::bad(
                    "Request body was valid JSON, but not well formed ('options' must be a dict).",
                ));
            }
        };
        let session = match self.session(sessions, tracker).await {
            Ok(s) => s,
            Err(e) => return Ok(self.failed(&e)),
        };
        Ok(match session.publish(&topic, args, options).await {
            Ok(id) => json_body(StatusCode::OK, &json!({ "id": id })),
            Err(e) => self.failed(&e),
        })
    }

    async fn call(
        &self,
        mut event: Map<String, Json>,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Result<Response<HttpBody>, Denied> {
        let Some(procedure) = event.remove("procedure") else {
            return Err(missing_key("procedure"));
        };
        let Json::String(procedure) = procedure else {
            return Err(Denied::bad(
                "Request body was valid JSON, but not well formed ('procedure' must be a string).",
            ));
        };
        let args = payload(&mut event)?;
        let mut options = CallOptions::default();
        // Switchboard's: `options.timeout` in milliseconds, as CALL's.
        if let Some(Json::Object(o)) = event.get("options")
            && let Some(ms) = o.get("timeout").and_then(Json::as_u64)
            && ms > 0
        {
            options.timeout = Some(Duration::from_millis(ms));
        }
        let session = match self.session(sessions, tracker).await {
            Ok(s) => s,
            Err(e) => return Ok(self.failed(&e)),
        };
        Ok(match session.call_with(&procedure, args, options).await {
            Ok(result) => json_body(StatusCode::OK, &call_result(result)),
            Err(e) => self.failed(&e),
        })
    }

    async fn deliver_webhook(
        &self,
        webhook: &Webhook,
        headers: &HeaderMap,
        body: String,
        sessions: &SessionConfig,
        tracker: &TaskTracker,
    ) -> Response<HttpBody> {
        let mut by_name: Vec<(String, Vec<Value>)> = Vec::new();
        for (name, value) in headers {
            let name = canonical_header_name(name.as_str());
            let value = Value::from(String::from_utf8_lossy(value.as_bytes()).into_owned());
            match by_name.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(value),
                None => by_name.push((name, vec![value])),
            }
        }
        let mut message = Dict::new();
        message.insert(
            "headers".into(),
            Value::Dict(
                by_name
                    .into_iter()
                    .map(|(n, v)| (n, Value::List(v)))
                    .collect(),
            ),
        );
        message.insert("body".into(), Value::from(body));
        let options = PublishOptions {
            acknowledge: true,
            ..PublishOptions::default()
        };
        let published = match self.session(sessions, tracker).await {
            Ok(session) => {
                session
                    .publish(
                        &webhook.topic,
                        Args::positional(vec![Value::Dict(message)]),
                        options,
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        match published {
            Ok(_) => web::response(StatusCode::ACCEPTED, "text/plain", webhook.success.clone()),
            Err(e) => {
                tracing::error!(
                    path = %self.authid,
                    realm = %self.realm,
                    role = %self.role,
                    "unable to publish a webhook request to {}: {e}",
                    webhook.topic
                );
                web::response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    webhook.error.clone(),
                )
            }
        }
    }

    /// The answer to a publish or call that did not succeed: a WAMP error is the application's
    /// answer (200, its URI and payload, as Crossbar); anything else is the bridge's (500).
    fn failed(&self, error: &ClientError) -> Response<HttpBody> {
        match error {
            ClientError::Wamp { uri, args, kwargs } => {
                error_body(StatusCode::OK, uri, args, kwargs)
            }
            ClientError::Aborted { reason, .. } => {
                tracing::error!(path = %self.authid, "the HTTP bridge's session was refused: {reason}");
                error_body(StatusCode::OK, reason, &[], &Dict::new())
            }
            other => {
                tracing::error!(path = %self.authid, "HTTP bridge request failed: {other}");
                error_body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "wamp.error.runtime_error",
                    &[Value::from("Sorry, Switchboard has encountered a problem.")],
                    &Dict::new(),
                )
            }
        }
    }
}

fn missing_key(key: &str) -> Denied {
    Denied::bad(format!(
        "Request body was valid JSON, but not well formed (missing key '{key}')."
    ))
}

/// `args` and `kwargs` of a request (absent, null or empty: none).
fn payload(event: &mut Map<String, Json>) -> Result<Args, Denied> {
    let args = match event.remove("args") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(list)) => list.into_iter().map(to_value).collect(),
        Some(_) => {
            return Err(Denied::bad(
                "Request body was valid JSON, but not well formed ('args' must be a list).",
            ));
        }
    };
    let kwargs = match event.remove("kwargs") {
        None | Some(Json::Null) => Dict::new(),
        Some(Json::Object(map)) => map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
        Some(_) => {
            return Err(Denied::bad(
                "Request body was valid JSON, but not well formed ('kwargs' must be a dict).",
            ));
        }
    };
    Ok(Args::new(args, kwargs))
}

fn to_value(json: Json) -> Value {
    serde_json::from_value(json).unwrap_or(Value::Null)
}

fn to_json(value: &Value) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

/// The PUBLISH options a request may give, as Crossbar passes them on (always acknowledged; not
/// `forward_for`, which only routers may send).
fn publish_options(o: &Map<String, Json>) -> Result<PublishOptions, Denied> {
    let bad = |key: &str| {
        Denied::bad(format!(
            "Request body was valid JSON, but not well formed (invalid option '{key}')."
        ))
    };
    let ids = |key: &str| -> Result<Option<Vec<Id>>, Denied> {
        match o.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Array(list)) => list
                .iter()
                .map(Json::as_u64)
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| bad(key)),
            Some(_) => Err(bad(key)),
        }
    };
    let strings = |key: &str| -> Result<Option<Vec<String>>, Denied> {
        match o.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Array(list)) => list
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| bad(key)),
            Some(_) => Err(bad(key)),
        }
    };
    let flag = |key: &str| -> Result<Option<bool>, Denied> {
        match o.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(bad(key)),
        }
    };
    Ok(PublishOptions {
        acknowledge: true,
        exclude_me: flag("exclude_me")?,
        exclude: ids("exclude")?.unwrap_or_default(),
        exclude_authid: strings("exclude_authid")?.unwrap_or_default(),
        exclude_authrole: strings("exclude_authrole")?.unwrap_or_default(),
        eligible: ids("eligible")?,
        eligible_authid: strings("eligible_authid")?,
        eligible_authrole: strings("eligible_authrole")?,
        retain: flag("retain")?.unwrap_or(false),
        ..PublishOptions::default()
    })
}

/// A call's result as Crossbar's caller answers it: one value as `{"args": [value]}` (none as
/// `[null]`), several or keyword results as `args` and `kwargs`, each where present.
fn call_result(result: Args) -> Json {
    let Args { args, kwargs } = result;
    if kwargs.is_empty() && args.len() <= 1 {
        let value = args.first().map_or(Json::Null, to_json);
        return json!({ "args": [value] });
    }
    let mut body = Map::new();
    if !args.is_empty() {
        body.insert(
            "args".into(),
            Json::Array(args.iter().map(to_json).collect()),
        );
    }
    if !kwargs.is_empty() {
        body.insert(
            "kwargs".into(),
            Json::Object(
                kwargs
                    .iter()
                    .map(|(k, v)| (k.clone(), to_json(v)))
                    .collect(),
            ),
        );
    }
    Json::Object(body)
}

fn json_body(status: StatusCode, body: &Json) -> Response<HttpBody> {
    web::response(
        status,
        "application/json",
        serde_json::to_vec(body).unwrap_or_default(),
    )
}

/// `{"error", "args", "kwargs"}`.
fn error_body(
    status: StatusCode,
    error: &str,
    args: &[Value],
    kwargs: &Dict,
) -> Response<HttpBody> {
    json_body(
        status,
        &json!({
            "error": error,
            "args": args.iter().map(to_json).collect::<Vec<_>>(),
            "kwargs": kwargs.iter().map(|(k, v)| (k.clone(), to_json(v))).collect::<Map<_, _>>(),
        }),
    )
}

/// The request's query parameters, percent-decoded (`+` is a space); the first of a repeated
/// name counts, as in Crossbar.
fn query_params(query: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        params.entry(decode(name)).or_insert_with(|| decode(value));
    }
    params
}

/// A signed request's timestamp: UTC, `2011-10-14T16:59:51.123Z` (fractional seconds required,
/// as Crossbar's `%Y-%m-%dT%H:%M:%S.%fZ`).
fn parse_timestamp(text: &str) -> Option<time::OffsetDateTime> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]Z"
    );
    time::PrimitiveDateTime::parse(text, format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// GitHub's `X-Hub-Signature: sha1=<hex HMAC-SHA1 of the body>`.
fn check_github_signature(
    headers: &HeaderMap,
    secret: &hmac::Key,
    body: &[u8],
) -> Result<(), Denied> {
    let refused = || Denied::bad("GitHub signature missing or invalid.");
    let given = headers
        .get("x-hub-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refused)?
        .to_ascii_lowercase();
    let hex_signature = given.strip_prefix("sha1=").ok_or_else(refused)?;
    let signature = hex::decode(hex_signature).map_err(|_| refused())?;
    hmac::verify(secret, body, &signature).map_err(|_| refused())
}

/// A header name as Twisted spells it, which Crossbar's webhook events carry: each dash-separated
/// part capitalized, with Twisted's exceptions (`WWW-Authenticate`, `ETag`, ...).
fn canonical_header_name(name: &str) -> String {
    const SPECIAL: [(&str, &str); 7] = [
        ("content-md5", "Content-MD5"),
        ("dnt", "DNT"),
        ("etag", "ETag"),
        ("p3p", "P3P"),
        ("te", "TE"),
        ("www-authenticate", "WWW-Authenticate"),
        ("x-xss-protection", "X-XSS-Protection"),
    ];
    if let Some((_, spelled)) = SPECIAL.iter().find(|(n, _)| *n == name) {
        return (*spelled).to_owned();
    }
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_crossbars_utc_iso_8601_with_fractional_seconds() {
        let t = parse_timestamp("2011-10-14T16:59:51.123Z").expect("parses");
        assert_eq!(t.unix_timestamp(), 1_318_611_591);
        assert!(parse_timestamp("2011-10-14T16:59:51.123456Z").is_some());
        for bad in [
            "2011-10-14T16:59:51Z",
            "2011-10-14 16:59:51.1Z",
            "yesterday",
            "",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn call_results_take_crossbars_shapes() {
        let v = |n: u64| Value::from(n);
        assert_eq!(call_result(Args::default()), json!({"args": [null]}));
        assert_eq!(
            call_result(Args::positional(vec![v(5)])),
            json!({"args": [5]})
        );
        assert_eq!(
            call_result(Args::positional(vec![v(1), v(2)])),
            json!({"args": [1, 2]})
        );
        let mut kw = Dict::new();
        kw.insert("a".into(), v(1));
        assert_eq!(
            call_result(Args::new(Vec::new(), kw.clone())),
            json!({"kwargs": {"a": 1}})
        );
        assert_eq!(
            call_result(Args::new(vec![v(7)], kw)),
            json!({"args": [7], "kwargs": {"a": 1}})
        );
    }

    #[test]
    fn header_names_are_spelled_as_twisted_spells_them() {
        assert_eq!(canonical_header_name("content-type"), "Content-Type");
        assert_eq!(canonical_header_name("x-hub-signature"), "X-Hub-Signature");
        assert_eq!(
            canonical_header_name("www-authenticate"),
            "WWW-Authenticate"
        );
        assert_eq!(canonical_header_name("user-agent"), "User-Agent");
    }

    #[test]
    fn query_parameters_are_decoded_and_the_first_of_a_name_counts() {
        let q =
            query_params("signature=ab%3D%3D&timestamp=2011-10-14T16%3A59%3A51.123Z&seq=1&seq=2&x");
        assert_eq!(q["signature"], "ab==");
        assert_eq!(q["timestamp"], "2011-10-14T16:59:51.123Z");
        assert_eq!(q["seq"], "1");
        assert_eq!(q["x"], "");
    }

    #[test]
    fn a_signature_is_accepted_once_within_its_window() {
        let mut log = ReplayLog::default();
        let later = Instant::now() + Duration::from_secs(60);
        assert!(log.first_time("sig-a", later));
        assert!(!log.first_time("sig-a", later));
        assert!(log.first_time("sig-b", later));
        // An expired entry is forgotten.
        assert!(log.first_time("sig-c", Instant::now()));
        assert!(log.first_time("sig-c", later));
    }
}
