//! `rpc`: N callers with K calls in flight each, against one callee the tool registers itself.
//! The callee returns each invocation's arguments unchanged, and every result must equal its
//! call's arguments (byte for byte, or as values when the router re-encoded them).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use switchboard_proto::{Dict, Id, Message, MessageType, Payload, RawValue, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Ctx, Outcome, join_all, run_id};
use crate::conn::{Wamp, list_args};
use crate::measure::{Tally, Window, sample_window};

/// The `rpc` parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Caller sessions.
    pub callers: usize,
    /// Calls in flight per caller.
    pub in_flight: usize,
    /// Bytes of padding in each call's arguments.
    pub payload: usize,
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, p: Params) -> anyhow::Result<Outcome> {
    let procedure: Arc<str> = format!("switchboard.load.echo.r{}", run_id()).into();
    let mut callee = ctx.target.join().await.context("callee joins")?;
    let request = callee.next_request();
    callee
        .request(
            Message::Register {
                request,
                options: Dict::new(),
                procedure: procedure.to_string(),
            },
            request,
        )
        .await
        .with_context(|| format!("registering {procedure}"))?;
    let callers = join_all(&ctx.target, p.callers, 64)
        .await
        .context("callers join")?;

    let window = ctx.window();
    let samples = sample_window(window, ctx.router_pid);
    let progress = ctx.progress.report("rpc", window, ctx.quiet);
    let stop = CancellationToken::new();
    let callee_task = tokio::spawn(serve_callee(callee, stop.clone()));
    let pad: Arc<str> = "x".repeat(p.payload).into();
    let tasks: Vec<_> = callers
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            tokio::spawn(call_loop(
                w,
                i as u64,
                procedure.clone(),
                pad.clone(),
                p.in_flight,
                window,
                ctx.progress.clone(),
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await?);
    }
    stop.cancel();
    tally.merge(callee_task.await?);
    progress.abort();
    Ok(Outcome::new(tally, window, samples.await?))
}

/// The callee: answers every INVOCATION with a YIELD of the same payload, in batches.
async fn serve_callee(mut w: Wamp, stop: CancellationToken) -> Tally {
    let mut tally = Tally::default();
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => break,
            r = w.conn.recv() => r,
        };
        let mut next = Some(first);
        while let Some(incoming) = next {
            let bytes = match incoming {
                Ok(Some(b)) => b,
                Ok(None) => {
                    tally.error(1, || "callee: connection closed by the router".into());
                    return tally;
                }
                Err(e) => {
                    tally.error(1, || format!("callee: {e}"));
                    return tally;
                }
            };
            match w.decode(&bytes) {
                Ok(Message::Invocation {
                    request, payload, ..
                }) => {
                    let reply = Message::Yield {
                        request,
                        options: Dict::new(),
                        payload,
                    };
                    let fed = match w.encode(&reply) {
                        Ok(b) => w.conn.feed(b).await.map_err(anyhow::Error::from),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = fed {
                        tally.error(1, || format!("callee: {e}"));
                        return tally;
                    }
                }
                Ok(Message::Goodbye { reason, .. } | Message::Abort { reason, .. }) => {
                    tally.error(1, || format!("callee: router closed the session: {reason}"));
                    return tally;
                }
                Ok(_) => {}
                Err(e) => tally.error(1, || format!("callee: {e}")),
            }
            next = w.conn.try_recv();
        }
        if let Err(e) = w.conn.flush().await {
            tally.error(1, || format!("callee: {e}"));
            return tally;
        }
    }
    if let Err(e) = w.leave().await {
        tally.error(1, || format!("callee leaving: {e}"));
    }
    tally
}

/// A call in flight.
struct Pending {
    sent: Instant,
    args: RawValue,
}

/// One caller: keeps `in_flight` calls outstanding until the window ends, then drains.
async fn call_loop(
    mut w: Wamp,
    caller: u64,
    procedure: Arc<str>,
    pad: Arc<str>,
    in_flight: usize,
    window: Window,
    progress: crate::measure::Progress,
) -> Tally {
    let mut tally = Tally::default();
    let mut pending: HashMap<Id, Pending> = HashMap::with_capacity(in_flight * 2);
    let mut seq = 0u64;
    let outcome: anyhow::Result<()> = async {
        for _ in 0..in_flight {
            issue(&mut w, caller, &mut seq, &procedure, &pad, &mut pending).await?;
        }
        w.conn.flush().await?;
        loop {
            let now = Instant::now();
            if pending.is_empty() && now >= window.end {
                return Ok(());
            }
            // Wake at the window's end even when nothing arrives, so a stalled router cannot
            // keep the run going past the drain deadline.
            let wake = if now < window.end {
                window.end
            } else {
                window.drain_deadline
            };
            let first = match tokio::time::timeout_at(wake, w.conn.recv()).await {
                Ok(r) => r,
                Err(_) if wake == window.drain_deadline => return Ok(()),
                Err(_) => continue,
            };
            let mut completed = 0usize;
            let mut next = Some(first);
            while let Some(incoming) = next {
                let bytes = incoming?.ok_or_else(|| anyhow::anyhow!("connection closed"))?;
                let msg = w.decode(&bytes)?;
                let now = Instant::now();
                match msg {
                    Message::Result {
                        request, payload, ..
                    } => match pending.remove(&request) {
                        None => {
                            tally.error(1, || format!("RESULT for unknown request {request}"));
                        }
                        Some(call) => {
                            completed += 1;
                            progress.add(1);
                            if !echoes(&call.args, &payload) {
                                tally.error(1, || {
                                    format!("result {payload:?} does not echo {:?}", call.args)
                                });
                            } else if window.contains(now) {
                                tally.ops += 1;
                                tally.latency.record(now - call.sent);
                            }
                        }
                    },
                    Message::Error {
                        request_type,
                        request,
                        error,
                        ..
                    } if request_type == MessageType::Call.code() => {
                        if pending.remove(&request).is_some() {
                            completed += 1;
                        }
                        tally.error(1, || format!("CALL failed: {error}"));
                    }
                    Message::Goodbye { reason, .. } | Message::Abort { reason, .. } => {
                        anyhow::bail!("router closed the session: {reason}");
                    }
                    _ => {}
                }
                next = w.conn.try_recv();
            }
            if Instant::now() < window.end {
                for _ in 0..completed {
                    issue(&mut w, caller, &mut seq, &procedure, &pad, &mut pending).await?;
                }
            }
            w.conn.flush().await?;
        }
    }
    .await;
    if let Err(e) = outcome {
        tally.error(1, || {
            format!("caller {caller}: {}", crate::measure::describe(&e))
        });
        tally.error(pending.len() as u64, || {
            format!("caller {caller}: {} calls unanswered", pending.len())
        });
        return tally;
    }
    if !pending.is_empty() {
        tally.error(pending.len() as u64, || {
            format!(
                "caller {caller}: {} calls unanswered at the drain deadline",
                pending.len()
            )
        });
    }
    if let Err(e) = w.leave().await {
        tally.error(1, || {
            format!("caller {caller} leaving: {}", crate::measure::describe(&e))
        });
    }
    tally
}

/// Queues one CALL whose arguments are `[caller, seq, pad]`.
async fn issue(
    w: &mut Wamp,
    caller: u64,
    seq: &mut u64,
    procedure: &str,
    pad: &str,
    pending: &mut HashMap<Id, Pending>,
) -> anyhow::Result<()> {
    let request = w.next_request();
    let args = list_args(
        w.serializer,
        vec![caller.into(), (*seq).into(), Value::Str(pad.to_owned())],
    )?;
    *seq += 1;
    let msg = Message::Call {
        request,
        options: Dict::new(),
        procedure: procedure.to_owned(),
        payload: Payload {
            args: Some(args.clone()),
            kwargs: None,
        },
    };
    let bytes = w.encode(&msg)?;
    pending.insert(
        request,
        Pending {
            sent: Instant::now(),
            args,
        },
    );
    w.conn.feed(bytes).await?;
    Ok(())
}

/// Whether a RESULT's payload equals the call's arguments: the same bytes (a router that passes
/// payloads through), or the same values (one that decodes and re-encodes them); keyword
/// arguments must be absent or empty.
fn echoes(sent: &RawValue, got: &Payload) -> bool {
    let kwargs_empty = match &got.kwargs {
        None => true,
        Some(k) => matches!(k.to_value(), Ok(Value::Dict(d)) if d.is_empty()),
    };
    let args_equal = match &got.args {
        Some(a) if a.bytes() == sent.bytes() => true,
        Some(a) => matches!((a.to_value(), sent.to_value()), (Ok(x), Ok(y)) if x == y),
        None => false,
    };
    kwargs_empty && args_equal
}
