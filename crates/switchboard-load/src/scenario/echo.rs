//! The transport-limit references, against `switchboard-echo` (no WAMP at all):
//!
//! - `echo`: N connections with K messages in flight each; the server sends every message back.
//!   The WAMP counterpart is `rpc` (one round trip per operation, though `rpc` routes it through a
//!   callee: two hops).
//! - `fanout`: against `switchboard-echo --fanout`, P publishers with K messages in flight, S
//!   subscribers; the hub sends every message to every other connection and back to its sender
//!   (the acknowledgement). The WAMP counterpart is `pubsub`, with the same checks.
//!
//! Messages are ASCII (so they are valid in WebSocket text frames, which `--serializer json`
//! selects): `E` + connection + sequence number, or `P` + publisher + sequence number + send
//! time, in hex, then `x` padding up to `--payload` bytes (at least the header's length).
//!
//! The loops are generic over the [`Wire`]: the NATS reference (`scenario::nats`) runs the same
//! ones, a NATS responder or subject standing in for the echo server or the hub.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::time::Instant;

use super::order::{Sent, Subscriber, finals_channel, merge_publishers_then_subscribers};
use super::requester::{Requester, keep_in_flight};
use super::{Ctx, Load, Outcome, PubSubParams, measure, merge_all, spawn_each};
use crate::conn::{Conn, Target, Wire};
use crate::measure::{Progress, Tally, Window};

/// The `echo` parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Connections.
    pub connections: usize,
    /// Messages in flight per connection, and their size in bytes.
    pub load: Load,
}

/// Opens `n` connections, 64 handshakes at a time.
async fn open_all(target: &Target, n: usize) -> anyhow::Result<Vec<Conn>> {
    futures::stream::iter(0..n)
        .map(|_| target.open())
        .buffer_unordered(64)
        .try_collect()
        .await
}

/// Length of an echo message header: `E`, connection (8), sequence (16).
pub(super) const ECHO_HEADER: usize = 1 + 8 + 16;

/// `E` + connection (8 hex digits) + sequence number (16 hex digits), padded.
fn echo_message(conn: u64, seq: u64, size: usize) -> Bytes {
    let mut m = format!("E{conn:08x}{seq:016x}");
    pad_to(&mut m, size);
    Bytes::from(m)
}

fn pad_to(m: &mut String, size: usize) {
    let n = size.saturating_sub(m.len());
    m.extend(std::iter::repeat_n('x', n));
}

/// Runs `echo`.
pub async fn run_echo(ctx: &Ctx, p: Params) -> anyhow::Result<Outcome> {
    let conns = open_all(&ctx.target, p.connections)
        .await
        .context("connecting to the echo server")?;
    measure(ctx, "echo", |window| {
        let tasks = spawn_each(conns, |id, conn| {
            echo_loop(
                conn,
                id,
                p.load.payload,
                p.load.in_flight,
                window,
                ctx.progress.clone(),
            )
        });
        merge_all(tasks)
    })
    .await
}

/// One echo connection: each message must come back unchanged, in order.
struct Echo<W> {
    conn: W,
    id: u64,
    size: usize,
    seq: u64,
    /// Messages sent and not echoed yet, oldest first, with when they were sent.
    pending: VecDeque<(Instant, Bytes)>,
    tally: Tally,
    progress: Progress,
}

impl<W: Wire> Requester for Echo<W> {
    type Wire = W;

    fn wire(&mut self) -> &mut W {
        &mut self.conn
    }

    fn outstanding(&self) -> usize {
        self.pending.len()
    }

    fn request(&mut self, _: &Window) -> anyhow::Result<Bytes> {
        let m = echo_message(self.id, self.seq, self.size);
        self.seq += 1;
        self.pending.push_back((Instant::now(), m.clone()));
        Ok(m)
    }

    fn answer(&mut self, got: Bytes, window: &Window) -> anyhow::Result<bool> {
        let now = Instant::now();
        match self.pending.pop_front() {
            Some((at, want)) if want == got => {
                self.progress.add(1);
                if window.contains(now) {
                    self.tally.ops += 1;
                    self.tally.latency.record(now - at);
                }
                Ok(true)
            }
            Some(_) => bail!("an echo differs from the message sent"),
            None => bail!("an echo of a message never sent"),
        }
    }
}

/// Runs one echo connection (`id`) with `in_flight` messages of `size` bytes outstanding, each of
/// which must come back unchanged and in order.
pub(super) async fn echo_loop<W: Wire>(
    conn: W,
    id: u64,
    size: usize,
    in_flight: usize,
    window: Window,
    progress: Progress,
) -> Tally {
    let mut echo = Echo {
        conn,
        id,
        size,
        seq: 0,
        pending: VecDeque::with_capacity(in_flight),
        tally: Tally::default(),
        progress,
    };
    let outcome = keep_in_flight(&mut echo, in_flight, &window).await;
    let id = echo.id;
    if let Err(e) = outcome {
        echo.tally.failure(format_args!("echo connection {id}"), &e);
    }
    echo.tally.unanswered(
        format_args!("echo connection {id}"),
        echo.pending.len(),
        "messages unanswered",
    );
    echo.conn.close().await;
    echo.tally
}

/// Length of a fan-out message header: `P`, publisher (8), sequence (16), send time (16).
pub(super) const FANOUT_HEADER: usize = 1 + 8 + 16 + 16;

/// A fan-out message.
fn fanout_message(publisher: u64, seq: u64, stamp: u64, size: usize) -> Bytes {
    let mut m = format!("P{publisher:08x}{seq:016x}{stamp:016x}");
    pad_to(&mut m, size);
    Bytes::from(m)
}

/// Parses a fan-out message: (publisher, seq, stamp), if it is one with the expected padding.
fn parse_fanout(m: &[u8], size: usize) -> Option<(u64, u64, u64)> {
    if m.first() != Some(&b'P') || m.len() != size.max(FANOUT_HEADER) {
        return None;
    }
    let hex = |r: std::ops::Range<usize>| {
        std::str::from_utf8(m.get(r)?)
            .ok()
            .and_then(|s| u64::from_str_radix(s, 16).ok())
    };
    let padding_ok = m[FANOUT_HEADER..].iter().all(|b| *b == b'x');
    padding_ok.then_some(())?;
    Some((hex(1..9)?, hex(9..25)?, hex(25..41)?))
}

/// Opens a subscriber connection: it announces itself and waits for its announcement to come
/// back, so the hub has it in its list and no publication can pass it by.
async fn join_hub(target: &Target, i: usize) -> anyhow::Result<Conn> {
    let mut c = target.open().await?;
    let hello = Bytes::from(format!("J{i:08x}"));
    c.send(hello.clone()).await?;
    let wait = async {
        loop {
            match c.recv().await? {
                Some(m) if m == hello => return anyhow::Ok(()),
                Some(_) => {}
                None => bail!("the hub closed the connection"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .map_err(|_| anyhow!("the hub did not echo a join message"))??;
    Ok(c)
}

/// Runs `fanout`.
pub async fn run_fanout(ctx: &Ctx, p: PubSubParams) -> anyhow::Result<Outcome> {
    let subscribers: Vec<Conn> = futures::stream::iter(0..p.subscribers)
        .map(|i| join_hub(&ctx.target, i))
        .buffer_unordered(64)
        .try_collect()
        .await
        .context("subscribers connect to the hub")?;
    let publishers = open_all(&ctx.target, p.publishers)
        .await
        .context("publishers connect to the hub")?;
    measure_fanout(ctx, "fanout", p, subscribers, publishers, p.load.payload).await
}

/// The measured phase of a bare fan-out (the hub's `fanout`, NATS's `pubsub`) over connections
/// already joined: each publisher keeps its messages of `size` bytes in flight, and every
/// subscriber must get every publisher's messages once and in order.
pub(super) async fn measure_fanout<W: Wire + Send + 'static>(
    ctx: &Ctx,
    name: &'static str,
    p: PubSubParams,
    subscribers: Vec<W>,
    publishers: Vec<W>,
    size: usize,
) -> anyhow::Result<Outcome> {
    measure(ctx, name, |window| async move {
        let (finals_tx, finals_rx) = finals_channel();
        let sub_tasks = spawn_each(subscribers, |_, conn| {
            let sub = Subscriber::new(
                p.publishers,
                window,
                finals_rx.clone(),
                ctx.progress.clone(),
            );
            fanout_subscriber(conn, size, sub)
        });
        let pub_tasks = spawn_each(publishers, |id, conn| {
            fanout_publisher(conn, id, size, p.load.in_flight, window)
        });
        merge_publishers_then_subscribers(pub_tasks, sub_tasks, finals_tx, &window).await
    })
    .await
}

/// One hub publisher: its own messages come back as acknowledgements, in order; other publishers'
/// messages and join announcements are ignored.
struct HubPublisher<W> {
    conn: W,
    id: u64,
    size: usize,
    sent: Sent,
    /// Messages sent and not acknowledged yet, oldest first: (sent at, seq, message).
    pending: VecDeque<(Instant, u64, Bytes)>,
    tally: Tally,
}

impl<W: Wire> Requester for HubPublisher<W> {
    type Wire = W;

    fn wire(&mut self) -> &mut W {
        &mut self.conn
    }

    fn outstanding(&self) -> usize {
        self.pending.len()
    }

    fn request(&mut self, window: &Window) -> anyhow::Result<Bytes> {
        let now = Instant::now();
        let seq = self.sent.count;
        let m = fanout_message(self.id, seq, window.stamp(now), self.size);
        self.pending.push_back((now, seq, m.clone()));
        self.sent.count += 1;
        Ok(m)
    }

    fn answer(&mut self, got: Bytes, window: &Window) -> anyhow::Result<bool> {
        let mine = parse_fanout(&got, self.size).is_some_and(|(p, _, _)| p == self.id);
        if !mine {
            return Ok(false);
        }
        let now = Instant::now();
        match self.pending.pop_front() {
            Some((at, _, want)) if want == got => {
                if window.contains(now) {
                    self.tally.publishes += 1;
                    self.tally.ack_latency.record(now - at);
                }
                Ok(true)
            }
            _ => bail!("the hub's acknowledgement differs from the message sent"),
        }
    }
}

/// Runs one hub publisher (`id`) with `in_flight` messages of `size` bytes outstanding, each
/// acknowledged by its own copy coming back.
pub(super) async fn fanout_publisher<W: Wire>(
    conn: W,
    id: u64,
    size: usize,
    in_flight: usize,
    window: Window,
) -> (Sent, Tally) {
    let mut publisher = HubPublisher {
        conn,
        id,
        size,
        sent: Sent::default(),
        pending: VecDeque::with_capacity(in_flight),
        tally: Tally::default(),
    };
    let outcome = keep_in_flight(&mut publisher, in_flight, &window).await;
    let HubPublisher {
        mut conn,
        id,
        mut sent,
        pending,
        mut tally,
        ..
    } = publisher;
    if let Err(e) = outcome {
        tally.failure(format_args!("fan-out publisher {id}"), &e);
    }
    tally.unanswered(
        format_args!("fan-out publisher {id}"),
        pending.len(),
        "messages unacknowledged",
    );
    sent.unacked.extend(pending.iter().map(|(_, seq, _)| *seq));
    conn.close().await;
    (sent, tally)
}

/// One hub subscriber of messages of `size` bytes: the same bookkeeping as a `pubsub` subscriber.
pub(super) async fn fanout_subscriber<W: Wire>(
    mut conn: W,
    size: usize,
    mut sub: Subscriber,
) -> Tally {
    let received = sub
        .receive(&mut conn, |sub, got| {
            // Join announcements of other subscribers come by too.
            if got.first() != Some(&b'J') {
                let counted = parse_fanout(&got, size)
                    .is_some_and(|(p, seq, stamp)| sub.arrive(p as usize, seq, stamp));
                if !counted {
                    sub.tally
                        .error(1, || "malformed fan-out message".to_owned());
                }
            }
            Ok(())
        })
        .await;
    sub.finish(received, "fan-out subscriber").await;
    conn.close().await;
    sub.tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_messages_parse_back() {
        let m = fanout_message(3, 42, 123_456, 64);
        assert_eq!(m.len(), 64);
        assert_eq!(parse_fanout(&m, 64), Some((3, 42, 123_456)));
        // Shorter than the header: the header alone.
        let m = fanout_message(1, 2, 3, 10);
        assert_eq!(parse_fanout(&m, 10), Some((1, 2, 3)));
        assert_eq!(parse_fanout(b"J00000001", 64), None);
    }
}
