//! The scenarios, and what they share: the run context and the outcome a scenario hands back for
//! the report.

pub mod connect;
pub mod echo;
pub mod idle;
pub mod order;
pub mod pubsub;
pub mod rpc;

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};

use crate::conn::{Target, Wamp};
use crate::measure::{Progress, Samples, Tally, Window};

/// What every scenario gets from the command line.
pub struct Ctx {
    /// Where to connect.
    pub target: Target,
    /// Load before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// How long to wait for outstanding replies after the window.
    pub drain: Duration,
    /// The router process to sample, if given.
    pub router_pid: Option<u32>,
    /// No progress lines on stderr.
    pub quiet: bool,
    /// The shared per-operation counter behind the progress lines.
    pub progress: Progress,
}

impl Ctx {
    /// The run's time window, starting now.
    pub fn window(&self) -> Window {
        Window::new(self.warmup, self.duration, self.drain)
    }
}

/// Figures only the `idle` scenario has.
#[derive(Debug, Clone, Copy)]
pub struct IdleFigures {
    /// Sessions open at the end of the opening phase.
    pub sessions: u64,
    /// Seconds the opening phase took.
    pub open_s: f64,
    /// Router RSS before opening and after (KiB).
    pub router_rss_kb: Option<(u64, u64)>,
    /// Our RSS before opening and after (KiB).
    pub own_rss_kb: Option<(u64, u64)>,
}

/// What a scenario measured.
pub struct Outcome {
    /// Counts and latencies.
    pub tally: Tally,
    /// The measured window in seconds.
    pub seconds: f64,
    /// CPU and memory samples over the window.
    pub samples: Samples,
    /// `idle` only.
    pub idle: Option<IdleFigures>,
}

impl Outcome {
    /// An outcome of a windowed scenario.
    pub fn new(tally: Tally, window: Window, samples: Samples) -> Self {
        Self {
            tally,
            seconds: window.seconds(),
            samples,
            idle: None,
        }
    }
}

/// Joins `n` sessions, at most `concurrency` handshakes at a time.
pub async fn join_all(target: &Target, n: usize, concurrency: usize) -> anyhow::Result<Vec<Wamp>> {
    futures::stream::iter(0..n)
        .map(|_| target.join())
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await
}

/// A random tag that keeps URIs of concurrent runs apart (two runs registering one procedure
/// would make the second fail on most routers).
pub fn run_id() -> u64 {
    rand::random::<u64>() & 0xffff_ffff_ffff
}
