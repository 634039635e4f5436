//! `pubsub`: P publishers with K acknowledged publishes in flight each, S subscribers on one topic.
//! Each event carries `[publisher, seq, sent_ns, pad]`; every subscriber must get every
//! acknowledged event of every publisher exactly once and in order. Latency is publish-to-delivery
//! (all clocks are this process's); the PUBLISH-to-PUBLISHED time is reported as `ack_latency_us`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::de::IgnoredAny;
use switchboard_proto::{Dict, Id, Message, MessageType, Payload, Serializer, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use super::order::{Arrival, Sent, Track};
use super::{Ctx, Outcome, join_all, run_id};
use crate::conn::{Target, Wamp, list_args};
use crate::measure::{Progress, Tally, Window, sample_window};

/// The `pubsub` parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Publisher sessions.
    pub publishers: usize,
    /// Subscriber sessions.
    pub subscribers: usize,
    /// Unacknowledged publishes in flight per publisher.
    pub in_flight: usize,
    /// Bytes of padding in each event's arguments.
    pub payload: usize,
}

/// What subscribers learn once the publishers are done.
pub struct Finals {
    /// Per publisher, what it sent.
    pub sent: Vec<Sent>,
    /// Subscribers stop waiting for missing events here.
    pub deadline: Instant,
}

/// The finals channel: `None` while publishers are still running.
pub type FinalsRx = watch::Receiver<Option<Arc<Finals>>>;

/// Runs the scenario.
pub async fn run(ctx: &Ctx, p: Params) -> anyhow::Result<Outcome> {
    let topic: Arc<str> = format!("switchboard.load.topic.t{}", run_id()).into();
    let subscribers: Vec<(Wamp, Id)> = futures::stream::iter(0..p.subscribers)
        .map(|_| subscribe(&ctx.target, &topic))
        .buffer_unordered(64)
        .try_collect()
        .await
        .context("subscribers join")?;
    let publishers = join_all(&ctx.target, p.publishers, 64)
        .await
        .context("publishers join")?;

    let window = ctx.window();
    let samples = sample_window(window, ctx.router_pid);
    let progress = ctx.progress.report("pubsub", window, ctx.quiet);
    let (finals_tx, finals_rx) = watch::channel(None);
    let pad: Arc<str> = "x".repeat(p.payload).into();
    let sub_tasks: Vec<_> = subscribers
        .into_iter()
        .map(|(w, sub)| {
            tokio::spawn(subscribe_loop(
                w,
                sub,
                p.publishers,
                pad.clone(),
                window,
                finals_rx.clone(),
                ctx.progress.clone(),
            ))
        })
        .collect();
    let pub_tasks: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            tokio::spawn(publish_loop(
                w,
                i as u64,
                topic.clone(),
                pad.clone(),
                p.in_flight,
                window,
            ))
        })
        .collect();
    let mut tally = Tally::default();
    let mut sent = Vec::with_capacity(p.publishers);
    for t in pub_tasks {
        let (s, t) = t.await?;
        sent.push(s);
        tally.merge(t);
    }
    // Subscribers get at least a moment after the last acknowledgement, even when publishers
    // used up the drain time.
    let deadline = window
        .drain_deadline
        .max(Instant::now() + Duration::from_millis(500));
    finals_tx.send_replace(Some(Arc::new(Finals { sent, deadline })));
    for t in sub_tasks {
        tally.merge(t.await?);
    }
    progress.abort();
    Ok(Outcome::new(tally, window, samples.await?))
}

/// Joins and subscribes to `topic`.
async fn subscribe(target: &Target, topic: &str) -> anyhow::Result<(Wamp, Id)> {
    let mut w = target.join().await?;
    let request = w.next_request();
    let reply = w
        .request(
            Message::Subscribe {
                request,
                options: Dict::new(),
                topic: topic.to_owned(),
            },
            request,
        )
        .await
        .with_context(|| format!("subscribing to {topic}"))?;
    match reply {
        Message::Subscribed { subscription, .. } => Ok((w, subscription)),
        other => bail!("expected SUBSCRIBED, got {}", other.message_type().name()),
    }
}

/// Decodes `[publisher, seq, sent_ns, pad]`, checking the padding.
///
/// Straight into a tuple with the serializer's own serde implementation, not through
/// [`Value`]: a subscriber decodes every event, and the generic path (a `Vec` and a `String` per
/// event, and for CBOR a zeroed 4 KiB scratch buffer per `ciborium::from_reader` call) made the
/// load tool, not the router, the limit of `pubsub`.
fn parse_event(payload: &Payload, pad: &str) -> Option<(usize, u64, u64)> {
    let raw = payload.args.as_ref()?;
    let bytes: &[u8] = raw.bytes();
    let (p, seq, ts, pad_ok) = match raw.serializer() {
        Serializer::Json => serde_json::from_slice::<(u64, u64, u64, &str)>(bytes)
            .ok()
            .map(|(p, s, t, x)| (p, s, t, x == pad))?,
        Serializer::MsgPack => rmp_serde::from_slice::<(u64, u64, u64, &str)>(bytes)
            .ok()
            .map(|(p, s, t, x)| (p, s, t, x == pad))?,
        Serializer::Cbor => {
            let mut scratch = [0u8; 512];
            ciborium::de::from_reader_with_buffer::<(u64, u64, u64, String), _>(bytes, &mut scratch)
                .ok()
                .map(|(p, s, t, x)| (p, s, t, x == pad))?
        }
    };
    pad_ok.then_some((usize::try_from(p).ok()?, seq, ts))
}

/// `[EVENT, Subscription, Publication, Details, [publisher, seq, sent_ns, pad]]`, decoded in one
/// pass: `(subscription, publisher, seq, sent_ns)` when `bytes` is such an EVENT with the expected
/// padding (ArgumentsKw, which the publishers never send, is ignored as on the generic path).
/// Anything else (another message, a different shape) returns `None` and takes
/// the generic path through `switchboard_proto::codec`, whose CBOR decoding costs several
/// zeroed 4 KiB buffers per message.
fn fast_event(serializer: Serializer, bytes: &[u8], pad: &str) -> Option<(Id, usize, u64, u64)> {
    type Borrowed<'a> = (u64, u64, u64, IgnoredAny, (u64, u64, u64, &'a str));
    type Owned = (u64, u64, u64, IgnoredAny, (u64, u64, u64, String));
    let (code, sub, p, seq, ts, pad_ok) = match serializer {
        Serializer::Json => serde_json::from_slice::<Borrowed>(bytes)
            .ok()
            .map(|(c, s, _, _, (p, q, t, x))| (c, s, p, q, t, x == pad))?,
        Serializer::MsgPack => rmp_serde::from_slice::<Borrowed>(bytes)
            .ok()
            .map(|(c, s, _, _, (p, q, t, x))| (c, s, p, q, t, x == pad))?,
        Serializer::Cbor => {
            let mut scratch = [0u8; 512];
            ciborium::de::from_reader_with_buffer::<Owned, _>(bytes, &mut scratch)
                .ok()
                .map(|(c, s, _, _, (p, q, t, x))| (c, s, p, q, t, x == pad))?
        }
    };
    (code == MessageType::Event.code() && pad_ok).then_some((
        sub,
        usize::try_from(p).ok()?,
        seq,
        ts,
    ))
}

/// Counts one arrival of `seq` from a publisher.
pub fn count_arrival(
    tally: &mut Tally,
    track: &mut Track,
    seq: u64,
    sent_at: Instant,
    window: &Window,
    progress: &Progress,
) {
    let now = Instant::now();
    match track.arrive(seq) {
        a @ (Arrival::Fresh | Arrival::Late) => {
            if a == Arrival::Late {
                tally.reordered += 1;
            }
            progress.add(1);
            if window.contains(now) {
                tally.ops += 1;
                tally.latency.record(now.saturating_duration_since(sent_at));
            }
        }
        Arrival::Duplicate => tally.duplicated += 1,
        Arrival::Corrupt => tally.error(1, || format!("sequence number {seq} is implausible")),
    }
}

/// Whether a subscriber has everything the publishers had acknowledged.
pub fn complete(tracks: &[Track], finals: &Finals) -> bool {
    tracks.iter().zip(&finals.sent).all(|(t, s)| t.lost(s) == 0)
}

/// One subscriber: receives until it has every acknowledged event or the drain deadline passes.
async fn subscribe_loop(
    mut w: Wamp,
    subscription: Id,
    publishers: usize,
    pad: Arc<str>,
    window: Window,
    mut finals: FinalsRx,
    progress: Progress,
) -> Tally {
    let mut tally = Tally::default();
    let mut tracks: Vec<Track> = (0..publishers).map(|_| Track::default()).collect();
    let outcome: anyhow::Result<()> = async {
        loop {
            let known = finals.borrow_and_update().clone();
            if let Some(f) = &known
                && complete(&tracks, f)
            {
                return Ok(());
            }
            let deadline = known.as_ref().map(|f| f.deadline);
            let first = tokio::select! {
                changed = finals.changed() => {
                    // The sender lives until every subscriber is done, so this cannot fail.
                    changed.map_err(|_| anyhow!("finals channel closed"))?;
                    continue;
                }
                _ = sleep_until_opt(deadline) => return Ok(()),
                r = w.conn.recv() => r,
            };
            let mut incoming = first;
            loop {
                let bytes = incoming?.ok_or_else(|| anyhow!("connection closed"))?;
                if let Some((s, p, seq, ts)) = fast_event(w.serializer, &bytes, &pad)
                    && s == subscription
                    && p < tracks.len()
                {
                    count_arrival(
                        &mut tally,
                        &mut tracks[p],
                        seq,
                        window.unstamp(ts),
                        &window,
                        &progress,
                    );
                } else {
                    match w.decode(&bytes)? {
                        Message::Event {
                            subscription: s,
                            payload,
                            ..
                        } if s == subscription => match parse_event(&payload, &pad) {
                            Some((p, seq, ts)) if p < tracks.len() => count_arrival(
                                &mut tally,
                                &mut tracks[p],
                                seq,
                                window.unstamp(ts),
                                &window,
                                &progress,
                            ),
                            _ => tally.error(1, || format!("malformed event payload {payload:?}")),
                        },
                        Message::Goodbye { reason, .. } | Message::Abort { reason, .. } => {
                            bail!("router closed the session: {reason}")
                        }
                        _ => {}
                    }
                }
                match w.conn.try_recv() {
                    Some(r) => incoming = r,
                    None => break,
                }
            }
        }
    }
    .await;
    let healthy = match outcome {
        Ok(()) => true,
        Err(e) => {
            tally.error(1, || {
                format!("subscriber: {}", crate::measure::describe(&e))
            });
            false
        }
    };
    // The coordinator always publishes the finals; lost events are judged against them.
    if let Ok(f) = finals.wait_for(Option::is_some).await
        && let Some(f) = f.as_ref()
    {
        for (t, s) in tracks.iter().zip(&f.sent) {
            tally.lost += t.lost(s);
        }
    }
    if healthy && let Err(e) = w.leave().await {
        tally.error(1, || {
            format!("subscriber leaving: {}", crate::measure::describe(&e))
        });
    }
    tally
}

/// Sleeps until `deadline`, or forever without one.
pub async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// One publisher: keeps `in_flight` acknowledged publishes outstanding until the window ends,
/// then waits for the outstanding acknowledgements.
async fn publish_loop(
    mut w: Wamp,
    publisher: u64,
    topic: Arc<str>,
    pad: Arc<str>,
    in_flight: usize,
    window: Window,
) -> (Sent, Tally) {
    let mut tally = Tally::default();
    let mut sent = Sent::default();
    // Request id -> (sent at, seq).
    let mut pending: HashMap<Id, (Instant, u64)> = HashMap::with_capacity(in_flight * 2);
    let mut options = Dict::new();
    options.insert("acknowledge".into(), Value::Bool(true));
    let mut out = Publisher {
        publisher,
        topic: &topic,
        pad: &pad,
        options: &options,
        window: &window,
    };
    let outcome: anyhow::Result<()> = async {
        for _ in 0..in_flight {
            out.issue(&mut w, &mut sent, &mut pending).await?;
        }
        w.conn.flush().await?;
        loop {
            let now = Instant::now();
            if pending.is_empty() && now >= window.end {
                return Ok(());
            }
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
            let mut incoming = first;
            loop {
                let bytes = incoming?.ok_or_else(|| anyhow!("connection closed"))?;
                let now = Instant::now();
                match w.decode(&bytes)? {
                    Message::Published { request, .. } => match pending.remove(&request) {
                        Some((at, _)) => {
                            completed += 1;
                            if window.contains(now) {
                                tally.publishes += 1;
                                tally.ack_latency.record(now - at);
                            }
                        }
                        None => {
                            tally.error(1, || format!("PUBLISHED for unknown request {request}"))
                        }
                    },
                    Message::Error {
                        request_type,
                        request,
                        error,
                        ..
                    } if request_type == MessageType::Publish.code() => {
                        if let Some((_, seq)) = pending.remove(&request) {
                            completed += 1;
                            sent.unacked.insert(seq);
                        }
                        tally.error(1, || format!("PUBLISH failed: {error}"));
                    }
                    Message::Goodbye { reason, .. } | Message::Abort { reason, .. } => {
                        bail!("router closed the session: {reason}")
                    }
                    _ => {}
                }
                match w.conn.try_recv() {
                    Some(r) => incoming = r,
                    None => break,
                }
            }
            if Instant::now() < window.end {
                for _ in 0..completed {
                    out.issue(&mut w, &mut sent, &mut pending).await?;
                }
            }
            w.conn.flush().await?;
        }
    }
    .await;
    let healthy = match outcome {
        Ok(()) => true,
        Err(e) => {
            tally.error(1, || {
                format!("publisher {publisher}: {}", crate::measure::describe(&e))
            });
            false
        }
    };
    if !pending.is_empty() {
        tally.error(pending.len() as u64, || {
            format!(
                "publisher {publisher}: {} publishes unacknowledged",
                pending.len()
            )
        });
        sent.unacked.extend(pending.values().map(|(_, seq)| *seq));
    }
    if healthy && let Err(e) = w.leave().await {
        tally.error(1, || {
            format!(
                "publisher {publisher} leaving: {}",
                crate::measure::describe(&e)
            )
        });
    }
    (sent, tally)
}

/// What every PUBLISH of one publisher shares.
struct Publisher<'a> {
    publisher: u64,
    topic: &'a str,
    pad: &'a str,
    options: &'a Dict,
    window: &'a Window,
}

impl Publisher<'_> {
    /// Queues the next PUBLISH.
    async fn issue(
        &mut self,
        w: &mut Wamp,
        sent: &mut Sent,
        pending: &mut HashMap<Id, (Instant, u64)>,
    ) -> anyhow::Result<()> {
        let request = w.next_request();
        let seq = sent.count;
        let now = Instant::now();
        let args = list_args(
            w.serializer,
            vec![
                self.publisher.into(),
                seq.into(),
                self.window.stamp(now).into(),
                Value::Str(self.pad.to_owned()),
            ],
        )?;
        let bytes = w.encode(&Message::Publish {
            request,
            options: self.options.clone(),
            topic: self.topic.to_owned(),
            payload: Payload {
                args: Some(args),
                kwargs: None,
            },
        })?;
        sent.count += 1;
        pending.insert(request, (now, seq));
        w.conn.feed(bytes).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use switchboard_proto::{RawValue, codec};

    use super::*;

    fn event(s: Serializer, args: Vec<Value>, kwargs: Option<Value>) -> bytes::Bytes {
        let mut details = Dict::new();
        details.insert("publisher".into(), Value::UInt(7));
        let msg = Message::Event {
            subscription: 11,
            publication: 12,
            details,
            payload: Payload {
                args: Some(RawValue::from_value(s, &Value::List(args)).expect("args")),
                kwargs: kwargs.map(|k| RawValue::from_value(s, &k).expect("kwargs")),
            },
        };
        codec::encode(s, &msg).expect("encode")
    }

    fn args(pad: &str) -> Vec<Value> {
        vec![2u64.into(), 40u64.into(), 123u64.into(), pad.into()]
    }

    #[test]
    fn the_fast_path_reads_events_in_every_serializer() {
        for s in Serializer::ALL {
            let bytes = event(s, args("xxxx"), None);
            assert_eq!(
                fast_event(s, &bytes, "xxxx"),
                Some((11, 2, 40, 123)),
                "{s:?}"
            );
            // The generic path agrees.
            let Ok(Message::Event { payload, .. }) = codec::decode(s, &bytes) else {
                panic!("EVENT")
            };
            assert_eq!(parse_event(&payload, "xxxx"), Some((2, 40, 123)), "{s:?}");
        }
    }

    #[test]
    fn wrong_padding_or_other_shapes_leave_the_fast_path() {
        for s in Serializer::ALL {
            assert_eq!(fast_event(s, &event(s, args("xxxy"), None), "xxxx"), None);
            let short = event(s, args("xxxx")[..3].to_vec(), None);
            assert_eq!(fast_event(s, &short, "xxxx"), None);
            let goodbye = codec::encode(s, &Message::goodbye("wamp.close.normal")).expect("enc");
            assert_eq!(fast_event(s, &goodbye, "xxxx"), None);
        }
    }
}
