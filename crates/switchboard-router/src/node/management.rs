//! The management API: `switchboard.*` procedures and events served by an in-process session of
//! the node, on the realm `controller.management` names and on the control socket's realm. The
//! realm's roles decide who may call what: the API is an ordinary callee, authorized like any.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard_client::{
    Args, CallError, Invocation, PublishOptions, RegisterOptions, Session, SubscribeOptions,
};
use switchboard_proto::{Dict, Value};
use tokio_util::sync::CancellationToken;

use crate::ops::NodeStatus;
use crate::realm::{CONTROL_REALM, Realm, RealmRegistry};

/// The node's status: pid, version, start, uptime, sessions per realm, readiness.
pub const GET_STATUS: &str = "switchboard.node.get_status";
/// Asks the node to shut down gracefully, as SIGTERM does.
pub const SHUTDOWN: &str = "switchboard.node.shutdown";
/// The realms with their sessions, subscriptions and registrations.
pub const REALM_LIST: &str = "switchboard.realm.list";
/// The sessions of a realm (or of all), a page at a time.
pub const SESSION_LIST: &str = "switchboard.session.list";
/// The metrics page, as the `metrics` web path serves it.
pub const METRICS_GET: &str = "switchboard.metrics.get";
/// Published every second with the node's counters and rates.
pub const STATS_ON_UPDATE: &str = "switchboard.stats.on_update";
/// Reads the config file again and applies what changed (`super::reload`); returns the report.
pub const CONFIG_RELOAD: &str = "switchboard.config.reload";
/// What a reload would do, with the config file or with the config text given, without doing it.
pub const CONFIG_CHECK: &str = "switchboard.config.check";
/// The running config, secrets masked, with the changes waiting for a restart.
pub const CONFIG_GET: &str = "switchboard.config.get";

/// The meta events of realm `realm` are republished as `switchboard.realm.<realm>.meta.<event>`
/// (`<event>` the meta topic after `wamp.`: `session.on_join`, `registration.on_create`, ...).
pub fn republished_meta_topic(realm: &str, meta_topic: &str) -> String {
    format!(
        "switchboard.realm.{realm}.meta.{}",
        meta_topic.strip_prefix("wamp.").unwrap_or(meta_topic)
    )
}

/// What the API reads and acts on.
#[derive(Clone)]
pub(super) struct Node {
    pub realms: Arc<RealmRegistry>,
    pub status: Arc<NodeStatus>,
    pub stop_requested: CancellationToken,
    pub reloader: Arc<super::reload::Reloader>,
}

/// Registers the API for `session`; with `publish_stats`, also publishes
/// [`STATS_ON_UPDATE`] every second while the session lasts.
pub(super) async fn serve(
    session: &Session,
    node: Node,
    publish_stats: bool,
) -> Result<(), switchboard_client::Error> {
    let n = node.clone();
    session
        .register(GET_STATUS, RegisterOptions::default(), move |_| {
            let n = n.clone();
            async move { Ok(Args::new(Vec::new(), node_status(&n.realms, &n.status))) }
        })
        .await?;
    let stop = node.stop_requested.clone();
    session
        .register(SHUTDOWN, RegisterOptions::default(), move |_| {
            let stop = stop.clone();
            async move {
                tracing::info!("shutdown asked for through the management API");
                stop.cancel();
                Ok::<_, CallError>(Args::default())
            }
        })
        .await?;
    let realms = node.realms.clone();
    session
        .register(REALM_LIST, RegisterOptions::default(), move |_| {
            let realms = realms.clone();
            async move {
                let list = served(&realms)
                    .iter()
                    .map(|r| {
                        let mut d = Dict::new();
                        d.insert("name".into(), r.name().into());
                        d.insert("sessions".into(), (r.session_count() as u64).into());
                        d.insert(
                            "subscriptions".into(),
                            (r.subscription_count() as u64).into(),
                        );
                        d.insert(
                            "registrations".into(),
                            (r.registration_count() as u64).into(),
                        );
                        Value::Dict(d)
                    })
                    .collect();
                Ok(Args::positional(vec![Value::List(list)]))
            }
        })
        .await?;
    let realms = node.realms.clone();
    session
        .register(SESSION_LIST, RegisterOptions::default(), move |inv| {
            let realms = realms.clone();
            async move { session_list(&realms, &inv) }
        })
        .await?;
    let n = node.clone();
    session
        .register(METRICS_GET, RegisterOptions::default(), move |_| {
            let n = n.clone();
            async move {
                crate::ops::metrics::render(&n.realms, &n.status)
                    .map(|text| Args::positional(vec![text.into()]))
                    .map_err(|e| {
                        CallError::new("switchboard.error.internal")
                            .with_args(Args::positional(vec![e.to_string().into()]))
                    })
            }
        })
        .await?;
    let reloader = node.reloader.clone();
    session
        .register(CONFIG_RELOAD, RegisterOptions::default(), move |_| {
            let reloader = reloader.clone();
            async move {
                tracing::info!("config reload asked for through the management API");
                let report = reloader.reload().await;
                Ok::<_, CallError>(Args::new(Vec::new(), report.to_dict()))
            }
        })
        .await?;
    let reloader = node.reloader.clone();
    session
        .register(CONFIG_CHECK, RegisterOptions::default(), move |inv| {
            let reloader = reloader.clone();
            async move {
                let text = inv
                    .positional()
                    .first()
                    .or_else(|| inv.kwargs().get("config"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let report = reloader.check(text.as_deref()).await;
                Ok::<_, CallError>(Args::new(Vec::new(), report.to_dict()))
            }
        })
        .await?;
    let reloader = node.reloader.clone();
    session
        .register(CONFIG_GET, RegisterOptions::default(), move |_| {
            let reloader = reloader.clone();
            async move { Ok::<_, CallError>(Args::new(Vec::new(), reloader.config().await)) }
        })
        .await?;
    if publish_stats {
        tokio::spawn(publish_stats_every_second(session.clone(), node));
    }
    Ok(())
}

/// Republishes every meta event of every served realm on the management session's realm, so
/// that one management session sees the whole node. Each realm is watched by a hidden
/// in-process session of the node that subscribes to `wamp.` (prefix) like any subscriber;
/// returns those sessions, which must live as long as the API.
pub(super) async fn republish_meta_events(
    management: &Session,
    realms: &RealmRegistry,
    in_process: &crate::embed::InProcess,
) -> Result<std::collections::HashMap<String, Session>, (String, switchboard_client::Error)> {
    let mut watchers = std::collections::HashMap::new();
    for realm in served(realms) {
        let name = realm.name().to_owned();
        let watcher = republish_realm(management, &name, in_process)
            .await
            .map_err(|e| (name.clone(), e))?;
        watchers.insert(name, watcher);
    }
    Ok(watchers)
}

/// Republishes the meta events of realm `name` through `management` (see
/// [`republish_meta_events`]), for as long as the returned watcher session lasts.
pub(super) async fn republish_realm(
    management: &Session,
    name: &str,
    in_process: &crate::embed::InProcess,
) -> Result<Session, switchboard_client::Error> {
    let identity =
        crate::embed::TrustedIdentity::new(name, "management", crate::realm::authz::TRUSTED_ROLE)
            .hidden();
    let watcher = in_process.join(identity).await?;
    let options = SubscribeOptions {
        match_policy: switchboard_proto::UriMatch::Prefix,
        ..SubscribeOptions::default()
    };
    let mut events = watcher.subscribe("wamp.", options).await?;
    let management = management.clone();
    let name = name.to_owned();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            // A lagging watcher skips what it missed: meta events are at most once anyway.
            let Ok(event) = event else { continue };
            let topic = republished_meta_topic(&name, &event.topic);
            if management
                .publish(&topic, event.args, PublishOptions::default())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(watcher)
}

/// The realms the API shows: the configured ones, not the control socket's.
fn served(realms: &RealmRegistry) -> Vec<Arc<Realm>> {
    let mut all: Vec<_> = realms
        .all()
        .into_iter()
        .filter(|r| r.name() != CONTROL_REALM)
        .collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}

/// `switchboard.node.get_status`: who runs, since when, and the sessions per realm.
pub(super) fn node_status(realms: &RealmRegistry, status: &NodeStatus) -> Dict {
    let now = SystemTime::now();
    let started = status
        .started_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let uptime = now.duration_since(status.started_at).unwrap_or_default();
    let mut per_realm = Dict::new();
    let mut total = 0u64;
    for realm in served(realms) {
        let n = realm.session_count() as u64;
        total += n;
        per_realm.insert(realm.name().to_owned(), n.into());
    }
    let not_ready: Vec<Value> = status.not_ready().into_iter().map(Value::from).collect();
    let mut out = Dict::new();
    out.insert("pid".into(), u64::from(std::process::id()).into());
    out.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    out.insert("started".into(), started.as_secs_f64().into());
    out.insert("uptime".into(), uptime.as_secs_f64().into());
    out.insert("sessions".into(), total.into());
    out.insert("realms".into(), per_realm.into());
    out.insert("ready".into(), not_ready.is_empty().into());
    out.insert("not_ready".into(), not_ready.into());
    out
}

/// `switchboard.session.list(realm=None, limit=50, offset=0)`: a page of sessions ordered by
/// realm and session id, with `total`, `offset` and `limit` beside it.
fn session_list(realms: &RealmRegistry, inv: &Invocation) -> Result<Args, CallError> {
    let kwargs = inv.kwargs();
    let arg = |i: usize, key: &str| inv.positional().get(i).or_else(|| kwargs.get(key));
    let bad = |what: &str| {
        CallError::new(switchboard_proto::errors::INVALID_ARGUMENT)
            .with_args(Args::positional(vec![what.into()]))
    };
    let realm = match arg(0, "realm") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .ok_or_else(|| bad("realm: expected a realm name"))?,
        ),
    };
    let limit = match arg(1, "limit") {
        None | Some(Value::Null) => 50,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| bad("limit: expected 1 to 1000"))?,
    } as usize;
    let offset = match arg(2, "offset") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad("offset: expected 0 or more"))?,
    } as usize;
    let chosen: Vec<_> = served(realms)
        .into_iter()
        .filter(|r| realm.is_none_or(|name| r.name() == name))
        .collect();
    if let Some(name) = realm
        && chosen.is_empty()
    {
        return Err(CallError::new("wamp.error.no_such_realm")
            .with_args(Args::positional(vec![format!("no realm {name}").into()])));
    }
    let mut sessions: Vec<(String, crate::peer::Peer)> = chosen
        .iter()
        .flat_map(|r| {
            r.sessions()
                .into_iter()
                .map(move |p| (r.name().to_owned(), p))
        })
        .collect();
    sessions.sort_by_key(|(realm, p)| (realm.clone(), p.id().0));
    let total = sessions.len() as u64;
    let page: Vec<Value> = sessions
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(realm, p)| {
            let who = p.identity();
            let mut d = Dict::new();
            d.insert("session".into(), p.id().0.into());
            d.insert("realm".into(), realm.into());
            d.insert("authid".into(), who.authid.clone().into());
            d.insert("authrole".into(), who.authrole.clone().into());
            d.insert("authmethod".into(), who.authmethod.into());
            d.insert("serializer".into(), p.serializer().name().into());
            Value::Dict(d)
        })
        .collect();
    let mut out = Dict::new();
    out.insert("total".into(), total.into());
    out.insert("offset".into(), (offset as u64).into());
    out.insert("limit".into(), (limit as u64).into());
    Ok(Args::new(vec![Value::List(page)], out))
}

/// Publishes [`STATS_ON_UPDATE`] every second: per realm, the sessions and the messages, calls
/// and events per second since the last tick; ends with the session.
async fn publish_stats_every_second(session: Session, node: Node) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: std::collections::HashMap<String, (u64, u64, u64, u64)> = Default::default();
    let mut last_at = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        let seconds = now.duration_since(last_at).as_secs_f64().max(0.001);
        last_at = now;
        let mut realms = Dict::new();
        for realm in served(&node.realms) {
            let s = realm.stats.snapshot();
            let totals = (
                s.messages_in.iter().sum::<u64>(),
                s.calls.iter().sum::<u64>(),
                s.events_published,
                s.events_delivered,
            );
            let before = last
                .insert(realm.name().to_owned(), totals)
                .unwrap_or(totals);
            let rate = |now: u64, then: u64| (now.saturating_sub(then) as f64 / seconds).into();
            let mut d = Dict::new();
            d.insert("sessions".into(), (realm.session_count() as u64).into());
            d.insert("messages_in_per_s".into(), rate(totals.0, before.0));
            d.insert("calls_per_s".into(), rate(totals.1, before.1));
            d.insert("events_published_per_s".into(), rate(totals.2, before.2));
            d.insert("events_delivered_per_s".into(), rate(totals.3, before.3));
            realms.insert(realm.name().to_owned(), Value::Dict(d));
        }
        let mut update = Dict::new();
        update.insert(
            "time".into(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
                .into(),
        );
        update.insert("realms".into(), Value::Dict(realms));
        if session
            .publish(
                STATS_ON_UPDATE,
                Args::new(Vec::new(), update),
                PublishOptions::default(),
            )
            .await
            .is_err()
        {
            return;
        }
    }
}
