//! `switchboard-load`: a load generator for any WAMP router (Switchboard, Crossbar.io, ...).
//!
//! Each run is one scenario (`rpc`, `pubsub`, `connect`, `idle`, `callee` (the far side of a
//! benchmark that calls through something else, such as the HTTP bridge), and the no-WAMP
//! references `echo` and `fanout` against `switchboard-echo`), bounded in time, and prints exactly
//! one JSON line on stdout; progress goes to stderr. `rpc` and `pubsub` also run against a NATS
//! server (`--url nats://host:port`), the bare-broker reference. The exit code is 1 when a correctness check failed
//! (errors, lost, duplicated or reordered > 0), 2 when the run could not start, 0 otherwise.
//!
//! With `--router-pid` the router's CPU time and memory are sampled from `/proc` at the start and
//! end of the measured window; the load tool's own CPU is always reported next to it, so a reader
//! can tell when the load tool, not the router, was the limit.

mod conn;
mod measure;
mod report;
mod scenario;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use switchboard_proto::Serializer;

use crate::conn::{Credentials, Kind, Target};
use crate::measure::Progress;
use crate::scenario::{
    Ctx, Load, PubSubParams, callee, connect, echo, idle, nats, pubsub, rpc, subscribers,
};

/// Load generator for WAMP routers; prints one JSON line per run.
#[derive(Parser)]
#[command(name = "switchboard-load", version)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N callers with K calls in flight each, against one callee this tool registers.
    #[command(
        mut_arg("in_flight", |a| a.help("Calls in flight per caller")),
        mut_arg("payload", |a| a.help("Bytes of padding in each call's arguments")),
    )]
    Rpc {
        #[command(flatten)]
        common: Common,
        /// Caller sessions.
        #[arg(long, default_value_t = 8)]
        callers: usize,
        #[command(flatten)]
        load: LoadArgs,
        /// Call this procedure, registered by something else (the PostgreSQL bridge, say),
        /// instead of a callee this tool registers; any RESULT counts, its payload unchecked.
        #[arg(long)]
        procedure: Option<String>,
        /// The positional arguments of each call to `--procedure`, as a JSON array.
        #[arg(long, requires = "procedure", value_name = "JSON")]
        args: Option<String>,
    },
    /// P publishers (acknowledged, K in flight each) and S subscribers on one topic.
    #[command(
        mut_arg("publishers", |a| a.help("Publisher sessions")),
        mut_arg("subscribers", |a| a.help("Subscriber sessions")),
        mut_arg("in_flight", |a| a.help("Unacknowledged publishes in flight per publisher")),
        mut_arg("payload", |a| a.help("Bytes of padding in each event's arguments")),
    )]
    Pubsub {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: PubSubArgs,
    },
    /// One callee of PROCEDURE (answering with the call's arguments) for the window, while
    /// something else calls it (the HTTP caller benchmark); counts the invocations answered.
    Callee {
        #[command(flatten)]
        common: Common,
        /// The procedure to register.
        #[arg(long, default_value = "switchboard.load.echo")]
        procedure: String,
    },
    /// S subscribers of TOPIC for the window, while something else publishes on it (the
    /// PostgreSQL bridge benchmark); counts the events they received.
    Subscribers {
        #[command(flatten)]
        common: Common,
        /// The topic to subscribe to.
        #[arg(long)]
        topic: String,
        /// Subscriber sessions.
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
    },
    /// C concurrent openers: connect, HELLO, WELCOME, GOODBYE, close, as fast as possible.
    Connect {
        #[command(flatten)]
        common: Common,
        /// Concurrent openers.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
    },
    /// Open N idle sessions, measure the router's memory per session, hold them for the duration.
    Idle {
        #[command(flatten)]
        common: Common,
        /// Sessions to open.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Handshakes at a time while opening.
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
    },
    /// Plain WebSocket/RawSocket echo (no WAMP) against `switchboard-echo`: the transport limit.
    #[command(
        mut_arg("in_flight", |a| a.help("Messages in flight per connection")),
        mut_arg("payload", |a| a.help("Message size in bytes (at least the 25-byte header)")),
    )]
    Echo {
        #[command(flatten)]
        common: Common,
        /// Connections.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Plain fan-out (no WAMP) against `switchboard-echo --fanout`: the transport limit of pubsub.
    #[command(
        mut_arg("publishers", |a| a.help("Publishing connections")),
        mut_arg("subscribers", |a| a.help("Subscribing connections")),
        mut_arg("in_flight", |a| a.help("Unacknowledged messages in flight per publisher")),
        mut_arg("payload", |a| a.help("Message size in bytes (at least the 41-byte header)")),
    )]
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: PubSubArgs,
    },
}

impl Scenario {
    /// The options every scenario takes.
    fn common(&self) -> &Common {
        match self {
            Scenario::Rpc { common, .. }
            | Scenario::Pubsub { common, .. }
            | Scenario::Callee { common, .. }
            | Scenario::Subscribers { common, .. }
            | Scenario::Connect { common, .. }
            | Scenario::Idle { common, .. }
            | Scenario::Echo { common, .. }
            | Scenario::Fanout { common, .. } => common,
        }
    }
}

/// Options of the scenarios that keep requests in flight on every sending connection. Each
/// scenario words their help for what they mean there (`mut_arg` on its variant).
#[derive(Args, Clone, Copy)]
struct LoadArgs {
    /// Requests in flight per sending connection.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Payload bytes per request.
    #[arg(long, default_value_t = 64)]
    payload: usize,
}

impl LoadArgs {
    /// The scenario's load, also recorded for the report.
    fn load(self, params: &mut report::Params) -> Load {
        params.in_flight = Some(self.in_flight);
        params.payload = Some(self.payload);
        Load {
            in_flight: self.in_flight,
            payload: self.payload,
        }
    }
}

/// Options of `pubsub` and of its transport-limit reference `fanout`, whose variants word their
/// help.
#[derive(Args, Clone, Copy)]
struct PubSubArgs {
    /// Publishers.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Subscribers.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    #[command(flatten)]
    load: LoadArgs,
}

impl PubSubArgs {
    /// The scenario's parameters, also recorded for the report.
    fn params(self, params: &mut report::Params) -> PubSubParams {
        params.publishers = Some(self.publishers);
        params.subscribers = Some(self.subscribers);
        PubSubParams {
            publishers: self.publishers,
            subscribers: self.subscribers,
            load: self.load.load(params),
        }
    }
}

/// Options every scenario takes.
#[derive(Args, Clone)]
struct Common {
    /// Router URL: ws://host:port/path (WebSocket), wss://host:port/path (WebSocket over TLS),
    /// rs://host:port (RawSocket), or nats://host:port (a NATS server: rpc and pubsub only, as the
    /// bare-broker reference).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    url: String,
    /// For wss:// URLs: trust the certificates in this PEM file (a CA, or the router's
    /// self-signed certificate) instead of Mozilla's roots.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// WAMP serializer: json, msgpack or cbor (for echo/fanout: the WebSocket subprotocol, which
    /// picks text or binary frames).
    #[arg(long, default_value = "json", value_parser = parse_serializer)]
    serializer: Serializer,
    /// Realm to join.
    #[arg(long, default_value = "realm1")]
    realm: String,
    /// Measured window in seconds (for idle: how long the sessions are held).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before the window (for idle: settling time before the memory reading).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds to wait for outstanding replies after the window before counting them as errors.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Worker threads of this tool's runtime (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// PID of the router process, to sample its CPU time and memory from /proc.
    #[arg(long)]
    router_pid: Option<u32>,
    /// A second router, linked to the first, where the rpc callee registers and the pubsub
    /// publishers publish (callers and subscribers stay on --url): the load crosses the link.
    #[arg(long)]
    origin_url: Option<String>,
    /// PID of the --origin-url router, sampled like --router-pid.
    #[arg(long, requires = "origin_url")]
    origin_pid: Option<u32>,
    /// Another router serving the same realm (repeatable; rpc and pubsub): pubsub subscribers
    /// connect round robin over --url and every --spread-url; rpc registers one more callee on
    /// each (all with invoke=roundrobin, besides the one on --origin-url or --url).
    #[arg(long = "spread-url", value_name = "URL")]
    spread_url: Vec<String>,
    /// The first part of the rpc procedure and the pubsub topic the tool makes up
    /// (`PREFIX.echo.r<tag>`, `PREFIX.topic.t<tag>`): for a router whose roles allow other URIs.
    #[arg(long, default_value = "switchboard.load", value_parser = parse_uri_prefix)]
    uri_prefix: String,
    /// Another process to sample like --router-pid (repeatable): reported in `others`.
    #[arg(long = "sample-pid", value_name = "PID")]
    sample_pid: Vec<u32>,
    /// Local source addresses to bind, round robin: a range 127.0.0.2-127.0.0.9 and/or a comma
    /// separated list (each address has its own ephemeral ports).
    #[arg(long, value_parser = parse_source_addrs)]
    source_addrs: Option<SourceAddrs>,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Authenticate every session with a ticket: AUTHID:TICKET (default: anonymous).
    #[arg(long, value_parser = parse_ticket, conflicts_with = "wampcra")]
    ticket: Option<Credentials>,
    /// Authenticate every session with WAMP-CRA: AUTHID:SECRET (salted secrets are derived from
    /// the challenge's salt parameters).
    #[arg(long, value_parser = parse_wampcra)]
    wampcra: Option<Credentials>,
}

fn split_credentials(s: &str) -> Result<(String, String), String> {
    s.split_once(':')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .ok_or_else(|| "expected AUTHID:SECRET".to_owned())
}

fn parse_ticket(s: &str) -> Result<Credentials, String> {
    let (authid, ticket) = split_credentials(s)?;
    Ok(Credentials::Ticket { authid, ticket })
}

fn parse_wampcra(s: &str) -> Result<Credentials, String> {
    let (authid, secret) = split_credentials(s)?;
    Ok(Credentials::WampCra { authid, secret })
}

/// Parsed `--source-addrs`.
#[derive(Clone, Debug)]
struct SourceAddrs(Vec<IpAddr>);

fn parse_serializer(s: &str) -> Result<Serializer, String> {
    Serializer::from_name(s).ok_or_else(|| format!("{s:?} is not json, msgpack or cbor"))
}

fn parse_source_addrs(s: &str) -> Result<SourceAddrs, String> {
    let mut addrs = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: Ipv4Addr = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
                let b: Ipv4Addr = b.parse().map_err(|e| format!("{b:?}: {e}"))?;
                let (a, b) = (u32::from(a), u32::from(b));
                if b < a || b - a > 65_535 {
                    return Err(format!("range {part} is empty or too large"));
                }
                addrs.extend((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
            }
            None => addrs.push(part.parse().map_err(|e| format!("{part:?}: {e}"))?),
        }
    }
    if addrs.is_empty() {
        return Err("no address given".into());
    }
    Ok(SourceAddrs(addrs))
}

fn parse_uri_prefix(s: &str) -> Result<String, String> {
    let prefix = s.trim_end_matches('.');
    if prefix.is_empty() || prefix.starts_with('.') || prefix.contains("..") || prefix.contains(' ')
    {
        return Err(format!("{s:?} is not a URI prefix such as bench.load"));
    }
    Ok(prefix.to_owned())
}

fn seconds(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("--{what} {s} is not a duration"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = cli.scenario.common().clone();
    let threads = common.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.scenario, common, threads)) {
        Ok(report) => {
            let failed = report.failed();
            match serde_json::to_string(&report) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    eprintln!("error: cannot write the report: {e}");
                    return ExitCode::from(2);
                }
            }
            if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {}", measure::describe(&e));
            ExitCode::from(2)
        }
    }
}

/// Why `--spread-url` cannot go with this scenario, if it cannot: only `rpc` with the tool's
/// own callee and `pubsub` spread their sessions over several routers.
fn spread_refused(scenario: &Scenario) -> Option<&'static str> {
    match scenario {
        Scenario::Pubsub { .. }
        | Scenario::Rpc {
            procedure: None, ..
        } => None,
        Scenario::Rpc { .. } => {
            Some("--spread-url spreads the tool's own callees: not with --procedure")
        }
        _ => Some("--spread-url applies to rpc and pubsub only"),
    }
}

/// Why this scenario cannot run against NATS with these options, if it cannot: NATS stands in for
/// the router of `rpc` (with the tool's own callee) and `pubsub` only, and knows nothing of the
/// WAMP options.
fn nats_refused(scenario: &Scenario, common: &Common) -> Option<&'static str> {
    match scenario {
        Scenario::Rpc {
            procedure: None, ..
        }
        | Scenario::Pubsub { .. } => {}
        Scenario::Rpc { .. } => return Some("--procedure calls a WAMP procedure: not with NATS"),
        _ => return Some("against NATS only rpc and pubsub run"),
    }
    if common.origin_url.is_some() || !common.spread_url.is_empty() {
        Some("--origin-url and --spread-url take WAMP routers: not with NATS")
    } else if common.ticket.is_some() || common.wampcra.is_some() {
        Some("--ticket and --wampcra authenticate WAMP sessions: not with NATS")
    } else if common.source_addrs.is_some() {
        Some("--source-addrs does not apply to NATS connections")
    } else {
        None
    }
}

async fn run(scenario: Scenario, common: Common, threads: usize) -> anyhow::Result<report::Report> {
    if !common.spread_url.is_empty()
        && let Some(why) = spread_refused(&scenario)
    {
        anyhow::bail!(why);
    }
    let target_at = async |url: &str| -> anyhow::Result<Target> {
        Target::new(
            url,
            common.serializer,
            &common.realm,
            common.source_addrs.clone().map(|s| s.0).unwrap_or_default(),
        )
        .await?
        .with_credentials(common.ticket.clone().or(common.wampcra.clone()))
        .with_ca_file(common.ca_file.as_deref())
    };
    let target = target_at(&common.url).await?;
    let against_nats = target.kind == Kind::Nats;
    if against_nats && let Some(why) = nats_refused(&scenario, &common) {
        anyhow::bail!(why);
    }
    let origin = match &common.origin_url {
        None => None,
        Some(url) => Some(target_at(url).await?),
    };
    let mut spread = Vec::with_capacity(common.spread_url.len());
    for url in &common.spread_url {
        spread.push(target_at(url).await?);
    }
    let ctx = Ctx {
        target,
        origin,
        origin_pid: common.origin_pid,
        spread,
        sample_pids: common.sample_pid.clone(),
        uri_prefix: common.uri_prefix.clone(),
        warmup: seconds(common.warmup, "warmup").map_err(anyhow::Error::msg)?,
        duration: seconds(common.duration, "duration").map_err(anyhow::Error::msg)?,
        drain: seconds(common.drain, "drain").map_err(anyhow::Error::msg)?,
        router_pid: common.router_pid,
        quiet: common.quiet,
        progress: Progress::default(),
    };
    let mut params = report::Params::default();
    let (name, outcome) = match scenario {
        Scenario::Rpc {
            callers,
            load,
            procedure,
            args,
            ..
        } => {
            params.callers = Some(callers);
            let args = match args {
                Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(serde_json::Value::Array(items)) => Some(
                        items
                            .into_iter()
                            .map(serde_json::from_value)
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                    _ => anyhow::bail!("--args must be a JSON array, got {text}"),
                },
                None => None,
            };
            let load = load.load(&mut params);
            if against_nats {
                ("rpc", nats::run_request_reply(&ctx, callers, load).await?)
            } else {
                let p = rpc::Params {
                    callers,
                    load,
                    external: procedure.map(|procedure| rpc::External { procedure, args }),
                };
                ("rpc", rpc::run(&ctx, p).await?)
            }
        }
        Scenario::Pubsub { args, .. } => {
            let p = args.params(&mut params);
            if against_nats {
                ("pubsub", nats::run_fanout(&ctx, p).await?)
            } else {
                ("pubsub", pubsub::run(&ctx, p).await?)
            }
        }
        Scenario::Callee { procedure, .. } => ("callee", callee::run(&ctx, &procedure).await?),
        Scenario::Subscribers {
            topic, subscribers, ..
        } => (
            "subscribers",
            subscribers::run(&ctx, &topic, subscribers).await?,
        ),
        Scenario::Connect { concurrency, .. } => {
            params.concurrency = Some(concurrency);
            (
                "connect",
                connect::run(&ctx, connect::Params { concurrency }).await?,
            )
        }
        Scenario::Idle {
            sessions,
            concurrency,
            ..
        } => {
            params.sessions = Some(sessions);
            params.concurrency = Some(concurrency);
            let p = idle::Params {
                sessions,
                concurrency,
            };
            ("idle", idle::run(&ctx, p).await?)
        }
        Scenario::Echo {
            connections, load, ..
        } => {
            params.connections = Some(connections);
            let p = echo::Params {
                connections,
                load: load.load(&mut params),
            };
            ("echo", echo::run_echo(&ctx, p).await?)
        }
        Scenario::Fanout { args, .. } => (
            "fanout",
            echo::run_fanout(&ctx, args.params(&mut params)).await?,
        ),
    };
    for e in &outcome.tally.error_samples {
        eprintln!("[{name}] error: {e}");
    }
    Ok(report::Report::new(
        name,
        &ctx,
        params,
        outcome,
        threads,
        measure::clock_ticks_per_second(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Scenario {
        let argv = std::iter::once("switchboard-load").chain(args.iter().copied());
        Cli::try_parse_from(argv).expect("valid arguments").scenario
    }

    #[test]
    fn spread_urls_and_sampled_pids_repeat_in_order() {
        let s = parse(&[
            "pubsub",
            "--url",
            "rs://127.0.0.1:1",
            "--spread-url",
            "rs://127.0.0.1:2",
            "--sample-pid",
            "7",
            "--spread-url",
            "rs://127.0.0.1:3",
            "--sample-pid",
            "8",
        ]);
        let common = s.common();
        assert_eq!(common.spread_url, ["rs://127.0.0.1:2", "rs://127.0.0.1:3"]);
        assert_eq!(common.sample_pid, [7, 8]);
        assert!(spread_refused(&s).is_none());
        let plain = parse(&["rpc"]);
        assert!(plain.common().spread_url.is_empty());
        assert!(plain.common().sample_pid.is_empty());
    }

    #[test]
    fn the_uri_prefix_defaults_to_switchboard_load() {
        assert_eq!(parse(&["rpc"]).common().uri_prefix, "switchboard.load");
        let s = parse(&["pubsub", "--uri-prefix", "bench.load."]);
        assert_eq!(s.common().uri_prefix, "bench.load");
        for bad in ["", ".", "a..b", ".a", "a b"] {
            assert!(parse_uri_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nats_stands_in_for_the_router_of_rpc_and_pubsub_only() {
        let refused = |args: &[&str]| {
            let s = parse(args);
            nats_refused(&s, s.common())
        };
        assert!(refused(&["rpc", "--url", "nats://127.0.0.1:4222"]).is_none());
        assert!(refused(&["pubsub", "--payload", "4096"]).is_none());
        for scenario in ["connect", "idle", "echo", "fanout", "callee"] {
            assert!(refused(&[scenario]).is_some(), "{scenario}");
        }
        assert!(refused(&["rpc", "--procedure", "p"]).is_some());
        assert!(refused(&["rpc", "--origin-url", "ws://127.0.0.1:1/ws"]).is_some());
        assert!(refused(&["pubsub", "--spread-url", "rs://127.0.0.1:1"]).is_some());
        assert!(refused(&["pubsub", "--ticket", "joe:t"]).is_some());
        assert!(refused(&["rpc", "--source-addrs", "127.0.0.2"]).is_some());
    }

    #[test]
    fn only_rpc_with_its_own_callee_and_pubsub_spread() {
        assert!(spread_refused(&parse(&["rpc"])).is_none());
        assert!(spread_refused(&parse(&["rpc", "--procedure", "p"])).is_some());
        for scenario in ["connect", "idle", "echo", "fanout"] {
            assert!(spread_refused(&parse(&[scenario])).is_some(), "{scenario}");
        }
        assert!(spread_refused(&parse(&["subscribers", "--topic", "t"])).is_some());
        assert!(spread_refused(&parse(&["callee"])).is_some());
    }
}
