//! Embedding Switchboard in a Rust program: a router node started from a Crossbar-format config,
//! with an application component hosted in the same process. The component registers procedures
//! and subscribes to a topic through an in-process session, under its role's permissions, and any
//! WAMP client (Autobahn|JS in a browser, Autobahn|Python, ...) reaches it over the node's
//! transports.
//!
//! ```sh
//! cargo run -p switchboard-embed-example -- examples/embed/node
//! ```
//!
//! The component offers, on realm `realm1`:
//! - `com.example.add2(a, b)`: the sum of two numbers;
//! - `com.example.countdown(n, interval_ms = 100)`: counts down from `n`, one progressive result
//!   per step when the caller asks for them (a caller may cancel it half-way), then `"liftoff"`;
//! - `com.example.last_message()`: the last event it received on `com.example.chat`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use switchboard_client::{Args, CallError, Invocation, RegisterOptions, Session, SubscribeOptions};
use switchboard_proto::{Value, errors};
use switchboard_router::LoadedConfig;
use switchboard_router::embed::{Component, ComponentError, TrustedIdentity};
use switchboard_router::node::{self, NodeBuilder};

#[derive(Parser)]
#[command(about = "A Switchboard node with a component hosted in its process")]
struct Cli {
    /// Node directory holding config.json (default: the built-in configuration, realm1 on
    /// 127.0.0.1:8080).
    dir: Option<PathBuf>,
    /// The realm the component joins.
    #[arg(long, default_value = "realm1")]
    realm: String,
    /// The component's role: one of the realm's roles, or the built-in `trusted`.
    #[arg(long, default_value = "backend")]
    role: String,
}

/// The hosted component. Its state is shared with its handlers, which run on the session's task.
#[derive(Default)]
struct Backend {
    last_message: Arc<Mutex<Value>>,
}

impl Component for Backend {
    async fn on_join(&self, session: Session) -> Result<(), ComponentError> {
        session
            .register("com.example.add2", RegisterOptions::default(), add2)
            .await?;
        session
            .register(
                "com.example.countdown",
                RegisterOptions::default(),
                countdown,
            )
            .await?;
        let last = self.last_message.clone();
        session
            .register(
                "com.example.last_message",
                RegisterOptions::default(),
                move |_| {
                    let last = last.lock().map(|v| v.clone()).unwrap_or_default();
                    async move { Ok(Args::positional(vec![last])) }
                },
            )
            .await?;
        let mut chat = session
            .subscribe("com.example.chat", SubscribeOptions::default())
            .await?;
        let last = self.last_message.clone();
        tokio::spawn(async move {
            // Ends when the session does. A lagging reader would see Err(Lagged(n)) here.
            while let Some(event) = chat.next().await {
                if let Ok(event) = event
                    && let (Some(message), Ok(mut last)) = (event.args.args.first(), last.lock())
                {
                    *last = message.clone();
                }
            }
        });
        tracing::info!(session = session.id(), "backend component ready");
        Ok(())
    }
}

async fn add2(call: Invocation) -> Result<Args, CallError> {
    let numbers: Vec<&Value> = call.positional().iter().collect();
    let sum = match numbers.as_slice() {
        [a, b] => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a.checked_add(b).map(Value::from),
            _ => a.as_f64().zip(b.as_f64()).map(|(a, b)| Value::Float(a + b)),
        },
        _ => None,
    };
    sum.map(|s| Args::positional(vec![s])).ok_or_else(|| {
        CallError::new(errors::INVALID_ARGUMENT)
            .with_args(Args::positional(vec!["add2 takes two numbers".into()]))
    })
}

async fn countdown(call: Invocation) -> Result<Args, CallError> {
    let n = call
        .positional()
        .first()
        .and_then(Value::as_u64)
        .unwrap_or(3);
    let interval = call
        .positional()
        .get(1)
        .and_then(Value::as_u64)
        .unwrap_or(100);
    for i in (1..=n).rev() {
        // An INTERRUPT from a cancelling caller drops this future at the next await.
        tokio::time::sleep(Duration::from_millis(interval)).await;
        if call.receive_progress() {
            call.progress(Args::positional(vec![i.into()]))
                .await
                .map_err(|_| CallError::new(errors::CANCELED))?;
        }
    }
    Ok(Args::positional(vec!["liftoff".into()]))
}

fn prepare(dir: Option<&PathBuf>) -> anyhow::Result<node::PreparedNode> {
    let prepared = match dir {
        Some(dir) => node::prepare_dir(dir)
            .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?
            .with_context(|| format!("{} has no config.json", dir.display()))?,
        None => node::prepare(&LoadedConfig::builtin())
            .map_err(|errors| anyhow::anyhow!("invalid built-in configuration:\n{errors}"))?,
    };
    Ok(prepared)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let prepared = prepare(cli.dir.as_ref())?;
    let identity = TrustedIdentity::new(cli.realm, "example-backend", cli.role);
    let node = NodeBuilder::new(prepared)
        .component(identity, Backend::default())
        .start()
        .await?;
    for addr in &node.listeners {
        println!("listening on {addr}");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    // Every session, the component's included, gets GOODBYE wamp.close.system_shutdown.
    node.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
