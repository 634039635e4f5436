//! What a run measures: the time window, per-task tallies (counts and latency histograms), the
//! CPU and memory of the router process and of the load tool itself from `/proc`, and progress
//! lines on stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// The phases of a run: warm-up from `base` to `start`, the measured window `start..end`, then
/// draining. Only operations that complete inside the window count towards rates and latencies;
/// correctness checks cover every operation of the run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// When load starts (also the zero of the timestamps pub/sub payloads carry).
    pub base: Instant,
    /// Start of the measured window.
    pub start: Instant,
    /// End of the measured window: no new operations start after it.
    pub end: Instant,
    /// Draining ends here at the latest: what is still outstanding then counts as an error.
    pub drain_deadline: Instant,
}

impl Window {
    /// A window starting `warmup` from now.
    pub fn new(warmup: Duration, duration: Duration, drain: Duration) -> Self {
        let base = Instant::now();
        let start = base + warmup;
        let end = start + duration;
        Self {
            base,
            start,
            end,
            drain_deadline: end + drain,
        }
    }

    /// Whether `t` lies in the measured window.
    pub fn contains(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }

    /// Until when a sending loop with `outstanding` requests unanswered waits for replies at
    /// `now`: the window's end while the window lasts (so that the loop wakes then even when
    /// nothing arrives, and a stalled router cannot keep it past the drain deadline), the drain
    /// deadline after it. `None` once the window is over and nothing is outstanding: the loop is
    /// done.
    pub fn wait_until(&self, now: Instant, outstanding: usize) -> Option<Instant> {
        if now < self.end {
            Some(self.end)
        } else if outstanding > 0 {
            Some(self.drain_deadline)
        } else {
            None
        }
    }

    /// The measured window's length in seconds.
    pub fn seconds(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }

    /// Nanoseconds since `base`, the timestamp carried in payloads.
    pub fn stamp(&self, t: Instant) -> u64 {
        u64::try_from((t - self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The instant a payload timestamp stands for.
    pub fn unstamp(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }
}

/// A latency histogram in nanoseconds (3 significant digits, resizing as needed), allocated on
/// the first value: an empty one would cost 16 KiB, which 200k idle sessions cannot afford.
#[derive(Default)]
pub struct Latency(Option<Box<Histogram<u64>>>);

impl Latency {
    fn histogram(&mut self) -> &mut Histogram<u64> {
        self.0.get_or_insert_with(|| {
            Box::new(Histogram::new(3).expect("3 significant figures is a valid precision"))
        })
    }

    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        // record(), not saturating_record(): the histogram auto-resizes only through record();
        // saturating_record() clamps to the current (tiny) initial range.
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        let _ = self.histogram().record(ns);
    }

    /// Adds another histogram's values.
    pub fn merge(&mut self, other: &Latency) {
        if let Some(o) = &other.0 {
            // Both auto-resize, so adding never runs out of range.
            let _ = self.histogram().add(&**o);
        }
    }

    /// The summary in microseconds.
    pub fn summary(&self) -> Option<LatencySummary> {
        let h = self.0.as_ref().filter(|h| !h.is_empty())?;
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        Some(LatencySummary {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: (h.mean() / 100.0).round() / 10.0,
        })
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, serde::Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// What one task counted. Each task keeps its own and they are merged at the end, so the hot path
/// touches no shared state except the progress counter.
#[derive(Default)]
pub struct Tally {
    /// Operations completed inside the window (calls, delivered events, sessions, echoes).
    pub ops: u64,
    /// Acknowledged publishes inside the window (pub/sub and fan-out).
    pub publishes: u64,
    /// Failed operations: ERRORs, mismatched payloads, unanswered requests, broken connections.
    pub errors: u64,
    /// Acknowledged events a subscriber never got.
    pub lost: u64,
    /// Events a subscriber got more than once.
    pub duplicated: u64,
    /// Events a subscriber got after a later event of the same publisher.
    pub reordered: u64,
    /// Latency of the scenario's operation.
    pub latency: Latency,
    /// Latency from PUBLISH to PUBLISHED (pub/sub), or to the hub's echo (fan-out).
    pub ack_latency: Latency,
    /// The first few error messages, for stderr.
    pub error_samples: Vec<String>,
}

/// An error with its causes, like `{:#}`, but without a cause that only repeats what the message
/// before it already says (the transport's `I/O error: {0}` wraps its source and names it too).
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// How many error messages a tally keeps.
const MAX_ERROR_SAMPLES: usize = 5;

impl Tally {
    /// Counts `n` errors, keeping the message if there is room.
    pub fn error(&mut self, n: u64, message: impl FnOnce() -> String) {
        self.errors += n;
        if self.error_samples.len() < MAX_ERROR_SAMPLES {
            self.error_samples.push(message());
        }
    }

    /// Counts the failure that ended `task`'s loop.
    pub fn failure(&mut self, task: impl std::fmt::Display, e: &anyhow::Error) {
        self.error(1, || format!("{task}: {}", describe(e)));
    }

    /// Counts `n` requests of `task` left without an answer, one error each; `what` names them
    /// ("calls unanswered").
    pub fn unanswered(&mut self, task: impl std::fmt::Display, n: usize, what: &str) {
        if n > 0 {
            self.error(n as u64, || format!("{task}: {n} {what}"));
        }
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: Tally) {
        self.ops += other.ops;
        self.publishes += other.publishes;
        self.errors += other.errors;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.latency.merge(&other.latency);
        self.ack_latency.merge(&other.ack_latency);
        for e in other.error_samples {
            if self.error_samples.len() < MAX_ERROR_SAMPLES {
                self.error_samples.push(e);
            }
        }
    }
}

/// CPU time, memory and threads of one process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size in KiB.
    pub rss_kb: u64,
    /// Number of threads.
    pub threads: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status` (`None`: this process).
pub fn sample(pid: Option<u32>) -> std::io::Result<ProcSample> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_owned(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
    // The command name (field 2) may contain spaces and parentheses: fields are counted from
    // after its closing parenthesis, where field 3 (state) starts.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| std::io::Error::other("malformed stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> u64 {
        // Field n (1-based, as in proc(5)) is at index n - 3 here.
        fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0)
    };
    let cpu_ticks = field(14) + field(15);
    let threads = field(20);
    let status = std::fs::read_to_string(format!("{dir}/status"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(ProcSample {
        cpu_ticks,
        rss_kb,
        threads,
    })
}

/// The soft limit on open files of this process (`/proc/self/limits`), if readable.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Clock ticks per second for `/proc` CPU times: `getconf CLK_TCK`, or Linux's 100 when that
/// cannot run (the workspace forbids the `unsafe` a direct `sysconf` call would need).
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(100)
}

/// Samples of the router and of ourselves at the start and end of the window.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    /// Router at the window's start.
    pub router_before: Option<ProcSample>,
    /// Router at the window's end.
    pub router_after: Option<ProcSample>,
    /// The load tool at the window's start.
    pub own_before: Option<ProcSample>,
    /// The load tool at the window's end.
    pub own_after: Option<ProcSample>,
    /// The second router (`--origin-pid`) at the window's start and end.
    pub origin: (Option<ProcSample>, Option<ProcSample>),
    /// The other processes (`--sample-pid`) at the window's start and end, in their order.
    pub others: Vec<(Option<ProcSample>, Option<ProcSample>)>,
}

/// Samples the router (and the second router, if any, and the `others`) and this process at
/// `window.start` and `window.end`, on a task of its own.
pub fn sample_window(
    window: Window,
    router: Option<u32>,
    origin: Option<u32>,
    others: Vec<u32>,
) -> tokio::task::JoinHandle<Samples> {
    tokio::spawn(async move {
        tokio::time::sleep_until(window.start).await;
        let router_before = router.and_then(|p| sample(Some(p)).ok());
        let origin_before = origin.and_then(|p| sample(Some(p)).ok());
        let others_before: Vec<_> = others.iter().map(|p| sample(Some(*p)).ok()).collect();
        let own_before = sample(None).ok();
        tokio::time::sleep_until(window.end).await;
        Samples {
            router_before,
            router_after: router.and_then(|p| sample(Some(p)).ok()),
            own_before,
            own_after: sample(None).ok(),
            origin: (origin_before, origin.and_then(|p| sample(Some(p)).ok())),
            others: others_before
                .into_iter()
                .zip(&others)
                .map(|(before, p)| (before, sample(Some(*p)).ok()))
                .collect(),
        }
    })
}

/// A counter all tasks bump per operation, read once a second for the progress line.
#[derive(Clone, Default)]
pub struct Progress(Arc<AtomicU64>);

impl Progress {
    /// Counts `n` operations.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Operations counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Prints one line per second to stderr until `until`: the phase and the rate of the last
    /// second.
    pub fn report(
        &self,
        label: &'static str,
        window: Window,
        quiet: bool,
    ) -> tokio::task::JoinHandle<()> {
        let counter = self.0.clone();
        tokio::spawn(async move {
            if quiet {
                return;
            }
            let mut last = counter.load(Ordering::Relaxed);
            let mut tick = tokio::time::interval_at(
                window.base + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            loop {
                let now = tick.tick().await;
                if now > window.end + Duration::from_millis(500) {
                    break;
                }
                let total = counter.load(Ordering::Relaxed);
                let phase = if now <= window.start {
                    "warmup"
                } else {
                    "measure"
                };
                eprintln!(
                    "[{label}] {:5.1}s {phase:7} {:>10} ops/s",
                    (now - window.base).as_secs_f64(),
                    total - last
                );
                last = total;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sending_loop_waits_for_the_window_end_then_only_for_what_is_outstanding() {
        let secs = Duration::from_secs;
        let w = Window::new(secs(1), secs(10), secs(5));
        assert_eq!(w.wait_until(w.base, 0), Some(w.end));
        assert_eq!(w.wait_until(w.start, 3), Some(w.end));
        assert_eq!(w.wait_until(w.end, 3), Some(w.drain_deadline));
        assert_eq!(w.wait_until(w.end, 0), None);
    }
}
