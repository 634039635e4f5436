//! `idle`: opens N sessions (C handshakes at a time), measures the router's memory per session
//! (RSS after opening minus RSS before, over N), then holds them idle for the duration, measuring
//! the router's CPU while idle (keepalive and timers are all it should spend it on).

use std::time::Duration;

use futures::StreamExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Ctx, IdleFigures, Outcome, merge_all};
use crate::conn::Wamp;
use crate::measure::{Tally, Window, open_files_limit, sample, sample_window};

/// How long a session has to say goodbye at the end; generous, because all of them leave at once.
const LEAVE_PATIENCE: Duration = Duration::from_secs(10);

/// The `idle` parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Sessions to open.
    pub sessions: usize,
    /// Handshakes at a time.
    pub concurrency: usize,
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, p: Params) -> anyhow::Result<Outcome> {
    if let Some(limit) = open_files_limit()
        && p.sessions as u64 + 64 > limit
    {
        // Each session is a socket here and in the router: past the limit, opening fails with
        // EMFILE and the run reports errors.
        eprintln!(
            "[idle] warning: {} sessions need more file descriptors than this process may open \
             ({limit}); raise `ulimit -n` here and for the router",
            p.sessions
        );
    }
    let router_before = ctx.router_pid.and_then(|pid| sample(Some(pid)).ok());
    let own_before = sample(None).ok();
    let stop = CancellationToken::new();
    let mut tally = Tally::default();
    let mut holders = Vec::with_capacity(p.sessions);
    let opening = Instant::now();
    let printer = (!ctx.quiet).then(|| {
        let progress = ctx.progress.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(opening + Duration::from_secs(1), Duration::from_secs(1));
            loop {
                let now = tick.tick().await;
                eprintln!(
                    "[idle] {:5.1}s opening {:>10} sessions",
                    (now - opening).as_secs_f64(),
                    progress.get()
                );
            }
        })
    });
    // Idle sessions receive next to nothing: a small read buffer keeps the load tool's own
    // memory per session low, so that it can hold as many as the router.
    let target = ctx.target.clone().with_read_buffer(512);
    let target = &target;
    let mut opened = futures::stream::iter(0..p.sessions)
        .map(|_| async move {
            let started = Instant::now();
            (target.join().await, started.elapsed())
        })
        .buffer_unordered(p.concurrency.max(1));
    while let Some((joined, took)) = opened.next().await {
        match joined {
            Ok(w) => {
                tally.ops += 1;
                tally.latency.record(took);
                ctx.progress.add(1);
                holders.push(tokio::spawn(hold(w, stop.clone())));
            }
            Err(e) => tally.failure("opening a session", &e),
        }
    }
    drop(opened);
    let open_s = opening.elapsed().as_secs_f64();
    if let Some(p) = printer {
        p.abort();
    }
    if !ctx.quiet {
        eprintln!(
            "[idle] {} sessions open after {open_s:.1}s; settling for {:?}",
            tally.ops, ctx.warmup
        );
    }
    // Let the router finish what opening started (buffers shrinking, tasks parking) before
    // reading its memory.
    tokio::time::sleep(ctx.warmup).await;
    let router_open = ctx.router_pid.and_then(|pid| sample(Some(pid)).ok());
    let own_open = sample(None).ok();
    let window = Window::new(Duration::ZERO, ctx.duration, Duration::ZERO);
    let samples = sample_window(window, ctx.router_pid, None, ctx.sample_pids.clone());
    if !ctx.quiet {
        eprintln!("[idle] holding for {:?}", ctx.duration);
    }
    tokio::time::sleep_until(window.end).await;
    let samples = samples.await?;
    stop.cancel();
    tally.merge(merge_all(holders).await?);
    Ok(Outcome {
        seconds: window.seconds(),
        idle: Some(IdleFigures {
            sessions: tally.ops,
            open_s,
            router_rss_kb: router_before
                .zip(router_open)
                .map(|(b, a)| (b.rss_kb, a.rss_kb)),
            own_rss_kb: own_before.zip(own_open).map(|(b, a)| (b.rss_kb, a.rss_kb)),
        }),
        tally,
        samples,
    })
}

/// Holds one session: reads (so pings get answered and a closed session is noticed) until told
/// to stop, then leaves.
async fn hold(mut w: Wamp, stop: CancellationToken) -> Tally {
    let mut tally = Tally::default();
    loop {
        let incoming = tokio::select! {
            _ = stop.cancelled() => break,
            r = w.conn.recv() => r,
        };
        let ended = match incoming {
            Ok(Some(bytes)) => match w.decode(&bytes) {
                Ok(switchboard_proto::Message::Goodbye { reason, .. })
                | Ok(switchboard_proto::Message::Abort { reason, .. }) => {
                    Some(format!("router closed an idle session: {reason}"))
                }
                _ => None,
            },
            Ok(None) => Some("router dropped an idle session".to_owned()),
            Err(e) => Some(format!("idle session: {e}")),
        };
        if let Some(reason) = ended {
            tally.error(1, || reason);
            return tally;
        }
    }
    if let Err(e) = w.leave_within(LEAVE_PATIENCE).await {
        tally.failure("leaving an idle session", &e);
    }
    tally
}
