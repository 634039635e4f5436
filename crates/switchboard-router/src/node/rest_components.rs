//! The outbound half of the HTTP bridge: Crossbar's built-in components
//! `crossbar.bridge.rest.RESTCallee` (calls of a procedure become HTTP requests) and
//! `crossbar.bridge.rest.MessageForwarder` (events become HTTP requests), configured where
//! Crossbar configures them (a router worker's or a container worker's `components`, their
//! `extra`), and run in the node's process: each is a session of its realm, joined with the
//! component's role (a container's: `anonymous`, what its transport's clients get), authid
//! `component:<id>`.
//!
//! HTTP goes through hyper's client (keep-alive connections, http and https with the Mozilla
//! roots). Each request has 30 s; a forwarder has 16 requests in flight at most, and a topic whose
//! events come faster than that drops the oldest waiting ones (the subscription's buffer) and
//! says so in the log. Neither retries, as in Crossbar.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use switchboard_client::{Args, CallError, Invocation, RegisterOptions, Session, SubscribeOptions};
use switchboard_proto::{Dict, Value};
use tokio::task::JoinHandle;

use super::StartError;
use crate::config::{
    BuiltinComponent, ContainerComponentConfig, LoadedConfig, WorkerConfig, builtin_component,
    component_id,
};
use crate::embed::InProcess;
use crate::session::TrustedIdentity;

/// How long one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer body read from an upstream.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Requests in flight per forwarded topic.
const FORWARDS_IN_FLIGHT: usize = 16;

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One built-in component of the config, ready to start.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PreparedBuiltin {
    /// The id of its worker: component ids are unique within a worker only.
    worker: String,
    id: String,
    realm: String,
    role: String,
    component: BuiltinComponent,
}

impl PreparedBuiltin {
    /// What tells it from the others: its worker's id and its own.
    fn key(&self) -> (String, String) {
        (self.worker.clone(), self.id.clone())
    }
}

/// The built-in components of every router and container worker (validation refused any it
/// cannot run).
pub(super) fn prepare(loaded: &LoadedConfig) -> Vec<PreparedBuiltin> {
    let mut builtins = Vec::new();
    for (w, worker) in loaded.config.workers.iter().enumerate() {
        match worker {
            WorkerConfig::Router(router) => {
                for (c, component) in router
                    .components
                    .iter()
                    .enumerate()
                    .filter_map(|(c, k)| k.as_class().map(|k| (c, k)))
                {
                    match builtin_component(&component.classname, component.extra.as_ref()) {
                        // The PostgreSQL bridge runs it (`postgres_bridges`).
                        Some(Ok(BuiltinComponent::PostgresPublisher { .. })) => {}
                        Some(Ok(builtin)) => builtins.push(PreparedBuiltin {
                            worker: worker.id(w),
                            id: component_id(component.id.as_ref(), c),
                            realm: component.realm.clone(),
                            role: component.role().to_owned(),
                            component: builtin,
                        }),
                        _ => {}
                    }
                }
            }
            WorkerConfig::Container(container) => {
                for (c, ContainerComponentConfig::Class(component)) in
                    container.components.iter().enumerate()
                {
                    match builtin_component(&component.classname, component.extra.as_ref()) {
                        // Refused by validation: it runs in a router worker.
                        Some(Ok(BuiltinComponent::PostgresPublisher { .. })) => {}
                        Some(Ok(builtin)) => builtins.push(PreparedBuiltin {
                            worker: worker.id(w),
                            id: component_id(component.id.as_ref(), c),
                            realm: component.realm.clone(),
                            role: "anonymous".to_owned(),
                            component: builtin,
                        }),
                        _ => {}
                    }
                }
            }
            WorkerConfig::Guest(_) => {}
        }
    }
    builtins
}

/// The running built-in components, by id: their sessions and forwarding tasks.
pub(super) struct RestComponents {
    in_process: InProcess,
    client: HttpClient,
    /// By worker id and component id.
    running: tokio::sync::Mutex<std::collections::BTreeMap<(String, String), RunningBuiltin>>,
}

/// One running built-in component.
struct RunningBuiltin {
    prepared: PreparedBuiltin,
    /// Its registrations and subscriptions live with it.
    session: Session,
    forwarders: Vec<JoinHandle<()>>,
}

impl RunningBuiltin {
    /// Stops forwarding and leaves the realm (its registration or subscriptions go with it).
    async fn stop(self) {
        for f in self.forwarders {
            f.abort();
        }
        let _ = self.session.leave().await;
    }
}

impl RestComponents {
    /// Joins each component's session and registers or subscribes what it serves.
    pub(super) async fn start(
        builtins: Vec<PreparedBuiltin>,
        in_process: &InProcess,
    ) -> Result<Self, StartError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let this = Self {
            in_process: in_process.clone(),
            client: Client::builder(hyper_util::rt::TokioExecutor::new()).build(https),
            running: Default::default(),
        };
        let mut running = std::collections::BTreeMap::new();
        for builtin in builtins {
            running.insert(builtin.key(), this.start_one(builtin).await?);
        }
        *this.running.lock().await = running;
        Ok(this)
    }

    /// Runs the built-in components `builtins` (those of a reloaded config): those removed stop,
    /// those added start, those changed do both, the others run on. Returns what changed, in
    /// words, and what failed.
    pub(super) async fn apply(&self, builtins: Vec<PreparedBuiltin>) -> (Vec<String>, Vec<String>) {
        let mut running = self.running.lock().await;
        let (mut applied, mut failed) = (Vec::new(), Vec::new());
        let gone: Vec<(String, String)> = running
            .keys()
            .filter(|key| !builtins.iter().any(|b| b.key() == **key))
            .cloned()
            .collect();
        for key in gone {
            if let Some(builtin) = running.remove(&key) {
                builtin.stop().await;
                let id = &key.1;
                applied.push(format!("built-in component {id:?} removed: stopped"));
            }
        }
        for builtin in builtins {
            let (key, id) = (builtin.key(), builtin.id.clone());
            let restarted = match running.get(&key) {
                Some(r) if r.prepared == builtin => continue,
                Some(_) => {
                    if let Some(old) = running.remove(&key) {
                        old.stop().await;
                    }
                    true
                }
                None => false,
            };
            match self.start_one(builtin).await {
                Ok(started) => {
                    running.insert(key, started);
                    applied.push(if restarted {
                        format!("built-in component {id:?} restarted with its new config")
                    } else {
                        format!("built-in component {id:?} added: started")
                    });
                }
                Err(e) => failed.push(format!(
                    "built-in component {id:?} could not start ({e}): it runs at the next \
                     reload or restart that can start it"
                )),
            }
        }
        (applied, failed)
    }

    /// What [`Self::apply`] would change, in words.
    pub(super) async fn changes(&self, builtins: &[PreparedBuiltin]) -> Vec<String> {
        let running = self.running.lock().await;
        let mut lines: Vec<String> = running
            .keys()
            .filter(|key| !builtins.iter().any(|b| b.key() == **key))
            .map(|(_, id)| format!("built-in component {id:?} removed"))
            .collect();
        for builtin in builtins {
            match running.get(&builtin.key()) {
                Some(r) if r.prepared == *builtin => {}
                Some(_) => lines.push(format!(
                    "built-in component {:?} restarted with its new config",
                    builtin.id
                )),
                None => lines.push(format!("built-in component {:?} added", builtin.id)),
            }
        }
        lines
    }

    /// Joins the session of `builtin` and registers or subscribes what it serves.
    async fn start_one(&self, builtin: PreparedBuiltin) -> Result<RunningBuiltin, StartError> {
        let authid = format!("component:{}", builtin.id);
        let failed = |source| StartError::Join {
            realm: builtin.realm.clone(),
            authid: authid.clone(),
            source,
        };
        let identity = TrustedIdentity::new(&builtin.realm, &authid, &builtin.role);
        let session = self.in_process.join(identity).await.map_err(failed)?;
        let mut forwarders = Vec::new();
        match &builtin.component {
            BuiltinComponent::RestCallee { procedure, baseurl } => {
                let (client, baseurl) = (self.client.clone(), baseurl.clone());
                session
                    .register(procedure, RegisterOptions::default(), move |invocation| {
                        rest_call(client.clone(), baseurl.clone(), invocation)
                    })
                    .await
                    .map_err(failed)?;
                tracing::info!(component = %builtin.id, %procedure, "REST callee registered");
            }
            BuiltinComponent::MessageForwarder {
                subscriptions,
                method,
                expected_code,
            } => {
                for forwarded in subscriptions {
                    let options = SubscribeOptions {
                        match_policy: forwarded
                            .match_policy
                            .map_or(switchboard_proto::UriMatch::Exact, Into::into),
                        ..SubscribeOptions::default()
                    };
                    let subscription = session
                        .subscribe(&forwarded.topic, options)
                        .await
                        .map_err(failed)?;
                    let (client, url, id) = (
                        self.client.clone(),
                        forwarded.url.clone(),
                        builtin.id.clone(),
                    );
                    let method =
                        hyper::Method::from_bytes(method.as_bytes()).unwrap_or(hyper::Method::POST);
                    let expected = *expected_code;
                    forwarders.push(tokio::spawn(async move {
                        subscription
                            .for_each_concurrent(FORWARDS_IN_FLIGHT, |event| {
                                let (client, method, url, id) = (&client, &method, &url, &id);
                                async move {
                                    match event {
                                        Ok(event) => {
                                            forward(client, method, url, expected, id, event.args)
                                                .await;
                                        }
                                        Err(lagged) => tracing::warn!(
                                            component = %id,
                                            %url,
                                            "events came faster than they could be forwarded: {lagged}"
                                        ),
                                    }
                                }
                            })
                            .await;
                    }));
                }
                tracing::info!(component = %builtin.id, "REST subscriber forwarding {} topic(s)", subscriptions.len());
            }
            // Not prepared here: the PostgreSQL bridge runs it.
            BuiltinComponent::PostgresPublisher { .. } => {}
        }
        Ok(RunningBuiltin {
            prepared: builtin,
            session,
            forwarders,
        })
    }

    /// Stops forwarding.
    pub(super) async fn stop(&self) {
        for (_, builtin) in std::mem::take(&mut *self.running.lock().await) {
            for f in builtin.forwarders {
                f.abort();
            }
        }
    }
}

/// A REST callee's call: `(method, url, body, headers, params)` by keyword (as Crossbar's callers
/// pass them) or by position; answers `{"code", "content", "headers"}`.
async fn rest_call(
    client: HttpClient,
    baseurl: url::Url,
    invocation: Invocation,
) -> Result<Args, CallError> {
    let Args { args, kwargs } = invocation.args;
    let arg =
        |name: &str, position: usize| kwargs.get(name).or_else(|| args.get(position)).cloned();
    let invalid = |what: String| {
        CallError::new(switchboard_proto::errors::INVALID_ARGUMENT)
            .with_args(Args::positional(vec![what.into()]))
    };
    let method = match arg("method", 0) {
        Some(Value::Str(m)) => hyper::Method::from_bytes(m.as_bytes())
            .map_err(|_| invalid(format!("not an HTTP method: {m:?}")))?,
        None | Some(Value::Null) => hyper::Method::GET,
        Some(_) => return Err(invalid("`method` must be a string".into())),
    };
    let mut url = match arg("url", 1) {
        Some(Value::Str(u)) => {
            let joined = baseurl
                .join(&u)
                .map_err(|e| invalid(format!("cannot join {u:?} to the base URL: {e}")))?;
            // The callee reaches below its base URL only: a caller may not point it at another
            // host or climb out of the base path (Python's urljoin, which Crossbar uses, lets an
            // absolute URL replace the base).
            if joined.origin() != baseurl.origin() || !joined.path().starts_with(baseurl.path()) {
                return Err(invalid(format!(
                    "{u:?} leads outside the base URL {baseurl}"
                )));
            }
            joined
        }
        None | Some(Value::Null) => baseurl.clone(),
        Some(_) => return Err(invalid("`url` must be a string".into())),
    };
    let body = match arg("body", 2) {
        Some(Value::Str(b)) => b,
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err(invalid("`body` must be a string".into())),
    };
    let headers = match arg("headers", 3) {
        Some(Value::Dict(h)) => h,
        None | Some(Value::Null) => Dict::new(),
        Some(_) => return Err(invalid("`headers` must be a dict".into())),
    };
    if let Some(Value::Dict(params)) = arg("params", 4) {
        let mut query = url.query_pairs_mut();
        for (name, value) in &params {
            if let Value::Str(v) = value {
                query.append_pair(name, v);
            }
        }
    }
    let mut request = hyper::Request::builder().method(method).uri(url.as_str());
    for (name, value) in &headers {
        // Crossbar takes a list of values per header; a single string is one value.
        let values: Vec<&str> = match value {
            Value::Str(v) => vec![v.as_str()],
            Value::List(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for v in values {
            request = request.header(name.as_str(), v);
        }
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| invalid(format!("not a valid HTTP request: {e}")))?;
    let failed = |e: String| {
        CallError::new("switchboard.error.http_request_failed")
            .with_args(Args::positional(vec![e.into()]))
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let response = client
            .request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let content = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| failed(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok::<_, CallError>((parts, content))
    })
    .await
    .map_err(|_| failed(format!("no answer within {REQUEST_TIMEOUT:?}")))??;
    let (parts, content) = response;
    let mut headers = Dict::new();
    for (name, value) in &parts.headers {
        let value = Value::from(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.get_mut(name.as_str()) {
            Some(Value::List(values)) => values.push(value),
            _ => {
                headers.insert(name.as_str().to_owned(), Value::List(vec![value]));
            }
        }
    }
    let mut answer = Dict::new();
    answer.insert("code".into(), u64::from(parts.status.as_u16()).into());
    answer.insert(
        "content".into(),
        String::from_utf8_lossy(&content).into_owned().into(),
    );
    answer.insert("headers".into(), Value::Dict(headers));
    Ok(Args::positional(vec![Value::Dict(answer)]))
}

/// Sends one event to `url` as Crossbar's forwarder does: a JSON body `{"args", "kwargs"}`.
async fn forward(
    client: &HttpClient,
    method: &hyper::Method,
    url: &url::Url,
    expected: Option<u16>,
    component: &str,
    payload: Args,
) {
    let body = serde_json::json!({
        "args": serde_json::to_value(&payload.args).unwrap_or_default(),
        "kwargs": serde_json::to_value(&payload.kwargs).unwrap_or_default(),
    })
    .to_string();
    let request = hyper::Request::builder()
        .method(method.clone())
        .uri(url.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)));
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(component, %url, "cannot forward an event: {e}");
            return;
        }
    };
    // The whole exchange, answer body included, within the timeout: an upstream that trickles
    // its answer must not hold one of the topic's slots for ever.
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status().as_u16();
        // Read to the end (bounded), so the connection can carry the next request.
        let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok::<_, hyper_util::client::legacy::Error>((status, body))
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
        Ok(Ok((status, body))) => {
            if expected.is_some_and(|code| code != status) {
                tracing::error!(component, %url, "forwarded an event: answered {status}, not the expected {}", expected.unwrap_or_default());
            }
            tracing::debug!(component, %url, status, "forwarded an event: {}", String::from_utf8_lossy(&body));
        }
        Ok(Err(e)) => tracing::error!(component, %url, "cannot forward an event: {e}"),
        Err(_) => {
            tracing::error!(component, %url, "cannot forward an event: no answer within {REQUEST_TIMEOUT:?}")
        }
    }
}
