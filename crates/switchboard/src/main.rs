//! The `switchboard` command: `init` writes a node directory from a template, `start` runs a
//! router from one (or from the built-in default), `check` validates a config exactly as `start`
//! would, `version` prints the version.

mod templates;

/// Writes a line to stdout. A reader that went away (`switchboard init --list | head -1`) is not
/// worth a panic, which `println!` would make of it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchboard_router::config::LoadedConfig;
use switchboard_router::node::{self, PreparedNode, control};
use tokio::signal::unix::SignalKind;

#[derive(Parser)]
#[command(
    name = "switchboard",
    about = "Switchboard: a fast WAMP application router",
    version
)]
struct Cli {
    /// Log level: none, critical, error, warn, info, debug or trace (or a tracing filter).
    #[arg(long, global = true, default_value = "info")]
    loglevel: String,
    /// Log format: `standard` (text lines) or `json` (one JSON object per line, for a log
    /// collector: timestamp, level, target, fields, spans).
    #[arg(long, global = true, default_value = "standard", value_parser = ["standard", "json"])]
    logformat: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node directory from a template: by default a router node (config.json and a web/
    /// folder); `--template hello:python` and the other hello apps add a backend and a page.
    Init {
        /// Directory to create (default: the current directory).
        #[arg(conflicts_with = "appdir")]
        dir: Option<PathBuf>,
        /// The same as DIR (Crossbar's name for it).
        #[arg(long, value_name = "DIR")]
        appdir: Option<PathBuf>,
        /// The template to write (`switchboard init --list` shows them).
        #[arg(long, default_value = "default")]
        template: String,
        /// The app's name, in the template's file names and contents (letters, digits and _).
        #[arg(long, default_value = "hello")]
        appname: String,
        /// List the templates and exit.
        #[arg(long)]
        list: bool,
    },
    /// Whether a node runs in DIR (its pid, uptime and sessions), through the control socket
    /// `switchboard start` opens there. Exit status 0 when one runs, 1 otherwise.
    Status {
        /// Node directory (default: the current directory).
        dir: Option<PathBuf>,
    },
    /// Stops the node running in DIR gracefully (as SIGTERM does) and waits until it has stopped.
    /// Exit status 0 when a node was stopped, 1 when none runs there.
    Stop {
        /// Node directory (default: the current directory).
        dir: Option<PathBuf>,
        /// Seconds to wait for the node to stop.
        #[arg(long, value_name = "SECONDS", default_value_t = 60.0, value_parser = parse_grace)]
        timeout: f64,
    },
    /// Reads the config of the node running in DIR again and applies what changed while it runs
    /// (as SIGHUP does): prints what was applied, what needs a restart, and the problems of a
    /// config that changed nothing. Exit status 0 when the config was applied, 1 otherwise.
    Reload {
        /// Node directory (default: the current directory).
        dir: Option<PathBuf>,
    },
    /// Start the router: from DIR's config.json (or DIR/.crossbar/config.json), else the built-in
    /// default (127.0.0.1:8080, WebSocket on /ws and RawSocket, realm realm1, anonymous allowed all).
    Start {
        /// Node directory (default: the current directory).
        dir: Option<PathBuf>,
        /// Seconds a shutdown (Ctrl-C, SIGTERM) gives calls in flight to finish before their
        /// callers get `wamp.error.canceled` (default: the config's
        /// `controller.options.shutdown_grace`, else 5).
        #[arg(long, value_name = "SECONDS", value_parser = parse_grace)]
        shutdown_grace: Option<f64>,
    },
    /// Validate the configuration of DIR exactly as `start` would, without starting.
    Check {
        /// Node directory (default: the current directory).
        dir: Option<PathBuf>,
    },
    /// The cluster the node running in DIR is in.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// The PostgreSQL bridge's helpers.
    Postgres {
        #[command(subcommand)]
        command: PostgresCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// The cluster's nodes (as the node running in DIR sees them), their realms, sessions and
    /// health, and each realm's traffic across nodes. Exit status 0 when the node is in a
    /// cluster and routes across it, 1 otherwise.
    Status {
        /// Node directory (default: the current directory).
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PostgresCommand {
    /// Print the helper schema (`wamp.publish`, `wamp.authid()`, ...) to apply with psql
    /// (`switchboard postgres sql | psql -d mydb`), or let a component's `install_schema` do it.
    Sql,
}

fn init_logging(level: &str, format: &str) {
    let filter = match level {
        "none" => "off",
        "critical" => "error",
        other => other,
    };
    let (initial, filter) = match tracing_subscriber::EnvFilter::try_new(filter) {
        Ok(f) => (filter, f),
        Err(_) => ("info", tracing_subscriber::EnvFilter::new("info")),
    };
    // Colours only on a terminal: a log file or a pipe (systemd, a supervisor) gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // The management API changes the filter while the node runs (`switchboard.log.level.set`).
    fn changeable<H>(modify: H) -> switchboard_router::ops::log::SetFilter
    where
        H: Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync + 'static,
    {
        Box::new(move |text: &str| {
            let filter = tracing_subscriber::EnvFilter::try_new(text)
                .map_err(|e| format!("not a log level or filter: {e}"))?;
            modify(filter)
        })
    }
    if format == "json" {
        let logs = logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_filter_reloading();
        let handle = logs.reload_handle();
        logs.init();
        switchboard_router::ops::log::install(
            initial,
            changeable(move |f| handle.reload(f).map_err(|e| e.to_string())),
        );
    } else {
        let logs = logs.with_ansi(ansi).with_filter_reloading();
        let handle = logs.reload_handle();
        logs.init();
        switchboard_router::ops::log::install(
            initial,
            changeable(move |f| handle.reload(f).map_err(|e| e.to_string())),
        );
    }
}

/// Loads, validates and prepares the node of `dir`: what `check` runs, and `start` before binding.
fn prepare(dir: Option<&Path>) -> anyhow::Result<PreparedNode> {
    let dir = dir.unwrap_or(Path::new("."));
    let prepared = match node::prepare_dir(dir) {
        Ok(Some(prepared)) => Ok(prepared),
        Ok(None) => {
            tracing::info!(dir = %dir.display(), "no config.json found: using the built-in default configuration");
            node::prepare(&LoadedConfig::builtin())
        }
        Err(errors) => Err(errors),
    };
    prepared.map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))
}

/// `switchboard init`: lists the templates, or writes one into `dir`.
fn init(template: &str, appname: &str, dir: &Path) -> anyhow::Result<()> {
    let template = templates::find(template)?;
    let written = template.write(appname, dir)?;
    say!(
        "Initialized {} from the template {} in {}:",
        if template.name == "default" {
            "a Switchboard node".to_string()
        } else {
            format!("the app {appname}")
        },
        template.name,
        dir.display()
    );
    for path in &written {
        say!("  {}", path.display());
    }
    say!(
        "{}",
        template
            .next_steps
            .replace("{dir}", &dir.display().to_string())
            .replace("{appname}", appname)
    );
    Ok(())
}

fn list_templates() {
    for template in templates::TEMPLATES {
        say!("{:<14} {}", template.name, template.summary);
    }
}

/// A number of seconds, 0 or more.
fn parse_grace(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!(
            "expected a number of seconds, 0 or more; got {text:?}"
        )),
    }
}

async fn start(dir: Option<&Path>, shutdown_grace: Option<f64>) -> anyhow::Result<()> {
    // Listened for before anything starts: a SIGTERM while the node starts (its guests already
    // run) is a graceful shutdown once it has started, not the end of the process.
    let signal = |kind: SignalKind, name: &str| {
        tokio::signal::unix::signal(kind).with_context(|| format!("listening for {name}"))
    };
    let mut terminate = signal(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt(), "SIGINT")?;
    let mut hangup = signal(SignalKind::hangup(), "SIGHUP")?;
    let prepared = prepare(dir)?;
    // Every connection is a file: the shell's soft limit (often 1,024) would refuse sessions
    // long before the machine's real ceiling, the hard limit.
    match switchboard_router::ops::limits::raise_open_files() {
        Ok(limits) if limits.before < limits.now => tracing::info!(
            "open files limit raised from {} to {} (the hard limit)",
            limits.before,
            limits.now
        ),
        Ok(limits) => tracing::info!("open files limit {} (the hard limit)", limits.now),
        Err(e) => tracing::warn!("open files limit not raised: {e}"),
    }
    // Before binding anything: a second node in the same directory is refused by name, not by
    // the port it cannot take.
    let node_dir = switchboard_router::config::node_dir(dir.unwrap_or(Path::new(".")));
    if let Some(other) = control::running_node(&node_dir).await {
        let pid = control::status_of(&other)
            .await
            .and_then(|s| s.get("pid").and_then(|v| v.as_u64()));
        let _ = other.leave().await;
        anyhow::bail!(
            "a node is already running in {}{}: `switchboard stop {}` it first",
            node_dir.display(),
            pid.map_or_else(String::new, |pid| format!(" (pid {pid})")),
            node_dir.display()
        );
    }
    for warning in &prepared.warnings().0 {
        tracing::warn!("{warning}");
    }
    for note in prepared.notes() {
        tracing::info!("{note}");
    }
    let mut node = node::start_prepared(prepared).await?;
    if let Some(seconds) = shutdown_grace {
        node.set_shutdown_grace(std::time::Duration::from_secs_f64(seconds));
    }
    if let Err(e) = node.open_control(&node_dir).await {
        node.shutdown().await;
        return Err(e.into());
    }
    for addr in &node.listeners {
        say!("switchboard listening on {addr}");
    }
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            () = node.stop_requested() => break,
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reading the config again");
                // In a task of its own, so that a stop signal is heard meanwhile; the report is
                // logged line by line by the reload itself.
                let reloader = node.reloader();
                tokio::spawn(async move { reloader.reload().await });
            }
        }
    }
    tracing::info!(
        "shutting down: no new sessions or calls; up to {:?} for the calls in flight",
        node.shutdown_grace()
    );
    node.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The exit status of a command that answers yes or no (a node runs, was stopped, applied the
/// config, is in a cluster): 0 for yes, 1 for no or an error, which is printed.
fn answered(answer: anyhow::Result<bool>) -> ExitCode {
    match answer {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime the async commands run on.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// `switchboard status`: true when a node runs in `dir`.
async fn status(dir: &Path) -> bool {
    let node_dir = switchboard_router::config::node_dir(dir);
    let Some(session) = control::running_node(&node_dir).await else {
        say!("no node is running in {}", node_dir.display());
        return false;
    };
    let status = control::status_of(&session).await;
    let _ = session.leave().await;
    let Some(status) = status else {
        say!(
            "a node is running in {} but did not answer",
            node_dir.display()
        );
        return true;
    };
    let number = |key: &str| status.get(key).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let realms: Vec<String> = status
        .get("realms")
        .and_then(|v| v.as_dict())
        .map(|d| {
            d.iter()
                .map(|(name, n)| format!("{name}: {}", n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    say!(
        "node running in {}: pid {}, version {}, up {:.0} s, {} session(s) ({})",
        node_dir.display(),
        number("pid"),
        status
            .get("version")
            .and_then(|v| v.as_str())
            .unwrap_or("?"),
        number("uptime"),
        number("sessions"),
        realms.join(", ")
    );
    if let Some(missing) = status.get("not_ready").and_then(|v| v.as_list())
        && !missing.is_empty()
    {
        say!("not ready:");
        for item in missing {
            say!("  {}", item.as_str().unwrap_or("?"));
        }
    }
    true
}

/// `switchboard cluster status`: true when the node in `dir` is in a cluster and not fenced.
async fn cluster_status(dir: &Path) -> bool {
    use switchboard_proto::{Dict, Value};
    let node_dir = switchboard_router::config::node_dir(dir);
    let Some(session) = control::running_node(&node_dir).await else {
        say!("no node is running in {}", node_dir.display());
        return false;
    };
    let answer = session
        .call("switchboard.cluster.status", Default::default())
        .await;
    let _ = session.leave().await;
    let status = match answer {
        Ok(args) => args.args.into_iter().next().unwrap_or_default(),
        Err(switchboard_client::Error::Wamp { args, .. }) => {
            say!(
                "{}",
                args.first()
                    .and_then(Value::as_str)
                    .unwrap_or("not in a cluster")
            );
            return false;
        }
        Err(e) => {
            say!("the node did not answer: {e}");
            return false;
        }
    };
    let Some(d) = status.as_dict() else {
        return false;
    };
    let text = |d: &Dict, k: &str| d.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
    let number = |d: &Dict, k: &str| d.get(k).and_then(Value::as_u64).unwrap_or(0);
    let state = text(d, "state");
    say!(
        "cluster {}: this node {} is {} (NATS server {})",
        text(d, "name"),
        text(d, "node"),
        state,
        text(d, "nats_server")
    );
    let nodes = d.get("nodes").and_then(Value::as_list).unwrap_or_default();
    say!("{} node(s):", nodes.len());
    for n in nodes.iter().filter_map(Value::as_dict) {
        let sessions: Vec<String> = n
            .get("sessions")
            .and_then(Value::as_dict)
            .map(|s| {
                s.iter()
                    .map(|(r, c)| format!("{r}: {}", c.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let differs: Vec<String> = n
            .get("config_differs")
            .and_then(Value::as_list)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let this = n.get("this").and_then(Value::as_bool).unwrap_or(false);
        say!(
            "  {}{}: version {}, session(s) {}, last heartbeat {} ms ago{}",
            text(n, "node"),
            if this { " (this node)" } else { "" },
            text(n, "version"),
            if sessions.is_empty() {
                "none".to_owned()
            } else {
                sessions.join(", ")
            },
            number(n, "last_seen_ms"),
            if differs.is_empty() {
                String::new()
            } else {
                format!(
                    "; config differs from this node's in: {}",
                    differs.join(", ")
                )
            }
        );
    }
    for (realm, r) in d
        .get("realms")
        .and_then(Value::as_dict)
        .into_iter()
        .flatten()
    {
        let Some(r) = r.as_dict() else { continue };
        say!(
            "realm {realm}: subscriptions {} here, {} of other nodes; registrations {} here, {} of \
             other nodes; events {} out, {} in; calls {} out, {} in",
            number(r, "local_subscriptions"),
            number(r, "remote_subscriptions"),
            number(r, "local_registrations"),
            number(r, "remote_registrations"),
            number(r, "events_out"),
            number(r, "events_in"),
            number(r, "calls_out"),
            number(r, "calls_in"),
        );
        for c in r
            .get("conflicts")
            .and_then(Value::as_list)
            .unwrap_or_default()
        {
            say!("  refused: {}", c.as_str().unwrap_or("?"));
        }
    }
    state == "up"
}

/// Whether process `pid` still runs (one that exited but was not waited for by its parent yet,
/// a zombie, does not).
fn process_runs(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

/// `switchboard stop`: true when a node ran in `dir` and has stopped.
async fn stop(dir: &Path, timeout: f64) -> anyhow::Result<bool> {
    let node_dir = switchboard_router::config::node_dir(dir);
    let Some(session) = control::running_node(&node_dir).await else {
        say!("no node is running in {}", node_dir.display());
        return Ok(false);
    };
    let pid = control::status_of(&session)
        .await
        .and_then(|s| s.get("pid").and_then(|v| v.as_u64()));
    session
        .call(control::SHUTDOWN, Default::default())
        .await
        .context("asking the node to stop")?;
    let _ = session.leave().await;
    // The node removes its socket when it has stopped; its process ends right after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(timeout);
    let gone = || {
        !node_dir.join(control::SOCKET_FILE).exists() && pid.is_none_or(|pid| !process_runs(pid))
    };
    while !gone() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "the node in {} did not stop within {timeout} s",
                node_dir.display()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    say!("stopped the node in {}", node_dir.display());
    Ok(true)
}

/// `switchboard reload`: true when the node in `dir` applied its config.
async fn reload(dir: &Path) -> anyhow::Result<bool> {
    let node_dir = switchboard_router::config::node_dir(dir);
    let Some(session) = control::running_node(&node_dir).await else {
        anyhow::bail!("no node is running in {}", node_dir.display());
    };
    let answer = session
        .call(control::CONFIG_RELOAD, Default::default())
        .await
        .context("asking the node to reload its config");
    let _ = session.leave().await;
    let report = answer?.kwargs;
    let lines = |key: &str| -> Vec<String> {
        report
            .get(key)
            .and_then(|v| v.as_list())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let errors = lines("errors");
    if !errors.is_empty() {
        say!("the config was not applied, nothing changed:");
        for line in &errors {
            say!("  {line}");
        }
        return Ok(false);
    }
    for line in lines("applied") {
        say!("applied: {line}");
    }
    for line in lines("restart_required") {
        say!("needs a restart: {line}");
    }
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.loglevel, &cli.logformat);
    let result = match cli.command {
        Command::Version => {
            say!("switchboard {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Postgres {
            command: PostgresCommand::Sql,
        } => {
            say!("{}", switchboard_router::postgres::HELPER_SCHEMA.trim_end());
            Ok(())
        }
        Command::Init { list: true, .. } => {
            list_templates();
            Ok(())
        }
        Command::Init {
            dir,
            appdir,
            template,
            appname,
            list: false,
        } => init(
            &template,
            &appname,
            &dir.or(appdir).unwrap_or_else(|| PathBuf::from(".")),
        ),
        Command::Check { dir } => prepare(dir.as_deref()).map(|node| {
            for warning in &node.warnings().0 {
                say!("warning: {warning}");
            }
            for note in node.notes() {
                say!("note: {note}");
            }
            match &node.config().file {
                Some(f) => say!("{}: configuration is valid", f.display()),
                None => say!("no config.json: the built-in default configuration is valid"),
            }
        }),
        Command::Start {
            dir,
            shutdown_grace,
        } => runtime().and_then(|rt| rt.block_on(start(dir.as_deref(), shutdown_grace))),
        Command::Cluster {
            command: ClusterCommand::Status { dir },
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            return answered(runtime().map(|rt| rt.block_on(cluster_status(&dir))));
        }
        Command::Status { dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            return answered(runtime().map(|rt| rt.block_on(status(&dir))));
        }
        Command::Reload { dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            return answered(runtime().and_then(|rt| rt.block_on(reload(&dir))));
        }
        Command::Stop { dir, timeout } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            return answered(runtime().and_then(|rt| rt.block_on(stop(&dir, timeout))));
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
