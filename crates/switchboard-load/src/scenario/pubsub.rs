//! `pubsub`: P publishers with K acknowledged publishes in flight each, S subscribers on one topic.
//! Each event carries `[publisher, seq, sent_ns, pad]`; every subscriber must get every
//! acknowledged event of every publisher exactly once and in order. Latency is publish-to-delivery
//! (all clocks are this process's); the PUBLISH-to-PUBLISHED time is reported as `ack_latency_us`.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use serde::de::IgnoredAny;
use switchboard_proto::{Dict, Id, Message, MessageType, Payload, Serializer, Value, codec};
use tokio::time::Instant;

use super::order::{Sent, Subscriber, finals_channel, merge_publishers_then_subscribers};
use super::requester::{Requester, keep_in_flight};
use super::{Ctx, Outcome, PubSubParams, is_probe, join_all, measure, run_id, spawn_each};
use crate::conn::{Conn, Target, Wamp, list_args};
use crate::measure::{Tally, Window};

/// Runs the scenario.
pub async fn run(ctx: &Ctx, p: PubSubParams) -> anyhow::Result<Outcome> {
    let topic: Arc<str> = format!("{}.topic.t{}", ctx.uri_prefix, run_id()).into();
    // Round robin over the target and the spread routers (all on the target without them).
    let targets: Vec<&Target> = ctx.subscriber_targets().collect();
    let subscribers: Vec<(Wamp, Id)> = futures::stream::iter(0..p.subscribers)
        .map(|i| subscribe(targets[i % targets.len()], &topic))
        .buffer_unordered(64)
        .try_collect()
        .await
        .context("subscribers join")?;
    if ctx.spread.is_empty() {
        ctx.await_route(ctx.origin(), &topic, true, None).await?;
    } else {
        ctx.await_delivery(&topic).await?;
    }
    let publishers = join_all(ctx.origin(), p.publishers, 64)
        .await
        .context("publishers join")?;

    measure(ctx, "pubsub", |window| async move {
        let (finals_tx, finals_rx) = finals_channel();
        let pad: Arc<str> = "x".repeat(p.load.payload).into();
        let probed = !ctx.spread.is_empty();
        let sub_tasks = spawn_each(subscribers, |_, (w, subscription)| {
            let sub = Subscriber::new(
                p.publishers,
                window,
                finals_rx.clone(),
                ctx.progress.clone(),
            );
            subscribe_loop(w, subscription, pad.clone(), sub, probed)
        });
        let mut options = Dict::new();
        options.insert("acknowledge".into(), Value::Bool(true));
        let pub_tasks = spawn_each(publishers, |id, w| {
            let publisher = Publisher {
                w,
                id,
                topic: topic.clone(),
                pad: pad.clone(),
                options: options.clone(),
                sent: Sent::default(),
                pending: HashMap::with_capacity(p.load.in_flight * 2),
                tally: Tally::default(),
            };
            publish_loop(publisher, p.load.in_flight, window)
        });
        merge_publishers_then_subscribers(pub_tasks, sub_tasks, finals_tx, &window).await
    })
    .await
}

/// Joins and subscribes to `topic`.
pub(super) async fn subscribe(target: &Target, topic: &str) -> anyhow::Result<(Wamp, Id)> {
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

/// One subscriber: receives until it has every acknowledged event or the drain deadline passes.
/// When the route wait `probed` the topic, a probe event is no error.
async fn subscribe_loop(
    mut w: Wamp,
    subscription: Id,
    pad: Arc<str>,
    mut sub: Subscriber,
    probed: bool,
) -> Tally {
    let serializer = w.serializer;
    let received = sub
        .receive(&mut w.conn, |sub, bytes| {
            if let Some((s, p, seq, stamp)) = fast_event(serializer, &bytes, &pad)
                && s == subscription
                && sub.arrive(p, seq, stamp)
            {
                return Ok(());
            }
            match codec::decode(serializer, &bytes)? {
                Message::Event {
                    subscription: s,
                    payload,
                    ..
                } if s == subscription => {
                    let counted = parse_event(&payload, &pad)
                        .is_some_and(|(p, seq, stamp)| sub.arrive(p, seq, stamp));
                    // A probe of the route wait, which a router delivered here although it
                    // was meant for the probe sessions only, is no error.
                    let probe = !counted && probed && is_probe(&payload);
                    if !counted && !probe {
                        sub.tally
                            .error(1, || format!("malformed event payload {payload:?}"));
                    }
                }
                Message::Goodbye { reason, .. } | Message::Abort { reason, .. } => {
                    bail!("router closed the session: {reason}")
                }
                _ => {}
            }
            Ok(())
        })
        .await;
    let healthy = sub.finish(received, "subscriber").await;
    if healthy && let Err(e) = w.leave().await {
        sub.tally.failure("subscriber leaving", &e);
    }
    sub.tally
}

/// One publisher: acknowledged PUBLISHes, each answered by PUBLISHED or ERROR.
struct Publisher {
    w: Wamp,
    id: u64,
    topic: Arc<str>,
    pad: Arc<str>,
    /// `{"acknowledge": true}`.
    options: Dict,
    sent: Sent,
    /// Request id -> (sent at, seq).
    pending: HashMap<Id, (Instant, u64)>,
    tally: Tally,
}

impl Requester for Publisher {
    type Wire = Conn;

    fn wire(&mut self) -> &mut Conn {
        &mut self.w.conn
    }

    fn outstanding(&self) -> usize {
        self.pending.len()
    }

    fn request(&mut self, window: &Window) -> anyhow::Result<Bytes> {
        let request = self.w.next_request();
        let seq = self.sent.count;
        let now = Instant::now();
        let args = list_args(
            self.w.serializer,
            vec![
                self.id.into(),
                seq.into(),
                window.stamp(now).into(),
                Value::Str(String::from(&*self.pad)),
            ],
        )?;
        let bytes = self.w.encode(&Message::Publish {
            request,
            options: self.options.clone(),
            topic: String::from(&*self.topic),
            payload: Payload {
                args: Some(args),
                kwargs: None,
            },
        })?;
        self.sent.count += 1;
        self.pending.insert(request, (now, seq));
        Ok(bytes)
    }

    fn answer(&mut self, bytes: Bytes, window: &Window) -> anyhow::Result<bool> {
        let now = Instant::now();
        match self.w.decode(&bytes)? {
            Message::Published { request, .. } => match self.pending.remove(&request) {
                Some((at, _)) => {
                    if window.contains(now) {
                        self.tally.publishes += 1;
                        self.tally.ack_latency.record(now - at);
                    }
                    Ok(true)
                }
                None => {
                    self.tally
                        .error(1, || format!("PUBLISHED for unknown request {request}"));
                    Ok(false)
                }
            },
            Message::Error {
                request_type,
                request,
                error,
                ..
            } if request_type == MessageType::Publish.code() => {
                let settled = self.pending.remove(&request);
                if let Some((_, seq)) = settled {
                    self.sent.unacked.insert(seq);
                }
                self.tally.error(1, || format!("PUBLISH failed: {error}"));
                Ok(settled.is_some())
            }
            Message::Goodbye { reason, .. } | Message::Abort { reason, .. } => {
                bail!("router closed the session: {reason}")
            }
            _ => Ok(false),
        }
    }
}

/// Runs one publisher: keeps `in_flight` acknowledged publishes outstanding until the window
/// ends, then waits for the outstanding acknowledgements.
async fn publish_loop(mut publisher: Publisher, in_flight: usize, window: Window) -> (Sent, Tally) {
    let outcome = keep_in_flight(&mut publisher, in_flight, &window).await;
    let Publisher {
        w,
        id,
        mut sent,
        pending,
        mut tally,
        ..
    } = publisher;
    let healthy = outcome.is_ok();
    if let Err(e) = outcome {
        tally.failure(format_args!("publisher {id}"), &e);
    }
    tally.unanswered(
        format_args!("publisher {id}"),
        pending.len(),
        "publishes unacknowledged",
    );
    sent.unacked.extend(pending.values().map(|(_, seq)| *seq));
    if healthy && let Err(e) = w.leave().await {
        tally.failure(format_args!("publisher {id} leaving"), &e);
    }
    (sent, tally)
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
