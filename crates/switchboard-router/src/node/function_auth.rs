//! Crossbar's `function` authenticators (`"type": "function"`, `create`, `config`): a Python
//! function that returns `authenticate(realm, authid, details)`. The node runs each one in a
//! supervised helper process (`function_runner.py`, shipped in the binary) and makes it the
//! dynamic authenticator of the sections that configure it.
//!
//! The router reaches an authenticator the way it reaches any: by calling a procedure (see
//! `crate::auth::dynamic`). Before the node listens, an in-process session of the router joins
//! every realm and registers the function's procedure
//! ([`FunctionAuthenticator::procedure`], under `switchboard.`); its handler passes each call to
//! the helper over the helper's stdin and reads the answer from its stdout, one JSON line each
//! way. Registering before any client can connect means no client can take the procedure first.
//! A helper that fails (its module does not import, `create` raises, it exits) is started again
//! after a pause that doubles up to 30 s; calls in the meantime fail with
//! `wamp.error.authentication_failed`, and its traceback is in the node's log.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use switchboard_client::{Args, CallError, Invocation, RegisterOptions, Session};
use switchboard_proto::{Value, errors};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::StartError;
use super::component::{check_python, python};
use crate::config::{ConfigError, FunctionAuthenticator, LoadedConfig};
use crate::embed::InProcess;
use crate::realm::RealmRegistry;
use crate::realm::authz::TRUSTED_ROLE;
use crate::session::TrustedIdentity;

/// The helper every function authenticator runs in.
const RUNNER: &str = include_str!("function_runner.py");

/// The authid of the router's sessions that register the functions' procedures.
const AUTHID: &str = "switchboard.authenticator";

/// The first pause before a failed helper starts again; it doubles up to [`MAX_BACKOFF`] and
/// starts over once a helper stayed up for a minute.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// One function authenticator of the config, ready to start.
#[derive(Debug, Clone)]
pub(super) struct PreparedFunction {
    function: FunctionAuthenticator,
    /// Where Python looks for its module: the router worker's `options.pythonpath`, absolute.
    pythonpath: Vec<PathBuf>,
}

/// The function authenticators of every router worker's transports, one per distinct function
/// and config. Problems (no usable Python) carry the path of the first section that needs one.
pub(super) fn prepare(loaded: &LoadedConfig) -> Result<Vec<PreparedFunction>, Vec<ConfigError>> {
    let base = std::path::absolute(&loaded.base_dir).unwrap_or_else(|_| loaded.base_dir.clone());
    let mut functions: Vec<PreparedFunction> = Vec::new();
    let mut first_at = None;
    for (w, worker) in loaded.config.router_workers() {
        let pythonpath: Vec<PathBuf> =
            match worker.options.as_ref().and_then(|o| o.pythonpath.as_ref()) {
                Some(paths) => paths.iter().map(|p| base.join(p)).collect(),
                None => vec![base.clone()],
            };
        for (t, transport) in worker.transports.iter().enumerate() {
            for (section, auth) in transport.auth_sections() {
                for (method, dynamic) in auth.dynamic_sections() {
                    let Some(function) = dynamic.function() else {
                        continue;
                    };
                    first_at.get_or_insert_with(|| {
                        format!("workers[{w}].transports[{t}].{section}.{method}.create")
                    });
                    if !functions.iter().any(|f| f.function == function) {
                        functions.push(PreparedFunction {
                            function,
                            pythonpath: pythonpath.clone(),
                        });
                    }
                }
            }
        }
    }
    if let Some(at) = first_at {
        check_python(&at, "function authenticators")?;
    }
    Ok(functions)
}

/// The running function authenticators: their helpers and the sessions that registered them.
pub(super) struct FunctionHosts {
    stop: CancellationToken,
    helpers: Vec<JoinHandle<()>>,
    /// Held for as long as the node runs: dropping a session would unregister its procedures.
    _sessions: Vec<Session>,
}

impl FunctionHosts {
    /// Starts a helper per function, and registers every function's procedure on every realm.
    pub(super) async fn start(
        functions: Vec<PreparedFunction>,
        in_process: &InProcess,
        realms: &RealmRegistry,
    ) -> Result<Self, StartError> {
        let stop = CancellationToken::new();
        let mut helpers = Vec::new();
        let mut sessions = Vec::new();
        if functions.is_empty() {
            return Ok(Self {
                stop,
                helpers,
                _sessions: sessions,
            });
        }
        let mut callers = Vec::new();
        for function in functions {
            let (requests, incoming) = mpsc::unbounded_channel();
            let procedure = function.function.procedure();
            helpers.push(tokio::spawn(supervise(function, incoming, stop.clone())));
            callers.push((procedure, Helper { requests }));
        }
        for realm in realms.all() {
            let identity = TrustedIdentity::new(realm.name(), AUTHID, TRUSTED_ROLE).hidden();
            let join_failed = |source| StartError::Join {
                realm: realm.name().to_owned(),
                authid: AUTHID.to_owned(),
                source,
            };
            let session = in_process.join(identity).await.map_err(join_failed)?;
            for (procedure, helper) in &callers {
                let helper = helper.clone();
                session
                    .register(procedure, RegisterOptions::default(), move |invocation| {
                        let helper = helper.clone();
                        async move { helper.call(invocation).await }
                    })
                    .await
                    .map_err(join_failed)?;
            }
            sessions.push(session);
        }
        Ok(Self {
            stop,
            helpers,
            _sessions: sessions,
        })
    }

    /// Stops every helper and waits until they have exited.
    pub(super) async fn stop(self) {
        self.stop.cancel();
        for helper in self.helpers {
            let _ = helper.await;
        }
    }
}

/// A call on its way to a helper, and where its answer goes.
struct Request {
    args: serde_json::Value,
    reply: oneshot::Sender<Result<Value, CallError>>,
}

/// The way to one helper's supervisor.
#[derive(Clone)]
struct Helper {
    requests: mpsc::UnboundedSender<Request>,
}

impl Helper {
    /// Passes one authenticator call to the helper and waits for its answer.
    async fn call(&self, invocation: Invocation) -> Result<Args, CallError> {
        let args = serde_json::to_value(&invocation.args.args)
            .map_err(|e| failed(format!("cannot pass the call to the function: {e}")))?;
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { args, reply })
            .map_err(|_| failed("the function authenticator is stopped".into()))?;
        match answer.await {
            Ok(Ok(value)) => Ok(Args::positional(vec![value])),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(failed("the function authenticator is stopped".into())),
        }
    }
}

/// An authentication failure with `message`.
fn failed(message: String) -> CallError {
    CallError::new(errors::AUTHENTICATION_FAILED).with_args(Args::positional(vec![message.into()]))
}

/// Runs one helper until the node stops, starting it again when it fails.
async fn supervise(
    function: PreparedFunction,
    mut requests: mpsc::UnboundedReceiver<Request>,
    stop: CancellationToken,
) {
    let span = tracing::info_span!("authenticator", function = %function.function.create);
    let spec = json!({
        "create": function.function.create,
        "config": function.function.config,
        "pythonpath": function.pythonpath,
    })
    .to_string();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = tokio::time::Instant::now();
        match run_once(&spec, &mut requests, &stop)
            .instrument(span.clone())
            .await
        {
            Ended::Stopped => return,
            Ended::Failed(why) => {
                span.in_scope(|| tracing::warn!("function authenticator failed: {why}"));
            }
        }
        if started.elapsed() >= STABLE_AFTER {
            backoff = FIRST_BACKOFF;
        }
        span.in_scope(|| {
            tracing::info!("starting the function authenticator again in {backoff:?}")
        });
        // Calls that arrive while it is down fail at once rather than wait for the next start.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                () = stop.cancelled() => return,
                request = requests.recv() => match request {
                    Some(r) => {
                        let _ = r.reply.send(Err(failed("the function authenticator is restarting".into())));
                    }
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// How one run of a helper ended.
enum Ended {
    Stopped,
    Failed(String),
}

/// Starts the helper and serves calls until it exits or the node stops.
async fn run_once(
    spec: &str,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    stop: &CancellationToken,
) -> Ended {
    let mut child = match tokio::process::Command::new(python())
        .arg("-c")
        .arg(RUNNER)
        .env("SWITCHBOARD_FUNCTION", spec)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Ended::Failed(format!("cannot start {}: {e}", python().display())),
    };
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Ended::Failed("its pipes are missing".into());
    };
    // Its stdin is written by a task of its own, so that the answers on its stdout are read all
    // the while: a helper blocked writing answers then still gets to read its calls.
    let (to_stdin, mut lines_out) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(line) = lines_out.recv().await {
            if stdin.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    tracing::info!(pid = child.id(), "function authenticator started");
    // Its stderr (tracebacks, and whatever the function prints) goes into the node's log.
    let log = tokio::spawn(
        async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!("{line}");
            }
        }
        .in_current_span(),
    );
    let mut answers = BufReader::new(stdout).lines();
    let mut pending: HashMap<u64, oneshot::Sender<Result<Value, CallError>>> = HashMap::new();
    let mut next_id: u64 = 0;
    let ended = loop {
        tokio::select! {
            () = stop.cancelled() => break Ended::Stopped,
            request = requests.recv() => {
                let Some(Request { args, reply }) = request else { break Ended::Stopped };
                next_id += 1;
                let line = json!({"id": next_id, "args": args}).to_string() + "\n";
                if to_stdin.send(line).is_err() {
                    let _ = reply.send(Err(failed("the function authenticator is not running".into())));
                    break Ended::Failed("its stdin closed".into());
                }
                pending.insert(next_id, reply);
            }
            line = answers.next_line() => match line {
                Ok(Some(line)) => answer(&line, &mut pending),
                Ok(None) => break Ended::Failed("it exited".into()),
                Err(e) => break Ended::Failed(format!("cannot read from it: {e}")),
            },
        }
    };
    for (_, reply) in pending.drain() {
        let _ = reply.send(Err(failed("the function authenticator stopped".into())));
    }
    drop(to_stdin);
    // (Aborted, not awaited: a helper that stopped reading would keep the writer waiting.)
    writer.abort();
    // Its stdin closed, the helper exits by itself; the kill is for one that does not.
    if tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    let _ = log.await;
    match (ended, child.try_wait()) {
        (Ended::Failed(why), Ok(Some(status))) => Ended::Failed(format!("{why} ({status})")),
        (ended, _) => ended,
    }
}

/// Routes one answer line of the helper to its caller: `{"id", "result"}` or `{"id", "error",
/// "args"}`.
fn answer(line: &str, pending: &mut HashMap<u64, oneshot::Sender<Result<Value, CallError>>>) {
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
    let Ok(serde_json::Value::Object(mut fields)) = parsed else {
        tracing::warn!("function authenticator: unreadable answer {line:?}");
        return;
    };
    let Some(reply) = fields
        .get("id")
        .and_then(serde_json::Value::as_u64)
        .and_then(|id| pending.remove(&id))
    else {
        tracing::warn!("function authenticator: answer to no pending call: {line:?}");
        return;
    };
    let outcome = match (fields.remove("error"), fields.remove("result")) {
        (Some(serde_json::Value::String(uri)), _) => {
            let args: Vec<Value> = fields
                .remove("args")
                .and_then(|a| serde_json::from_value(a).ok())
                .unwrap_or_default();
            Err(CallError::new(uri).with_args(Args::positional(args)))
        }
        (_, Some(result)) => serde_json::from_value::<Value>(result)
            .map_err(|e| failed(format!("the function's answer is not a WAMP value: {e}"))),
        _ => Err(failed(
            "the function authenticator answered neither a result nor an error".into(),
        )),
    };
    let _ = reply.send(outcome);
}
