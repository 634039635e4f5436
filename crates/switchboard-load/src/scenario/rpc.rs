//! `rpc`: N callers with K calls in flight each, against one callee the tool registers itself.
//! The callee returns each invocation's arguments unchanged, and every result must equal its
//! call's arguments (byte for byte, or as values when the router re-encoded them).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use switchboard_proto::{Dict, Id, Message, MessageType, Payload, RawValue, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::requester::{Requester, keep_in_flight};
use super::{Ctx, Load, Outcome, join_all, measure, merge_all, run_id, spawn_each};
use crate::conn::{Conn, Wamp, list_args};
use crate::measure::{Progress, Tally, Window};

/// The `rpc` parameters.
#[derive(Debug, Clone)]
pub struct Params {
    /// Caller sessions.
    pub callers: usize,
    /// Calls in flight per caller, and bytes of padding in each call's arguments.
    pub load: Load,
    /// A procedure registered by something else, to call instead of the tool's own callee.
    pub external: Option<External>,
}

/// A procedure the tool calls without registering it.
#[derive(Debug, Clone)]
pub struct External {
    /// Its URI.
    pub procedure: String,
    /// The positional arguments of every call (default: the tool's own `[caller, seq, pad]`).
    pub args: Option<Vec<Value>>,
}

/// Runs the scenario.
pub async fn run(ctx: &Ctx, p: Params) -> anyhow::Result<Outcome> {
    let (procedure, callees, fixed_args): (Arc<str>, Vec<Wamp>, Option<Vec<Value>>) =
        match p.external.clone() {
            Some(external) => (external.procedure.into(), Vec::new(), external.args),
            None if ctx.spread.is_empty() => {
                let procedure: Arc<str> = format!("{}.echo.r{}", ctx.uri_prefix, run_id()).into();
                let callee = join_and_register(ctx.origin(), &procedure, None).await?;
                ctx.await_route(&ctx.target, &procedure, false, None)
                    .await?;
                (procedure, vec![callee], None)
            }
            None => {
                // One callee on the origin and one on each spread router, sharing the procedure.
                let procedure: Arc<str> = format!("{}.echo.r{}", ctx.uri_prefix, run_id()).into();
                let mut callees = Vec::new();
                for at in ctx.callee_targets() {
                    callees.push(join_and_register(at, &procedure, Some("roundrobin")).await?);
                }
                let want = expected_callees(ctx.callee_targets().map(|t| t.url.as_str()));
                ctx.await_route(&ctx.target, &procedure, false, Some(want))
                    .await?;
                (procedure, callees, None)
            }
        };
    let echo = !callees.is_empty();
    let callers = join_all(&ctx.target, p.callers, 64)
        .await
        .context("callers join")?;

    measure(ctx, "rpc", |window| async move {
        let stop = CancellationToken::new();
        let callee_tasks: Vec<_> = callees
            .into_iter()
            .map(|callee| tokio::spawn(serve_callee(callee, stop.clone(), None)))
            .collect();
        let pad: Arc<str> = "x".repeat(p.load.payload).into();
        let tasks = spawn_each(callers, |id, w| {
            let caller = Caller {
                w,
                id,
                procedure: procedure.clone(),
                pad: pad.clone(),
                seq: 0,
                pending: HashMap::with_capacity(p.load.in_flight * 2),
                tally: Tally::default(),
                progress: ctx.progress.clone(),
                echo,
                fixed_args: fixed_args.clone(),
            };
            call_loop(caller, p.load.in_flight, window)
        });
        let mut tally = merge_all(tasks).await?;
        stop.cancel();
        for callee_task in callee_tasks {
            tally.merge(callee_task.await?);
        }
        Ok(tally)
    })
    .await
}

/// How many callees of a procedure registered once at each of `urls` the callers' router must
/// see: one per distinct router (a router shares the callees it has with the others as one).
fn expected_callees<'a>(urls: impl Iterator<Item = &'a str>) -> usize {
    urls.collect::<HashSet<_>>().len()
}

/// A session that joined and registered `procedure` (the callee of `rpc` and `callee`), with
/// the invocation policy `invoke` where given.
pub(super) async fn join_and_register(
    at: &crate::conn::Target,
    procedure: &str,
    invoke: Option<&str>,
) -> anyhow::Result<Wamp> {
    let mut callee = at.join().await.context("callee joins")?;
    let request = callee.next_request();
    let mut options = Dict::new();
    if let Some(invoke) = invoke {
        options.insert("invoke".into(), invoke.into());
    }
    callee
        .request(
            Message::Register {
                request,
                options,
                procedure: procedure.to_owned(),
            },
            request,
        )
        .await
        .with_context(|| format!("registering {procedure}"))?;
    Ok(callee)
}

/// The callee: answers every INVOCATION with a YIELD of the same payload, in batches.
/// Answers every invocation with its own arguments until `stop`; with a `window`, counts those
/// answered inside it as operations (the `callee` scenario's figure).
pub(super) async fn serve_callee(
    mut w: Wamp,
    stop: CancellationToken,
    window: Option<Window>,
) -> Tally {
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
                    if window.is_some_and(|w| w.contains(Instant::now())) {
                        tally.ops += 1;
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

/// One caller: CALLs whose arguments are `[caller, seq, pad]`, each answered by a RESULT that
/// must echo them, or by an ERROR.
struct Caller {
    w: Wamp,
    id: u64,
    procedure: Arc<str>,
    pad: Arc<str>,
    seq: u64,
    pending: HashMap<Id, Pending>,
    tally: Tally,
    progress: Progress,
    /// Whether results must echo the arguments (the tool's own callee).
    echo: bool,
    /// The arguments of every call, where given.
    fixed_args: Option<Vec<Value>>,
}

impl Requester for Caller {
    type Wire = Conn;

    fn wire(&mut self) -> &mut Conn {
        &mut self.w.conn
    }

    fn outstanding(&self) -> usize {
        self.pending.len()
    }

    fn request(&mut self, _: &Window) -> anyhow::Result<Bytes> {
        let request = self.w.next_request();
        let items = match &self.fixed_args {
            Some(items) => items.clone(),
            None => vec![
                self.id.into(),
                self.seq.into(),
                Value::Str(String::from(&*self.pad)),
            ],
        };
        let args = list_args(self.w.serializer, items)?;
        self.seq += 1;
        let msg = Message::Call {
            request,
            options: Dict::new(),
            procedure: String::from(&*self.procedure),
            payload: Payload {
                args: Some(args.clone()),
                kwargs: None,
            },
        };
        let bytes = self.w.encode(&msg)?;
        self.pending.insert(
            request,
            Pending {
                sent: Instant::now(),
                args,
            },
        );
        Ok(bytes)
    }

    fn answer(&mut self, bytes: Bytes, window: &Window) -> anyhow::Result<bool> {
        let msg = self.w.decode(&bytes)?;
        let now = Instant::now();
        match msg {
            Message::Result {
                request, payload, ..
            } => match self.pending.remove(&request) {
                None => {
                    self.tally
                        .error(1, || format!("RESULT for unknown request {request}"));
                    Ok(false)
                }
                Some(call) => {
                    self.progress.add(1);
                    if self.echo && !echoes(&call.args, &payload) {
                        self.tally.error(1, || {
                            format!("result {payload:?} does not echo {:?}", call.args)
                        });
                    } else if window.contains(now) {
                        self.tally.ops += 1;
                        self.tally.latency.record(now - call.sent);
                    }
                    Ok(true)
                }
            },
            Message::Error {
                request_type,
                request,
                error,
                ..
            } if request_type == MessageType::Call.code() => {
                let settled = self.pending.remove(&request).is_some();
                self.tally.error(1, || format!("CALL failed: {error}"));
                Ok(settled)
            }
            Message::Goodbye { reason, .. } | Message::Abort { reason, .. } => {
                bail!("router closed the session: {reason}")
            }
            _ => Ok(false),
        }
    }
}

/// Runs one caller: keeps `in_flight` calls outstanding until the window ends, then drains.
async fn call_loop(mut caller: Caller, in_flight: usize, window: Window) -> Tally {
    let outcome = keep_in_flight(&mut caller, in_flight, &window).await;
    let Caller {
        w,
        id,
        pending,
        mut tally,
        ..
    } = caller;
    if let Err(e) = outcome {
        tally.failure(format_args!("caller {id}"), &e);
        tally.error(pending.len() as u64, || {
            format!("caller {id}: {} calls unanswered", pending.len())
        });
        return tally;
    }
    tally.unanswered(
        format_args!("caller {id}"),
        pending.len(),
        "calls unanswered at the drain deadline",
    );
    if let Err(e) = w.leave().await {
        tally.failure(format_args!("caller {id} leaving"), &e);
    }
    tally
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_router_sees_one_callee_per_distinct_router() {
        let urls = ["rs://a:1", "rs://b:2", "rs://c:3"];
        assert_eq!(expected_callees(urls.into_iter()), 3);
        // The same router twice (origin and a spread URL): its callees count as one there.
        assert_eq!(expected_callees(["rs://a:1", "rs://a:1"].into_iter()), 1);
        assert_eq!(expected_callees(std::iter::once("rs://a:1")), 1);
    }
}
