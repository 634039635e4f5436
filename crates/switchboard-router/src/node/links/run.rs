//! One link on one realm, for its whole life: connect to the other router (backoff and jitter
//! between tries), learn its node id, join the local end, mirror both routers' interest and
//! relay the traffic, and on any failure remove everything mirrored (leaving both routers) and
//! start over.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_client::{
    Args, CallError, CallHandle, CallOptions, CancelMode, ConnectOptions, Credential, Endpoint,
    Error, EventFeed, Invocation, InvokePolicy, JoinOptions, Lagged, PublishOptions,
    RegisterOptions, Session, SubscribeOptions, TransportKind,
};
use switchboard_proto::{Dict, Id, Serializer, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::interest::{Delta, Filter, Key, Table};
use super::{LinkContext, LinkState, now_ms, service};
use crate::config::{Jitter, LinkConfig, LinkEndpoint, LinkMode, OnSlow, SerializerName};
use crate::delivery::{DISCLOSE_KEY, HOP_NODE_KEY, HOP_PUBLICATION_KEY};
use crate::embed::TrustedIdentity;
use crate::peer::LinkPeer;
use crate::realm::authz::{LINK_INTEREST_PROCEDURE, LINK_PING_PROCEDURE, TRUSTED_ROLE};

/// How long connecting and joining may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long leaving a router may take before the link gives up on it.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often refused registrations are tried again and the one-link-per-pair rule is checked.
const RETRY_EVERY: Duration = Duration::from_secs(5);
/// A connection up at least this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Events buffered per direction before `on_slow` applies.
const FEED_CAPACITY: usize = 65_536;
/// Interest changes buffered from the other router before the link resyncs.
const INTEREST_CAPACITY: usize = 1 << 20;

/// Runs one link on `realm` (the realm `remote_realm` on the other router) until `stop`.
pub(super) async fn run(
    ctx: LinkContext,
    link: Arc<LinkConfig>,
    realm: String,
    remote_realm: String,
    stop: CancellationToken,
) {
    let mode = link.extra.mode.unwrap_or_default();
    let endpoint = match &link.endpoint {
        LinkEndpoint::Tcp { host, port } => format!("tcp:{host}:{port}"),
        LinkEndpoint::Unix(path) => format!("unix:{}", path.display()),
    };
    ctx.table.update(&realm, &link.id, |s| {
        *s = LinkState {
            id: link.id.clone(),
            realm: realm.clone(),
            remote_realm: remote_realm.clone(),
            endpoint,
            mode: mode.as_str(),
            state: "connecting",
            since_ms: now_ms(),
            ..LinkState::default()
        }
    });
    let mut backoff = Backoff::new(&link);
    loop {
        let started = Instant::now();
        let ended = tokio::select! {
            ended = connect_and_serve(&ctx, &link, &realm, &remote_realm) => ended,
            () = stop.cancelled() => Ended::Stopped,
        };
        let (state, error) = match &ended {
            Ended::Stopped => ("stopped", None),
            Ended::Refused(why) => ("refused", Some(why.clone())),
            Ended::Failed(why) => ("connecting", Some(why.clone())),
        };
        if let Some(why) = &error {
            tracing::warn!(link = %link.id, realm = %realm, "link: {why}");
        }
        let state = ctx.table.update(&realm, &link.id, |s| {
            s.state = state;
            s.since_ms = now_ms();
            s.last_error = error.or(s.last_error.take());
            s.mirrored_in = [0, 0];
            s.mirrored_out = [0, 0];
            s.conflicts.clear();
        });
        service::announce(&ctx, &realm, &state).await;
        if matches!(ended, Ended::Stopped) || stop.is_cancelled() {
            return;
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff.reset();
        }
        let Some(delay) = backoff.next() else {
            tracing::error!(link = %link.id, realm = %realm, "link: giving up after its reconnect.max_retries");
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => {
                ctx.table.update(&realm, &link.id, |s| s.state = "stopped");
                return;
            }
        }
    }
}

/// How a connection of the link ended.
enum Ended {
    /// The node stops.
    Stopped,
    /// The other router refused it (authentication, authorization, a link that already exists).
    Refused(String),
    /// It failed or was lost.
    Failed(String),
}

/// Reconnect delays: `initial_ms` growing by `growth` up to `max_ms`, with full jitter.
struct Backoff {
    initial: f64,
    max: f64,
    growth: f64,
    jitter: bool,
    max_retries: Option<u32>,
    current: f64,
    tries: u32,
}

impl Backoff {
    fn new(link: &LinkConfig) -> Self {
        let r = link.extra.reconnect.as_ref();
        let initial = r.and_then(|r| r.initial_ms).unwrap_or(1000) as f64;
        Self {
            initial,
            max: r.and_then(|r| r.max_ms).unwrap_or(60_000) as f64,
            growth: r.and_then(|r| r.growth).unwrap_or(1.5).max(1.0),
            jitter: r.and_then(|r| r.jitter).unwrap_or(Jitter::Full) == Jitter::Full,
            max_retries: r.and_then(|r| r.max_retries),
            current: initial,
            tries: 0,
        }
    }

    fn reset(&mut self) {
        self.current = self.initial;
        self.tries = 0;
    }

    fn next(&mut self) -> Option<Duration> {
        if self.max_retries.is_some_and(|m| self.tries >= m) {
            return None;
        }
        self.tries += 1;
        let ceiling = self.current.min(self.max);
        self.current = (self.current * self.growth).min(self.max);
        let ms = if self.jitter {
            rand::random_range(ceiling / 2.0..=ceiling)
        } else {
            ceiling
        };
        Some(Duration::from_millis(ms.max(10.0) as u64))
    }
}

/// How to reach and join the other router.
fn connect_options(
    ctx: &LinkContext,
    link: &LinkConfig,
    remote_realm: &str,
) -> Result<ConnectOptions, String> {
    let endpoint = match &link.endpoint {
        LinkEndpoint::Tcp { host, port } => Endpoint::Tcp(format!("{host}:{port}")),
        LinkEndpoint::Unix(path) => Endpoint::Unix(ctx.base_dir.join(path)),
    };
    let transport = match link.kind {
        crate::config::ClientTransportKind::Websocket => TransportKind::WebSocket {
            path: link.path.clone(),
            compression: false,
        },
        crate::config::ClientTransportKind::Rawsocket => TransportKind::RawSocket,
    };
    let serializer = match link.serializer {
        SerializerName::Json => Serializer::Json,
        SerializerName::Msgpack => Serializer::MsgPack,
        SerializerName::Cbor => Serializer::Cbor,
    };
    let mut join = JoinOptions::new(remote_realm);
    let mut x_link = Dict::new();
    x_link.insert("id".into(), link.id.as_str().into());
    x_link.insert("node_id".into(), ctx.key.node_id.as_str().into());
    x_link.insert(
        "mode".into(),
        link.extra.mode.unwrap_or_default().as_str().into(),
    );
    join.authextra.insert("x_link".into(), Value::Dict(x_link));
    if let Some(authid) = &link.authid {
        join = join.with_authid(authid.clone());
    }
    let auth = link.extra.auth.as_ref();
    let has_cert = link.tls.as_ref().is_some_and(|t| t.cert.is_some());
    match auth {
        Some(a) if a.ticket.is_some() => {
            join = join.with_credential(Credential::Ticket(a.ticket.clone().unwrap_or_default()));
        }
        Some(a) if a.wampcra.is_some() => {
            let secret = a
                .wampcra
                .as_ref()
                .map(|w| w.secret.clone())
                .unwrap_or_default();
            join = join.with_credential(Credential::WampCra { secret });
        }
        Some(a) if a.cryptosign.is_some() => {
            let key = match a.cryptosign.as_ref().and_then(|c| c.key.as_ref()) {
                Some(file) => super::NodeKey::read(&ctx.base_dir.join(file))?,
                None => ctx.key.clone(),
            };
            join = join.with_cryptosign(key.seed);
        }
        Some(a) if a.tls.is_some() => join = join.with_credential(Credential::Tls),
        _ if has_cert => join = join.with_credential(Credential::Tls),
        // Crossbar's links authenticate with the node key; a router that takes links
        // anonymously is served too.
        _ => {
            join = join
                .with_cryptosign(ctx.key.seed)
                .with_credential(Credential::Anonymous);
        }
    }
    let mut opts = ConnectOptions::new(endpoint, transport, serializer, remote_realm);
    opts.join = join;
    if let Some(tls) = &link.tls {
        let config = crate::tls::link_client_config(tls, &ctx.base_dir).map_err(|problems| {
            problems
                .iter()
                .map(|p| format!("tls.{}: {}", p.field, p.message))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let name = tls
            .hostname
            .clone()
            .unwrap_or_else(|| match &link.endpoint {
                LinkEndpoint::Tcp { host, .. } => host.clone(),
                LinkEndpoint::Unix(_) => "localhost".into(),
            });
        opts = opts.with_tls(config, &name);
    }
    Ok(opts)
}

/// One connection of the link, from connecting to its end.
async fn connect_and_serve(
    ctx: &LinkContext,
    link: &Arc<LinkConfig>,
    realm_name: &str,
    remote_realm: &str,
) -> Ended {
    let Some(realm) = ctx.realms.get(realm_name) else {
        return Ended::Refused(format!("this router has no realm {realm_name:?}"));
    };
    let opts = match connect_options(ctx, link, remote_realm) {
        Ok(o) => o,
        Err(why) => return Ended::Refused(why),
    };
    let remote = match tokio::time::timeout(CONNECT_TIMEOUT, Session::connect(&opts)).await {
        Err(_) => return Ended::Failed("connecting timed out".into()),
        Ok(Err(Error::Aborted { reason, details })) => {
            let message = details.get("message").and_then(Value::as_str).unwrap_or("");
            return Ended::Refused(format!(
                "the other router refused the session: {reason} {message}"
            ));
        }
        Ok(Err(e)) => return Ended::Failed(format!("cannot connect: {e}")),
        Ok(Ok(s)) => s,
    };
    let ended = serve(ctx, link, &realm, &remote).await;
    let _ = tokio::time::timeout(LEAVE_TIMEOUT, remote.leave()).await;
    ended
}

/// Serves a connected link until it ends.
async fn serve(
    ctx: &LinkContext,
    link: &Arc<LinkConfig>,
    realm: &Arc<crate::realm::Realm>,
    remote: &Session,
) -> Ended {
    let mode = link.extra.mode.unwrap_or_default();
    let f = link.forwarding;
    // Their interest, mirrored here: what the `remote_*` directions ask for.
    let mut kwargs = Dict::new();
    kwargs.insert("events".into(), f.remote_events.into());
    kwargs.insert("invocations".into(), f.remote_invocations.into());
    let options = CallOptions {
        progress_capacity: INTEREST_CAPACITY,
        ..CallOptions::default()
    };
    let mut theirs = match remote
        .call_streaming(
            LINK_INTEREST_PROCEDURE,
            Args::new(Vec::new(), kwargs),
            options,
        )
        .await
    {
        Ok(h) => h,
        Err(e) => return Ended::Failed(format!("cannot ask for the other router's interest: {e}")),
    };
    let remote_node = match theirs.progress().await {
        Some(Ok(hello)) => hello
            .args
            .first()
            .and_then(Value::as_dict)
            .and_then(|d| d.get("node_id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => {
            return match theirs.result().await {
                Err(Error::Wamp { uri, args, .. }) => Ended::Refused(format!(
                    "the other router refused the link: {uri} {}",
                    args.first().and_then(Value::as_str).unwrap_or("")
                )),
                other => Ended::Failed(format!("the link protocol ended at once: {other:?}")),
            };
        }
    };
    if let Some(why) = duplicate(ctx, link, realm, &remote_node) {
        return Ended::Refused(why);
    }
    // The local end: trusted here, a link to `remote_node`.
    let identity = TrustedIdentity::new(realm.name(), format!("link:{}", link.id), TRUSTED_ROLE)
        .as_link(LinkPeer {
            node: remote_node.clone(),
            relay: mode == LinkMode::Tree,
            shares_session_ids: false,
        });
    let local = match ctx.in_process.join(identity).await {
        Ok(s) => s,
        Err(e) => return Ended::Failed(format!("the local end cannot join: {e}")),
    };
    let state = ctx.table.update(realm.name(), &link.id, |s| {
        s.state = "up";
        s.since_ms = now_ms();
        s.remote_node = Some(remote_node.clone());
        s.connects += 1;
        s.last_error = None;
    });
    tracing::info!(link = %link.id, realm = %realm.name(), remote_node = %remote_node, "link: up");
    service::announce(ctx, realm.name(), &state).await;

    // The first `forward_for` hop names the router a message was sent on: the other router for
    // what comes in from there, this one for what goes out. (Naming this router for both made
    // an event that reached here over two links look like two publications, so it was not
    // de-duplicated.)
    let relay_of = |node: &str| {
        Arc::new(Relay {
            origin_node: node.to_owned(),
            exclude_authid: link.exclude_authid.clone(),
        })
    };
    let (to_local_tx, to_local_rx) = mpsc::unbounded_channel();
    let (to_remote_tx, to_remote_rx) = mpsc::unbounded_channel();
    // Ours, mirrored there: their traffic comes to the local end.
    let (from_there, from_here) = (relay_of(&remote_node), relay_of(&ctx.key.node_id));
    let mut out = Mirror::new(remote.clone(), to_local_tx, from_there.clone());
    // Theirs, mirrored here: our traffic goes to the remote end.
    let mut inn = Mirror::new(local.clone(), to_remote_tx, from_here.clone());
    let mut filter = Filter::outgoing(
        link.forwarding,
        mode,
        link.extra.topics.clone(),
        link.extra.procedures.clone(),
    );
    filter.own_session = Some(crate::peer::SessionId(local.id()));
    filter.other_node = remote_node.clone();
    let mut ours = Table::new(filter);
    let (snapshot, mut changes) = realm.watch_interest();

    let on_slow = link.extra.on_slow.unwrap_or_default();
    let dropped = |n: u64| {
        ctx.table
            .update(realm.name(), &link.id, |s| s.dropped_events += n);
    };
    let (out_feed, in_feed) = (out.feed.clone(), inn.feed.clone());
    let relays = async {
        tokio::select! {
            why = relay_events(out_feed, local.clone(), from_there, on_slow, &dropped) => why,
            why = relay_events(in_feed, remote.clone(), from_here, on_slow, &dropped) => why,
            why = dispatch_calls(to_local_rx, local.clone()) => why,
            why = dispatch_calls(to_remote_rx, remote.clone()) => why,
            why = ping(remote, link) => why,
        }
    };
    let mirroring = async {
        let gone = |why: &str| -> Result<(), String> { Err(why.to_owned()) };
        for change in &snapshot {
            if let Some(d) = ours.apply(change) {
                out.apply(d).await?;
            }
        }
        let mut retry = tokio::time::interval(RETRY_EVERY);
        loop {
            let counts = |out: &Mirror, inn: &Mirror| {
                (
                    out.counts(),
                    inn.counts(),
                    out.conflict_list(),
                    inn.conflict_list(),
                )
            };
            tokio::select! {
                change = changes.recv() => {
                    let Some(change) = change else { return gone("the realm is gone") };
                    if let Some(d) = ours.apply(&change) {
                        out.apply(d).await?;
                    }
                }
                item = theirs.progress() => match item {
                    Some(Ok(batch)) => {
                        for v in batch.args.first().and_then(Value::as_list).unwrap_or_default() {
                            if let Some(d) = Delta::from_value(v) {
                                inn.apply(d).await?;
                            }
                        }
                    }
                    Some(Err(Lagged(n))) => {
                        return Err(format!("{n} interest changes of the other router were lost; resyncing"));
                    }
                    None => return Err(format!("the other router ended the link protocol: {:?}", theirs.result().await.err())),
                },
                _ = retry.tick() => {
                    out.retry().await?;
                    inn.retry().await?;
                    if let Some(why) = duplicate_pair(ctx, realm, &remote_node, Some(local.id())) {
                        return Err(why);
                    }
                    if ctx.table.earlier_up_to(realm.name(), &remote_node, &link.id) {
                        return Err(format!("another link of this router is up to router {remote_node} on this realm"));
                    }
                }
            }
            let (o, i, mut co, ci) = counts(&out, &inn);
            co.extend(ci);
            ctx.table.update(realm.name(), &link.id, |s| {
                s.mirrored_out = o;
                s.mirrored_in = i;
                s.conflicts = co;
            });
        }
    };
    let ended = tokio::select! {
        why = relays => Ended::Failed(why),
        Err(why) = mirroring => Ended::Failed(why),
        reason = remote.closed() => Ended::Failed(format!("the other router closed the link: {reason}")),
        reason = local.closed() => Ended::Failed(format!("the local end closed: {reason}")),
    };
    // Everything mirrored here goes with the local end: calls in flight through it fail with
    // `wamp.error.canceled`, and nothing routes to the other router any more.
    let _ = tokio::time::timeout(LEAVE_TIMEOUT, local.leave()).await;
    ended
}

/// Why this link must not be up: another of ours already goes to the same router on this realm,
/// or that router links to us and, having the lower node id, keeps its link.
fn duplicate(
    ctx: &LinkContext,
    link: &LinkConfig,
    realm: &crate::realm::Realm,
    remote_node: &str,
) -> Option<String> {
    if remote_node == ctx.key.node_id {
        return Some("the link leads back to this router".into());
    }
    if !remote_node.is_empty() && ctx.table.up_to(realm.name(), remote_node, &link.id) {
        return Some(format!(
            "another link of this router is up to router {remote_node} on this realm"
        ));
    }
    duplicate_pair(ctx, realm, remote_node, None)
}

/// Where two routers link to each other on one realm, the link from the lower node id stays.
/// `local_end` is this link's own session here, which is not theirs.
fn duplicate_pair(
    ctx: &LinkContext,
    realm: &crate::realm::Realm,
    remote_node: &str,
    local_end: Option<Id>,
) -> Option<String> {
    let theirs_here = realm
        .sessions()
        .iter()
        .any(|p| Some(p.id().0) != local_end && p.link().is_some_and(|l| l.node == remote_node));
    (theirs_here && !remote_node.is_empty() && ctx.key.node_id.as_str() > remote_node).then(|| {
        format!(
            "router {remote_node} links to this router on this realm already, and its link is kept"
        )
    })
}

/// Checks that the other router answers, as `ping` says; returns why it does not.
async fn ping(remote: &Session, link: &LinkConfig) -> String {
    let p = link.extra.ping.as_ref();
    let interval = p.and_then(|p| p.interval).unwrap_or(10.0);
    let timeout = p.and_then(|p| p.timeout).unwrap_or(5.0);
    if !(interval.is_finite() && interval > 0.0) {
        return std::future::pending().await;
    }
    let timeout = Duration::from_secs_f64(timeout.max(0.001));
    loop {
        tokio::time::sleep(Duration::from_secs_f64(interval)).await;
        let answered =
            tokio::time::timeout(timeout, remote.call(LINK_PING_PROCEDURE, Args::default())).await;
        match answered {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return format!("the other router did not answer the ping: {e}"),
            Err(_) => {
                return format!("the other router did not answer the ping within {timeout:?}");
            }
        }
    }
}

/// What relaying needs to know.
#[derive(Debug)]
struct Relay {
    /// The node id of the router the relayed messages were sent on, for the first `forward_for`
    /// hop: the other router for what comes in, this one for what goes out.
    origin_node: String,
    /// Authids that do not get events the link brings in (Crossbar's `exclude_authid`).
    exclude_authid: Vec<String>,
}

impl Relay {
    /// `forward_for` of a message relayed on: as received when it came over a link, else the
    /// sender (disclosed to the link under `prefix`) as the first hop, on the router it was
    /// sent on, with the publication id of an event.
    fn forward_for(&self, details: &Dict, prefix: &str, publication: Option<Id>) -> Value {
        if let Some(hops) = details.get("forward_for") {
            return hops.clone();
        }
        let mut hop = crate::delivery::hop_from_details(details, prefix);
        hop.insert(HOP_NODE_KEY.into(), self.origin_node.as_str().into());
        if let Some(publication) = publication {
            hop.insert(HOP_PUBLICATION_KEY.into(), publication.into());
        }
        Value::List(vec![Value::Dict(hop)])
    }
}

/// Whether ordinary receivers here would have been told who sent it.
fn disclosed(details: &Dict) -> bool {
    details
        .get(DISCLOSE_KEY)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// One direction of mirroring: interest of one router mirrored on `target`, its traffic handed
/// to the other router's end.
struct Mirror {
    target: Session,
    feed: EventFeed,
    calls: mpsc::UnboundedSender<CallJob>,
    relay: Arc<Relay>,
    mirrored: HashMap<Key, Id>,
    /// Registrations `target` refused, with their invocation policy, retried.
    conflicts: HashMap<Key, (InvokePolicy, String)>,
}

impl Mirror {
    fn new(target: Session, calls: mpsc::UnboundedSender<CallJob>, relay: Arc<Relay>) -> Self {
        Self {
            target,
            feed: EventFeed::new(FEED_CAPACITY),
            calls,
            relay,
            mirrored: HashMap::new(),
            conflicts: HashMap::new(),
        }
    }

    /// Subscriptions and registrations mirrored.
    fn counts(&self) -> [usize; 2] {
        let subs = self.mirrored.keys().filter(|k| k.subscription).count();
        [subs, self.mirrored.len() - subs]
    }

    fn conflict_list(&self) -> Vec<String> {
        self.conflicts
            .iter()
            .map(|(k, (_, why))| format!("{} ({}): {why}", k.uri, k.policy.as_str()))
            .collect()
    }

    /// Applies one interest change; `Err` when the target's session is gone.
    async fn apply(&mut self, delta: Delta) -> Result<(), String> {
        if delta.added {
            if self.mirrored.contains_key(&delta.key) {
                return Ok(());
            }
            return self.add(delta.key, delta.invoke).await;
        }
        self.conflicts.remove(&delta.key);
        let Some(id) = self.mirrored.remove(&delta.key) else {
            return Ok(());
        };
        let removed = if delta.key.subscription {
            self.target.unsubscribe(id).await
        } else {
            self.target.unregister(id).await
        };
        match removed {
            Err(Error::Closed | Error::Transport(_) | Error::Io(_)) => {
                Err("the session went away".into())
            }
            _ => Ok(()),
        }
    }

    async fn add(&mut self, key: Key, invoke: InvokePolicy) -> Result<(), String> {
        let added = if key.subscription {
            let options = SubscribeOptions::matching(key.policy);
            self.target
                .subscribe_into(&key.uri, options, &self.feed)
                .await
        } else {
            let options = RegisterOptions {
                match_policy: key.policy,
                invoke,
                ..RegisterOptions::default()
            };
            let (calls, relay) = (self.calls.clone(), self.relay.clone());
            self.target
                .register(&key.uri, options, move |inv| {
                    relay_call(&calls, &relay, inv)
                })
                .await
        };
        match added {
            Ok(id) => {
                self.conflicts.remove(&key);
                self.mirrored.insert(key, id);
                Ok(())
            }
            Err(Error::Wamp { uri, args, .. }) => {
                let text = args.first().and_then(Value::as_str).unwrap_or("");
                tracing::warn!(uri = %key.uri, "link: cannot mirror: {uri} {text}");
                if !key.subscription {
                    self.conflicts.insert(key, (invoke, uri));
                }
                Ok(())
            }
            Err(e) => Err(format!("mirroring {} failed: {e}", key.uri)),
        }
    }

    /// Tries the refused registrations again.
    async fn retry(&mut self) -> Result<(), String> {
        let refused: Vec<(Key, InvokePolicy)> = self
            .conflicts
            .iter()
            .map(|(k, (i, _))| (k.clone(), *i))
            .collect();
        for (key, invoke) in refused {
            self.add(key, invoke).await?;
        }
        Ok(())
    }
}

/// A call to pass on, in the order the invocations came.
struct CallJob {
    procedure: String,
    args: Args,
    options: CallOptions,
    reply: oneshot::Sender<Result<CallHandle, Error>>,
}

/// The handler of a mirrored registration: queues the call for the other router's end (in
/// order), then relays its progressive results and its result or error, and cancels it there
/// when the caller here cancels.
fn relay_call(
    calls: &mpsc::UnboundedSender<CallJob>,
    relay: &Relay,
    inv: Invocation,
) -> impl std::future::Future<Output = Result<Args, CallError>> + Send + use<> {
    let details = inv.details();
    let mut extra = Dict::new();
    extra.insert(
        "forward_for".into(),
        relay.forward_for(details, "caller", None),
    );
    let options = CallOptions {
        timeout: details
            .get("timeout")
            .and_then(Value::as_u64)
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis),
        receive_progress: inv.receive_progress(),
        disclose_me: disclosed(details),
        extra,
        ..CallOptions::default()
    };
    let (reply, handle) = oneshot::channel();
    let queued = calls
        .send(CallJob {
            procedure: inv.procedure().to_owned(),
            args: inv.args.clone(),
            options,
            reply,
        })
        .is_ok();
    async move {
        let lost = |why: String| {
            CallError::new(switchboard_proto::errors::CANCELED)
                .with_args(Args::positional(vec![why.into()]))
        };
        if !queued {
            return Err(lost("the link is closing".into()));
        }
        let handle = match handle.await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return Err(to_call_error(e)),
            Err(_) => return Err(lost("the link is closing".into())),
        };
        let mut call = CancelOnDrop(Some(handle));
        let handle = call.0.as_mut().expect("set above");
        while let Some(progress) = handle.progress().await {
            if let Ok(args) = progress {
                let _ = inv.progress(args).await;
            }
        }
        let outcome = handle.result().await;
        call.0 = None;
        outcome.map_err(to_call_error)
    }
}

/// The other router's answer as this router's caller gets it: an ERROR keeps its URI and payload.
fn to_call_error(e: Error) -> CallError {
    super::super::relayed_call_error(e, "the link lost the call")
}

/// A call passed on, canceled there if its invocation here ends first (INTERRUPT drops the
/// handler's future).
struct CancelOnDrop(Option<CallHandle>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            tokio::spawn(async move {
                let _ = handle.cancel(CancelMode::Kill).await;
            });
        }
    }
}

/// Issues the queued calls on `to`, in order; returns why it stopped.
async fn dispatch_calls(mut jobs: mpsc::UnboundedReceiver<CallJob>, to: Session) -> String {
    while let Some(job) = jobs.recv().await {
        let handle = to.call_handle(&job.procedure, job.args, job.options).await;
        let closed = matches!(handle, Err(Error::Closed));
        let _ = job.reply.send(handle);
        if closed {
            return "the session went away".into();
        }
    }
    std::future::pending().await
}

/// Publishes the events of `feed` on `to`, in order; returns why it stopped.
async fn relay_events(
    feed: EventFeed,
    to: Session,
    relay: Arc<Relay>,
    on_slow: OnSlow,
    dropped: &impl Fn(u64),
) -> String {
    while let Some(item) = feed.next().await {
        match item {
            Ok(event) => {
                let mut extra = Dict::new();
                extra.insert(
                    "forward_for".into(),
                    relay.forward_for(&event.details, "publisher", Some(event.publication)),
                );
                let list = |key: &str| -> Option<Vec<String>> {
                    event.details.get(key).and_then(Value::as_list).map(|l| {
                        l.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                };
                let mut exclude_authid = relay.exclude_authid.clone();
                exclude_authid.extend(list("exclude_authid").unwrap_or_default());
                let options = PublishOptions {
                    exclude_authid,
                    exclude_authrole: list("exclude_authrole").unwrap_or_default(),
                    eligible_authid: list("eligible_authid"),
                    eligible_authrole: list("eligible_authrole"),
                    disclose_me: disclosed(&event.details),
                    extra,
                    ..PublishOptions::default()
                };
                if let Err(e) = to.publish(&event.topic, event.args, options).await {
                    return format!("cannot relay an event: {e}");
                }
            }
            Err(Lagged(n)) => {
                dropped(n);
                if on_slow == OnSlow::Disconnect {
                    return format!(
                        "{n} events waited too long for the other router (on_slow: disconnect)"
                    );
                }
                tracing::warn!("link: {n} events dropped: the other router does not keep up");
            }
        }
    }
    "the session ended".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_maximum_and_gives_up_after_max_retries() {
        let link: LinkConfig = {
            let cfg: crate::config::NodeConfig = serde_json::from_str(
                r#"{"version": 2, "workers": [{"type": "router", "links": [{"type": "rawsocket",
                  "endpoint": "tcp:127.0.0.1:1", "realms": "any",
                  "reconnect": {"initial_ms": 100, "max_ms": 300, "growth": 2, "jitter": "none", "max_retries": 4}}]}]}"#,
            )
            .expect("config");
            crate::config::LinkConfig::all(&cfg).remove(0)
        };
        let mut b = Backoff::new(&link);
        let delays: Vec<_> = std::iter::from_fn(|| b.next()).collect();
        assert_eq!(
            delays,
            [100, 200, 300, 300].map(Duration::from_millis).to_vec()
        );
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(100)));
    }
}
