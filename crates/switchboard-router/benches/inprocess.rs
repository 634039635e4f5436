//! What in-process sessions cost the router, next to the same work over loopback WebSocket:
//! a call round trip (caller -> callee -> caller) and a publication delivered to subscribers, as
//! the router's CPU per operation, and as the whole process's CPU per operation.
//!
//! ```sh
//! cargo bench -p switchboard-router --bench inprocess                   # 5 s windows
//! cargo bench -p switchboard-router --bench inprocess -- 2 calls        # 2 s, calls only
//! ```
//!
//! Arguments: a number (the window in seconds), `calls` or `events` (one part only),
//! `inprocess` or `websocket` (one kind of session only).
//!
//! The router and the clients run on two runtimes, each with one named worker thread. The clients
//! are `switchboard-client` sessions either way: joined in-process, or over WebSocket to the node's
//! listener (MessagePack both ways, so the serializer is the same).
//! - Over WebSocket the router's work runs on its own thread: its CPU is that thread's utime +
//!   stime (`/proc/self/task`).
//! - In-process, the router's side of a session runs inline on the client's task
//!   (`embed::InlineSession`): its CPU is the time spent inside the polls of that transport
//!   ([`Timed`]), which includes the routing into other sessions' outboxes, plus whatever is left
//!   on the router's thread. What the timing itself adds (about one clock read per poll, measured
//!   at start) is taken off.
//!
//! "All threads" is the whole process: router and clients. CPU per operation does not depend on
//! who else uses the machine's cores; the rates do.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_client::{
    Args, ConnectOptions, JoinOptions, PublishOptions, RegisterOptions, Session, SubscribeOptions,
};
use switchboard_proto::{Serializer, Value};
use switchboard_router::embed::TrustedIdentity;
use switchboard_router::{RunningNode, node};
use switchboard_transport::{Transport, TransportError};

/// Calls in flight at once from each caller.
const CALLS_IN_FLIGHT: usize = 16;
/// Callers in the second call scenario (as `bench/compare.py`'s rpc-8x16).
const MANY_CALLERS: usize = 8;
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

/// Cumulative CPU time of this process's threads whose name starts with `prefix` (all of them
/// for the empty prefix).
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
        // Fields after the parenthesised command name start with the state, field 3.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    Duration::from_secs_f64(ticks as f64 / ticks_per_second)
}

/// Time spent inside polls, and how many polls.
#[derive(Default)]
struct PollTime {
    nanos: AtomicU64,
    polls: AtomicU64,
}

/// Awaits `fut`, adding the time spent inside each of its polls to `spent`.
async fn timed<F: Future>(spent: &PollTime, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let started = Instant::now();
        let polled = fut.as_mut().poll(cx);
        let nanos = started.elapsed().as_nanos() as u64;
        spent.nanos.fetch_add(nanos, Ordering::Relaxed);
        spent.polls.fetch_add(1, Ordering::Relaxed);
        polled
    })
    .await
}

/// What timing an empty interval reads, on average: the clock's share of every timed poll.
fn clock_cost() -> Duration {
    const READS: u32 = 1_000_000;
    let mut total = Duration::ZERO;
    for _ in 0..READS {
        let started = Instant::now();
        total += started.elapsed();
    }
    total / READS
}

/// A transport whose every poll is timed: wrapped around the router's side of an in-process
/// session, the time is the router's work for that session.
struct Timed<T> {
    inner: T,
    spent: Arc<PollTime>,
}

impl<T: Transport> Transport for Timed<T> {
    fn serializer(&self) -> Serializer {
        self.inner.serializer()
    }

    fn peer_max_message_bytes(&self) -> Option<usize> {
        self.inner.peer_max_message_bytes()
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        timed(&self.spent, self.inner.recv()).await
    }

    async fn feed(&mut self, msg: Bytes) -> Result<(), TransportError> {
        timed(&self.spent, self.inner.feed(msg)).await
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        timed(&self.spent, self.inner.flush()).await
    }

    async fn close(&mut self) {
        timed(&self.spent, self.inner.close()).await
    }
}

/// How sessions reach the node.
#[derive(Clone, Copy, Debug, PartialEq)]
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

/// What one measured window gave.
struct Figures {
    rate: f64,
    router_cpu: Duration,
    all_cpu: Duration,
}

struct Bench {
    node: RunningNode,
    router: tokio::runtime::Runtime,
    clients: tokio::runtime::Runtime,
    /// Time spent inside the router's side of in-process sessions.
    inline_router: Arc<PollTime>,
    /// What timing adds to each timed poll.
    clock_cost: Duration,
    window: Duration,
}

impl Bench {
    async fn join(&self, via: Via, authid: &str) -> Session {
        match via {
            Via::InProcess => {
                let transport = Timed {
                    inner: self.node.in_process().transport(TrustedIdentity::new(
                        "realm1",
                        authid,
                        "anonymous",
                    )),
                    spent: self.inline_router.clone(),
                };
                Session::join(transport, &JoinOptions::new("realm1"))
                    .await
                    .expect("in-process join")
            }
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

    /// Lets the work counting into `ops` run for a warm-up second, then measures a window.
    fn measure(&self, ops: &AtomicU64, stop: &AtomicBool) -> Figures {
        std::thread::sleep(Duration::from_secs(1));
        let snapshot = || {
            let inline = Duration::from_nanos(self.inline_router.nanos.load(Ordering::Relaxed));
            let polls = self.inline_router.polls.load(Ordering::Relaxed);
            let timing = Duration::from_nanos(self.clock_cost.as_nanos() as u64 * polls);
            (
                ops.load(Ordering::Relaxed),
                threads_cpu("router") + inline.saturating_sub(timing),
                threads_cpu(""),
                Instant::now(),
            )
        };
        let (ops0, router0, all0, t0) = snapshot();
        std::thread::sleep(self.window);
        let (ops1, router1, all1, t1) = snapshot();
        stop.store(true, Ordering::Relaxed);
        let n = (ops1 - ops0).max(1);
        Figures {
            rate: n as f64 / (t1 - t0).as_secs_f64(),
            router_cpu: (router1 - router0) / n as u32,
            all_cpu: (all1 - all0) / n as u32,
        }
    }

    fn calls(&self, via: Via, callers: usize) -> Figures {
        let ops = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let procedure = format!("bench.echo.{via:?}.{callers}");
        let (sessions, callee) = self.clients.block_on(async {
            let callee = self.join(via, "callee").await;
            callee
                .register(&procedure, RegisterOptions::default(), |call| async move {
                    Ok(call.into_args())
                })
                .await
                .expect("register");
            let mut sessions = Vec::new();
            for i in 0..callers {
                sessions.push(self.join(via, &format!("caller-{i}")).await);
            }
            (sessions, callee)
        });
        let payload = Args::positional(vec![Value::Str("x".repeat(PAYLOAD_BYTES))]);
        for caller in &sessions {
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
        }
        let figures = self.measure(&ops, &stop);
        self.clients.block_on(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for caller in sessions {
                let _ = caller.leave().await;
            }
            let _ = callee.leave().await;
        });
        figures
    }

    fn events(&self, via: Via) -> Figures {
        let delivered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let topic = format!("bench.news.{via:?}");
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

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; the other arguments are ours.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds = args
        .iter()
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(5.0);
    let part = |name: &str| {
        let parts = ["calls", "events"];
        !args.iter().any(|a| parts.contains(&a.as_str())) || args.iter().any(|a| a == name)
    };
    let vias: Vec<Via> = [Via::InProcess, Via::WebSocket]
        .into_iter()
        .filter(|v| {
            let chosen = |name: &str| args.iter().any(|a| a == name);
            match (chosen("inprocess"), chosen("websocket")) {
                (false, false) | (true, true) => true,
                (true, false) => *v == Via::InProcess,
                (false, true) => *v == Via::WebSocket,
            }
        })
        .collect();

    let loaded = switchboard_router::LoadedConfig::from_json(CONFIG, std::path::Path::new("."))
        .expect("config");
    let router = runtime("router");
    let node = router.block_on(async {
        let prepared = node::prepare(&loaded).expect("prepare");
        node::start_prepared(prepared).await.expect("start")
    });
    let bench = Bench {
        node,
        router,
        clients: runtime("clients"),
        inline_router: Arc::default(),
        clock_cost: clock_cost(),
        window: Duration::from_secs_f64(seconds),
    };
    println!(
        "{seconds} s windows; calls: 1 or {MANY_CALLERS} callers with {CALLS_IN_FLIGHT} in flight \
         each, to one callee; \
         events: 1 publisher ({PUBLISHES_IN_FLIGHT} acknowledged publications in flight) -> \
         {SUBSCRIBERS} subscribers; {PAYLOAD_BYTES}-byte payloads; timing one poll costs {} ns\n",
        bench.clock_cost.as_nanos()
    );
    println!("| operation | sessions | rate /s | router CPU µs/op | all threads CPU µs/op |");
    println!("|---|---|---|---|---|");
    let mut router_cpu = Vec::new();
    let scenarios = [
        ("calls", "call round trip, 1 caller"),
        ("calls-8", "call round trip, 8 callers"),
        ("events", "event delivered"),
    ];
    for (name, label) in scenarios {
        if !part(name.trim_end_matches("-8")) {
            continue;
        }
        for &via in &vias {
            let f = match name {
                "calls" => bench.calls(via, 1),
                "calls-8" => bench.calls(via, MANY_CALLERS),
                _ => bench.events(via),
            };
            println!(
                "| {label} | {} | {:.0} | {:.2} | {:.2} |",
                via.name(),
                f.rate,
                us(f.router_cpu),
                us(f.all_cpu)
            );
            router_cpu.push((name, via, f.router_cpu));
        }
    }
    for (name, _) in scenarios {
        let of = |via: Via| {
            router_cpu
                .iter()
                .find(|(n, v, _)| *n == name && *v == via)
                .map(|(_, _, cpu)| cpu.as_secs_f64())
        };
        if let (Some(inline), Some(websocket)) = (of(Via::InProcess), of(Via::WebSocket)) {
            println!(
                "\n{name}: in-process / WebSocket router CPU = {:.2}",
                inline / websocket
            );
        }
    }
    let Bench { node, router, .. } = bench;
    router.block_on(node.shutdown());
}
