//! Who is in the cluster: this node's heartbeat in the key-value bucket `SW_<cluster>_NODES`
//! (every `heartbeat_ms`, aged out after `node_ttl_ms`), every other node's read from the same
//! bucket, the config hashes compared, and the `fence` partition policy.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{Operation, Store};
use futures::StreamExt as _;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{ClusterContext, MemberView};

/// What a node says in its heartbeat.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Heartbeat {
    /// Its node id.
    pub node: String,
    /// Drawn at each start: interest kept under an older incarnation is stale.
    pub incarnation: String,
    /// Switchboard's version.
    pub version: String,
    /// The realms it serves across the cluster.
    pub realms: Vec<String>,
    /// Digests of its realm, role and authentication config, by part (`realm <name>`,
    /// `transports`), which every node must share.
    pub hashes: BTreeMap<String, String>,
    /// Sessions per realm.
    pub sessions: BTreeMap<String, u64>,
    /// When it started (ms since the epoch).
    pub started: u64,
}

/// The live nodes (this one included), by node id.
pub type Members = Arc<BTreeMap<String, Heartbeat>>;

/// Keeps this node's heartbeat in `kv` and `members` up to date until `stop`.
pub(super) async fn run(
    ctx: Arc<ClusterContext>,
    kv: Store,
    members: watch::Sender<Members>,
    stop: CancellationToken,
) {
    let heartbeat = Duration::from_millis(ctx.config.heartbeat_ms());
    let ttl = Duration::from_millis(ctx.config.node_ttl_ms());
    let mut seen: BTreeMap<String, (Heartbeat, Instant)> = BTreeMap::new();
    let mut warned: HashSet<(String, String)> = HashSet::new();
    let mut last_ok = Instant::now();
    let mut fenced = false;
    let mut tick = tokio::time::interval(heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch = None;
    loop {
        if watch.is_none() {
            watch = kv.watch_with_history(">").await.ok();
        }
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {
                let own = ctx.heartbeat();
                let put = serde_json::to_vec(&own).map(bytes::Bytes::from);
                let written = match put {
                    Ok(value) => tokio::time::timeout(heartbeat.max(Duration::from_millis(500)), kv.put(&ctx.node_id, value)).await,
                    Err(_) => continue,
                };
                match written {
                    Ok(Ok(_)) => {
                        last_ok = Instant::now();
                        if fenced {
                            fenced = false;
                            tracing::warn!(node = %ctx.node_id, "cluster: NATS answers again: routing across nodes resumes");
                            ctx.status.done(super::HEALTH_ITEM);
                            ctx.table.set_state("up");
                        }
                    }
                    Ok(Err(e)) => tracing::debug!("cluster: heartbeat not written: {e}"),
                    Err(_) => tracing::debug!("cluster: heartbeat timed out"),
                }
                if !fenced && last_ok.elapsed() > ttl {
                    fenced = true;
                    tracing::error!(
                        node = %ctx.node_id,
                        "cluster: no heartbeat written for {} ms: this node is cut off from the NATS majority; \
                         it stops routing across nodes (partition_policy fence) and its health says 503",
                        ttl.as_millis()
                    );
                    ctx.status.wait_for(super::HEALTH_ITEM, "cut off from the cluster (fenced)");
                    ctx.table.set_state("fenced");
                }
                seen.retain(|node, (_, at)| {
                    let alive = at.elapsed() <= ttl;
                    if !alive {
                        tracing::warn!(node = %node, "cluster: node {node} left (no heartbeat for {} ms)", ttl.as_millis());
                    }
                    alive
                });
            }
            entry = async { watch.as_mut().expect("set above").next().await }, if watch.is_some() => {
                match entry {
                    Some(Ok(entry)) if entry.key != ctx.node_id => match entry.operation {
                        Operation::Put => {
                            let Ok(beat) = serde_json::from_slice::<Heartbeat>(&entry.value) else { continue };
                            if !seen.contains_key(&entry.key) {
                                tracing::info!(node = %entry.key, "cluster: node {} joined", entry.key);
                            }
                            compare(&ctx, &beat, &mut warned);
                            seen.insert(entry.key.clone(), (beat, Instant::now()));
                        }
                        Operation::Delete | Operation::Purge => {
                            if seen.remove(&entry.key).is_some() {
                                tracing::info!(node = %entry.key, "cluster: node {} left", entry.key);
                            }
                        }
                    },
                    Some(Ok(entry)) => {
                        // This node's own key: written by another process with the same node id?
                        if entry.operation == Operation::Put
                            && let Ok(beat) = serde_json::from_slice::<Heartbeat>(&entry.value)
                            && beat.incarnation != ctx.incarnation
                            && beat.started >= ctx.started
                            && warned.insert((beat.incarnation.clone(), "duplicate".into()))
                        {
                            tracing::error!(
                                node = %ctx.node_id,
                                "cluster: another process runs as node {} (started at {} ms): every node \
                                 needs its own node directory or `node_id`",
                                ctx.node_id, beat.started
                            );
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!("cluster: the membership watch failed: {e}");
                        watch = None;
                    }
                    None => watch = None,
                }
            }
        }
        let mut live: BTreeMap<String, Heartbeat> = if fenced {
            BTreeMap::new()
        } else {
            seen.iter()
                .map(|(k, (b, _))| (k.clone(), b.clone()))
                .collect()
        };
        live.insert(ctx.node_id.clone(), ctx.heartbeat());
        let changed = {
            let old = members.borrow();
            old.len() != live.len()
                || old
                    .iter()
                    .zip(live.iter())
                    .any(|((a, x), (b, y))| a != b || x.incarnation != y.incarnation)
        };
        ctx.table.set_members(
            live.values()
                .map(|b| MemberView {
                    node: b.node.clone(),
                    realms: b.realms.clone(),
                    sessions: b.sessions.clone(),
                    started: b.started,
                    version: b.version.clone(),
                    last_seen_ms: seen
                        .get(&b.node)
                        .map_or(0, |(_, at)| at.elapsed().as_millis() as u64),
                })
                .collect(),
        );
        if changed {
            members.send_replace(Arc::new(live));
        }
    }
    // Leaving: the others see it at once instead of after the TTL.
    let _ = tokio::time::timeout(Duration::from_secs(2), kv.purge(&ctx.node_id)).await;
}

/// Says (once per node and part) where another node's config differs from this one's.
fn compare(ctx: &ClusterContext, other: &Heartbeat, warned: &mut HashSet<(String, String)>) {
    let own = crate::locks::lock(&ctx.hashes).clone();
    let own = &own;
    let mut differs = Vec::new();
    for (part, hash) in own {
        if let Some(theirs) = other.hashes.get(part)
            && theirs != hash
        {
            differs.push(part.clone());
        }
    }
    for part in other.hashes.keys() {
        if part.starts_with("realm ") && !own.contains_key(part) {
            differs.push(format!("{part} (not served here)"));
        }
    }
    for part in own.keys() {
        if part.starts_with("realm ") && !other.hashes.contains_key(part) {
            differs.push(format!("{part} (not served there)"));
        }
    }
    for part in &differs {
        if warned.insert((other.node.clone(), part.clone())) {
            tracing::warn!(
                node = %other.node,
                "cluster: the config of node {} differs from this node's in: {part}; \
                 every node of a cluster must load the same realms, roles and authentication",
                other.node
            );
        }
    }
    ctx.table.set_mismatches(&other.node, differs);
}
