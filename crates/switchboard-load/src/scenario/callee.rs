//! `callee`: one session that registers a procedure (answering each invocation with its
//! arguments) and serves it for the window, while something else calls it: the far side of the
//! HTTP caller benchmark (`wrk` -> the HTTP bridge's `caller` path -> this callee). Its
//! operations are the invocations it answered inside the window.

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::rpc::{join_and_register, serve_callee};
use super::{Ctx, Outcome, measure};

/// Runs the scenario.
pub async fn run(ctx: &Ctx, procedure: &str) -> anyhow::Result<Outcome> {
    let callee = join_and_register(&ctx.target, procedure, None).await?;
    measure(ctx, "callee", |window| async move {
        let stop = CancellationToken::new();
        let serving = tokio::spawn(serve_callee(callee, stop.clone(), Some(window)));
        tokio::time::sleep_until(window.end).await;
        stop.cancel();
        serving.await.context("the callee task")
    })
    .await
}
