//! `subscribers`: S sessions subscribed to one topic for the window while something else
//! publishes on it (the far side of the PostgreSQL bridge's NOTIFY -> EVENT benchmark:
//! `wamp.publish` in SQL -> the bridge -> the broker -> these sessions). Its operations are the
//! events received inside the window, by all subscribers together.

use anyhow::Context as _;
use switchboard_proto::Message;
use tokio::time::Instant;

use super::pubsub::subscribe;
use super::{Ctx, Outcome, measure, merge_all, spawn_each};
use crate::measure::Tally;

/// Runs the scenario.
pub async fn run(ctx: &Ctx, topic: &str, count: usize) -> anyhow::Result<Outcome> {
    let mut sessions = Vec::with_capacity(count);
    for _ in 0..count {
        let (w, _) = subscribe(&ctx.target, topic)
            .await
            .context("a subscriber joins")?;
        sessions.push(w);
    }
    measure(ctx, "subscribers", |window| async move {
        let tasks = spawn_each(sessions, |id, mut w| async move {
            let mut tally = Tally::default();
            loop {
                let received = tokio::select! {
                    () = tokio::time::sleep_until(window.end) => break,
                    r = w.conn.recv() => r,
                };
                let bytes = match received {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => {
                        tally.error(1, || format!("subscriber {id}: closed by the router"));
                        return tally;
                    }
                    Err(e) => {
                        tally.error(1, || format!("subscriber {id}: {e}"));
                        return tally;
                    }
                };
                match w.decode(&bytes) {
                    Ok(Message::Event { .. }) if window.contains(Instant::now()) => tally.ops += 1,
                    Ok(Message::Goodbye { reason, .. } | Message::Abort { reason, .. }) => {
                        tally.error(1, || {
                            format!("subscriber {id}: router closed the session: {reason}")
                        });
                        return tally;
                    }
                    Ok(_) => {}
                    Err(e) => tally.error(1, || format!("subscriber {id}: {e}")),
                }
            }
            if let Err(e) = w.leave().await {
                tally.failure(format_args!("subscriber {id} leaving"), &e);
            }
            tally
        });
        merge_all(tasks).await
    })
    .await
}
