//! The scenarios, and what they share: the run context, the measured phase every windowed
//! scenario runs ([`measure`]: window, CPU/memory sampling, progress lines, one task per
//! connection, their tallies merged), and the outcome a scenario hands back for the report.

pub mod callee;
pub mod connect;
pub mod echo;
pub mod idle;
pub mod nats;
pub mod order;
pub mod pubsub;
pub mod requester;
pub mod rpc;
pub mod subscribers;

use std::time::Duration;

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use switchboard_proto::{Dict, Id, Message, Payload, Value};
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
    /// More routers serving the realm (`--spread-url`): pubsub subscribers connect round robin
    /// over the target and these, rpc registers one more callee on each.
    pub spread: Vec<Target>,
    /// More processes to sample (`--sample-pid`).
    pub sample_pids: Vec<u32>,
    /// The first part of the URIs the tool makes up (`--uri-prefix`).
    pub uri_prefix: String,
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

    /// Where pubsub subscribers connect: round robin over the target and every spread router,
    /// the target first.
    pub fn subscriber_targets(&self) -> impl Iterator<Item = &Target> {
        std::iter::once(&self.target).chain(&self.spread)
    }

    /// Where the rpc callees register: the origin (or the target), then every spread router.
    pub fn callee_targets(&self) -> impl Iterator<Item = &Target> {
        std::iter::once(self.origin()).chain(&self.spread)
    }

    /// With `--origin-url` or `--spread-url`, waits until `router` routes `uri` (a registration,
    /// or a subscription when `subscription`), which was made on another router and reaches this
    /// one through the link or the cluster; without them, returns at once. With `callees`, a
    /// registration must also have at least that many callees at `router` (a router that shares
    /// the registration of callees elsewhere counts one callee per router it routes to, each
    /// local session as one).
    pub async fn await_route(
        &self,
        router: &Target,
        uri: &str,
        subscription: bool,
        callees: Option<usize>,
    ) -> anyhow::Result<()> {
        if self.origin.is_none() && self.spread.is_empty() {
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
            let first = match w.request(call, request).await? {
                Message::Result { payload, .. } => first_arg(&payload),
                _ => None,
            };
            let routed = first.as_ref().is_some_and(|first| match first {
                Value::Null => false,
                Value::List(l) => !l.is_empty(),
                _ => true,
            });
            let mut have = None;
            if routed && let (Some(want), Some(id)) = (callees, first.and_then(|f| f.as_u64())) {
                let n = call_meta(&mut w, "wamp.registration.count_callees", id.into())
                    .await?
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                if n < want as u64 {
                    have = Some((n, want));
                }
            }
            if routed && have.is_none() {
                return w.leave().await;
            }
            if tokio::time::Instant::now() > deadline {
                match have {
                    Some((n, want)) => anyhow::bail!(
                        "{uri} has {n} of {want} callees at {} after 10 s",
                        router.url
                    ),
                    None => anyhow::bail!(
                        "{uri} did not reach {} through the link within 10 s",
                        router.url,
                    ),
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// With `--spread-url`, waits until an event published on `topic` at the origin (or the
    /// target) reaches a session at the target and at every spread router: one probe session
    /// per router subscribes, and the origin publishes probes (`[PROBE]`, `eligible` to the probe
    /// sessions only) until each has one. Without spread routers, returns at once.
    ///
    /// Unlike a look at the origin's routes, this also sees what no meta API shows: that every
    /// subscriber router, not just one of them, receives the topic's events (a cluster node
    /// holds the union of the other nodes' subscriptions).
    pub async fn await_delivery(&self, topic: &str) -> anyhow::Result<()> {
        if self.spread.is_empty() {
            return Ok(());
        }
        let mut probes = Vec::new();
        for target in self.subscriber_targets() {
            let (w, subscription) = pubsub::subscribe(target, topic)
                .await
                .context("probe subscriber")?;
            probes.push((target.url.clone(), w, subscription));
        }
        let eligible: Vec<Value> = probes.iter().map(|(_, w, _)| w.session.into()).collect();
        let reached: Vec<JoinHandle<anyhow::Result<()>>> = probes
            .into_iter()
            .map(|(url, w, subscription)| tokio::spawn(await_probe(url, w, subscription)))
            .collect();
        let mut publisher = self.origin().join().await.context("probe publisher")?;
        let mut options = Dict::new();
        options.insert("eligible".into(), Value::List(eligible));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut late = Vec::new();
        loop {
            let publish = Message::Publish {
                request: publisher.next_request(),
                options: options.clone(),
                topic: topic.to_owned(),
                payload: Payload {
                    args: Some(crate::conn::list_args(
                        publisher.serializer,
                        vec![PROBE.into()],
                    )?),
                    kwargs: None,
                },
            };
            let bytes = publisher.encode(&publish)?;
            publisher.conn.send(bytes).await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            if reached.iter().all(JoinHandle::is_finished) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                late = reached
                    .iter()
                    .zip(self.subscriber_targets())
                    .filter(|(r, _)| !r.is_finished())
                    .map(|(_, t)| t.url.clone())
                    .collect();
                break;
            }
        }
        for r in &reached {
            r.abort();
        }
        for r in reached {
            match r.await {
                Ok(result) => result?,
                Err(e) if e.is_cancelled() => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Late events to the probe sessions are simply discarded with them.
        let _ = publisher.leave().await;
        if !late.is_empty() {
            anyhow::bail!(
                "events on {topic} from {} did not reach {} within 10 s",
                self.origin().url,
                late.join(", "),
            );
        }
        Ok(())
    }

    /// The run's time window, starting now.
    pub fn window(&self) -> Window {
        Window::new(self.warmup, self.duration, self.drain)
    }
}

/// The one argument of a probe event ([`Ctx::await_delivery`]), which subscribers ignore should
/// a router deliver it to them.
pub const PROBE: &str = "switchboard.load.probe";

/// Whether `payload` is a probe event's.
pub fn is_probe(payload: &Payload) -> bool {
    matches!(first_arg(payload), Some(Value::Str(s)) if s == PROBE)
}

/// The first positional argument of a payload.
fn first_arg(payload: &Payload) -> Option<Value> {
    payload
        .args
        .as_ref()
        .and_then(|a| a.to_value().ok())
        .and_then(|v| v.as_list().and_then(|l| l.first().cloned()))
}

/// Calls a meta procedure with one argument; the first positional argument of its result.
async fn call_meta(w: &mut Wamp, procedure: &str, arg: Value) -> anyhow::Result<Option<Value>> {
    let request = w.next_request();
    let call = Message::Call {
        request,
        options: Dict::new(),
        procedure: procedure.to_owned(),
        payload: Payload {
            args: Some(crate::conn::list_args(w.serializer, vec![arg])?),
            kwargs: None,
        },
    };
    Ok(match w.request(call, request).await? {
        Message::Result { payload, .. } => first_arg(&payload),
        _ => None,
    })
}

/// A probe subscriber: reads until its first EVENT, then leaves.
async fn await_probe(url: String, mut w: Wamp, subscription: Id) -> anyhow::Result<()> {
    loop {
        let bytes = w
            .conn
            .recv()
            .await
            .with_context(|| format!("probe subscriber at {url}"))?
            .ok_or_else(|| anyhow::anyhow!("probe subscriber at {url}: connection closed"))?;
        match w.decode(&bytes)? {
            Message::Event {
                subscription: s, ..
            } if s == subscription => break,
            Message::Goodbye { reason, .. } | Message::Abort { reason, .. } => {
                anyhow::bail!("probe subscriber at {url}: session closed by the router: {reason}")
            }
            _ => {}
        }
    }
    // Whether it says GOODBYE cleanly matters not: more probes may be on their way.
    let _ = w.leave_within(Duration::from_millis(500)).await;
    Ok(())
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
    let samples = sample_window(
        window,
        ctx.router_pid,
        ctx.origin_pid,
        ctx.sample_pids.clone(),
    );
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

#[cfg(test)]
mod tests {
    use switchboard_proto::{RawValue, Serializer};

    use super::*;

    async fn target(url: &str) -> Target {
        Target::new(url, Serializer::MsgPack, "realm1", Vec::new())
            .await
            .expect("target")
    }

    async fn ctx(origin: Option<&str>, spread: &[&str]) -> Ctx {
        let mut spread_targets = Vec::new();
        for url in spread {
            spread_targets.push(target(url).await);
        }
        Ctx {
            target: target("rs://127.0.0.1:1").await,
            origin: match origin {
                Some(url) => Some(target(url).await),
                None => None,
            },
            origin_pid: None,
            spread: spread_targets,
            sample_pids: Vec::new(),
            uri_prefix: "switchboard.load".into(),
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            drain: Duration::ZERO,
            router_pid: None,
            quiet: true,
            progress: Progress::default(),
        }
    }

    fn urls<'a>(targets: impl Iterator<Item = &'a Target>) -> Vec<&'a str> {
        targets.map(|t| t.url.as_str()).collect()
    }

    #[tokio::test]
    async fn subscribers_go_to_the_target_first_callees_to_the_origin_first() {
        let c = ctx(
            Some("rs://127.0.0.1:2"),
            &["rs://127.0.0.1:3", "rs://127.0.0.1:4"],
        )
        .await;
        assert_eq!(
            urls(c.subscriber_targets()),
            ["rs://127.0.0.1:1", "rs://127.0.0.1:3", "rs://127.0.0.1:4"]
        );
        assert_eq!(
            urls(c.callee_targets()),
            ["rs://127.0.0.1:2", "rs://127.0.0.1:3", "rs://127.0.0.1:4"]
        );
        // Without an origin the callees start on the target; without spread routers everything
        // stays on one.
        let c = ctx(None, &["rs://127.0.0.1:3"]).await;
        assert_eq!(
            urls(c.callee_targets()),
            ["rs://127.0.0.1:1", "rs://127.0.0.1:3"]
        );
        let c = ctx(None, &[]).await;
        assert_eq!(urls(c.subscriber_targets()), ["rs://127.0.0.1:1"]);
        assert_eq!(urls(c.callee_targets()), ["rs://127.0.0.1:1"]);
    }

    #[tokio::test]
    async fn without_links_or_spread_routers_nothing_is_awaited() {
        // Nothing listens on port 1: any attempt to connect would fail.
        let c = ctx(None, &[]).await;
        c.await_route(&c.target, "p", false, Some(3))
            .await
            .expect("no wait");
        c.await_delivery("t").await.expect("no wait");
    }

    #[test]
    fn a_probe_is_recognised_in_every_serializer() {
        for s in Serializer::ALL {
            let payload = |v: Vec<Value>| Payload {
                args: Some(RawValue::from_value(s, &Value::List(v)).expect("args")),
                kwargs: None,
            };
            assert!(is_probe(&payload(vec![PROBE.into()])), "{s:?}");
            assert!(!is_probe(&payload(vec!["other".into()])), "{s:?}");
            assert!(
                !is_probe(&payload(vec![1u64.into(), PROBE.into()])),
                "{s:?}"
            );
            assert!(!is_probe(&Payload::default()), "{s:?}");
        }
    }
}
