//! The bridge's configuration, as the node config writes it: a router worker's `connections`
//! entry (`{"type": "postgres", ...}`) and its `{"type": "postgresql"}` component. Data only;
//! the node's config checks cross-references (realm, role, connection).

use std::collections::BTreeMap;

use serde::Deserialize;

/// A `connections` entry of type `postgres`: where the database is and who the bridge logs in as.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConnectionConfig {
    /// The id components name it by.
    pub id: String,
    /// Host name, address, or a Unix socket directory (starting with `/`); default `127.0.0.1`.
    #[serde(default)]
    pub host: Option<String>,
    /// Port (default 5432).
    #[serde(default)]
    pub port: Option<u16>,
    /// The database.
    pub database: String,
    /// The login role.
    pub user: String,
    /// Its password (`$VAR` / `${VAR}` from the environment, as everywhere in the config).
    #[serde(default)]
    pub password: Option<String>,
    /// Pool and connection options.
    #[serde(default)]
    pub options: PostgresConnectionOptions,
}

/// A connection's `options`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConnectionOptions {
    /// Accepted: the pool opens connections as calls need them.
    #[serde(default)]
    pub min_connections: Option<usize>,
    /// The most connections calls use at once (default 10).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// TLS, as libpq's `sslmode`: `disable`, `allow` and `prefer` (the default; TLS where the
    /// server offers it, unverified), `require` (TLS; the certificate verified against
    /// `sslrootcert` where one is given), `verify-ca` (the certificate chain verified),
    /// `verify-full` (the chain and the host name).
    #[serde(default)]
    pub sslmode: Option<String>,
    /// The CA certificates (PEM) the server's certificate is verified against (default: the
    /// Mozilla root certificates). Relative to the config file's directory.
    #[serde(default)]
    pub sslrootcert: Option<std::path::PathBuf>,
    /// A client certificate chain (PEM), for servers that ask for one, with `sslkey`.
    #[serde(default)]
    pub sslcert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub sslkey: Option<std::path::PathBuf>,
    /// `application_name` of the bridge's connections (default `switchboard`).
    #[serde(default)]
    pub application_name: Option<String>,
    /// `any` or `read-write`.
    #[serde(default)]
    pub target_session_attrs: Option<String>,
    /// Seconds to connect (default 10).
    #[serde(default)]
    pub connect_timeout: Option<u64>,
}

/// A `{"type": "postgresql"}` component of a router worker: one bridge, one WAMP session.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresComponentConfig {
    /// Component id (default `component001`, ... by position).
    #[serde(default)]
    pub id: Option<String>,
    /// The realm the bridge's session joins.
    pub realm: String,
    /// The role it joins with: its permissions bound what the database may register and publish.
    pub role: String,
    /// The `connections` entry it uses.
    pub connection: String,
    /// Create (or update) the `wamp` helper schema at start. Off by default: the bridge changes no
    /// schema unless told to (`switchboard postgres sql` prints it for a DBA to apply).
    #[serde(default)]
    pub install_schema: bool,
    /// SQL functions registered as procedures.
    #[serde(default)]
    pub callee: Option<CalleeConfig>,
    /// Events published from SQL.
    #[serde(default)]
    pub publisher: Option<PublisherConfig>,
    /// Events delivered to SQL.
    #[serde(default)]
    pub subscriber: Option<SubscriberConfig>,
    /// Run as Crossbar's PostgreSQL publisher (`crossbar.adapter.postgres.PostgreSQLPublisher`):
    /// `crossbar.publish` is installed into the schema `crossbar` at start, as Crossbar did.
    #[serde(skip)]
    pub crossbar_publisher: bool,
}

/// The `subscriber` section: WAMP events into the database.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberConfig {
    /// Each subscription and where its events go.
    pub subscriptions: Vec<SinkConfig>,
    /// How inserts are batched.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Events waiting for the database, per subscription, before the oldest are dropped
    /// (default 10000).
    #[serde(default)]
    pub queue: Option<usize>,
    /// `drop_oldest` (the only policy: newer events win, and drops are counted and logged).
    #[serde(default)]
    pub on_overflow: Option<String>,
}

/// One subscription of the subscriber.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// The topic (or pattern).
    pub topic: String,
    /// `exact` (default), `prefix` or `wildcard`.
    #[serde(rename = "match", default)]
    pub match_policy: Option<String>,
    /// A function `(topic text, args jsonb, kwargs jsonb, details jsonb)` called per event.
    #[serde(default)]
    pub function: Option<String>,
    /// A table with the columns `topic text, args jsonb, kwargs jsonb, details jsonb`, into
    /// which events are inserted in batches.
    #[serde(default)]
    pub insert: Option<String>,
}

/// `subscriber.batch`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Rows per INSERT at most (default 500).
    #[serde(default)]
    pub max_rows: Option<usize>,
    /// Milliseconds an event waits for more to batch with (default 50).
    #[serde(default)]
    pub max_delay_ms: Option<u64>,
}

/// The `callee` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalleeConfig {
    /// Schemas whose functions are registered, each under a URI prefix.
    #[serde(default)]
    pub schemas: Vec<SchemaConfig>,
    /// Functions registered under a URI of their own (overriding or extending `schemas`).
    #[serde(default)]
    pub procedures: Vec<ProcedureConfig>,
    /// Which database role a call runs as.
    #[serde(default)]
    pub roles: RolesConfig,
    /// A function parameter of this name receives the caller as JSON (default `_caller`).
    #[serde(default)]
    pub caller_param: Option<String>,
    /// The longest a call may run, in milliseconds (default 30000).
    #[serde(default)]
    pub max_timeout: Option<u64>,
    /// How much of an SQL error goes to the caller.
    #[serde(default)]
    pub error_verbosity: ErrorVerbosity,
    /// `NOTIFY <channel>, 'reload'` makes the bridge read the functions again (default
    /// `switchboard`).
    #[serde(default)]
    pub reload_channel: Option<String>,
    /// Milliseconds a call waits for a free connection before it fails with
    /// `wamp.error.unavailable` (default 5000).
    #[serde(default)]
    pub acquire_timeout: Option<u64>,
}

/// One schema of `callee.schemas`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// The schema.
    pub schema: String,
    /// The URI prefix: `api.add2` is registered as `<prefix>add2`.
    pub prefix: String,
}

/// One entry of `callee.procedures`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureConfig {
    /// The procedure URI.
    pub uri: String,
    /// The function: `schema.name`, or with its argument types where it is overloaded
    /// (`api.f(int,text)`).
    pub function: String,
    /// The shape of the result.
    #[serde(default)]
    pub result: Option<ResultShape>,
    /// Milliseconds this function may run (at most `max_timeout`).
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Run it in a read-only transaction (default: when it is STABLE or IMMUTABLE).
    #[serde(default)]
    pub read_only: Option<bool>,
}

/// How a function's result becomes the WAMP result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultShape {
    /// One value as the first positional argument (a row as an object); SETOF as one array.
    Value,
    /// A row's columns as keyword arguments.
    Kwargs,
    /// Always an array of rows, one row or none too.
    Rows,
    /// SETOF rows one by one as progressive results when the caller asks for them (the default
    /// for SETOF functions anyway).
    Progressive,
}

/// `callee.roles`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    /// `none` (calls run as the login role), `map` (the caller's WAMP role through `map`) or
    /// `authrole` (a database role of the same name as the caller's WAMP role).
    #[serde(default)]
    pub mode: RoleMode,
    /// WAMP role -> database role, for `map`.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// The database role of WAMP roles `map` does not name; none: such calls are refused.
    #[serde(default)]
    pub default: Option<String>,
}

/// `callee.roles.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleMode {
    /// No `SET ROLE`: calls run as the connection's user.
    #[default]
    None,
    /// The caller's WAMP role through `roles.map`.
    Map,
    /// The database role named as the caller's WAMP role.
    Authrole,
}

/// `callee.error_verbosity`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorVerbosity {
    /// The message and the SQLSTATE.
    #[default]
    Minimal,
    /// Also detail, hint, constraint, table and column.
    Verbose,
}

/// The `publisher` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublisherConfig {
    /// The delivery tier: `notify`, `outbox` or `durable`.
    #[serde(default)]
    pub mode: PublishMode,
    /// The NOTIFY channel `wamp.publish` uses (default `wamp_publish`).
    #[serde(default)]
    pub channel: Option<String>,
    /// Only topics with one of these prefixes are published (a fence on top of the role).
    #[serde(default)]
    pub topic_prefixes: Option<Vec<String>>,
    /// For the `outbox` tier: the table the bridge reads (default `wamp.outbox`; another table
    /// needs its columns `seq`, `channel`, `topic`, `args`, `kwargs`, `options`).
    #[serde(default)]
    pub outbox_table: Option<String>,
    /// For the `durable` tier: the logical replication slot (default `switchboard`; created
    /// with pgoutput where it does not exist).
    #[serde(default)]
    pub slot: Option<String>,
    /// For the `durable` tier: the publication the slot is streamed with (default
    /// `switchboard`, which lists no table).
    #[serde(default)]
    pub publication: Option<String>,
}

/// `publisher.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// `pg_notify`, with payloads too large for it spilled to a table.
    #[default]
    Notify,
    /// An outbox table read in order (at-least-once).
    Outbox,
    /// Logical messages through a replication slot.
    Durable,
}

impl CalleeConfig {
    /// The parameter that receives the caller.
    pub fn caller_param(&self) -> &str {
        self.caller_param.as_deref().unwrap_or("_caller")
    }

    /// The longest a call may run, in milliseconds (never 0: a statement_timeout of 0 is none
    /// at all). The pool's connections start with it as their statement timeout.
    pub fn max_timeout(&self) -> u64 {
        self.max_timeout.unwrap_or(30_000).max(1)
    }

    /// The reload channel.
    pub fn reload_channel(&self) -> &str {
        self.reload_channel.as_deref().unwrap_or("switchboard")
    }
}

impl PublisherConfig {
    /// The NOTIFY channel.
    pub fn channel(&self) -> &str {
        self.channel
            .as_deref()
            .unwrap_or(crate::DEFAULT_PUBLISH_CHANNEL)
    }

    /// The durable tier's replication slot (default `switchboard`).
    pub fn slot(&self) -> &str {
        self.slot.as_deref().unwrap_or("switchboard")
    }

    /// The durable tier's publication (default `switchboard`, which the helper schema creates).
    pub fn publication(&self) -> &str {
        self.publication.as_deref().unwrap_or("switchboard")
    }

    /// The outbox table, as written in SQL (`schema.table`, each part quoted).
    pub fn outbox_table(&self) -> String {
        let name = self.outbox_table.as_deref().unwrap_or("wamp.outbox");
        match name.split_once('.') {
            Some((schema, table)) => format!(
                "{}.{}",
                crate::catalog::quote_ident(schema),
                crate::catalog::quote_ident(table)
            ),
            None => crate::catalog::quote_ident(name),
        }
    }
}
