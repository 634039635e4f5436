//! What in-process sessions cost the router, next to the same work over loopback WebSocket:
//! a call round trip (in-process caller -> in-process callee) and a publication delivered to
//! in-process subscribers, as the router's CPU per operation.
//!
//! ```sh
//! cargo bench -p switchboard-router --bench inprocess            # 5 s windows
//! cargo bench -p switchboard-router --bench inprocess -- 2       # 2 s windows
//! ```
//!
//! The router and the clients run on two runtimes of their own, each on its own named worker
//! thread, so the router's CPU (utime + stime of its threads, from `/proc/self/task`) is measured
//! apart from the clients' in the same process, for both kinds of session alike. The clients are
//! `switchboard-client` sessions either way: joined in-process (MessagePack over the in-memory
//! transport), or over WebSocket to the node's listener (MessagePack too, so the serializer is the
//! same). Figures are CPU per operation, which does not depend on who else uses the machine's
//! cores; rates are printed too but do.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchboard_client::{
    Args, ConnectOptions, PublishOptions, RegisterOptions, Session, SubscribeOptions,
};
use switchboard_proto::{Serializer, Value};
use switchboard_router::embed::TrustedIdentity;
use switchboard_router::{LoadedConfig, RunningNode, node};

/// Calls in flight at once from the caller.
const CALLS_IN_FLIGHT: usize = 16;
/// Publications in flight at once (acknowledged, so the publisher cannot run away).
const PUBLISHES_IN_FLIGHT: usize = 16;
/// Subscribers of the topic.
const SUBSCRIBERS: usize = 10;
/// Payload size, as in `bench/compare.py`.
const PAYLOAD_BYTES: usize = 64;

const CONFIG: &str = r#"{"version": 2, "workers": [{"type": "router",
    "realms": [{"name": "realm1", "roles": [{"name": "anonymous", "permissions": [
        {"uri": "", "match": "prefix", "allow": {"call": true, "register": true, "publish": true, "subscribe": true}}]}]}],
    "transports": [{"type": "universal", "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
        "rawsocket": {}, "websocket": {"ws": {"type": "websocket"}}}]}]}"#;

/// Cumulative CPU time of this process's threads whose name starts with `prefix`.
fn threads_cpu(prefix: &str) -> Duration {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut ticks = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the parenthesised command name: state is the 3rd field, utime the 14th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    Duration::from_secs_f64(ticks as f64 / ticks_per_second)
}

/// How sessions reach the node.
#[derive(Clone, Copy, Debug)]
enum Via {
    InProcess,
    WebSocket,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::InProcess => "in-process",
            Via::WebSocket => "WebSocket (loopback, msgpack)",
        }
    }
}

struct Bench {
    node: RunningNode,
    router: tokio::runtime::Runtime,
    clients: tokio::runtime::Runtime,
    window: Duration,
}

impl Bench {
    async fn join(&self, via: Via, authid: &str) -> Session {
        match via {
            Via::InProcess => self
                .node
                .in_process()
                .join(TrustedIdentity::new("realm1", authid, "anonymous"))
                .await
                .expect("in-process join"),
            Via::WebSocket => {
                let addr = self.node.tcp_addr().expect("tcp listener");
                Session::connect(&ConnectOptions::websocket(
                    addr,
                    "/ws",
                    Serializer::MsgPack,
                    "realm1",
                ))
                .await
                .expect("websocket join")
            }
        }
    }

    /// Runs `work` (which counts operations into the counter) for a warm-up second, then for the
    /// window; returns operations per second and router CPU per operation.
    fn measure(&self, ops: &AtomicU64, stop: &AtomicBool) -> (f64, Duration) {
        std::thread::sleep(Duration::from_secs(1));
        let (ops0, cpu0, t0) = (ops.load(Ordering::Relaxed), threads_cpu("router"), Instant::now());
        std::thread::sleep(self.window);
        let (ops1, cpu1, t1) = (ops.load(Ordering::Relaxed), threads_cpu("router"), Instant::now());
        stop.store(true, Ordering::Relaxed);
        let n = (ops1 - ops0).max(1);
        let rate = n as f64 / (t1 - t0).as_secs_f64();
        (rate, (cpu1 - cpu0) / n as u32)
    }

    fn calls(&self, via: Via) -> (f64, Duration) {
        let ops = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let procedure = format!("bench.echo.{}", via.name().len());
        let (caller, callee) = self.clients.block_on(async {
            let callee = self.join(via, "callee").await;
            callee
                .register(&procedure, RegisterOptions::default(), |call| async move {
                    Ok(call.into_args())
                })
                .await
                .expect("register");
            (self.join(via, "caller").await, callee)
        });
        let payload = Args::positional(vec![Value::Str("x".repeat(PAYLOAD_BYTES))]);
        for _ in 0..CALLS_IN_FLIGHT {
            let (caller, ops, stop) = (caller.clone(), ops.clone(), stop.clone());
            let (procedure, payload) = (procedure.clone(), payload.clone());
            self.clients.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    caller
                        .call(&procedure, payload.clone())
                        .await
                        .expect("call");
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let figures = self.measure(&ops, &stop);
        self.clients.block_on(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = caller.leave().await;
            let _ = callee.leave().await;
        });
        figures
    }

    fn events(&self, via: Via) -> (f64, Duration) {
        let delivered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let topic = format!("bench.news.{}", via.name().len());
        let (publisher, subscribers) = self.clients.block_on(async {
            let mut subscribers = Vec::new();
            for i in 0..SUBSCRIBERS {
                let s = self.join(via, &format!("subscriber-{i}")).await;
                let mut events = s
                    .subscribe(&topic, SubscribeOptions::default())
                    .await
                    .expect("subscribe");
                let delivered = delivered.clone();
                tokio::spawn(async move {
                    while let Some(item) = events.next().await {
                        // A lagged count is events the router delivered that the reader missed.
                        let n = match item {
                            Ok(_) => 1,
                            Err(lagged) => lagged.0,
                        };
                        delivered.fetch_add(n, Ordering::Relaxed);
                    }
                });
                subscribers.push(s);
            }
            (self.join(via, "publisher").await, subscribers)
        });
        let payload = Args::positional(vec![Value::Str("x".repeat(PAYLOAD_BYTES))]);
        for _ in 0..PUBLISHES_IN_FLIGHT {
            let (publisher, stop) = (publisher.clone(), stop.clone());
            let (topic, payload) = (topic.clone(), payload.clone());
            self.clients.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    publisher
                        .publish(&topic, payload.clone(), PublishOptions::acknowledged())
                        .await
                        .expect("publish");
                }
            });
        }
        let figures = self.measure(&delivered, &stop);
        self.clients.block_on(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = publisher.leave().await;
            for s in subscribers {
                let _ = s.leave().await;
            }
        });
        figures
    }
}

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

fn main() {
    // `cargo bench` passes `--bench`; a number among the arguments is the window in seconds.
    let seconds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(5.0);
    // `calls` or `events` among the arguments runs only that part (for profiling one of them).
    let only = std::env::args().find(|a| a == "calls" || a == "events");
    let runs = |part: &str| only.as_deref().is_none_or(|o| o == part);
    // Likewise `inprocess` or `websocket` runs only that kind of session.
    let only_via = std::env::args().find(|a| a == "inprocess" || a == "websocket");
    let vias: Vec<Via> = [Via::InProcess, Via::WebSocket]
        .into_iter()
        .filter(|v| {
            only_via.as_deref().is_none_or(|o| {
                (o == "inprocess") == matches!(v, Via::InProcess)
            })
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.json");
    std::fs::write(&file, CONFIG).expect("config");
    let loaded = LoadedConfig::from_file(&file).expect("config");
    let router = runtime("router");
    let node = router.block_on(async {
        let prepared = node::prepare(&loaded).expect("prepare");
        node::start_prepared(prepared).await.expect("start")
    });
    let bench = Bench {
        node,
        router,
        clients: runtime("clients"),
        window: Duration::from_secs_f64(seconds),
    };
    println!(
        "router CPU per operation, {seconds} s windows; calls: {CALLS_IN_FLIGHT} in flight; \
         events: 1 publisher ({PUBLISHES_IN_FLIGHT} acknowledged in flight) -> {SUBSCRIBERS} \
         subscribers; {PAYLOAD_BYTES}-byte payloads\n"
    );
    println!("| operation | sessions | rate /s | router CPU µs/op |");
    println!("|---|---|---|---|");
    let mut per_call = Vec::new();
    for &via in vias.iter().filter(|_| runs("calls")) {
        let (rate, cpu) = bench.calls(via);
        println!(
            "| call round trip | {} | {rate:.0} | {:.2} |",
            via.name(),
            cpu.as_secs_f64() * 1e6
        );
        per_call.push(cpu);
    }
    let mut per_event = Vec::new();
    for &via in vias.iter().filter(|_| runs("events")) {
        let (rate, cpu) = bench.events(via);
        println!(
            "| event delivered | {} | {rate:.0} | {:.2} |",
            via.name(),
            cpu.as_secs_f64() * 1e6
        );
        per_event.push(cpu);
    }
    let ratio = |v: &[Duration]| match v {
        [inprocess, websocket] => format!("{:.2}", inprocess.as_secs_f64() / websocket.as_secs_f64()),
        _ => "-".to_owned(),
    };
    println!(
        "\nin-process / WebSocket router CPU: calls {}, events {}",
        ratio(&per_call),
        ratio(&per_event)
    );
    let Bench { node, router, .. } = bench;
    router.block_on(node.shutdown());
}
