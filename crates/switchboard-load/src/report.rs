//! The one JSON line a run prints.

use serde::Serialize;

use crate::conn::Kind;
use crate::measure::{LatencySummary, ProcSample};
use crate::scenario::{Ctx, Outcome};

/// The scenario's parameters, as given (absent ones are left out of the line).
#[derive(Debug, Default, Serialize)]
pub struct Params {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publishers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<usize>,
}

/// One run's results.
#[derive(Debug, Serialize)]
pub struct Report {
    scenario: &'static str,
    serializer: &'static str,
    transport: &'static str,
    url: String,
    /// The other routers the load was spread over (`--spread-url`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    spread_urls: Vec<String>,
    #[serde(flatten)]
    params: Params,
    /// The measured window (for idle: the hold).
    duration_s: f64,
    /// Operations completed in the window: calls, delivered events, session cycles, echoes; for
    /// idle, sessions opened.
    ops: u64,
    /// ops per second of the window; for idle, sessions opened per second while opening.
    rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    publishes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    publish_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    open_s: Option<f64>,
    latency_us: Option<LatencySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack_latency_us: Option<LatencySummary>,
    errors: u64,
    lost: u64,
    duplicated: u64,
    reordered: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    router: Option<Process>,
    /// The second router of a run across a link (`--origin-url`, `--origin-pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    origin_router: Option<Process>,
    /// More processes sampled over the window (`--sample-pid`), in their order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    others: Vec<Process>,
    loadgen: Process,
}

/// CPU and memory of one process over the window.
#[derive(Debug, Serialize)]
struct Process {
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    /// CPU seconds (user + system) spent in the window.
    cpu_s: Option<f64>,
    /// CPU microseconds per operation.
    cpu_us_per_op: Option<f64>,
    /// CPU use over the window; 100 = one core busy.
    cpu_percent: Option<f64>,
    rss_kb_before: Option<u64>,
    rss_kb_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_kb_per_session: Option<f64>,
    /// Worker threads (the load tool's runtime), or the process's thread count (the router).
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<u64>,
    /// All threads of the process.
    os_threads: Option<u64>,
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

impl Process {
    fn new(
        before: Option<ProcSample>,
        after: Option<ProcSample>,
        seconds: f64,
        ops: Option<u64>,
        ticks_per_s: u64,
    ) -> Self {
        let cpu_s = before
            .zip(after)
            .map(|(b, a)| a.cpu_ticks.saturating_sub(b.cpu_ticks) as f64 / ticks_per_s as f64);
        Self {
            pid: None,
            cpu_s: cpu_s.map(|c| round(c, 2)),
            cpu_us_per_op: cpu_s
                .zip(ops.filter(|n| *n > 0))
                .map(|(c, n)| round(c * 1e6 / n as f64, 2)),
            cpu_percent: cpu_s
                .filter(|_| seconds > 0.0)
                .map(|c| round(c / seconds * 100.0, 1)),
            rss_kb_before: before.map(|s| s.rss_kb),
            rss_kb_after: after.map(|s| s.rss_kb),
            rss_kb_per_session: None,
            threads: None,
            os_threads: after.map(|s| s.threads),
        }
    }
}

impl Report {
    /// Assembles the report.
    pub fn new(
        scenario: &'static str,
        ctx: &Ctx,
        params: Params,
        outcome: Outcome,
        threads: usize,
        ticks_per_s: u64,
    ) -> Self {
        let Outcome {
            tally,
            seconds,
            samples,
            idle,
        } = outcome;
        let per_second = |n: u64| {
            if seconds > 0.0 {
                round(n as f64 / seconds, 1)
            } else {
                0.0
            }
        };
        let pubs = matches!(scenario, "pubsub" | "fanout");
        // For idle, CPU per operation would be CPU per session over an arbitrary hold: left out,
        // cpu_percent says what idle sessions cost.
        let ops_for_cpu = (scenario != "idle").then_some(tally.ops);
        let mut router = ctx.router_pid.map(|pid| {
            let mut p = Process::new(
                samples.router_before,
                samples.router_after,
                seconds,
                ops_for_cpu,
                ticks_per_s,
            );
            p.pid = Some(pid);
            p
        });
        let origin_router = ctx.origin_pid.map(|pid| {
            let mut p = Process::new(
                samples.origin.0,
                samples.origin.1,
                seconds,
                ops_for_cpu,
                ticks_per_s,
            );
            p.pid = Some(pid);
            p
        });
        let others = ctx
            .sample_pids
            .iter()
            .zip(samples.others)
            .map(|(pid, (before, after))| {
                let mut p = Process::new(before, after, seconds, ops_for_cpu, ticks_per_s);
                p.pid = Some(*pid);
                p
            })
            .collect();
        let mut loadgen = Process::new(
            samples.own_before,
            samples.own_after,
            seconds,
            ops_for_cpu,
            ticks_per_s,
        );
        loadgen.threads = Some(threads as u64);
        let mut rate = per_second(tally.ops);
        let mut open_s = None;
        if let Some(idle) = idle {
            open_s = Some(round(idle.open_s, 2));
            rate = if idle.open_s > 0.0 {
                round(idle.sessions as f64 / idle.open_s, 1)
            } else {
                0.0
            };
            let per_session = |(b, a): (u64, u64)| {
                (idle.sessions > 0).then(|| round((a as f64 - b as f64) / idle.sessions as f64, 2))
            };
            if let (Some(r), Some(kb)) = (router.as_mut(), idle.router_rss_kb) {
                r.rss_kb_before = Some(kb.0);
                r.rss_kb_after = Some(kb.1);
                r.rss_kb_per_session = per_session(kb);
            }
            if let Some(kb) = idle.own_rss_kb {
                loadgen.rss_kb_before = Some(kb.0);
                loadgen.rss_kb_after = Some(kb.1);
                loadgen.rss_kb_per_session = per_session(kb);
            }
        }
        Self {
            scenario,
            // NATS moves the payload as it is: no serializer is involved.
            serializer: if ctx.target.kind == Kind::Nats {
                "none"
            } else {
                ctx.target.serializer.name()
            },
            transport: ctx.target.transport_name(),
            url: ctx.target.url.clone(),
            spread_urls: ctx.spread.iter().map(|t| t.url.clone()).collect(),
            params,
            duration_s: round(seconds, 3),
            ops: tally.ops,
            rate,
            publishes: pubs.then_some(tally.publishes),
            publish_rate: pubs.then(|| per_second(tally.publishes)),
            open_s,
            latency_us: tally.latency.summary(),
            ack_latency_us: tally.ack_latency.summary(),
            errors: tally.errors,
            lost: tally.lost,
            duplicated: tally.duplicated,
            reordered: tally.reordered,
            router,
            origin_router,
            others,
            loadgen,
        }
    }

    /// Whether any correctness check failed.
    pub fn failed(&self) -> bool {
        self.errors + self.lost + self.duplicated + self.reordered > 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use switchboard_proto::Serializer;

    use super::*;
    use crate::conn::Target;
    use crate::measure::{Progress, Samples, Tally};

    fn at(cpu_ticks: u64, rss_kb: u64) -> Option<ProcSample> {
        Some(ProcSample {
            cpu_ticks,
            rss_kb,
            threads: 3,
        })
    }

    async fn report(spread: &[&str], sample_pids: Vec<u32>, others: Samples) -> serde_json::Value {
        let target = |url: String| async move {
            Target::new(&url, Serializer::MsgPack, "realm1", Vec::new())
                .await
                .expect("target")
        };
        let mut spread_targets = Vec::new();
        for url in spread {
            spread_targets.push(target((*url).to_owned()).await);
        }
        let ctx = Ctx {
            target: target("rs://127.0.0.1:1".into()).await,
            origin: None,
            origin_pid: None,
            spread: spread_targets,
            sample_pids,
            uri_prefix: "switchboard.load".into(),
            warmup: Duration::ZERO,
            duration: Duration::from_secs(2),
            drain: Duration::ZERO,
            router_pid: None,
            quiet: true,
            progress: Progress::default(),
        };
        let tally = Tally {
            ops: 1000,
            ..Tally::default()
        };
        let outcome = Outcome {
            tally,
            seconds: 2.0,
            samples: others,
            idle: None,
        };
        let r = Report::new("rpc", &ctx, Params::default(), outcome, 2, 100);
        serde_json::to_value(&r).expect("JSON")
    }

    #[tokio::test]
    async fn sampled_processes_are_reported_per_operation_in_their_order() {
        let samples = Samples {
            others: vec![(at(100, 10), at(300, 12)), (at(0, 1), None)],
            ..Samples::default()
        };
        let r = report(&["rs://127.0.0.1:2"], vec![41, 42], samples).await;
        assert_eq!(r["spread_urls"], serde_json::json!(["rs://127.0.0.1:2"]));
        let others = r["others"].as_array().expect("others");
        assert_eq!(others.len(), 2);
        // 200 ticks at 100 per second over 1000 operations in 2 s.
        assert_eq!(others[0]["pid"], 41);
        assert_eq!(others[0]["cpu_s"], 2.0);
        assert_eq!(others[0]["cpu_us_per_op"], 2000.0);
        assert_eq!(others[0]["cpu_percent"], 100.0);
        assert_eq!(others[0]["rss_kb_after"], 12);
        // A process gone by the window's end has no figures, but keeps its place.
        assert_eq!(others[1]["pid"], 42);
        assert!(others[1]["cpu_us_per_op"].is_null());
    }

    #[tokio::test]
    async fn without_spread_or_sampled_processes_the_line_is_as_before() {
        let r = report(&[], Vec::new(), Samples::default()).await;
        let keys: Vec<&str> = r
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert!(!keys.contains(&"others"), "{keys:?}");
        assert!(!keys.contains(&"spread_urls"), "{keys:?}");
    }
}
