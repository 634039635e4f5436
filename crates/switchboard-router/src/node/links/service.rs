//! Each realm's link service: a hidden in-process session of the router that answers the link
//! protocol (`switchboard.link.interest`, for links that connect to this router) and the link
//! meta procedures (`switchboard.link.list`, `switchboard.link.get`), and publishes
//! `switchboard.link.on_state`.

use std::sync::Arc;
use std::time::Duration;

use switchboard_client::{Args, CallError, Invocation, PublishOptions, RegisterOptions};
use switchboard_proto::{Dict, Value};

use super::interest::{Filter, Table};
use super::{LinkContext, LinkState, LinkTable};
use crate::config::{LinkDirection, LinkForwarding, LinkMode};
use crate::embed::TrustedIdentity;
use crate::locks::lock;
use crate::peer::SessionId;
use crate::realm::Realm;
use crate::realm::authz::{LINK_INTEREST_PROCEDURE, LINK_PING_PROCEDURE, TRUSTED_ROLE};

/// The authid of the link service's session.
pub const SERVICE_AUTHID: &str = "switchboard.link";

/// `switchboard.link.list`.
pub const LIST_PROCEDURE: &str = "switchboard.link.list";
/// `switchboard.link.get`.
pub const GET_PROCEDURE: &str = "switchboard.link.get";
/// The topic of link state changes.
pub const ON_STATE_TOPIC: &str = "switchboard.link.on_state";
/// The error of `switchboard.link.get` for an id the realm has no link of.
pub const NO_SUCH_LINK: &str = "switchboard.error.no_such_link";
/// The error a link gets when this router already has a link to its router on the realm.
pub const LINK_EXISTS: &str = "switchboard.error.link_exists";

/// How many interest changes go into one progressive result at most.
const BATCH: usize = 256;

/// Joins the link service of `realm` and registers its procedures: the link protocol where
/// `accepts` (a role of the realm may link), and the meta procedures (a realm that accepts links
/// may also get links of its own from a reload).
pub(super) async fn start(
    ctx: &LinkContext,
    realm: &Arc<Realm>,
    accepts: bool,
) -> Result<(), super::super::StartError> {
    let identity = TrustedIdentity::new(realm.name(), SERVICE_AUTHID, TRUSTED_ROLE)
        .hidden()
        .seeing_callers();
    let join_error = |source| super::super::StartError::Join {
        realm: realm.name().to_owned(),
        authid: SERVICE_AUTHID.to_owned(),
        source,
    };
    let session = ctx.in_process.join(identity).await.map_err(join_error)?;
    if accepts {
        let (r, node_id, table) = (realm.clone(), ctx.key.node_id.clone(), ctx.table.clone());
        session
            .register(
                LINK_INTEREST_PROCEDURE,
                RegisterOptions::default(),
                move |inv| interest(r.clone(), node_id.clone(), table.clone(), inv),
            )
            .await
            .map_err(join_error)?;
        session
            .register(LINK_PING_PROCEDURE, RegisterOptions::default(), |_| async {
                Ok(Args::default())
            })
            .await
            .map_err(join_error)?;
    }
    let (name, table) = (realm.name().to_owned(), ctx.table.clone());
    session
        .register(LIST_PROCEDURE, RegisterOptions::default(), move |_| {
            let list = table.of_realm(&name);
            async move {
                Ok(Args::positional(vec![Value::List(
                    list.iter().map(LinkState::to_value).collect(),
                )]))
            }
        })
        .await
        .map_err(join_error)?;
    let (name, table) = (realm.name().to_owned(), ctx.table.clone());
    session
        .register(GET_PROCEDURE, RegisterOptions::default(), move |inv| {
            let id = inv
                .positional()
                .first()
                .and_then(Value::as_str)
                .map(str::to_owned);
            let found = id
                .as_deref()
                .and_then(|id| table.of_realm(&name).into_iter().find(|s| s.id == id));
            async move {
                match found {
                    Some(state) => Ok(Args::positional(vec![state.to_value()])),
                    None => Err(
                        CallError::new(NO_SUCH_LINK).with_args(Args::positional(vec![
                            format!("no link {:?} on this realm", id.unwrap_or_default()).into(),
                        ])),
                    ),
                }
            }
        })
        .await
        .map_err(join_error)?;
    lock(&ctx.services).insert(realm.name().to_owned(), session);
    Ok(())
}

/// Publishes a link's new state on its realm (`switchboard.link.on_state`).
pub(super) async fn announce(ctx: &LinkContext, realm: &str, state: &LinkState) {
    let session = lock(&ctx.services).get(realm).cloned();
    if let Some(session) = session {
        let _ = session
            .publish(
                ON_STATE_TOPIC,
                Args::positional(vec![state.to_value()]),
                PublishOptions::default(),
            )
            .await;
    }
}

/// `switchboard.link.interest`: tells a link that connected to this router every subscription
/// and registration it should mirror, then every change, as progressive results, until the link
/// leaves (its call is then interrupted).
async fn interest(
    realm: Arc<Realm>,
    node_id: String,
    table: Arc<LinkTable>,
    inv: Invocation,
) -> Result<Args, CallError> {
    let refuse = |uri: &str, text: String| {
        Err(CallError::new(uri).with_args(Args::positional(vec![text.into()])))
    };
    let Some(caller) = inv.caller().map(SessionId) else {
        return refuse(
            "wamp.error.not_authorized",
            "the caller is not disclosed".into(),
        );
    };
    let Some(link) = realm.session(caller).and_then(|p| p.link().cloned()) else {
        return refuse(
            "wamp.error.not_authorized",
            "only a session whose role may link can ask".into(),
        );
    };
    if !inv.receive_progress() {
        return refuse(
            "wamp.error.invalid_argument",
            "call with receive_progress".into(),
        );
    }
    if link.node == node_id {
        return refuse(LINK_EXISTS, "the link leads back to this router".into());
    }
    // One link per pair of routers and realm: where both routers link to each other, the link
    // from the router with the lower node id is kept.
    if node_id < link.node && table.up_to(realm.name(), &link.node, "") {
        return refuse(
            LINK_EXISTS,
            format!(
                "this router already has a link to router {} on this realm",
                link.node
            ),
        );
    }
    let kwargs = inv.kwargs();
    let flag = |k: &str| kwargs.get(k).and_then(Value::as_bool).unwrap_or(true);
    let forwarding = LinkForwarding {
        // What the link mirrors *here* from our interest: its remote_* directions.
        local_events: flag("events"),
        local_invocations: flag("invocations"),
        remote_events: false,
        remote_invocations: false,
    };
    let mode = if link.relay {
        LinkMode::Tree
    } else {
        LinkMode::Mesh
    };
    let mut filter = Filter::outgoing(forwarding, mode, None, None);
    filter.own_session = Some(caller);
    filter.other_node = link.node.clone();
    filter.direction = LinkDirection::Out;
    let mut interest = Table::new(filter);
    let (snapshot, mut changes) = realm.watch_interest();
    let mut hello = Dict::new();
    hello.insert("node_id".into(), node_id.as_str().into());
    inv.progress(Args::positional(vec![Value::Dict(hello)]))
        .await
        .map_err(|_| CallError::new("wamp.error.canceled"))?;
    let mut batch: Vec<Value> = snapshot
        .iter()
        .filter_map(|c| interest.apply(c))
        .map(|d| d.to_value())
        .collect();
    loop {
        for chunk in batch.chunks(BATCH) {
            inv.progress(Args::positional(vec![Value::List(chunk.to_vec())]))
                .await
                .map_err(|_| CallError::new("wamp.error.canceled"))?;
        }
        batch.clear();
        let Some(first) = changes.recv().await else {
            return Ok(Args::default());
        };
        batch.extend(interest.apply(&first).map(|d| d.to_value()));
        // Whatever else is already waiting goes in the same result.
        while batch.len() < BATCH {
            match changes.try_recv() {
                Ok(c) => batch.extend(interest.apply(&c).map(|d| d.to_value())),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            // Nothing this link mirrors; wait a moment so bursts of such changes stay cheap.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
