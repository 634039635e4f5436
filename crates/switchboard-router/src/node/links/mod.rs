//! Router-to-router links: this router connects to others and routes the listed realms across
//! them, so that a caller here reaches a callee there and an event published there reaches
//! subscribers here.
//!
//! Each (link, realm) is two WAMP sessions and nothing else: the *remote* end, a
//! `switchboard-client` session joined to the other router (authenticated and authorized there
//! like any client, by a role that may link), and the *local* end, an in-process session joined
//! here with the built-in `trusted` role (`run.rs`). Interest is mirrored from each router's own
//! registry (`Realm::watch_interest`): ours directly, theirs through the procedure
//! `switchboard.link.interest` that every router's link service registers on every realm and
//! answers with progressive results (a snapshot, then changes). Traffic crosses as ordinary
//! PUBLISH and CALL with Crossbar's `forward_for`, which only sessions of a role that may link can
//! send; the broker and the dealer never send a forwarded message back to a router it has been
//! through (`delivery::Forwarded`).
//!
//! The link service of each realm (a hidden in-process session, `service.rs`) also answers
//! `switchboard.link.list` and `switchboard.link.get`, and publishes `switchboard.link.on_state`
//! when a link's state changes; these are authorized like any procedure and topic.

mod interest;
pub mod node_key;
mod run;
mod service;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use switchboard_proto::{Dict, Value};
use tokio_util::sync::CancellationToken;

use crate::config::{LinkConfig, LinkRealmSet, NodeConfig};
use crate::embed::InProcess;
use crate::locks::lock;
use crate::realm::RealmRegistry;
pub use node_key::NodeKey;

/// What `switchboard.link.get` says about one link on one realm.
#[derive(Debug, Clone, Default)]
pub struct LinkState {
    /// The link's id.
    pub id: String,
    /// The realm here.
    pub realm: String,
    /// The realm on the other router.
    pub remote_realm: String,
    /// Where it connects.
    pub endpoint: String,
    /// `mesh` or `tree`.
    pub mode: &'static str,
    /// `connecting`, `up`, `refused` or `stopped`.
    pub state: &'static str,
    /// The other router's node id, once known.
    pub remote_node: Option<String>,
    /// When the state last changed (ms since the epoch).
    pub since_ms: u64,
    /// Why the last connection failed or ended.
    pub last_error: Option<String>,
    /// How many times it came up.
    pub connects: u64,
    /// Subscriptions and registrations of ours mirrored there.
    pub mirrored_out: [usize; 2],
    /// Subscriptions and registrations of theirs mirrored here.
    pub mirrored_in: [usize; 2],
    /// Registrations the other side refused (a `single` procedure there), retried.
    pub conflicts: Vec<String>,
    /// Events dropped because the other side did not keep up (`on_slow: drop_events`).
    pub dropped_events: u64,
}

impl LinkState {
    /// The state as the meta procedures return it.
    pub fn to_value(&self) -> Value {
        let mut d = Dict::new();
        d.insert("id".into(), self.id.as_str().into());
        d.insert("realm".into(), self.realm.as_str().into());
        d.insert("remote_realm".into(), self.remote_realm.as_str().into());
        d.insert("endpoint".into(), self.endpoint.as_str().into());
        d.insert("mode".into(), self.mode.into());
        d.insert("state".into(), self.state.into());
        d.insert(
            "remote_node".into(),
            self.remote_node.as_deref().map_or(Value::Null, Value::from),
        );
        d.insert("since".into(), self.since_ms.into());
        d.insert(
            "last_error".into(),
            self.last_error.as_deref().map_or(Value::Null, Value::from),
        );
        d.insert("connects".into(), self.connects.into());
        let pair = |[s, r]: [usize; 2]| {
            let mut m = Dict::new();
            m.insert("subscriptions".into(), (s as u64).into());
            m.insert("registrations".into(), (r as u64).into());
            Value::Dict(m)
        };
        d.insert("mirrored_out".into(), pair(self.mirrored_out));
        d.insert("mirrored_in".into(), pair(self.mirrored_in));
        d.insert(
            "conflicts".into(),
            Value::List(self.conflicts.iter().map(|c| c.as_str().into()).collect()),
        );
        d.insert("dropped_events".into(), self.dropped_events.into());
        Value::Dict(d)
    }
}

/// Every link's state, by (realm, link id); shared by the links, which write it, and the link
/// services, which read it.
#[derive(Debug, Default)]
pub(crate) struct LinkTable {
    states: Mutex<HashMap<(String, String), LinkState>>,
}

impl LinkTable {
    fn update(&self, realm: &str, id: &str, change: impl FnOnce(&mut LinkState)) -> LinkState {
        let mut states = lock(&self.states);
        let state = states.entry((realm.to_owned(), id.to_owned())).or_default();
        change(state);
        state.clone()
    }

    /// Every link, by realm and id.
    pub(crate) fn all(&self) -> Vec<LinkState> {
        let mut list: Vec<LinkState> = lock(&self.states).values().cloned().collect();
        list.sort_by(|a, b| (&a.realm, &a.id).cmp(&(&b.realm, &b.id)));
        list
    }

    /// The links of `realm`.
    fn of_realm(&self, realm: &str) -> Vec<LinkState> {
        let mut list: Vec<LinkState> = lock(&self.states)
            .values()
            .filter(|s| s.realm == realm)
            .cloned()
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// Whether a link of ours on `realm` with an id sorting before `id` is up to `node` (of two
    /// links of this router to one router, the one with the first id stays).
    fn earlier_up_to(&self, realm: &str, node: &str, id: &str) -> bool {
        lock(&self.states).values().any(|s| {
            s.realm == realm
                && s.id.as_str() < id
                && s.state == "up"
                && s.remote_node.as_deref() == Some(node)
        })
    }

    /// Whether a link of ours on `realm` other than `except` is up to `node`.
    fn up_to(&self, realm: &str, node: &str, except: &str) -> bool {
        lock(&self.states).values().any(|s| {
            s.realm == realm
                && s.id != except
                && s.state == "up"
                && s.remote_node.as_deref() == Some(node)
        })
    }
}

/// Milliseconds since the epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What every link of the node shares.
#[derive(Debug, Clone)]
pub(crate) struct LinkContext {
    pub(crate) in_process: InProcess,
    pub(crate) realms: Arc<RealmRegistry>,
    pub(crate) key: NodeKey,
    pub(crate) base_dir: PathBuf,
    pub(crate) table: Arc<LinkTable>,
    /// Each realm's link service session, for publishing state changes.
    pub(crate) services: Arc<Mutex<HashMap<String, switchboard_client::Session>>>,
}

/// The node's links and link services, running until [`Links::stop`].
#[derive(Debug)]
pub struct Links {
    /// The parent of every link's own token.
    stop: CancellationToken,
    /// The running links, by id.
    running: tokio::sync::Mutex<HashMap<String, RunningLink>>,
    /// The realms whose link service answers the link protocol (a role there may link).
    accepting: Mutex<std::collections::HashSet<String>>,
    /// Holds the link services' sessions open (a session ends when its last handle goes).
    ctx: LinkContext,
}

/// One configured link: a task per realm it carries.
#[derive(Debug)]
struct RunningLink {
    config: LinkConfig,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Links {
    /// This node's id (the public key in `key.priv`).
    pub(crate) fn node_id(&self) -> String {
        self.ctx.key.node_id.clone()
    }

    /// The state of every link, as the management API shows it.
    pub(crate) fn table(&self) -> Arc<LinkTable> {
        self.ctx.table.clone()
    }

    /// Starts every realm's link service, then every configured link in the background (a link
    /// never holds up the node's start: it connects, and reconnects, on its own).
    pub(crate) async fn start(
        config: &NodeConfig,
        base_dir: &std::path::Path,
        in_process: &InProcess,
        realms: &Arc<RealmRegistry>,
    ) -> Result<Self, super::StartError> {
        let links = LinkConfig::all(config);
        // A cluster names this node by the same id, kept across restarts.
        let clustered = config.router_workers().any(|(_, w)| w.cluster.is_some());
        let key = node_key(base_dir, !links.is_empty() || clustered);
        let ctx = LinkContext {
            in_process: in_process.clone(),
            realms: realms.clone(),
            key,
            base_dir: base_dir.to_owned(),
            table: Arc::new(LinkTable::default()),
            services: Arc::default(),
        };
        let this = Self {
            stop: CancellationToken::new(),
            running: Default::default(),
            accepting: Mutex::default(),
            ctx,
        };
        this.start_services(config, &links).await?;
        let mut running = this.running.lock().await;
        for link in links {
            running.insert(link.id.clone(), this.spawn(link));
        }
        drop(running);
        Ok(this)
    }

    /// Starts the link service of each realm that has none yet and needs one: where one of its
    /// roles may link (the link protocol) or links run; a realm with neither shows no trace of
    /// links.
    async fn start_services(
        &self,
        config: &NodeConfig,
        links: &[LinkConfig],
    ) -> Result<(), super::StartError> {
        let linked: std::collections::HashSet<&str> = links
            .iter()
            .flat_map(|l| match &l.realms {
                LinkRealmSet::Any => config
                    .router_workers()
                    .flat_map(|(_, w)| w.realms.iter().map(|r| r.name.as_str()))
                    .collect::<Vec<_>>(),
                LinkRealmSet::Listed(list) => list.iter().map(|(r, _)| r.as_str()).collect(),
            })
            .collect();
        for (_, worker) in config.router_workers() {
            for cfg in &worker.realms {
                let accepts = cfg.roles.iter().any(|r| r.link);
                let runs = linked.contains(cfg.name.as_str());
                // A realm removed and added again by a reload is another realm: its service
                // session ended with the old one. A realm whose roles may now link needs the
                // link protocol its service did not register.
                let current = lock(&self.ctx.services)
                    .get(&cfg.name)
                    .is_some_and(|s| !s.is_closed())
                    && (!accepts || lock(&self.accepting).contains(&cfg.name));
                if let Some(realm) = self.ctx.realms.get(&cfg.name)
                    && (accepts || runs)
                    && !current
                {
                    let old = lock(&self.ctx.services).remove(&cfg.name);
                    if let Some(old) = old {
                        let _ = old.leave().await;
                    }
                    service::start(&self.ctx, &realm, accepts).await?;
                    if accepts {
                        lock(&self.accepting).insert(cfg.name.clone());
                    } else {
                        lock(&self.accepting).remove(&cfg.name);
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts `link`: a task per realm it carries.
    fn spawn(&self, link: LinkConfig) -> RunningLink {
        let pairs = match &link.realms {
            LinkRealmSet::Any => self
                .ctx
                .realms
                .all()
                .iter()
                .map(|r| (r.name().to_owned(), r.name().to_owned()))
                .collect(),
            LinkRealmSet::Listed(list) => list.clone(),
        };
        let stop = self.stop.child_token();
        let shared = Arc::new(link.clone());
        let tasks = pairs
            .into_iter()
            .map(|(local, remote)| {
                tracing::info!(
                    link = %shared.id, realm = %local, remote_realm = %remote,
                    "link: forwarding {}", shared.describe()
                );
                tokio::spawn(run::run(
                    self.ctx.clone(),
                    shared.clone(),
                    local,
                    remote,
                    stop.clone(),
                ))
            })
            .collect();
        RunningLink {
            config: link,
            stop,
            tasks,
        }
    }

    /// What [`Self::apply`] would change for `config`, in words.
    pub(crate) async fn changes(&self, config: &NodeConfig) -> Vec<String> {
        let running = self.running.lock().await;
        let (removed, changed, added) = diff(&running, LinkConfig::all(config));
        describe(&removed, &changed, &added)
    }

    /// Runs the links of `config`: those removed leave both routers, those added connect,
    /// those changed do both; the others run on untouched. Returns what changed, in words.
    pub(crate) async fn apply(&self, config: &NodeConfig) -> Vec<String> {
        let mut running = self.running.lock().await;
        let links = LinkConfig::all(config);
        if let Err(e) = self.start_services(config, &links).await {
            tracing::warn!("links: a realm's link service could not start: {e}");
        }
        let (removed, changed, added) = diff(&running, links);
        let lines = describe(&removed, &changed, &added);
        for id in removed.iter().chain(changed.iter().map(|l| &l.id)) {
            if let Some(link) = running.remove(id) {
                link.stop.cancel();
                for task in link.tasks {
                    let _ = task.await;
                }
                lock(&self.ctx.table.states).retain(|(_, link_id), _| link_id != id);
            }
        }
        for link in changed.into_iter().chain(added) {
            running.insert(link.id.clone(), self.spawn(link));
        }
        lines
    }

    /// Stops every link: each leaves both routers.
    pub async fn stop(&self) {
        self.stop.cancel();
        let mut running = self.running.lock().await;
        for (_, link) in running.drain() {
            for task in link.tasks {
                let _ = task.await;
            }
        }
        lock(&self.ctx.services).clear();
    }
}

/// The ids of the running links that `links` removes, and the links it changes and adds.
fn diff(
    running: &HashMap<String, RunningLink>,
    links: Vec<LinkConfig>,
) -> (Vec<String>, Vec<LinkConfig>, Vec<LinkConfig>) {
    let removed = running
        .keys()
        .filter(|id| !links.iter().any(|l| &l.id == *id))
        .cloned()
        .collect();
    let (mut changed, mut added) = (Vec::new(), Vec::new());
    for link in links {
        match running.get(&link.id) {
            // Where it is in the file is not a change of the link.
            Some(r)
                if LinkConfig {
                    place: r.config.place.clone(),
                    ..link.clone()
                } == r.config => {}
            Some(_) => changed.push(link),
            None => added.push(link),
        }
    }
    (removed, changed, added)
}

fn describe(removed: &[String], changed: &[LinkConfig], added: &[LinkConfig]) -> Vec<String> {
    let mut lines: Vec<String> = removed
        .iter()
        .map(|id| format!("link {id:?} removed: it leaves both routers"))
        .collect();
    lines.extend(
        changed
            .iter()
            .map(|l| format!("link {:?} restarted with its new config", l.id)),
    );
    lines.extend(
        added
            .iter()
            .map(|l| format!("link {:?} added: {}", l.id, l.describe())),
    );
    lines
}

/// The node's key: from the node directory (created there when links need it), else a key for
/// this run only, logged as such.
fn node_key(base_dir: &std::path::Path, links_configured: bool) -> NodeKey {
    let file = base_dir.join(node_key::KEY_FILE);
    let loaded = if file.exists() || links_configured {
        NodeKey::load_or_create(base_dir)
    } else {
        Err("no links are configured".into())
    };
    loaded.unwrap_or_else(|why| {
        if links_configured {
            tracing::warn!("node key: {why}; using a key for this run only");
        }
        NodeKey::from_seed(rand::random()).expect("any 32 bytes are an Ed25519 seed")
    })
}

/// The files the links name: TLS material and Cryptosign keys, each problem at its place in the
/// config (what `switchboard check` reports).
pub(crate) fn check_material(
    config: &NodeConfig,
    base_dir: &std::path::Path,
) -> Vec<crate::config::ConfigError> {
    use crate::config::ConfigError;
    let mut problems = Vec::new();
    for link in LinkConfig::all(config) {
        if let Some(tls) = &link.tls
            && let Err(found) = crate::tls::link_client_config(tls, base_dir)
        {
            let at = if link.place.contains(".rlinks[") {
                format!("{}.transport.endpoint.tls", link.place)
            } else {
                format!("{}.tls", link.place)
            };
            problems.extend(
                found
                    .into_iter()
                    .map(|p| ConfigError::at(format!("{at}.{}", p.field), p.message)),
            );
        }
        if let Some(key) = link
            .extra
            .auth
            .as_ref()
            .and_then(|a| a.cryptosign.as_ref())
            .and_then(|c| c.key.as_ref())
            && let Err(e) = NodeKey::read(&base_dir.join(key))
        {
            problems.push(ConfigError::at(
                format!("{}.auth.cryptosign.key", link.place),
                e,
            ));
        }
    }
    problems
}
