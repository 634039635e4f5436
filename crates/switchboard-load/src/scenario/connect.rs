//! `connect`: C concurrent openers, each in a loop: connect, transport handshake, HELLO, WELCOME,
//! GOODBYE, the router's GOODBYE, close. The rate is sessions per second; the latency is one whole
//! cycle.

use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;

use super::{Ctx, Outcome, measure, merge_all, spawn_each};
use crate::conn::Target;
use crate::measure::{Progress, Tally, Window};

/// The longest one cycle may take before it counts as failed.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `connect` parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Concurrent openers.
    pub concurrency: usize,
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, p: Params) -> anyhow::Result<Outcome> {
    // One session first, so that a wrong URL or realm fails with its reason instead of a run of
    // errors.
    ctx.target
        .join()
        .await
        .context("opening a first session")?
        .leave()
        .await
        .context("closing a first session")?;
    measure(ctx, "connect", |window| {
        merge_all(spawn_each(0..p.concurrency.max(1), |_, _| {
            open_loop(ctx.target.clone(), window, ctx.progress.clone())
        }))
    })
    .await
}

async fn open_loop(target: Target, window: Window, progress: Progress) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < window.end {
        let started = Instant::now();
        let cycle = async { target.join().await?.leave().await };
        match tokio::time::timeout(CYCLE_TIMEOUT, cycle).await {
            Ok(Ok(())) => {
                let now = Instant::now();
                progress.add(1);
                if window.contains(now) {
                    tally.ops += 1;
                    tally.latency.record(now - started);
                }
            }
            Ok(Err(e)) => {
                tally.failure("session cycle", &e);
                // Typically out of ports or file descriptors: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => tally.error(1, || format!("session cycle took over {CYCLE_TIMEOUT:?}")),
        }
    }
    tally
}
