//! One WAMP call of an SQL function: the caller's WAMP role becomes a database role, the
//! arguments bind to the function's parameters by position and by name, and the function runs in
//! one short transaction that knows who is calling (`wamp.authid()` and friends, `SET LOCAL
//! ROLE`), bounded by a statement timeout. Its result becomes the WAMP result, its SQLSTATE the
//! WAMP error. A call the caller cancels (or the dealer times out) cancels the query.

use std::time::Duration;

use postgres_protocol::escape::escape_literal;
use serde_json::{Map, Value as Json, json};
use switchboard_client::{Args, CallError, Invocation};
use switchboard_proto::{Dict, Value};
use tokio_postgres::types::ToSql;

use crate::catalog::{Function, quote_ident};
use crate::config::{CalleeConfig, ErrorVerbosity, ResultShape, RoleMode};

/// WAMP's error for a callee that cannot serve now (the database is down, no connection free).
pub const UNAVAILABLE: &str = "wamp.error.unavailable";
/// Switchboard's error for SQL errors without a WAMP meaning.
pub const SQL_ERROR: &str = "switchboard.error.sql";

const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";
const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";

/// The SQLSTATE `wamp.raise` raises: the message is the error URI, the detail its payload.
const RAISED: &str = "WA000";

/// What a connection runs after each use that ran user code, so that what the code set for its
/// whole session does not reach the next use: the settings (`RESET ALL`), and the session user
/// and the role, which `RESET ALL` leaves alone.
pub(crate) const RESET_SESSION: &str = "RESET ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ROLE";

/// What calls share: the pool and the callee settings.
pub struct Calls {
    /// Connections for calls.
    pub pool: deadpool_postgres::Pool,
    /// The callee section.
    pub config: CalleeConfig,
    /// TLS, for cancel requests (a new connection each).
    pub tls: tokio_postgres_rustls::MakeRustlsConnect,
}

fn error(uri: &str, message: impl Into<String>) -> CallError {
    CallError {
        uri: uri.to_owned(),
        args: vec![Value::from(message.into())],
        kwargs: Dict::new(),
    }
}

fn to_value(json: Json) -> Value {
    serde_json::from_value(json).unwrap_or(Value::Null)
}

/// A WAMP value as the database gets it: binary as bytea's hex text (`\x00ff`), which a bytea
/// parameter reads as bytes (JSON cannot carry them: jsonb refuses the NUL that starts WAMP's
/// JSON form of binary).
fn to_json(value: &Value) -> Json {
    match value {
        Value::Bytes(b) => Json::String(format!("\\x{}", hex::encode(b))),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Dict(d) => Json::Object(d.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        other => serde_json::to_value(other).unwrap_or(Json::Null),
    }
}

/// A pooled connection for one call. If the call is dropped while its query runs (the caller
/// canceled, the dealer timed it out), the query is canceled and the connection is closed rather
/// than returned to the pool: a cancel request that arrives late can then hit nothing else.
struct Leased {
    client: Option<deadpool_postgres::Object>,
    busy: bool,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl Drop for Leased {
    fn drop(&mut self) {
        if !self.busy {
            return;
        }
        if let Some(object) = self.client.take() {
            let client = deadpool_postgres::Object::take(object);
            let token = client.cancel_token();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                if let Err(e) = token.cancel_query(tls).await {
                    tracing::debug!("cancelling a dropped call's query: {e}");
                }
                drop(client);
            });
        }
    }
}

impl Calls {
    /// The database role a call of `authrole` runs as (`None`: no `SET ROLE`), or the refusal.
    fn database_role(&self, authrole: Option<&str>) -> Result<Option<String>, CallError> {
        let roles = &self.config.roles;
        match roles.mode {
            RoleMode::None => Ok(None),
            RoleMode::Authrole => authrole
                .map(|r| Some(r.to_owned()))
                .ok_or_else(|| error(NOT_AUTHORIZED, "the caller has no role")),
            RoleMode::Map => authrole
                .and_then(|r| roles.map.get(r))
                .or(roles.default.as_ref())
                .map(|r| Some(r.clone()))
                .ok_or_else(|| {
                    error(
                        NOT_AUTHORIZED,
                        format!(
                            "no database role for WAMP role {}",
                            authrole.unwrap_or("(none)")
                        ),
                    )
                }),
        }
    }

    /// Runs `f` for `inv`.
    pub async fn call(&self, f: &Function, inv: Invocation) -> Result<Args, CallError> {
        let db_role = self.database_role(inv.caller_authrole())?;
        let caller = json!({
            "session": inv.caller(),
            "authid": inv.caller_authid(),
            "authrole": inv.caller_authrole(),
            "procedure": inv.procedure(),
        });
        let max = self.config.max_timeout();
        let timeout = f.timeout.map_or(max, |t| t.clamp(1, max));
        // The pool's connections start with `max` as their statement timeout: calls with a role
        // or a timeout of their own take the simple form.
        let prepared = db_role.is_none() && timeout == max;
        let how = if prepared {
            Arguments::Parameters { first: 5 }
        } else {
            Arguments::Literals
        };
        let (sql, params) = statement(f, &inv, &caller, self.config.caller_param(), how)?;
        let acquire = Duration::from_millis(self.config.acquire_timeout.unwrap_or(5_000));
        let client = match tokio::time::timeout(acquire, self.pool.get()).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                tracing::warn!("no database connection for a call: {e}");
                return Err(error(UNAVAILABLE, "the database is not available"));
            }
            Err(_) => {
                return Err(error(
                    UNAVAILABLE,
                    "no database connection was free in time",
                ));
            }
        };
        let mut leased = Leased {
            client: Some(client),
            busy: false,
            tls: self.tls.clone(),
        };
        let verbosity = self.config.error_verbosity;
        let rows = {
            let client = leased.client.as_mut().expect("leased until dropped");
            leased.busy = true;
            let outcome = if prepared {
                run_prepared(client, f, &sql, &params, &caller).await
            } else {
                run_simple(client, f, &sql, &caller, db_role.as_deref(), timeout).await
            };
            leased.busy = false;
            outcome.map_err(|e| sql_error(&e, verbosity))?
        };
        drop(leased);
        result(f, rows, &inv).await
    }
}

/// How a call's arguments are written into its SQL.
#[derive(Clone, Copy)]
enum Arguments {
    /// As literals, for the one-message form of [`run_simple`].
    Literals,
    /// As parameters from `$first` on, for the prepared statement of [`run_prepared`].
    Parameters { first: usize },
}

/// The query that calls `f` with the invocation's arguments (`SELECT <result> FROM ...`), and
/// the parameter values where they are parameters. The arguments travel as jsonb that
/// `jsonb_to_record` turns into the parameters' types, so PostgreSQL's own input functions do
/// the conversions.
fn statement(
    f: &Function,
    inv: &Invocation,
    caller: &Json,
    caller_param: &str,
    how: Arguments,
) -> Result<(String, Vec<Json>), CallError> {
    // A bytea result is read as bytes (to_jsonb would make it a hex string).
    let column = if f.returns == "bytea" {
        "r"
    } else {
        "to_jsonb(r)"
    };
    let mut params = Vec::new();
    let mut jsonb = |value: Json| match how {
        Arguments::Literals => format!("{}::jsonb", escape_literal(&value.to_string())),
        // Through `s.ok` (see `run_prepared`): a value that depends on the settings' subquery is
        // no constant the planner could fold an IMMUTABLE function over before they are set.
        Arguments::Parameters { first } => {
            params.push(value);
            format!(
                "(CASE WHEN s.ok IS NOT NULL THEN ${}::jsonb END)",
                first + params.len() - 1
            )
        }
    };
    if f.raw {
        let args = Json::Array(inv.positional().iter().map(to_json).collect());
        let kwargs = Json::Object(
            inv.kwargs()
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        );
        let mut arguments = format!("{}, {}", jsonb(args), jsonb(kwargs));
        if f.params.len() == 3 {
            let mut details = caller.clone();
            if let Some(d) = details.as_object_mut() {
                d.insert(
                    "caller".into(),
                    d.get("session").cloned().unwrap_or(Json::Null),
                );
                d.insert(
                    "caller_authid".into(),
                    d.get("authid").cloned().unwrap_or(Json::Null),
                );
                d.insert(
                    "caller_authrole".into(),
                    d.get("authrole").cloned().unwrap_or(Json::Null),
                );
            }
            arguments.push_str(", ");
            arguments.push_str(&jsonb(details));
        }
        let sql = format!("SELECT {column} FROM {}({arguments}) AS r", f.qualified);
        return Ok((sql, params));
    }
    let bound = bind(f, inv.positional(), inv.kwargs(), caller, caller_param)?;
    if bound.is_empty() {
        return Ok((
            format!("SELECT {column} FROM {}() AS r", f.qualified),
            params,
        ));
    }
    let columns: Vec<String> = bound
        .iter()
        .map(|(p, _)| format!("{} {}", quote_ident(&f.params[*p].name), f.params[*p].ty))
        .collect();
    let last = f.params.len() - 1;
    let arguments: Vec<String> = bound
        .iter()
        .map(|(p, _)| {
            let name = quote_ident(&f.params[*p].name);
            if f.variadic && *p == last {
                format!("VARIADIC {name} => x.{name}")
            } else {
                format!("{name} => x.{name}")
            }
        })
        .collect();
    let record: Map<String, Json> = bound
        .into_iter()
        .map(|(p, v)| (f.params[p].name.clone(), v))
        .collect();
    let sql = format!(
        "SELECT {column} FROM pg_catalog.jsonb_to_record({}) AS x({}), LATERAL {}({}) AS r",
        jsonb(Json::Object(record)),
        columns.join(", "),
        f.qualified,
        arguments.join(", ")
    );
    Ok((sql, params))
}

/// Binds WAMP arguments to parameters: positional ones in order (skipping the caller parameter),
/// keyword ones by name; returns `(parameter index, value)` of each bound parameter. A parameter
/// without a value must have a default.
pub(crate) fn bind(
    f: &Function,
    positional: &[Value],
    kwargs: &Dict,
    caller: &Json,
    caller_param: &str,
) -> Result<Vec<(usize, Json)>, CallError> {
    let mut values: Vec<Option<Json>> = vec![None; f.params.len()];
    let caller_at = f.params.iter().position(|p| p.name == caller_param);
    let mut open = (0..f.params.len()).filter(|i| Some(*i) != caller_at);
    for value in positional {
        let Some(i) = open.next() else {
            return Err(error(
                INVALID_ARGUMENT,
                format!(
                    "{} takes at most {} arguments",
                    f.display,
                    f.params.len() - usize::from(caller_at.is_some())
                ),
            ));
        };
        values[i] = Some(to_json(value));
    }
    for (name, value) in kwargs {
        match f.params.iter().position(|p| &p.name == name) {
            Some(i) if Some(i) == caller_at => {
                return Err(error(
                    INVALID_ARGUMENT,
                    format!("{name} is the caller, set by the router"),
                ));
            }
            Some(i) if values[i].is_some() => {
                return Err(error(
                    INVALID_ARGUMENT,
                    format!("argument {name} given twice (by position and by name)"),
                ));
            }
            Some(i) => values[i] = Some(to_json(value)),
            None => {
                return Err(error(
                    INVALID_ARGUMENT,
                    format!("{} has no parameter {name}", f.display),
                ));
            }
        }
    }
    if let Some(i) = caller_at {
        values[i] = Some(caller.clone());
    }
    let first_default = f.params.len() - f.defaults.min(f.params.len());
    let mut bound = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        match value {
            Some(v) => bound.push((i, v)),
            None if i >= first_default => {}
            None => {
                return Err(error(
                    INVALID_ARGUMENT,
                    format!("missing argument {}", f.params[i].name),
                ));
            }
        }
    }
    Ok(bound)
}

/// The rows of a call, or none for a bytea result read natively (then in `bytes`).
pub(crate) enum Rows {
    Json(Vec<Json>),
    Bytes(Vec<Option<Vec<u8>>>),
}

/// The caller's identity as the values of the `wamp.*` settings: caller, authid, authrole,
/// session.
fn identity(caller: &Json) -> [String; 4] {
    let text = |key: &str| caller[key].as_str().unwrap_or_default().to_owned();
    [
        caller.to_string(),
        text("authid"),
        text("authrole"),
        caller["session"]
            .as_u64()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    ]
}

/// A call with a database role or a timeout of its own, as one simple-protocol query: one
/// message, one round trip, and one implicit transaction, which ends with the last statement
/// (PostgreSQL runs the statements of one query message as one transaction). In it: `SET
/// TRANSACTION READ ONLY` where the procedure is read-only; the caller's identity, the statement
/// timeout and the database role as transaction-local settings (the role last: it may not be
/// allowed to change the others); the function; and [`RESET_SESSION`], so that what the function
/// set for its whole session (a role, a `search_path`) does not reach the next call on this
/// connection. After an error PostgreSQL skips the rest and rolls the transaction back,
/// settings included. Each statement is resolved after the previous one ran, so the function is
/// looked up with the mapped role's privileges and runs as it.
async fn run_simple(
    client: &tokio_postgres::Client,
    f: &Function,
    call: &str,
    caller: &Json,
    db_role: Option<&str>,
    timeout_ms: u64,
) -> Result<Rows, tokio_postgres::Error> {
    use std::fmt::Write as _;
    let mut query = String::with_capacity(call.len() + 400);
    // The statement whose rows are the call's rows.
    let mut call_index = 1;
    if f.read_only {
        query.push_str("SET TRANSACTION READ ONLY;");
        call_index += 1;
    }
    let [caller_text, authid, authrole, session] = identity(caller);
    let _ = write!(
        query,
        "SELECT pg_catalog.set_config('wamp.caller', {}, true), \
         pg_catalog.set_config('wamp.authid', {}, true), \
         pg_catalog.set_config('wamp.authrole', {}, true), \
         pg_catalog.set_config('wamp.session', {}, true), \
         pg_catalog.set_config('statement_timeout', '{timeout_ms}ms', true), \
         pg_catalog.set_config('bytea_output', 'hex', true)",
        escape_literal(&caller_text),
        escape_literal(&authid),
        escape_literal(&authrole),
        escape_literal(&session),
    );
    if let Some(role) = db_role {
        let _ = write!(
            query,
            ", pg_catalog.set_config('role', {}, true)",
            escape_literal(role)
        );
    }
    query.push(';');
    query.push_str(call);
    query.push(';');
    query.push_str(RESET_SESSION);
    let messages = client.simple_query(&query).await?;
    let mut statement = 0;
    let mut values = Vec::new();
    for message in &messages {
        match message {
            tokio_postgres::SimpleQueryMessage::CommandComplete(_) => statement += 1,
            tokio_postgres::SimpleQueryMessage::Row(row) if statement == call_index => {
                values.push(row.get(0));
            }
            _ => {}
        }
    }
    Ok(if f.returns == "bytea" {
        Rows::Bytes(
            values
                .into_iter()
                .map(|v| v.and_then(|text| hex::decode(text.strip_prefix("\\x")?).ok()))
                .collect(),
        )
    } else {
        Rows::Json(
            values
                .into_iter()
                .map(|v| {
                    v.and_then(|text| serde_json::from_str(text).ok())
                        .unwrap_or(Json::Null)
                })
                .collect(),
        )
    })
}

/// A call as the connection's own login role with the default timeout (which the pool's
/// connections have from their start), the common case, as one prepared statement and
/// [`RESET_SESSION`] (after `SET default_transaction_read_only = on` for a read-only procedure),
/// sent together (one round trip, and nothing to plan after the first call).
/// The statement is its own transaction: the identity settings are transaction-local and set
/// in it, by a subquery that every argument of the function depends on (a LATERAL reference
/// behind an `OFFSET 0` fence, which the planner neither flattens nor reorders; the subquery
/// itself stays unflattened because its settings are volatile), so they are in place before
/// the function runs and gone when the statement ends.
async fn run_prepared(
    client: &mut deadpool_postgres::Object,
    f: &Function,
    call: &str,
    params: &[Json],
    caller: &Json,
) -> Result<Rows, tokio_postgres::Error> {
    let sql = format!(
        "SELECT c.v FROM (SELECT pg_catalog.set_config('wamp.caller', $1, true) \
         || pg_catalog.set_config('wamp.authid', $2, true) \
         || pg_catalog.set_config('wamp.authrole', $3, true) \
         || pg_catalog.set_config('wamp.session', $4, true) AS ok) AS s, \
         LATERAL (SELECT * FROM ({call}) AS v(v) WHERE s.ok IS NOT NULL OFFSET 0) AS c"
    );
    let statement = client.prepare_cached(&sql).await?;
    // A transaction cannot make itself read-only once a statement ran: the session's default
    // makes the call's transaction read-only, and the reset after it undoes that.
    let read_only = if f.read_only {
        Some(
            client
                .prepare_cached("SET default_transaction_read_only = on")
                .await?,
        )
    } else {
        None
    };
    let values = identity(caller);
    let mut refs: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    refs.extend(params.iter().map(|p| p as &(dyn ToSql + Sync)));
    let c: &tokio_postgres::Client = client;
    // join! polls each future once in this order before any awaits an answer: the two requests
    // go out in order, together.
    let (read_only, rows, reset) = futures::join!(
        async {
            match &read_only {
                Some(set) => c.execute(set, &[]).await.map(|_| ()),
                None => Ok(()),
            }
        },
        c.query(&statement, &refs),
        c.batch_execute(RESET_SESSION)
    );
    read_only?;
    let rows = rows?;
    reset?;
    Ok(if f.returns == "bytea" {
        Rows::Bytes(
            rows.iter()
                .map(|r| r.get::<_, Option<Vec<u8>>>(0))
                .collect(),
        )
    } else {
        Rows::Json(
            rows.iter()
                .map(|r| r.get::<_, Option<Json>>(0).unwrap_or(Json::Null))
                .collect(),
        )
    })
}

/// The WAMP result of a call's rows.
async fn result(f: &Function, rows: Rows, inv: &Invocation) -> Result<Args, CallError> {
    let values: Vec<Value> = match rows {
        Rows::Json(rows) => rows.into_iter().map(to_value).collect(),
        Rows::Bytes(rows) => rows
            .into_iter()
            .map(|b| b.map_or(Value::Null, |b| Value::Bytes(b.into())))
            .collect(),
    };
    if f.raw {
        // The raw convention answers {"args": [...], "kwargs": {...}} (or any other value).
        let answer = values.into_iter().next().unwrap_or(Value::Null);
        if let Value::Dict(mut d) = answer {
            if d.contains_key("args") || d.contains_key("kwargs") {
                let args = match d.shift_remove("args") {
                    Some(Value::List(list)) => list,
                    Some(Value::Null) | None => Vec::new(),
                    Some(other) => vec![other],
                };
                let kwargs = match d.shift_remove("kwargs") {
                    Some(Value::Dict(k)) => k,
                    _ => Dict::new(),
                };
                return Ok(Args::new(args, kwargs));
            }
            return Ok(Args::positional(vec![Value::Dict(d)]));
        }
        return Ok(match answer {
            Value::Null => Args::default(),
            other => Args::positional(vec![other]),
        });
    }
    if f.returns == "void" {
        return Ok(Args::default());
    }
    if f.shape == Some(ResultShape::Kwargs) {
        // The (first) row's columns as keyword arguments.
        return Ok(match values.into_iter().next() {
            Some(Value::Dict(d)) => Args::new(Vec::new(), d),
            Some(Value::Null) | None => Args::default(),
            Some(other) => Args::positional(vec![other]),
        });
    }
    if f.returns_set || f.shape == Some(ResultShape::Rows) {
        if f.returns_set && inv.receive_progress() {
            for row in values {
                inv.progress(Args::positional(vec![row]))
                    .await
                    .map_err(|e| error(UNAVAILABLE, e.to_string()))?;
            }
            return Ok(Args::default());
        }
        return Ok(Args::positional(vec![Value::List(values)]));
    }
    Ok(Args::positional(vec![
        values.into_iter().next().unwrap_or(Value::Null),
    ]))
}

/// The WAMP error of an SQL error (the design's table), with the message and the SQLSTATE.
pub(crate) fn sql_error(e: &tokio_postgres::Error, verbosity: ErrorVerbosity) -> CallError {
    let Some(db) = e.as_db_error() else {
        // No answer from the server: the connection broke.
        tracing::warn!("database call failed: {e}");
        return error(UNAVAILABLE, "the database is not available");
    };
    let code = db.code().code();
    if code == RAISED {
        let payload: Json = db
            .detail()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Json::Null);
        let args = match payload.get("args") {
            Some(Json::Array(list)) => list.iter().cloned().map(to_value).collect(),
            _ => Vec::new(),
        };
        let kwargs = match payload.get("kwargs") {
            Some(Json::Object(map)) => map
                .iter()
                .map(|(k, v)| (k.clone(), to_value(v.clone())))
                .collect(),
            _ => Dict::new(),
        };
        return CallError {
            uri: db.message().to_owned(),
            args,
            kwargs,
        };
    }
    let uri = uri_of_sqlstate(code);
    let mut kwargs = Dict::new();
    kwargs.insert("sqlstate".into(), Value::from(code));
    if verbosity == ErrorVerbosity::Verbose {
        for (key, value) in [
            ("detail", db.detail()),
            ("hint", db.hint()),
            ("constraint", db.constraint()),
            ("table", db.table()),
            ("column", db.column()),
        ] {
            if let Some(v) = value {
                kwargs.insert(key.into(), Value::from(v));
            }
        }
    }
    CallError {
        uri: uri.to_owned(),
        args: vec![Value::from(db.message())],
        kwargs,
    }
}

/// The WAMP error URI of an SQLSTATE.
pub(crate) fn uri_of_sqlstate(code: &str) -> &'static str {
    match code {
        "42501" => NOT_AUTHORIZED,
        "42883" | "42725" => "wamp.error.no_such_procedure",
        "42804" | "23502" | "23514" => INVALID_ARGUMENT,
        c if c.starts_with("22") => INVALID_ARGUMENT,
        "57014" => "wamp.error.canceled",
        "57P01" | "57P02" | "57P03" | "53300" => UNAVAILABLE,
        c if c.starts_with("08") => UNAVAILABLE,
        _ => SQL_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Param;

    fn function(params: &[&str], defaults: usize) -> Function {
        Function {
            qualified: "\"api\".\"f\"".into(),
            display: "api.f".into(),
            params: params
                .iter()
                .map(|p| Param {
                    name: (*p).into(),
                    ty: "integer".into(),
                })
                .collect(),
            defaults,
            variadic: false,
            returns_set: false,
            returns: "integer".into(),
            read_only: false,
            raw: false,
            shape: None,
            timeout: None,
        }
    }

    fn kwargs(pairs: &[(&str, i64)]) -> Dict {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect()
    }

    #[test]
    fn arguments_bind_by_position_then_by_name() {
        let f = function(&["a", "b", "c"], 1);
        let caller = json!({});
        let bound = bind(
            &f,
            &[Value::from(1i64)],
            &kwargs(&[("b", 2)]),
            &caller,
            "_caller",
        )
        .expect("binds");
        assert_eq!(bound, vec![(0, json!(1)), (1, json!(2))]);
        let err = bind(
            &f,
            &[Value::from(1i64)],
            &kwargs(&[("a", 2)]),
            &caller,
            "_caller",
        )
        .expect_err("twice");
        assert_eq!(err.uri, INVALID_ARGUMENT);
        let err = bind(&f, &[], &kwargs(&[("b", 2)]), &caller, "_caller").expect_err("missing a");
        assert_eq!(err.uri, INVALID_ARGUMENT);
        let err = bind(&f, &[], &kwargs(&[("z", 2)]), &caller, "_caller").expect_err("unknown");
        assert_eq!(err.uri, INVALID_ARGUMENT);
        let four: Vec<Value> = (0..4i64).map(Value::from).collect();
        let err = bind(&f, &four, &Dict::new(), &caller, "_caller").expect_err("too many");
        assert_eq!(err.uri, INVALID_ARGUMENT);
    }

    #[test]
    fn the_caller_parameter_is_the_routers() {
        let f = function(&["_caller", "a"], 0);
        let caller = json!({"authid": "joe"});
        let bound =
            bind(&f, &[Value::from(5i64)], &Dict::new(), &caller, "_caller").expect("binds");
        assert_eq!(bound, vec![(0, json!({"authid": "joe"})), (1, json!(5))]);
        let err = bind(
            &f,
            &[],
            &kwargs(&[("_caller", 1), ("a", 1)]),
            &caller,
            "_caller",
        )
        .expect_err("not the caller's to set");
        assert_eq!(err.uri, INVALID_ARGUMENT);
    }

    #[test]
    fn sqlstates_map_to_the_designs_uris() {
        for (code, uri) in [
            ("42501", NOT_AUTHORIZED),
            ("42883", "wamp.error.no_such_procedure"),
            ("22P02", INVALID_ARGUMENT),
            ("23502", INVALID_ARGUMENT),
            ("23514", INVALID_ARGUMENT),
            ("57014", "wamp.error.canceled"),
            ("08006", UNAVAILABLE),
            ("57P01", UNAVAILABLE),
            ("53300", UNAVAILABLE),
            ("23505", SQL_ERROR),
            ("40001", SQL_ERROR),
            ("P0001", SQL_ERROR),
        ] {
            assert_eq!(uri_of_sqlstate(code), uri, "{code}");
        }
    }
}
