//! The scenarios, and what they share: the run context, the measured phase every windowed
//! scenario runs ([`measure`]: window, CPU/memory sampling, progress lines, one task per
//! connection, their tallies merged), and the outcome a scenario hands back for the report.

pub mod callee;
pub mod connect;
pub mod echo;
pub mod idle;
pub mod order;
pub mod pubsub;
pub mod requester;
pub mod rpc;
pub mod subscribers;

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use switchboard_proto::{Dict, Message, Payload, Value};
use tokio::task::JoinHandle;

use crate::conn::{Target, Wamp};
use crate::measure::{Progress, Samples, Tally, Window, sample_window};

/// What every scenario gets from the command line.
pub struct Ctx {
    /// Where to connect.
    pub target: Target,
    /// Where the rpc callee and the pubsub publishers connect instead, when they are on a second
    /// router linked to the first (`--origin-url`).
    pub origin: Option<Target>,
    /// The second router's process to sample, if given.
    pub origin_pid: Option<u32>,
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
    /// Where the rpc callee and the pubsub publishers connect.
    pub fn origin(&self) -> &Target {
        self.origin.as_ref().unwrap_or(&self.target)
    }

    /// With `--origin-url`, waits until `router` routes `uri` (a registration, or a subscription
    /// when `subscription`), which was made on the other router and reaches this one through the
    /// link; without it, returns at once.
    pub async fn await_route(
        &self,
        router: &Target,
        uri: &str,
        subscription: bool,
    ) -> anyhow::Result<()> {
        if self.origin.is_none() {
            return Ok(());
        }
        let procedure = if subscription {
            "wamp.subscription.match"
        } else {
            "wamp.registration.match"
        };
        let mut w = router.join().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let request = w.next_request();
            let args = crate::conn::list_args(w.serializer, vec![Value::Str(uri.to_owned())])?;
            let call = Message::Call {
                request,
                options: Dict::new(),
                procedure: procedure.to_owned(),
                payload: Payload {
                    args: Some(args),
                    kwargs: None,
                },
            };
            let routed = match w.request(call, request).await? {
                Message::Result { payload, .. } => payload
                    .args
                    .as_ref()
                    .and_then(|a| a.to_value().ok())
                    .and_then(|v| v.as_list().and_then(|l| l.first().cloned()))
                    .is_some_and(|first| match first {
                        Value::Null => false,
                        Value::List(l) => !l.is_empty(),
                        _ => true,
                    }),
                _ => false,
            };
            if routed {
                return w.leave().await;
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "{uri} did not reach {} through the link within 10 s",
                    router.url
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

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

/// What each sending connection of `rpc`, `pubsub`, `echo` and `fanout` keeps outstanding.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Requests in flight per sending connection: calls, unacknowledged publishes, messages.
    pub in_flight: usize,
    /// Payload size in bytes: padding in each call's or event's arguments (`rpc`, `pubsub`), the
    /// whole message (`echo`, `fanout`).
    pub payload: usize,
}

/// Connection counts and load of `pubsub` and of its transport-limit reference `fanout`.
#[derive(Debug, Clone, Copy)]
pub struct PubSubParams {
    /// Publishing sessions or connections.
    pub publishers: usize,
    /// Subscribing sessions or connections.
    pub subscribers: usize,
    /// What each publisher keeps outstanding.
    pub load: Load,
}

/// The measured phase of a windowed scenario, whose connections are already open: starts the
/// window, samples CPU and memory at its start and end, prints progress lines labelled `name`,
/// and runs `load`, which drives the connections through the window and hands back their merged
/// tally.
pub async fn measure<F, Fut>(ctx: &Ctx, name: &'static str, load: F) -> anyhow::Result<Outcome>
where
    F: FnOnce(Window) -> Fut,
    Fut: Future<Output = anyhow::Result<Tally>>,
{
    let window = ctx.window();
    let samples = sample_window(window, ctx.router_pid, ctx.origin_pid);
    let progress = ctx.progress.report(name, window, ctx.quiet);
    let tally = load(window).await;
    progress.abort();
    Ok(Outcome::new(tally?, window, samples.await?))
}

/// Spawns one task per item (a connection, a session, an opener), handing each its index. A
/// `Vec`, not an iterator: every task runs before the first is awaited.
pub fn spawn_each<T, F, Fut>(
    items: impl IntoIterator<Item = T>,
    mut task: F,
) -> Vec<JoinHandle<Fut::Output>>
where
    F: FnMut(u64, T) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    items
        .into_iter()
        .zip(0u64..)
        .map(|(item, i)| tokio::spawn(task(i, item)))
        .collect()
}

/// Awaits every task and merges their tallies, in order.
pub async fn merge_all(tasks: Vec<JoinHandle<Tally>>) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await?);
    }
    Ok(tally)
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
