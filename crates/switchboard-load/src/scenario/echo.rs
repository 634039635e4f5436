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

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::sync::watch;
use tokio::time::Instant;

use super::order::{Sent, Track};
use super::pubsub::{Finals, FinalsRx, complete, count_arrival, sleep_until_opt};
use super::{Ctx, Outcome};
use crate::conn::{Conn, Target};
use crate::measure::{Progress, Tally, Window, sample_window};

/// Connection-count and size parameters of both scenarios.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// `echo`: connections; `fanout`: publishers.
    pub senders: usize,
    /// `fanout` only: subscriber connections.
    pub subscribers: usize,
    /// Messages in flight per sending connection.
    pub in_flight: usize,
    /// Message size in bytes.
    pub payload: usize,
}

/// Opens `n` connections, 64 handshakes at a time.
async fn open_all(target: &Target, n: usize) -> anyhow::Result<Vec<Conn>> {
    futures::stream::iter(0..n)
        .map(|_| target.open())
        .buffer_unordered(64)
        .try_collect()
        .await
}

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
    let conns = open_all(&ctx.target, p.senders)
        .await
        .context("connecting to the echo server")?;
    let window = ctx.window();
    let samples = sample_window(window, ctx.router_pid);
    let progress = ctx.progress.report("echo", window, ctx.quiet);
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(echo_loop(
                c,
                i as u64,
                p.in_flight,
                p.payload,
                window,
                ctx.progress.clone(),
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for t in tasks {
        tally.merge(t.await?);
    }
    progress.abort();
    Ok(Outcome::new(tally, window, samples.await?))
}

/// One echo connection: `in_flight` messages outstanding; each must come back unchanged, in order.
async fn echo_loop(
    mut conn: Conn,
    id: u64,
    in_flight: usize,
    size: usize,
    window: Window,
    progress: Progress,
) -> Tally {
    let mut tally = Tally::default();
    let mut pending: VecDeque<(Instant, Bytes)> = VecDeque::with_capacity(in_flight);
    let mut seq = 0u64;
    let outcome: anyhow::Result<()> = async {
        for _ in 0..in_flight {
            let m = echo_message(id, seq, size);
            seq += 1;
            pending.push_back((Instant::now(), m.clone()));
            conn.feed(m).await?;
        }
        conn.flush().await?;
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
            let first = match tokio::time::timeout_at(wake, conn.recv()).await {
                Ok(r) => r,
                Err(_) if wake == window.drain_deadline => return Ok(()),
                Err(_) => continue,
            };
            let mut completed = 0usize;
            let mut incoming = first;
            loop {
                let got = incoming?.ok_or_else(|| anyhow!("connection closed"))?;
                let now = Instant::now();
                match pending.pop_front() {
                    Some((at, want)) if want == got => {
                        completed += 1;
                        progress.add(1);
                        if window.contains(now) {
                            tally.ops += 1;
                            tally.latency.record(now - at);
                        }
                    }
                    Some(_) => bail!("an echo differs from the message sent"),
                    None => bail!("an echo of a message never sent"),
                }
                match conn.try_recv() {
                    Some(r) => incoming = r,
                    None => break,
                }
            }
            if Instant::now() < window.end {
                for _ in 0..completed {
                    let m = echo_message(id, seq, size);
                    seq += 1;
                    pending.push_back((Instant::now(), m.clone()));
                    conn.feed(m).await?;
                }
            }
            conn.flush().await?;
        }
    }
    .await;
    if let Err(e) = outcome {
        tally.error(1, || {
            format!("echo connection {id}: {}", crate::measure::describe(&e))
        });
    }
    if !pending.is_empty() {
        tally.error(pending.len() as u64, || {
            format!(
                "echo connection {id}: {} messages unanswered",
                pending.len()
            )
        });
    }
    conn.close().await;
    tally
}

/// Length of a fan-out message header: `P`, publisher (8), sequence (16), send time (16).
const FANOUT_HEADER: usize = 1 + 8 + 16 + 16;

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

/// Runs `fanout`.
pub async fn run_fanout(ctx: &Ctx, p: Params) -> anyhow::Result<Outcome> {
    // Subscribers announce themselves and wait for their announcement to come back: then the hub
    // has them in its list, and no publication can pass them by.
    let subscribers: Vec<Conn> = futures::stream::iter(0..p.subscribers)
        .map(|i| async move {
            let mut c = ctx.target.open().await?;
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
            anyhow::Ok(c)
        })
        .buffer_unordered(64)
        .try_collect()
        .await
        .context("subscribers connect to the hub")?;
    let publishers = open_all(&ctx.target, p.senders)
        .await
        .context("publishers connect to the hub")?;
    let window = ctx.window();
    let samples = sample_window(window, ctx.router_pid);
    let progress = ctx.progress.report("fanout", window, ctx.quiet);
    let (finals_tx, finals_rx) = watch::channel(None);
    let sub_tasks: Vec<_> = subscribers
        .into_iter()
        .map(|c| {
            tokio::spawn(fanout_subscriber(
                c,
                p.senders,
                p.payload,
                window,
                finals_rx.clone(),
                ctx.progress.clone(),
            ))
        })
        .collect();
    let pub_tasks: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(fanout_publisher(
                c,
                i as u64,
                p.in_flight,
                p.payload,
                window,
            ))
        })
        .collect();
    let mut tally = Tally::default();
    let mut sent = Vec::with_capacity(p.senders);
    for t in pub_tasks {
        let (s, t) = t.await?;
        sent.push(s);
        tally.merge(t);
    }
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

/// One hub publisher: its own messages come back as acknowledgements, in order; other publishers'
/// messages and join announcements are ignored.
async fn fanout_publisher(
    mut conn: Conn,
    id: u64,
    in_flight: usize,
    size: usize,
    window: Window,
) -> (Sent, Tally) {
    let mut tally = Tally::default();
    let mut sent = Sent::default();
    let mut pending: VecDeque<(Instant, u64, Bytes)> = VecDeque::with_capacity(in_flight);
    let issue = |sent: &mut Sent, pending: &mut VecDeque<(Instant, u64, Bytes)>| {
        let now = Instant::now();
        let m = fanout_message(id, sent.count, window.stamp(now), size);
        pending.push_back((now, sent.count, m.clone()));
        sent.count += 1;
        m
    };
    let outcome: anyhow::Result<()> = async {
        for _ in 0..in_flight {
            conn.feed(issue(&mut sent, &mut pending)).await?;
        }
        conn.flush().await?;
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
            let first = match tokio::time::timeout_at(wake, conn.recv()).await {
                Ok(r) => r,
                Err(_) if wake == window.drain_deadline => return Ok(()),
                Err(_) => continue,
            };
            let mut completed = 0usize;
            let mut incoming = first;
            loop {
                let got = incoming?.ok_or_else(|| anyhow!("connection closed"))?;
                let mine = parse_fanout(&got, size).is_some_and(|(p, _, _)| p == id);
                if mine {
                    let now = Instant::now();
                    match pending.pop_front() {
                        Some((at, _, want)) if want == got => {
                            completed += 1;
                            if window.contains(now) {
                                tally.publishes += 1;
                                tally.ack_latency.record(now - at);
                            }
                        }
                        _ => bail!("the hub's acknowledgement differs from the message sent"),
                    }
                }
                match conn.try_recv() {
                    Some(r) => incoming = r,
                    None => break,
                }
            }
            if Instant::now() < window.end {
                for _ in 0..completed {
                    conn.feed(issue(&mut sent, &mut pending)).await?;
                }
            }
            conn.flush().await?;
        }
    }
    .await;
    if let Err(e) = outcome {
        tally.error(1, || {
            format!("fan-out publisher {id}: {}", crate::measure::describe(&e))
        });
    }
    if !pending.is_empty() {
        tally.error(pending.len() as u64, || {
            format!(
                "fan-out publisher {id}: {} messages unacknowledged",
                pending.len()
            )
        });
        sent.unacked.extend(pending.iter().map(|(_, seq, _)| *seq));
    }
    conn.close().await;
    (sent, tally)
}

/// One hub subscriber: the same bookkeeping as a `pubsub` subscriber.
async fn fanout_subscriber(
    mut conn: Conn,
    publishers: usize,
    size: usize,
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
                    changed.map_err(|_| anyhow!("finals channel closed"))?;
                    continue;
                }
                _ = sleep_until_opt(deadline) => return Ok(()),
                r = conn.recv() => r,
            };
            let mut incoming = first;
            loop {
                let got = incoming?.ok_or_else(|| anyhow!("connection closed"))?;
                if got.first() != Some(&b'J') {
                    match parse_fanout(&got, size) {
                        Some((p, seq, ts)) if (p as usize) < tracks.len() => count_arrival(
                            &mut tally,
                            &mut tracks[p as usize],
                            seq,
                            window.unstamp(ts),
                            &window,
                            &progress,
                        ),
                        _ => tally.error(1, || "malformed fan-out message".to_owned()),
                    }
                }
                match conn.try_recv() {
                    Some(r) => incoming = r,
                    None => break,
                }
            }
        }
    }
    .await;
    if let Err(e) = outcome {
        tally.error(1, || {
            format!("fan-out subscriber: {}", crate::measure::describe(&e))
        });
    }
    if let Ok(f) = finals.wait_for(Option::is_some).await
        && let Some(f) = f.as_ref()
    {
        for (t, s) in tracks.iter().zip(&f.sent) {
            tally.lost += t.lost(s);
        }
    }
    conn.close().await;
    tally
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
