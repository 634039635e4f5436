//! One bridge's life: its connections (a pool for calls, one dedicated listener connection),
//! the procedures it registers (read from the database, read again on `NOTIFY switchboard,
//! 'reload'`), the events it publishes, and reconnecting with backoff when the database goes
//! away: calls meanwhile fail fast with `wamp.error.unavailable`, and nothing waits on the
//! database in the router.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::json;
use switchboard_client::{Args, PublishOptions, RegisterOptions, Session};
use switchboard_proto::{Id, Value};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use crate::call::Calls;
use crate::catalog::{self, Function};
use crate::config::{PostgresComponentConfig, PostgresConnectionConfig, PublishMode};
use crate::publisher::{self, Notified};

/// The topic of the meta event published when the listener reconnected (events published
/// meanwhile were not heard).
pub const LISTENER_RECONNECT_TOPIC: &str = "switchboard.postgres.on_listener_reconnect";

/// How often a bridge that is not the publisher (another bridge holds the channel's lock) tries
/// to become it.
const LEADERSHIP_RETRY: Duration = Duration::from_secs(5);

/// Notifications waiting for the bridge before further ones are dropped.
const NOTIFY_QUEUE: usize = 65_536;

/// How long a listener connection must have held for the backoff to start afresh.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);

/// How old a spilled event must be to be swept (its NOTIFY was missed).
const SPILL_MAX_AGE: &str = "1 hour";

/// The helper schema (`switchboard postgres sql`).
pub const HELPER_SCHEMA: &str = include_str!("wamp.sql");

/// Crossbar's `crossbar.publish`, installed into the schema `crossbar` by a bridge that runs as
/// Crossbar's PostgreSQL publisher.
pub const CROSSBAR_SCHEMA: &str = include_str!("crossbar.sql");

/// The connection settings of a `connections` entry.
pub fn pg_config(c: &PostgresConnectionConfig) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    let host = c.host.as_deref().unwrap_or("127.0.0.1");
    if host.starts_with('/') {
        config.host_path(host);
    } else {
        config.host(host);
    }
    // As libpq: a Unix socket is local, and no sslmode asks TLS of it.
    let mode = if host.starts_with('/') {
        crate::tls::Mode::Disable
    } else {
        crate::tls::Mode::parse(c.options.sslmode.as_deref()).unwrap_or(crate::tls::Mode::Prefer)
    };
    config
        .ssl_mode(mode.ssl_mode())
        .port(c.port.unwrap_or(5432))
        .dbname(&c.database)
        .user(&c.user)
        .application_name(
            c.options
                .application_name
                .as_deref()
                .unwrap_or("switchboard"),
        )
        .connect_timeout(Duration::from_secs(c.options.connect_timeout.unwrap_or(10)));
    if let Some(password) = &c.password {
        config.password(password);
    }
    if c.options.target_session_attrs.as_deref() == Some("read-write") {
        config.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
    }
    config
}

/// A running bridge.
pub struct Bridge {
    id: String,
    component: PostgresComponentConfig,
    pg: tokio_postgres::Config,
    /// Connections for calls and subscriber sinks.
    pool: deadpool_postgres::Pool,
    calls: Option<Arc<Calls>>,
    session: Session,
    /// Registered procedures: URI -> (registration, function).
    registered: HashMap<String, (Id, Function)>,
    /// The connection settings, for the durable tier's replication connection.
    connection: PostgresConnectionConfig,
    /// The durable tier's stream, while this bridge publishes the channel.
    durable: Option<tokio::task::JoinHandle<()>>,
    /// TLS for the listener connection (the pool has its own copy).
    tls: MakeRustlsConnect,
    /// Whether `crossbar.publish` was installed (Crossbar's publisher, once per bridge).
    crossbar_installed: bool,
}

impl Bridge {
    /// A bridge for `component` on `connection` (its TLS files resolved), acting through
    /// `session`; the TLS problem (the option and what is wrong) where its files cannot be used.
    pub fn new(
        id: String,
        connection: &PostgresConnectionConfig,
        component: PostgresComponentConfig,
        session: Session,
    ) -> Result<Self, crate::tls::Problem> {
        let tls = crate::tls::connector(&connection.options)?;
        let pg = pg_config(connection);
        let mut pool_config = pg.clone();
        if let Some(callee) = &component.callee {
            // A call's statement timeout where it has none of its own (`RESET ALL` after each
            // call returns to it).
            pool_config.options(format!("-c statement_timeout={}", callee.max_timeout()));
        }
        let manager = deadpool_postgres::Manager::from_config(
            pool_config,
            tls.clone(),
            deadpool_postgres::ManagerConfig {
                // Every use of a connection that runs user code ends with `RESET ALL` itself (a
                // call's pipeline, a subscriber's handler), so a checkout costs no round trip.
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        // Connections open as calls and events need them: none while nothing needs one.
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(connection.options.max_connections.unwrap_or(10).max(1))
            .build()
            .expect("a pool without a runtime-bound timeout builds");
        let calls = component.callee.clone().map(|callee| {
            Arc::new(Calls {
                pool: pool.clone(),
                config: callee,
                tls: tls.clone(),
            })
        });
        Ok(Self {
            id,
            component,
            pg,
            pool,
            calls,
            session,
            registered: HashMap::new(),
            connection: connection.clone(),
            durable: None,
            tls,
            crossbar_installed: false,
        })
    }

    /// Runs until `shutdown` (or the bridge's session ends): connects, registers, listens, and
    /// reconnects with backoff whenever the listener connection is lost.
    pub async fn run(self, shutdown: CancellationToken) {
        // The subscriptions live as long as the session; their events wait in bounded queues
        // while the database is away.
        let sinks = match &self.component.subscriber {
            Some(subscriber) => {
                crate::subscriber::start(&self.id, &self.session, self.pool.clone(), subscriber)
                    .await
            }
            None => Vec::new(),
        };
        self.supervise(shutdown).await;
        for sink in sinks {
            sink.abort();
        }
    }

    async fn supervise(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new();
        let mut lost_at: Option<Instant> = None;
        let mut installed = false;
        // The listener's connection is told apart in pg_stat_activity by its name.
        let mut listener = self.pg.clone();
        listener.application_name(format!(
            "{}-listener",
            self.pg.get_application_name().unwrap_or("switchboard")
        ));
        loop {
            let connected = tokio::select! {
                c = listener.connect(self.tls.clone()) => c,
                () = shutdown.cancelled() => return,
            };
            let (client, mut connection) = match connected {
                Ok(c) => c,
                Err(e) => {
                    let wait = backoff.next();
                    tracing::warn!(bridge = %self.id, "cannot connect to the database: {}; trying again in {wait:?}", crate::describe(&e));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => continue,
                        () = shutdown.cancelled() => return,
                    }
                }
            };
            // The listener connection is driven here, not spawned away: notifications only
            // arrive to whoever polls it. The driver never waits for the bridge (it must go on
            // reading the answers to the bridge's own queries on this connection): when the
            // bridge falls NOTIFY_QUEUE behind, further events are dropped and counted.
            let (notify_tx, mut notifications) = mpsc::channel(NOTIFY_QUEUE);
            let bridge_id = self.id.clone();
            let driver = tokio::spawn(async move {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                let mut dropped = 0u64;
                while let Some(message) = messages.next().await {
                    match message {
                        Ok(AsyncMessage::Notification(n)) => match notify_tx.try_send(n) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                dropped += 1;
                                if dropped.is_power_of_two() {
                                    tracing::warn!(bridge = %bridge_id, dropped, "events from the database dropped: the bridge does not keep up");
                                }
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                        },
                        Ok(AsyncMessage::Notice(n)) => tracing::debug!("database notice: {n}"),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!("database listener connection: {e}");
                            break;
                        }
                    }
                }
            });
            let setup = self.set_up(&client, &mut installed).await;
            if let Err(e) = setup {
                driver.abort();
                let wait = backoff.next();
                tracing::warn!(bridge = %self.id, "database setup failed: {}; trying again in {wait:?}", crate::describe(&e));
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
            let connected_at = Instant::now();
            let mut leader = self.try_lead(&client).await;
            // Announced once LISTEN is back: a client that refetches on it misses nothing after.
            if let Some(since) = lost_at.take() {
                self.announce_reconnect(since).await;
            }
            let mut retry = tokio::time::interval(LEADERSHIP_RETRY);
            retry.tick().await;
            loop {
                tokio::select! {
                    n = notifications.recv() => match n {
                        Some(n) => self.notified(&client, n.channel(), n.payload()).await,
                        None => break,
                    },
                    _ = retry.tick() => {
                        if !leader {
                            leader = self.try_lead(&client).await;
                        } else if self.component.publisher.as_ref().is_some_and(|p| p.mode == PublishMode::Outbox) {
                            // What a failed drain left waits no longer than this.
                            self.drain_outbox(&client).await;
                        }
                    }
                    reason = self.session.closed() => {
                        let reason = reason.to_string();
                        if reason.contains("wamp.close.system_shutdown") {
                            tracing::info!(bridge = %self.id, "the node shuts down: the bridge stops");
                        } else {
                            tracing::error!(bridge = %self.id, "the bridge's session ended ({reason}): the bridge stops");
                        }
                        driver.abort();
                        self.stop_durable();
                        return;
                    }
                    () = shutdown.cancelled() => {
                        driver.abort();
                        self.stop_durable();
                        return;
                    }
                }
            }
            driver.abort();
            self.stop_durable();
            lost_at = Some(Instant::now());
            // A connection that held a while starts the backoff afresh; one that keeps dropping
            // at once does not make the bridge reconnect in a tight loop.
            if connected_at.elapsed() >= STABLE_CONNECTION {
                backoff.reset();
            }
            let wait = backoff.next();
            tracing::warn!(bridge = %self.id, "lost the database listener connection; reconnecting in {wait:?}");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// On a fresh listener connection: the helper schema (once, where configured), LISTEN for
    /// reloads, and the procedures.
    async fn set_up(
        &mut self,
        client: &tokio_postgres::Client,
        installed: &mut bool,
    ) -> Result<(), tokio_postgres::Error> {
        if self.component.install_schema && !*installed {
            client.batch_execute(HELPER_SCHEMA).await?;
            *installed = true;
            tracing::info!(bridge = %self.id, "helper schema `wamp` installed");
        }
        if self.component.crossbar_publisher && !self.crossbar_installed {
            // As Crossbar's publisher did: its function, in the schema `crossbar` that the
            // database's owner made for the bridge's login role.
            if let Err(e) = client.batch_execute(CROSSBAR_SCHEMA).await {
                tracing::error!(bridge = %self.id, "cannot install crossbar.publish: {} (the schema `crossbar` must exist, owned by the bridge's login role: CREATE SCHEMA crossbar AUTHORIZATION <user>;)", crate::describe(&e));
                return Err(e);
            }
            self.crossbar_installed = true;
            tracing::info!(bridge = %self.id, "crossbar.publish installed");
        }
        if let Some(callee) = &self.component.callee {
            client
                .batch_execute(&format!(
                    "LISTEN {}",
                    catalog::quote_ident(callee.reload_channel())
                ))
                .await?;
        }
        self.sync_procedures(client).await
    }

    /// Reads the functions and brings the registrations in line with them.
    async fn sync_procedures(
        &mut self,
        client: &tokio_postgres::Client,
    ) -> Result<(), tokio_postgres::Error> {
        let Some(calls) = self.calls.clone() else {
            return Ok(());
        };
        let found: BTreeMap<String, Function> = catalog::discover(client, &calls.config).await?;
        let gone: Vec<String> = self
            .registered
            .iter()
            .filter(|(uri, (_, f))| found.get(*uri) != Some(f))
            .map(|(uri, _)| uri.clone())
            .collect();
        for uri in gone {
            if let Some((id, _)) = self.registered.remove(&uri)
                && let Err(e) = self.session.unregister(id).await
            {
                tracing::warn!(bridge = %self.id, procedure = %uri, "unregister failed: {e}");
            }
        }
        let mut added = Vec::new();
        for (uri, function) in found {
            if self.registered.contains_key(&uri) {
                continue;
            }
            let (calls, f) = (calls.clone(), Arc::new(function.clone()));
            let registered = self
                .session
                .register(&uri, RegisterOptions::default(), move |invocation| {
                    let (calls, f) = (calls.clone(), f.clone());
                    async move { calls.call(&f, invocation).await }
                })
                .await;
            match registered {
                Ok(id) => {
                    added.push(uri.clone());
                    self.registered.insert(uri, (id, function));
                }
                Err(e) => {
                    tracing::warn!(bridge = %self.id, procedure = %uri, function = %function.display, "cannot register: {e}");
                }
            }
        }
        if !added.is_empty() {
            tracing::info!(bridge = %self.id, "registered {}", added.join(", "));
        }
        Ok(())
    }

    /// Takes the publish channel's lock (one publishing bridge per channel and database) and
    /// LISTENs to it; false while another bridge holds it.
    async fn try_lead(&mut self, client: &tokio_postgres::Client) -> bool {
        let Some(publisher) = &self.component.publisher else {
            return true;
        };
        let channel = publisher.channel();
        let locked = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext('switchboard'), hashtext($1))",
                &[&lock_key(publisher)],
            )
            .await
            .map(|r| r.get::<_, bool>(0));
        match locked {
            Ok(true) => {
                // Events spilled long ago whose NOTIFY no bridge heard are gone for good (the
                // notify tier's spill table).
                if publisher.mode == PublishMode::Notify {
                    let swept = client
                        .execute(
                            &format!(
                                "DELETE FROM wamp.event_buffer WHERE channel = $1 \
                                 AND created_at < now() - interval '{SPILL_MAX_AGE}'"
                            ),
                            &[&channel],
                        )
                        .await;
                    if let Err(e) = swept {
                        tracing::warn!(bridge = %self.id, "cannot sweep wamp.event_buffer: {}", crate::describe(&e));
                    }
                }
                let listen = format!("LISTEN {}", catalog::quote_ident(channel));
                match client.batch_execute(&listen).await {
                    Ok(()) => {
                        tracing::info!(bridge = %self.id, %channel, mode = ?publisher.mode, "publishing events from the database");
                        // LISTEN first, then what waited: nothing falls between the two.
                        match publisher.mode {
                            PublishMode::Notify => true,
                            PublishMode::Outbox => {
                                self.drain_outbox(client).await;
                                true
                            }
                            PublishMode::Durable => self.start_durable(client).await,
                        }
                    }
                    Err(e) => {
                        tracing::warn!(bridge = %self.id, "LISTEN {channel} failed: {e}");
                        false
                    }
                }
            }
            Ok(false) => {
                tracing::debug!(bridge = %self.id, %channel, "another bridge publishes this channel");
                false
            }
            Err(e) => {
                tracing::warn!(bridge = %self.id, "cannot take the publish lock: {e}");
                false
            }
        }
    }

    /// The durable tier: the slot, then its stream, which reconnects by itself (with backoff)
    /// while this bridge holds the channel. False (the lock given up, to be tried again) where
    /// the slot cannot be used.
    async fn start_durable(&mut self, client: &tokio_postgres::Client) -> bool {
        let Some(publisher) = self.component.publisher.clone() else {
            return true;
        };
        match crate::durable::prepare_slot(client, &publisher).await {
            Ok(lag) => {
                if let Some(lag) = lag.filter(|l| *l > 0) {
                    tracing::info!(bridge = %self.id, slot = %publisher.slot(), lag_bytes = lag, "the slot has WAL to catch up on");
                }
            }
            Err(why) => {
                tracing::warn!(bridge = %self.id, "durable tier: {why}; trying again in {LEADERSHIP_RETRY:?}");
                // Not the publisher after all: another bridge may try.
                let released = client
                    .batch_execute(&format!(
                        "UNLISTEN {}",
                        catalog::quote_ident(publisher.channel())
                    ))
                    .await;
                let unlocked = client
                    .execute(
                        "SELECT pg_advisory_unlock(hashtext('switchboard'), hashtext($1))",
                        &[&lock_key(&publisher)],
                    )
                    .await;
                if let Err(e) = released.and(unlocked.map(|_| ())) {
                    tracing::debug!("giving up the publish lock: {e}");
                }
                return false;
            }
        }
        let (id, session, connection) = (
            self.id.clone(),
            self.session.clone(),
            self.connection.clone(),
        );
        let name = format!(
            "{}-replication",
            self.pg.get_application_name().unwrap_or("switchboard")
        );
        self.stop_durable();
        self.durable = Some(tokio::spawn(async move {
            let mut backoff = Backoff::new();
            loop {
                let started = Instant::now();
                match crate::durable::stream(&connection, &publisher, &session, &name).await {
                    crate::durable::StreamEnd::SessionGone => return,
                    crate::durable::StreamEnd::Lost(why) => {
                        if started.elapsed() >= STABLE_CONNECTION {
                            backoff.reset();
                        }
                        let wait = backoff.next();
                        tracing::warn!(bridge = %id, "durable tier: {why}; streaming again in {wait:?}");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }));
        true
    }

    /// Stops the durable tier's stream (the channel's lock is lost with the listener connection,
    /// and another bridge may take the slot over).
    fn stop_durable(&mut self) {
        if let Some(task) = self.durable.take() {
            task.abort();
        }
    }

    /// A notification on one of the listener's channels.
    async fn notified(&mut self, client: &tokio_postgres::Client, channel: &str, payload: &str) {
        let reload = self
            .component
            .callee
            .as_ref()
            .is_some_and(|c| channel == c.reload_channel());
        if reload {
            if payload == "reload" {
                tracing::info!(bridge = %self.id, "reloading the function list");
                if let Err(e) = self.sync_procedures(client).await {
                    tracing::warn!(bridge = %self.id, "reload failed: {}", crate::describe(&e));
                }
            }
            return;
        }
        let Some(publisher) = &self.component.publisher else {
            return;
        };
        if channel != publisher.channel() {
            return;
        }
        if publisher.mode == PublishMode::Outbox && payload.is_empty() {
            self.drain_outbox(client).await;
            return;
        }
        let event = match publisher::parse(payload) {
            Ok(Notified::Event(event)) => event,
            Ok(Notified::Spilled(seq)) => {
                // Only an event spilled for this channel: a forged reference cannot take another
                // bridge's event.
                let fetched = match self.pool.get().await {
                    Ok(c) => {
                        c.query_opt(
                            "DELETE FROM wamp.event_buffer WHERE seq = $1 AND channel = $2 \
                             RETURNING payload",
                            &[&seq, &publisher.channel()],
                        )
                        .await
                    }
                    Err(e) => {
                        tracing::warn!(bridge = %self.id, seq, "cannot read a buffered event: {e}");
                        return;
                    }
                };
                match fetched {
                    Ok(Some(row)) => match publisher::parse(&row.get::<_, String>(0)) {
                        Ok(Notified::Event(event)) => event,
                        _ => {
                            tracing::warn!(bridge = %self.id, seq, "a buffered event is not an event");
                            return;
                        }
                    },
                    Ok(None) => {
                        tracing::warn!(bridge = %self.id, seq, "a buffered event is gone (taken by another bridge?)");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(bridge = %self.id, seq, "cannot read a buffered event: {}", crate::describe(&e));
                        return;
                    }
                }
            }
            Err(why) => {
                tracing::warn!(bridge = %self.id, %channel, "ignoring a notification: {why}");
                return;
            }
        };
        // A session that ended stops the bridge (the supervisor's `closed` branch).
        let _ = publisher::publish(&self.session, publisher, event).await;
    }

    /// Publishes what waits in the outbox (the outbox tier).
    async fn drain_outbox(&self, client: &tokio_postgres::Client) {
        let Some(publisher) = &self.component.publisher else {
            return;
        };
        match publisher::drain_outbox(client, &self.session, publisher).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(bridge = %self.id, n, "published from the outbox"),
            Err(publisher::DrainError::Database(e)) => {
                tracing::warn!(bridge = %self.id, "cannot read the outbox: {}; the events wait for the next try", crate::describe(&e));
            }
            Err(publisher::DrainError::SessionGone) => {
                tracing::warn!(bridge = %self.id, "the session ended while publishing from the outbox; the events wait for the next bridge");
            }
        }
    }

    /// Tells the realm that events published while the listener was away were missed (notify
    /// tier).
    async fn announce_reconnect(&self, since: Instant) {
        let gap_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The outbox and durable tiers lose nothing while away: only the notify tier has a gap.
        if self
            .component
            .publisher
            .as_ref()
            .is_none_or(|p| p.mode != PublishMode::Notify)
        {
            tracing::info!(bridge = %self.id, gap_ms, "listener reconnected");
            return;
        }
        tracing::warn!(bridge = %self.id, gap_ms, "listener reconnected: events published meanwhile were missed");
        let details = json!({"bridge": self.id, "gap_ms": gap_ms});
        let args = Args::positional(vec![
            serde_json::from_value::<Value>(details).unwrap_or(Value::Null),
        ]);
        if let Err(e) = self
            .session
            .publish(
                LISTENER_RECONNECT_TOPIC,
                args,
                PublishOptions::acknowledged(),
            )
            .await
        {
            tracing::warn!(bridge = %self.id, "cannot announce the reconnect: {e}");
        }
    }
}

/// What the publishing bridge holds the advisory lock on: the channel, and in the durable tier
/// the slot (one reader per slot, whatever its channel).
fn lock_key(publisher: &crate::config::PublisherConfig) -> String {
    match publisher.mode {
        PublishMode::Durable => format!("slot:{}", publisher.slot()),
        PublishMode::Notify | PublishMode::Outbox => publisher.channel().to_owned(),
    }
}

/// Exponential backoff with jitter, 0.5 s up to 32 s.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: Duration::from_millis(500),
        }
    }

    fn next(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(32));
        base + base.mul_f64(rand::random::<f64>() * 0.25)
    }

    fn reset(&mut self) {
        *self = Self::new();
    }
}
