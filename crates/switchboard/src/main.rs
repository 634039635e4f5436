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
use switchboard_router::node::{self, PreparedNode};

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
    /// The PostgreSQL bridge's helpers.
    Postgres {
        #[command(subcommand)]
        command: PostgresCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum PostgresCommand {
    /// Print the helper schema (`wamp.publish`, `wamp.authid()`, ...) to apply with psql
    /// (`switchboard postgres sql | psql -d mydb`), or let a component's `install_schema` do it.
    Sql,
}

fn init_logging(level: &str) {
    let filter = match level {
        "none" => "off",
        "critical" => "error",
        other => other,
    };
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or a pipe (systemd, a supervisor) gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
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
    let prepared = prepare(dir)?;
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
    for addr in &node.listeners {
        say!("switchboard listening on {addr}");
    }
    wait_for_signal().await;
    tracing::info!(
        "shutting down: no new sessions or calls; up to {:?} for the calls in flight",
        node.shutdown_grace()
    );
    node.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.loglevel);
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
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")
            .and_then(|rt| rt.block_on(start(dir.as_deref(), shutdown_grace))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
