//! The management API: `switchboard.*` procedures and events served by an in-process session of
//! the node, on the realm `controller.management` names and on the control socket's realm. The
//! realm's roles decide who may call what: the API is an ordinary callee, authorized like any.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard_client::{Args, CallError, Invocation, PublishOptions, RegisterOptions, Session};
use switchboard_proto::{Dict, Value};
use tokio_util::sync::CancellationToken;

use super::meta_republish::served;
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
/// Who the caller is and which of the API's actions its role allows (the console shows only
/// those buttons; every call is checked by the router anyway).
pub const ACCESS_GET: &str = "switchboard.access.get";
/// Closes a session of any realm (`realm`, `session`, `reason`, `message`).
pub const SESSION_KILL: &str = "switchboard.session.kill";
/// The subscriptions of a realm, with their subscriber counts.
pub const SUBSCRIPTION_LIST: &str = "switchboard.subscription.list";
/// The registrations of a realm, with their callee counts.
pub const REGISTRATION_LIST: &str = "switchboard.registration.list";
/// The node's workers: its router and its guest workers.
pub const WORKER_LIST: &str = "switchboard.worker.list";
/// The latest output lines of a guest worker.
pub const WORKER_LOG: &str = "switchboard.worker.log";
/// Stops a guest worker and starts it again.
pub const WORKER_RESTART: &str = "switchboard.worker.restart";
/// Stops a guest worker until it is started.
pub const WORKER_STOP: &str = "switchboard.worker.stop";
/// Starts a guest worker that is not running.
pub const WORKER_START: &str = "switchboard.worker.start";
/// The transports the node listens on, with their TLS certificates' expiry.
pub const TRANSPORT_LIST: &str = "switchboard.transport.list";
/// The TLS certificates of the transports: subject, names, expiry.
pub const TLS_GET_CERTIFICATES: &str = "switchboard.tls.get_certificates";
/// The node's links to other routers and their state.
pub const LINK_LIST: &str = "switchboard.link.list";
/// The cluster this node is in: its nodes, their realms and health, and each realm's figures.
pub const CLUSTER_STATUS: &str = "switchboard.cluster.status";
/// What [`CLUSTER_STATUS`] answers on a node that is in no cluster.
pub const NO_CLUSTER: &str = "switchboard.error.no_cluster";
/// The process's log filter.
pub const LOG_LEVEL_GET: &str = "switchboard.log.level.get";
/// Sets the process's log filter (`debug`, or `switchboard_router=debug,info`).
pub const LOG_LEVEL_SET: &str = "switchboard.log.level.set";

/// Adds a realm to the running config: `(config, worker=None)`.
pub const REALM_ADD: &str = "switchboard.realm.add";
/// Removes a realm from the running config: `(name)`.
pub const REALM_REMOVE: &str = "switchboard.realm.remove";
/// The roles of a realm as configured: `(realm)`.
pub const ROLE_LIST: &str = "switchboard.role.list";
/// Adds a role to a realm of the running config: `(realm, config)`.
pub const ROLE_ADD: &str = "switchboard.role.add";
/// Removes a role from a realm of the running config: `(realm, name)`.
pub const ROLE_REMOVE: &str = "switchboard.role.remove";
/// Starts a transport: `(config, worker=None)` for a new one, `(listen)` for a stopped one.
pub const TRANSPORT_START: &str = "switchboard.transport.start";
/// Stops a transport: `(listen)`, where `switchboard.transport.list` says it listens.
pub const TRANSPORT_STOP: &str = "switchboard.transport.stop";

/// The API's procedures that change something: what [`ACCESS_GET`] answers about.
pub const ACTIONS: &[&str] = &[
    SESSION_KILL,
    REALM_ADD,
    REALM_REMOVE,
    ROLE_ADD,
    ROLE_REMOVE,
    TRANSPORT_START,
    TRANSPORT_STOP,
    WORKER_RESTART,
    WORKER_STOP,
    WORKER_START,
    CONFIG_RELOAD,
    LOG_LEVEL_SET,
    SHUTDOWN,
];

/// What the API reads and acts on.
#[derive(Clone)]
pub(super) struct Node {
    pub realms: Arc<RealmRegistry>,
    pub status: Arc<NodeStatus>,
    pub stop_requested: CancellationToken,
    pub reloader: Arc<super::reload::Reloader>,
    /// The guest workers (and the processes of hosted components).
    pub workers: super::guest::GuestSupervisor,
    /// The ids of the router workers.
    pub router_ids: Vec<String>,
    pub links: Arc<super::links::LinkTable>,
    /// The cluster's state, where the node is in one.
    pub cluster: Option<Arc<super::cluster::ClusterTable>>,
}

/// Registers the API for `session`; with `publish_stats`, also publishes
/// [`STATS_ON_UPDATE`] every second while the session lasts.
pub(super) async fn serve(
    session: &Session,
    realm: &str,
    node: Node,
    publish_stats: bool,
) -> Result<(), switchboard_client::Error> {
    serve_operations(session, realm, &node).await?;
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

/// Registers the procedures on sessions, subscriptions, workers, transports and links of
/// `session`, which serves the API on `realm`.
async fn serve_operations(
    session: &Session,
    realm: &str,
    node: &Node,
) -> Result<(), switchboard_client::Error> {
    let (realms, api_realm) = (node.realms.clone(), realm.to_owned());
    session
        .register(ACCESS_GET, RegisterOptions::default(), move |inv| {
            let (realms, api_realm) = (realms.clone(), api_realm.clone());
            async move { Ok(Args::new(Vec::new(), access(&realms, &api_realm, &inv))) }
        })
        .await?;
    let realms = node.realms.clone();
    session
        .register(SESSION_KILL, RegisterOptions::default(), move |inv| {
            let realms = realms.clone();
            async move { session_kill(&realms, &inv) }
        })
        .await?;
    for (procedure, subscriptions) in [(SUBSCRIPTION_LIST, true), (REGISTRATION_LIST, false)] {
        let realms = node.realms.clone();
        session
            .register(procedure, RegisterOptions::default(), move |inv| {
                let realms = realms.clone();
                async move {
                    let realm = realm_arg(&realms, &inv)?;
                    let list = if subscriptions {
                        interest_list(&realm, "subscription", "subscribers").await?
                    } else {
                        interest_list(&realm, "registration", "callees").await?
                    };
                    Ok(Args::positional(vec![Value::List(list)]))
                }
            })
            .await?;
    }
    let n = node.clone();
    session
        .register(WORKER_LIST, RegisterOptions::default(), move |_| {
            let n = n.clone();
            async move { Ok(Args::positional(vec![Value::List(worker_list(&n))])) }
        })
        .await?;
    let workers = node.workers.clone();
    session
        .register(WORKER_LOG, RegisterOptions::default(), move |inv| {
            let workers = workers.clone();
            async move {
                let worker = worker_arg(&workers.handles(), &inv)?;
                let lines = inv
                    .positional()
                    .get(1)
                    .or_else(|| inv.kwargs().get("lines"))
                    .and_then(Value::as_u64)
                    .unwrap_or(200) as usize;
                let log = worker.view().log;
                let tail: Vec<Value> = log
                    .iter()
                    .skip(log.len().saturating_sub(lines))
                    .map(|l| l.as_str().into())
                    .collect();
                Ok(Args::positional(vec![Value::List(tail)]))
            }
        })
        .await?;
    for (procedure, command) in [
        (WORKER_RESTART, super::guest::GuestCommand::Restart),
        (WORKER_STOP, super::guest::GuestCommand::Stop),
        (WORKER_START, super::guest::GuestCommand::Start),
    ] {
        let workers = node.workers.clone();
        session
            .register(procedure, RegisterOptions::default(), move |inv| {
                let workers = workers.clone();
                async move {
                    let worker = worker_arg(&workers.handles(), &inv)?;
                    tracing::info!(worker = %worker.id, "{procedure} called through the management API");
                    if !worker.command(command) {
                        return Err(invalid("the worker is no longer supervised"));
                    }
                    Ok(Args::default())
                }
            })
            .await?;
    }
    let reloader = node.reloader.clone();
    session
        .register(TRANSPORT_LIST, RegisterOptions::default(), move |_| {
            let reloader = reloader.clone();
            async move {
                Ok(Args::positional(vec![Value::List(
                    reloader.transports().await,
                )]))
            }
        })
        .await?;
    let reloader = node.reloader.clone();
    session
        .register(
            TLS_GET_CERTIFICATES,
            RegisterOptions::default(),
            move |_| {
                let reloader = reloader.clone();
                async move {
                    let certificates = reloader
                        .transports()
                        .await
                        .into_iter()
                        .filter_map(|t| {
                            let t = t.as_dict()?;
                            let mut tls = t.get("tls")?.as_dict()?.clone();
                            tls.insert("listen".into(), t.get("listen")?.clone());
                            Some(Value::Dict(tls))
                        })
                        .collect();
                    Ok(Args::positional(vec![Value::List(certificates)]))
                }
            },
        )
        .await?;
    session
        .register(LOG_LEVEL_GET, RegisterOptions::default(), |_| async {
            match crate::ops::log::get() {
                Some(level) => Ok(Args::positional(vec![level.into()])),
                None => Err(CallError::new("switchboard.error.not_available").with_args(
                    Args::positional(vec!["this process has no changeable log level".into()]),
                )),
            }
        })
        .await?;
    session
        .register(
            LOG_LEVEL_SET,
            RegisterOptions::default(),
            |inv| async move {
                let filter = inv
                    .positional()
                    .first()
                    .or_else(|| inv.kwargs().get("level"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("level: expected a log level or filter"))?;
                crate::ops::log::set(filter).map_err(|e| invalid(&e))?;
                tracing::info!("log level set to {filter} through the management API");
                Ok(Args::positional(vec![filter.into()]))
            },
        )
        .await?;
    serve_config_edits(session, node).await?;
    let cluster = node.cluster.clone();
    session
        .register(CLUSTER_STATUS, RegisterOptions::default(), move |_| {
            let cluster = cluster.clone();
            async move {
                match cluster {
                    Some(table) => Ok(Args::positional(vec![table.to_value()])),
                    None => Err(CallError::new(NO_CLUSTER).with_args(Args::positional(vec![
                        "this node is in no cluster (its router worker has no `cluster` section)"
                            .into(),
                    ]))),
                }
            }
        })
        .await?;
    let links = node.links.clone();
    session
        .register(LINK_LIST, RegisterOptions::default(), move |_| {
            let links = links.clone();
            async move {
                let list = links
                    .all()
                    .iter()
                    .map(super::links::LinkState::to_value)
                    .collect();
                Ok(Args::positional(vec![Value::List(list)]))
            }
        })
        .await?;
    Ok(())
}

/// Registers the procedures that add and remove realms, roles and transports: edits of the
/// running config, applied as a reload applies a changed file (`super::reload`).
async fn serve_config_edits(
    session: &Session,
    node: &Node,
) -> Result<(), switchboard_client::Error> {
    /// The edit asked for by an invocation.
    enum Edit {
        AddRealm,
        RemoveRealm,
        AddRole,
        RemoveRole,
        StartTransport,
        StopTransport,
    }
    for (procedure, edit) in [
        (REALM_ADD, Edit::AddRealm),
        (REALM_REMOVE, Edit::RemoveRealm),
        (ROLE_ADD, Edit::AddRole),
        (ROLE_REMOVE, Edit::RemoveRole),
        (TRANSPORT_START, Edit::StartTransport),
        (TRANSPORT_STOP, Edit::StopTransport),
    ] {
        let reloader = node.reloader.clone();
        let edit = Arc::new(edit);
        session
            .register(procedure, RegisterOptions::default(), move |inv| {
                let (reloader, edit) = (reloader.clone(), edit.clone());
                async move {
                    let kwargs = inv.kwargs();
                    let arg = |i: usize, key: &str| {
                        inv.positional()
                            .get(i)
                            .or_else(|| kwargs.get(key))
                            .filter(|v| !matches!(v, Value::Null))
                    };
                    let text = |i: usize, key: &str| {
                        arg(i, key)
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                            .ok_or_else(|| invalid(&format!("{key}: expected a string")))
                    };
                    let section = |i: usize, key: &str| {
                        arg(i, key)
                            .filter(|v| matches!(v, Value::Dict(_)))
                            .and_then(|v| serde_json::to_value(v).ok())
                            .ok_or_else(|| invalid(&format!("{key}: expected its config, a dict")))
                    };
                    let worker = arg(1, "worker").and_then(Value::as_str).map(str::to_owned);
                    tracing::info!("{procedure} called through the management API");
                    let report = match *edit {
                        Edit::AddRealm => {
                            reloader
                                .add_realm(section(0, "config")?, worker.as_deref())
                                .await
                        }
                        Edit::RemoveRealm => reloader.remove_realm(&text(0, "name")?).await,
                        Edit::AddRole => {
                            reloader
                                .add_role(&text(0, "realm")?, section(1, "config")?)
                                .await
                        }
                        Edit::RemoveRole => {
                            reloader
                                .remove_role(&text(0, "realm")?, &text(1, "name")?)
                                .await
                        }
                        Edit::StartTransport => {
                            let transport = match arg(0, "config").and_then(Value::as_str) {
                                Some(listen) => serde_json::Value::from(listen),
                                None => section(0, "config")?,
                            };
                            reloader.start_transport(transport, worker.as_deref()).await
                        }
                        Edit::StopTransport => reloader.stop_transport(&text(0, "listen")?).await,
                    };
                    edit_result(report)
                }
            })
            .await?;
    }
    let reloader = node.reloader.clone();
    session
        .register(ROLE_LIST, RegisterOptions::default(), move |inv| {
            let reloader = reloader.clone();
            async move {
                let realm = inv
                    .positional()
                    .first()
                    .or_else(|| inv.kwargs().get("realm"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("realm: expected a realm name"))?
                    .to_owned();
                let roles = reloader.roles(&realm).await.ok_or_else(|| {
                    CallError::new("wamp.error.no_such_realm").with_args(Args::positional(vec![
                        format!("no configured realm {realm}").into(),
                    ]))
                })?;
                let roles = serde_json::from_value(roles).unwrap_or(Value::Null);
                Ok(Args::positional(vec![roles]))
            }
        })
        .await?;
    Ok(())
}

/// An edit's report as the call's result, or as its error (`wamp.error.invalid_argument` with
/// the problems as args and the report as kwargs) when nothing was applied.
fn edit_result(report: super::reload::ReloadReport) -> Result<Args, CallError> {
    if report.ok() {
        return Ok(Args::new(Vec::new(), report.to_dict()));
    }
    let problems = report.errors.iter().map(|e| e.as_str().into()).collect();
    Err(CallError::new(switchboard_proto::errors::INVALID_ARGUMENT)
        .with_args(Args::new(problems, report.to_dict())))
}

/// An `invalid_argument` error saying `what`.
fn invalid(what: &str) -> CallError {
    CallError::new(switchboard_proto::errors::INVALID_ARGUMENT)
        .with_args(Args::positional(vec![what.into()]))
}

/// The realm a call names (first argument or `realm`).
fn realm_arg(realms: &RealmRegistry, inv: &Invocation) -> Result<Arc<Realm>, CallError> {
    let name = inv
        .positional()
        .first()
        .or_else(|| inv.kwargs().get("realm"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("realm: expected a realm name"))?;
    served(realms)
        .into_iter()
        .find(|r| r.name() == name)
        .ok_or_else(|| {
            CallError::new("wamp.error.no_such_realm")
                .with_args(Args::positional(vec![format!("no realm {name}").into()]))
        })
}

/// The guest worker a call names (first argument or `worker`).
fn worker_arg(
    workers: &[Arc<super::guest::GuestHandle>],
    inv: &Invocation,
) -> Result<Arc<super::guest::GuestHandle>, CallError> {
    let id = inv
        .positional()
        .first()
        .or_else(|| inv.kwargs().get("worker"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("worker: expected a guest worker id"))?;
    workers.iter().find(|w| w.id == id).cloned().ok_or_else(|| {
        CallError::new("switchboard.error.no_such_worker").with_args(Args::positional(vec![
            format!("no guest worker {id} (the router worker cannot be restarted)").into(),
        ]))
    })
}

/// `switchboard.access.get`: the caller's identity and, per action, whether its role on the
/// API's realm allows it (a role with a dynamic authorizer: `true`, its authorizer decides).
fn access(realms: &RealmRegistry, api_realm: &str, inv: &Invocation) -> Dict {
    let role = inv.caller_authrole().unwrap_or_default().to_owned();
    let compiled = realms.get(api_realm).and_then(|r| r.role(&role));
    let mut may = Dict::new();
    for action in ACTIONS {
        let allowed = match &compiled {
            Some(r) if r.authorizer().is_some() => true,
            Some(r) => r.may(crate::realm::authz::Action::Call, action),
            // The control socket's sessions and the node's own: everything.
            None => api_realm == CONTROL_REALM,
        };
        may.insert((*action).into(), allowed.into());
    }
    let mut out = Dict::new();
    out.insert(
        "authid".into(),
        inv.caller_authid().unwrap_or_default().into(),
    );
    out.insert("authrole".into(), role.into());
    out.insert("may".into(), Value::Dict(may));
    out
}

/// `switchboard.session.kill(realm, session, reason=wamp.close.killed, message=None)`.
fn session_kill(realms: &RealmRegistry, inv: &Invocation) -> Result<Args, CallError> {
    let realm = realm_arg(realms, inv)?;
    let id = inv
        .positional()
        .get(1)
        .or_else(|| inv.kwargs().get("session"))
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("session: expected a session id"))?;
    let Some(peer) = realm.session(crate::peer::SessionId(id)) else {
        return Err(
            CallError::new("wamp.error.no_such_session").with_args(Args::positional(vec![
                format!("no session {id} in realm {}", realm.name()).into(),
            ])),
        );
    };
    let reason = inv
        .kwargs()
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or(switchboard_proto::errors::CLOSE_KILLED);
    let message = inv
        .kwargs()
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned);
    tracing::info!(
        realm = realm.name(),
        session = id,
        "session killed through the management API"
    );
    peer.kill(reason, message);
    Ok(Args::positional(vec![1u64.into()]))
}

/// The subscriptions (`kind` `subscription`, counted by `subscribers`) or registrations
/// (`registration`, counted by `callees`) of `realm`, each as `wamp.<kind>.get` describes it plus
/// its count: asked through the realm's meta API by the router's own session of that realm, like
/// any session would ask. One that goes between the list and its details is left out.
async fn interest_list(realm: &Realm, kind: &str, count: &str) -> Result<Vec<Value>, CallError> {
    let timeout = Duration::from_secs(10);
    let failed = |e: crate::realm::router_caller::CallFailure| {
        CallError::new("switchboard.error.internal").with_args(Args::positional(vec![
            format!("wamp.{kind}.list: {e:?}").into(),
        ]))
    };
    let by_policy = realm
        .router_call(&format!("wamp.{kind}.list"), Vec::new(), timeout)
        .await
        .map_err(failed)?;
    let ids: Vec<Value> = ["exact", "prefix", "wildcard"]
        .iter()
        .filter_map(|policy| {
            by_policy
                .as_dict()?
                .get(*policy)?
                .as_list()
                .map(<[Value]>::to_vec)
        })
        .flatten()
        .collect();
    let mut list = Vec::with_capacity(ids.len());
    for id in ids {
        let details = realm
            .router_call(&format!("wamp.{kind}.get"), vec![id.clone()], timeout)
            .await;
        let n = realm
            .router_call(&format!("wamp.{kind}.count_{count}"), vec![id], timeout)
            .await;
        if let (Ok(Value::Dict(mut d)), Ok(n)) = (details, n) {
            d.insert(count.into(), n);
            list.push(Value::Dict(d));
        }
    }
    Ok(list)
}

/// The router workers (this process) and the guest workers with their state.
fn worker_list(node: &Node) -> Vec<Value> {
    let mut list = Vec::new();
    for id in &node.router_ids {
        let mut d = Dict::new();
        d.insert("id".into(), id.as_str().into());
        d.insert("type".into(), "router".into());
        d.insert("state".into(), "running".into());
        d.insert("pid".into(), u64::from(std::process::id()).into());
        d.insert("restarts".into(), 0u64.into());
        d.insert("exit_code".into(), Value::Null);
        d.insert("ready".into(), node.status.is_ready().into());
        list.push(Value::Dict(d));
    }
    let not_ready = node.status.not_ready();
    for worker in &node.workers.handles() {
        let view = worker.view();
        let mut d = Dict::new();
        d.insert("id".into(), worker.id.as_str().into());
        d.insert("type".into(), worker.kind.into());
        d.insert("state".into(), view.state.into());
        d.insert(
            "pid".into(),
            view.pid.map_or(Value::Null, |p| u64::from(p).into()),
        );
        d.insert("restarts".into(), view.restarts.into());
        d.insert(
            "exit_code".into(),
            view.exit_code.map_or(Value::Null, |c| i64::from(c).into()),
        );
        d.insert(
            "last_exit".into(),
            view.last_exit.map_or(Value::Null, Value::from),
        );
        let waiting = format!("worker {}:", worker.id);
        let ready = view.state == "running" && !not_ready.iter().any(|n| n.starts_with(&waiting));
        d.insert("ready".into(), ready.into());
        list.push(Value::Dict(d));
    }
    list
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

/// `switchboard.session.list(realm=None, limit=50, offset=0, sort=None)`: a page of sessions with
/// their traffic, with `total`, `offset` and `limit` beside it. `sort` is `session`, `realm`,
/// `authid`, `messages_in`, `messages_out` or `joined` (`-` before it: descending), each then by
/// realm and session id; without it, sessions are ordered by realm and session id (`realm`).
fn session_list(realms: &RealmRegistry, inv: &Invocation) -> Result<Args, CallError> {
    /// What a page can be sorted by.
    const SESSION_SORTS: [&str; 6] = [
        "session",
        "realm",
        "authid",
        "messages_in",
        "messages_out",
        "joined",
    ];
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
    let (sort, descending) = match arg(3, "sort") {
        None | Some(Value::Null) => ("realm", false),
        Some(v) => {
            let text = v.as_str().unwrap_or_default();
            let (key, descending) = match text.strip_prefix('-') {
                Some(key) => (key, true),
                None => (text, false),
            };
            let key = SESSION_SORTS
                .into_iter()
                .find(|k| *k == key)
                .ok_or_else(|| {
                    bad(&format!(
                        "sort: expected one of {SESSION_SORTS:?}, with '-' before it for \
                         descending order"
                    ))
                })?;
            (key, descending)
        }
    };
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
    // Each session's traffic is read once, so that the order and the page agree.
    let mut sessions: Vec<(String, crate::peer::Peer, crate::peer::Traffic)> = chosen
        .iter()
        .flat_map(|r| {
            r.sessions().into_iter().map(move |p| {
                let traffic = p.traffic();
                (r.name().to_owned(), p, traffic)
            })
        })
        .collect();
    sessions.sort_by(|(realm_a, a, ta), (realm_b, b, tb)| {
        let by_key = match sort {
            "session" => a.id().cmp(&b.id()),
            "authid" => a.identity().authid.cmp(&b.identity().authid),
            "messages_in" => ta.messages_in.cmp(&tb.messages_in),
            "messages_out" => ta.messages_out.cmp(&tb.messages_out),
            "joined" => ta.joined.cmp(&tb.joined),
            _ => std::cmp::Ordering::Equal,
        };
        let by_key = if descending { by_key.reverse() } else { by_key };
        let by_realm = realm_a.cmp(realm_b);
        let by_realm = if descending && sort == "realm" {
            by_realm.reverse()
        } else {
            by_realm
        };
        by_key.then(by_realm).then(a.id().cmp(&b.id()))
    });
    let unix_seconds = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let total = sessions.len() as u64;
    let page: Vec<Value> = sessions
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(realm, p, traffic)| {
            let who = p.identity();
            let connection = p.connection();
            let mut d = Dict::new();
            d.insert("session".into(), p.id().0.into());
            d.insert("realm".into(), realm.into());
            d.insert("authid".into(), who.authid.clone().into());
            d.insert("authrole".into(), who.authrole.clone().into());
            d.insert("authmethod".into(), who.authmethod.into());
            d.insert("serializer".into(), p.serializer().name().into());
            d.insert("transport".into(), connection.transport.into());
            if connection != crate::peer::Connection::IN_PROCESS {
                let peer = crate::auth::peer_text(connection.peer_addr);
                d.insert("peer".into(), peer.into());
            }
            d.insert("messages_in".into(), traffic.messages_in.into());
            d.insert("messages_out".into(), traffic.messages_out.into());
            d.insert("bytes_in".into(), traffic.bytes_in.into());
            d.insert("bytes_out".into(), traffic.bytes_out.into());
            d.insert("outbox".into(), (traffic.outbox as u64).into());
            d.insert("joined".into(), unix_seconds(traffic.joined).into());
            let last_activity = unix_seconds(traffic.last_activity);
            d.insert("last_activity".into(), last_activity.into());
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
    /// A realm's totals at a tick: messages in, calls, events published, events delivered,
    /// calls that did not end in a result (error, refused, canceled, timeout), dropped messages.
    type Totals = [u64; 6];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: std::collections::HashMap<String, Totals> = Default::default();
    let mut last_at = tokio::time::Instant::now();
    let mut last_cpu = crate::ops::metrics::ProcSelf::read().map(|p| p.cpu_seconds);
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        let seconds = now.duration_since(last_at).as_secs_f64().max(0.001);
        last_at = now;
        let mut realms = Dict::new();
        let mut sessions = 0u64;
        for realm in served(&node.realms) {
            let s = realm.stats.snapshot();
            let totals: Totals = [
                s.messages_in.iter().sum::<u64>(),
                s.calls.iter().sum::<u64>(),
                s.events_published,
                s.events_delivered,
                s.calls.iter().skip(1).sum::<u64>(),
                s.dropped.iter().map(|(_, n)| n).sum::<u64>(),
            ];
            let before = last
                .insert(realm.name().to_owned(), totals)
                .unwrap_or(totals);
            let rate = |i: usize| (totals[i].saturating_sub(before[i]) as f64 / seconds).into();
            let count = realm.session_count() as u64;
            sessions += count;
            let mut d = Dict::new();
            d.insert("sessions".into(), count.into());
            d.insert("messages_in_per_s".into(), rate(0));
            d.insert("calls_per_s".into(), rate(1));
            d.insert("events_published_per_s".into(), rate(2));
            d.insert("events_delivered_per_s".into(), rate(3));
            d.insert("errors_per_s".into(), rate(4));
            d.insert("dropped_per_s".into(), rate(5));
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
        update.insert("sessions".into(), sessions.into());
        if let Some(process) = crate::ops::metrics::ProcSelf::read() {
            let cpu = last_cpu.map_or(0.0, |before| {
                (process.cpu_seconds - before).max(0.0) / seconds * 100.0
            });
            last_cpu = Some(process.cpu_seconds);
            update.insert("cpu_percent".into(), cpu.into());
            update.insert("rss_bytes".into(), process.resident_bytes.into());
        }
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
